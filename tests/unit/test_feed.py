"""The demo feed sends valid events, in time order, that the engine turns into records."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from flows.core.decode import decode_event
from flows.core.engine import Engine
from flows.core.events import Rejected
from flows.core.policies import load_policies
from flows.feed import FeedPlan, conversation_script, run_feed

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_feed_events_are_valid_and_ordered() -> None:
    """Every event of a scripted conversation decodes, and instants never go back."""
    rng = random.Random(3)
    for n in range(50):
        times = []
        for at, body in conversation_script(f"c{n}", 1_795_392_000_000, rng, FeedPlan()):
            decoded = decode_event(orjson.dumps(body))
            assert not isinstance(decoded, Rejected), decoded
            times.append(at)
        assert times == sorted(times)


def test_feed_drives_the_demo_policies_to_breaches_and_mets() -> None:
    """A simulated minute of traffic produces both met and breached clocks under demo policies."""
    clock = [1_795_392_000_000]
    sent: list[bytes] = []

    def sleep(seconds: float) -> None:
        clock[0] += int(seconds * 1000)

    run_feed(
        lambda _key, value: sent.append(value),
        FeedPlan(conversations_per_minute=120, seed=1),
        duration_s=600,
        now_ms=lambda: clock[0],
        sleep=sleep,
    )
    engine = Engine(load_policies(ROOT / "examples" / "demo-policies.yaml"))
    events = [decode_event(raw) for raw in sent]
    assert not any(isinstance(e, Rejected) for e in events)
    records = engine.process([e for e in events if not isinstance(e, Rejected)], clock[0])
    statuses = {getattr(r, "status", None) for r in records}
    assert {"met", "breached", "warning"} <= statuses
