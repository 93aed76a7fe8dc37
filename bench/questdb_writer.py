"""How fast QuestDBWriter stores SLA records on the local QuestDB.

Writes 3 records per clock (started, warning, met) in batches of 5,000 records into fresh tables,
then waits until QuestDB has applied them. Uses the running local stack (`slawatch stack up`), the
one in `SLAWATCH_BENCH_STACK_DIR`, or starts a temporary one. Prints the writer's CPU per record
(this process, `write_batch` and close) besides the rates. With `HEAP` (e.g. 3000000), that many
small objects are kept alive first, as the engine's state is in the monitor, so that the
garbage collector's passes cost what they cost there.
Run: `.venv/bin/python bench/questdb_writer.py [RECORDS] [HEAP]`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from flows.connectors.questdb import QuestDBWriter, TableNames
from flows.core.records import SlaRecord
from flows.devstack import Stack

BATCH = 5000
T0 = 1_795_000_000_000


def records(count: int) -> list[SlaRecord]:
    out: list[SlaRecord] = []
    for i in range(count // 3):
        start = T0 + i * 50
        for status, at in (
            ("started", start),
            ("warning", start + 240_000),
            ("met", start + 250_000),
        ):
            out.append(
                SlaRecord(f"c-{i}", 1, "first_response", 1, status, at, "default", 300_000, start,
                          start + 240_000, start + 300_000, at if status == "met" else None,
                          at - start, False, f"a-{i % 200}", f"t-{i % 8}", "P2", None, None,
                          "whatsapp")
            )  # fmt: skip
    return out


def run(stack: Stack, count: int) -> None:
    endpoints = stack.status(probe=False).endpoints
    assert endpoints is not None
    prefix = f"bench_{uuid.uuid4().hex[:8]}_"
    names = TableNames(prefix)
    writer = QuestDBWriter(endpoints.questdb_ilp_conf, prefix=prefix)
    writer.ensure_tables()
    data = records(count)
    began = time.perf_counter()
    cpu0 = time.process_time()
    for i in range(0, len(data), BATCH):
        writer.write_batch(data[i : i + BATCH], emitted_at_ms=T0)
    sent = time.perf_counter() - began
    rows = writer.stats.rows_written
    writer.close()
    cpu = time.process_time() - cpu0
    with psycopg.connect(endpoints.questdb_pg_conninfo, autocommit=True) as conn:
        sql = "SELECT writerTxn >= sequencerTxn FROM wal_tables() WHERE name IN (%s, %s)"
        while not all(r[0] for r in conn.execute(sql, (names.events, names.clocks)).fetchall()):
            time.sleep(0.05)
        applied = time.perf_counter() - began
        (stored,) = conn.execute(f"SELECT count() FROM {names.events}").fetchone() or (0,)
        for table in names.all():
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    print(
        f"{len(data)} records -> {rows} rows ({stored} events): sent in {sent:.2f} s "
        f"= {len(data) / sent:,.0f} records/s, {rows / sent:,.0f} rows/s; "
        f"applied by QuestDB after {applied:.2f} s = {rows / applied:,.0f} rows/s; "
        f"writer CPU {cpu * 1e6 / len(data):.2f} µs/record"
    )


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    heap = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    kept = [[i] for i in range(heap)]  # noqa: F841 - alive until the end
    folder = os.environ.get("SLAWATCH_BENCH_STACK_DIR")
    stack = Stack(Path(folder)) if folder else Stack()
    if stack.status().running:
        run(stack, count)
        return
    with tempfile.TemporaryDirectory(prefix="slawatch-bench-") as folder:
        temporary = Stack(Path(folder))
        temporary.up()
        try:
            run(temporary, count)
        finally:
            temporary.down()


if __name__ == "__main__":
    main()
