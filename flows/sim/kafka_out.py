"""Sending simulated events to Kafka, and finding the local stack's broker.

librdkafka's own log lines (connection refused while a broker starts, ...) are kept off the
terminal: a broker that cannot be reached becomes one `SimulationError` sentence instead.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Any

from flows.exceptions import SimulationError
from flows.stack import Stack

_quiet = logging.getLogger("flows.sim.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def stack_bootstrap(directory: Path | None = None) -> str:
    """Return the bootstrap servers of the running `slawatch stack`.

    Raises:
        SimulationError: no stack runs in `directory` (default folder when None).
    """
    status = Stack(directory=directory).status()
    if not status.kafka_running or status.endpoints is None:
        msg = (
            f"no slawatch stack is running in {status.directory}; start it with "
            "`slawatch stack up` (or give --bootstrap-servers)"
        )
        raise SimulationError(msg)
    return status.endpoints.bootstrap_servers


class KafkaSender:
    """A producer that sends `(key, value)` pairs to one topic; use it as a context manager.

    Entering checks that the broker answers within `timeout_s`; leaving flushes and raises if
    any event could not be delivered.
    """

    def __init__(self, bootstrap_servers: str, topic: str, *, timeout_s: float = 10.0) -> None:
        from confluent_kafka import Producer  # noqa: PLC0415 - keep --help free of librdkafka

        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.timeout_s = timeout_s
        self.failed = 0
        self.first_error: str | None = None
        self._producer: Any = Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                "linger.ms": 20,
                "queue.buffering.max.messages": 1_000_000,
                "logger": _quiet,
                "error_cb": self._on_error,
            }
        )

    def _on_error(self, err: Any) -> None:
        if self.first_error is None:
            self.first_error = str(err)

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.failed += 1
            if self.first_error is None:
                self.first_error = str(err)

    def __enter__(self) -> KafkaSender:
        from confluent_kafka import KafkaException  # noqa: PLC0415

        try:
            self._producer.list_topics(timeout=self.timeout_s)
        except KafkaException as exc:
            msg = (
                f"cannot reach Kafka at {self.bootstrap_servers}; start it with "
                "`slawatch stack up` or check --bootstrap-servers"
            )
            raise SimulationError(msg) from exc
        return self

    def send(self, key: str, value: bytes) -> None:
        """Queue one event; wait for room when librdkafka's queue is full."""
        while True:
            try:
                self._producer.produce(
                    self.topic, value=value, key=key, on_delivery=self._on_delivery
                )
            except BufferError:
                self._producer.poll(0.1)
                continue
            self._producer.poll(0)
            return

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        left = self._producer.flush(self.timeout_s)
        if exc_type is None and (left or self.failed):
            msg = (
                f"{left + self.failed} events were not delivered to {self.topic} on "
                f"{self.bootstrap_servers} ({self.first_error or 'timed out'}); check the broker"
            )
            raise SimulationError(msg)
