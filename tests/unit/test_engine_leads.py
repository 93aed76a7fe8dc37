"""Lead clocks: follow-up, qualification, hand-off, contact attempts, cadence, service window,
and breach causes (SPEC §4)."""

from __future__ import annotations

import pickle

import pytest

from flows.core.records import SlaRecord, to_json_dict
from tests.enginekit import (
    activity,
    assign,
    conv_event,
    inbound,
    ms,
    policies,
    reply,
    run,
    sla,
    statuses,
)

pytestmark = pytest.mark.unit

LEADS = policies(
    """
calendars:
  office:
    timezone: Asia/Jakarta
    weekly:
      mon: ["08:00-22:00"]
      tue: ["08:00-22:00"]
      wed: ["08:00-22:00"]
      thu: ["08:00-22:00"]
      fri: ["08:00-22:00"]
policies:
  - id: hot
    when: {lead_source: [demo_request, pricing]}
    overload_at: 2
    targets:
      follow_up: {warn_before: 15m}
      qualification: {within: 24h}
      handoff: {within: 24h, to_role: ae}
      contact_attempts: {min: 3, within: 48h, gap: 10m}
      cadence: {qualified: 2d, nurture: 30d}
      service_window: {within: 24h, warn_before: 2h}
  - id: office
    when: {segment: office}
    calendar: office
    targets:
      first_response: {within: 30m}
      service_window: {within: 24h}
  - id: default
    targets:
      first_response: {within: 5m}
      follow_up: {warn_before: 15m}
      service_window: {within: 24h, warn_before: 2h}
"""
)
H = 3600
D = 24 * H


def lead(t: float = 0, source: str = "demo_request") -> list:
    return [conv_event(t, "opened", lead_source=source), assign(t + 1, "a1")]


def test_follow_up_met_by_next_agent_message() -> None:
    """A promised follow-up is met by the agent's next message before `due_at`."""
    recs = run([inbound(0), conv_event(10, "follow_up_promised", due=3600), reply(1800)], LEADS)
    fu = sla(recs, "follow_up")
    assert [r.status for r in fu] == ["started", "met"]
    assert fu[0].deadline_at == ms(3600) and fu[0].warn_at == ms(3600 - 900)


def test_follow_up_breaches_at_due_at() -> None:
    """An unkept promise breaches exactly at `due_at`."""
    recs = run([inbound(0), conv_event(10, "follow_up_promised", due=3600)], LEADS, until=4000)
    assert [(r.status, r.at) for r in sla(recs, "follow_up")][-1] == ("breached", ms(3600))


def test_qualification_starts_at_first_agent_reply_and_stops_on_status() -> None:
    """Qualification runs from the first agent reply until the lead is qualified."""
    recs = run(
        [*lead(), inbound(2), reply(60), conv_event(3600, "updated", lead_status="qualified")],
        LEADS,
    )
    q = sla(recs, "qualification")
    assert [r.status for r in q] == ["started", "met"]
    assert q[0].started_at == ms(60) and q[-1].elapsed == (3600 - 60) * 1000


def test_qualification_needs_a_lead_source() -> None:
    """Without a lead_source there is no qualification clock."""
    recs = run([inbound(0), reply(60)], LEADS)
    assert statuses(recs, "qualification") == []


def test_handoff_met_only_by_assignment_to_target_role() -> None:
    """Hand-off starts at `qualified` and is met by an assignment with the target role."""
    recs = run(
        [
            *lead(),
            conv_event(10, "updated", lead_status="qualified"),
            assign(20, "a2", role="sdr"),
            assign(30, "ae1", role="ae"),
        ],
        LEADS,
    )
    assert statuses(recs, "handoff") == ["started", "met"]
    assert sla(recs, "handoff")[-1].at == ms(30)


def test_attempts_inside_gap_merge_and_at_gap_count() -> None:
    """Attempts less than `gap` apart are one; one exactly `gap` later is a new attempt."""
    recs = run(
        [*lead(), reply(100), activity(200), activity(100 + 600), activity(100 + 1200)],
        LEADS,
    )
    ca = sla(recs, "contact_attempts")
    assert [r.status for r in ca] == ["started", "attempt", "attempt", "met"]
    assert [r.attempts for r in ca[1:]] == [1, 2, 3]
    assert [r.at for r in ca[1:3]] == [ms(100), ms(700)]
    assert ca[-1].attempts == 3 and ca[-1].at == ms(1300)


def test_attempt_records_keep_the_clock_state() -> None:
    """Each counted attempt emits an `attempt` record with the live count; a breach stays."""
    recs = run([*lead(), reply(100), activity(49 * H)], LEADS, until=50 * H)
    ca = sla(recs, "contact_attempts")
    assert [r.status for r in ca] == ["started", "attempt", "warning", "breached", "attempt"]
    assert [r.attempts for r in ca if r.status == "attempt"] == [1, 2]
    assert not ca[1].breached and ca[-1].breached
    assert ca[-1].at == ms(49 * H) and ca[-1].deadline_at == ca[3].deadline_at


def test_note_is_not_an_attempt() -> None:
    """An internal note is neither a reply nor an attempt."""
    recs = run([*lead(), reply(100, kind="note")], LEADS, until=49 * H)
    ca = sla(recs, "contact_attempts")
    assert ca[-1].status == "breached" and ca[-1].attempts == 0


def test_template_counts_as_attempt() -> None:
    """An outbound template by the agent is an attempt."""
    recs = run([*lead(), reply(100, kind="template")], LEADS, until=49 * H)
    assert sla(recs, "contact_attempts")[-1].attempts == 1


def test_customer_reply_after_first_attempt_is_contact_made() -> None:
    """An inbound message after the first attempt ends contact_attempts as met."""
    recs = run([*lead(), reply(100), inbound(200)], LEADS)
    ca = sla(recs, "contact_attempts")
    assert [r.status for r in ca] == ["started", "attempt", "met"] and ca[-1].attempts == 1


def test_connected_activity_is_contact_made() -> None:
    """A `connected` call ends contact_attempts as met."""
    recs = run([*lead(), activity(100, outcome="connected")], LEADS)
    assert statuses(recs, "contact_attempts") == ["started", "met"]


def test_lead_status_leaving_new_is_contact_made() -> None:
    """`lead_status` leaving `new` ends contact_attempts as met."""
    recs = run(
        [
            *lead(),
            conv_event(5, "updated", lead_status="new"),
            conv_event(50, "updated", lead_status="nurture"),
        ],
        LEADS,
    )
    assert statuses(recs, "contact_attempts") == ["started", "met"]


def test_too_few_attempts_breach_at_deadline_with_count() -> None:
    """Fewer than `min` attempts by the deadline is a breach carrying the attempt count."""
    recs = run([*lead(), reply(100), activity(5000)], LEADS, until=49 * H)
    ca = sla(recs, "contact_attempts")
    assert ca[-1].status == "breached" and ca[-1].attempts == 2
    assert ca[-1].at == ms(1 + 48 * H)


def test_cadence_restarts_after_each_activity_and_survives_resolution() -> None:
    """Cadence runs per silence (seq 1, 2, ...) and outlives a resolved cycle."""
    recs = run(
        [
            *lead(),
            conv_event(10, "updated", lead_status="qualified"),
            activity(D),
            conv_event(D + 10, "resolved"),
        ],
        LEADS,
        until=D + 3 * D,
    )
    cad = sla(recs, "cadence")
    assert [(r.seq, r.status) for r in cad] == [
        (1, "started"),
        (1, "met"),
        (2, "started"),
        (2, "warning"),
        (2, "breached"),
    ]
    assert cad[-1].at == ms(3 * D)


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_cadence_cancelled_by_won_or_lost(outcome: str) -> None:
    """A cycle resolved as won or lost cancels the cadence clock."""
    recs = run(
        [
            *lead(),
            conv_event(10, "updated", lead_status="qualified"),
            conv_event(20, "resolved", outcome=outcome),
        ],
        LEADS,
    )
    assert statuses(recs, "cadence") == ["started", "cancelled"]


def test_cadence_cancelled_by_unlisted_status() -> None:
    """Moving to a status the cadence target does not list cancels the clock."""
    recs = run(
        [
            *lead(),
            conv_event(10, "updated", lead_status="qualified"),
            conv_event(20, "updated", lead_status="disqualified"),
        ],
        LEADS,
    )
    assert statuses(recs, "cadence") == ["started", "cancelled"]


def test_cadence_retargeted_from_qualified_to_nurture() -> None:
    """A change between listed statuses retargets the silence from its start."""
    recs = run(
        [
            *lead(),
            conv_event(10, "updated", lead_status="qualified"),
            conv_event(D, "updated", lead_status="nurture"),
        ],
        LEADS,
    )
    cad = sla(recs, "cadence")
    assert [r.status for r in cad] == ["started", "retargeted"]
    assert cad[-1].deadline_at == ms(10 + 30 * D)


def test_newer_customer_message_moves_the_window() -> None:
    """The service window runs from the latest customer message."""
    recs = run([inbound(0), inbound(10 * H)], LEADS, until=40 * H)
    sw = sla(recs, "service_window")
    assert [r.status for r in sw] == ["started", "retargeted", "warning", "breached"]
    assert sw[-1].at == ms(34 * H) and sw[-2].at == ms(32 * H)


def test_template_reply_does_not_close_window_but_text_does() -> None:
    """A template keeps the window open; a free-form agent reply closes it as met."""
    recs = run([inbound(0), reply(60, kind="template"), reply(120)], LEADS)
    assert statuses(recs, "service_window") == ["started", "met"]
    assert sla(recs, "service_window")[-1].at == ms(120)


def test_resolution_does_not_cancel_window_and_breach_ends_it() -> None:
    """`resolved` leaves the window running; once breached, a new message opens seq 2."""
    recs = run([inbound(0), conv_event(60, "resolved"), inbound(30 * H)], LEADS, until=31 * H)
    sw = sla(recs, "service_window")
    assert [(r.seq, r.status) for r in sw] == [
        (1, "started"),
        (1, "warning"),
        (1, "breached"),
        (2, "started"),
    ]


def test_window_ignores_calendar() -> None:
    """The window counts wall-clock time even under a calendar policy."""
    recs = run([conv_event(0, "opened", segment="office"), inbound(1)], LEADS, until=25 * H)
    assert sla(recs, "service_window")[-1].at == ms(1 + 24 * H)


def test_cause_unassigned_first() -> None:
    """A breach with no assignee has cause `unassigned`."""
    recs = run([inbound(0)], LEADS, until=400)
    assert sla(recs, "first_response")[-1].cause == "unassigned"


def test_cause_bot_handled() -> None:
    """A breach while a bot handles the chat has cause `bot_handled`."""
    recs = run(
        [inbound(0), assign(1), conv_event(2, "updated", handled_by="bot")], LEADS, until=400
    )
    assert sla(recs, "first_response")[-1].cause == "bot_handled"


def test_cause_after_hours_for_night_lead() -> None:
    """A clock started while closed that breaches within 2 h of opening is `after_hours`."""
    # 2026-11-23 16:00 UTC = 23:00 in Jakarta (closed); opens 08:00 = 01:00 UTC next day.
    start = 16 * H
    recs = run(
        [conv_event(start, "opened", segment="office"), assign(start + 1), inbound(start + 2)],
        LEADS,
        until=start + 12 * H,
    )
    fr = sla(recs, "first_response")[-1]
    assert fr.status == "breached" and fr.cause == "after_hours"
    assert fr.at == ms(25 * H + 30 * 60)


def test_cause_overloaded_then_agent() -> None:
    """An assignee holding `overload_at` open chats gives `overloaded`; otherwise `agent`."""
    pset = policies(
        """
policies:
  - id: p
    overload_at: 2
    targets: {first_response: {within: 5m}}
"""
    )
    events = [
        inbound(0, conv="x"),
        assign(1, "a1", conv="x"),
        inbound(0, conv="y"),
        assign(1, "a1", conv="y"),
        inbound(0, conv="z"),
        assign(1, "a2", conv="z"),
    ]
    recs = run(events, pset, until=400)
    causes = {
        r.conversation_id: r.cause for r in sla(recs, "first_response") if r.status == "breached"
    }
    assert causes == {"x": "overloaded", "y": "overloaded", "z": "agent"}


CAUSES = policies(
    """
calendars:
  office:
    timezone: Asia/Jakarta
    weekly: {mon: ["08:00-22:00"], tue: ["08:00-22:00"]}
policies:
  - id: office
    calendar: office
    overload_at: 1
    targets: {first_response: {within: 30m}}
"""
)
NIGHT = 16 * H  # 23:00 in Jakarta on Monday: closed; opens 08:00 (01:00 UTC) on Tuesday.


@pytest.mark.parametrize(
    ("setup", "cause"),
    [
        # Every cause applies (no assignee wins over everything).
        ([conv_event(NIGHT + 1, "updated", handled_by="bot")], "unassigned"),
        # Assigned, bot-handled, night lead, overloaded agent: the bot comes first.
        ([assign(NIGHT + 1), conv_event(NIGHT + 2, "updated", handled_by="bot")], "bot_handled"),
        # Assigned night lead to an overloaded agent: after_hours comes before overloaded.
        ([assign(NIGHT + 1)], "after_hours"),
    ],
)
def test_breach_cause_is_the_first_that_applies(setup: list, cause: str) -> None:
    """When several causes apply, the breach carries the first in SPEC order."""
    events = [conv_event(NIGHT, "opened"), inbound(NIGHT), *setup]
    recs = run(events, CAUSES, until=NIGHT + 12 * H)
    breach = [r for r in sla(recs, "first_response") if r.status == "breached"]
    assert [r.cause for r in breach] == [cause]


def test_overloaded_comes_before_agent_for_a_daytime_lead() -> None:
    """In open hours, an assignee at `overload_at` open chats gives `overloaded`, not `agent`."""
    day = 2 * H  # 09:00 in Jakarta, open.
    recs = run([conv_event(day, "opened"), inbound(day), assign(day + 1)], CAUSES, until=day + H)
    assert [r.cause for r in sla(recs, "first_response") if r.status == "breached"] == [
        "overloaded"
    ]


def test_no_cadence_after_won_until_the_lead_status_changes() -> None:
    """After a won resolve, agent activity starts no cadence; a move to nurture starts one."""
    recs = run(
        [
            *lead(),
            conv_event(10, "updated", lead_status="qualified"),
            conv_event(20, "resolved", outcome="won"),
            activity(30),
            reply(40),
            conv_event(50, "updated", lead_status="nurture"),
        ],
        LEADS,
        until=60,
    )
    cad = sla(recs, "cadence")
    assert [(r.seq, r.status) for r in cad] == [(1, "started"), (1, "cancelled"), (2, "started")]
    assert cad[-1].started_at == ms(50)
    assert cad[-1].target == 30 * D * 1000


def test_cancelled_cadence_keeps_its_deadline() -> None:
    """A cadence ended by an unlisted lead status still says when it was due."""
    recs = run(
        [*lead(), conv_event(10, "updated", lead_status="qualified"),
         conv_event(20, "updated", lead_status="disqualified")],
        LEADS,
    )  # fmt: skip
    cad = sla(recs, "cadence")
    assert cad[-1].status == "cancelled"
    assert cad[-1].deadline_at == ms(10 + 2 * D)
    assert cad[-1].policy_id == "hot"


def test_service_window_expiring_over_the_closed_weekend_is_after_hours() -> None:
    """A window opened Friday night that closes on Saturday breaches with cause after_hours."""
    # Friday 2026-11-27 20:00 UTC = Saturday 03:00 in Jakarta: the office is closed until Monday.
    start = 4 * D + 20 * H
    recs = run(
        [conv_event(start, "opened", segment="office"), assign(start + 1), inbound(start + 2)],
        LEADS,
        until=start + 2 * D,
    )
    window = [r for r in sla(recs, "service_window") if r.status == "breached"]
    assert len(window) == 1
    # Jakarta opens Monday 08:00 = 01:00 UTC Monday; the window closed 24 h after, on Saturday.
    assert window[0].cause == "after_hours"


STORED = policies(
    """
policies:
  - id: hot
    when: {lead_source: [demo_request]}
    targets:
      first_response: {within: 5m}
      resolution: {within: 24h}
      qualification: {within: 24h}
      contact_attempts: {min: 3, within: 48h, gap: 10m}
  - id: default
    targets: {first_response: {within: 5m}, resolution: {within: 24h}}
"""
)


def test_records_store_the_lead_decision_the_outcome_and_the_attempts_required() -> None:
    """QuestDB's scorecard reads what decided a lead and a cycle; Kafka's JSON stays SPEC §6.

    The qualification record that the lead status ended carries that status, the resolution
    record that the resolve ended carries its outcome, and contact-attempts records the policy's
    `min`; none of the three is in the published record.
    """
    events = [
        *lead(0),
        inbound(2),
        reply(60),
        conv_event(600, "updated", lead_status="disqualified"),
        conv_event(900, "resolved", outcome="lost"),
    ]
    recs = run(events, STORED, until=1000)
    qualification = sla(recs, "qualification")
    assert [(r.status, r.lead_status) for r in qualification] == [
        ("started", None),
        ("met", "disqualified"),
    ]
    [*_, resolved] = sla(recs, "resolution")
    assert (resolved.status, resolved.outcome) == ("met", "lost")
    assert {r.attempts_required for r in sla(recs, "contact_attempts")} == {3}
    assert {r.outcome for r in recs if r.metric != "resolution"} == {None}
    assert {r.lead_status for r in sla(recs, "first_response")} == {None}
    for r in recs:
        published = to_json_dict(r, 0)
        assert not {"lead_status", "outcome", "attempts_required"} & published.keys()


def test_a_reopen_takes_the_outcome_back_until_the_next_resolve() -> None:
    """A reopened cycle is no longer won; the resolve that ends it again gives its outcome."""
    events = [
        inbound(0),
        reply(60),
        conv_event(300, "resolved", outcome="won"),
        conv_event(400, "reopened"),
        conv_event(900, "resolved", outcome="lost"),
    ]
    recs = run(events, STORED)
    outcomes = [(r.status, r.outcome) for r in sla(recs, "resolution")]
    assert outcomes[-1] == ("met", "lost")
    assert ("met", "won") in outcomes
    assert outcomes[outcomes.index(("met", "won")) + 1][1] is None


def test_a_record_kept_by_the_previous_release_loads_without_the_stored_fields() -> None:
    """A record pickled by 0.2 (in a recovery snapshot) loads, its new fields None."""
    [record] = [r for r in run([inbound(0), reply(60)], STORED) if r.status == "met"]
    _, slots = object.__getstate__(record)  # type: ignore[misc]
    old = {
        k: v for k, v in slots.items() if k not in ("lead_status", "outcome", "attempts_required")
    }

    class Pickled:
        def __reduce__(self) -> tuple[object, ...]:
            # What 0.2 wrote: a bare instance, then its slots as state.
            return (object.__new__, (SlaRecord,), (None, old))

    loaded = pickle.loads(pickle.dumps(Pickled()))
    assert loaded == record
    assert (loaded.lead_status, loaded.outcome, loaded.attempts_required) == (None, None, None)
    assert pickle.loads(pickle.dumps(loaded)) == loaded
