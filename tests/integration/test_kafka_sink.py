"""The Kafka record sink: records reach their topics with their keys; a refused record stops it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from flows.connectors.kafka import KafkaRecordSink, OutputTopics
from flows.core.records import (
    ActionRecord,
    DeadLetter,
    HandleRecord,
    Record,
    SlaRecord,
    to_json_dict,
)
from flows.devstack import Endpoints
from flows.exceptions import ConnectorError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

T0 = 1_795_000_000_000


def _sla(conv: str, status: str) -> SlaRecord:
    return SlaRecord(
        conv, 1, "first_response", 1, status, T0, "default", 300_000, T0, T0 + 240_000,
        T0 + 300_000, None, 0, False, "a1", "sales", "P2", None, None, "whatsapp",
    )  # fmt: skip


def _read(bootstrap: str, topic: str, count: int) -> list[tuple[bytes | None, bytes | None]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4()}"})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got: list[tuple[bytes | None, bytes | None]] = []
    try:
        for _ in range(100):
            for msg in consumer.consume(100, 0.2):
                assert msg.error() is None, msg.error()
                got.append((msg.key(), msg.value()))
            if len(got) >= count:
                break
    finally:
        consumer.close()
    return got


def test_records_reach_their_topics_keyed_and_as_spec_json(
    stack: Endpoints, make_topic: Callable[..., str]
) -> None:
    """SLA, handle and action records are keyed by conversation, dead letters by source, as SPEC
    JSON; handle records share the SLA records' topic."""
    topics = OutputTopics(make_topic(prefix="events"), make_topic(prefix="actions"), make_topic())
    sink = KafkaRecordSink({"bootstrap.servers": stack.bootstrap_servers}, topics, clock=lambda: T0)
    part = sink.build("kafka_output", 0, 1)
    action = ActionRecord(
        "notify", "breached", "c-2", 1, "first_response", 2, T0, "default", None, None,
        "spv", "first_response breached",
    )  # fmt: skip
    dead = DeadLetter("event is not valid JSON", "{oops", "in/0/7")
    handle = HandleRecord("c-3", 1, "a1", "sales", T0, T0 + 90_500, 90_500, "idle")
    batches: list[list[Record]] = [
        [_sla("c-1", "started"), _sla("c-2", "breached"), handle],
        [action],
    ]
    part.write_batch([*batches, [dead]])
    part.close()

    def expected(*records: Record) -> list[tuple[bytes, bytes]]:
        return [
            (
                (r.source if isinstance(r, DeadLetter) else r.conversation_id).encode(),
                orjson.dumps(to_json_dict(r, T0)),
            )
            for r in records
        ]

    assert _read(stack.bootstrap_servers, topics.events, 3) == expected(*batches[0])
    assert _read(stack.bootstrap_servers, topics.actions, 1) == expected(action)
    assert _read(stack.bootstrap_servers, topics.deadletter, 1) == expected(dead)


def test_a_record_kafka_never_takes_stops_the_sink_with_the_reason() -> None:
    """Every batch with a record that cannot be delivered raises ConnectorError, never drops it."""
    config = {"bootstrap.servers": "127.0.0.1:9", "message.timeout.ms": 1_000, "log_level": 0}
    part = KafkaRecordSink(config, OutputTopics()).build("kafka_output", 0, 1)
    with pytest.raises(ConnectorError, match=r"Kafka refused 1 output records.*timed out"):
        part.write_batch([[DeadLetter("reason", "raw", "in/0/1")]])
    dead = [DeadLetter("reason", "raw", f"in/0/{i}") for i in range(2, 4)]
    with pytest.raises(ConnectorError, match=r"Kafka refused 2 output records"):
        part.write_batch([dead])
