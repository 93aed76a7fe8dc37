"""Arbitrary bytes and JSON, duplicated and reordered deliveries: the decoder and the flow hold.

The flow runs in memory (`TestingSource` of fetches, as in `test_monitor_flow`); its records are
checked against the file replay of the clean input, which that module shows to be equal.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.core.decode import decode_event
from flows.core.events import Rejected
from flows.core.records import DeadLetter, SlaRecord
from tests.dataflow.test_monitor_flow import LATENESS, T0, _fetches, _reference, _run_flow
from tests.flowkit import encode, simulate, write_policies
from tests.latekit import differences, final_states

pytestmark = [pytest.mark.dataflow, pytest.mark.slow]

UNTIL = T0 + 3 * 3_600_000
WALL = UNTIL + LATENESS

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=15,
)
_near = st.sampled_from(["2026-11-24T01:00:00Z", "2026-11-24T01:00:00+07:00", T0, str(T0)])
event_like = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.text(max_size=8) | json_values,
        "type": st.sampled_from(["message", "assignment", "conversation", "activity"])
        | json_values,
        "conversation_id": st.sampled_from(["c-1", "", "conv-7-3"]) | json_values,
        "occurred_at": _near | st.text(max_size=25) | json_values,
        "direction": st.sampled_from(["inbound", "outbound", "sideways"]) | json_values,
        "author": st.sampled_from(["customer", "agent", "bot", "system"]) | json_values,
        "agent_id": st.sampled_from(["a1", ""]) | json_values,
        "action": st.sampled_from(["assigned", "opened", "resolved", "follow_up_promised"])
        | json_values,
        "due_at": _near | json_values,
        "priority": st.sampled_from(["P1", "P9"]) | json_values,
        "tags": json_values,
        "kind": st.sampled_from(["call", "note", "text"]) | json_values,
    },
)
raw_inputs = (
    st.binary(max_size=200)
    | json_values.map(orjson.dumps)
    | event_like.map(orjson.dumps)
    | event_like.map(lambda e: orjson.dumps(e)[: len(orjson.dumps(e)) // 2])
)


@given(raw_inputs)
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_decoder_never_raises_and_every_refusal_has_a_reason(raw: bytes) -> None:
    """Any bytes give an event or a refusal whose reason says what is wrong; nothing raises."""
    decoded = decode_event(raw, now=WALL)
    if isinstance(decoded, Rejected):
        assert decoded.reason.strip()
    else:
        assert decoded.event_id and decoded.conversation_id


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_policies(tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module")
def clean(policies: Path) -> tuple[list[bytes], list[SlaRecord]]:
    values = encode(simulate(T0, 15))
    records = [r for r in _reference(values, policies, UNTIL) if isinstance(r, SlaRecord)]
    assert len(records) > 100
    return values, records


@given(garbage=st.lists(raw_inputs, min_size=1, max_size=25), data=st.data())
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_garbage_among_good_events_becomes_dead_letters_and_changes_no_record(
    policies: Path, clean: tuple[list[bytes], list[SlaRecord]], garbage: list[bytes], data: Any
) -> None:
    """Each unusable input is one dead letter with a reason at its offset; the records stay."""
    values, expected = clean
    bad = [raw for raw in garbage if isinstance(decode_event(raw, now=WALL), Rejected)]
    mixed = list(values)
    for raw in bad:
        mixed.insert(data.draw(st.integers(0, len(mixed)), label="position"), raw)
    bad_offsets = {f"in/0/{i}" for i, raw in enumerate(mixed) if raw in set(bad)}

    got, _ = _run_flow(_fetches(mixed, UNTIL), policies, shards=4, workers=1, clock_ms=WALL)

    dead = [r for r in got if isinstance(r, DeadLetter)]
    assert {d.source for d in dead} == bad_offsets
    assert len(dead) == len(bad)
    assert all(d.reason.strip() for d in dead)
    assert Counter(r for r in got if isinstance(r, SlaRecord)) == Counter(expected)


def _redeliver(values: list[bytes], seed: int, *, duplicates: float, delayed: float) -> list[bytes]:
    """Deliver some values twice (the copy a little later) and some up to 40 positions late."""
    rng = random.Random(seed)
    keyed: list[tuple[float, bytes]] = []
    for i, raw in enumerate(values):
        at = i + (rng.uniform(1, 40) if rng.random() < delayed else 0)
        keyed.append((at, raw))
        if rng.random() < duplicates:
            keyed.append((i + rng.uniform(0, 60), raw))
    keyed.sort(key=lambda k: k[0])
    return [raw for _, raw in keyed]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("seed", [1, 2])
def test_duplicated_deliveries_change_no_record(
    policies: Path, clean: tuple[list[bytes], list[SlaRecord]], workers: int, seed: int
) -> None:
    """Every event delivered twice (a Kafka producer retry) gives exactly the clean records."""
    values, expected = clean
    twice = _redeliver(values, seed, duplicates=0.3, delayed=0.0)
    assert len(twice) > len(values)
    got, _ = _run_flow(
        _fetches(twice, UNTIL, 40), policies, shards=8, workers=workers, clock_ms=WALL
    )
    assert not [r for r in got if isinstance(r, DeadLetter)]
    assert Counter(r for r in got if isinstance(r, SlaRecord)) == Counter(expected)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("seed", [3, 4])
def test_reordered_and_duplicated_deliveries_converge_to_the_clean_outcome(
    policies: Path, clean: tuple[list[bytes], list[SlaRecord]], workers: int, seed: int
) -> None:
    """Events arriving late and twice end with every clock in the state of the in-order run."""
    values, expected = clean
    shuffled = _redeliver(values, seed, duplicates=0.1, delayed=0.3)
    assert shuffled != values
    got, _ = _run_flow(
        _fetches(shuffled, UNTIL, 40), policies, shards=8, workers=workers, clock_ms=WALL
    )
    assert not [r for r in got if isinstance(r, DeadLetter)]
    assert any(r.late for r in got if isinstance(r, SlaRecord))  # corrections did happen
    assert differences(final_states(expected), final_states(got)) == []
