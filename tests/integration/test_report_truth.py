"""Every dashboard and alert query, run on a replayed month in the real QuestDB, against truth.

The month is generated traffic with late events, run through the real engine and written with
the monitor's own writer (which also creates the materialized views). Expected numbers are
folded from the SLA records in Python (`tests.truthkit.Truth`), never from SQL.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from flows.connectors.questdb import Heartbeat, QuestDBWriter, TableNames
from flows.connectors.questdb.views import ViewNames
from flows.core.records import CsatRecord, DeadLetter, HandleRecord, Record
from flows.devstack import Endpoints
from flows.reports.queries import (
    ALL_CHANNELS,
    CSAT_MIN_RATINGS,
    CSAT_TARGET_PCT,
    QUERIES,
    AlertQuery,
)
from tests.conftest import QuestDB
from tests.questdbkit import drop_tables, new_prefix, now_ms, sla, to_ms
from tests.truthkit import (
    TZ,
    Clock,
    Truth,
    compliance,
    decisions,
    local_midnight,
    month_events,
    replay_month,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# Seconds pass between the Python truth and the query on a busy machine.
SLACK_S = 30.0
CHAT = {"cadence", "service_window"}
REQUIRED_ATTEMPTS = 3  # contact_attempts.min of the only lead policy in truthkit.POLICIES
URGENT_SOURCES = {"demo_request", "pricing"}
#: The dashboards' `$channel` as Grafana fills it by default ("All").
ALL = {"channel": ALL_CHANNELS}


@dataclass(frozen=True)
class Month:
    """A month of records stored under `prefix`, and the truth folded from them."""

    prefix: str
    end: int
    truth: Truth
    questdb: QuestDB
    outcomes: dict[str, str]
    """Each conversation's resolve outcome, read from the input events."""
    lead_statuses: dict[str, str]
    """Each conversation's decided lead status, read from the input events."""

    def run(
        self, name: str, variables: Mapping[str, str | Sequence[str]] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run the named shared query on this month's tables, every channel chosen."""
        sql = QUERIES[name].render(self.prefix, TZ, {**ALL, **(variables or {})})
        return self.questdb.query(sql)


def write(stack: Endpoints, prefix: str, records: list[Record], beats: list[Heartbeat]) -> None:
    """Write records and heartbeats as the monitor does, in batches, and close."""
    writer = QuestDBWriter(stack.questdb_ilp_conf, prefix=prefix, report_timezone=TZ)
    writer.ensure_tables()
    for start in range(0, len(records), 5_000):
        writer.write_batch(records[start : start + 5_000], emitted_at_ms=now_ms())
    for beat in beats:
        writer.write_heartbeat(beat)
    writer.close()
    assert writer.stats.rows_pending == 0


def settle(questdb: QuestDB, prefix: str) -> None:
    """Wait until every table's WAL is applied and the views caught up with the clocks table."""
    for table in TableNames(prefix).all():
        questdb.wait_for_wal(table)
    clocks = questdb.query(f"SELECT count() FROM {prefix}clocks")[0][0]  # noqa: S608
    views = ViewNames(prefix)
    questdb.wait_for_rows(
        f"SELECT sum(clocks) FROM {views.compliance_daily}",  # noqa: S608
        until=lambda rows: bool(rows) and (rows[0][0] or 0) == clocks,
        timeout=60,
    )
    stints = questdb.query(
        f"SELECT count() FROM {prefix}clocks"  # noqa: S608
        " WHERE metric = 'team_ownership' AND status <> 'cancelled'"
    )[0][0]
    questdb.wait_for_rows(
        f"SELECT sum(stints) FROM {views.ola_daily}",  # noqa: S608
        until=lambda rows: bool(rows) and (rows[0][0] or 0) == stints,
        timeout=60,
    )


@pytest.fixture(scope="module")
def month(stack: Endpoints, questdb: QuestDB) -> Iterator[Month]:
    """A replayed month (about 4,500 conversations) in fresh tables, with a fresh heartbeat."""
    end = now_ms()
    records = replay_month(end)
    prefix = new_prefix()
    beats = [Heartbeat(worker="0", at=now_ms() - 2_000, watermark=end)]
    try:
        write(stack, prefix, records, beats)
        settle(questdb, prefix)
        outcomes, statuses = decisions(month_events(end))
        yield Month(prefix, end, Truth(records), questdb, outcomes, statuses)
    finally:
        drop_tables(questdb, prefix)


def near(actual: float | None, expected: float | None, slack: float = 1e-6) -> bool:
    """Equal within `slack` (absolute), None and NaN equal to each other."""
    if actual is None or expected is None:
        return actual is None and expected is None
    if math.isnan(actual):
        return False
    return abs(actual - expected) <= slack


def seconds_left(clock: Clock, now: int) -> float | None:
    """What the running-clocks table shows for a clock at `now`."""
    r = clock.last
    if r.status == "paused":
        return None if r.target is None else (r.target - r.elapsed) / 1000
    return None if r.deadline_at is None else (r.deadline_at - now) / 1000


def open_clocks(month: Month) -> list[Clock]:
    return [c for c in month.truth.clocks if c.open]


# -- the wallboard tiles ---------------------------------------------------------------------


def test_month_has_every_state_the_wallboard_shows(month: Month) -> None:
    """The replayed month has open, warning, breached, paused, unassigned and late clocks."""
    running = open_clocks(month)
    statuses = {c.last.status for c in running}
    assert {"started", "warning", "breached", "paused"} <= statuses
    assert any(c.last.metric == "assignment" for c in running)
    assert any(c.last.late for c in month.truth.clocks)
    assert sum(c.met for c in month.truth.clocks) > 1_000


def test_stat_tiles_equal_the_records(month: Month) -> None:
    """Open conversations, at risk, breached now and unassigned waiting equal the records."""
    running = open_clocks(month)
    expected = {
        "open_conversations": len(
            {c.last.conversation_id for c in running if c.last.metric not in CHAT}
        ),
        "at_risk": sum(1 for c in running if not c.last.breached and c.last.status == "warning"),
        "breached_now": sum(1 for c in running if c.last.breached),
        "unassigned_now": sum(1 for c in running if c.last.metric == "assignment"),
    }
    actual = {name: month.run(name)[0][0] for name in expected}
    assert actual == expected
    assert expected["breached_now"] > 0


def test_compliance_today_equals_the_records(month: Month) -> None:
    """Compliance today is met / (met + breached) of the clocks started since local midnight."""
    today = local_midnight(now_ms())
    clocks = [c for c in month.truth.clocks if c.last.started_at >= today]
    assert near(month.run("compliance_today")[0][0], compliance(clocks), 1e-9)


def test_median_first_response_today_equals_the_records(month: Month) -> None:
    """The median first response of today's chats is the middle of their response times."""
    today = local_midnight(now_ms())
    times = sorted(
        c.last.elapsed / 1000
        for c in month.truth.where(metric="first_response")
        if c.last.started_at >= today and c.last.status in ("met", "stopped")
    )
    actual = month.run("median_first_response_today")[0][0]
    if not times:  # just after local midnight
        assert actual is None
        return
    low, high = times[(len(times) - 1) // 2], times[len(times) // 2]
    assert low * 0.999 <= actual <= high * 1.001


def test_data_age_is_the_heartbeat_age(month: Month) -> None:
    """The data-age tile shows seconds since the last heartbeat (written 2 s before the end)."""
    age = month.run("data_age")[0][0]
    assert 0 <= age <= (now_ms() - month.end) / 1000 + 2 + 1


def test_running_clocks_table_is_sorted_by_time_left(month: Month) -> None:
    """The running-clocks table lists the most urgent open clocks first, paused ones as paused."""
    rows = month.run("running_clocks")
    now = now_ms()
    listed = [
        (seconds_left(c, now), c)
        for c in open_clocks(month)
        if seconds_left(c, now) is not None
        and (not c.last.breached or (c.last.deadline_at or 0) >= now - 3600_000)
    ]
    listed.sort(key=lambda pair: pair[0])
    assert len(rows) == min(100, len(listed))
    assert any(r[6] == "paused" for r in rows) or not any(
        c.last.status == "paused" and left < listed[len(rows) - 1][0] for left, c in listed
    )
    lefts = [r[7] for r in rows]
    assert lefts == sorted(lefts)
    by_key: dict[tuple[str, str], list[Clock]] = defaultdict(list)
    for _, c in listed:
        by_key[(c.last.conversation_id, c.last.metric)].append(c)
    for conv, metric, agent, team, priority, channel, state, left in rows:
        assert any(
            (c.last.agent_id, c.last.team_id, c.last.priority, c.last.channel)
            == (agent, team, priority, channel)
            and state == state_of(c)
            and near(left, seconds_left(c, now), SLACK_S)
            for c in by_key[(conv, metric)]
        ), (conv, metric, state, left)
    # Nothing left out is more urgent than what is shown.
    expected_top = [left for left, _ in listed[: len(rows)]]
    for shown, expected in zip(lefts, expected_top, strict=True):
        assert near(shown, expected, SLACK_S)


def state_of(clock: Clock) -> str:
    if clock.last.status == "paused":
        return "paused"
    return "breached" if clock.last.breached else "running"


def test_agent_load_equals_the_records(month: Month) -> None:
    """Per agent: conversations with a running chat clock and breaches whose deadline was today."""
    today = local_midnight(now_ms())
    open_convs: dict[str, set[str]] = defaultdict(set)
    breaches: dict[str, int] = defaultdict(int)
    for c in month.truth.clocks:
        r = c.last
        if r.agent_id is None or not (c.open or (r.deadline_at or 0) >= today):
            continue
        open_convs[r.agent_id]
        breaches[r.agent_id] += 0
        if c.open and r.metric not in CHAT:
            open_convs[r.agent_id].add(r.conversation_id)
        if c.breached and (r.deadline_at or 0) >= today:
            breaches[r.agent_id] += 1
    expected = [(a, len(open_convs[a]), breaches[a]) for a in sorted(open_convs)]
    assert [tuple(r) for r in month.run("agent_load")] == expected


def test_breach_feed_lists_todays_breaches_with_cause(month: Month) -> None:
    """The breach feed shows each clock breached today once, with its cause, newest first."""
    today = local_midnight(now_ms())
    expected = sorted(
        (
            (c.last.deadline_at, c.last.conversation_id, c.last.metric, c.cause)
            for c in month.truth.clocks
            if c.breached and (c.last.deadline_at or 0) >= today
        ),
        key=lambda t: (-t[0], t[1], t[2]),
    )[:100]
    rows = month.run("breach_feed")
    assert [(to_ms(r[0]), r[1], r[2], r[6]) for r in rows] == expected
    assert all(cause is not None for *_, cause in expected)


def test_windows_closing_lists_unanswered_windows_due_within_2h(month: Month) -> None:
    """WhatsApp windows closing within 2 h unanswered, with the seconds left."""
    now = now_ms()
    rows = {r[0]: r[5] for r in month.run("windows_closing")}
    expected = {
        c.last.conversation_id: (c.last.deadline_at - now) / 1000
        for c in month.truth.where(metric="service_window")
        if c.open
        and not c.last.breached
        and c.last.deadline_at is not None
        and c.last.deadline_at <= now + 2 * 3600_000
    }
    # Only a window right at the 2 h edge may be in one list and not the other.
    for conv in rows.keys() ^ expected.keys():
        left = expected.get(conv, rows.get(conv))
        assert left is not None
        assert abs(left - 7200) < SLACK_S, conv
    for conv in rows.keys() & expected.keys():
        assert near(rows[conv], expected[conv], SLACK_S)


def test_leads_short_of_attempts_equal_the_records(month: Month) -> None:
    """Leads with a running contact-attempts clock, their attempts so far and the time left."""
    now = now_ms()
    rows = {r[0]: (r[4], r[6]) for r in month.run("leads_short")}
    assert {r[5] for r in month.run("leads_short")} == {REQUIRED_ATTEMPTS}
    assert {r[3] for r in month.run("leads_short")} == {"whatsapp"}
    expected = {
        c.last.conversation_id: (c.last.attempts, c.last.deadline_at)
        for c in month.truth.where(metric="contact_attempts")
        if c.open and not c.last.breached
    }
    assert rows.keys() == expected.keys()
    for conv, (attempts, _left) in expected.items():
        assert rows[conv][0] == attempts
        deadline = next(
            c.last.deadline_at
            for c in month.truth.where(metric="contact_attempts", conversation_id=conv)
            if c.open
        )
        assert deadline is not None
        assert near(rows[conv][1], (deadline - now) / 1000, SLACK_S)


# -- team stints (OLA, SPEC §4 team_ownership) ------------------------------------------------


def stints(month: Month) -> list[Clock]:
    return list(month.truth.where(metric="team_ownership"))


def ended_budget(clock: Clock) -> float | None:
    """The `budget_pct` the OLA queries count: a stint's that ended (not cancelled)."""
    r = clock.last
    return None if clock.open or r.status == "cancelled" else r.budget_pct


def test_month_has_team_stints_of_every_kind(month: Month) -> None:
    """The month holds hand-overs to the back office and back, warned, breached and paused
    stints running now, and ended stints with their share of the resolution budget."""
    all_stints = stints(month)
    assert {c.last.team_id for c in all_stints} == {"sales", "support", "backoffice"}
    assert {c.last.seq for c in all_stints} >= {1, 2, 3}
    running = [c for c in all_stints if c.open]
    assert any(c.last.breached and c.last.priority in ("P1", "P2") for c in running)
    assert any(c.last.status == "warning" for c in running)
    assert sum(ended_budget(c) is not None for c in all_stints) > 1_000


def test_team_clocks_and_handovers_waiting_equal_the_records(month: Month) -> None:
    """The team clocks table lists every running stint with its owning team, stint number and
    time left, most urgent first; hand-overs waiting counts the warned or breached ones."""
    now = now_ms()
    running = [c for c in stints(month) if c.open]
    waiting = sum(1 for c in running if c.last.breached or c.last.status == "warning")
    assert month.run("handovers_waiting") == [(waiting,)]
    assert waiting > 0
    rows = month.run("team_clocks")
    assert len(rows) == min(100, len(running))
    lefts = [r[7] for r in rows]
    assert lefts == sorted(lefts)
    by_stint = {(c.last.conversation_id, c.last.seq): c for c in running}
    for team, conv, stint, agent, priority, channel, state, left in rows:
        r = by_stint[(conv, stint)].last
        assert (team, agent, priority, channel) == (r.team_id, r.agent_id, r.priority, r.channel)
        expected_state = (
            "paused"
            if r.status == "paused"
            else "breached"
            if r.breached
            else "warning"
            if r.status == "warning"
            else "running"
        )
        assert state == expected_state
        assert near(left, seconds_left(by_stint[(conv, stint)], now), SLACK_S)
    expected_top = sorted(left for c in running if (left := seconds_left(c, now)) is not None)[
        : len(rows)
    ]
    for shown, expected in zip(lefts, expected_top, strict=True):
        assert near(shown, expected, SLACK_S)


def test_scorecard_ola_per_team_and_budget_share(month: Month) -> None:
    """Per team, last week's stints (every agent's), met, breached, compliance, the median
    budget share of one stint, and the average share of a cycle's promise the team used."""
    week, start, end = last_full_week(now_ms())
    week_stints = [
        c
        for c in stints(month)
        if start <= c.last.started_at < end and c.last.status != "cancelled"
    ]
    per_team: dict[str, list[Clock]] = defaultdict(list)
    for c in week_stints:
        per_team[str(c.last.team_id)].append(c)
    rows = month.run("sc_ola_by_team", {"week": week, "agent": "nobody"})
    assert [r[0] for r in rows] == sorted(per_team)
    for team, count, met, breached, pct, median in rows:
        group = per_team[team]
        assert (count, met, breached) == (
            len(group),
            sum(c.met for c in group),
            sum(c.breached for c in group),
        )
        assert near(pct, compliance(group), 1e-9)
        budgets = sorted(b for c in group if (b := ended_budget(c)) is not None)
        low, high = budgets[(len(budgets) - 1) // 2], budgets[len(budgets) // 2]
        assert low * 0.999 <= median <= high * 1.001, team
    used: dict[str, dict[tuple[str, int], float]] = defaultdict(lambda: defaultdict(float))
    for c in week_stints:
        if (b := ended_budget(c)) is not None:
            used[str(c.last.team_id)][(c.last.conversation_id, c.last.cycle)] += b
    shares = dict(month.run("sc_ola_budget", {"week": week}))
    assert shares.keys() == used.keys() == {"sales", "support", "backoffice"}
    for team, cycles in used.items():
        assert near(shares[team], sum(cycles.values()) / len(cycles), 1e-6), team


def test_trends_ola_per_team_equal_the_records(month: Month) -> None:
    """OLA compliance per local day and owning team over 30 days equals the stints' outcomes."""
    since = local_midnight(now_ms(), 29)
    groups: dict[tuple[int, str], list[Clock]] = defaultdict(list)
    for c in stints(month):
        if c.last.started_at >= since:
            groups[(local_midnight(c.last.started_at), str(c.last.team_id))].append(c)
    rows = month.run("tr_ola_by_team")
    got = {(to_ms(r[0]), r[1]): r[2] for r in rows}
    assert got.keys() == groups.keys()
    for key, pct in got.items():
        assert near(pct, compliance(groups[key]), 1e-9) or (
            pct is None and compliance(groups[key]) is None
        ), key
    assert [(r[0], r[1]) for r in rows] == sorted((r[0], r[1]) for r in rows)


def test_ola_daily_view_sums_equal_the_stints(month: Month) -> None:
    """The `ola_daily` view's stints, met, breached and summed budget per team equal the records."""
    view = ViewNames(month.prefix).ola_daily
    rows = month.questdb.query(
        f"SELECT team_id, sum(stints), sum(met), sum(breached), sum(budgeted), sum(budget_pct)"  # noqa: S608
        f" FROM {view} ORDER BY team_id"
    )
    expected = []
    per_team: dict[str, list[Clock]] = defaultdict(list)
    for c in stints(month):
        if c.last.status != "cancelled":
            per_team[str(c.last.team_id)].append(c)
    for team in sorted(per_team):
        group = per_team[team]
        budgets = [b for c in group if (b := ended_budget(c)) is not None]
        expected.append(
            (team, len(group), sum(c.met for c in group), sum(c.breached for c in group),
             len(budgets), sum(budgets))
        )  # fmt: skip
    assert [r[:5] for r in rows] == [e[:5] for e in expected]
    for row, want in zip(rows, expected, strict=True):
        assert near(row[5], want[5], 1e-6)


# -- the agent scorecard ---------------------------------------------------------------------


def last_full_week(now: int) -> tuple[str, int, int]:
    """The local Monday (`YYYY-MM-DD`) of last week, and its start and end instants."""
    local = datetime.fromtimestamp(now / 1000, tz=UTC).astimezone(ZoneInfo(TZ))
    start = local_midnight(now, local.weekday() + 7)
    monday = datetime.fromtimestamp(start / 1000, tz=UTC).astimezone(ZoneInfo(TZ)).date()
    return monday.isoformat(), start, local_midnight(now, local.weekday())


@pytest.fixture(scope="module")
def scorecard(month: Month) -> tuple[dict[str, str], list[Clock]]:
    """The busiest agent's clocks of last week, and the dashboard variables selecting them."""
    week, start, end = last_full_week(now_ms())
    counts: dict[str, int] = defaultdict(int)
    for c in month.truth.clocks:
        if c.last.agent_id is not None:
            counts[c.last.agent_id] += 1
    agent = max(sorted(counts), key=counts.__getitem__)
    clocks = [
        c
        for c in month.truth.where(agent_id=agent)
        if start <= c.last.started_at < end and c.last.status != "cancelled"
    ]
    assert clocks
    return {"agent": agent, "week": week}, clocks


def test_scorecard_counts_and_compliance(
    month: Month, scorecard: tuple[dict[str, str], list[Clock]]
) -> None:
    """The scorecard's conversations, compliance and compliance per metric equal the records."""
    variables, clocks = scorecard
    assert month.run("sc_conversations", variables)[0][0] == len(
        {c.last.conversation_id for c in clocks}
    )
    assert near(month.run("sc_compliance", variables)[0][0], compliance(clocks), 1e-9)
    per_metric: dict[str, list[Clock]] = defaultdict(list)
    for c in clocks:
        per_metric[c.last.metric].append(c)
    rows = month.run("sc_compliance_by_metric", variables)
    assert [r[0] for r in rows] == sorted(per_metric)
    for metric, met, breached, pct in rows:
        group = per_metric[metric]
        assert (met, breached) == (sum(c.met for c in group), sum(c.breached for c in group))
        assert near(pct, compliance(group), 1e-9) or (pct is None and compliance(group) is None)


def test_scorecard_response_times(
    month: Month, scorecard: tuple[dict[str, str], list[Clock]]
) -> None:
    """Average and p90 reply times per reply metric equal those of the agent's replies."""
    variables, clocks = scorecard
    rows = month.run("sc_response_times", variables)
    assert rows
    for metric, responses, avg_s, p90_s in rows:
        times = sorted(
            c.last.elapsed / 1000
            for c in clocks
            if c.last.metric == metric and c.last.status in ("met", "stopped")
        )
        assert responses == len(times)
        assert near(avg_s, sum(times) / len(times), 1e-6)
        rank = math.ceil(0.9 * len(times)) - 1
        low, high = times[max(rank - 1, 0)], times[min(rank + 1, len(times) - 1)]
        assert low * 0.999 <= p90_s <= high * 1.001


def test_scorecard_leads_breaches_and_volume(
    month: Month, scorecard: tuple[dict[str, str], list[Clock]]
) -> None:
    """Contact attempts, qualification, breaches by cause, the breach list and daily chats."""
    variables, clocks = scorecard
    attempts = [c for c in clocks if c.last.metric == "contact_attempts"]
    expected_attempts = (
        len(attempts),
        sum(c.last.attempts or 0 for c in attempts) if attempts else None,
        REQUIRED_ATTEMPTS * len(attempts) if attempts else None,
        sum(c.met for c in attempts),
        sum(c.breached for c in attempts),
        sum(c.open and not c.last.breached for c in attempts),
    )
    assert month.run("sc_contact_attempts", variables)[0] == expected_attempts
    quals = [c for c in clocks if c.last.metric == "qualification"]
    decided = [
        month.lead_statuses[c.last.conversation_id]
        for c in quals
        if c.last.status in ("met", "stopped")
    ]
    assert month.run("sc_qualification", variables)[0] == (
        (
            decided.count("qualified"),
            decided.count("disqualified"),
            decided.count("nurture"),
            sum(c.open for c in quals),
            sum(c.open and c.last.breached for c in quals),
        )
        if quals
        else (None,) * 5
    )
    causes: dict[str, int] = defaultdict(int)
    for c in clocks:
        if c.breached:
            causes[str(c.cause)] += 1
    rows = month.run("sc_breaches_by_cause", variables)
    assert {str(cause): n for cause, n in rows} == causes
    listed = month.run("sc_breach_list", variables)
    assert sorted((r[1], r[2]) for r in listed) == sorted(
        (c.last.conversation_id, c.last.metric) for c in clocks if c.breached
    )
    daily: dict[int, set[str]] = defaultdict(set)
    for c in clocks:
        daily[local_midnight(c.last.started_at)].add(c.last.conversation_id)
    volume = {to_ms(r[0]): r[1] for r in month.run("sc_daily_volume", variables)}
    assert volume == {day: len(convs) for day, convs in daily.items()}


def test_scorecard_conversion_is_won_over_resolved(
    month: Month, scorecard: tuple[dict[str, str], list[Clock]]
) -> None:
    """Conversion = cycles resolved `won` / cycles resolved, outcomes read from the events."""
    variables, clocks = scorecard
    resolved = [
        month.outcomes[c.last.conversation_id]
        for c in clocks
        if c.last.metric == "resolution" and c.last.status in ("met", "stopped")
    ]
    assert 0 < resolved.count("won") < len(resolved)
    [(pct,)] = month.run("sc_conversion", variables)
    assert near(pct, 100.0 * resolved.count("won") / len(resolved), 1e-9)


def test_scorecard_shows_every_lead_decision(month: Month) -> None:
    """The month has leads of every decided status and every resolve outcome to tell apart."""
    assert set(month.lead_statuses.values()) == {"qualified", "disqualified", "nurture"}
    assert {"won", "lost", "answered"} <= set(month.outcomes.values())


# -- satisfaction and effort (SPEC §4 CSAT, handle time, first-contact resolution) -----------


@dataclass(frozen=True)
class Satisfaction:
    """What a satisfaction row shows, folded from the records (None where a ratio has no value)."""

    sent: int
    rated: int
    response_rate_pct: float | None
    csat_pct: float | None
    mean_rating: float | None
    aht_s: float | None
    fcr_pct: float | None

    def matches(self, row: tuple[Any, ...]) -> bool:
        """Whether a query row (sent, rated, then the five ratios, in that order) shows this."""
        counts = (row[0], row[1]) == (self.sent, self.rated)
        ratios = (self.response_rate_pct, self.csat_pct, self.mean_rating, self.aht_s, self.fcr_pct)
        return counts and all(near(a, e, 1e-6) for a, e in zip(row[2:7], ratios, strict=True))


def pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


def satisfaction(
    month: Month,
    surveys: list[CsatRecord],
    segments: list[HandleRecord],
    resolved: list[Clock],
    since: int,
) -> Satisfaction:
    """Fold surveys, handle segments and resolved cycles into the satisfaction figures.

    First-contact resolution: a resolved cycle resolved once (one resolve instant) that never
    had a `next_response` clock (one started since `since`, the week's start).
    """
    ratings = [s.rating for s in surveys if s.rating is not None]
    cycles = {(h.conversation_id, h.cycle) for h in segments}
    waited = {
        (c.last.conversation_id, c.last.cycle)
        for c in month.truth.where(metric="next_response")
        if c.last.started_at >= since
    }
    first_contact = sum(
        1
        for c in resolved
        if len(month.truth.resolves[(key := (c.last.conversation_id, c.last.cycle))]) == 1
        and key not in waited
    )
    return Satisfaction(
        sent=len(surveys),
        rated=len(ratings),
        response_rate_pct=pct(len(ratings), len(surveys)),
        csat_pct=pct(sum(r >= 4 for r in ratings), len(ratings)),
        mean_rating=sum(ratings) / len(ratings) if ratings else None,
        aht_s=sum(h.handle for h in segments) / 1000 / len(cycles) if cycles else None,
        fcr_pct=pct(first_contact, len(resolved)),
    )


def week_of(month: Month, start: int, end: int) -> tuple[list[CsatRecord], list[HandleRecord]]:
    """The surveys (by `survey_at`) and counted handle segments (by start) of one week."""
    surveys = [s for s in month.truth.surveys if start <= s.survey_at < end]
    segments = [h for h in month.truth.segments if start <= h.started_at < end]
    return surveys, segments


def resolved_cycles(month: Month, start: int, end: int) -> list[Clock]:
    """The resolution clocks started in `[start, end)` that a resolve fulfilled."""
    return [
        c
        for c in month.truth.where(metric="resolution")
        if start <= c.last.started_at < end and c.last.status in ("met", "stopped")
    ]


def test_month_has_surveys_segments_and_recoveries(month: Month) -> None:
    """The month holds rated and unrated surveys of met, recovered and unrecovered cycles,
    handle segments of every agent, fired recoveries, and stores each row's channel."""
    surveys = month.truth.surveys
    rated = [s for s in surveys if s.rating is not None]
    assert 0 < len(rated) < len(surveys)
    assert any(s.sent_at is None for s in rated)
    assert {(s.breached, s.recovered) for s in rated} == {
        (False, False),
        (True, False),
        (True, True),
    }
    assert len(month.truth.recoveries) > 100
    assert {h.agent_id for h in month.truth.segments} >= {"a1", "b1", "k1"}
    for table in ("csat", "handle"):
        rows = month.questdb.query(
            f"SELECT channel, count() FROM {month.prefix}{table} ORDER BY channel"  # noqa: S608
        )
        assert [r[0] for r in rows] == ["whatsapp"], table


def test_scorecard_satisfaction_and_effort_equal_the_records(
    month: Month, scorecard: tuple[dict[str, str], list[Clock]]
) -> None:
    """The agent's week: surveys sent and rated, response rate, CSAT %, mean rating, AHT and
    first-contact resolution equal the figures folded from the records."""
    variables, _ = scorecard
    agent = variables["agent"]
    _, start, end = last_full_week(now_ms())
    surveys, segments = week_of(month, start, end)
    expected = satisfaction(
        month,
        [s for s in surveys if s.agent_id == agent],
        [h for h in segments if h.agent_id == agent],
        [c for c in resolved_cycles(month, start, end) if c.last.agent_id == agent],
        start,
    )
    assert expected.rated > 0 and expected.fcr_pct is not None and expected.aht_s is not None
    [row] = month.run("sc_satisfaction", variables)
    assert expected.matches(row), (row, expected)


def test_scorecard_satisfaction_per_team_equals_the_records(month: Month) -> None:
    """Per team (every agent, last week): the same figures and the team's compliance."""
    week, start, end = last_full_week(now_ms())
    surveys, segments = week_of(month, start, end)
    resolved = resolved_cycles(month, start, end)
    clocks = [c for c in month.truth.clocks if start <= c.last.started_at < end]
    teams = {s.team_id for s in surveys} | {h.team_id for h in segments}
    teams |= {c.last.team_id for c in resolved} | {c.last.team_id for c in clocks}
    teams.discard(None)
    rows = month.run("sc_satisfaction_by_team", {"week": week, "agent": "nobody"})
    assert [r[0] for r in rows] == sorted(str(t) for t in teams)
    assert {r[0] for r in rows} >= {"sales", "support", "backoffice"}
    for row in rows:
        team = row[0]
        expected = satisfaction(
            month,
            [s for s in surveys if s.team_id == team],
            [h for h in segments if h.team_id == team],
            [c for c in resolved if c.last.team_id == team],
            start,
        )
        assert expected.matches(row[1:]), (team, row, expected)
        own = [c for c in clocks if c.last.team_id == team]
        assert near(row[8], compliance(own), 1e-9) or (row[8] is None and compliance(own) is None)


def test_satisfaction_panels_keep_the_chosen_channel(
    month: Month, scorecard: tuple[dict[str, str], list[Clock]]
) -> None:
    """Choosing WhatsApp shows what "All" shows; choosing Telegram, which the month never
    used, leaves no survey, segment or resolved cycle in any satisfaction panel."""
    variables, _ = scorecard
    names = ("sc_satisfaction", "sc_satisfaction_by_team", "tr_csat_by_outcome", "tr_csat_by_team")
    for name in names:
        whatsapp = month.run(name, {**variables, "channel": ("whatsapp",)})
        assert whatsapp == month.run(name, variables), name
    [row] = month.run("sc_satisfaction", {**variables, "channel": ("telegram",)})
    assert row == (0, 0, None, None, None, None, None)
    assert month.run("sc_satisfaction_by_team", {**variables, "channel": ("telegram",)}) == []
    assert month.run("tr_csat_by_outcome", {"channel": ("telegram",)}) == []


def test_trends_csat_by_outcome_and_per_team_equal_the_records(month: Month) -> None:
    """Rated surveys of the last 30 days by what happened in their cycle (met, breached and
    recovered, breached without recovery), and CSAT % per team and local day."""
    since = local_midnight(now_ms(), 29)
    rated = [s for s in month.truth.surveys if s.rating is not None and s.survey_at >= since]
    groups: dict[str, list[int]] = defaultdict(list)
    per_day: dict[tuple[int, str], list[int]] = defaultdict(list)
    for s in rated:
        assert s.rating is not None
        outcome = (
            "1 met"
            if not s.breached
            else "2 breached, recovered"
            if s.recovered
            else "3 breached, no recovery"
        )
        groups[outcome].append(s.rating)
        if s.team_id is not None:
            per_day[(local_midnight(s.survey_at), s.team_id)].append(s.rating)
    rows = month.run("tr_csat_by_outcome")
    assert [r[0] for r in rows] == sorted(groups) and len(groups) == 3
    for outcome, ratings, csat, mean in rows:
        group = groups[outcome]
        assert ratings == len(group)
        assert near(csat, pct(sum(r >= 4 for r in group), len(group)), 1e-9), outcome
        assert near(mean, sum(group) / len(group), 1e-9), outcome
    got = {(to_ms(r[0]), r[1]): r[2] for r in month.run("tr_csat_by_team")}
    assert got.keys() == per_day.keys()
    for key, value in got.items():
        group = per_day[key]
        assert near(value, pct(sum(r >= 4 for r in group), len(group)), 1e-9), key


# -- trends ----------------------------------------------------------------------------------


def test_trends_equal_the_records(month: Month) -> None:
    """Daily compliance, by lead source, weekday and hour, causes by week and chats per day."""
    since = local_midnight(now_ms(), 29)
    zone = ZoneInfo(TZ)
    clocks = [c for c in month.truth.clocks if c.last.started_at >= since]
    by_day: dict[int, list[Clock]] = defaultdict(list)
    by_source: dict[str, list[Clock]] = defaultdict(list)
    by_weekday: dict[str, list[Clock]] = defaultdict(list)
    by_hour: dict[str, list[Clock]] = defaultdict(list)
    for c in clocks:
        local = datetime.fromtimestamp(c.last.started_at / 1000, tz=UTC).astimezone(zone)
        by_day[local_midnight(c.last.started_at)].append(c)
        if c.last.lead_source is not None:
            by_source[c.last.lead_source].append(c)
        by_weekday[f"{local.isoweekday()} {local.strftime('%a')}"].append(c)
        by_hour[f"{local.hour:02d}"].append(c)

    daily = {to_ms(r[0]): r[1] for r in month.run("tr_daily_compliance")}
    assert daily.keys() == by_day.keys()
    for day, pct in daily.items():
        assert near(pct, compliance(by_day[day]), 1e-9), day
    sources = dict(month.run("tr_by_lead_source"))
    assert sources.keys() == by_source.keys()
    for source, pct in sources.items():
        assert near(pct, compliance(by_source[source]), 1e-9)
    for name, groups in (("tr_by_weekday", by_weekday), ("tr_by_hour", by_hour)):
        rows = dict(month.run(name))
        decided = {k: v for k, v in groups.items() if compliance(v) is not None}
        assert rows.keys() == decided.keys(), name
        for key, pct in rows.items():
            assert near(pct, compliance(decided[key]), 1e-9), (name, key)
    weekly: dict[tuple[int, str], int] = defaultdict(int)
    for c in clocks:
        if c.breached:
            local = datetime.fromtimestamp(c.last.started_at / 1000, tz=UTC).astimezone(zone)
            weekly[(local_midnight(c.last.started_at, local.weekday()), str(c.cause))] += 1
    rows = month.run("tr_causes_by_week")
    assert {(to_ms(r[0]), str(r[1])): r[2] for r in rows} == weekly
    chats: dict[int, int] = defaultdict(int)
    for c in month.truth.where(metric="first_response", seq=1):
        if c.last.started_at >= since and c.last.status != "cancelled":
            chats[local_midnight(c.last.started_at)] += 1
    volume = {to_ms(r[0]): r[1] for r in month.run("tr_daily_volume")}
    assert volume == chats


def test_compliance_tier_vs_conversion_equals_the_records(month: Month) -> None:
    """Resolved cycles grouped by how many of their other chat clocks were met, and won."""
    since = local_midnight(now_ms(), 29)
    met: dict[tuple[str, int], int] = defaultdict(int)
    decided: dict[tuple[str, int], int] = defaultdict(int)
    for c in month.truth.clocks:
        r = c.last
        if r.started_at < since or r.metric in CHAT or r.metric == "resolution":
            continue
        if c.met or c.breached:
            decided[(r.conversation_id, r.cycle)] += 1
            met[(r.conversation_id, r.cycle)] += c.met
    tiers: dict[str, list[str]] = defaultdict(list)
    for c in month.truth.where(metric="resolution"):
        r, key = c.last, (c.last.conversation_id, c.last.cycle)
        if r.started_at < since or r.status not in ("met", "stopped") or key not in decided:
            continue
        if met[key] == decided[key]:
            tier = "1 all met"
        elif 2 * met[key] >= decided[key]:
            tier = "2 half or more met"
        else:
            tier = "3 mostly breached"
        tiers[tier].append(month.outcomes[r.conversation_id])
    rows = month.run("tr_tier_conversion")
    assert [r[0] for r in rows] == sorted(tiers) and len(tiers) == 3
    for tier, resolved, pct in rows:
        outcomes = tiers[tier]
        assert resolved == len(outcomes)
        assert near(pct, 100.0 * outcomes.count("won") / len(outcomes), 1e-9), tier


# -- alert rules, evaluated as Grafana does --------------------------------------------------


def evaluate(alert: AlertQuery, rows: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], float]:
    """Grafana's evaluation of a table-format alert query: one series per label set (the
    string columns), reduced to its last value, then the threshold. Returns the firing series.
    """
    assert all(len(r) == len(alert.columns) for r in rows)
    series: dict[tuple[Any, ...], float] = {}
    for row in rows:
        labels, value = tuple(row[:-1]), row[-1]
        assert labels not in series, f"{alert.name}: two rows with the labels {labels}"
        assert isinstance(value, int | float) or value is None
        series[labels] = value
    return {k: v for k, v in series.items() if alert.fires(v)}


def alert(name: str) -> AlertQuery:
    found = QUERIES[name]
    assert isinstance(found, AlertQuery)
    return found


def test_urgent_breach_alert_fires_per_conversation_and_metric(month: Month) -> None:
    """The urgent-breach rule fires once per running breached P1/VIP/hot-lead clock pair."""
    rule = alert("al_urgent_breach")
    firing = evaluate(rule, month.run(rule.name))
    expected: dict[tuple[Any, ...], int] = defaultdict(int)
    for c in open_clocks(month):
        r = c.last
        urgent = r.priority == "P1" or r.segment == "vip" or r.lead_source in URGENT_SOURCES
        if r.breached and urgent:
            expected[(r.conversation_id, r.metric, r.agent_id, r.team_id)] += 1
    assert firing == expected
    assert expected


def test_team_ola_breach_alert_fires_per_team_and_p1_p2_conversation(month: Month) -> None:
    """The team OLA rule fires once per owning team and P1/P2 conversation whose stint breached
    and still runs, labelled with that team (P3/P4 and ended stints never fire)."""
    rule = alert("al_team_ola_breach")
    firing = evaluate(rule, month.run(rule.name))
    expected: dict[tuple[Any, ...], int] = defaultdict(int)
    for c in stints(month):
        r = c.last
        if c.open and r.breached and r.priority in ("P1", "P2"):
            expected[(r.team_id, r.conversation_id, r.priority)] += 1
    assert firing == expected
    assert {labels[0] for labels in expected} >= {"sales", "support"}


def test_window_closing_alert_fires_for_urgent_windows_under_an_hour(month: Month) -> None:
    """The window rule fires for VIP/hot-lead windows with under 60 minutes left, no others."""
    rule = alert("al_window_closing")
    firing = evaluate(rule, month.run(rule.name))
    now = now_ms()
    expected = {}
    edge = set()
    for c in month.truth.where(metric="service_window"):
        r = c.last
        if c.open and not r.breached and (r.segment == "vip" or r.lead_source in URGENT_SOURCES):
            assert r.deadline_at is not None
            minutes = (r.deadline_at - now) / 60_000
            if abs(minutes - 60) < 1:
                edge.add(r.conversation_id)
            elif minutes < 60:
                expected[r.conversation_id] = minutes
    got = {labels[0]: v for labels, v in firing.items() if labels[0] not in edge}
    assert got.keys() == expected.keys()
    for conv, minutes in expected.items():
        assert near(got[conv], minutes, 1)


def test_compliance_alerts_fire_for_teams_and_agents_under_target(month: Month) -> None:
    """Team-today (< 90 %) and agent-7-day (< 80 %) rules fire exactly for those under target."""
    now = now_ms()
    today, week = local_midnight(now), local_midnight(now, 6)
    teams: dict[str, list[Clock]] = defaultdict(list)
    agents: dict[str, list[Clock]] = defaultdict(list)
    for c in month.truth.clocks:
        if c.last.team_id is not None and c.last.started_at >= today:
            teams[c.last.team_id].append(c)
        if c.last.agent_id is not None and c.last.started_at >= week:
            agents[c.last.agent_id].append(c)
    for name, groups, target in (
        ("al_team_compliance", teams, 90),
        ("al_agent_compliance_7d", agents, 80),
    ):
        rule = alert(name)
        rows = month.run(name)
        values = {k: compliance(v) for k, v in groups.items() if compliance(v) is not None}
        assert {r[0]: r[1] for r in rows}.keys() == values.keys(), name
        firing = evaluate(rule, rows)
        assert {k[0] for k in firing} == {k for k, v in values.items() if v < target}, name


def team_csat_7d(ratings: list[CsatRecord], now: int) -> dict[str, float]:
    """Per team with enough ratings in the last 7 local days, their CSAT % (the alert's value)."""
    week = local_midnight(now, 6)
    per_team: dict[str, list[int]] = defaultdict(list)
    for s in ratings:
        if s.rating is not None and s.team_id is not None and (s.rated_at or 0) >= week:
            per_team[s.team_id].append(s.rating)
    return {
        team: 100.0 * sum(r >= 4 for r in got) / len(got)
        for team, got in per_team.items()
        if len(got) >= CSAT_MIN_RATINGS
    }


def test_team_csat_alert_fires_for_teams_under_target_over_7_days(month: Month) -> None:
    """The team CSAT rule gives each team with 5 or more ratings in 7 local days its CSAT %,
    and fires for those under 80 % (in the month, sales pleases less than support)."""
    rule = alert("al_team_csat_7d")
    values = team_csat_7d(month.truth.surveys, now_ms())
    rows = month.run(rule.name)
    assert {r[0]: r[1] for r in rows}.keys() == values.keys()
    for team, value in rows:
        assert near(value, values[team], 1e-9), team
    firing = evaluate(rule, rows)
    assert {k[0] for k in firing} == {t for t, v in values.items() if v < CSAT_TARGET_PCT}
    assert "sales" in values


def test_team_csat_alert_needs_five_ratings_of_the_last_seven_days(
    stack: Endpoints, questdb: QuestDB
) -> None:
    """Four bad ratings give no alert, 80 % exactly does not fire, 60 % fires; a rating older
    than 7 local days, or a survey only sent, does not count."""
    prefix = new_prefix()
    now = now_ms()
    old = local_midnight(now, 7) - 60_000

    def rated(team: str, n: int, rating: int, at: int = now - 60_000) -> list[Record]:
        return [
            CsatRecord(f"c-{team}-{i}-{at}", 1, "S", at - 1_000, at, rating, "a", team, "p",
                       False, False, channel="whatsapp")
            for i in range(n)
        ]  # fmt: skip

    records = [
        *rated("few", 4, 1),
        *rated("even", 4, 5),
        *rated("even", 1, 2, now - 120_000),
        *rated("low", 3, 4),
        *rated("low", 2, 1, now - 120_000),
        *rated("low", 5, 5, old),
        CsatRecord("c-sent", 1, "S", now, None, None, "a", "low", "p", False, False),
    ]
    try:
        write(stack, prefix, records, [])
        settle(questdb, prefix)
        rule = alert("al_team_csat_7d")
        rows = questdb.query(rule.render(prefix, TZ))
        assert sorted(rows) == [("even", 80.0), ("low", 60.0)]
        assert {labels[0] for labels in evaluate(rule, rows)} == {"low"}
    finally:
        drop_tables(questdb, prefix)


def test_unassigned_alert_fires_after_five_minutes(month: Month) -> None:
    """The unassigned rule fires for conversations waiting for an agent more than 5 minutes."""
    rule = alert("al_unassigned")
    firing = evaluate(rule, month.run(rule.name))
    now = now_ms()
    waiting = {
        c.last.conversation_id: (now - c.last.started_at) / 60_000
        for c in month.truth.where(metric="assignment")
        if c.open
    }
    edge = {k for k, v in waiting.items() if abs(v - 5) < 1}
    got = {k[0] for k in firing} - edge
    assert got == {k for k, v in waiting.items() if v > 5} - edge
    assert got


@pytest.mark.parametrize(
    ("beat_age_s", "fires"), [(5, False), (300, True)], ids=["fresh", "stalled"]
)
def test_stalled_monitor_alert(
    stack: Endpoints, questdb: QuestDB, beat_age_s: int, fires: bool
) -> None:
    """The stalled rule fires when the last heartbeat is older than 60 s, not before."""
    prefix = new_prefix()
    try:
        now = now_ms()
        beats = [
            Heartbeat(worker="0", at=now - beat_age_s * 1000 - 600_000),
            Heartbeat(worker="1", at=now - beat_age_s * 1000),
        ]
        write(stack, prefix, [], beats)
        settle(questdb, prefix)
        rule = alert("al_monitor_stalled")
        rows = questdb.query(rule.render(prefix, TZ))
        assert len(rows) == 1
        assert bool(evaluate(rule, rows)) is fires
    finally:
        drop_tables(questdb, prefix)


def test_stalled_monitor_alert_has_no_data_before_the_first_heartbeat(
    stack: Endpoints, questdb: QuestDB
) -> None:
    """With no heartbeat at all the rule's query returns no rows (NoData, alerting by design)."""
    prefix = new_prefix()
    try:
        write(stack, prefix, [], [])
        settle(questdb, prefix)
        assert questdb.query(alert("al_monitor_stalled").render(prefix, TZ)) == []
    finally:
        drop_tables(questdb, prefix)


@pytest.mark.parametrize(("recent", "fires"), [(3, False), (12, True)], ids=["few", "rising"])
def test_dead_letter_alert(stack: Endpoints, questdb: QuestDB, recent: int, fires: bool) -> None:
    """The dead-letter rule fires above 10 in the last 5 minutes; older ones do not count."""
    prefix = new_prefix()
    try:
        writer = QuestDBWriter(stack.questdb_ilp_conf, prefix=prefix, report_timezone=TZ)
        writer.ensure_tables()
        now = now_ms()
        old = [DeadLetter(reason="bad", raw="{}", source=f"old:{i}") for i in range(20)]
        writer.write_batch(old, emitted_at_ms=now - 600_000)
        new = [DeadLetter(reason="bad", raw="{}", source=f"new:{i}") for i in range(recent)]
        writer.write_batch(new, emitted_at_ms=now)
        writer.close()
        settle(questdb, prefix)
        rule = alert("al_dead_letters")
        rows = questdb.query(rule.render(prefix, TZ))
        assert rows == [(recent,)]
        assert bool(evaluate(rule, rows)) is fires
    finally:
        drop_tables(questdb, prefix)


# -- cost ------------------------------------------------------------------------------------


def test_every_query_is_cheap_on_a_month(month: Month, capsys: pytest.CaptureFixture[str]) -> None:
    """Every panel and alert query answers within 1 s on a replayed month (median of 5 runs)."""
    week, _, _ = last_full_week(now_ms())
    agent = month.truth.clocks[0].last.agent_id or "a1"
    timings: dict[str, float] = {}
    with month.questdb.connect() as conn:
        for name, q in QUERIES.items():
            sql = q.render(month.prefix, TZ, {"agent": agent, "week": week, **ALL})
            runs = []
            for _ in range(5):
                started = time.perf_counter()
                conn.execute(sql).fetchall()
                runs.append(time.perf_counter() - started)
            timings[name] = sorted(runs)[2] * 1000
    clocks = len(month.truth.clocks)
    with capsys.disabled():
        print(f"\nquery cost on a replayed month ({clocks} clocks), median of 5 runs:")
        for name, ms in timings.items():
            print(f"  {name:32s} {ms:7.1f} ms")
    assert max(timings.values()) < 1000, timings


def test_scorecard_variables_list_agents_and_local_weeks(month: Month) -> None:
    """The agent variable lists every agent; the week variable every local Monday, newest first."""
    agents = sorted({c.last.agent_id for c in month.truth.clocks if c.last.agent_id is not None})
    assert [r[0] for r in month.run("var_agent")] == agents
    zone = ZoneInfo(TZ)
    mondays = set()
    for c in month.truth.clocks:
        local = datetime.fromtimestamp(c.last.started_at / 1000, tz=UTC).astimezone(zone)
        mondays.add((local.date() - timedelta(days=local.weekday())).isoformat())
    weeks = [r[0] for r in month.run("var_week")]
    assert weeks == sorted(mondays, reverse=True)
    assert last_full_week(now_ms())[0] in weeks


def test_a_breach_closed_by_a_resolve_is_not_breached_now(
    stack: Endpoints, questdb: QuestDB
) -> None:
    """A breached clock ended by `resolved` (status `closed`) leaves "breached now" and the
    urgent alert, and still counts as breached in today's compliance."""
    prefix = new_prefix()
    start = now_ms() - 20 * 60_000
    deadline = start + 5 * 60_000
    resolve = start + 15 * 60_000
    records = [
        sla("started", conv="c-closed", started_at=start, priority="P1"),
        sla(
            "breached", conv="c-closed", started_at=start, at=deadline, cause="agent", priority="P1"
        ),
        sla("started", conv="c-open", started_at=start, priority="P1"),
        sla("breached", conv="c-open", started_at=start, at=deadline, cause="agent", priority="P1"),
        sla("started", conv="c-met", started_at=start),
        sla("met", conv="c-met", started_at=start, at=start + 60_000),
    ]
    try:
        write(stack, prefix, records, [])
        settle(questdb, prefix)
        assert questdb.query(QUERIES["breached_now"].render(prefix, TZ, ALL)) == [(2,)]
        closed = sla(
            "closed",
            conv="c-closed",
            started_at=start,
            at=resolve,
            breached=True,
            priority="P1",
            stopped_at=resolve,
        )
        write(stack, prefix, [closed], [])
        settle(questdb, prefix)
        assert questdb.query(QUERIES["breached_now"].render(prefix, TZ, ALL)) == [(1,)]
        firing = evaluate(
            alert("al_urgent_breach"), questdb.query(QUERIES["al_urgent_breach"].render(prefix, TZ))
        )
        assert [labels[0] for labels in firing] == ["c-open"]
        today = local_midnight(now_ms())
        if start >= today:
            pct = questdb.query(QUERIES["compliance_today"].render(prefix, TZ, ALL))[0][0]
            assert pct == pytest.approx(100.0 / 3)
        feed = questdb.query(QUERIES["breach_feed"].render(prefix, TZ, ALL))
        if deadline >= today:
            assert sorted(r[1] for r in feed) == ["c-closed", "c-open"]
    finally:
        drop_tables(questdb, prefix)
