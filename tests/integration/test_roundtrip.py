"""Kafka → confluent-kafka → QuestDB (ILP over HTTP) → PG wire, on the real local stack."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer
from questdb import Sender

from flows.devstack import Endpoints
from tests.conftest import QuestDB
from tests.integration.kafkakit import consume_at_least

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BASE = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
COUNT = 60


def _events() -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"e-{i:03d}",
            "conversation_id": f"c-{i % 7}",
            "metric": ("first_response", "next_response", "resolution")[i % 3],
            "at": (BASE + timedelta(seconds=i, microseconds=i * 1001)).isoformat(),
            "elapsed_s": i * 1.5,
            "attempts": i % 4,
            "breached": i % 5 == 0,
        }
        for i in range(COUNT)
    ]


def _consume_all(bootstrap: str, topic: str, expected: int) -> list[dict[str, Any]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"roundtrip-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    try:
        messages = consume_at_least(consumer, expected, timeout=60, what=f"events on {topic}")
    finally:
        consumer.close()
    return [orjson.loads(message.value() or b"") for message in messages]


def _send(conf: str, table: str, events: list[dict[str, Any]]) -> None:
    with Sender.from_conf(conf) as sender:
        for event in events:
            sender.row(
                table,
                symbols={"conversation_id": event["conversation_id"], "metric": event["metric"]},
                columns={
                    "event_id": event["event_id"],
                    "elapsed_s": event["elapsed_s"],
                    "attempts": event["attempts"],
                    "breached": event["breached"],
                },
                at=datetime.fromisoformat(event["at"]),
            )
        sender.flush()


def test_events_round_trip_kafka_to_questdb_and_resending_adds_no_rows(
    stack: Endpoints, make_topic: Any, make_table: Any, questdb: QuestDB
) -> None:
    """JSON events read from Kafka and written to QuestDB read back unchanged, and once only."""
    topic = make_topic(partitions=3)
    table = make_table(
        "roundtrip",
        ddl=(
            "CREATE TABLE {table} (at TIMESTAMP, conversation_id SYMBOL, metric SYMBOL,"
            " event_id VARCHAR, elapsed_s DOUBLE, attempts LONG, breached BOOLEAN)"
            " TIMESTAMP(at) PARTITION BY DAY TTL 90 DAYS WAL"
            " DEDUP UPSERT KEYS(at, event_id)"
        ),
    )
    events = _events()
    producer = Producer({"bootstrap.servers": stack.bootstrap_servers, "enable.idempotence": True})
    for event in events:
        producer.produce(topic, key=event["conversation_id"], value=orjson.dumps(event))
    assert producer.flush(30) == 0

    received = _consume_all(stack.bootstrap_servers, topic, COUNT)
    assert sorted(received, key=lambda e: e["event_id"]) == events

    _send(stack.questdb_ilp_conf, table, received)
    select = (
        f"SELECT event_id, conversation_id, metric, at, elapsed_s, attempts, breached"
        f" FROM {table} ORDER BY event_id"
    )
    rows = questdb.wait_for_rows(select, count=COUNT)
    assert [
        {
            "event_id": event_id,
            "conversation_id": conversation_id,
            "metric": metric,
            "at": at.replace(tzinfo=UTC).isoformat(),
            "elapsed_s": elapsed_s,
            "attempts": attempts,
            "breached": breached,
        }
        for event_id, conversation_id, metric, at, elapsed_s, attempts, breached in rows
    ] == events

    _send(stack.questdb_ilp_conf, table, received)
    questdb.wait_for_wal(table)
    assert questdb.query(f"SELECT count() FROM {table}") == [(COUNT,)]
