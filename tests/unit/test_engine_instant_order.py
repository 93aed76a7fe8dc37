"""One truth whatever the delivery: events at one instant, and retracted (failed) messages.

SPEC §4 edge rules fix the order of events that share an instant, so the records are a function
of the set of events; SPEC §1 `action: failed` makes every clock as if the message was never sent.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from itertools import groupby

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.core.engine import Engine
from flows.core.events import (
    Event,
    MessageEvent,
    RetractionEvent,
    SurveyEvent,
    instant_rank,
    order_key,
)
from flows.core.records import DeadLetter, SlaRecord
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
from tests.latekit import (
    GAPS,
    HORIZON_MS,
    KINDS,
    PSET,
    build,
    deliver_late,
    differences,
    final_states,
    run_in_batches,
)

pytestmark = pytest.mark.unit

UNTIL = 60 * 24 * 3600

LEADS = policies(
    """
policies:
  - id: leads
    when: {lead_source: demo_request}
    targets:
      first_response: {within: 5m}
      qualification: {within: 4h}
      contact_attempts: {min: 3, within: 2h, gap: 10m}
      cadence: {qualified: 1d, nurture: 3d}
  - id: default
    targets: {first_response: {within: 5m}, next_response: {within: 15m}}
"""
)


def retraction(t: float, message_id: str, conv: str = "c1", eid: str | None = None) -> Event:
    """A failed delivery of `message_id`, reported at `t` (seconds)."""
    return RetractionEvent(eid or f"failed-{message_id}-{t}", conv, ms(t), message_id)


def records_of(events: Sequence[Event], pset: object = PSET, **kw: object) -> list[object]:
    """The SLA records of a replay, with the `late` flag dropped (what a store keeps)."""
    return [r for r in run(events, pset, until=UNTIL, **kw) if isinstance(r, SlaRecord)]  # type: ignore[arg-type]


def test_rank_of_one_instant_follows_spec_order() -> None:
    """Opened, attributes, inbound, assignment, outbound/activity, status/promise, resolved."""
    ranked = [
        conv_event(0, "opened"),
        conv_event(0, "updated", priority="P1"),
        inbound(0),
        assign(0),
        reply(0),
        activity(0),
        conv_event(0, "updated", status="pending"),
        conv_event(0, "follow_up_promised", due=60),
        conv_event(0, "resolved"),
    ]
    assert [instant_rank(e) for e in ranked] == [1, 2, 3, 4, 5, 5, 6, 6, 7]
    assert sorted(reversed(ranked), key=order_key)[0] == ranked[0]


def test_reply_and_lead_status_at_one_instant_give_the_same_records_in_either_order() -> None:
    """The issue's case: a reply and a `lead_status` update at 20:14, delivered either way round."""
    base = [
        conv_event(0, "opened", lead_source="demo_request"),
        inbound(1),
        assign(2),
        reply(60),
    ]
    reply_2014 = reply(3600)
    qualified_2014 = conv_event(3600, "updated", lead_status="qualified")
    a = records_of([*base, reply_2014, qualified_2014], LEADS)
    b = records_of([*base, qualified_2014, reply_2014], LEADS)
    assert final_states(a) == final_states(b)
    # SPEC order: the attribute update (rank 2) applies before the reply (rank 5), so the reply
    # is agent activity under `qualified`: it ends the cadence the update started and starts seq 2.
    assert statuses(a, "cadence")[:3] == ["started", "met", "started"]


def test_a_status_update_at_a_reply_instant_applies_after_the_reply() -> None:
    """`updated` with `status` ranks after outbound messages: pending does not pause the reply."""
    events = [inbound(0), reply(30), conv_event(30, "updated", status="pending")]
    for delivered in (events, [events[0], events[2], events[1]]):
        recs = records_of(delivered)
        assert statuses(recs, "first_response") == ["started", "met"]


def test_resolve_at_the_instant_of_an_inbound_message_resolves_the_cycle_it_opened() -> None:
    """`resolved` ranks last: an inbound and a resolve at one instant open then resolve a cycle."""
    events = [inbound(0), reply(10), conv_event(100, "resolved"), inbound(100)]
    want = final_states(records_of(events))
    got = final_states(records_of([events[0], events[1], events[3], events[2]]))
    assert got == want
    assert {ident[1] for ident in want} == {1}


def tie_scenario(seed: int, convs: list[list[tuple[str, int]]]) -> list[Event]:
    """The scenario's events with many instants shared inside each conversation."""
    out: list[Event] = []
    for i, steps in enumerate(convs):
        out += build(f"c{i}", steps, i * 0.013)
    out.sort(key=lambda e: e.occurred_at)
    return out


def shuffle_ties(events: Sequence[Event], seed: int) -> list[Event]:
    """The same events with those of each instant in a random order."""
    rng = random.Random(seed)
    out: list[Event] = []
    for _, group in groupby(events, key=lambda e: e.occurred_at):
        same = list(group)
        rng.shuffle(same)
        out += same
    return out


TIE_GAPS = (0, 0, 0, *GAPS)
tie_step = st.tuples(st.sampled_from(KINDS), st.sampled_from(TIE_GAPS))
tie_conversations = st.lists(st.lists(tie_step, min_size=1, max_size=30), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tie_conversations, st.integers(0, 2**32), st.sampled_from([0.0, 0.05, 0.3]))
def test_events_sharing_instants_converge_whatever_the_delivery(
    convs: list[list[tuple[str, int]]], seed: int, share: float
) -> None:
    """Ties shuffled, late deliveries and redeliveries give every clock the same final record."""
    events = tie_scenario(seed, convs)
    reference = sorted(events, key=order_key)
    want = run(reference, PSET, until=UNTIL, horizon_ms=HORIZON_MS)
    delivered = deliver_late(shuffle_ties(events, seed), seed, share=share)
    got = run_in_batches(delivered, seed, ms(UNTIL))
    assert not [r for r in got if isinstance(r, DeadLetter)]
    assert differences(final_states(want), final_states(got)) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tie_conversations, st.integers(0, 2**32))
def test_in_order_delivery_with_shuffled_ties_gives_identical_records(
    convs: list[list[tuple[str, int]]], seed: int
) -> None:
    """Without late events, any order of one instant's events gives the very same record stream."""
    events = tie_scenario(seed, convs)
    a = run(sorted(events, key=order_key), PSET, until=UNTIL, horizon_ms=HORIZON_MS)
    b = run(shuffle_ties(events, seed), PSET, until=UNTIL, horizon_ms=HORIZON_MS)
    if a != b:
        # A shuffled tie may arrive after one it should precede: then it is a correction, and
        # only the final records must agree.
        assert differences(final_states(a), final_states(b)) == []
    else:
        assert a == b


# ---------------------------------------------------------------- retractions (failed sends)


def test_a_failed_reply_reopens_the_first_response_it_had_met() -> None:
    """A reply that never reached the customer does not meet the clock: it breaches on time."""
    events = [inbound(0), reply(60, message_id="m1"), retraction(90, "m1")]
    recs = run(events, PSET, until=3 * 3600)
    first = sla(recs, "first_response")
    assert [r.status for r in first[:2]] == ["started", "met"]
    # The retraction corrects the store at once (the clock runs again), and it breaches on time.
    assert (first[2].status, first[2].late, first[2].breached) == ("started", True, False)
    assert [(r.status, r.at, r.late) for r in first[3:]] == [
        ("warning", ms(2880), False),
        ("breached", ms(3600), False),
    ]


def test_a_retraction_before_its_message_arrives_still_retracts_it() -> None:
    """Delivered in either order, the failed reply never counts."""
    events = [inbound(0), reply(60, message_id="m1"), retraction(90, "m1")]
    want = final_states(records_of([events[0]]))
    got = final_states(records_of([events[0], events[2], events[1]]))
    assert differences(want, got) == []
    # In order, the reply's periodic-update clock is withdrawn (`cancelled`) by the retraction.
    assert differences(want, final_states(records_of(events))) == []


def test_a_retraction_of_an_unknown_message_is_counted_not_an_error() -> None:
    """An unknown `message_id` changes nothing and is counted by the engine."""
    engine = Engine(PSET)
    out = engine.process([inbound(0), reply(60, message_id="m1")], ms(60))
    out += engine.process([retraction(90, "nope")], ms(90))
    assert engine.unknown_retractions == 1
    assert not [r for r in out if isinstance(r, DeadLetter)]
    assert statuses(out, "first_response") == ["started", "met"]  # type: ignore[arg-type]


def test_a_failed_inbound_id_does_not_retract_the_customer_message() -> None:
    """Only outbound messages can fail delivery: an inbound with that id still counts."""
    events = [inbound(0, message_id="m1"), retraction(5, "m1")]
    assert statuses(records_of(events), "first_response")[0] == "started"
    assert final_states(records_of(events)) == final_states(records_of(events[:1]))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tie_conversations, st.integers(0, 2**32))
def test_retracted_messages_count_as_never_sent(
    convs: list[list[tuple[str, int]]], seed: int
) -> None:
    """With random replies retracted (failures reported later, delivered late or not), every
    clock ends as in a run where those replies never existed."""
    rng = random.Random(seed)
    events = tie_scenario(seed, convs)
    kept: list[Event] = []
    failed: list[Event] = []
    with_ids: list[Event] = []
    for n, event in enumerate(events):
        if isinstance(event, MessageEvent) and event.direction == "outbound" and rng.random() < 0.3:
            mid = f"m{n}"
            msg = MessageEvent(
                event.event_id,
                event.conversation_id,
                event.occurred_at,
                event.direction,
                event.author,
                event.agent_id,
                mid,
                event.channel,
                event.kind,
            )
            with_ids.append(msg)
            delay = rng.choice((0, 1, 60, 3600))
            reported = (msg.occurred_at - ms(0)) / 1000 + delay
            failed.append(retraction(reported, mid, msg.conversation_id))
        else:
            with_ids.append(event)
            kept.append(event)
    want = run(sorted(kept, key=order_key), PSET, until=UNTIL, horizon_ms=HORIZON_MS)
    everything = sorted(with_ids + failed, key=lambda e: e.occurred_at)
    got = run_in_batches(deliver_late(everything, seed, share=0.2), seed, ms(UNTIL))
    assert not [r for r in got if isinstance(r, DeadLetter)]
    assert differences(final_states(want), final_states(got)) == []


# ---------------------------------------------------------------- the channel's own window

WINDOW = policies(
    """
policies:
  - id: default
    targets:
      first_response: {within: 5m}
      service_window: {within: 24h, warn_before: 2h}
"""
)


def test_only_whatsapp_messages_open_a_service_window() -> None:
    """A Telegram or web-chat customer gets no 24-hour window; a WhatsApp one does."""
    for channel, want in (("telegram", []), ("web", []), ("whatsapp", ["started", "warning"])):
        recs = run([inbound(0, channel=channel)], WINDOW, until=23 * 3600)
        assert statuses(recs, "service_window") == want, channel
        assert all(r.channel == channel for r in sla(recs))


def test_a_telegram_message_does_not_move_a_running_whatsapp_window() -> None:
    """The window runs from the latest WhatsApp message, not from a message on another channel."""
    recs = run([inbound(0), inbound(3600, channel="telegram")], WINDOW, until=25 * 3600)
    window = sla(recs, "service_window")
    assert [r.status for r in window] == ["started", "warning", "breached"]
    assert window[-1].at == ms(24 * 3600)


def test_surveys_are_accepted_and_change_no_clock_yet() -> None:
    """A survey (CSAT, issue 24) at a resolve's instant neither crashes nor changes a record."""
    events = [inbound(0), reply(30), conv_event(100, "resolved")]
    surveys = [
        SurveyEvent("sv1", "c1", ms(100), "sent", "s1"),
        SurveyEvent("sv2", "c1", ms(50), "rated", "s1", 5),
    ]
    assert final_states(records_of(events)) == final_states(records_of([*surveys, *events]))


def test_a_correction_at_a_deadline_instant_still_emits_the_breach_due_then() -> None:
    """A rebuild at the instant of a pending deadline leaves the breach to fire, not swallowed."""
    engine = Engine(PSET)
    out = engine.process(
        [inbound(0), reply(0, message_id="m1"), reply(0, kind="note", message_id="m2")], ms(0)
    )
    out += engine.process([retraction(10, "m1")], ms(10))
    # At the deadline (1 h), a customer message and a correction (a retracted note) arrive.
    out += engine.process([inbound(3600), retraction(3600, "m2")], ms(4000))
    first = [r for r in out if isinstance(r, SlaRecord) and r.metric == "first_response"]
    assert [(r.status, r.at) for r in first][-2:] == [("warning", ms(2880)), ("breached", ms(3600))]
