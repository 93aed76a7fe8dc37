"""A Bytewax sink that stores records in QuestDB through `QuestDBWriter`.

Each worker builds its own writer (one `questdb.Sender`) and creates the tables at start-up if
QuestDB answers (otherwise before its first flush). Items are whole batches: a list of records
(as one `stateful_batch` activation emits them) or a `Heartbeat`. Every `write_batch` call of
Bytewax becomes one `QuestDBWriter.write_batch`; the writers hold the batches written within
`BATCH_WINDOW_S` of their last request and send them together (journaled to disk meanwhile), so
QuestDB commits each table about once a second whatever the fetch sizes. With `spill_dir`, worker
`i` spills to `<spill_dir>/worker-<i>` while QuestDB is down and, after a restart, sends what
that folder holds first.

Example:
    >>> sink = QuestDBSink("http::addr=127.0.0.1:9000;", prefix="sla_")
    >>> op.output("questdb_out", record_batches, sink)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from flows.connectors.questdb.spill import spill_folders
from flows.connectors.questdb.status import Heartbeat
from flows.connectors.questdb.writer import QuestDBWriter
from flows.core.records import Record
from flows.exceptions import ConnectorError
from flows.wallclock import now_ms

__all__ = ["BATCH_WINDOW_S", "QuestDBItem", "QuestDBSink"]

BATCH_WINDOW_S = 1.0
"""The writers' `batch_window_s` unless the sink is told otherwise: QuestDB's cost is per commit
(out-of-order rewrites of the clocks partition, view refreshes), so one request a second."""

_log = logging.getLogger(__name__)

QuestDBItem = Sequence[Record] | Heartbeat
"""What the sink takes: a batch of records, or a worker heartbeat."""


class _QuestDBPartition(StatelessSinkPartition[QuestDBItem]):
    """One worker's writer."""

    def __init__(self, writer: QuestDBWriter, now_ms: Callable[[], int]) -> None:
        self.writer = writer
        self._now_ms = now_ms

    def write_batch(self, items: list[QuestDBItem]) -> None:
        """Write the records of every item as one batch, and any heartbeats."""
        records: list[Record] = []
        beats: list[Heartbeat] = []
        for item in items:
            if isinstance(item, Heartbeat):
                beats.append(item)
            else:
                records.extend(item)
        if records:
            self.writer.write_batch(records, self._now_ms())
        for beat in beats:
            self.writer.write_heartbeat(beat)
        self.writer.maybe_flush()

    def close(self) -> None:
        """Flush what is pending (retrying for a few seconds) and close the writer."""
        self.writer.close()


class QuestDBSink(DynamicSink[QuestDBItem]):
    """Stores slawatch records in QuestDB; every worker writes through its own connection.

    Args:
        conf: `questdb` client configuration for ILP over HTTP, e.g. `http::addr=host:9000;`.
        now_ms: Wall clock stamped as `emitted_at` on each batch (tests replace it).
        spill_dir: Folder of the workers' durable spills (`worker-<index>` each); None gives
            each writer a temporary spill, which does not outlive the process.
        **writer_options: Passed to `QuestDBWriter` (`prefix`, `ttl_days`,
            `max_buffered_rows`, `max_spill_bytes`, ...); `batch_window_s` defaults to
            `BATCH_WINDOW_S`.
    """

    def __init__(
        self,
        conf: str,
        *,
        now_ms: Callable[[], int] = now_ms,
        spill_dir: Path | str | None = None,
        **writer_options: Any,
    ) -> None:
        self.conf = conf
        self.now_ms = now_ms
        self.spill_dir = None if spill_dir is None else Path(spill_dir)
        self.writer_options = writer_options

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[QuestDBItem]:
        """Build the writer of one worker and create the tables if QuestDB answers."""
        options = {"batch_window_s": BATCH_WINDOW_S, **self.writer_options}
        if self.spill_dir is not None:
            options["spill_dir"] = self.spill_dir / f"worker-{worker_index}"
            if worker_index == 0:
                self._warn_orphans(worker_count)
        writer = QuestDBWriter(self.conf, **options)
        try:
            writer.ensure_tables()
        except ConnectorError as exc:
            _log.warning(
                "%s (worker %d of %d): QuestDB tables not created yet, will retry before the "
                "first write: %s",
                step_id,
                worker_index,
                worker_count,
                exc,
            )
        return _QuestDBPartition(writer, self.now_ms)

    def _warn_orphans(self, worker_count: int) -> None:
        """Say which spill folders no worker of this run will send (fewer workers than before)."""
        assert self.spill_dir is not None  # noqa: S101 - checked by the caller
        mine = {f"worker-{i}" for i in range(worker_count)}
        for folder in spill_folders(self.spill_dir):
            if folder.name not in mine:
                _log.error(
                    "%s holds QuestDB rows spilled by a worker this run does not have; they are "
                    "kept, and sent when the monitor runs again with as many workers as before",
                    folder,
                )
