"""Per-shard event time: follows the events during a backlog, the wall clock when idle."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.monitor.watermark import ShardClock

pytestmark = pytest.mark.unit

L = 5_000
T = 1_795_392_000_000


def test_unknown_until_every_expected_partition_reported() -> None:
    """A shard has no watermark until every input partition has reported."""
    clock = ShardClock(L, ["p0", "p1"])
    clock.report("p0", max_event=T, caught_up=True, wall=T, position=1)
    assert clock.watermark(T) is None
    clock.report("p1", max_event=T, caught_up=False, wall=T, position=1)
    assert clock.watermark(T) == T - L


def test_backlog_watermark_follows_events_not_wall_clock() -> None:
    """While a partition is behind, the wall clock does not move the watermark."""
    clock = ShardClock(L, ["p0"])
    clock.report("p0", max_event=T, caught_up=False, wall=T + 3_600_000, position=10)
    assert clock.watermark(T + 3_600_000) == T - L
    assert clock.wall_time_for(T + 60_000, T + 3_600_000) is None


def test_idle_watermark_follows_wall_clock() -> None:
    """A caught-up partition lets the watermark follow the wall clock minus the lateness."""
    clock = ShardClock(L, ["p0"], max_report_age_ms=10_000)
    clock.report("p0", max_event=T, caught_up=True, wall=T + 1_000, position=10)
    assert clock.watermark(T + 2_000) == T + 2_000 - L
    assert clock.wall_time_for(T + 3_000, T + 2_000) == T + 3_000 + L


def test_silent_reader_stops_vouching_for_the_wall_clock() -> None:
    """A caught-up report counts for the present only for `max_report_age` after it."""
    clock = ShardClock(L, ["p0"], max_report_age_ms=1_000)
    clock.report("p0", max_event=T, caught_up=True, wall=T, position=1)
    assert clock.watermark(T + 60_000) == T + 1_000 - L


def test_slowest_partition_holds_the_watermark() -> None:
    """The shard's watermark is the minimum over its partitions."""
    clock = ShardClock(L, ["p0", "p1"])
    clock.report("p0", max_event=T + 50_000, caught_up=True, wall=T + 50_000, position=1)
    clock.report("p1", max_event=T + 10_000, caught_up=False, wall=T + 50_000, position=1)
    assert clock.watermark(T + 50_000) == T + 10_000 - L
    assert clock.wall_time_for(T + 20_000, T + 50_000) is None
    assert clock.wall_time_for(T + 5_000, T + 50_000) == T + 50_000


def test_stale_report_does_not_undo_a_newer_one() -> None:
    """A report that arrives out of order (lower position) does not reset caught-up."""
    clock = ShardClock(L, ["p0"])
    clock.report("p0", max_event=T, caught_up=True, wall=T + 100, position=20)
    clock.report("p0", max_event=T - 1, caught_up=False, wall=T + 50, position=10)
    assert clock.reports["p0"].caught_up
    assert clock.reports["p0"].max_event == T


def test_restore_forgets_caught_up_and_wall_time() -> None:
    """After a restart the watermark waits for fresh caught-up reports, then jumps to now."""
    clock = ShardClock(L, ["p0"])
    clock.report("p0", max_event=T, caught_up=True, wall=T + 1_000, position=7)
    assert clock.watermark(T + 1_000) == T + 1_000 - L
    restored = ShardClock(L, ["p0"])
    restored.restore(clock.state())
    later = T + 600_000
    assert restored.watermark(later) == T + 1_000 - L
    assert restored.wall_time_for(T + 300_000, later) is None
    restored.report("p0", max_event=None, caught_up=True, wall=later, position=7)
    assert restored.watermark(later) == later - L


def test_negative_lateness_is_refused() -> None:
    """A negative lateness is a configuration error."""
    with pytest.raises(ValueError, match="lateness must not be negative"):
        ShardClock(-1)


reports = st.lists(
    st.tuples(
        st.sampled_from(["p0", "p1", "p2"]),
        st.one_of(st.none(), st.integers(T, T + 100_000)),
        st.booleans(),
        st.integers(0, 100_000),
        st.integers(0, 1_000),
    ),
    max_size=40,
)


@given(reports, st.lists(st.integers(0, 200_000), min_size=1, max_size=10))
def test_watermark_never_decreases(
    items: list[tuple[str, int | None, bool, int, int]], nows: list[int]
) -> None:
    """Whatever the reports and however the wall clock jumps, the watermark never goes back."""
    clock = ShardClock(L, ["p0", "p1"], max_report_age_ms=1_000)
    last: int | None = None
    for (name, max_event, caught_up, wall, position), now in zip(
        items, nows * (len(items) // len(nows) + 1), strict=False
    ):
        clock.report(
            name, max_event=max_event, caught_up=caught_up, wall=T + wall, position=position
        )
        mark = clock.watermark(T + now)
        if last is not None:
            assert mark is not None
            assert mark >= last
        last = mark


@given(reports, st.integers(0, 200_000))
def test_watermark_never_passes_a_behind_partition(
    items: list[tuple[str, int | None, bool, int, int]], now: int
) -> None:
    """A partition that is behind bounds the watermark by its own events minus the lateness."""
    clock = ShardClock(L)
    for name, max_event, caught_up, wall, position in items:
        clock.report(
            name, max_event=max_event, caught_up=caught_up, wall=T + wall, position=position
        )
    mark = clock.watermark(T + now)
    for rep in clock.reports.values():
        if mark is not None and not rep.caught_up:
            assert rep.max_event is not None
            assert mark <= rep.max_event - L


@given(reports, st.integers(0, 100_000), st.integers(0, 200_000))
def test_wall_time_for_is_when_the_watermark_gets_there(
    items: list[tuple[str, int | None, bool, int, int]], target: int, now: int
) -> None:
    """If `wall_time_for` names a time, the watermark has reached the instant by then."""
    clock = ShardClock(L, max_report_age_ms=10**9)
    for name, max_event, caught_up, wall, position in items:
        clock.report(
            name, max_event=max_event, caught_up=caught_up, wall=T + wall, position=position
        )
    when = clock.wall_time_for(T + target, T + now)
    if when is not None:
        assert when >= T + now
        mark = clock.watermark(when)
        assert mark is not None
        assert mark >= T + target
