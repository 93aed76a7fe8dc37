"""The monitor's dead letters keep ids and structure but no message content (SPEC §6)."""

from __future__ import annotations

import orjson
import pytest

from flows.core.records import MAX_DEAD_LETTER_RAW, dead_letter

pytestmark = pytest.mark.unit

SECRETS = ("see you at 5", "photo of my id", "Budi Santoso", "+6281234567890", "6281234567890")


def _event(**fields: object) -> bytes:
    return orjson.dumps(
        {
            "event_id": "e-1",
            "type": "message",
            "conversation_id": "c-1",
            "occurred_at": "2026-12-02T04:00:00Z",
            **fields,
        }
    )


@pytest.mark.parametrize(
    "raw",
    [
        _event(text="see you at 5", direction="sideways"),
        _event(
            caption="photo of my id", contact={"name": "Budi Santoso", "phone": "+6281234567890"}
        ),
        _event(message={"body": "see you at 5", "wa_id": "6281234567890"}, occurred_at=None),
        _event(contacts=[{"name": "Budi Santoso"}], occurred_at="soon"),
    ],
)
def test_content_names_and_phone_numbers_are_redacted_from_json(raw: bytes) -> None:
    """A refused JSON event keeps its ids and the field at fault, not what the customer wrote."""
    letter = dead_letter("field 'direction' is invalid", raw, "wa.events/0/7")
    assert not any(secret in letter.raw for secret in SECRETS)
    kept = orjson.loads(letter.raw)
    assert (kept["event_id"], kept["conversation_id"]) == ("e-1", "c-1")


def test_broken_json_keeps_its_shape_but_loses_keyed_text_and_phone_numbers() -> None:
    """Unparseable input is kept as text with content pairs and long digit runs masked."""
    raw = b'{"event_id": "e-9", "text": "see you at 5", "from": "6281234567890", oops'
    letter = dead_letter("event is not valid JSON", raw, "wa.events/0/8")
    assert not any(secret in letter.raw for secret in SECRETS)
    assert '"event_id": "e-9"' in letter.raw


def test_an_event_without_content_keeps_every_field() -> None:
    """Nothing to redact: every field and value of the refused event is kept, so the refusal
    can be understood."""
    raw = b'{"event_id": "e-2", "type": "mystery", "occurred_at": 1764648000000}'
    assert orjson.loads(
        dead_letter("unknown type 'mystery'", raw, "f.jsonl:3").raw
    ) == orjson.loads(raw)


def test_an_oversized_input_is_cut_and_still_redacted() -> None:
    """A huge input keeps at most the limit, and none of its content, in the dead letter."""
    raw = _event(text="see you at 5", phone="+6281234567890", padding=["x" * 100] * 1_000)
    letter = dead_letter("over the limit", raw, "wa.events/0/9")
    assert "truncated" in letter.reason
    assert len(letter.raw.encode()) <= MAX_DEAD_LETTER_RAW
    assert not any(secret in letter.raw for secret in SECRETS)
