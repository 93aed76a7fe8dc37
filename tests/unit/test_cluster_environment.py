"""`slawatch run` takes its process id and peers from Bytewax's Kubernetes variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.cli.monitor import cluster_from_environment
from flows.exceptions import SlawatchError

pytestmark = pytest.mark.unit


def test_pod_ordinal_and_host_file_give_id_and_addresses(tmp_path: Path) -> None:
    """Pod `slawatch-monitor-2` of `slawatch-monitor` is process 2; the host file, the peers."""
    hosts = tmp_path / "hosts"
    hosts.write_text("a-0.svc:9999\na-1.svc:9999\n\na-2.svc:9999\n")
    env = {
        "BYTEWAX_POD_NAME": "slawatch-monitor-2",
        "BYTEWAX_STATEFULSET_NAME": "slawatch-monitor",
        "BYTEWAX_HOSTFILE_PATH": str(hosts),
    }

    assert cluster_from_environment(None, None, env) == (
        2,
        "a-0.svc:9999;a-1.svc:9999;a-2.svc:9999",
    )
    assert cluster_from_environment(0, "x:1;y:2", env) == (0, "x:1;y:2")
    assert cluster_from_environment(None, None, {}) == (None, None)


def test_a_pod_name_without_ordinal_is_refused() -> None:
    """A pod name that is not `<statefulset>-<n>` stops the start-up with one sentence."""
    env = {"BYTEWAX_POD_NAME": "other-pod", "BYTEWAX_STATEFULSET_NAME": "slawatch-monitor"}

    with pytest.raises(SlawatchError, match="is not slawatch-monitor-<ordinal>"):
        cluster_from_environment(None, None, env)
