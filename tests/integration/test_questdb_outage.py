"""QuestDB stops for 30 s while the writer keeps writing: afterwards every row is there, once.

The test runs its own QuestDB (same jar as the session stack) so that stopping it does not
disturb the other tests.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from flows.connectors.questdb import Heartbeat, QuestDBWriter, TableNames
from flows.core.records import DeadLetter, Record, SlaRecord
from flows.devstack import Endpoints, Stack
from flows.devstack.jars import require_java
from flows.devstack.services import QUESTDB_JAVA_OPTS, render_questdb_config
from tests.conftest import QuestDB
from tests.questdbkit import DAY, MINUTE, now_ms, sla

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

OUTAGE_S = 30.0
CLOCKS_PER_BATCH = 20


class DedicatedQuestDB:
    """A QuestDB process of one test, which can be stopped and started on the same data."""

    def __init__(self, root: Path, jar: Path) -> None:
        self.root = root
        self.jar = jar
        self.java = require_java()
        self.endpoints = Endpoints.allocate()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.root / "questdb.log"

    def start(self, timeout: float = 180.0) -> None:
        (self.root / "conf").mkdir(parents=True, exist_ok=True)
        (self.root / "conf" / "server.conf").write_text(
            render_questdb_config(self.endpoints), encoding="utf-8"
        )
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [self.java, *QUESTDB_JAVA_OPTS, "-p", str(self.jar), "-m",
             "io.questdb/io.questdb.ServerMain", "-d", str(self.root)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                message = f"dedicated QuestDB did not come up; log tail:\n{tail}"
                raise AssertionError(message)
            time.sleep(0.25)

    def answers(self) -> bool:
        url = f"http://{self.endpoints.questdb_http}/exec?query=select%201"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(json.loads(response.read()).get("dataset") == [[1]])
        except (OSError, ValueError):
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture
def dedicated_questdb(local_stack: Stack, tmp_path: Path) -> Iterator[DedicatedQuestDB]:
    """A private QuestDB for this test, stopped at its end."""
    server = DedicatedQuestDB(tmp_path / "questdb", local_stack.fetch().questdb_jar)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Workload:
    """Batches in which new clocks start and the previous batch's clocks are met."""

    def __init__(self) -> None:
        self.base = now_ms() - DAY
        self.batches = 0
        self.sla_records = 0
        self.dead_letters = 0
        self.heartbeats = 0
        self._previous: list[SlaRecord] = []

    def next_batch(self) -> list[Record]:
        n = self.batches
        self.batches += 1
        start = self.base + n * MINUTE
        batch: list[Record] = [
            sla("met", conv=rec.conversation_id, started_at=rec.started_at, at=start)
            for rec in self._previous
        ]
        self._previous = [
            sla("started", conv=f"c-{n}-{i}", started_at=start + i) for i in range(CLOCKS_PER_BATCH)
        ]
        batch += self._previous
        batch.append(DeadLetter("bad json", "{", f"wa.events/0/{n}"))
        self.sla_records += len(batch) - 1
        self.dead_letters += 1
        return batch

    def heartbeat(self) -> Heartbeat:
        self.heartbeats += 1
        return Heartbeat("0", at=self.base + self.heartbeats * 1000, events_in=self.heartbeats)


def test_no_row_is_lost_or_doubled_when_questdb_stops_for_30_s(
    dedicated_questdb: DedicatedQuestDB, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows written while QuestDB is stopped arrive after it restarts; none twice, none lost."""
    server = dedicated_questdb
    prefix = "sla_"
    writer = QuestDBWriter(
        server.endpoints.questdb_ilp_conf, prefix=prefix, retry_backoff_s=(0.2, 2.0)
    )
    writer.ensure_tables()
    work = Workload()
    caplog.set_level(logging.INFO, logger="flows.connectors.questdb")

    for _ in range(10):
        writer.write_batch(work.next_batch(), emitted_at_ms=now_ms())
        writer.write_heartbeat(work.heartbeat())
    assert writer.stats.rows_pending == 0

    server.stop()
    stopped = time.monotonic()
    slowest = 0.0
    while time.monotonic() - stopped < OUTAGE_S:
        began = time.monotonic()
        writer.write_batch(work.next_batch(), emitted_at_ms=now_ms())
        writer.write_heartbeat(work.heartbeat())
        writer.maybe_flush()
        slowest = max(slowest, time.monotonic() - began)
        time.sleep(0.25)
    during = writer.stats
    assert during.rows_pending > 0
    assert during.failing_since is not None
    assert slowest < 2.5, f"a write blocked the caller for {slowest:.1f} s"
    assert "cannot take rows" in caplog.text

    server.start()
    for _ in range(5):
        writer.write_batch(work.next_batch(), emitted_at_ms=now_ms())
        writer.write_heartbeat(work.heartbeat())
    deadline = time.monotonic() + 60
    while not writer.flush():
        assert time.monotonic() < deadline, f"rows still pending: {writer.stats}"
        time.sleep(0.5)
    after = writer.stats
    writer.close()
    assert after.rows_dropped == 0
    assert after.rows_rejected == 0
    assert "takes rows again" in caplog.text

    db = QuestDB(server.endpoints)
    names = TableNames(prefix)
    for table in names.all():
        db.wait_for_wal(table, timeout=60)
    clocks = work.batches * CLOCKS_PER_BATCH

    def count(sql: str) -> Any:
        return db.query(sql)[0][0]

    assert count(f"SELECT count() FROM {names.events}") == work.sla_records
    assert count(
        f"SELECT count() FROM (SELECT DISTINCT at, conversation_id, cycle, metric, seq, status"
        f" FROM {names.events})"
    ) == work.sla_records  # fmt: skip
    assert count(f"SELECT count() FROM {names.clocks}") == clocks
    assert db.query(f"SELECT status, count() FROM {names.clocks} ORDER BY status") == [
        ("met", clocks - CLOCKS_PER_BATCH),
        ("started", CLOCKS_PER_BATCH),
    ]
    assert count(f"SELECT count() FROM {names.deadletters}") == work.dead_letters
    assert count(f"SELECT count() FROM {names.heartbeat}") == work.heartbeats
    print(
        f"outage {OUTAGE_S:.0f} s: {work.batches} batches, {after.rows_written} rows written, "
        f"{during.rows_pending} pending at the end of the outage, {after.failures} failed "
        f"attempts, slowest write {slowest * 1000:.0f} ms"
    )
