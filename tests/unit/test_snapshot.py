"""Engine snapshots restore a running engine exactly (recovery)."""

from __future__ import annotations

import pytest

from flows.core.engine import Engine
from flows.core.snapshot import dump_engine, load_engine
from tests.enginekit import assign, conv_event, inbound, ms, policies, reply

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
