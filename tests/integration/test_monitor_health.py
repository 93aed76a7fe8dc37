"""`slawatch run`'s health endpoints over HTTP, against a real monitor on the real Kafka/QuestDB."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from flows.devstack import Endpoints
from flows.ingest.app import free_port
from tests.flowkit import QUICK_POLICIES, write_policies
from tests.integration.monitorkit import (
    Monitor,
    conversation_key,
    inbound,
    monitor_env,
    now_ms,
    produce,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

_SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)$")


@pytest.fixture
def monitors(tmp_path: Path) -> Iterator[Callable[..., Monitor]]:
    started: list[Monitor] = []

    def start(env: dict[str, str], *args: str) -> Monitor:
        m = Monitor(tmp_path, env, args).start()
        started.append(m)
        return m

    yield start
    for m in started:
        m.stop()


def _metrics(url: str) -> dict[str, float]:
    """Parse a Prometheus text page into `name{labels}` -> value (HELP/TYPE lines checked)."""
    response = httpx.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, float] = {}
    typed: set[str] = set()
    for line in response.text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        assert match.group(1) in typed, f"{match.group(1)} has no # TYPE line"
        samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def _wait(predicate: Callable[[], bool], monitor: Monitor, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        monitor.check_alive()
        if predicate():
            return
        time.sleep(0.2)
    msg = f"condition not met in {timeout} s:\n{monitor.tail()}"
    raise AssertionError(msg)


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5)
    except httpx.TransportError:
        return None


def test_monitor_reports_health_readiness_and_metrics_over_http(
    tmp_path: Path,
    stack: Endpoints,
    make_topic: Callable[..., str],
    monitors: Callable[..., Monitor],
) -> None:
    """A running monitor answers /healthz, turns ready, and /metrics counts what it read."""
    source = make_topic(2, prefix="in")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = monitor_env(
        stack,
        policies=write_policies(tmp_path, QUICK_POLICIES),
        input_topics=source,
        events_topic=make_topic(1, prefix="events"),
        actions_topic=make_topic(1, prefix="actions"),
        deadletter_topic=make_topic(1, prefix="dead"),
        questdb_http=stack.questdb_http,
        table_prefix=f"h{uuid.uuid4().hex[:8]}_",
        recovery_dir=tmp_path / "recovery",
        snapshot_interval="1s",
        health_address=f"127.0.0.1:{port}",
    )
    monitor = monitors(env)
    _wait(lambda: (r := _get(f"{url}/healthz")) is not None and r.status_code == 200, monitor)
    assert httpx.get(f"{url}/healthz", timeout=5).json() == {"status": "ok"}

    produced = produce(
        stack.bootstrap_servers,
        source,
        [inbound(f"h-{i}", now_ms()) for i in range(40)] + [b"not json"],
        key_of=lambda v: conversation_key(v) if v.startswith(b"{") else b"bad",
    )
    assert produced == 41

    def counted() -> bool:
        samples = _metrics(url)
        # The bad line may sit on the other partition and be counted a beat later.
        return (
            samples.get('slawatch_monitor_events_total{worker="0"}') == 40
            and samples.get('slawatch_monitor_dead_letters_total{worker="0"}') == 1
        )

    _wait(counted, monitor)
    _wait(lambda: httpx.get(f"{url}/readyz", timeout=5).status_code == 200, monitor)
    assert httpx.get(f"{url}/readyz", timeout=5).json() == {"status": "ready"}

    samples = _metrics(url)
    assert samples['slawatch_monitor_dead_letters_total{worker="0"}'] == 1
    assert samples["slawatch_monitor_ready"] == 1
    assert 0 < samples['slawatch_monitor_watermark_delay_seconds{worker="0"}'] < 60
    assert samples['slawatch_monitor_consumer_lag_messages{worker="0"}'] == 0
    assert samples['slawatch_monitor_open_conversations{worker="0"}'] == 40
    assert samples['slawatch_monitor_questdb_rows_pending{worker="0"}'] >= 0
    assert 'slawatch_monitor_questdb_rows_spilled{worker="0"}' in samples
    written = 'slawatch_monitor_questdb_rows_written_total{worker="0"}'
    _wait(lambda: _metrics(url)['slawatch_monitor_records_total{worker="0"}'] >= 40, monitor)
    _wait(lambda: _metrics(url)[written] > 0, monitor)
    assert 0 <= _metrics(url)["slawatch_monitor_snapshot_age_seconds"] < 30
    assert httpx.get(f"{url}/nothing-here", timeout=5).status_code == 404


def test_monitor_without_kafka_is_alive_but_not_ready(
    tmp_path: Path, stack: Endpoints, monitors: Callable[..., Monitor]
) -> None:
    """While Kafka does not answer, /healthz is 200 and /readyz is 503 saying Kafka is down."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = monitor_env(
        stack,
        policies=write_policies(tmp_path, QUICK_POLICIES),
        bootstrap_servers=f"127.0.0.1:{free_port()}",
        health_address=f"127.0.0.1:{port}",
    )
    monitor = monitors(env)
    _wait(lambda: _get(f"{url}/healthz") is not None, monitor)

    ready = httpx.get(f"{url}/readyz", timeout=10)

    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    assert ready.status_code == 503
    problems = ready.json()["problems"]
    assert any("does not answer" in p and "Kafka at 127.0.0.1:" in p for p in problems)
    assert any("0 of 1 workers have reported" in p for p in problems)
    assert _metrics(url)["slawatch_monitor_ready"] == 0


def test_an_explicit_health_address_in_use_stops_the_start_up(
    tmp_path: Path, stack: Endpoints
) -> None:
    """A health address set explicitly but already taken stops `slawatch run` with one line."""
    import socket  # noqa: PLC0415

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = monitor_env(
            stack,
            policies=write_policies(tmp_path, QUICK_POLICIES),
            health_address=f"127.0.0.1:{port}",
        )
        monitor = Monitor(tmp_path, env).start()
        assert monitor.proc is not None
        code = monitor.proc.wait(timeout=60)

    assert code != 0
    assert f"cannot serve the health endpoints on 127.0.0.1:{port}" in monitor.tail()
