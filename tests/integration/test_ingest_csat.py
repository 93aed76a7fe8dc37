"""Chatwoot CSAT through the real receiver and Kafka: surveys in, the comment nowhere."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import Consumer

from flows.core.policies import load_policies
from flows.core.records import CsatRecord, SlaRecord
from flows.devstack import Endpoints
from flows.ingest.app import KafkaSink, Metrics, create_app, running
from flows.ingest.settings import IngestSettings
from flows.replay import replay_records
from tests.ingestkit import (
    CSAT_FEEDBACK,
    change,
    chatwoot_activity,
    chatwoot_conversation_event,
    chatwoot_csat_message,
    chatwoot_message,
    contact_sender,
    user_sender,
)
from tests.integration.kafkakit import consume_at_least

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

POLICY = """
policies:
  - id: default
    targets:
      first_response: {within: 5m}
      resolution: {within: 8h}
"""


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _consume(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"t-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    try:
        messages = consume_at_least(consumer, count, timeout=30, what=f"on {topic}", settle_s=1.0)
    finally:
        consumer.close()
    return [m.value() or b"" for m in messages]


def test_chatwoot_survey_rating_and_re_rating_reach_kafka_without_the_comment(
    stack: Endpoints, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    """A resolved conversation's CSAT message, its rating 5, a re-rating to 2 and a rating of 9,
    and another conversation's "survey not sent" activity, posted to the receiver: Kafka holds
    survey sent / rated / rated / not_sent, one dead letter names the bad rating, the customer's
    comment is in neither topic, and the replayed monitor rates the cycle 2, credited to the
    agent who answered, with first response met once."""
    topic = make_topic(prefix="ingest-csat")
    deadletters = make_topic(prefix="ingest-csat-dl")
    settings = IngestSettings(
        bootstrap_servers=stack.bootstrap_servers,
        topic=topic,
        deadletter_topic=deadletters,
        verify={"chatwoot": "off"},
    )
    t0 = int(time.time()) - 3 * 3600
    conv: dict[str, Any] = {"display_id": 81, "created_at": t0}
    payloads = [
        chatwoot_conversation_event("conversation_created", **conv),
        chatwoot_message(8101, sender=contact_sender(), created_at=_iso(t0 + 5), display_id=81),
        chatwoot_message(
            8102,
            message_type="outgoing",
            sender=user_sender(9),
            created_at=_iso(t0 + 120),
            display_id=81,
        ),
        chatwoot_conversation_event(
            "conversation_status_changed",
            changed=[change("status", "open", "resolved"), change("updated_at", 0, t0 + 600)],
            **conv,
        ),
        chatwoot_csat_message(8103, created_at=_iso(t0 + 600), display_id=81),
        chatwoot_csat_message(
            8103, event="message_updated", rating=5, updated_at=t0 + 900, display_id=81
        ),
        chatwoot_csat_message(
            8103, event="message_updated", rating=2, updated_at=t0 + 1500, display_id=81
        ),
        chatwoot_csat_message(
            8103, event="message_updated", rating=9, updated_at=t0 + 1600, display_id=81
        ),
        chatwoot_activity(8201, created_at=_iso(t0 + 700), display_id=82),
    ]
    dead = 0
    with running(
        create_app(settings, KafkaSink(settings.producer_config()), metrics=Metrics())
    ) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            for payload in payloads:
                response = client.post("/webhooks/chatwoot/7", content=orjson.dumps(payload))
                assert response.status_code == 200, response.text
                dead += response.json()["dead_letters"]
    assert dead == 1

    values = _consume(stack.bootstrap_servers, topic, 8)
    letters = _consume(stack.bootstrap_servers, deadletters, 1)
    surveys = [orjson.loads(v) for v in values if orjson.loads(v)["type"] == "survey"]
    assert [(s["conversation_id"], s["action"], s.get("rating")) for s in surveys] == [
        ("cw:7:81", "sent", None),
        ("cw:7:81", "rated", 5),
        ("cw:7:81", "rated", 2),
        ("cw:7:82", "not_sent", None),
    ]
    assert not any(
        orjson.loads(v)["type"] == "message" and orjson.loads(v)["message_id"] == "8103"
        for v in values
    )
    (letter,) = [orjson.loads(v) for v in letters]
    assert "CSAT rating must be an integer from 1 to 5, not 9" in letter["reason"]
    for raw in (*values, *letters):
        assert CSAT_FEEDBACK.encode() not in raw
        assert b"kecewa" not in raw

    (tmp_path / "policies.yaml").write_text(POLICY)
    records = list(replay_records(values, load_policies(tmp_path / "policies.yaml")))
    met = [r for r in records if isinstance(r, SlaRecord) and r.status == "met"]
    assert [(r.metric, r.at // 1000 - t0) for r in met] == [
        ("first_response", 120),
        ("resolution", 600),
    ]
    csat = [r for r in records if isinstance(r, CsatRecord)]
    assert [(r.cycle, r.rating, r.agent_id) for r in csat][-1] == (1, 2, "9")
    assert csat[-1].rated_at is not None and csat[-1].rated_at // 1000 == t0 + 1500
