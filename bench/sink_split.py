"""QuestDB off the hot path? The in-process sink against a separate consumer of the records topic.

Usage: python bench/sink_split.py [--events 200000] [--conversations 25000] [--partitions 4]
       [--rounds 2] [--stack-dir DIR]
       python bench/sink_split.py consume --bootstrap HOST:PORT --topics T1,T2,T3 --group G
       --questdb CONF --prefix P   (the separate consumer, started by the bench)

Issue 26 item 4. One backlog of N events (monitor_bench's generator and producer) is read, in
the same run and alternately (`--rounds` times each, best kept), by:

* **A, in process**: `slawatch run` with its QuestDB sink (monitor_bench's `questdb`
  configuration: the monitor writes every record to Kafka and, through `QuestDBSink` and its
  1-s batch window, to QuestDB);
* **B, split**: `slawatch run` without QuestDB (the `base` configuration: records to Kafka
  only) plus a second process, the prototype `slawatch sink questdb` below (`consume`): its
  own consumer group on the run's events, actions and dead-letter topics, every published JSON
  record decoded back into the record it was (`record_from_json`) and written by the same
  `QuestDBWriter` (same tables, columns, batch window and `DEDUP UPSERT KEYS`); offsets are
  committed only once the writer has nothing pending (at least once: a replay after a crash
  rewrites rows with the same keys, which the tables' dedup makes harmless).

What the published record lacks, so B stores as NULL: on SLA rows (events and clocks)
`lead_status`, `outcome` and `attempts_required` (stored-only fields, docs: `SlaRecord`); on
CSAT and handle rows `channel`; and the heartbeat table gets no rows (heartbeats are log lines,
not records on Kafka).

Each run has fresh output topics and fresh tables (`split_<hex>_`). The window opens at the
monitor's first heartbeat (start-up excluded, and the events taken in before it not counted,
as in monitor_bench; in B the consumer is started, and assigned its partitions, before the
monitor) and closes when every row is visible in QuestDB: the events
table's `count()` has reached where it settles (within 0.1 %; clocks falling due by the wall
clock add a trickle) and `wal_tables()` / `materialized_views()` show every table and view
applied. CPU seconds of the monitor, of the consumer, of the Kafka broker and of the QuestDB
server over the window come from `/proc/<pid>/stat` (monitor_bench's `cpu_seconds`); `txns` is
the WAL transactions (commits) of the run's tables. With `SINK_SPLIT_PROFILE=FILE` the consumer
runs under cProfile and leaves its stats in FILE.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.monitor_bench import (  # noqa: E402
    DEFAULT_POLICIES,
    HEARTBEAT,
    IDLE_TICK,
    Backlog,
    Bench,
    MonitorFailed,
    Proc,
    bench_session,
    cpu_seconds,
    generate,
    machine,
    make_topic,
    now_ms,
    produce,
    start_monitor,
    stop_all,
)
from bench.questdb_server import _applied  # noqa: E402
from flows.connectors.questdb import QuestDBWriter, TableNames  # noqa: E402
from flows.connectors.questdb.journal import Journal  # noqa: E402
from flows.connectors.questdb.views import ViewNames  # noqa: E402
from flows.core.records import (  # noqa: E402
    ActionRecord,
    CsatRecord,
    DeadLetter,
    HandleRecord,
    Record,
    RecordEncoder,
    SlaRecord,
)
from flows.core.timefmt import parse_instant  # noqa: E402
from flows.exceptions import ConnectorError  # noqa: E402

#: Messages one `consume` call of the separate consumer takes at most.
CONSUME_BATCH = 5_000
T_CHECK = 1_795_000_000_000
#: Instant texts the consumer keeps parsed (~100 B each).
INSTANTS_KEPT = 500_000
#: Seconds the events table's count must stay put (monitor done) before the window is closed.
SETTLE_S = 3.0
POLL_S = 0.1

# -- the separate consumer: published JSON back to records ------------------------------------


class _Instants(dict[str, int]):
    """Epoch ms of published instants (`YYYY-MM-DDTHH:MM:SS.mmmZ`, `format_instant`'s form).

    Each text is parsed once and kept (a clock's instants come back in each of its records),
    up to `INSTANTS_KEPT` texts; a minute's prefix is parsed once (`parse_instant`), and the
    seconds and milliseconds are read from their fixed places. Any other form goes to
    `parse_instant`.
    """

    __slots__ = ("_minutes",)

    def __init__(self) -> None:
        super().__init__()
        self._minutes: dict[str, int] = {}

    def __missing__(self, text: str) -> int:
        if len(self) >= INSTANTS_KEPT:
            self.clear()
        if len(text) == 24 and text[19] == "." and text[23] == "Z":
            prefix = text[:17]
            minute = self._minutes.get(prefix)
            if minute is None:
                minute = self._minutes[prefix] = parse_instant(prefix + "00Z")
            ms = minute + int(text[17:19]) * 1000 + int(text[20:23])
        else:
            ms = parse_instant(text)
        self[text] = ms
        return ms

    def opt(self, text: str | None) -> int | None:
        """Return the instant `text` as epoch ms, None for None."""
        return None if text is None else self[text]


class _Unjournaled(Journal):
    """No journal: in B the uncommitted Kafka offsets are the journal (replayed on restart)."""

    def append(self, records: Sequence[Record], emitted_at_ms: int) -> None:
        """Keep nothing: the records are still on Kafka until their offsets are committed."""


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def record_from_json(d: dict[str, Any], instants: _Instants) -> Record:
    """Return the record whose published JSON (SPEC §6, `to_json_dict`) is `d`.

    The inverse of `to_json_dict` on every field the JSON carries; the stored-only fields
    (`lead_status`, `outcome`, `attempts_required` of SLA records, `channel` of CSAT and
    handle records) are not published, so they come back as None.
    """
    kind = d["type"]
    ms, opt = instants.__getitem__, instants.opt
    if kind == "sla":
        return SlaRecord(d["conversation_id"], d["cycle"], d["metric"], d["seq"], d["status"],
                         ms(d["at"]), d["policy_id"], _ms(d["target_s"]), ms(d["started_at"]),
                         opt(d["warn_at"]), opt(d["deadline_at"]), opt(d["stopped_at"]),
                         round(d["elapsed_s"] * 1000), d["breached"], d["agent_id"],
                         d["team_id"], d["priority"], d["segment"], d["lead_source"],
                         d["channel"], d["late"], d.get("attempts"), d.get("cause"),
                         budget_pct=d.get("budget_pct"))  # fmt: skip
    if kind == "action":
        return ActionRecord(d["action"], d["trigger"], d["conversation_id"], d["cycle"],
                            d["metric"], d["seq"], ms(d["at"]), d["policy_id"], d["from_agent"],
                            d["to_agent"], d["notify"], d["reason"], d.get("send"), d.get("rule"),
                            d.get("withdrawn", False))  # fmt: skip
    if kind == "csat":
        return CsatRecord(d["conversation_id"], d["cycle"], d["survey_id"], opt(d["sent_at"]),
                          opt(d["rated_at"]), d["rating"], d["agent_id"], d["team_id"],
                          d["policy_id"], d["breached"], d["recovered"], d["late"])  # fmt: skip
    if kind == "handle":
        return HandleRecord(d["conversation_id"], d["cycle"], d["agent_id"], d["team_id"],
                            ms(d["started_at"]), ms(d["ended_at"]), round(d["handle_s"] * 1000),
                            d["end"], d["late"])  # fmt: skip
    return DeadLetter(d["reason"], d["raw"], d["source"])


def consume(args: argparse.Namespace) -> None:
    """The prototype `slawatch sink questdb`: records topics -> QuestDB, at least once.

    Prints one JSON line when its partitions are assigned (`{"ready": ...}`) and one per
    commit (`{"at": ms, "messages": n, "rows": n}`); stops on SIGINT or SIGTERM, flushing and
    committing what it has.
    """
    from confluent_kafka import Consumer, KafkaException  # noqa: PLC0415

    stop: list[int] = []
    signal.signal(signal.SIGINT, lambda n, _f: stop.append(n))
    signal.signal(signal.SIGTERM, lambda n, _f: stop.append(n))
    writer = QuestDBWriter(args.questdb, prefix=args.prefix, batch_window_s=args.batch_window)
    writer._journal = _Unjournaled(None)  # noqa: SLF001 - see `_Unjournaled`
    with contextlib.suppress(ConnectorError):  # created before the first flush otherwise
        writer.ensure_tables()
    topics = args.topics.split(",")

    def assigned(_consumer: Any, partitions: list[Any]) -> None:
        print(orjson.dumps({"ready": len(partitions)}).decode(), flush=True)

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.min.bytes": 65_536,
            "fetch.wait.max.ms": 50,
        }
    )
    consumer.subscribe(topics, on_assign=assigned)
    instants = _Instants()
    loads = orjson.loads
    consumed = committed = 0
    try:
        while not stop:
            messages = consumer.consume(CONSUME_BATCH, 0.1)
            # One write per emission instant (`emitted_at` is per batch in the writer), oldest
            # first: a clock's records are on one partition, in order, so its last one still
            # comes last.
            by_emitted: dict[str, list[Record]] = {}
            for msg in messages:
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                d = loads(msg.value())  # type: ignore[arg-type]
                record = record_from_json(d, instants)
                emitted = d["emitted_at"]
                group = by_emitted.get(emitted)
                if group is None:
                    by_emitted[emitted] = [record]
                else:
                    group.append(record)
            for emitted in sorted(by_emitted):
                writer.write_batch(by_emitted[emitted], instants[emitted])
            consumed += len(messages)
            # At least once: offsets go to the group only when QuestDB has taken every row
            # consumed so far (nothing pending, neither in memory nor in the spill).
            if writer.maybe_flush() and consumed > committed:
                consumer.commit(asynchronous=False)
                committed = consumed
                line = {"at": now_ms(), "messages": committed, "rows": writer.stats.rows_written}
                print(orjson.dumps(line).decode(), flush=True)
    finally:
        writer.close()
        if consumed > committed and writer.stats.rows_pending == 0:
            consumer.commit(asynchronous=False)
        consumer.close()


# -- one measured run -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """What QuestDB showed at one poll, and the CPU seconds of every process then."""

    at: float
    rows: int
    applied: bool
    monitor_cpu: float
    consumer_cpu: float
    kafka_cpu: float
    questdb_cpu: float


@dataclass(frozen=True)
class SplitRun:
    """One configuration's window: from the monitor's first heartbeat to every row stored."""

    label: str
    events: int
    seconds: float
    monitor_s: float
    """When the monitor alone was done (every event in and applied), from the same start."""
    rows: int
    commits: int
    """WAL transactions of the run's tables (QuestDB's cost is per commit)."""
    monitor_cpu: float
    consumer_cpu: float
    kafka_cpu: float
    questdb_cpu: float
    load: float

    @property
    def eps(self) -> float:
        """Events per second, end to end."""
        return self.events / self.seconds

    @property
    def cpu(self) -> float:
        """CPU seconds of every process together."""
        return self.monitor_cpu + self.consumer_cpu + self.kafka_cpu + self.questdb_cpu

    @property
    def us_per_event(self) -> float:
        """CPU µs per event, every process together."""
        return self.cpu / self.events * 1e6


def _query_rows(conn: psycopg.Connection[Any], table: str) -> int:
    try:
        row = conn.execute(f'SELECT count() FROM "{table}"').fetchone()  # noqa: S608 - ours
    except psycopg.Error:
        return 0
    return int(row[0]) if row else 0


def _commits(conn: psycopg.Connection[Any], tables: Sequence[str]) -> int:
    rows = conn.execute("SELECT name, sequencerTxn FROM wal_tables()").fetchall()
    return sum(int(txn) for name, txn in rows if name in tables)


def _start_consumer(bench: Bench, topics: dict[str, str], prefix: str, tag: str) -> Proc:
    log = bench.workdir / f"{tag}-consumer.log"
    command = [
        sys.executable, __file__, "consume", "--bootstrap", bench.endpoints.bootstrap_servers,
        "--topics", ",".join(topics[k] for k in ("events_topic", "actions_topic",
                                                 "deadletter_topic")),
        "--group", f"split-sink-{uuid.uuid4().hex[:8]}", "--questdb",
        bench.endpoints.questdb_ilp_conf, "--prefix", prefix,
    ]  # fmt: skip
    if os.environ.get("SINK_SPLIT_PROFILE"):
        command += ["--profile", os.environ["SINK_SPLIT_PROFILE"]]
    with log.open("wb") as out:
        popen = subprocess.Popen(  # noqa: S603 - our own interpreter and file
            command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    proc = Proc(popen, log)
    deadline = time.monotonic() + 60
    while b'"ready"' not in log.read_bytes():
        if popen.poll() is not None or time.monotonic() > deadline:
            msg = f"the consumer did not get its partitions:\n{proc.tail()}"
            raise MonitorFailed(msg)
        time.sleep(0.05)
    return proc


def run_one(bench: Bench, backlog: Backlog, *, split: bool) -> SplitRun:
    """Run A (`split=False`) or B over the backlog into fresh topics and tables; measure."""
    tag = f"{'B' if split else 'A'}-{uuid.uuid4().hex[:6]}"
    topics = dict(backlog.topics)
    for key, kind, parts in (("events_topic", "events", bench.partitions),
                             ("actions_topic", "actions", bench.partitions),
                             ("deadletter_topic", "dead", 1)):  # fmt: skip
        name = f"split-{kind}-{uuid.uuid4().hex[:12]}"
        make_topic(bench.admin, name, parts)
        bench.topics.append(name)
        topics[key] = name
    prefix = f"split_{uuid.uuid4().hex[:8]}_"
    bench.prefixes.append(prefix)
    settings = {} if split else {"questdb_http": bench.endpoints.questdb_http}
    env = bench.env(topics, heartbeat_interval=HEARTBEAT, idle_tick=IDLE_TICK, **settings)
    env["SLAWATCH_TABLE_PREFIX"] = prefix
    tables = [*TableNames(prefix).all(), *ViewNames(prefix).all()]
    events_table = TableNames(prefix).events
    kafka_pid, questdb_pid = bench.stack_pids()
    consumer = _start_consumer(bench, topics, prefix, tag) if split else None
    procs = start_monitor(env, [], bench.workdir, tag)
    pids = [p.popen.pid for p in procs]
    consumer_pid = None if consumer is None else consumer.popen.pid
    samples: list[Sample] = []
    started: float | None = None
    taken_before = 0
    monitor_done: float | None = None
    deadline = time.monotonic() + bench.timeout_s
    try:
        with psycopg.connect(bench.endpoints.questdb_pg_conninfo, autocommit=True) as conn:
            while True:
                now = time.monotonic()
                for p in [*procs, *([consumer] if consumer else [])]:
                    if p.popen.poll() is not None:
                        msg = f"{p.log.name} exited with {p.popen.returncode}:\n{p.tail()}"
                        raise MonitorFailed(msg)
                if now > deadline:
                    msg = f"not stored after {bench.timeout_s:.0f} s:\n{procs[0].tail()}"
                    raise MonitorFailed(msg)
                procs[0].read_beats()
                beats = list(procs[0].beats.values())
                if started is None and beats:
                    started = now
                    taken_before = sum(int(b["events_in"]) for b in beats)
                if started is None:
                    time.sleep(0.01)
                    continue
                if monitor_done is None and all(
                    b["watermark"] is not None
                    and parse_instant(b["watermark"]) >= backlog.newest
                    and int(b["events_in"]) >= backlog.events
                    for b in beats
                ):
                    monitor_done = now
                samples.append(
                    Sample(
                        now,
                        _query_rows(conn, events_table),
                        _applied(conn, tables),
                        sum(cpu_seconds(pid) for pid in pids),
                        cpu_seconds(consumer_pid),
                        cpu_seconds(kafka_pid),
                        cpu_seconds(questdb_pid),
                    )
                )
                last = samples[-1]
                if monitor_done is not None and last.applied and last.rows > 0:
                    margin = max(2, last.rows // 1000)
                    recent = [s for s in samples if s.at >= now - SETTLE_S]
                    if now - monitor_done >= SETTLE_S and last.rows - recent[0].rows <= margin:
                        break
                time.sleep(POLL_S)
            commits = _commits(conn, TableNames(prefix).all())
        load = os.getloadavg()[0]
    finally:
        stop_all(procs)
        if consumer is not None:
            stop_all([consumer])
    first = samples[0]
    margin = max(2, last.rows // 1000)
    end = next(s for s in samples if s.applied and s.rows >= last.rows - margin)
    assert started is not None and monitor_done is not None  # noqa: S101 - the loop's exit
    return SplitRun(
        label="B: base + separate consumer" if split else "A: in-process QuestDB sink",
        events=backlog.events - taken_before,
        seconds=end.at - started,
        monitor_s=monitor_done - started,
        rows=end.rows,
        commits=commits,
        monitor_cpu=end.monitor_cpu - first.monitor_cpu,
        consumer_cpu=end.consumer_cpu - first.consumer_cpu,
        kafka_cpu=end.kafka_cpu - first.kafka_cpu,
        questdb_cpu=end.questdb_cpu - first.questdb_cpu,
        load=load,
    )


# -- main ---------------------------------------------------------------------------------------


def print_table(runs: list[SplitRun]) -> None:
    """One line per run (every round), figures of the window."""
    header = (
        f"{'configuration':<30} {'events':>8} {'seconds':>7} {'monitor s':>9} {'events/s':>8} "
        f"{'rows':>8} {'txns':>5} {'mon CPU':>7} {'cons CPU':>8} {'kafka':>6} {'qdb':>6} "
        f"{'total':>6} {'µs/ev':>6} {'load':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        print(
            f"{r.label:<30} {r.events:>8,} {r.seconds:>7.2f} {r.monitor_s:>9.2f} {r.eps:>8,.0f} "
            f"{r.rows:>8,} {r.commits:>5} {r.monitor_cpu:>7.2f} {r.consumer_cpu:>8.2f} "
            f"{r.kafka_cpu:>6.2f} {r.questdb_cpu:>6.2f} {r.cpu:>6.2f} {r.us_per_event:>6.1f} "
            f"{r.load:>5.1f}",
            flush=True,
        )


def check_decoder(count: int = 20_000) -> None:
    """Check that the consumer's decoding gives back every published field of every record.

    `bench/questdb_rows.py`'s mix (SLA records of every shape, actions, dead letters) is
    published by `RecordEncoder`, decoded by `record_from_json` and published again: the bytes
    must be the same. Prints the decoding's CPU per record.
    """
    from bench.questdb_rows import records  # noqa: PLC0415

    encoder = RecordEncoder()
    data = records(count)
    published = [encoder.encode(r, T_CHECK) for r in data]
    instants = _Instants()
    began = time.process_time()
    back = [record_from_json(orjson.loads(b), instants) for b in published]
    spent = time.process_time() - began
    again = [encoder.encode(r, T_CHECK) for r in back]
    if again != published:
        wrong = sum(a != b for a, b in zip(again, published, strict=True))
        msg = f"record_from_json changed {wrong} of {count} published records"
        raise MonitorFailed(msg)
    print(
        f"decoder : {count:,} published records (bench/questdb_rows.py's mix) decoded and "
        f"published again byte for byte; {spent / count * 1e6:.2f} µs per record (JSON + record)"
    )


def _run(bench: Bench, args: argparse.Namespace) -> None:
    _compare(bench, args)


def _compare(bench: Bench, args: argparse.Namespace) -> None:
    check_decoder()
    newest = now_ms() - 30_000
    values = generate(args.events, args.conversations, newest)
    input_topic = f"split-in-{uuid.uuid4().hex[:12]}"
    make_topic(bench.admin, input_topic, args.partitions)
    bench.topics.append(input_topic)
    took = produce(bench.endpoints.bootstrap_servers, input_topic, values)
    size = sum(len(v) for _, v in values) / len(values)
    print(
        f"inputs  : {len(values):,} events ({size:.0f} B avg) over {args.conversations:,} "
        f"conversations, {args.partitions} partitions, dated in the last 2 h, produced in "
        f"{took:.1f} s before each monitor starts; policies {args.policies.name}, "
        f"{args.shards} shards, QuestDB batch window 1 s in both"
    )
    backlog = Backlog({"input_topics": input_topic}, len(values), newest)
    del values
    print(
        "window  : monitor's first heartbeat -> every row visible in QuestDB (events count "
        "settled, WAL and views applied); 'monitor s' = when the monitor alone was done"
    )
    print()
    runs: list[SplitRun] = []
    for _ in range(args.rounds):
        for split in (False, True):
            runs.append(run_one(bench, backlog, split=split))
            print_table(runs[-1:])
    a = max((r for r in runs if not r.label.startswith("B")), key=lambda r: r.eps)
    b = max((r for r in runs if r.label.startswith("B")), key=lambda r: r.eps)
    a_cpu = min(r.us_per_event for r in runs if not r.label.startswith("B"))
    b_cpu = min(r.us_per_event for r in runs if r.label.startswith("B"))
    print()
    print(f"best of {args.rounds} each (events/s), rounds alternating A, B:")
    print_table([a, b])
    print()
    print(
        f"B/A: events/s end to end {b.eps / a.eps:.2f}x; CPU µs per event (lowest of each) "
        f"{b_cpu:.1f} / {a_cpu:.1f} = {b_cpu / a_cpu:.2f}x; monitor CPU per event "
        f"{b.monitor_cpu / b.events * 1e6:.1f} / {a.monitor_cpu / a.events * 1e6:.1f} µs; "
        f"rows {b.rows:,} / {a.rows:,}"
    )


def main() -> None:
    """Run the comparison, or (`consume ...`) the separate consumer."""
    if len(sys.argv) > 1 and sys.argv[1] == "consume":
        sub = argparse.ArgumentParser(prog="sink_split.py consume")
        sub.add_argument("--bootstrap", required=True)
        sub.add_argument("--topics", required=True, help="comma-separated records topics")
        sub.add_argument("--group", required=True)
        sub.add_argument("--questdb", required=True, help="ILP/HTTP client configuration")
        sub.add_argument("--prefix", required=True)
        sub.add_argument("--batch-window", type=float, default=1.0)
        sub.add_argument("--profile", type=Path, default=None, help="cProfile stats to here")
        options = sub.parse_args(sys.argv[2:])
        if options.profile is None:
            consume(options)
            return
        import cProfile  # noqa: PLC0415

        profiler = cProfile.Profile()
        try:
            profiler.runcall(consume, options)
        finally:
            profiler.dump_stats(options.profile)
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--conversations", type=int, default=25_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each, alternating")
    parser.add_argument("--policies", type=Path, default=DEFAULT_POLICIES)
    parser.add_argument("--stack-dir", type=Path, default=None, help="reuse this stack")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    args = parser.parse_args()
    print("slawatch: QuestDB in process (A) against a separate consumer of the records (B)")
    print(f"machine : {machine()}")
    print(f"load    : {os.getloadavg()[0]:.1f} (1-min load average at start; machine shared)")
    bench_session(args, "slawatch-sink-split-", lambda bench: _run(bench, args))


if __name__ == "__main__":
    main()
