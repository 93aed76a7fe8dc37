"""Chatwoot webhooks → SPEC §1 events (see the table in docs/INTEGRATIONS.md).

Chatwoot payloads are flat (model data merged with `event`). Conversation events carry no
account id, so the account comes from the webhook URL; conversation ids are
`cw:{account}:{display_id}`, agent ids are Chatwoot user ids as text.

A message's `channel` is its inbox's: the inbox configuration (`ChatwootOptions.inbox_channels`)
if it names the inbox, else the inbox's channel type in the payload (`Channel::Telegram` →
`telegram`, see `CHANNEL_TYPES`), never an account-wide default.

Event ids are derived from Chatwoot's ids so that duplicates collapse: `cw:{account}:m:{message
id}` for messages, `cw:{account}:m:{message id}:failed` for the retraction of a message whose
delivery failed; `cw:{account}:c:{display_id}:{what}:{value}:{seconds}` for conversation
changes, where `seconds` is the conversation's `updated_at` truncated to whole seconds. One status
change fires both `conversation_status_changed` and `conversation_updated`: both map to the same
ids.

CSAT surveys (SPEC §1 `survey`): the survey message Chatwoot sends when a conversation is
resolved (`content_type: input_csat`) is a survey `sent`, never a `message` (it is no reply), with
`survey_id` `cw:{account}:csat:{message id}`; the rating the customer gives comes back as a
`message_updated` of that message (`rated`), and the activity message Chatwoot writes when the
WhatsApp window had closed is a `not_sent`. The customer's comment (`feedback_message`) is never
read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from flows.ingest.mapping import (
    Mapped,
    MappingError,
    as_object,
    epoch_ms,
    retraction,
    short_hash,
)

#: Chatwoot's integer `message_type` (inside `conversation.messages[]` and the REST API).
MESSAGE_TYPES: Final = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}
#: Chatwoot's message `status` (an integer in `conversation.messages[]` and the REST API).
MESSAGE_STATUSES: Final = {0: "sent", 1: "delivered", 2: "read", 3: "failed"}
#: Chatwoot inbox channel types → SPEC `channel`. `Channel::TwilioSms` is `whatsapp` when its
#: medium is WhatsApp, and `Channel::Api` is `whatsapp` when it bridges WhatsApp (see `_channel`).
CHANNEL_TYPES: Final = {
    "Channel::Whatsapp": "whatsapp",
    "Channel::Telegram": "telegram",
    "Channel::WebWidget": "web",
    "Channel::Email": "email",
    "Channel::Sms": "sms",
    "Channel::TwilioSms": "sms",
    "Channel::FacebookPage": "facebook",
    "Channel::Instagram": "instagram",
    "Channel::Line": "line",
    "Channel::TwitterProfile": "twitter",
    "Channel::Tiktok": "tiktok",
    "Channel::Voice": "voice",
    "Channel::Api": "api",
}
#: Chatwoot priority → SPEC priority.
PRIORITIES: Final = {"urgent": "P1", "high": "P2", "medium": "P3", "low": "P4"}
#: Events that are never SLA-relevant: counted as ignored under their own name.
IGNORED_EVENTS: Final = frozenset(
    {
        "contact_created",
        "contact_updated",
        "contact_merged",
        "contact_deleted",
        "webwidget_triggered",
        "conversation_typing_on",
        "conversation_typing_off",
        "inbox_created",
        "inbox_updated",
    }
)
#: `changed_attributes` keys that carry nothing for SLAs.
_QUIET_KEYS: Final = frozenset(
    {
        "updated_at",
        "waiting_since",
        "first_reply_created_at",
        "last_activity_at",
        "contact_last_seen_at",
        "agent_last_seen_at",
        "assignee_last_seen_at",
        "unread_count",
        "snoozed_until",
        "additional_attributes",
        "identifier",
    }
)
#: Agent-bot events that only say what the status now is.
_STATUS_EVENTS: Final = {"conversation_resolved": "resolved", "conversation_opened": "open"}
_LABEL_KEYS: Final = ("labels", "label_list", "cached_label_list")
_LEAD_STATUSES: Final = ("new", "qualified", "disqualified", "nurture")
#: The longest text id taken from a payload.
_MAX_ID: Final = 64
_BOT_SENDERS: Final = frozenset({"agent_bot", "captain_assistant"})
#: Sender types as Chatwoot spells them in `sender.type` or a message's `sender_type`.
_SENDER_TYPES: Final = {
    "user": "user",
    "contact": "contact",
    "agent_bot": "agent_bot",
    "agentbot": "agent_bot",
    "captain_assistant": "captain_assistant",
    "captain::assistant": "captain_assistant",
}
#: Identifiers of WhatsApp users as bridges through an API inbox write them (Baileys, WAHA...).
_WHATSAPP_JID: Final = re.compile(r"^\+?\d{5,20}@(s\.whatsapp\.net|c\.us)$")
#: The `content_type` of Chatwoot's CSAT survey message (an inbox's own or a WhatsApp template).
CSAT_CONTENT_TYPE: Final = "input_csat"
#: The activity Chatwoot writes (English locale) when it could not send the CSAT survey because
#: the channel's reply window had closed (`conversations.activity.csat.
#: not_sent_due_to_messaging_window`). Other locales: `ChatwootOptions.csat_not_sent_texts`.
CSAT_NOT_SENT_TEXT: Final = "CSAT survey not sent due to outgoing message restrictions"


@dataclass(frozen=True, slots=True)
class ChatwootOptions:
    """Choices of the Chatwoot mapping (Chatwoot has no such fields of its own).

    Attributes:
        segment_attribute: conversation custom attribute read as `segment`.
        lead_source_attribute: custom attribute read as `lead_source`.
        lead_status_attribute: custom attribute read as `lead_status`.
        outcome_attribute: custom attribute read as a resolution's `outcome`.
        segment_labels: labels that set `segment` to the label (the first listed wins), e.g. vip.
        null_sender_author: author of an outgoing message with no sender (automations,
            campaigns, bridges): `system` by default, `bot` or `agent` (with `null_sender_agent`).
        null_sender_agent: `agent_id` when `null_sender_author` is `agent`.
        bot_user_ids: per account id, the Chatwoot user ids of integrations and AI assistants
            that post as users (`sender.type: user`): their messages are authored `bot`.
        inbox_channels: per account id, inbox id → `channel` of that inbox's messages; wins
            over the payload's channel type (e.g. an API inbox that bridges WhatsApp).
        fallback_channel: the `channel` of a message whose payload names no channel type and
            whose inbox is not configured (counted as the flag `channel_unknown`).
        teams: Chatwoot team id (as text) → the `team_id` the policies name (e.g. `l2`); a
            team not listed keeps its Chatwoot id (flagged `team_unmapped` when the map is
            not empty).
        csat_not_sent_texts: more wordings (an account's locale) of the activity Chatwoot
            writes when the CSAT survey was not sent, besides `CSAT_NOT_SENT_TEXT`; compared
            without case and surrounding blanks.
    """

    segment_attribute: str = "segment"
    lead_source_attribute: str = "lead_source"
    lead_status_attribute: str = "lead_status"
    outcome_attribute: str = "outcome"
    segment_labels: tuple[str, ...] = ()
    null_sender_author: str = "system"
    null_sender_agent: str = "chatwoot"
    bot_user_ids: Mapping[str, frozenset[str]] = field(default_factory=dict)
    inbox_channels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    fallback_channel: str = "unknown"
    teams: Mapping[str, str] = field(default_factory=dict)
    csat_not_sent_texts: tuple[str, ...] = ()


def map_chatwoot(body: bytes, account: str, options: ChatwootOptions | None = None) -> Mapped:
    """Map one Chatwoot webhook body to SPEC §1 events.

    Pure: no I/O and no clock; event times come from the payload, so the same body maps to
    the same events with the same ids every time. A body that cannot be mapped gives no
    events and one `unmappable` reason; message content is never copied into an event.

    Args:
        body: the raw webhook body.
        account: the Chatwoot account id, from the webhook URL.
        options: mapping choices; the defaults when None.

    Returns:
        The events, what was ignored and why, flags and unmappable reasons.
    """
    opts = options or ChatwootOptions()
    out = Mapped()
    try:
        payload = as_object(body)
        map_payload(payload, account, opts, out)
    except MappingError as exc:
        out.unmappable.append(str(exc))
    return out


def map_payload(payload: dict[str, Any], account: str, opts: ChatwootOptions, out: Mapped) -> None:
    """Map one decoded Chatwoot payload into `out` (also used by `reconcile`).

    Dispatches on `event`: `message_created` to `map_message`; `conversation_created` to an
    `opened` event; `conversation_updated` and `conversation_status_changed` to the changes
    they carry; the agent-bot `conversation_resolved` / `conversation_opened` to a status
    change; `message_updated` to a retraction when the message's delivery failed (see
    `map_message_update`). Contact, inbox, typing and automation events are ignored with
    their name as the counter label.

    Args:
        payload: the webhook body as a JSON object.
        account: the Chatwoot account id, from the webhook URL.
        opts: mapping choices.
        out: where events, ignored parts and flags are added.

    Raises:
        MappingError: the payload is not one Chatwoot sends, or lacks an id or time.
    """
    event = payload.get("event")
    if not isinstance(event, str):
        msg = f"field 'event' must be a string, not {type(event).__name__}"
        raise MappingError(msg)
    if event in IGNORED_EVENTS:
        out.ignore(str(event), f"{event} carries nothing for SLAs")
    elif event == "message_created":
        map_message(payload, account, opts, out)
    elif event == "message_updated":
        map_message_update(payload, account, opts, out)
    elif event == "conversation_created":
        _created(payload, account, opts, out)
    elif event in ("conversation_updated", "conversation_status_changed"):
        _updated(payload, account, opts, out)
    elif event in _STATUS_EVENTS:
        # Agent-bot webhooks: the conversation as it is now, no changed_attributes.
        status = {"status": {"previous_value": None, "current_value": _STATUS_EVENTS[event]}}
        _updated({**payload, "changed_attributes": [status]}, account, opts, out)
    elif event.startswith("automation_event."):
        out.ignore("automation_event", f"{event}: automation webhooks repeat account events")
    elif event.startswith(("contact_", "inbox_")) or "typing" in event:
        out.ignore(event, f"{event} carries nothing for SLAs")
    else:
        msg = f"unknown Chatwoot event {event!r}"
        raise MappingError(msg)


# -- messages ---------------------------------------------------------------------------------


def map_message(
    payload: dict[str, Any],
    account: str,
    opts: ChatwootOptions,
    out: Mapped,
    *,
    display_id: object = None,
    conversation: dict[str, Any] | None = None,
) -> None:
    """Map one Chatwoot message (webhook `message_created` or a REST message) into `out`.

    Produces one SPEC §1 `message` event, id `cw:{account}:m:{id}`. Reads `message_type`
    (text, a string of digits or Chatwoot's integer; `activity` messages are ignored,
    `incoming` is inbound from the customer, `outgoing` and `template` are outbound; any
    other value is ignored as `unknown_message_type`), `private` (an internal note: outbound
    `kind: note`, never a reply), `sender.type` (or the message's `sender_type`) and
    `sender.id` (a `user` is an agent with `agent_id` = the user id, unless the account lists
    the id in `bot_user_ids`: then `bot`; an agent bot or Captain is `bot`; a sender without
    a type is a contact; no sender is `null_sender_author`), `attachments` (`kind: media`),
    `created_at` (`occurred_at`), the inbox and its channel type (`channel`, see `_channel`)
    and the conversation's `display_id`. An outgoing message with WhatsApp `template_params`,
    or of type `template`, is `kind: template`; a `template` message not sent by a user is
    authored `bot`. An incoming message sent by a user is mapped and flagged
    `incoming_user_sender`. An outbound message whose `status` is already `failed` (as the
    REST API may return it) is followed by its retraction (see `map_message_update`). An
    incoming message of a webhook whose conversation has a team is preceded by that team
    (see `_message_team`). A CSAT survey message (`content_type: input_csat`) and the activity
    saying it was not sent are `survey` events, not messages (see `_csat_message`,
    `_csat_not_sent`).

    Args:
        payload: the message as a JSON object.
        account: the Chatwoot account id.
        opts: mapping choices.
        out: where the event goes.
        display_id: the conversation's display id when the caller knows it (the REST API's
            messages do not carry it); read from the message otherwise.
        conversation: the conversation when the caller has it apart from the message (the
            REST API), for the channel type; the message's `conversation` otherwise.

    Raises:
        MappingError: the message has no id, conversation or time.
    """
    message_type = _message_type(payload.get("message_type"))
    if message_type == "activity":
        if _is_csat_not_sent(payload, opts):
            _csat_not_sent(payload, account, out, display_id=display_id, conversation=conversation)
        else:
            out.ignore("activity_message", "activity messages are never sent to the customer")
        return
    if message_type not in ("incoming", "outgoing", "template"):
        raw = payload.get("message_type")
        out.ignore("unknown_message_type", f"message_type {raw!r} is not one Chatwoot sends")
        return
    if message_type != "incoming" and _is_csat(payload):
        _csat_message(payload, account, out, display_id=display_id, conversation=conversation)
        return
    message_id = _message_id(payload)
    # Only a webhook's own conversation says the team at the message; a REST conversation
    # (catch-up) says the team now, which may be a later one.
    own_conversation = conversation is None
    if conversation is None:
        nested = payload.get("conversation")
        conversation = nested if isinstance(nested, dict) else {}
    display_id = _message_display_id(payload, conversation, display_id)
    sender = payload.get("sender")
    sender_type = _sender_type(payload, sender)
    attachments = payload.get("attachments")
    kind = "media" if isinstance(attachments, list) and attachments else "text"
    event: dict[str, Any] = {
        "event_id": f"cw:{account}:m:{message_id}",
        "type": "message",
        "conversation_id": f"cw:{account}:{display_id}",
        "occurred_at": epoch_ms(payload.get("created_at"), "message 'created_at'"),
        "message_id": str(message_id),
        "channel": _channel(payload, conversation, account, opts, out),
    }
    if payload.get("private") is True:
        event.update(direction="outbound", kind="note")
        _set_author(event, sender, sender_type, account, opts)
    elif message_type == "incoming":
        event.update(direction="inbound", author="customer", kind=kind)
        if sender_type == "user":
            out.flags.append("incoming_user_sender")
        if own_conversation:
            _message_team(event, conversation, account, opts, out)
    else:
        template = message_type == "template" or _is_whatsapp_template(payload)
        event.update(direction="outbound", kind="template" if template else kind)
        _set_author(event, sender, sender_type, account, opts)
        if message_type == "template" and sender_type != "user":
            event["author"] = "bot"
            event.pop("agent_id", None)
    out.add(event)
    if event["direction"] == "outbound" and event["kind"] != "note":
        if _message_status(payload.get("status")) == "failed":
            _retract(payload, account, str(message_id), event, conversation=conversation, out=out)


def map_message_update(
    payload: dict[str, Any], account: str, opts: ChatwootOptions, out: Mapped
) -> None:
    """Map a `message_updated` webhook: a failed delivery retracts the message, else nothing.

    Chatwoot fires `message_updated` when a message's `status` changes (`sent`, `delivered`,
    `read`, `failed`; text or its integer) and when it is edited or deleted. An outgoing or
    template message whose status is `failed` (the platform refused it, e.g. WhatsApp error
    131047 after the 24-hour window closed; the reason is in `content_attributes.
    external_error`, which is not copied) gives a SPEC §1 retraction: id
    `cw:{account}:m:{id}:failed`, `message_id` the id the message's own event carried, at
    the instant of the update (see `_update_time`). Delivered and read receipts are ignored
    as `message_receipt`; any other update (an edit, a deletion, `sent`) as
    `message_updated`; a failed incoming message, activity or note (never sent by the
    business, so no reply to retract) as `message_failed_not_outbound`.

    A CSAT survey message is read for its rating first (see `_csat_update`).

    Raises:
        MappingError: a failed message has no id, conversation or time; a CSAT rating is not
            an integer from 1 to 5.
    """
    if _is_csat(payload) and _message_type(payload.get("message_type")) != "incoming":
        _csat_update(payload, account, out)
        return
    status = _message_status(payload.get("status"))
    if status in ("delivered", "read"):
        out.ignore("message_receipt", f"message_updated is a {status} receipt")
        return
    if status != "failed":
        out.ignore("message_updated", "message_updated without a failed delivery")
        return
    message_type = _message_type(payload.get("message_type"))
    if message_type not in ("outgoing", "template") or payload.get("private") is True:
        out.ignore(
            "message_failed_not_outbound",
            f"a failed {message_type or 'unknown'} message or note was no reply to retract",
        )
        return
    nested = payload.get("conversation")
    conversation = nested if isinstance(nested, dict) else {}
    message_id = _message_id(payload)
    display_id = _message_display_id(payload, conversation, None)
    created_at = epoch_ms(payload.get("created_at"), "message 'created_at'")
    original = {"conversation_id": f"cw:{account}:{display_id}", "occurred_at": created_at}
    _retract(payload, account, str(message_id), original, conversation=conversation, out=out)


# -- CSAT surveys ------------------------------------------------------------------------------


def _is_csat(payload: dict[str, Any]) -> bool:
    """Whether a message is Chatwoot's CSAT survey (`content_type: input_csat`), not a note."""
    return payload.get("content_type") == CSAT_CONTENT_TYPE and payload.get("private") is not True


def _is_csat_not_sent(payload: dict[str, Any], opts: ChatwootOptions) -> bool:
    """Whether an activity message is Chatwoot's "CSAT survey not sent" (window closed).

    The activity's text is Chatwoot's own wording, never the customer's; it is compared, not
    kept.
    """
    content = payload.get("content")
    if not isinstance(content, str):
        return False
    text = content.strip().casefold()
    return any(
        text == known.strip().casefold()
        for known in (CSAT_NOT_SENT_TEXT, *opts.csat_not_sent_texts)
    )


def _csat_base(
    payload: dict[str, Any],
    account: str,
    *,
    display_id: object,
    conversation: dict[str, Any] | None,
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Return the message id, conversation and the common fields of a CSAT `survey` event.

    Raises:
        MappingError: the message has no id, conversation or time.
    """
    message_id = _message_id(payload)
    if conversation is None:
        nested = payload.get("conversation")
        conversation = nested if isinstance(nested, dict) else {}
    display = _message_display_id(payload, conversation, display_id)
    base = {
        "event_id": f"cw:{account}:m:{message_id}",
        "type": "survey",
        "conversation_id": f"cw:{account}:{display}",
        "occurred_at": epoch_ms(payload.get("created_at"), "message 'created_at'"),
    }
    return message_id, conversation, base


def _csat_message(
    payload: dict[str, Any],
    account: str,
    out: Mapped,
    *,
    display_id: object,
    conversation: dict[str, Any] | None,
) -> None:
    """Map a CSAT survey message (webhook `message_created` or REST) to survey events.

    A `survey` `sent` at the message's `created_at`, id `cw:{account}:m:{id}`, `survey_id`
    `cw:{account}:csat:{id}`: Chatwoot sends it when the conversation is resolved, as an
    inbox's own `template` message or as an `outgoing` WhatsApp template. It is no `message`
    event, so it stops no reply clock and counts as no attempt or agent activity. A REST
    message (catch-up) that already carries the rating is followed by the `rated` event, one
    already `failed` by a `not_sent` (see `_csat_update`).

    Raises:
        MappingError: the message has no id, conversation or time, or its rating is not one.
    """
    message_id, conversation, event = _csat_base(
        payload, account, display_id=display_id, conversation=conversation
    )
    survey_id = f"cw:{account}:csat:{message_id}"
    out.add({**event, "action": "sent", "survey_id": survey_id})
    rating = _csat_rating(payload)
    if rating is not None:
        out.add(_csat_rated(payload, event, survey_id, rating, conversation))
    elif _message_status(payload.get("status")) == "failed":
        out.add(_csat_failed(payload, event, survey_id, conversation))


def _csat_update(payload: dict[str, Any], account: str, out: Mapped) -> None:
    """Map a `message_updated` of a CSAT survey message.

    With a rating (`content_attributes.submitted_values.csat_survey_response.rating`, an
    integer 1-5; a string of one digit is read alike): a `survey` `rated` with the survey's
    `survey_id`, at the update's instant (the message's `updated_at`, else the
    conversation's, never before the survey). Its id `cw:{account}:m:{id}:rated:{rating}:
    {seconds}` names the rating and the update's second, so the two webhooks (or a
    redelivery) of one rating collapse while a changed rating (the customer re-rates) is a
    new event that replaces the earlier rating (SPEC §1). Without a rating, a failed delivery
    (`status: failed`) is a `not_sent` with reason `delivery_failed`; receipts are ignored
    as `message_receipt`, anything else as `csat_unrated`. The comment
    (`feedback_message`) is never read.

    Raises:
        MappingError: the message has no id, conversation or time, or the rating is not an
            integer from 1 to 5.
    """
    rating = _csat_rating(payload)
    status = _message_status(payload.get("status"))
    if rating is None and status in ("delivered", "read"):
        out.ignore("message_receipt", f"message_updated is a {status} receipt of a CSAT survey")
        return
    if rating is None and status != "failed":
        out.ignore("csat_unrated", "message_updated of a CSAT survey without a rating")
        return
    message_id, conversation, event = _csat_base(
        payload, account, display_id=None, conversation=None
    )
    survey_id = f"cw:{account}:csat:{message_id}"
    if rating is None:
        out.add(_csat_failed(payload, event, survey_id, conversation))
    else:
        out.add(_csat_rated(payload, event, survey_id, rating, conversation))


def _csat_rating(payload: dict[str, Any]) -> int | None:
    """Return the rating a CSAT message carries, or None when it has none yet.

    Only `rating` is read from `submitted_values.csat_survey_response`; the customer's comment
    beside it is content and is never touched.

    Raises:
        MappingError: the rating is not an integer from 1 to 5 (the message names the value,
            never the comment).
    """
    attributes = payload.get("content_attributes")
    submitted = attributes.get("submitted_values") if isinstance(attributes, dict) else None
    response = submitted.get("csat_survey_response") if isinstance(submitted, dict) else None
    if not isinstance(response, dict) or response.get("rating") is None:
        return None
    raw = response["rating"]
    if isinstance(raw, str) and raw.strip().isdigit() and raw.strip().isascii():
        raw = int(raw.strip())
    if isinstance(raw, int) and not isinstance(raw, bool) and 1 <= raw <= 5:  # noqa: PLR2004
        return raw
    msg = f"CSAT rating must be an integer from 1 to 5, not {raw!r:.20}"
    raise MappingError(msg)


def _csat_rated(
    payload: dict[str, Any],
    event: dict[str, Any],
    survey_id: str,
    rating: int,
    conversation: dict[str, Any],
) -> dict[str, Any]:
    """Return the `rated` survey event of a CSAT message (see `_csat_update`)."""
    at = _update_time(payload, conversation, event["occurred_at"])
    return {
        **event,
        "event_id": f"{event['event_id']}:rated:{rating}:{at // 1000}",
        "occurred_at": at,
        "action": "rated",
        "survey_id": survey_id,
        "rating": rating,
    }


def _csat_failed(
    payload: dict[str, Any], event: dict[str, Any], survey_id: str, conversation: dict[str, Any]
) -> dict[str, Any]:
    """Return the `not_sent` survey event of a CSAT message whose delivery failed."""
    return {
        **event,
        "event_id": f"{event['event_id']}:failed",
        "occurred_at": _update_time(payload, conversation, event["occurred_at"]),
        "action": "not_sent",
        "survey_id": survey_id,
        "reason": "delivery_failed",
    }


def _csat_not_sent(
    payload: dict[str, Any],
    account: str,
    out: Mapped,
    *,
    display_id: object,
    conversation: dict[str, Any] | None,
) -> None:
    """Map Chatwoot's "CSAT survey not sent" activity to a `survey` `not_sent`.

    Reason `outside_window` (SPEC §1's name: Chatwoot writes it when the channel's reply
    window, WhatsApp's 24 hours, had closed at the resolve), at the activity's `created_at`,
    id `cw:{account}:m:{activity id}`, no `survey_id` (no survey exists).

    Raises:
        MappingError: the activity has no id, conversation or time.
    """
    _, _, event = _csat_base(payload, account, display_id=display_id, conversation=conversation)
    out.add({**event, "action": "not_sent", "reason": "outside_window"})


def _retract(
    payload: dict[str, Any],
    account: str,
    message_id: str,
    original: dict[str, Any],
    *,
    conversation: dict[str, Any],
    out: Mapped,
) -> None:
    """Add the retraction of a failed message, in the conversation of its own event."""
    at = _update_time(payload, conversation, original["occurred_at"])
    event_id = f"cw:{account}:m:{message_id}:failed"
    out.add(retraction(event_id, original["conversation_id"], at, message_id))


def _update_time(payload: dict[str, Any], conversation: dict[str, Any], created_at: int) -> int:
    """Return when a message was updated (a failure, a rating), never before it was created.

    The message's `updated_at`, else the conversation's (Chatwoot touches the conversation
    whenever a message changes), else the message's `created_at`: the first that reads.
    """
    for candidate in (payload.get("updated_at"), conversation.get("updated_at")):
        if candidate is not None:
            try:
                return max(epoch_ms(candidate, "message 'updated_at'"), created_at)
            except MappingError:
                continue
    return created_at


def _message_id(payload: dict[str, Any]) -> str:
    """Return the message's `id`.

    Raises:
        MappingError: the message has none, or not a Chatwoot id (see `_id_part`).
    """
    message_id = payload.get("id")
    if message_id is None or message_id == "":
        msg = "message has no 'id'"
        raise MappingError(msg)
    return _id_part(message_id, "message 'id'")


def _id_part(value: object, what: str) -> str:
    """Return a Chatwoot id as text: an integer, or up to 64 printable characters without blanks.

    Ids become parts of event and conversation ids, so nothing else is taken from a payload.

    Raises:
        MappingError: the value is of another type or shape; the message names `what`.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= _MAX_ID and value.isprintable():
        if not any(c.isspace() for c in value):
            return value
    msg = f"{what} must be an integer or a short printable string, not {value!r:.40}"
    raise MappingError(msg)


def _message_display_id(
    payload: dict[str, Any], conversation: dict[str, Any], display_id: object
) -> str:
    """Return the display id of a message's conversation.

    The caller's, else the nested conversation's, else the message's `conversation_id`.

    Raises:
        MappingError: none of them is known.
    """
    if display_id is None:
        display_id = conversation.get("display_id") or conversation.get("id")
        display_id = display_id or payload.get("conversation_id")
    if display_id is None or display_id == "":
        msg = "message has no conversation id"
        raise MappingError(msg)
    return _id_part(display_id, "message's conversation id")


def _message_type(raw: object) -> str | None:
    """Read `message_type`: `incoming|outgoing|activity|template`, its integer, or its digits."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, int):
        return MESSAGE_TYPES.get(raw)
    if isinstance(raw, str) and raw.strip().lower() in MESSAGE_TYPES.values():
        return raw.strip().lower()
    return None


def _message_status(raw: object) -> str | None:
    """Read a message's `status`: `sent|delivered|read|failed`, its integer, or its digits."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, int):
        return MESSAGE_STATUSES.get(raw)
    if isinstance(raw, str):
        return raw.strip().lower()
    return None


def _sender_type(payload: dict[str, Any], sender: object) -> str | None:
    """Return the sender's type: `user`, `contact`, `agent_bot`, `captain_assistant` or None.

    Read from `sender.type`, else the message's `sender_type` (`User`, `Contact`, `AgentBot`,
    `Captain::Assistant`, as the REST API and `conversation.messages[]` spell it). A sender
    object with neither is a contact: Chatwoot's Contact carries no type in webhooks.
    """
    raw = sender.get("type") if isinstance(sender, dict) else None
    if raw is None:
        raw = payload.get("sender_type")
    if isinstance(raw, str) and raw.strip():
        key = raw.strip().lower()
        return _SENDER_TYPES.get(key, key)
    return "contact" if isinstance(sender, dict) else None


def _inbox_id(payload: dict[str, Any], conversation: dict[str, Any]) -> str | None:
    """Return the message's inbox id as text (`inbox.id`, `inbox_id`, the conversation's)."""
    inbox = payload.get("inbox")
    for candidate in (
        inbox.get("id") if isinstance(inbox, dict) else None,
        payload.get("inbox_id"),
        conversation.get("inbox_id"),
    ):
        if candidate is not None and not isinstance(candidate, bool):
            return str(candidate)
    return None


def _channel_type(payload: dict[str, Any], conversation: dict[str, Any]) -> str | None:
    """Return the inbox's channel type (`Channel::…`) named in the payload, if any.

    Webhooks carry it as the conversation's `channel`; the REST API as `meta.channel`.
    """
    meta = conversation.get("meta")
    inbox = payload.get("inbox")
    for candidate in (
        conversation.get("channel"),
        meta.get("channel") if isinstance(meta, dict) else None,
        inbox.get("channel_type") if isinstance(inbox, dict) else None,
        payload.get("channel"),
    ):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return None


def _contact_handles(payload: dict[str, Any], conversation: dict[str, Any]) -> list[str]:
    """Return how the inbox addresses the customer, lower-cased.

    The contact inbox's `source_id`, the contact's `identifier` and the inbox's `medium`,
    where the payload has them.
    """
    handles: list[object] = []
    contact_inbox = conversation.get("contact_inbox")
    if isinstance(contact_inbox, dict):
        handles.append(contact_inbox.get("source_id"))
    meta = conversation.get("meta")
    contact = meta.get("sender") if isinstance(meta, dict) else None
    for who in (contact, payload.get("sender")):
        if isinstance(who, dict):
            handles.append(who.get("identifier"))
    inbox = payload.get("inbox")
    if isinstance(inbox, dict):
        handles.append(inbox.get("medium"))
    return [h.strip().lower() for h in handles if isinstance(h, str) and h.strip()]


def _channel(
    payload: dict[str, Any],
    conversation: dict[str, Any],
    account: str,
    opts: ChatwootOptions,
    out: Mapped,
) -> str:
    """Return the SPEC `channel` of a message: the one the customer wrote on (SPEC §4).

    1. The inbox configuration: `inbox_channels[account][inbox id]`, when set.
    2. The inbox's channel type in the payload, through `CHANNEL_TYPES`. Two types carry
       WhatsApp besides `Channel::Whatsapp`: `Channel::TwilioSms` whose medium is WhatsApp
       (the contact's `source_id` is `whatsapp:+…`), and `Channel::Api` that bridges WhatsApp
       (the contact is a WhatsApp JID, `…@s.whatsapp.net` or `…@c.us`); any other API inbox is
       `api`, flagged `api_inbox_unconfigured` (name its channel in `inbox_channels`). An
       unknown `Channel::Name` is `name` in snake case, flagged `unknown_channel_type`.
    3. Otherwise `fallback_channel`, flagged `channel_unknown`.
    """
    inbox_id = _inbox_id(payload, conversation)
    configured = opts.inbox_channels.get(account, {})
    if inbox_id is not None and inbox_id in configured:
        return configured[inbox_id]
    channel_type = _channel_type(payload, conversation)
    if channel_type is None:
        out.flags.append("channel_unknown")
        return opts.fallback_channel
    handles = _contact_handles(payload, conversation)
    if channel_type == "Channel::TwilioSms" and any(
        h.startswith("whatsapp:") or h == "whatsapp" for h in handles
    ):
        return "whatsapp"
    if channel_type == "Channel::Api":
        if any(_WHATSAPP_JID.match(h) for h in handles):
            return "whatsapp"
        out.flags.append("api_inbox_unconfigured")
        return "api"
    if channel_type in CHANNEL_TYPES:
        return CHANNEL_TYPES[channel_type]
    out.flags.append("unknown_channel_type")
    name = channel_type.removeprefix("Channel::")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() or opts.fallback_channel


def _is_whatsapp_template(payload: dict[str, Any]) -> bool:
    """Whether a message carries WhatsApp `template_params` (Chatwoot sends those as type 1)."""
    for key in ("additional_attributes", "content_attributes"):
        attributes = payload.get(key)
        if isinstance(attributes, dict) and attributes.get("template_params"):
            return True
    return False


def _set_author(
    event: dict[str, Any],
    sender: object,
    sender_type: object,
    account: str,
    opts: ChatwootOptions,
) -> None:
    """Set `author` (and `agent_id`) of an outbound message or note from its sender.

    A user with an id is `agent`, unless the account lists the id in `bot_user_ids` (an
    integration or AI assistant posting as a user): then `bot`. An agent bot or Captain is
    `bot`; no sender at all is `null_sender_author` (with `null_sender_agent` when that is
    `agent`); any other sender (a contact, a platform) is `system`.
    """
    if sender_type == "user" and isinstance(sender, dict) and sender.get("id") is not None:
        user_id = _id_part(sender["id"], "sender 'id'")
        if user_id in opts.bot_user_ids.get(account, frozenset()):
            event["author"] = "bot"
        else:
            event.update(author="agent", agent_id=user_id)
    elif sender_type in _BOT_SENDERS:
        event["author"] = "bot"
    elif sender is None:
        event["author"] = opts.null_sender_author
        if opts.null_sender_author == "agent":
            event["agent_id"] = opts.null_sender_agent
    else:
        event["author"] = "system"


# -- conversations ----------------------------------------------------------------------------


def _display_id(payload: dict[str, Any]) -> str:
    """Return the conversation's `display_id` (the number the UI shows), else its `id`.

    Raises:
        MappingError: the payload has neither.
    """
    display_id = payload.get("display_id") or payload.get("id")
    if display_id is None or display_id == "":
        msg = "conversation has no 'id'"
        raise MappingError(msg)
    return _id_part(display_id, "conversation 'id'")


def _changes(payload: dict[str, Any]) -> dict[str, tuple[Any, Any]] | None:
    """Return `changed_attributes` as `{name: (previous, current)}`, or None if absent.

    Chatwoot sends a list of one-key objects (sometimes one object); later keys win.

    Raises:
        MappingError: an item of the list is not an object.
    """
    raw = payload.get("changed_attributes")
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else [raw]
    changes: dict[str, tuple[Any, Any]] = {}
    for item in items:
        if not isinstance(item, dict):
            msg = "changed_attributes must be a list of objects"
            raise MappingError(msg)
        for key, change in item.items():
            if isinstance(change, dict):
                changes[key] = (change.get("previous_value"), change.get("current_value"))
    return changes


def _team_id(raw: object, opts: ChatwootOptions, out: Mapped) -> str:
    """Return the `team_id` of a Chatwoot team id: its name in `opts.teams`, else the id as text.

    When `opts.teams` is set but does not list the team, the id is kept and the flag
    `team_unmapped` counted: a policy lists teams by the names the map gives them, so such a
    team starts no `team_ownership` clock unless a policy lists its Chatwoot id.

    Raises:
        MappingError: the id is not a Chatwoot id (see `_id_part`).
    """
    team = _id_part(raw, "team id")
    if team in opts.teams:
        return opts.teams[team]
    if opts.teams:
        out.flags.append("team_unmapped")
    return team


def _meta_team(conversation: dict[str, Any]) -> object:
    """Return the team id a conversation payload names (`meta.team.id`, else `team_id`), or None."""
    meta = conversation.get("meta")
    team = meta.get("team") if isinstance(meta, dict) else None
    if isinstance(team, dict) and team.get("id") is not None:
        return team["id"]
    return conversation.get("team_id")


def _message_team(
    message: dict[str, Any],
    conversation: dict[str, Any],
    account: str,
    opts: ChatwootOptions,
    out: Mapped,
) -> None:
    """Add, before a customer's message, the team its webhook's conversation names.

    A `conversation` event, action `updated`, `team_id` only, at the message's instant, id
    `cw:{account}:m:{message id}:team`. It repeats what the monitor knows when no webhook was
    lost, and restores the team when one was (Chatwoot does not retry) or when the
    conversation began before slawatch listened, so its stint starts at the customer's next
    message. A conversation without a team gives nothing (its removal only comes from
    `conversation_updated`); a team id that is not an id is ignored (`bad_team_id`), the
    message is kept.
    """
    raw = _meta_team(conversation)
    if raw is None:
        return
    try:
        team = _team_id(raw, opts, out)
    except MappingError as exc:
        out.ignore("bad_team_id", f"the message's conversation team was not read: {exc}")
        return
    out.add(
        {
            "event_id": f"{message['event_id']}:team",
            "type": "conversation",
            "conversation_id": message["conversation_id"],
            "occurred_at": message["occurred_at"],
            "action": "updated",
            "team_id": team,
        }
    )


def _attributes(
    custom: object, labels: object, opts: ChatwootOptions, out: Mapped
) -> dict[str, Any]:
    """Return the SPEC §1 conversation attributes read from custom attributes and labels.

    Reads the custom attributes named by `opts` as `segment`, `lead_source` and
    `lead_status` (an empty value clears the attribute: None); a lead status that is not one
    of SPEC's is ignored (counted as `bad_lead_status`). Labels become `tags` (all of them, so
    a removed label disappears), and the first of `segment_labels` present sets `segment`.
    Only what the payload holds is returned, so an update never clears an attribute it did
    not mention.
    """
    attributes: dict[str, Any] = {}
    if isinstance(custom, dict):
        for key, name in (
            (opts.segment_attribute, "segment"),
            (opts.lead_source_attribute, "lead_source"),
        ):
            if key in custom:
                value = custom[key]
                attributes[name] = str(value) if value not in (None, "") else None
        if opts.lead_status_attribute in custom:
            status = custom[opts.lead_status_attribute]
            if status in (None, ""):
                attributes["lead_status"] = None
            elif isinstance(status, str) and status.lower() in _LEAD_STATUSES:
                attributes["lead_status"] = status.lower()
            else:
                out.ignore("bad_lead_status", f"lead status {status!r} is not one of SPEC's")
    if labels is not None:
        tags = _label_list(labels)
        attributes["tags"] = tags
        for label in opts.segment_labels:
            if label in tags:
                attributes["segment"] = label
                break
    return attributes


def _label_list(labels: object) -> list[str]:
    """Return labels from a list or a comma-separated string; anything else gives none."""
    if isinstance(labels, str):
        return [part.strip() for part in labels.split(",") if part.strip()]
    if isinstance(labels, list):
        return [str(label) for label in labels if label not in (None, "")]
    return []


def _base(payload: dict[str, Any], account: str, what: str, at: int) -> dict[str, Any]:
    """Return the common fields of a conversation-change event, without its `action`.

    The id `cw:{account}:c:{display_id}:{what}:{seconds}` names the change and its whole
    second, so the two webhooks of one change, or a redelivery, give the same id.

    Raises:
        MappingError: the payload names no conversation.
    """
    display_id = _display_id(payload)
    return {
        "event_id": f"cw:{account}:c:{display_id}:{what}:{at // 1000}",
        "type": "conversation",
        "conversation_id": f"cw:{account}:{display_id}",
        "occurred_at": at,
    }


def _created(payload: dict[str, Any], account: str, opts: ChatwootOptions, out: Mapped) -> None:
    """Map `conversation_created` to a SPEC §1 `conversation` event, action `opened`.

    Reads `created_at` (`occurred_at`), `status` (`pending`: a bot handles it, `handled_by:
    bot`; `snoozed`: waiting on the customer, `status: pending`), `priority` (urgent..low as
    P1..P4), `meta.team.id` (`team_id`, through `_team_id`), custom attributes and labels. An
    assignee already set (`meta.assignee.id`) adds an `assignment` event, action `assigned`,
    at the same instant.

    Raises:
        MappingError: the conversation has no id or no readable `created_at`.
    """
    at = epoch_ms(payload.get("created_at"), "conversation 'created_at'")
    event = _base(payload, account, "opened", at)
    event["action"] = "opened"
    status = payload.get("status")
    if status == "pending":
        event["handled_by"] = "bot"
    elif status == "snoozed":
        event["status"] = "pending"
    priority = payload.get("priority")
    if isinstance(priority, str) and priority in PRIORITIES:
        event["priority"] = PRIORITIES[priority]
    team = _meta_team(payload)
    if team is not None:
        event["team_id"] = _team_id(team, opts, out)
    event.update(_attributes(payload.get("custom_attributes"), payload.get("labels"), opts, out))
    if event.get("tags") == []:
        del event["tags"]
    out.add(event)
    meta = payload.get("meta")
    assignee = meta.get("assignee") if isinstance(meta, dict) else None
    if isinstance(assignee, dict) and assignee.get("id") is not None:
        out.add(_assignment(payload, account, assignee["id"], at))


def _assignment(payload: dict[str, Any], account: str, agent: object, at: int) -> dict[str, Any]:
    """Return a SPEC §1 `assignment` event: `assigned` to `agent` (as text), or `unassigned`.

    Raises:
        MappingError: the payload names no conversation, or the agent id is not an id.
    """
    if agent is None:
        event = _base(payload, account, "assignee:none", at)
        event.update(type="assignment", action="unassigned")
    else:
        agent_id = _id_part(agent, "assignee id")
        event = _base(payload, account, f"assignee:{agent_id}", at)
        event.update(type="assignment", action="assigned", agent_id=agent_id)
    return event


def _updated(payload: dict[str, Any], account: str, opts: ChatwootOptions, out: Mapped) -> None:
    """Map a conversation change to SPEC §1 events, all at the change's instant.

    Reads `changed_attributes`: `status` (see `_status`), `assignee_id` (an `assignment`
    event), and `team_id` (through `_team_id`; null removes the team), `priority`,
    `custom_attributes` and the label keys, which together give one `conversation` event,
    action `updated`, whose id hashes the attributes set. The team travels only on that
    event, never on the `assignment`: `changed_attributes` is the change itself, while `meta`
    is the conversation when Chatwoot's job built the payload, possibly after a later change;
    and an assignment's `team_id` would outlive a removal of the conversation's team in the
    monitor (it falls back to the assignment's team). A
    `conversation_status_changed` without `changed_attributes` takes the payload's `status`.
    A change of nothing SLA-relevant is ignored (`no_sla_change`); keys that are neither
    mapped nor known to be quiet are counted as `unmapped_attribute`.

    Raises:
        MappingError: the change has no readable instant or names no conversation.
    """
    changes = _changes(payload)
    event_name = payload.get("event")
    if changes is not None and event_name == "conversation_status_changed":
        if "status" not in changes and isinstance(payload.get("status"), str):
            changes["status"] = (None, payload["status"])
    if changes is None and event_name == "conversation_status_changed":
        changes = {"status": (None, payload.get("status"))}
    if not changes:
        out.ignore("no_changes", f"{event_name} without changed_attributes")
        return
    at = _change_time(changes, payload)
    mapped_any = False
    if "status" in changes:
        _status(payload, account, changes["status"], opts, at=at, out=out)
        mapped_any = True
    if "assignee_id" in changes:
        out.add(_assignment(payload, account, changes["assignee_id"][1], at))
        mapped_any = True
    updates: dict[str, Any] = {}
    if "team_id" in changes:
        team = changes["team_id"][1]
        updates["team_id"] = None if team is None else _team_id(team, opts, out)
    if "priority" in changes:
        priority = changes["priority"][1]
        updates["priority"] = PRIORITIES.get(priority) if isinstance(priority, str) else None
    custom = changes["custom_attributes"][1] if "custom_attributes" in changes else None
    labels = next((changes[key][1] for key in _LABEL_KEYS if key in changes), None)
    if labels is None and any(key in changes for key in _LABEL_KEYS):
        labels = []
    updates.update(_attributes(custom, labels, opts, out))
    if updates:
        event = _base(payload, account, f"attrs:{short_hash(updates)}", at)
        event.update(action="updated", **updates)
        out.add(event)
        mapped_any = True
    unmapped = sorted(
        key
        for key in changes
        if key not in _QUIET_KEYS
        and key
        not in ("status", "assignee_id", "team_id", "priority", "custom_attributes", *_LABEL_KEYS)
    )
    if not mapped_any:
        keys = ", ".join(sorted(changes)) or "none"
        out.ignore("no_sla_change", f"{event_name} changed nothing SLA-relevant ({keys})")
    elif unmapped:
        out.ignore("unmapped_attribute", f"attributes not mapped: {', '.join(unmapped)}")


def _change_time(changes: dict[str, tuple[Any, Any]], payload: dict[str, Any]) -> int:
    """Return the instant of a change.

    The changed `updated_at`, else the conversation's, else its last activity (`timestamp`):
    the first of them that reads as an instant.
    """
    candidates = (
        changes.get("updated_at", (None, None))[1],
        payload.get("updated_at"),
        payload.get("timestamp"),
        payload.get("last_activity_at"),
    )
    for candidate in candidates:
        if candidate is not None:
            try:
                return epoch_ms(candidate, "conversation 'updated_at'")
            except MappingError:
                continue
    msg = "conversation change has no readable 'updated_at' or 'timestamp'"
    raise MappingError(msg)


def _status(
    payload: dict[str, Any],
    account: str,
    change: tuple[Any, Any],
    opts: ChatwootOptions,
    *,
    at: int,
    out: Mapped,
) -> None:
    """Map a status change to SPEC §1 `conversation` events.

    `resolved` gives action `resolved` (with `outcome` from the outcome custom attribute,
    if set). Leaving `resolved` gives `reopened` first. Then the new status: `open` is a
    human handling it (`handled_by: human`, `status: open`; from `snoozed` only `status:
    open`), `pending` is a bot handling it (`handled_by: bot`), `snoozed` is waiting on the
    customer (`status: pending`); an unknown status is ignored. Reopening straight to `open`
    gives only the `reopened` event.
    """
    previous, current = change
    if current == "resolved":
        event = _base(payload, account, "status:resolved", at)
        event["action"] = "resolved"
        custom = payload.get("custom_attributes")
        outcome = custom.get(opts.outcome_attribute) if isinstance(custom, dict) else None
        if isinstance(outcome, str) and outcome:
            event["outcome"] = outcome
        out.add(event)
        return
    if previous == "resolved":
        event = _base(payload, account, "status:reopened", at)
        event["action"] = "reopened"
        out.add(event)
    attributes: dict[str, str]
    if current == "open":
        attributes = {"handled_by": "human", "status": "open"}
        if previous == "snoozed":
            attributes = {"status": "open"}
    elif current == "pending":
        attributes = {"handled_by": "bot"}
    elif current == "snoozed":
        attributes = {"status": "pending"}
    else:
        out.ignore("unknown_status", f"conversation status {current!r} is not mapped")
        return
    if previous == "resolved" and current == "open":
        return
    event = _base(payload, account, f"status:{current}", at)
    event.update(action="updated", **attributes)
    out.add(event)
