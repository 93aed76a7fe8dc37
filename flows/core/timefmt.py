"""Instants on the wire: RFC 3339 strings and integer epoch milliseconds (SPEC §1, §6).

Inside slawatch every instant is an `int` of epoch milliseconds, UTC. This module is the one
place that converts between that and the text forms:

* `parse_instant` reads an input instant: a strict RFC 3339 date-time that carries a UTC offset
  (`Z` or `±HH:MM`), or an integer of epoch milliseconds.
* `format_instant` writes an output instant: RFC 3339 UTC with exactly three fractional digits
  and `Z`, e.g. `2026-11-23T10:00:00.000Z`.

Both accept the instants Python's `datetime` can hold in UTC: from `0001-01-01T00:00:00.000Z`
(`MIN_INSTANT`) to `9999-12-31T23:59:59.999Z` (`MAX_INSTANT`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Final

#: Earliest instant accepted: 0001-01-01T00:00:00.000Z, in epoch ms.
MIN_INSTANT: Final = -62_135_596_800_000
#: Latest instant accepted: 9999-12-31T23:59:59.999Z, in epoch ms.
MAX_INSTANT: Final = 253_402_300_799_999

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)

# RFC 3339 §5.6 `date-time`; `T` and `Z` may be lower case (§5.6 note). Leap seconds (`:60`) are
# refused because no system that produces our events emits them and `datetime` cannot hold them.
# The regex settles the syntax; `datetime.fromisoformat` (which alone is far more lenient) then
# checks the calendar (February 30) and does the arithmetic.
_RFC3339: Final = re.compile(
    r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])[Tt]"
    r"(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?"
    r"(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)",
    re.ASCII,
)
# Used only to explain a rejection.
_DATE_ONLY: Final = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_NAIVE: Final = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?", re.ASCII)

_MAX_SHOWN: Final = 40


def parse_instant(value: object) -> int:
    """Parse an input instant into epoch milliseconds, UTC.

    Args:
        value: an RFC 3339 date-time string with a UTC offset (`Z` or `±HH:MM`), such as
            `2026-11-23T10:00:00Z` or `2026-11-23T17:00:00.123+07:00`, whose fractional
            seconds (any number of digits) are truncated to milliseconds; or an `int` of epoch
            milliseconds.

    Returns:
        The instant as epoch milliseconds, UTC, between `MIN_INSTANT` and `MAX_INSTANT`.

    Raises:
        ValueError: `value` is a bool, a float, a string without an offset, a date without a
            time, any other string that is not a strict RFC 3339 date-time, an impossible date
            (e.g. February 30), an instant out of range, or another type. The message is a
            short reason meant to follow a field name.
    """
    if type(value) is str:
        return _parse_text(value)
    if type(value) is int:
        if MIN_INSTANT <= value <= MAX_INSTANT:
            return value
        msg = f"epoch milliseconds {value} out of range ({MIN_INSTANT}..{MAX_INSTANT})"
        raise ValueError(msg)
    if isinstance(value, bool):
        msg = "a boolean is not an instant"
    elif isinstance(value, float):
        msg = f"{value!r} is a float; use integer epoch milliseconds or an RFC 3339 string"
    elif isinstance(value, str):  # subclasses, which a JSON decoder never produces
        return _parse_text(str(value))
    elif isinstance(value, int):
        return parse_instant(int(value))
    else:
        msg = (
            "must be an RFC 3339 string with an offset or integer epoch milliseconds, "
            f"not {_json_type(value)}"
        )
    raise ValueError(msg)


def _parse_text(text: str) -> int:
    """Parse an RFC 3339 date-time with an offset into epoch ms UTC (fraction truncated to ms).

    Lower-case `t` and `z` are accepted, as RFC 3339 allows.

    Raises:
        ValueError: not RFC 3339 with an offset (the message says what is missing), not a real
            date-time, or out of range in UTC.
    """
    if _RFC3339.fullmatch(text) is None:
        raise ValueError(_why_not_rfc3339(text))
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        # Python 3.11 reads only upper-case `T` and `Z`; retry once with them.
        try:
            at = datetime.fromisoformat(text.upper())
        except ValueError as exc:
            msg = f"{_show(text)} is not a valid date-time: {exc}"
            raise ValueError(msg) from None
    # Floor division truncates the fraction to ms: fraction digits always count forward.
    instant = (at - _EPOCH) // _ONE_MS
    if not MIN_INSTANT <= instant <= MAX_INSTANT:
        msg = f"{_show(text)} is out of range once converted to UTC"
        raise ValueError(msg)
    return instant


def _why_not_rfc3339(text: str) -> str:
    """Return why `text` is not RFC 3339: a bare date, a missing offset, or another shape."""
    shown = _show(text)
    if _DATE_ONLY.fullmatch(text):
        return f"{shown} is a date without a time; use e.g. {text}T00:00:00Z"
    if _NAIVE.fullmatch(text):
        return f"{shown} has no UTC offset; add Z or ±HH:MM"
    return f"{shown} is not an RFC 3339 date-time with an offset (e.g. 2026-11-23T10:00:00Z)"


def _show(text: str) -> str:
    """Return `repr(text)`, cut to 40 characters."""
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return repr(text)


def _json_type(value: object) -> str:
    """Return the JSON type of a value that is neither a string nor an integer, for a reason."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


# Output instants of one run cluster in a few minutes, so the `YYYY-MM-DDTHH:MM:` text is cached
# per minute; the cache is cleared when it grows past `_PREFIX_CACHE_SIZE` (a replay of months).
# Concatenating table entries is about three times faster than an f-string with format specs.
_PREFIX_CACHE_SIZE: Final = 4096
_prefixes: dict[int, str] = {}
_SECONDS: Final = tuple(f"{second:02d}." for second in range(60))
_MILLIS: Final = tuple(f"{milli:03d}Z" for milli in range(1000))


def format_instant(ms: int) -> str:
    """Format epoch milliseconds as an RFC 3339 UTC string with milliseconds.

    Args:
        ms: an instant in epoch milliseconds, between `MIN_INSTANT` and `MAX_INSTANT`.

    Returns:
        The instant as `YYYY-MM-DDTHH:MM:SS.mmmZ`, e.g. `2026-11-23T10:00:00.000Z`.

    Raises:
        ValueError: `ms` is out of range.
    """
    minute, rest = divmod(ms, 60_000)
    prefix = _prefixes.get(minute)
    if prefix is None:
        prefix = minute_prefix(minute)
    second, milli = divmod(rest, 1000)
    return prefix + _SECONDS[second] + _MILLIS[milli]


def minute_prefix(minute: int) -> str:
    """Return (and cache) the `YYYY-MM-DDTHH:MM:` text of an epoch minute (`ms // 60_000`).

    `format_instant(ms)` is this prefix followed by `second_suffixes()[ms % 60_000]`.

    Raises:
        ValueError: the minute is outside `MIN_INSTANT`..`MAX_INSTANT`.
    """
    if not MIN_INSTANT <= minute * 60_000 <= MAX_INSTANT:
        msg = f"epoch milliseconds out of range ({MIN_INSTANT}..{MAX_INSTANT})"
        raise ValueError(msg)
    at = _EPOCH + timedelta(minutes=minute)
    prefix = f"{at.year:04d}-{at.month:02d}-{at.day:02d}T{at.hour:02d}:{at.minute:02d}:"
    if len(_prefixes) >= _PREFIX_CACHE_SIZE:
        _prefixes.clear()
    _prefixes[minute] = prefix
    return prefix


@cache
def second_suffixes() -> tuple[str, ...]:
    """Return the `SS.mmmZ` text of every millisecond of a minute, indexed by `ms % 60_000`.

    Made at the first call (60,000 short strings, ~4 MB), for writers of many instants.
    """
    return tuple(second + milli for second in _SECONDS for milli in _MILLIS)
