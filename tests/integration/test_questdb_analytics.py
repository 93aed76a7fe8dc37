"""Every SQL query in docs/ANALYTICS.md, run as written on records seeded through the writer."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from flows.connectors.questdb import Heartbeat, QuestDBWriter, TableNames
from flows.connectors.questdb.views import ViewNames
from flows.core.engine import Engine
from flows.core.events import Event, RetractionEvent
from flows.core.records import CsatRecord, HandleRecord, Record
from flows.devstack import Endpoints
from flows.reports.queries import QUERIES
from tests.conftest import QuestDB
from tests.enginekit import T0, assign, conv_event, inbound, policies, reply
from tests.questdbkit import DAY, EPOCH, HOUR, MINUTE, drop_tables, new_prefix, now_ms, sla

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DOC = Path(__file__).resolve().parents[2] / "docs" / "ANALYTICS.md"
_BLOCK = re.compile(r"```sql\n(.*?)```", re.DOTALL)
_NAME = re.compile(r"--\s*query:\s*(\w+)")
_TABLE = re.compile(r"\bsla_(events|clocks|actions|deadletters|heartbeat|ola_daily|csat|handle)\b")
# Seconds pass between seeding and querying on a busy machine.
SLACK_S = 60


def doc_queries() -> dict[str, str]:
    """Return the doc's SQL blocks by the name in their `-- query:` first line."""
    queries: dict[str, str] = {}
    for block in _BLOCK.findall(DOC.read_text(encoding="utf-8")):
        match = _NAME.match(block)
        assert match is not None, f"a sql block in {DOC.name} has no '-- query: name' line"
        assert match.group(1) not in queries, f"query name {match.group(1)} is used twice"
        queries[match.group(1)] = block
    return queries


Run = Callable[[str, list[Record], list[Heartbeat]], list[tuple[Any, ...]]]


@pytest.fixture
def run_doc_query(stack: Endpoints, questdb: QuestDB) -> Iterator[Run]:
    """Seed fresh tables with records and heartbeats, then run one doc query on them."""
    prefixes: list[str] = []

    def run(name: str, records: list[Record], beats: list[Heartbeat]) -> list[tuple[Any, ...]]:
        prefix = new_prefix()
        prefixes.append(prefix)
        writer = QuestDBWriter(stack.questdb_ilp_conf, prefix=prefix)
        writer.ensure_tables()
        writer.write_batch(records, emitted_at_ms=now_ms())
        for beat in beats:
            writer.write_heartbeat(beat)
        writer.close()
        assert writer.stats.rows_pending == 0
        for table in TableNames(prefix).all():
            questdb.wait_for_wal(table)
        sql = _TABLE.sub(lambda m: prefix + m.group(1), doc_queries()[name])
        if "ola_daily" in sql:  # the view refreshes after the table's commit
            stints = questdb.query(
                f"SELECT count() FROM {prefix}clocks"  # noqa: S608
                " WHERE metric = 'team_ownership' AND status <> 'cancelled'"
            )[0][0]
            questdb.wait_for_rows(
                f"SELECT sum(stints) FROM {ViewNames(prefix).ola_daily}",  # noqa: S608
                until=lambda rows: bool(rows) and (rows[0][0] or 0) == stints,
            )
        return questdb.query(sql)

    yield run
    for prefix in prefixes:
        drop_tables(questdb, prefix)


def utc(ms: int) -> datetime:
    """The naive UTC datetime that PG wire returns for the instant `ms`."""
    return (EPOCH + timedelta(milliseconds=ms)).replace(tzinfo=None)


def floor_week(ms: int) -> int:
    day = ms - ms % DAY
    weekday = (EPOCH + timedelta(milliseconds=day)).weekday()  # Monday = 0
    return day - weekday * DAY


def near(actual: float, expected: float, slack: float = SLACK_S) -> bool:
    return abs(actual - expected) <= slack


def test_every_query_in_the_doc_is_tested() -> None:
    """Adding a query to docs/ANALYTICS.md without a test here fails.

    The dashboards' queries (flows.reports.queries) are tested in test_report_truth.py.
    """
    tested = {
        name.removeprefix("test_")
        for name in globals()
        if name.startswith("test_") and name != "test_every_query_in_the_doc_is_tested"
    }
    assert set(doc_queries()) - set(QUERIES) == tested


def test_compliance_per_agent_week(run_doc_query: Run) -> None:
    """Compliance counts each clock once by its final outcome, per week, agent and metric."""
    w1 = floor_week(now_ms() - 14 * DAY) + DAY  # a Tuesday two weeks ago
    w2 = w1 + 7 * DAY
    fr = "first_response"
    records: list[Record] = [
        # a-1, week 1, first_response: 2 met, 2 breached; cancelled and running ones not counted.
        sla("met", conv="c1", started_at=w1, at=w1 + MINUTE),
        sla("met", conv="c2", started_at=w1, at=w1 + 2 * MINUTE),
        sla("breached", conv="c3", started_at=w1, at=w1 + 5 * MINUTE, cause="agent"),
        sla("stopped", conv="c3", started_at=w1, at=w1 + 9 * MINUTE),
        sla("cancelled", conv="c4", started_at=w1, at=w1 + MINUTE),
        sla("started", conv="c5", started_at=w1),
        sla("breached", conv="c6", started_at=w1, at=w1 + 5 * MINUTE, cause="overloaded"),
        # a-1, week 1, resolution: 1 met.
        sla("met", conv="c1", metric="resolution", started_at=w1, at=w1 + HOUR, target=2 * HOUR),
        # a-2, week 1: a breach corrected to met by a late event; a breach whose clock vanished.
        sla("breached", conv="c7", started_at=w1, at=w1 + 5 * MINUTE, agent="a-2", cause="agent"),
        sla("met", conv="c7", started_at=w1, at=w1 + 3 * MINUTE, agent="a-2", late=True),
        sla("breached", conv="c8", started_at=w1, at=w1 + 5 * MINUTE, agent="a-2", cause="agent"),
        sla("cancelled", conv="c8", started_at=w1, at=w1 + 6 * MINUTE, agent="a-2",
            breached=True, late=True),
        # a-1, week 2: 1 met, 1 breached.
        sla("met", conv="c9", started_at=w2, at=w2 + MINUTE),
        sla("breached", conv="c10", started_at=w2, at=w2 + 5 * MINUTE, cause="agent"),
        # nobody assigned: not an agent's figure.
        sla("breached", conv="c11", metric="assignment", started_at=w2, at=w2 + 5 * MINUTE,
            agent=None, cause="unassigned"),
    ]  # fmt: skip
    rows = run_doc_query("compliance_per_agent_week", records, [])
    week1, week2 = utc(floor_week(w1)), utc(floor_week(w2))
    assert rows == [
        (week1, "a-1", fr, 2, 2, 50.0),
        (week1, "a-1", "resolution", 1, 0, 100.0),
        (week1, "a-2", fr, 1, 0, 100.0),
        (week2, "a-1", fr, 1, 1, 50.0),
    ]


def test_breaches_by_cause_last_month(run_doc_query: Run) -> None:
    """Breaches whose deadline fell in the previous calendar month, per agent and cause."""
    today = datetime.now(UTC)
    this_month = today.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    start = (last_month - EPOCH) // timedelta(milliseconds=1)
    end = (this_month - EPOCH) // timedelta(milliseconds=1)
    target = 5 * MINUTE

    def breach(conv: str, deadline: int, cause: str, agent: str | None = "a-1") -> list[Record]:
        began = deadline - target
        return [sla("breached", conv=conv, started_at=began, at=deadline, cause=cause, agent=agent)]

    records: list[Record] = [
        *breach("b1", start, "agent"),  # the first instant of last month counts
        *breach("b2", start + 2 * DAY, "agent"),
        sla("stopped", conv="b2", started_at=start + 2 * DAY - target, at=start + 2 * DAY + HOUR),
        *breach("b3", start + 3 * DAY, "overloaded"),
        *breach("b4", start + 4 * DAY, "after_hours", agent="a-2"),
        *breach("b5", start + 5 * DAY, "unassigned", agent=None),
        *breach("b6", end, "agent"),  # this month's first instant: not last month
        *breach("b7", start - DAY, "agent"),  # two months ago
        *breach("b8", start + 6 * DAY, "agent"),
        sla("cancelled", conv="b8", started_at=start + 6 * DAY - target, at=start + 6 * DAY + 1,
            breached=True, late=True),  # corrected away
        sla("met", conv="b9", started_at=start + DAY, at=start + DAY + MINUTE),
    ]  # fmt: skip
    rows = run_doc_query("breaches_by_cause_last_month", records, [])
    assert sorted(rows, key=repr) == sorted(
        [("a-1", "agent", 2), ("a-1", "overloaded", 1), ("a-2", "after_hours", 1),
         (None, "unassigned", 1)],
        key=repr,
    )  # fmt: skip
    named = [row for row in rows if row[0] is not None]
    assert named == [("a-1", "agent", 2), ("a-1", "overloaded", 1), ("a-2", "after_hours", 1)]


def test_p90_first_response_per_team_day(run_doc_query: Run) -> None:
    """p90 of counted response times of answered first responses, per team and day."""
    d1 = now_ms() - 3 * DAY
    d1 -= d1 % DAY
    d2 = d1 + DAY
    records: list[Record] = []
    for i, seconds in enumerate(range(10, 101, 10)):  # t-1, day 1: 10 s ... 100 s
        begin = d1 + HOUR + i * MINUTE
        records.append(sla("met", conv=f"x{i}", started_at=begin, at=begin + seconds * 1000))
    for i, seconds in enumerate((30, 60, 120, 240, 480)):  # t-2, day 1; 480 s answered late
        begin = d1 + 2 * HOUR + i * MINUTE
        status = "met" if seconds <= 300 else "stopped"
        records.append(
            sla(status, conv=f"y{i}", started_at=begin, at=begin + seconds * 1000, team="t-2")
        )
    records += [
        sla("met", conv="z1", started_at=d2 + HOUR, at=d2 + HOUR + 45_000),  # t-1, day 2
        # Not answered first responses, and another metric: left out.
        sla("started", conv="z2", started_at=d2 + HOUR),
        sla("breached", conv="z3", started_at=d2 + HOUR, at=d2 + HOUR + 5 * MINUTE, cause="agent"),
        sla("cancelled", conv="z4", started_at=d2 + HOUR, at=d2 + HOUR + MINUTE),
        sla("met", conv="z1", metric="next_response", started_at=d2 + HOUR, at=d2 + 2 * HOUR),
    ]
    rows = run_doc_query("p90_first_response_per_team_day", records, [])
    assert [row[:3] for row in rows] == [
        (utc(d1), "t-1", 10),
        (utc(d1), "t-2", 5),
        (utc(d2), "t-1", 1),
    ]
    for (*_, p90), expected in zip(rows, (90.0, 480.0, 45.0), strict=True):
        assert abs(p90 - expected) <= expected * 0.002


JAKARTA = ZoneInfo("Asia/Jakarta")


def stint(status: str, conv: str, team: str, priority: str, begin: int, **extra: Any) -> Record:
    """A team stint's record (`team_ownership`, 2 h target): breached at 2 h, stopped at 3 h,
    any other status 1 h after `begin` (`started` at it)."""
    hours = {"started": 0, "breached": 2, "stopped": 3}.get(status, 1)
    at = begin + hours * HOUR
    return sla(
        status, conv=conv, metric="team_ownership", team=team, priority=priority,
        started_at=begin, at=at, target=2 * HOUR, **extra,
    )  # fmt: skip


def local_monday(ms: int) -> datetime:
    """The local (Asia/Jakarta) Monday 00:00 of the week of `ms`, naive, as QuestDB shows it."""
    local = datetime.fromtimestamp(ms / 1000, tz=JAKARTA)
    monday = (local - timedelta(days=local.weekday())).date()
    return datetime(monday.year, monday.month, monday.day)  # noqa: DTZ001 - local wall time


def test_ola_per_team_week_priority(run_doc_query: Run) -> None:
    """Per local week, owning team and priority: stints, OLA met and breached, compliance and
    the average budget share of the stints that ended (cancelled ones left out)."""
    tue = datetime.fromtimestamp((now_ms() - 14 * DAY) / 1000, tz=JAKARTA)
    tue = (tue - timedelta(days=tue.weekday() - 1)).replace(hour=10, minute=0, second=0)
    w1 = int(tue.timestamp() * 1000)  # a Tuesday 10:00 in Jakarta, two weeks ago
    w2 = w1 + 7 * DAY
    records = [
        # l1, P1, week 1: met (10 %), breached and fulfilled late (30 %), breached and still
        # running (no share yet), cancelled (left out).
        stint("met", "c1", "l1", "P1", w1, budget_pct=10.0),
        stint("breached", "c2", "l1", "P1", w1, cause="agent"),
        stint("stopped", "c2", "l1", "P1", w1, budget_pct=30.0),
        stint("breached", "c3", "l1", "P1", w1 + HOUR, cause="agent"),
        stint("cancelled", "c4", "l1", "P1", w1, budget_pct=5.0),
        # l2, P1, week 1: the second stint of c1, met.
        stint("met", "c1", "l2", "P1", w1 + HOUR, seq=2, budget_pct=50.0),
        # l1, P2, week 2: running, undecided.
        stint("started", "c5", "l1", "P2", w2),
        # Another metric: not a stint.
        sla("met", conv="c1", started_at=w1, at=w1 + MINUTE),
    ]
    rows = run_doc_query("ola_per_team_week_priority", records, [])
    week1, week2 = local_monday(w1), local_monday(w2)
    assert rows == [
        (week1, "l1", "P1", 3, 1, 2, pytest.approx(33.3), 20.0),
        (week1, "l2", "P1", 1, 1, 0, 100.0, 50.0),
        (week2, "l1", "P2", 1, 0, 0, None, None),
    ]


def test_ola_breaches_last_7_days(run_doc_query: Run) -> None:
    """Breached stints of the last 7 days with target, time held and budget share, per team."""
    t = now_ms() - 2 * DAY
    records = [
        stint("breached", "b1", "l2", "P1", t, cause="agent"),
        stint("stopped", "b1", "l2", "P1", t, budget_pct=37.5),
        stint("breached", "b2", "l1", "P2", t + HOUR, cause="unassigned"),
        stint("met", "b3", "l1", "P1", t, budget_pct=5.0),  # met: not a breach
        stint("cancelled", "b4", "l1", "P1", t, breached=True, budget_pct=1.0),  # withdrawn
        stint("stopped", "b5", "l1", "P1", t - 10 * DAY, budget_pct=60.0),  # too old
    ]
    rows = run_doc_query("ola_breaches_last_7_days", records, [])
    assert rows == [
        ("l1", "b2", 1, 1, "P2", 7200.0, 7200.0, None, "breached"),
        ("l2", "b1", 1, 1, "P1", 7200.0, 10800.0, 37.5, "stopped"),
    ]


def test_ola_budget_per_cycle(run_doc_query: Run) -> None:
    """A cycle handed l1 -> l2 -> l1 shows l1 once with both stints' shares added up; running,
    cancelled and unbudgeted stints are left out."""
    t = now_ms() - DAY
    records = [
        stint("met", "h1", "l1", "P1", t, budget_pct=20.0),
        stint("met", "h1", "l2", "P1", t + HOUR, seq=2, budget_pct=50.0),
        stint("met", "h1", "l1", "P1", t + 2 * HOUR, seq=3, budget_pct=10.0),
        stint("started", "h2", "l1", "P1", t),
        stint("cancelled", "h3", "l1", "P1", t, budget_pct=5.0),
        stint("met", "h4", "l1", "P1", t),  # a policy without a resolution target: no share
    ]
    rows = run_doc_query("ola_budget_per_cycle", records, [])
    assert rows == [("h1", 1, "l1", 2, 30.0), ("h1", 1, "l2", 1, 50.0)]


def test_csat_recovered_vs_breached(run_doc_query: Run) -> None:
    """Rated recovered cycles against breached unrecovered ones; met cycles and unrated left out."""
    t0 = now_ms() - 2 * DAY
    surveys: list[Record] = [
        CsatRecord("c-1", 1, "S1", t0, t0 + MINUTE, 4, "a1", "l1", "p", True, True),
        CsatRecord("c-2", 1, "S2", t0 + 1, t0 + HOUR, 5, "a1", "l1", "p", True, True),
        CsatRecord("c-3", 1, "S3", t0 + 2, t0 + HOUR, 1, "a2", "l1", "p", True, False),
        CsatRecord("c-4", 1, "S4", t0 + 3, t0 + HOUR, 3, "a2", "l1", "p", True, False),
        CsatRecord("c-5", 1, "S5", t0 + 4, t0 + HOUR, 5, "a2", "l1", "p", False, False),
        CsatRecord("c-6", 1, "S6", t0 + 5, None, None, "a2", "l1", "p", True, True),
    ]
    rows = run_doc_query("csat_recovered_vs_breached", surveys, [])
    assert sorted(rows) == [(False, 2, 2.0, 0.0), (True, 2, 4.5, 100.0)]


def test_open_clocks(run_doc_query: Run) -> None:
    """Running clocks, most urgent first; breached clocks closed by a resolve are over."""
    now = now_ms()
    fr, nr = "first_response", "next_response"
    records: list[Record] = [
        sla("started", conv="o1", started_at=now - 2 * MINUTE),  # 3 min left
        sla("paused", conv="o2", metric="resolution", started_at=now - 50 * MINUTE,
            at=now - 5 * MINUTE, target=HOUR),  # 10 min left
        sla("breached", conv="o3", metric=nr, started_at=now - 10 * MINUTE,
            at=now - 5 * MINUTE, cause="agent"),  # 5 min overdue
        # o4: breached, then the cycle was resolved: closed, over.
        sla("breached", conv="o4", metric=nr, started_at=now - 30 * MINUTE,
            at=now - 25 * MINUTE, cause="agent"),
        sla("closed", conv="o4", metric=nr, started_at=now - 30 * MINUTE,
            at=now - 20 * MINUTE),
        sla("met", conv="o4", metric="resolution", started_at=now - 40 * MINUTE,
            at=now - 20 * MINUTE, target=HOUR),
        # o5: a breached cadence clock outlives the resolved cycle.
        sla("breached", conv="o5", metric="cadence", started_at=now - 2 * HOUR,
            at=now - HOUR, target=HOUR, cause="agent"),
        sla("met", conv="o5", metric="resolution", started_at=now - 3 * HOUR,
            at=now - 90 * MINUTE, target=4 * HOUR),
        # A breached service window is over; met clocks are over.
        sla("breached", conv="o6", metric="service_window", started_at=now - 2 * DAY,
            at=now - DAY, target=DAY, cause="agent"),
        sla("met", conv="o7", started_at=now - 3 * MINUTE, at=now - MINUTE),
        # o8: cycle 1 breached and resolved; cycle 2 running with 4 min left.
        sla("breached", conv="o8", started_at=now - 2 * HOUR, at=now - 2 * HOUR + 5 * MINUTE,
            cause="agent"),
        sla("closed", conv="o8", started_at=now - 2 * HOUR, at=now - HOUR),
        sla("stopped", conv="o8", metric="resolution", started_at=now - 2 * HOUR,
            at=now - HOUR, target=30 * MINUTE),
        sla("started", conv="o8", cycle=2, started_at=now - MINUTE),
    ]  # fmt: skip
    rows = run_doc_query("open_clocks", records, [])
    got = [(r[0], r[1], r[2], r[4], r[5]) for r in rows]
    assert got == [
        ("o5", 1, "cadence", "breached", True),
        ("o3", 1, nr, "breached", True),
        ("o1", 1, fr, "started", False),
        ("o8", 2, fr, "started", False),
        ("o2", 1, "resolution", "paused", False),
    ]
    for row, left in zip(rows, (-3600, -300, 180, 240, 600), strict=True):
        assert near(row[-1], left), (row, left)


def test_unassigned_waiting(run_doc_query: Run) -> None:
    """Conversations whose assignment clock runs, longest waiting first."""
    now = now_ms()
    a = "assignment"
    records: list[Record] = [
        sla("started", conv="u1", metric=a, started_at=now - 10 * MINUTE, target=30 * MINUTE),
        sla("breached", conv="u2", metric=a, started_at=now - HOUR, at=now - 55 * MINUTE,
            cause="unassigned", agent=None),
        sla("met", conv="u3", metric=a, started_at=now - HOUR, at=now - 58 * MINUTE),
        sla("breached", conv="u4", metric=a, started_at=now - 3 * HOUR,
            at=now - 3 * HOUR + 5 * MINUTE, cause="unassigned", agent=None),
        sla("closed", conv="u4", metric=a, started_at=now - 3 * HOUR,
            at=now - 2 * HOUR, agent=None),
        sla("met", conv="u4", metric="resolution", started_at=now - 3 * HOUR,
            at=now - 2 * HOUR, target=2 * HOUR, agent=None),
        sla("cancelled", conv="u5", metric=a, started_at=now - HOUR, at=now - 30 * MINUTE),
    ]  # fmt: skip
    rows = run_doc_query("unassigned_waiting", records, [])
    assert [(r[0], r[7]) for r in rows] == [("u2", True), ("u1", False)]
    assert near(rows[0][5], 3600)
    assert near(rows[1][5], 600)


def test_heartbeat_per_worker(run_doc_query: Run) -> None:
    """Each worker's latest heartbeat with its age, stalest first."""
    now = now_ms()
    beats = [
        Heartbeat("0", at=now - 20_000, watermark=now - 25_000, lag_ms=5000, events_in=10),
        Heartbeat("0", at=now - 5_000, watermark=now - 10_500, lag_ms=5500, events_in=20,
                  records_out=8, dead_letters=1),
        Heartbeat("1", at=now - 120_000, watermark=now - 125_000, lag_ms=5000, events_in=3),
    ]  # fmt: skip
    rows = run_doc_query("heartbeat_per_worker", [], beats)
    assert [(r[0], r[3], r[5], r[6], r[7]) for r in rows] == [
        ("1", 5000, 3, 0, 0),
        ("0", 5500, 20, 8, 1),
    ]
    assert near(rows[0][2], 120)
    assert near(rows[1][2], 5)
    assert rows[1][1] == utc(now - 5_000)


def test_heartbeat_age(run_doc_query: Run) -> None:
    """Seconds since any worker last reported, as one number for an alert."""
    now = now_ms()
    beats = [Heartbeat("0", at=now - 40_000), Heartbeat("1", at=now - 15_000)]
    ((age,),) = run_doc_query("heartbeat_age", [], beats)
    assert near(age, 15, slack=SLACK_S / 2)


def _surveys(t0: int) -> list[Record]:
    """Three surveys: a1 rated 5 (met cycle), a1 rated 2 (breached), a2 sent, never rated."""
    return [
        CsatRecord("c-1", 1, "S1", t0, t0 + MINUTE, 5, "a1", "l1", "p", False, False),
        CsatRecord("c-2", 1, "S2", t0 + 1, t0 + HOUR, 2, "a1", "l1", "p", True, False),
        CsatRecord("c-3", 2, "S3", t0 + 2, None, None, "a2", "l1", "p", True, False),
    ]


def test_csat_per_agent_30d(run_doc_query: Run) -> None:
    """Per agent: rated, sent, response rate and CSAT % (ratings of 4-5) over 30 days."""
    rows = run_doc_query("csat_per_agent_30d", _surveys(now_ms() - 2 * DAY), [])
    assert rows == [("a1", 2, 2, 100.0, 50.0), ("a2", 0, 1, 0.0, None)]


def test_csat_breached_vs_met(run_doc_query: Run) -> None:
    """Rated surveys split by whether the cycle breached: count, mean rating, CSAT %."""
    rows = run_doc_query("csat_breached_vs_met", _surveys(now_ms() - 2 * DAY), [])
    assert sorted(rows) == [(False, 1, 5.0, 100.0), (True, 1, 2.0, 0.0)]


HANDLE_POLICIES = policies("policies:\n  - id: support\n    handle: {idle: 10m}\n")


def handle_records(start_ms: int) -> list[Record]:
    """The engine's handle records of five conversations from `start_ms`, a late correction too.

    a-1: c1 (two segments in one cycle: 480 s idle + 300 s resolved) and c2 (360 s, after taking
    over from a-2); a-2: c2 (240 s, reassigned) and c4, whose only reply failed (reported after
    the resolve: withdrawn); c3 has notes only (not counted); b-1 of team l2: c6, 100 s.
    """
    s = (start_ms - T0) / 1000
    m = 60
    events: list[Event] = [
        inbound(s, "c1"), assign(s, "a-1", "c1", team="l1"), reply(s + m, "c1", "a-1"),
        inbound(s + 5 * m, "c1"), reply(s + 8 * m, "c1", "a-1"),
        inbound(s + 60 * m, "c1"), reply(s + 62 * m, "c1", "a-1"),
        conv_event(s + 65 * m, "resolved", "c1"),
        inbound(s, "c2"), assign(s, "a-2", "c2", team="l1"), reply(s + m, "c2", "a-2"),
        assign(s + 4 * m, "a-1", "c2", team="l1"), reply(s + 6 * m, "c2", "a-1"),
        conv_event(s + 10 * m, "updated", "c2", status="pending"),
        inbound(s, "c3"), assign(s, "a-1", "c3", team="l1"),
        reply(s + m, "c3", "a-1", kind="note"), conv_event(s + 2 * m, "resolved", "c3"),
        inbound(s, "c4"), assign(s, "a-2", "c4", team="l1"),
        reply(s + 2 * m, "c4", "a-2", message_id="m4"), conv_event(s + 3 * m, "resolved", "c4"),
        inbound(s, "c6"), assign(s, "b-1", "c6", team="l2"), reply(s + 50, "c6", "b-1"),
        conv_event(s + 100, "resolved", "c6"),
    ]  # fmt: skip
    events.sort(key=lambda e: e.occurred_at)
    engine = Engine(HANDLE_POLICIES)
    out: list[Record] = engine.process(events, events[-1].occurred_at + 2 * HOUR)
    failed = RetractionEvent("f4", "c4", start_ms + 150_000, "m4")
    out += engine.process([failed], events[-1].occurred_at + 3 * HOUR)
    assert [r.end for r in out if isinstance(r, HandleRecord) and r.late] == ["withdrawn"]
    return out


def test_aht_per_agent_30d(run_doc_query: Run) -> None:
    """Counted seconds per cycle handled; a withdrawn segment, notes-only work and segments
    older than 30 days are left out."""
    now = now_ms()
    old = [r for r in handle_records(now - 40 * DAY) if isinstance(r, HandleRecord)]
    old = [r for r in old if r.agent_id == "b-1"]  # 100 s more for b-1, but 40 days ago
    rows = run_doc_query("aht_per_agent_30d", [*handle_records(now - 2 * DAY), *old], [])
    assert rows == [
        ("a-1", 2, 3, 1140.0, 570.0),
        ("a-2", 1, 1, 240.0, 240.0),
        ("b-1", 1, 1, 100.0, 100.0),
    ]


def test_aht_per_team_30d(run_doc_query: Run) -> None:
    """A cycle two agents of one team worked on counts once for the team."""
    rows = run_doc_query("aht_per_team_30d", handle_records(now_ms() - 2 * DAY), [])
    assert rows == [("l1", 2, 4, 1380.0, 690.0), ("l2", 1, 1, 100.0, 100.0)]
