"""`python -m bench [--quick]`: every slawatch benchmark in one run, as ratios to baselines.

Starts a private Kafka + QuestDB (or reuses `--stack-dir`), produces one backlog of SPEC events,
and measures in the same session, on the same events:

1. the **raw ceiling**: a plain confluent-kafka consumer + orjson decode (`bench/raw.py`);
2. the **engine** alone on one core (`bench/engine_bench.py`), with its memory per open
   conversation;
3. `slawatch run` over the backlog: 1 worker, `-w 2`, two processes (`bench/monitor_bench.py`),
   and the flow run in this process with each step timed (where the time goes);
4. **end to end** with QuestDB and recovery (`-r`, snapshots every 5 s), then `kill -9` and the
   time until the restarted monitor is caught up, and its memory (`bench/recovery.py`);
5. **breach latency**, quiet and while half the end-to-end rate flows, against the **polling
   baseline** (one SQL query every 5 s for overdue clocks, `bench/latency.py`);
6. the **QuestDB server's CPU per record** of the writer's requests, today's against a live rate
   with and without the sink's batch window (`bench/questdb_server.py`'s `--quick` shapes, ~30 s;
   run that file alone for every shape).

It prints a table with the machine, the inputs and each figure with its ratio to its baseline,
and ends with one `RESULT key=value ...` line (`bench/result.py`). `--quick` scales the inputs
down to finish in about 2 minutes on a 2-core machine; the full run takes about 10.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import confluent_kafka

from bench import engine_bench, monitor_bench, questdb_server
from bench.latency import LatencyRun, breach_latency
from bench.monitor_bench import Backlog, Bench, MonitorFailed, RunResult
from bench.raw import LARGE_FETCHES, RawRun, raw_ceiling
from bench.recovery import LATENESS_MS, Recovery, e2e_and_recovery
from bench.result import format_result, percentile, ratio
from flows.core import native
from flows.devstack import KAFKA_VERSION, QUESTDB_VERSION

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Scale:
    """The inputs of one run."""

    events: int
    conversations: int
    engine_conversations: int
    engine_events: int
    breach_samples: int
    downtime_events: int
    hotspots: bool


FULL = Scale(300_000, 100_000, 100_000, 300_000, 20, 50_000, hotspots=True)
QUICK = Scale(40_000, 10_000, 20_000, 60_000, 8, 10_000, hotspots=False)
PARALLEL = ("base", "w2", "2proc")
#: The raw consumer reads the backlog as many times as it takes to read at least this many.
RAW_EVENTS = 300_000


def machine_lines() -> list[str]:
    """Describe the machine and the versions of what runs on it."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import bytewax  # noqa: PLC0415

    try:
        from importlib.metadata import version  # noqa: PLC0415

        bytewax_version = version("bytewax")
        questdb_client = version("questdb")
        kafka_client = version("confluent-kafka")
    except Exception:  # noqa: BLE001 - only shown
        bytewax_version = questdb_client = kafka_client = "?"
    del bytewax
    one, five, _ = os.getloadavg()
    return [
        f"machine : {platform.node()} | {cpu} | {os.cpu_count()} cores | load average "
        f"{one:.1f} (1 min) {five:.1f} (5 min) at start; shared with other work",
        f"versions: Python {platform.python_version()} | Kafka {KAFKA_VERSION} (KRaft, one node) "
        f"| QuestDB {QUESTDB_VERSION} | confluent-kafka {kafka_client} "
        f"(librdkafka {confluent_kafka.libversion()[0]}) | bytewax {bytewax_version} | "
        f"questdb client {questdb_client}",
    ]


def main(argv: list[str] | None = None) -> int:
    """Run every benchmark and print the table and the RESULT line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="scaled-down inputs (~2 minutes)")
    parser.add_argument("--stack-dir", type=Path, default=None, help="reuse this stack")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--policies", type=Path, default=monitor_bench.DEFAULT_POLICIES)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per monitor run")
    parser.add_argument("--breach-target", default="3s", help="first_response target")
    parser.add_argument("--breach-lateness", default="2s", help="lateness of the latency run")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    began = time.monotonic()
    print("slawatch benchmarks (python -m bench" + (" --quick)" if args.quick else ")"))
    for line in machine_lines():
        print(line)
    if args.quick:
        print(
            "scale   : QUICK - inputs scaled down (events, conversations, samples) to finish in "
            "about 2 minutes; the full run (python -m bench) is the one to quote"
        )
    status = monitor_bench.bench_session(
        args, "slawatch-bench-", lambda bench: _run(bench, args, scale)
    )
    print(f"(whole run {time.monotonic() - began:.0f} s including the stack's start and stop)")
    return status


def _run(bench: Bench, args: argparse.Namespace, scale: Scale) -> int:
    began = time.perf_counter()
    newest = monitor_bench.now_ms() - 30_000
    values = monitor_bench.generate(scale.events, scale.conversations, newest)
    topics = {
        "input_topics": bench.topic("in", args.partitions),
        "events_topic": bench.topic("events", args.partitions),
        "actions_topic": bench.topic("actions", args.partitions),
        "deadletter_topic": bench.topic("dead", 1),
    }
    produced = monitor_bench.produce(
        bench.endpoints.bootstrap_servers, topics["input_topics"], values
    )
    backlog = Backlog(topics, len(values), newest)
    size = sum(len(v) for _, v in values) / len(values)
    print(
        f"inputs  : {len(values):,} SPEC events ({size:.0f} B avg JSON) over "
        f"{scale.conversations:,} conversations, {args.partitions} partitions keyed by "
        f"conversation, dated in the last 2 h, produced before each reader starts "
        f"({time.perf_counter() - began:.1f} s to generate, {produced:.1f} s to produce); "
        f"policies {args.policies.name}, {args.shards} shards"
    )
    # The raw consumer needs a long enough window: a small backlog is repeated in a topic of its
    # own (re-reading one topic would time the re-assignments, not the reading).
    raw_topic, raw_events = topics["input_topics"], backlog.events
    if backlog.events < RAW_EVENTS:
        copies = -(-RAW_EVENTS // backlog.events)
        raw_topic = bench.topic("raw", args.partitions)
        monitor_bench.produce(bench.endpoints.bootstrap_servers, raw_topic, values * copies)
        raw_events = backlog.events * copies
        print(f"  raw ceiling input: the backlog {copies} times ({raw_events:,} events)")
    del values
    gc.collect()

    def raw_runs(config: dict[str, str | int] | None) -> list[RawRun]:
        return [
            raw_ceiling(
                bench.endpoints.bootstrap_servers,
                raw_topic,
                args.partitions,
                raw_events,
                config=config,
            )
            for _ in range(3)
        ]

    raws = raw_runs(None)
    raw = max(raws, key=lambda r: r.eps)
    tuned_runs = raw_runs(LARGE_FETCHES)
    tuned = max(tuned_runs, key=lambda r: r.eps)
    print(
        f"  raw ceiling: {', '.join(f'{r.eps:,.0f}' for r in raws)} events/s over "
        f"{raw.events:,} events each (librdkafka defaults, best of 3 kept); with 10 MB "
        f"partition fetches {', '.join(f'{r.eps:,.0f}' for r in tuned_runs)}"
    )

    engine = engine_bench.run_size(
        scale.engine_conversations, scale.engine_events, args.policies.resolve()
    )
    print(
        f"  engine: {engine['eps']:,.0f} events/CPU-s at {engine['n']:,.0f} open conversations, "
        f"{engine['bytes_per_conv']:,.0f} B each (tracemalloc); {native.describe()}"
    )
    paths = engine_bench.compare_paths(
        scale.engine_conversations, scale.engine_events, args.policies.resolve()
    )
    print(
        f"  engine, pure sources against the compiled core (fresh processes, alternating, best "
        f"of 2 each): pure {paths['pure_eps']:,.0f} events/CPU-s, compiled "
        f"{paths['compiled_eps']:,.0f}: x{paths['ratio']:.2f}"
    )

    failures: list[str] = []
    runs: dict[str, RunResult] = {}
    for key in PARALLEL:
        try:
            runs[key] = bench.run_config(key, backlog)
            w = runs[key].window
            print(f"  {runs[key].label}: {w.events / w.seconds:,.0f} events/s", flush=True)
        except MonitorFailed as exc:
            failures.append(f"{key}: {exc}")

    print()
    inproc = monitor_bench.profile_report(
        bench, topics, "recovery+questdb", 50_000, hotspots=scale.hotspots
    )
    print()

    recovery: Recovery | None = None
    try:
        e2e, recovery = e2e_and_recovery(
            bench,
            backlog,
            conversations=scale.conversations,
            downtime_events=scale.downtime_events,
        )
        runs["e2e"] = e2e
        w = e2e.window
        print(
            f"  {e2e.label}: {w.events / w.seconds:,.0f} events/s; "
            f"recovery {recovery.seconds:.1f} s"
        )
    except MonitorFailed as exc:
        failures.append(f"e2e/recovery: {exc}")

    # Half the sustained end-to-end rate: the lower of the two measures of that configuration
    # (a short window may miss the snapshots that a longer one pays for).
    inproc_eps = inproc.events / inproc.wall_s if inproc.wall_s > 0 else math.nan
    sustained = min(
        (x for x in (_eps(runs.get("e2e")), inproc_eps) if not math.isnan(x)), default=2_000.0
    )
    load_rate = 0.5 * sustained
    latency: LatencyRun | None = None
    try:
        latency = breach_latency(
            bench,
            samples=scale.breach_samples,
            target=args.breach_target,
            lateness=args.breach_lateness,
            load_rate=load_rate,
        )
    except MonitorFailed as exc:
        failures.append(f"latency: {exc}")

    print()
    questdb_pid = bench.stack.status(probe=False).questdb_pid
    qdb: dict[str, float | int | str] = {}
    if questdb_pid is None:
        failures.append("questdb server cost: QuestDB is not running")
    else:
        qdb = questdb_server.session_figures(bench.endpoints, questdb_pid)

    print()
    figures = _report(args, scale, backlog, raw, tuned, engine, runs, inproc, recovery, latency)
    figures.update(
        {
            "compiled": int(native.compiled()),
            "engine_pure_eps": round(paths["pure_eps"]),
            "engine_compiled_eps": _round(paths["compiled_eps"]),
            "compiled_ratio": paths["ratio"],
        }
    )
    figures.update(qdb)
    for failure in failures:
        print(f"FAILED {failure}")
    print(format_result(figures), flush=True)
    return 1 if failures else 0


def _eps(run: RunResult | None) -> float:
    if run is None or run.window.seconds <= 0:
        return math.nan
    return run.window.events / run.window.seconds


def _report(
    args: argparse.Namespace,
    scale: Scale,
    backlog: Backlog,
    raw: RawRun,
    tuned: RawRun,
    engine: dict[str, float],
    runs: dict[str, RunResult],
    inproc: monitor_bench.InProcessRun,
    recovery: Recovery | None,
    latency: LatencyRun | None,
) -> dict[str, float | int | str]:
    """Print the tables; return the RESULT figures."""
    w_ = 56
    header = (
        f"{'what':<{w_}} {'events':>8} {'seconds':>7} {'events/s':>9} {'of raw':>7} "
        f"{'CPU s':>6} {'ev/CPU-s':>9} {'kafka s':>7} {'qdb s':>6} {'load':>5}"
    )
    print(
        "throughput (events/s = wall clock unless said; of raw = ratio to the raw ceiling; "
        "CPU s = the monitor's processes, kafka s / qdb s = the servers', over the window)"
    )
    print(header)
    print("-" * len(header))
    blank = f"{'':>9} {'':>7} {'':>6}"
    print(
        f"{'raw ceiling: confluent-kafka consume + orjson.loads':<{w_}} {raw.events:>8,} "
        f"{raw.seconds:>7.2f} {raw.eps:>9,.0f} {1:>7.0%} {'':>6} {blank} "
        f"{os.getloadavg()[0]:>5.1f}"
    )
    print(
        f"{'  the same with 10 MB partition fetches (tuned)':<{w_}} {tuned.events:>8,} "
        f"{tuned.seconds:>7.2f} {tuned.eps:>9,.0f} {ratio(tuned.eps, raw.eps):>7.0%} "
        f"{'':>6} {blank} {'':>5}"
    )
    engine_label = f"engine alone, {engine['n']:,.0f} open convs (per CPU-s)"
    engine_cpu = engine["events"] / engine["eps"]
    print(
        f"{engine_label:<{w_}} {engine['events']:>8,.0f} {engine_cpu:>7.2f} "
        f"{engine['eps']:>9,.0f} {ratio(engine['eps'], raw.eps):>7.0%} "
        f"{engine_cpu:>6.2f} {engine['eps']:>9,.0f} {'':>7} {'':>6} {'':>5}"
    )
    labels = {
        "base": "slawatch run, 1 worker (no QuestDB, no recovery)",
        "w2": "slawatch run -w 2 (threads)",
        "2proc": "slawatch run, 2 processes (-i 0/1)",
        "e2e": "slawatch run, QuestDB + recovery -s 5 (end to end)",
    }
    for key, label in labels.items():
        run = runs.get(key)
        if run is None:
            print(f"{label:<{w_}} {'failed':>8}")
            continue
        w = run.window
        eps = _eps(run)
        per_cpu = w.events / w.cpu_s if w.cpu_s > 0 else math.nan
        print(
            f"{label:<{w_}} {w.events:>8,} {w.seconds:>7.2f} {eps:>9,.0f} "
            f"{ratio(eps, raw.eps):>7.0%} {w.cpu_s:>6.2f} {per_cpu:>9,.0f} "
            f"{w.kafka_cpu_s:>7.2f} {w.questdb_cpu_s:>6.2f} {run.load:>5.1f}"
        )
    inproc_eps = inproc.events / inproc.wall_s if inproc.wall_s > 0 else math.nan
    inproc_cpu = inproc.events / inproc.cpu_s if inproc.cpu_s > 0 else math.nan
    print(
        f"{'in process (run_main), QuestDB + recovery, timed steps':<{w_}} {inproc.events:>8,} "
        f"{inproc.wall_s:>7.2f} {inproc_eps:>9,.0f} {ratio(inproc_eps, raw.eps):>7.0%} "
        f"{inproc.cpu_s:>6.2f} {inproc_cpu:>9,.0f} {'':>7} {'':>6} {'':>5}"
    )
    e2e_run = runs.get("e2e")
    if e2e_run is not None and e2e_run.window.records_out:
        w = e2e_run.window
        print(
            f"  end to end: {w.records_out:,} records out (since start); QuestDB server "
            f"{w.questdb_cpu_s:.1f} CPU-s ({w.questdb_cpu_s / w.records_out * 1e6:,.0f} us per "
            f"record) and Kafka broker {w.kafka_cpu_s:.1f} CPU-s over the window; monitor "
            f"{w.cpu_s / w.events * 1e6:,.0f} CPU-us per event; the worker "
            "thread's steps are timed above (where the time goes)"
        )
    _scale_out(runs)
    e2e = runs.get("e2e")
    figures: dict[str, float | int | str] = {
        "e2e_ratio": ratio(_eps(e2e), raw.eps),
        "engine_ratio": ratio(engine["eps"], raw.eps),
    }

    print()
    lat_fig = _latency_table(latency)
    figures.update(lat_fig)

    print()
    print("memory and recovery")
    rss_per_conv = math.nan
    if e2e is not None and e2e.window.rss_end_kb:
        grown = (e2e.window.rss_end_kb - e2e.window.rss_start_kb) * 1024
        rss_per_conv = grown / scale.conversations
        print(
            f"  monitor process (QuestDB + recovery): RSS "
            f"{e2e.window.rss_start_kb / 1024:,.0f} MiB "
            f"at the first heartbeat -> {e2e.window.rss_end_kb / 1024:,.0f} MiB after "
            f"{backlog.events:,} events over {scale.conversations:,} conversations: "
            f"{rss_per_conv:,.0f} B per conversation (process growth, allocator slack included)"
        )
    print(
        f"  engine alone: {engine['bytes_per_conv']:,.0f} B per open conversation "
        f"(tracemalloc, {engine['n']:,.0f} conversations; goal <= 1,024 B: "
        f"{ratio(engine['bytes_per_conv'], 1024):.2f}x)"
    )
    if recovery is not None:
        print(
            f"  kill -9 after the backlog ({scale.conversations:,} conversations, snapshots every "
            f"5 s), {recovery.downtime_events:,} events produced while down, restart: first "
            f"heartbeat after {recovery.startup_s:.1f} s, every event since taken in after "
            f"{recovery.seconds:.1f} s (goal <= 10 s: {ratio(recovery.seconds, 10):.2f}x); the "
            f"last markers' records out after {recovery.raw_seconds:.1f} s (they wait the "
            f"{LATENESS_MS / 1000:.0f} s lateness, as every event)"
        )
    figures.update(
        {
            "bytes_per_conv": round(engine["bytes_per_conv"]),
            "recovery_s": recovery.seconds if recovery is not None else math.nan,
            "raw_eps": round(raw.eps),
            "raw_tuned_eps": round(tuned.eps),
            "engine_eps": round(engine["eps"]),
            "e2e_eps": _round(_eps(e2e)),
            "base_eps": _round(_eps(runs.get("base"))),
            "w2_eps": _round(_eps(runs.get("w2"))),
            "proc2_eps": _round(_eps(runs.get("2proc"))),
            "us_per_event": _us_per_event(e2e),
            "scale2_ratio": _scale2(runs.get("2proc"), runs.get("base")),
            "rss_per_conv": _round(rss_per_conv),
            "recovery_raw_s": recovery.raw_seconds if recovery is not None else math.nan,
            "events": backlog.events,
            "conversations": scale.conversations,
            "quick": int(args.quick),
        }
    )
    return figures


def _scale_out(runs: dict[str, RunResult]) -> None:
    """Print 2 processes ÷ 1 (wall and per CPU-second) and what it means for bigger machines.

    The projection is arithmetic, not a measurement: per-CPU-second throughput of the 1-process
    end-to-end run times the cores left for the monitor, times the per-process efficiency the
    2-process run showed per CPU-second (Kafka partitions bound the processes of one group).
    """
    one, two, e2e = runs.get("base"), runs.get("2proc"), runs.get("e2e")
    if one is None or two is None or one.window.cpu_s <= 0 or two.window.cpu_s <= 0:
        return
    wall = _eps(two) / _eps(one)
    per_cpu = (two.window.events / two.window.cpu_s) / (one.window.events / one.window.cpu_s)
    print(
        f"  scale-out: 2 processes / 1 = {wall:.2f} (wall clock, this machine's "
        f"{os.cpu_count()} cores shared with Kafka and QuestDB), {per_cpu:.2f} per monitor "
        "CPU-second (the exchange between processes)"
    )
    if e2e is None or e2e.window.cpu_s <= 0:
        return
    per_core = e2e.window.events / e2e.window.cpu_s
    # Half of each machine's cores go to the monitor; the rest to Kafka, QuestDB and the OS.
    node16 = per_core * 8 * per_cpu
    cluster = node16 * 4
    print(
        f"  on paper (end to end {per_core:,.0f} events per monitor CPU-second, x{per_cpu:.2f} "
        f"per process once several run): a 16-core node giving 8 cores to 8 monitor processes "
        f"(>= 8 partitions) ~{node16:,.0f} events/s; a 4-node Bytewax cluster of them "
        f"(>= 32 partitions; Kafka and QuestDB sized apart) ~{cluster:,.0f} events/s"
    )


def _us_per_event(run: RunResult | None) -> float:
    """Monitor CPU µs per event over a run's window (the end-to-end run: issue 26's figure)."""
    if run is None or run.window.events <= 0:
        return math.nan
    return round(run.window.cpu_s / run.window.events * 1e6, 1)


def _scale2(two: RunResult | None, one: RunResult | None) -> float:
    """Events/s of two processes (`-i 0/1`) over one, on the same backlog in the same run."""
    ratio_ = _eps(two) / _eps(one)
    return ratio_ if math.isnan(ratio_) else round(ratio_, 3)


def _round(value: float) -> float:
    return value if math.isnan(value) else float(round(value))


def _latency_table(latency: LatencyRun | None) -> dict[str, float | int | str]:
    nan = math.nan
    if latency is None:
        return {"breach_p99_ms": nan, "breach_p99_load_ms": nan}
    print(
        f"breach latency (first_response {latency.target}, lateness {latency.lateness_ms} ms; "
        f"monitor = breached record on the events topic; polling = first SQL poll every "
        f"{latency.poll_s:.0f} s that returns the overdue clock; ms; p99 by nearest rank, "
        "so the max of fewer than 100 samples)"
    )
    header = (
        f"{'phase':<26} {'n':>3} {'p50 late':>8} {'p99 late':>8} {'p99 ddl':>8} "
        f"{'poll p50':>8} {'poll p99':>8} {'x poll':>7} {'missing':>7} {'false':>5}"
    )
    print(header)
    print("-" * len(header))
    figures: dict[str, float | int | str] = {}
    for phase in latency.phases:
        label = phase.name
        if phase.load_rate:
            label = f"load {phase.achieved_rate:,.0f} ev/s"
        p99_ddl = percentile(phase.after_deadline_ms, 0.99)
        poll99 = percentile(phase.polled_ms, 0.99)
        print(
            f"{label:<26} {len(phase.after_lateness_ms):>3} "
            f"{_ms(percentile(phase.after_lateness_ms, 0.5))} "
            f"{_ms(percentile(phase.after_lateness_ms, 0.99))} {_ms(p99_ddl)} "
            f"{_ms(percentile(phase.polled_ms, 0.5))} {_ms(poll99)} "
            f"{ratio(p99_ddl, poll99):>7.2f} {phase.missing:>7} {phase.false:>5}"
        )
        key = "breach_p99_ms" if not phase.load_rate else "breach_p99_load_ms"
        figures[key] = percentile(phase.after_lateness_ms, 0.99)
        suffix = "" if not phase.load_rate else "_load"
        figures[f"poll_p99{suffix}_ms"] = poll99
        figures[f"breach_vs_poll{suffix}"] = ratio(p99_ddl, poll99)
        figures[f"missing{suffix}"] = phase.missing
        figures[f"false{suffix}"] = phase.false
        if phase.load_rate:
            figures["load_eps"] = round(phase.achieved_rate)
    print(
        "  late = after deadline + lateness (the instant the monitor may call it); ddl = after "
        "the deadline; x poll = monitor p99 ddl / polling p99 (both from the deadline)"
    )
    return figures


def _ms(value: float) -> str:
    return f"{'n/a':>8}" if math.isnan(value) else f"{value:>8,.0f}"


if __name__ == "__main__":
    sys.exit(main())
