"""Breach latency of the live monitor, quiet and under load, against a polling baseline.

One `slawatch run` (recovery and QuestDB on) idles, caught up, with a policy whose
first_response target is a few seconds. In each phase `samples` marker conversations get one
customer message each, spread over one polling period, and nobody answers: each must breach.
Two detectors watch them:

* **the monitor**: the `breached` record's arrival on the events topic, measured from
  `deadline_at` + lateness (the instant the monitor may call it) and from `deadline_at`;
* **the polling baseline**, the way ticketing tools check SLAs: every `poll_s` seconds one SQL
  query over PG wire asks QuestDB for open clocks whose `deadline_at` has passed (the clocks
  table that the same monitor keeps); a clock's detection latency is the first poll that returns
  it minus its `deadline_at`.

Under load, a background producer keeps `load_rate` events/s flowing (conversations whose agent
answers half a second after the customer, well inside the target): any `breached` record of
one of them is a false breach, a marker that never breaches is a missing one.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field

import orjson
import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from bench.monitor_bench import (
    QUICK_POLICY,
    Bench,
    MonitorFailed,
    Proc,
    _duration_ms,
    now_ms,
    start_monitor,
    stop_all,
)
from flows.connectors.questdb import TableNames
from flows.core.timefmt import parse_instant


@dataclass
class Phase:
    """What one phase measured (milliseconds)."""

    name: str
    load_rate: float
    after_lateness_ms: list[int] = field(default_factory=list)
    """Breach arrival minus deadline + lateness, per marker."""
    after_deadline_ms: list[int] = field(default_factory=list)
    """Breach arrival minus deadline, per marker."""
    polled_ms: list[int] = field(default_factory=list)
    """First poll that returned the marker's overdue clock minus its deadline."""
    missing: int = 0
    false: int = 0
    load_sent: int = 0
    load_seconds: float = 0.0

    @property
    def achieved_rate(self) -> float:
        """Background events/s actually produced during the phase."""
        return self.load_sent / self.load_seconds if self.load_seconds > 0 else 0.0


def _message(conv: str, n: int, at: int, author: str) -> bytes:
    body = {
        "event_id": f"{conv}-{n}",
        "type": "message",
        "conversation_id": conv,
        "occurred_at": at,
        "direction": "inbound" if author == "customer" else "outbound",
        "author": author,
    }
    if author == "agent":
        body["agent_id"] = "bench-agent"
    return orjson.dumps(body)


class _Load(threading.Thread):
    """Produces `rate` events/s: a customer message, and the agent's reply 500 ms later."""

    def __init__(self, bootstrap: str, topic: str, rate: float, prefix: str) -> None:
        super().__init__(daemon=True)
        self.producer = Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": 5, "queue.buffering.max.messages": 1e6}
        )
        self.topic, self.rate, self.prefix = topic, rate, prefix
        self.stopping = threading.Event()
        self.sent = 0
        self.seconds = 0.0

    def run(self) -> None:
        began = time.monotonic()
        replies: list[tuple[float, str]] = []
        conv_n = 0
        while not self.stopping.is_set():
            now = time.monotonic()
            due = int((now - began) * self.rate) - self.sent
            while due > 0:
                if replies and replies[0][0] <= now:
                    _, conv = replies.pop(0)
                    self.producer.produce(self.topic, _message(conv, 2, now_ms(), "agent"), conv)
                else:
                    conv = f"{self.prefix}{conv_n}"
                    conv_n += 1
                    self.producer.produce(self.topic, _message(conv, 1, now_ms(), "customer"), conv)
                    replies.append((now + 0.5, conv))
                self.sent += 1
                due -= 1
            self.producer.poll(0)
            time.sleep(0.005)
        self.seconds = time.monotonic() - began
        self.producer.flush(30)


class _Poller(threading.Thread):
    """Every `period_s`: `SELECT ... FROM clocks WHERE open AND deadline_at <= now()`."""

    def __init__(self, conninfo: str, table: str, prefix: str, period_s: float) -> None:
        super().__init__(daemon=True)
        self.conninfo, self.table, self.prefix, self.period_s = conninfo, table, prefix, period_s
        self.stopping = threading.Event()
        self.first_seen: dict[str, tuple[int, int]] = {}
        """conversation -> (poll instant, deadline), epoch ms."""
        self.polls = 0
        self.errors: list[str] = []

    def run(self) -> None:
        query = (
            f"SELECT conversation_id, deadline_at FROM {self.table} "  # noqa: S608 - our names
            f"WHERE open AND deadline_at <= now() AND conversation_id LIKE '{self.prefix}%'"
        )
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            next_poll = time.monotonic()
            while not self.stopping.is_set():
                polled = now_ms()
                try:
                    rows = conn.execute(query).fetchall()
                except psycopg.Error as exc:  # the table appears with the first row
                    self.errors.append(str(exc).splitlines()[0])
                    rows = []
                self.polls += 1
                for conv, deadline in rows:
                    if conv not in self.first_seen and deadline is not None:
                        deadline_ms = int(deadline.timestamp() * 1000)
                        self.first_seen[conv] = (polled, deadline_ms)
                next_poll += self.period_s
                self.stopping.wait(max(0.0, next_poll - time.monotonic()))


@dataclass
class LatencyRun:
    """Both phases, and the settings they ran with."""

    target: str
    lateness_ms: int
    poll_s: float
    phases: list[Phase]


def breach_latency(
    bench: Bench,
    *,
    samples: int,
    target: str,
    lateness: str,
    load_rate: float,
    poll_s: float = 5.0,
) -> LatencyRun:
    """Run the quiet phase, then the loaded one (`load_rate` events/s), on one monitor."""
    policies = bench.workdir / "latency-policies.yaml"
    policies.write_text(QUICK_POLICY.format(target=target), encoding="utf-8")
    topics = {
        "input_topics": bench.topic("lat-in", 4),
        "events_topic": bench.topic("lat-events", 1),
        "actions_topic": bench.topic("lat-actions", 1),
        "deadletter_topic": bench.topic("lat-dead", 1),
    }
    recovery = bench.workdir / f"recovery-latency-{uuid.uuid4().hex[:6]}"
    env = bench.env(
        topics,
        policies=str(policies),
        lateness=lateness,
        questdb_http=bench.endpoints.questdb_http,
        snapshot_interval="5s",
        heartbeat_interval="500ms",
    )
    prefix = env["SLAWATCH_TABLE_PREFIX"]
    lateness_ms = _duration_ms(lateness)
    target_ms = _duration_ms(target)
    consumer = Consumer(
        {
            "bootstrap.servers": bench.endpoints.bootstrap_servers,
            "group.id": f"bench-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topics["events_topic"], 0, OFFSET_BEGINNING)])
    producer = Producer({"bootstrap.servers": bench.endpoints.bootstrap_servers})
    procs = start_monitor(env, ["-r", str(recovery)], bench.workdir, "latency")
    phases: list[Phase] = []
    try:
        _wait_caught_up(procs[0], lateness_ms)
        for name, rate in (("quiet", 0.0), ("load", load_rate)):
            run_id = uuid.uuid4().hex[:6]
            phase = Phase(name, rate)
            load = None
            if rate > 0:
                load = _Load(
                    bench.endpoints.bootstrap_servers,
                    topics["input_topics"],
                    rate,
                    f"bg-{run_id}-",
                )
                load.start()
                time.sleep(3.0)  # the monitor settles into the stream first
            marker = f"mk-{run_id}-"
            poller = _Poller(
                bench.endpoints.questdb_pg_conninfo,
                TableNames(prefix).clocks,
                marker,
                poll_s,
            )
            poller.start()
            try:
                _markers(
                    phase,
                    producer,
                    consumer,
                    procs[0],
                    topics["input_topics"],
                    marker,
                    samples,
                    poll_s,
                    lateness_ms,
                    limit_s=target_ms / 1000 + lateness_ms / 1000 + poll_s + 30,
                    load_prefix=f"bg-{run_id}-",
                )
                # The poller needs up to one more period for the last marker.
                until = time.monotonic() + poll_s + 10
                while len(poller.first_seen) < samples and time.monotonic() < until:
                    time.sleep(0.1)
            finally:
                poller.stopping.set()
                poller.join(10)
                if load is not None:
                    load.stopping.set()
                    load.join(30)
                    phase.load_sent, phase.load_seconds = load.sent, load.seconds
            phase.polled_ms = [seen - deadline for seen, deadline in poller.first_seen.values()]
            phases.append(phase)
            if load is not None:  # drain: count false breaches that came late
                _drain(consumer, phase, f"bg-{run_id}-", 2.0)
    finally:
        stop_all(procs)
        consumer.close()
        shutil.rmtree(recovery, ignore_errors=True)
    return LatencyRun(target, lateness_ms, poll_s, phases)


def _wait_caught_up(proc: Proc, lateness_ms: int) -> None:
    """Wait until the idle monitor's watermark follows the wall clock."""
    deadline = time.monotonic() + 90
    while True:
        proc.read_beats()
        beats = list(proc.beats.values())
        if beats and all(b["lag_ms"] is not None for b in beats):
            if max(b["lag_ms"] for b in beats) < lateness_ms + 1_000:
                return
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            msg = f"the latency monitor did not catch up:\n{proc.tail()}"
            raise MonitorFailed(msg)
        time.sleep(0.05)


def _markers(
    phase: Phase,
    producer: Producer,
    consumer: Consumer,
    proc: Proc,
    topic: str,
    marker: str,
    samples: int,
    poll_s: float,
    lateness_ms: int,
    *,
    limit_s: float,
    load_prefix: str,
) -> None:
    """Send `samples` markers spread over one polling period; wait for their breaches."""
    spacing = poll_s / samples
    pending: set[str] = set()
    sent = 0
    started = time.monotonic()
    deadline = started + poll_s + limit_s
    while (sent < samples or pending) and time.monotonic() < deadline:
        if sent < samples and time.monotonic() >= started + sent * spacing:
            conv = f"{marker}{sent}"
            producer.produce(topic, _message(conv, 1, now_ms(), "customer"), conv.encode())
            producer.flush(10)
            pending.add(conv)
            sent += 1
        for msg in consumer.consume(500, 0.01):
            received = now_ms()
            if msg.error() is not None:
                continue
            rec = orjson.loads(msg.value())
            conv = rec.get("conversation_id", "")
            if rec.get("status") != "breached":
                continue
            if conv in pending:
                pending.discard(conv)
                due = parse_instant(rec["deadline_at"])
                phase.after_deadline_ms.append(received - due)
                phase.after_lateness_ms.append(received - due - lateness_ms)
            elif conv.startswith(load_prefix):
                phase.false += 1
        if proc.popen.poll() is not None:
            msg = f"the latency monitor exited:\n{proc.tail()}"
            raise MonitorFailed(msg)
    phase.missing = len(pending) + (samples - sent)


def _drain(consumer: Consumer, phase: Phase, load_prefix: str, seconds: float) -> None:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for msg in consumer.consume(1000, 0.05):
            if msg.error() is not None:
                continue
            rec = orjson.loads(msg.value())
            if rec.get("status") == "breached" and str(rec.get("conversation_id", "")).startswith(
                load_prefix
            ):
                phase.false += 1
