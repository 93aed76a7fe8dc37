"""Business time: calendars, holidays, overrides, DST, and the 24/7 wall clock (SPEC §2, §4)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from flows.core.calendar import WALL_CLOCK, WEEKDAYS, Calendar, WallClock
from flows.core.model import BusinessTime
from flows.exceptions import CalendarError

pytestmark = pytest.mark.unit

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def at(text: str) -> int:
    """Epoch ms of an ISO 8601 instant with an offset."""
    return (datetime.fromisoformat(text) - EPOCH) // timedelta(milliseconds=1)


def jakarta(**kwargs: object) -> Calendar:
    """The SPEC's example desk in Asia/Jakarta (UTC+7, no DST)."""
    weekly = {
        "mon": ["08:00-12:00", "13:00-22:00"],
        "tue": ["08:00-12:00", "13:00-22:00"],
        "wed": ["08:00-12:00", "13:00-22:00"],
        "thu": ["08:00-12:00", "13:00-22:00"],
        "fri": ["08:00-12:00", "13:00-22:00"],
        "sat": ["00:00-24:00"],
        "sun": [],
    }
    return Calendar("Asia/Jakarta", weekly, **kwargs)  # type: ignore[arg-type]


# -- examples -----------------------------------------------------------------------------------


def test_calendar_and_wall_clock_are_business_time() -> None:
    """Both classes satisfy the engine's BusinessTime protocol."""
    times: list[BusinessTime] = [jakarta(), WALL_CLOCK, WallClock()]
    assert [t.is_open(at("2026-03-01T12:00:00+07:00")) for t in times] == [False, True, True]


def test_split_shift_skips_the_lunch_break() -> None:
    """Time stops counting during the lunch break between two intervals of a day."""
    cal = jakarta()
    start = at("2026-03-02T11:00:00+07:00")  # a Monday
    assert cal.add(start, 2 * HOUR) == at("2026-03-02T14:00:00+07:00")
    assert cal.counted(start, at("2026-03-02T14:00:00+07:00")) == 2 * HOUR
    assert not cal.is_open(at("2026-03-02T12:30:00+07:00"))
    assert cal.is_open(at("2026-03-02T13:00:00+07:00"))


def test_millisecond_exactness_around_a_break() -> None:
    """Results are exact to the millisecond at the edges of an interval."""
    cal = jakarta()
    start = at("2026-03-02T11:59:59.999+07:00")
    assert cal.add(start, 1) == at("2026-03-02T12:00:00+07:00")
    assert cal.add(start, 2) == at("2026-03-02T13:00:00.001+07:00")
    assert cal.counted(start, at("2026-03-02T13:00:00.001+07:00")) == 2


def test_open_all_day_counts_every_millisecond_of_the_date() -> None:
    """`00:00-24:00` is open for the whole local date, through to the next midnight."""
    cal = jakarta()
    saturday = at("2026-03-07T00:00:00+07:00")
    assert cal.counted(saturday, saturday + 2 * DAY) == DAY
    assert cal.add(saturday + 10 * HOUR, 12 * HOUR) == saturday + 22 * HOUR
    assert cal.is_open(saturday + DAY - 1)
    assert not cal.is_open(saturday + DAY)


def test_target_used_up_at_closing_instant_is_due_then() -> None:
    """A desk closing at 22:00 breaches at 22:00, not at the next morning's opening."""
    cal = jakarta()
    assert cal.add(at("2026-03-02T21:00:00+07:00"), HOUR) == at("2026-03-02T22:00:00+07:00")
    assert cal.add(at("2026-03-02T13:00:00+07:00"), 9 * HOUR) == at("2026-03-02T22:00:00+07:00")
    saturday = at("2026-03-07T10:00:00+07:00")
    assert cal.add(saturday, 14 * HOUR) == at("2026-03-08T00:00:00+07:00")


def test_one_more_millisecond_after_closing_waits_for_next_opening() -> None:
    """Counting past a closing instant resumes at the next opening."""
    cal = jakarta()
    start = at("2026-03-02T21:00:00+07:00")
    assert cal.add(start, HOUR + 1) == at("2026-03-03T08:00:00.001+07:00")


def test_start_in_closed_time_counts_from_next_opening() -> None:
    """A clock started at night counts from the morning's opening."""
    cal = jakarta()
    night = at("2026-03-02T23:00:00+07:00")
    assert cal.add(night, 30 * MIN) == at("2026-03-03T08:30:00+07:00")
    assert cal.counted(night, at("2026-03-03T08:00:00+07:00")) == 0
    assert cal.next_opening(night) == at("2026-03-03T08:00:00+07:00")


def test_add_zero_returns_start_even_when_closed() -> None:
    """Adding no time returns the start itself, open or closed."""
    cal = jakarta()
    night = at("2026-03-02T23:00:00+07:00")
    assert cal.add(night, 0) == night
    assert WALL_CLOCK.add(night, 0) == night


def test_counted_is_zero_for_an_empty_or_reversed_range() -> None:
    """Counted time between an end at or before the start is zero."""
    cal = jakarta()
    noon = at("2026-03-03T10:00:00+07:00")
    assert cal.counted(noon, noon) == 0
    assert cal.counted(noon, noon - HOUR) == 0


def test_closed_and_missing_days_do_not_count() -> None:
    """An empty list and a weekday left out are both closed all day."""
    cal = Calendar("Asia/Jakarta", {"mon": ["09:00-17:00"], "sun": []})
    sunday = at("2026-03-01T00:00:00+07:00")
    assert cal.counted(sunday, sunday + DAY) == 0
    tuesday = at("2026-03-03T00:00:00+07:00")
    assert cal.counted(tuesday, tuesday + 6 * DAY) == 0
    assert cal.next_opening(tuesday) == at("2026-03-09T09:00:00+07:00")


def test_weekend_is_skipped_between_friday_and_monday() -> None:
    """A target running past Friday's closing finishes on Monday."""
    weekdays = {day: ["09:00-17:00"] for day in WEEKDAYS[:5]}
    cal = Calendar("Asia/Jakarta", weekdays)
    friday = at("2026-03-06T16:00:00+07:00")
    monday = at("2026-03-09T10:00:00+07:00")
    assert cal.add(friday, 2 * HOUR) == monday
    assert cal.counted(friday, monday) == 2 * HOUR


def test_long_targets_span_many_weeks() -> None:
    """Many weeks of counted time are skipped correctly by whole days and blocks."""
    weekdays = {day: ["09:00-17:00"] for day in WEEKDAYS[:5]}
    cal = Calendar("Asia/Jakarta", weekdays)
    monday = at("2026-01-05T09:00:00+07:00")
    # 40 working weeks of 5 x 8 h end on a Friday's closing 40 weeks later.
    due = cal.add(monday, 40 * 40 * HOUR)
    assert due == at("2026-01-05T17:00:00+07:00") + 40 * 7 * DAY - 3 * DAY
    assert cal.counted(monday, due) == 40 * 40 * HOUR


def test_holiday_closes_the_whole_local_date() -> None:
    """A holiday is closed all day and the clock resumes the next open day."""
    cal = jakarta(holidays=["2026-03-03"])
    tuesday = at("2026-03-03T00:00:00+07:00")
    assert cal.counted(tuesday, tuesday + DAY) == 0
    assert cal.add(at("2026-03-02T21:30:00+07:00"), HOUR) == at("2026-03-04T08:30:00+07:00")


def test_override_replaces_the_weekday_hours() -> None:
    """An override sets special hours for one local date only."""
    cal = jakarta(overrides={"2026-03-04": ["08:00-15:00"]})
    wednesday = at("2026-03-04T00:00:00+07:00")
    assert cal.counted(wednesday, wednesday + DAY) == 7 * HOUR
    assert cal.is_open(at("2026-03-04T12:30:00+07:00"))
    assert cal.add(at("2026-03-04T14:00:00+07:00"), 2 * HOUR) == at("2026-03-05T09:00:00+07:00")
    thursday = wednesday + DAY
    assert cal.counted(thursday, thursday + DAY) == 13 * HOUR


def test_override_wins_over_a_holiday_on_the_same_date() -> None:
    """Christmas Eve listed as a holiday but given special hours opens for those hours."""
    cal = jakarta(holidays=["2026-12-24", "2026-12-25"], overrides={"2026-12-24": ["08:00-15:00"]})
    eve = at("2026-12-24T00:00:00+07:00")
    assert cal.counted(eve, eve + DAY) == 7 * HOUR
    assert cal.counted(eve + DAY, eve + 2 * DAY) == 0


def test_empty_override_closes_the_date() -> None:
    """An override of `[]` closes a normally open date."""
    cal = jakarta(overrides={"2026-03-07": []})
    saturday = at("2026-03-07T00:00:00+07:00")
    assert cal.counted(saturday, saturday + DAY) == 0


def test_override_opens_a_normally_closed_date() -> None:
    """An override on a Sunday opens it for its hours."""
    cal = jakarta(overrides={"2026-03-08": ["10:00-12:00"]})
    assert cal.add(at("2026-03-08T00:00:00+07:00"), HOUR) == at("2026-03-08T11:00:00+07:00")


def test_dates_from_yaml_are_accepted() -> None:
    """Unquoted YAML dates (`datetime.date`) work like ISO strings."""
    from_dates = jakarta(holidays=[date(2026, 3, 3)], overrides={date(2026, 3, 4): []})
    from_text = jakarta(holidays=["2026-03-03"], overrides={"2026-03-04": []})
    week = at("2026-03-02T00:00:00+07:00")
    assert from_dates.counted(week, week + 7 * DAY) == from_text.counted(week, week + 7 * DAY)


def test_touching_intervals_form_one_stretch() -> None:
    """Intervals that touch leave no closed instant between them."""
    cal = Calendar("Asia/Jakarta", {"mon": ["12:00-13:00", "08:00-12:00"]})
    assert cal.is_open(at("2026-03-02T12:00:00+07:00"))
    assert cal.counted(at("2026-03-02T00:00:00+07:00"), at("2026-03-03T00:00:00+07:00")) == 5 * HOUR


def test_jakarta_opens_at_the_same_utc_time_all_year() -> None:
    """Asia/Jakarta has no DST: 09:00 local is 02:00 UTC on every day of the year."""
    cal = Calendar("Asia/Jakarta", {day: ["09:00-17:00"] for day in WEEKDAYS})
    first = at("2026-01-01T00:00:00+00:00")
    for day in range(365):
        assert cal.next_opening(first + day * DAY) == first + day * DAY + 2 * HOUR


def test_negative_offset_zone_spans_utc_midnight() -> None:
    """An evening shift west of UTC crosses UTC midnight as one stretch."""
    cal = Calendar("America/Panama", {"mon": ["17:00-23:00"]})
    start = at("2026-03-02T17:00:00-05:00")
    assert cal.add(start, 6 * HOUR) == at("2026-03-03T04:00:00+00:00")
    assert cal.counted(start - HOUR, start + 7 * HOUR) == 6 * HOUR


def test_calendar_with_only_overrides_ends_after_the_last_one() -> None:
    """With no weekly hours, the calendar never opens after its last open override."""
    cal = Calendar("Asia/Jakarta", {}, overrides={"2026-03-04": ["08:00-10:00"]})
    before = at("2026-03-01T00:00:00+07:00")
    assert cal.next_opening(before) == at("2026-03-04T08:00:00+07:00")
    assert cal.add(before, 2 * HOUR) == at("2026-03-04T10:00:00+07:00")
    assert cal.next_opening(at("2026-03-04T10:00:00+07:00")) is None
    with pytest.raises(CalendarError, match="never opens"):
        cal.add(before, 2 * HOUR + 1)


def test_wall_clock_counts_everything() -> None:
    """The 24/7 wall clock adds and counts plain elapsed time."""
    start = at("2026-03-08T06:00:00+00:00")
    assert WALL_CLOCK.add(start, 5 * MIN) == start + 5 * MIN
    assert WALL_CLOCK.counted(start, start + 5 * MIN) == 5 * MIN
    assert WALL_CLOCK.counted(start, start - 5 * MIN) == 0
    assert WALL_CLOCK.next_opening(start) == start
    assert WALL_CLOCK.is_open(start)


# -- DST ----------------------------------------------------------------------------------------


def test_spring_forward_gap_opens_at_the_transition_new_york() -> None:
    """02:30-05:00 on the night New York jumps 02:00→03:00 opens at 03:00 EDT."""
    cal = Calendar("America/New_York", {"sun": ["02:30-05:00"]})
    night = at("2026-03-08T00:00:00-05:00")
    assert cal.next_opening(night) == at("2026-03-08T03:00:00-04:00")
    assert not cal.is_open(at("2026-03-08T01:59:59.999-05:00"))
    assert cal.counted(night, night + DAY) == 2 * HOUR
    # A week later the same interval is 2 h 30 min long again.
    assert cal.counted(night + 7 * DAY, night + 8 * DAY) == 2 * HOUR + 30 * MIN


def test_interval_ending_in_the_gap_closes_at_the_transition() -> None:
    """01:00-02:30 on the spring-forward night closes at the jump, after one hour."""
    cal = Calendar("America/New_York", {"sun": ["01:00-02:30"]})
    start = at("2026-03-08T01:00:00-05:00")
    assert cal.add(start, HOUR) == at("2026-03-08T03:00:00-04:00")
    assert cal.counted(start, start + DAY) == HOUR


def test_interval_inside_the_gap_never_opens() -> None:
    """An interval wholly inside the skipped hour is empty that night."""
    cal = Calendar("America/New_York", {"sun": ["02:00-02:45", "04:00-05:00"]})
    night = at("2026-03-08T00:00:00-05:00")
    assert cal.next_opening(night) == at("2026-03-08T04:00:00-04:00")
    assert cal.counted(night, night + DAY) == HOUR


def test_fall_back_fold_is_one_stretch_new_york() -> None:
    """01:00-01:45 on the night clocks go back runs from the first 01:00 to the first 01:45."""
    cal = Calendar("America/New_York", {"sun": ["01:00-01:45"]})
    start = at("2026-11-01T01:00:00-04:00")
    assert cal.next_opening(start - HOUR) == start
    assert cal.add(start, 45 * MIN) == at("2026-11-01T01:45:00-04:00")
    assert not cal.is_open(at("2026-11-01T01:00:00-05:00"))
    assert cal.counted(start - HOUR, start + DAY) == 45 * MIN


def test_interval_through_the_fold_includes_the_repeated_hour() -> None:
    """00:00-03:00 on the fall-back night is four real hours long."""
    cal = Calendar("America/New_York", {"sun": ["00:00-03:00"]})
    start = at("2026-11-01T00:00:00-04:00")
    assert cal.counted(start, start + DAY) == 4 * HOUR
    assert cal.add(start, 4 * HOUR) == at("2026-11-01T03:00:00-05:00")


def test_berlin_days_are_23_and_25_hours_long() -> None:
    """An all-day interval counts 23 h on Berlin's spring-forward date and 25 h in autumn."""
    cal = Calendar("Europe/Berlin", {"sun": ["00:00-24:00"]})
    spring = at("2026-03-29T00:00:00+01:00")
    autumn = at("2026-10-25T00:00:00+02:00")
    assert cal.counted(spring, spring + 2 * DAY) == 23 * HOUR
    assert cal.counted(autumn, autumn + 2 * DAY) == 25 * HOUR
    assert cal.add(spring, 23 * HOUR) == at("2026-03-30T00:00:00+02:00")


def test_berlin_spring_gap_and_autumn_fold() -> None:
    """Berlin: 02:30 opens at 03:00 CEST in March; 02:00-02:30 in October is the first pass."""
    cal = Calendar(
        "Europe/Berlin", {"sun": ["02:30-05:00"]}, overrides={"2026-10-25": ["02:00-02:30"]}
    )
    assert cal.next_opening(at("2026-03-29T00:00:00+01:00")) == at("2026-03-29T03:00:00+02:00")
    autumn = at("2026-10-25T02:00:00+02:00")
    assert cal.next_opening(autumn - HOUR) == autumn
    assert cal.add(autumn, 30 * MIN) == at("2026-10-25T02:30:00+02:00")
    assert not cal.is_open(at("2026-10-25T02:00:00+01:00"))


def test_open_all_day_across_dst_counts_real_time() -> None:
    """A 24/7 calendar in a DST zone counts exactly like the wall clock."""
    cal = Calendar("America/New_York", {day: ["00:00-24:00"] for day in WEEKDAYS})
    start = at("2026-03-07T12:00:00-05:00")
    assert cal.add(start, 3 * DAY) == start + 3 * DAY
    assert cal.counted(start, start + 3 * DAY) == 3 * DAY
    autumn = at("2026-10-31T12:00:00-04:00")
    assert cal.add(autumn, 3 * DAY) == autumn + 3 * DAY


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weekly", "named"),
    [
        ({"mon": ["8:00-12:00"]}, "8:00-12:00"),
        ({"mon": ["08:00-12:00 "]}, "08:00-12:00 "),
        ({"mon": ["08:00–12:00"]}, "08:00–12:00"),
        ({"mon": ["12:00-08:00"]}, "12:00-08:00"),
        ({"mon": ["08:00-08:00"]}, "08:00-08:00"),
        ({"mon": ["24:00-24:00"]}, "24:00-24:00"),
        ({"mon": ["25:00-26:00"]}, "25:00-26:00"),
        ({"mon": ["08:60-09:00"]}, "08:60-09:00"),
        ({"mon": ["08:00-24:30"]}, "08:00-24:30"),
        ({"mon": ["08:00-12:00", "11:00-13:00"]}, "overlapping"),
        ({"mon": ["08:00-12:00", "08:00-12:00"]}, "overlapping"),
        ({"mon": "08:00-12:00"}, "08:00-12:00"),
        ({"mon": [800]}, "800"),
        ({"monday": ["08:00-12:00"]}, "monday"),
        ({"Mon": ["08:00-12:00"]}, "Mon"),
        ({}, "never open"),
        ({"mon": [], "sun": []}, "never open"),
    ],
)
def test_bad_weekly_hours_are_rejected(weekly: dict[str, object], named: str) -> None:
    """Malformed, reversed or overlapping intervals and unknown weekdays raise CalendarError."""
    with pytest.raises(CalendarError) as caught:
        Calendar("Asia/Jakarta", weekly)  # type: ignore[arg-type]
    assert named in str(caught.value)


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus_Mons", "", "../etc/passwd", "/usr/share/zoneinfo/UTC"]
)
def test_unknown_time_zone_is_rejected(zone: str) -> None:
    """A name that is not an IANA zone raises CalendarError naming it."""
    with pytest.raises(CalendarError) as caught:
        Calendar(zone, {"mon": ["08:00-12:00"]})
    assert repr(zone) in str(caught.value)


@pytest.mark.parametrize("bad", ["2026-02-30", "2026-13-01", "26-12-25", "20261225", "christmas"])
def test_bad_holiday_and_override_dates_are_rejected(bad: str) -> None:
    """A holiday or override that is not a valid YYYY-MM-DD date raises CalendarError naming it."""
    with pytest.raises(CalendarError, match=bad):
        Calendar("Asia/Jakarta", {"mon": ["08:00-12:00"]}, holidays=[bad])
    with pytest.raises(CalendarError, match=bad):
        Calendar("Asia/Jakarta", {"mon": ["08:00-12:00"]}, overrides={bad: []})


def test_bad_override_hours_are_rejected() -> None:
    """An override's intervals are validated like weekly ones, naming the date."""
    with pytest.raises(CalendarError, match="override 2026-12-24.*'15:00-08:00'"):
        jakarta(overrides={"2026-12-24": ["15:00-08:00"]})


def test_holidays_given_as_one_string_are_rejected() -> None:
    """A bare string instead of a list of holidays is refused, not read character by character."""
    with pytest.raises(CalendarError, match="2026-12-25"):
        jakarta(holidays="2026-12-25")


def test_override_inside_a_dst_gap_alone_is_never_open() -> None:
    """A calendar whose only hours fall in a skipped hour is refused as never open."""
    with pytest.raises(CalendarError, match="never open"):
        Calendar("America/New_York", {}, overrides={"2026-03-08": ["02:00-02:30"]})


# -- brute-force references ---------------------------------------------------------------------
#
# Both references step minute by minute over UTC and decide openness from the local wall clock,
# independently of the implementation. Everything in these properties is aligned to minutes and
# every zone's offsets and transitions are whole minutes, so minute steps are exact.

#: Zones with one fixed offset (minutes) over 2020-2030: the reference needs no tz database.
FIXED_ZONES = {
    "UTC": 0,
    "Asia/Jakarta": 420,
    "Asia/Kolkata": 330,
    "Asia/Kathmandu": 345,
    "America/Panama": -300,
    "Pacific/Kiritimati": 840,
    "Pacific/Pago_Pago": -660,
}
#: Zones with DST, including a 30-minute shift (Lord Howe) and midnight jumps (Santiago).
DST_ZONES = ("America/New_York", "Europe/Berlin", "America/Santiago", "Australia/Lord_Howe")


def _transitions(zone: str, year: int) -> list[int]:
    """UTC minutes at (or just after) each offset change of `zone` in `year`, by hourly scan."""
    tz = ZoneInfo(zone)
    first = datetime(year, 1, 1, tzinfo=UTC)
    found: list[int] = []
    previous = first.astimezone(tz).utcoffset()
    for hour in range(1, 366 * 24):
        moment = first + timedelta(hours=hour)
        offset = moment.astimezone(tz).utcoffset()
        if offset != previous:
            found.append((moment - EPOCH) // timedelta(minutes=1))
            previous = offset
    return found


TRANSITIONS = {zone: _transitions(zone, 2025) + _transitions(zone, 2026) for zone in DST_ZONES}


def _fixed_boundary(zone: str, ordinal: int, minute: int) -> int:
    """UTC minute of local `ordinal` + `minute` in a fixed-offset zone."""
    return (ordinal - EPOCH_ORDINAL) * 1440 + minute - FIXED_ZONES[zone]


@lru_cache(maxsize=65536)
def _scanned_boundary(zone: str, ordinal: int, minute: int) -> int:
    """First UTC minute whose local reading is local `ordinal` + `minute` or later (SPEC §4)."""
    tz = ZoneInfo(zone)
    wanted = datetime.fromordinal(ordinal) + timedelta(minutes=minute)

    def reading(utc_minute: int) -> datetime:
        return (EPOCH + timedelta(minutes=utc_minute)).astimezone(tz).replace(tzinfo=None)

    guess = (wanted - datetime(1970, 1, 1)) // timedelta(minutes=1)
    offset = reading(guess) - (EPOCH + timedelta(minutes=guess)).replace(tzinfo=None)
    utc_minute = guess - offset // timedelta(minutes=1) - 180
    while reading(utc_minute) >= wanted:
        utc_minute -= 180
    while reading(utc_minute) < wanted:
        utc_minute += 1
    return utc_minute


Spec = tuple[dict[str, list[str]], set[int], dict[int, list[str]]]
Scenario = tuple[str, int, Spec]


def _local_hours(spec: Spec, ordinal: int) -> list[tuple[int, int]]:
    """The (start, end) minutes a random calendar spec gives to one local date."""
    weekly, holidays, overrides = spec
    if ordinal in overrides:
        texts = overrides[ordinal]
    elif ordinal in holidays:
        texts = []
    else:
        texts = weekly.get(WEEKDAYS[date.fromordinal(ordinal).weekday()], [])
    hours = []
    for text in texts:
        first, last = text.split("-")
        hours.append((_minutes(first), _minutes(last)))
    return hours


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _open_minutes(zone: str, spec: Spec, first: int, count: int) -> bytearray:
    """Openness (1/0) of each UTC minute in [first, first + count) under the reference rule."""
    boundary = _fixed_boundary if zone in FIXED_ZONES else _scanned_boundary
    flags = bytearray(count)
    first_date = first // 1440 + EPOCH_ORDINAL
    last_date = (first + count) // 1440 + EPOCH_ORDINAL
    for ordinal in range(first_date - 2, last_date + 3):
        for start, end in _local_hours(spec, ordinal):
            opening = boundary(zone, ordinal, start)
            closing = (
                boundary(zone, ordinal + 1, 0) if end == 1440 else boundary(zone, ordinal, end)
            )
            low, high = max(opening, first), min(closing, first + count)
            for minute in range(low, high):
                flags[minute - first] = 1
    return flags


def _fmt(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


#: Quarter-hour points of a day, weighted towards the small hours and late evening, where the
#: DST transitions of the test zones (02:00, 03:00, midnight) fall.
quarter = st.one_of(st.integers(0, 96), st.integers(0, 13), st.integers(88, 96))

#: One day's intervals: sorted quarter-hour points paired up (touching pairs allowed).
day_hours = (
    st.lists(quarter, max_size=6)
    .map(sorted)
    .map(
        lambda points: [
            f"{_fmt(points[i] * 15)}-{_fmt(points[i + 1] * 15)}"
            for i in range(0, len(points) - 1, 2)
            if points[i] < points[i + 1]
        ]
    )
)


def _local_ordinal(zone: str, utc_minute: int) -> int:
    """Local date (ordinal) in `zone` at a UTC minute."""
    moment = (EPOCH + timedelta(minutes=utc_minute)).astimezone(ZoneInfo(zone))
    return moment.date().toordinal()


@st.composite
def scenarios(draw: st.DrawFn, zones: list[str], dst: bool) -> Scenario:
    """A random calendar around a random minute-aligned start in one of `zones`."""
    zone = draw(st.sampled_from(zones))
    if dst:
        transition = draw(st.sampled_from(TRANSITIONS[zone]))
        start = transition + draw(st.integers(-3 * 1440, 1440))
    else:
        start = draw(
            st.integers(at("2024-01-01T00:00:00Z") // MIN, at("2027-12-31T00:00:00Z") // MIN)
        )
    weekly = {day: draw(day_hours) for day in WEEKDAYS if draw(st.booleans())}
    base = start // 1440 + EPOCH_ORDINAL
    near = st.integers(base - 2, base + 9)
    holidays = draw(st.sets(near, max_size=3))
    overrides = draw(st.dictionaries(near, day_hours, max_size=3))
    if dst and draw(st.booleans()):
        # Give the transition's own local date (or the one before: Santiago jumps at midnight)
        # hours of its own, so boundaries land in gaps and folds often.
        local = _local_ordinal(zone, transition) - draw(st.integers(0, 1))
        overrides = {**overrides, local: draw(day_hours)}
    return zone, start, (weekly, holidays, overrides)


def _build(zone: str, spec: Spec) -> Calendar | None:
    """The calendar for a spec, or None when it is (rightly) refused as never open."""
    weekly, holidays, overrides = spec
    try:
        return Calendar(
            zone,
            weekly,
            holidays=[date.fromordinal(o).isoformat() for o in sorted(holidays)],
            overrides={date.fromordinal(o).isoformat(): hours for o, hours in overrides.items()},
        )
    except CalendarError:
        assert not any(weekly.values())
        around = (min(overrides, default=EPOCH_ORDINAL) - EPOCH_ORDINAL - 2) * 1440
        assert not any(_open_minutes(zone, ({}, set(), overrides), around, 20 * 1440))
        return None


WINDOW = 8 * 1440


def _check_against_reference(data: st.DataObject, zone: str, start: int, spec: Spec) -> None:
    """Compare add, counted, is_open and next_opening with the reference over a window."""
    cal = _build(zone, spec)
    if cal is None:
        return
    flags = _open_minutes(zone, spec, start, WINDOW)
    begin = start * MIN

    # Edges matter most: bias the drawn amounts and instants towards openings and closings.
    edges = [i for i in range(1, WINDOW) if flags[i] != flags[i - 1]]
    around = [i + d for i in edges for d in (-1, 0) if i + d < WINDOW]

    def pick(uniform: st.SearchStrategy[int], near: list[int], label: str) -> int:
        choices = st.one_of(uniform, st.sampled_from(near)) if near else uniform
        return data.draw(choices, label=label)

    # add() from the window's start and from a second origin, often just inside or outside an
    # interval, for an amount that often runs out exactly at a closing.
    for origin in (0, pick(st.integers(0, WINDOW - 1), around, "origin minute")):
        later_edges = [sum(flags[origin:i]) for i in edges if i > origin]
        wanted = pick(st.integers(0, sum(flags[origin:])), later_edges, "counted minutes")
        expected = origin
        if wanted:
            seen = 0
            for index in range(origin, WINDOW):
                seen += flags[index]
                if seen == wanted:
                    expected = index + 1
                    break
        assert cal.add(begin + origin * MIN, wanted * MIN) == begin + expected * MIN

    end = pick(st.integers(0, WINDOW), edges, "end minute")
    assert cal.counted(begin, begin + end * MIN) == sum(flags[:end]) * MIN

    probe = pick(st.integers(0, WINDOW - 1), around, "probe minute")
    assert cal.is_open(begin + probe * MIN) == bool(flags[probe])
    following = flags.find(1, probe)
    if following >= 0:
        assert cal.next_opening(begin + probe * MIN) == begin + following * MIN


@settings(max_examples=150, deadline=None)
@given(scenario=scenarios(sorted(FIXED_ZONES), dst=False), data=st.data())
def test_matches_reference_in_zones_without_dst(scenario: Scenario, data: st.DataObject) -> None:
    """add, counted, is_open and next_opening agree with a minute-stepping reference (no DST)."""
    _check_against_reference(data, *scenario)


@settings(max_examples=150, deadline=None)
@given(scenario=scenarios(list(DST_ZONES), dst=True), data=st.data())
def test_matches_reference_across_dst_transitions(scenario: Scenario, data: st.DataObject) -> None:
    """The same agreement holds around DST gaps and folds, with the reference applying SPEC §4."""
    _check_against_reference(data, *scenario)


@settings(max_examples=200, deadline=None)
@given(
    scenario=scenarios([*DST_ZONES, "Asia/Jakarta", "America/Panama"], dst=False),
    jitter=st.integers(0, MIN - 1),
    data=st.data(),
)
def test_add_and_counted_are_inverse(scenario: Scenario, jitter: int, data: st.DataObject) -> None:
    """counted(start, add(start, n)) == n, and the deadline is the first instant reaching n."""
    zone, start, spec = scenario
    weekly_minutes = sum(
        _minutes(text.split("-")[1]) - _minutes(text.split("-")[0])
        for texts in spec[0].values()
        for text in texts
    )
    assume(weekly_minutes > 0)
    cal = _build(zone, spec)
    assert cal is not None
    # Up to ~40 weeks of open time: long enough to cross many days and 32-day blocks.
    amount = data.draw(st.integers(0, 40 * weekly_minutes * MIN), label="amount")
    split = data.draw(st.integers(0, 300 * DAY), label="split")
    begin = start * MIN + jitter
    due = cal.add(begin, amount)
    assert due >= begin
    assert cal.counted(begin, due) == amount
    if amount:
        assert cal.counted(begin, due - 1) == amount - 1
        assert cal.is_open(due - 1)
    middle = begin + split
    total = cal.counted(begin, due + split)
    assert total == cal.counted(begin, middle) + cal.counted(middle, due + split)
    assert cal.add(begin, cal.counted(begin, middle)) <= middle
