"""End to end with QuestDB and recovery, then `kill -9` and the time to be caught up again.

One `slawatch run -r DIR` (snapshots every 5 s, QuestDB on) reads the whole backlog: that is the
end-to-end figure (`monitor_bench.measure`), and its resident memory before and after gives the
process's bytes per conversation. After one more snapshot interval it is killed with SIGKILL,
one marker event per input partition (a customer message of a new conversation, dated now) is
produced while it is down, and the same command is started again. *Recovery* is the wall time
from that start until every marker's record is on the events topic: start-up, loading the
snapshots, re-reading what came after them, and the markers themselves; minus the lateness
(`SLAWATCH_LATENESS`) that every event waits for anyway before its records go out.
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
    """Start to every marker's record out."""
    startup_s: float
    """Start to the first heartbeat."""


def e2e_and_recovery(
    bench: Bench, backlog: Backlog, *, key: str = "recovery+questdb"
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
        return result, _restart(bench, backlog, env, args, key)
    finally:
        shutil.rmtree(recovery, ignore_errors=True)


def _restart(
    bench: Bench, backlog: Backlog, env: dict[str, str], args: list[str], key: str
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
    producer = Producer({"bootstrap.servers": bootstrap})
    run = uuid.uuid4().hex[:6]
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
        producer.produce(backlog.topics["input_topics"], orjson.dumps(body), conv, partition=p)
        pending.add(conv)
    producer.flush(10)
    began = time.monotonic()
    procs = start_monitor(env, args, bench.workdir, f"{key}-restart")
    first_beat: float | None = None
    try:
        deadline = began + bench.timeout_s
        while pending:
            if time.monotonic() > deadline or procs[0].popen.poll() is not None:
                msg = f"the restarted monitor did not catch up:\n{procs[0].tail()}"
                raise MonitorFailed(msg)
            if first_beat is None and procs[0].read_beats():
                first_beat = time.monotonic()
            for msg in consumer.consume(1000, 0.01):
                if msg.error() is None:
                    pending.discard(orjson.loads(msg.value()).get("conversation_id"))
        took = time.monotonic() - began
    finally:
        stop_all(procs)
        consumer.close()
    startup = (first_beat if first_beat is not None else time.monotonic()) - began
    return Recovery(max(0.0, took - LATENESS_MS / 1000), took, startup)
