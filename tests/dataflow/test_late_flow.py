"""Late events in later fetches of the live flow converge, on one worker and on two."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.connectors.kafka import Fetch
from flows.core.decode import event_to_json
from flows.core.records import DeadLetter
from tests.dataflow.test_monitor_flow import LATENESS, _run_flow
from tests.enginekit import T0, run
from tests.latekit import (
    HORIZON_MS,
    POLICY_TEXT,
    PSET,
    deliver_late,
    differences,
    final_states,
    in_time_order,
    scenario,
)

pytestmark = pytest.mark.dataflow


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("late") / "policies.yaml"
    path.write_text(POLICY_TEXT, encoding="utf-8")
    return path


def _fetches(values: list[bytes], until: int, seed: int) -> list[Fetch]:
    """The deliveries as fetches of random sizes, then a caught-up tick at `until`."""
    rng = random.Random(seed)
    items: list[Fetch] = []
    offset = 0
    i = 0
    while i < len(values):
        n = rng.randint(1, 6)
        chunk = values[i : i + n]
        i += n
        messages = [(raw, offset + k, None) for k, raw in enumerate(chunk)]
        offset += len(chunk)
        items.append(Fetch("in/0", messages, False, until, offset, 0, False))
    items.append(Fetch("in/0", [], True, until, offset, 0, True))
    return items


@pytest.mark.parametrize("workers", [1, 2])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(convs=scenario, seed=st.integers(0, 2**32))
def test_late_events_in_later_fetches_converge_to_the_in_order_outcomes(
    policy_file: Path, workers: int, convs: list, seed: int
) -> None:
    """Delivered late across fetches, shards and workers, every clock ends as in time order."""
    events = in_time_order(convs)
    until = events[-1].occurred_at + 3 * 24 * 3_600_000
    delivered = deliver_late(events, seed, share=0.3)
    values = [orjson.dumps(event_to_json(e)) for e in delivered]
    want = final_states(run(events, PSET, until=(until - T0) / 1000, horizon_ms=HORIZON_MS))
    got, _ = _run_flow(
        _fetches(values, until + LATENESS, seed),
        policy_file,
        shards=5,
        workers=workers,
        clock_ms=until + LATENESS,
    )
    assert not [r for r in got if isinstance(r, DeadLetter)]
    assert differences(want, final_states(got)) == []
