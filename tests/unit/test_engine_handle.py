"""Handle time: an assignee's segments of work (SPEC §3 `handle`, §4 "Handle time", §6)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from referencing import Registry, Resource

from flows.core import conversation as conversation_module
from flows.core.engine import Engine
from flows.core.events import Event, RetractionEvent
from flows.core.policies import parse_policies
from flows.core.records import HandleRecord, to_json_dict
from flows.core.snapshot import dump_engine, load_engine
from flows.exceptions import PolicyError
from tests.enginekit import assign, conv_event, inbound, ms, policies, reply, run, unassign
from tests.latekit import (
    HORIZON_MS,
    deliver_late,
    final_handles,
    handle_scenario,
    in_time_order,
    run_in_batches,
    scenario,
)
from tests.latekit import PSET as LATE_PSET

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PSET = policies(
    """
policies:
  - id: vip
    when: {segment: vip}
    targets: {first_response: {within: 5m}}
  - id: default
    handle: {idle: 10m}
    targets: {first_response: {within: 5m}}
teams:
  l1: {agents: [a1, a2]}
  l2: {agents: [b1]}
"""
)
MIN = 60
DAY = 24 * 3600


def _handles(records: Sequence[object]) -> list[tuple[object, ...]]:
    """Each handle record as (cycle, agent, team, start s, end s, handle s, end, late)."""
    out: list[tuple[object, ...]] = []
    for r in records:
        if isinstance(r, HandleRecord):
            out.append(
                (
                    r.cycle,
                    r.agent_id,
                    r.team_id,
                    (r.started_at - ms(0)) / 1000,
                    (r.ended_at - ms(0)) / 1000,
                    r.handle / 1000,
                    r.end,
                    r.late,
                )
            )
    return out


def _note(t: float, agent: str = "a1") -> Event:
    return reply(t, agent=agent, kind="note")


# -- start rules ------------------------------------------------------------------------------


def test_an_assignment_in_an_open_cycle_opens_a_segment_that_pending_ends() -> None:
    """Assigned at 10 s, replies, the chat goes pending at 200 s: 190 s of handle time."""
    recs = run(
        [
            inbound(0),
            assign(10, team="l1"),
            reply(60),
            conv_event(200, "updated", status="pending"),
        ],
        PSET,
        until=DAY,
    )
    assert _handles(recs) == [(1, "a1", "l1", 10, 200, 190, "pending", False)]


def test_an_assignment_before_any_cycle_waits_for_the_first_message() -> None:
    """Assigned before the customer writes: the segment opens at the customer's message."""
    recs = run(
        [assign(0), inbound(100), reply(160), conv_event(300, "resolved")],
        PSET,
        until=DAY,
    )
    assert _handles(recs) == [(1, "a1", "l1", 100, 300, 200, "resolved", False)]


def test_the_assignees_outbound_message_opens_a_segment_but_another_agents_does_not() -> None:
    """After an idle end, a2's message starts nothing for a1; a1's own message does."""
    recs = run(
        [
            inbound(0),
            assign(10),
            reply(20),
            # idle: a1's first segment ends at 20 s
            reply(2000, agent="a2"),
            reply(3000),
            conv_event(3100, "resolved"),
        ],
        PSET,
        until=DAY,
    )
    assert _handles(recs) == [
        (1, "a1", "l1", 10, 20, 10, "idle", False),
        (1, "a1", "l1", 3000, 3100, 100, "resolved", False),
    ]


def test_a_customer_message_after_an_idle_end_opens_the_next_segment() -> None:
    """Each stretch of work is its own segment; customer messages keep it going."""
    recs = run(
        [
            inbound(0),
            assign(0),
            reply(60),
            inbound(5 * MIN),  # within 10 min of the reply: the same segment
            reply(8 * MIN),
            inbound(60 * MIN),
            reply(62 * MIN),
            conv_event(70 * MIN, "resolved"),
        ],
        PSET,
        until=DAY,
    )
    assert _handles(recs) == [
        (1, "a1", "l1", 0, 480, 480, "idle", False),
        (1, "a1", "l1", 3600, 4200, 600, "resolved", False),
    ]


def test_the_carried_over_assignee_gets_a_segment_in_the_next_cycle() -> None:
    """The assignee stays across cycles: the next cycle's first message opens a segment."""
    recs = run(
        [
            inbound(0),
            assign(10),
            reply(20),
            conv_event(30, "resolved"),
            inbound(DAY),
            reply(DAY + 40),
            conv_event(DAY + 50, "updated", status="pending"),
        ],
        PSET,
        until=2 * DAY,
    )
    assert _handles(recs) == [
        (1, "a1", "l1", 10, 30, 20, "resolved", False),
        (2, "a1", "l1", DAY, DAY + 50, 50, "pending", False),
    ]


# -- end rules --------------------------------------------------------------------------------


def test_reassignment_ends_the_segment_and_opens_the_new_assignees() -> None:
    """a1 hands over to b1 at 300 s: a1's segment ends `reassigned`, b1's starts there."""
    recs = run(
        [
            inbound(0),
            assign(10),
            reply(60),
            assign(300, "b1", team="l2"),
            reply(400, agent="b1"),
            conv_event(500, "resolved"),
        ],
        PSET,
        until=DAY,
    )
    assert _handles(recs) == [
        (1, "a1", "l1", 10, 300, 290, "reassigned", False),
        (1, "b1", "l2", 300, 500, 200, "resolved", False),
    ]


def test_assigning_the_same_agent_again_keeps_the_segment() -> None:
    """A repeated assignment of the holder is no hand-over."""
    recs = run(
        [inbound(0), assign(10), reply(60), assign(120), conv_event(500, "resolved")],
        PSET,
        until=DAY,
    )
    assert _handles(recs) == [(1, "a1", "l1", 10, 500, 490, "resolved", False)]


def test_unassigned_ends_the_segment_and_nothing_opens_until_someone_is_assigned() -> None:
    """After `unassigned` the customer's messages open no segment: nobody handles the chat."""
    recs = run(
        [
            inbound(0),
            assign(10),
            reply(60),
            unassign(100),
            inbound(200),
            reply(210),  # a1 is no longer the assignee
            conv_event(300, "resolved"),
        ],
        PSET,
        until=DAY,
    )
    assert _handles(recs) == [(1, "a1", "l1", 10, 100, 90, "unassigned", False)]


def test_a_segment_without_a_reply_does_not_count() -> None:
    """Notes are work on the case but not handling the customer: a notes-only segment is left out,
    while a note does keep a counted segment from going idle."""
    notes_only = run(
        [inbound(0), assign(10), _note(60), _note(120), conv_event(300, "resolved")],
        PSET,
        until=DAY,
    )
    assert _handles(notes_only) == []
    with_reply = run(
        [inbound(0), assign(0), reply(60), _note(9 * MIN), _note(18 * MIN)],
        PSET,
        until=DAY,
    )
    assert _handles(with_reply) == [(1, "a1", "l1", 0, 18 * MIN, 18 * MIN, "idle", False)]


def test_a_reply_whose_delivery_failed_does_not_make_the_segment_count() -> None:
    """A failed message counts as never sent (SPEC §1): the segment had no reply after all."""
    sent = reply(60, message_id="m1")
    events: list[Event] = [inbound(0), assign(10), sent, conv_event(300, "resolved")]
    assert len(_handles(run(events, PSET, until=DAY))) == 1
    failed = RetractionEvent("f1", "c1", ms(90), "m1")
    assert _handles(run([*events[:3], failed, events[3]], PSET, until=DAY)) == []
    # Reported after the resolve: the segment already stored is withdrawn.
    assert _handles(run([*events, failed], PSET, until=DAY)) == [
        (1, "a1", "l1", 10, 300, 290, "resolved", False),
        (1, "a1", "l1", 10, 10, 0, "withdrawn", True),
    ]


# -- idle: on the watermark -------------------------------------------------------------------


def test_the_idle_end_fires_when_the_watermark_passes_it_on_a_quiet_stream() -> None:
    """No event after the reply: the segment ends once event time reaches reply + idle."""
    engine = Engine(PSET)
    out = engine.process([inbound(0), assign(10), reply(60)], ms(60))
    assert engine.next_due() == ms(60 + 10 * MIN)
    out += engine.process([], ms(60 + 10 * MIN - 1))
    assert _handles(out) == []
    out += engine.process([], ms(60 + 10 * MIN))
    assert _handles(out) == [(1, "a1", "l1", 10, 60, 50, "idle", False)]


def test_a_message_exactly_at_the_idle_instant_keeps_the_segment_going() -> None:
    """Events of an instant apply before its timers, as a reply at a deadline is met."""
    recs = run(
        [inbound(0), assign(0), reply(60), inbound(60 + 10 * MIN), conv_event(1200, "resolved")],
        PSET,
        until=DAY,
    )
    assert _handles(recs) == [(1, "a1", "l1", 0, 1200, 1200, "resolved", False)]


def test_handle_time_is_wall_clock_time_whatever_the_calendar() -> None:
    """A segment across the desk's closing counts every second (SPEC §4: wall clock)."""
    pset = policies(
        """
calendars:
  office:
    timezone: UTC
    weekly: {mon: ["00:00-00:05"]}
policies:
  - id: p
    calendar: office
    handle: {idle: 1h}
    targets: {resolution: {within: 1h}}
"""
    )
    recs = run([inbound(0), assign(0), reply(1800), conv_event(3000, "resolved")], pset, until=DAY)
    assert _handles(recs) == [(1, "a1", None, 0, 3000, 3000, "resolved", False)]


# -- policies ---------------------------------------------------------------------------------


def test_a_policy_without_handle_measures_no_handle_time() -> None:
    """Handle time is opt-in per policy: a vip conversation (no `handle` key) emits none."""
    events = [
        conv_event(0, "opened", segment="vip"),
        inbound(0),
        assign(10),
        reply(60),
        conv_event(300, "resolved"),
    ]
    assert _handles(run(events, PSET, until=DAY)) == []


def test_handle_defaults_to_ten_minutes_idle() -> None:
    """`handle: {}` turns handle time on with the SPEC default idle of 10 minutes."""
    pset = parse_policies("policies:\n  - id: p\n    handle: {}\n")
    assert pset.policies[0].handle_idle == 10 * MIN * 1000
    assert parse_policies("policies:\n  - id: p\n").policies[0].handle_idle is None
    pset = parse_policies("policies:\n  - id: p\n    handle: {idle: 90s}\n")
    assert pset.policies[0].handle_idle == 90_000


@pytest.mark.parametrize(
    ("handle", "reason"),
    [
        ("{idle: 0s}", "policy 'p', handle, idle: invalid duration '0s': must be longer than zero"),
        ("{idle: soon}", "policy 'p', handle, idle: "),
        ("{idle: [5m]}", "policy 'p', handle, idle must be a duration"),
        ("{idel: 5m}", "policy 'p', handle: unknown key 'idel'; allowed: idle"),
        ("10m", "policy 'p', handle must be a mapping"),
        ("", "policy 'p', handle is empty; give {idle: 10m}"),
    ],
)
def test_a_bad_handle_key_is_refused_with_its_line_and_reason(handle: str, reason: str) -> None:
    """Each bad `handle` value names the file, the line and what is wrong."""
    text = (
        "policies:\n  - id: p\n    targets: {first_response: {within: 5m}}\n"
        f"    handle: {handle}\n"
    )
    with pytest.raises(PolicyError) as caught:
        parse_policies(text, path="p.yaml")
    assert str(caught.value).startswith("p.yaml:4: "), str(caught.value)
    assert reason in str(caught.value)


# -- records: schema, late corrections, snapshots ---------------------------------------------


def test_handle_records_match_their_published_schema() -> None:
    """Every end, withdrawn included, validates against schemas/handle_record.schema.json."""
    loaded = {p.name: json.loads(p.read_text()) for p in (ROOT / "schemas").glob("*.schema.json")}
    registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in loaded.values()
    )
    validator = jsonschema.Draft202012Validator(
        loaded["handle_record.schema.json"], registry=registry
    )
    late_start = assign(5)
    recs = run(
        [
            inbound(0),
            assign(10),
            reply(60, message_id="m1"),
            conv_event(300, "resolved"),
            late_start,
        ],
        PSET,
        until=DAY,
    )
    ends = {r.end for r in recs if isinstance(r, HandleRecord)}
    assert ends == {"resolved", "withdrawn"}
    for rec in recs:
        if isinstance(rec, HandleRecord):
            data = to_json_dict(rec, ms(DAY))
            validator.validate(data)
            assert data["handle_s"] == rec.handle / 1000


def test_a_late_unassignment_shortens_the_stored_segment() -> None:
    """The `unassigned` arrives after the resolve: the same segment, corrected, marked late."""
    events = [inbound(0), assign(10), reply(60), conv_event(300, "resolved")]
    recs = run([*events, unassign(100)], PSET, until=DAY)
    assert _handles(recs) == [
        (1, "a1", "l1", 10, 300, 290, "resolved", False),
        (1, "a1", "l1", 10, 100, 90, "unassigned", True),
    ]


def test_a_late_correction_that_moves_the_start_withdraws_the_old_segment() -> None:
    """An earlier assignment arrives late: the segment starts at 5 s; the 10 s one is withdrawn."""
    events = [inbound(0), assign(10), reply(60), conv_event(300, "resolved")]
    recs = run([*events, assign(5)], PSET, until=DAY)
    assert _handles(recs) == [
        (1, "a1", "l1", 10, 300, 290, "resolved", False),
        (1, "a1", "l1", 5, 300, 295, "resolved", True),
        (1, "a1", "l1", 10, 10, 0, "withdrawn", True),
    ]


def test_an_open_segment_survives_a_snapshot_and_still_ends_idle() -> None:
    """Snapshot while a segment is open, restore: the idle end fires as in an unbroken run."""
    first = [inbound(0), assign(10), reply(60)]
    rest = [inbound(20 * MIN, conv="c2"), assign(20 * MIN, "b1", conv="c2")]
    straight = Engine(PSET)
    want = straight.process(first, ms(100)) + straight.process(rest, ms(DAY))

    engine = Engine(PSET)
    got = engine.process(first, ms(100))
    restored = load_engine(dump_engine(engine), PSET)
    assert restored.conversations["c1"].handling is not None
    assert restored.next_due() == ms(60 + 10 * MIN)
    got += restored.process(rest, ms(DAY))
    assert got == want
    assert _handles(got) == [(1, "a1", "l1", 10, 60, 50, "idle", False)]


def test_a_conversation_pickled_before_handle_time_restores_with_no_open_segment() -> None:
    """A layout-4 snapshot (before handle time) loads; its conversation has no segment open."""
    engine = Engine(PSET)
    engine.process([inbound(0), assign(10), reply(60)], ms(100))
    conv = engine.conversations["c1"]
    old = [getattr(conv, name) for name in conversation_module._FIELDS_V4]
    restored = conversation_module._restore_conversation(4, *old)
    assert restored.handling is None
    assert (restored.agent, restored.cycle, restored.log) == (conv.agent, conv.cycle, conv.log)


UNTIL = 60 * DAY


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(handle_scenario, scenario), st.integers(0, 2**32), st.sampled_from([0.05, 0.3, 1.0])
)
@example(
    [[("inbound", 1), ("assign", 7), ("reply", 60), ("inbound", 600), ("pending", 60)]], 3, 1.0
)
def test_late_deliveries_leave_every_segment_with_its_in_order_record(
    convs: list, seed: int, share: float
) -> None:
    """Whatever the delivery order within the horizon, the counted segments are the same."""
    events = in_time_order(convs)
    in_order = run(events, LATE_PSET, until=UNTIL, horizon_ms=HORIZON_MS)
    late = run(
        deliver_late(events, seed, share=share), LATE_PSET, until=UNTIL, horizon_ms=HORIZON_MS
    )
    assert final_handles(late) == final_handles(in_order)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(handle_scenario, scenario), st.integers(0, 2**32))
def test_fetch_batches_with_duplicates_give_the_in_order_segments(convs: list, seed: int) -> None:
    """Batches as the monitor fetches them, some events twice: the same counted segments."""
    events = in_time_order(convs)
    in_order = run(events, LATE_PSET, until=UNTIL, horizon_ms=HORIZON_MS)
    batched = run_in_batches(deliver_late(events, seed), seed, ms(UNTIL))
    assert final_handles(batched) == final_handles(in_order)


def test_a_segment_stores_the_channel_of_its_last_message_and_never_publishes_it() -> None:
    """A Telegram segment stores `telegram` (the dashboards filter by it) and its withdrawal
    keeps it; the published JSON has no `channel`."""
    recs = run(
        [
            inbound(0, channel="telegram"),
            assign(10),
            reply(60, channel="telegram"),
            conv_event(300, "resolved"),
            assign(5),
        ],
        PSET,
        until=DAY,
    )
    handles = [r for r in recs if isinstance(r, HandleRecord)]
    assert {(r.end, r.channel) for r in handles} == {
        ("resolved", "telegram"),
        ("withdrawn", "telegram"),
    }
    assert all("channel" not in to_json_dict(r, ms(DAY)) for r in handles)
