"""Chatwoot webhooks map to SPEC events: one test per row of docs/INTEGRATIONS.md's table."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from flows.core.decode import decode_event
from flows.core.events import Rejected
from flows.ingest.chatwoot import ChatwootOptions, map_chatwoot
from flows.ingest.mapping import Mapped
from tests.ingestkit import (
    bot_sender,
    change,
    chatwoot_conversation_event,
    chatwoot_message,
    contact_sender,
    dumps,
    user_sender,
)
from tests.schemakit import validator

pytestmark = pytest.mark.unit

OPTIONS = ChatwootOptions(segment_labels=("vip",))


def _map(payload: dict[str, Any], account: str = "7") -> Mapped:
    mapped = map_chatwoot(dumps(payload), account, OPTIONS)
    for event in mapped.events:
        validator("event.schema.json").validate(event)
        assert not isinstance(decode_event(orjson.dumps(event)), Rejected)
    return mapped


def _only(payload: dict[str, Any]) -> dict[str, Any]:
    mapped = _map(payload)
    assert mapped.unmappable == []
    assert len(mapped.events) == 1, mapped.events
    return mapped.events[0]


# -- messages ---------------------------------------------------------------------------------


def test_incoming_message_is_a_customer_message_of_the_url_account() -> None:
    """An incoming message is inbound from the customer, in `cw:{account}:{display_id}`."""
    event = _only(chatwoot_message(1001, sender=contact_sender()))
    assert (event["direction"], event["author"], event["kind"]) == ("inbound", "customer", "text")
    assert event["conversation_id"] == "cw:7:42"
    assert event["event_id"] == "cw:7:m:1001"
    assert event["occurred_at"] == 1764644405250


def test_outgoing_message_by_a_user_is_an_agent_reply() -> None:
    """An outgoing message with a `user` sender is an agent reply with the user's id."""
    event = _only(chatwoot_message(message_type="outgoing", sender=user_sender(9)))
    assert (event["direction"], event["author"], event["agent_id"]) == ("outbound", "agent", "9")
    assert event["kind"] == "text"


def test_private_note_is_never_a_reply() -> None:
    """A private note maps to `kind: note` (which never stops a reply clock)."""
    event = _only(chatwoot_message(message_type="outgoing", sender=user_sender(), private=True))
    assert (event["kind"], event["author"], event["direction"]) == ("note", "agent", "outbound")


def test_template_message_is_a_bot_template() -> None:
    """A Chatwoot `template` message is `kind: template` (never closes the service window)."""
    event = _only(chatwoot_message(message_type="template", sender=None))
    assert (event["kind"], event["author"], event["direction"]) == ("template", "bot", "outbound")


def test_whatsapp_template_sent_by_an_agent_keeps_the_agent() -> None:
    """An outgoing message with WhatsApp `template_params` is an agent's `template`."""
    payload = chatwoot_message(
        message_type="outgoing",
        sender=user_sender(4),
        additional_attributes={"template_params": {"name": "follow_up", "language": "id"}},
    )
    event = _only(payload)
    assert (event["kind"], event["author"], event["agent_id"]) == ("template", "agent", "4")


@pytest.mark.parametrize("kind", ["agent_bot", "captain_assistant"])
def test_bot_and_captain_senders_are_bots(kind: str) -> None:
    """Agent bots and Captain assistants write as `bot` (no agent id)."""
    event = _only(chatwoot_message(message_type="outgoing", sender=bot_sender(kind)))
    assert event["author"] == "bot"
    assert "agent_id" not in event


def test_null_sender_is_system_by_default_and_configurable() -> None:
    """An outgoing message with no sender is `system`, or the configured author."""
    payload = chatwoot_message(message_type="outgoing", sender=None)
    assert _only(payload)["author"] == "system"
    options = ChatwootOptions(null_sender_author="agent", null_sender_agent="bridge")
    event = map_chatwoot(dumps(payload), "7", options).events[0]
    assert (event["author"], event["agent_id"]) == ("agent", "bridge")


def test_incoming_message_from_a_user_is_accepted_and_flagged() -> None:
    """An incoming message with a `user` sender is a customer message, flagged for a counter."""
    mapped = _map(chatwoot_message(sender=user_sender()))
    assert [e["author"] for e in mapped.events] == ["customer"]
    assert mapped.flags == ["incoming_user_sender"]


def test_attachment_makes_a_media_message() -> None:
    """A message with attachments is `kind: media`."""
    payload = chatwoot_message(sender=contact_sender(), attachments=[{"file_type": "image"}])
    assert _only(payload)["kind"] == "media"


def test_activity_message_is_ignored() -> None:
    """Activity messages ("conversation was resolved by ...") are ignored and counted."""
    mapped = _map(chatwoot_message(message_type="activity", sender=None))
    assert mapped.events == []
    assert [i.kind for i in mapped.ignored] == ["activity_message"]


def test_integer_message_type_from_conversation_messages() -> None:
    """The integer `message_type` (0 incoming, 1 outgoing) maps like the string form."""
    payload = chatwoot_message(message_type="outgoing", sender=user_sender())
    payload["message_type"] = 1
    assert _only(payload)["direction"] == "outbound"


# -- conversations ----------------------------------------------------------------------------


def test_conversation_created_opens_with_attributes_and_assignee() -> None:
    """A created conversation opens with bot handling, priority, team, custom attributes."""
    payload = chatwoot_conversation_event(
        "conversation_created",
        status="pending",
        assignee=5,
        team=3,
        priority="urgent",
        custom_attributes={"lead_source": "pricing", "lead_status": "new", "segment": "vip"},
        labels=["promo"],
    )
    opened, assigned = _map(payload).events
    assert opened["action"] == "opened"
    assert opened["handled_by"] == "bot"
    assert (opened["priority"], opened["team_id"]) == ("P1", "3")
    assert (opened["lead_source"], opened["lead_status"], opened["segment"]) == (
        "pricing",
        "new",
        "vip",
    )
    assert opened["tags"] == ["promo"]
    assert (assigned["type"], assigned["action"], assigned["agent_id"]) == (
        "assignment",
        "assigned",
        "5",
    )
    assert opened["occurred_at"] == 1_764_644_400_000


def test_assignee_change_assigns_and_unassigns() -> None:
    """`assignee_id` in `changed_attributes` assigns the new agent, or unassigns on null."""
    assign = chatwoot_conversation_event(
        "conversation_updated", changed=[change("assignee_id", None, 12)]
    )
    event = _only(assign)
    assert (event["type"], event["action"], event["agent_id"]) == ("assignment", "assigned", "12")
    assert event["occurred_at"] == 1_764_644_460_123
    drop = chatwoot_conversation_event(
        "conversation_updated", changed=[change("assignee_id", 12, None)]
    )
    assert _only(drop)["action"] == "unassigned"


def test_team_change_sets_team_id() -> None:
    """`team_id` in `changed_attributes` updates the conversation's team."""
    payload = chatwoot_conversation_event(
        "conversation_updated", changed=[change("team_id", None, 3)]
    )
    event = _only(payload)
    assert (event["action"], event["team_id"]) == ("updated", "3")


def test_bot_handoff_is_handled_by_human() -> None:
    """`pending → open` (bot hand-off) sets `handled_by: human` and `status: open`."""
    payload = chatwoot_conversation_event(
        "conversation_status_changed", changed=[change("status", "pending", "open")]
    )
    event = _only(payload)
    assert (event["action"], event["handled_by"], event["status"]) == ("updated", "human", "open")


def test_resolve_carries_the_configured_outcome() -> None:
    """`→ resolved` ends the cycle, with `outcome` from the configured custom attribute."""
    payload = chatwoot_conversation_event(
        "conversation_status_changed",
        changed=[change("status", "open", "resolved")],
        custom_attributes={"outcome": "won"},
    )
    event = _only(payload)
    assert (event["action"], event["outcome"]) == ("resolved", "won")


def test_resolved_to_open_reopens() -> None:
    """`resolved → open` is `reopened` (an incoming message on a resolved conversation)."""
    payload = chatwoot_conversation_event(
        "conversation_status_changed", changed=[change("status", "resolved", "open")]
    )
    assert _only(payload)["action"] == "reopened"


def test_snooze_is_pending_and_wake_is_open() -> None:
    """`→ snoozed` sets `status: pending` (waiting on the customer); `snoozed → open` reopens it."""
    snooze = chatwoot_conversation_event(
        "conversation_updated", changed=[change("status", "open", "snoozed")]
    )
    assert _only(snooze)["status"] == "pending"
    wake = chatwoot_conversation_event(
        "conversation_updated", changed=[change("status", "snoozed", "open")]
    )
    event = _only(wake)
    assert event["status"] == "open" and "handled_by" not in event


def test_open_to_pending_hands_back_to_the_bot() -> None:
    """`open → pending` sets `handled_by: bot`."""
    payload = chatwoot_conversation_event(
        "conversation_updated", changed=[change("status", "open", "pending")]
    )
    assert _only(payload)["handled_by"] == "bot"


@pytest.mark.parametrize(
    ("priority", "expected"),
    [("urgent", "P1"), ("high", "P2"), ("medium", "P3"), ("low", "P4"), (None, None)],
)
def test_priority_maps_to_p1_p4(priority: str | None, expected: str | None) -> None:
    """Chatwoot priorities become P1..P4; a cleared priority clears the attribute."""
    payload = chatwoot_conversation_event(
        "conversation_updated", changed=[change("priority", "low", priority)]
    )
    assert _only(payload)["priority"] == expected


def test_labels_become_tags_and_segment_labels_set_the_segment() -> None:
    """Labels set `tags`; a configured segment label (vip) also sets `segment`."""
    payload = chatwoot_conversation_event(
        "conversation_updated", changed=[change("label_list", [], ["vip", "promo"])]
    )
    event = _only(payload)
    assert event["tags"] == ["vip", "promo"]
    assert event["segment"] == "vip"


def test_custom_attributes_set_lead_fields_and_bad_lead_status_is_ignored() -> None:
    """Configured custom attributes set lead source/status; an unknown status is ignored."""
    payload = chatwoot_conversation_event(
        "conversation_updated",
        changed=[
            change("custom_attributes", {}, {"lead_source": "demo_request", "lead_status": "Hot"})
        ],
    )
    mapped = _map(payload)
    (event,) = mapped.events
    assert event["lead_source"] == "demo_request"
    assert "lead_status" not in event
    assert [i.kind for i in mapped.ignored] == ["bad_lead_status"]


def test_null_changed_attributes_are_ignored() -> None:
    """A `conversation_updated` with `changed_attributes: null` is counted as ignored."""
    mapped = _map(chatwoot_conversation_event("conversation_updated", changed=None))
    assert mapped.events == [] and mapped.unmappable == []
    assert [i.kind for i in mapped.ignored] == ["no_changes"]


def test_one_status_change_fired_twice_maps_to_the_same_event() -> None:
    """`conversation_status_changed` and `conversation_updated` of one change share event ids."""
    changed = [change("status", "open", "resolved"), change("updated_at", 1.0, 1_764_644_470.5)]
    first = _only(chatwoot_conversation_event("conversation_status_changed", changed=changed))
    second = _only(chatwoot_conversation_event("conversation_updated", changed=changed))
    assert first == second
    assert first["occurred_at"] == 1_764_644_470_500


def test_quiet_changes_are_ignored() -> None:
    """A change of only bookkeeping fields (`waiting_since`, `updated_at`) yields no event."""
    payload = chatwoot_conversation_event(
        "conversation_updated", changed=[change("waiting_since", None, 1_764_644_400)]
    )
    mapped = _map(payload)
    assert mapped.events == []
    assert [i.kind for i in mapped.ignored] == ["no_sla_change"]


@pytest.mark.parametrize(
    "event", ["contact_created", "contact_updated", "conversation_typing_on", "webwidget_triggered"]
)
def test_contact_and_typing_events_are_ignored_not_dead_lettered(event: str) -> None:
    """Contact, typing and widget events are counted under their name, never refused."""
    mapped = _map({"event": event, "id": 1, "name": "Siti Nurhaliza"})
    assert mapped.events == [] and mapped.unmappable == []
    assert [i.kind for i in mapped.ignored] == [event]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"event": "invoice_paid"}, "unknown Chatwoot event"),
        ({"event": "message_created", "message_type": "incoming", "id": 3}, "conversation id"),
        (
            {"event": "message_created", "message_type": "incoming", "id": 3, "conversation_id": 4},
            "created_at",
        ),
    ],
)
def test_unmappable_payloads_give_a_reason(payload: dict[str, Any], reason: str) -> None:
    """An unknown event or a message without a conversation or time is unmappable, with why."""
    mapped = _map(payload)
    assert mapped.events == []
    assert len(mapped.unmappable) == 1
    assert reason in mapped.unmappable[0]


def test_agent_bot_status_events_map_like_status_changes() -> None:
    """Agent-bot `conversation_resolved` / `conversation_opened` map from the current status."""
    resolved = chatwoot_conversation_event("conversation_status_changed", changed=None)
    resolved.update(event="conversation_resolved", status="resolved")
    event = _only(resolved)
    assert event["action"] == "resolved"
    same = chatwoot_conversation_event(
        "conversation_status_changed", changed=[change("status", "open", "resolved")]
    )
    assert _only(same)["event_id"] == event["event_id"]
    opened = chatwoot_conversation_event("conversation_status_changed", changed=None)
    opened.update(event="conversation_opened", status="open")
    assert _only(opened)["handled_by"] == "human"


def test_automation_webhooks_are_ignored() -> None:
    """Automation-rule webhooks (`automation_event.*`) repeat account events: ignored, counted."""
    payload = chatwoot_conversation_event("conversation_created")
    payload["event"] = "automation_event.conversation_created"
    mapped = _map(payload)
    assert mapped.events == [] and mapped.unmappable == []
    assert [i.kind for i in mapped.ignored] == ["automation_event"]


def test_unreadable_change_time_falls_back_to_the_conversation_time() -> None:
    """A changed `updated_at` in another format falls back to the conversation's `updated_at`."""
    payload = chatwoot_conversation_event(
        "conversation_updated",
        changed=[
            change("updated_at", None, "yesterday"),
            change("priority", None, "high"),
        ],
    )
    assert _only(payload)["occurred_at"] == 1_764_644_460_123


@pytest.mark.parametrize(
    "created_at",
    ["2025-12-02T03:00:05.250Z", "2025-12-02T10:00:05.250+07:00", "2025-12-02 03:00:05.250 UTC",
     "2025-12-02T03:00:05.250", 1764644405.25, 1764644405250],
)  # fmt: skip
def test_message_times_in_every_chatwoot_format(created_at: object) -> None:
    """ISO with Z or offset, Ruby's `... UTC`, zone-less ISO (UTC), epoch s and ms all read."""
    payload = chatwoot_message(sender=contact_sender())
    payload["created_at"] = created_at
    assert _only(payload)["occurred_at"] == 1764644405250
