"""The monitor's heartbeat: one line per worker per interval, in the log and in QuestDB.

Each shard reports a `ShardStatus` at most once per heartbeat interval; the heartbeat step sums
them per worker (events, records, the lowest watermark, the backlog) and writes one `Heartbeat`
to the log and, when QuestDB is configured, to `<prefix>heartbeat`, where the wallboard's "data
age" tile and the stalled-monitor alert read it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from flows.connectors.questdb import Heartbeat, QuestDBWriter
from flows.core.records import DeadLetter, Record
from flows.core.timefmt import format_instant
from flows.monitor.shard import ShardStatus
from flows.wallclock import now_ms

_log = logging.getLogger("slawatch.heartbeat")
_NEVER = -(2**62)


HeartbeatWriter = Callable[[Heartbeat], None]
"""Stores or shows one heartbeat."""
HeartbeatWriterFactory = Callable[[int], HeartbeatWriter]
"""Builds the heartbeat writer of one worker, given the worker's index."""
HeartbeatItem = tuple[str, ShardStatus] | list[Record]
"""What the heartbeat step takes: shard statuses, and the record lists it counts."""
VitalsObserver = Callable[[Heartbeat, int, int], None]
"""Told of each heartbeat, with the worker's consumer backlog (the largest any of its shards
reported, in messages) and the conversations its shards hold (`flows.monitor.health`)."""


def heartbeat_json(beat: Heartbeat) -> dict[str, Any]:
    """Return a heartbeat as a JSON object (instants as RFC 3339).

    Args:
        beat: One worker's heartbeat.

    Returns:
        `type`, `worker`, `at`, `watermark` (None until every shard has one), `lag_ms`,
        `events_in`, `records_out`, `dead_letters`.
    """
    return {
        "type": "heartbeat",
        "worker": beat.worker,
        "at": format_instant(beat.at),
        "watermark": None if beat.watermark is None else format_instant(beat.watermark),
        "lag_ms": beat.lag_ms,
        "events_in": beat.events_in,
        "records_out": beat.records_out,
        "dead_letters": beat.dead_letters,
    }


def log_heartbeats(worker: int) -> HeartbeatWriter:
    """Return a writer that logs each heartbeat as one JSON line (`slawatch.heartbeat`)."""
    del worker

    def write(beat: Heartbeat) -> None:
        """Log one heartbeat at INFO as a single JSON line."""
        _log.info("%s", orjson.dumps(heartbeat_json(beat)).decode())

    return write


def questdb_heartbeats(conf: str, prefix: str) -> HeartbeatWriterFactory:
    """Return a factory of writers that store heartbeats in `<prefix>heartbeat`.

    Each worker gets its own `QuestDBWriter`, created when the worker starts.

    Args:
        conf: The QuestDB client configuration string.
        prefix: The table prefix.
    """

    def build(worker: int) -> HeartbeatWriter:
        """Return the writer of one worker (its own QuestDB connection)."""
        del worker
        writer = QuestDBWriter(conf, prefix=prefix)

        def write(beat: Heartbeat) -> None:
            """Store one heartbeat row."""
            writer.write_heartbeat(beat)

        return write

    return build


@dataclass
class _HeartbeatPartition(StatelessSinkPartition[HeartbeatItem]):
    """One worker's heartbeat: the latest status per shard and the record counts.

    Attributes:
        worker: The worker's index.
        interval_ms: The least time between two heartbeats.
        writers: Where each heartbeat goes.
        clock: The wall clock in epoch ms.
        latest: The latest status of each shard of this worker.
        records: Records counted since the process started.
        dead_letters: Dead letters counted since the process started.
        last: The wall instant of the last heartbeat.
        observer: Told of each heartbeat with the backlog and conversations (or None).
    """

    worker: int
    interval_ms: int
    writers: list[HeartbeatWriter]
    clock: Callable[[], int]
    observer: VitalsObserver | None = None
    latest: dict[str, ShardStatus] = field(default_factory=dict)
    records: int = 0
    dead_letters: int = 0
    last: int = _NEVER

    def write_batch(self, items: list[HeartbeatItem]) -> None:
        """Count the batch's records and statuses; write a heartbeat when the interval has passed.

        No heartbeat is written before some shard has reported a status. A writer that fails is
        logged and skipped: a heartbeat must never stop the monitor.

        Args:
            items: Shard statuses and record lists, in arrival order.
        """
        for item in items:
            if isinstance(item, tuple):
                self.latest[item[0]] = item[1]
            elif item and isinstance(item[0], DeadLetter):
                # Lists are homogeneous: the decode step's dead letters, or a shard's records.
                self.dead_letters += len(item)
            else:
                self.records += len(item)
        now = self.clock()
        if now - self.last < self.interval_ms or not self.latest:
            return
        self.last = now
        statuses = self.latest.values()
        marks = [s.watermark for s in statuses]
        low = None if None in marks else min(m for m in marks if m is not None)
        beat = Heartbeat(
            worker=str(self.worker),
            at=now,
            watermark=low,
            lag_ms=None if low is None else now - low,
            events_in=sum(s.events for s in statuses),
            records_out=self.records,
            dead_letters=self.dead_letters,
        )
        for write in self.writers:
            try:
                write(beat)
            except Exception:  # a heartbeat must never stop the monitor
                _log.exception("could not write the heartbeat of worker %d", self.worker)
        if self.observer is not None:
            backlog = max(s.backlog for s in statuses)
            held = sum(s.conversations for s in statuses)
            try:
                self.observer(beat, backlog, held)
            except Exception:  # a heartbeat must never stop the monitor
                _log.exception("could not report the vitals of worker %d", self.worker)


class HeartbeatSink(DynamicSink[HeartbeatItem]):
    """One heartbeat per worker every `interval_ms`: slowest watermark, lag and counts.

    The watermark is the lowest of the worker's shards (None until each has one); `lag_ms` is
    how far it is behind the wall clock (so at least the allowed lateness); `events_in`,
    `records_out` and `dead_letters` count since the process started.

    Args:
        interval_ms: how often each worker reports.
        writers: factories of the places a heartbeat goes, called once per worker.
        clock: the wall clock in epoch ms.
        observer: told of every worker's heartbeats with its backlog and conversations held
            (the health endpoint's board), or None.
    """

    def __init__(
        self,
        interval_ms: int,
        writers: Iterable[HeartbeatWriterFactory] = (log_heartbeats,),
        *,
        clock: Callable[[], int] = now_ms,
        observer: VitalsObserver | None = None,
    ) -> None:
        """Configure the sink; nothing is opened until Bytewax builds a worker's partition."""
        self._interval = interval_ms
        self._writers = list(writers)
        self._clock = clock
        self._observer = observer

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _HeartbeatPartition:
        """Start this worker's heartbeat.

        Args:
            step_id: The Bytewax step id (unused).
            worker_index: The worker's index; it names the heartbeat's `worker`.
            worker_count: The number of workers (unused).

        Returns:
            The worker's sink partition.
        """
        writers = [factory(worker_index) for factory in self._writers]
        return _HeartbeatPartition(
            worker_index, self._interval, writers, self._clock, observer=self._observer
        )
