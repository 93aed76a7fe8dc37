"""WhatsApp Business Cloud API webhooks → SPEC §1 events (see docs/INTEGRATIONS.md).

Conversation boundaries: the API has none. One conversation is one customer of one business
number, for all time: `wa:{phone_number_id}:{customer}`, where `customer` is a keyed pseudonym of
the customer's phone number (a phone number must not reach Kafka) whenever the payload holds one,
and the business-scoped user id (BSUID, `user_id`) only when it holds none (see `_customer`).
Cycles end only when something resolves the conversation (an inbox, or another producer writing
`resolved` events for the same id). Every event's `channel` is `whatsapp`.

Event ids: `wa:{phone_number_id}:in:{wamid}` for customer messages, `...:out:{wamid}` for the
business's own messages (the first `sent` status or the Business-app echo), `...:failed:{wamid}`
for the retraction of a business message whose delivery failed, `...:ref:{wamid}` for a
Click-to-WhatsApp lead source. Meta's retries therefore collapse in the monitor.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any, Final

from flows.ingest.mapping import Mapped, MappingError, as_object, epoch_ms, retraction

#: The `channel` of every event: the Cloud API carries WhatsApp only.
CHANNEL: Final = "whatsapp"

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
#: Status values that are not a message of their own and retract nothing: counted as ignored.
IGNORED_STATUSES: Final = frozenset(
    {"delivered", "read", "played", "captured", "deleted", "warning", "pending"}
)
#: `system` message types counted under their own name (`system_<type>`); others `message_system`.
SYSTEM_TYPES: Final = frozenset(
    {"user_changed_number", "user_changed_user_id", "customer_changed_number"}
)
#: A business-scoped user id: a country code, a dot, an optional `ENT.`, then letters and digits.
_BSUID: Final = re.compile(r"^[A-Za-z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$")
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
    """

    pseudonym_key: bytes = b""
    referral_lead_source: str = "click_to_whatsapp"
    echo_agent_id: str = "business_app"
    untagged_author: str = "agent"
    untagged_agent_id: str = "api"


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
    field = _text(change.get("field"))
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
    contacts = [c for c in _items(value, "contacts") if isinstance(c, dict)]
    for message in _items(value, "messages"):
        _inbound(message, phone_number_id, contacts, opts, out)
    for echo in _items(value, "message_echoes"):
        _echo(echo, phone_number_id, contacts, opts, out)
    for status in _items(value, "statuses"):
        _status(status, phone_number_id, contacts, opts, out)
    if not any(value.get(key) for key in ("messages", "message_echoes", "statuses")):
        out.ignore("empty", "no messages, echoes or statuses in the change")


def _items(value: dict[str, Any], key: str) -> list[Any]:
    """Return the list `value[key]` (none when absent or null).

    Raises:
        MappingError: it is there but not a list.
    """
    items = value.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        msg = f"field {key!r} must be a list, not {type(items).__name__}"
        raise MappingError(msg)
    return items


def _text(value: object) -> str | None:
    """Return `value` if it is a string, else None: payload values compared with known words."""
    return value if isinstance(value, str) else None


def _customer(
    phone_field: object,
    user_field: object,
    contacts: list[dict[str, Any]],
    opts: WhatsAppOptions,
) -> str:
    """Return the customer part of the conversation id: a pseudonym, never a phone number.

    The phone number is the item's own (`from`, `recipient_id`, `to`: a leading `+`, blanks
    and dashes dropped), else that of the `contacts[]` entry naming the item's customer (by
    phone or by user id; a lone entry that contradicts neither counts). The BSUID is the
    item's own (`from_user_id`, `recipient_user_id`, `to_user_id`, or a BSUID where the phone
    number used to be), else that entry's `user_id`.

    A phone number, when known, always wins: it becomes `p` + the first 20 hex digits of its
    HMAC-SHA256 under `pseudonym_key`. Only without one is the BSUID used as it is. Meta keeps
    a customer's number in every payload once it is visible to the business, and a `failed`
    status of a message sent to a number carries the number alone, so this keeps one id per
    customer (and retractions in their message's conversation); a customer whose number is
    hidden is known by BSUID in every payload.

    Raises:
        MappingError: neither a phone number nor a user id is known.
    """
    phone = _phone(phone_field)
    bsuid = _bsuid(user_field)
    if bsuid is None and phone is None:
        bsuid = _bsuid(phone_field)
    contact = _contact_of(contacts, phone, bsuid)
    if contact is not None:
        phone = phone or _phone(contact.get("wa_id"))
        bsuid = bsuid or _bsuid(contact.get("user_id"))
    if phone is not None:
        digest = hmac.new(opts.pseudonym_key, phone.encode(), hashlib.sha256).hexdigest()
        return f"p{digest[:20]}"
    if bsuid is not None:
        return bsuid
    msg = "no customer id: neither a wa_id nor a user_id"
    raise MappingError(msg)


def _contact_of(
    contacts: list[dict[str, Any]], phone: str | None, bsuid: str | None
) -> dict[str, Any] | None:
    """Return the `contacts[]` entry of the customer with this phone number or user id.

    An entry naming either id matches; otherwise a lone entry matches when it contradicts
    neither id the item carries.
    """
    for contact in contacts:
        if phone is not None and _phone(contact.get("wa_id")) == phone:
            return contact
        if bsuid is not None and _bsuid(contact.get("user_id")) == bsuid:
            return contact
    if len(contacts) == 1:
        contact = contacts[0]
        other_phone = _phone(contact.get("wa_id"))
        other_bsuid = _bsuid(contact.get("user_id"))
        if (phone is None or other_phone is None) and (bsuid is None or other_bsuid is None):
            return contact
    return None


def _bsuid(value: object) -> str | None:
    """Return a business-scoped user id (e.g. `US.13491208655302741918`), or None if not one."""
    if isinstance(value, str) and _BSUID.match(value.strip()):
        return value.strip()
    return None


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


def _kind(message_type: str | None) -> str:
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
    message_type = _text(message.get("type"))
    if message_type == "system":
        _system(message, out)
        return
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
            "channel": CHANNEL,
            "kind": _kind(message_type),
        }
    )


def _system(message: dict[str, Any], out: Mapped) -> None:
    """Count a `system` message as ignored: WhatsApp wrote it, not the customer.

    `user_changed_number` (and `user_changed_user_id`) say the customer's identity changed:
    their later messages carry the new number or BSUID, so they arrive in a new conversation
    (the key follows the customer's ids); the notice itself neither asks nor answers anything.
    Known types are counted as `system_<type>`, any other as `message_system`.
    """
    system = message.get("system")
    kind = _text(system.get("type")) if isinstance(system, dict) else None
    if kind in SYSTEM_TYPES:
        out.ignore(f"system_{kind}", f"system message {kind}: the customer wrote nothing")
    else:
        out.ignore("message_system", "system messages do not count for SLAs")


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
    message_type = _text(echo.get("type"))
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
            "channel": CHANNEL,
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
    reply's instant. A `failed` status retracts the message (see `_failed`). Later statuses
    (`delivered`, `read`, `played`, `captured`, ...) are ignored as `status_<value>`, values
    this mapping does not know as `status_other`. Reads
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
    value = _text(status.get("status"))
    if value == "failed":
        _failed(status, phone_number_id, contacts, opts, out)
        return
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
    category = _text(pricing.get("category")) if isinstance(pricing, dict) else None
    conversation = status.get("conversation")
    origin = conversation.get("origin") if isinstance(conversation, dict) else None
    origin_type = _text(origin.get("type")) if isinstance(origin, dict) else None
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
        "channel": CHANNEL,
        "kind": "template" if template else "text",
    }
    if agent_id is not None:
        event["agent_id"] = agent_id
    out.add(event)


def _failed(
    status: dict[str, Any],
    phone_number_id: str,
    contacts: list[dict[str, Any]],
    opts: WhatsAppOptions,
    out: Mapped,
) -> None:
    """Map a `failed` status to a SPEC §1 retraction of the business message it reports.

    The message never reached the customer (e.g. error 131047: the 24-hour window had closed,
    named in `errors[]`, which is not copied), so it must not count as a reply. The
    retraction's `message_id` is the `wamid` the message's `sent` status or echo carried, its
    conversation the one `_customer` gives (a failed status often names the customer by phone
    number alone), its instant the status's `timestamp`, and its id
    `wa:{number}:failed:{wamid}`, so Meta's retries collapse.

    Raises:
        MappingError: the status has no id, timestamp or customer.
    """
    wamid = _message_id(status)
    customer = _customer(
        status.get("recipient_id"), status.get("recipient_user_id"), contacts, opts
    )
    occurred_at = epoch_ms(status.get("timestamp"), "status 'timestamp'")
    conversation_id = f"wa:{phone_number_id}:{customer}"
    out.add(retraction(f"wa:{phone_number_id}:failed:{wamid}", conversation_id, occurred_at, wamid))
