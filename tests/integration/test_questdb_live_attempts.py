"""Live attempt counts and the channel filter, read with the committed dashboards' own SQL.

A lead's events go through the real engine one at a time (`replay_records` over the events so
far); each step's new records go through the monitor's writer into a real QuestDB, and the
panels' SQL is taken from the committed dashboard files, filled in as Grafana fills it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from flows.connectors.questdb import QuestDBWriter, TableNames
from flows.core.policies import parse_policies
from flows.core.records import Record, SlaRecord
from flows.devstack import Endpoints
from flows.replay import replay_records
from flows.reports.builders import scorecard_report
from flows.reports.data import ReportStore
from tests.conftest import QuestDB
from tests.integration.test_report_truth import settle
from tests.questdbkit import MINUTE, drop_tables, new_prefix, now_ms, panel_sql, variable_sql

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

TZ = "Asia/Jakarta"
POLICIES = parse_policies(
    """
policies:
  - id: leads
    when: {lead_source: [demo_request]}
    targets:
      contact_attempts: {min: 5, within: 80m, gap: 10m, warn_at: 0.75}
"""
)
WALLBOARD = "slawatch-wallboard"
LEADS = "Leads short of contact attempts"
AT_RISK = "At risk (target 0)"
BREACHED = "Breached now (target 0)"
RUNNING = "Running clocks by time left"


def event(type_: str, conv: str, at: int, **fields: Any) -> dict[str, Any]:
    """One SPEC §1 event of type `type_` at epoch ms `at`."""
    return {
        "event_id": uuid.uuid4().hex,
        "type": type_,
        "conversation_id": conv,
        "occurred_at": at,
        **fields,
    }


def lead(conv: str, t0: int, channel: str) -> list[dict[str, Any]]:
    """A demo request written on `channel` at `t0`, assigned to a1 two seconds later."""
    return [
        event("conversation", conv, t0, action="opened", lead_source="demo_request"),
        event("message", conv, t0 + 1_000, direction="inbound", author="customer", channel=channel),
        event("assignment", conv, t0 + 2_000, action="assigned", agent_id="a1"),
    ]


def call(conv: str, at: int) -> dict[str, Any]:
    """An unanswered call by a1: a contact attempt that does not reach the customer."""
    return event("activity", conv, at, kind="call", agent_id="a1", outcome="no_answer")


def update(conv: str, at: int, priority: str) -> dict[str, Any]:
    """An attribute update: no attempt, but it moves the watermark (warnings, breaches fire)."""
    return event("conversation", conv, at, action="updated", priority=priority)


class Feed:
    """Sends events one by one through the engine and the writer, as the live monitor would."""

    def __init__(self, stack: Endpoints, questdb: QuestDB, prefix: str) -> None:
        self.questdb = questdb
        self.prefix = prefix
        self.events: list[bytes] = []
        self.records: list[Record] = []
        self.writer = QuestDBWriter(stack.questdb_ilp_conf, prefix=prefix, report_timezone=TZ)
        self.writer.ensure_tables()

    def send(self, *events: dict[str, Any]) -> list[SlaRecord]:
        """Apply `events`, write the records they add, and wait until QuestDB shows them.

        Events are sent in time order (each send after the previous one's), as they happen.
        """
        self.events += [orjson.dumps(e) for e in events]
        until = max(orjson.loads(e)["occurred_at"] for e in self.events)
        records = list(replay_records(self.events, POLICIES, until=until, lateness_ms=5_000))
        # The engine is a function of the events: the new run extends the previous one.
        assert records[: len(self.records)] == self.records
        new = records[len(self.records) :]
        self.records = records
        self.writer.write_batch(new, emitted_at_ms=now_ms())
        assert self.writer.flush()
        settle(self.questdb, self.prefix)
        return [r for r in new if isinstance(r, SlaRecord)]

    def panel(self, title: str, board: str = WALLBOARD, **values: Any) -> list[tuple[Any, ...]]:
        """The rows of a committed dashboard panel's SQL, run on this feed's tables."""
        return self.questdb.query(panel_sql(board, title, self.prefix, **values))

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
def feed(stack: Endpoints, questdb: QuestDB) -> Iterator[Feed]:
    """A writer on fresh tables, fed by the real engine."""
    prefix = new_prefix()
    feed = Feed(stack, questdb, prefix)
    try:
        yield feed
    finally:
        feed.close()
        drop_tables(questdb, prefix)


def local_monday(ms: int) -> str:
    """The local (TZ) Monday of the week of `ms`, as the scorecard's `$week` holds it."""
    local = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(ZoneInfo(TZ))
    return (local.date() - timedelta(days=local.weekday())).isoformat()


def test_the_leads_panel_counts_each_attempt_and_the_clock_keeps_its_state(feed: Feed) -> None:
    """Attempts sent one by one show 1, 2, 3 on the wallboard; warned and breached states stay."""
    t0 = now_ms() - 95 * MINUTE
    conv = "lead-live"
    started = feed.send(*lead(conv, t0, "telegram"))
    assert [(r.metric, r.status) for r in started] == [("contact_attempts", "started")]
    assert [r[3:6] for r in feed.panel(LEADS)] == [("telegram", 0, 5)]

    seen = []
    for at in (t0 + 5 * MINUTE, t0 + 20 * MINUTE):
        (record,) = feed.send(call(conv, at))
        assert record.status == "attempt"
        (row,) = feed.panel(LEADS)
        seen.append(row[4])
        assert feed.panel(AT_RISK) == [(0,)]
    # The warning fires at 60 min (75 % of 80 min) when an update moves the watermark past it.
    assert [r.status for r in feed.send(update(conv, t0 + 62 * MINUTE, "P2"))] == ["warning"]
    assert feed.panel(AT_RISK) == [(1,)]
    (record,) = feed.send(call(conv, t0 + 70 * MINUTE))
    assert (record.status, record.attempts) == ("attempt", 3)
    (row,) = feed.panel(LEADS)
    seen.append(row[4])
    assert seen == [1, 2, 3]
    assert feed.panel(AT_RISK) == [(1,)], "an attempt must not take the warning away"
    stored = feed.questdb.query(
        f"SELECT status, attempts, open FROM {TableNames(feed.prefix).clocks}"  # noqa: S608
    )
    assert stored == [("warning", 3, True)]

    # The deadline passes with 3 of 5 attempts: breached; a fourth attempt keeps it breached.
    assert [r.status for r in feed.send(update(conv, t0 + 85 * MINUTE, "P1"))] == ["breached"]
    (record,) = feed.send(call(conv, t0 + 88 * MINUTE))
    assert (record.status, record.attempts, record.breached) == ("attempt", 4, True)
    assert feed.panel(LEADS) == []  # breached leads leave "short of attempts"
    assert feed.panel(BREACHED) == [(1,)]
    assert feed.panel(AT_RISK) == [(0,)]
    (clock,) = feed.panel(RUNNING)
    assert (clock[0], clock[5], clock[6]) == (conv, "telegram", "breached")
    # The agent's weekly scorecard reads the live count too: 4 attempts made, the lead short.
    week = {"agent": "a1", "week": local_monday(t0)}
    assert feed.panel("Contact attempts", "slawatch-scorecard", **week) == [(1, 4, 5, 0, 1, 0)]
    # And so does `slawatch report scorecard`.
    store = ReportStore(feed.questdb.endpoints.questdb_pg_conninfo, prefix=feed.prefix)
    monday = date.fromisoformat(local_monday(t0))
    summary = {
        row[0]: row[1:]
        for row in scorecard_report(store, monday, tz=ZoneInfo(TZ)).section("Summary").rows
    }
    assert summary["contact attempts made"] == ("4",)
    assert summary["leads short of the required attempts"] == ("1",)
    events = feed.questdb.query(
        f"SELECT status, attempts FROM {TableNames(feed.prefix).events} ORDER BY at"  # noqa: S608
    )
    assert [s for s, _ in events] == [
        "started",
        "attempt",
        "attempt",
        "warning",
        "attempt",
        "breached",
        "attempt",
    ]
    assert [n for s, n in events if s == "attempt"] == [1, 2, 3, 4]


def test_compliance_never_counts_an_attempt_as_an_outcome(feed: Feed) -> None:
    """A lead with attempts and still running is neither met nor breached in any compliance."""
    t0 = now_ms() - 60 * MINUTE
    feed.send(*lead("lead-open", t0, "whatsapp"), call("lead-open", t0 + MINUTE))
    feed.send(*lead("lead-met", t0 + 2 * MINUTE, "whatsapp"))
    for n in range(5):
        feed.send(call("lead-met", t0 + (3 + 10 * n) * MINUTE))
    # The materialized view refreshes after the clocks table's WAL is applied, not with it:
    # wait for it to catch up with both clocks, then it must count one met, none breached.
    views = feed.questdb.wait_for_rows(
        f"SELECT sum(clocks), sum(met), sum(breached) FROM {feed.prefix}compliance_daily",  # noqa: S608
        until=lambda rows: bool(rows) and rows[0][0] == 2 and (rows[0][1] or 0) >= 1,
        timeout=60,
    )
    assert views == [(2, 1, 0)]
    if t0 >= _local_midnight(now_ms()):
        assert feed.panel("Compliance today (target 95 %)") == [(100.0,)]


def _local_midnight(ms: int) -> int:
    local = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(ZoneInfo(TZ))
    midnight = datetime(local.year, local.month, local.day, tzinfo=ZoneInfo(TZ))
    return int(midnight.timestamp() * 1000)


def test_the_channel_variable_filters_the_panels(feed: Feed) -> None:
    """Choosing Telegram, WhatsApp or All on the wallboard keeps those channels' clocks only."""
    t0 = now_ms() - 30 * MINUTE
    feed.send(*lead("lead-tg", t0, "telegram"), call("lead-tg", t0 + MINUTE))
    later = t0 + 2 * MINUTE
    feed.send(*lead("lead-wa", later, "whatsapp"), *lead("lead-web", later, "web"))

    def leads(**values: Any) -> list[tuple[str, str]]:
        return sorted((r[0], r[3]) for r in feed.panel(LEADS, **values))

    assert leads() == [("lead-tg", "telegram"), ("lead-wa", "whatsapp"), ("lead-web", "web")]
    assert leads(channel=("telegram",)) == [("lead-tg", "telegram")]
    assert leads(channel=("web", "whatsapp")) == [("lead-wa", "whatsapp"), ("lead-web", "web")]
    assert feed.panel("Open conversations", channel=("telegram",)) == [(1,)]
    assert feed.panel("Open conversations") == [(3,)]
    for board in (WALLBOARD, "slawatch-scorecard", "slawatch-trends"):
        options = feed.questdb.query(variable_sql(board, "channel", feed.prefix))
        assert [r[0] for r in options] == ["telegram", "web", "whatsapp"]
