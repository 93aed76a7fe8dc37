"""`slawatch stack ...` run as a user would, in subprocesses, against real Kafka and QuestDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flows.devstack import Endpoints, Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def _slawatch(*args: str, stack_dir: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("slawatch")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "flows.cli"]
    env = {**os.environ, "SLAWATCH_STACK_DIR": str(stack_dir)}
    return subprocess.run(
        [*argv, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _status(stack_dir: Path) -> dict[str, Any]:
    done = _slawatch("stack", "status", "--json", stack_dir=stack_dir)
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_status_json_reports_where_the_session_stack_answers(
    local_stack: Stack, stack: Endpoints
) -> None:
    """`status --json` from another process reports the running stack's addresses and ports."""
    status = _status(local_stack.dir)

    assert status["running"] is True
    assert status["kafka"]["bootstrap_servers"] == stack.bootstrap_servers
    assert status["questdb"]["http"] == stack.questdb_http
    assert status["questdb"]["http_port"] == stack.questdb_http_port
    assert status["questdb"]["pg_port"] == stack.questdb_pg_port
    assert status["questdb"]["ilp_tcp_port"] == stack.questdb_ilp_tcp_port
    ports = [
        stack.kafka_port,
        status["kafka"]["controller_port"],
        stack.questdb_http_port,
        stack.questdb_pg_port,
        stack.questdb_ilp_tcp_port,
        status["questdb"]["min_http_port"],
    ]
    assert len(set(ports)) == 6


def test_up_twice_reuses_the_stack_and_down_leaves_nothing_running(tmp_path: Path) -> None:
    """A second `stack up` reuses the running processes, and `stack down` ends both of them."""
    stack_dir = tmp_path / "stack"
    try:
        first = _slawatch("stack", "up", stack_dir=stack_dir)
        assert first.returncode == 0, first.stderr
        before = _status(stack_dir)
        assert before["running"] is True
        pids = [before["kafka"]["pid"], before["questdb"]["pid"]]
        assert all(_running(pid) for pid in pids)

        second = _slawatch("stack", "up", stack_dir=stack_dir)
        assert second.returncode == 0, second.stderr
        assert "Reusing" in second.stderr
        again = _status(stack_dir)
        assert [again["kafka"]["pid"], again["questdb"]["pid"]] == pids
        assert again["kafka"]["bootstrap_servers"] == before["kafka"]["bootstrap_servers"]

        down = _slawatch("stack", "down", stack_dir=stack_dir)
        assert down.returncode == 0, down.stderr
        assert not any(_running(pid) for pid in pids)
        after = _status(stack_dir)
        assert after["running"] is False
        assert after["kafka"]["pid"] is None
        assert after["questdb"]["pid"] is None
    finally:
        _slawatch("stack", "down", stack_dir=stack_dir)
