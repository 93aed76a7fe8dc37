"""Multi-level SLAs: team ownership (OLA) stints and periodic updates (SPEC §3, §4)."""

from __future__ import annotations

import pytest

from flows.core.engine import Engine
from flows.core.records import to_json_dict
from flows.core.snapshot import dump_engine, load_engine
from flows.exceptions import PolicyError
from tests.enginekit import (
    actions,
    assign,
    conv_event,
    inbound,
    ms,
    policies,
    reply,
    run,
    sla,
    statuses,
    unassign,
)
from tests.latekit import final_states

pytestmark = pytest.mark.unit

TEAMS = policies(
    """
calendars:
  office:
    timezone: UTC
    weekly:
      mon: ["08:00-17:00"]
      tue: ["08:00-17:00"]
policies:
  - id: p1
    when: {priority: P1}
    targets:
      resolution: {within: 2h}
      team_ownership: {l1: 10m, l2: 1h}
  - id: office
    when: {segment: office}
    calendar: office
    targets:
      resolution: {within: 8h}
      team_ownership: {l1: 30m}
  - id: default
    targets:
      first_response: {within: 5m}
      resolution: {within: 8h, pause_when: [pending]}
      update: {every: 2h, pause_when: [pending]}
      team_ownership: {l1: 30m, l2: {within: 4h, pause_when: [pending], warn_before: 1h}}
    escalations:
      - {on: warning, metric: team_ownership, notify: supervisor}
      - {on: breached, metric: team_ownership, reassign: true}
      - {on: breached, metric: update, notify: supervisor}
teams:
  l1: {agents: [a1, a2], supervisor: s-l1}
  l2: {agents: [a3, a4], supervisor: s-l2}
"""
)
HOUR = 3600


def _stints(records: list) -> list[tuple[int, str, str | None, float]]:
    return [
        (r.seq, r.status, r.team_id, (r.at - ms(0)) / 1000) for r in sla(records, "team_ownership")
    ]


def test_a_hand_over_ends_one_team_stint_met_and_starts_the_next_with_its_own_target() -> None:
    """l1 -> l2: l1's stint is met at the hand-over, l2's runs against l2's 4 h."""
    recs = run(
        [
            conv_event(0, "updated", team_id="l1"),
            inbound(10),
            conv_event(600, "updated", team_id="l2"),
            conv_event(3000, "resolved"),
        ],
        TEAMS,
    )
    assert _stints(recs) == [
        (1, "started", "l1", 10),
        (1, "met", "l1", 600),
        (2, "started", "l2", 600),
        (2, "met", "l2", 3000),
    ]
    team = sla(recs, "team_ownership")
    assert [r.target for r in team if r.status == "started"] == [30 * 60_000, 4 * HOUR * 1000]


def test_each_ending_stint_carries_the_share_of_the_resolution_target_it_used() -> None:
    """budget_pct = the stint's counted time / the cycle's resolution target, on ending records."""
    recs = run(
        [
            inbound(0),
            conv_event(0, "updated", team_id="l1"),
            conv_event(48 * 60, "updated", team_id="l2"),
            conv_event(48 * 60 + 2 * HOUR, "resolved"),
        ],
        TEAMS,
    )
    ending = {
        r.seq: r.budget_pct for r in sla(recs, "team_ownership") if r.status in ("met", "stopped")
    }
    assert ending == {1: pytest.approx(10.0), 2: pytest.approx(25.0)}
    assert all(
        r.budget_pct is None
        for r in sla(recs, "team_ownership")
        if r.status not in ("met", "stopped", "closed", "cancelled")
    )
    encoded = [to_json_dict(r, 0) for r in sla(recs, "team_ownership")]
    # l1 overran its 30 min (stopped after its breach), l2 finished within its 4 h (met).
    assert [e.get("budget_pct") for e in encoded if e["status"] in ("met", "stopped")] == [
        pytest.approx(10.0),
        pytest.approx(25.0),
    ]
    assert all("budget_pct" not in e for e in encoded if e["status"] == "started")


def test_a_team_that_holds_the_case_too_long_breaches_its_ola_with_its_supervisor_told() -> None:
    """l1 owns it past 30 min: warning at 80 % notifies l1's supervisor, breach reassigns in l1."""
    recs = run(
        [
            conv_event(0, "updated", team_id="l1"),
            assign(0, "a1", team="l1"),
            inbound(0),
            conv_event(45 * 60, "updated", team_id="l2"),
        ],
        TEAMS,
    )
    l1 = [r for r in sla(recs, "team_ownership") if r.seq == 1]
    assert [(r.status, (r.at - ms(0)) / 60_000) for r in l1] == [
        ("started", 0),
        ("warning", 24),
        ("breached", 30),
        ("stopped", 45),
    ]
    assert l1[2].cause == "agent"
    assert all(r.team_id == "l1" for r in l1)
    acts = actions(recs)
    assert [(a.action, a.notify, a.to_agent, a.seq) for a in acts] == [
        ("notify", "s-l1", None, 1),
        ("reassign", None, "a2", 1),
    ]


def test_a_new_agent_of_the_same_team_or_unassigned_does_not_end_the_stint() -> None:
    """Changing agents inside l1, then unassigning, leaves one l1 stint running."""
    recs = run(
        [
            assign(0, "a1", team="l1"),
            inbound(5),
            assign(60, "a2", team="l1"),
            unassign(120),
        ],
        TEAMS,
        until=200,
    )
    assert _stints(recs) == [(1, "started", "l1", 5)]


def test_an_assignment_to_another_team_hands_the_case_over() -> None:
    """assigned with team_id l2 ends l1's stint; the agent's team comes from the policy file too."""
    recs = run(
        [assign(0, "a1"), inbound(5), assign(300, "a3", team="l2"), conv_event(400, "resolved")],
        TEAMS,
    )
    assert _stints(recs) == [
        (1, "started", "l1", 5),
        (1, "met", "l1", 300),
        (2, "started", "l2", 300),
        (2, "met", "l2", 400),
    ]


def test_a_team_the_target_does_not_list_starts_no_stint() -> None:
    """Owned by l3 (not listed), no team clock; handed to l1, the first stint is seq 1."""
    recs = run(
        [
            conv_event(0, "updated", team_id="l3"),
            inbound(1),
            conv_event(100, "updated", team_id="l1"),
        ],
        TEAMS,
        until=200,
    )
    assert _stints(recs) == [(1, "started", "l1", 100)]


def test_a_stint_pauses_as_its_own_team_target_says() -> None:
    """l2 pauses while pending (its pause_when); l1's target has none and keeps counting."""
    recs = run(
        [
            conv_event(0, "updated", team_id="l2"),
            inbound(0),
            conv_event(60, "updated", status="pending"),
            conv_event(660, "updated", team_id="l1"),
        ],
        TEAMS,
        until=700,
    )
    team = sla(recs, "team_ownership")
    assert [(r.seq, r.status) for r in team] == [
        (1, "started"),
        (1, "paused"),
        (1, "met"),
        (2, "started"),
    ]
    assert team[2].elapsed == 60_000


def test_a_priority_change_retargets_the_running_stint_from_its_start() -> None:
    """P1 gives l1 10 min: 15 min into the stint it breaches at once."""
    recs = run(
        [
            conv_event(0, "updated", team_id="l1"),
            inbound(0),
            conv_event(15 * 60, "updated", priority="P1"),
        ],
        TEAMS,
        until=16 * 60,
    )
    team = sla(recs, "team_ownership")
    assert [r.status for r in team] == ["started", "retargeted", "breached"]
    assert team[-1].deadline_at == ms(10 * 60)
    assert team[-1].at == ms(15 * 60)


def test_stints_count_business_hours_of_the_policy_calendar() -> None:
    """Owned from Monday 16:50, l1's 30 min run out Tuesday 08:20 in the office calendar."""
    monday_1650 = 16 * HOUR + 50 * 60
    recs = run(
        [
            conv_event(monday_1650, "updated", segment="office", team_id="l1"),
            inbound(monday_1650),
        ],
        TEAMS,
        until=40 * HOUR,
    )
    breach = [r for r in sla(recs, "team_ownership") if r.status == "breached"]
    assert [r.at for r in breach] == [ms(24 * HOUR + 8 * HOUR + 20 * 60)]


def test_reopened_starts_a_new_stint_for_the_owning_team() -> None:
    """A reopen is a new stint (seq 2) of the team that owns the conversation."""
    recs = run(
        [
            conv_event(0, "updated", team_id="l1"),
            inbound(0),
            conv_event(60, "resolved"),
            conv_event(120, "reopened"),
        ],
        TEAMS,
        until=180,
    )
    assert _stints(recs) == [
        (1, "started", "l1", 0),
        (1, "met", "l1", 60),
        (2, "started", "l1", 120),
    ]


def test_periodic_updates_measure_each_silence_towards_the_customer() -> None:
    """First reply starts it, every reply starts the next; customer messages do not reset it."""
    recs = run(
        [
            inbound(0),
            reply(60),
            inbound(HOUR),
            reply(60 + 3 * HOUR),
            reply(60 + 4 * HOUR, kind="template"),
            conv_event(5 * HOUR, "resolved"),
        ],
        TEAMS,
    )
    upd = sla(recs, "update")
    assert [(r.seq, r.status, (r.at - ms(0)) / 60_000) for r in upd] == [
        (1, "started", 1),
        (1, "warning", 1 + 96),
        (1, "breached", 1 + 120),
        (1, "stopped", 1 + 180),
        (2, "started", 1 + 180),
        (2, "met", 1 + 240),
        (3, "started", 1 + 240),
        (3, "cancelled", 300),
    ]
    # No team owns the conversation, so "supervisor" stays as written for `act` to resolve.
    assert [(a.action, a.notify) for a in actions(recs) if a.metric == "update"] == [
        ("notify", "supervisor")
    ]


def test_notes_and_a_quiet_case_leave_the_update_clock_running() -> None:
    """A note is no update; while pending the silence does not count."""
    recs = run(
        [
            inbound(0),
            reply(0),
            reply(HOUR, kind="note"),
            conv_event(HOUR, "updated", status="pending"),
            conv_event(10 * HOUR, "updated", status="open"),
        ],
        TEAMS,
        until=11 * HOUR + 1,
    )
    assert statuses(recs, "update") == ["started", "paused", "resumed", "warning", "breached"]
    assert sla(recs, "update")[-1].at == ms(11 * HOUR)


def test_a_restored_engine_carries_running_stints_on() -> None:
    """A snapshot taken mid-stint restores with the team, and the stint ends as without it."""
    events = [
        conv_event(0, "updated", team_id="l2"),
        inbound(0),
        reply(30),
        conv_event(600, "updated", team_id="l1"),
        conv_event(900, "resolved"),
    ]
    whole = run(events, TEAMS)
    engine = Engine(TEAMS)
    first = engine.process(events[:3], events[2].occurred_at)
    restored = load_engine(dump_engine(engine), TEAMS)
    rest = restored.process(events[3:], events[-1].occurred_at)
    assert final_states(first + rest) == final_states(whole)
    assert [r.team_id for r in sla(rest, "team_ownership")] == ["l2", "l1", "l1"]


def test_team_targets_beyond_the_resolution_target_are_accepted_with_a_warning() -> None:
    """SPEC §4: 3 h + 6 h of OLA against an 8 h promise loads, and says so."""
    pset = policies(
        """
policies:
  - id: tight
    targets:
      resolution: {within: 8h}
      team_ownership: {l1: 3h, l2: {within: 6h}}
"""
    )
    assert len(pset.warnings) == 1
    assert "tight" in pset.warnings[0] and "9h" in pset.warnings[0] and "8h" in pset.warnings[0]
    assert policies(TEXT_OK).warnings == ()


TEXT_OK = """
policies:
  - id: ok
    targets:
      resolution: {within: 8h}
      team_ownership: {l1: 3h, l2: 5h}
"""


@pytest.mark.parametrize(
    ("targets", "says"),
    [
        ("update: {within: 4h}", "'every'"),
        ("update: {}", "missing 'every'"),
        ("team_ownership: {}", "lists no team"),
        ("team_ownership: {l1: soon}", "l1"),
        ("team_ownership: {l1: {within: 1h, gap: 5m}}", "gap"),
        ("team_ownership: {l1: {pause_when: [pending]}}", "missing 'within'"),
    ],
)
def test_bad_update_and_team_targets_are_refused_with_the_reason(targets: str, says: str) -> None:
    """A policy file with a malformed update or team target is refused, naming what is wrong."""
    with pytest.raises(PolicyError, match=says):
        policies(f"policies:\n  - id: x\n    targets:\n      {targets}\n")
