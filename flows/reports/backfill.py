"""`slawatch backfill`: replay a history of events and store its records in QuestDB.

The events go through the same engine as `slawatch replay` (`flows.replay.replay_records`) and
the records through the monitor's own writer (`flows.connectors.questdb.QuestDBWriter`), so the
tables look exactly as if the live monitor had seen that history.

Idempotent: every table deduplicates on the record's identity, and a backfilled record's
`emitted_at` is not the wall clock but the replay's event time when its batch was written (the
latest record instant so far; the final watermark for the last batch). Backfilling the same file
twice therefore writes identical rows, and QuestDB keeps each once (dead letters included, whose
key is `(emitted_at, source)`).

Example:
    >>> writer = QuestDBWriter("http::addr=127.0.0.1:9000;")  # doctest: +SKIP
    >>> summary = backfill(Path("history.jsonl"), policies, writer)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from flows.connectors.questdb import QuestDBWriter
from flows.core.model import PolicySet
from flows.core.records import DeadLetter, Record
from flows.exceptions import ConnectorError
from flows.replay import ReplaySummary, replay_records

__all__ = ["BackfillProgress", "BackfillSummary", "backfill"]

DEFAULT_BATCH: Final = 20_000


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    """Where a running backfill is, reported after every batch.

    Attributes:
        bytes_read: Bytes of the events file consumed so far.
        bytes_total: Size of the events file.
        events: Events replayed so far (dead letters excluded).
        records: SLA records written so far.
        rows_written: Table rows QuestDB has accepted so far.
    """

    bytes_read: int
    bytes_total: int
    events: int
    records: int
    rows_written: int


@dataclass(frozen=True, slots=True)
class BackfillSummary:
    """The outcome of a backfill.

    Attributes:
        replay: The replay's counts (events, dead letters, SLA records by status, actions).
        rows_written: Table rows QuestDB accepted (event, clock, action and dead-letter rows).
        rows_lost: Rows QuestDB refused as invalid, or that were still unsent when the writer
            closed.
    """

    replay: ReplaySummary
    rows_written: int
    rows_lost: int

    def line(self) -> str:
        """Return the one-line human summary.

        The replay's own line, then the rows stored; rows lost are named only when there
        are some, in capitals (`NOT stored`) so that they are not missed.
        """
        lost = f", {self.rows_lost} rows NOT stored" if self.rows_lost else ""
        return f"{self.replay.line()}; {self.rows_written} rows stored in QuestDB{lost}"


class _CountingReader:
    """Iterates the lines of a binary file, counting the bytes consumed.

    `consumed` is what the progress bar shows against the file's size; it counts each line
    with its newline as soon as the line is handed on.
    """

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.consumed = 0

    def __iter__(self) -> Iterator[bytes]:
        """Yield each line (newline included), adding its length to `consumed` first."""
        for line in self.source:
            self.consumed += len(line)
            yield line


def backfill(
    events: Path,
    policies: PolicySet,
    writer: QuestDBWriter,
    *,
    until: int | None = None,
    lateness_ms: int = 5_000,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[BackfillProgress], None] | None = None,
) -> BackfillSummary:
    """Replay `events` (JSONL, SPEC §1) and write every record to QuestDB through `writer`.

    Args:
        events: The events file; bad lines become dead letters with `NAME:LINE` as source,
            NAME being the file's name (so the same file backfilled from another folder
            still deduplicates).
        policies: The policies to apply.
        writer: Where the records go; this function closes it.
        until: Move the watermark to this instant (epoch ms) at the end, as `slawatch replay`.
        lateness_ms: Allowed lateness of the replay.
        batch_size: Records per write (one HTTP request each).
        progress: Called after every batch and once at the end.

    Returns:
        What was replayed and stored.

    Raises:
        ConnectorError: QuestDB cannot be reached to create the tables, or stopped taking rows
            during the backfill (rows it took are kept; backfilling again does not double them).
    """
    total = events.stat().st_size
    summary = ReplaySummary()
    try:
        writer.ensure_tables()
        with events.open("rb") as src:
            reader = _CountingReader(src)
            stamp = 0
            batch: list[Record] = []

            def flush() -> None:
                """Write the batch stamped with the replay's event time, then report progress.

                Raises:
                    ConnectorError: QuestDB is failing and the writer could not flush.
                """
                nonlocal batch
                if batch:
                    writer.write_batch(batch, emitted_at_ms=stamp)
                    if writer.stats.failing_since is not None and not writer.flush():
                        msg = (
                            f"QuestDB at {writer.address} stopped taking rows during the "
                            "backfill; check that it runs and backfill again (stored rows are "
                            "not doubled)"
                        )
                        raise ConnectorError(msg)
                    batch = []
                if progress is not None:
                    progress(
                        BackfillProgress(
                            reader.consumed,
                            total,
                            summary.events,
                            summary.records,
                            writer.stats.rows_written,
                        )
                    )

            for record in replay_records(
                reader,
                policies,
                source=events.name,
                until=until,
                lateness_ms=lateness_ms,
                summary=summary,
            ):
                batch.append(record)
                if not isinstance(record, DeadLetter) and record.at > stamp:
                    stamp = record.at
                # Dead letters before any record wait for an event time to be stamped with.
                if len(batch) >= batch_size and stamp:
                    flush()
            if summary.until is not None:
                stamp = max(stamp, summary.until)
            flush()
    except ConnectorError:
        writer.close(timeout_s=0)
        raise
    writer.close()
    stats = writer.stats
    lost = stats.rows_pending + stats.rows_dropped + stats.rows_rejected
    return BackfillSummary(summary, stats.rows_written, lost)
