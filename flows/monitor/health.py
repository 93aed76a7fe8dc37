"""The monitor's own health: `/healthz`, `/readyz` and `/metrics` on one small HTTP server.

`slawatch run` serves them on `health_address` (loopback by default) from a daemon thread beside
Bytewax's workers. The figures come from the heartbeat step (`HeartbeatSink`'s observer): each
worker of this process tells the `HealthBoard` its latest heartbeat, consumer backlog and
conversations held; the QuestDB writers are read when `/metrics` is asked; the snapshot age is
the age of the newest write to the recovery store's files.

* `GET /healthz`: 200 while the process serves HTTP (liveness).
* `GET /readyz`: 200 when Kafka answers, every worker of this process has reported within
  `stale_ms` and its watermark is at most `max_lag_ms` behind the wall clock; else 503 with one
  reason per problem (`{"status": "not ready", "problems": [...]}`).
* `GET /metrics`: the Prometheus text format, version 0.0.4 (`slawatch_monitor_*`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bytewax.outputs import StatelessSinkPartition

from flows.connectors.questdb.sink import QuestDBItem, QuestDBSink
from flows.connectors.questdb.status import Heartbeat, WriterStats
from flows.exceptions import SlawatchError
from flows.wallclock import now_ms

__all__ = [
    "HealthBoard",
    "HealthServer",
    "KafkaProbe",
    "ObservedQuestDBSink",
    "parse_address",
    "serve_health",
]

_log = logging.getLogger("slawatch.health")

KafkaCheck = Callable[[], str | None]
"""Returns None when Kafka answers, else one sentence saying why not."""


@dataclass(frozen=True, slots=True)
class _Vitals:
    """A worker's latest report: its heartbeat, backlog (messages) and conversations held."""

    beat: Heartbeat
    backlog: int
    conversations: int


class KafkaProbe:
    """Asks Kafka for its metadata, at most once per `cache_s`; the answer is reused meanwhile.

    Args:
        config: librdkafka properties (`Settings.kafka_common()`).
        timeout_s: How long one metadata request may take.
        cache_s: How long an answer is reused (probes may come every second).
    """

    def __init__(self, config: dict[str, Any], *, timeout_s: float = 2.0, cache_s: float = 5.0):
        self._config = {**config, "log_level": 0}
        self._timeout_s = timeout_s
        self._cache_s = cache_s
        self._lock = threading.Lock()
        self._admin: Any = None
        self._checked = -float("inf")
        self._answer: str | None = None

    def __call__(self) -> str | None:
        """Return None when Kafka answered (now or within `cache_s`), else the reason."""
        with self._lock:
            if time.monotonic() - self._checked < self._cache_s:
                return self._answer
            from confluent_kafka import KafkaException  # noqa: PLC0415
            from confluent_kafka.admin import AdminClient  # noqa: PLC0415

            where = self._config.get("bootstrap.servers", "?")
            try:
                if self._admin is None:
                    self._admin = AdminClient(self._config)
                self._admin.list_topics(timeout=self._timeout_s)
                self._answer = None
            except KafkaException as exc:
                self._answer = f"Kafka at {where} does not answer: {exc.args[0]}"
            self._checked = time.monotonic()
            return self._answer


class HealthBoard:
    """What this process knows of its own health, shared by the workers and the HTTP thread.

    Thread-safe. Counters are those of the heartbeats (since the process started).

    Args:
        workers: The workers this process runs (readiness waits for each to report).
        max_lag_ms: Largest watermark delay (wall clock minus watermark) that is still ready.
        stale_ms: A worker whose last heartbeat is older than this is not ready.
        kafka: Kafka's reachability check (None: not checked).
        recovery_dir: The recovery store, whose newest file write gives the snapshot age.
        clock: The wall clock in epoch ms.
    """

    def __init__(
        self,
        *,
        workers: int,
        max_lag_ms: int,
        stale_ms: int,
        kafka: KafkaCheck | None = None,
        recovery_dir: Path | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.workers = workers
        self.max_lag_ms = max_lag_ms
        self.stale_ms = stale_ms
        self._kafka = kafka
        self._recovery_dir = recovery_dir
        self._clock = clock
        self._lock = threading.Lock()
        self._vitals: dict[str, _Vitals] = {}
        self._writers: dict[int, Callable[[], WriterStats]] = {}

    def observe(self, beat: Heartbeat, backlog: int, conversations: int) -> None:
        """Take a worker's heartbeat (a `HeartbeatSink` observer)."""
        with self._lock:
            self._vitals[beat.worker] = _Vitals(beat, backlog, conversations)

    def watch_writer(self, worker: int, stats: Callable[[], WriterStats]) -> None:
        """Read a worker's QuestDB writer counters on every `/metrics`."""
        with self._lock:
            self._writers[worker] = stats

    def problems(self) -> list[str]:
        """Return why this process is not ready, one sentence each; empty when it is ready."""
        now = self._clock()
        found: list[str] = []
        if self._kafka is not None:
            reason = self._kafka()
            if reason is not None:
                found.append(reason)
        with self._lock:
            vitals = dict(self._vitals)
        if len(vitals) < self.workers:
            found.append(
                f"{len(vitals)} of {self.workers} workers have reported a heartbeat "
                "(starting, or reading the first fetches)"
            )
        for worker, vital in sorted(vitals.items()):
            age = now - vital.beat.at
            if age > self.stale_ms:
                found.append(
                    f"worker {worker} last reported {age / 1000:.0f} s ago "
                    f"(allowed {self.stale_ms / 1000:.0f} s): it is stuck or stopped"
                )
            elif vital.beat.watermark is None:
                found.append(f"worker {worker} has no watermark yet (a partition has not reported)")
            elif now - vital.beat.watermark > self.max_lag_ms:
                found.append(
                    f"worker {worker} is {(now - vital.beat.watermark) / 1000:.0f} s behind "
                    f"(allowed {self.max_lag_ms / 1000:.0f} s): catching up"
                )
        return found

    def snapshot_age_s(self) -> float | None:
        """Return seconds since the recovery store was last written, or None without one."""
        if self._recovery_dir is None:
            return None
        times = [p.stat().st_mtime for p in self._recovery_dir.glob("part-*.sqlite3*")]
        if not times:
            return None
        return max(0.0, self._clock() / 1000 - max(times))

    def render(self) -> str:
        """Return every metric in the Prometheus text exposition format (ends with a newline)."""
        now = self._clock()
        with self._lock:
            vitals = sorted(self._vitals.items())
            writers = sorted(self._writers.items())
        ready = not self.problems()
        out = _Exposition()
        out.gauge("slawatch_monitor_ready", "1 when /readyz answers 200.", [({}, int(ready))])
        out.gauge("slawatch_monitor_workers", "Workers this process runs.", [({}, self.workers)])

        def each(value: Callable[[_Vitals], float | None]) -> list[tuple[dict[str, str], float]]:
            rows = [({"worker": w}, value(v)) for w, v in vitals]
            return [(labels, x) for labels, x in rows if x is not None]

        out.counter(
            "slawatch_monitor_events_total",
            "Input events taken in since the process started.",
            each(lambda v: v.beat.events_in),
        )
        out.counter(
            "slawatch_monitor_records_total",
            "SLA and action records emitted since the process started.",
            each(lambda v: v.beat.records_out),
        )
        out.counter(
            "slawatch_monitor_dead_letters_total",
            "Inputs turned into dead letters since the process started.",
            each(lambda v: v.beat.dead_letters),
        )
        out.gauge(
            "slawatch_monitor_heartbeat_timestamp_seconds",
            "Wall-clock time of the worker's last heartbeat.",
            each(lambda v: v.beat.at / 1000),
        )
        out.gauge(
            "slawatch_monitor_watermark_timestamp_seconds",
            "The worker's event-time watermark (its slowest shard), as of its last heartbeat.",
            each(lambda v: None if v.beat.watermark is None else v.beat.watermark / 1000),
        )
        out.gauge(
            "slawatch_monitor_watermark_delay_seconds",
            "Wall clock now minus the watermark: grows when the monitor stops advancing.",
            each(lambda v: None if v.beat.watermark is None else (now - v.beat.watermark) / 1000),
        )
        out.gauge(
            "slawatch_monitor_consumer_lag_messages",
            "Messages of the input partitions still to read, as the worker's shards last heard.",
            each(lambda v: v.backlog),
        )
        out.gauge(
            "slawatch_monitor_open_conversations",
            "Conversations the worker's engines hold (open, or within the correction horizon).",
            each(lambda v: v.conversations),
        )
        stats = [(str(worker), read()) for worker, read in writers]
        for name, help_text, field, kind in _WRITER_METRICS:
            rows = [({"worker": w}, float(getattr(s, field))) for w, s in stats]
            out.family(name, help_text, kind, rows)
        age = self.snapshot_age_s()
        if age is not None:
            out.gauge(
                "slawatch_monitor_snapshot_age_seconds",
                "Seconds since the recovery store was last written (a snapshot).",
                [({}, age)],
            )
        return out.text()


_WRITER_METRICS = (
    ("slawatch_monitor_questdb_rows_written_total", "Rows QuestDB accepted.", "rows_written", "c"),
    (
        "slawatch_monitor_questdb_rows_pending",
        "Rows not yet accepted by QuestDB, in memory or spilled to disk.",
        "rows_pending",
        "g",
    ),
    (
        "slawatch_monitor_questdb_rows_spilled",
        "Of the pending rows, those waiting on disk while QuestDB is down.",
        "rows_spilled",
        "g",
    ),
    (
        "slawatch_monitor_questdb_rows_rejected_total",
        "Rows QuestDB refused as invalid.",
        "rows_rejected",
        "c",
    ),
)


class _Exposition:
    """Builds Prometheus text: `# HELP`, `# TYPE`, then one line per sample."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(
        self, name: str, help_text: str, kind: str, rows: list[tuple[dict[str, str], float]]
    ) -> None:
        """Add one metric family (`kind` is `c` for a counter, `g` for a gauge)."""
        self._lines.append(f"# HELP {name} {help_text}")
        self._lines.append(f"# TYPE {name} {'counter' if kind == 'c' else 'gauge'}")
        for labels, value in rows:
            inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            shown = f"{{{inner}}}" if inner else ""
            number = int(value) if float(value).is_integer() else value
            self._lines.append(f"{name}{shown} {number}")

    def counter(self, name: str, help_text: str, rows: list[tuple[dict[str, str], float]]) -> None:
        """Add a counter family."""
        self.family(name, help_text, "c", rows)

    def gauge(self, name: str, help_text: str, rows: list[tuple[dict[str, str], float]]) -> None:
        """Add a gauge family."""
        self.family(name, help_text, "g", rows)

    def text(self) -> str:
        """Return the exposition, newline-terminated."""
        return "\n".join(self._lines) + "\n"


class ObservedQuestDBSink(QuestDBSink):
    """A `QuestDBSink` whose writers' counters the health board reads on `/metrics`.

    Args:
        board: The process's health board.
        conf: As `QuestDBSink`.
        **options: As `QuestDBSink`.
    """

    def __init__(self, board: HealthBoard, conf: str, **options: Any) -> None:
        super().__init__(conf, **options)
        self._board = board

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[QuestDBItem]:
        """Build the worker's writer as `QuestDBSink` does, and show its counters."""
        partition = super().build(step_id, worker_index, worker_count)
        writer = getattr(partition, "writer", None)
        if writer is not None:
            self._board.watch_writer(worker_index, lambda: writer.stats)
        return partition


def parse_address(text: str) -> tuple[str, int]:
    """Split `host:port` (an IPv4 address or a host name) into host and port.

    Raises:
        SlawatchError: no port, or a port that is not a number from 0 to 65535.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        msg = f"health address {text!r} must be host:port, e.g. 127.0.0.1:9108 or 0.0.0.0:9108"
        raise SlawatchError(msg)
    return host, int(port)


class _Handler(BaseHTTPRequestHandler):
    """Answers the three health paths from the server's board."""

    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        """Answer `/healthz`, `/readyz` or `/metrics`; anything else is 404; a failure is 500."""
        try:
            self._answer()
        except Exception as exc:  # a probe must get an answer, and the monitor must go on
            _log.exception("health endpoint %s failed", self.path)
            self._send(500, "application/json", json.dumps({"error": str(exc)}))

    def _answer(self) -> None:
        """Answer one GET from the board."""
        board = self.server.board
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, "application/json", json.dumps({"status": "ok"}))
        elif path == "/readyz":
            problems = board.problems()
            body = {"status": "ready"} if not problems else {"status": "not ready"}
            if problems:
                body["problems"] = problems  # type: ignore[assignment]
            self._send(503 if problems else 200, "application/json", json.dumps(body))
        elif path == "/metrics":
            self._send(200, "text/plain; version=0.0.4; charset=utf-8", board.render())
        else:
            self._send(404, "application/json", json.dumps({"error": "not found"}))

    def _send(self, status: int, content_type: str, text: str) -> None:
        """Write one complete response."""
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Stay quiet: probes come every few seconds."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    board: HealthBoard


@dataclass
class HealthServer:
    """The running health server.

    Attributes:
        url: `http://host:port` it answers on (the real port when 0 was asked).
    """

    url: str
    _server: _Server
    _thread: threading.Thread

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_health(address: str, board: HealthBoard) -> HealthServer:
    """Serve the board on `address` from a daemon thread; return once it listens.

    Raises:
        SlawatchError: the address is malformed, or it cannot be bound (in use, not local).
    """
    host, port = parse_address(address)
    try:
        server = _Server((host, port), _Handler)
    except OSError as exc:
        msg = f"cannot serve the health endpoints on {address}: {exc.strerror or exc}"
        raise SlawatchError(msg) from exc
    server.board = board
    thread = threading.Thread(target=server.serve_forever, name="slawatch-health", daemon=True)
    thread.start()
    bound_host, bound_port = server.server_address[:2]
    return HealthServer(f"http://{bound_host!s}:{bound_port}", server, thread)
