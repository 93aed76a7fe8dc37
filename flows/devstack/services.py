"""How the stack's two services are configured and probed.

Config files rendered from the `infra/` templates, readiness probes, process signals.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import os
import secrets
import signal
import socket
import string
from pathlib import Path
from typing import Any

from flows.devstack.endpoints import (
    Endpoints,
)
from flows.devstack.jars import INFRA_DIR, KAFKA_VERSION, QUESTDB_VERSION
from flows.exceptions import StackError

KAFKA_JAVA_OPTS = ("-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true")
# From QuestDB's own launch script for Java 17; -XX:+AlwaysPreTouch is left out on purpose
# because it commits the whole heap at once.
QUESTDB_JAVA_OPTS = (
    "-Xms64m",
    "-Xmx512m",
    "-XX:+UseParallelGC",
    "-ea",
    "--add-exports",
    "java.base/jdk.internal.math=io.questdb",
)
QUESTDB_RAM_LIMIT_BYTES = 2 * 1024**3

# librdkafka reports every refused connection while a broker starts; probes expect those.
_librdkafka_log = logging.getLogger(f"{__name__}.librdkafka")
_librdkafka_log.addHandler(logging.NullHandler())
_librdkafka_log.propagate = False


# -- configuration ----------------------------------------------------------------------------


def _render(template: Path, **values: object) -> str:
    """Fill a `string.Template` from the package's `infra/` folder.

    Raises:
        StackError: the template is missing.
        KeyError: the template names a value not given.
    """
    if not template.is_file():
        message = f"The stack's template {template} is missing: run slawatch from a checkout."
        raise StackError(message)
    return string.Template(template.read_text(encoding="utf-8")).substitute(values)


def render_kafka_config(endpoints: Endpoints, data_dir: Path) -> str:
    """Return Kafka's `server.properties` for one loopback node with `data_dir` as `log.dirs`."""
    return _render(
        INFRA_DIR / "kafka" / "server.properties.template",
        kafka_version=KAFKA_VERSION,
        port=endpoints.kafka_port,
        controller_port=endpoints.kafka_controller_port,
        log_dirs=data_dir.resolve(),
    )


def render_questdb_config(endpoints: Endpoints) -> str:
    """Return QuestDB's `server.conf` with every listener on loopback and telemetry off."""
    return _render(
        INFRA_DIR / "questdb" / "server.conf.template",
        questdb_version=QUESTDB_VERSION,
        http_port=endpoints.questdb_http_port,
        min_http_port=endpoints.questdb_min_http_port,
        pg_port=endpoints.questdb_pg_port,
        ilp_tcp_port=endpoints.questdb_ilp_tcp_port,
        ram_limit_bytes=QUESTDB_RAM_LIMIT_BYTES,
    )


# -- probes and helpers -----------------------------------------------------------------------


def _kafka_answers(endpoints: Endpoints, timeout: float) -> bool:
    """Whether the broker answers a metadata request."""
    if not _tcp_open(endpoints.host, endpoints.kafka_port, timeout):
        return False
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415 - only needed here

    config: dict[str, Any] = {
        "bootstrap.servers": endpoints.bootstrap_servers,
        "logger": _librdkafka_log,
    }
    admin = AdminClient(config)
    try:
        admin.list_topics(timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False
    return True


def _questdb_answers(endpoints: Endpoints, timeout: float) -> bool:
    """Whether QuestDB answers `select 1` over HTTP `/exec`."""
    conn = http.client.HTTPConnection(endpoints.host, endpoints.questdb_http_port, timeout=timeout)
    try:
        conn.request("GET", "/exec?query=select%201")
        response = conn.getresponse()
        body = response.read()
    except OSError:
        return False
    finally:
        conn.close()
    if response.status != 200:
        return False
    try:
        return bool(json.loads(body).get("dataset") == [[1]])
    except ValueError:
        return False


def _tcp_open(host: str, port: int, timeout: float) -> bool:
    """Return whether a TCP connection to `host:port` opens within `timeout` (≤ 1 s)."""
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 1.0)):
            return True
    except OSError:
        return False


def _new_cluster_id() -> str:
    """Return a Kafka cluster id: 22 URL-safe base64 characters of 16 random bytes."""
    while True:
        cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        # A leading "-" would be read as an option by StorageTool's argument parser.
        if not cluster_id.startswith("-"):
            return cluster_id


def _signal(pid: int, sig: signal.Signals) -> None:
    """Send `sig` to `pid`; a process that is already gone is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
