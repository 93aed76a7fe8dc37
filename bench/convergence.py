"""One truth whatever the delivery: the same events in order and delivered late, compared.

Simulates a week of the example business (leads and service), replays it once in time order
and once with a share of the agents' events (outbound messages, assignments, activities and
attribute updates) delivered late by up to 30 minutes — inside the correction horizon — and
compares every clock's final state (status, breach, deadline, elapsed, attempts) and the final
CSAT, handle and recovery records. Prints the machine, the inputs and the figure:

    python -m bench.convergence [--days 7] [--seed 7] [--share 0.05]

This is a correctness measurement, not a speed one: a clean run prints `differ=0`. Clocks a
correction withdrew are stored as `cancelled` rows (counted in no figure) and reported apart.
"""

from __future__ import annotations

import argparse
import platform
import random
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from tempfile import TemporaryDirectory

import orjson

from flows.core.policies import load_policies
from flows.core.records import ActionRecord, CsatRecord, HandleRecord, Record, SlaRecord
from flows.core.timefmt import parse_instant
from flows.replay import replay_records

REPO = Path(__file__).resolve().parents[1]
_AGENT_TYPES = ("assignment", "activity", "conversation")
_MAX_DELAY_MS = 30 * 60 * 1000


def _is_agents(event: dict[str, object]) -> bool:
    """Whether an event is the agents' side of the conversation (what arrives late in life)."""
    kind = event.get("type")
    if kind == "message":
        return event.get("direction") == "outbound"
    return kind in _AGENT_TYPES and event.get("action") not in ("opened", "resolved")


def late_delivery(lines: list[bytes], share: float, seed: int) -> list[bytes]:
    """Return `lines` in delivery order: `share` of the agents' events delayed by up to 30 min."""
    rng = random.Random(seed)
    keyed = []
    for n, line in enumerate(lines):
        event = orjson.loads(line)
        at = parse_instant(str(event["occurred_at"]))
        arrives = at + (
            rng.randint(1, _MAX_DELAY_MS) if _is_agents(event) and rng.random() < share else 0
        )
        keyed.append((arrives, n, line))
    keyed.sort()
    return [line for _, _, line in keyed]


def final_state(records: Iterable[Record]) -> dict[tuple[object, ...], tuple[object, ...]]:
    """What a store keyed on identity ends with, per clock, survey, segment and recovery."""
    out: dict[tuple[object, ...], tuple[object, ...]] = {}
    for r in records:
        if isinstance(r, SlaRecord):
            out[("clock", *r.identity())] = (
                r.status,
                r.breached,
                r.deadline_at,
                r.stopped_at,
                r.elapsed,
                r.attempts,
                r.cause,
            )
        elif isinstance(r, CsatRecord) and r.sent_at is None and r.rating is None:
            out.pop(("csat", *r.identity()), None)  # voided: counted nowhere
        elif isinstance(r, CsatRecord):
            out[("csat", *r.identity())] = (r.cycle, r.rating, r.agent_id, r.breached, r.recovered)
        elif isinstance(r, HandleRecord):
            # A withdrawn segment is no segment: the store's queries leave it out.
            if r.end == "withdrawn":
                out.pop(("handle", *r.identity()), None)
            else:
                out[("handle", *r.identity())] = (r.ended_at, r.handle, r.end)
        elif isinstance(r, ActionRecord) and r.action == "recover":
            key = ("recover", *r.identity())
            if r.withdrawn:
                out.pop(key, None)
            else:
                out[key] = (r.at, r.send)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the report; exit 1 when any state differs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--share", type=float, default=0.05)
    args = parser.parse_args(argv)
    policies = load_policies(REPO / "examples" / "policies.yaml")
    with TemporaryDirectory() as tmp:
        path = Path(tmp) / "week.jsonl"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "flows.cli",
                "simulate",
                "--days",
                str(args.days),
                "--seed",
                str(args.seed),
                "--start",
                "2026-11-16T00:00:00Z",
                "--output",
                str(path),
            ],
            check=True,
            capture_output=True,
        )
        lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    ordered = sorted(lines, key=lambda b: parse_instant(str(orjson.loads(b)["occurred_at"])))
    delivered = late_delivery(ordered, args.share, args.seed)
    moved = sum(1 for a, b in zip(ordered, delivered, strict=True) if a != b)
    started = time.perf_counter()
    common = {"max_future_ms": None, "lateness_ms": 5_000}
    in_order = final_state(replay_records(ordered, policies, **common))  # type: ignore[arg-type]
    late = final_state(replay_records(delivered, policies, **common))  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    keys = set(in_order) | set(late)
    differ = sorted((k for k in keys if in_order.get(k) != late.get(k)), key=str)
    # A clock a correction withdrew stays in the store as `cancelled` (SPEC §5: the store
    # converges by records, it never deletes), which counts in no figure: the same as absent.
    withdrawn = [
        k
        for k in differ
        if k[0] == "clock"
        and (in_order.get(k) is None or late.get(k) is None)
        and (in_order.get(k) or late.get(k) or ("",))[0] == "cancelled"
    ]
    outcome = [k for k in differ if k not in withdrawn]
    clocks = sum(1 for k in keys if k[0] == "clock")
    print(f"machine: {platform.node()} {platform.machine()} python {platform.python_version()}")
    print(
        f"inputs: examples/policies.yaml, simulate --days {args.days:g} --seed {args.seed}; "
        f"{len(lines):,} events, {args.share:.0%} of the agents' events late by up to 30 min "
        f"({moved:,} lines out of place)"
    )
    print(f"replayed twice in {elapsed:.1f} s")
    kinds = {kind: sum(1 for k in keys if k[0] == kind) for kind in ("csat", "handle", "recover")}
    print(
        f"RESULT clocks={clocks} csat={kinds['csat']} handle={kinds['handle']} "
        f"recover={kinds['recover']} differ={len(outcome)} withdrawn_rows={len(withdrawn)}"
    )
    print(
        f"{len(outcome)} final states differ; {len(withdrawn)} clocks exist only in one run as "
        "`cancelled` (a cycle a late event undid: counted in no figure)"
    )
    for key in outcome[:20]:
        print(f"  {key}: in order {in_order.get(key)} / late {late.get(key)}")
    return 1 if outcome else 0


if __name__ == "__main__":
    raise SystemExit(main())
