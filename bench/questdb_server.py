"""QuestDB server CPU per record of the monitor's writes, by shape of the writes and tables.

Usage: python bench/questdb_server.py [--quick] [--events 100000] [--conversations 33000]
       [--rounds 2] [--shapes today,bigger,...] [--stack-dir DIR]

Starts its own QuestDB (and Kafka, idle) with `flows.devstack.Stack` in a temporary folder on
free ports, stopped at the end (`--stack-dir` reuses a stack). It builds a realistic record
stream with the real engine: SPEC events over generated conversations
(`bench.monitor_bench.generate`: opened, customer messages, assignments, replies on time, late
or never, more turns, resolutions; dated in the last two hours), decoded and run through
`Engine.process` in fetches of 5,000 events with the watermark one lateness (5 s) behind, as
`slawatch run` does. Each fetch's records are one `write_batch` of the real `QuestDBWriter` (the
sink gets one batch per fetch on a backlog), into fresh tables. Shapes change the writes (several
fetches per request, a fetch cut into tenths, writes paced at a live or catch-up event rate, the
writer's `batch_window_s`) or the tables (events or clocks only, the clocks' designated
timestamp `updated_at` instead of `started_at`, no DEDUP, no views, hourly partitions); see
`SHAPES`, and docs/PERFORMANCE.md for a run and what it showed.

For each shape it measures, from `/proc/<pid>/stat`:

* **server CPU µs per record**: the QuestDB JVM's CPU from the first write until QuestDB has
  applied every WAL transaction of the tables (`wal_tables()`: `writerTxn >= sequencerTxn`) and
  refreshed the materialized views, minus its idle CPU over the same time (measured after a
  warm-up write, before the rounds);
* **client CPU µs per record**: this process's CPU over the writes and the final flush (the
  writer's daemon thread included);
* the tables' commits (`wal_tx_count`) and write amplification (`table_write_amp_p50`).

Shapes run in rounds, alternating (round 1: every shape, round 2: every shape, ...), on the same
records; each figure is the median over the rounds and its ratio is to `today` (the writer as
the monitor used it on a backlog) of the same run. `--quick` runs 20k events, one round, six
shapes (about a minute with the stack's start).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.monitor_bench import cpu_seconds, generate, machine, stack_for  # noqa: E402
from flows.connectors.questdb import QuestDBWriter, TableNames  # noqa: E402
from flows.connectors.questdb.rows import _clock_rows, _event_rows  # noqa: E402
from flows.connectors.questdb.schema import create_table_statements  # noqa: E402
from flows.connectors.questdb.views import ViewNames, create_view_statements  # noqa: E402
from flows.core.decode import decode_event  # noqa: E402
from flows.core.engine import Engine  # noqa: E402
from flows.core.events import Event, Rejected  # noqa: E402
from flows.core.policies import load_policies  # noqa: E402
from flows.core.records import Record, SlaRecord  # noqa: E402
from flows.devstack import QUESTDB_VERSION, Endpoints  # noqa: E402

FETCH = 5_000
LATENESS_MS = 5_000
POLICIES = REPO / "examples" / "policies.yaml"


# -- the record stream ------------------------------------------------------------------------


def record_batches(events: int, conversations: int) -> list[list[Record]]:
    """Run the engine over generated conversations; one list of records per 5,000-event fetch."""
    end_ms = time.time_ns() // 1_000_000 - 60_000
    decoded: list[Event] = []
    for _key, raw in generate(events, conversations, end_ms):
        event = decode_event(raw)
        if not isinstance(event, Rejected):
            decoded.append(event)
    engine = Engine(load_policies(POLICIES))
    batches: list[list[Record]] = []
    for i in range(0, len(decoded), FETCH):
        fetch = decoded[i : i + FETCH]
        batches.append(list(engine.process(fetch, fetch[-1].occurred_at - LATENESS_MS)))
    batches.append(list(engine.process([], end_ms + 10 * LATENESS_MS)))
    return [b for b in batches if b]


# -- shapes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """One way of writing the same records.

    Attributes:
        name: Short label.
        what: One line for the table.
        fetches_per_write: Fetches merged into one `write_batch` (one HTTP request each); below
            1, each fetch is cut into `1 / fetches_per_write` writes (a live monitor's small
            fetches).
        chunk_rows: The writer's `chunk_rows`.
        tables: Which SLA tables get rows: `events`, `clocks` or both.
        views: Whether the materialized views over the clocks are created.
        ddl: Rewrites a `CREATE TABLE` statement (table, sql) -> sql; None keeps the writer's.
        clock_ts: `started_at` (the writer's) or `updated_at` as the clocks' designated timestamp.
        pace_eps: Writes are spaced as if events arrived at this rate (None: back to back, a
            backlog read as fast as the writer goes).
        window_s: The writer's `batch_window_s` (0: one request per `write_batch`).
        view_refresh: A `REFRESH` clause for the views (e.g. `REFRESH EVERY 1m`); empty keeps
            the writer's `REFRESH IMMEDIATE`. A timer view is refreshed once after the last
            write (`REFRESH MATERIALIZED VIEW ... INCREMENTAL`), as its timer would within a
            minute: the shapes write for less than one.
    """

    name: str
    what: str
    fetches_per_write: float = 1
    chunk_rows: int = 20_000
    tables: tuple[str, ...] = ("events", "clocks")
    views: bool = True
    ddl: Callable[[str, str, TableNames], str] | None = None
    clock_ts: str = "started_at"
    pace_eps: float | None = None
    window_s: float = 0.0
    view_refresh: str = ""


def _no_dedup(table: str, sql: str, names: TableNames) -> str:
    head, _, _ = sql.partition(" DEDUP UPSERT KEYS")
    return head


def _clocks_by_updated_at(table: str, sql: str, names: TableNames) -> str:
    if table != names.clocks:
        return sql
    sql = sql.replace("TIMESTAMP(started_at)", "TIMESTAMP(updated_at)")
    return sql.replace("KEYS(started_at,", "KEYS(updated_at,")


def _clocks_by_hour(table: str, sql: str, names: TableNames) -> str:
    if table != names.clocks:
        return sql
    return sql.replace("PARTITION BY DAY", "PARTITION BY HOUR")


SHAPES: dict[str, Shape] = {
    s.name: s
    for s in (
        Shape("today", "the monitor's writer: 1 request per fetch, events + clocks + views"),
        Shape("no_views", "today without the materialized views", views=False),
        Shape(
            "bigger",
            "5 fetches per request (chunk_rows 200k)",
            fetches_per_write=5,
            chunk_rows=200_000,
        ),
        Shape(
            "small",
            "live-like: 500-event writes (1 request per tenth of a fetch)",
            fetches_per_write=0.1,
        ),
        Shape(
            "small_noview",
            "500-event writes, no views",
            fetches_per_write=0.1,
            views=False,
        ),
        Shape(
            "small_in_order",
            "500-event writes, clocks by updated_at (no O3), no views",
            fetches_per_write=0.1,
            views=False,
            ddl=_clocks_by_updated_at,
            clock_ts="updated_at",
        ),
        Shape(
            "live",
            "500-event writes at 2,500 events/s (5 requests/s), as today",
            fetches_per_write=0.1,
            pace_eps=2_500,
        ),
        Shape(
            "live_window",
            "the same with batch_window_s=1 (the fix: <= 1 request/s)",
            fetches_per_write=0.1,
            pace_eps=2_500,
            window_s=1.0,
        ),
        Shape(
            "live_window_noview",
            "the same, no views",
            fetches_per_write=0.1,
            pace_eps=2_500,
            window_s=1.0,
            views=False,
        ),
        Shape(
            "live_window_timer",
            "the same, views refreshed on a 1-minute timer (REFRESH EVERY 1m)",
            fetches_per_write=0.1,
            pace_eps=2_500,
            window_s=1.0,
            view_refresh="REFRESH EVERY 1m",
        ),
        Shape(
            "live_window5",
            "the same with batch_window_s=5",
            fetches_per_write=0.1,
            pace_eps=2_500,
            window_s=5.0,
        ),
        Shape(
            "catchup",
            "5,000-event writes at 7,500 events/s (the end-to-end rate), as today",
            pace_eps=7_500,
        ),
        Shape(
            "catchup_window",
            "the same with batch_window_s=1",
            pace_eps=7_500,
            window_s=1.0,
        ),
        Shape("events", "events table only", tables=("events",), views=False),
        Shape("clocks", "clocks table only, with its views", tables=("clocks",)),
        Shape("clocks_noview", "clocks table only, no views", tables=("clocks",), views=False),
        Shape(
            "clocks_in_order",
            "clocks only, designated ts updated_at (no O3), no views",
            tables=("clocks",),
            views=False,
            ddl=_clocks_by_updated_at,
            clock_ts="updated_at",
        ),
        Shape("no_dedup", "today without DEDUP UPSERT KEYS", ddl=_no_dedup),
        Shape("clocks_hour", "today, clocks PARTITION BY HOUR", ddl=_clocks_by_hour),
    )
}
DEFAULT_SHAPES = tuple(SHAPES)
QUICK_SHAPES = ("today", "live", "live_window", "bigger", "events", "clocks_noview")


def _clock_rows_by_updated_at(buffer: Any, table: str, clocks: Iterable[SlaRecord]) -> None:
    """`rows._clock_rows` with `updated_at` as the designated timestamp (`started_at` a column)."""
    from questdb import TimestampMicros, TimestampNanos  # noqa: PLC0415

    for r in clocks:
        buffer.row(
            table,
            symbols={"metric": r.metric, "status": r.status, "cause": r.cause,
                     "agent_id": r.agent_id, "team_id": r.team_id, "priority": r.priority,
                     "segment": r.segment, "lead_source": r.lead_source, "channel": r.channel,
                     "policy_id": r.policy_id},
            columns={"conversation_id": r.conversation_id, "cycle": r.cycle, "seq": r.seq,
                     "open": r.status not in ("met", "stopped", "closed", "cancelled"),
                     "breached": r.breached,
                     "warn_at": None if r.warn_at is None else TimestampMicros(r.warn_at * 1000),
                     "deadline_at": None if r.deadline_at is None
                     else TimestampMicros(r.deadline_at * 1000),
                     "stopped_at": None if r.stopped_at is None
                     else TimestampMicros(r.stopped_at * 1000),
                     "elapsed_s": r.elapsed / 1000,
                     "target_s": None if r.target is None else r.target / 1000,
                     "attempts": r.attempts,
                     "started_at": TimestampMicros(r.started_at * 1000)},
            at=TimestampNanos(r.at * 1_000_000),
        )  # fmt: skip


class ShapedWriter(QuestDBWriter):
    """The real writer, with a shape's tables, views and row filters."""

    def __init__(self, conf: str, shape: Shape, **options: Any) -> None:
        super().__init__(
            conf, chunk_rows=shape.chunk_rows, batch_window_s=shape.window_s, **options
        )
        self.shape = shape

    def ensure_tables(self) -> None:
        """Create the shape's tables (and views), as `QuestDBWriter.ensure_tables` would."""
        shape = self.shape
        for table, sql in create_table_statements(self.tables, self.ttl_days):
            self._http.execute(sql if shape.ddl is None else shape.ddl(table, sql, self.tables))
        if shape.views:
            refresh = f" {shape.view_refresh}" if shape.view_refresh else ""
            for view, sql in create_view_statements(self.tables, self.report_timezone):
                self._http.execute(sql.replace(f" {view} AS (", f" {view}{refresh} AS (", 1))
        self._tables_ready = True

    def _seal(self, chunk: Any) -> None:
        if chunk.sealed:
            return
        tables = self.shape.tables
        if "events" in tables:
            events = zip(chunk.events.values(), chunk.emitted.values(), strict=True)
            _event_rows(chunk.buffer, self.tables.events, events)
            chunk.rows += len(chunk.events)
        if "clocks" in tables:
            rows = _clock_rows if self.shape.clock_ts == "started_at" else _clock_rows_by_updated_at
            rows(chunk.buffer, self.tables.clocks, chunk.clocks.values())
            chunk.rows += len(chunk.clocks)
        chunk.events = {}
        chunk.emitted = {}
        chunk.clocks = {}
        chunk.sealed = True


# -- measuring --------------------------------------------------------------------------------


@dataclass(slots=True)
class Run:
    """One shape's measurement in one round."""

    records: int
    rows: int
    client_s: float
    server_s: float
    wall_s: float
    txns: dict[str, int] = field(default_factory=dict)
    write_amp: dict[str, float] = field(default_factory=dict)


def _applied(conn: psycopg.Connection[Any], tables: Sequence[str]) -> bool:
    rows = conn.execute(
        "SELECT name, writerTxn, sequencerTxn, suspended FROM wal_tables()"
    ).fetchall()
    seen = {name: (w, s, suspended) for name, w, s, suspended in rows}
    for table in tables:
        if table not in seen:
            continue
        w, s, suspended = seen[table]
        if suspended:
            msg = f"WAL apply of {table} is suspended"
            raise RuntimeError(msg)
        if w < s:
            return False
    views = conn.execute(
        "SELECT view_name, view_status, refresh_base_table_txn, base_table_txn "
        "FROM materialized_views()"
    ).fetchall()
    for name, status, refreshed, base in views:
        if name in tables and (status == "refreshing" or refreshed < base):
            return False
    return True


def measure(
    endpoints: Endpoints,
    questdb_pid: int,
    idle_rate: float,
    shape: Shape,
    batches: list[list[Record]],
) -> Run:
    """Write `batches` in `shape` into fresh tables; CPU until QuestDB has applied them."""
    prefix = f"qs_{uuid.uuid4().hex[:8]}_"
    names = TableNames(prefix)
    writer = ShapedWriter(endpoints.questdb_ilp_conf, shape, prefix=prefix)
    writer.ensure_tables()
    views = ViewNames(prefix).all()
    tables = [*names.all(), *views]
    records = sum(len(b) for b in batches)
    step = shape.fetches_per_write
    emitted = time.time_ns() // 1_000_000
    with psycopg.connect(endpoints.questdb_pg_conninfo, autocommit=True) as conn:
        while not _applied(conn, tables):  # the views' first (empty) refresh
            time.sleep(0.05)
        time.sleep(0.3)
        server0 = cpu_seconds(questdb_pid)
        wall0 = time.perf_counter()
        client0 = time.process_time()
        events_done = 0.0
        per_write = FETCH * step
        for n, merged in enumerate(_writes(batches, step)):
            if shape.pace_eps is not None:
                due = wall0 + events_done / shape.pace_eps
                time.sleep(max(0.0, due - time.perf_counter()))
                events_done += per_write
            writer.write_batch(merged, emitted + n)
            writer.maybe_flush()  # as the monitor's sink does after each batch
        writer.flush()
        client = time.process_time() - client0
        rows = writer.stats.rows_written
        writer.close()
        if shape.view_refresh and shape.views:
            for view in views:
                conn.execute(f"REFRESH MATERIALIZED VIEW {view} INCREMENTAL")
        while not _applied(conn, tables):
            time.sleep(0.02)
        wall = time.perf_counter() - wall0
        server = cpu_seconds(questdb_pid) - server0 - idle_rate * wall
        stats = conn.execute(
            "SELECT table_name, wal_tx_count, table_write_amp_p50 FROM tables() "
            "WHERE table_name IN (%s, %s)",
            (names.events, names.clocks),
        ).fetchall()
        run = Run(records, rows, client, server, wall)
        for table, txns, amp in stats:
            key = "events" if table == names.events else "clocks"
            run.txns[key] = txns
            run.write_amp[key] = amp
        for view in views:
            conn.execute(f"DROP MATERIALIZED VIEW IF EXISTS {view}")
        for table in names.all():
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    return run


def _writes(batches: list[list[Record]], step: float) -> Iterable[list[Record]]:
    """The record lists of each `write_batch`: `step` fetches merged, or a fetch cut."""
    if step >= 1:
        whole = int(step)
        for i in range(0, len(batches), whole):
            yield [r for b in batches[i : i + whole] for r in b]
        return
    parts = round(1 / step)
    for batch in batches:
        size = -(-len(batch) // parts)
        for i in range(0, len(batch), size):
            yield batch[i : i + size]


def idle_cpu_rate(pid: int, seconds: float = 3.0) -> float:
    """QuestDB's CPU seconds per second while nothing is written."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds


# -- main -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20k events, one round")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--conversations", type=int, default=33_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--shapes", default=None, help="comma-separated; default: all")
    parser.add_argument("--stack-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.conversations, args.rounds = 20_000, 6_600, 1
    chosen = args.shapes or ",".join(QUICK_SHAPES if args.quick else DEFAULT_SHAPES)
    shapes = [SHAPES[name] for name in chosen.split(",")]
    if shapes[0].name != "today":
        shapes.insert(0, SHAPES["today"])

    began = time.perf_counter()
    batches = record_batches(args.events, args.conversations)
    records = sum(len(b) for b in batches)
    sla = sum(isinstance(r, SlaRecord) for b in batches for r in b)
    print("slawatch QuestDB server cost per record (bench/questdb_server.py)")
    print(f"machine : {machine()}; load {os.getloadavg()[0]:.1f}")
    print(f"QuestDB : {QUESTDB_VERSION}, devstack (-Xmx512m, 2 shared workers)")
    print(
        f"inputs  : {args.events:,} events over {args.conversations:,} conversations -> "
        f"{records:,} records ({sla:,} SLA) in {len(batches)} fetches of {FETCH:,} events; "
        f"{args.rounds} round(s), shapes alternating"
    )
    with tempfile.TemporaryDirectory(prefix="slawatch-qdbserver-") as folder:
        with stack_for(args.stack_dir, Path(folder)) as (stack, endpoints):
            pid = stack.status(probe=False).questdb_pid
            assert pid is not None
            results = run_rounds(endpoints, pid, shapes, batches, args.rounds)
    print_table(shapes, results)
    print(f"took {time.perf_counter() - began:.0f} s")
    return 0


def run_rounds(
    endpoints: Endpoints,
    pid: int,
    shapes: Sequence[Shape],
    batches: list[list[Record]],
    rounds: int,
) -> dict[str, list[Run]]:
    """Warm up, measure QuestDB's idle CPU, then run every shape once per round, alternating."""
    # Warm the JVM up (JIT) on a slice, not counted; then its idle CPU, once settled.
    measure(endpoints, pid, 0.0, SHAPES["today"], batches[: max(2, len(batches) // 5)])
    time.sleep(2.0)
    idle = idle_cpu_rate(pid, 5.0)
    print(f"idle    : QuestDB {idle * 1000:.1f} ms CPU per s (subtracted)", flush=True)
    results: dict[str, list[Run]] = {s.name: [] for s in shapes}
    for round_no in range(rounds):
        for shape in shapes:
            run = measure(endpoints, pid, idle, shape, batches)
            results[shape.name].append(run)
            print(
                f"  round {round_no + 1} {shape.name:<16} server "
                f"{run.server_s * 1e6 / run.records:7.1f} µs/rec, client "
                f"{run.client_s * 1e6 / run.records:6.1f} µs/rec, rows {run.rows:,}, "
                f"txns {run.txns}, write amp {run.write_amp}",
                flush=True,
            )
    after = idle_cpu_rate(pid, 5.0)
    print(f"idle    : QuestDB {after * 1000:.1f} ms CPU per s at the end (not used)")
    return results


def session_figures(endpoints: Endpoints, pid: int) -> dict[str, float | int | str]:
    """`--quick`'s shapes on a running stack (for `python -m bench`); print the table.

    Returns:
        RESULT figures: server µs per record today (`qdb_today_us`), at a live rate as the
        writer was (`qdb_live_us`) and with the sink's batch window (`qdb_window_us`), and the
        window's ratio to the live figure (`qdb_window_ratio`).
    """
    batches = record_batches(20_000, 6_600)
    shapes = [SHAPES[name] for name in QUICK_SHAPES]
    records = sum(len(b) for b in batches)
    print(
        f"QuestDB server cost (bench/questdb_server.py --quick shapes): {records:,} records "
        "from 20,000 events, one round"
    )
    results = run_rounds(endpoints, pid, shapes, batches, 1)
    print_table(shapes, results)

    def server(name: str) -> float:
        run = results[name][0]
        return run.server_s * 1e6 / run.records

    return {
        "qdb_today_us": server("today"),
        "qdb_live_us": server("live"),
        "qdb_window_us": server("live_window"),
        "qdb_window_ratio": server("live_window") / server("live"),
    }


def print_table(shapes: Sequence[Shape], results: dict[str, list[Run]]) -> None:
    """Print each shape's medians and its ratio to `today`."""

    def per_record(runs: list[Run], attr: str) -> float:
        return float(statistics.median(getattr(r, attr) * 1e6 / r.records for r in runs))

    base_server = per_record(results["today"], "server_s")
    base_client = per_record(results["today"], "client_s")
    header = (
        f"{'shape':<16} {'server µs/rec':>13} {'x today':>7} {'client µs/rec':>13} "
        f"{'x today':>7} {'rows/rec':>8} {'txns ev/cl':>10} {'wamp ev/cl':>10}  what"
    )
    print()
    print(header)
    print("-" * len(header))
    for shape in shapes:
        runs = results[shape.name]
        server = per_record(runs, "server_s")
        client = per_record(runs, "client_s")
        last = runs[-1]
        txns = f"{last.txns.get('events', '-')}/{last.txns.get('clocks', '-')}"
        amp = "/".join(
            f"{last.write_amp[k]:.1f}" if k in last.write_amp else "-" for k in ("events", "clocks")
        )
        print(
            f"{shape.name:<16} {server:>13.1f} {server / base_server:>7.2f} {client:>13.1f} "
            f"{client / base_client:>7.2f} {last.rows / last.records:>8.2f} {txns:>10} "
            f"{amp:>10}  {shape.what}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
