"""End-to-end benchmark of the live monitor (`slawatch run`): sustained events/s from a backlog.

Usage: python bench/monitor_bench.py [--events 200000] [--conversations 25000] [--partitions 4]
       [--configs base,recovery,questdb,recovery+questdb,w2,2proc] [--repeat 1]
       [--stack-dir DIR] [--no-breach] [--no-profile] [--profile-config recovery+questdb]

Everything runs on a private local stack (Kafka + QuestDB started in a temp folder and stopped at
the end), or on the stack in `--stack-dir` (started if needed, left as it was found). Topics,
QuestDB tables and recovery stores are unique to the run and removed at the end.

1. **Throughput.** N events (SPEC §1 JSON from `flows.feed.conversation_script`: conversations
   opened with a priority or lead source, customer messages, assignments, replies on time, late
   or never, more turns, resolutions) over K conversations, keyed by conversation and dated in
   the last two hours (none in the future), are produced to a fresh topic *before* the monitor
   starts: a backlog. Then `slawatch run` runs as a child process with `examples/policies.yaml`
   (settings in `SLAWATCH_*` variables), once per configuration: one worker without recovery;
   recovery (`-r DIR`, snapshots every 5 s, the default); QuestDB on; both; `-w 2`; two
   processes (`-i 0/1 -a ...`). Its JSON heartbeat lines (every 50 ms) give the window:
   *seconds* runs from the first heartbeat (start-up excluded, shown apart) to the first one at
   which every event is taken in (`events_in` = N over all workers), applied (every worker's
   watermark past the newest event) and its records are out (`records_out` settled). CPU
   seconds of the monitor process(es), and of Kafka and QuestDB, over the window come from
   `/proc/<pid>/stat`. Without recovery each run re-reads the same topic from the beginning.
2. **Quiet-stream breach latency.** A monitor (recovery and QuestDB on) idles, caught up, with a
   policy whose first_response target is a few seconds; one customer message is produced, and
   the wall time from `deadline + lateness` to the `breached` record's arrival on the events
   topic is measured, a few times.
3. **Where the time goes.** `get_flow` (one worker, `--profile-config`) runs in this process with
   `bytewax.testing.run_main` over the same backlog, its source swapped for one that ends once
   caught up. The step functions (Kafka source, decode, engine, snapshot, Kafka sink, QuestDB
   sink, heartbeat) are wrapped with timers (thread CPU and wall; they are called per fetch or
   per batch, so the timers cost nothing); the rest is Bytewax. A second run under cProfile over
   the first 50k events lists the hottest slawatch functions.

Goal (the baseline of the printed ratios): half the raw consumer ceiling measured on this kind of
machine, 333k/2 = 166,500 events/s (../shared/notes/runtime.md); `python -m bench` measures the
ceiling in the same run instead. `x pass` is the ratio to Bytewax's own Kafka pass-through
(~159k events/s). The machine is shared (2 cores, other jobs; the
1-min load average is printed per run): events per CPU second of the monitor is the steadier
number, wall-clock events/s the one the goal is stated in.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import os
import platform
import pstats
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from flows.core.timefmt import parse_instant  # noqa: E402
from flows.devstack import Endpoints, Stack  # noqa: E402
from flows.feed import FeedPlan, conversation_script  # noqa: E402

RAW_CEILING_EPS = 333_000
GOAL_EPS = RAW_CEILING_EPS // 2
PASS_THROUGH_EPS = 159_000
DEFAULT_POLICIES = REPO / "examples" / "policies.yaml"
HEARTBEAT = "50ms"
# An idle (caught-up) partition ticks this often, so the last heartbeat follows the last fetch
# closely; while a backlog is read the partitions are behind and do not tick.
IDLE_TICK = "50ms"
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: The configurations: label, `slawatch run` arguments, extra settings, processes. Recovery
#: snapshots every 5 s (the default of `SLAWATCH_SNAPSHOT_INTERVAL`); `recovery-s1` shows how
#: the cost grows with the snapshot frequency.
CONFIGS: dict[str, tuple[str, list[str], dict[str, str], int]] = {
    "base": ("1 worker", [], {}, 1),
    "recovery": ("recovery -s 5", ["-r", "{recovery}"], {"SNAPSHOT_INTERVAL": "5s"}, 1),
    "questdb": ("QuestDB", [], {"QUESTDB_HTTP": "{questdb}"}, 1),
    "recovery+questdb": (
        "recovery -s 5 + QuestDB",
        ["-r", "{recovery}"],
        {"SNAPSHOT_INTERVAL": "5s", "QUESTDB_HTTP": "{questdb}"},
        1,
    ),
    "w2": ("-w 2 (threads)", ["-w", "2"], {}, 1),
    "2proc": ("-i 0/1 (2 processes)", [], {}, 2),
    "recovery-s1": ("recovery -s 1", ["-r", "{recovery}"], {"SNAPSHOT_INTERVAL": "1s"}, 1),
}
DEFAULT_CONFIGS = ("base", "recovery", "questdb", "recovery+questdb", "w2", "2proc")
QUICK_POLICY = """\
policies:
  - id: quick
    targets:
      first_response: {{within: {target}}}
"""


# -- machine ----------------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{platform.node()} | {cpu} | {os.cpu_count()} cpus | Python {platform.python_version()}"


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a live process (all its threads), 0 if it is gone."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- input ------------------------------------------------------------------------------------


def generate(
    events: int, conversations: int, end_ms: int, seed: int = 11
) -> list[tuple[bytes, bytes]]:
    """Return `events` (key, JSON event) pairs over `conversations` conversations, in time order.

    Every conversation follows `conversation_script` (opened, customer message, assigned, reply
    on time / late / never, more turns, resolved); when one script each is not enough, the same
    conversations come back an hour later (a reopened chat). The newest event is at `end_ms`;
    the key is the conversation id.
    """
    rng = random.Random(seed)  # noqa: S311 - test data
    plan = FeedPlan(seed=seed)
    hour = 3_600_000
    scripted: list[tuple[int, int, dict[str, Any]]] = []
    rounds = 0
    while len(scripted) < events:
        for i in range(conversations):
            conv = f"bench-{i}"
            start = rounds * hour + rng.randrange(50 * 60_000)
            for n, (at, body) in enumerate(conversation_script(conv, start, rng, plan)):
                body["event_id"] = f"{conv}-r{rounds}-{n}"
                scripted.append((at, len(scripted), body))
        rounds += 1
    scripted.sort(key=lambda item: (item[0], item[1]))
    kept = scripted[:events]
    shift = end_ms - kept[-1][0]
    out = []
    for at, _, body in kept:
        body["occurred_at"] = at + shift
        out.append((body["conversation_id"].encode(), orjson.dumps(body)))
    return out


def make_topic(admin: AdminClient, name: str, partitions: int) -> None:
    new = NewTopic(name, num_partitions=partitions, replication_factor=1)
    admin.create_topics([new], operation_timeout=30)[name].result(timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        meta = admin.list_topics(name, timeout=10).topics.get(name)
        if (
            meta is not None
            and meta.error is None
            and len(meta.partitions) == partitions
            and all(p.leader >= 0 for p in meta.partitions.values())
        ):
            return
        time.sleep(0.1)
    msg = f"topic {name} has no leader for all partitions after 30 s"
    raise RuntimeError(msg)


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> float:
    """Produce (key, value) `messages` in order; return the seconds it took."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "queue.buffering.max.messages": 2_000_000,
            "linger.ms": 20,
            "compression.type": "lz4",
        }
    )
    started = time.perf_counter()
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(120)
    if left:
        msg = f"{left} events not delivered to {topic}"
        raise RuntimeError(msg)
    return time.perf_counter() - started


# -- the monitor as child processes -------------------------------------------------------------


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log: Path
    offset: int = 0
    beats: dict[str, dict[str, Any]] = field(default_factory=dict)
    rusage_cpu: float | None = None

    def read_beats(self) -> list[dict[str, Any]]:
        """Parse the heartbeat lines logged since the last call."""
        with self.log.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        new = []
        for line in data[:end].splitlines():
            _, sep, payload = line.partition(b"slawatch.heartbeat: ")
            if sep:
                beat = orjson.loads(payload)
                self.beats[str(beat["worker"])] = beat
                new.append(beat)
        return new

    def interrupt(self) -> None:
        """Ask for a clean stop (SIGINT), without reaping the process (see `stop`)."""
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGINT)

    def stop(self) -> None:
        """SIGINT, then SIGKILL after 20 s; keep the process's total CPU (wait4's rusage)."""
        if self.popen.returncode is not None:
            return
        self.interrupt()
        deadline = time.monotonic() + 20
        options = os.WNOHANG
        while True:
            try:
                pid, status, usage = os.wait4(self.popen.pid, options)
            except ChildProcessError:  # reaped elsewhere: no rusage
                self.popen.returncode = -1
                return
            if pid:
                self.popen.returncode = os.waitstatus_to_exitcode(status)
                self.rusage_cpu = usage.ru_utime + usage.ru_stime
                return
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.popen.pid, signal.SIGKILL)
                options = 0
            time.sleep(0.05)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def start_monitor(
    env: dict[str, str], args: list[str], workdir: Path, tag: str, processes: int = 1
) -> list[Proc]:
    """Start `slawatch run` (one process, or a cluster of `processes`); logs go to `workdir`."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("SLAWATCH_")}
    full.update(env)
    full["PYTHONUNBUFFERED"] = "1"
    cluster: list[list[str]] = [[]]
    if processes > 1:
        addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
        cluster = [["-i", str(i), "-a", addresses] for i in range(processes)]
    procs = []
    for i, extra in enumerate(cluster):
        log = workdir / f"{tag}-{i}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "flows.cli", "run", *args, *extra],
                cwd=REPO,
                env=full,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        procs.append(Proc(popen, log))
    return procs


def stop_all(procs: list[Proc]) -> None:
    for p in procs:
        p.interrupt()
    for p in procs:
        p.stop()


@dataclass
class RunResult:
    label: str
    window: Window
    load: float
    """1-min load average at the end of the window."""
    total_cpu_s: float
    """CPU of the monitor process(es) from start to exit (wait4)."""


class MonitorFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Backlog:
    """The input topics and what was produced to them."""

    topics: dict[str, str]
    """`input_topics`, `events_topic`, `actions_topic`, `deadletter_topic` settings."""
    events: int
    newest: int
    """The newest `occurred_at` (epoch ms)."""


@dataclass
class Window:
    """What the heartbeats showed between the first one and the one that counted every event."""

    startup_s: float
    seconds: float
    events: int
    cpu_s: float
    kafka_cpu_s: float
    questdb_cpu_s: float
    records_out: int
    dead_letters: int
    rss_start_kb: int = 0
    """Resident memory of the monitor process(es) at the first heartbeat."""
    rss_end_kb: int = 0
    """Resident memory of the monitor process(es) when the window closed."""


@dataclass(frozen=True)
class Sample:
    """What the heartbeats said (summed over workers) when new lines were seen, and the CPU."""

    at: int
    events_in: int
    applied: bool
    records_out: int
    dead_letters: int
    cpu_s: float
    kafka_cpu_s: float
    questdb_cpu_s: float
    rss_kb: int = 0


def rss_kb(pid: int | None) -> int:
    """Resident set size of a live process in KiB, 0 if it is gone."""
    if pid is None:
        return 0
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def measure(
    procs: list[Proc],
    backlog: Backlog,
    workers: int,
    spawned: int,
    stack_pids: tuple[int | None, int | None],
    timeout_s: float,
) -> Window:
    """Follow the heartbeats until the whole backlog is processed; return the measured window.

    The window opens at the first heartbeat (the first fetch has been processed: imports,
    connections and flow building are over). It closes at the first heartbeat at which every
    event is taken in (`events_in` = N over all workers), applied (every worker's watermark,
    the lowest of its shards, has passed the newest event: an event above its shard's
    watermark waits in the engine) and its records are out (`records_out` within 0.1 % of
    where it settles; after that, only clocks falling due by the wall clock add records).
    Both ends use the heartbeats' own instants; CPU is read from /proc when each heartbeat
    line is seen (polled every 10 ms).
    """
    kafka_pid, questdb_pid = stack_pids
    pids = [p.popen.pid for p in procs]
    samples: list[Sample] = []
    done_at: float | None = None
    deadline = time.monotonic() + timeout_s
    while True:
        now = time.monotonic()
        if now > deadline:
            msg = f"backlog not processed after {timeout_s:.0f} s:\n{procs[0].tail()}"
            raise MonitorFailed(msg)
        for p in procs:
            if p.popen.poll() is not None:
                msg = f"monitor exited with {p.popen.returncode}:\n{p.tail()}"
                raise MonitorFailed(msg)
        fresh = [beat for p in procs for beat in p.read_beats()]
        if fresh:
            latest = [b for p in procs for b in p.beats.values()]
            sample = Sample(
                at=max(parse_instant(b["at"]) for b in fresh),
                events_in=sum(int(b["events_in"]) for b in latest),
                applied=len(latest) == workers
                and all(
                    b["watermark"] is not None and parse_instant(b["watermark"]) >= backlog.newest
                    for b in latest
                ),
                records_out=sum(int(b["records_out"]) for b in latest),
                dead_letters=sum(int(b["dead_letters"]) for b in latest),
                cpu_s=sum(cpu_seconds(pid) for pid in pids),
                kafka_cpu_s=cpu_seconds(kafka_pid),
                questdb_cpu_s=cpu_seconds(questdb_pid),
                rss_kb=sum(rss_kb(pid) for pid in pids),
            )
            samples.append(sample)
            if done_at is None and sample.applied and sample.events_in >= backlog.events:
                done_at = now
        if done_at is not None and now - done_at >= 0.5:
            last = samples[-1]
            recent = [s for s in samples if s.at >= last.at - 500]
            margin = max(2, last.records_out // 1000)
            if last.records_out - recent[0].records_out <= margin or now - done_at > 10:
                first = samples[0]
                end = next(
                    s
                    for s in samples
                    if s.applied
                    and s.events_in >= backlog.events
                    and s.records_out >= last.records_out - margin
                )
                return Window(
                    startup_s=(first.at - spawned) / 1000,
                    seconds=(end.at - first.at) / 1000,
                    events=backlog.events - first.events_in,
                    cpu_s=end.cpu_s - first.cpu_s,
                    kafka_cpu_s=end.kafka_cpu_s - first.kafka_cpu_s,
                    questdb_cpu_s=end.questdb_cpu_s - first.questdb_cpu_s,
                    records_out=end.records_out,
                    dead_letters=end.dead_letters,
                    rss_start_kb=first.rss_kb,
                    rss_end_kb=end.rss_kb,
                )
        time.sleep(0.01)


# -- runs ---------------------------------------------------------------------------------------


@dataclass
class Bench:
    stack: Stack
    endpoints: Endpoints
    admin: AdminClient
    workdir: Path
    policies: Path
    shards: int
    partitions: int
    timeout_s: float
    topics: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)

    def topic(self, prefix: str, partitions: int) -> str:
        name = f"bench-{prefix}-{uuid.uuid4().hex[:12]}"
        make_topic(self.admin, name, partitions)
        self.topics.append(name)
        return name

    def stack_pids(self) -> tuple[int | None, int | None]:
        status = self.stack.status(probe=False)
        return status.kafka_pid, status.questdb_pid

    def env(self, topics: dict[str, str], **settings: str) -> dict[str, str]:
        prefix = f"bench_{uuid.uuid4().hex[:8]}_"
        self.prefixes.append(prefix)
        env = {
            "SLAWATCH_BOOTSTRAP_SERVERS": self.endpoints.bootstrap_servers,
            "SLAWATCH_QUESTDB_HTTP": "",
            "SLAWATCH_QUESTDB_PG_PORT": str(self.endpoints.questdb_pg_port),
            "SLAWATCH_TABLE_PREFIX": prefix,
            "SLAWATCH_POLICIES": str(self.policies),
            "SLAWATCH_SHARDS": str(self.shards),
            "SLAWATCH_FLOW_NAME": "slawatch_bench",
        }
        for key, value in {**topics, **settings}.items():
            env[f"SLAWATCH_{key.upper()}"] = value
        return env

    def run_config(self, key: str, backlog: Backlog) -> RunResult:
        """Run `slawatch run` in configuration `key` over the backlog; measure, then stop it."""
        label, args, settings, processes = CONFIGS[key]
        workers = processes * (int(args[args.index("-w") + 1]) if "-w" in args else 1)
        recovery = self.workdir / f"recovery-{key}-{uuid.uuid4().hex[:6]}"
        fill = {"recovery": str(recovery), "questdb": self.endpoints.questdb_http}
        args = [a.format(**fill) for a in args]
        settings = {k: v.format(**fill) for k, v in settings.items()}
        env = self.env(
            backlog.topics, heartbeat_interval=HEARTBEAT, idle_tick=IDLE_TICK, **settings
        )
        spawned = now_ms()
        procs = start_monitor(env, args, self.workdir, key, processes)
        try:
            window = measure(procs, backlog, workers, spawned, self.stack_pids(), self.timeout_s)
            load = os.getloadavg()[0]
        finally:
            stop_all(procs)
            shutil.rmtree(recovery, ignore_errors=True)
        return RunResult(label, window, load, sum(p.rusage_cpu or 0.0 for p in procs))

    def breach_latency(self, samples: int, target: str, lateness: str) -> list[int]:
        """Quiet-stream breach latency (ms after deadline + lateness), `samples` times."""
        policies = self.workdir / "quick-policies.yaml"
        policies.write_text(QUICK_POLICY.format(target=target), encoding="utf-8")
        topics = {
            "input_topics": self.topic("quiet-in", 4),
            "events_topic": self.topic("quiet-events", 1),
            "actions_topic": self.topic("quiet-actions", 1),
            "deadletter_topic": self.topic("quiet-dead", 1),
        }
        recovery = self.workdir / "recovery-quiet"
        env = self.env(
            topics,
            policies=str(policies),
            lateness=lateness,
            questdb_http=self.endpoints.questdb_http,
            snapshot_interval="5s",
            heartbeat_interval="500ms",
        )
        lateness_ms = _duration_ms(lateness)
        consumer = Consumer(
            {
                "bootstrap.servers": self.endpoints.bootstrap_servers,
                "group.id": f"bench-{uuid.uuid4()}",
                "enable.auto.commit": False,
            }
        )
        consumer.assign([TopicPartition(topics["events_topic"], 0, OFFSET_BEGINNING)])
        producer = Producer({"bootstrap.servers": self.endpoints.bootstrap_servers})
        procs = start_monitor(env, ["-r", str(recovery)], self.workdir, "quiet")
        latencies = []
        try:
            deadline = time.monotonic() + 60
            while True:  # idle and caught up: a watermark that follows the wall clock
                procs[0].read_beats()
                beats = list(procs[0].beats.values())
                if beats and all(b["lag_ms"] is not None for b in beats):
                    if max(b["lag_ms"] for b in beats) < lateness_ms + 1_000:
                        break
                if procs[0].popen.poll() is not None or time.monotonic() > deadline:
                    msg = f"the quiet monitor did not catch up:\n{procs[0].tail()}"
                    raise MonitorFailed(msg)
                time.sleep(0.05)
            for n in range(samples):
                conv = f"quiet-{n}"
                body = {
                    "event_id": f"{conv}-1",
                    "type": "message",
                    "conversation_id": conv,
                    "occurred_at": now_ms(),
                    "direction": "inbound",
                    "author": "customer",
                }
                producer.produce(topics["input_topics"], orjson.dumps(body), conv.encode())
                producer.flush(10)
                latencies.append(_wait_breach(consumer, conv, lateness_ms, procs[0]))
                time.sleep(0.5)
        finally:
            stop_all(procs)
            consumer.close()
            shutil.rmtree(recovery, ignore_errors=True)
        return latencies

    def cleanup(self) -> None:
        if self.topics:
            for future in self.admin.delete_topics(self.topics, operation_timeout=30).values():
                future.exception(timeout=60)
        _drop_tables(self.endpoints, self.prefixes)


def _duration_ms(text: str) -> int:
    from flows.settings import parse_settings_duration  # noqa: PLC0415

    return int(parse_settings_duration(text).total_seconds() * 1000)


def _wait_breach(consumer: Consumer, conv: str, lateness_ms: int, proc: Proc) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for msg in consumer.consume(100, 0.01):
            received = now_ms()
            if msg.error() is not None:
                continue
            rec = orjson.loads(msg.value())
            if rec.get("conversation_id") == conv and rec.get("status") == "breached":
                return received - parse_instant(rec["deadline_at"]) - lateness_ms
        if proc.popen.poll() is not None:
            break
    msg = f"no breach for {conv}:\n{proc.tail()}"
    raise MonitorFailed(msg)


def _drop_tables(endpoints: Endpoints, prefixes: list[str]) -> None:
    """Drop the QuestDB views and tables the runs created (HTTP /exec: no client library needed).

    The materialized views go first: left behind on a reused stack, they would outlive their
    base tables.
    """
    import http.client  # noqa: PLC0415
    import urllib.parse  # noqa: PLC0415

    from flows.connectors.questdb import TableNames  # noqa: PLC0415
    from flows.connectors.questdb.views import ViewNames, drop_view_statement  # noqa: PLC0415

    for prefix in prefixes:
        drops = [drop_view_statement(view) for view in ViewNames(prefix).all()]
        drops += [f'DROP TABLE IF EXISTS "{table}"' for table in TableNames(prefix).all()]
        for statement in drops:
            query = urllib.parse.urlencode({"query": statement})
            conn = http.client.HTTPConnection("127.0.0.1", endpoints.questdb_http_port, timeout=10)
            with contextlib.suppress(OSError):
                conn.request("GET", f"/exec?{query}")
                conn.getresponse().read()
            conn.close()


# -- profile ------------------------------------------------------------------------------------


class StepTimer:
    """Wall and thread-CPU time spent inside chosen functions, by wrapping them (no profiler).

    Only functions called per fetch, per activation or per batch are wrapped (hundreds to a
    few thousand calls), so the wrappers cost nothing measurable.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._undo: list[tuple[object, str, object]] = []

    def wrap(self, owner: object, name: str, label: str) -> None:
        original = getattr(owner, name)
        seconds, cpu, calls = self.seconds, self.cpu, self.calls
        seconds.setdefault(label, 0.0)
        cpu.setdefault(label, 0.0)
        calls.setdefault(label, 0)
        clock, thread_clock = time.perf_counter, time.thread_time

        def timed(*args: Any, **kwargs: Any) -> Any:
            began, began_cpu = clock(), thread_clock()
            try:
                return original(*args, **kwargs)
            finally:
                seconds[label] += clock() - began
                cpu[label] += thread_clock() - began_cpu
                calls[label] += 1

        self._undo.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, timed)

    def undo(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


#: (label, owner module/class path, attribute); indented labels are part of the one above.
STEPS: list[tuple[str, str, str]] = [
    ("Kafka source (consume, next_batch)", "bench:_UntilCaughtUp", "next_batch"),
    ("decode + group by shard (decode_fetch)", "flows.monitor.flow", "decode_fetch"),
    ("engine (ShardLogic.on_batch/notify/eof)", "flows.monitor.flow:ShardLogic", "on_batch"),
    ("", "flows.monitor.flow:ShardLogic", "on_notify"),
    ("", "flows.monitor.flow:ShardLogic", "on_eof"),
    ("  of which Engine.process (core)", "flows.core.engine:Engine", "process"),
    ("snapshot (ShardLogic.snapshot)", "flows.monitor.flow:ShardLogic", "snapshot"),
    ("  of which dump_engine (core)", "flows.monitor.shard", "dump_engine"),
    ("Kafka sink (write_batch)", "flows.connectors.kafka.sink:_RecordPartition", "write_batch"),
    (
        "  of which waiting for acks (flush)",
        "flows.connectors.kafka.sink:_RecordPartition",
        "_flush",
    ),
    (
        "QuestDB sink (write_batch)",
        "flows.connectors.questdb.sink:_QuestDBPartition",
        "write_batch",
    ),
    (
        "  of which keep/dedup records (_add)",
        "flows.connectors.questdb.writer:QuestDBWriter",
        "_add",
    ),
    ("  of which send (_flush)", "flows.connectors.questdb.writer:QuestDBWriter", "_flush"),
    ("    of which rows -> ILP (_seal)", "flows.connectors.questdb.writer:QuestDBWriter", "_seal"),
    ("heartbeat (sink)", "flows.monitor.heartbeat:_HeartbeatPartition", "write_batch"),
]


def _finite_source(limit: int | None) -> tuple[type, type]:
    """A `KafkaFetchSource` whose partitions end once caught up (or past `limit` messages)."""
    from bytewax.inputs import StatefulSourcePartition  # noqa: PLC0415

    from flows.connectors.kafka import Fetch, KafkaFetchSource  # noqa: PLC0415

    class _UntilCaughtUp(StatefulSourcePartition[Fetch, int]):
        def __init__(self, inner: StatefulSourcePartition[Fetch, int]) -> None:
            self.inner = inner
            self.done = False
            self.read = 0

        def next_batch(self) -> list[Fetch]:
            if self.done:
                raise StopIteration
            batch = self.inner.next_batch()
            self.read += sum(len(f.messages) for f in batch)
            self.done = any(f.caught_up for f in batch) or (
                limit is not None and self.read >= limit
            )
            return batch

        def next_awake(self) -> Any:
            return self.inner.next_awake()

        def snapshot(self) -> int:
            return self.inner.snapshot()

        def close(self) -> None:
            self.inner.close()

    class _FiniteSource(KafkaFetchSource):
        def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> Any:
            return _UntilCaughtUp(super().build_part(step_id, for_part, resume_state))

    return _FiniteSource, _UntilCaughtUp


@dataclass
class InProcessRun:
    wall_s: float
    cpu_s: float
    """CPU of this thread (the Bytewax worker; librdkafka's own threads not included)."""
    events: int
    timer: StepTimer | None


def run_in_process(
    bench: Bench,
    topics: dict[str, str],
    key: str,
    *,
    profiler: cProfile.Profile | None = None,
    limit_per_partition: int | None = None,
) -> InProcessRun:
    """Run `get_flow` of configuration `key` in this thread until the backlog is read.

    The flow is `get_flow`'s own wiring with its Kafka source swapped for one that ends once
    caught up (or after `limit_per_partition` messages), run by `bytewax.testing.run_main` in
    this thread, so that a profiler sees all of it. Without `profiler`, the steps of `STEPS`
    are timed instead.
    """
    import importlib  # noqa: PLC0415

    from bytewax.recovery import RecoveryConfig, init_db_dir  # noqa: PLC0415
    from bytewax.testing import run_main  # noqa: PLC0415

    import flows.monitor.flow as dataflow  # noqa: PLC0415
    from flows.settings import Settings  # noqa: PLC0415

    _, args, extra, _ = CONFIGS[key]
    recovery: Path | None = None
    if "-r" in args:
        recovery = bench.workdir / f"recovery-profile-{uuid.uuid4().hex[:6]}"
        recovery.mkdir()
        init_db_dir(recovery, 1)  # type: ignore[no-untyped-call]
    prefix = f"bench_{uuid.uuid4().hex[:8]}_"
    bench.prefixes.append(prefix)
    settings = Settings(
        bootstrap_servers=bench.endpoints.bootstrap_servers,
        questdb_http=bench.endpoints.questdb_http if "QUESTDB_HTTP" in extra else "",
        table_prefix=prefix,
        policies=bench.policies,
        shards=bench.shards,
        recovery_dir=recovery,
        snapshot_interval=extra.get("SNAPSHOT_INTERVAL", "5s"),
        heartbeat_interval=HEARTBEAT,
        idle_tick=IDLE_TICK,
        flow_name="slawatch_bench",
        **topics,
    )
    finite, partition_class = _finite_source(limit_per_partition)
    original = dataflow.KafkaFetchSource
    dataflow.KafkaFetchSource = finite  # type: ignore[misc]
    try:
        flow = dataflow.get_flow(settings, heartbeat_writers=[])
    finally:
        dataflow.KafkaFetchSource = original  # type: ignore[misc]
    config = (
        None if recovery is None else RecoveryConfig(str(recovery))  # type: ignore[no-untyped-call]
    )
    timer: StepTimer | None = None
    if profiler is None:
        timer = StepTimer()
        for label, where, name in STEPS:
            module, _, cls = where.partition(":")
            owner: Any = partition_class if module == "bench" else importlib.import_module(module)
            if cls and module != "bench":
                owner = getattr(owner, cls)
            timer.wrap(owner, name, label or STEPS[2][0])
    counted: list[int] = []
    read_wrapper = partition_class.next_batch

    def counting(self: Any) -> Any:
        batch = read_wrapper(self)
        counted.append(sum(len(f.messages) for f in batch))
        return batch

    partition_class.next_batch = counting
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    try:
        if profiler is not None:
            profiler.enable()
        run_main(flow, epoch_interval=settings.snapshot_interval, recovery_config=config)
    finally:
        if profiler is not None:
            profiler.disable()
        if timer is not None:
            timer.undo()
        if recovery is not None:
            shutil.rmtree(recovery, ignore_errors=True)
    return InProcessRun(time.perf_counter() - wall0, time.thread_time() - cpu0, sum(counted), timer)


def profile_report(
    bench: Bench, topics: dict[str, str], key: str, hotspot_events: int, *, hotspots: bool = True
) -> InProcessRun:
    """Print where the time of one in-process run goes, then (`hotspots`) the hottest functions.

    Returns the timed in-process run (events, wall and worker-thread CPU seconds).
    """
    label = CONFIGS[key][0]
    run = run_in_process(bench, topics, key)
    timer = run.timer
    assert timer is not None
    n = run.events
    print()
    print(
        f"where the time goes: get_flow ({label}, {bench.shards} shards) run in the "
        f"bench process by bytewax.testing.run_main until caught up; {n:,} events in "
        f"{run.wall_s:.1f} s wall ({n / run.wall_s:,.0f}/s), {run.cpu_s:.1f} s CPU of the "
        f"worker thread ({n / run.cpu_s:,.0f} events/CPU-s)"
    )
    header = f"{'step':<42} {'wall s':>7} {'CPU s':>7} {'CPU %':>6} {'calls':>7} {'CPU us/ev':>9}"
    print(header)
    print("-" * len(header))
    wall_in = cpu_in = 0.0
    for name in timer.seconds:
        seconds, cpu, calls = timer.seconds[name], timer.cpu[name], timer.calls[name]
        if not calls:
            continue  # a step this configuration does not have (QuestDB off, no recovery)
        if not name.startswith(" "):
            wall_in += seconds
            cpu_in += cpu
        print(
            f"{name:<42} {seconds:>7.2f} {cpu:>7.2f} {cpu / run.cpu_s:>6.1%} {calls:>7,} "
            f"{cpu / n * 1e6:>9.1f}"
        )
    wall_rest, cpu_rest = run.wall_s - wall_in, run.cpu_s - cpu_in
    print(
        f"{'Bytewax (routing, state store, epochs)':<42} {wall_rest:>7.2f} {cpu_rest:>7.2f} "
        f"{cpu_rest / run.cpu_s:>6.1%} {'':>7} {cpu_rest / n * 1e6:>9.1f}"
    )
    if not hotspots:
        return run

    profiler = cProfile.Profile()
    limit = -(-hotspot_events // bench.partitions)
    prun = run_in_process(bench, topics, key, profiler=profiler, limit_per_partition=limit)
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    own = sorted(
        (
            (tt, nc, f"{Path(file).parent.name}/{Path(file).name}:{func}")
            for (file, _line, func), (_cc, nc, tt, _ct, _callers) in stats.items()
            if "/flows/" in file
        ),
        reverse=True,
    )[:15]
    print()
    print(
        f"hottest slawatch functions by own time under cProfile (same configuration, first "
        f"{prun.events:,} events, {prun.wall_s:.1f} s; cProfile inflates small calls: read "
        "the order, not the seconds)"
    )
    for tt, nc, where in own:
        print(f"  {tt:>6.2f} s {tt / prun.wall_s:>6.1%} {nc:>10,} calls  {where}")
    return run


# -- main ---------------------------------------------------------------------------------------


T = TypeVar("T")


def bench_session(args: argparse.Namespace, prefix: str, body: Callable[[Bench], T]) -> T:
    """Run `body` on a `Bench` on the stack `args` asks for, in a scratch folder removed after.

    `args` needs `stack_dir`, `policies`, `shards`, `partitions` and `timeout`. Every Kafka
    client is let go before the stack stops (they would log the broker going away), so no
    reference to the bench may outlive `body`.
    """
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        with stack_for(args.stack_dir, workdir) as (stack, endpoints):
            admin = AdminClient({"bootstrap.servers": endpoints.bootstrap_servers})
            bench = Bench(
                stack=stack,
                endpoints=endpoints,
                admin=admin,
                workdir=workdir,
                policies=args.policies.resolve(),
                shards=args.shards,
                partitions=args.partitions,
                timeout_s=args.timeout,
            )
            try:
                return body(bench)
            finally:
                bench.cleanup()
                del bench, admin
                gc.collect()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def stack_for(directory: Path | None, workdir: Path) -> Iterator[tuple[Stack, Endpoints]]:
    """Reuse the stack in `directory` (started if needed, left running if it was), or start a
    private one in `workdir` and stop it at the end."""
    stack = Stack(directory if directory is not None else workdir / "stack")
    was_running = directory is not None and stack.status().running
    endpoints = stack.up()
    try:
        yield stack, endpoints
    finally:
        if not was_running:
            stack.down()


def print_table(results: list[RunResult]) -> None:
    header = (
        f"{'configuration':<24} {'events':>8} {'start s':>7} {'seconds':>7} {'events/s':>9} "
        f"{'x goal':>6} {'x pass':>6} {'CPU s':>6} {'ev/CPU-s':>9} {'x goal':>6} "
        f"{'kafka s':>7} {'qdb s':>6} {'load':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        w = r.window
        eps = w.events / w.seconds if w.seconds > 0 else float("nan")
        epc = w.events / w.cpu_s if w.cpu_s > 0 else float("nan")
        print(
            f"{r.label:<24} {w.events:>8,} {w.startup_s:>7.1f} {w.seconds:>7.2f} {eps:>9,.0f} "
            f"{eps / GOAL_EPS:>6.2f} {eps / PASS_THROUGH_EPS:>6.2f} {w.cpu_s:>6.2f} "
            f"{epc:>9,.0f} {epc / GOAL_EPS:>6.2f} {w.kafka_cpu_s:>7.2f} {w.questdb_cpu_s:>6.2f} "
            f"{r.load:>5.1f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--conversations", type=int, default=25_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument(
        "--configs",
        default=",".join(DEFAULT_CONFIGS),
        help=f"comma-separated, from {', '.join(CONFIGS)}",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration")
    parser.add_argument("--policies", type=Path, default=DEFAULT_POLICIES)
    parser.add_argument("--stack-dir", type=Path, default=None, help="reuse this stack")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--no-breach", action="store_true", help="skip the breach latency")
    parser.add_argument("--breach-samples", type=int, default=5)
    parser.add_argument("--breach-target", default="3s", help="first_response target")
    parser.add_argument("--breach-lateness", default="2s", help="SLAWATCH_LATENESS of that run")
    parser.add_argument("--no-profile", action="store_true", help="skip the in-process runs")
    parser.add_argument(
        "--profile-config", default="recovery+questdb", help="one-worker configuration to profile"
    )
    parser.add_argument(
        "--hotspot-events", type=int, default=50_000, help="events read under cProfile"
    )
    args = parser.parse_args()
    keys = [k.strip() for k in args.configs.split(",") if k.strip()]
    unknown = [k for k in keys if k not in CONFIGS]
    if unknown:
        parser.error(f"unknown configs {unknown}; choose from {', '.join(CONFIGS)}")
    if args.profile_config not in ("base", "recovery", "questdb", "recovery+questdb"):
        parser.error("--profile-config must be a one-worker configuration")

    print("slawatch live-monitor benchmark (slawatch run, end to end)")
    print(f"machine : {machine()}")
    print(f"load    : {os.getloadavg()[0]:.1f} (1-min load average at start; machine shared)")
    bench_session(args, "slawatch-monitor-bench-", lambda bench: _run(bench, args, keys))


def _run(bench: Bench, args: argparse.Namespace, keys: list[str]) -> None:
    began = time.perf_counter()
    newest = now_ms() - 30_000
    values = generate(args.events, args.conversations, newest)
    generated = time.perf_counter() - began
    topics = {
        "input_topics": bench.topic("in", args.partitions),
        "events_topic": bench.topic("events", args.partitions),
        "actions_topic": bench.topic("actions", args.partitions),
        "deadletter_topic": bench.topic("dead", 1),
    }
    took = produce(bench.endpoints.bootstrap_servers, topics["input_topics"], values)
    backlog = Backlog(topics, len(values), newest)
    size = sum(len(v) for _, v in values) / len(values)
    print(
        f"inputs  : {len(values):,} events ({size:.0f} B avg) over {args.conversations:,} "
        f"conversations, {args.partitions} partitions, keyed by conversation, dated in the "
        f"last 2 h; generated in {generated:.1f} s, produced in {took:.1f} s "
        f"({len(values) / took:,.0f}/s) before the monitor starts"
    )
    print(
        f"monitor : slawatch run, policies {args.policies.name}, {args.shards} shards, lateness "
        f"5s, heartbeat and idle tick {HEARTBEAT}; seconds = first heartbeat -> every event "
        "in, applied and its records out (events_in = N, every watermark past the newest event, "
        "records_out settled)"
    )
    print(
        f"baseline: goal {GOAL_EPS:,} events/s (half the raw consumer ceiling "
        f"{RAW_CEILING_EPS:,}/s); x pass = ratio to Bytewax's Kafka pass-through "
        f"{PASS_THROUGH_EPS:,}/s; CPU s = monitor process(es) over the window"
    )
    print()
    results: list[RunResult] = []
    failures: list[str] = []
    for key in keys:
        for _ in range(args.repeat):
            try:
                results.append(bench.run_config(key, backlog))
            except MonitorFailed as exc:
                failures.append(f"{key}: {exc}")
    print_table(results)
    print()
    for r in results:
        print(
            f"  {r.label:<24} records_out {r.window.records_out:,}, dead letters "
            f"{r.window.dead_letters}, "
            f"whole-process CPU {r.total_cpu_s:.1f} s (start-up and shutdown included)"
        )
    for failure in failures:
        print(f"FAILED {failure}")
    del values
    if not args.no_breach:
        lat = bench.breach_latency(args.breach_samples, args.breach_target, args.breach_lateness)
        print()
        print(
            f"quiet-stream breach latency (first_response {args.breach_target}, lateness "
            f"{args.breach_lateness}, recovery + QuestDB on; arrival on the events topic minus "
            f"deadline + lateness): {', '.join(f'{x} ms' for x in lat)}; "
            f"median {statistics.median(lat):.0f} ms"
        )
    if not args.no_profile:
        profile_report(bench, topics, args.profile_config, args.hotspot_events)
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
