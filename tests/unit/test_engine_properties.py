"""Properties of the engine that users rely on, over random conversations (hypothesis)."""

from __future__ import annotations

import random
import zlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.core.engine import Engine
from flows.core.events import Event
from flows.core.records import ActionRecord, SlaRecord
from tests.enginekit import (
    activity,
    assign,
    bot,
    conv_event,
    inbound,
    ms,
    policies,
    reply,
    run,
    sla,
    unassign,
)

pytestmark = pytest.mark.unit

PSET = policies(
    """
calendars:
  office:
    timezone: Asia/Jakarta
    weekly:
      mon: ["08:00-12:00", "13:00-22:00"]
      tue: ["08:00-22:00"]
      wed: ["08:00-22:00"]
      thu: ["08:00-22:00"]
      fri: ["08:00-17:00"]
      sat: ["00:00-24:00"]
      sun: []
policies:
  - id: hot
    when: {lead_source: demo_request}
    calendar: office
    targets:
      assignment: {within: 2m}
      first_response: {within: 3m}
      next_response: {within: 10m, warn_before: 2m}
      resolution: {within: 8h, pause_when: [pending]}
      follow_up: {warn_before: 5m}
      qualification: {within: 4h}
      handoff: {within: 4h, to_role: ae}
      contact_attempts: {min: 3, within: 2h, gap: 10m}
      cadence: {qualified: 1d, nurture: 3d}
      service_window: {within: 24h, warn_before: 2h}
    escalations:
      - {on: warning, metric: first_response, notify: supervisor}
  - id: vip
    when: {segment: vip}
    targets:
      first_response: {within: 1m}
      next_response: {within: 5m}
      resolution: {within: 4h, pause_when: [pending]}
      service_window: {within: 24h}
  - id: default
    targets:
      assignment: {within: 5m}
      first_response: {within: 5m}
      next_response: {within: 15m}
      resolution: {within: 24h, pause_when: [pending]}
      follow_up: {warn_at: 0.5}
      service_window: {within: 24h, warn_before: 2h}
teams:
  sales: {agents: [a1, a2, a3], supervisor: s1}
"""
)

KINDS = (
    "inbound",
    "reply",
    "template",
    "note",
    "bot",
    "assign",
    "assign_ae",
    "unassign",
    "pending",
    "open",
    "vip",
    "hot",
    "qualified",
    "nurture",
    "disqualified",
    "bot_on",
    "bot_off",
    "resolved",
    "won",
    "reopened",
    "promise",
    "call",
    "connected",
)


def build(conv: str, steps: list[tuple[str, int]], start: int) -> list[Event]:
    """Turn (kind, gap seconds) steps into events with strictly increasing times."""
    out: list[Event] = []
    t = start
    for kind, gap in steps:
        t += gap
        s = t / 1000
        if kind == "inbound":
            out.append(inbound(s, conv))
        elif kind == "reply":
            out.append(reply(s, conv))
        elif kind == "template":
            out.append(reply(s, conv, kind="template"))
        elif kind == "note":
            out.append(reply(s, conv, kind="note"))
        elif kind == "bot":
            out.append(bot(s, conv))
        elif kind == "assign":
            out.append(assign(s, "a1", conv))
        elif kind == "assign_ae":
            out.append(assign(s, "a2", conv, role="ae"))
        elif kind == "unassign":
            out.append(unassign(s, conv))
        elif kind in ("pending", "open"):
            out.append(conv_event(s, "updated", conv, status=kind))
        elif kind == "vip":
            out.append(conv_event(s, "updated", conv, segment="vip"))
        elif kind == "hot":
            out.append(conv_event(s, "updated", conv, lead_source="demo_request"))
        elif kind in ("qualified", "nurture", "disqualified"):
            out.append(conv_event(s, "updated", conv, lead_status=kind))
        elif kind == "bot_on":
            out.append(conv_event(s, "updated", conv, handled_by="bot"))
        elif kind == "bot_off":
            out.append(conv_event(s, "updated", conv, handled_by="human"))
        elif kind == "resolved":
            out.append(conv_event(s, "resolved", conv))
        elif kind == "won":
            out.append(conv_event(s, "resolved", conv, outcome="won"))
        elif kind == "reopened":
            out.append(conv_event(s, "reopened", conv))
        elif kind == "promise":
            out.append(conv_event(s, "follow_up_promised", conv, due=s + 1800))
        elif kind == "call":
            out.append(activity(s, conv))
        else:
            out.append(activity(s, conv, outcome="connected"))
    return out


step = st.tuples(
    st.sampled_from(KINDS),
    st.sampled_from([1_000, 7_000, 30_000, 90_000, 240_000, 900_000, 3_600_000, 20_000_000]),
)
conversations = st.lists(st.lists(step, min_size=1, max_size=25), min_size=1, max_size=4)


def streams(convs: list[list[tuple[str, int]]], seed: int) -> list[Event]:
    """Events of several conversations, interleaved by time with distinct instants."""
    events: list[Event] = []
    for i, steps in enumerate(convs):
        events += build(f"c{i}", steps, i * 13)
    events.sort(key=lambda e: e.occurred_at)
    return events


def last_per_clock(
    records: list[SlaRecord | ActionRecord],
) -> dict[tuple[str, int, str, int], tuple[object, ...]]:
    """What an analyst's clocks table converges to: the latest state per clock."""
    out: dict[tuple[str, int, str, int], tuple[object, ...]] = {}
    for r in sla(records):
        out[r.identity()] = (r.status, r.breached, r.deadline_at, r.started_at, r.stopped_at)
    return out


UNTIL = 40 * 24 * 3600


@settings(max_examples=60, deadline=None)
@given(conversations, st.integers(0, 1000))
def test_replaying_twice_gives_identical_records(convs: list, seed: int) -> None:
    """The same input replayed twice gives the same records."""
    events = streams(convs, seed)
    assert run(events, PSET, until=UNTIL) == run(events, PSET, until=UNTIL)


@settings(max_examples=60, deadline=None)
@given(conversations, st.integers(0, 1000))
def test_every_clock_ends_in_exactly_one_final_outcome(convs: list, seed: int) -> None:
    """Each clock has one start and, in the end, exactly one outcome (or is still paused)."""
    events = streams(convs, seed)
    records = run(events, PSET, until=UNTIL)
    by_clock: dict[tuple[str, int, str, int], list[SlaRecord]] = {}
    for r in sla(records):
        by_clock.setdefault(r.identity(), []).append(r)
    for ident, recs in by_clock.items():
        kinds = [r.status for r in recs]
        assert kinds[0] == "started", (ident, kinds)
        assert kinds.count("started") == 1, (ident, kinds)
        assert kinds.count("breached") <= 1, (ident, kinds)
        paused = False
        for kind in kinds:
            if kind in ("paused", "resumed"):
                paused = kind == "paused"
        if paused:
            continue
        outcomes = [k for k in kinds if k in ("met", "cancelled", "breached")]
        if ident[2] == "resolution":
            # A reopened resolution clock is met again at the next resolve; the last counts.
            assert outcomes, (ident, kinds)
            continue
        assert len(outcomes) == 1, (ident, kinds)
        if "breached" in kinds:
            assert "met" not in kinds and "cancelled" not in kinds, (ident, kinds)


@settings(max_examples=60, deadline=None)
@given(conversations, st.integers(0, 10_000))
def test_shuffling_within_lateness_gives_same_records(convs: list, seed: int) -> None:
    """Events reordered by less than the allowed lateness give exactly the same records."""
    lateness = 5_000
    events = streams(convs, seed)
    rng = random.Random(seed)
    jittered = sorted(events, key=lambda e: e.occurred_at + rng.randrange(0, lateness))
    base = run(events, PSET, until=UNTIL, lateness_ms=lateness)
    assert run(jittered, PSET, until=UNTIL, lateness_ms=lateness) == base


@settings(max_examples=60, deadline=None)
@given(conversations, st.integers(0, 10_000))
def test_late_events_converge_to_the_in_order_outcomes(convs: list, seed: int) -> None:
    """Late events within the correction horizon leave every clock with its in-order outcome."""
    events = streams(convs, seed)
    rng = random.Random(seed)
    shuffled = events[:]
    rng.shuffle(shuffled)
    horizon = 100 * 24 * 3600 * 1000
    in_order = last_per_clock(run(events, PSET, until=UNTIL, horizon_ms=horizon))
    late = last_per_clock(run(shuffled, PSET, until=UNTIL, horizon_ms=horizon))
    assert {k: v for k, v in late.items() if k in in_order} == in_order
    assert all(v[0] == "cancelled" for k, v in late.items() if k not in in_order)


@settings(max_examples=40, deadline=None)
@given(conversations, st.integers(0, 1000))
def test_splitting_conversations_across_shards_gives_same_records(convs: list, seed: int) -> None:
    """Conversations spread over several engines (shards) give the same records as one."""
    events = streams(convs, seed)
    whole = run(events, PSET, until=UNTIL)
    shards = [Engine(PSET), Engine(PSET)]
    parts: list[SlaRecord | ActionRecord] = []
    top = None
    for event in events:
        top = event.occurred_at if top is None else max(top, event.occurred_at)
        shard = shards[zlib.crc32(event.conversation_id.encode()) % 2]
        parts += shard.process([event], top)
        other = shards[1 - shards.index(shard)]
        parts += other.process([], top)
    for shard in shards:
        parts += shard.process([], ms(UNTIL))

    def per_conv(records: list[SlaRecord | ActionRecord]) -> dict[str, list[object]]:
        out: dict[str, list[object]] = {}
        for r in records:
            out.setdefault(r.conversation_id, []).append(replace(r))
        return out

    assert per_conv(parts) == per_conv(whole)
