"""Durations as written in policy files (SPEC §2): `45s`, `5m`, `4h`, `2d`, `1h30m`.

A duration is a sequence of `<digits><unit>` parts with units `d`, `h`, `m`, `s` in that order,
each at most once (`1d12h`, `1h30m`, `90s`). A day is 24 hours of *counted* time: on a calendar
that opens 14 hours a day, `2d` spans several calendar days. Values are integer milliseconds.
"""

from __future__ import annotations

import re
from typing import Final

from flows.exceptions import DurationError

SECOND: Final = 1_000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR

_UNITS: Final = (("d", DAY), ("h", HOUR), ("m", MINUTE), ("s", SECOND))
_PATTERN: Final = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")


def parse_duration(text: str) -> int:
    """Parse a duration such as `5m` or `1h30m` into milliseconds.

    Args:
        text: the duration; surrounding whitespace is ignored, inner whitespace is not allowed.

    Returns:
        The duration in milliseconds, always positive.

    Raises:
        DurationError: `text` is not a string, does not follow the grammar, or is zero.
    """
    if not isinstance(text, str):
        msg = f"duration {text!r} must be a string such as '45s', '5m', '4h', '2d' or '1h30m'"
        raise DurationError(msg)
    match = _PATTERN.fullmatch(text.strip())
    if match is None or not any(match.groups()):
        msg = (
            f"invalid duration {text!r}: expected whole numbers with units d, h, m, s in that "
            "order, such as '45s', '5m', '4h', '2d' or '1h30m'"
        )
        raise DurationError(msg)
    total = sum(
        int(amount) * unit_ms
        for amount, (_, unit_ms) in zip(match.groups(), _UNITS, strict=True)
        if amount is not None
    )
    if total <= 0:
        msg = f"invalid duration {text!r}: must be longer than zero"
        raise DurationError(msg)
    return total


def format_duration(ms: int) -> str:
    """Format milliseconds compactly, the inverse of `parse_duration`.

    `format_duration(parse_duration(s))` is the canonical spelling of `s` (`90m` gives `1h30m`),
    and `parse_duration(format_duration(ms)) == ms` for every whole number of seconds. A
    sub-second remainder is appended as `<n>ms` (for display only; `parse_duration` rejects it).

    Args:
        ms: a non-negative number of milliseconds.

    Returns:
        The duration, such as `1d2h`, `45s` or `0s`.

    Raises:
        ValueError: `ms` is negative.
    """
    if ms < 0:
        msg = f"cannot format a negative duration: {ms} ms"
        raise ValueError(msg)
    if ms == 0:
        return "0s"
    parts: list[str] = []
    rest = ms
    for unit, unit_ms in _UNITS:
        amount, rest = divmod(rest, unit_ms)
        if amount:
            parts.append(f"{amount}{unit}")
    if rest:
        parts.append(f"{rest}ms")
    return "".join(parts)
