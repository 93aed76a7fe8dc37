"""The journal of held QuestDB batches: records come back as written, a torn line is skipped."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from flows.connectors.questdb.journal import JOURNAL_NAME, Journal
from flows.connectors.questdb.sink import QuestDBSink
from flows.core.records import ActionRecord, DeadLetter, Record
from tests.questdbkit import sla

pytestmark = pytest.mark.unit

T0 = 1_795_000_000_000


def batch() -> list[Record]:
    return [
        sla("breached", started_at=T0, at=T0 + 300_000, cause="agent_idle", attempts=2),
        ActionRecord("notify", "breached", "c-1", 1, "first_response", 1, T0 + 300_000,
                     "default", "a-1", None, "team-lead", "first_response breached: idle"),
        DeadLetter("bad json \udc80", '{"x":', "wa.events/0@12"),
    ]  # fmt: skip


def test_batches_read_back_equal_and_in_order(tmp_path: Path) -> None:
    """Every kind of record comes back equal to what was journaled, batch by batch, in order."""
    journal = Journal(tmp_path / "held.jsonl")
    journal.append(batch(), T0)
    journal.append(batch()[:1], T0 + 1)
    assert journal
    assert Journal(tmp_path / "held.jsonl").load() == [(T0, batch()), (T0 + 1, batch()[:1])]


def test_a_line_cut_short_by_a_crash_is_skipped_and_the_rest_kept(tmp_path: Path) -> None:
    """A torn last line (the process died while writing it) is skipped; earlier batches stay."""
    path = tmp_path / "held.jsonl"
    journal = Journal(path)
    journal.append(batch(), T0)
    with path.open("ab") as out:
        out.write(b'[1795000000001,[["s",["c-1",1')
    assert Journal(path).load() == [(T0, batch())]


def test_cleared_journal_holds_nothing_and_is_removed(tmp_path: Path) -> None:
    """After clear nothing is replayed, and remove deletes the empty file."""
    path = tmp_path / "held.jsonl"
    journal = Journal(path)
    journal.append(batch(), T0)
    journal.clear()
    assert not journal
    assert Journal(path).load() == []
    journal.remove()
    assert not path.exists()


def test_a_worker_folder_holding_only_held_batches_is_reported_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Held batches of a worker this run lacks are kept and logged, as spilled rows are."""
    orphan = tmp_path / "worker-3"
    orphan.mkdir()
    Journal(orphan / JOURNAL_NAME).append(batch(), T0)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there
    sink = QuestDBSink(f"http::addr=127.0.0.1:{port};", spill_dir=tmp_path)
    with caplog.at_level(logging.ERROR, logger="flows.connectors.questdb"):
        part: Any = sink.build("questdb_out", 0, 1)
    part.writer.close(timeout_s=0)
    assert "worker-3 holds QuestDB rows" in caplog.text
    assert Journal(orphan / JOURNAL_NAME).load() == [(T0, batch())]
