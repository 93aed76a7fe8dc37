"""The local real stack: Apache Kafka and QuestDB run from Maven Central jars on loopback.

No Docker is needed: `mvn` fetches the jars once into a cache folder and `java` runs them. Both
servers listen on 127.0.0.1 only, on free ports chosen at start-up, and write their logs and data
under one state folder. The folder's `state.json` records the processes and ports, so that a
second `up` reuses a running stack and `down` can stop it from another process.

Example:
    >>> stack = Stack(Path("/tmp/my-stack"))  # doctest: +SKIP
    >>> endpoints = stack.up()  # doctest: +SKIP
    >>> endpoints.bootstrap_servers  # doctest: +SKIP
    '127.0.0.1:41873'
    >>> stack.down()  # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flows.devstack.endpoints import (
    HOST,
    QUESTDB_DATABASE,
    QUESTDB_PASSWORD,
    QUESTDB_USER,
    Endpoints,
    _port_free,
)
from flows.devstack.jars import (
    INFRA_DIR,
    KAFKA_VERSION,
    QUESTDB_VERSION,
    Jars,
    Progress,
    _silent,
    _tail,
    _utc_now,
    fetch_jars,
    require_java,
)
from flows.devstack.services import (
    KAFKA_JAVA_OPTS,
    QUESTDB_JAVA_OPTS,
    _kafka_answers,
    _new_cluster_id,
    _questdb_answers,
    _signal,
    render_kafka_config,
    render_questdb_config,
)
from flows.exceptions import StackError

LOG4J_VERSION = "2.25.2"

# When running from a checkout, jars are cached in it; an installed package uses ~/.cache.
_CHECKOUT = Path(__file__).resolve().parents[2]


STATE_FORMAT = 1


_log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """Return the folder for downloaded jars.

    `$SLAWATCH_CACHE_DIR` if set; else `<checkout>/.cache/slawatch` when running from a clone;
    else `$XDG_CACHE_HOME/slawatch` (default `~/.cache/slawatch`) for an installed package.
    """
    env = os.environ.get("SLAWATCH_CACHE_DIR")
    if env:
        return Path(env).expanduser().resolve()
    if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "flows").is_dir():
        return _CHECKOUT / ".cache" / "slawatch"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "slawatch"


def default_stack_dir(cache_dir: Path | None = None) -> Path:
    """Return the stack's state folder: `$SLAWATCH_STACK_DIR` or `<cache>/stack`."""
    env = os.environ.get("SLAWATCH_STACK_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return (cache_dir or default_cache_dir()) / "stack"


@dataclass(frozen=True, slots=True)
class _State:
    """What `state.json` holds about one stack.

    Attributes:
        endpoints: The ports the stack listens on (kept across restarts when still free).
        cluster_id: Kafka's cluster id, bound to its formatted data folder.
        kafka_pid: Kafka's process id, None when stopped.
        questdb_pid: QuestDB's process id, None when stopped.
        started_at: When `up` last started it (ISO 8601 UTC, seconds).
    """

    endpoints: Endpoints
    cluster_id: str
    kafka_pid: int | None
    questdb_pid: int | None
    started_at: str | None

    def to_json(self) -> str:
        """Return the state as the indented JSON of `state.json`, with its format version."""
        payload = {"format": STATE_FORMAT, **asdict(self)}
        return json.dumps(payload, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> _State:
        """Parse `state.json`.

        Raises:
            ValueError: the file is not JSON, or is of another format version.
            KeyError: a field is missing.
        """
        raw = json.loads(text)
        if raw.get("format") != STATE_FORMAT:
            message = f"unknown state format {raw.get('format')!r}"
            raise ValueError(message)
        return cls(
            endpoints=Endpoints(**raw["endpoints"]),
            cluster_id=raw["cluster_id"],
            kafka_pid=raw["kafka_pid"],
            questdb_pid=raw["questdb_pid"],
            started_at=raw["started_at"],
        )


@dataclass(frozen=True, slots=True)
class StackStatus:
    """A snapshot of one stack: whether it runs and where it answers.

    `running` is true only when both processes are alive and both answer a query.

    Attributes:
        directory: The stack's state folder.
        running: Both processes alive and (when probed) answering.
        kafka_running: Kafka's process is alive (it may not answer yet).
        questdb_running: QuestDB's process is alive.
        endpoints: Where it answers, None if it never started.
        kafka_pid: Kafka's process id while alive.
        questdb_pid: QuestDB's process id while alive.
    """

    directory: Path
    running: bool
    kafka_running: bool
    questdb_running: bool
    endpoints: Endpoints | None
    kafka_pid: int | None
    questdb_pid: int | None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape printed by `slawatch stack status --json`."""
        kafka: dict[str, Any] | None = None
        questdb: dict[str, Any] | None = None
        ep = self.endpoints
        if ep is not None:
            kafka = {
                "bootstrap_servers": ep.bootstrap_servers,
                "port": ep.kafka_port,
                "controller_port": ep.kafka_controller_port,
                "pid": self.kafka_pid,
                "running": self.kafka_running,
                "log": str(self.directory / "logs" / "kafka.log"),
            }
            questdb = {
                "http": ep.questdb_http,
                "http_port": ep.questdb_http_port,
                "pg_port": ep.questdb_pg_port,
                "ilp_tcp_port": ep.questdb_ilp_tcp_port,
                "min_http_port": ep.questdb_min_http_port,
                "ilp_conf": ep.questdb_ilp_conf,
                "pg_conninfo": ep.questdb_pg_conninfo,
                "pid": self.questdb_pid,
                "running": self.questdb_running,
                "log": str(self.directory / "logs" / "questdb.log"),
            }
        return {
            "running": self.running,
            "dir": str(self.directory),
            "kafka": kafka,
            "questdb": questdb,
        }

    def describe(self) -> str:
        """Return a few human-readable lines saying where things are."""
        state = "running" if self.running else "not running"
        lines = [f"Stack in {self.directory}: {state}"]
        ep = self.endpoints
        if ep is not None and (self.kafka_running or self.questdb_running):
            logs = self.directory / "logs"
            kafka_pid = f"pid {self.kafka_pid}" if self.kafka_running else "NOT RUNNING"
            questdb_pid = f"pid {self.questdb_pid}" if self.questdb_running else "NOT RUNNING"
            lines += [
                f"  Kafka {KAFKA_VERSION:<8} bootstrap.servers={ep.bootstrap_servers}"
                f"  ({kafka_pid}, log {logs / 'kafka.log'})",
                f"  QuestDB {QUESTDB_VERSION:<6} console http://{ep.questdb_http}"
                f"  pg {ep.host}:{ep.questdb_pg_port} ({QUESTDB_USER}/{QUESTDB_PASSWORD},"
                f" db {QUESTDB_DATABASE})  ilp-tcp {ep.host}:{ep.questdb_ilp_tcp_port}"
                f"  ({questdb_pid}, log {logs / 'questdb.log'})",
            ]
        return "\n".join(lines)


@dataclass
class Stack:
    """One local Kafka + QuestDB stack, identified by its state folder.

    Args:
        directory: State folder (config, data, logs, `state.json`). Defaults to
            `default_stack_dir(cache_dir)`.
        cache_dir: Where jars are fetched to; shared by every stack. Defaults to
            `default_cache_dir()`.
        progress: Called with one line of text for each step worth showing a person.
        start_timeout: Seconds to wait for both servers to answer.
        stop_timeout: Seconds to wait after SIGTERM before sending SIGKILL.
    """

    directory: Path | None = None
    cache_dir: Path | None = None
    progress: Progress = _silent
    start_timeout: float = 180.0
    stop_timeout: float = 30.0
    _children: dict[int, subprocess.Popen[bytes]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        """Resolve the cache and state folders (defaults from the environment) once."""
        self.cache_dir = (self.cache_dir or default_cache_dir()).resolve()
        self.directory = (self.directory or default_stack_dir(self.cache_dir)).resolve()

    @property
    def dir(self) -> Path:
        """The state folder, resolved."""
        assert self.directory is not None  # set in __post_init__
        return self.directory

    @property
    def cache(self) -> Path:
        """The jar cache folder, resolved."""
        assert self.cache_dir is not None  # set in __post_init__
        return self.cache_dir

    @property
    def state_file(self) -> Path:
        """The JSON file recording this stack's processes and ports."""
        return self.dir / "state.json"

    # -- public API -------------------------------------------------------------------------

    def fetch(self) -> Jars:
        """Fetch the Kafka and QuestDB jars into the cache unless they are already there.

        Returns:
            The fetched jars.

        Raises:
            StackError: `mvn` is missing or the download failed.
        """
        return fetch_jars(self.cache, self.progress)

    def up(self) -> Endpoints:
        """Start the stack, or reuse it if it already runs; return once both servers answer.

        Returns:
            Where the stack answers.

        Raises:
            StackError: `java` or `mvn` is missing, or a server did not come up in time.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            state = self._read_state()
            if state is not None and self._both_alive(state):
                if _kafka_answers(state.endpoints, 10.0) and _questdb_answers(
                    state.endpoints, 10.0
                ):
                    self.progress(f"Reusing the stack already running in {self.dir}.")
                    return state.endpoints
                self.progress("The running stack does not answer; restarting it.")
            if state is not None:
                self._terminate(state)
            return self._start(state)

    def down(self) -> bool:
        """Stop both servers (SIGTERM, then SIGKILL after `stop_timeout`); keep data and logs.

        Returns:
            True if a process was stopped, False if nothing was running.
        """
        if not self.state_file.exists():
            return False
        with self._locked():
            state = self._read_state()
            if state is None:
                return False
            stopped = self._terminate(state)
            self._write_state(
                _State(state.endpoints, state.cluster_id, None, None, state.started_at)
            )
            return stopped

    def status(self, *, probe: bool = True) -> StackStatus:
        """Return whether the stack runs and where it answers.

        Args:
            probe: Also check that both servers answer a query (a second or two at most).
        """
        state = self._read_state()
        if state is None:
            return StackStatus(self.dir, False, False, False, None, None, None)
        kafka_alive = self._alive(state.kafka_pid, self._kafka_marker())
        questdb_alive = self._alive(state.questdb_pid, self._questdb_marker())
        kafka_ok = kafka_alive and (not probe or _kafka_answers(state.endpoints, 3.0))
        questdb_ok = questdb_alive and (not probe or _questdb_answers(state.endpoints, 3.0))
        return StackStatus(
            directory=self.dir,
            running=kafka_ok and questdb_ok,
            kafka_running=kafka_alive,
            questdb_running=questdb_alive,
            endpoints=state.endpoints,
            kafka_pid=state.kafka_pid if kafka_alive else None,
            questdb_pid=state.questdb_pid if questdb_alive else None,
        )

    # -- starting ---------------------------------------------------------------------------

    def _start(self, previous: _State | None) -> Endpoints:
        """Start QuestDB, format Kafka's storage if needed, start Kafka, and wait until both answer.

        The state file is written after each spawn, so a later `down` finds every process that was
        started; on any failure (or Ctrl-C) both are stopped again before the error rises.

        Args:
            previous: The last state, whose ports and Kafka data are reused when still possible.

        Returns:
            Where the stack answers.

        Raises:
            StackError: java or mvn is missing, formatting failed, or a server did not come up.
        """
        java = require_java()
        jars = self.fetch()
        started = time.monotonic()
        endpoints, cluster_id = self._choose_endpoints(previous)
        logs = self.dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.progress(
            f"Starting Kafka {KAFKA_VERSION} and QuestDB {QUESTDB_VERSION} on {HOST} in {self.dir}"
        )

        questdb_pid = self._spawn("questdb", self._questdb_argv(java, jars, endpoints))
        state = _State(endpoints, cluster_id, None, questdb_pid, _utc_now())
        self._write_state(state)
        try:
            self._format_kafka(java, jars, endpoints, cluster_id)
            kafka_pid = self._spawn("kafka", self._kafka_argv(java, jars))
            state = _State(endpoints, cluster_id, kafka_pid, questdb_pid, state.started_at)
            self._write_state(state)
            self._wait_ready(state, started)
        except BaseException:
            self._terminate(state)
            self._write_state(_State(endpoints, cluster_id, None, None, state.started_at))
            raise
        self.progress(f"Stack up in {time.monotonic() - started:.1f} s.")
        return endpoints

    def _choose_endpoints(self, previous: _State | None) -> tuple[Endpoints, str]:
        """Return the ports and Kafka cluster id to start with.

        The previous ones when all its ports are free again (Kafka's data stays usable); else new
        ports, a new cluster id, and Kafka's data folder is wiped.
        """
        # Kafka records the controller's address in its formatted metadata log, so the data
        # folder can only be kept when the previous ports can be taken again.
        if previous is not None and all(_port_free(p) for p in previous.endpoints.ports()):
            return previous.endpoints, previous.cluster_id
        shutil.rmtree(self.dir / "kafka" / "data", ignore_errors=True)
        return Endpoints.allocate(), _new_cluster_id()

    def _spawn(self, name: str, argv: list[str]) -> int:
        """Start one server in its own session, appending its output to `logs/<name>.log`.

        Returns:
            The process id.
        """
        log = self.dir / "logs" / f"{name}.log"
        with log.open("ab") as out:
            out.write(f"\n==== {_utc_now()} {' '.join(argv)}\n".encode())
            out.flush()
            # A new session keeps the servers out of the terminal's Ctrl-C and lets them
            # outlive the `slawatch stack up` process that started them.
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
            )
        self._children[proc.pid] = proc
        return proc.pid

    def _kafka_config(self) -> Path:
        """Return the path of Kafka's rendered `server.properties`."""
        return self.dir / "kafka" / "server.properties"

    def _questdb_root(self) -> Path:
        """Return QuestDB's root folder (its `conf/` and data)."""
        return self.dir / "questdb"

    def _kafka_marker(self) -> str:
        """Return the text that must appear on a live Kafka process's command line."""
        return str(self._kafka_config())

    def _questdb_marker(self) -> str:
        """Return the text that must appear on a live QuestDB process's command line."""
        return str(self._questdb_root())

    def _kafka_argv(self, java: str, jars: Jars) -> list[str]:
        """Return the command line that runs the Kafka broker (KRaft, single node)."""
        return [
            java,
            *KAFKA_JAVA_OPTS,
            f"-Dlog4j2.configurationFile={INFRA_DIR / 'kafka' / 'log4j2.xml'}",
            "-cp",
            jars.kafka_classpath,
            "kafka.Kafka",
            str(self._kafka_config()),
        ]

    def _format_kafka(self, java: str, jars: Jars, endpoints: Endpoints, cluster_id: str) -> None:
        """Write Kafka's configuration and format its storage unless it already is formatted.

        Raises:
            StackError: formatting failed or took over 120 s; the message shows the log's tail.
        """
        data = self.dir / "kafka" / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = render_kafka_config(endpoints, data)
        self._kafka_config().write_text(config, encoding="utf-8")
        if (data / "meta.properties").is_file():
            # Formatted by an earlier `up` with these ports: skip a JVM start (a few seconds).
            return
        argv = [
            java,
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={INFRA_DIR / 'kafka' / 'log4j2.xml'}",
            "-cp",
            jars.kafka_classpath,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            cluster_id,
            "-c",
            str(self._kafka_config()),
            "--ignore-formatted",
        ]
        log = self.dir / "logs" / "kafka.log"
        with log.open("ab") as out:
            try:
                done = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=120,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                message = f"Formatting Kafka's storage took over 120 s; see {log}"
                raise StackError(message) from exc
        if done.returncode != 0:
            message = f"Formatting Kafka's storage failed; see {log}\n{_tail(log)}"
            raise StackError(message)

    def _questdb_argv(self, java: str, jars: Jars, endpoints: Endpoints) -> list[str]:
        """Write QuestDB's `server.conf` and return the command line that runs it."""
        root = self._questdb_root()
        (root / "conf").mkdir(parents=True, exist_ok=True)
        (root / "conf" / "server.conf").write_text(
            render_questdb_config(endpoints), encoding="utf-8"
        )
        return [
            java,
            *QUESTDB_JAVA_OPTS,
            "-p",
            str(jars.questdb_jar),
            "-m",
            "io.questdb/io.questdb.ServerMain",
            "-d",
            str(root),
        ]

    def _wait_ready(self, state: _State, started: float) -> None:
        """Wait until both servers answer, reporting each as it does.

        Raises:
            StackError: a server exited (with its log's tail), or did not answer within
                `start_timeout` seconds of `started`.
        """
        deadline = started + self.start_timeout
        pending = {"Kafka", "QuestDB"}
        while pending:
            for name in sorted(pending):
                pid = state.kafka_pid if name == "Kafka" else state.questdb_pid
                marker = self._kafka_marker() if name == "Kafka" else self._questdb_marker()
                log = self.dir / "logs" / f"{name.lower()}.log"
                if not self._alive(pid, marker):
                    message = f"{name} exited during start-up; see {log}\n{_tail(log)}"
                    raise StackError(message)
                answers = _kafka_answers if name == "Kafka" else _questdb_answers
                if answers(state.endpoints, 2.0):
                    pending.discard(name)
                    self.progress(f"  {name} answers ({time.monotonic() - started:.1f} s)")
            if pending and time.monotonic() > deadline:
                names = " and ".join(sorted(pending))
                logs = self.dir / "logs"
                message = (
                    f"{names} did not answer within {self.start_timeout:.0f} s; see the logs "
                    f"in {logs}"
                )
                raise StackError(message)
            if pending:
                time.sleep(0.25)

    # -- stopping ---------------------------------------------------------------------------

    def _terminate(self, state: _State) -> bool:
        """Stop the stack's live processes: SIGTERM, then SIGKILL after `stop_timeout`.

        Only processes that are still this stack's (`_alive` checks the marker) are signalled.

        Returns:
            True if any process was running.
        """
        targets = [
            pid
            for pid, marker in (
                (state.kafka_pid, self._kafka_marker()),
                (state.questdb_pid, self._questdb_marker()),
            )
            if pid is not None and self._alive(pid, marker)
        ]
        if not targets:
            return False
        markers = {
            state.kafka_pid: self._kafka_marker(),
            state.questdb_pid: self._questdb_marker(),
        }
        for pid in targets:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline and any(
            self._alive(pid, markers[pid]) for pid in targets
        ):
            time.sleep(0.1)
        for pid in targets:
            if self._alive(pid, markers[pid]):
                self.progress(
                    f"Process {pid} ignored SIGTERM for {self.stop_timeout:.0f} s: killing it."
                )
                _signal(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and any(
            self._alive(pid, markers[pid]) for pid in targets
        ):
            time.sleep(0.1)
        for pid in targets:
            self._children.pop(pid, None)
        return True

    def _alive(self, pid: int | None, marker: str) -> bool:
        """Whether `pid` is a live (not zombie) process of this stack.

        The marker (a path inside this stack's folder, found on the command line) guards
        against a recycled pid that now belongs to an unrelated process.
        """
        if pid is None:
            return False
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        proc = Path("/proc") / str(pid)
        if Path("/proc/self").exists():
            try:
                cmdline = (proc / "cmdline").read_bytes()
                stat = (proc / "stat").read_text(encoding="utf-8", errors="replace")
            except OSError:
                return False
            zombie = stat.rpartition(")")[2].split()[:1] == ["Z"]
            return not zombie and marker.encode() in cmdline
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _both_alive(self, state: _State) -> bool:
        """Return whether both recorded processes are alive and belong to this stack."""
        return self._alive(state.kafka_pid, self._kafka_marker()) and self._alive(
            state.questdb_pid, self._questdb_marker()
        )

    # -- state ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold an exclusive lock on the state folder (two `up`s at once start one stack)."""
        with (self.dir / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read_state(self) -> _State | None:
        """Return the recorded state, or None if there is none or it cannot be read (logged)."""
        try:
            return _State.from_json(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            _log.warning("ignoring unreadable %s: %s", self.state_file, exc)
            return None

    def _write_state(self, state: _State) -> None:
        """Write `state.json` atomically (a temporary file, then a rename)."""
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_text(state.to_json(), encoding="utf-8")
        os.replace(tmp, self.state_file)


def running_endpoints(directory: Path | None = None, *, need_questdb: bool = True) -> Endpoints:
    """Return where the running `slawatch stack` in `directory` answers.

    Args:
        directory: the stack's state folder (None: the default folder).
        need_questdb: also require QuestDB to run (False: Kafka alone is enough).

    Returns:
        The stack's endpoints.

    Raises:
        StackError: the stack (or the part needed) does not run; the message says to start it.
    """
    status = Stack(directory=directory).status()
    running = status.running if need_questdb else status.kafka_running
    if not running or status.endpoints is None:
        msg = (
            f"no slawatch stack is running in {status.directory}; start it with "
            "`slawatch stack up` (or give --bootstrap-servers)"
        )
        raise StackError(msg)
    return status.endpoints


def stack_overrides(directory: Path | None = None) -> dict[str, Any]:
    """Return the Kafka and QuestDB addresses of a running `slawatch stack` as settings.

    Args:
        directory: The stack's state folder (None: the default folder).

    Returns:
        `bootstrap_servers`, `questdb_http` and `questdb_pg_port`, ready for `Settings(**...)`.

    Raises:
        StackError: the stack does not run.
    """
    ep = running_endpoints(directory)
    return {
        "bootstrap_servers": ep.bootstrap_servers,
        "questdb_http": ep.questdb_http,
        "questdb_pg_port": ep.questdb_pg_port,
    }
