"""`slawatch run` against the real Kafka and QuestDB: timing, backlog, crashes, bad input, scale."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka.admin import AdminClient

from flows.core.policies import load_policies
from flows.core.records import to_json_dict
from flows.core.timefmt import parse_instant
from flows.devstack import Endpoints, Stack
from flows.replay import replay_records
from tests.conftest import QuestDB
from tests.flowkit import QUICK_POLICIES, encode, simulate, write_policies
from tests.integration.kafkakit import DedicatedKafka, create_topic
from tests.integration.monitorkit import (
    Json,
    Monitor,
    TopicReader,
    conversation_key,
    inbound,
    monitor_env,
    now_ms,
    produce,
    reply,
    sla,
    stop_all,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

LATENESS_MS = 1_000


class Topics:
    """One set of input and output topics for a test, and readers of the outputs."""

    def __init__(
        self,
        make_topic: Callable[..., str],
        stack: Endpoints,
        partitions: int = 2,
        input_config: dict[str, str] | None = None,
    ) -> None:
        self.stack = stack
        self.input = make_topic(partitions, prefix="in", config=input_config)
        self.events = make_topic(2, prefix="events")
        self.actions = make_topic(1, prefix="actions")
        self.dead = make_topic(1, prefix="dead")
        self.readers: list[TopicReader] = []

    def settings(self) -> dict[str, str]:
        return {
            "input_topics": self.input,
            "events_topic": self.events,
            "actions_topic": self.actions,
            "deadletter_topic": self.dead,
        }

    def reader(self, topic: str) -> TopicReader:
        reader = TopicReader(self.stack.bootstrap_servers, topic)
        self.readers.append(reader)
        return reader

    def produce(self, values: list[bytes], **kwargs: Any) -> int:
        return produce(self.stack.bootstrap_servers, self.input, values, **kwargs)


@pytest.fixture
def topics(make_topic: Callable[..., str], stack: Endpoints) -> Iterator[Callable[..., Topics]]:
    made: list[Topics] = []

    def make(partitions: int = 2, input_config: dict[str, str] | None = None) -> Topics:
        t = Topics(make_topic, stack, partitions, input_config)
        made.append(t)
        return t

    yield make
    for t in made:
        for r in t.readers:
            r.close()


@pytest.fixture
def monitors(tmp_path: Path) -> Iterator[Callable[..., Monitor]]:
    started: list[Monitor] = []

    def start(env: dict[str, str], *args: str) -> Monitor:
        m = Monitor(tmp_path, env, args).start()
        started.append(m)
        return m

    yield start
    stop_all(started)


def _quick_env(tmp_path: Path, stack: Endpoints, t: Topics, **extra: object) -> dict[str, str]:
    policies = write_policies(tmp_path, QUICK_POLICIES)
    return monitor_env(
        stack, policies=policies, lateness=f"{LATENESS_MS}ms", **t.settings(), **extra
    )


def test_quiet_stream_breach_fires_while_idle(
    tmp_path: Path,
    stack: Endpoints,
    topics: Callable[..., Topics],
    monitors: Callable[..., Monitor],
) -> None:
    """On an idle input a breach reaches Kafka about `lateness` after its deadline."""
    t = topics()
    monitor = monitors(_quick_env(tmp_path, stack, t))
    monitor.wait_heartbeat(lambda b: b["watermark"] is not None)
    out = t.reader(t.events)
    latencies = []
    for n in range(3):
        conv = f"quiet-{n}"
        t.produce([inbound(conv, now_ms())])
        records = out.wait_for(
            lambda rs, c=conv: bool(sla(rs, c, "breached")), timeout=30, check=monitor.check_alive
        )
        breach = sla(records, conv, "breached")[0]
        received = out.received[records.index(breach)]
        latencies.append(received - parse_instant(breach["deadline_at"]) - LATENESS_MS)
        time.sleep(0.5)
    print(f"\nquiet-stream breach latency after deadline + lateness (ms): {latencies}")
    assert all(lat < 5_000 for lat in latencies)


def test_reply_waiting_in_backlog_is_no_breach(
    tmp_path: Path,
    stack: Endpoints,
    topics: Callable[..., Topics],
    monitors: Callable[..., Monitor],
) -> None:
    """A reply that sits behind a backlog on another partition stops its clock: no false breach."""
    t = topics(partitions=2)
    start = now_ms() - 120_000
    # Partition 0: the customer's messages. Partition 1: a long backlog, then the reply.
    t.produce([inbound("waiting", start), inbound("ignored", start)], partition=0)
    filler = [inbound(f"filler-{i}", start - 60_000 + i) for i in range(20_000)]
    t.produce([*filler, reply("waiting", start + 2_000)], partition=1)
    monitor = monitors(_quick_env(tmp_path, stack, t))
    out = t.reader(t.events)
    records = out.wait_for(
        lambda rs: bool(sla(rs, "ignored", "breached")) and bool(sla(rs, "waiting", "met")),
        timeout=60,
        check=monitor.check_alive,
    )
    assert not sla(records, "waiting", "breached")
    assert sla(records, "waiting", "met")[0]["stopped_at"] is not None


def test_bad_inputs_become_dead_letters_and_the_flow_goes_on(
    tmp_path: Path,
    stack: Endpoints,
    topics: Callable[..., Topics],
    monitors: Callable[..., Monitor],
) -> None:
    """Malformed, oversized, non-UTF-8 and future-dated events are dead letters with reasons."""
    t = topics(partitions=1, input_config={"max.message.bytes": "3000000"})
    monitor = monitors(_quick_env(tmp_path, stack, t))
    monitor.wait_heartbeat(lambda b: b["watermark"] is not None)
    bad = [
        b"{oops",
        b'{"event_id": "\xff\xfe"}',
        b"[" + b"1," * 600_000 + b"1]",
        inbound("future", now_ms() + 3_600_000),
        b'{"event_id": "x", "type": "message"}',
    ]
    t.produce(bad, partition=0, config={"message.max.bytes": 3_000_000})
    t.produce([inbound("after-bad", now_ms())], partition=0)
    dead = t.reader(t.dead).wait_for(lambda rs: len(rs) >= 5, timeout=30, check=monitor.check_alive)
    reasons = [d["reason"] for d in dead]
    assert any(r.startswith("event is not valid JSON") for r in reasons)
    assert any(r.startswith("event is not valid UTF-8") for r in reasons)
    assert any("over the 1048576-byte limit" in r for r in reasons)
    assert any("field 'occurred_at' is" in r and "in the future" in r for r in reasons)
    assert "missing field 'conversation_id'" in reasons
    assert all(d["source"].startswith(f"{t.input}/0/") for d in dead)
    t.reader(t.events).wait_for(
        lambda rs: bool(sla(rs, "after-bad", "breached")), timeout=30, check=monitor.check_alive
    )
    monitor.check_alive()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _expected(values: list[bytes], policies: Path) -> Counter[bytes]:
    records = replay_records(
        values, load_policies(policies), lateness_ms=LATENESS_MS, until=now_ms() - 600_000
    )
    return Counter(_canonical(to_json_dict(r, 0)) for r in records)


def _canonical(record: Json) -> bytes:
    return orjson.dumps(
        {k: v for k, v in record.items() if k != "emitted_at"}, option=orjson.OPT_SORT_KEYS
    )


@pytest.mark.parametrize("layout", ["one worker", "-w 2", "two processes"])
def test_workers_and_processes_give_the_same_records(
    tmp_path: Path,
    stack: Endpoints,
    topics: Callable[..., Topics],
    monitors: Callable[..., Monitor],
    layout: str,
) -> None:
    """Spreading the flow over threads or processes gives the single engine's records."""
    t = topics(partitions=4)
    policies = write_policies(tmp_path)
    values = encode(simulate(now_ms() - 6 * 3_600_000, 400))
    t.produce(values, key_of=conversation_key)
    expected = _expected(values, policies)
    env = monitor_env(stack, policies=policies, lateness=f"{LATENESS_MS}ms", **t.settings())
    if layout == "one worker":
        started = [monitors(env)]
    elif layout == "-w 2":
        started = [monitors(env, "-w", "2")]
    else:
        addresses = f"127.0.0.1:{_free_port()};127.0.0.1:{_free_port()}"
        # With a recovery store that both processes share (process 0 creates it).
        store = str(tmp_path / "shared-recovery")
        started = [
            monitors(env, "-i", str(i), "-a", addresses, "-r", store, "-s", "2") for i in range(2)
        ]
    out = t.reader(t.events)
    actions = t.reader(t.actions)

    def check() -> None:
        for m in started:
            m.check_alive()

    total = sum(expected.values())
    out.wait_for(
        lambda rs: len(rs) + len(actions.records) >= total,
        timeout=120,
        check=lambda: (actions.poll(0.05), check()) and None,
    )
    time.sleep(1)
    out.poll(0.5)
    actions.poll(0.5)
    got = Counter(_canonical(r) for r in [*out.records, *actions.records])
    assert got == expected


def test_kill_and_restart_loses_no_clock_and_stores_no_duplicate(
    tmp_path: Path,
    stack: Endpoints,
    topics: Callable[..., Topics],
    monitors: Callable[..., Monitor],
    questdb: QuestDB,
) -> None:
    """After `kill -9` and a restart every clock fires, once per row in QuestDB, even if due
    during the downtime."""
    t = topics(partitions=2)
    prefix = f"t{int(time.time() * 1000) % 10**9}_"
    recovery = tmp_path / "recovery"
    env = _quick_env(
        tmp_path,
        stack,
        t,
        questdb_http=stack.questdb_http,
        table_prefix=prefix,
        recovery_dir=recovery,
        snapshot_interval="1s",
    )
    first = monitors(env)
    first.wait_heartbeat(lambda b: b["watermark"] is not None)
    out = t.reader(t.events)
    t.produce([inbound(f"before-{i}", now_ms()) for i in range(20)], key_of=conversation_key)
    out.wait_for(
        lambda rs: all(sla(rs, f"before-{i}", "breached") for i in range(20)),
        timeout=30,
        check=first.check_alive,
        what="20 breaches before the crash",
    )
    # Let a snapshot cover the breaches: the flow itself, not the wall clock, must have gone on
    # for two snapshot intervals, which a starved process may take much longer to do.
    seen = now_ms()
    first.wait_heartbeat(
        lambda b: parse_instant(b["at"]) >= seen + 2_500, what="2.5 s after the breaches"
    )
    # Started just before the crash, due while the monitor is down.
    t.produce([inbound(f"during-{i}", now_ms()) for i in range(20)], key_of=conversation_key)
    time.sleep(0.3)
    first.kill()
    time.sleep(5)
    second = monitors(env)
    restarted = now_ms()
    records = out.wait_for(
        lambda rs: all(sla(rs, f"during-{i}", "breached") for i in range(20)),
        timeout=60,
        check=second.check_alive,
    )
    fired = max(
        out.received[records.index(sla(records, f"during-{i}", "breached")[0])] for i in range(20)
    )
    print(f"\nbreaches due during the downtime fired {fired - restarted} ms after the restart")
    table = f"{prefix}events"
    rows = questdb.wait_for_rows(
        f"SELECT conversation_id, metric, status FROM {table} WHERE status = 'breached'",
        count=40,
        timeout=60,
    )
    assert len({r[0] for r in rows}) == 40
    dupes = questdb.query(
        f"SELECT * FROM (SELECT conversation_id, cycle, metric, seq, status, at, count() c "
        f"FROM {table}) WHERE c > 1"
    )
    assert dupes == []
    beats = questdb.wait_for_rows(
        f"SELECT count() FROM {prefix}heartbeat", until=lambda rs: bool(rs) and rs[0][0] > 0
    )
    assert beats[0][0] > 0


def test_monitor_survives_a_broker_restart(
    tmp_path: Path,
    local_stack: Stack,
    monitors: Callable[..., Monitor],
) -> None:
    """When Kafka restarts the monitor reconnects and goes on firing breaches."""
    # A broker of this test's own: restarting the session's would pull it from under the
    # other tests (and from under other runs when the stack is shared).
    kafka = DedicatedKafka(tmp_path / "kafka", local_stack.fetch())
    kafka.start()
    try:
        _survive_a_restart(tmp_path, kafka, monitors)
    finally:
        kafka.stop()


def _survive_a_restart(
    tmp_path: Path, kafka: DedicatedKafka, monitors: Callable[..., Monitor]
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    names = {
        "input_topics": create_topic(admin, 1, prefix="in"),
        "events_topic": create_topic(admin, 2, prefix="events"),
        "actions_topic": create_topic(admin, 1, prefix="actions"),
        "deadletter_topic": create_topic(admin, 1, prefix="dead"),
    }
    policies = write_policies(tmp_path, QUICK_POLICIES)
    env = monitor_env(kafka.endpoints, policies=policies, lateness=f"{LATENESS_MS}ms", **names)
    monitor = monitors(env)
    monitor.wait_heartbeat(lambda b: b["watermark"] is not None, what="with a watermark")
    out = TopicReader(kafka.bootstrap_servers, names["events_topic"])
    try:
        produce(kafka.bootstrap_servers, names["input_topics"], [inbound("pre", now_ms())])
        out.wait_for(
            lambda rs: bool(sla(rs, "pre", "breached")),
            timeout=30,
            check=monitor.check_alive,
            what="the breach of the conversation started before the restart",
        )
        kafka.stop()
        time.sleep(2)  # down for a while, as in a real restart
        kafka.start()
        restarted = time.monotonic()
        produce(kafka.bootstrap_servers, names["input_topics"], [inbound("post", now_ms())])
        out.wait_for(
            lambda rs: bool(sla(rs, "post", "breached")),
            timeout=60,
            check=monitor.check_alive,
            what="the breach of the conversation started after the restart",
        )
        print(f"\nbreach after the broker restart: {time.monotonic() - restarted:.1f} s")
    finally:
        out.close()
    monitor.check_alive()
