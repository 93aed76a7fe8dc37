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
) -> dict[str, Any]:
    """A conversation's `webhook_data` (`id` is the per-account display id)."""
    return {
        "additional_attributes": {"browser": {"device_name": "Siti's phone"}},
        "can_reply": True,
        "channel": "Channel::Whatsapp",
        "contact_inbox": {"source_id": "6281234567890"},
        "id": display_id,
        "inbox_id": 2,
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
) -> dict[str, Any]:
    """A `message_created` webhook payload."""
    payload: dict[str, Any] = {
        "event": "message_created",
        "account": {"id": 1, "name": "Toko Maju"},
        "additional_attributes": additional_attributes or {},
        "content_attributes": {},
        "content_type": "text",
        "content": content,
        "conversation": chatwoot_conversation_data(display_id),
        "created_at": created_at,
        "id": message_id,
        "inbox": {"id": 2, "name": "WhatsApp Toko"},
        "message_type": message_type,
        "private": private,
        "sender": sender,
        "source_id": "wamid.HBgN",
    }
    if attachments is not None:
        payload["attachments"] = attachments
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
