"""The monitor's own dead letters never keep message content (SPEC §1, §6)."""

from __future__ import annotations

import orjson
import pytest

from flows.connectors.kafka import Fetch
from flows.core.policies import parse_policies
from flows.core.records import DeadLetter, dead_letter
from flows.monitor.shard import MonitorConfig, decode_fetch
from flows.replay import replay_records

pytestmark = pytest.mark.unit

SECRET_TEXT = "my card number is 4111 1111 1111 1111, call me"
PHONE = "+62 812-3456-7890"
BAD = orjson.dumps(
    {
        "event_id": "x1",
        "type": "message",
        "conversation_id": "c1",
        "occurred_at": "not an instant",
        "direction": "inbound",
        "author": "customer",
        "text": SECRET_TEXT,
        "contact": {"name": "Siti Rahma", "phone": PHONE},
    }
)


def _clean(letter: DeadLetter) -> None:
    assert "card number" not in letter.raw
    assert "Siti" not in letter.raw
    assert "3456" not in letter.raw
    assert "conversation_id" in letter.raw  # the structure that explains the refusal stays


def test_a_refused_event_in_the_live_flow_keeps_no_text_names_or_numbers() -> None:
    """A bad Kafka message's dead letter keeps its shape and ids, not its content."""
    fetch = Fetch("in/0", [(BAD, 7, None)], True, 1_795_392_000_000, 8, 0, False)
    out = decode_fetch(fetch, MonitorConfig(shards=2))
    (letters,) = [item for item in out if isinstance(item, list)]
    (letter,) = letters
    assert "occurred_at" in letter.reason
    assert letter.source == "in/0/7"
    _clean(letter)


def test_a_refused_line_in_a_replay_keeps_no_text_names_or_numbers() -> None:
    """`slawatch replay` writes the same redacted dead letter for a bad line."""
    pset = parse_policies("policies:\n  - id: d\n    targets: {first_response: {within: 5m}}\n")
    (letter,) = [
        r for r in replay_records([BAD], pset, source="f.jsonl") if isinstance(r, DeadLetter)
    ]
    assert letter.source == "f.jsonl:1"
    _clean(letter)


def test_broken_json_is_masked_too() -> None:
    """Even unparseable input loses its content fields and phone numbers."""
    letter = dead_letter(
        "bad", b'{"text": "' + SECRET_TEXT.encode() + b'", "to": "' + PHONE.encode(), "s"
    )
    assert "card number" not in letter.raw
    assert "3456" not in letter.raw
