"""Engine-only benchmark: events/s and memory per open conversation (issue: the SLA engine).

Usage: python bench/engine_bench.py [--sizes 10000,100000,1000000] [--events 300000] [--json]
                                    [--paths]

For each size N it opens N conversations (a customer message each, so every conversation holds
running clocks), measures the memory they take, then feeds a steady stream of events over them
(customer messages, agent replies, assignments, attribute updates, resolves) in batches of
5,000 with the watermark following the events, as the live monitor does, with the garbage
collector tuned as the monitor tunes it (`flows.monitor.tuning.tune_gc`). Goals (the baseline of
the printed ratios): 200,000 events/s on one core at 100k open conversations, and at most
2 KB per open conversation.

`--paths` measures the compiled SLA core (mypyc, `flows.core.native`) against its pure sources
(`SLAWATCH_PURE=1`): each size runs in fresh subprocesses, alternating pure and compiled, and
the best of each is kept (`compare_paths`; `python -m bench` uses it too).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.core import native  # noqa: E402
from flows.core.engine import Engine  # noqa: E402
from flows.core.events import AssignmentEvent, ConversationEvent, Event, MessageEvent  # noqa: E402
from flows.core.policies import load_policies  # noqa: E402
from flows.monitor.tuning import tune_gc  # noqa: E402

GOAL_EPS = 200_000
GOAL_BYTES = 2048
T0 = 1_795_392_000_000
BATCH = 5_000


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()} | {cpu} | {os.cpu_count()} cpus | Python {platform.python_version()}"


def opening_events(n: int) -> list[Event]:
    return [MessageEvent(f"o{i}", f"conv-{i}", T0 + i, "inbound", "customer") for i in range(n)]


def stream(n: int, count: int, start: int, seed: int = 7) -> list[Event]:
    rng = random.Random(seed)
    out: list[Event] = []
    t = start
    for k in range(count):
        t += 1 + (k & 3)
        cid = f"conv-{rng.randrange(n)}"
        roll = rng.random()
        eid = f"s{k}"
        if roll < 0.45:
            out.append(MessageEvent(eid, cid, t, "inbound", "customer"))
        elif roll < 0.85:
            out.append(MessageEvent(eid, cid, t, "outbound", "agent", f"a{k % 50}"))
        elif roll < 0.93:
            out.append(AssignmentEvent(eid, cid, t, "assigned", f"a{k % 50}", "sales"))
        elif roll < 0.98:
            out.append(ConversationEvent(eid, cid, t, "updated", (("priority", "P2"),)))
        else:
            out.append(ConversationEvent(eid, cid, t, "resolved"))
    return out


def run_size(n: int, events: int, policies_path: Path) -> dict[str, float]:
    pset = load_policies(policies_path)
    # The monitor runs with this threshold (flows.monitor.flow.get_flow): measure what it runs.
    tune_gc()
    gc.collect()
    tracemalloc.start()
    engine = Engine(pset)
    opening = opening_events(n)
    before = tracemalloc.get_traced_memory()[0]
    for i in range(0, n, BATCH):
        chunk = opening[i : i + BATCH]
        engine.process(chunk, chunk[-1].occurred_at)
    # The events themselves are kept in the conversation's log (for late corrections): count them.
    del opening
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    per_conv = (after - before) / n

    feed = stream(n, events, T0 + n + 1)
    records = 0
    gc.collect()
    # CPU time of this process: the machine is shared, and wall time would measure the others.
    t0 = time.process_time()
    for i in range(0, len(feed), BATCH):
        chunk = feed[i : i + BATCH]
        records += len(engine.process(chunk, chunk[-1].occurred_at))
    elapsed = time.process_time() - t0
    return {
        "n": n,
        "events": len(feed),
        "eps": len(feed) / elapsed,
        "records": records,
        "bytes_per_conv": per_conv,
        "open": sum(1 for c in engine.conversations.values() if c.clocks),
    }


def run_in_subprocess(n: int, events: int, policies_path: Path, *, pure: bool) -> dict[str, float]:
    """Run `run_size` in a fresh interpreter on the pure or the compiled core; return its figures.

    The figures carry `compiled` (1 or 0): what the child actually ran.
    """
    env = {k: v for k, v in os.environ.items() if k != native.PURE_ENV}
    if pure:
        env[native.PURE_ENV] = "1"
    args = [sys.executable, __file__, "--sizes", str(n), "--events", str(events), "--json"]
    args += ["--policies", str(policies_path)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True, timeout=900)
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


def compare_paths(n: int, events: int, policies_path: Path, rounds: int = 2) -> dict[str, float]:
    """Measure the engine on the pure and the compiled core, alternating, best of `rounds` each.

    Returns:
        `pure_eps`, `compiled_eps` (NaN when this install compiled nothing), `ratio` (compiled
        over pure), `compiled` (1 if the compiled runs really ran compiled), and the bytes per
        open conversation of each path.
    """
    pure: list[dict[str, float]] = []
    comp: list[dict[str, float]] = []
    for _ in range(rounds):
        pure.append(run_in_subprocess(n, events, policies_path, pure=True))
        comp.append(run_in_subprocess(n, events, policies_path, pure=False))
    best_pure = max(pure, key=lambda r: r["eps"])
    best_comp = max(comp, key=lambda r: r["eps"])
    compiled = int(all(r["compiled"] for r in comp))
    comp_eps = best_comp["eps"] if compiled else float("nan")
    return {
        "n": n,
        "events": events,
        "pure_eps": best_pure["eps"],
        "compiled_eps": comp_eps,
        "ratio": comp_eps / best_pure["eps"],
        "compiled": compiled,
        "pure_bytes_per_conv": best_pure["bytes_per_conv"],
        "compiled_bytes_per_conv": best_comp["bytes_per_conv"],
        "pure_runs": [r["eps"] for r in pure],  # type: ignore[dict-item]
        "compiled_runs": [r["eps"] for r in comp],  # type: ignore[dict-item]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument(
        "--policies",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "examples" / "policies.yaml",
    )
    parser.add_argument("--json", action="store_true", help="one JSON line of figures per size")
    parser.add_argument(
        "--paths", action="store_true", help="compiled core against its pure sources"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.json:
        for size in sizes:
            figures = run_size(size, args.events, args.policies)
            print(json.dumps({**figures, "compiled": int(native.compiled())}), flush=True)
        return
    if args.paths:
        print(f"machine : {machine()}")
        print(f"core    : {native.describe()}")
        for size in sizes:
            r = compare_paths(size, args.events, args.policies)
            print(
                f"{size:>10,} open convs: pure {r['pure_eps']:,.0f} ev/CPU-s "
                f"({r['pure_bytes_per_conv']:,.0f} B/conv), compiled {r['compiled_eps']:,.0f} "
                f"({r['compiled_bytes_per_conv']:,.0f} B/conv): x{r['ratio']:.2f}; runs pure "
                f"{r['pure_runs']}, compiled {r['compiled_runs']}",
                flush=True,
            )
        return
    print("slawatch engine benchmark")
    print(f"machine : {machine()}")
    print(f"policies: {args.policies}")
    print(f"inputs  : {args.events} steady-state events per size, batches of {BATCH}, one core")
    print(f"load    : {os.getloadavg()[0]:.1f} (1-min load average; events/s is per CPU second)")
    print(f"baseline: {GOAL_EPS:,} events/s and {GOAL_BYTES} B per open conversation (goals)")
    print()
    header = (
        f"{'open convs':>10} {'events':>8} {'events/s':>10} {'x goal':>7} "
        f"{'records':>8} {'B/conv':>7} {'x goal':>7}"
    )
    print(header)
    print("-" * len(header))
    for size in sizes:
        r = run_size(size, args.events, args.policies)
        print(
            f"{r['n']:>10,.0f} {r['events']:>8,.0f} {r['eps']:>10,.0f} "
            f"{r['eps'] / GOAL_EPS:>7.2f} {r['records']:>8,.0f} {r['bytes_per_conv']:>7,.0f} "
            f"{r['bytes_per_conv'] / GOAL_BYTES:>7.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
