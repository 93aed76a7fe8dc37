"""Dead-letter redaction keeps structure and ids but no message content, names or numbers."""

from __future__ import annotations

import orjson
import pytest

from flows.core.redact import REDACTED, redact_raw
from tests.ingestkit import SECRET_TEXTS, chatwoot_message, dumps, user_sender, whatsapp_sample

pytestmark = pytest.mark.unit


def test_chatwoot_payload_keeps_ids_and_loses_every_secret() -> None:
    """A redacted Chatwoot payload still has its event, ids and instants, and none of the text."""
    payload = chatwoot_message(1001, message_type="outgoing", sender=user_sender())
    redacted = redact_raw(dumps(payload))
    for secret in SECRET_TEXTS:
        assert secret not in redacted
    document = orjson.loads(redacted)
    assert (document["event"], document["id"]) == ("message_created", 1001)
    assert document["created_at"] == payload["created_at"]
    assert document["content"] == REDACTED


def test_whatsapp_sample_loses_body_name_and_phone_numbers() -> None:
    """The real text sample keeps its wamid and timestamp, not its body, name or wa_id."""
    redacted = redact_raw(whatsapp_sample("01_message_text.json"))
    for secret in ("Body Text", "Test Name", "972987654321", "972123456789"):
        assert secret not in redacted
    assert "wamid.xyzxyz" in redacted and "1697043223" in redacted


def test_caption_inside_an_edit_is_redacted() -> None:
    """A caption nested in an edited image is redacted too."""
    redacted = redact_raw(whatsapp_sample("11_message_edit_change_fragment.json"))
    assert "Updated image caption" not in redacted


def test_broken_json_still_loses_content_and_numbers() -> None:
    """Text that is not JSON has keyed content and phone numbers masked, the rest kept."""
    raw = b'{"event_id": "e1", "text": "Rahasia pelanggan", "note": "call +62 812-3456-7890", "x'
    redacted = redact_raw(raw)
    assert "Rahasia" not in redacted and "812" not in redacted
    assert '"event_id": "e1"' in redacted


def test_free_text_numbers_and_emails_are_masked_but_instants_kept() -> None:
    """Phone numbers and e-mails in any string are masked, ids too; instants are kept."""
    raw = orjson.dumps(
        {
            "conversation_id": "6281234567890",
            "event_id": "e-17",
            "occurred_at": "1764644405250",
            "reason": "siti@example.com 6281234567890",
        }
    )
    document = orjson.loads(redact_raw(raw))
    assert document["conversation_id"] == REDACTED
    assert (document["event_id"], document["occurred_at"]) == ("e-17", "1764644405250")
    assert "siti@example.com" not in document["reason"]
    assert "6281234567890" not in document["reason"]
