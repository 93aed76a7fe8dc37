"""The quarterly target review: how each team did against each target, and what to change.

The report covers the clocks started in one calendar quarter (local to `tz`) and follows the
report rules of `flows.reports.builders` (a clock counts once by its latest state; compliance =
met / (met + breached); time taken = counted seconds of a fulfilled clock). Its sections:

1. **Compliance per metric and team**: clocks decided, compliance, median and p80 time taken,
   and the usual target.
2. **Compliance tier vs conversion**: every agent-week (an agent's decided clocks started in one
   ISO week, `resolution` left out) falls in a tier of the seeds' table (90-100 %, 80-90 %,
   70-80 %, < 70 %); per tier, the cycles that agent resolved in that week and the share won.
3. **Satisfaction per team**: surveys sent, rated, response rate, CSAT % (ratings of 4 or 5 /
   ratings) and the mean rating; also for the cycles that breached, and those with a recovery.
   **Handle time per team**: cycles handled, segments, handle seconds and AHT (SPEC §4).
4. **Agents under 80 % two weeks in a row** (the seeds' consequence framework): each agent whose
   compliance was below `WATCH_PCT` in at least two consecutive ISO weeks of the quarter (weeks
   with fewer than `MIN_WEEK_CLOCKS` decided clocks do not count either way).
5. **Target review**: per policy and metric (and team, for `team_ownership`), a suggestion
   (`review_target`) with the figures behind it and the compliance the quarter would have had
   at the suggested target, over the clocks of the usual target. `contact_attempts` is left
   out: its target is a number of attempts, not a time.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Final

from flows.reports.builders import day_start, percentile
from flows.reports.data import ClockRow, ReportStore, SegmentRow, SurveyRow
from flows.reports.render import Report, Section

__all__ = [
    "CONSISTENT_PCT",
    "MIN_WEEK_CLOCKS",
    "TIERS",
    "WATCH_PCT",
    "Review",
    "parse_quarter",
    "quarterly_report",
    "review_target",
]

#: The seeds' compliance tiers: (label, lowest compliance in the tier, per cent).
TIERS: Final = (("90-100 %", 90.0), ("80-90 %", 80.0), ("70-80 %", 70.0), ("< 70 %", -1.0))
#: An agent below this compliance in two consecutive weeks is listed.
WATCH_PCT: Final = 80.0
#: A week with fewer decided clocks (of an agent, or of a target) is not judged.
MIN_WEEK_CLOCKS: Final = 5
#: A target beaten in every judged week with at least this compliance is "consistently beaten".
CONSISTENT_PCT: Final = 95.0
#: ... and by a margin when the p80 time taken is at most this share of the target.
MARGIN: Final = 0.75
#: Breaches "follow volume" when weekly volume and weekly breach share correlate this much.
FOLLOWS_VOLUME: Final = 0.5
#: A tightened target must keep at least this compliance on the quarter's clocks.
TIGHTEN_KEEPS_PCT: Final = 90.0
#: Candidate multiples of the current target, smaller first, for tightening and loosening.
TIGHTER: Final = (0.5, 0.75)
LOOSER: Final = (1.25, 1.5, 2.0)
#: Metrics whose target is not a time to beat (`contact_attempts` counts attempts).
_NOT_A_TIME: Final = frozenset({"contact_attempts"})
_QUARTER_RE: Final = re.compile(r"(\d{4})-Q([1-4])")


def parse_quarter(text: str) -> date:
    """Return the first day of a quarter written `YYYY-Qn` (e.g. `2026-Q3`).

    Raises:
        ValueError: the text is not a quarter; the message says how to write one.
    """
    match = _QUARTER_RE.fullmatch(text.strip())
    if match is None:
        msg = f"{text!r} is not a quarter; write it like 2026-Q3"
        raise ValueError(msg)
    return date(int(match[1]), 3 * int(match[2]) - 2, 1)


def _next_quarter(first: date) -> date:
    month = first.month + 3
    return date(first.year + (month > 12), (month - 1) % 12 + 1, 1)


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _decided(rows: Iterable[ClockRow]) -> list[ClockRow]:
    return [r for r in rows if r.outcome in ("met", "breached")]


def _compliance(rows: Sequence[ClockRow]) -> float | None:
    return _pct(sum(1 for r in rows if r.outcome == "met"), len(rows))


def _week(ms: int, tz: tzinfo) -> str:
    """The ISO week (`2026-W47`) of an instant, local to `tz`."""
    year, week, _ = datetime.fromtimestamp(ms / 1000, tz=tz).isocalendar()
    return f"{year}-W{week:02d}"


def _usual_target(rows: Iterable[ClockRow]) -> float | None:
    counts = Counter(r.target_s for r in rows if r.target_s is not None)
    if not counts:
        return None
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def what_if(rows: Sequence[ClockRow], target_s: float) -> float | None:
    """Return the compliance decided clocks `rows` would have had at `target_s`.

    That is the share of them fulfilled within it; a clock never fulfilled misses every target.
    """
    return _pct(sum(1 for r in rows if r.fulfilled and r.elapsed_s <= target_s), len(rows))


def _correlation(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson's r; None with fewer than 3 points or no spread."""
    if len(xs) < 3:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


@dataclass(frozen=True, slots=True)
class Review:
    """The suggestion for one target, and the figures behind it.

    Attributes:
        suggestion: `tighten`, `keep`, `add capacity` or `loosen`.
        target_s: The current (usual) target, counted seconds.
        compliance: Compliance over the quarter, per cent.
        weeks_judged: Weeks with at least `MIN_WEEK_CLOCKS` decided clocks.
        weeks_beaten: Of those, weeks with compliance of at least `CONSISTENT_PCT`.
        p80_s: The p80 time taken by the fulfilled clocks.
        volume_r: The correlation of weekly volume with the weekly breach share (None with
            fewer than 3 judged weeks or no spread).
        suggested_s: The suggested target (the current one for `keep` and `add capacity`).
        what_if: Compliance over the quarter at the suggested target.
        why: One sentence with the reason.
    """

    suggestion: str
    target_s: float
    compliance: float | None
    weeks_judged: int
    weeks_beaten: int
    p80_s: float | None
    volume_r: float | None
    suggested_s: float
    what_if: float | None
    why: str


def review_target(rows: Sequence[ClockRow], target_s: float, tz: tzinfo = UTC) -> Review:
    """Suggest what to do with one target from its decided clocks of a quarter.

    * **tighten** when the target is consistently beaten by a margin: every judged week (at
      least two) at `CONSISTENT_PCT` or more, and the p80 time taken at most `MARGIN` of the
      target. The suggestion is the smallest of `TIGHTER` x target at which the quarter's
      compliance stays at `TIGHTEN_KEEPS_PCT` or more; with none, **keep**.
    * **add capacity** when compliance is below `WATCH_PCT` and breaches follow volume (weekly
      volume and weekly breach share correlate at `FOLLOWS_VOLUME` or more): the target is
      not the problem, the staffing at peaks is.
    * **loosen** when compliance is below `WATCH_PCT` otherwise: the smallest of `LOOSER` x
      target at which compliance would reach `WATCH_PCT` (the largest if none does).
    * **keep** otherwise.

    Args:
        rows: the target's decided clocks (met or breached) started in the quarter.
        target_s: the current target in counted seconds.
        tz: the zone of the weeks.
    """
    weekly: dict[str, list[ClockRow]] = defaultdict(list)
    for r in rows:
        weekly[_week(r.started_at, tz)].append(r)
    judged = [weekly[w] for w in sorted(weekly) if len(weekly[w]) >= MIN_WEEK_CLOCKS]
    shares = [_compliance(w) or 0.0 for w in judged]
    beaten = sum(1 for s in shares if s >= CONSISTENT_PCT)
    compliance = _compliance(rows)
    p80 = percentile([r.elapsed_s for r in rows if r.fulfilled], 0.8)
    r_volume = _correlation([float(len(w)) for w in judged], [100.0 - s for s in shares])

    def review(suggestion: str, suggested: float, why: str) -> Review:
        return Review(
            suggestion,
            target_s,
            compliance,
            len(judged),
            beaten,
            p80,
            r_volume,
            suggested,
            what_if(rows, suggested),
            why,
        )

    if len(judged) >= 2 and beaten == len(judged) and p80 is not None and p80 <= MARGIN * target_s:
        for factor in TIGHTER:
            at = what_if(rows, factor * target_s)
            if at is not None and at >= TIGHTEN_KEEPS_PCT:
                return review(
                    "tighten",
                    factor * target_s,
                    f"beaten in all {len(judged)} weeks judged, p80 {p80:.0f} s of "
                    f"{target_s:.0f} s",
                )
        return review("keep", target_s, "beaten consistently, but no tighter target keeps 90 %")
    if compliance is not None and compliance < WATCH_PCT:
        if r_volume is not None and r_volume >= FOLLOWS_VOLUME:
            return review(
                "add capacity",
                target_s,
                f"breaches follow volume (r = {r_volume:.2f}): staff the peaks",
            )
        for factor in LOOSER:
            at = what_if(rows, factor * target_s)
            if at is not None and at >= WATCH_PCT:
                return review("loosen", factor * target_s, "missed without a volume pattern")
        return review(
            "loosen", LOOSER[-1] * target_s, "missed without a volume pattern, even at 2x"
        )
    return review("keep", target_s, "within the expected range")


def _tier(pct: float) -> str:
    return next(label for label, low in TIERS if pct >= low)


def _team(value: str | None) -> str:
    return "(none)" if value is None else value


def _satisfaction(surveys: Sequence[SurveyRow]) -> tuple[str, ...]:
    sent = sum(1 for s in surveys if s.sent)
    ratings = [s.rating for s in surveys if s.rating is not None]
    rated_of_sent = sum(1 for s in surveys if s.sent and s.rating is not None)
    good = sum(1 for x in ratings if x >= 4)
    mean = sum(ratings) / len(ratings) if ratings else None
    return (
        str(sent),
        str(len(ratings)),
        _num(_pct(rated_of_sent, sent)),
        _num(_pct(good, len(ratings))),
        "-" if mean is None else f"{mean:.2f}",
    )


def _effort(segments: Sequence[SegmentRow]) -> tuple[str, str, str]:
    total = sum(s.handle_s for s in segments)
    cycles = len({(s.conversation_id, s.cycle) for s in segments})
    return (str(len(segments)), _num(total), _num(total / cycles if cycles else None))


def quarterly_report(store: ReportStore, first_day: date, tz: tzinfo = UTC) -> Report:
    """The quarterly review of the quarter starting on `first_day` (see the module docstring).

    Args:
        store: where the clock and survey rows are read.
        first_day: the first day of the quarter (`parse_quarter`).
        tz: the zone of the quarter's days and weeks.
    """
    start, end = day_start(first_day, tz), day_start(_next_quarter(first_day), tz)
    clocks = [r for r in store.clocks(started_at=(start, end)) if r.started_at < end]
    decided = _decided(clocks)
    quarter = f"{first_day.year}-Q{(first_day.month - 1) // 3 + 1}"

    by_team: dict[tuple[str, str], list[ClockRow]] = defaultdict(list)
    for r in decided:
        by_team[(r.metric, _team(r.team_id))].append(r)
    team_rows = []
    for (metric, team), rows in sorted(by_team.items()):
        taken = [r.elapsed_s for r in rows if r.fulfilled]
        team_rows.append(
            (
                metric,
                team,
                str(len(rows)),
                _num(_compliance(rows)),
                _num(percentile(taken, 0.5)),
                _num(percentile(taken, 0.8)),
                _num(_usual_target(rows)),
            )
        )

    # Agent-weeks: compliance tiers against conversion, and the agents to watch.
    agent_weeks: dict[tuple[str, str], list[ClockRow]] = defaultdict(list)
    for r in decided:
        if r.agent_id is not None and r.metric != "resolution":
            agent_weeks[(r.agent_id, _week(r.started_at, tz))].append(r)
    resolved: dict[tuple[str, str], list[ClockRow]] = defaultdict(list)
    for r in clocks:
        if r.agent_id is not None and r.metric == "resolution" and r.fulfilled:
            resolved[(r.agent_id, _week(r.started_at, tz))].append(r)
    tiers: dict[str, list[int]] = {label: [0, 0, 0] for label, _ in TIERS}
    weekly_pct: dict[str, dict[str, float]] = defaultdict(dict)
    for (agent, week), rows in agent_weeks.items():
        pct = _compliance(rows)
        if pct is None or len(rows) < MIN_WEEK_CLOCKS:
            continue
        weekly_pct[agent][week] = pct
        cell = tiers[_tier(pct)]
        done = resolved.get((agent, week), [])
        cell[0] += 1
        cell[1] += len(done)
        cell[2] += sum(1 for r in done if r.resolved_as == "won")
    tier_rows = tuple(
        (label, str(n), str(res), str(won), _num(_pct(won, res)))
        for label, (n, res, won) in tiers.items()
    )
    watch_rows = []
    for agent in sorted(weekly_pct):
        weeks = sorted(weekly_pct[agent])
        run: list[str] = []
        best: list[str] = []
        for week in weeks:
            consecutive = run and _follows(run[-1], week)
            if weekly_pct[agent][week] < WATCH_PCT:
                run = [*run, week] if consecutive else [week]
            else:
                run = []
            if len(run) > len(best):
                best = run
        if len(best) >= 2:
            watch_rows.append(
                (
                    agent,
                    f"{best[0]} to {best[-1]}",
                    str(len(best)),
                    ", ".join(_num(weekly_pct[agent][w]) for w in best),
                )
            )

    surveys = store.surveys(start, end)
    teams: dict[str, list[SurveyRow]] = defaultdict(list)
    for s in surveys:
        teams[_team(s.team_id)].append(s)
    segments: dict[str, list[SegmentRow]] = defaultdict(list)
    for seg in store.segments(start, end):
        segments[_team(seg.team_id)].append(seg)
    effort_rows = tuple(
        (team, str(len({(s.conversation_id, s.cycle) for s in mine})), *_effort(mine))
        for team, mine in sorted(segments.items())
    )
    csat_rows = []
    for team, mine in sorted(teams.items()):
        csat_rows.append((team, "all", *_satisfaction(mine)))
        csat_rows.append((team, "breached", *_satisfaction([s for s in mine if s.breached])))
        csat_rows.append((team, "had a recovery", *_satisfaction([s for s in mine if s.recovered])))
        csat_rows.append(
            (
                team,
                "breached, no recovery",
                *_satisfaction([s for s in mine if s.breached and not s.recovered]),
            )
        )

    by_target: dict[tuple[str, str], list[ClockRow]] = defaultdict(list)
    for r in decided:
        if r.metric in _NOT_A_TIME:
            continue
        # Each team of a `team_ownership` has its own target.
        metric = f"{r.metric} ({_team(r.team_id)})" if r.metric == "team_ownership" else r.metric
        by_target[(_team(r.policy_id), metric)].append(r)
    review_rows = []
    for (policy, metric), rows in sorted(by_target.items()):
        target = _usual_target(rows)
        if target is None:
            continue
        same = [r for r in rows if r.target_s == target]
        rv = review_target(same, target, tz)
        review_rows.append(
            (
                policy,
                metric,
                str(len(same)),
                _num(rv.target_s),
                _num(rv.compliance),
                f"{rv.weeks_beaten}/{rv.weeks_judged}",
                _num(rv.p80_s),
                "-" if rv.volume_r is None else f"{rv.volume_r:.2f}",
                rv.suggestion,
                _num(rv.suggested_s),
                _num(rv.what_if),
                rv.why,
            )
        )

    return Report(
        f"SLA quarterly review, {quarter}",
        (
            f"Clocks started in {quarter} ({first_day.isoformat()} to "
            f"{(_next_quarter(first_day) - timedelta(days=1)).isoformat()}, {tz}); surveys "
            "that took effect in it. Times in counted seconds.",
        ),
        (
            Section(
                "Compliance per metric and team",
                ("metric", "team", "clocks", "compliance %", "median s", "p80 s", "target s"),
                tuple(team_rows),
                () if team_rows else ("No decided clocks in the quarter.",),
            ),
            Section(
                "Compliance tier vs conversion",
                ("tier", "agent-weeks", "cycles resolved", "won", "conversion %"),
                tier_rows,
                (
                    f"An agent-week: one agent's decided clocks (resolution left out) started in "
                    f"one ISO week, at least {MIN_WEEK_CLOCKS}; conversion = won / resolved.",
                ),
            ),
            Section(
                "Satisfaction per team",
                (
                    "team",
                    "cycles",
                    "surveys sent",
                    "rated",
                    "response rate %",
                    "CSAT %",
                    "mean rating",
                ),
                tuple(csat_rows),
                ("CSAT % = ratings of 4 or 5 / ratings; response rate = rated / sent.",)
                if csat_rows
                else ("No surveys in the quarter.",),
            ),
            Section(
                "Handle time per team",
                ("team", "cycles handled", "segments", "handle s", "AHT s"),
                effort_rows,
                (
                    "AHT = handle seconds / cycles with a counted segment (SPEC §4), segments "
                    "started in the quarter.",
                )
                if effort_rows
                else ("No handle segments (no policy with `handle`).",),
            ),
            Section(
                f"Agents under {WATCH_PCT:g} % two weeks in a row",
                ("agent", "weeks", "weeks in a row", "compliance % each week"),
                tuple(watch_rows),
                () if watch_rows else ("No agent.",),
            ),
            Section(
                "Target review",
                (
                    "policy",
                    "metric",
                    "clocks",
                    "target s",
                    "compliance %",
                    f"weeks >= {CONSISTENT_PCT:g} %",
                    "p80 s",
                    "volume-breach r",
                    "suggestion",
                    "suggested s",
                    "what-if %",
                    "why",
                ),
                tuple(review_rows),
                (
                    "tighten: every judged week beaten and p80 within 75 % of the target; add "
                    "capacity: under 80 % with breaches following weekly volume; loosen: under "
                    "80 % otherwise; what-if: the quarter's compliance at the suggested target. "
                    "contact_attempts is not reviewed (its target is a count of attempts).",
                ),
            ),
        ),
    )


def _follows(earlier: str, later: str) -> bool:
    """Whether ISO week `later` is the week right after `earlier` (both `YYYY-Www`)."""
    y1, w1 = (int(x) for x in earlier.split("-W"))
    y2, w2 = (int(x) for x in later.split("-W"))
    monday = date.fromisocalendar(y1, w1, 1) + timedelta(days=7)
    return monday == date.fromisocalendar(y2, w2, 1)
