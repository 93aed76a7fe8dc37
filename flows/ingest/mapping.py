"""What every platform mapping returns, and the helpers they share.

A mapping turns one webhook body into a `Mapped`: the SPEC §1 events it yields (JSON-ready
dicts, each checked by the project's decoder), what it ignored and why (counted, never
dead-lettered), flags worth counting (accepted but unusual), and the reasons it could not map
(dead letters). Event ids are derived from the platform's own ids, so a duplicate delivery maps
to the same ids and the monitor drops the copy.

A failed delivery maps to a retraction (SPEC §1): `{"type": "message", "action": "failed",
"message_id": ...}`, built by `retraction` with the `message_id` the outbound message event
carried, so the monitor computes every clock as if that message had never been sent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from flows.core.decode import decode_event
from flows.core.events import Rejected
from flows.core.timefmt import parse_instant

#: Epoch values above this are milliseconds, below it seconds (year 5138 in seconds).
_MS_THRESHOLD: Final = 100_000_000_000


def retraction(
    event_id: str, conversation_id: str, occurred_at: int, message_id: str
) -> dict[str, Any]:
    """Return the SPEC §1 retraction of an outbound message whose delivery failed.

    Args:
        event_id: the retraction's own id (derived from the platform's ids, so a repeated
            failure report gets the same id).
        conversation_id: the conversation of the failed message.
        occurred_at: when the failure was reported, in epoch ms.
        message_id: exactly the `message_id` of the outbound message event it retracts.

    Returns:
        The event as a JSON-ready dict.
    """
    return {
        "event_id": event_id,
        "type": "message",
        "action": "failed",
        "conversation_id": conversation_id,
        "occurred_at": occurred_at,
        "message_id": message_id,
    }


@dataclass(frozen=True, slots=True)
class Ignored:
    """A part of a payload that carries nothing for SLAs: `kind` is the counter label.

    Attributes:
        kind: a short snake_case label (`message_reaction`, `status_read`, `no_changes`),
            the `kind` label of `slawatch_ingest_ignored_total`.
        reason: one sentence for logs and `ingest map`.
    """

    kind: str
    reason: str


@dataclass(slots=True)
class Mapped:
    """The outcome of mapping one webhook body.

    Attributes:
        events: SPEC §1 events as JSON-ready dicts (`occurred_at` in epoch ms), in the order
            they apply; each has passed `flows.core.decode.decode_event`.
        ignored: parts ignored on purpose, with the reason.
        flags: labels of accepted but unusual inputs (e.g. `incoming_user_sender`).
        unmappable: reasons the body (or a part of it) could not be mapped: dead letters.
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    unmappable: list[str] = field(default_factory=list)

    def add(self, event: dict[str, Any]) -> None:
        """Append an event after checking it with the project's decoder.

        An event the decoder refuses (or one that cannot be written as JSON, e.g. an instant beyond
        64-bit milliseconds) is not added; its reason goes to `unmappable`.
        """
        try:
            raw = orjson.dumps(event)
        except orjson.JSONEncodeError as err:
            self.unmappable.append(f"mapped {event.get('type')} event cannot be encoded: {err}")
            return
        checked = decode_event(raw)
        fault = checked.reason if isinstance(checked, Rejected) else None
        if fault is not None:
            self.unmappable.append(f"mapped {event.get('type')} event refused: {fault}")
        else:
            self.events.append(event)

    def ignore(self, kind: str, reason: str) -> None:
        """Record a part ignored on purpose (counted, never a dead letter).

        Args:
            kind: the counter label.
            reason: why it carries nothing for SLAs.
        """
        self.ignored.append(Ignored(kind, reason))


class MappingError(Exception):
    """Raised inside a mapper when a body cannot be mapped; the message is the reason."""


def epoch_ms(value: object, what: str) -> int:
    """Read a platform timestamp as epoch milliseconds.

    Accepts integer or float epoch seconds or milliseconds, a string of digits (WhatsApp's unix
    seconds), an RFC 3339 string with an offset, or (taken as UTC) Ruby's `2025-05-15 19:11:08
    UTC` and an ISO date-time without an offset.

    Numbers from 100 000 000 000 up are taken as milliseconds, below it as seconds (so
    seconds work until the year 5138); fractions of seconds are rounded to the millisecond.

    Args:
        value: the timestamp as the platform sent it.
        what: the field's name, for the error message (e.g. `message 'timestamp'`).

    Returns:
        The instant in epoch milliseconds UTC.

    Raises:
        MappingError: the value is none of these; the message names `what`.
    """
    if isinstance(value, bool) or value is None:
        msg = f"{what} is missing or not a timestamp"
        raise MappingError(msg)
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
        number = float(value.strip())
    elif isinstance(value, str):
        try:
            return parse_instant(value)
        except ValueError as exc:
            lenient = _lenient_utc(value)
            if lenient is not None:
                return lenient
            msg = f"{what}: {exc}"
            raise MappingError(msg) from None
    else:
        msg = f"{what} must be a timestamp, not {type(value).__name__}"
        raise MappingError(msg)
    return int(number) if number >= _MS_THRESHOLD else int(round(number * 1000))


def _lenient_utc(text: str) -> int | None:
    """Read Ruby's `2025-05-15 19:11:08 UTC` and zone-less ISO date-times, taken as UTC."""
    cleaned = text.strip().removesuffix(" UTC").removesuffix("Z").replace(" ", "T", 1)
    for layout in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            moment = datetime.strptime(cleaned, layout).replace(tzinfo=UTC)
        except ValueError:
            continue
        return int(moment.timestamp() * 1000)
    return None


def short_hash(value: object) -> str:
    """Return 16 hex digits of the SHA-256 of a JSON value (sorted keys): a stable id part.

    Equal values give equal parts whatever their key order, so two deliveries of one change
    get one event id.
    """
    data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()[:16]


def as_object(body: bytes) -> dict[str, Any]:
    """Parse a webhook body that must be a JSON object.

    Raises:
        MappingError: the body is not valid JSON or not an object.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        msg = f"body is not valid JSON: {exc}"
        raise MappingError(msg) from None
    if not isinstance(document, dict):
        msg = f"body must be a JSON object, not {type(document).__name__}"
        raise MappingError(msg)
    return document
