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

    Pure: no I/O, no clock; the same body and options always give the same events, with the
    same ids, so a retried delivery is dropped by the monitor as a duplicate. A bad change
    does not stop the others: its reason goes to `unmappable` and the next change is mapped.
    No message text, caption or phone number is copied into an event.

    Args:
        body: the raw webhook body (UTF-8 JSON).
        options: the mapping's choices; the defaults when None.

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
    """Return the `changes[]` items of a notification, a `changes` item or a bare `value`.

    A bare `value` is taken as field `smb_message_echoes` when it holds `message_echoes`,
    else as `messages`. Items that are not objects are skipped.

    Raises:
        MappingError: the document has none of these shapes, or `entry` / `changes` is not a
            list.
    """
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
    """Map one change: its `messages`, `message_echoes` and `statuses`, in that order.

    Reads `field` (only `messages` and `smb_message_echoes` are mapped; others are ignored
    with kind `field_<name>`), `value.metadata.phone_number_id` (the business number, part of
    every id) and `value.contacts` (to find the customer when an item names none).

    Raises:
        MappingError: `value` is not an object or has no `metadata.phone_number_id`, or an
            item cannot be mapped (the change's later items are then not mapped).
    """
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
    """Return the customer part of the conversation id: a pseudonym, never a phone number.

    A phone number (`wa_id`, or the single contact's) becomes `p` + the first 20 hex digits
    of its HMAC-SHA256 under `pseudonym_key`; without one, the business-scoped user id is
    used as it is (it identifies the customer only to this business).

    Raises:
        MappingError: neither a phone number nor a user id is known.
    """
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
    """Return a phone number's digits (without `+`, blanks or dashes), or None if not one."""
    if not isinstance(value, str):
        return None
    digits = value.strip().lstrip("+").replace(" ", "").replace("-", "")
    return digits if digits.isdigit() else None


def _message_id(item: dict[str, Any]) -> str:
    """Return the item's WhatsApp message id (`wamid.…`, field `id`).

    Raises:
        MappingError: the item has no non-empty string `id`.
    """
    message_id = item.get("id")
    if not isinstance(message_id, str) or not message_id:
        msg = "message has no 'id'"
        raise MappingError(msg)
    return message_id


def _kind(message_type: object) -> str:
    """Return the SPEC §1 message `kind` of a WhatsApp message `type`: media, template or text."""
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
    """Map a customer's message to a SPEC §1 `message` event (inbound, author `customer`).

    Reads `messages[].type` (reactions, edits, revokes and system messages are ignored;
    media types give `kind: media`), `id` (the event id `wa:{number}:in:{wamid}` and
    `message_id`), `timestamp` (unix seconds: `occurred_at`), `from` / `from_user_id` (the
    customer) and `referral`. A Click-to-WhatsApp `referral` first adds a `conversation`
    event, action `updated`, setting `lead_source` to `referral_lead_source`, at the same
    instant, so the policy for that lead source applies to the message.

    Raises:
        MappingError: the item is not an object, or has no id, timestamp or customer.
    """
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
    """Map a reply typed in the WhatsApp Business app to a SPEC §1 `message` event.

    The event is outbound, author `agent`, `agent_id` = `echo_agent_id`. Reads
    `message_echoes[].type` (reactions, edits and the like are ignored), `id` (event id
    `wa:{number}:out:{wamid}`, the same as its `sent` status would give, so the two collapse),
    `timestamp` and `to` / `to_user_id` (the customer).

    Raises:
        MappingError: the item is not an object, or has no id, timestamp or customer.
    """
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

    The tag is what the sending system wrote into the API call; WhatsApp hands it back on
    the message's statuses. When parts disagree the last author part wins. An untagged
    message is authored `untagged_author`, and, if that is `agent`, by `untagged_agent_id`.

    Args:
        tag: the `biz_opaque_callback_data` value, or anything else (then untagged).
        opts: the mapping's choices for untagged messages.

    Returns:
        `(author, agent_id, is_template)`: author `agent`, `bot` or `system`; `agent_id` only
        for `agent`.
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
    """Map the `sent` status of a business message to a SPEC §1 `message` event (outbound).

    Messages sent through the API are seen only by their statuses; the first, `sent`, is the
    reply's instant. Later statuses (`delivered`, `read`, `failed`, ...) are ignored. Reads
    `statuses[].id` (event id `wa:{number}:out:{wamid}`), `timestamp`, `recipient_id` /
    `recipient_user_id` (the customer), `biz_opaque_callback_data` (author and agent, see
    `parse_callback_tag`) and `pricing.category` / `conversation.origin.type`: a template
    category marks the message `kind: template`, which does not answer the customer's 24-hour
    `service_window` (SPEC §4).

    Raises:
        MappingError: the item is not an object, or has no id, timestamp or customer.
    """
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
