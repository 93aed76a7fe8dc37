"""A durable queue on disk of ILP requests that QuestDB has not taken yet.

While QuestDB cannot be reached, `QuestDBWriter` seals its pending requests and appends them to
segment files in one folder (`000000000001.ilp`, `000000000002.ilp`, ...); when QuestDB answers
again it sends them back oldest first, one request per frame, and deletes each segment once every
frame in it was acknowledged. A frame is a header line `SLW1 <bytes> <rows>` followed by the
request's ILP bytes, written with one `write` call.

The files survive the process: a writer built on a folder that holds segments sends them before
anything new. A frame cut short by a crash (the last one of the last segment) is skipped with a
warning: its rows were being written when the process died, so the dataflow had not committed
them and sends them again after recovery.

Space is bounded by `max_bytes` and by the disk: when either is reached, `append` raises
`SpillFullError` rather than dropping rows.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections import deque
from pathlib import Path
from typing import Final

from flows.connectors.questdb.journal import JOURNAL_NAME
from flows.exceptions import ConnectorError

_log = logging.getLogger(__name__)

_MAGIC: Final = b"SLW1"
_HEADER: Final = re.compile(rb"SLW1 ([0-9]{1,12}) ([0-9]{1,12})\n")
_HEADER_MAX: Final = 32
_SEGMENT: Final = re.compile(r"[0-9]{12}\.ilp")


class SpillFullError(ConnectorError):
    """The spill folder cannot take more rows: the disk or the configured limit is full."""


class Spill:
    """Append-only segment files of ILP requests under one folder, read back oldest first.

    Args:
        folder: Where the segments live; created if missing. One writer per folder. None
            creates a new temporary folder at the first `append`.
        segment_bytes: A segment is closed and a new one started beyond this size.
        max_bytes: Most bytes kept on disk; None bounds the spill by the disk only.

    Attributes:
        folder: The folder (None for a temporary one not created yet).
        rows: Rows on disk not yet acknowledged.
        size: Bytes on disk not yet acknowledged (whole segments).
    """

    def __init__(
        self, folder: Path | None, *, segment_bytes: int = 64 << 20, max_bytes: int | None = None
    ) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self._segments: deque[Path] = deque()
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self._segments.extend(sorted(p for p in folder.iterdir() if _SEGMENT.fullmatch(p.name)))
        self._next_seq = int(self._segments[-1].stem) + 1 if self._segments else 1
        self._head: deque[tuple[bytes, int]] | None = None
        self._head_path: Path | None = None
        self._tail: Path | None = None
        self.rows = 0
        self.size = 0
        for path in self._segments:
            self.size += path.stat().st_size
            self.rows += sum(rows for _, rows in _read_frames(path))

    def __bool__(self) -> bool:
        return self.rows > 0 or bool(self._segments)

    def append(self, payload: bytes, rows: int) -> None:
        """Append one request of `rows` rows after every frame already on disk.

        Raises:
            SpillFullError: the disk or `max_bytes` is full; nothing was appended (a partly
                written frame is skipped when read back).
        """
        frame = b"%s %d %d\n%s" % (_MAGIC, len(payload), rows, payload)
        if self.max_bytes is not None and self.size + len(frame) > self.max_bytes:
            self._full(f"it holds {self.size} bytes, the most allowed is {self.max_bytes}")
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="slawatch-questdb-spill-"))
        tail = self._tail
        if tail is None or tail.stat().st_size >= self.segment_bytes:
            tail = self.folder / f"{self._next_seq:012d}.ilp"
            self._next_seq += 1
            self._segments.append(tail)
            self._tail = tail
        try:
            with tail.open("ab") as out:
                out.write(frame)
        except OSError as exc:
            self._full(str(exc))
        self.rows += rows
        self.size += len(frame)

    def peek(self) -> tuple[bytes, int] | None:
        """Return the oldest frame not yet acknowledged (ILP bytes and row count), or None."""
        while self._head is None or not self._head:
            if self._head is not None:
                self._drop_head()
            if not self._segments:
                return None
            path = self._segments[0]
            if path == self._tail:
                # Reading the segment still being appended: start the next frame elsewhere.
                self._tail = None
            self._head = deque(_read_frames(path))
            self._head_path = path
        return self._head[0]

    def pop(self) -> None:
        """Acknowledge the frame `peek` returned; a segment is deleted once all of it is."""
        assert self._head  # noqa: S101 - peek() came first
        _payload, rows = self._head.popleft()
        self.rows -= rows
        if not self._head:
            self._drop_head()

    def remove_if_empty(self) -> None:
        """Delete the folder if it holds nothing (for a temporary spill)."""
        if not self and self.folder is not None:
            try:
                self.folder.rmdir()
            except OSError:
                pass

    def _drop_head(self) -> None:
        path = self._head_path
        self._head = None
        self._head_path = None
        if path is None:
            return
        self._segments.popleft()
        if path == self._tail:
            self._tail = None
        try:
            self.size -= path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            pass
        self.size = max(self.size, 0)

    def _full(self, why: str) -> None:
        msg = (
            f"cannot keep more QuestDB rows in the spill folder {self.folder} ({why}; "
            f"{self.rows} rows wait there): free disk space or bring QuestDB back, then restart "
            "with recovery; no row is lost"
        )
        raise SpillFullError(msg)


def _read_frames(path: Path) -> list[tuple[bytes, int]]:
    """Read the frames of one segment; a torn or unreadable tail is skipped with a warning."""
    data = path.read_bytes()
    frames: list[tuple[bytes, int]] = []
    pos, end = 0, len(data)
    while pos < end:
        newline = data.find(b"\n", pos, pos + _HEADER_MAX)
        match = _HEADER.fullmatch(data, pos, newline + 1) if newline >= 0 else None
        if match is None:
            _log.error(
                "QuestDB spill segment %s has an unreadable frame at byte %d; the %d bytes from "
                "there are skipped",
                path,
                pos,
                end - pos,
            )
            break
        size, rows = int(match.group(1)), int(match.group(2))
        start = newline + 1
        if start + size > end:
            _log.warning(
                "QuestDB spill segment %s ends with a frame cut short (%d of %d bytes), written "
                "when the process died; it is skipped (the dataflow sends its rows again)",
                path,
                end - start,
                size,
            )
            break
        frames.append((data[start : start + size], rows))
        pos = start + size
    return frames


def spill_folders(base: Path) -> list[Path]:
    """Return the folders under `base` that hold spilled segments or held batches (start-up)."""
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and _holds_rows(p))


def _holds_rows(folder: Path) -> bool:
    for f in os.scandir(folder):
        if not f.is_file():
            continue
        if _SEGMENT.fullmatch(f.name) or (f.name == JOURNAL_NAME and f.stat().st_size > 0):
            return True
    return False
