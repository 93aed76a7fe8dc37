"""The msgspec fast path gives exactly what `decode_event` gives, and answers the common events.

`decode_fast(raw)` must equal `decode_event(raw)` (the same event, or the same rejection reason)
for every input: the repository's examples, the simulator's events of every kind, and random
mutations of them. The equality alone would hold for a fast path that always fell back, so the
simulator's events are also shown to be decoded without `decode_event`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flows.core.fastdecode as fastdecode
from flows.core.decode import ATTRIBUTE_ENUMS, decode_event
from flows.core.events import ATTRIBUTE_KEYS, Event, Rejected
from flows.core.fastdecode import decode_fast
from flows.core.timefmt import MAX_INSTANT, MIN_INSTANT, format_instant, parse_instant
from flows.sim.business import Business
from flows.sim.simulator import DAY, Simulator, Timeline, stamp_body
from tests.unit.test_decode import INVALID, VALID, valid_events

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
#: 2026-11-23T10:00:00Z.
T = 1_795_428_000_000
START = parse_instant("2026-11-23T00:00:00Z")


def _same(raw: bytes, **kwargs: Any) -> Event | Rejected:
    """Assert both decoders agree on `raw` (with `kwargs`), and return the result."""
    expected = decode_event(raw, **kwargs)
    assert decode_fast(raw, **kwargs) == expected, raw
    return expected


def _repo_lines() -> list[bytes]:
    """Every line of every JSONL file in the repository (docs, examples, test fixtures)."""
    lines = []
    for folder in ("docs", "examples", "tests"):
        for path in sorted((ROOT / folder).rglob("*.jsonl")):
            lines.extend(line for line in path.read_bytes().splitlines() if line.strip())
    return lines


def _simulated(seed: int, days: int = 2) -> list[dict[str, Any]]:
    """The simulator's event bodies (instants as epoch ms) for `days` of the default business."""
    stream = Simulator(Business(), seed=seed).events(START, START + days * DAY)
    return [event.body for event in stream]


SIMULATED = _simulated(3)
TIMELINE = Timeline(START, START)
SIM_RAWS = [orjson.dumps(stamp_body(body, TIMELINE)) for body in SIMULATED]


def test_the_repository_examples_decode_alike() -> None:
    """Every JSONL line in the repository (docs examples, test fixtures) decodes alike."""
    lines = _repo_lines()
    assert len(lines) > 100
    for raw in lines:
        _same(raw)
        _same(raw + b"\n", now=T, max_future_ms=1_000)


@pytest.mark.parametrize("case", VALID + INVALID, ids=[case.name for case in VALID + INVALID])
def test_the_decoder_examples_decode_alike(case: Any) -> None:
    """Each valid and invalid example of the decoder's tests decodes alike, reason included."""
    _same(orjson.dumps(case.value))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"event_id": "e\xff1"}',
        orjson.dumps(VALID[0].value)[:-1] + b',"x":"\xed\xa0\x80"}',
        b'{"event_id": "e1", "type": "mess',
        b"",
        b"   ",
        b'{"event_id": "e1"} {"event_id": "e2"}',
        b'{"occurred_at": NaN}',
        b"{'event_id': 'e1'}",
        b'\xef\xbb\xbf{"event_id": "e1"}',
        b'{"occurred_at": 1e999}',
        b'{"occurred_at": 99999999999999999999999}',
        b"{" + b" " * 2_000 + b"}",
    ],
)
def test_malformed_bytes_decode_alike(raw: bytes) -> None:
    """Bytes that are not UTF-8, not JSON or odd numbers get the same rejection."""
    assert isinstance(_same(raw), Rejected)
    assert isinstance(_same(raw, max_bytes=100), Rejected)


def test_every_simulated_kind_decodes_alike_as_text_and_as_epoch_ms() -> None:
    """The simulator's events of every type and action decode alike, both instant forms."""
    kinds = {(body["type"], body.get("action")) for body in SIMULATED}
    assert len(kinds) >= 10
    for body, raw in zip(SIMULATED, SIM_RAWS, strict=True):
        assert not isinstance(_same(raw), Rejected)
        _same(orjson.dumps(body))
        _same(raw, now=body["occurred_at"] - 300_000)
        _same(raw, now=body["occurred_at"] - 300_001)


def test_the_simulated_events_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every simulated event is decoded by msgspec alone; an event with content falls back."""
    calls: list[bytes] = []

    def counted(raw: bytes, **kwargs: Any) -> Event | Rejected:
        calls.append(raw)
        return decode_event(raw, **kwargs)

    monkeypatch.setattr(fastdecode, "decode_event", counted)
    for raw in SIM_RAWS:
        decode_fast(raw, now=START + 3 * DAY)
    assert calls == []
    with_text = SIM_RAWS[0][:-1] + b',"text":"hi"}'
    assert decode_fast(with_text) == decode_event(with_text)
    assert calls == [with_text]


def test_more_seeds_decode_alike() -> None:
    """Other simulator seeds (other shares of late, retracted and rated events) decode alike."""
    for seed in (1, 7, 11):
        for body in _simulated(seed, days=1):
            _same(orjson.dumps(stamp_body(body, TIMELINE)))


@given(valid_events())
def test_random_valid_events_decode_alike(pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """The decoder tests' random valid events (unicode ids, every instant form) decode alike."""
    raw, canon = pair
    _same(orjson.dumps(raw))
    _same(orjson.dumps(canon))


# Mutations: a simulated event with one field dropped, retyped or added, or its bytes damaged.

#: The fields each type reads, besides `event_id`, `type`, `conversation_id` and `occurred_at`.
_READS = {
    "message": ("action", "direction", "author", "agent_id", "message_id", "channel", "kind"),
    "assignment": ("action", "agent_id", "team_id", "role", "by"),
    "conversation": ("action", "outcome", "due_at", *ATTRIBUTE_KEYS),
    "activity": ("kind", "agent_id", "outcome"),
    "survey": ("action", "survey_id", "rating", "reason"),
}
_COMMON = ("event_id", "type", "conversation_id", "occurred_at")
_KEYS = sorted(
    {key for keys in _READS.values() for key in keys} | {*_COMMON, "text", "x", "Type", ""}
)
_ENUMS = sorted({value for values in ATTRIBUTE_ENUMS.values() for value in values})
_STAMP_TEXTS = [
    "2026-11-23T10:00:00.000Z",
    "2026-11-23T10:00:59.999Z",
    "2026-11-23T10:00:60.000Z",
    "2026-11-23t10:00:00.000z",
    "2026-11-23t10:00:00.000Z",
    "2026-11-23T10:00:00.000z",
    "2026-02-30T10:00:00.000Z",
    "2028-02-29T10:00:00.000Z",
    "2026-11-23T24:00:00.000Z",
    "2026-11-23T10:60:00.000Z",
    "0000-01-01T00:00:00.000Z",
    "0001-01-01T00:00:00.000Z",
    "9999-12-31T23:59:59.999Z",
    "2026-11-23T10:00:00.0000",
    "2026-11-23T10:00:00.00ZZ",
    "2026-11-23T10:00:00.00-Z",
    "2026-11-23 10:00:00.000Z",
    "2026-11-23T10:00:0a.000Z",
    "2026-11-23T10:00:00,000Z",
    "2026-11-23T10:00:00+07:00",
    "2026-11-23T10:00:00.000+00:00",
    "2026-11-23T10:00:00Z",
    "2026-11-23T10:00:00",
    "2026-11-23",
    "\u0662026-11-23T10:00:00.000Z",
]
#: Values at the edges of what the decoder accepts, for every field.
EDGE_VALUES: list[object] = [
    None,
    True,
    False,
    0,
    1,
    5,
    6,
    -1,
    1.5,
    5.0,
    MIN_INSTANT,
    MAX_INSTANT,
    MIN_INSTANT - 1,
    MAX_INSTANT + 1,
    2**63,
    2**64,
    -(2**70),
    "",
    " ",
    "a\x7f",
    "\x7f",
    "a\tb",
    "\u00a0",
    "x" * 256,
    "x" * 257,
    "failed",
    "inbound",
    "outbound",
    "customer",
    "agent",
    "bot",
    "assigned",
    "unassigned",
    "opened",
    "updated",
    "resolved",
    "reopened",
    "follow_up_promised",
    "sent",
    "not_sent",
    "rated",
    "message",
    "survey",
    *_ENUMS,
    "P5",
    [],
    ["a"],
    ["a", 1],
    [["a"]],
    {},
    {"a": 1},
    *_STAMP_TEXTS,
]
_STAMPS = st.sampled_from(_STAMP_TEXTS) | st.text("0123456789-T:.Z+t z", min_size=20, max_size=28)
_VALUES = (
    st.sampled_from(EDGE_VALUES)
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=10)
    | _STAMPS
    | st.lists(st.text(max_size=3) | st.integers(-5, 5), max_size=3)
    | st.dictionaries(st.text(max_size=3), st.integers(-5, 5), max_size=2)
)


def _json(value: object) -> bytes:
    """Return `value` as JSON; integers past 64 bits too, which orjson cannot write."""
    if type(value) is int:
        return str(value).encode()
    return orjson.dumps(value)


def _object(body: dict[str, Any]) -> bytes:
    """Return `body` as a JSON object, its values written by `_json`."""
    return b"{" + b",".join(orjson.dumps(key) + b":" + _json(v) for key, v in body.items()) + b"}"


def _one_of_each_kind() -> list[dict[str, Any]]:
    """One simulated event of each (type, action), plus a failed message and a reopen."""
    kinds: dict[tuple[str, object], dict[str, Any]] = {}
    for body in SIMULATED:
        kinds.setdefault((body["type"], body.get("action")), stamp_body(body, TIMELINE))
    common = {"event_id": "e1", "conversation_id": "c1", "occurred_at": "2026-11-23T10:00:00.000Z"}
    extra = [
        {**common, "type": "message", "action": "failed", "message_id": "m1"},
        {**common, "type": "conversation", "action": "reopened"},
        {**common, "type": "survey", "action": "rated", "survey_id": "s1", "rating": 3},
        {**common, "type": "survey", "action": "not_sent", "reason": "outside_window"},
        {**common, "type": "conversation", "action": "updated", "tags": ["a"], "status": "open"},
    ]
    return [*kinds.values(), *extra]


def test_every_field_of_every_kind_with_edge_values_decodes_alike() -> None:
    """Each field an event reads, dropped or set to each edge value, decodes alike."""
    answered = 0
    for body in _one_of_each_kind():
        for key in (*_COMMON, *_READS[body["type"]]):
            variants = [{k: v for k, v in body.items() if k != key}]
            variants += [{**body, key: value} for value in EDGE_VALUES]
            for variant in variants:
                raw = _object(variant)
                answered += not isinstance(_same(raw), Rejected)
                _same(raw, now=T - 300_000)
    assert answered > 1_000


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """Draw a simulated event, mutate its fields, then maybe damage its JSON text."""
    body = dict(draw(st.sampled_from(SIMULATED)))
    if draw(st.booleans()):
        body = stamp_body(body, TIMELINE)
    reads = (*_COMMON, *_READS[body["type"]])
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(reads) | st.sampled_from(_KEYS))
        if key in body and draw(st.booleans()):
            del body[key]
        else:
            body[key] = draw(_VALUES)
    raw = _object(body)
    edit = draw(st.sampled_from(["none", "none", "duplicate", "byte", "insert", "cut", "space"]))
    if edit == "duplicate":
        key = draw(st.sampled_from(_KEYS))
        value = _json(draw(_VALUES))
        raw = raw[:-1] + b',"' + key.encode() + b'":' + value + b"}"
    elif edit in ("byte", "insert", "cut"):
        at = draw(st.integers(0, len(raw) - 1))
        new = bytes([draw(st.integers(0, 127) | st.integers(0, 255))])
        if edit == "byte":
            raw = raw[:at] + new + raw[at + 1 :]
        elif edit == "insert":
            raw = raw[:at] + new + raw[at:]
        else:
            raw = raw[:at]
    elif edit == "space":
        raw = draw(st.sampled_from([b" ", b"\n", b"\t", b"\r\n"])) + raw + b" \n"
    return raw


@given(mutated(), st.sampled_from([None, -300_001, -300_000, 0]), st.sampled_from([None, 0, -1]))
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_events_decode_alike(raw: bytes, ahead: int | None, shrink: int | None) -> None:
    """A damaged event, checked for the future and the size limit, decodes alike."""
    kwargs: dict[str, Any] = {}
    if ahead is not None:
        kwargs["now"] = T + ahead
    if shrink is not None:
        kwargs["max_bytes"] = len(raw) + shrink
    _same(raw, **kwargs)


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.floats(allow_nan=False)
        | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=8,
    )
)
def test_arbitrary_json_values_decode_alike(value: object) -> None:
    """Any JSON value (non-objects included) gets the same rejection or event."""
    _same(orjson.dumps(value))


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_alike(raw: bytes) -> None:
    """Any bytes at all decode alike."""
    _same(raw)


def _instants() -> Iterator[str]:
    """The instants whose minute the fast path caches, and near misses of that shape."""
    for ms in (MIN_INSTANT, -1, 0, T, T + 59_999, MAX_INSTANT):
        yield format_instant(ms)
    yield "2026-11-23T10:00:60.000Z"
    yield "2026-11-23t10:00:00.000Z"
    yield "2026-11-23T10:00:00.000z"
    yield "2025-02-29T10:00:00.000Z"


@pytest.mark.parametrize("text", list(_instants()))
def test_cached_minutes_read_instants_as_parse_instant(text: str) -> None:
    """Instants in slawatch's own shape read alike, before and after their minute is cached."""
    raw = orjson.dumps(
        {
            "event_id": "e",
            "type": "survey",
            "conversation_id": "c",
            "occurred_at": text,
            "action": "sent",
        }
    )
    for _ in range(2):
        _same(raw)
