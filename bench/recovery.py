"""End to end with QuestDB and recovery, then `kill -9` and the time to be caught up again.

One `slawatch run -r DIR` (snapshots every 5 s, QuestDB on) reads the whole backlog: that is the
end-to-end figure (`monitor_bench.measure`), and its resident memory before and after gives the
process's bytes per conversation. After one more snapshot interval it is killed with SIGKILL;
while it is down, `downtime_events` customer messages to its conversations (dated now, as if
customers kept writing) and one marker per input partition are produced, and the same command
is started again. *Recovery* is the wall time from that start to the first heartbeat at which
the restarted monitor has taken in every event produced while it was down: start-up (imports,
connections), loading the snapshots, and reading and applying the events since. The markers'
own records follow one lateness (`SLAWATCH_LATENESS`) later, as for any event; that time is
shown too.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from dataclasses import dataclass

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from bench.monitor_bench import (
    CONFIGS,
    HEARTBEAT,
    IDLE_TICK,
    Backlog,
    Bench,
    MonitorFailed,
    RunResult,
    measure,
    now_ms,
    start_monitor,
    stop_all,
)

#: The monitor's default `SLAWATCH_LATENESS` (the bench does not set it for this run).
LATENESS_MS = 5_000
SNAPSHOT_S = 5.0


@dataclass(frozen=True, slots=True)
class Recovery:
    """The restart after `kill -9`."""

    seconds: float
    """Start to every marker's record out, minus the lateness."""
    raw_seconds: float
    """Start to every marker's record out (one lateness after it was read)."""
    startup_s: float
    """Start to the first heartbeat."""
    downtime_events: int
    """Events produced while the monitor was down (markers included)."""


def e2e_and_recovery(
    bench: Bench,
    backlog: Backlog,
    *,
    conversations: int,
    downtime_events: int,
    key: str = "recovery+questdb",
) -> tuple[RunResult, Recovery]:
    """Measure configuration `key` over the backlog, kill it with SIGKILL, restart, time it."""
    label, args, settings, processes = CONFIGS[key]
    if processes != 1 or "-r" not in args:
        msg = f"configuration {key} must be one process with recovery"
        raise ValueError(msg)
    recovery = bench.workdir / f"recovery-kill-{uuid.uuid4().hex[:6]}"
    fill = {"recovery": str(recovery), "questdb": bench.endpoints.questdb_http}
    args = [a.format(**fill) for a in args]
    settings = {k: v.format(**fill) for k, v in settings.items()}
    env = bench.env(backlog.topics, heartbeat_interval=HEARTBEAT, idle_tick=IDLE_TICK, **settings)
    try:
        spawned = now_ms()
        procs = start_monitor(env, args, bench.workdir, f"{key}-kill")
        try:
            window = measure(procs, backlog, 1, spawned, bench.stack_pids(), bench.timeout_s)
            load = os.getloadavg()[0]
            time.sleep(SNAPSHOT_S + 1.5)  # one more snapshot after the backlog is in
            procs[0].popen.send_signal(signal.SIGKILL)
            procs[0].popen.wait(30)
        finally:
            stop_all(procs)
        result = RunResult(label, window, load, 0.0)
        return result, _restart(bench, backlog, env, args, key, conversations, downtime_events)
    finally:
        shutil.rmtree(recovery, ignore_errors=True)


def _restart(
    bench: Bench,
    backlog: Backlog,
    env: dict[str, str],
    args: list[str],
    key: str,
    conversations: int,
    downtime_events: int,
) -> Recovery:
    bootstrap = bench.endpoints.bootstrap_servers
    events_topic = backlog.topics["events_topic"]
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    meta = bench.admin.list_topics(events_topic, timeout=10).topics[events_topic]
    assignment = []
    for p in meta.partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(events_topic, p), timeout=10)
        assignment.append(TopicPartition(events_topic, p, high))
    consumer.assign(assignment)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "queue.buffering.max.messages": 1_000_000,
            "linger.ms": 20,
        }
    )
    run = uuid.uuid4().hex[:6]
    topic = backlog.topics["input_topics"]
    for k in range(downtime_events):
        conv = f"bench-{k % conversations}"
        body = {
            "event_id": f"down-{run}-{k}",
            "type": "message",
            "conversation_id": conv,
            "occurred_at": now_ms(),
            "direction": "inbound",
            "author": "customer",
        }
        while True:
            try:
                producer.produce(topic, orjson.dumps(body), conv)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    pending = set()
    for p in range(bench.partitions):
        conv = f"marker-{run}-{p}"
        body = {
            "event_id": f"{conv}-1",
            "type": "message",
            "conversation_id": conv,
            "occurred_at": now_ms(),
            "direction": "inbound",
            "author": "customer",
        }
        producer.produce(topic, orjson.dumps(body), conv, partition=p)
        pending.add(conv)
    if producer.flush(60):
        msg = "the events produced while the monitor was down were not all delivered"
        raise MonitorFailed(msg)
    expected = downtime_events + bench.partitions
    began = time.monotonic()
    procs = start_monitor(env, args, bench.workdir, f"{key}-restart")
    first_beat: float | None = None
    caught_up: float | None = None
    try:
        deadline = began + bench.timeout_s
        while pending or caught_up is None:
            if time.monotonic() > deadline or procs[0].popen.poll() is not None:
                msg = f"the restarted monitor did not catch up:\n{procs[0].tail()}"
                raise MonitorFailed(msg)
            beats = procs[0].read_beats()
            if beats:
                first_beat = first_beat or time.monotonic()
                taken = sum(int(b["events_in"]) for b in procs[0].beats.values())
                if caught_up is None and taken >= expected:
                    caught_up = time.monotonic()
            for msg in consumer.consume(1000, 0.01):
                if msg.error() is None:
                    pending.discard(orjson.loads(msg.value()).get("conversation_id"))
        took = time.monotonic() - began
    finally:
        stop_all(procs)
        consumer.close()
    startup = (first_beat if first_beat is not None else time.monotonic()) - began
    return Recovery(caught_up - began, took, startup, expected)
