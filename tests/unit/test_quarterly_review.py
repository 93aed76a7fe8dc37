"""The quarterly review's suggestion per target (`review_target`) and its quarter arithmetic."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

import pytest

from flows.reports.data import ClockRow
from flows.reports.quarterly import (
    CONSISTENT_PCT,
    MIN_WEEK_CLOCKS,
    WATCH_PCT,
    parse_quarter,
    review_target,
    what_if,
)

MONDAY = int(datetime(2026, 7, 6, 9, tzinfo=UTC).timestamp() * 1000)  # 2026-W28
WEEK_MS = 7 * 86_400_000
TARGET = 300.0


def clock(week: int, taken: float, *, n: int = 0, fulfilled: bool = True) -> ClockRow:
    """A decided first-response clock started in week `week` of the quarter."""
    breached = taken > TARGET
    return ClockRow(
        started_at=MONDAY + week * WEEK_MS + n * 60_000,
        conversation_id=f"c{week}-{n}",
        cycle=1,
        metric="first_response",
        seq=1,
        status=("stopped" if breached else "met") if fulfilled else "closed",
        open=False,
        breached=breached or not fulfilled,
        cause=None,
        deadline_at=None,
        stopped_at=None,
        elapsed_s=taken,
        target_s=TARGET,
        agent_id="a1",
        lead_source=None,
        attempts=None,
        updated_at=0,
    )


def weeks(takes: list[list[float]]) -> list[ClockRow]:
    return [clock(w, t, n=i) for w, week in enumerate(takes) for i, t in enumerate(week)]


def test_a_target_beaten_every_week_by_a_margin_is_tightened() -> None:
    rng = random.Random(1)
    rows = weeks([[rng.uniform(20, 120) for _ in range(20)] for _ in range(6)])
    review = review_target(rows, TARGET)
    assert review.suggestion == "tighten"
    assert review.weeks_judged == review.weeks_beaten == 6
    # The smallest candidate (0.5 x) still keeps all of these clocks within it.
    assert review.suggested_s == 150.0
    assert review.what_if == 100.0


def test_tightening_stops_where_compliance_would_fall_under_90() -> None:
    # 80 % of the clocks take 100-140 s, 20 % 160-200 s: at 150 s only 80 % would be met,
    # at 225 s all would.
    rows = weeks([[*[100.0 + i for i in range(0, 40, 5)], 160.0, 200.0] for _ in range(4)])
    review = review_target(rows, TARGET)
    assert review.suggestion == "tighten"
    assert review.suggested_s == 225.0
    assert review.what_if == 100.0
    assert what_if(rows, 150.0) == 80.0


def test_a_week_under_95_keeps_the_target() -> None:
    takes = [[50.0] * 20 for _ in range(5)]
    takes[2] = [50.0] * 18 + [400.0, 500.0]  # 90 % that week
    review = review_target(weeks(takes), TARGET)
    assert review.suggestion == "keep"
    assert review.weeks_beaten == 4 and review.weeks_judged == 5
    assert review.suggested_s == TARGET


def test_a_week_too_small_to_judge_does_not_count() -> None:
    takes = [[50.0] * 20 for _ in range(3)] + [[900.0] * (MIN_WEEK_CLOCKS - 1)]
    review = review_target(weeks(takes), TARGET)
    assert review.weeks_judged == 3
    assert review.compliance is not None and review.compliance < CONSISTENT_PCT


def test_breaches_that_follow_volume_ask_for_capacity_not_a_looser_target() -> None:
    # The busy weeks breach, the quiet weeks do not.
    takes = []
    for volume in (10, 40, 12, 45, 11, 50):
        busy = volume > 20
        takes.append([(600.0 if busy and i % 3 else 100.0) for i in range(volume)])
    review = review_target(weeks(takes), TARGET)
    assert review.compliance is not None and review.compliance < WATCH_PCT
    assert review.volume_r is not None and review.volume_r > 0.9
    assert review.suggestion == "add capacity"
    assert review.suggested_s == TARGET


def test_misses_without_a_volume_pattern_loosen_to_the_first_target_that_reaches_80() -> None:
    # Every week the same: half under 300 s, the rest between 310 and 440 s.
    week = [*[200.0] * 10, *[310.0 + 13 * i for i in range(10)]]
    review = review_target(weeks([list(week) for _ in range(5)]), TARGET)
    assert review.suggestion == "loosen"
    assert review.volume_r is None  # same volume every week: no spread
    assert review.suggested_s == 375.0  # 1.25 x: 200 s x 10 and 310-375 s x 6 = 80 %
    assert review.what_if == 80.0


def test_clocks_never_fulfilled_miss_every_candidate() -> None:
    rows = [clock(w, 0.0, n=i, fulfilled=False) for w in range(3) for i in range(10)]
    review = review_target(rows, TARGET)
    assert review.suggestion == "loosen"
    assert review.what_if == 0.0
    assert review.suggested_s == 2 * TARGET


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("2026-Q1", date(2026, 1, 1)),
        ("2026-Q3", date(2026, 7, 1)),
        (" 2025-Q4 ", date(2025, 10, 1)),
    ],
)
def test_quarters_are_written_like_2026_q3(text: str, first: date) -> None:
    assert parse_quarter(text) == first


@pytest.mark.parametrize("text", ["2026-Q5", "2026Q1", "Q1-2026", "2026-07"])
def test_anything_else_is_refused_with_how_to_write_it(text: str) -> None:
    with pytest.raises(ValueError, match="write it like 2026-Q3"):
        parse_quarter(text)
