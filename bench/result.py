"""The `RESULT key=value ...` line that ends `python -m bench`, and reading it back.

The line is what scripts and CI compare between runs: one line, space-separated `key=value`
pairs, keys in the order given, numbers without thousands separators, a missing figure as `nan`.
"""

from __future__ import annotations

import math

#: The keys every RESULT line carries (issue 18), in this order, before any others.
REQUIRED = (
    "e2e_ratio",
    "engine_ratio",
    "breach_p99_ms",
    "breach_p99_load_ms",
    "bytes_per_conv",
    "recovery_s",
)


def _text(value: float | int | str) -> str:
    if isinstance(value, str):
        if not value or any(c.isspace() or c == "=" for c in value):
            msg = f"a RESULT value must be one word without '=', not {value!r}"
            raise ValueError(msg)
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "nan"
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def format_result(figures: dict[str, float | int | str]) -> str:
    """Return the RESULT line: `REQUIRED` keys first (each must be there), then the others.

    Floats are rounded for reading (no decimals from 100 up, two from 1, three significant
    digits below 1); NaN is written `nan`.

    Raises:
        ValueError: A required key is missing, or a key or text value is not one plain word.
    """
    missing = [key for key in REQUIRED if key not in figures]
    if missing:
        msg = f"the RESULT line needs {', '.join(missing)}"
        raise ValueError(msg)
    keys = [*REQUIRED, *(k for k in figures if k not in REQUIRED)]
    for key in keys:
        if not key or any(c.isspace() or c == "=" for c in key):
            msg = f"a RESULT key must be one word without '=', not {key!r}"
            raise ValueError(msg)
    return "RESULT " + " ".join(f"{key}={_text(figures[key])}" for key in keys)


def parse_result(text: str) -> dict[str, float | str]:
    """Return the figures of the last RESULT line in `text` (numbers as floats, `nan` as NaN).

    Raises:
        ValueError: `text` has no RESULT line, or a pair is not `key=value`.
    """
    lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
    if not lines:
        msg = "no RESULT line in the text"
        raise ValueError(msg)
    figures: dict[str, float | str] = {}
    for pair in lines[-1].split()[1:]:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            msg = f"not a key=value pair: {pair!r}"
            raise ValueError(msg)
        try:
            figures[key] = float(value)
        except ValueError:
            figures[key] = value
    return figures


def ratio(value: float, baseline: float) -> float:
    """Return `value / baseline`, NaN when either is missing (NaN) or the baseline is not > 0."""
    if math.isnan(value) or math.isnan(baseline) or baseline <= 0:
        return math.nan
    return value / baseline


def percentile(values: list[float] | list[int], q: float) -> float:
    """Return the `q` quantile (0..1) of `values` by the nearest-rank method, NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return float(ordered[rank - 1])
