"""Open conversations share what they hold equal, and the engine keeps no batch alive."""

from __future__ import annotations

import pickle

import pytest

from flows.core.clock import _CLOCK_SLOTS, NO_INSTANT, Clock
from flows.core.context import SHARED_MAX, Context
from flows.core.engine import Engine
from flows.core.snapshot import dump_engine, load_engine
from tests.enginekit import conv_event, inbound, ms, policies

pytestmark = pytest.mark.unit

PSET = policies(
    """
policies:
  - id: p1
    when: {priority: [P1]}
    targets:
      first_response: {within: 10m}
  - id: default
    targets:
      first_response: {within: 30m}
      resolution: {within: 8h}
"""
)


def opened(n: int) -> Engine:
    """Return an engine holding conversations c0..c{n-1}, each opened by one customer message."""
    engine = Engine(PSET)
    engine.process([inbound(i, conv=f"c{i}") for i in range(n)], ms(n))
    return engine


def test_conversations_with_equal_attributes_and_numbering_hold_one_dict() -> None:
    """Three conversations opened alike hold the same `attrs` and `seqs` objects."""
    convs = list(opened(3).conversations.values())
    assert "channel" in convs[0].attrs
    assert all(conv.attrs is convs[0].attrs for conv in convs)
    assert all(conv.seqs is convs[0].seqs for conv in convs)


def test_a_change_to_one_conversation_leaves_the_others_attributes_as_they_were() -> None:
    """Copy-on-write: updating c0's priority gives c0 its own dict and changes nothing in c1."""
    engine = opened(2)
    before = dict(engine.conversations["c1"].attrs)
    records = engine.process([conv_event(10, "updated", conv="c0", priority="P1")], ms(10))
    c0, c1 = engine.conversations["c0"], engine.conversations["c1"]
    assert c0.attrs["priority"] == "P1"
    assert c1.attrs == before
    assert "priority" not in c1.attrs
    assert c0.attrs is not c1.attrs
    assert {r.policy_id for r in records if r.conversation_id == "c0"} == {"p1", "default"}
    assert c1.policy is not None
    assert c1.policy.id == "default"


def test_the_engine_keeps_no_record_of_a_batch_once_it_returned_them() -> None:
    """`process` hands its records to the caller; the context's output list is left empty."""
    engine = Engine(PSET)
    records = engine.process([inbound(0)], ms(1))
    assert records
    assert engine.ctx.out == []


def test_restored_conversations_share_their_dicts_again() -> None:
    """After `load_engine`, conversations with equal attributes hold one dict again."""
    restored = load_engine(dump_engine(opened(3)), PSET)
    convs = list(restored.conversations.values())
    assert all(conv.attrs is convs[0].attrs for conv in convs)
    assert all(conv.seqs is convs[0].seqs for conv in convs)


def test_a_clock_pickles_its_missing_instants_as_none_and_restores_them() -> None:
    """A paused, unmeasured clock's layout holds None (never NO_INSTANT) and loads back as such."""
    clock = Clock("first_response", 1, 1, ms(0))
    clock.pause(ms(5))
    _, (layout, *values) = clock.__reduce__()  # type: ignore[misc]
    fields = dict(zip(_CLOCK_SLOTS, values, strict=True))
    for name in ("count_from", "deadline", "warn", "fixed_deadline", "stopped_at", "last_attempt"):
        assert fields[name] is None, name
    assert NO_INSTANT not in values
    twin = pickle.loads(pickle.dumps(clock))  # noqa: S301 - our own bytes
    assert (twin.count_from, twin.deadline, twin.warn, twin.stopped_at) == (None, None, None, None)
    assert twin.paused
    twin.resume(ms(7))
    assert twin.count_from == ms(7)


def test_a_clocks_rare_fields_survive_a_clone_and_a_pickle_apart_from_the_original() -> None:
    """Attempts, team and a fixed deadline are copied by `clone` and pickling, not shared."""
    clock = Clock("contact_attempts", 1, 1, ms(0))
    fields = (clock.attempts, clock.team, clock.fixed_deadline, clock.last_attempt)
    assert fields == (0, None, None, None)
    clock.attempts += 1
    clock.last_attempt = ms(3)
    clock.team = "sales"
    clock.fixed_deadline = ms(60)
    twin = clock.clone()
    twin.attempts += 1
    twin.team = None
    assert (clock.attempts, clock.team) == (1, "sales")
    assert (twin.attempts, twin.team, twin.fixed_deadline) == (2, None, ms(60))
    loaded = pickle.loads(pickle.dumps(clock))  # noqa: S301 - our own bytes
    assert (loaded.attempts, loaded.last_attempt, loaded.team, loaded.fixed_deadline) == (
        1,
        ms(3),
        "sales",
        ms(60),
    )


def test_the_tables_of_shared_dicts_stay_bounded_and_keep_sharing_after_they_fill() -> None:
    """More distinct attribute dicts than `SHARED_MAX` never grow the table beyond it."""
    ctx = Context(PSET)
    held = [ctx.share_attrs({"team_id": f"t{i}"}) for i in range(SHARED_MAX * 3 + 5)]
    assert len(ctx._shared_attrs) <= SHARED_MAX
    assert [a["team_id"] for a in held] == [f"t{i}" for i in range(SHARED_MAX * 3 + 5)]
    again = ctx.share_attrs({"team_id": "fresh"})
    assert ctx.share_attrs({"team_id": "fresh"}) is again
