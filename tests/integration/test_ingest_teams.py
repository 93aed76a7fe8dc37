"""Chatwoot team hand-overs through the real receiver and Kafka reach the OLA as mapped teams."""

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
from flows.core.records import SlaRecord
from flows.devstack import Endpoints
from flows.ingest.app import KafkaSink, Metrics, create_app, running
from flows.ingest.settings import IngestSettings
from flows.replay import replay_records
from tests.ingestkit import change, chatwoot_conversation_event, chatwoot_message, contact_sender
from tests.integration.kafkakit import consume_at_least

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

POLICY = """
policies:
  - id: default
    targets:
      resolution: {within: 8h}
      team_ownership: {l1: 30m, l2: 4h}
"""


def _iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def test_chatwoot_team_hand_over_reaches_kafka_and_ends_the_first_teams_stint(
    stack: Endpoints, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    """Webhooks of a conversation handed from Chatwoot team 3 to team 4, posted to the receiver
    with CHATWOOT_TEAMS {3: l1, 4: l2}: Kafka holds `team_id` l1 then l2, and the replayed
    monitor gives l1's stint met at the hand-over and l2's met at the resolve."""
    topic = make_topic(prefix="ingest-teams")
    settings = IngestSettings(
        bootstrap_servers=stack.bootstrap_servers,
        topic=topic,
        deadletter_topic=make_topic(prefix="ingest-teams-dl"),
        verify={"chatwoot": "off"},
        chatwoot_teams={"3": "l1", "4": "l2"},
    )
    t0 = int(time.time()) - 3600
    conv: dict[str, Any] = {"display_id": 77, "created_at": t0}
    payloads = [
        chatwoot_conversation_event("conversation_created", team=3, **conv),
        chatwoot_message(7701, sender=contact_sender(), created_at=_iso(t0 + 5), display_id=77),
        chatwoot_conversation_event(
            "conversation_updated",
            changed=[change("team_id", 3, 4), change("updated_at", 0, t0 + 300)],
            team=4,
            **conv,
        ),
        chatwoot_conversation_event(
            "conversation_status_changed",
            changed=[change("status", "open", "resolved"), change("updated_at", 0, t0 + 900)],
            team=4,
            **conv,
        ),
    ]
    with running(
        create_app(settings, KafkaSink(settings.producer_config()), metrics=Metrics())
    ) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            for payload in payloads:
                response = client.post("/webhooks/chatwoot/7", content=orjson.dumps(payload))
                assert response.status_code == 200, response.text
                assert response.json()["dead_letters"] == 0

    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap_servers,
            "group.id": f"t-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    try:
        messages = consume_at_least(consumer, 4, timeout=30, what=f"on {topic}", settle_s=1.0)
    finally:
        consumer.close()
    values = [m.value() or b"" for m in messages]
    events = [orjson.loads(v) for v in values]
    assert [e["team_id"] for e in events if "team_id" in e] == ["l1", "l2"]

    (tmp_path / "policies.yaml").write_text(POLICY)
    records = replay_records(values, load_policies(tmp_path / "policies.yaml"))
    stints = [
        (r.seq, r.status, r.team_id, r.at // 1000 - t0)
        for r in records
        if isinstance(r, SlaRecord) and r.metric == "team_ownership"
    ]
    assert stints == [
        (1, "started", "l1", 0),
        (1, "met", "l1", 300),
        (2, "started", "l2", 300),
        (2, "met", "l2", 900),
    ]
