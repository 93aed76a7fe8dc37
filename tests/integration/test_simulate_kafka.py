"""`slawatch simulate` live to a real Kafka: every event arrives, keyed by conversation, valid."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from flows.cli import main
from flows.core.decode import decode_event
from flows.core.events import Rejected
from flows.devstack import Endpoints
from tests.integration.kafkakit import consume_at_least

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]


def _consume(
    bootstrap: str, topic: str, partitions: int, count: int
) -> list[tuple[int, bytes, bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4()}"})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    try:
        messages = consume_at_least(consumer, count, timeout=60, what=f"simulated on {topic}")
    finally:
        consumer.close()
    return [(msg.partition(), msg.key(), msg.value()) for msg in messages]


def test_live_simulation_reaches_kafka_keyed_by_conversation(
    stack: Endpoints, make_topic: Callable[..., str]
) -> None:
    """An accelerated live run delivers every event, keyed by conversation, stamped near now."""
    topic = make_topic(3)
    before = time.time_ns() // 1_000_000
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--business",
            str(ROOT / "examples" / "demo-business.yaml"),
            "--bootstrap-servers",
            stack.bootstrap_servers,
            "--topic",
            topic,
            "--seed",
            "3",
            "--days",
            "0.05",
            "--speed",
            "3600",
        ],
    )
    after = time.time_ns() // 1_000_000
    assert result.exit_code == 0, result.output
    match = re.search(r"(\d+) events", result.output)
    assert match is not None, result.output
    expected = int(match.group(1))
    assert expected > 0
    got = _consume(stack.bootstrap_servers, topic, 3, expected)
    assert len(got) == expected
    partitions: dict[bytes, set[int]] = {}
    for partition, key, value in got:
        event = decode_event(value, now=after)
        assert not isinstance(event, Rejected), event
        assert key == event.conversation_id.encode()
        assert before - 5_000 <= event.occurred_at <= after
        partitions.setdefault(key, set()).add(partition)
    assert len(partitions) > 1
    assert all(len(p) == 1 for p in partitions.values()), "a conversation stays on one partition"
    assert len({p for ps in partitions.values() for p in ps}) > 1
