"""Engine snapshots restore a running engine exactly (recovery)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.core.decode import decode_event
from flows.core.engine import Engine
from flows.core.events import Rejected
from flows.core.snapshot import dump_engine, load_engine
from tests.enginekit import assign, conv_event, inbound, ms, policies, reply
from tests.latekit import HORIZON_MS, PSET_BEFORE_TEAMS, final_states

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
