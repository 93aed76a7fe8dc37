"""Redaction of message content in raw inputs kept for diagnosis (dead letters, SPEC §1, §6).

`redact_raw` is the one place that decides what of a refused input may be kept: structure, ids,
types and instants stay (they explain why the input was refused); message text, media captions
and links, contact names, e-mail addresses and phone numbers are replaced by `REDACTED`. It is
used by the webhook receiver (`flows.ingest`) and is meant for the monitor's own dead letters too.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

#: What a redacted value becomes.
REDACTED: Final = "<redacted>"

#: Keys whose values are message content or personal data, at any depth (compared lower-case).
CONTENT_KEYS: Final = frozenset(
    {
        # message content
        "text",
        "body",
        "caption",
        "content",
        "processed_message_content",
        "feedback_message",
        "feedback",
        "emoji",
        "headline",
        "title",
        "description",
        "footer",
        "header",
        "filename",
        "vcard",
        "address",
        "latitude",
        "longitude",
        "url",
        "link",
        "source_url",
        "image_url",
        "video_url",
        "thumbnail_url",
        "data_url",
        "thumb_url",
        "avatar",
        "avatar_url",
        "thumbnail",
        # names
        "name",
        "names",
        "first_name",
        "last_name",
        "middle_name",
        "formatted_name",
        "full_name",
        "display_name",
        "available_name",
        "profile",
        # contact details and phone numbers
        "email",
        "emails",
        "phone",
        "phones",
        "phone_number",
        "wa_id",
        "from",
        "to",
        "recipient_id",
        "display_phone_number",
        "identifier",
    }
)

_PHONE: Final = re.compile(r"\+?\d[\d ().-]{6,}\d")
_DATE_OR_DECIMAL: Final = re.compile(r"\d{4}-\d{2}-\d{2}|\d+\.\d+")
_INSTANT_KEY: Final = re.compile(r"(?:^|_)(?:timestamp|at)$", re.IGNORECASE)
_EMAIL: Final = re.compile(r"[^\s\"'<>@]+@[^\s\"'<>@]+\.[A-Za-z]{2,}")
_KEYED_STRING: Final = re.compile(
    r'"(' + "|".join(sorted(CONTENT_KEYS)) + r')"\s*:\s*"(?:[^"\\]|\\.)*("?)',
    re.IGNORECASE,
)


def redact_value(value: Any) -> Any:
    """Return a copy of a decoded JSON value with every content field replaced by `REDACTED`.

    Objects keep their keys; a key in `CONTENT_KEYS` gets `REDACTED` as its whole value (an
    object such as WhatsApp's `text: {body}` included); `null` stays `null`. Other strings keep
    their text, except that phone numbers and e-mail addresses inside them are masked (ids made
    of 11-15 digits included: they are phone numbers more often than not, e.g. Chatwoot's
    WhatsApp `source_id`); strings under keys that name instants (`timestamp`, `*_at`) are kept.
    """
    if isinstance(value, dict):
        return {
            key: (
                (None if item is None else REDACTED)
                if isinstance(key, str) and key.lower() in CONTENT_KEYS
                else item
                if isinstance(item, str) and isinstance(key, str) and _INSTANT_KEY.search(key)
                else redact_value(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_value(item) for item in value]
    if isinstance(value, str):
        return _mask_text(value)
    return value


def redact_raw(raw: bytes | str) -> str:
    """Return a raw input as text with message content, names and phone numbers redacted.

    Args:
        raw: the input as received (bytes are decoded as UTF-8, bad bytes replaced).

    Returns:
        For JSON, the re-serialised document with `redact_value` applied. For anything else
        (broken JSON, another format), the text with every `"key": "value"` pair whose key is a
        content key redacted (an unterminated value up to the end), and phone numbers and
        e-mail addresses masked.
    """
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _mask_text(_KEYED_STRING.sub(_redact_pair, text))
    return orjson.dumps(redact_value(document)).decode()


def _redact_pair(match: re.Match[str]) -> str:
    return f'"{match.group(1)}": "{REDACTED}"'


def _mask_text(text: str) -> str:
    if not any(char.isdigit() for char in text) and "@" not in text:
        return text
    return _EMAIL.sub(REDACTED, _PHONE.sub(_phone_or_id, text))


def _phone_or_id(match: re.Match[str]) -> str:
    found = match.group(0)
    # Epoch seconds and short numeric ids in free text are kept: they explain refusals. A phone
    # number has a `+` or separators, or 11-15 digits.
    digits = sum(char.isdigit() for char in found)
    if _DATE_OR_DECIMAL.fullmatch(found):
        return found
    if found.startswith("+") or not found.isdigit():
        return REDACTED if digits >= 7 else found
    return REDACTED if 11 <= digits <= 15 else found
