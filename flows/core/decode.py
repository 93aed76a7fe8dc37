"""The one decoder of input events (SPEC §1): bytes in, an event or a rejection out.

`decode_event` turns one Kafka message value or one JSONL line into a `MessageEvent`,
`AssignmentEvent`, `ConversationEvent`, `ActivityEvent` or `RetractionEvent` (a failed message),
or into a `Rejected` whose reason names
the offending field; the caller makes the rejection a dead letter (SPEC §6). It never raises on
bad input. It is on the hot path: one `orjson.loads`, then direct dictionary lookups.

The JSON Schemas in `schemas/` describe the same contract for producers; the unit tests check
that schema and decoder agree. What the decoder accepts, in short:

* every event: `event_id`, `type`, `conversation_id` (non-empty strings) and `occurred_at`
  (RFC 3339 with an offset, or integer epoch milliseconds; see `flows.core.timefmt`);
* ids (`event_id`, `conversation_id`, `agent_id`, `team_id`, `message_id`) are non-empty
  strings of at most 256 characters with no control characters (SPEC §1: a CR/LF in an id would
  reach e-mail headers and URLs downstream); other strings may be empty;
* `{"type": "message", "action": "failed", "message_id": …}` retracts a message whose delivery
  failed (only `message_id` is read);
* an optional field that is `null` counts as absent, except conversation attributes, where
  `null` clears the attribute;
* unknown fields are ignored, and so are fields that do not belong to the event's `type` or
  `action` (e.g. `priority` on a `resolved` event); message content is never kept.
"""

from __future__ import annotations

import re
from typing import Any, Final, NoReturn

import orjson

from flows.core.events import (
    ATTRIBUTE_KEYS,
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
from flows.core.timefmt import MAX_INSTANT, MIN_INSTANT, format_instant, parse_instant

#: Largest input accepted, in bytes (1 MiB); real events are a few hundred bytes.
MAX_EVENT_BYTES: Final = 1_048_576
#: How far past `now` an `occurred_at` may lie before the event is refused (5 minutes).
MAX_FUTURE_MS: Final = 300_000

#: Values of `type`.
EVENT_TYPES: Final = ("message", "assignment", "conversation", "activity", "survey")
#: Values of a message's `direction`.
DIRECTIONS: Final = ("inbound", "outbound")
#: Longest id accepted (SPEC §1), in characters.
MAX_ID_CHARS: Final = 256
#: Characters no id may hold: C0 and C1 controls (CR, LF, tab, NUL…), DEL, line separators.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: Values of a message's `author`.
AUTHORS: Final = ("customer", "agent", "bot", "system")
#: Values of a message's `action` (optional; `failed` retracts an undelivered message).
MESSAGE_ACTIONS: Final = ("failed",)
#: Values of a survey's `action`.
SURVEY_ACTIONS: Final = ("sent", "not_sent", "rated")
#: Ratings a `rated` survey may carry (SPEC §1).
RATINGS: Final = range(1, 6)
#: Values of an assignment's `action`.
ASSIGNMENT_ACTIONS: Final = ("assigned", "unassigned")
#: Values of a conversation event's `action`.
CONVERSATION_ACTIONS: Final = ("opened", "updated", "resolved", "reopened", "follow_up_promised")
#: Conversation actions that set attributes (`ATTRIBUTE_KEYS`).
ATTRIBUTE_ACTIONS: Final = ("opened", "updated")
#: Attributes restricted to a fixed set of values.
ATTRIBUTE_ENUMS: Final = {
    "priority": ("P1", "P2", "P3", "P4"),
    "lead_status": ("new", "qualified", "disqualified", "nurture"),
    "handled_by": ("bot", "human"),
    "status": ("open", "pending"),
}
#: Attributes that are ids, hence non-empty.
_ID_ATTRIBUTES: Final = frozenset({"team_id"})
_SORTED_ATTRIBUTE_KEYS: Final = tuple(sorted(ATTRIBUTE_KEYS))

_MAX_SHOWN: Final = 40


class _Invalid(Exception):
    """Raised inside the decoder with the rejection reason; turned into `Rejected`."""

    def __init__(self, reason: str) -> None:
        """Carry `reason`, the text the dead letter will show.

        Args:
            reason: The rejection reason, naming the field at fault.
        """
        super().__init__(reason)
        self.reason = reason


def decode_event(
    raw: bytes,
    *,
    now: int | None = None,
    max_future_ms: int = MAX_FUTURE_MS,
    max_bytes: int = MAX_EVENT_BYTES,
) -> Event | Rejected:
    """Decode one input event.

    Args:
        raw: the event as UTF-8 JSON bytes (one Kafka message value or one JSONL line).
        now: the wall clock in epoch ms; when given, an event whose `occurred_at` lies more than
            `max_future_ms` after it is rejected (a producer with a wrong clock would otherwise
            fire breaches early). None skips the check (replays of old files).
        max_future_ms: how far in the future `occurred_at` may be, in ms.
        max_bytes: inputs longer than this are rejected before parsing.

    Returns:
        The event, or `Rejected` with a reason that names the field at fault, one of:
        `event is N bytes, over the M-byte limit`; `event is not valid UTF-8: ...`;
        `event is not valid JSON: ...`; `event must be a JSON object, not ...`;
        `missing field 'F'`; `missing field 'F' (required when K is 'V')`;
        `field 'F' must be a string, not ...`; `field 'F' must not be empty`;
        `field 'F' must be one of 'A', 'B', not 'X'`;
        `field 'tags' must be a list of strings, not ...`; `field 'F': <instant error>`;
        `field 'occurred_at' is N s in the future (limit M s)`.
    """
    size = len(raw)
    if size > max_bytes:
        return Rejected(f"event is {size} bytes, over the {max_bytes}-byte limit")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejected(_syntax_reason(raw, exc))
    if type(obj) is not dict:
        return Rejected(f"event must be a JSON object, not {_json_type(obj)}")
    try:
        event = _decode_object(obj)
    except _Invalid as exc:
        return Rejected(exc.reason)
    if now is not None and event.occurred_at - now > max_future_ms:
        ahead = _seconds(event.occurred_at - now)
        limit = _seconds(max_future_ms)
        return Rejected(f"field 'occurred_at' is {ahead} s in the future (limit {limit} s)")
    return event


# Events are built with positional arguments: a frozen dataclass's __init__ takes twice as long
# with keywords. The round-trip tests catch a field given out of order.


def _decode_object(obj: dict[str, Any]) -> Event:
    """Build the event of a decoded JSON object, or raise `_Invalid` naming the field at fault.

    SPEC §1: every event needs `event_id`, `type`, `conversation_id` and `occurred_at`; the rest
    depends on `type`. The common fields are checked inline (the hot path); a failing one is read
    again by a field reader only to word the reason.

    Raises:
        _Invalid: a required field is missing, empty, of the wrong type or out of range.
    """
    # Every event has these four: check them inline, and call the readers only to explain.
    event_id = obj.get("event_id")
    if type(event_id) is not str or not _id_ok(event_id):
        event_id = _required_id(obj, "event_id")
    kind = obj.get("type")
    if kind not in EVENT_TYPES or type(kind) is not str:
        kind = _required_enum(obj, "type", EVENT_TYPES)
    conversation_id = obj.get("conversation_id")
    if type(conversation_id) is not str or not _id_ok(conversation_id):
        conversation_id = _required_id(obj, "conversation_id")
    occurred_at = obj.get("occurred_at")
    if type(occurred_at) is not int or not MIN_INSTANT <= occurred_at <= MAX_INSTANT:
        occurred_at = _required_instant(obj, "occurred_at")
    if kind == "message":
        return _message(obj, event_id, conversation_id, occurred_at)
    if kind == "conversation":
        return _conversation(obj, event_id, conversation_id, occurred_at)
    if kind == "assignment":
        return _assignment(obj, event_id, conversation_id, occurred_at)
    if kind == "survey":
        return _survey(obj, event_id, conversation_id, occurred_at)
    return _activity(obj, event_id, conversation_id, occurred_at)


def _message(
    obj: dict[str, Any], event_id: str, conversation_id: str, at: int
) -> MessageEvent | RetractionEvent:
    """Build a `message` event (SPEC §1), or the retraction of a failed one.

    With `action: failed`, only `message_id` (required) is read: the message with that id never
    reached the customer. Otherwise `direction` and `author` are required; `agent_id` is required
    when the author is `agent`. `channel` defaults to `whatsapp` and `kind` to `text`; message
    content is never read.

    Raises:
        _Invalid: naming the field at fault.
    """
    if "action" in obj:
        action = _required_enum(obj, "action", MESSAGE_ACTIONS)
        if action == "failed":
            return RetractionEvent(
                event_id, conversation_id, at, _required_id(obj, "message_id", "action", "failed")
            )
    direction = _required_enum(obj, "direction", DIRECTIONS)
    author = _required_enum(obj, "author", AUTHORS)
    agent_id = _optional_id(obj, "agent_id")
    if agent_id is None and author == "agent":
        _missing("agent_id", "author", "agent")
    message_id = _optional_id(obj, "message_id")
    channel = _optional_string(obj, "channel")
    kind = _optional_string(obj, "kind")
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


def _assignment(
    obj: dict[str, Any], event_id: str, conversation_id: str, at: int
) -> AssignmentEvent:
    """Build an `assignment` event (SPEC §1): `action`; `agent_id` required when `assigned`.

    `team_id` must be non-empty when given; `role` and `by` are free text.

    Raises:
        _Invalid: naming the field at fault.
    """
    action = _required_enum(obj, "action", ASSIGNMENT_ACTIONS)
    agent_id = _optional_id(obj, "agent_id")
    if agent_id is None and action == "assigned":
        _missing("agent_id", "action", "assigned")
    return AssignmentEvent(
        event_id,
        conversation_id,
        at,
        action,
        agent_id,
        _optional_id(obj, "team_id"),
        _optional_string(obj, "role"),
        _optional_string(obj, "by"),
    )


def _conversation(
    obj: dict[str, Any], event_id: str, conversation_id: str, at: int
) -> ConversationEvent:
    """Build a `conversation` event (SPEC §1); only the fields its `action` uses are read.

    `opened`/`updated` carry attributes, `resolved` an optional `outcome`, `follow_up_promised` a
    required `due_at` instant (epoch ms UTC); `reopened` nothing.

    Raises:
        _Invalid: naming the field at fault.
    """
    action = _required_enum(obj, "action", CONVERSATION_ACTIONS)
    if action in ATTRIBUTE_ACTIONS:
        return ConversationEvent(event_id, conversation_id, at, action, _attributes(obj))
    if action == "resolved":
        outcome = _optional_string(obj, "outcome")
        return ConversationEvent(event_id, conversation_id, at, action, (), outcome)
    if action == "follow_up_promised":
        if obj.get("due_at") is None:
            _missing("due_at", "action", "follow_up_promised")
        due_at = _required_instant(obj, "due_at")
        return ConversationEvent(event_id, conversation_id, at, action, (), None, due_at)
    return ConversationEvent(event_id, conversation_id, at, action)


def _attributes(obj: dict[str, Any]) -> tuple[tuple[str, AttrValue], ...]:
    """Read the conversation attributes present in `obj`, in sorted key order.

    A `null` value is kept as None (it clears the attribute); `tags` is a list of strings;
    `priority`, `lead_status`, `handled_by` and `status` must be one of their values; `team_id` must
    be non-empty.

    Returns:
        (key, value) pairs, only for keys present.

    Raises:
        _Invalid: naming the attribute at fault.
    """
    attrs: list[tuple[str, AttrValue]] = []
    for key in _SORTED_ATTRIBUTE_KEYS:
        if key not in obj:
            continue
        value = obj[key]
        if value is None:
            attrs.append((key, None))
        elif key == "tags":
            attrs.append((key, _tags(value)))
        elif type(value) is not str:
            _wrong_type(key, "a string or null", value)
        elif key in ATTRIBUTE_ENUMS:
            allowed = ATTRIBUTE_ENUMS[key]
            if value not in allowed:
                _not_one_of(key, allowed, value)
            attrs.append((key, value))
        elif key in _ID_ATTRIBUTES and not _id_ok(value):
            _bad_id(key, value)
        else:
            attrs.append((key, value))
    return tuple(attrs)


def _tags(value: object) -> tuple[str, ...]:
    """Return `tags` as a tuple of strings.

    Raises:
        _Invalid: not a list, or a list holding something other than strings.
    """
    if type(value) is list and all(type(tag) is str for tag in value):
        return tuple(value)
    if type(value) is list:
        bad = next(tag for tag in value if type(tag) is not str)
        reason = f"field 'tags' must be a list of strings, not a list holding {_json_type(bad)}"
        raise _Invalid(reason)
    _wrong_type("tags", "a list of strings or null", value)


def _activity(obj: dict[str, Any], event_id: str, conversation_id: str, at: int) -> ActivityEvent:
    """Build an `activity` event (SPEC §1): `kind` and `agent_id` required, `outcome` optional.

    Raises:
        _Invalid: naming the field at fault.
    """
    return ActivityEvent(
        event_id,
        conversation_id,
        at,
        _required_nonempty(obj, "kind"),
        _required_id(obj, "agent_id"),
        _optional_string(obj, "outcome"),
    )


def _survey(obj: dict[str, Any], event_id: str, conversation_id: str, at: int) -> SurveyEvent:
    """Build a `survey` event (SPEC §1): `action`; `rating` (an integer 1-5) when `rated`.

    `survey_id` is an optional id; `reason` is read for `not_sent` only. A comment is never read.

    Raises:
        _Invalid: naming the field at fault.
    """
    action = _required_enum(obj, "action", SURVEY_ACTIONS)
    survey_id = _optional_id(obj, "survey_id")
    if action == "rated":
        rating = obj.get("rating")
        if rating is None:
            _missing("rating", "action", "rated")
        if type(rating) is not int:
            _wrong_type("rating", "an integer from 1 to 5", rating)
        if rating not in RATINGS:
            msg = f"field 'rating' must be an integer from 1 to 5, not {rating}"
            raise _Invalid(msg)
        return SurveyEvent(event_id, conversation_id, at, action, survey_id, rating)
    reason = _optional_string(obj, "reason") if action == "not_sent" else None
    return SurveyEvent(event_id, conversation_id, at, action, survey_id, None, reason)


# Field readers: each returns the value or raises `_Invalid` naming the field.


def _required_nonempty(obj: dict[str, Any], key: str) -> str:
    """Return `obj[key]`, which must be a non-empty string; else raise `_Invalid` naming `key`."""
    value = obj.get(key)
    if type(value) is str and value:
        return value
    if value is None and key not in obj:
        _missing(key)
    if value == "":
        _empty(key)
    _wrong_type(key, "a string", value)


def _id_ok(value: str) -> bool:
    """Return whether a string is a valid id: 1-256 characters, none of them a control character."""
    if not value or len(value) > MAX_ID_CHARS:
        return False
    # isprintable() is the fast path; it also refuses spaces such as U+00A0, which ids may hold.
    return value.isprintable() or _CONTROL.search(value) is None


def _required_id(
    obj: dict[str, Any], key: str, when_key: str | None = None, when_value: str | None = None
) -> str:
    """Return `obj[key]`, a valid id (`_id_ok`); else raise `_Invalid` naming `key`."""
    value = obj.get(key)
    if type(value) is str and _id_ok(value):
        return value
    if value is None and (key not in obj or when_key is not None):
        _missing(key, when_key, when_value)
    if type(value) is str:
        _bad_id(key, value)
    _wrong_type(key, "a string", value)


def _optional_id(obj: dict[str, Any], key: str) -> str | None:
    """Return `obj[key]` (a valid id) or None when absent or null; else raise `_Invalid`."""
    value = obj.get(key)
    if value is None or (type(value) is str and _id_ok(value)):
        return value
    if type(value) is str:
        _bad_id(key, value)
    _wrong_type(key, "a string or null", value)


def _bad_id(key: str, value: str) -> NoReturn:
    """Raise `_Invalid`: the id in `key` is empty, too long or holds a control character."""
    if not value:
        _empty(key)
    if len(value) > MAX_ID_CHARS:
        msg = f"field {key!r} is {len(value)} characters long, over the {MAX_ID_CHARS} of an id"
        raise _Invalid(msg)
    bad = _CONTROL.search(value)
    code = f"U+{ord(bad.group()):04X}" if bad is not None else "?"
    msg = f"field {key!r} must not hold control characters (found {code} in {_show(value)})"
    raise _Invalid(msg)


def _optional_string(obj: dict[str, Any], key: str) -> str | None:
    """Return `obj[key]` (any string, even empty), or None if absent or null; else `_Invalid`."""
    value = obj.get(key)
    if value is None or type(value) is str:
        return value
    _wrong_type(key, "a string or null", value)


def _required_enum(obj: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    """Return `obj[key]`, which must be one of `allowed`; else raise `_Invalid` listing them."""
    value = obj.get(key)
    if type(value) is str and value in allowed:
        return value
    if value is None and key not in obj:
        _missing(key)
    if type(value) is not str:
        _wrong_type(key, "a string", value)
    _not_one_of(key, allowed, value)


def _required_instant(obj: dict[str, Any], key: str) -> int:
    """Return `obj[key]` as epoch ms UTC (RFC 3339 with offset, or integer epoch ms).

    Raises:
        _Invalid: the field is missing or not a valid instant (the reason says why).
    """
    if key not in obj:
        _missing(key)
    try:
        return parse_instant(obj[key])
    except ValueError as exc:
        reason = f"field '{key}': {exc}"
        raise _Invalid(reason) from None


# Reasons.


def _missing(key: str, when_key: str | None = None, when_value: str | None = None) -> NoReturn:
    """Raise `_Invalid`: "missing field 'F'", with "(required when K is 'V')" when conditional."""
    reason = f"missing field '{key}'"
    if when_key is not None:
        reason = f"{reason} (required when {when_key} is '{when_value}')"
    raise _Invalid(reason)


def _empty(key: str) -> NoReturn:
    """Raise `_Invalid`: "field 'F' must not be empty"."""
    reason = f"field '{key}' must not be empty"
    raise _Invalid(reason)


def _wrong_type(key: str, expected: str, value: object) -> NoReturn:
    """Raise `_Invalid`: "field 'F' must be <expected>, not <JSON type of value>"."""
    reason = f"field '{key}' must be {expected}, not {_json_type(value)}"
    raise _Invalid(reason)


def _not_one_of(key: str, allowed: tuple[str, ...], value: str) -> NoReturn:
    """Raise `_Invalid`: "field 'F' must be one of 'A', 'B', not 'X'" (X cut to 40 characters)."""
    choices = ", ".join(f"'{choice}'" for choice in allowed)
    reason = f"field '{key}' must be one of {choices}, not {_show(value)}"
    raise _Invalid(reason)


def _syntax_reason(raw: bytes, exc: orjson.JSONDecodeError) -> str:
    """Return why orjson could not parse `raw`: bad UTF-8 (byte and offset), else bad JSON."""
    # orjson reports bad UTF-8 and bad JSON alike; Python's codec tells them apart and says where.
    try:
        bytes(raw).decode("utf-8")
    except UnicodeDecodeError as bad:
        offending = bad.object[bad.start]
        return f"event is not valid UTF-8: byte 0x{offending:02x} at offset {bad.start}"
    except (AttributeError, TypeError):
        pass  # `raw` is a str: always valid text
    return f"event is not valid JSON: {exc}"


def _json_type(value: object) -> str:
    """Return the JSON type of a parsed value as a reason says it ("null", "an integer", …)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _show(text: str) -> str:
    """Return `repr(text)`, cut to 40 characters, so a reason never carries a long value."""
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return repr(text)


def _seconds(ms: int) -> str:
    """Format milliseconds as seconds with at most three decimals and no trailing zeros."""
    return f"{ms / 1000:.3f}".rstrip("0").rstrip(".")


def event_to_json(event: Event) -> dict[str, Any]:
    """Return the canonical JSON object of an event: what `decode_event` reads back as `event`.

    Instants are RFC 3339 UTC strings with milliseconds; optional fields that are None are left
    out, except conversation attributes, where None is written as `null` (it clears the
    attribute). Used by tests and simulators: `decode_event(orjson.dumps(event_to_json(e)))`
    equals `e` for every event the decoder can produce.

    Args:
        event: the event.

    Returns:
        A dict ready for `orjson.dumps`, keys in a fixed order.
    """
    out: dict[str, Any] = {
        "event_id": event.event_id,
        "type": event.type,
        "conversation_id": event.conversation_id,
        "occurred_at": format_instant(event.occurred_at),
    }
    if isinstance(event, RetractionEvent):
        out["action"] = event.action
        out["message_id"] = event.message_id
    elif isinstance(event, SurveyEvent):
        out["action"] = event.action
        _put(out, "survey_id", event.survey_id)
        if event.rating is not None:
            out["rating"] = event.rating
        _put(out, "reason", event.reason)
    elif isinstance(event, MessageEvent):
        out["direction"] = event.direction
        out["author"] = event.author
        _put(out, "agent_id", event.agent_id)
        _put(out, "message_id", event.message_id)
        out["channel"] = event.channel
        out["kind"] = event.kind
    elif isinstance(event, AssignmentEvent):
        out["action"] = event.action
        _put(out, "agent_id", event.agent_id)
        _put(out, "team_id", event.team_id)
        _put(out, "role", event.role)
        _put(out, "by", event.by)
    elif isinstance(event, ConversationEvent):
        out["action"] = event.action
        for key, value in event.attrs:
            out[key] = list(value) if isinstance(value, tuple) else value
        _put(out, "outcome", event.outcome)
        if event.due_at is not None:
            out["due_at"] = format_instant(event.due_at)
    else:
        out["kind"] = event.kind
        out["agent_id"] = event.agent_id
        _put(out, "outcome", event.outcome)
    return out


def _put(out: dict[str, Any], key: str, value: str | None) -> None:
    """Set `out[key]` to `value` unless it is None (optional fields are left out, not null)."""
    if value is not None:
        out[key] = value
