"""The QuestDB spill outlives `kill -9`: rows spilled during an outage reach QuestDB after it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flows.connectors.questdb import QuestDBWriter, TableNames
from flows.connectors.questdb.spill import Spill
from flows.core.records import SlaRecord
from flows.devstack import Endpoints
from tests.conftest import QuestDB
from tests.integration.monitorkit import REPO
from tests.questdbkit import DAY, MINUTE, new_prefix, now_ms, sla

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

BATCHES = 200
CLOCKS = 10

CHILD = textwrap.dedent(
    """
    import socket, sys, time
    from flows.connectors.questdb import QuestDBWriter
    from tests.integration.test_questdb_spill import batch

    prefix, folder, base = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there: QuestDB is down
    writer = QuestDBWriter(
        f"http::addr=127.0.0.1:{port};", prefix=prefix, spill_dir=folder,
        retry_backoff_s=(60.0, 60.0),
    )
    for n in range(int(sys.argv[4])):
        writer.write_batch(batch(base, n), emitted_at_ms=base)
    print("spilled", writer.stats.rows_spilled, flush=True)
    time.sleep(120)
    """
)


def batch(base: int, n: int) -> list[SlaRecord]:
    """Batch `n`: ten clocks start, and half of them are met a second later."""
    start = base + n * MINUTE
    records = [sla("started", conv=f"c-{n}-{i}", started_at=start) for i in range(CLOCKS)]
    records += [
        sla("met", conv=f"c-{n}-{i}", started_at=start, at=start + 1000)
        for i in range(0, CLOCKS, 2)
    ]
    return records


def test_rows_spilled_before_a_kill_9_are_sent_by_the_next_writer(
    tmp_path: Path, stack: Endpoints, questdb: QuestDB
) -> None:
    """A process killed during a QuestDB outage leaves its rows on disk; the next one sends
    them all, once, and empties the folder."""
    names = TableNames(new_prefix())
    folder = tmp_path / "spill"
    base = now_ms() - DAY
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, names.prefix, str(folder), str(base), str(BATCHES)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().decode()
        assert line.startswith("spilled"), line
        spilled = int(line.split()[1])
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert spilled == BATCHES * (CLOCKS + CLOCKS // 2 + CLOCKS)  # events, then clock rows

    assert Spill(folder).rows == spilled
    began = time.monotonic()
    writer = QuestDBWriter(stack.questdb_ilp_conf, prefix=names.prefix, spill_dir=folder)
    assert writer.flush()
    sent_s = time.monotonic() - began
    # The dataflow re-sends its last batch after recovery: still one row per identity.
    writer.write_batch(batch(base, BATCHES - 1), emitted_at_ms=base)
    writer.close()
    for table in (names.events, names.clocks):
        questdb.wait_for_wal(table, timeout=60)
    events = questdb.query(f"SELECT count() FROM {names.events}")[0][0]  # noqa: S608
    clocks = questdb.query(
        f"SELECT status, count() FROM {names.clocks} ORDER BY status"  # noqa: S608
    )
    assert events == BATCHES * (CLOCKS + CLOCKS // 2)
    assert clocks == [("met", BATCHES * CLOCKS // 2), ("started", BATCHES * CLOCKS // 2)]
    assert list(folder.glob("*.ilp")) == []
    print(f"\nFAULTS spill_kill9 rows={spilled} resent_in_s={sent_s:.2f}")
