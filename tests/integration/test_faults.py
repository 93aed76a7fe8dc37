"""Fault tests of `slawatch run` against the real Kafka and QuestDB: crashes and outages.

Each test prints what it measured (one `FAULTS ...` line) for docs/RELIABILITY.md.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from flows.connectors.questdb import QuestDBWriter, TableNames
from flows.core.policies import load_policies
from flows.core.timefmt import parse_instant
from flows.devstack import Endpoints, Stack
from flows.replay import replay_records
from tests.conftest import QuestDB
from tests.flowkit import QUICK_POLICIES, encode, simulate, write_policies
from tests.integration.monitorkit import (
    Monitor,
    TopicReader,
    conversation_key,
    inbound,
    monitor_env,
    now_ms,
    stop_all,
)
from tests.integration.test_live_monitor import Topics, topics  # noqa: F401 - fixture
from tests.integration.test_questdb_outage import DedicatedQuestDB
from tests.questdbkit import new_prefix
from tests.waitkit import describe_load, scaled, timeout_scale, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

LATENESS_MS = 1_000
_VOLATILE = {"emitted_at", "updated_at"}


@pytest.fixture
def monitors(tmp_path: Path) -> Iterator[Callable[..., Monitor]]:
    started: list[Monitor] = []

    def start(env: dict[str, str], *args: str) -> Monitor:
        m = Monitor(tmp_path, env, args).start()
        started.append(m)
        return m

    yield start
    stop_all(started)


class StampedReader(TopicReader):
    """A topic reader that keeps each message's Kafka timestamp (when the monitor produced it)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(bootstrap, topic)
        self.stamps: list[int] = []

    def poll(self, seconds: float = 0.2) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for msg in self.consumer.consume(10_000, 0.05):
                if msg.error() is None:
                    self.records.append(orjson.loads(msg.value()))
                    self.received.append(now_ms())
                    self.stamps.append(msg.timestamp()[1])


def _p99(values: list[int]) -> int:
    ordered = sorted(values)
    return ordered[max(0, round(len(ordered) * 0.99) - 1)]


def _table(db: QuestDB, table: str) -> Counter[tuple[Any, ...]]:
    """Every row of a table but its wall-clock columns, as a multiset."""
    with db.connect() as conn:
        cursor = conn.execute(f"SELECT * FROM {table}")  # noqa: S608 - test table names
        names = [c.name for c in cursor.description or ()]
        keep = [i for i, name in enumerate(names) if name not in _VOLATILE]
        return Counter(tuple(row[i] for i in keep) for row in cursor.fetchall())


def _difference(got: Counter[tuple[Any, ...]], want: Counter[tuple[Any, ...]]) -> str:
    missing, extra = want - got, got - want
    return (
        f"{sum(got.values())} rows of {sum(want.values())}; {sum(missing.values())} missing "
        f"(e.g. {list(missing)[:3]}), {sum(extra.values())} not in the clean run "
        f"(e.g. {list(extra)[:3]})"
    )


def _count(db: QuestDB, table: str) -> int:
    try:
        return int(db.query(f"SELECT count() FROM {table}")[0][0])  # noqa: S608
    except Exception:  # noqa: BLE001 - the table may not exist yet
        return 0


def test_three_kill_9s_during_a_large_replay_store_what_a_clean_run_stores(
    tmp_path: Path,
    stack: Endpoints,
    topics: Callable[..., Topics],  # noqa: F811
    monitors: Callable[..., Monitor],
    questdb: QuestDB,
) -> None:
    """Killed three times while reading a backlog, the monitor still ends with the clean
    run's `sla_events` and `sla_clocks`, row for row."""
    t = topics(partitions=2)
    policies = write_policies(tmp_path)
    values = encode(simulate(now_ms() - 8 * 3_600_000, 12_000, span_s=4 * 3600))
    t.produce(values, key_of=conversation_key)

    # The clean run: the same records, written by the same writer in one go.
    records = list(
        replay_records(
            values, load_policies(policies), lateness_ms=LATENESS_MS, until=now_ms() - 600_000
        )
    )
    clean = TableNames(new_prefix())
    writer = QuestDBWriter(stack.questdb_ilp_conf, prefix=clean.prefix)
    writer.write_batch(records, emitted_at_ms=now_ms())
    assert writer.flush()
    writer.close()
    for table in (clean.events, clean.clocks):
        questdb.wait_for_wal(table, timeout=60)
    want_events, want_clocks = _table(questdb, clean.events), _table(questdb, clean.clocks)
    assert sum(want_events.values()) > 10_000

    crashed = TableNames(new_prefix())
    env = monitor_env(
        stack,
        policies=policies,
        lateness=f"{LATENESS_MS}ms",
        questdb_http=stack.questdb_http,
        table_prefix=crashed.prefix,
        recovery_dir=tmp_path / "recovery",
        snapshot_interval="1s",
        **t.settings(),
    )
    began = time.monotonic()
    kills = []
    for delay in (0.3, 0.8, 0.6):
        monitor = monitors(env)
        # Killed after this life has emitted records, so its outputs are re-sent after resume.
        monitor.wait_heartbeat(lambda b: b["records_out"] > 0, timeout=90)
        time.sleep(delay)
        lag = monitor.heartbeats()[-1]["lag_ms"]
        # Still reading the backlog (hours behind, or no watermark yet): a crash mid-replay.
        assert lag is None or lag > 600_000, lag
        kills.append(_count(questdb, crashed.events))
        monitor.kill()
    monitor = monitors(env)
    total = sum(want_events.values())
    questdb.wait_for_rows(
        f"SELECT count() FROM {crashed.events}",  # noqa: S608
        until=lambda rows: bool(rows) and rows[0][0] >= total,
        timeout=240,
    )
    caught_up = time.monotonic() - began
    # The clock rows of the last batches may still be on their way: wait for the whole table.
    for table, want in ((crashed.events, want_events), (crashed.clocks, want_clocks)):
        wait_until(
            lambda table=table: _table(questdb, table),
            lambda got, want=want: got == want,
            timeout=60,
            what=f"{table} holds the clean run's rows",
            show=lambda got, want=want: _difference(got, want),
            check=monitor.check_alive,
            retry=(psycopg.Error,),
            every=0.25,
        )
    monitor.check_alive()
    assert all(rows < total for rows in kills), kills
    print(
        f"\nFAULTS kill9 events={len(values)} sla_rows={total} clock_rows="
        f"{sum(want_clocks.values())} rows_at_kills={kills} done_after_s={caught_up:.1f}"
    )


def test_questdb_outage_under_load_delays_no_breach_and_loses_no_row(
    tmp_path: Path,
    stack: Endpoints,
    local_stack: Stack,
    topics: Callable[..., Topics],  # noqa: F811
    monitors: Callable[..., Monitor],
) -> None:
    """QuestDB stops for 40 s while events flow: breaches reach Kafka on time meanwhile, and
    afterwards every SLA record on Kafka is a row in QuestDB."""
    server = DedicatedQuestDB(tmp_path / "questdb", local_stack.fetch().questdb_jar)
    server.start()
    try:
        _outage_under_load(tmp_path, stack, server, topics, monitors)
    finally:
        server.stop()


def _outage_under_load(
    tmp_path: Path,
    stack: Endpoints,
    server: DedicatedQuestDB,
    topics: Callable[..., Topics],  # noqa: F811
    monitors: Callable[..., Monitor],
) -> None:
    t = topics(partitions=2)
    names = TableNames(new_prefix())
    env = quick_env(stack, tmp_path, t, server.endpoints.questdb_http, names.prefix)
    monitor = monitors(env)
    monitor.wait_heartbeat(lambda b: b["watermark"] is not None)
    out = StampedReader(stack.bootstrap_servers, t.events)
    t.readers.append(out)
    stop = threading.Event()
    sent: list[str] = []

    def feed() -> None:
        n = 0
        while not stop.is_set():
            batch = [f"load-{n + i}" for i in range(50)]
            n += 50
            t.produce([inbound(c, now_ms()) for c in batch], key_of=conversation_key)
            sent.extend(batch)
            time.sleep(0.25)  # ~200 conversations/s

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        # The reader keeps polling, so each record's receive time is when Kafka had it.
        out.poll(8)
        server.stop()
        down_at = now_ms()
        out.poll(40)
        up_at = now_ms()
        server.start()
        answering = time.monotonic()
        answering_at = now_ms()
        out.poll(10)  # the load goes on while the spill is sent
    finally:
        stop.set()
        feeder.join(30)
    db = QuestDB(server.endpoints)
    records = out.wait_for(
        lambda rs: (
            len({r["conversation_id"] for r in rs if r["status"] == "breached"}) >= len(sent)
        ),
        timeout=90,
        check=monitor.check_alive,
    )

    def latencies(lo: int, hi: int) -> list[int]:
        found = []
        for record, received in zip(records, out.stamps, strict=True):
            deadline = parse_instant(record["deadline_at"])
            if record["status"] == "breached" and lo <= deadline < hi:
                found.append(received - deadline - LATENESS_MS)
        return sorted(found)

    during = latencies(down_at + 2_000, up_at)
    before = latencies(0, down_at)
    assert during, "no breach fell inside the outage"
    assert before, "no breach fell before the outage"
    catching_up = latencies(answering_at, answering_at + 10_000)
    assert catching_up, "no breach fell while the spill was sent"
    p99, p99_before, p99_catch_up = _p99(during), _p99(before), _p99(catching_up)
    total = sum(1 for r in records if r["type"] == "sla")
    db.wait_for_rows(
        f"SELECT count() FROM {names.events}",  # noqa: S608
        until=lambda rows: bool(rows) and rows[0][0] >= total,
        timeout=120,
    )
    catch_up = time.monotonic() - answering
    db.wait_for_wal(names.events)
    stored = db.query(
        f"SELECT conversation_id, metric, status, count() FROM {names.events}"  # noqa: S608
    )
    on_kafka = Counter((r["conversation_id"], r["metric"], r["status"]) for r in records)
    assert {(c, m, s): n for c, m, s, n in stored} == dict(on_kafka)
    # On time: no later than before the outage, give or take the noise of a shared machine (a
    # second, more when it is loaded: QuestDB's start-up takes a core of its own meanwhile).
    noise = 1_000 * timeout_scale()
    assert p99 <= 1.5 * p99_before + noise, (
        f"late during the outage: p99 {p99} ms, {p99_before} ms before ({describe_load()})"
    )
    assert p99_catch_up <= 1.5 * p99_before + noise, (
        f"late while catching up: p99 {p99_catch_up} ms, {p99_before} ms before ({describe_load()})"
    )
    assert "cannot take rows" in monitor.tail(400) or "cannot take rows" in monitor.log.read_text()
    print(
        f"\nFAULTS questdb_outage down_s={(up_at - down_at) / 1000:.0f} conversations={len(sent)} "
        f"sla_records={total} breach_p99_before_ms={p99_before} "
        f"breach_p99_during_ms={p99} breaches_during={len(during)} "
        f"breach_p99_catching_up_ms={p99_catch_up} "
        f"all_rows_in_questdb_s_after_it_answers={catch_up:.1f} lost=0"
    )


def test_questdb_down_at_start_up_is_said_and_its_rows_arrive_when_it_comes(
    tmp_path: Path,
    stack: Endpoints,
    local_stack: Stack,
    topics: Callable[..., Topics],  # noqa: F811
    monitors: Callable[..., Monitor],
) -> None:
    """Started while QuestDB is down, the monitor says so, fires breaches on Kafka on time,
    and stores every record once QuestDB comes up."""
    t = topics(partitions=1)
    server = DedicatedQuestDB(tmp_path / "questdb", local_stack.fetch().questdb_jar)
    names = TableNames(new_prefix())
    env = quick_env(stack, tmp_path, t, server.endpoints.questdb_http, names.prefix)
    monitor = monitors(env)
    try:
        monitor.wait_heartbeat(lambda b: b["watermark"] is not None)
        out = t.reader(t.events)
        t.produce([inbound(f"early-{i}", now_ms()) for i in range(20)])
        records = out.wait_for(
            lambda rs: len(sla_of(rs, "breached")) >= 20, timeout=60, check=monitor.check_alive
        )
        late = [
            received - parse_instant(r["deadline_at"]) - LATENESS_MS
            for r, received in zip(records, out.received, strict=True)
            if r["status"] == "breached"
        ]
        log = monitor.log.read_text(errors="replace")
        assert "QuestDB tables not created yet" in log
        assert "cannot take rows" in log
        server.start()
        answering = time.monotonic()
        db = QuestDB(server.endpoints)
        out.poll(1.0)
        total = len(sla_of(out.records))
        db.wait_for_rows(
            f"SELECT count() FROM {names.events}",  # noqa: S608
            until=lambda rows: bool(rows) and rows[0][0] == total,
            timeout=90,
        )
        stored_after = time.monotonic() - answering
    finally:
        server.stop()
    assert max(late) < 5_000
    print(
        f"\nFAULTS questdb_down_at_start breach_latency_max_ms={max(late)} "
        f"records={total} all_stored_s_after_questdb_answers={stored_after:.1f}"
    )


class KafkaDoor:
    """A TCP forwarder to the session's broker on a reserved 127.0.0.1 port: shut until `open`.

    The port is bound at once but not listened on, so connections to it are refused, as to a
    broker that is down; `open` starts accepting and forwards each connection to the broker
    (whose metadata then points clients at its own listener). A test stand-in for "Kafka comes
    up", not a Kafka.
    """

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.sockets: list[socket.socket] = [self.listener]

    def open(self) -> None:
        self.listener.listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65_536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def test_kafka_down_at_start_up_is_said_and_the_monitor_starts_when_it_comes(
    tmp_path: Path,
    stack: Endpoints,
    topics: Callable[..., Topics],  # noqa: F811
    monitors: Callable[..., Monitor],
) -> None:
    """Started before its broker, the monitor says so in one line, waits, and once Kafka
    answers it starts and fires breaches."""
    t = topics(partitions=1)
    door = KafkaDoor(stack.bootstrap_servers)
    try:
        env = monitor_env(
            stack,
            policies=write_policies(tmp_path, QUICK_POLICIES),
            lateness=f"{LATENESS_MS}ms",
            **t.settings(),
        )
        env["SLAWATCH_BOOTSTRAP_SERVERS"] = door.address
        monitor = monitors(env)
        said = monitor.wait_logged("cannot reach Kafka", timeout=30)
        assert door.address in said[0] and "slawatch stack up" in said[0]
        time.sleep(3)  # still waiting, quietly: one line, no traceback, no librdkafka chatter
        monitor.check_alive()
        log = monitor.log.read_text(errors="replace")
        assert [line for line in log.splitlines() if "cannot reach Kafka" in line] == said
        assert "Traceback" not in log and "Connection refused" not in log

        door.open()
        monitor.wait_heartbeat(lambda b: b["watermark"] is not None, timeout=90)
        out = t.reader(t.events)
        t.produce([inbound(f"after-{i}", now_ms()) for i in range(5)])
        out.wait_for(
            lambda rs: len(sla_of(rs, "breached")) >= 5, timeout=60, check=monitor.check_alive
        )
        assert f"Kafka at {door.address} answers" in monitor.log.read_text(errors="replace")
    finally:
        door.close()


def test_kafka_down_at_start_up_with_a_bounded_wait_ends_in_one_line(
    tmp_path: Path,
    stack: Endpoints,
    topics: Callable[..., Topics],  # noqa: F811
    monitors: Callable[..., Monitor],
) -> None:
    """With `SLAWATCH_KAFKA_WAIT`, a broker that never comes ends the monitor with one clear
    line and exit code 1, not a traceback."""
    t = topics(partitions=1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    env = monitor_env(stack, policies=write_policies(tmp_path, QUICK_POLICIES), **t.settings())
    env["SLAWATCH_BOOTSTRAP_SERVERS"] = dead
    env["SLAWATCH_KAFKA_WAIT"] = "3s"
    monitor = monitors(env)
    assert monitor.proc is not None
    code = monitor.proc.wait(timeout=scaled(60))
    log = monitor.log.read_text(errors="replace")
    assert code == 1
    assert "Traceback" not in log
    assert f"cannot reach Kafka at {dead}" in log
    assert re.search(r"after \d+ s; start it \(`slawatch stack up`\)", log), log


def quick_env(
    stack: Endpoints, tmp_path: Path, t: Topics, questdb_http: str, prefix: str
) -> dict[str, str]:
    """The monitor's environment: 3 s first-response target, short lateness, this QuestDB."""
    return monitor_env(
        stack,
        policies=write_policies(tmp_path, QUICK_POLICIES),
        lateness=f"{LATENESS_MS}ms",
        questdb_http=questdb_http,
        table_prefix=prefix,
        **t.settings(),
    )


def sla_of(records: list[dict[str, Any]], status: str | None = None) -> list[dict[str, Any]]:
    return [
        r for r in records if r.get("type") == "sla" and (status is None or r["status"] == status)
    ]
