"""The health board's readiness rules and Prometheus text, with an injected clock."""

from __future__ import annotations

import pytest

from flows.connectors.questdb import Heartbeat
from flows.exceptions import SlawatchError
from flows.monitor.health import HealthBoard, parse_address

pytestmark = pytest.mark.unit

NOW = 1_800_000_000_000


def _board(now: int = NOW, kafka: str | None = None) -> HealthBoard:
    return HealthBoard(
        workers=2, max_lag_ms=60_000, stale_ms=15_000, kafka=lambda: kafka, clock=lambda: now
    )


def _beat(worker: str, at: int, watermark: int | None) -> Heartbeat:
    return Heartbeat(worker, at, watermark, None, 10, 4, 1)


def test_ready_when_every_worker_is_fresh_and_caught_up() -> None:
    """Two fresh workers within the allowed lag and a reachable Kafka: no problem."""
    board = _board()
    board.observe(_beat("0", NOW - 1_000, NOW - 6_000), 0, 3)
    board.observe(_beat("1", NOW - 2_000, NOW - 7_000), 0, 5)

    assert board.problems() == []


def test_each_reason_for_not_ready_is_named() -> None:
    """A missing worker, a stale one, a lagging one and an unreachable Kafka each give a line."""
    board = _board(kafka="Kafka at k:9092 does not answer: timed out")
    board.observe(_beat("0", NOW - 20_000, NOW - 25_000), 0, 0)

    assert board.problems() == [
        "Kafka at k:9092 does not answer: timed out",
        "1 of 2 workers have reported a heartbeat (starting, or reading the first fetches)",
        "worker 0 last reported 20 s ago (allowed 15 s): it is stuck or stopped",
    ]
    board.observe(_beat("0", NOW, NOW - 95_000), 120, 0)
    board.observe(_beat("1", NOW, None), 0, 0)
    assert board.problems()[1:] == [
        "worker 0 is 95 s behind (allowed 60 s): catching up",
        "worker 1 has no watermark yet (a partition has not reported)",
    ]


def test_watermark_delay_grows_when_heartbeats_stop() -> None:
    """The delay is computed when scraped, so a stuck monitor's delay keeps rising."""
    beat = _beat("0", NOW, NOW - 5_000)
    early, late = _board(NOW), _board(NOW + 120_000)
    for board in (early, late):
        board.observe(beat, 7, 2)

    assert 'slawatch_monitor_watermark_delay_seconds{worker="0"} 5\n' in early.render()
    assert 'slawatch_monitor_watermark_delay_seconds{worker="0"} 125\n' in late.render()
    assert 'slawatch_monitor_consumer_lag_messages{worker="0"} 7\n' in late.render()
    assert "# TYPE slawatch_monitor_events_total counter\n" in late.render()


@pytest.mark.parametrize("text", ["9108", "host:", "host:port", "h:70000"])
def test_a_malformed_health_address_is_refused(text: str) -> None:
    """An address without a valid port is refused with a sentence showing the expected form."""
    with pytest.raises(SlawatchError, match=r"must be host:port"):
        parse_address(text)
