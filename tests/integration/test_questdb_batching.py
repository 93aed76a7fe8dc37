"""A batching QuestDBWriter (`batch_window_s`): fewer commits, same rows, none lost to kill -9."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.connectors.questdb import QuestDBWriter, TableNames
from flows.connectors.questdb.journal import JOURNAL_NAME
from flows.core.records import SlaRecord
from flows.devstack import Endpoints
from tests.conftest import QuestDB
from tests.integration.monitorkit import REPO
from tests.questdbkit import DAY, MINUTE, drop_tables, new_prefix, now_ms, sla

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CLOCKS = 20
WRITES = 6

CHILD = textwrap.dedent(
    """
    import sys, time
    from flows.connectors.questdb import QuestDBWriter
    from tests.integration.test_questdb_batching import lifecycle

    conf, prefix, folder, base = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    writer = QuestDBWriter(conf, prefix=prefix, spill_dir=folder, batch_window_s=600.0)
    writer.ensure_tables()
    for n, batch in enumerate(lifecycle(base)):
        writer.write_batch(batch, emitted_at_ms=base + n)
    print("held", writer.stats.rows_pending, writer.stats.rows_written, flush=True)
    time.sleep(120)
    """
)


def lifecycle(base: int) -> list[list[SlaRecord]]:
    """`WRITES` batches: clocks start, warn, and every other one is met, then breached ones
    stop; each clock's last record is in the last batches."""
    batches: list[list[SlaRecord]] = []
    for n in range(WRITES):
        batch = []
        for i in range(CLOCKS):
            start = base + i * MINUTE
            status = ("started", "warning", "met" if i % 2 else "breached", "stopped")[min(n, 3)]
            if n >= 3 and i % 2:
                continue  # met clocks are done
            at = start + (n + 1) * 1000
            if status == "stopped":
                at += n
            batch.append(sla(status, conv=f"c-{i}", started_at=start, at=at, cause=None))
        batches.append(batch)
    return batches


def expected_clocks() -> list[tuple[str, int]]:
    return [("met", CLOCKS // 2), ("stopped", CLOCKS // 2)]


@pytest.fixture
def prefix(questdb: QuestDB) -> Iterator[str]:
    """A table prefix of this test only; its tables are dropped afterwards."""
    name = new_prefix()
    yield name
    drop_tables(questdb, name)


def stored(questdb: QuestDB, names: TableNames) -> tuple[int, list[tuple[str, int]]]:
    for table in (names.events, names.clocks):
        questdb.wait_for_wal(table, timeout=60)
    events = questdb.query(f"SELECT count() FROM {names.events}")[0][0]  # noqa: S608
    clocks = questdb.query(f"SELECT status, count() FROM {names.clocks} ORDER BY status")  # noqa: S608
    return events, clocks


def test_writes_within_the_window_reach_questdb_as_one_commit_without_a_flush(
    stack: Endpoints, questdb: QuestDB, prefix: str, tmp_path: Path
) -> None:
    """Six batches written in quick succession become at most two commits per table (the first
    write goes out at once, the rest together when the window ends), with every clock's latest
    state, and nothing has to call flush: on a quiet stream the writer's thread sends them."""
    names = TableNames(prefix)
    base = now_ms() - DAY
    writer = QuestDBWriter(
        stack.questdb_ilp_conf, prefix=prefix, spill_dir=tmp_path, batch_window_s=3.0
    )
    writer.ensure_tables()
    try:
        for n, batch in enumerate(lifecycle(base)):
            writer.write_batch(batch, emitted_at_ms=base + n)
        rows = questdb.wait_for_rows(
            f"SELECT status, count() FROM {names.clocks} ORDER BY status",  # noqa: S608
            until=lambda rows: rows == expected_clocks(),
            timeout=60,
        )
        assert rows == expected_clocks()
        events, _ = stored(questdb, names)
        assert events == sum(len(b) for b in lifecycle(base))
        commits = questdb.query(
            "SELECT sequencerTxn FROM wal_tables() WHERE name IN (%s, %s)",
            (names.events, names.clocks),
        )
        assert [c for (c,) in commits] == [2, 2]
        assert writer.stats.rows_pending == 0
        assert (tmp_path / JOURNAL_NAME).read_bytes() == b""
    finally:
        writer.close()
    assert not (tmp_path / JOURNAL_NAME).exists()


def test_batches_held_when_the_process_is_killed_are_sent_by_the_next_writer(
    stack: Endpoints, questdb: QuestDB, prefix: str, tmp_path: Path
) -> None:
    """A monitor killed (-9) while its writer holds batches for the window loses none: the
    next writer on the same folder sends them, and the tables end with every record once and
    each clock's latest state."""
    names = TableNames(prefix)
    folder = tmp_path / "spill"
    base = now_ms() - DAY
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, stack.questdb_ilp_conf, prefix, str(folder), str(base)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().decode()
        assert line.startswith("held"), line
        pending, written = (int(v) for v in line.split()[1:])
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert pending > 0  # the later batches were held, not sent
    assert written == 2 * CLOCKS  # the first batch went out at once (events + clocks)

    writer = QuestDBWriter(stack.questdb_ilp_conf, prefix=prefix, spill_dir=folder)
    assert writer.flush()
    # The dataflow re-sends its last batch after recovery: still one row per identity.
    writer.write_batch(lifecycle(base)[-1], emitted_at_ms=base)
    writer.close()
    events, clocks = stored(questdb, names)
    assert events == sum(len(b) for b in lifecycle(base))
    assert clocks == expected_clocks()
    assert not (folder / JOURNAL_NAME).exists()
