"""The live monitor as a Bytewax dataflow: Kafka in, SLA engine per shard, Kafka and QuestDB out.

Run it with `slawatch run`, or directly with Bytewax (settings come from `SLAWATCH_*` and `.env`)::

    python -m bytewax.run "flows.monitor.flow:get_flow()" -r RECOVERY_DIR -s 5 -b 0

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.outputs import Sink

from flows.connectors.kafka import (
    Fetch,
    KafkaFetchSource,
    KafkaRecordSink,
    OutputTopics,
)
from flows.connectors.questdb.conf import check_conf
from flows.connectors.questdb.sink import QuestDBSink
from flows.core.model import PolicySet
from flows.core.policies import load_policies
from flows.core.records import DeadLetter, Record
from flows.monitor.health import HealthBoard, ObservedQuestDBSink
from flows.monitor.heartbeat import (
    HeartbeatItem,
    HeartbeatSink,
    HeartbeatWriterFactory,
    log_heartbeats,
    questdb_heartbeats,
)
from flows.monitor.shard import (
    MonitorConfig,
    ShardBatch,
    ShardLogic,
    ShardOutput,
    ShardState,
    ShardStatus,
    _AgentLoads,
    decode_fetch,
)
from flows.monitor.tuning import tune_gc
from flows.settings import Settings
from flows.wallclock import now_ms

__all__ = ["MonitorStreams", "build_monitor", "get_flow", "questdb_conf"]


@dataclass(frozen=True, slots=True)
class MonitorStreams:
    """The monitor's outputs: every record (dead letters included) and the shard statuses.

    Attributes:
        records: One list per shard activation or per fetch with dead letters; each list in emission
            order (SPEC §6 records, `late` corrections, dead letters).
        statuses: `(shard, ShardStatus)`, at most one per shard per heartbeat interval.
    """

    records: Stream[list[Record]]
    statuses: Stream[tuple[str, ShardStatus]]


def _is_shard_item(item: tuple[str, ShardBatch] | list[DeadLetter]) -> bool:
    """Return whether a decoded item is a shard batch (else it is a list of dead letters)."""
    return isinstance(item, tuple)


def _records_of(item: tuple[str, ShardOutput]) -> list[Record] | None:
    """Return a shard output's records, or None (filtered out) when it has none."""
    return item[1][0] or None


def _status_of(item: tuple[str, ShardOutput]) -> tuple[str, ShardStatus] | None:
    """Return `(shard, status)` of a shard output, or None when it carries no status."""
    status = item[1][1]
    return None if status is None else (item[0], status)


def build_monitor(
    fetches: Stream[Fetch],
    policies: PolicySet,
    config: MonitorConfig,
    *,
    clock: Callable[[], int] = now_ms,
) -> MonitorStreams:
    """Add the monitor's steps after a stream of fetches; return its output streams.

    Step ids (`decode_and_shard`, `split_dead_letters`, `sla_engine`, `shard_records`,
    `shard_status`, `all_records`) are part of the recovery state: renaming one orphans the shards'
    snapshots.

    Args:
        fetches: the input, one `Fetch` per Kafka poll (or a `TestingSource` of them).
        policies: the policies.
        config: the monitor's configuration.
        clock: the wall clock in epoch ms for the shards (injected by tests).

    Returns:
        The records stream (SLA and action records and dead letters) and the statuses stream.
    """
    loads = _AgentLoads()

    def decode(fetch: Fetch) -> list[tuple[str, ShardBatch] | list[DeadLetter]]:
        """Decode one fetch into shard batches and dead letters (`decode_fetch`)."""
        return decode_fetch(fetch, config)

    def builder(resume: ShardState | None) -> ShardLogic:
        """Create a shard's logic, fresh or from its snapshot, sharing this worker's agent loads."""
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


def questdb_sink_for(
    settings: Settings, conf: str, health: HealthBoard | None = None
) -> QuestDBSink:
    """Return the monitor's QuestDB sink for `conf`, configured by `settings`.

    Table prefix, report time zone, spill folder and batch window come from the settings; with
    `health`, the writers' counters are shown on `/metrics`.
    """
    options: dict[str, Any] = {
        "prefix": settings.table_prefix,
        "report_timezone": settings.report_timezone,
        "spill_dir": settings.questdb_spill_path,
        "batch_window_s": settings.questdb_batch_window.total_seconds(),
    }
    if health is not None:
        return ObservedQuestDBSink(health, conf, **options)
    return QuestDBSink(conf, **options)


def questdb_conf(settings: Settings) -> str | None:
    """Return the QuestDB client configuration of `settings`, or None if QuestDB is disabled.

    A full client configuration string (`questdb_conf`, a secret) wins over `questdb_http`
    (`host:port`, ILP over HTTP); an empty `questdb_http` disables QuestDB.

    Args:
        settings: The process's settings.
    """
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
    health: HealthBoard | None = None,
) -> Dataflow:
    """Build the live monitor's dataflow from `settings` (default: `Settings()`).

    Raises the garbage collector's young-generation threshold for the process (`tune_gc`: the
    monitor's objects form no cycles, and the default threshold made the collector walk every
    open conversation every few seconds). Reads the policy file, checks the QuestDB
    configuration and reads the input topics' partitions now, so that a bad policy file, a bad
    QuestDB configuration or a missing topic stops the start-up with a one-line error before any
    worker starts.

    Args:
        settings: the configuration; None reads it from the environment and `.env`.
        questdb_sink: the QuestDB sink; None builds `QuestDBSink` from the settings (none when
            QuestDB is disabled).
        heartbeat_writers: where heartbeats go; None logs them, and stores them in QuestDB unless it
            is disabled.
        health: the board behind `/readyz` and `/metrics` (`slawatch run` serves it), or None.

    Returns:
        The dataflow, ready for `python -m bytewax.run` or `cli_main`.

    Raises:
        PolicyError: the policy file is invalid.
        ConnectorError: the QuestDB configuration is unusable, or the input topics cannot be listed.
    """
    settings = settings if settings is not None else Settings()
    tune_gc()
    if not logging.getLogger().handlers:
        # Run by `python -m bytewax.run`, which configures no logging: show the heartbeats.
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    policies = load_policies(settings.policies)
    for warning in policies.warnings:
        logging.getLogger(__name__).warning("%s: %s", settings.policies, warning)
    conf = questdb_conf(settings)
    if conf is not None:
        check_conf(conf, settings.table_prefix)
    kafka = settings.kafka_common()
    source = KafkaFetchSource(
        kafka,
        settings.input_topics,
        max_messages=settings.fetch_max_messages,
        idle_tick_ms=settings.idle_tick_ms,
    )
    config = MonitorConfig.from_settings(settings, source.list_parts())
    if questdb_sink is None and conf is not None:
        questdb_sink = questdb_sink_for(settings, conf, health)
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
    observer = None if health is None else health.observe
    heartbeat = HeartbeatSink(config.heartbeat_interval_ms, heartbeat_writers, observer=observer)
    op.output("heartbeat", vitals, heartbeat)
    return flow
