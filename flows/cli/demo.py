"""`slawatch demo`: the first five minutes, in one command (`make demo`).

Starts the local stack, backfills a simulated week of history into QuestDB (so every view has
something to show), starts the live monitor with seconds-scale demo policies (its log goes to a
file, never to the terminal), sends simulated traffic live at 60x, and opens `slawatch top`,
where clocks turn yellow and red within the first minute. Ctrl-C stops the simulator and the
monitor and exits 0; the stack keeps running for the next demo (`slawatch stack down`).
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import click

from flows.devstack import Endpoints, Stack, default_cache_dir
from flows.exceptions import SlawatchError

#: Where the demo keeps its files: logs, the simulated week, the monitor's recovery store.
_FOLDER = "demo"
_INPUT_TOPIC = "wa.events"
_DEMO_POLICIES = Path("examples/demo-policies.yaml")
_HISTORY_POLICIES = Path("examples/policies.yaml")
_DEMO_BUSINESS = Path("examples/demo-business.yaml")
_TRY_SQL = """\
  SELECT metric, status, count() FROM sla_clocks GROUP BY metric, status;
  SELECT * FROM sla_events WHERE status = 'breached' ORDER BY at DESC LIMIT 20;
Grafana (wallboard, scorecard, trends, alerts) with Docker:
  cp infra/slawatch.env.example infra/slawatch.env   # then set its secrets
  docker compose -f infra/compose.yaml up
Opening the live wallboard (Ctrl-C or q stops the demo)...
"""


def _slawatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "flows.cli", *args]


def _start(argv: Sequence[str], log: IO[bytes], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A session of its own: the terminal's Ctrl-C reaches `top` only; the demo stops the rest.
    return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        list(argv), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _fresh_input_topic(endpoints: Endpoints) -> None:
    """Delete the demo's input topic so a new demo does not replay the previous one's events."""
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415 - keep --help light

    admin = AdminClient({"bootstrap.servers": endpoints.bootstrap_servers})
    if _INPUT_TOPIC in admin.list_topics(timeout=30).topics:
        for future in admin.delete_topics([_INPUT_TOPIC], operation_timeout=30).values():
            future.result(timeout=60)
        time.sleep(2)  # Kafka finishes deleting in the background


def _need(path: Path) -> Path:
    if not path.is_file():
        msg = f"{path} is missing: run `make demo` from the root of a slawatch checkout"
        raise SlawatchError(msg)
    return path


def _watch(argv: Sequence[str], env: dict[str, str]) -> None:
    """Run the live view until it ends or the user presses Ctrl-C (or q).

    On a terminal, Ctrl-C is read as a key instead of raising SIGINT: SIGINT would also reach
    `make`, which then exits 130 whatever the demo does; this way `make demo` ends with 0.
    """
    fd = sys.stdin.fileno() if sys.stdin is not None else -1
    if fd < 0 or not os.isatty(fd):
        subprocess.run(list(argv), env=env, check=False)  # noqa: S603
        return
    saved = termios.tcgetattr(fd)
    quiet = termios.tcgetattr(fd)
    quiet[3] &= ~(termios.ISIG | termios.ICANON | termios.ECHO)
    view = subprocess.Popen(list(argv), env=env)  # noqa: S603
    try:
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
        while view.poll() is None:
            ready, _, _ = select.select([fd], [], [], 0.5)
            # b"": the terminal is gone (closed window, ssh dropped).
            if ready and os.read(fd, 1) in (b"\x03", b"q", b"Q", b""):
                break
    finally:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSANOW, saved)
        if view.poll() is None:
            # SIGINT to the view alone: it leaves the screen as it found it.
            view.send_signal(signal.SIGINT)
            try:
                view.wait(timeout=10)
            except subprocess.TimeoutExpired:
                view.kill()
                view.wait()


@click.command()
@click.option("--days", default=7.0, show_default=True, help="Days of simulated history first.")
@click.option("--speed", default=60.0, show_default=True, help="Live traffic speed-up.")
@click.option("--seed", default=1, show_default=True, help="Random seed of the traffic.")
def demo(*, days: float, speed: float, seed: int) -> None:
    """Run the demo: stack, a week of history, the live monitor and simulator, `slawatch top`."""
    policies, history_policies, business = (
        _need(_DEMO_POLICIES),
        _need(_HISTORY_POLICIES),
        _need(_DEMO_BUSINESS),
    )
    folder = default_cache_dir() / _FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    stack = Stack(progress=lambda message: click.echo(message, err=True))
    endpoints = stack.up()
    _fresh_input_topic(endpoints)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    week = folder / "history.jsonl"
    click.echo(f"Simulating {days:g} days of history and loading it into QuestDB...", err=True)
    subprocess.run(  # noqa: S603
        _slawatch("simulate", "--days", f"{days:g}", "--seed", str(seed), "--output", str(week)),
        check=True,
        env=env,
    )
    subprocess.run(  # noqa: S603
        _slawatch("backfill", str(week), "--policies", str(history_policies), "--from-stack"),
        check=True,
        env=env,
    )

    recovery = folder / "recovery"
    shutil.rmtree(recovery, ignore_errors=True)
    monitor_log = (folder / "monitor.log").open("wb")
    sim_log = (folder / "simulator.log").open("wb")
    monitor_env = {**env, "SLAWATCH_POLICIES": str(policies), "SLAWATCH_LATENESS": "2s"}
    monitor = simulator = None
    # The monitor and simulator run in sessions of their own, so a closed terminal (SIGHUP) or
    # a `kill` (SIGTERM) must stop them through the `finally` below, as Ctrl-C does.
    for signum in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, _interrupted)
    try:
        monitor = _start(
            _slawatch("run", "--from-stack", "--create-topics", "4", "-r", str(recovery)),
            monitor_log,
            monitor_env,
        )
        time.sleep(5)
        if monitor.poll() is not None:
            msg = f"the monitor stopped at start-up; see {monitor_log.name}"
            raise SlawatchError(msg)
        simulator = _start(
            # Another seed than the history's: conversation ids must not collide with it.
            _slawatch("simulate", "--business", str(business), "--from-stack",
                      "--speed", f"{speed:g}", "--seed", str(seed + 1)),
            sim_log,
            env,
        )  # fmt: skip
        where = f"monitor log {monitor_log.name}, simulator log {sim_log.name}"
        click.echo(f"\nslawatch is running: {where}.", err=True)
        click.echo(f"QuestDB console: http://{endpoints.questdb_http}  — try\n{_TRY_SQL}", err=True)
        time.sleep(2)
        _watch(_slawatch("top", "--from-stack"), env)
    except KeyboardInterrupt:
        pass
    finally:
        _stop(simulator)
        _stop(monitor)
        monitor_log.close()
        sim_log.close()
    click.echo("Demo stopped; the stack keeps running (`slawatch stack down` stops it).", err=True)
