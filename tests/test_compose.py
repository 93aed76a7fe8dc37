"""`infra/compose.yaml` for Docker users: valid by the Compose schema, pinned to the tests'
versions, every mount in the repo, secrets only in the env file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from flows.checks import check_all
from flows.devstack.jars import KAFKA_VERSION, QUESTDB_VERSION

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
SLAWATCH_SERVICES = ("monitor", "ingest", "act")


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


def test_compose_file_is_valid_by_the_compose_specification() -> None:
    """The compose file validates against the Compose Specification's JSON Schema (vendored)."""
    schema = json.loads((INFRA / "schema" / "compose-spec.json").read_text(encoding="utf-8"))

    jsonschema.Draft7Validator(schema).validate(_compose())


def test_compose_runs_the_versions_the_tests_run() -> None:
    """Kafka and QuestDB images carry the versions of flows/devstack/jars.py and infra/pom.xml."""
    images = {name: svc.get("image") for name, svc in _compose()["services"].items()}
    pom = (INFRA / "pom.xml").read_text(encoding="utf-8")

    assert images["kafka"] == f"apache/kafka:{KAFKA_VERSION}"
    assert images["questdb"] == f"questdb/questdb:{QUESTDB_VERSION}"
    assert f"<kafka.version>{KAFKA_VERSION}</kafka.version>" in pom
    assert f"<questdb.version>{QUESTDB_VERSION}</questdb.version>" in pom
    assert images["grafana"] == "grafana/grafana:13.0.0"


def test_slawatch_services_are_built_checked_restarted_and_configured() -> None:
    """monitor, ingest and act run the image with a healthcheck, a restart policy, the env
    file, and only after the `check` service passed."""
    services = _compose()["services"]

    for name in SLAWATCH_SERVICES:
        svc = services[name]
        assert (REPO / "infra" / svc["build"]["context"] / svc["build"]["dockerfile"]).exists()
        assert svc["healthcheck"]["test"][0] == "CMD"
        assert svc["restart"] == "unless-stopped"
        assert svc["env_file"] == [{"path": "slawatch.env", "required": True}]
        assert svc["depends_on"]["check"] == {"condition": "service_completed_successfully"}
    assert services["check"]["command"] == ["check", "--offline"]


def test_recovery_state_and_act_ledger_live_on_volumes() -> None:
    """The monitor's recovery store and act's ledger are under named volumes."""
    compose = _compose()
    monitor, act = compose["services"]["monitor"], compose["services"]["act"]

    assert monitor["environment"]["SLAWATCH_RECOVERY_DIR"].startswith("/var/lib/slawatch/")
    assert "monitor-state:/var/lib/slawatch" in monitor["volumes"]
    assert act["environment"]["SLAWATCH_INGEST_ACT_LEDGER"].startswith("/var/lib/slawatch/")
    assert "act-state:/var/lib/slawatch" in act["volumes"]
    assert {"monitor-state", "act-state"} <= set(compose["volumes"])


def test_no_secret_is_written_in_the_compose_file() -> None:
    """No service sets a password, secret or token itself: they come from slawatch.env."""
    keys = [
        key for svc in _compose()["services"].values() for key in (svc.get("environment") or {})
    ]

    assert keys
    assert [k for k in keys if any(w in k for w in ("PASSWORD", "SECRET", "TOKEN"))] == []


def test_the_example_env_file_cannot_start_the_stack_unchanged() -> None:
    """Every secret of slawatch.env.example is a CHANGE-ME that `slawatch check` refuses."""
    example = {}
    for line in (INFRA / "slawatch.env.example").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            example[key] = value
    secret_keys = [k for k in example if any(w in k for w in ("PASSWORD", "SECRET", "TOKEN"))]

    problems = check_all([REPO / "examples" / "policies.yaml"], offline=True, environ=example)

    refused = {p.message.split()[0] for p in problems if p.area == "secrets"}
    assert secret_keys and set(secret_keys) <= refused


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
