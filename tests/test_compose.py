"""`infra/compose.yaml` for Docker users: it parses and everything it mounts is in the repo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

INFRA = Path(__file__).resolve().parents[1] / "infra"


def _compose() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load((INFRA / "compose.yaml").read_text(encoding="utf-8"))
    return parsed


def _bind_mounts() -> list[tuple[str, str, str]]:
    mounts = []
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                mounts.append((name, source, volume))
    return mounts


def test_compose_runs_the_pinned_images() -> None:
    """The compose file parses and runs Kafka 4.4.0, QuestDB 10.2.0 and Grafana 13.0.0."""
    images = {name: svc["image"] for name, svc in _compose()["services"].items()}

    assert images == {
        "kafka": "apache/kafka:4.4.0",
        "questdb": "questdb/questdb:10.2.0",
        "grafana": "grafana/grafana:13.0.0",
    }


def test_every_mounted_host_path_exists() -> None:
    """Each bind mount's host path exists relative to the compose file."""
    mounts = _bind_mounts()

    assert mounts, "expected the Grafana provisioning folders to be mounted"
    missing = [m for m in mounts if not (INFRA / m[1]).resolve().exists()]
    assert missing == []


def test_grafana_mounts_all_provisioning_folders_read_only() -> None:
    """Grafana gets the datasources, dashboards and alerting folders, each read-only."""
    grafana = [(source, volume) for name, source, volume in _bind_mounts() if name == "grafana"]

    folders = {Path(source).name for source, _ in grafana}
    assert folders == {"datasources", "dashboards", "alerting"}
    assert all(volume.endswith(":ro") for _, volume in grafana)


def test_published_ports_are_loopback_only() -> None:
    """No service publishes a port beyond 127.0.0.1."""
    ports = [p for svc in _compose()["services"].values() for p in svc.get("ports", [])]

    assert ports
    assert all(str(port).startswith("127.0.0.1:") for port in ports)
