"""Helpers for live-monitor tests: `slawatch run` as a child process, topic readers, producers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from flows.devstack import Endpoints
from tests.waitkit import scaled, wait_until

REPO = Path(__file__).resolve().parents[2]
Json = dict[str, Any]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Monitor:
    """`slawatch run` in a child process, configured through `SLAWATCH_*` variables."""

    def __init__(self, workdir: Path, env: dict[str, str], args: Iterable[str] = ()) -> None:
        self.workdir = workdir
        self.env = env
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"monitor-{uuid.uuid4().hex[:8]}.log"

    def start(self) -> Monitor:
        full = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "flows.cli", "run", *self.args],
                cwd=REPO,
                env=full,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def heartbeats(self) -> list[Json]:
        beats = []
        for line in self.log.read_text(errors="replace").splitlines():
            if "slawatch.heartbeat:" in line:
                beats.append(orjson.loads(line.split("slawatch.heartbeat: ", 1)[1]))
        return beats

    def wait_heartbeat(
        self, until: Callable[[Json], bool] = bool, timeout: float = 60, what: str = ""
    ) -> Json:
        """Wait for a heartbeat line that satisfies `until` (the monitor is up and reading)."""
        found = wait_until(
            lambda: [beat for beat in reversed(self.heartbeats()) if until(beat)],
            timeout=timeout,
            what=f"a heartbeat {what or 'that matches'} from the monitor",
            show=lambda _: f"the monitor's log ends with:\n{self.tail()}",
            check=self.check_alive,
            every=0.1,
        )
        return found[0]

    def wait_logged(self, text: str, timeout: float = 30) -> list[str]:
        """Wait until the monitor's log has a line containing `text`; return those lines."""
        return wait_until(
            lambda: [line for line in self.lines() if text in line],
            timeout=timeout,
            what=f"a line with {text!r} in the monitor's log",
            show=lambda _: f"the monitor's log ends with:\n{self.tail()}",
            check=self.check_alive,
            every=0.1,
        )

    def lines(self) -> list[str]:
        """Return the monitor's log so far, line by line."""
        return self.log.read_text(errors="replace").splitlines()

    def check_alive(self) -> None:
        assert self.proc is not None
        code = self.proc.poll()
        if code is not None:
            msg = f"monitor exited with {code}:\n{self.tail()}"
            raise AssertionError(msg)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """Kill the monitor at once (SIGKILL): no flush, no snapshot."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=scaled(30))

    def interrupt(self) -> None:
        """Ask the monitor to stop (SIGINT, as Ctrl-C), without waiting."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def stop(self) -> None:
        """Stop the monitor (SIGINT), killing it if it has not ended within 15 s (scaled)."""
        self.interrupt()
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(timeout=scaled(15))
            except subprocess.TimeoutExpired:
                self.kill()


def stop_all(monitors: Iterable[Monitor]) -> None:
    """Stop monitors together: the processes of one cluster only end when all of them do."""
    monitors = list(monitors)
    for m in monitors:
        m.interrupt()
    for m in monitors:
        m.stop()


def monitor_env(stack: Endpoints, **settings: object) -> dict[str, str]:
    """Return `SLAWATCH_*` variables for a monitor on the test stack."""
    env = {
        "SLAWATCH_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
        "SLAWATCH_QUESTDB_HTTP": "",
        "SLAWATCH_HEARTBEAT_INTERVAL": "500ms",
        "SLAWATCH_SHARDS": "8",
        "SLAWATCH_LATENESS": "1s",
    }
    for key, value in settings.items():
        env[f"SLAWATCH_{key.upper()}"] = str(value)
    return env


class TopicReader:
    """Reads every partition of a topic from the beginning, accumulating JSON records."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"t-{uuid.uuid4()}",
                "enable.auto.commit": False,
                # Should the position ever be reset (its validation fails after a broker
                # restart), read again from the start: the default, the end, would skip the
                # records written meanwhile and the test would wait for them in vain.
                "auto.offset.reset": "earliest",
            }
        )
        self.topic = topic
        meta = self.consumer.list_topics(topic, timeout=scaled(30)).topics[topic]
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
        self.records: list[Json] = []
        self.received: list[int] = []

    def poll(self, seconds: float = 0.2) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for msg in self.consumer.consume(10_000, 0.05):
                if msg.error() is None:
                    self.records.append(orjson.loads(msg.value()))
                    self.received.append(now_ms())

    def wait_for(
        self,
        pred: Callable[[list[Json]], bool],
        timeout: float = 60,
        check: Callable[[], None] | None = None,
        what: str = "",
    ) -> list[Json]:
        """Poll until `pred(records)` holds for every record read so far; return them.

        Args:
            pred: The condition on all records read from the start of the topic.
            timeout: The base deadline (s), stretched by the load (`tests.waitkit`).
            check: Called between polls; raises to stop early (the monitor died).
            what: The condition in words, for the failure message.
        """

        def probe() -> list[Json]:
            self.poll()
            return self.records

        return wait_until(
            probe,
            pred,
            timeout=timeout,
            what=what or f"the awaited records on {self.topic}",
            show=self.summary,
            check=check,
            every=0,
            every_max=0,
        )

    def summary(self, records: list[Json] | None = None, last: int = 8) -> str:
        """Describe what was read: how many records of each kind, and the last few."""
        records = self.records if records is None else records
        kinds = Counter(f"{r.get('type')}/{r.get('status', r.get('reason', ''))}" for r in records)
        tail = "\n  ".join(orjson.dumps(r).decode()[:300] for r in records[-last:])
        return f"{len(records)} records on {self.topic} {dict(kinds)}; the last:\n  {tail}"

    def close(self) -> None:
        self.consumer.close()


def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes],
    *,
    key_of: Callable[[bytes], bytes | None] | None = None,
    partition: int | None = None,
    config: dict[str, Any] | None = None,
) -> int:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "queue.buffering.max.messages": 1_000_000,
            "linger.ms": 20,
            **(config or {}),
        }
    )
    count = 0
    for value in values:
        kwargs: dict[str, Any] = {}
        if partition is not None:
            kwargs["partition"] = partition
        if key_of is not None:
            kwargs["key"] = key_of(value)
        while True:
            try:
                producer.produce(topic, value, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        count += 1
    remaining = producer.flush(scaled(60))
    assert remaining == 0, f"{remaining} messages not delivered"
    return count


def conversation_key(value: bytes) -> bytes:
    return str(orjson.loads(value)["conversation_id"]).encode()


def event(kind: str, conv: str, at: int, **fields: Any) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"{conv}-{uuid.uuid4().hex[:10]}",
            "type": kind,
            "conversation_id": conv,
            "occurred_at": at,
            **fields,
        }
    )


def inbound(conv: str, at: int) -> bytes:
    return event("message", conv, at, direction="inbound", author="customer")


def reply(conv: str, at: int, agent: str = "a1") -> bytes:
    return event("message", conv, at, direction="outbound", author="agent", agent_id=agent)


def sla(records: list[Json], conv: str, status: str | None = None) -> list[Json]:
    return [
        r
        for r in records
        if r.get("type") == "sla"
        and r["conversation_id"] == conv
        and (status is None or r["status"] == status)
    ]
