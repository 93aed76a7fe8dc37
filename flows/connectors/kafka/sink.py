"""The monitor's Kafka output: one idempotent producer per worker, records to their topics.

SLA records go to the events topic, actions to the actions topic and dead letters to the
dead-letter topic, each keyed by conversation (dead letters by source) as JSON (SPEC §6). A
batch is flushed before the sink returns, so a snapshot is only taken once Kafka has acknowledged
what came before it; delivery failures are counted and logged by one producer-wide callback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, Producer

from flows.connectors.kafka.admin import log_client_error
from flows.core.records import (
    ActionRecord,
    CsatRecord,
    DeadLetter,
    HandleRecord,
    Record,
    RecordEncoder,
    SlaRecord,
    dead_letter,
)
from flows.core.timefmt import format_instant
from flows.exceptions import ConnectorError
from flows.wallclock import now_ms

__all__ = ["KafkaRecordSink", "OutputTopics", "dead_letter_for_error"]

_log = logging.getLogger(__name__)

#: How long one `flush` waits before it logs that Kafka is slow and waits again (s).
FLUSH_WARN_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class OutputTopics:
    """Where each kind of record goes: one Kafka topic per kind of record.

    The defaults are SPEC §6's topic names; the monitor fills them from its settings.
    """

    events: str = "sla.events"
    """The topic of SLA records (`SlaRecord`), keyed by `conversation_id`."""
    actions: str = "sla.actions"
    """The topic of action records (`ActionRecord`), keyed by `conversation_id`."""
    deadletter: str = "sla.deadletter"
    """The topic of dead letters (`DeadLetter`), keyed by their `source`."""


class _RecordPartition(StatelessSinkPartition[list[Record]]):
    """One worker's producer: writes record lists and flushes after each batch.

    Delivery failures are collected by one producer-wide callback and raised at the next flush,
    so a failed record stops the flow before a later snapshot can skip it.
    """

    def __init__(
        self, config: dict[str, Any], topics: OutputTopics, clock: Callable[[], int]
    ) -> None:
        failed: list[str] = []

        def delivered(err: KafkaError | None, _msg: object) -> None:
            if err is not None:
                failed.append(err.str())

        # One producer-wide delivery callback, called for failures only: a callback passed to
        # every `produce`, and a report for every success, cost ~0.7 us per record. (A closure,
        # not a bound method, so that the producer does not hold its partition in a cycle.)
        self._producer = Producer(
            {**config, "delivery.report.only.error": True, "on_delivery": delivered}
        )
        self._failed = failed
        self._topics = topics
        self._clock = clock
        self._encoder = RecordEncoder()

    def write_batch(self, items: list[list[Record]]) -> None:
        """Produce every record of every item, then wait until Kafka has acknowledged them all.

        Records of one item keep their order on their topic. All records of the batch carry
        the same `emitted_at`, the wall clock when the batch was written (not event time).
        A full librdkafka queue makes the call wait rather than drop a record.

        Args:
            items: lists of SLA records, action records and dead letters, in flow order.

        Raises:
            ConnectorError: Kafka refused a record (the flow stops; a restart with recovery
                sends the records after the last snapshot again).
        """
        producer = self._producer
        topics = self._topics
        emitted_at = format_instant(self._clock())
        encoder = self._encoder
        for batch in items:
            for rec in batch:
                # Serialised once, by the encoder (the bytes of `to_json_dict` + orjson); SLA
                # records, nearly all of the output, by its own fast path.
                if isinstance(rec, SlaRecord):
                    topic, key = topics.events, rec.conversation_id
                    value = encoder.sla(rec, emitted_at)
                elif isinstance(rec, ActionRecord):
                    topic, key = topics.actions, rec.conversation_id
                    value = encoder.encode(rec, emitted_at)
                elif isinstance(rec, CsatRecord):
                    # SPEC §6: CSAT records go with the SLA records, told apart by `type`.
                    topic, key = topics.events, rec.conversation_id
                    value = encoder.encode(rec, emitted_at)
                elif isinstance(rec, HandleRecord):
                    # SPEC §6: handle records go with the SLA records too, like CSAT.
                    topic, key = topics.events, rec.conversation_id
                    value = encoder.encode(rec, emitted_at)
                else:
                    topic, key = topics.deadletter, rec.source
                    value = encoder.encode(rec, emitted_at)
                while True:
                    try:
                        producer.produce(topic, value, key)
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.poll(0)
        self._flush()

    def _flush(self) -> None:
        """Wait, without a time limit, until Kafka holds every queued record.

        Logs a warning every `FLUSH_WARN_S` while Kafka is slow.

        Raises:
            ConnectorError: Kafka refused records since the last flush.
        """
        started = time.monotonic()
        while self._producer.flush(FLUSH_WARN_S) > 0:
            _log.warning(
                "Kafka has not acknowledged %d output records after %.0f s; still waiting",
                len(self._producer),
                time.monotonic() - started,
            )
        if self._failed:
            # Emptied in place: the delivery callback holds this very list.
            failed = self._failed.copy()
            self._failed.clear()
            reason = f"Kafka refused {len(failed)} output records, e.g.: {failed[0]}"
            raise ConnectorError(reason)

    def close(self) -> None:
        """Deliver what is still queued.

        Raises:
            ConnectorError: Kafka refused a record still waiting for acknowledgement.
        """
        self._flush()


class KafkaRecordSink(DynamicSink[list[Record]]):
    """Writes lists of records as JSON (SPEC §6) to their topics, one producer per worker.

    SLA and action records are keyed by `conversation_id`, dead letters by their `source`.
    Each `write_batch` ends with a flush, so a snapshot never runs ahead of what Kafka holds.

    The producer is idempotent (no duplicates from its own retries) and compresses with lz4;
    `config` may override these defaults. Delivery is at-least-once: a restart with recovery
    sends the records written after the last snapshot again.

    Args:
        config: librdkafka properties; must hold `bootstrap.servers`.
        topics: the output topics.
        clock: the wall clock in epoch ms, for `emitted_at`.
    """

    def __init__(
        self,
        config: dict[str, Any],
        topics: OutputTopics,
        *,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._config = {
            "queue.buffering.max.messages": 1_000_000,
            "linger.ms": 5,
            "compression.type": "lz4",
            "enable.idempotence": True,
            "error_cb": log_client_error,
            **config,
        }
        self._topics = topics
        self._clock = clock

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RecordPartition:
        """Open this worker's producer.

        Args:
            step_id: the output step's id (unused: every worker writes to the same topics).
            worker_index: this worker's index (unused).
            worker_count: the number of workers (unused).

        Returns:
            A partition that writes this worker's records.
        """
        return _RecordPartition(self._config, self._topics, self._clock)


def dead_letter_for_error(partition: str, offset: int, error: str, raw: bytes | None) -> DeadLetter:
    """Return the dead letter of a message that Kafka delivered with an error.

    Args:
        partition: the topic-partition it came from, `topic/partition`.
        offset: its offset; negative when Kafka gave none.
        error: Kafka's error, `NAME: description`.
        raw: the message value, if any; the dead letter keeps it redacted.

    Returns:
        A dead letter with reason `Kafka error: <error>` and source `topic/partition/offset`
        (`topic/partition/?` without an offset).
    """
    where = f"{partition}/{offset}" if offset >= 0 else f"{partition}/?"
    return dead_letter(f"Kafka error: {error}", raw, where)
