"""Late events within the correction horizon converge to the in-order outcome of every clock."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flows.core.policies import parse_policies
from flows.core.records import DeadLetter
from flows.core.timefmt import parse_instant
from flows.replay import replay_records
from tests.enginekit import ms, run
from tests.latekit import (
    HORIZON_MS,
    PSET,
    deliver_late,
    differences,
    final_states,
    in_time_order,
    run_in_batches,
    scenario,
)

pytestmark = pytest.mark.unit

UNTIL = 60 * 24 * 3600


def _compare(convs: list, seed: int, share: float) -> list[str]:
    events = in_time_order(convs)
    delivered = deliver_late(events, seed, share=share)
    in_order = run(events, PSET, until=UNTIL, horizon_ms=HORIZON_MS)
    late = run(delivered, PSET, until=UNTIL, horizon_ms=HORIZON_MS)
    assert not [r for r in late if isinstance(r, DeadLetter)], "an event inside the horizon"
    return differences(final_states(in_order), final_states(late))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario, st.integers(0, 2**32), st.sampled_from([0.05, 0.3, 1.0]))
@example(
    # A late agent reply inside the resolved gap, after a quiet stretch longer than the
    # horizon: the rebuilt second cycle kept cycle 1's number (issue 13's reproduction).
    [[("inbound", 1), ("resolved", 26 * 3600), ("reply", 8 * 3600), ("inbound", 4 * 3600)]],
    7,
    1.0,
)
def test_late_deliveries_leave_every_clock_with_its_in_order_record(
    convs: list, seed: int, share: float
) -> None:
    """Whatever the delivery order within the horizon, each clock's final record matches."""
    assert _compare(convs, seed, share) == []


REPRO_POLICIES = """
policies:
  - id: default
    {calendar}
    targets:
      first_response: {{within: 1h}}
      next_response: {{within: 15m}}
      resolution: {{within: 72h, pause_when: [pending]}}
      assignment: {{within: 2m}}
"""
REPRO_CALENDAR = """calendars:
  office:
    timezone: Asia/Jakarta
    weekly: {mon: ["08:00-22:00"], tue: ["08:00-22:00"], wed: ["08:00-22:00"],
             thu: ["08:00-22:00"], fri: ["08:00-22:00"], sat: [], sun: []}
"""
REPRO_EVENTS = [
    b'{"event_id":"rc-15-open","type":"conversation","conversation_id":"rc-15","action":"opened",'
    b'"occurred_at":"2025-01-15T10:40:55Z","segment":"rc-15"}',
    b'{"event_id":"rc-15-4","type":"conversation","conversation_id":"rc-15","action":"resolved",'
    b'"occurred_at":"2025-01-15T12:12:01Z"}',
    b'{"event_id":"rc-15-9","type":"message","conversation_id":"rc-15",'
    b'"occurred_at":"2025-01-17T01:24:41Z","direction":"inbound","author":"customer","kind":"text"}',
    b'{"event_id":"rc-15-10","type":"conversation","conversation_id":"rc-15","action":"updated",'
    b'"status":"pending","occurred_at":"2025-01-17T01:40:20Z"}',
    b'{"event_id":"rc-15-7","type":"message","conversation_id":"rc-15",'
    b'"occurred_at":"2025-01-16T22:03:31Z","direction":"outbound","author":"agent",'
    b'"agent_id":"a1","kind":"text"}',
]


@pytest.mark.parametrize("calendar", [False, True], ids=["wall-clock", "business-calendar"])
def test_issue_13_reproduction_replays_to_the_in_order_records(calendar: bool) -> None:
    """A reply 3.6 h late inside the resolved gap leaves cycle 2's records as in time order."""
    text = REPRO_POLICIES.format(calendar="calendar: office" if calendar else "")
    pset = parse_policies((REPRO_CALENDAR if calendar else "") + text)
    until = parse_instant("2025-03-01T00:00:00Z")
    in_order = sorted(REPRO_EVENTS, key=lambda line: orjson.loads(line)["occurred_at"])
    want = final_states(replay_records(in_order, pset, until=until, max_future_ms=None))
    got = final_states(replay_records(REPRO_EVENTS, pset, until=until, max_future_ms=None))
    assert got == want
    assert {ident[1] for ident in want if ident[2] == "first_response"} == {2}
    assert any(v["status"] == "paused" for k, v in got.items() if k[2] == "resolution")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario, st.integers(0, 2**32))
def test_late_deliveries_in_fetch_batches_with_duplicates_converge(convs: list, seed: int) -> None:
    """Batches, a trailing watermark and redeliveries give the same final clocks as in order."""
    events = in_time_order(convs)
    delivered = deliver_late(events, seed, share=0.3)
    in_order = run(events, PSET, until=UNTIL, horizon_ms=HORIZON_MS)
    late = run_in_batches(delivered, seed, ms(UNTIL))
    assert not [r for r in late if isinstance(r, DeadLetter)]
    assert differences(final_states(in_order), final_states(late)) == []


ENDING = frozenset({"met", "stopped", "closed", "cancelled", "breached"})
# Clocks that start only while their cycle is open (a promise or a qualification after the
# resolve starts `follow_up` / `handoff` clocks that still belong to the resolved cycle).
CYCLE_ONLY = frozenset(
    {"assignment", "first_response", "next_response", "qualification", "contact_attempts"}
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario, st.integers(0, 2**32))
# A reply after `pending` starts an update clock that is paused at once; the resolve before it,
# delivered last, withdraws the clock, whose cancelled record still needs its deadline.
@example(
    [[("inbound", 1)] * 22 + [("pending", 1), ("p1", 1), ("resolved", 1), ("reply", 1)]],
    1696572,
)
def test_every_clock_ends_with_a_record_that_says_how_and_when_it_was_due(
    convs: list, seed: int
) -> None:
    """Ending records carry a deadline; a clock breached then resolved is `closed`, not open."""
    events = deliver_late(in_time_order(convs), seed, share=0.05)
    records = run(events, PSET, until=UNTIL, horizon_ms=HORIZON_MS)
    for ident, state in final_states(records).items():
        if state["status"] in ENDING:
            assert state["deadline_at"] is not None, (ident, state)
        if state["status"] == "closed":
            assert state["breached"] and state["stopped_at"] is not None
    finals = final_states(records)
    resolved_cycles = {
        (ident[0], ident[1])
        for ident, state in finals.items()
        if ident[2] == "resolution" and state["status"] in ("met", "stopped")
    }
    for ident, state in finals.items():
        if (ident[0], ident[1]) in resolved_cycles and ident[2] in CYCLE_ONLY:
            # A resolved cycle leaves none of its clocks running (met, closed or cancelled).
            assert state["status"] in ENDING - {"breached"}, (ident, state)
