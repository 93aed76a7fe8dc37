"""WhatsApp Business Cloud API webhooks → SPEC §1 events (see docs/INTEGRATIONS.md).

Conversation boundaries: the API has none. One conversation is one customer of one business
number, for all time: `wa:{phone_number_id}:{customer}`, where `customer` is a keyed pseudonym of
the customer's `wa_id` (a phone number must not reach Kafka) or, when no `wa_id` is known, the
business-scoped `user_id`. Cycles end only when something resolves the conversation (an inbox,
or another producer writing `resolved` events for the same id).

Event ids: `wa:{phone_number_id}:in:{wamid}` for customer messages, `...:out:{wamid}` for the
business's own messages (the first `sent` status or the Business-app echo), `...:ref:{wamid}`
for a Click-to-WhatsApp lead source. Meta's retries therefore collapse in the monitor.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Final

from flows.ingest.mapping import Mapped, MappingError, as_object, epoch_ms

#: Inbound message types that are not SLA-relevant: counted as ignored.
IGNORED_MESSAGE_TYPES: Final = frozenset(
    {"reaction", "edit", "revoke", "system", "request_welcome"}
)
#: Message types mapped to `kind: media`.
MEDIA_TYPES: Final = frozenset({"image", "audio", "video", "document", "sticker"})
#: Pricing categories / conversation origins that mark a business message as a template.
TEMPLATE_CATEGORIES: Final = frozenset(
    {"marketing", "utility", "authentication", "authentication_international", "marketing_lite"}
)
#: Status values that are not a message of their own.
IGNORED_STATUSES: Final = frozenset({"delivered", "read", "failed", "deleted", "warning"})
#: `changes[].field` values this mapping reads.
MESSAGE_FIELDS: Final = frozenset({"messages", "smb_message_echoes"})


@dataclass(frozen=True, slots=True)
class WhatsAppOptions:
    """Choices of the WhatsApp mapping.

    Attributes:
        pseudonym_key: secret key of the HMAC that turns a customer's phone number into the
            conversation id part (set the same key on every receiver; empty is allowed for tests
            and `ingest map` but makes pseudonyms guessable).
        referral_lead_source: `lead_source` set by a Click-to-WhatsApp ad referral.
        echo_agent_id: `agent_id` of replies typed in the WhatsApp Business app.
        untagged_author: author of a business message whose `biz_opaque_callback_data` says
            nothing (`agent`, `bot` or `system`).
        untagged_agent_id: `agent_id` used when `untagged_author` is `agent`.
        channel: the `channel` of every event.
    """

    pseudonym_key: bytes = b""
    referral_lead_source: str = "click_to_whatsapp"
    echo_agent_id: str = "business_app"
    untagged_author: str = "agent"
    untagged_agent_id: str = "api"
    channel: str = "whatsapp"


def map_whatsapp(body: bytes, options: WhatsAppOptions | None = None) -> Mapped:
    """Map one WhatsApp Cloud API webhook body to SPEC §1 events.

    Accepts the full notification (`{"object", "entry": [{"changes": [...]}]}`), one
    `changes[]` item (`{"field", "value"}`) or a bare `value`.

    Returns:
        The events (inbound messages, outbound replies, lead sources), what was ignored
        (reactions, edits, revokes, later statuses, other fields) and what could not be mapped.
    """
    opts = options or WhatsAppOptions()
    out = Mapped()
    try:
        document = as_object(body)
        changes = _changes(document)
    except MappingError as exc:
        out.unmappable.append(str(exc))
        return out
    for change in changes:
        try:
            _change(change, opts, out)
        except MappingError as exc:
            out.unmappable.append(str(exc))
    return out


def _changes(document: dict[str, Any]) -> list[dict[str, Any]]:
    if "entry" in document:
        entries = document["entry"]
        if not isinstance(entries, list):
            msg = "field 'entry' must be a list"
            raise MappingError(msg)
        changes: list[dict[str, Any]] = []
        for entry in entries:
            items = entry.get("changes") if isinstance(entry, dict) else None
            if not isinstance(items, list):
                msg = "entry has no 'changes' list"
                raise MappingError(msg)
            changes.extend(item for item in items if isinstance(item, dict))
        return changes
    if "value" in document and "field" in document:
        return [document]
    if "metadata" in document:
        field = "smb_message_echoes" if "message_echoes" in document else "messages"
        return [{"field": field, "value": document}]
    msg = "not a WhatsApp Cloud API notification: no 'entry', 'changes' item or 'value'"
    raise MappingError(msg)


def _change(change: dict[str, Any], opts: WhatsAppOptions, out: Mapped) -> None:
    field = change.get("field")
    value = change.get("value")
    if field not in MESSAGE_FIELDS:
        out.ignore(f"field_{field}", f"field {field!r} carries no conversation messages")
        return
    if not isinstance(value, dict):
        msg = "field 'value' must be an object"
        raise MappingError(msg)
    metadata = value.get("metadata")
    phone_number_id = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    if not isinstance(phone_number_id, str) or not phone_number_id:
        msg = "missing 'metadata.phone_number_id'"
        raise MappingError(msg)
    contacts = [c for c in value.get("contacts") or [] if isinstance(c, dict)]
    for message in value.get("messages") or []:
        _inbound(message, phone_number_id, contacts, opts, out)
    for echo in value.get("message_echoes") or []:
        _echo(echo, phone_number_id, contacts, opts, out)
    for status in value.get("statuses") or []:
        _status(status, phone_number_id, contacts, opts, out)
    if not any(value.get(key) for key in ("messages", "message_echoes", "statuses")):
        out.ignore("empty", "no messages, echoes or statuses in the change")


def _customer(
    wa_id: object, user_id: object, contacts: list[dict[str, Any]], opts: WhatsAppOptions
) -> str:
    phone = _phone(wa_id)
    bsuid = user_id if isinstance(user_id, str) and user_id else None
    if len(contacts) == 1:
        contact = contacts[0]
        if phone is None:
            phone = _phone(contact.get("wa_id"))
        if bsuid is None and isinstance(contact.get("user_id"), str) and contact["user_id"]:
            bsuid = contact["user_id"]
    if phone is not None:
        digest = hmac.new(opts.pseudonym_key, phone.encode(), hashlib.sha256).hexdigest()
        return f"p{digest[:20]}"
    if bsuid is not None:
        return bsuid
    if isinstance(wa_id, str) and wa_id.strip() and not any(c.isdigit() for c in wa_id[:3]):
        return wa_id.strip()  # a business-scoped user id where a phone number used to be
    msg = "no customer id: neither a wa_id nor a user_id"
    raise MappingError(msg)


def _phone(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    digits = value.strip().lstrip("+").replace(" ", "").replace("-", "")
    return digits if digits.isdigit() else None


def _message_id(item: dict[str, Any]) -> str:
    message_id = item.get("id")
    if not isinstance(message_id, str) or not message_id:
        msg = "message has no 'id'"
        raise MappingError(msg)
    return message_id


def _kind(message_type: object) -> str:
    if message_type in MEDIA_TYPES:
        return "media"
    if message_type == "template":
        return "template"
    return "text"


def _inbound(
    message: Any,
    phone_number_id: str,
    contacts: list[dict[str, Any]],
    opts: WhatsAppOptions,
    out: Mapped,
) -> None:
    if not isinstance(message, dict):
        msg = "a 'messages' item must be an object"
        raise MappingError(msg)
    message_type = message.get("type")
    if message_type in IGNORED_MESSAGE_TYPES:
        out.ignore(f"message_{message_type}", f"{message_type} messages do not count for SLAs")
        return
    wamid = _message_id(message)
    occurred_at = epoch_ms(message.get("timestamp"), "message 'timestamp'")
    customer = _customer(message.get("from"), message.get("from_user_id"), contacts, opts)
    conversation_id = f"wa:{phone_number_id}:{customer}"
    referral = message.get("referral")
    if isinstance(referral, dict):
        out.add(
            {
                "event_id": f"wa:{phone_number_id}:ref:{wamid}",
                "type": "conversation",
                "conversation_id": conversation_id,
                "occurred_at": occurred_at,
                "action": "updated",
                "lead_source": opts.referral_lead_source,
            }
        )
    out.add(
        {
            "event_id": f"wa:{phone_number_id}:in:{wamid}",
            "type": "message",
            "conversation_id": conversation_id,
            "occurred_at": occurred_at,
            "direction": "inbound",
            "author": "customer",
            "message_id": wamid,
            "channel": opts.channel,
            "kind": _kind(message_type),
        }
    )


def _echo(
    echo: Any,
    phone_number_id: str,
    contacts: list[dict[str, Any]],
    opts: WhatsAppOptions,
    out: Mapped,
) -> None:
    if not isinstance(echo, dict):
        msg = "a 'message_echoes' item must be an object"
        raise MappingError(msg)
    message_type = echo.get("type")
    if message_type in IGNORED_MESSAGE_TYPES:
        out.ignore(f"echo_{message_type}", f"{message_type} echoes are not replies")
        return
    wamid = _message_id(echo)
    customer = _customer(echo.get("to"), echo.get("to_user_id"), contacts, opts)
    out.add(
        {
            "event_id": f"wa:{phone_number_id}:out:{wamid}",
            "type": "message",
            "conversation_id": f"wa:{phone_number_id}:{customer}",
            "occurred_at": epoch_ms(echo.get("timestamp"), "echo 'timestamp'"),
            "direction": "outbound",
            "author": "agent",
            "agent_id": opts.echo_agent_id,
            "message_id": wamid,
            "channel": opts.channel,
            "kind": _kind(message_type),
        }
    )


def parse_callback_tag(tag: object, opts: WhatsAppOptions) -> tuple[str, str | None, bool]:
    """Read `biz_opaque_callback_data`: `agent:ID`, `bot` or `system`, plus `template`.

    Parts are separated by `;` or `,` (e.g. `agent:a7;template`). Anything else is untagged.

    Returns:
        `(author, agent_id, is_template)`.
    """
    author, agent_id, template = opts.untagged_author, None, False
    if isinstance(tag, str):
        for part in tag.replace(",", ";").split(";"):
            word = part.strip()
            if word.startswith("agent:") and len(word) > len("agent:"):
                author, agent_id = "agent", word[len("agent:") :]
            elif word in ("bot", "system"):
                author, agent_id = word, None
            elif word == "template":
                template = True
    if author == "agent" and agent_id is None:
        agent_id = opts.untagged_agent_id
    return author, agent_id, template


def _status(
    status: Any,
    phone_number_id: str,
    contacts: list[dict[str, Any]],
    opts: WhatsAppOptions,
    out: Mapped,
) -> None:
    if not isinstance(status, dict):
        msg = "a 'statuses' item must be an object"
        raise MappingError(msg)
    value = status.get("status")
    if value in IGNORED_STATUSES:
        out.ignore(f"status_{value}", f"status {value!r} is not a message of its own")
        return
    if value != "sent":
        out.ignore("status_other", f"status {value!r} is not mapped")
        return
    wamid = _message_id(status)
    customer = _customer(
        status.get("recipient_id"), status.get("recipient_user_id"), contacts, opts
    )
    author, agent_id, template = parse_callback_tag(status.get("biz_opaque_callback_data"), opts)
    pricing = status.get("pricing")
    category = pricing.get("category") if isinstance(pricing, dict) else None
    conversation = status.get("conversation")
    origin = conversation.get("origin") if isinstance(conversation, dict) else None
    origin_type = origin.get("type") if isinstance(origin, dict) else None
    if category in TEMPLATE_CATEGORIES or origin_type in TEMPLATE_CATEGORIES:
        template = True
    event: dict[str, Any] = {
        "event_id": f"wa:{phone_number_id}:out:{wamid}",
        "type": "message",
        "conversation_id": f"wa:{phone_number_id}:{customer}",
        "occurred_at": epoch_ms(status.get("timestamp"), "status 'timestamp'"),
        "direction": "outbound",
        "author": author,
        "message_id": wamid,
        "channel": opts.channel,
        "kind": "template" if template else "text",
    }
    if agent_id is not None:
        event["agent_id"] = agent_id
    out.add(event)
