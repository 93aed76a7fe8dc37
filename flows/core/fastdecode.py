"""A fast path in front of the event decoder: msgspec reads the common events, the rest falls back.

`decode_fast(raw, ...)` returns exactly what `flows.core.decode.decode_event(raw, ...)` returns
(the same event, or the same `Rejected` reason) for every input; it is only quicker on the
events producers actually send. `msgspec.json.Decoder` parses the bytes straight into one flat
`Struct` that lists every field any event type reads, typed as the decoder accepts it; the
checks `decode_event` makes by hand are then made on its attributes, and the frozen events of
`flows.core.events` are built from them.

The fast path answers only when it is sure; anything else goes to `decode_event` unchanged:

* input that is not `bytes`, is over `max_bytes`, holds a non-ASCII byte or a backslash (so every
  string is its literal bytes: no escapes, no UTF-8 to validate), or that msgspec refuses: not
  JSON, not an object, an unknown field (`forbid_unknown_fields`: content such as `text`, or any
  field the contract does not name), a field of a type the `Struct` does not expect;
* any value `decode_event` would refuse or has to look at more closely: a missing required
  field, an id that is empty, over 256 characters or not printable, a value outside its enum, a
  `rating` outside 1-5, an instant out of range or one `flows.core.timefmt.parse_instant`
  refuses, an `occurred_at` past the future limit.

Instants in the shape slawatch itself writes (`YYYY-MM-DDTHH:MM:SS.mmmZ`) are read from a cache
of their minute, which `parse_instant` fills; every other instant is read by `parse_instant`.
"""

from __future__ import annotations

from typing import Final

import msgspec
from msgspec import UNSET, UnsetType

from flows.core.decode import (
    ASSIGNMENT_ACTIONS,
    ATTRIBUTE_ACTIONS,
    ATTRIBUTE_ENUMS,
    AUTHORS,
    DIRECTIONS,
    MAX_EVENT_BYTES,
    MAX_FUTURE_MS,
    MAX_ID_CHARS,
    SURVEY_ACTIONS,
    decode_event,
)
from flows.core.events import (
    ActivityEvent,
    AssignmentEvent,
    AttrValue,
    ConversationEvent,
    Event,
    MessageEvent,
    Rejected,
    RetractionEvent,
    SurveyEvent,
)
from flows.core.timefmt import MAX_INSTANT, MIN_INSTANT, parse_instant

__all__ = ["decode_fast"]


class _Wire(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Every field an input event may carry, as the fast path accepts it (SPEC §1).

    Fields `decode_event` treats differently when null and when absent (an attribute's `null`
    clears it; a message's `action: null` is refused) default to `UNSET`; the others to None.
    `gc=False`: the values are strings, integers and lists of strings, which hold no cycle.
    """

    event_id: str
    type: str
    conversation_id: str
    occurred_at: int | str
    action: str | None | UnsetType = UNSET
    direction: str | None = None
    author: str | None = None
    agent_id: str | None = None
    message_id: str | None = None
    channel: str | None = None
    kind: str | None = None
    role: str | None = None
    by: str | None = None
    outcome: str | None = None
    due_at: int | str | None = None
    survey_id: str | None = None
    rating: int | None = None
    reason: str | None = None
    priority: str | None | UnsetType = UNSET
    segment: str | None | UnsetType = UNSET
    lead_source: str | None | UnsetType = UNSET
    lead_status: str | None | UnsetType = UNSET
    team_id: str | None | UnsetType = UNSET
    handled_by: str | None | UnsetType = UNSET
    status: str | None | UnsetType = UNSET
    tags: list[str] | None | UnsetType = UNSET


_DECODER: Final = msgspec.json.Decoder(_Wire)
_PRIORITIES: Final = ATTRIBUTE_ENUMS["priority"]
_LEAD_STATUSES: Final = ATTRIBUTE_ENUMS["lead_status"]
_HANDLED_BY: Final = ATTRIBUTE_ENUMS["handled_by"]
_STATUSES: Final = ATTRIBUTE_ENUMS["status"]

# The `SS` and `.mmmZ` of an instant in slawatch's own shape, and the epoch ms of each
# `YYYY-MM-DDTHH:MM:` read so far (cleared past `_MINUTE_CACHE_SIZE`, as timefmt's prefixes).
_SECOND_MS: Final = {f"{second:02d}": second * 1000 for second in range(60)}
_FRACTION_MS: Final = {f".{milli:03d}Z": milli for milli in range(1000)}
_MINUTE_CACHE_SIZE: Final = 4096
_minutes: dict[str, int] = {}


class _Unsure(Exception):
    """Raised inside the fast path when only `decode_event` may answer."""


def decode_fast(
    raw: bytes,
    *,
    now: int | None = None,
    max_future_ms: int = MAX_FUTURE_MS,
    max_bytes: int = MAX_EVENT_BYTES,
) -> Event | Rejected:
    """Decode one input event exactly as `decode_event` does, faster for the common events.

    Args:
        raw: The event as UTF-8 JSON bytes (one Kafka message value or one JSONL line).
        now: The wall clock in epoch ms for the future check, or None to skip it.
        max_future_ms: How far in the future `occurred_at` may be, in ms.
        max_bytes: Inputs longer than this are rejected before parsing.

    Returns:
        `decode_event(raw, now=now, max_future_ms=max_future_ms, max_bytes=max_bytes)`: the
        event, or `Rejected` with its reason (every rejection is `decode_event`'s own).
    """
    if type(raw) is bytes and len(raw) <= max_bytes and raw.isascii() and b"\\" not in raw:
        try:
            event = _build(_DECODER.decode(raw))
        except (msgspec.MsgspecError, _Unsure):
            pass
        else:
            if now is None or event.occurred_at - now <= max_future_ms:
                return event
    return decode_event(raw, now=now, max_future_ms=max_future_ms, max_bytes=max_bytes)


# Events are built with positional arguments, as in `flows.core.decode` (twice as fast).


def _build(wire: _Wire) -> Event:
    """Build the event `decode_event` would build from the same JSON object.

    Raises:
        _Unsure: a field is one `decode_event` refuses or reads in a way not copied here.
    """
    event_id = wire.event_id
    conversation_id = wire.conversation_id
    if not (
        0 < len(event_id) <= MAX_ID_CHARS
        and event_id.isprintable()
        and 0 < len(conversation_id) <= MAX_ID_CHARS
        and conversation_id.isprintable()
    ):
        raise _Unsure
    at = _instant(wire.occurred_at)
    kind = wire.type
    if kind == "message":
        return _message(wire, event_id, conversation_id, at)
    if kind == "conversation":
        return _conversation(wire, event_id, conversation_id, at)
    if kind == "assignment":
        return _assignment(wire, event_id, conversation_id, at)
    if kind == "activity":
        return _activity(wire, event_id, conversation_id, at)
    if kind == "survey":
        return _survey(wire, event_id, conversation_id, at)
    raise _Unsure


def _message(
    wire: _Wire, event_id: str, conversation_id: str, at: int
) -> MessageEvent | RetractionEvent:
    """Build a `message` event, or the retraction of a failed one (only `message_id` read)."""
    if wire.action is not UNSET:
        if wire.action != "failed":
            raise _Unsure
        return RetractionEvent(event_id, conversation_id, at, _id(wire.message_id))
    direction = wire.direction
    author = wire.author
    if direction not in DIRECTIONS or author not in AUTHORS:
        raise _Unsure
    agent_id = wire.agent_id
    if agent_id is None:
        if author == "agent":
            raise _Unsure
    else:
        _id(agent_id)
    message_id = wire.message_id
    if message_id is not None:
        _id(message_id)
    channel = wire.channel
    kind = wire.kind
    return MessageEvent(
        event_id,
        conversation_id,
        at,
        direction,
        author,
        agent_id,
        message_id,
        "whatsapp" if channel is None else channel,
        "text" if kind is None else kind,
    )


def _conversation(wire: _Wire, event_id: str, conversation_id: str, at: int) -> ConversationEvent:
    """Build a `conversation` event; only the fields its `action` uses are read."""
    action = wire.action
    if action in ATTRIBUTE_ACTIONS:
        return ConversationEvent(event_id, conversation_id, at, action, _attributes(wire))
    if action == "resolved":
        return ConversationEvent(event_id, conversation_id, at, action, (), wire.outcome)
    if action == "follow_up_promised":
        due_at = wire.due_at
        if due_at is None:
            raise _Unsure
        return ConversationEvent(event_id, conversation_id, at, action, (), None, _instant(due_at))
    if action == "reopened":
        return ConversationEvent(event_id, conversation_id, at, action)
    raise _Unsure


def _attributes(wire: _Wire) -> tuple[tuple[str, AttrValue], ...]:
    """Return the attributes present, in sorted key order, as `decode_event` reads them."""
    attrs: list[tuple[str, AttrValue]] = []
    # Unrolled in the sorted order of ATTRIBUTE_KEYS: a loop of getattr costs twice as much.
    value = wire.handled_by
    if value is not UNSET:
        attrs.append(("handled_by", _one_of(value, _HANDLED_BY)))
    value = wire.lead_source
    if value is not UNSET:
        attrs.append(("lead_source", value))
    value = wire.lead_status
    if value is not UNSET:
        attrs.append(("lead_status", _one_of(value, _LEAD_STATUSES)))
    value = wire.priority
    if value is not UNSET:
        attrs.append(("priority", _one_of(value, _PRIORITIES)))
    value = wire.segment
    if value is not UNSET:
        attrs.append(("segment", value))
    value = wire.status
    if value is not UNSET:
        attrs.append(("status", _one_of(value, _STATUSES)))
    tags = wire.tags
    if tags is not UNSET:
        attrs.append(("tags", None if tags is None else tuple(tags)))
    value = wire.team_id
    if value is not UNSET:
        attrs.append(("team_id", None if value is None else _id(value)))
    return tuple(attrs)


def _assignment(wire: _Wire, event_id: str, conversation_id: str, at: int) -> AssignmentEvent:
    """Build an `assignment` event: `action`; `agent_id` required when `assigned`."""
    action = wire.action
    if action not in ASSIGNMENT_ACTIONS:
        raise _Unsure
    agent_id = wire.agent_id
    if agent_id is None:
        if action == "assigned":
            raise _Unsure
    else:
        _id(agent_id)
    team_id = wire.team_id
    if team_id is UNSET:
        team_id = None
    elif team_id is not None:
        _id(team_id)
    return AssignmentEvent(
        event_id, conversation_id, at, action, agent_id, team_id, wire.role, wire.by
    )


def _activity(wire: _Wire, event_id: str, conversation_id: str, at: int) -> ActivityEvent:
    """Build an `activity` event: `kind` (non-empty) and `agent_id` required."""
    kind = wire.kind
    if not kind:
        raise _Unsure
    return ActivityEvent(event_id, conversation_id, at, kind, _id(wire.agent_id), wire.outcome)


def _survey(wire: _Wire, event_id: str, conversation_id: str, at: int) -> SurveyEvent:
    """Build a `survey` event: `action`; `rating` 1-5 when `rated`; `reason` for `not_sent`."""
    action = wire.action
    if action not in SURVEY_ACTIONS:
        raise _Unsure
    survey_id = wire.survey_id
    if survey_id is not None:
        _id(survey_id)
    if action == "rated":
        rating = wire.rating
        if rating is None or not 1 <= rating <= 5:
            raise _Unsure
        return SurveyEvent(event_id, conversation_id, at, action, survey_id, rating)
    reason = wire.reason if action == "not_sent" else None
    return SurveyEvent(event_id, conversation_id, at, action, survey_id, None, reason)


def _id(value: str | None) -> str:
    """Return `value` if it is an id the fast path is sure of (1-256 printable characters)."""
    # Input is ASCII, where printable means no control character: exactly decode's `_id_ok`.
    if value is None or not 0 < len(value) <= MAX_ID_CHARS or not value.isprintable():
        raise _Unsure
    return value


def _one_of(value: str | None, allowed: tuple[str, ...]) -> str | None:
    """Return `value` if it is None (clears the attribute) or one of `allowed`."""
    if value is not None and value not in allowed:
        raise _Unsure
    return value


def _instant(value: int | str) -> int:
    """Return an input instant as epoch ms, as `parse_instant` reads it.

    Raises:
        _Unsure: `parse_instant` refuses it.
    """
    if isinstance(value, int):  # never a bool: msgspec refuses one for `int | str`
        if MIN_INSTANT <= value <= MAX_INSTANT:
            return value
        raise _Unsure
    if len(value) == 24:
        second = _SECOND_MS.get(value[17:19])
        fraction = _FRACTION_MS.get(value[19:])
        if second is not None and fraction is not None:
            prefix = value[:17]
            minute = _minutes.get(prefix)
            if minute is None:
                # A valid `YYYY-MM-DDTHH:MM:` parses with any seconds; its minute is in range
                # whole, since MIN_INSTANT and MAX_INSTANT bound whole minutes.
                minute = _parse(prefix + "00.000Z")
                if len(_minutes) >= _MINUTE_CACHE_SIZE:
                    _minutes.clear()
                _minutes[prefix] = minute
            return minute + second + fraction
    return _parse(value)


def _parse(text: str) -> int:
    """Return `parse_instant(text)`; raise `_Unsure` where it raises."""
    try:
        return parse_instant(text)
    except ValueError:
        raise _Unsure from None
