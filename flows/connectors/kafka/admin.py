"""Kafka administration and plain producing, shared by the monitor, the simulator and tests.

`ensure_topics` creates the monitor's topics; `EventSender` sends `(key, value)` events to one
topic for the simulator and the demo, with librdkafka's own log kept off the terminal and an
unreachable broker turned into one sentence; `log_client_error` is the client-wide error
callback of the monitor's consumers and producers.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from flows.exceptions import ConnectorError
from flows.settings import Settings

__all__ = ["EventSender", "ensure_topics", "log_client_error"]

_log = logging.getLogger(__name__)
_quiet = logging.getLogger("flows.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def log_client_error(err: KafkaError) -> None:
    """Log a client-wide Kafka error (the client retries by itself unless it is fatal)."""
    if err.fatal():
        _log.error("Kafka client error (fatal): %s", err.str())
    else:
        _log.warning("Kafka client error (retrying): %s", err.str())


def ensure_topics(settings: Settings, partitions: int) -> list[str]:
    """Create the input and output topics that do not exist yet; return the names created.

    Raises:
        ConnectorError: Kafka refused to create a topic.
    """
    admin = AdminClient(settings.kafka_common())
    existing = set(admin.list_topics(timeout=30).topics)
    wanted = [
        *settings.input_topics,
        settings.events_topic,
        settings.actions_topic,
        settings.deadletter_topic,
    ]
    missing = [name for name in dict.fromkeys(wanted) if name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=-1) for name in missing],
        operation_timeout=30,
    )
    for name, future in futures.items():
        try:
            future.result(timeout=60)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                msg = f"cannot create topic {name!r}: {exc}"
                raise ConnectorError(msg) from exc
    return missing


class EventSender:
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

    def __enter__(self) -> EventSender:
        from confluent_kafka import KafkaException  # noqa: PLC0415

        try:
            self._producer.list_topics(timeout=self.timeout_s)
        except KafkaException as exc:
            msg = (
                f"cannot reach Kafka at {self.bootstrap_servers}; start it with "
                "`slawatch stack up` or check --bootstrap-servers"
            )
            raise ConnectorError(msg) from exc
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
            raise ConnectorError(msg)
