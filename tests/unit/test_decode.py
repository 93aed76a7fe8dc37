"""The event decoder and the instant formats: what is accepted, what is refused and why.

The decoder and `schemas/event.schema.json` describe one contract; the agreement tests run both
over the same examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from flows.core.decode import (
    ASSIGNMENT_ACTIONS,
    ATTRIBUTE_ENUMS,
    AUTHORS,
    CONVERSATION_ACTIONS,
    DIRECTIONS,
    MAX_EVENT_BYTES,
    decode_event,
    event_to_json,
)
from flows.core.events import (
    ATTRIBUTE_KEYS,
    ActivityEvent,
    AssignmentEvent,
    ConversationEvent,
    MessageEvent,
    Rejected,
    RetractionEvent,
    SurveyEvent,
)
from flows.core.timefmt import MAX_INSTANT, MIN_INSTANT, format_instant, parse_instant
from tests.schemakit import schemas, validator

pytestmark = pytest.mark.unit

EVENT_CLASSES = (
    MessageEvent,
    AssignmentEvent,
    ConversationEvent,
    ActivityEvent,
    RetractionEvent,
    SurveyEvent,
)
#: 2026-11-23T10:00:00Z.
T = 1_795_428_000_000
DROP = object()


def _event(type_: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "e-1",
        "type": type_,
        "conversation_id": "c-1",
        "occurred_at": "2026-11-23T10:00:00Z",
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not DROP}


def message(**fields: Any) -> dict[str, Any]:
    return _event("message", **{"direction": "inbound", "author": "customer", **fields})


def reply(**fields: Any) -> dict[str, Any]:
    return message(**{"direction": "outbound", "author": "agent", "agent_id": "a1", **fields})


def assignment(**fields: Any) -> dict[str, Any]:
    return _event("assignment", **{"action": "assigned", "agent_id": "a1", **fields})


def conversation(**fields: Any) -> dict[str, Any]:
    return _event("conversation", **{"action": "updated", **fields})


def activity(**fields: Any) -> dict[str, Any]:
    return _event("activity", **{"kind": "call", "agent_id": "a1", **fields})


def _decode(obj: object, **kwargs: Any) -> Any:
    return decode_event(orjson.dumps(obj), **kwargs)


@dataclass(frozen=True)
class Case:
    """One example: the JSON value, and the field its rejection must name (if any)."""

    name: str
    value: object
    field: str | None = None


VALID = [
    Case("customer message", message()),
    Case("epoch ms instant", message(occurred_at=T)),
    Case("offset and nanoseconds", message(occurred_at="2026-11-23T17:00:00.123456789+07:00")),
    Case("negative offset", message(occurred_at="2026-11-23T05:30:00.5-04:30")),
    Case("lower-case t and z", message(occurred_at="2026-11-23t10:00:00z")),
    Case("earliest instant", message(occurred_at=MIN_INSTANT)),
    Case("latest instant", message(occurred_at=MAX_INSTANT)),
    Case("year 1 as text", message(occurred_at="0001-01-01T00:00:00Z")),
    Case("before 1970", message(occurred_at=-1)),
    Case("agent reply", reply(message_id="wamid.1", channel="whatsapp", kind="template")),
    Case("bot reply, no agent", reply(author="bot", agent_id=DROP)),
    Case("nulls as absent", message(agent_id=None, message_id=None, channel=None, kind=None)),
    Case("empty kind", message(kind="")),
    Case("content ignored", message(text="hi", media={"url": "x"}, contacts=[{"n": 1}])),
    Case("unknown fields ignored", message(x_source="crm", x_n=[1, 2])),
    Case("assigned", assignment(team_id="sales", role="sdr", by="auto")),
    Case("unassigned without agent", assignment(action="unassigned", agent_id=DROP)),
    Case("assigned, null optionals", assignment(team_id=None, role=None, by=None)),
    Case(
        "opened with every attribute",
        conversation(
            action="opened",
            priority="P1",
            segment="vip",
            lead_source="pricing",
            lead_status="new",
            team_id="sales",
            handled_by="bot",
            status="pending",
            tags=["a", "b"],
        ),
    ),
    Case("updated clears every attribute", conversation(**dict.fromkeys(ATTRIBUTE_KEYS))),
    Case("updated, no attributes", conversation()),
    Case("empty tags", conversation(tags=[])),
    Case("resolved", conversation(action="resolved", outcome="won")),
    Case("resolved ignores attributes", conversation(action="resolved", priority="P9")),
    Case("reopened", conversation(action="reopened")),
    Case("promise", conversation(action="follow_up_promised", due_at="2026-11-24T09:00:00+07:00")),
    Case("promise, epoch ms", conversation(action="follow_up_promised", due_at=T + 3_600_000)),
    Case("activity", activity(outcome="no_answer")),
    Case("activity, other kind", activity(kind="carrier pigeon", outcome=None)),
    Case("failed message", _event("message", action="failed", message_id="wamid.9")),
    Case("survey sent", _event("survey", action="sent", survey_id="s1")),
    Case("survey not sent", _event("survey", action="not_sent", reason="outside_window")),
    Case("survey rated", _event("survey", action="rated", rating=5, comment="ignored")),
    Case("id of 256 characters", message(conversation_id="c" * 256)),
    Case("id with spaces and emoji", message(agent_id="Siti \u00a0\U0001f600", author="agent")),
]

INVALID = [
    Case("missing event_id", message(event_id=DROP), "event_id"),
    Case("missing type", message(type=DROP), "type"),
    Case("missing conversation_id", message(conversation_id=DROP), "conversation_id"),
    Case("missing occurred_at", message(occurred_at=DROP), "occurred_at"),
    Case("empty event_id", message(event_id=""), "event_id"),
    Case("integer event_id", message(event_id=5), "event_id"),
    Case("null event_id", message(event_id=None), "event_id"),
    Case("array conversation_id", message(conversation_id=["c"]), "conversation_id"),
    Case("unknown type", message(type="note"), "type"),
    Case("integer type", message(type=1), "type"),
    Case("null type", message(type=None), "type"),
    Case("naive instant", message(occurred_at="2026-11-23T10:00:00"), "occurred_at"),
    Case("date-only instant", message(occurred_at="2026-11-23"), "occurred_at"),
    Case("garbage instant", message(occurred_at="yesterday"), "occurred_at"),
    Case("empty instant", message(occurred_at=""), "occurred_at"),
    Case("float instant", message(occurred_at=1795428000000.5), "occurred_at"),
    Case("boolean instant", message(occurred_at=True), "occurred_at"),
    Case("null instant", message(occurred_at=None), "occurred_at"),
    Case("offset without colon", message(occurred_at="2026-11-23T10:00:00+0700"), "occurred_at"),
    Case("space separator", message(occurred_at="2026-11-23 10:00:00Z"), "occurred_at"),
    Case("leap second", message(occurred_at="2026-12-31T23:59:60Z"), "occurred_at"),
    Case("hour 24", message(occurred_at="2026-11-23T24:00:00Z"), "occurred_at"),
    Case("month 13", message(occurred_at="2026-13-01T10:00:00Z"), "occurred_at"),
    Case("offset +24:00", message(occurred_at="2026-11-23T10:00:00+24:00"), "occurred_at"),
    Case("empty fraction", message(occurred_at="2026-11-23T10:00:00.Z"), "occurred_at"),
    Case("no seconds", message(occurred_at="2026-11-23T10:00Z"), "occurred_at"),
    Case("year 0", message(occurred_at="0000-01-01T00:00:00Z"), "occurred_at"),
    Case("full-width digits", message(occurred_at="２０２６-11-23T10:00:00Z"), "occurred_at"),
    Case("epoch ms too large", message(occurred_at=MAX_INSTANT + 1), "occurred_at"),
    Case("epoch ms too small", message(occurred_at=MIN_INSTANT - 1), "occurred_at"),
    Case("instant as object", message(occurred_at={"ms": T}), "occurred_at"),
    Case("missing direction", message(direction=DROP), "direction"),
    Case("bad direction", message(direction="sideways"), "direction"),
    Case("missing author", message(author=DROP), "author"),
    Case("bad author", message(author="robot"), "author"),
    Case("author in wrong case", message(author="Agent"), "author"),
    Case("agent reply without agent", reply(agent_id=DROP), "agent_id"),
    Case("agent reply, null agent", reply(agent_id=None), "agent_id"),
    Case("empty agent_id", message(agent_id=""), "agent_id"),
    Case("integer message_id", message(message_id=5), "message_id"),
    Case("integer channel", message(channel=5), "channel"),
    Case("array kind", message(kind=["text"]), "kind"),
    Case("bad assignment action", assignment(action="moved"), "action"),
    Case("missing assignment action", assignment(action=DROP), "action"),
    Case("assigned without agent", assignment(agent_id=DROP), "agent_id"),
    Case("empty team_id", assignment(team_id=""), "team_id"),
    Case("boolean role", assignment(role=True), "role"),
    Case("integer by", assignment(by=1), "by"),
    Case("bad conversation action", conversation(action="closed"), "action"),
    Case("missing conversation action", conversation(action=DROP), "action"),
    Case("bad priority", conversation(priority="P5"), "priority"),
    Case("integer priority", conversation(priority=1), "priority"),
    Case("bad lead_status", conversation(lead_status="hot"), "lead_status"),
    Case("bad handled_by", conversation(handled_by="ai"), "handled_by"),
    Case("bad status", conversation(action="opened", status="closed"), "status"),
    Case("tags as a string", conversation(tags="vip"), "tags"),
    Case("tags holding a number", conversation(tags=["vip", 1]), "tags"),
    Case("integer segment", conversation(segment=5), "segment"),
    Case("object lead_source", conversation(lead_source={}), "lead_source"),
    Case("empty attribute team_id", conversation(team_id=""), "team_id"),
    Case("promise without due_at", conversation(action="follow_up_promised"), "due_at"),
    Case("promise, null due_at", conversation(action="follow_up_promised", due_at=None), "due_at"),
    Case(
        "promise, naive due_at",
        conversation(action="follow_up_promised", due_at="2026-11-24T09:00:00"),
        "due_at",
    ),
    Case("integer outcome", conversation(action="resolved", outcome=1), "outcome"),
    Case("activity without kind", activity(kind=DROP), "kind"),
    Case("activity, empty kind", activity(kind=""), "kind"),
    Case("activity without agent", activity(agent_id=DROP), "agent_id"),
    Case("activity, null agent", activity(agent_id=None), "agent_id"),
    Case("activity, integer outcome", activity(outcome=3), "outcome"),
    Case("failed without message_id", _event("message", action="failed"), "message_id"),
    Case("rated without rating", _event("survey", action="rated"), "rating"),
    Case("rating 0", _event("survey", action="rated", rating=0), "rating"),
    Case("rating 6", _event("survey", action="rated", rating=6), "rating"),
    Case("rating as text", _event("survey", action="rated", rating="5"), "rating"),
    Case("rating as boolean", _event("survey", action="rated", rating=True), "rating"),
    Case("rating 4.5", _event("survey", action="rated", rating=4.5), "rating"),
    Case("unknown survey action", _event("survey", action="opened"), "action"),
    Case("LF in survey_id", _event("survey", action="sent", survey_id="s\n"), "survey_id"),
    Case(
        "failed, empty message_id", _event("message", action="failed", message_id=""), "message_id"
    ),
    Case("unknown message action", message(action="edited"), "action"),
    Case("CR/LF in conversation_id", message(conversation_id="c1\r\nBcc: x@y"), "conversation_id"),
    Case("LF in event_id", message(event_id="e\n1"), "event_id"),
    Case("tab in agent_id", reply(agent_id="a\t1"), "agent_id"),
    Case("NUL in message_id", message(message_id="w\x00"), "message_id"),
    Case("C1 control in team_id", assignment(team_id="s\x85"), "team_id"),
    Case("LF in attribute team_id", conversation(team_id="t\n"), "team_id"),
    Case("id of 257 characters", message(conversation_id="c" * 257), "conversation_id"),
    Case("LF in activity agent", activity(agent_id="a\n"), "agent_id"),
    Case("top-level array", [message()]),
    Case("top-level string", "event"),
    Case("top-level number", 1),
    Case("top-level null", None),
]


@pytest.mark.parametrize(
    ("case", "valid"),
    [(case, True) for case in VALID] + [(case, False) for case in INVALID],
    ids=[case.name for case in VALID + INVALID],
)
def test_decoder_and_schema_agree(case: Case, valid: bool) -> None:
    """The decoder returns an event exactly when event.schema.json accepts the JSON value."""
    assert validator("event.schema.json").is_valid(case.value) == valid
    decoded = _decode(case.value)
    assert isinstance(decoded, EVENT_CLASSES) == valid, decoded


@pytest.mark.parametrize("case", INVALID, ids=lambda case: case.name)
def test_rejection_names_the_field(case: Case) -> None:
    """Every rejection of a JSON object says which field is at fault."""
    decoded = _decode(case.value)
    assert isinstance(decoded, Rejected)
    if isinstance(case.value, dict):
        assert f"'{case.field}'" in decoded.reason
    else:
        assert decoded.reason.startswith("event must be a JSON object, not ")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (message(conversation_id=DROP), "missing field 'conversation_id'"),
        (message(event_id=5), "field 'event_id' must be a string, not an integer"),
        (message(event_id=""), "field 'event_id' must not be empty"),
        (message(agent_id=False), "field 'agent_id' must be a string or null, not a boolean"),
        (
            message(type="mesage"),
            "field 'type' must be one of 'message', 'assignment', 'conversation', 'activity', "
            "'survey', not 'mesage'",
        ),
        (
            message(direction="in"),
            "field 'direction' must be one of 'inbound', 'outbound', not 'in'",
        ),
        (reply(agent_id=DROP), "missing field 'agent_id' (required when author is 'agent')"),
        (
            assignment(agent_id=DROP),
            "missing field 'agent_id' (required when action is 'assigned')",
        ),
        (
            conversation(action="follow_up_promised"),
            "missing field 'due_at' (required when action is 'follow_up_promised')",
        ),
        (
            conversation(tags=["a", 1]),
            "field 'tags' must be a list of strings, not a list holding an integer",
        ),
        (conversation(tags="a"), "field 'tags' must be a list of strings or null, not a string"),
        (message(occurred_at=True), "field 'occurred_at': a boolean is not an instant"),
        ([], "event must be a JSON object, not an array"),
    ],
)
def test_rejection_reason_text(value: object, reason: str) -> None:
    """Rejection reasons have the documented wording."""
    assert _decode(value) == Rejected(reason)


def test_decoded_message_keeps_ids_and_defaults_but_no_content() -> None:
    """A message keeps its ids, defaults channel and kind, and drops text, media and contacts."""
    decoded = _decode(message(text="my card is 4111", media={"caption": "secret"}))
    assert decoded == MessageEvent("e-1", "c-1", T, "inbound", "customer", None, None)
    assert (decoded.channel, decoded.kind) == ("whatsapp", "text")
    assert "4111" not in repr(decoded)
    assert "secret" not in repr(decoded)


def test_decoded_conversation_attrs_are_sorted_pairs_with_null_and_tags() -> None:
    """`attrs` holds only the keys given, sorted, with null as None and tags as a tuple."""
    decoded = _decode(conversation(status="pending", tags=["b", "a"], segment=None, outcome="x"))
    assert decoded == ConversationEvent(
        "e-1",
        "c-1",
        T,
        "updated",
        (("segment", None), ("status", "pending"), ("tags", ("b", "a"))),
    )


def test_decoded_promise_and_resolution_keep_their_fields() -> None:
    """`due_at` is parsed to epoch ms and `outcome` kept, each for its own action only."""
    promise = _decode(conversation(action="follow_up_promised", due_at="2026-11-23T11:00:00Z"))
    assert promise == ConversationEvent("e-1", "c-1", T, "follow_up_promised", due_at=T + 3_600_000)
    resolved = _decode(conversation(action="resolved", outcome="won", due_at="nonsense"))
    assert resolved == ConversationEvent("e-1", "c-1", T, "resolved", outcome="won")


def test_decoded_assignment_and_activity_keep_every_field() -> None:
    """Assignment and activity fields land in the right attributes."""
    assert _decode(assignment(team_id="t", role="ae", by="manual")) == AssignmentEvent(
        "e-1", "c-1", T, "assigned", "a1", "t", "ae", "manual"
    )
    assert _decode(activity(outcome="connected")) == ActivityEvent(
        "e-1", "c-1", T, "call", "a1", "connected"
    )


# Inputs only the decoder sees: bytes that are not JSON, and checks a schema cannot express.


def test_invalid_utf8_is_rejected_with_its_offset() -> None:
    """Bytes that are not UTF-8 are refused, naming the bad byte and where it is."""
    raw = b'{"event_id": "e\xff1"}'
    assert decode_event(raw) == Rejected("event is not valid UTF-8: byte 0xff at offset 15")


def test_encoded_surrogate_is_rejected_as_invalid_utf8() -> None:
    """A UTF-8-encoded surrogate (invalid UTF-8 that some encoders emit) is refused."""
    decoded = decode_event(orjson.dumps(message())[:-1] + b',"x":"\xed\xa0\x80"}')
    assert isinstance(decoded, Rejected)
    assert decoded.reason.startswith("event is not valid UTF-8: byte 0xed")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_id": "e1", "type": "mess',
        b"",
        b"   ",
        b'{"event_id": "e1"} {"event_id": "e2"}',
        b'{"occurred_at": NaN}',
        b"{'event_id': 'e1'}",
        b'\xef\xbb\xbf{"event_id": "e1"}',
    ],
    ids=["truncated", "empty", "blank", "two documents", "NaN", "single quotes", "BOM"],
)
def test_malformed_json_is_rejected(raw: bytes) -> None:
    """Input that is not one JSON document is refused as invalid JSON."""
    decoded = decode_event(raw)
    assert isinstance(decoded, Rejected)
    assert decoded.reason.startswith("event is not valid JSON: ")


def test_oversized_input_is_rejected_before_parsing() -> None:
    """Input over the byte limit is refused with its size, whatever it holds."""
    raw = b"{" + b" " * MAX_EVENT_BYTES + b"}"
    assert decode_event(raw) == Rejected(
        f"event is {MAX_EVENT_BYTES + 2} bytes, over the 1048576-byte limit"
    )
    small = orjson.dumps(message())
    assert decode_event(small, max_bytes=len(small) - 1) == Rejected(
        f"event is {len(small)} bytes, over the {len(small) - 1}-byte limit"
    )
    assert isinstance(decode_event(small, max_bytes=len(small)), MessageEvent)


def test_trailing_newline_of_a_jsonl_line_is_accepted() -> None:
    """A JSONL line read with its newline decodes like the bare object."""
    assert decode_event(orjson.dumps(message()) + b"\n") == _decode(message())


@pytest.mark.parametrize(
    ("instant", "why"),
    [
        ("2026-02-30T10:00:00Z", "not a valid date-time"),
        ("2025-02-29T10:00:00Z", "not a valid date-time"),
        ("0001-01-01T00:30:00+01:00", "out of range"),
        ("9999-12-31T23:30:00-01:00", "out of range"),
        (1795428000000.0, "is a float"),
    ],
)
def test_instants_refused_beyond_the_schema(instant: object, why: str) -> None:
    """Impossible dates, instants out of range in UTC and whole floats are refused.

    JSON Schema cannot tell February 30 from 28, does not convert offsets, and counts 1.0 as an
    integer; only the decoder sees these.
    """
    decoded = _decode(message(occurred_at=instant))
    assert isinstance(decoded, Rejected)
    assert decoded.reason.startswith("field 'occurred_at': ")
    assert why in decoded.reason


def test_leap_day_is_accepted() -> None:
    """February 29 of a leap year is a valid date."""
    assert _decode(message(occurred_at="2028-02-29T10:00:00Z")).occurred_at == 1_835_431_200_000


def test_future_event_is_rejected_only_past_the_limit() -> None:
    """With `now`, an event more than `max_future_ms` ahead is refused; at the limit it passes."""
    event = message(occurred_at=T)
    assert isinstance(_decode(event, now=T - 300_000), MessageEvent)
    assert _decode(event, now=T - 300_001) == Rejected(
        "field 'occurred_at' is 300.001 s in the future (limit 300 s)"
    )
    assert _decode(event, now=T - 90_000, max_future_ms=60_000) == Rejected(
        "field 'occurred_at' is 90 s in the future (limit 60 s)"
    )
    assert isinstance(_decode(event), MessageEvent)
    assert isinstance(_decode(event, now=T + 86_400_000), MessageEvent)


def test_due_at_in_the_future_is_fine() -> None:
    """The future limit applies to `occurred_at` only: a promise may be due next week."""
    event = conversation(action="follow_up_promised", occurred_at=T, due_at=T + 7 * 86_400_000)
    assert isinstance(_decode(event, now=T), ConversationEvent)


def test_decoder_never_raises_on_odd_json() -> None:
    """Deeply nested or huge values are refused or ignored, never raised."""
    assert isinstance(_decode(message(x=[[[[[[]]]]]])), MessageEvent)
    assert isinstance(decode_event(b'{"occurred_at": 1e999}'), Rejected)
    assert isinstance(decode_event(b'{"occurred_at": 99999999999999999999999}'), Rejected)


# Random valid events: the decoder reads every field, and event_to_json writes it back.

#: Ids as SPEC §1 allows them: no control characters (C0, C1, DEL) nor line separators.
ids = st.text(
    st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="\u2028\u2029"),
    min_size=1,
    max_size=12,
)
texts = st.text(max_size=12)
ABSENT = object()


def _optional(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(ABSENT), st.none(), values)


@st.composite
def instants(draw: st.DrawFn) -> tuple[object, int]:
    """Draw an input instant in either accepted form, with the epoch ms it stands for."""
    if draw(st.booleans()):
        ms = draw(st.integers(MIN_INSTANT, MAX_INSTANT))
        return ms, ms
    # Keep local times within years 2..9998 so every offset can be written.
    ms = draw(st.integers(-62_104_060_800_000, 253_370_764_800_000))
    offset = draw(st.integers(-(23 * 60 + 59), 23 * 60 + 59))
    local = datetime(1970, 1, 1) + timedelta(milliseconds=ms, minutes=offset)  # noqa: DTZ001
    text = (
        f"{local.year:04d}-{local.month:02d}-{local.day:02d}"
        f"T{local.hour:02d}:{local.minute:02d}:{local.second:02d}"
    )
    millis = ms % 1000
    extra = draw(st.text("0123456789", max_size=6))
    if millis or extra or draw(st.booleans()):
        text += f".{millis:03d}{extra}"
    if offset == 0 and draw(st.booleans()):
        text += draw(st.sampled_from(["Z", "z"]))
    else:
        sign = "-" if offset < 0 else "+"
        text += f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    return text, ms


def _put(raw: dict[str, Any], canon: dict[str, Any], key: str, value: Any) -> None:
    if value is ABSENT:
        return
    raw[key] = value
    if value is not None:
        canon[key] = value


@st.composite
def valid_events(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """Draw a valid event as JSON, and the canonical JSON `event_to_json` should give back."""
    type_ = draw(st.sampled_from(["message", "assignment", "conversation", "activity"]))
    occurred, occurred_ms = draw(instants())
    raw: dict[str, Any] = {
        "event_id": draw(ids),
        "type": type_,
        "conversation_id": draw(ids),
        "occurred_at": occurred,
    }
    canon = {**raw, "occurred_at": format_instant(occurred_ms)}
    if type_ == "message":
        author = draw(st.sampled_from(AUTHORS))
        raw["direction"] = canon["direction"] = draw(st.sampled_from(DIRECTIONS))
        raw["author"] = canon["author"] = author
        agent = draw(ids) if author == "agent" else draw(_optional(ids))
        _put(raw, canon, "agent_id", agent)
        _put(raw, canon, "message_id", draw(_optional(ids)))
        for key, default in (("channel", "whatsapp"), ("kind", "text")):
            value = draw(_optional(texts))
            _put(raw, canon, key, value)
            canon.setdefault(key, default)
        _put(raw, canon, "text", draw(_optional(texts)))
        canon.pop("text", None)
    elif type_ == "assignment":
        action = draw(st.sampled_from(ASSIGNMENT_ACTIONS))
        raw["action"] = canon["action"] = action
        _put(raw, canon, "agent_id", draw(ids) if action == "assigned" else draw(_optional(ids)))
        _put(raw, canon, "team_id", draw(_optional(ids)))
        _put(raw, canon, "role", draw(_optional(texts)))
        _put(raw, canon, "by", draw(_optional(texts)))
    elif type_ == "conversation":
        action = draw(st.sampled_from(CONVERSATION_ACTIONS))
        raw["action"] = canon["action"] = action
        if action in ("opened", "updated"):
            for key in ATTRIBUTE_KEYS:
                if key == "tags":
                    values: st.SearchStrategy[Any] = st.lists(texts, max_size=3)
                elif key in ATTRIBUTE_ENUMS:
                    values = st.sampled_from(ATTRIBUTE_ENUMS[key])
                else:
                    values = ids if key == "team_id" else texts
                value = draw(st.one_of(st.just(ABSENT), st.none(), values))
                if value is not ABSENT:
                    raw[key] = canon[key] = value
        elif action == "resolved":
            _put(raw, canon, "outcome", draw(_optional(texts)))
        elif action == "follow_up_promised":
            due, due_ms = draw(instants())
            raw["due_at"] = due
            canon["due_at"] = format_instant(due_ms)
        if action != "opened" and draw(st.booleans()):
            raw["opened_by"] = "noise"  # unknown field
    else:
        raw["kind"] = canon["kind"] = draw(ids)
        raw["agent_id"] = canon["agent_id"] = draw(ids)
        _put(raw, canon, "outcome", draw(_optional(texts)))
    return raw, canon


@given(valid_events())
def test_random_valid_event_is_decoded_field_by_field(
    pair: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    """Every valid event decodes, and `event_to_json` of the result is its canonical form."""
    raw, canon = pair
    decoded = _decode(raw)
    assert isinstance(decoded, EVENT_CLASSES), decoded
    assert event_to_json(decoded) == canon


@given(valid_events())
def test_event_to_json_round_trips(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """Decoding the canonical JSON of a decoded event gives the same event."""
    decoded = _decode(pair[0])
    assert isinstance(decoded, EVENT_CLASSES)
    assert _decode(event_to_json(decoded)) == decoded


@given(valid_events())
def test_random_valid_event_passes_the_schema(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """The schema accepts every event the decoder accepts, and its canonical form too."""
    raw, canon = pair
    assert validator("event.schema.json").is_valid(raw)
    assert validator("event.schema.json").is_valid(canon)


@given(valid_events(), st.data())
def test_dropping_a_required_field_is_refused_by_both(
    pair: tuple[dict[str, Any], dict[str, Any]], data: st.DataObject
) -> None:
    """Removing any required field makes schema and decoder refuse, naming the field."""
    raw = pair[0]
    type_schema = schemas()[f"{raw['type']}.schema.json"]
    key = data.draw(st.sampled_from(type_schema["required"]))
    del raw[key]
    decoded = _decode(raw)
    assert decoded == Rejected(f"missing field '{key}'")
    assert not validator("event.schema.json").is_valid(raw)


# Instants.


@given(st.integers(MIN_INSTANT, MAX_INSTANT))
def test_format_then_parse_round_trips(ms: int) -> None:
    """Any instant in range formats to text that parses back to the same epoch ms."""
    assert parse_instant(format_instant(ms)) == ms


@given(st.integers(MIN_INSTANT, MAX_INSTANT))
def test_format_instant_matches_datetime_and_the_record_pattern(ms: int) -> None:
    """`format_instant` writes what `datetime.isoformat` would, with `Z`, as the schemas demand."""
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    text = format_instant(ms)
    assert text == at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert Draft202012Validator(schemas()["common.schema.json"]["$defs"]["utc_instant"]).is_valid(
        text
    )


@given(instants())
def test_parse_instant_reads_both_forms(pair: tuple[object, int]) -> None:
    """RFC 3339 text with any offset and fraction, and epoch ms, parse to the expected instant."""
    value, ms = pair
    assert parse_instant(value) == ms


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("2026-11-23T10:00:00Z", T),
        ("2026-11-23T17:00:00.123+07:00", T + 123),
        ("2026-11-23T10:00:00.9999Z", T + 999),
        ("2026-11-23T10:00:00.1Z", T + 100),
        ("2026-11-23T04:30:00-05:30", T),
        ("1969-12-31T23:59:59.9999Z", -1),
        (T, T),
        (0, 0),
    ],
)
def test_parse_instant_examples(value: object, ms: int) -> None:
    """Known instants parse to the right epoch ms; extra fraction digits are truncated."""
    assert parse_instant(value) == ms


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("2026-11-23T10:00:00", "has no UTC offset"),
        ("2026-11-23T10:00", "has no UTC offset"),
        ("2026-11-23", "is a date without a time"),
        ("soon", "is not an RFC 3339 date-time"),
        ("2026-11-23T10:00:00 Z", "is not an RFC 3339 date-time"),
        ("x" * 100, "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'"),
        (1.5, "is a float"),
        (float("nan"), "is a float"),
        (False, "a boolean is not an instant"),
        (None, "not null"),
        ([T], "not an array"),
        (MAX_INSTANT + 1, "out of range"),
    ],
)
def test_parse_instant_rejects_with_a_reason(value: object, why: str) -> None:
    """Naive, date-only, malformed, float, boolean and out-of-range instants say why they fail."""
    with pytest.raises(ValueError) as info:
        parse_instant(value)
    assert why in str(info.value)


@pytest.mark.parametrize("ms", [MIN_INSTANT - 1, MAX_INSTANT + 1])
def test_format_instant_refuses_out_of_range(ms: int) -> None:
    """An instant beyond year 1..9999 cannot be written and raises ValueError."""
    with pytest.raises(ValueError, match="out of range"):
        format_instant(ms)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (
            message(conversation_id="c1\r\nBcc: x@y"),
            "field 'conversation_id' must not hold control characters (found U+000D in "
            "'c1\\r\\nBcc: x@y')",
        ),
        (
            message(event_id="e" * 300),
            "field 'event_id' is 300 characters long, over the 256 of an id",
        ),
        (
            _event("message", action="failed"),
            "missing field 'message_id' (required when action is 'failed')",
        ),
    ],
)
def test_bad_ids_are_refused_with_the_field_and_what_is_wrong(value: object, reason: str) -> None:
    """An id holding CR/LF or longer than 256 characters is a dead letter naming the field."""
    decoded = _decode(value)
    assert isinstance(decoded, Rejected)
    assert decoded.reason == reason


def test_failed_message_decodes_to_a_retraction() -> None:
    """`action: failed` retracts the message it names; direction and author are not needed."""
    decoded = _decode(_event("message", action="failed", message_id="wamid.9"))
    assert isinstance(decoded, RetractionEvent)
    assert (decoded.message_id, decoded.conversation_id) == ("wamid.9", "c-1")
    assert event_to_json(decoded)["action"] == "failed"


def test_rated_survey_decodes_without_its_comment() -> None:
    """A rating is kept as an integer; the customer's comment is never read."""
    decoded = _decode(_event("survey", action="rated", rating=4, survey_id="s1", comment="slow!"))
    assert isinstance(decoded, SurveyEvent)
    assert (decoded.action, decoded.rating, decoded.survey_id) == ("rated", 4, "s1")
    assert "comment" not in event_to_json(decoded)
    assert "slow" not in repr(decoded)
