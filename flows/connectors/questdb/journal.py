"""A file of the records a batching `QuestDBWriter` holds in memory, so a crash loses none.

When the writer batches several `write_batch` calls into one request (`batch_window_s`), the
records of those calls are in memory only until the request goes out, yet the dataflow may
commit its snapshot as soon as `write_batch` returns. Each held batch is therefore appended to
this journal first (one JSON line: the emission instant and the field values of the batch's SLA
records, action records and dead letters, each kind in its order, written with one `write`
call); the journal is emptied once every held record has been sent to QuestDB
or moved to the spill. A writer built on a folder whose journal is not empty writes those
records again, in their order, before anything new. A last line cut short by a crash is skipped:
its `write_batch` had not returned, so the dataflow sends those records again after recovery.

Like the spill, the journal survives the process (`kill -9`), not the machine: nothing is
`fsync`ed.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import fields
from operator import attrgetter
from pathlib import Path
from typing import Any, Final

import orjson

from flows.core.records import ActionRecord, DeadLetter, Record, SlaRecord

_log = logging.getLogger(__name__)

JOURNAL_NAME: Final = "held.jsonl"
"""The journal's file name in the writer's spill folder."""

_KINDS: Final[tuple[type[Any], ...]] = (SlaRecord, ActionRecord, DeadLetter)
_VALUES: Final = tuple(attrgetter(*(f.name for f in fields(cls) if f.init)) for cls in _KINDS)


class Journal:
    """Append-only JSON lines of held record batches, in one file.

    Args:
        path: The journal file; None makes a temporary one at the first `append` (it outlives
            an outage, not the process).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._temporary = path is None
        self._dirty = path is not None and path.exists() and path.stat().st_size > 0

    def __bool__(self) -> bool:
        return self._dirty

    def append(self, records: Sequence[Record], emitted_at_ms: int) -> None:
        """Add one batch after the ones already written (one `write` call)."""
        # Records of different kinds go to different tables: only the order within a kind counts.
        sla: list[Record] = [r for r in records if type(r) is SlaRecord]
        others: list[list[Record]] = [[], []]
        if len(sla) < len(records):
            for r in records:
                if type(r) is ActionRecord:
                    others[0].append(r)
                elif type(r) is DeadLetter:
                    others[1].append(r)
        body: list[Any] = [emitted_at_ms]
        for get, kind in zip(_VALUES, (sla, *others), strict=True):
            body.append(list(map(get, kind)))
        try:
            line = orjson.dumps(body) + b"\n"
        except TypeError:  # a lone surrogate in a dead letter's text: the stdlib escapes it
            line = json.dumps(body).encode() + b"\n"
        if self.path is None:
            fd, name = tempfile.mkstemp(prefix="slawatch-questdb-held-", suffix=".jsonl")
            os.close(fd)
            self.path = Path(name)
        with self.path.open("ab") as out:
            out.write(line)
        self._dirty = True

    def load(self) -> list[tuple[int, list[Record]]]:
        """Return the batches written and not cleared, oldest first (a torn last line skipped)."""
        if self.path is None or not self.path.exists():
            return []
        batches: list[tuple[int, list[Record]]] = []
        lines = self.path.read_bytes().split(b"\n")
        for number, line in enumerate(lines, 1):
            if not line:
                continue
            try:
                emitted, *kinds = json.loads(line)
                records: list[Record] = [
                    cls(*values) for cls, kind in zip(_KINDS, kinds, strict=True) for values in kind
                ]
            except (ValueError, KeyError, TypeError) as exc:
                _log.warning(
                    "QuestDB journal %s: line %d is unreadable (%s), written when the process "
                    "died; it is skipped (the dataflow sends its records again)",
                    self.path,
                    number,
                    exc,
                )
                continue
            batches.append((int(emitted), records))
        return batches

    def clear(self) -> None:
        """Forget every batch (they were sent or spilled)."""
        if not self._dirty or self.path is None:
            return
        with self.path.open("wb"):
            pass
        self._dirty = False

    def remove(self) -> None:
        """Delete the file if it holds nothing (at close)."""
        if self._dirty or self.path is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
