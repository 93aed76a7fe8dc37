"""infra/k8s's monitor StatefulSet run for real on one machine: N `slawatch run` processes.

(And the rendered manifests checked against Kubernetes' own JSON schemas, the last test.)

The layout is read from the manifests, not restated: the replicas, the StatefulSet's name, the
container's environment (`BYTEWAX_POD_NAME` from the pod's name, `BYTEWAX_STATEFULSET_NAME`,
`BYTEWAX_HOSTFILE_PATH`), `config.env` (shards, recovery partitions), the volume mounts, and
the init container's script, run as it is with `sh`. Each pod is a folder: every mount path is
mapped to a folder of that pod (its state volume and `/tmp` are its own; the policies and hosts
ConfigMaps are shared). What one machine cannot give is replaced, and only that: each pod's DNS
name in `hosts` becomes `127.0.0.1` with a free port, in the same ordinal order (three processes
cannot all listen on 9999 of one host), and the health address gets a free port too. Kafka is
the test stack, QuestDB is left out (its deduplication is tested in `test_faults`), and three
intervals are shortened for a test of a minute: snapshots every 1 s instead of 30 s (so there is
one to resume from before the kill), heartbeats every 250 ms (the kill is timed on them), and
fetches of 100 messages instead of 5,000 (so the backlog is still being read when the kill comes).

What is compared, and why it is exact: the *set* of records on the events, actions and dead-letter
topics, each without its wall-clock `emitted_at`. Kafka output is at-least-once: a process that
resumes from its last snapshot sends again what it emitted after it, and those repeats are the
same records (a record is a function of the events and the snapshotted state) but for
`emitted_at`; the set counts each once. It is stronger than the last record per clock, since
every intermediate record (started, warning, breached, paused, met...) must be there too; and
the reference run sends each record once (asserted), so its set is all it sent. The reference is
one process without recovery, reading the default 5,000-message fetches: records must not depend
on batching, processes or restarts (STYLE 10).

A Bytewax cluster does not survive the loss of one process: its peers exit on their own (Bytewax
panics when a peer's connection drops). The test checks that they do exit, since a peer that hung
would keep answering `/healthz` and Kubernetes would never restart it, then starts every pod
again as the kubelet does (init container, then `slawatch run`), with the same ids, addresses and
recovery folders.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from flows.core.timefmt import parse_instant
from flows.devstack import Endpoints
from flows.ingest.app import free_port
from tests.flowkit import SHORT_POLICIES, encode, simulate
from tests.integration.monitorkit import (
    Json,
    Monitor,
    TopicReader,
    conversation_key,
    now_ms,
    produce,
    stop_all,
)
from tests.test_k8s import _kustomize
from tests.waitkit import scaled, wait_until

K8S = Path(__file__).resolve().parents[2] / "infra" / "k8s"
INPUT_PARTITIONS = 4
#: ~78,000 events over 4 hours of chats, 8 hours ago: a backlog that three processes reading
#: small fetches have not finished 2.5 s after their first records, even on an idle machine
#: (with 500-message fetches one CI run on a quiet machine had read it all by then).
CONVERSATIONS = 10_000
#: Settings the test shortens (see the module docstring); each is also given to the reference.
TEST_INTERVALS = {
    "SLAWATCH_SNAPSHOT_INTERVAL": "1s",
    "SLAWATCH_HEARTBEAT_INTERVAL": "250ms",
}
CLUSTER_FETCH = "100"


@dataclass(frozen=True, slots=True)
class PodSpec:
    """What the manifests say about one monitor pod, independent of its ordinal."""

    statefulset: str
    replicas: int
    bytewax_port: int
    config: dict[str, str]
    env: list[dict[str, Any]]
    mounts: dict[str, str]
    """Volume name -> mount path, over the init and the monitor containers."""
    init_script: str


def _statefulset_spec() -> PodSpec:
    docs = [d for d in yaml.safe_load_all((K8S / "monitor.yaml").read_text(encoding="utf-8")) if d]
    (sts,) = [d for d in docs if d["kind"] == "StatefulSet"]
    pod = sts["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    (monitor,) = pod["containers"]
    assert init["command"][:2] == ["sh", "-c"]
    assert monitor["args"] == ["run"]
    config_refs = [e["configMapRef"]["name"] for e in monitor["envFrom"] if "configMapRef" in e]
    assert config_refs == ["slawatch-config"]
    lines = (K8S / "config.env").read_text(encoding="utf-8").splitlines()
    config = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    mounts = {m["name"]: m["mountPath"] for c in (init, monitor) for m in c["volumeMounts"]}
    port = next(p["containerPort"] for p in monitor["ports"] if p["name"] == "bytewax")
    return PodSpec(
        statefulset=sts["metadata"]["name"],
        replicas=sts["spec"]["replicas"],
        bytewax_port=port,
        config=config,
        env=monitor["env"],
        mounts=mounts,
        init_script=init["command"][2],
    )


class Pod:
    """One ordinal of the StatefulSet on this machine: its folders, environment and process."""

    def __init__(
        self, spec: PodSpec, ordinal: int, root: Path, shared: dict[str, Path], env: dict[str, str]
    ) -> None:
        self.name = f"{spec.statefulset}-{ordinal}"
        self.root = root / self.name
        # Volumes of the pod's own (its PVC, its emptyDir) and the ConfigMaps every pod shares.
        volumes = {name: shared.get(name, self.root / name) for name in spec.mounts}
        for folder in volumes.values():
            folder.mkdir(parents=True, exist_ok=True)
        self.tmp = volumes["tmp"]
        self.mounted = {spec.mounts[name]: folder for name, folder in volumes.items()}
        pod_env = {**spec.config, **env}
        for var in spec.env:
            if "value" in var:
                pod_env[var["name"]] = var["value"]
            else:
                assert var["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}, var
                pod_env[var["name"]] = self.name
        self.env = {key: self.local(value) for key, value in pod_env.items()}
        self.spec = spec
        self.monitor: Monitor | None = None
        self.lives: list[Monitor] = []

    def local(self, value: str) -> str:
        """Rewrite a path under one of the pod's mount paths to the folder standing for it."""
        for mount, folder in self.mounted.items():
            if value == mount or value.startswith(f"{mount}/"):
                return str(folder) + value[len(mount) :]
        return value

    @property
    def recovery(self) -> Path:
        """The pod's recovery folder (`SLAWATCH_RECOVERY_DIR` on its state volume)."""
        return Path(self.env["SLAWATCH_RECOVERY_DIR"])

    def start(self, workdir: Path) -> Monitor:
        """Start the pod as the kubelet does: the init container to its end, then the monitor."""
        # The image's PATH has the venv's `python` first; here it is this interpreter's folder.
        bin_dir = str(Path(sys.executable).parent)
        init_env = {
            **os.environ,
            **self.env,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "TMPDIR": str(self.tmp),  # mktemp's /tmp: the pod's own emptyDir
        }
        done = subprocess.run(
            ["sh", "-c", self.spec.init_script],  # noqa: S607 - the manifest's own command
            env=init_env,
            capture_output=True,
            text=True,
            timeout=scaled(60),
            check=False,
        )
        assert done.returncode == 0, f"init container of {self.name}: {done.stderr}"
        self.monitor = Monitor(workdir, self.env).start()
        self.lives.append(self.monitor)
        return self.monitor


def _canonical(record: Json) -> bytes:
    return orjson.dumps(
        {k: v for k, v in record.items() if k != "emitted_at"}, option=orjson.OPT_SORT_KEYS
    )


class Outputs:
    """Readers of one run's output topics from the start, counting each distinct record."""

    def __init__(self, bootstrap: str, topics: dict[str, str]) -> None:
        names = ("events_topic", "actions_topic", "deadletter_topic")
        self.readers = [TopicReader(bootstrap, topics[name]) for name in names]
        self.seen: Counter[bytes] = Counter()
        self._counted = [0] * len(self.readers)

    def poll(self, seconds: float = 0.2) -> Counter[bytes]:
        """Read what came meanwhile; return how often each record (sans `emitted_at`) came."""
        for i, reader in enumerate(self.readers):
            reader.poll(seconds / len(self.readers))
            for record in reader.records[self._counted[i] :]:
                self.seen[_canonical(record)] += 1
            self._counted[i] = len(reader.records)
        return self.seen

    def close(self) -> None:
        for reader in self.readers:
            reader.close()


def _difference(got: set[bytes], want: set[bytes]) -> str:
    missing, extra = sorted(want - got), sorted(got - want)
    return (
        f"{len(got)} distinct records of {len(want)}; {len(missing)} missing (e.g. "
        f"{[m[:240] for m in missing[:3]]}), {len(extra)} not in the single-process run "
        f"(e.g. {[e[:240] for e in extra[:3]]})"
    )


@pytest.fixture
def run_topics(make_topic: Callable[..., str]) -> Callable[[], dict[str, str]]:
    def make() -> dict[str, str]:
        return {
            "input_topics": make_topic(INPUT_PARTITIONS, prefix="in"),
            "events_topic": make_topic(2, prefix="events"),
            "actions_topic": make_topic(1, prefix="actions"),
            "deadletter_topic": make_topic(1, prefix="dead"),
        }

    return make


@pytest.fixture
def started() -> Iterator[list[Monitor]]:
    monitors: list[Monitor] = []
    yield monitors
    stop_all(monitors)


def _settings(stack: Endpoints, topics: dict[str, str]) -> dict[str, str]:
    """The test's replacements for what only a cluster has: Kafka, QuestDB, topics."""
    return {
        "SLAWATCH_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
        "SLAWATCH_INGEST_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
        "SLAWATCH_QUESTDB_HTTP": "",
        **TEST_INTERVALS,
        **{f"SLAWATCH_{key.upper()}": value for key, value in topics.items()},
    }


def _reference(
    tmp_path: Path,
    stack: Endpoints,
    spec: PodSpec,
    topics: dict[str, str],
    values: list[bytes],
    policies: Path,
    started: list[Monitor],
) -> set[bytes]:
    """Run one `slawatch run` (no recovery) over the backlog to its end; return its records."""
    produce(stack.bootstrap_servers, topics["input_topics"], values, key_of=conversation_key)
    env = {
        **spec.config,
        **_settings(stack, topics),
        "SLAWATCH_POLICIES": str(policies),
        "SLAWATCH_HEALTH_ADDRESS": "",
    }
    del env["SLAWATCH_RECOVERY_DIR"]
    monitor = Monitor(tmp_path, env).start()
    started.append(monitor)
    caught_up = monitor.wait_heartbeat(
        lambda b: b["lag_ms"] is not None and b["lag_ms"] < 30_000, timeout=120, what="caught up"
    )
    # A heartbeat a second after catching up counts every record: nothing more is due.
    final = monitor.wait_heartbeat(
        lambda b: parse_instant(b["at"]) >= parse_instant(caught_up["at"]) + 2_500,
        what="a second after catching up",
    )
    out = Outputs(stack.bootstrap_servers, topics)
    try:
        wait_until(
            out.poll,
            lambda seen: seen.total() >= final["records_out"],
            timeout=60,
            what=f"the reference's {final['records_out']} records on Kafka",
            show=lambda seen: f"{seen.total()} records",
            check=monitor.check_alive,
            every=0,
            every_max=0,
        )
        time.sleep(1)
        counted = out.poll(0.5)
    finally:
        out.close()
    monitor.stop()
    assert counted.total() == final["records_out"], (counted.total(), final)
    assert max(counted.values()) == 1, "the reference sent a record twice"
    return set(counted)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_statefulset_layout_with_a_kill_9_ends_with_the_single_process_records(
    tmp_path: Path,
    stack: Endpoints,
    run_topics: Callable[[], dict[str, str]],
    started: list[Monitor],
) -> None:
    """N processes laid out as the StatefulSet, one killed and all restarted, send exactly the
    records of one process."""
    began = time.monotonic()
    spec = _statefulset_spec()
    n = spec.replicas
    assert spec.config["SLAWATCH_RECOVERY_PARTITIONS"] == str(n)
    values = encode(simulate(now_ms() - 8 * 3_600_000, CONVERSATIONS, span_s=4 * 3600))

    shared = {"policies": tmp_path / "policies", "hosts": tmp_path / "hosts"}
    for folder in shared.values():
        folder.mkdir()
    # The policies ConfigMap holds the test's policies: agent loads are counted per worker, so
    # only policies that never reach `overload_at` nor reassign give one truth for any layout.
    (shared["policies"] / "policies.yaml").write_text(SHORT_POLICIES, encoding="utf-8")
    policies = shared["policies"] / "policies.yaml"

    want = _reference(tmp_path, stack, spec, run_topics(), values, policies, started)
    reference_s = time.monotonic() - began
    statuses = Counter(orjson.loads(r).get("status") for r in want)
    assert statuses["breached"] > 100 and statuses["met"] > 100, statuses

    # The hosts ConfigMap: line i names pod i; here it is 127.0.0.1 and a port of its own.
    lines = (K8S / "hosts").read_text(encoding="utf-8").split()
    assert len(lines) == n
    for i, line in enumerate(lines):
        assert line.startswith(f"{spec.statefulset}-{i}.") and line.endswith(
            f":{spec.bytewax_port}"
        ), line
    (shared["hosts"] / "hosts").write_text(
        "".join(f"127.0.0.1:{free_port()}\n" for _ in lines), encoding="utf-8"
    )

    topics = run_topics()
    produce(stack.bootstrap_servers, topics["input_topics"], values, key_of=conversation_key)
    cluster = {**_settings(stack, topics), "SLAWATCH_FETCH_MAX_MESSAGES": CLUSTER_FETCH}
    pods = []
    for k in range(n):
        env = {**cluster, "SLAWATCH_HEALTH_ADDRESS": f"127.0.0.1:{free_port()}"}
        pods.append(Pod(spec, k, tmp_path / "pods", shared, env))
    for pod in pods:
        started.append(pod.start(tmp_path))

    victim = pods[1]
    assert victim.monitor is not None
    first = victim.monitor.wait_heartbeat(
        lambda b: b["records_out"] > 0, timeout=120, what="with records out"
    )
    # Two snapshot intervals of the flow's own time later, a snapshot covers those records.
    beat = victim.monitor.wait_heartbeat(
        lambda b: parse_instant(b["at"]) >= parse_instant(first["at"]) + 2_500,
        timeout=60,
        what="2.5 s after the first records",
    )
    assert beat["lag_ms"] is None or beat["lag_ms"] > 600_000, (
        f"the backlog was read before the kill (lag {beat['lag_ms']} ms): raise CONVERSATIONS"
    )
    victim.monitor.kill()
    peers = [p for p in pods if p is not victim]
    codes = wait_until(
        lambda: [p.monitor.proc.poll() for p in peers if p.monitor and p.monitor.proc],
        lambda found: None not in found,
        timeout=60,
        what="the peers of the killed process exit on their own",
    )

    out = Outputs(stack.bootstrap_servers, topics)
    try:
        before_kill = out.poll(1.0).total()
        for k, pod in enumerate(pods):
            # The state volume kept the pod's partition; the init container leaves it be.
            assert [p.name for p in pod.recovery.glob("part-*.sqlite3")] == [f"part-{k}.sqlite3"]
            started.append(pod.start(tmp_path))

        def alive() -> None:
            for pod in pods:
                assert pod.monitor is not None
                pod.monitor.check_alive()

        wait_until(
            lambda: set(out.poll()),
            lambda got: got == want,
            timeout=120,
            what="the restarted cluster's records equal the single process's",
            show=lambda got: _difference(got, want),
            check=alive,
            every=0,
            every_max=0,
        )
        time.sleep(2)
        got = Counter(out.poll(1.0))
    finally:
        out.close()
    assert set(got) == want, _difference(set(got), want)
    repeats = got.total() - len(got)
    # Resumed from a snapshot, not from the start: not all of the first life was sent again.
    assert repeats < before_kill, (repeats, before_kill)

    # Each process took the id of its pod's ordinal, and every one is ready again.
    for k, pod in enumerate(pods):
        assert pod.monitor is not None
        assert {b["worker"] for b in pod.monitor.heartbeats()} == {str(k)}
        url = f"http://{pod.env['SLAWATCH_HEALTH_ADDRESS']}/readyz"
        wait_until(
            lambda url=url: _status(url),
            lambda status: status == 200,
            timeout=60,
            what=f"{pod.name} answers /readyz with 200",
            check=alive,
        )
    print(
        f"\nCLUSTER processes={n} peer_exit_codes={codes} events={len(values)} records={len(want)} "
        f"first_life_sent={before_kill} resent={repeats} reference_s={reference_s:.1f} "
        f"total_s={time.monotonic() - began:.1f}"
    )


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.TransportError:
        return None


#: Kubernetes releases the manifests must be valid for: the oldest one supported in late 2026
#: and the newest the schemas package has.
KUBERNETES_VERSIONS = ("1.33.0", "latest")


@pytest.mark.unit
def test_manifests_are_valid_objects_of_the_kubernetes_api() -> None:
    """Every rendered resource passes Kubernetes' JSON schemas, strictly (no unknown field)."""
    kv = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate (PyPI, Kubernetes' JSON schemas) is not installed",
    )
    tool = _kustomize()
    if tool is not None:
        done = subprocess.run(
            [tool, "build", "--load-restrictor", "LoadRestrictionsNone", str(K8S)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    else:  # the resources as written: everything but the generated ConfigMaps
        kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
        docs = [
            d
            for name in kustomization["resources"]
            for d in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8"))
            if d
        ]
    assert len(docs) >= 7
    problems = []
    for version in KUBERNETES_VERSIONS:
        release = kv.latest_version() if version == "latest" else version
        for doc in docs:
            try:
                kv.validate(doc, release, strict=True)
            except kv.ValidationError as exc:
                name = f"{doc['kind']}/{doc['metadata']['name']}"
                problems.append(f"{name} on {release}: {exc.message} at {list(exc.path)}")
    assert problems == []
