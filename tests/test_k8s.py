"""infra/k8s: the kustomize manifests parse, agree with each other and with the settings, and
render with kustomize when it is installed (`.ci/run` installs it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.ingest.settings import IngestSettings
from flows.settings import Settings

pytestmark = pytest.mark.unit

K8S = Path(__file__).resolve().parents[1] / "infra" / "k8s"


def _docs() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")) if d]
    return docs


def _one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in _docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _config() -> dict[str, str]:
    lines = (K8S / "config.env").read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_every_manifest_has_kind_name_and_api_version() -> None:
    """Each resource parses and names its apiVersion, kind and metadata.name."""
    docs = _docs()

    assert {d["kind"] for d in docs} >= {"StatefulSet", "Deployment", "Service", "Namespace"}
    assert all(d["apiVersion"] and d["metadata"]["name"] for d in docs)


def test_peers_ids_and_recovery_partitions_agree_with_the_replicas() -> None:
    """The host file lists one peer per replica, in ordinal order, under the headless Service,
    and the recovery store has one partition per process."""
    sts = _one("StatefulSet", "slawatch-monitor")
    replicas, service = sts["spec"]["replicas"], sts["spec"]["serviceName"]
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == "bytewax")
    hosts = (K8S / "hosts").read_text(encoding="utf-8").split()

    assert hosts == [
        f"{sts['metadata']['name']}-{i}.{service}.slawatch.svc.cluster.local:{port}"
        for i in range(replicas)
    ]
    assert _one("Service", service)["spec"]["clusterIP"] == "None"
    assert int(_config()["SLAWATCH_RECOVERY_PARTITIONS"]) == replicas
    env = {e["name"]: e for e in container["env"]}
    assert env["BYTEWAX_STATEFULSET_NAME"]["value"] == sts["metadata"]["name"]
    assert env["BYTEWAX_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_probes_use_the_health_endpoints() -> None:
    """The monitor is live on /healthz and ready on /readyz; ingest on its /healthz."""
    (monitor,) = _one("StatefulSet", "slawatch-monitor")["spec"]["template"]["spec"]["containers"]
    (ingest,) = _one("Deployment", "slawatch-ingest")["spec"]["template"]["spec"]["containers"]

    assert monitor["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert monitor["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert _config()["SLAWATCH_HEALTH_ADDRESS"].endswith(":9108")
    assert ingest["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_config_names_only_real_settings_and_no_secret() -> None:
    """Every key of config.env is a setting of `run` or `ingest`/`act`, and none is a secret."""
    known = {f"SLAWATCH_{n.upper()}" for n in Settings.model_fields} | {
        f"SLAWATCH_INGEST_{n.upper()}" for n in IngestSettings.model_fields
    }
    keys = set(_config())

    assert keys - known == set()
    assert [k for k in keys if re.search("PASSWORD|SECRET|TOKEN", k)] == []


def _kustomize() -> str | None:
    return os.environ.get("SLAWATCH_KUSTOMIZE") or shutil.which(
        "kustomize", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    )


def test_kustomize_renders_the_manifests() -> None:
    """`kustomize build infra/k8s` renders every resource, with the generated ConfigMaps."""
    tool = _kustomize()
    if tool is None:
        pytest.skip("kustomize is not installed: `.ci/run` installs it with `go install`")

    done = subprocess.run(
        [tool, "build", "--load-restrictor", "LoadRestrictionsNone", str(K8S)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    rendered = [d for d in yaml.safe_load_all(done.stdout) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    assert {
        ("StatefulSet", "slawatch-monitor"),
        ("Deployment", "slawatch-ingest"),
        ("Deployment", "slawatch-act"),
    } <= kinds
    assert sum(1 for d in rendered if d["kind"] == "ConfigMap") == 3
    assert all(
        d["metadata"].get("namespace") == "slawatch" for d in rendered if d["kind"] != "Namespace"
    )
