"""Mapped inbox events drive the SLA engine as a supervisor expects (replayed, no services)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from flows.core.policies import parse_policies
from flows.core.records import SlaRecord
from flows.ingest.chatwoot import map_chatwoot
from flows.ingest.whatsapp import WhatsAppOptions, map_whatsapp
from flows.replay import replay_records
from tests.ingestkit import (
    change,
    chatwoot_conversation_event,
    chatwoot_message,
    contact_sender,
    dumps,
    user_sender,
    whatsapp_sample,
)

pytestmark = pytest.mark.unit

POLICIES = parse_policies(
    """
policies:
  - id: default
    targets:
      first_response: {within: 5m}
      service_window: {within: 24h}
"""
)


def _final(events: list[dict[str, Any]], metric: str) -> str:
    lines = [orjson.dumps(e) for e in sorted(events, key=lambda e: e["occurred_at"])]
    records = [
        r
        for r in replay_records(lines, POLICIES)
        if isinstance(r, SlaRecord) and r.metric == metric
    ]
    assert records, f"no {metric} clock"
    return records[-1].status


def _iso(minutes: int) -> str:
    return f"2025-12-02T03:{minutes:02d}:00Z"


def test_private_note_does_not_answer_but_the_agent_reply_does() -> None:
    """A Chatwoot note a minute in stops nothing; the agent's reply at 10 min is a late answer."""
    payloads = [
        chatwoot_message(1, sender=contact_sender(), created_at=_iso(0)),
        chatwoot_message(
            2, message_type="outgoing", sender=user_sender(), private=True, created_at=_iso(1)
        ),
        chatwoot_message(3, message_type="outgoing", sender=user_sender(), created_at=_iso(10)),
    ]
    events = [e for p in payloads for e in map_chatwoot(dumps(p), "7").events]
    assert _final(events, "first_response") == "stopped"
    on_time = [e for e in events if e["event_id"] != "cw:7:m:2"]
    on_time[-1]["occurred_at"] -= 6 * 60_000
    assert _final(on_time, "first_response") == "met"


def test_bot_handoff_starts_the_human_reply_clock() -> None:
    """While the bot holds the chat no reply clock runs; the hand-off (pending → open) starts it."""
    created = chatwoot_conversation_event(
        "conversation_created", status="pending", created_at=1_764_644_340
    )
    handoff = chatwoot_conversation_event(
        "conversation_status_changed",
        changed=[change("status", "pending", "open"), change("updated_at", 0, 1_764_644_700)],
    )
    payloads = [created, chatwoot_message(1, sender=contact_sender(), created_at=_iso(0))]
    events = [e for p in payloads for e in map_chatwoot(dumps(p), "7").events]
    lines = [orjson.dumps(e) for e in events]
    assert not any(
        isinstance(r, SlaRecord) and r.metric == "first_response"
        for r in replay_records(lines, POLICIES)
    )
    events += map_chatwoot(dumps(handoff), "7").events
    assert _final(events, "first_response") == "started"


def test_whatsapp_echo_answers_the_text_sample() -> None:
    """The Business-app echo answers the customer of sample 01: first response and window met."""
    options = WhatsAppOptions(pseudonym_key=b"k")
    events = [
        *map_whatsapp(whatsapp_sample("01_message_text.json"), options).events,
        *map_whatsapp(
            whatsapp_sample("10_smb_message_echo_business_app_text.json"), options
        ).events,
    ]
    assert _final(events, "first_response") == "met"
    assert _final(events, "service_window") == "met"
