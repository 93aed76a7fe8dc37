"""The local stack's configuration and CLI behaviour that needs no running services."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from flows.cli import main
from flows.devstack import Endpoints, Stack
from flows.devstack.services import render_kafka_config, render_questdb_config
from flows.exceptions import StackError

pytestmark = pytest.mark.unit

ENDPOINTS = Endpoints(19092, 19093, 19000, 18812, 19009, 19003)


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key.strip(): value.strip() for key, value in pairs}


def test_kafka_config_listens_on_loopback_only(tmp_path: Path) -> None:
    """Kafka's rendered config binds broker and controller to 127.0.0.1 on the chosen ports."""
    props = _properties(render_kafka_config(ENDPOINTS, tmp_path))

    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == props["listeners"]
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert props["log.dirs"] == str(tmp_path.resolve())
    assert props["offsets.topic.num.partitions"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["log.cleaner.dedupe.buffer.size"] == str(16 * 1024 * 1024)


def test_questdb_config_binds_every_listener_to_loopback_with_telemetry_off() -> None:
    """QuestDB's rendered config puts HTTP, min-HTTP, PG and ILP-TCP on 127.0.0.1, no telemetry."""
    props = _properties(render_questdb_config(ENDPOINTS))

    binds = {key: value for key, value in props.items() if key.endswith("bind.to")}
    assert binds == {
        "http.net.bind.to": "127.0.0.1:19000",
        "http.min.net.bind.to": "127.0.0.1:19003",
        "pg.net.bind.to": "127.0.0.1:18812",
        "line.tcp.net.bind.to": "127.0.0.1:19009",
    }
    assert props["line.udp.enabled"] == "false"
    assert props["telemetry.enabled"] == "false"


def test_allocated_ports_are_distinct() -> None:
    """The six ports picked for a new stack are all different."""
    assert len(set(Endpoints.allocate().ports())) == 6


def test_missing_java_is_one_sentence_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without `java` on PATH, `up` fails with a StackError telling what to install."""
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(StackError, match=r"needs Java 17 or newer: install .*java"):
        Stack(tmp_path / "stack", cache_dir=tmp_path / "cache").up()


def test_missing_maven_is_reported_by_the_cli_with_exit_status_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stack fetch` without `mvn` prints one `Error:` line naming Maven and exits with 1."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("SLAWATCH_CACHE_DIR", str(tmp_path / "cache"))

    result = CliRunner().invoke(main, ["stack", "--dir", str(tmp_path / "stack"), "fetch"])

    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert re.match(r"Error: .*Maven.*install it", lines[0])


def test_status_json_of_a_never_started_stack_says_not_running(tmp_path: Path) -> None:
    """`status --json` on an empty folder reports `running: false` and no endpoints."""
    result = CliRunner().invoke(main, ["stack", "--dir", str(tmp_path), "status", "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "running": False,
        "dir": str(tmp_path.resolve()),
        "kafka": None,
        "questdb": None,
    }


def test_an_installed_package_carries_the_service_templates(tmp_path: Path) -> None:
    """A wheel of slawatch ships the infra files `slawatch stack` needs outside a checkout."""
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(repo)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("slawatch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "flows/devstack/infra/pom.xml",
        "flows/devstack/infra/kafka/server.properties.template",
        "flows/devstack/infra/kafka/log4j2.xml",
        "flows/devstack/infra/questdb/server.conf.template",
    ):
        assert needed in names
