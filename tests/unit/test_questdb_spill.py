"""The QuestDB writer's durable spill: order, persistence, torn tails and a full disk."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from flows.connectors.questdb import QuestDBWriter, SpillFullError
from flows.connectors.questdb.sink import QuestDBSink
from flows.connectors.questdb.spill import Spill
from flows.settings import Settings
from tests.unit.test_questdb_rows import T0, closed_port, sla

pytestmark = pytest.mark.unit


def _drain(spill: Spill) -> list[tuple[bytes, int]]:
    frames = []
    while (frame := spill.peek()) is not None:
        frames.append(frame)
        spill.pop()
    return frames


def test_frames_come_back_in_order_from_a_new_process_view(tmp_path: Path) -> None:
    """What one spill appended, a spill opened later on the folder reads back oldest first."""
    spill = Spill(tmp_path, segment_bytes=40)
    payloads = [f"row {i}\n".encode() * (i + 1) for i in range(6)]
    for i, payload in enumerate(payloads):
        spill.append(payload, i + 1)
    assert len(list(tmp_path.glob("*.ilp"))) > 1  # several segments
    again = Spill(tmp_path)
    assert again.rows == sum(range(1, 7))
    assert _drain(again) == [(p, i + 1) for i, p in enumerate(payloads)]
    assert again.rows == 0
    assert list(tmp_path.glob("*.ilp")) == []


def test_appends_while_reading_go_after_what_is_being_read(tmp_path: Path) -> None:
    """A frame appended while the oldest segment is being sent is read after it, not lost."""
    spill = Spill(tmp_path)
    spill.append(b"a", 1)
    assert spill.peek() == (b"a", 1)
    spill.append(b"b", 1)
    spill.pop()
    assert _drain(spill) == [(b"b", 1)]


def test_a_frame_cut_short_by_a_crash_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The half-written last frame of a killed process is skipped; the frames before it stay."""
    spill = Spill(tmp_path)
    spill.append(b"whole\n", 1)
    spill.append(b"torn frame\n", 1)
    segment = next(tmp_path.glob("*.ilp"))
    segment.write_bytes(segment.read_bytes()[:-4])
    with caplog.at_level(logging.WARNING, logger="flows.connectors.questdb"):
        assert _drain(Spill(tmp_path)) == [(b"whole\n", 1)]
    assert "cut short" in caplog.text


def test_a_full_spill_raises_a_clear_error_instead_of_dropping(tmp_path: Path) -> None:
    """When the spill may not grow, the write fails with a message saying what to do."""
    writer = QuestDBWriter(
        f"http::addr=127.0.0.1:{closed_port()};",
        retry_backoff_s=(60.0, 60.0),
        spill_dir=tmp_path,
        max_spill_bytes=2_000,
    )
    with pytest.raises(SpillFullError, match="free disk space or bring QuestDB back"):
        for i in range(100):
            writer.write_batch([sla(conv=f"c-{i}")], emitted_at_ms=T0)
    assert writer.stats.rows_dropped == 0
    assert 0 < writer.stats.spill_bytes <= 2_000


def test_rows_left_by_a_closed_writer_are_found_by_the_next(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Closing while QuestDB is down keeps the rows on disk; the next writer there finds them."""
    port = closed_port()
    first = QuestDBWriter(f"http::addr=127.0.0.1:{port};", spill_dir=tmp_path)
    first.write_batch([sla(), sla("warning", at=T0 + 1)], emitted_at_ms=T0)
    with caplog.at_level(logging.WARNING, logger="flows.connectors.questdb"):
        first.close(timeout_s=0)
        second = QuestDBWriter(f"http::addr=127.0.0.1:{port};", spill_dir=tmp_path)
    assert "sent at the next start" in caplog.text
    assert "an earlier run spilled" in caplog.text
    assert second.stats.rows_pending == first.stats.rows_pending == 3


def test_each_worker_spills_to_its_own_folder_and_orphans_are_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Worker i spills under `worker-<i>`; rows of a worker this run lacks are kept and logged."""
    orphan = tmp_path / "worker-3"
    orphan.mkdir()
    Spill(orphan).append(b"row\n", 1)
    sink = QuestDBSink(f"http::addr=127.0.0.1:{closed_port()};", spill_dir=tmp_path)
    with caplog.at_level(logging.ERROR, logger="flows.connectors.questdb"):
        first: Any = sink.build("questdb_out", 0, 2)
        second: Any = sink.build("questdb_out", 1, 2)
    assert first.writer.spill_dir == tmp_path / "worker-0"
    assert second.writer.spill_dir == tmp_path / "worker-1"
    assert "worker-3 holds QuestDB rows" in caplog.text
    assert Spill(orphan).rows == 1


def test_the_spill_folder_defaults_to_the_recovery_store() -> None:
    """With recovery on, spilled rows live beside the snapshots unless a folder is named."""
    assert Settings(recovery_dir=Path("r")).questdb_spill_path == Path("r") / "questdb-spill"
    assert Settings(recovery_dir=Path("r"), questdb_spill_dir=Path("s")).questdb_spill_path == Path(
        "s"
    )
    assert Settings(recovery_dir=None).questdb_spill_path is None
