"""`slawatch top` on a seeded real QuestDB: the Grafana wallboard's numbers, in a terminal."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from flows.cli import main
from flows.connectors.questdb import Heartbeat
from flows.devstack import Endpoints
from flows.reports import top
from tests.conftest import QuestDB
from tests.integration.test_report_truth import settle, write
from tests.questdbkit import drop_tables, new_prefix, now_ms
from tests.truthkit import TZ, Truth, compliance, local_midnight, replay_month

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

WALLBOARD_JSON = (
    Path(__file__).resolve().parents[2]
    / "dashboards/provisioning/dashboards/slawatch-wallboard.json"
)


@pytest.fixture(scope="module")
def seeded(stack: Endpoints, questdb: QuestDB) -> Iterator[tuple[str, Truth]]:
    """Three replayed days in fresh tables with a fresh heartbeat."""
    end = now_ms()
    records = replay_month(end, per_day=60, days=3, seed=11)
    prefix = new_prefix()
    try:
        write(stack, prefix, records, [Heartbeat(worker="0", at=now_ms() - 1_000)])
        settle(questdb, prefix)
        yield prefix, Truth(records)
    finally:
        drop_tables(questdb, prefix)


def test_top_reads_the_same_sql_as_the_grafana_wallboard() -> None:
    """Every query `top` runs is the rawSql of a panel of the committed wallboard, and back."""
    panels = json.loads(WALLBOARD_JSON.read_text(encoding="utf-8"))["panels"]
    grafana = {t["rawSql"] for p in panels for t in p["targets"]}
    assert {q.render() for q in top.queries()} == grafana


def test_top_shows_the_wallboard_numbers(seeded: tuple[str, Truth], questdb: QuestDB) -> None:
    """The terminal frame shows the tiles computed from the records and today's breaches."""
    prefix, truth = seeded
    with questdb.connect() as conn:
        board = top.read_wallboard(conn, prefix, TZ)
    running = [c for c in truth.clocks if c.open]
    today = local_midnight(now_ms())
    expected = {
        "open_conversations": len(
            {
                c.last.conversation_id
                for c in running
                if c.last.metric not in ("cadence", "service_window")
            }
        ),
        "at_risk": sum(1 for c in running if not c.last.breached and c.last.status == "warning"),
        "breached_now": sum(1 for c in running if c.last.breached),
        "unassigned_now": sum(1 for c in running if c.last.metric == "assignment"),
        "handovers_waiting": sum(
            1
            for c in running
            if c.last.metric == "team_ownership" and (c.last.breached or c.last.status == "warning")
        ),
    }
    for name, value in expected.items():
        assert board.tiles[name] == value, name
    pct = compliance([c for c in truth.clocks if c.last.started_at >= today])
    if pct is None:  # just after local midnight
        assert board.tiles["compliance_today"] is None
    else:
        assert board.tiles["compliance_today"] == pytest.approx(pct)

    console = Console(width=120, record=True, color_system=None)
    console.print(top.render(board, limit=5))
    text = console.export_text()
    tiles = [t.text(board.tiles[t.query]) for t in top.TILES]
    value_line = next(line for line in text.splitlines() if all(t in line for t in tiles))
    assert re.search(rf"\b{expected['breached_now']}\b", value_line)
    breached_today = sorted(
        (c for c in truth.clocks if c.breached and (c.last.deadline_at or 0) >= today),
        key=lambda c: (-(c.last.deadline_at or 0), c.last.conversation_id, c.last.metric),
    )
    if breached_today:
        newest = breached_today[0]
        assert re.search(rf"{newest.last.conversation_id}\s+│\s+{newest.last.metric}", text)
    short = sorted(
        (c.last.deadline_at or 0, c.last.conversation_id, c.last)
        for c in running
        if c.last.metric == "contact_attempts" and not c.last.breached
    )
    assert short, "the month has leads short of attempts"
    _, conv, lead = short[0]
    made = f"{lead.attempts}/{lead.attempts_required}"
    shown = rf"{conv}\s+│\s+{lead.agent_id}\s+│\s+{lead.channel}\s+│\s+{made}\s+│\s+\d+[hm]"
    assert re.search(shown, text), text
    # The team clocks: the most urgent stint shows its owning team, conversation and number.
    stints = board.tables["team_clocks"]
    assert stints, "the days have team stints running"
    team, conv, stint, agent = stints[0][:4]
    assert any(
        c.last.team_id == team and c.last.seq == stint and c.last.agent_id == agent
        for c in truth.where(metric="team_ownership", conversation_id=conv)
        if c.open
    )
    assert re.search(rf"{team}\s+│\s+{conv}\s+│\s+{stint}\s+│", text), text
    # Running clocks name the team, so an OLA or update clock reads as whose it is.
    first = board.tables["running_clocks"][0]
    assert re.search(rf"{first[0]}\s+│\s+{first[1]}\s+│\s+{first[2] or '-'}\s+│\s+{first[3]}", text)


def test_top_once_from_the_command_line(seeded: tuple[str, Truth], stack: Endpoints) -> None:
    """`slawatch top --once` prints one frame with every section and exits 0."""
    prefix, _ = seeded
    result = CliRunner().invoke(
        main,
        ["top", "--pg", stack.questdb_pg_conninfo, "--prefix", prefix, "--timezone", TZ, "--once"],
        terminal_width=140,
    )
    assert result.exit_code == 0, result.output
    for title in (
        "Breached",
        "Running clocks by time left",
        "Team clocks (OLA) by time left",
        "Agents",
        "Breaches today",
        "WhatsApp windows closing",
        "Leads short of attempts",
    ):
        assert title in result.output


def test_top_says_what_to_do_when_questdb_is_down() -> None:
    """With no QuestDB at the address, one error line says how to start it."""
    result = CliRunner().invoke(
        main, ["top", "--pg", "host=127.0.0.1 port=1 user=admin dbname=qdb", "--once"]
    )
    assert result.exit_code == 1
    assert "cannot read QuestDB" in result.output
    assert "slawatch stack up" in result.output
    assert "Traceback" not in result.output


def test_top_shows_only_the_channels_asked_for(seeded: tuple[str, Truth], questdb: QuestDB) -> None:
    """`--channel` keeps those channels' clocks: the month's WhatsApp chats, none on Telegram."""
    prefix, _ = seeded
    with questdb.connect() as conn:
        every = top.read_wallboard(conn, prefix, TZ)
        whatsapp = top.read_wallboard(conn, prefix, TZ, ("whatsapp",))
        telegram = top.read_wallboard(conn, prefix, TZ, ("telegram",))
    assert every.tiles["open_conversations"]
    assert whatsapp.tiles["open_conversations"] == every.tiles["open_conversations"]
    # Rows as shown, without the seconds left (each query reads its own now()).
    assert [r[:-1] for r in whatsapp.tables["leads_short"]] == [
        r[:-1] for r in every.tables["leads_short"]
    ]
    assert telegram.tiles["open_conversations"] == 0
    assert all(not rows for rows in telegram.tables.values())


def test_top_refuses_a_channel_it_cannot_put_into_sql(stack: Endpoints) -> None:
    """A `--channel` holding a quote is refused in one line, not run as SQL."""
    result = CliRunner().invoke(
        main, ["top", "--pg", stack.questdb_pg_conninfo, "--channel", "x' OR 1=1", "--once"]
    )
    assert result.exit_code == 1
    assert "quote" in result.output and "Traceback" not in result.output
