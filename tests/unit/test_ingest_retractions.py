"""A failed delivery retracts the reply: the mappers emit SPEC §1 `message` `action: failed`."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from flows.ingest.chatwoot import ChatwootOptions, map_chatwoot, map_message
from flows.ingest.mapping import Mapped
from flows.ingest.whatsapp import WhatsAppOptions, map_whatsapp
from tests.ingestkit import (
    SECRET_TEXTS,
    WA_BSUID,
    WA_NUMBER_ID,
    WINDOW_CLOSED_ERROR,
    assert_spec_events,
    chatwoot_message,
    chatwoot_message_updated,
    contact_sender,
    dumps,
    user_sender,
    whatsapp_inbound,
    whatsapp_status,
)

pytestmark = pytest.mark.unit

OPTIONS = WhatsAppOptions(pseudonym_key=b"test-key")


def _whatsapp(body: dict[str, Any]) -> Mapped:
    mapped = map_whatsapp(orjson.dumps(body), OPTIONS)
    assert mapped.unmappable == []
    assert_spec_events(mapped.events)
    return mapped


def _chatwoot(payload: dict[str, Any]) -> Mapped:
    mapped = map_chatwoot(dumps(payload), "7")
    assert mapped.unmappable == []
    assert_spec_events(mapped.events)
    return mapped


# -- WhatsApp Cloud API -----------------------------------------------------------------------


def test_failed_status_retracts_the_reply_its_sent_status_mapped() -> None:
    """Error 131047 on a reply gives a retraction of exactly the `sent` event's message."""
    (sent,) = _whatsapp(whatsapp_status("wamid.R1", "sent", timestamp="1764644460")).events
    # Meta leaves `contacts` and the BSUID out of a failed status sent to a phone number.
    failed_body = whatsapp_status(
        "wamid.R1",
        "failed",
        timestamp="1764644462",
        user_id=None,
        contacts=False,
        errors=[WINDOW_CLOSED_ERROR],
    )
    (failed,) = _whatsapp(failed_body).events
    assert failed == {
        "event_id": f"wa:{WA_NUMBER_ID}:failed:wamid.R1",
        "type": "message",
        "action": "failed",
        "conversation_id": sent["conversation_id"],
        "occurred_at": 1_764_644_462_000,
        "message_id": sent["message_id"],
    }
    assert sent["message_id"] == "wamid.R1"


def test_failed_status_lands_in_the_customers_conversation() -> None:
    """The retraction's conversation is the one the customer's own messages are in."""
    (inbound,) = _whatsapp(whatsapp_inbound()).events
    failed = whatsapp_status("wamid.R2", "failed", user_id=None, contacts=False)
    assert _whatsapp(failed).events[0]["conversation_id"] == inbound["conversation_id"]


def test_failed_status_of_a_customer_known_only_by_bsuid() -> None:
    """A reply to a customer whose number is hidden is retracted in the BSUID conversation."""
    sent_body = whatsapp_status("wamid.R3", "sent", phone=None)
    (sent,) = _whatsapp(sent_body).events
    failed_body = whatsapp_status("wamid.R3", "failed", phone=WA_BSUID, contacts=False)
    (failed,) = _whatsapp(failed_body).events
    assert failed["conversation_id"] == sent["conversation_id"] == f"wa:{WA_NUMBER_ID}:{WA_BSUID}"
    assert failed["message_id"] == sent["message_id"]


def test_a_retried_failure_report_keeps_its_event_id() -> None:
    """Meta's retry of a failed status maps to the same event id (the monitor drops the copy)."""
    body = whatsapp_status("wamid.R4", "failed", errors=[WINDOW_CLOSED_ERROR])
    assert _whatsapp(body).events == _whatsapp(body).events


def test_failed_status_without_a_customer_is_a_dead_letter() -> None:
    """A failed status naming no customer at all cannot be placed: unmappable, with the reason."""
    body = whatsapp_status("wamid.R5", "failed", phone=None, user_id=None, contacts=False)
    mapped = map_whatsapp(orjson.dumps(body), OPTIONS)
    assert mapped.events == []
    assert mapped.unmappable == ["no customer id: neither a wa_id nor a user_id"]


# -- Chatwoot ---------------------------------------------------------------------------------


def test_chatwoot_failed_message_retracts_the_reply() -> None:
    """`message_updated` with `status: failed` retracts the reply its `message_created` mapped."""
    created = chatwoot_message(
        1002,
        message_type="outgoing",
        sender=user_sender(),
        created_at="2025-12-02T03:10:00.000Z",
    )
    (reply,) = _chatwoot(created).events
    (failed,) = _chatwoot(chatwoot_message_updated(1002)).events
    assert failed == {
        "event_id": "cw:7:m:1002:failed",
        "type": "message",
        "action": "failed",
        "conversation_id": reply["conversation_id"],
        "occurred_at": 1_764_645_004_500,
        "message_id": reply["message_id"],
    }


def test_chatwoot_failure_copies_no_error_text() -> None:
    """The platform's `external_error` and the message text never reach the event."""
    payload = chatwoot_message_updated(1002, external_error="Siti Nurhaliza is not on WhatsApp")
    text = orjson.dumps(_chatwoot(payload).events).decode()
    assert "Siti Nurhaliza" not in text
    assert not any(secret in text for secret in SECRET_TEXTS)


@pytest.mark.parametrize("status", ["failed", 3, "3"])
def test_chatwoot_failed_status_in_every_spelling(status: object) -> None:
    """`failed` as text, as Chatwoot's integer 3, or as its digits all retract."""
    (failed,) = _chatwoot(chatwoot_message_updated(1002, status=status)).events  # type: ignore[arg-type]
    assert failed["action"] == "failed"


def test_chatwoot_failure_time_falls_back_to_the_conversation_then_the_message() -> None:
    """Without the message's `updated_at` the conversation's is used, never before `created_at`."""
    payload = chatwoot_message_updated(1002, updated_at=None)
    payload["conversation"]["updated_at"] = 1_764_645_007.25
    assert _chatwoot(payload).events[0]["occurred_at"] == 1_764_645_007_250
    payload["conversation"]["updated_at"] = 1_764_600_000
    assert _chatwoot(payload).events[0]["occurred_at"] == 1_764_645_000_000


def test_chatwoot_failed_template_is_retracted() -> None:
    """A WhatsApp template Chatwoot could not send is retracted like any reply."""
    (failed,) = _chatwoot(chatwoot_message_updated(1005, message_type="template")).events
    assert failed["message_id"] == "1005"


@pytest.mark.parametrize(("message_type", "private"), [("incoming", False), ("outgoing", True)])
def test_chatwoot_failed_incoming_or_note_retracts_nothing(
    message_type: str, private: bool
) -> None:
    """A failed customer message or internal note was no reply: ignored and counted."""
    payload = chatwoot_message_updated(message_type=message_type)
    payload["private"] = private
    mapped = _chatwoot(payload)
    assert mapped.events == []
    assert [i.kind for i in mapped.ignored] == ["message_failed_not_outbound"]


def test_rest_message_already_failed_is_mapped_and_retracted() -> None:
    """A catch-up reading a failed reply maps the reply and its retraction, in that order."""
    message = {
        "id": 1003,
        "message_type": 1,
        "status": "failed",
        "created_at": 1_764_645_000,
        "updated_at": "2025-12-02T03:10:02.000Z",
        "sender": {"id": 7, "type": "user"},
    }
    out = Mapped()
    map_message(message, "7", ChatwootOptions(), out, display_id=42)
    assert [(e["event_id"], e["occurred_at"]) for e in out.events] == [
        ("cw:7:m:1003", 1_764_645_000_000),
        ("cw:7:m:1003:failed", 1_764_645_002_000),
    ]


def test_customer_message_with_a_failed_status_is_not_retracted() -> None:
    """Only outbound messages are retracted: an incoming message's status changes nothing."""
    payload = chatwoot_message(sender=contact_sender())
    payload["status"] = "failed"
    assert [e["direction"] for e in _chatwoot(payload).events] == ["inbound"]
