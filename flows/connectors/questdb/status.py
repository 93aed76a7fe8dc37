"""What the monitor reports besides its records: worker heartbeats and the writer's counters."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A worker's periodic report, stored in `<prefix>heartbeat` (stalled-monitor alerts).

    Attributes:
        worker: Which worker reports (e.g. `"0"`, or `host:index`).
        at: Wall-clock instant of the report, epoch ms UTC.
        watermark: The worker's event-time watermark, epoch ms UTC, if it has one yet.
        lag_ms: How far the watermark is behind the wall clock, in ms, if known.
        events_in: Input events counted by the worker (the caller decides since when).
        records_out: Records emitted by the worker.
        dead_letters: Dead letters emitted by the worker.
    """

    worker: str
    at: int
    watermark: int | None = None
    lag_ms: int | None = None
    events_in: int = 0
    records_out: int = 0
    dead_letters: int = 0


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters of one writer since it was built (rows are table rows, clocks included).

    Attributes:
        rows_written: Rows QuestDB accepted.
        rows_pending: Rows not yet accepted, in memory or spilled to disk.
        rows_dropped: Rows thrown away; always 0 since the writer spills instead of dropping
            (kept for callers that read it).
        rows_rejected: Rows QuestDB refused as invalid (not retried).
        failures: Failed flush attempts.
        failing_since: Monotonic time of the first failure of the current outage, or None.
        rows_spilled: Of `rows_pending`, the rows waiting on disk.
        spill_bytes: Bytes the spill holds on disk.
    """

    rows_written: int
    rows_pending: int
    rows_dropped: int
    rows_rejected: int
    failures: int
    failing_since: float | None
    rows_spilled: int = 0
    spill_bytes: int = 0
