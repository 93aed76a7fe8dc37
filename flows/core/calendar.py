"""Business time (SPEC §2): weekly open hours in an IANA time zone, and the 24/7 wall clock.

Both classes implement `flows.core.model.BusinessTime`. Instants are integer epoch milliseconds
UTC and durations are integer milliseconds; every result is exact to the millisecond.

Semantics of `Calendar`:

- Each local date's hours come from its override if it has one, else nothing if it is a holiday,
  else its weekday's intervals. An override therefore wins over a holiday on the same date.
- An interval `HH:MM-HH:MM` is open from its start (included) to its end (excluded); `24:00` as
  an end is the next local midnight. Intervals that touch form one open stretch.
- DST (SPEC §4): a boundary of local date D at time T is the first instant at which the local
  clock shows D T or later. A time skipped when clocks go forward maps to the transition instant
  (02:30 on a night that jumps 02:00→03:00 opens at 03:00); a time repeated when clocks go back
  is its first occurrence, so `01:00-01:45` on that night is one 45-minute stretch.
- `add(start, counted)` is the first instant t >= start at which the open time in [start, t]
  equals `counted`: a start in closed time counts from the next opening, and a target used up
  exactly at a closing instant is due at that closing instant.

Each UTC day's open stretches are computed once (with `zoneinfo`) and cached as sorted integer
boundaries with running totals, so `add`, `counted`, `is_open` and `next_opening` do only
integer arithmetic and bisection once a day has been seen; whole days and 32-day blocks whose
open time is smaller than what is left are skipped by their cached totals.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flows.core.native import mypyc_attr
from flows.exceptions import CalendarError

__all__ = ["WALL_CLOCK", "WEEKDAYS", "Calendar", "WallClock"]

#: Weekday keys of `Calendar`'s `weekly` mapping, Monday first.
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_MINUTE_MS: Final = 60_000
_DAY_MS: Final = 86_400_000
_DAY_MINUTES: Final = 1_440
_BLOCK_SHIFT: Final = 5
_BLOCK_DAYS: Final = 1 << _BLOCK_SHIFT
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_MAX_ORDINAL: Final = date.max.toordinal()
_ONE_MS: Final = timedelta(milliseconds=1)
_INTERVAL_RE: Final = re.compile(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})")
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

#: Local intervals of one date, as (start, end) minutes after local midnight, sorted.
_Hours = tuple[tuple[int, int], ...]
#: One UTC day: boundaries (start0, end0, start1, ...), open ms before each boundary, total.
_Day = tuple[tuple[int, ...], tuple[int, ...], int]


@mypyc_attr(allow_interpreted_subclasses=True)
class WallClock:
    """Wall-clock time, 24/7: every millisecond counts.

    The business time of targets without a calendar and of the wall-clock metrics (`service_window`,
    `follow_up`). Stateless; one shared instance, `WALL_CLOCK`, is compared by identity.
    """

    __slots__ = ()

    def add(self, start: int, counted: int) -> int:
        """Return `start + counted` (`start` when `counted <= 0`)."""
        return start + counted if counted > 0 else start

    def counted(self, start: int, end: int) -> int:
        """Return `end - start`, or 0 when `end <= start`.

        Args:
            start: Epoch ms UTC.
            end: Epoch ms UTC.

        Returns:
            Milliseconds.
        """
        return end - start if end > start else 0

    def is_open(self, at: int) -> bool:
        """Return True: the wall clock never closes."""
        return True

    def next_opening(self, at: int) -> int | None:
        """Return `at`: the wall clock is always open (never None)."""
        return at

    def __repr__(self) -> str:
        return "WallClock()"


#: The shared 24/7 business time, for targets without a calendar.
WALL_CLOCK: Final = WallClock()


@mypyc_attr(allow_interpreted_subclasses=True)
class Calendar:
    """Open hours per weekday in a time zone, with holidays and per-date overrides.

    Args:
        timezone: IANA zone name, e.g. `Asia/Jakarta`.
        weekly: weekday key (`mon`..`sun`) to its `"HH:MM-HH:MM"` intervals; a missing day or
            `[]` is closed, `["00:00-24:00"]` is open all day.
        holidays: local ISO dates (`YYYY-MM-DD`) closed all day.
        overrides: local ISO date to that date's intervals, replacing its weekday's (and
            winning over a holiday on the same date); `[]` closes the date.

    Raises:
        CalendarError: on an unknown zone or weekday key, a malformed interval or date, an
            interval whose end is not after its start, overlapping intervals of one day, or a
            calendar that is never open. The message names the offending value.
    """

    __slots__ = (
        "_blocks",
        "_dates",
        "_days",
        "_end",
        "_holidays",
        "_overrides",
        "_weekly",
        "_zone",
    )

    def __init__(
        self,
        timezone: str,
        weekly: Mapping[str, Sequence[str]],
        holidays: Sequence[str | date] = (),
        overrides: Mapping[str, Sequence[str]] | Mapping[date, Sequence[str]] | None = None,
    ) -> None:
        self._zone = _load_zone(timezone)
        self._weekly = _parse_weekly(weekly)
        self._holidays = frozenset(_parse_date(value, "holiday") for value in _items(holidays))
        self._overrides: dict[int, _Hours] = {}
        for key, hours in (overrides or {}).items():
            ordinal = _parse_date(key, "override date")
            if ordinal in self._overrides:
                msg = f"override date {key!r} is given twice"
                raise CalendarError(msg)
            self._overrides[ordinal] = _parse_hours(hours, f"override {key}")
        self._dates: dict[int, tuple[tuple[int, int], ...]] = {}
        self._days: dict[int, _Day] = {}
        self._blocks: dict[int, int] = {}
        # Past `_end` a calendar with no weekly hours never opens again; None = always reopens.
        self._end: int | None = None
        if not any(self._weekly):
            ends = [spans[-1][1] for o in self._overrides if (spans := self._date_spans(o))]
            if not ends:
                msg = f"calendar in {timezone} is never open: no weekly hours and no open override"
                raise CalendarError(msg)
            self._end = max(ends)

    @property
    def timezone(self) -> str:
        """The IANA zone name the calendar's hours are local to."""
        return self._zone.key

    def __repr__(self) -> str:
        return f"Calendar(timezone={self._zone.key!r})"

    # -- BusinessTime -------------------------------------------------------------------------

    def add(self, start: int, counted: int) -> int:
        """Return the first instant t >= `start` at which `counted` open ms lie in [start, t].

        SPEC §2: a start in closed time counts from the next opening; a target used up exactly at a
        closing instant is due at that instant (not at the next opening). `counted <= 0` returns
        `start`.

        Args:
            start: Epoch ms UTC the counting starts at.
            counted: Open milliseconds to count.

        Returns:
            Epoch ms UTC.

        Raises:
            CalendarError: the calendar closes for good before `counted` ms have been counted.
        """
        if counted <= 0:
            return start
        day = start // _DAY_MS
        bounds = (self._days.get(day) or self._build_day(day))[0]
        remaining = counted
        i = bisect_right(bounds, start)
        if i & 1:
            left = bounds[i] - start
            if remaining <= left:
                return start + remaining
            remaining -= left
            i += 1
        n = len(bounds)
        while i < n:
            opening = bounds[i]
            length = bounds[i + 1] - opening
            if remaining <= length:
                return opening + remaining
            remaining -= length
            i += 2
        return self._add_from(day + 1, remaining, start, counted)

    def counted(self, start: int, end: int) -> int:
        """Return the open ms in [start, end) (0 when `end <= start`).

        The inverse of `add` for open spans: `counted(s, add(s, n)) == n` for every `n > 0` the
        calendar can count.

        Args:
            start: Epoch ms UTC.
            end: Epoch ms UTC.

        Returns:
            Open milliseconds (holidays, closed days and the hours between intervals excluded).
        """
        if end <= start:
            return 0
        days = self._days
        first = start // _DAY_MS
        last = (end - 1) // _DAY_MS
        data = days.get(first) or self._build_day(first)
        if first == last:
            return _before(data, end) - _before(data, start)
        total = data[2] - _before(data, start)
        day = first + 1
        while day < last:
            if not day & (_BLOCK_DAYS - 1) and day + _BLOCK_DAYS <= last:
                total += self._block_total(day >> _BLOCK_SHIFT)
                day += _BLOCK_DAYS
                continue
            total += (days.get(day) or self._build_day(day))[2]
            day += 1
        return total + _before(days.get(last) or self._build_day(last), end)

    def is_open(self, at: int) -> bool:
        """Return whether `at` lies in an open interval (starts included, ends excluded).

        Args:
            at: Epoch ms UTC.
        """
        day = at // _DAY_MS
        bounds = (self._days.get(day) or self._build_day(day))[0]
        return bool(bisect_right(bounds, at) & 1)

    def next_opening(self, at: int) -> int | None:
        """Return `at` if open, else the next opening (None if the calendar never opens again).

        Used for the `after_hours` breach cause (SPEC §4): a clock started while closed whose breach
        comes no later than 2 h after this instant.

        Args:
            at: Epoch ms UTC.

        Returns:
            Epoch ms UTC, or None past the last open override of a calendar without weekly hours.
        """
        day = at // _DAY_MS
        bounds = (self._days.get(day) or self._build_day(day))[0]
        i = bisect_right(bounds, at)
        if i & 1:
            return at
        if i < len(bounds):
            return bounds[i]
        last_day = None if self._end is None else (self._end - 1) // _DAY_MS
        day += 1
        while last_day is None or day <= last_day:
            if not day & (_BLOCK_DAYS - 1) and not self._block_total(day >> _BLOCK_SHIFT):
                day += _BLOCK_DAYS
                continue
            bounds = (self._days.get(day) or self._build_day(day))[0]
            if bounds:
                return bounds[0]
            day += 1
        return None

    # -- internals ----------------------------------------------------------------------------

    def _add_from(self, day: int, remaining: int, start: int, counted: int) -> int:
        """Finish `add` from the start of UTC day `day` with `remaining` (> 0) ms still to count.

        Skips whole 32-day blocks and days whose open time is less than what is left.

        Raises:
            CalendarError: the calendar never opens again before `remaining` is used up; the message
                names the original `start` and `counted`.
        """
        last_day = None if self._end is None else (self._end - 1) // _DAY_MS
        days = self._days
        while last_day is None or day <= last_day:
            if not day & (_BLOCK_DAYS - 1):
                block = self._block_total(day >> _BLOCK_SHIFT)
                if remaining > block:
                    remaining -= block
                    day += _BLOCK_DAYS
                    continue
            bounds, _, total = days.get(day) or self._build_day(day)
            if remaining > total:
                remaining -= total
                day += 1
                continue
            for i in range(0, len(bounds), 2):
                opening = bounds[i]
                length = bounds[i + 1] - opening
                if remaining <= length:
                    return opening + remaining
                remaining -= length
        msg = (
            f"calendar in {self._zone.key} never opens after {_iso(self._end or start)}: "
            f"{counted} ms cannot be counted from {_iso(start)}"
        )
        raise CalendarError(msg)

    def _block_total(self, block: int) -> int:
        """Return the open ms of the 32 UTC days starting at day `block * 32` (cached)."""
        total = self._blocks.get(block)
        if total is None:
            first = block << _BLOCK_SHIFT
            total = 0
            for day in range(first, first + _BLOCK_DAYS):
                total += (self._days.get(day) or self._build_day(day))[2]
            self._blocks[block] = total
        return total

    def _build_day(self, day: int) -> _Day:
        """Compute and cache UTC day `day`'s open stretches, clipped to the day.

        A UTC day can hold parts of three local dates; touching or overlapping stretches are merged,
        so the boundaries alternate opening, closing and are strictly increasing.

        Returns:
            The boundaries, the open ms before each boundary, and the day's total open ms.
        """
        low = day * _DAY_MS
        high = low + _DAY_MS
        ordinal = day + _EPOCH_ORDINAL
        bounds: list[int] = []
        # A local date overlaps at most the UTC days before, of and after its own number.
        for local in (ordinal - 1, ordinal, ordinal + 1):
            for span_start, span_end in self._date_spans(local):
                opening = max(span_start, low)
                closing = min(span_end, high)
                if opening >= closing:
                    continue
                if bounds and opening <= bounds[-1]:
                    bounds[-1] = max(bounds[-1], closing)
                else:
                    bounds += (opening, closing)
        before: list[int] = []
        total = 0
        for i in range(0, len(bounds), 2):
            before.append(total)
            total += bounds[i + 1] - bounds[i]
            before.append(total)
        data = (tuple(bounds), tuple(before), total)
        self._days[day] = data
        return data

    def _date_spans(self, ordinal: int) -> tuple[tuple[int, int], ...]:
        """Return local date `ordinal`'s open intervals as UTC ms (cached; empty ones dropped)."""
        spans = self._dates.get(ordinal)
        if spans is None:
            hours = self._overrides.get(ordinal)
            if hours is None:
                hours = () if ordinal in self._holidays else self._weekly[(ordinal - 1) % 7]
            found = []
            for first, last in hours:
                opening = self._boundary(ordinal, first)
                closing = self._boundary(ordinal, last)
                if opening < closing:
                    found.append((opening, closing))
            spans = tuple(found)
            self._dates[ordinal] = spans
        return spans

    def _boundary(self, ordinal: int, minute: int) -> int:
        """Return the first instant whose local reading is date `ordinal`, `minute` or later.

        SPEC §4 (DST): a time skipped when clocks go forward maps to the transition instant; a time
        repeated when clocks go back is its first occurrence. `minute == 1440` is the next date's
        midnight.

        Raises:
            CalendarError: the date is outside what `datetime` can represent, or the zone's data
                cannot place the time.
        """
        if minute == _DAY_MINUTES:
            ordinal += 1
            minute = 0
        if not 1 <= ordinal <= _MAX_ORDINAL:
            msg = f"instant out of the supported date range in calendar {self._zone.key}"
            raise CalendarError(msg)
        naive = datetime.fromordinal(ordinal) + timedelta(minutes=minute)
        wall = (ordinal - _EPOCH_ORDINAL) * _DAY_MS + minute * _MINUTE_MS
        # fold=0 is the first occurrence of a repeated time, which is the rule's answer.
        first = wall - _offset_ms(naive.replace(tzinfo=self._zone))
        if self._wall(first) == wall:
            return first
        # The time was skipped: the answer is the transition, which lies between the two
        # readings of the skipped time; bisect to the millisecond.
        second = wall - _offset_ms(naive.replace(tzinfo=self._zone, fold=1))
        low, high = min(first, second), max(first, second)
        if self._wall(low) >= wall or self._wall(high) < wall:
            msg = f"cannot place local time {naive.isoformat()} in {self._zone.key}"
            raise CalendarError(msg)
        while high - low > 1:
            middle = (low + high) // 2
            if self._wall(middle) >= wall:
                high = middle
            else:
                low = middle
        return high

    def _wall(self, instant: int) -> int:
        """Return the local wall-clock reading at `instant`, as ms since the local epoch."""
        local = (_EPOCH + timedelta(milliseconds=instant)).astimezone(self._zone)
        return instant + _offset_ms(local)


def _offset_ms(moment: datetime) -> int:
    """Return the UTC offset of an aware datetime in ms."""
    offset = moment.utcoffset()
    return 0 if offset is None else offset // _ONE_MS


def _iso(instant: int) -> str:
    """Format an instant for error messages."""
    return (_EPOCH + timedelta(milliseconds=instant)).isoformat().replace("+00:00", "Z")


def _before(data: _Day, at: int) -> int:
    """Return the open ms of a UTC day before `at` (`at` within or at the end of that day)."""
    bounds, before, _ = data
    i = bisect_right(bounds, at)
    if not i:
        return 0
    if i & 1:
        return before[i - 1] + at - bounds[i - 1]
    return before[i - 1]


def _load_zone(name: object) -> ZoneInfo:
    """Return the IANA zone `name`, or raise CalendarError naming it."""
    if not isinstance(name, str) or not name:
        msg = f"time zone must be an IANA name, got {name!r}"
        raise CalendarError(msg)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        msg = f"unknown time zone {name!r}"
        raise CalendarError(msg) from error


def _items(values: object) -> Iterable[object]:
    """Return a list-like calendar value, refusing a bare string (a common YAML slip)."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | set | frozenset):
        msg = f"expected a list, got {values!r}"
        raise CalendarError(msg)
    return values


def _parse_weekly(weekly: object) -> tuple[_Hours, ...]:
    """Return the hours of each weekday, Monday first.

    Raises:
        CalendarError: `weekly` is not a mapping, names an unknown weekday, or a day's intervals are
            invalid.
    """
    if not isinstance(weekly, Mapping):
        msg = f"weekly hours must map weekday keys to intervals, got {weekly!r}"
        raise CalendarError(msg)
    hours: list[_Hours] = [()] * 7
    for key, intervals in weekly.items():
        if key not in WEEKDAYS:
            msg = f"unknown weekday {key!r} (expected one of {', '.join(WEEKDAYS)})"
            raise CalendarError(msg)
        hours[WEEKDAYS.index(key)] = _parse_hours(intervals, key)
    return tuple(hours)


def _parse_hours(intervals: object, where: str) -> _Hours:
    """Parse one day's `"HH:MM-HH:MM"` intervals into sorted, non-overlapping minute pairs.

    Intervals that touch (`08:00-12:00`, `12:00-13:00`) are allowed and count as one stretch; None
    or `[]` is a closed day.

    Raises:
        CalendarError: not a list, a malformed interval, or overlapping intervals; the message
            starts with `where`.
    """
    if intervals is None:
        return ()
    try:
        values = _items(intervals)
    except CalendarError as error:
        msg = f"{where}: intervals must be a list of 'HH:MM-HH:MM', got {intervals!r}"
        raise CalendarError(msg) from error
    parsed = sorted(_parse_interval(value, where) for value in values)
    for (_, end), (start, _) in zip(parsed, parsed[1:], strict=False):
        if start < end:
            msg = f"{where}: overlapping intervals {_fmt(parsed)}"
            raise CalendarError(msg)
    return tuple(parsed)


def _parse_interval(value: object, where: str) -> tuple[int, int]:
    """Parse `"HH:MM-HH:MM"` into minutes after local midnight (`24:00` only as the end)."""
    match = _INTERVAL_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        msg = f"{where}: bad interval {value!r} (expected 'HH:MM-HH:MM')"
        raise CalendarError(msg)
    sh, sm, eh, em = (int(part) for part in match.groups())
    if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em):
        msg = f"{where}: bad time in interval {value!r} (00:00..23:59, or 24:00 as an end)"
        raise CalendarError(msg)
    start, end = sh * 60 + sm, eh * 60 + em
    if end <= start:
        msg = f"{where}: interval {value!r} must end after it starts"
        raise CalendarError(msg)
    return start, end


def _parse_date(value: object, what: str) -> int:
    """Parse a local ISO date (`YYYY-MM-DD`, or a `date` from YAML) into its ordinal.

    Raises:
        CalendarError: the value is not a valid date; the message names `what` and the value.
    """
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.toordinal()
    if isinstance(value, str) and _DATE_RE.fullmatch(value):
        try:
            return date.fromisoformat(value).toordinal()
        except ValueError:
            pass
    msg = f"bad {what} {value!r} (expected a date YYYY-MM-DD)"
    raise CalendarError(msg)


def _fmt(hours: Iterable[tuple[int, int]]) -> str:
    """Format minute pairs back as `HH:MM-HH:MM` for error messages."""
    return ", ".join(f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}" for s, e in hours)
