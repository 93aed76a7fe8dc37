"""Durations in policy files: parsing, formatting and their round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.core.durations import DAY, HOUR, MINUTE, SECOND, format_duration, parse_duration
from flows.exceptions import DurationError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("45s", 45 * SECOND),
        ("5m", 5 * MINUTE),
        ("4h", 4 * HOUR),
        ("2d", 48 * HOUR),
        ("1h30m", 90 * MINUTE),
        ("1d12h", 36 * HOUR),
        ("1d2h3m4s", DAY + 2 * HOUR + 3 * MINUTE + 4 * SECOND),
        ("90m", 90 * MINUTE),
        (" 5m ", 5 * MINUTE),
        ("1h0m", HOUR),
    ],
)
def test_parse_duration_reads_units_and_compounds(text: str, ms: int) -> None:
    """Single units and compounds in d-h-m-s order parse to milliseconds (a day is 24 h)."""
    assert parse_duration(text) == ms


@pytest.mark.parametrize(
    "text",
    [
        "",
        "5",
        "m",
        "5x",
        "1m1h",
        "1h 30m",
        "-5m",
        "+5m",
        "0s",
        "0h0m",
        "5M",
        "1.5h",
        "500ms",
        "5m5m",
        "٣m",
        "1w",
    ],
)
def test_parse_duration_rejects_bad_text_naming_it(text: str) -> None:
    """Bad grammar, zero, other units and out-of-order parts raise DurationError naming the text."""
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)


def test_parse_duration_rejects_non_strings() -> None:
    """A number is not a duration: the unit must be written."""
    with pytest.raises(DurationError, match="30"):
        parse_duration(30)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0s"),
        (45 * SECOND, "45s"),
        (90 * MINUTE, "1h30m"),
        (2 * DAY, "2d"),
        (DAY + 4 * SECOND, "1d4s"),
        (1_500, "1s500ms"),
    ],
)
def test_format_duration_is_compact(ms: int, text: str) -> None:
    """Formatting uses the largest units, skips zero parts and shows a sub-second rest as ms."""
    assert format_duration(ms) == text


def test_format_duration_rejects_negative() -> None:
    """A negative duration is a programming error, not something to display."""
    with pytest.raises(ValueError, match="-1"):
        format_duration(-1)


@given(st.integers(min_value=1, max_value=10**8))
def test_format_then_parse_round_trips_whole_seconds(seconds: int) -> None:
    """Every positive whole number of seconds survives format then parse unchanged."""
    ms = seconds * SECOND
    assert parse_duration(format_duration(ms)) == ms


@given(
    st.tuples(*(st.none() | st.integers(min_value=0, max_value=10_000) for _ in range(4))).filter(
        any
    )
)
def test_parse_then_format_gives_canonical_equivalent(parts: tuple[int | None, ...]) -> None:
    """Any valid spelling formats to a canonical spelling that parses to the same duration."""
    text = "".join(f"{n}{unit}" for n, unit in zip(parts, "dhms", strict=True) if n is not None)
    ms = parse_duration(text)
    canonical = format_duration(ms)
    assert parse_duration(canonical) == ms
    assert format_duration(parse_duration(canonical)) == canonical
