"""The RESULT line of `python -m bench`: written once, read back by scripts (issue 18)."""

from __future__ import annotations

import math

import pytest

from bench.result import REQUIRED, format_result, parse_result, percentile, ratio

pytestmark = pytest.mark.unit


def figures(**extra: float | int | str) -> dict[str, float | int | str]:
    base: dict[str, float | int | str] = {
        "recovery_s": 3.456,
        "e2e_ratio": 0.0412,
        "engine_ratio": 0.21,
        "breach_p99_ms": 46.0,
        "breach_p99_load_ms": 1234.5,
        "bytes_per_conv": 2148,
    }
    base.update(extra)
    return base


def test_required_keys_come_first_in_the_documented_order() -> None:
    """The line starts with RESULT and the six required keys in order, whatever the dict order."""
    line = format_result(figures(raw_eps=357_057.4, quick=1))
    keys = [pair.split("=")[0] for pair in line.split()[1:]]
    assert line.startswith("RESULT ")
    assert keys[: len(REQUIRED)] == list(REQUIRED)
    assert keys[len(REQUIRED) :] == ["raw_eps", "quick"]


def test_values_survive_a_round_trip_at_the_printed_precision() -> None:
    """Parsing the printed line gives back each figure to the digits a reader sees."""
    given = figures(raw_eps=357_057.4, load_eps=3_100, mode="quick")
    parsed = parse_result("noise\n" + format_result(given) + "\n")
    assert parsed["e2e_ratio"] == pytest.approx(0.0412)
    assert parsed["recovery_s"] == pytest.approx(3.46)
    assert parsed["breach_p99_load_ms"] == pytest.approx(1234, abs=1)
    assert parsed["raw_eps"] == 357_057
    assert parsed["bytes_per_conv"] == 2148
    assert parsed["mode"] == "quick"


def test_a_missing_figure_is_written_nan_and_read_as_nan() -> None:
    """A measurement that failed shows as nan instead of a made-up number."""
    parsed = parse_result(format_result(figures(recovery_s=math.nan)))
    assert math.isnan(float(parsed["recovery_s"]))


def test_a_required_key_cannot_be_left_out() -> None:
    """Leaving out a required figure is an error naming it, not a shorter line."""
    incomplete = figures()
    del incomplete["bytes_per_conv"]
    with pytest.raises(ValueError, match="bytes_per_conv"):
        format_result(incomplete)


def test_a_value_with_spaces_is_refused() -> None:
    """A text value that would split the line into wrong pairs is refused."""
    with pytest.raises(ValueError, match="one word"):
        format_result(figures(note="two words"))


def test_the_last_result_line_wins_and_text_without_one_is_an_error() -> None:
    """Of several runs in one log the last RESULT line is read; a log without one is an error."""
    first = format_result(figures(e2e_ratio=0.1))
    second = format_result(figures(e2e_ratio=0.5))
    assert parse_result(f"{first}\n{second}")["e2e_ratio"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no RESULT"):
        parse_result("slawatch benchmarks\nFAILED e2e\n")


def test_ratio_and_percentile_treat_missing_data_as_nan() -> None:
    """Ratios to an absent baseline and quantiles of no samples are nan; p99 of 10 is the max."""
    assert math.isnan(ratio(5.0, 0.0))
    assert math.isnan(ratio(math.nan, 2.0))
    assert ratio(3.0, 4.0) == pytest.approx(0.75)
    assert math.isnan(percentile([], 0.99))
    samples = [30, 10, 20, 90, 50, 40, 60, 80, 70, 100]
    assert percentile(samples, 0.99) == 100
    assert percentile(samples, 0.5) == 50
