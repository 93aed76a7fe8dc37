"""Every dashboard and alert query, run on a replayed month in the real QuestDB, against truth.

The month is generated traffic with late events, run through the real engine and written with
the monitor's own writer (which also creates the materialized views). Expected numbers are
folded from the SLA records in Python (`tests.reportkit.Truth`), never from SQL.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from flows.connectors.questdb import Heartbeat, QuestDBWriter, TableNames
from flows.connectors.questdb_views import ViewNames
from flows.core.records import Record
from flows.reports.queries import QUERIES
from flows.stack import Endpoints
from tests.conftest import QuestDB
from tests.questdbkit import drop_tables, new_prefix, now_ms, to_ms
from tests.reportkit import TZ, Clock, Truth, compliance, local_midnight, replay_month

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# Seconds pass between the Python truth and the query on a busy machine.
SLACK_S = 30.0
CHAT = {"cadence", "service_window"}
URGENT_SOURCES = {"demo_request", "pricing"}


@dataclass(frozen=True)
class Month:
    """A month of records stored under `prefix`, and the truth folded from them."""

    prefix: str
    end: int
    truth: Truth
    questdb: QuestDB

    def run(self, name: str, variables: dict[str, str] | None = None) -> list[tuple[Any, ...]]:
        """Run the named shared query on this month's tables."""
        sql = QUERIES[name].render(self.prefix, TZ, variables)
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
        until=lambda rows: bool(rows) and rows[0][0] == clocks,
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
        yield Month(prefix, end, Truth(records), questdb)
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
        "unassigned_waiting": sum(1 for c in running if c.last.metric == "assignment"),
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
    assert times, "the month must have first responses today"
    low, high = times[(len(times) - 1) // 2], times[len(times) // 2]
    actual = month.run("median_first_response_today")[0][0]
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
    assert any(r[5] == "paused" for r in rows) or not any(
        c.last.status == "paused" and left < listed[len(rows) - 1][0] for left, c in listed
    )
    lefts = [r[6] for r in rows]
    assert lefts == sorted(lefts)
    by_key: dict[tuple[str, str], list[Clock]] = defaultdict(list)
    for _, c in listed:
        by_key[(c.last.conversation_id, c.last.metric)].append(c)
    for conv, metric, agent, team, priority, state, left in rows:
        assert any(
            (c.last.agent_id, c.last.team_id, c.last.priority) == (agent, team, priority)
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
    rows = {r[0]: (r[3], r[4]) for r in month.run("leads_short")}
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
