"""The four reports: weekly scorecard, daily digest, monthly breach causes, target baseline.

Each builder reads clock rows through a `ReportStore` and returns a `Report` of formatted cells.
Periods are calendar days, ISO weeks (from Monday) and months in one time zone, UTC unless a
report is given another (`tz`); instants are shown in that zone. The rules, shared by every
report:

* A clock counts once, by its latest state (`<prefix>clocks`): **met**, **breached** (breached and
  not cancelled: `breached`, `stopped`, `closed`), **cancelled** (left out), or still **open**.
  Compliance = met / (met + breached), in per cent with one decimal (SPEC §6).
* Time taken (response time, "time to ...") is `elapsed_s` of a fulfilled clock (`met`, or
  `stopped` after its breach): counted seconds, business hours and pauses applied.
* Percentiles interpolate linearly between the two nearest ranks (as `numpy.percentile` and
  `statistics.quantiles(method="inclusive")`).
* A clock belongs to the agent on its latest record.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Final

from flows.core.timefmt import format_instant
from flows.reports.data import ClockRow, ReportStore
from flows.reports.render import Report, Section

__all__ = [
    "CANDIDATE_FACTORS",
    "TOO_EASY_PCT",
    "TOO_HARD_PCT",
    "baseline_report",
    "causes_report",
    "daily_report",
    "percentile",
    "scorecard_report",
]

#: Candidate targets of the baseline report, as multiples of the current target.
CANDIDATE_FACTORS: Final = (0.5, 0.75, 1.0, 1.5, 2.0)
#: Compliance at or above this (per cent) suggests the target may be too easy.
TOO_EASY_PCT: Final = 98.0
#: Compliance below this (per cent) suggests the target may be too hard.
TOO_HARD_PCT: Final = 85.0
_TOP: Final = 3
_REPLY_METRICS: Final = ("first_response", "next_response")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


# -- numbers and cells -------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """Return the `p`-th quantile (0..1) of `values`, interpolating linearly; None if empty.

    The rank is `(n - 1) * p` in the sorted values; between two ranks the result lies on the
    straight line between their values, so `p=0` is the minimum, `p=1` the maximum and `p=0.5`
    of an even count the mean of the middle two (as `numpy.percentile`'s default).

    Args:
        values: the sample, in any order (not modified).
        p: the quantile, from 0 to 1.

    Returns:
        The quantile, in the unit of `values`; None for an empty sample.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _pct(part: int, whole: int) -> float | None:
    """Return `part` of `whole` in per cent; None when `whole` is 0 (no ratio, not 0 %)."""
    return None if whole == 0 else 100.0 * part / whole


def _num(value: float | None) -> str:
    """Format a number with one decimal, or `-` when there is none."""
    return "-" if value is None else f"{value:.1f}"


def _change(now: float | None, before: float | None) -> str:
    """Format `now - before` with its sign and one decimal, or `-` if either is missing."""
    if now is None or before is None:
        return "-"
    return f"{now - before:+.1f}"


def _when(ms: int | None, tz: tzinfo = UTC) -> str:
    """Format an epoch-ms instant in `tz` (ISO 8601, milliseconds), or `-` for None.

    In UTC it is the SPEC's `...Z` form; in another zone it carries the zone's offset.
    """
    if ms is None:
        return "-"
    if tz is UTC or _zone(tz) in ("UTC", "Etc/UTC"):
        return format_instant(ms)
    return _local(ms, tz).isoformat(timespec="milliseconds")


def _local(ms: int, tz: tzinfo) -> datetime:
    """Return an epoch-ms instant as an aware datetime in `tz`."""
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(tz)


def _zone(tz: tzinfo) -> str:
    """Return the zone's name for headers: its IANA key if it has one, else its abbreviation."""
    return str(getattr(tz, "key", None) or tz.tzname(None) or tz)


def _name(value: str | None) -> str:
    """Return a cell for an optional name: the name, or `(none)`."""
    return "(none)" if value is None else value


def day_start(day: date, tz: tzinfo = UTC) -> int:
    """Return the start of `day` (local midnight in `tz`) in epoch ms.

    Args:
        day: the calendar day.
        tz: the zone whose midnight starts it; UTC by default.

    Returns:
        The instant, epoch ms UTC. Days are half-open: `[day_start(d), day_start(d + 1))`, which
        is 23 or 25 hours long on a daylight-saving change.
    """
    midnight = datetime(day.year, day.month, day.day, tzinfo=tz)
    return (midnight - _EPOCH) // timedelta(milliseconds=1)


def _compliance(rows: Iterable[ClockRow]) -> tuple[int, int]:
    """Count `(met, breached)` clocks by `ClockRow.outcome`; cancelled and open ones in neither."""
    met = breached = 0
    for row in rows:
        outcome = row.outcome
        if outcome == "met":
            met += 1
        elif outcome == "breached":
            breached += 1
    return met, breached


def _by(rows: Iterable[ClockRow], key: Callable[[ClockRow], str]) -> dict[str, list[ClockRow]]:
    """Group rows by `key`, keeping their order within each group."""
    groups: dict[str, list[ClockRow]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return groups


def _compliance_rows(
    now: dict[str, list[ClockRow]], before: dict[str, list[ClockRow]] | None = None
) -> tuple[tuple[str, ...], ...]:
    """Return one row per group, sorted by name: name, met, breached, compliance %.

    With `before`, each row also gets the group's compliance % in `before` and the change in
    points; a group missing from `before` shows `-` for both.
    """
    out = []
    for name in sorted(now):
        met, breached = _compliance(now[name])
        pct = _pct(met, met + breached)
        row = [name, str(met), str(breached), _num(pct)]
        if before is not None:
            old_met, old_breached = _compliance(before.get(name, ()))
            old = _pct(old_met, old_met + old_breached)
            row += [_num(old), _change(pct, old)]
        out.append(tuple(row))
    return tuple(out)


def _breach_rows(rows: Iterable[ClockRow], tz: tzinfo) -> tuple[tuple[str, ...], ...]:
    """Return the breached clocks of `rows` as `_BREACH_HEADERS` rows, by deadline.

    Ties are ordered by conversation, cycle, metric and seq, so a report is reproducible.
    """
    breaches = sorted(
        (r for r in rows if r.outcome == "breached"),
        key=lambda r: (r.deadline_at or 0, r.conversation_id, r.cycle, r.metric, r.seq),
    )
    return tuple(
        (
            _when(r.deadline_at, tz),
            r.conversation_id,
            str(r.cycle),
            r.metric,
            str(r.seq),
            _name(r.agent_id),
            _num(r.target_s),
            _name(r.cause),
            r.status,
        )
        for r in breaches
    )


#: The metric of team stints (SPEC §4): one clock per team that owned the open cycle.
_STINT: Final = "team_ownership"
_OLA_HEADERS: Final = ("team", "stints", "met", "breached", "met %", "median budget %")


def _ola_rows(rows: Iterable[ClockRow]) -> tuple[tuple[str, ...], ...]:
    """Return the OLA per owning team of the team stints in `rows`, sorted by team.

    Each row: team, stints (not cancelled), met, breached, met % (met / (met + breached)) and
    the median `budget_pct` of the stints that ended (the per cent of the cycle's resolution
    target the stint used), `-` when none has one.
    """
    teams = _by(
        (r for r in rows if r.metric == _STINT and r.outcome != "cancelled"),
        lambda r: _name(r.team_id),
    )
    out = []
    for team in sorted(teams):
        stints = teams[team]
        met, breached = _compliance(stints)
        budgets = [r.budget_pct for r in stints if not r.open and r.budget_pct is not None]
        out.append(
            (
                team,
                str(len(stints)),
                str(met),
                str(breached),
                _num(_pct(met, met + breached)),
                _num(percentile(budgets, 0.5)),
            )
        )
    return tuple(out)


_OLA_NOTE: Final = (
    "Team stints (team_ownership): one per team that owned a cycle, counted for the team that "
    "owned it; budget % = the stint's counted time as a per cent of the cycle's resolution "
    "target, of the stints that ended."
)


_BREACH_HEADERS: Final = (
    "deadline",
    "conversation",
    "cycle",
    "metric",
    "seq",
    "agent",
    "target s",
    "cause",
    "status",
)


# -- scorecard ---------------------------------------------------------------------------------


def parse_week(text: str) -> date:
    """Return the Monday of an ISO week written `2026-W47`.

    Case and surrounding blanks are ignored (`2026-w47 ` is accepted). Week 1 is the week
    holding the year's first Thursday, so a week's Monday may fall in the previous year.

    Args:
        text: the week, `YYYY-Www`.

    Returns:
        The Monday of that week, a calendar date with no zone.

    Raises:
        ValueError: The text is not an ISO week.
    """
    try:
        year, week = text.strip().upper().split("-W")
        monday = date.fromisocalendar(int(year), int(week), 1)
    except ValueError:
        msg = f"{text!r} is not an ISO week; write it like 2026-W47"
        raise ValueError(msg) from None
    return monday


def scorecard_report(
    store: ReportStore,
    monday: date,
    agent: str | None = None,
    tz: tzinfo = UTC,
    required_attempts: Mapping[str, int] | None = None,
) -> Report:
    """The weekly scorecard of the team, or of one agent, for the week starting on `monday`.

    Clocks belong to the week in which they started. Sections: a summary (cycles assigned,
    response times, contact attempts, qualification, first-contact resolution), compliance per
    metric against the previous week, compliance per agent and the OLA per team (team
    scorecard only: `_ola_rows`, the team stints started in the week, each counted for the team
    that owned it) and every breach with its target.

    Contact attempts required: the sum of the minimum over the week's `contact_attempts`
    clocks, as stored with each clock; rows stored by 0.2 and earlier lack it and take it from
    `required_attempts` (each policy's `contact_attempts.min` by policy id) when given.

    First-contact resolution: a cycle whose `resolution` clock was fulfilled once (never
    reopened and resolved again) and that had no `next_response` clock (the customer never
    waited a second time), over the cycles resolved.

    Summary measures, over the week's clocks (of the agent, when one is given):

    * cycles assigned: distinct cycles with a clock whose latest record names an agent;
    * replies, average and p90 response s: fulfilled `first_response` and `next_response`
      clocks and their counted seconds, also for the previous week, and the p90's change;
    * contact attempts made: the sum of `attempts` of the `contact_attempts` clocks; leads
      with / short of the required attempts: those clocks met / breached;
    * leads qualified, disqualified, nurture: `qualification` clocks fulfilled by that lead
      status; leads in qualification: still open;
    * cycles resolved: fulfilled `resolution` clocks; won: those resolved with outcome `won`;
      conversion: won over resolved; first-contact resolutions as above;
    * compliance over every metric, the previous week's, and the change in points.

    Args:
        store: where the clock rows are read.
        monday: the first day of the week (any day is taken as the start of a 7-day week).
        agent: one agent's id, or None for the whole team.
        tz: the zone of the week's days and of the instants shown.
        required_attempts: each policy's minimum contact attempts by policy id, or None to
            show `-` for the attempts required.

    Returns:
        The report: the title names the week (and agent); percentages have one decimal and
        show `-` when nothing was decided.
    """
    week_start, week_end = day_start(monday, tz), day_start(monday + timedelta(days=7), tz)
    previous_start = day_start(monday - timedelta(days=7), tz)
    everyone = store.clocks(started_at=(previous_start, week_end))
    this_week = [r for r in everyone if r.started_at >= week_start]
    last_week = [r for r in everyone if r.started_at < week_start]

    def mine(rows: list[ClockRow]) -> list[ClockRow]:
        """Keep the rows of `agent` (all rows for the team scorecard)."""
        return rows if agent is None else [r for r in rows if r.agent_id == agent]

    rows, previous = mine(this_week), mine(last_week)
    resolved_times = store.resolutions_per_cycle(started_from=week_start, started_before=week_end)
    waited_again = {r.cycle_key for r in this_week if r.metric == "next_response"}

    cycles = {r.cycle_key for r in rows if r.agent_id is not None}
    replies = [r.elapsed_s for r in rows if r.metric in _REPLY_METRICS and r.fulfilled]
    average = sum(replies) / len(replies) if replies else None
    old_replies = [r.elapsed_s for r in previous if r.metric in _REPLY_METRICS and r.fulfilled]
    old_average = sum(old_replies) / len(old_replies) if old_replies else None
    p90, old_p90 = percentile(replies, 0.9), percentile(old_replies, 0.9)
    attempts = [r for r in rows if r.metric == "contact_attempts"]
    attempts_met, attempts_short = _compliance(attempts)
    decided = Counter(r.lead_status for r in rows if r.metric == "qualification" and r.fulfilled)
    in_progress = sum(1 for r in rows if r.metric == "qualification" and r.open)
    resolutions = [r for r in rows if r.metric == "resolution" and r.fulfilled]
    resolved = [r.cycle_key for r in resolutions]
    won = sum(1 for r in resolutions if r.resolved_as == "won")
    first_contact = sum(
        1 for key in resolved if resolved_times.get(key, 0) == 1 and key not in waited_again
    )
    minimums = [
        r.attempts_required
        if r.attempts_required is not None
        else (required_attempts or {}).get(r.policy_id or "")
        for r in attempts
    ]
    required = "-" if None in minimums else str(sum(m or 0 for m in minimums))
    met, breached = _compliance(rows)
    old_met, old_breached = _compliance(previous)
    overall = _pct(met, met + breached)
    overall_before = _pct(old_met, old_met + old_breached)

    summary = (
        ("cycles assigned", str(len(cycles))),
        ("replies", str(len(replies))),
        ("average response s", _num(average)),
        ("p90 response s", _num(p90)),
        ("average response s previous week", _num(old_average)),
        ("p90 response s previous week", _num(old_p90)),
        ("p90 response change s", _change(p90, old_p90)),
        ("contact attempts made", str(sum(r.attempts or 0 for r in attempts))),
        ("contact attempts required", required),
        ("leads with the required attempts", str(attempts_met)),
        ("leads short of the required attempts", str(attempts_short)),
        ("leads qualified", str(decided["qualified"])),
        ("leads disqualified", str(decided["disqualified"])),
        ("leads in nurture", str(decided["nurture"])),
        ("leads in qualification", str(in_progress)),
        ("cycles resolved", str(len(resolved))),
        ("cycles won", str(won)),
        ("conversion % (won / resolved)", _num(_pct(won, len(resolved)))),
        ("first-contact resolutions", str(first_contact)),
        ("first-contact resolution %", _num(_pct(first_contact, len(resolved)))),
        ("compliance %", _num(overall)),
        ("compliance % previous week", _num(overall_before)),
        ("change (points)", _change(overall, overall_before)),
    )
    sections = [
        Section("Summary", ("measure", "value"), summary),
        Section(
            "Compliance per metric",
            ("metric", "met", "breached", "compliance %", "previous week %", "change"),
            _compliance_rows(_by(rows, lambda r: r.metric), _by(previous, lambda r: r.metric)),
            () if rows else ("No clocks started this week.",),
        ),
    ]
    if agent is None:
        assigned = [r for r in rows if r.agent_id is not None]
        sections.append(
            Section(
                "Compliance per agent",
                ("agent", "met", "breached", "compliance %", "previous week %", "change"),
                _compliance_rows(
                    _by(assigned, lambda r: str(r.agent_id)),
                    _by(
                        [r for r in previous if r.agent_id is not None],
                        lambda r: str(r.agent_id),
                    ),
                ),
            )
        )
        ola = _ola_rows(rows)
        sections.append(
            Section(
                "OLA per team", _OLA_HEADERS, ola, (_OLA_NOTE,) if ola else ("No team stints.",)
            )
        )
    breaches = _breach_rows(rows, tz)
    sections.append(
        Section("Breaches", _BREACH_HEADERS, breaches, () if breaches else ("No breaches.",))
    )
    who = f"agent {agent}" if agent is not None else "the whole team"
    return Report(
        f"SLA scorecard, week of {monday.isoformat()}" + (f", agent {agent}" if agent else ""),
        (
            f"Clocks started from {_when(week_start, tz)} to {_when(week_end, tz)} "
            f"({_zone(tz)}), {who}.",
            "Trend: against the week before.",
        ),
        tuple(sections),
    )


# -- daily -------------------------------------------------------------------------------------


def daily_report(store: ReportStore, day: date, tz: tzinfo = UTC) -> Report:
    """The daily digest of `day` (a calendar day in `tz`).

    Sections: the breaches whose deadline fell that day; the clocks still running whose deadline
    falls the next day; compliance per agent of the clocks decided that day (met with their stop
    that day, breached with their deadline that day).

    A breach counts on the day its deadline fell, whenever its clock started; a met clock on
    the day it stopped. Breach rows show the deadline, the clock (conversation, cycle,
    metric, seq), the agent, the target in counted seconds, the cause and the latest status
    (`breached` while it runs, or how it ended). Due rows show the deadline, the clock, the
    agent and the status (`started`, `warning`, `paused`, ...).

    Args:
        store: where the clock rows are read.
        day: the day reported.
        tz: the zone of the day's bounds and of the instants shown.

    Returns:
        The report; a section with no rows says `None.` (or that no clock was decided).
    """
    start = day_start(day, tz)
    next_day = day_start(day + timedelta(days=1), tz)
    after = day_start(day + timedelta(days=2), tz)
    by_deadline = store.clocks(deadline_at=(start, after))
    stopped = store.clocks(stopped_at=(start, next_day))
    breaches = [r for r in by_deadline if r.deadline_at is not None and r.deadline_at < next_day]
    due = sorted(
        (
            r
            for r in by_deadline
            if r.open and not r.breached and r.deadline_at is not None and r.deadline_at >= next_day
        ),
        key=lambda r: (r.deadline_at or 0, r.conversation_id, r.metric, r.seq),
    )
    decided: dict[tuple[str, int, str, int], ClockRow] = {}
    for r in breaches:
        if r.outcome == "breached":
            decided[(r.conversation_id, r.cycle, r.metric, r.seq)] = r
    for r in stopped:
        if r.outcome == "met":
            decided[(r.conversation_id, r.cycle, r.metric, r.seq)] = r
    breach_rows = _breach_rows(breaches, tz)
    due_rows = tuple(
        (
            _when(r.deadline_at, tz),
            r.conversation_id,
            str(r.cycle),
            r.metric,
            str(r.seq),
            _name(r.agent_id),
            r.status,
        )
        for r in due
    )
    return Report(
        f"SLA daily digest, {day.isoformat()}",
        (f"Day {_when(start, tz)} to {_when(next_day, tz)} ({_zone(tz)}).",),
        (
            Section(
                "Breaches today", _BREACH_HEADERS, breach_rows, () if breach_rows else ("None.",)
            ),
            Section(
                "Clocks due tomorrow",
                ("deadline", "conversation", "cycle", "metric", "seq", "agent", "status"),
                due_rows,
                () if due_rows else ("None.",),
            ),
            Section(
                "Compliance per agent today",
                ("agent", "met", "breached", "compliance %"),
                _compliance_rows(_by(decided.values(), lambda r: _name(r.agent_id))),
                () if decided else ("No clock was decided today.",),
            ),
        ),
    )


# -- causes ------------------------------------------------------------------------------------


def parse_month(text: str) -> date:
    """Return the first day of a month written `2026-11`.

    Args:
        text: the month, `YYYY-MM` (surrounding blanks ignored).

    Returns:
        The first day of that month.

    Raises:
        ValueError: The text is not a month.
    """
    try:
        year, month = (int(part) for part in text.strip().split("-"))
        first = date(year, month, 1)
    except ValueError:
        msg = f"{text!r} is not a month; write it like 2026-11"
        raise ValueError(msg) from None
    return first


def causes_report(store: ReportStore, month: date, tz: tzinfo = UTC) -> Report:
    """Breaches of the month of `month` (any day of it) by cause, and where each concentrates.

    A breach belongs to the month of its deadline. For each cause, the agents, lead sources and
    hours of the day (in `tz`) of the deadline carrying most of its breaches (the top three of
    each, with their share of that cause). Then the OLA per team (`_ola_rows`) of the team
    stints that started in the month: which team held conversations up, and how much of the
    customer's resolution promise its stints used.

    Args:
        store: where the clock rows are read.
        month: any day of the month reported.
        tz: the zone of the month's bounds and of the hours.

    Returns:
        The report: causes by number of breaches (most first, ties by name), a clock with no
        cause counted as `(none)`; shares in per cent of all breaches, then of the cause.
    """
    first = month.replace(day=1)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    month_start, month_end = day_start(first, tz), day_start(following, tz)
    breaches = [
        r for r in store.clocks(deadline_at=(month_start, month_end)) if r.outcome == "breached"
    ]
    stints = [r for r in store.clocks(started_at=(month_start, month_end)) if r.metric == _STINT]
    ola = _ola_rows(stints)
    by_cause = _by(breaches, lambda r: _name(r.cause))
    total = len(breaches)
    order = sorted(by_cause, key=lambda c: (-len(by_cause[c]), c))
    cause_rows = tuple(
        (cause, str(len(by_cause[cause])), _num(_pct(len(by_cause[cause]), total)))
        for cause in order
    )
    dimensions: tuple[tuple[str, Callable[[ClockRow], str]], ...] = (
        ("agent", lambda r: _name(r.agent_id)),
        ("lead source", lambda r: _name(r.lead_source)),
        (f"hour ({_zone(tz)})", lambda r: f"{_local(r.deadline_at or 0, tz).hour:02d}:00"),
    )
    detail: list[tuple[str, ...]] = []
    for cause in order:
        rows = by_cause[cause]
        for dimension, key in dimensions:
            counts = Counter(key(r) for r in rows)
            top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:_TOP]
            detail += [
                (cause, dimension, value, str(n), _num(_pct(n, len(rows)))) for value, n in top
            ]
    return Report(
        f"SLA breaches by cause, {first.isoformat()[:7]}",
        (
            f"Breaches with a deadline from {_when(month_start, tz)} to {_when(month_end, tz)} "
            f"({_zone(tz)}).",
        ),
        (
            Section(
                "Breaches by cause",
                ("cause", "breaches", "share %"),
                cause_rows,
                (f"{total} breaches in all.",),
            ),
            Section(
                "Where each cause concentrates",
                ("cause", "by", "value", "breaches", "share of cause %"),
                tuple(detail),
            ),
            Section(
                "OLA per team",
                _OLA_HEADERS,
                ola,
                (_OLA_NOTE + " Stints started in the month.",) if ola else ("No team stints.",),
            ),
        ),
    )


# -- baseline ----------------------------------------------------------------------------------


def _usual_target(rows: Iterable[ClockRow]) -> float | None:
    """Return the most common `target_s` of `rows` (the smallest on a tie); None if none has one."""
    counts = Counter(r.target_s for r in rows if r.target_s is not None)
    if not counts:
        return None
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def baseline_report(store: ReportStore, last_day: date, days: int, tz: tzinfo = UTC) -> Report:
    """Time taken per metric and lead source over the `days` days up to `last_day`, vs targets.

    For each metric and lead source (clocks started in the period, `last_day` included, days in
    `tz`): the clocks decided (met or
    breached), the median, p80 and p90 of the time taken by fulfilled clocks, the current
    (most common) target, compliance, and the compliance the team would have had at a few
    candidate targets (`CANDIDATE_FACTORS` times the current one): the share of decided clocks
    fulfilled within it. A clock never fulfilled counts as missing every candidate. A note
    flags compliance of at least `TOO_EASY_PCT` ("target may be too easy") or below
    `TOO_HARD_PCT` ("target may be too hard").

    Columns: metric, lead source, clocks decided, median / p80 / p90 of the time taken
    (counted seconds, fulfilled clocks only), the current target (s), compliance %, one
    compliance % per candidate target, and the note. A group whose clocks were all breached
    and never fulfilled shows `-` for the times.

    Args:
        store: where the clock rows are read.
        last_day: the last day of the period, included.
        days: the period's length in days.
        tz: the zone of the days.

    Returns:
        The report, one row per metric and lead source (sorted), times in counted seconds; a
        clock with no lead source is grouped as `(none)`.
    """
    end = day_start(last_day + timedelta(days=1), tz)
    start = day_start(last_day + timedelta(days=1 - days), tz)
    rows = store.clocks(started_at=(start, end))
    groups: dict[tuple[str, str], list[ClockRow]] = defaultdict(list)
    for r in rows:
        if r.outcome in ("met", "breached"):
            groups[(r.metric, _name(r.lead_source))].append(r)
    out: list[tuple[str, ...]] = []
    for (metric, source), group in sorted(groups.items()):
        taken = [r.elapsed_s for r in group if r.fulfilled]
        met, breached = _compliance(group)
        compliance = _pct(met, met + breached)
        target = _usual_target(group)
        candidates = [
            "-"
            if target is None
            else _num(_pct(sum(1 for t in taken if t <= target * f), len(group)))
            for f in CANDIDATE_FACTORS
        ]
        note = ""
        if compliance is not None and compliance >= TOO_EASY_PCT:
            note = "target may be too easy"
        elif compliance is not None and compliance < TOO_HARD_PCT:
            note = "target may be too hard"
        out.append(
            (
                metric,
                source,
                str(len(group)),
                _num(percentile(taken, 0.5)),
                _num(percentile(taken, 0.8)),
                _num(percentile(taken, 0.9)),
                _num(target),
                _num(compliance),
                *candidates,
                note,
            )
        )
    factors = tuple(f"at {f:g}x target %" for f in CANDIDATE_FACTORS)
    return Report(
        f"SLA baseline, {days} days to {last_day.isoformat()}",
        (
            f"Clocks started from {_when(start, tz)} to {_when(end, tz)} ({_zone(tz)}); times "
            "in counted seconds.",
            f"Notes follow sales-ops advice: compliance >= {TOO_EASY_PCT:g} % suggests an easy "
            f"target, < {TOO_HARD_PCT:g} % a hard one.",
        ),
        (
            Section(
                "Time taken and compliance per metric and lead source",
                (
                    "metric",
                    "lead source",
                    "clocks",
                    "median s",
                    "p80 s",
                    "p90 s",
                    "target s",
                    "compliance %",
                    *factors,
                    "note",
                ),
                tuple(out),
                () if out else ("No decided clocks in the period.",),
            ),
        ),
    )
