"""Engine snapshots restore a running engine exactly (recovery)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flows.core.decode import decode_event
from flows.core.engine import Engine
from flows.core.events import Event, Rejected
from flows.core.records import to_json_dict
from flows.core.snapshot import dump_engine, load_engine
from tests.enginekit import assign, conv_event, inbound, ms, policies, reply
from tests.latekit import (
    HORIZON_MS,
    PSET_BEFORE_TEAMS,
    deliver_late,
    final_states,
    in_time_order,
    scenario,
)
from tests.latekit import PSET as PSET_ALL

pytestmark = pytest.mark.unit

PSET = policies(
    """
calendars:
  office:
    timezone: Asia/Jakarta
    weekly: {mon: ["08:00-22:00"], tue: ["08:00-22:00"]}
policies:
  - id: office
    calendar: office
    targets:
      first_response: {within: 30m}
      resolution: {within: 8h, pause_when: [pending]}
"""
)


def test_restored_engine_continues_with_identical_records() -> None:
    """Snapshot mid-stream, restore, continue: the records equal an uninterrupted run."""
    first = [
        inbound(0),
        assign(5),
        inbound(0, conv="c2"),
        conv_event(60, "updated", status="pending"),
    ]
    rest = [reply(3 * 3600), conv_event(4 * 3600, "resolved", conv="c2")]
    straight = Engine(PSET)
    out_a = straight.process(first, ms(100)) + straight.process(rest, ms(30 * 3600))

    engine = Engine(PSET)
    out_b = engine.process(first, ms(100))
    data = dump_engine(engine)
    assert len(data) < 20_000
    restored = load_engine(data, PSET)
    out_b += restored.process(rest, ms(30 * 3600))
    assert out_a == out_b
    assert restored.ctx.policies is PSET
    clock = restored.conversations["c1"].clocks[0]
    assert clock.cal is PSET.calendars["office"]


def test_redelivered_event_after_restore_is_still_ignored() -> None:
    """A duplicate of an event from before the snapshot changes nothing after a restore."""
    pset = policies("policies:\n  - id: p\n    targets: {follow_up: {warn_at: 0.5}}\n")
    promise = conv_event(10, "follow_up_promised", due=3600)
    engine = Engine(pset)
    engine.process([inbound(0), promise, reply(60)], ms(120))
    restored = load_engine(dump_engine(engine), pset)
    assert restored.seen == {}
    # A second promise would start a second follow_up clock: the redelivery must not.
    assert restored.process([promise], ms(200)) == []


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_a_snapshot_written_by_slawatch_0_1_restores_and_carries_on() -> None:
    """A recovery snapshot from before the package layout changed resumes with the same clocks.

    `engine-0.1.snapshot` was written by the 0.1 engine after the first half of
    `engine-0.1.events.jsonl`; restored here, fed the second half, every clock ends as in a
    fresh run over all the events.
    """
    lines = (FIXTURES / "engine-0.1.events.jsonl").read_bytes().splitlines()
    events = [decode_event(line) for line in lines]
    assert all(not isinstance(e, Rejected) for e in events)
    half = len(events) // 2
    fresh = Engine(PSET_BEFORE_TEAMS, horizon_ms=HORIZON_MS)
    first: list[object] = []
    for event in events[:half]:
        first += fresh.process([event], event.occurred_at)  # type: ignore[list-item]
    rest: list[object] = []
    for event in events[half:]:
        rest += fresh.process([event], event.occurred_at)  # type: ignore[list-item]
    restored = load_engine((FIXTURES / "engine-0.1.snapshot").read_bytes(), PSET_BEFORE_TEAMS)
    resumed: list[object] = []
    for event in events[half:]:
        resumed += restored.process([event], event.occurred_at)  # type: ignore[list-item]
    assert len(restored.conversations) == len(fresh.conversations)
    assert final_states(first + resumed) == final_states(first + rest)


def test_a_snapshot_repickles_only_the_conversations_touched_since_the_last() -> None:
    """Snapshot cost follows change: untouched conversations keep their pickled bytes."""
    engine = Engine(PSET)
    engine.process([inbound(i, conv=f"c{i}") for i in range(50)], ms(60))
    dump_engine(engine)
    before = dict(engine.blobs)
    engine.process([reply(70, conv="c3"), inbound(80, conv="c7")], ms(90))
    data = dump_engine(engine)
    changed = {cid for cid, blob in engine.blobs.items() if blob is not before[cid]}
    assert changed == {"c3", "c7"}
    restored = load_engine(data, PSET)
    later = [reply(200, conv=f"c{i}") for i in range(0, 50, 5)]
    want = engine.process(later, ms(4000))
    assert restored.process(later, ms(4000)) == want
    assert len(want) >= 10


def _records_after(events: list[Event], cut: int, *, restore: bool) -> list[bytes]:
    """Feed `events` one at a time (watermark 5 s behind); return the records after the first
    `cut` events as published JSON, the engine snapshotted and restored at `cut` if asked."""
    engine = Engine(PSET_ALL, horizon_ms=HORIZON_MS)
    top: int | None = None
    out: list[bytes] = []
    for i, event in enumerate(events):
        if restore and i == cut:
            engine = load_engine(dump_engine(engine), PSET_ALL)
        top = event.occurred_at if top is None else max(top, event.occurred_at)
        records = engine.process([event], top - 5_000)
        if i >= cut:
            out += [orjson.dumps(to_json_dict(r, 0)) for r in records]
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario, st.integers(0, 2**32), st.floats(0.0, 1.0))
# The round-robin position was not in the snapshot: after a restore, a breach reassigned to
# the team's first agent instead of the next one (CI found it).
@example(
    [
        [
            ("inbound", 1),
            ("hot", 1),
            ("team_l1", 1),
            ("resolved", 14400),
            ("inbound", 1),
            ("inbound", 1),
            ("inbound", 1),
            ("inbound", 480),
        ]
    ],
    0,
    0.5,
)
# A team stint restored after the 25th event came back unmeasured: its clock held the team's
# own target, which the snapshot did not reference.
@example(
    [
        [
            ("pending", 180),
            ("pending", 120),
            ("assign_l2", 1),
            ("open", 3600),
            ("reply", 900),
            ("qualified", 93600),
            ("reply", 1),
            ("promise", 120),
            ("p1", 93600),
            ("template", 7),
            ("reply", 180),
            ("promise", 180),
            ("qualified", 120),
            ("inbound", 480),
            ("disqualified", 7),
            ("p1", 1),
            ("reply", 14400),
            ("call", 7),
            ("connected", 600),
            ("qualified", 180000),
            ("promise", 180),
            ("reply", 600),
            ("new", 600),
            ("pending", 120),
            ("inbound", 3600),
            ("team_l2", 900),
            ("pending", 180000),
            ("team_l1", 120),
            ("assign", 120),
            ("template", 480),
            ("disqualified", 480),
            ("inbound", 60),
            ("assign_l2", 60),
            ("p3", 93600),
            ("won", 120),
            ("survey_rated", 180),
            ("bot", 180000),
            ("p3", 1),
            ("hot", 60),
        ]
    ],
    1007,
    0.65,
)
def test_a_restore_at_any_event_continues_with_the_uninterrupted_records(
    convs: list, seed: int, where: float
) -> None:
    """Every metric (team stints, updates, handle segments, recoveries, surveys too), delivered
    late: a snapshot taken after any event and restored gives the records of a run without it."""
    events = deliver_late(in_time_order(convs), seed, share=0.3)
    cut = int(where * len(events))
    assert _records_after(events, cut, restore=True) == _records_after(events, cut, restore=False)
