"""One shard of the live monitor: a fetch decoded into shard batches, and the engine adapter.

The Bytewax adapter drives a shard's `Engine` with its `ShardClock`.

A fetch of up to 5,000 raw values is decoded and grouped by shard in one step
(`decode_fetch`), so Bytewax pays per fetch, not per event. Conversations map to shards by
`crc32(conversation_id) % shards` (`shard_of`), the same everywhere, so a conversation always
lands on the same shard, worker and engine whatever the partitioning of the input.

`ShardLogic` is the thin `StatefulBatchLogic` adapter: it reports each batch's progress to the
shard's clock, runs the engine up to the watermark, sets the shard's single Bytewax timer to the
wall time at which the watermark passes the next due instant, and snapshots the engine only when
it changed. Agent loads are shared by the shards of one worker (`_AgentLoads`).
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from bytewax.operators import StatefulBatchLogic

from flows.connectors.kafka import Fetch, dead_letter_for_error
from flows.core.engine import DEFAULT_HORIZON_MS, Engine
from flows.core.events import Event, Rejected
from flows.core.fastdecode import decode_fast
from flows.core.model import PolicySet
from flows.core.records import DeadLetter, Record, dead_letter
from flows.core.snapshot import dump_engine, load_engine
from flows.monitor.watermark import ClockState, ShardClock
from flows.settings import Settings

__all__ = [
    "MonitorConfig",
    "ShardBatch",
    "ShardLogic",
    "ShardOutput",
    "ShardState",
    "ShardStatus",
    "decode_fetch",
    "shard_of",
]

_NEVER: Final = -(2**62)

ShardState = tuple[bytes, ClockState]
"""A shard's snapshot: the engine (`dump_engine`) and its clock's state."""


def shard_of(conversation_id: str, shards: int) -> int:
    """Return the shard of a conversation: `crc32(conversation_id) % shards` (stable everywhere).

    Stable across processes, restarts and Python versions (unlike `hash`), so a conversation's state
    is found on the same shard after a restore. Changing `shards` moves conversations: recovery
    state is only valid for the shard count it was written with.

    Args:
        conversation_id: The SPEC §1 `conversation_id`.
        shards: The number of shards (> 0).

    Returns:
        A shard number in `0 .. shards - 1`.
    """
    return zlib.crc32(conversation_id.encode()) % shards


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """What the monitor's steps need besides the policies.

    Durations are milliseconds.

    Attributes:
        shards: Shards conversations are spread over (≥ 4× workers spreads them evenly).
        lateness_ms: Allowed lateness subtracted from the watermark (SPEC §5, default 5 s).
        max_report_age_ms: How long a partition's progress report counts as fresh.
        max_future_ms: How far ahead of the reader's wall clock `occurred_at` may lie before the
            event is a dead letter.
        horizon_ms: The engine's correction horizon for late events.
        max_event_bytes: Inputs longer than this are dead letters.
        heartbeat_interval_ms: How often a shard reports its status for the heartbeat.
    """

    shards: int = 64
    lateness_ms: int = 5_000
    max_report_age_ms: int = 2_000
    max_future_ms: int = 300_000
    horizon_ms: int = DEFAULT_HORIZON_MS
    max_event_bytes: int = 1_048_576
    heartbeat_interval_ms: int = 5_000
    snapshots: bool = True
    """False when the flow runs without recovery: `snapshot()` then skips the engine dump."""
    partitions: frozenset[str] = frozenset()
    """Every input partition; a shard has no watermark until each has reported (empty: any)."""

    @classmethod
    def from_settings(cls, settings: Settings, partitions: Iterable[str] = ()) -> MonitorConfig:
        """Derive the monitor's configuration from `Settings`.

        A progress report stays fresh for ten idle ticks (at least one second); snapshots are taken
        only when a recovery directory is configured.

        Args:
            settings: The process's settings.
            partitions: Every input partition (`topic/partition`), as the source lists them.

        Returns:
            The configuration.
        """
        return cls(
            shards=settings.shards,
            lateness_ms=settings.lateness_ms,
            max_report_age_ms=max(1_000, 10 * settings.idle_tick_ms),
            max_future_ms=settings.max_future_ms,
            horizon_ms=settings.horizon_ms,
            max_event_bytes=settings.max_event_bytes,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            snapshots=settings.recovery_dir is not None,
            partitions=frozenset(partitions),
        )


@dataclass(frozen=True, slots=True)
class ShardBatch:
    """What one fetch brings to one shard: its events and the partition's progress report.

    Attributes:
        partition: The input partition (`topic/partition`).
        events: The fetch's decoded events of this shard, in partition order (may be empty).
        caught_up: Whether the reader had reached the partition's end when it fetched.
        wall: The reader's wall clock at the fetch, epoch ms UTC.
        position: The partition offset after the fetch.
        backlog: Messages still to read in the partition after the fetch.
    """

    partition: str
    events: list[Event]
    max_event: int | None
    """Largest event time of the whole fetch (all shards), capped at the reader's wall clock."""
    caught_up: bool
    wall: int
    position: int
    backlog: int = 0


@dataclass(frozen=True, slots=True)
class ShardStatus:
    """A shard's vital signs, for the heartbeat.

    Attributes:
        watermark: The shard's watermark (epoch ms UTC), None until every partition reported.
        backlog: Messages its partitions still have to read.
        wall: The wall clock when the status was taken, epoch ms UTC.
        conversations: Conversations its engine holds (open, or within the correction horizon).
    """

    watermark: int | None
    backlog: int
    events: int
    """Events this shard has taken in since the process started."""
    records: int
    """Records this shard has emitted since the process started."""
    wall: int
    conversations: int = 0


ShardOutput = tuple[list[Record], ShardStatus | None]
"""What a shard emits per activation: its records (possibly none) and maybe its status."""


def decode_fetch(
    fetch: Fetch, config: MonitorConfig
) -> list[tuple[str, ShardBatch] | list[DeadLetter]]:
    """Decode one fetch and group its events by shard.

    Returns one `(shard, ShardBatch)` per shard that has events in the fetch, plus one for every
    other shard when the fetch must be broadcast (ticks, and fetches of a partition that is behind,
    so that no shard believes it caught up); and one list of dead letters if any input was unusable
    (kept as the original text, truncated past `MAX_DEAD_LETTER_RAW` bytes).

    Values are decoded by `decode_fast`, which gives exactly what `decode_event` gives.

    Nothing is dropped silently: a Kafka error, a message without a value and every rejected event
    becomes a dead letter whose source is `topic/partition/offset`. The fetch's largest event time
    is capped at the reader's wall clock, so an event stamped slightly in the future is applied at
    its own time without pulling every shard's watermark ahead.

    Args:
        fetch: One fetch of one partition from the Kafka source.
        config: The monitor's configuration (shards, limits).
    """
    shards = config.shards
    by_shard: dict[int, list[Event]] = {}
    dead: list[DeadLetter] = []
    wall = fetch.wall
    max_event: int | None = None
    max_future = config.max_future_ms
    max_bytes = config.max_event_bytes
    crc32 = zlib.crc32
    for raw, offset, error in fetch.messages:
        if error is not None:
            dead.append(dead_letter_for_error(fetch.partition, offset, error, raw))
            continue
        if raw is None:
            dead.append(dead_letter("message has no value", None, f"{fetch.partition}/{offset}"))
            continue
        decoded = decode_fast(raw, now=wall, max_future_ms=max_future, max_bytes=max_bytes)
        if isinstance(decoded, Rejected):
            dead.append(dead_letter(decoded.reason, raw, f"{fetch.partition}/{offset}"))
            continue
        at = decoded.occurred_at
        if max_event is None or at > max_event:
            max_event = at
        shard = crc32(decoded.conversation_id.encode()) % shards
        group = by_shard.get(shard)
        if group is None:
            by_shard[shard] = [decoded]
        else:
            group.append(decoded)
    # An event stamped ahead of the reader's clock (within max_future) is applied at its own time,
    # but must not drag the watermark of everything else into the future.
    if max_event is not None and max_event > wall:
        max_event = wall
    out: list[tuple[str, ShardBatch] | list[DeadLetter]] = []
    part, caught_up, pos, backlog = fetch.partition, fetch.caught_up, fetch.position, fetch.backlog
    for shard, events in by_shard.items():
        batch = ShardBatch(part, events, max_event, caught_up, wall, pos, backlog)
        out.append((str(shard), batch))
    if fetch.broadcast or not caught_up:
        progress = ShardBatch(part, [], max_event, caught_up, wall, pos, backlog)
        out.extend((str(shard), progress) for shard in range(shards) if shard not in by_shard)
    if dead:
        out.append(dead)
    return out


class _AgentLoads(threading.local):
    """Open conversations per agent and round-robin positions, shared by one worker's shards.

    One instance per flow; `threading.local` gives each worker thread its own dictionaries, so
    no two threads ever update the same counter.
    """

    def __init__(self) -> None:
        """Start with no loads and no round-robin positions (per thread)."""
        self.loads: dict[str, int] = {}
        self.rr: dict[str, int] = {}

    def adopt(self, engine: Engine, *, restored: bool) -> None:
        """Make `engine` count agent loads in this worker's shared dictionaries."""
        engine.share_loads(self.loads, self.rr, count_own=restored)


class ShardLogic(StatefulBatchLogic[ShardBatch, ShardOutput, ShardState]):
    """Bytewax adapter of one shard: an `Engine` driven by a `ShardClock`.

    Args:
        policies: the policies loaded at start-up.
        config: the monitor's configuration.
        loads: the worker's shared agent loads.
        clock: the wall clock in epoch ms (injected by tests).
        resume: the shard's snapshot, when the flow resumes from recovery.
    """

    def __init__(
        self,
        policies: PolicySet,
        config: MonitorConfig,
        loads: _AgentLoads,
        clock: Callable[[], int],
        resume: ShardState | None = None,
    ) -> None:
        self.config = config
        self.now = clock
        self.clock = ShardClock(
            config.lateness_ms, config.partitions, max_report_age_ms=config.max_report_age_ms
        )
        if resume is None:
            self.engine = Engine(policies, horizon_ms=config.horizon_ms)
        else:
            data, clock_state = resume
            self.engine = load_engine(data, policies)
            self.engine.horizon = config.horizon_ms
            self.clock.restore(clock_state)
        loads.adopt(self.engine, restored=resume is not None)
        self._dumped: bytes | None = None if resume is None else resume[0]
        self.events = 0
        self.records = 0
        self.last_status = _NEVER

    def on_batch(self, values: list[ShardBatch]) -> tuple[Iterable[ShardOutput], bool]:
        """Take in the events and progress reports, then run the engine up to the watermark.

        Args:
            values: The batches routed to this shard since its last activation.

        Returns:
            At most one output (records and, every heartbeat interval, a status) and RETAIN: a
            shard's state is never discarded.
        """
        report = self.clock.report
        events: list[Event] = []
        for batch in values:
            if batch.events:
                events.extend(batch.events)
            report(
                batch.partition,
                max_event=batch.max_event,
                caught_up=batch.caught_up,
                wall=batch.wall,
                position=batch.position,
                backlog=batch.backlog,
            )
        return self._run(events)

    def on_notify(self) -> tuple[Iterable[ShardOutput], bool]:
        """The watermark has reached the next due instant: fire what is due.

        Returns:
            As `on_batch`.
        """
        return self._run([])

    def on_eof(self) -> tuple[Iterable[ShardOutput], bool]:
        """The input ended (tests, finite runs): fire what the watermark allows.

        Returns:
            As `on_batch`.
        """
        return self._run([])

    def _run(self, events: list[Event]) -> tuple[list[ShardOutput], bool]:
        """Apply `events` and every timer up to the watermark at the wall clock's now.

        With no watermark yet (a partition has not reported) events are buffered and nothing fires.
        A change marks the engine for the next snapshot.

        Returns:
            The outputs (none when nothing was emitted and no status is due) and RETAIN.
        """
        now = self.now()
        mark = self.clock.watermark(now)
        records: list[Record] = list(self.engine.process(events, _NEVER if mark is None else mark))
        if events or records:
            self._dumped = None
        self.events += len(events)
        self.records += len(records)
        status = None
        if now - self.last_status >= self.config.heartbeat_interval_ms:
            self.last_status = now
            status = ShardStatus(
                mark,
                self.clock.backlog(),
                self.events,
                self.records,
                now,
                len(self.engine.conversations),
            )
        if records or status is not None:
            return [(records, status)], StatefulBatchLogic.RETAIN
        return [], StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        """Return when (wall clock, UTC) the watermark will pass the engine's next due instant.

        Bytewax needs an aware UTC datetime here; a naive one would crash the dataflow.

        Returns:
            The wake-up instant, or None when nothing is due or the watermark does not follow the
            wall clock yet (the next fetch will activate the shard anyway).
        """
        due = self.engine.next_due()
        if due is None:
            return None
        when = self.clock.wall_time_for(due, self.now())
        if when is None:
            return None
        return datetime.fromtimestamp(when / 1000, tz=UTC)

    def snapshot(self) -> ShardState:
        """Return the engine (without the worker's shared loads) and the clock's progress.

        Bytewax asks every epoch for every shard it activated, and idle ticks activate them
        all; the engine is dumped again only if an event or a record changed it since the last
        dump (a tick that fired nothing moves only `processed_until`, which the first
        activation after a restart moves again).
        """
        if not self.config.snapshots:
            return (b"", self.clock.state())
        if self._dumped is not None:
            return (self._dumped, self.clock.state())
        data = dump_engine(self.engine)
        self._dumped = data
        return (data, self.clock.state())
