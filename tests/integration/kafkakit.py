"""A Kafka broker of one test, which the test may stop and start again on the same data and ports.

The session's stack may be shared with other test runs (`SLAWATCH_TEST_STACK_DIR`), and every
later test holds its addresses, so a test that restarts Kafka runs this broker of its own: the
same jars and `server.properties` template as the stack, one KRaft node on loopback.
"""

from __future__ import annotations

import base64
import secrets
import subprocess
import time
import uuid
from pathlib import Path
from typing import IO

from confluent_kafka import Consumer, KafkaException, Message
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from flows.devstack import Endpoints
from flows.devstack.jars import INFRA_DIR, Jars, require_java
from flows.devstack.services import KAFKA_JAVA_OPTS, render_kafka_config
from tests.waitkit import scaled, wait_until


def create_topic(
    admin: AdminClient,
    partitions: int = 1,
    *,
    prefix: str = "test",
    config: dict[str, str] | None = None,
) -> str:
    """Create a topic with a unique name and wait until each partition has a leader.

    Returns:
        The topic's name.
    """
    name = f"{prefix}-{uuid.uuid4()}"
    new = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
    admin.create_topics([new], operation_timeout=scaled(30))[name].result(timeout=scaled(60))

    def leaders() -> dict[int, int] | None:
        topic = admin.list_topics(name, timeout=scaled(10)).topics.get(name)
        if topic is None or topic.error is not None:
            return None
        return {p.id: p.leader for p in topic.partitions.values()}

    # Producing right after creation can race the partitions' leader election.
    wait_until(
        leaders,
        lambda found: found is not None and len(found) == partitions and min(found.values()) >= 0,
        timeout=30,
        what=f"a leader for each of the {partitions} partitions of {name}",
        show=lambda found: f"partition leaders {found}",
        retry=(KafkaException,),
    )
    return name


class DedicatedKafka:
    """One Kafka node (broker and controller) in `root`, on ports of its own."""

    def __init__(self, root: Path, jars: Jars) -> None:
        self.root = root
        self.jars = jars
        self.java = require_java()
        self.endpoints = Endpoints.allocate()
        self.config = root / "server.properties"
        self.log_path = root / "kafka.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(render_kafka_config(self.endpoints, root / "data"), encoding="utf-8")
        cluster_id = "-"
        while cluster_id.startswith("-"):  # StorageTool would read a leading "-" as an option
            cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        with self.log_path.open("ab") as out:
            subprocess.run(
                [*self._java(), "kafka.tools.StorageTool", "format", "--standalone",
                 "-t", cluster_id, "-c", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                timeout=scaled(120), check=True,
            )  # fmt: skip

    @property
    def bootstrap_servers(self) -> str:
        """The broker's `bootstrap.servers`."""
        return self.endpoints.bootstrap_servers

    def _java(self) -> list[str]:
        log4j = INFRA_DIR / "kafka" / "log4j2.xml"
        return [self.java, *KAFKA_JAVA_OPTS, f"-Dlog4j2.configurationFile={log4j}",
                "-cp", self.jars.kafka_classpath]  # fmt: skip

    def start(self, timeout: float = 120) -> None:
        """Start the broker and wait until it answers a metadata request with itself in it."""
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*self._java(), "kafka.Kafka", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})

        def metadata() -> ClusterMetadata:
            return admin.list_topics(timeout=5)

        wait_until(
            metadata,
            lambda meta: bool(meta.brokers),
            timeout=timeout,
            what=f"the dedicated Kafka at {self.bootstrap_servers} answers",
            show=lambda meta: f"brokers {meta.brokers}",
            check=self._check_alive,
            retry=(KafkaException,),
            every=0.25,
        )

    def _check_alive(self) -> None:
        assert self.proc is not None
        code = self.proc.poll()
        if code is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            message = f"the dedicated Kafka exited with {code}; log tail:\n{tail}"
            raise AssertionError(message)

    def stop(self) -> None:
        """Stop the broker as an operator would (SIGTERM: a controlled shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(scaled(60))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


def consume_at_least(
    consumer: Consumer, count: int, *, timeout: float, what: str, settle_s: float = 0.0
) -> list[Message]:
    """Consume until `count` messages have come, then for `settle_s` more; return them all.

    The settling time lets messages beyond `count` show up, for tests that assert there are
    none. A message that carries an error fails the test with that error.
    """
    got: list[Message] = []

    def probe() -> list[Message]:
        for msg in consumer.consume(500, 0.2):
            assert msg.error() is None, msg.error()
            got.append(msg)
        return got

    wait_until(
        probe,
        lambda messages: len(messages) >= count,
        timeout=timeout,
        what=f"{count} messages: {what}",
        show=lambda messages: f"{len(messages)} messages, the last: {_values(messages[-3:])}",
        every=0,
        every_max=0,
    )
    end = time.monotonic() + settle_s
    while time.monotonic() < end:
        probe()
    return got


def _values(messages: list[Message]) -> list[bytes]:
    return [(msg.value() or b"")[:200] for msg in messages]
