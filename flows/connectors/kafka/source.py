"""The monitor's Kafka input: a fetch-at-a-time Bytewax source.

Bytewax's cost is per item, not per event, so the source hands the flow ONE item per Kafka fetch
(`Fetch`: up to `max_messages` raw values of one partition) instead of one item per message; the
flow decodes and groups them in plain Python. Each Kafka topic-partition is one Bytewax source
partition; its snapshot is the next offset to read, so a restart with recovery resumes exactly
where the last snapshot was taken (no consumer group, nothing committed to Kafka).

A fetch also reports the partition's progress for event time (`flows.monitor.watermark`):
whether the reader has caught up with the end of the log, its wall clock, its position and its
backlog. An idle partition sends an empty `Fetch` (a *tick*) every `idle_tick_ms`, so that event
time keeps following the wall clock on a quiet stream.

Errors that the consumer reports for a message (`message.error()`) are not dropped: they travel
in the fetch and become dead letters with the reason. Client-wide errors (a broker that is down)
are logged; the consumer reconnects by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from flows.connectors.kafka.admin import log_client_error
from flows.exceptions import ConnectorError
from flows.wallclock import now_ms

__all__ = ["Fetch", "KafkaFetchSource", "Message", "partition_name"]

_log = logging.getLogger(__name__)

#: How long a reader waits after an empty poll before polling its partition again (ms).
POLL_BACKOFF_MS: Final = 10
#: How long one `flush` waits before it logs that Kafka is slow and waits again (s).
FLUSH_WARN_S: Final = 5.0

Message = tuple[bytes | None, int, str | None]
"""One message of a fetch: its raw value, its offset, and the Kafka error if it carries one."""


def partition_name(topic: str, partition: int) -> str:
    """Return the name of a topic-partition in the flow: `topic/partition`."""
    return f"{topic}/{partition}"


@dataclass(frozen=True, slots=True)
class Fetch:
    """One item of the input stream: what one poll of one Kafka partition returned.

    An empty `messages` list with `caught_up` set is a *tick*: nothing new, and the partition
    vouches that event time may follow the wall clock.
    """

    partition: str
    """The topic-partition, `topic/partition`."""
    messages: list[Message]
    """The fetched messages in offset order (raw value, offset, error or None)."""
    caught_up: bool
    """Whether the reader had reached the end of the partition after this fetch."""
    wall: int
    """The reader's wall clock when it polled (epoch ms)."""
    position: int
    """The next offset to read after this fetch (negative: a logical start offset)."""
    backlog: int = 0
    """Messages left in the partition after this fetch, as far as the reader knows."""
    broadcast: bool = True
    """Whether every shard must hear of this fetch's progress, not only those it has events for."""


class _FetchPartition(StatefulSourcePartition[Fetch, int]):
    """Reads one Kafka topic-partition, one `Fetch` per poll.

    Its state is the next offset to read. Caught-up fetches with messages are broadcast at most
    once per `idle_tick_ms`; ticks and fetches that are behind are always broadcast.
    """

    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        partition: int,
        start: int,
        *,
        max_messages: int,
        idle_tick_ms: int,
        clock: Callable[[], int],
    ) -> None:
        self._consumer = Consumer(config)
        self._tp = TopicPartition(topic, partition)
        self._consumer.assign([TopicPartition(topic, partition, start)])
        self._name = partition_name(topic, partition)
        self._offset = start
        self._max = max_messages
        self._idle_tick = idle_tick_ms
        self._clock = clock
        self._last_sent = -(2**62)
        self._last_broadcast = -(2**62)
        self._awake: datetime | None = None

    def next_batch(self) -> list[Fetch]:
        """Poll the partition without blocking; return one fetch, a tick, or nothing.

        Returns nothing when the poll was empty and either a fetch went out less than
        `idle_tick_ms` ago or the partition is not known to be caught up (its end offset is
        unknown or ahead of the reader). A message that carries a Kafka error is kept in the
        fetch with the error, so it becomes a dead letter; end-of-partition markers are not
        messages and are skipped.

        Returns:
            At most one `Fetch`, stamped with the wall clock of this poll (epoch ms).

        Raises:
            ConnectorError: Kafka reported a fatal error for this partition.
        """
        polled = self._consumer.consume(self._max, 0)
        now = self._clock()
        messages: list[Message] = []
        for msg in polled:
            err = msg.error()
            if err is None:
                # A message without an error always has an offset.
                offset: int = msg.offset()  # type: ignore[assignment]
                messages.append((msg.value(), offset, None))
                self._offset = offset + 1
            elif err.code() != KafkaError._PARTITION_EOF:
                if err.fatal():
                    reason = f"fatal Kafka error on {self._name}: {err.str()}"
                    raise ConnectorError(reason)
                bad_offset = msg.offset()
                where = -1 if bad_offset is None else bad_offset
                messages.append((msg.value(), where, f"{err.name()}: {err.str()}"))
        if messages:
            self._awake = None
        else:
            self._awake = datetime.now(UTC) + timedelta(milliseconds=POLL_BACKOFF_MS)
            if now - self._last_sent < self._idle_tick:
                return []
        low, high = self._consumer.get_watermark_offsets(self._tp, cached=True)
        if high < 0:
            caught_up, backlog = False, 0
        elif self._offset >= 0:
            caught_up, backlog = self._offset >= high, max(0, high - self._offset)
        else:
            caught_up, backlog = low >= high, max(0, high - low)
        if not messages and not caught_up:
            return []
        broadcast = not messages or not caught_up or now - self._last_broadcast >= self._idle_tick
        self._last_sent = now
        if broadcast:
            self._last_broadcast = now
        return [Fetch(self._name, messages, caught_up, now, self._offset, backlog, broadcast)]

    def next_awake(self) -> datetime | None:
        """Back off briefly after an empty poll, instead of spinning on an idle partition.

        Returns:
            `POLL_BACKOFF_MS` after the last empty poll (aware UTC), or None after a poll that
            returned messages, so that Bytewax polls again at once.
        """
        return self._awake

    def snapshot(self) -> int:
        """Return the next offset to read (or the logical start offset before any message)."""
        return self._offset

    def close(self) -> None:
        """Close the consumer (only called when the flow ends on its own)."""
        self._consumer.close()


class KafkaFetchSource(FixedPartitionedSource[Fetch, int]):
    """Every partition of `topics`, read from the beginning or from the recovered offset.

    No consumer group is used and no offset is committed to Kafka: the recovery store is the
    only record of progress, so two monitors may read the same topics independently. The
    partition list is read once when the flow starts; partitions added later are not read
    until a restart.

    Args:
        config: librdkafka properties; must hold `bootstrap.servers`.
        topics: the input topics.
        max_messages: most messages per fetch (one flow item).
        idle_tick_ms: how often an idle, caught-up partition sends a tick.
        clock: the wall clock in epoch ms (injected by tests).
    """

    def __init__(
        self,
        config: dict[str, Any],
        topics: Iterable[str],
        *,
        max_messages: int = 5000,
        idle_tick_ms: int = 200,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._config = dict(config)
        self._topics = list(topics)
        self._max = max_messages
        self._idle_tick = idle_tick_ms
        self._clock = clock

    def list_parts(self) -> list[str]:
        """Return every topic-partition of the input topics, `topic/partition`.

        Raises:
            ConnectorError: a topic does not exist or its metadata cannot be read.
        """
        admin = AdminClient(self._config)
        parts: list[str] = []
        for topic in self._topics:
            try:
                metadata = admin.list_topics(topic, timeout=30).topics.get(topic)
            except KafkaException as exc:
                where = self._config.get("bootstrap.servers", "?")
                reason = (
                    f"cannot reach Kafka at {where} to read input topic {topic!r} ({exc}); "
                    "start it (`slawatch stack up`) or check --bootstrap-servers"
                )
                raise ConnectorError(reason) from exc
            if metadata is None or metadata.error is not None:
                detail = "not found" if metadata is None else str(metadata.error)
                reason = f"cannot read the partitions of input topic {topic!r}: {detail}"
                raise ConnectorError(reason)
            parts.extend(partition_name(topic, p) for p in sorted(metadata.partitions))
        return parts

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _FetchPartition:
        """Open a consumer on one topic-partition, at the recovered offset if there is one.

        Args:
            step_id: the input step's id (unused).
            for_part: the partition to read, `topic/partition`, as `list_parts` named it.
            resume_state: the next offset to read from the recovery store; None reads the
                partition from its beginning.

        Returns:
            The partition's reader.

        Raises:
            ConnectorError: the recovered partition belongs to a topic that is no longer an
                input topic (the recovery store is from another configuration).
        """
        topic, _, index = for_part.rpartition("/")
        if topic not in self._topics:
            reason = (
                f"the recovery store holds offsets of topic {topic!r}, which is not an input "
                f"topic ({', '.join(self._topics)}); use a fresh recovery store"
            )
            raise ConnectorError(reason)
        config = {
            "group.id": "slawatch-unused",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "auto.offset.reset": "earliest",
            "error_cb": log_client_error,
            **self._config,
        }
        return _FetchPartition(
            config,
            topic,
            int(index),
            OFFSET_BEGINNING if resume_state is None else resume_state,
            max_messages=self._max,
            idle_tick_ms=self._idle_tick,
            clock=self._clock,
        )
