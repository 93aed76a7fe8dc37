"""The journal of held QuestDB batches: records come back as written, a torn line is skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.connectors.questdb.journal import Journal
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
