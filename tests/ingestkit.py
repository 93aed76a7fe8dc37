"""Webhook payloads for the ingestion tests: the real WhatsApp samples and Chatwoot builders.

The Chatwoot builders follow the documented webhook shapes (`../shared/notes/inboxes.md`,
Chatwoot's `webhook_data` / `push_event_data`): flat payloads with `event`, a message's
`conversation` and `sender`, a conversation's `meta`, `changed_attributes` as a list of
single-key objects. Payloads carry plenty of text, names and phone numbers on purpose, so the
privacy tests can look for them downstream.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import orjson
import pytest

from flows.core.decode import decode_event
from flows.core.events import Rejected
from tests.schemakit import validator

ROOT = Path(__file__).resolve().parents[1]
WHATSAPP_SAMPLES = ROOT.parent / "shared" / "data" / "whatsapp_cloud"

#: Strings in the payloads built here that must never leave the receiver.
SECRET_TEXTS = (
    "Hola, saya mau tanya harga paket premium",
    "Rahasia pelanggan nomor satu",
    "Siti Nurhaliza",
    "+62 812-3456-7890",
    "6281234567890",
    "siti@example.com",
    "Budi Santoso",
    "catatan internal jangan bocor",
    "caption rahasia foto KTP",
)


def whatsapp_sample(name: str) -> bytes:
    """Return the bytes of one real WhatsApp Cloud API sample, or skip when they are absent."""
    path = WHATSAPP_SAMPLES / name
    if not path.exists():
        pytest.skip(f"real WhatsApp samples not found at {WHATSAPP_SAMPLES}")
    return path.read_bytes()


def dumps(payload: dict[str, Any]) -> bytes:
    """Serialise a payload the way a platform would send it."""
    return orjson.dumps(payload)


def contact_sender(contact_id: int = 31) -> dict[str, Any]:
    """A Chatwoot Contact as a message sender (no `type` key in webhooks)."""
    return {
        "id": contact_id,
        "name": "Siti Nurhaliza",
        "email": "siti@example.com",
        "phone_number": "+62 812-3456-7890",
        "identifier": None,
        "thumbnail": "",
        "additional_attributes": {},
        "custom_attributes": {},
    }


def user_sender(user_id: int = 7) -> dict[str, Any]:
    """A Chatwoot User (an agent) as a message sender."""
    return {
        "id": user_id,
        "name": "Budi Santoso",
        "email": "budi@example.com",
        "type": "user",
        "available_name": "Budi Santoso",
        "avatar_url": "",
        "availability_status": "online",
    }


def bot_sender(kind: str = "agent_bot") -> dict[str, Any]:
    """An AgentBot (`agent_bot`) or Captain assistant (`captain_assistant`) sender."""
    return {"id": 3, "name": "Asisten", "type": kind}


def chatwoot_conversation_data(
    display_id: int = 42,
    *,
    status: str = "open",
    assignee: int | None = None,
    team: int | None = None,
    priority: str | None = None,
    custom_attributes: dict[str, Any] | None = None,
    labels: list[str] | None = None,
    created_at: int = 1_764_644_400,
    updated_at: float = 1_764_644_460.123,
    channel: str | None = "Channel::Whatsapp",
    source_id: str = "6281234567890",
    inbox_id: int = 2,
) -> dict[str, Any]:
    """A conversation's `webhook_data` (`id` is the per-account display id).

    `channel` is the inbox's channel type (None leaves the key out), `source_id` how the inbox
    addresses the contact (a phone number, `whatsapp:+…` for Twilio, a JID for bridges).
    """
    data: dict[str, Any] = {
        "additional_attributes": {"browser": {"device_name": "Siti's phone"}},
        "can_reply": True,
        "channel": channel,
        "contact_inbox": {"source_id": source_id},
        "id": display_id,
        "inbox_id": inbox_id,
        "messages": [],
        "labels": labels or [],
        "meta": {
            "sender": contact_sender(),
            "assignee": None if assignee is None else user_sender(assignee),
            "team": None if team is None else {"id": team, "name": "sales"},
            "hmac_verified": False,
        },
        "status": status,
        "custom_attributes": custom_attributes or {},
        "snoozed_until": None,
        "unread_count": 1,
        "first_reply_created_at": None,
        "priority": priority,
        "waiting_since": created_at,
        "agent_last_seen_at": 0,
        "contact_last_seen_at": 0,
        "last_activity_at": created_at,
        "timestamp": created_at,
        "created_at": created_at,
        "updated_at": updated_at,
    }
    if channel is None:
        del data["channel"]
    return data


def chatwoot_message(
    message_id: int = 1001,
    *,
    message_type: str = "incoming",
    sender: dict[str, Any] | None = None,
    private: bool = False,
    content: str = "Hola, saya mau tanya harga paket premium",
    created_at: str = "2025-12-02T03:00:05.250Z",
    display_id: int = 42,
    attachments: list[dict[str, Any]] | None = None,
    additional_attributes: dict[str, Any] | None = None,
    channel: str | None = "Channel::Whatsapp",
    source_id: str = "6281234567890",
    inbox_id: int = 2,
) -> dict[str, Any]:
    """A `message_created` webhook payload from an inbox of channel type `channel`."""
    conversation = chatwoot_conversation_data(
        display_id, channel=channel, source_id=source_id, inbox_id=inbox_id
    )
    payload: dict[str, Any] = {
        "event": "message_created",
        "account": {"id": 1, "name": "Toko Maju"},
        "additional_attributes": additional_attributes or {},
        "content_attributes": {},
        "content_type": "text",
        "content": content,
        "conversation": conversation,
        "created_at": created_at,
        "id": message_id,
        "inbox": {"id": inbox_id, "name": "Toko Maju"},
        "message_type": message_type,
        "private": private,
        "sender": sender,
        "source_id": "wamid.HBgN",
    }
    if attachments is not None:
        payload["attachments"] = attachments
    return payload


def chatwoot_message_updated(
    message_id: int = 1002,
    *,
    status: str | int = "failed",
    message_type: str | int = "outgoing",
    external_error: str | None = "(#131047) Re-engagement message",
    created_at: str = "2025-12-02T03:10:00.000Z",
    updated_at: str | float | None = "2025-12-02T03:10:04.500Z",
    display_id: int = 42,
) -> dict[str, Any]:
    """A `message_updated` webhook payload: an agent's reply whose `status` changed."""
    payload = chatwoot_message(
        message_id,
        message_type="outgoing",
        sender=user_sender(),
        content="Baik kak, harga paket premium Rp 250.000",
        created_at=created_at,
        display_id=display_id,
    )
    payload.update(event="message_updated", message_type=message_type, status=status)
    if external_error is not None:
        payload["content_attributes"] = {"external_error": external_error}
    if updated_at is not None:
        payload["updated_at"] = updated_at
    return payload


#: The comment a customer leaves with a CSAT rating: content, which must never leave the receiver.
CSAT_FEEDBACK = "agen Budi lambat sekali, saya kecewa berat"


def chatwoot_csat_message(
    message_id: int = 1050,
    *,
    event: str = "message_created",
    message_type: str | int = "template",
    rating: object = None,
    feedback: str | None = CSAT_FEEDBACK,
    status: str | int = "sent",
    created_at: str = "2025-12-02T04:00:01.500Z",
    updated_at: str | float | None = None,
    display_id: int = 42,
) -> dict[str, Any]:
    """Chatwoot's CSAT survey message (`content_type: input_csat`), as created or updated.

    Chatwoot writes it when the conversation is resolved: a `template` message of the inbox's
    own survey, or (WhatsApp template surveys) an `outgoing` one with no sender. With `rating`,
    `content_attributes.submitted_values.csat_survey_response` holds the rating and the
    customer's comment `feedback` (as the `message_updated` after the customer answered does).
    """
    payload = chatwoot_message(
        message_id,
        message_type="template",
        sender=None,
        content="Please rate this conversation",
        created_at=created_at,
        display_id=display_id,
    )
    attributes: dict[str, Any] = {"display_type": "emoji"}
    if rating is not None:
        response: dict[str, Any] = {"rating": rating}
        if feedback is not None:
            response["feedback_message"] = feedback
        attributes["submitted_values"] = {"csat_survey_response": response}
    payload.update(
        event=event,
        message_type=message_type,
        content_type="input_csat",
        content_attributes=attributes,
        status=status,
    )
    if updated_at is not None:
        payload["updated_at"] = updated_at
    return payload


def chatwoot_activity(
    message_id: int = 1060,
    *,
    content: str = "CSAT survey not sent due to outgoing message restrictions",
    created_at: str = "2025-12-03T09:00:02.000Z",
    display_id: int = 42,
) -> dict[str, Any]:
    """An activity message Chatwoot writes into a conversation (no sender)."""
    payload = chatwoot_message(
        message_id,
        message_type="activity",
        sender=None,
        content=content,
        created_at=created_at,
        display_id=display_id,
    )
    payload["source_id"] = None
    return payload


def chatwoot_conversation_event(
    event: str,
    *,
    changed: list[dict[str, Any]] | None = None,
    **data: Any,
) -> dict[str, Any]:
    """A `conversation_*` webhook payload; `changed` is `changed_attributes` (None stays null)."""
    payload = chatwoot_conversation_data(**data)
    payload["event"] = event
    if event != "conversation_created":
        payload["changed_attributes"] = changed
    return payload


def change(key: str, previous: Any, current: Any) -> dict[str, Any]:
    """One `changed_attributes` item."""
    return {key: {"previous_value": previous, "current_value": current}}


def chatwoot_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Chatwoot-Signature` of a body, as Chatwoot computes it."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def meta_signature(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` of a body, as Meta computes it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- WhatsApp Cloud API builders (the documented notification shape) -------------------------

#: The business number of the built notifications.
WA_NUMBER_ID = "106540352242922"
#: The customer of the built notifications: a phone number and a business-scoped user id.
WA_PHONE = "6281234567890"
WA_BSUID = "ID.8412093345571208"


def whatsapp_notification(value: dict[str, Any], field: str = "messages") -> dict[str, Any]:
    """A webhook notification carrying one change (`value` gets the business number)."""
    body = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "6221555010", "phone_number_id": WA_NUMBER_ID},
        **value,
    }
    change = {"field": field, "value": body}
    return {"object": "whatsapp_business_account", "entry": [{"id": "88123", "changes": [change]}]}


def whatsapp_contact(
    *, phone: str | None = WA_PHONE, user_id: str | None = WA_BSUID
) -> dict[str, Any]:
    """A `contacts[]` entry; either id may be left out (None)."""
    contact: dict[str, Any] = {"profile": {"name": "Siti Nurhaliza"}}
    if phone is not None:
        contact["wa_id"] = phone
    if user_id is not None:
        contact["user_id"] = user_id
    return contact


def whatsapp_inbound(
    wamid: str = "wamid.IN1",
    *,
    phone: str | None = WA_PHONE,
    user_id: str | None = WA_BSUID,
    timestamp: str | int = "1764644400",
    contacts: bool = True,
    **fields: Any,
) -> dict[str, Any]:
    """A customer's text message; `phone` / `user_id` None leave `from` / `from_user_id` out."""
    message: dict[str, Any] = {
        "id": wamid,
        "timestamp": timestamp,
        "type": "text",
        "text": {"body": "Hola, saya mau tanya harga paket premium"},
        **fields,
    }
    if phone is not None:
        message["from"] = phone
    if user_id is not None:
        message["from_user_id"] = user_id
    value: dict[str, Any] = {"messages": [message]}
    if contacts:
        value["contacts"] = [whatsapp_contact(phone=phone, user_id=user_id)]
    return whatsapp_notification(value)


def whatsapp_status(
    wamid: str = "wamid.OUT1",
    status: str = "sent",
    *,
    phone: str | None = WA_PHONE,
    user_id: str | None = WA_BSUID,
    timestamp: str = "1764644460",
    contacts: bool = True,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A status of a business message; None leaves `recipient_id` / `recipient_user_id` out."""
    item: dict[str, Any] = {"id": wamid, "status": status, "timestamp": timestamp}
    if phone is not None:
        item["recipient_id"] = phone
    if user_id is not None:
        item["recipient_user_id"] = user_id
    if errors is not None:
        item["errors"] = errors
    value: dict[str, Any] = {"statuses": [item]}
    if contacts:
        value["contacts"] = [whatsapp_contact(phone=phone, user_id=user_id)]
    return whatsapp_notification(value)


#: A `failed` status's error: the customer-service window had closed.
WINDOW_CLOSED_ERROR = {
    "code": 131047,
    "title": "Re-engagement message",
    "message": "Re-engagement message",
    "error_data": {"details": "More than 24 hours have passed since the customer last replied."},
}


#: The fields of a SPEC §1 retraction, exactly.
RETRACTION_KEYS = frozenset(
    {"event_id", "type", "action", "conversation_id", "occurred_at", "message_id"}
)


def assert_spec_events(events: list[dict[str, Any]]) -> None:
    """Assert that mapped events are SPEC §1 events: schema and decoder, or a retraction's shape.

    Retractions (`message` with `action: failed`) are new in SPEC §1; they must hold exactly
    the retraction's fields, whatever the schema and decoder of this checkout know.
    """
    for event in events:
        if event.get("type") == "message" and event.get("action") == "failed":
            assert set(event) == RETRACTION_KEYS, event
            assert all(isinstance(event[k], str) and event[k] for k in ("event_id", "message_id"))
            assert isinstance(event["occurred_at"], int)
            continue
        validator("event.schema.json").validate(event)
        assert not isinstance(decode_event(orjson.dumps(event)), Rejected), event
