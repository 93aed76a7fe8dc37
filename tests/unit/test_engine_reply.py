"""Reply clocks, cycles, resolution, pauses, policies and escalations (SPEC §3-§4)."""

from __future__ import annotations

import pytest

from flows.core.engine import Engine
from flows.core.records import DeadLetter
from tests.enginekit import (
    actions,
    assign,
    bot,
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

pytestmark = pytest.mark.unit

BASIC = policies(
    """
policies:
  - id: default
    targets:
      first_response: {within: 5m}
      next_response: {within: 15m, warn_before: 5m}
      resolution: {within: 24h, pause_when: [pending]}
      assignment: {within: 30s}
"""
)


VIP = policies(
    """
policies:
  - id: vip
    when: {segment: vip}
    targets: {first_response: {within: 1m}}
  - id: default
    targets: {first_response: {within: 5m}}
"""
)


def test_reply_before_deadline_is_met_with_elapsed_seconds() -> None:
    """A first reply within the target gives started then met, with elapsed time counted."""
    recs = run([inbound(0), reply(120)], BASIC)
    fr = sla(recs, "first_response")
    assert [r.status for r in fr] == ["started", "met"]
    assert fr[-1].elapsed == 120_000
    assert fr[-1].deadline_at == ms(300)
    assert fr[-1].warn_at == ms(240)
    assert not fr[-1].breached


def test_no_reply_warns_at_80_percent_then_breaches_at_deadline() -> None:
    """Without a reply the clock warns at 80 % of the target and breaches at the deadline."""
    recs = run([inbound(0)], BASIC, until=400)
    fr = sla(recs, "first_response")
    assert [(r.status, r.at) for r in fr] == [
        ("started", ms(0)),
        ("warning", ms(240)),
        ("breached", ms(300)),
    ]
    assert fr[-1].cause == "unassigned"


def test_reply_exactly_at_deadline_is_met() -> None:
    """A reply at the deadline instant applies before the breach fires."""
    recs = run([inbound(0), reply(300)], BASIC, until=400)
    assert statuses(recs, "first_response") == ["started", "warning", "met"]


def test_late_reply_after_breach_is_stopped_and_keeps_lateness() -> None:
    """A reply after the breach stops the clock, which kept running to measure lateness."""
    recs = run([inbound(0), reply(420)], BASIC)
    fr = sla(recs, "first_response")
    assert [r.status for r in fr] == ["started", "warning", "breached", "stopped"]
    assert fr[-1].elapsed == 420_000 and fr[-1].breached


def test_note_and_bot_reply_do_not_stop_reply_clock() -> None:
    """Internal notes and (by default) bot replies never count as replies."""
    recs = run([inbound(0), reply(10, kind="note"), bot(20)], BASIC, until=301)
    assert statuses(recs, "first_response")[-1] == "breached"


def test_bot_reply_counts_when_policy_says_so() -> None:
    """`bot_replies_count: true` lets a bot reply fulfil the reply clock."""
    pset = policies(
        """
policies:
  - id: p
    bot_replies_count: true
    targets: {first_response: {within: 5m}}
"""
    )
    recs = run([inbound(0), bot(20)], pset, until=400)
    assert statuses(recs, "first_response") == ["started", "met"]


def test_next_response_starts_at_oldest_unanswered_message() -> None:
    """After the first reply, a burst of customer messages starts one wait from the oldest."""
    recs = run([inbound(0), reply(10), inbound(100), inbound(200), inbound(300), reply(500)], BASIC)
    nr = sla(recs, "next_response")
    assert [(r.seq, r.status) for r in nr] == [(1, "started"), (1, "met")]
    assert nr[0].started_at == ms(100)
    assert nr[-1].elapsed == 400_000


def test_each_wait_gets_its_own_seq() -> None:
    """Every unanswered stretch after a reply is a new next_response clock."""
    recs = run([inbound(0), reply(10), inbound(20), reply(30), inbound(40), reply(50)], BASIC)
    assert [(r.seq, r.status) for r in sla(recs, "next_response")] == [
        (1, "started"),
        (1, "met"),
        (2, "started"),
        (2, "met"),
    ]


def test_resolved_cancels_running_reply_clock_and_meets_resolution() -> None:
    """`resolved` cancels a clock not yet breached and meets the resolution clock."""
    recs = run([inbound(0), conv_event(60, "resolved")], BASIC)
    assert statuses(recs, "first_response") == ["started", "cancelled"]
    assert statuses(recs, "resolution") == ["started", "met"]


def test_resolved_closes_a_breached_clock_that_stays_breached() -> None:
    """A clock breached before the resolve ends `closed` at the resolve, still breached."""
    recs = run([inbound(0), conv_event(400, "resolved")], BASIC)
    assert statuses(recs, "first_response") == ["started", "warning", "breached", "closed"]
    closed = sla(recs, "first_response")[-1]
    assert closed.breached
    assert closed.stopped_at == ms(400)
    assert closed.at == ms(400)
    assert closed.deadline_at == sla(recs, "first_response")[-2].deadline_at


def test_new_inbound_after_resolved_starts_a_new_cycle() -> None:
    """A customer message after `resolved` opens cycle 2 with its own first_response."""
    recs = run([inbound(0), reply(5), conv_event(60, "resolved"), inbound(100), reply(110)], BASIC)
    fr = sla(recs, "first_response")
    assert [(r.cycle, r.status) for r in fr] == [
        (1, "started"),
        (1, "met"),
        (2, "started"),
        (2, "met"),
    ]


def test_pending_pauses_resolution_and_customer_message_resumes() -> None:
    """`pending` pauses the resolution clock; the customer's message sets it open again."""
    recs = run(
        [
            inbound(0),
            reply(10),
            conv_event(3600, "updated", status="pending"),
            inbound(3600 * 5),
            conv_event(3600 * 6, "resolved"),
        ],
        BASIC,
    )
    res = sla(recs, "resolution")
    assert [r.status for r in res] == ["started", "paused", "resumed", "met"]
    assert res[1].deadline_at is None
    # 1 h counted, 4 h paused, then 1 h more: the deadline moved 4 h later.
    assert res[2].deadline_at == ms(24 * 3600 + 4 * 3600)
    assert res[-1].elapsed == 2 * 3600 * 1000


def test_reopened_resumes_resolution_without_counting_resolved_time() -> None:
    """`reopened` continues the resolution clock; the resolved stretch does not count."""
    recs = run(
        [
            inbound(0),
            reply(10),
            conv_event(3600, "resolved"),
            conv_event(7200, "reopened"),
            inbound(7300),
            conv_event(9000, "resolved"),
        ],
        BASIC,
    )
    res = sla(recs, "resolution")
    assert [r.status for r in res] == ["started", "met", "resumed", "met"]
    assert res[-1].elapsed == (3600 + 1800) * 1000
    assert all(r.cycle == 1 for r in res)
    assert statuses(recs, "next_response")[0] == "started"


def test_reopened_without_resolved_cycle_is_ignored() -> None:
    """A `reopened` with nothing resolved to continue changes nothing."""
    recs = run([inbound(0), conv_event(10, "reopened"), reply(20)], BASIC)
    assert statuses(recs, "resolution") == ["started"]


def test_assignment_clock_runs_until_assigned() -> None:
    """A cycle opening with no assignee starts the assignment clock; `assigned` meets it."""
    recs = run([inbound(0), assign(20)], BASIC)
    assert statuses(recs, "assignment") == ["started", "met"]


def test_unassigned_restarts_assignment_clock() -> None:
    """Removing the assignee while the cycle is open starts a new assignment clock."""
    recs = run([inbound(0), assign(5), unassign(50)], BASIC, until=200)
    asg = sla(recs, "assignment")
    assert [(r.seq, r.status) for r in asg] == [
        (1, "started"),
        (1, "met"),
        (2, "started"),
        (2, "warning"),
        (2, "breached"),
    ]


def test_assignee_carries_over_cycles() -> None:
    """An assignee stays across cycles: cycle 2 starts no assignment clock."""
    recs = run([inbound(0), assign(5), conv_event(60, "resolved"), inbound(100)], BASIC)
    assert [r.cycle for r in sla(recs, "assignment")] == [1, 1]


def test_policy_change_retargets_from_original_start() -> None:
    """A policy change recomputes the deadline from the clock's start."""
    pset = VIP
    recs = run([inbound(0), conv_event(30, "updated", segment="vip")], pset, until=100)
    fr = sla(recs, "first_response")
    assert [r.status for r in fr] == ["started", "retargeted", "warning", "breached"]
    assert fr[1].deadline_at == ms(60) and fr[1].policy_id == "vip"
    assert fr[-1].at == ms(60)


def test_retarget_already_past_breaches_at_once() -> None:
    """A recomputed deadline already past breaches at the retarget instant."""
    pset = VIP
    recs = run([inbound(0), conv_event(120, "updated", segment="vip")], pset)
    fr = sla(recs, "first_response")
    assert [r.status for r in fr] == ["started", "retargeted", "breached"]
    assert fr[-1].at == ms(120) and fr[-1].deadline_at == ms(60)


def test_breached_clock_is_not_retargeted() -> None:
    """Lowering the priority never undoes a breach."""
    pset = policies(
        """
policies:
  - id: slow
    when: {priority: P4}
    targets: {first_response: {within: 1h}}
  - id: default
    targets: {first_response: {within: 1m}}
"""
    )
    recs = run([inbound(0), conv_event(120, "updated", priority="P4")], pset)
    assert statuses(recs, "first_response") == ["started", "warning", "breached"]


def test_bot_handoff_starts_first_response_from_handoff() -> None:
    """While a bot handles the chat no reply clock starts; the hand-off starts it."""
    recs = run(
        [
            conv_event(0, "opened", handled_by="bot"),
            inbound(1),
            bot(2),
            conv_event(100, "updated", handled_by="human"),
            reply(150),
        ],
        BASIC,
    )
    fr = sla(recs, "first_response")
    assert [r.status for r in fr] == ["started", "met"]
    assert fr[0].started_at == ms(100) and fr[-1].elapsed == 50_000
    assert statuses(recs, "resolution")[0] == "started"


def test_escalations_notify_supervisor_and_reassign_to_least_loaded() -> None:
    """Warning notifies the team's supervisor; breach suggests the least-loaded teammate."""
    pset = policies(
        """
policies:
  - id: p
    targets: {first_response: {within: 5m}}
    escalations:
      - {on: warning, metric: first_response, notify: supervisor}
      - {on: breached, metric: first_response, reassign: true}
teams:
  sales: {agents: [a1, a2, a3], supervisor: s1}
"""
    )
    events = [
        inbound(0, conv="busy"),
        assign(1, "a2", conv="busy"),
        inbound(0, conv="c1"),
        assign(2, "a1", conv="c1"),
    ]
    acts = actions(run(events, pset, until=400))
    c1 = [a for a in acts if a.conversation_id == "c1"]
    assert [(a.action, a.trigger) for a in c1] == [("notify", "warning"), ("reassign", "breached")]
    assert c1[0].notify == "s1"
    assert c1[1].from_agent == "a1" and c1[1].to_agent == "a3"


def test_duplicate_event_ids_are_ignored() -> None:
    """A redelivered event (same event_id) changes nothing."""
    first = inbound(0)
    recs = run([first, first, reply(10)], BASIC)
    assert statuses(recs, "first_response") == ["started", "met"]


def test_late_reply_corrects_a_false_breach() -> None:
    """A reply arriving after its breach was emitted corrects the outcome, marked late."""
    events = [inbound(0), inbound(1000, conv="other"), reply(100)]
    recs = run(events, BASIC)
    fr = [r for r in sla(recs, "first_response") if r.conversation_id == "c1"]
    assert [(r.status, r.late) for r in fr][-1] == ("met", True)
    assert any(r.status == "breached" and not r.late for r in fr)


def test_late_reply_at_the_deadline_instant_is_met() -> None:
    """A reply stamped exactly at the deadline, arriving after the breach fired, is met."""
    recs = run([inbound(0), inbound(1000, conv="other"), reply(300)], BASIC)
    fr = [r for r in sla(recs, "first_response") if r.conversation_id == "c1"]
    assert (fr[-1].status, fr[-1].late, fr[-1].breached) == ("met", True, False)


def test_channel_in_when_selects_policy() -> None:
    """A policy's `when: {channel: ...}` matches the channel of the conversation's messages."""
    pset = policies(
        """
policies:
  - id: ig
    when: {channel: instagram}
    targets: {first_response: {within: 1m}}
  - id: default
    targets: {first_response: {within: 5m}}
"""
    )
    recs = run([inbound(0, channel="instagram")], pset, until=100)
    fr = sla(recs, "first_response")
    assert fr[0].policy_id == "ig" and fr[-1].status == "breached" and fr[-1].at == ms(60)


def test_quiet_conversations_forget_history_and_too_late_events_are_dead_letters() -> None:
    """Past the correction horizon a quiet conversation drops its log, and an event older than
    that (even a redelivered one) is a dead letter naming the horizon, never re-applied."""
    engine = Engine(BASIC, horizon_ms=3_600_000)
    first = inbound(0)
    engine.process([first, reply(10), conv_event(20, "resolved")], ms(20))
    engine.process([inbound(0, conv="other")], ms(3 * 3600))
    assert engine.conversations["c1"].log == []
    for late in (first, reply(5)):
        out = engine.process([late], ms(3 * 3600))
        assert len(out) == 1 and isinstance(out[0], DeadLetter)
        assert "too late" in out[0].reason and "1 h correction horizon" in out[0].reason
    # Within the horizon, a duplicate is recognised and ignored.
    recent = inbound(3 * 3600 - 10, conv="other")
    engine.process([recent], ms(3 * 3600))
    assert engine.process([recent], ms(3 * 3600)) == []
