"""Per-shard event time for the live monitor (SPEC §5), built from input-partition reports.

Every item that reaches a shard carries a *report* from one input partition: the largest event
time read from that partition so far, whether the partition was caught up (its reader had reached
the end of the log), the reader's wall clock and its position. A shard keeps the latest report of
every partition and derives its watermark:

* a partition that is **behind** vouches only for what it has read: `max_event - lateness`;
* a partition that is **caught up** vouches for the present too:
  `max(max_event, wall) - lateness`, where `wall` is now, but never more than `max_report_age`
  past the report (a reader that went silent stops vouching for the time after it);
* the shard's watermark is the minimum over every expected partition; it is unknown until each
  has reported, and it never goes back.

So while a backlog is read the watermark follows the events (a reply waiting in the backlog is
applied before its clock's deadline is reached), and while the input is idle it follows the wall
clock (breaches fire on a quiet stream about `lateness` after their deadline). After a restart the
caught-up flags and report times are forgotten (`restore`): a breach that fell due during the
downtime fires as soon as every partition has read its backlog and reported caught up again.

Pure: no framework imports, and the wall clock is always an argument.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

#: Default of `ShardClock.max_report_age_ms`.
DEFAULT_MAX_REPORT_AGE_MS: Final = 2_000

ClockState = tuple[int | None, dict[str, tuple[int | None, int]]]
"""What `ShardClock.state()` returns: the watermark so far and, per partition, the largest event
time read and the position reported."""


@dataclass(slots=True)
class PartitionReport:
    """The latest report of one input partition, as a shard keeps it."""

    max_event: int | None
    """Largest event time read from the partition so far (epoch ms), None before any event."""
    caught_up: bool
    """Whether the reader had reached the partition's end when it reported."""
    wall: int
    """The reader's wall clock at the report (epoch ms)."""
    position: int
    """The reader's position (next offset) at the report; orders the reports."""
    backlog: int = 0
    """Messages left to read in the partition at the report, when known (else 0)."""


class ShardClock:
    """Event time of one shard: the minimum over its input partitions' watermarks.

    SPEC §5: a partition's watermark is the largest event time read from it, or, while its reader is
    caught up, the reader's wall clock (no further than `max_report_age_ms` past its last report),
    minus the allowed lateness. So breaches fire on a quiet stream, and while a backlog is read the
    watermark follows the events, so a reply waiting in the backlog never causes a false breach.
    Instants are epoch ms UTC.

    Args:
        lateness_ms: allowed lateness; the watermark stays this far behind the event time.
        partitions: every input partition the shard must hear from before it has a watermark. None
            (or empty) means the partitions that have reported so far.
        max_report_age_ms: how long after a caught-up report the partition still vouches for the
            wall clock; a few times the readers' idle tick interval.

    Raises:
        ValueError: `lateness_ms` or `max_report_age_ms` is negative.
    """

    __slots__ = ("_floor", "expected", "lateness", "max_report_age", "reports")

    def __init__(
        self,
        lateness_ms: int,
        partitions: Iterable[str] | None = None,
        *,
        max_report_age_ms: int = DEFAULT_MAX_REPORT_AGE_MS,
    ) -> None:
        if lateness_ms < 0:
            msg = f"lateness must not be negative, got {lateness_ms} ms"
            raise ValueError(msg)
        if max_report_age_ms < 0:
            msg = f"max_report_age_ms must not be negative, got {max_report_age_ms} ms"
            raise ValueError(msg)
        self.lateness = lateness_ms
        self.expected: frozenset[str] = frozenset(partitions or ())
        self.max_report_age = max_report_age_ms
        self.reports: dict[str, PartitionReport] = {}
        self._floor: int | None = None

    def report(
        self,
        partition: str,
        *,
        max_event: int | None,
        caught_up: bool,
        wall: int,
        position: int,
        backlog: int = 0,
    ) -> None:
        """Record a report from `partition`; reports older than the one kept are ignored.

        Args:
            partition: the input partition's name.
            max_event: the largest event time read from it so far (None: none yet).
            caught_up: whether its reader had reached the end of the partition.
            wall: the reader's wall clock (epoch ms).
            position: the reader's next offset; a report with a lower one is stale.
            backlog: messages left to read, when known.
        """
        known = self.reports.get(partition)
        if known is None:
            self.reports[partition] = PartitionReport(max_event, caught_up, wall, position, backlog)
            return
        if known.max_event is None or (max_event is not None and max_event > known.max_event):
            known.max_event = max_event
        if (position, wall) >= (known.position, known.wall):
            known.caught_up = caught_up
            known.wall = wall
            known.position = position
            known.backlog = backlog

    def _partition_watermark(self, rep: PartitionReport, now: int) -> int | None:
        """Return one partition's watermark at wall time `now`, or None if it has none yet.

        The larger of its largest event time and, when caught up, the wall clock (capped at the
        report's wall time plus `max_report_age`), minus the lateness.
        """
        best = rep.max_event
        if rep.caught_up:
            wall = min(now, rep.wall + self.max_report_age)
            if best is None or wall > best:
                best = wall
        return None if best is None else best - self.lateness

    def watermark(self, now: int) -> int | None:
        """Return the shard's watermark at wall time `now`, or None while it is unknown.

        Unknown means some expected partition has not reported yet, or has reported neither an
        event nor being caught up. The result never decreases from one call to the next.
        """
        reports = self.reports
        if not reports or not self.expected.issubset(reports):
            return self._floor
        low: int | None = None
        for rep in reports.values():
            mark = self._partition_watermark(rep, now)
            if mark is None:
                return self._floor
            if low is None or mark < low:
                low = mark
        if low is not None and (self._floor is None or low > self._floor):
            self._floor = low
        return self._floor

    def wall_time_for(self, event_time: int, now: int) -> int | None:
        """Return the wall time at which the watermark will reach `event_time`, if it will alone.

        Args:
            event_time: the instant waited for (a deadline, a warning, a buffered event).
            now: the current wall time (epoch ms).

        Returns:
            `now` if the watermark has already reached `event_time`; else `event_time + lateness`
            when every partition that still holds the watermark back is caught up (the wall
            clock alone will move it there, provided the partitions keep reporting); else None:
            only new input can move it.
        """
        mark = self.watermark(now)
        if mark is not None and mark >= event_time:
            return now
        if not self.reports or not self.expected.issubset(self.reports):
            return None
        for rep in self.reports.values():
            if rep.caught_up:
                continue
            if rep.max_event is None or rep.max_event - self.lateness < event_time:
                return None
        return max(now, event_time + self.lateness)

    def backlog(self) -> int:
        """Return the messages left to read over every partition, as last reported."""
        return sum(rep.backlog for rep in self.reports.values())

    def state(self) -> ClockState:
        """Return what survives a restart: the watermark so far and each partition's progress.

        Caught-up flags and wall times are left out on purpose: after a restart nothing is
        known about the present until the readers report again.
        """
        return (
            self._floor,
            {name: (rep.max_event, rep.position) for name, rep in self.reports.items()},
        )

    def restore(self, state: ClockState) -> None:
        """Resume from `state()`: every partition counts as behind until it reports again.

        The watermark never goes back behind the restored one; with no caught-up partition it waits
        for events or fresh reports.

        Args:
            state: What `state()` returned before the restart.
        """
        floor, partitions = state
        self._floor = floor
        self.reports = {
            name: PartitionReport(max_event, False, 0, position)
            for name, (max_event, position) in partitions.items()
        }
