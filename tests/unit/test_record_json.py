"""The Kafka sink's `RecordEncoder` publishes exactly the bytes of `to_json_dict` + orjson."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.record_json import bench_records, example_records
from flows.core.records import (
    ActionRecord,
    CsatRecord,
    DeadLetter,
    HandleRecord,
    Record,
    RecordEncoder,
    SlaRecord,
    to_json_dict,
)
from flows.core.timefmt import MAX_INSTANT, MIN_INSTANT, format_instant

pytestmark = pytest.mark.unit

EMITTED = 1_795_000_123_456


def published(record: Record, emitted_at: int | str) -> bytes:
    """The bytes the sink published before `RecordEncoder`."""
    return orjson.dumps(to_json_dict(record, emitted_at))


def test_engine_records_are_published_byte_for_byte_as_before() -> None:
    """Every record the engine emits (bench events, SEMANTICS examples) keeps its bytes."""
    records = bench_records(4_000) + example_records()
    assert {type(r) for r in records} >= {SlaRecord, ActionRecord, HandleRecord, DeadLetter}
    encoder = RecordEncoder()
    for emitted in (format_instant(EMITTED), EMITTED):
        assert [encoder.encode(r, emitted) for r in records] == [
            published(r, emitted) for r in records
        ]


def test_every_kind_and_optional_field_keeps_its_bytes() -> None:
    """CSAT, recoveries, causes, attempts and budgets serialise as `to_json_dict` says."""
    base = dict(  # noqa: C408 - the positional fields of an SlaRecord, by name
        conversation_id='c-"é\n\x01/\\', cycle=2, metric="team_ownership", seq=3,
        status="stopped", at=EMITTED, policy_id=None, target=90_500, started_at=EMITTED - 999,
        warn_at=None, deadline_at=None, stopped_at=EMITTED, elapsed=1, breached=True,
        agent_id="agent 😀", team_id=None, priority="P1", segment=None, lead_source="ads",
        channel=None,
    )  # fmt: skip
    records: list[Record] = [
        SlaRecord(**base),  # type: ignore[arg-type]
        SlaRecord(**base, budget_pct=12.345, attempts=4, cause="agent_idle"),  # type: ignore[arg-type]
        SlaRecord(**{**base, "status": "breached", "elapsed": -1_500, "target": None}),  # type: ignore[arg-type]
        SlaRecord(**{**base, "at": MIN_INSTANT, "started_at": MAX_INSTANT}),  # type: ignore[arg-type]
        ActionRecord(
            "recover",
            "recovery",
            "c",
            1,
            "csat",
            1,
            EMITTED,
            "p",
            "a",
            None,
            None,
            "why",
            "voucher",
            "p#1",
            withdrawn=True,
        ),  # fmt: skip
        ActionRecord(
            "notify",
            "warning",
            "c",
            1,
            "first_response",
            1,
            EMITTED,
            "p",
            None,
            None,
            "lead",
            "first_response warning: soon",
        ),  # fmt: skip
        CsatRecord("c", 1, None, EMITTED, None, None, "a", "t", "p", False, True),
        CsatRecord("c", 1, "s-1", None, EMITTED, 5, None, None, None, True, False, late=True),
        HandleRecord("c", 1, "a", None, EMITTED - 61_001, EMITTED, 61_001, "idle", late=True),
        DeadLetter("bad", '{"x":\t', "events/0/12"),
    ]
    encoder = RecordEncoder()
    for emitted in (EMITTED, format_instant(EMITTED), EMITTED + 1):
        for record in records:
            assert encoder.encode(record, emitted) == published(record, emitted), record


texts = st.none() | st.text(max_size=12)
instants = st.integers(MIN_INSTANT, MAX_INSTANT)
durations = st.integers(-(10**13), 10**13)


@settings(max_examples=300, deadline=None)
@given(
    st.builds(
        SlaRecord,
        st.text(max_size=12),
        st.integers(1, 10**6),
        st.sampled_from(["first_response", "team_ownership", "resolution"]),
        st.integers(0, 10**6),
        st.sampled_from(["started", "met", "stopped", "breached", "closed"]),
        instants,
        texts,
        st.none() | durations,
        instants,
        st.none() | instants,
        st.none() | instants,
        st.none() | instants,
        durations,
        st.booleans(),
        texts,
        texts,
        texts,
        texts,
        texts,
        texts,
        st.booleans(),
        st.none() | st.integers(0, 100),
        texts,
        texts,
        texts,
        st.none() | st.integers(0, 9),
        st.none() | st.floats(allow_nan=False),
    ),  # fmt: skip
    st.one_of(instants, instants.map(format_instant)),
)
def test_any_sla_record_keeps_its_bytes(record: SlaRecord, emitted: int | str) -> None:
    """Whatever its values, an SLA record is published as `to_json_dict` + orjson write it."""
    assert RecordEncoder().encode(record, emitted) == published(record, emitted)
