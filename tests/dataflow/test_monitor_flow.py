"""The monitor's Bytewax steps with in-memory input: sharding, dead letters, ticks, snapshots."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from flows.connectors.kafka import Fetch
from flows.core.decode import decode_event
from flows.core.events import Event, Rejected
from flows.core.policies import load_policies
from flows.core.records import DeadLetter, Record, SlaRecord
from flows.core.timefmt import format_instant
from flows.monitor.flow import build_monitor
from flows.monitor.shard import MonitorConfig, ShardBatch, ShardLogic, _AgentLoads
from flows.replay import replay_records
from tests.flowkit import chunks, encode, simulate, write_policies

pytestmark = pytest.mark.dataflow

T0 = 1_795_392_000_000
LATENESS = 5_000


def _fetches(
    values: list[bytes], until: int, size: int = 250, partition: str = "in/0"
) -> list[Fetch]:
    """The input as fetches read from behind, then one caught-up tick at `until + lateness`."""
    wall = until + LATENESS
    items: list[Fetch] = []
    offset = 0
    for chunk in chunks(values, size):
        messages = [(raw, offset + i, None) for i, raw in enumerate(chunk)]
        offset += len(chunk)
        items.append(Fetch("in/0", messages, False, wall, offset, 0, False))
    items.append(Fetch("in/0", [], True, wall, offset, 0, True))
    return items


def _run_flow(
    fetches: list[Fetch], policies_path: Path, *, shards: int, workers: int, clock_ms: int
) -> tuple[list[Record], list[object]]:
    flow = Dataflow("monitor_test")
    inp = op.input("fetches", flow, TestingSource(fetches))
    config = MonitorConfig(
        shards=shards,
        lateness_ms=LATENESS,
        heartbeat_interval_ms=10**9,
        partitions=frozenset({"in/0"}),
    )
    streams = build_monitor(inp, load_policies(policies_path), config, clock=lambda: clock_ms)
    out: list[list[Record]] = []
    statuses: list[object] = []
    op.output("records", streams.records, TestingSink(out))
    op.output("statuses", streams.statuses, TestingSink(statuses))
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return [rec for batch in out for rec in batch], statuses


def _reference(values: list[bytes], policies_path: Path, until: int) -> list[Record]:
    return list(
        replay_records(values, load_policies(policies_path), until=until, lateness_ms=LATENESS)
    )


@pytest.mark.parametrize(("shards", "workers"), [(1, 1), (16, 1), (16, 2), (7, 2)])
def test_sharded_flow_gives_the_single_engine_records(
    tmp_path: Path, shards: int, workers: int
) -> None:
    """Routing conversations to shards (on one or two workers) changes no record."""
    policies = write_policies(tmp_path)
    values = encode(simulate(T0, 300))
    until = T0 + 3 * 3_600_000
    expected = _reference(values, policies, until)
    got, statuses = _run_flow(
        _fetches(values, until), policies, shards=shards, workers=workers, clock_ms=until + LATENESS
    )
    assert len(expected) > 1000
    assert Counter(got) == Counter(expected)
    assert {shard for shard, _ in statuses} <= {str(s) for s in range(shards)}  # type: ignore[misc]


def test_bad_inputs_become_dead_letters_and_the_rest_flows(tmp_path: Path) -> None:
    """Malformed, oversized, non-UTF-8, future-dated and Kafka-error inputs are dead letters."""
    policies = write_policies(tmp_path)
    good = encode(simulate(T0, 20))
    until = T0 + 3 * 3_600_000
    wall = until + LATENESS
    future = orjson.dumps(
        {
            "event_id": "f",
            "type": "message",
            "conversation_id": "x",
            "occurred_at": format_instant(wall + 3_600_000),
            "direction": "inbound",
            "author": "customer",
        }
    )
    bad = [b"{not json", b"x" * 2_000_000, b'{"event_id": "\xff"}', future, b'{"type": "message"}']
    messages = [(raw, i, None) for i, raw in enumerate([*good, *bad])]
    messages.append((None, len(messages), "UNKNOWN_TOPIC_OR_PART: gone"))
    fetches = [
        Fetch("in/0", messages, False, wall, len(messages), 0, True),
        Fetch("in/0", [], True, wall, len(messages), 0, True),
    ]
    got, _ = _run_flow(fetches, policies, shards=4, workers=1, clock_ms=wall)
    dead = [r for r in got if isinstance(r, DeadLetter)]
    reasons = {d.source: d.reason for d in dead}
    n = len(good)
    assert reasons[f"in/0/{n}"].startswith("event is not valid JSON")
    assert reasons[f"in/0/{n + 1}"].startswith(
        "event is 2000000 bytes, over the 1048576-byte limit"
    )
    assert "truncated" in reasons[f"in/0/{n + 1}"]
    assert reasons[f"in/0/{n + 2}"].startswith("event is not valid UTF-8")
    assert "in the future" in reasons[f"in/0/{n + 3}"]
    assert reasons[f"in/0/{n + 4}"] == "missing field 'event_id'"
    assert reasons[f"in/0/{n + 5}"] == "Kafka error: UNKNOWN_TOPIC_OR_PART: gone"
    assert len(dead) == 6
    assert Counter(r for r in got if not isinstance(r, DeadLetter)) == Counter(
        _reference(good, policies, until)
    )


def _decoded(values: list[bytes]) -> list[Event]:
    events = [decode_event(v) for v in values]
    assert all(not isinstance(e, Rejected) for e in events)
    return events  # type: ignore[return-value]


def test_shard_waits_for_every_partition_before_firing(tmp_path: Path) -> None:
    """A caught-up partition cannot move a shard's time while another partition lags behind."""
    policies = load_policies(write_policies(tmp_path))
    config = MonitorConfig(shards=1, lateness_ms=LATENESS, partitions=frozenset({"a/0", "a/1"}))
    events = _decoded(encode(simulate(T0, 1))[:2])
    now = events[-1].occurred_at + 1_000
    logic = ShardLogic(policies, config, _AgentLoads(), lambda: now)
    logic.on_batch([ShardBatch("a/0", events, events[-1].occurred_at, True, now, 2)])
    assert logic.notify_at() is None  # a/1 has not reported: no event time at all
    logic.on_batch([ShardBatch("a/1", [], T0, False, now, 5)])
    assert logic.notify_at() is None  # a/1 is behind: only its events can move time
    logic.on_batch([ShardBatch("a/1", [], None, True, now, 9)])
    when = logic.notify_at()
    assert when is not None
    assert when.tzinfo is UTC
    assert when > datetime.fromtimestamp(now / 1000, tz=UTC)


def test_snapshot_restores_engine_and_forgets_caught_up(tmp_path: Path) -> None:
    """A restored shard keeps its clocks, waits for caught-up reports, then fires what fell due."""
    policies = load_policies(write_policies(tmp_path))
    config = MonitorConfig(shards=1, lateness_ms=LATENESS, partitions=frozenset({"a/0"}))
    events = _decoded(encode(simulate(T0, 5)))
    first = min(e.occurred_at for e in events)
    logic = ShardLogic(policies, config, _AgentLoads(), lambda: first)
    logic.on_batch([ShardBatch("a/0", events, first, False, first, 100)])
    state = logic.snapshot()
    later = first + 24 * 3_600_000
    restored = ShardLogic(policies, config, _AgentLoads(), lambda: later, state)
    assert set(restored.engine.conversations) == set(logic.engine.conversations) or not (
        logic.engine.conversations
    )
    assert restored.notify_at() is None
    out, _ = restored.on_batch([ShardBatch("a/0", [], None, True, later, 100)])
    records = [r for batch, _status in out for r in batch]
    assert any(isinstance(r, SlaRecord) and r.status == "breached" for r in records)
