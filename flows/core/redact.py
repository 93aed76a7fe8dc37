"""Redaction of message content in raw inputs kept for diagnosis (dead letters, SPEC §1, §6).

A dead letter keeps the input it refuses so that someone can see why, but slawatch holds no
conversation content: `redact_raw` blanks message text, captions, contact names and phone
numbers and keeps the structure, ids, types and instants that explain the refusal.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

#: What a redacted value becomes.
REDACTED: Final = "<redacted>"

#: Keys whose values are message content or contact details, at any depth (lower-case).
CONTENT_KEYS: Final = frozenset(
    {
        "text",
        "body",
        "caption",
        "content",
        "name",
        "first_name",
        "last_name",
        "full_name",
        "display_name",
        "formatted_name",
        "contact_name",
        "contacts",
        "vcard",
        "phone",
        "phones",
        "phone_number",
        "wa_id",
        "email",
    }
)

_DIGIT_RUN: Final = re.compile(r"\d{8,}")
_KEYED_STRING: Final = re.compile(
    r'"(' + "|".join(sorted(CONTENT_KEYS)) + r')"\s*:\s*"(?:[^"\\]|\\.)*"?', re.IGNORECASE
)


def redact_value(value: Any) -> Any:
    """Return a copy of a decoded JSON value with every content field's value `REDACTED`.

    Objects keep their keys and other values; `null` stays `null`.
    """
    if isinstance(value, dict):
        return {
            key: (
                (None if item is None else REDACTED)
                if isinstance(key, str) and key.lower() in CONTENT_KEYS
                else redact_value(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_value(item) for item in value]
    return value


def redact_raw(raw: bytes | str) -> str:
    """Return a raw input as text with message content, contact names and phone numbers redacted.

    Args:
        raw: the input as received (bytes are decoded as UTF-8, bad bytes replaced).

    Returns:
        For a JSON document, the document with `redact_value` applied (the original text when
        there was nothing to redact). For anything else (broken JSON, another format), the
        text with every `"key": "value"` pair of a content key redacted and every run of 8 or
        more digits (a phone number, most likely) masked.
    """
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        masked = _KEYED_STRING.sub(lambda m: f'"{m.group(1)}": "{REDACTED}"', text)
        return _DIGIT_RUN.sub(REDACTED, masked)
    redacted = redact_value(document)
    return text if redacted == document else orjson.dumps(redacted).decode()
