"""The live monitor as a Bytewax dataflow: Kafka in, SLA engine per shard, Kafka and QuestDB out.

Run it with `slawatch run`, or directly with Bytewax (settings come from `SLAWATCH_*` and `.env`)::

    python -m bytewax.run "flows.dataflow:get_flow()" -r RECOVERY_DIR -s 5 -b 0

Shape (step ids; each item's shape in brackets)::

    kafka_input         [Fetch]                   one item per Kafka fetch (or idle tick)
    decode_and_shard    [(shard, ShardBatch) | list[DeadLetter]]
    split_dead_letters  -> shard batches / dead letters
    sla_engine          [(shard, ShardOutput)]    stateful_batch: Engine + ShardClock per shard
    shard_records       [list[Record]]            one list per shard activation
    shard_status        [(shard, ShardStatus)]    at most one per shard per heartbeat interval
    all_records         [list[Record]]            records and dead letters merged
    kafka_output        -> sla.events / sla.actions / sla.deadletter
    questdb_output      -> QuestDB tables (when configured)
    heartbeat_input     [(shard, ShardStatus) | list[Record]]
    heartbeat           -> one log line and QuestDB row per worker per heartbeat interval

Bytewax's cost is per item, not per event: a fetch of up to 5,000 raw values is decoded and
grouped by shard in one `flat_map`, and each shard gets one item per fetch. Conversations map to
shards by `crc32(conversation_id) % shards`, so a conversation always lands on the same shard,
worker and engine whatever the partitioning of the input. Each shard owns an `Engine` and a
`ShardClock`; its watermark follows the events while the input is read from behind and the wall
clock when the input is idle (SPEC §5), and its single Bytewax timer is set to the wall time at
which that watermark passes the engine's next due instant.

Agent loads (the open conversations per agent, used by the `overloaded` breach cause and to choose
a reassignment target) are shared by the shards of one worker, not by the whole cluster: with
several workers or processes each sees the load of the conversations its own shards hold.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow, Stream
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import DynamicSink, Sink, StatelessSinkPartition

from flows.connectors.kafka import (
    Fetch,
    KafkaFetchSource,
    KafkaRecordSink,
    OutputTopics,
    dead_letter_for_error,
    wall_ms,
)
from flows.connectors.questdb import Heartbeat, QuestDBWriter
from flows.connectors.questdb_sink import QuestDBSink
from flows.core.conversation import OPEN
from flows.core.decode import decode_event
from flows.core.engine import Engine
from flows.core.events import Event, Rejected
from flows.core.model import PolicySet
from flows.core.policies import load_policies
from flows.core.records import DeadLetter, Record
from flows.core.snapshot import dump_engine, load_engine
from flows.core.timefmt import format_instant
from flows.settings import Settings
from flows.watermark import ClockState, ShardClock

__all__ = [
    "MonitorConfig",
    "ShardBatch",
    "ShardLogic",
    "ShardOutput",
    "ShardStatus",
    "build_monitor",
    "decode_fetch",
    "get_flow",
    "shard_of",
]

_log = logging.getLogger("slawatch.heartbeat")

#: Dead letters keep at most this many bytes of an oversized input (Kafka refuses big messages).
MAX_DEAD_LETTER_RAW: Final = 65_536
_NEVER: Final = -(2**62)

ShardState = tuple[bytes, ClockState]
"""A shard's snapshot: the engine (`dump_engine`) and its clock's state."""


def shard_of(conversation_id: str, shards: int) -> int:
    """Return the shard of a conversation: `crc32(conversation_id) % shards` (stable everywhere)."""
    return zlib.crc32(conversation_id.encode()) % shards


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """What the monitor's steps need besides the policies."""

    shards: int = 64
    lateness_ms: int = 5_000
    max_report_age_ms: int = 2_000
    max_future_ms: int = 300_000
    max_event_bytes: int = 1_048_576
    heartbeat_interval_ms: int = 5_000
    snapshots: bool = True
    """False when the flow runs without recovery: `snapshot()` then skips the engine dump."""
    partitions: frozenset[str] = frozenset()
    """Every input partition; a shard has no watermark until each has reported (empty: any)."""

    @classmethod
    def from_settings(cls, settings: Settings, partitions: Iterable[str] = ()) -> MonitorConfig:
        """Derive the monitor's configuration from `Settings`."""
        return cls(
            shards=settings.shards,
            lateness_ms=settings.lateness_ms,
            max_report_age_ms=max(1_000, 10 * settings.idle_tick_ms),
            max_future_ms=settings.max_future_ms,
            max_event_bytes=settings.max_event_bytes,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            snapshots=settings.recovery_dir is not None,
            partitions=frozenset(partitions),
        )


@dataclass(frozen=True, slots=True)
class ShardBatch:
    """What one fetch brings to one shard: its events and the partition's progress report."""

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
    """A shard's vital signs, for the heartbeat."""

    watermark: int | None
    backlog: int
    events: int
    """Events this shard has taken in since the process started."""
    records: int
    """Records this shard has emitted since the process started."""
    wall: int


ShardOutput = tuple[list[Record], ShardStatus | None]
"""What a shard emits per activation: its records (possibly none) and maybe its status."""


def decode_fetch(
    fetch: Fetch, config: MonitorConfig
) -> list[tuple[str, ShardBatch] | list[DeadLetter]]:
    """Decode one fetch and group its events by shard.

    Returns one `(shard, ShardBatch)` per shard that has events in the fetch, plus one for every
    other shard when the fetch must be broadcast (ticks, and fetches of a partition that is
    behind, so that no shard believes it caught up); and one list of dead letters if any input
    was unusable (kept as the original text, truncated past `MAX_DEAD_LETTER_RAW` bytes).
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
            dead.append(DeadLetter("message has no value", "", f"{fetch.partition}/{offset}"))
            continue
        decoded = decode_event(raw, now=wall, max_future_ms=max_future, max_bytes=max_bytes)
        if isinstance(decoded, Rejected):
            dead.append(_dead_letter(decoded.reason, raw, f"{fetch.partition}/{offset}"))
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


def _dead_letter(reason: str, raw: bytes, source: str) -> DeadLetter:
    if len(raw) > MAX_DEAD_LETTER_RAW:
        reason = f"{reason} (raw truncated to its first {MAX_DEAD_LETTER_RAW} bytes)"
        raw = raw[:MAX_DEAD_LETTER_RAW]
    return DeadLetter(reason, raw.decode("utf-8", errors="replace"), source)


class _AgentLoads(threading.local):
    """Open conversations per agent and round-robin positions, shared by one worker's shards.

    One instance per flow; `threading.local` gives each worker thread its own dictionaries, so
    no two threads ever update the same counter.
    """

    def __init__(self) -> None:
        self.loads: dict[str, int] = {}
        self.rr: dict[str, int] = {}

    def adopt(self, engine: Engine, *, restored: bool) -> None:
        """Make `engine` count agent loads in this worker's shared dictionaries."""
        ctx = engine.ctx
        if restored:
            loads = self.loads
            for conv in engine.conversations.values():
                if conv.agent is not None and conv.phase == OPEN:
                    loads[conv.agent] = loads.get(conv.agent, 0) + 1
            for team, position in ctx.rr.items():
                self.rr.setdefault(team, position)
        ctx.loads = self.loads
        ctx.rr = self.rr


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
            self.engine = Engine(policies)
        else:
            data, clock_state = resume
            self.engine = load_engine(data, policies)
            self.clock.restore(clock_state)
        loads.adopt(self.engine, restored=resume is not None)
        self._dumped: bytes | None = None if resume is None else resume[0]
        self.events = 0
        self.records = 0
        self.last_status = _NEVER

    def on_batch(self, values: list[ShardBatch]) -> tuple[Iterable[ShardOutput], bool]:
        """Take in the events and progress reports, then run the engine up to the watermark."""
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
        """The watermark has reached the next due instant: fire what is due."""
        return self._run([])

    def on_eof(self) -> tuple[Iterable[ShardOutput], bool]:
        """The input ended (tests, finite runs): fire what the watermark allows."""
        return self._run([])

    def _run(self, events: list[Event]) -> tuple[list[ShardOutput], bool]:
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
            status = ShardStatus(mark, self.clock.backlog(), self.events, self.records, now)
        if records or status is not None:
            return [(records, status)], StatefulBatchLogic.RETAIN
        return [], StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        """Return when (wall clock, UTC) the watermark will pass the engine's next due instant."""
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
        ctx = self.engine.ctx
        loads, rr, out = ctx.loads, ctx.rr, ctx.out
        ctx.loads, ctx.rr, ctx.out = {}, {}, []
        try:
            data = dump_engine(self.engine)
        finally:
            ctx.loads, ctx.rr, ctx.out = loads, rr, out
        self._dumped = data
        return (data, self.clock.state())


# -- heartbeat --------------------------------------------------------------------------------


HeartbeatWriter = Callable[[Heartbeat], None]
"""Stores or shows one heartbeat."""
HeartbeatWriterFactory = Callable[[int], HeartbeatWriter]
"""Builds the heartbeat writer of one worker, given the worker's index."""
HeartbeatItem = tuple[str, ShardStatus] | list[Record]
"""What the heartbeat step takes: shard statuses, and the record lists it counts."""


def heartbeat_json(beat: Heartbeat) -> dict[str, Any]:
    """Return a heartbeat as a JSON object (instants as RFC 3339)."""
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
        _log.info("%s", orjson.dumps(heartbeat_json(beat)).decode())

    return write


def questdb_heartbeats(conf: str, prefix: str) -> HeartbeatWriterFactory:
    """Return a factory of writers that store heartbeats in `<prefix>heartbeat`."""

    def build(worker: int) -> HeartbeatWriter:
        del worker
        writer = QuestDBWriter(conf, prefix=prefix)

        def write(beat: Heartbeat) -> None:
            writer.write_heartbeat(beat)

        return write

    return build


@dataclass
class _HeartbeatPartition(StatelessSinkPartition[HeartbeatItem]):
    worker: int
    interval_ms: int
    writers: list[HeartbeatWriter]
    clock: Callable[[], int]
    latest: dict[str, ShardStatus] = field(default_factory=dict)
    records: int = 0
    dead_letters: int = 0
    last: int = _NEVER

    def write_batch(self, items: list[HeartbeatItem]) -> None:
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


class HeartbeatSink(DynamicSink[HeartbeatItem]):
    """One heartbeat per worker every `interval_ms`: slowest watermark, lag and counts.

    The watermark is the lowest of the worker's shards (None until each has one); `lag_ms` is
    how far it is behind the wall clock (so at least the allowed lateness); `events_in`,
    `records_out` and `dead_letters` count since the process started.

    Args:
        interval_ms: how often each worker reports.
        writers: factories of the places a heartbeat goes, called once per worker.
        clock: the wall clock in epoch ms.
    """

    def __init__(
        self,
        interval_ms: int,
        writers: Iterable[HeartbeatWriterFactory] = (log_heartbeats,),
        *,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self._interval = interval_ms
        self._writers = list(writers)
        self._clock = clock

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _HeartbeatPartition:
        """Start this worker's heartbeat."""
        writers = [factory(worker_index) for factory in self._writers]
        return _HeartbeatPartition(worker_index, self._interval, writers, self._clock)


# -- wiring -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MonitorStreams:
    """The monitor's outputs: every record (dead letters included) and the shard statuses."""

    records: Stream[list[Record]]
    statuses: Stream[tuple[str, ShardStatus]]


def _is_shard_item(item: tuple[str, ShardBatch] | list[DeadLetter]) -> bool:
    return isinstance(item, tuple)


def _records_of(item: tuple[str, ShardOutput]) -> list[Record] | None:
    return item[1][0] or None


def _status_of(item: tuple[str, ShardOutput]) -> tuple[str, ShardStatus] | None:
    status = item[1][1]
    return None if status is None else (item[0], status)


def build_monitor(
    fetches: Stream[Fetch],
    policies: PolicySet,
    config: MonitorConfig,
    *,
    clock: Callable[[], int] = wall_ms,
) -> MonitorStreams:
    """Add the monitor's steps after a stream of fetches; return its output streams.

    Args:
        fetches: the input, one `Fetch` per Kafka poll (or a `TestingSource` of them).
        policies: the policies.
        config: the monitor's configuration.
        clock: the wall clock in epoch ms for the shards (injected by tests).
    """
    loads = _AgentLoads()

    def decode(fetch: Fetch) -> list[tuple[str, ShardBatch] | list[DeadLetter]]:
        return decode_fetch(fetch, config)

    def builder(resume: ShardState | None) -> ShardLogic:
        return ShardLogic(policies, config, loads, clock, resume)

    # [(shard, ShardBatch) | list[DeadLetter]]
    decoded = op.flat_map("decode_and_shard", fetches, decode)
    # trues: [(shard, ShardBatch)]; falses: [list[DeadLetter]]
    split = op.branch("split_dead_letters", decoded, _is_shard_item)
    # [(shard, ShardOutput)]
    outputs = op.stateful_batch("sla_engine", split.trues, builder)  # type: ignore[arg-type]
    # [list[Record]]
    records = op.filter_map("shard_records", outputs, _records_of)
    # [(shard, ShardStatus)]
    statuses = op.filter_map("shard_status", outputs, _status_of)
    # [list[Record]]: SLA and action records, and dead letters
    merged: Stream[list[Record]] = op.merge("all_records", records, split.falses)
    return MonitorStreams(merged, statuses)


def questdb_conf(settings: Settings) -> str | None:
    """Return the QuestDB client configuration of `settings`, or None if QuestDB is disabled."""
    if settings.questdb_conf is not None:
        return settings.questdb_conf.get_secret_value()
    if not settings.questdb_http:
        return None
    return f"http::addr={settings.questdb_http};"


def get_flow(
    settings: Settings | None = None,
    *,
    questdb_sink: Sink[Any] | None = None,
    heartbeat_writers: Iterable[HeartbeatWriterFactory] | None = None,
) -> Dataflow:
    """Build the live monitor's dataflow from `settings` (default: `Settings()`).

    Reads the policy file and the input topics' partitions now, so that a bad policy file or a
    missing topic stops the start-up with a clear error.

    Args:
        settings: the configuration; None reads it from the environment and `.env`.
        questdb_sink: the QuestDB sink; None builds `QuestDBSink` from the settings (none when
            QuestDB is disabled).
        heartbeat_writers: where heartbeats go; None logs them, and stores them in QuestDB
            unless it is disabled.
    """
    settings = settings if settings is not None else Settings()
    if not logging.getLogger().handlers:
        # Run by `python -m bytewax.run`, which configures no logging: show the heartbeats.
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    policies = load_policies(settings.policies)
    kafka = settings.kafka_common()
    source = KafkaFetchSource(
        kafka,
        settings.input_topics,
        max_messages=settings.fetch_max_messages,
        idle_tick_ms=settings.idle_tick_ms,
    )
    config = MonitorConfig.from_settings(settings, source.list_parts())
    conf = questdb_conf(settings)
    if questdb_sink is None and conf is not None:
        questdb_sink = QuestDBSink(
            conf, prefix=settings.table_prefix, report_timezone=settings.report_timezone
        )
    if heartbeat_writers is None:
        heartbeat_writers = [log_heartbeats]
        if conf is not None:
            heartbeat_writers.append(questdb_heartbeats(conf, settings.table_prefix))

    flow = Dataflow(settings.flow_name)
    # [Fetch]: one item per Kafka fetch of one partition, or an idle tick
    fetches = op.input("kafka_input", flow, source)
    streams = build_monitor(fetches, policies, config)
    topics = OutputTopics(settings.events_topic, settings.actions_topic, settings.deadletter_topic)
    op.output("kafka_output", streams.records, KafkaRecordSink(kafka, topics))
    if questdb_sink is not None:
        op.output("questdb_output", streams.records, questdb_sink)
    # [(shard, ShardStatus) | list[Record]]
    vitals: Stream[HeartbeatItem] = op.merge("heartbeat_input", streams.statuses, streams.records)
    op.output("heartbeat", vitals, HeartbeatSink(config.heartbeat_interval_ms, heartbeat_writers))
    return flow
