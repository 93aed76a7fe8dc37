"""What every dashboard and alert query costs on QuestDB, on a replayed month of traffic.

Generates a month of conversations (`tests/reportkit.py`: late events included), replays them
through the engine, writes the records with the monitor's writer (which creates the views) into
fresh tables, then runs each shared query (`flows/reports/queries.py`) 7 times and prints the
median. Uses the running local stack (`slawatch stack up`), `SLAWATCH_BENCH_STACK_DIR`, or
starts a temporary one. Run: `.venv/bin/python bench/report_queries.py [CONVERSATIONS_PER_DAY]`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.connectors.questdb import Heartbeat, QuestDBWriter, TableNames  # noqa: E402
from flows.connectors.questdb.views import ViewNames  # noqa: E402
from flows.devstack import Stack  # noqa: E402
from flows.reports.queries import QUERIES  # noqa: E402
from tests.truthkit import TZ, replay_month  # noqa: E402


def run(stack: Stack, per_day: int) -> None:
    endpoints = stack.status().endpoints
    assert endpoints is not None
    end = int(time.time() * 1000)
    started = time.perf_counter()
    records = replay_month(end, per_day=per_day)
    replayed = time.perf_counter() - started
    prefix = f"bench_{uuid.uuid4().hex[:8]}_"
    writer = QuestDBWriter(endpoints.questdb_ilp_conf, prefix=prefix, report_timezone=TZ)
    writer.ensure_tables()
    for i in range(0, len(records), 5_000):
        writer.write_batch(records[i : i + 5_000], emitted_at_ms=end)
    writer.write_heartbeat(Heartbeat(worker="0", at=int(time.time() * 1000)))
    writer.close()
    with psycopg.connect(endpoints.questdb_pg_conninfo, autocommit=True) as conn:
        clocks = 0
        for _ in range(600):
            clocks = conn.execute(f"SELECT count() FROM {prefix}clocks").fetchone()[0]  # type: ignore[index]
            view = conn.execute(
                f"SELECT sum(clocks) FROM {ViewNames(prefix).compliance_daily}"
            ).fetchone()[0]  # type: ignore[index]
            if clocks and view == clocks:
                break
            time.sleep(0.2)
        print(
            f"{per_day * 30} conversations, {len(records)} records (replayed in {replayed:.1f} s),"
            f" {clocks} clock rows"
        )
        agent = conn.execute(f"SELECT min(agent_id) FROM {prefix}clocks").fetchone()[0]  # type: ignore[index]
        week = conn.execute(
            f"SELECT max(to_str(timestamp_floor('w', to_timezone(started_at, '{TZ}')),"
            f" 'yyyy-MM-dd')) FROM {prefix}clocks"
        ).fetchone()[0]  # type: ignore[index]
        for name, query in QUERIES.items():
            sql = query.render(prefix, TZ, {"agent": str(agent), "week": str(week)})
            times = []
            for _ in range(7):
                t = time.perf_counter()
                conn.execute(sql).fetchall()
                times.append(time.perf_counter() - t)
            print(f"  {name:30s} {sorted(times)[3] * 1000:8.1f} ms")
        for view in ViewNames(prefix).all():
            conn.execute(f'DROP MATERIALIZED VIEW IF EXISTS "{view}"')
        for table in TableNames(prefix).all():
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')


def main() -> None:
    per_day = int(sys.argv[1]) if len(sys.argv) > 1 else 150
    folder = os.environ.get("SLAWATCH_BENCH_STACK_DIR")
    stack = Stack(Path(folder)) if folder else Stack()
    if stack.status().running:
        run(stack, per_day)
        return
    with tempfile.TemporaryDirectory(prefix="slawatch-bench-") as tmp:
        temporary = Stack(Path(tmp))
        temporary.up()
        try:
            run(temporary, per_day)
        finally:
            temporary.down()


if __name__ == "__main__":
    main()
