"""Kafka administration and plain producing, shared by the monitor, the simulator and tests.

`ensure_topics` creates the monitor's topics; `EventSender` sends `(key, value)` events to one
topic for the simulator and the demo, with librdkafka's own log kept off the terminal and an
unreachable broker turned into one sentence; `log_client_error` is the client-wide error
callback of the monitor's consumers and producers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from flows.exceptions import ConnectorError
from flows.settings import Settings

__all__ = ["EventSender", "ensure_topics", "log_client_error"]

_log = logging.getLogger(__name__)
_quiet = logging.getLogger("flows.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False


def log_client_error(err: KafkaError) -> None:
    """Log a client-wide Kafka error (the client retries by itself unless it is fatal).

    Used as librdkafka's `error_cb` by every consumer and producer of the monitor. It never
    raises: a broker that is down is a warning while librdkafka reconnects, and only a fatal
    error (for instance a fenced idempotent producer) is logged as an error; the consumer or
    producer that hit it reports the failure on its own path.

    Args:
        err: the error librdkafka passed to the callback.
    """
    if err.fatal():
        _log.error("Kafka client error (fatal): %s", err.str())
    else:
        _log.warning("Kafka client error (retrying): %s", err.str())


def wait_for_kafka(
    settings: Settings,
    *,
    poll_s: float = 2.0,
    say_every_s: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Return once Kafka answers a metadata request, saying in the log while it does not.

    The first failed attempt logs one warning naming the address and what to do; it is
    repeated every `say_every_s` while Kafka stays away, and an info line says when it answers.
    Nothing else is started meanwhile, so a monitor started before its broker simply begins
    once the broker is up.

    Args:
        settings: The broker address (and client properties); `settings.kafka_wait` bounds the
            wait (None: no bound).
        poll_s: Seconds each metadata request may take, and between two of them.
        say_every_s: Seconds between two log lines while waiting.
        clock: Monotonic seconds (tests inject their own).

    Returns:
        Whether it had to wait.

    Raises:
        ConnectorError: Kafka did not answer within `settings.kafka_wait`.
    """
    # librdkafka's own log would add a line per failed connection (every few ms): say it once.
    admin = AdminClient({**settings.kafka_common(), "log_level": 0})
    where = settings.kafka_common().get("bootstrap.servers", "?")
    limit = None if settings.kafka_wait is None else settings.kafka_wait.total_seconds()
    started = clock()
    said: float | None = None
    while True:
        try:
            admin.list_topics(timeout=poll_s)
        except KafkaException as exc:
            reason = exc.args[0].str() if isinstance(exc.args[0], KafkaError) else str(exc)
            now = clock()
            if limit is not None and now - started >= limit:
                msg = (
                    f"cannot reach Kafka at {where} ({reason}) after {now - started:.0f} s; "
                    "start it (`slawatch stack up`) or check --bootstrap-servers"
                )
                raise ConnectorError(msg) from exc
            if said is None or now - said >= say_every_s:
                _log.warning(
                    "cannot reach Kafka at %s (%s); waiting for it: start it (`slawatch stack "
                    "up`) or check --bootstrap-servers (SLAWATCH_KAFKA_WAIT bounds the wait)",
                    where,
                    reason,
                )
                said = now
            time.sleep(max(0.0, poll_s - (clock() - now)))
            continue
        if said is not None:
            _log.info("Kafka at %s answers after %.0f s; starting", where, clock() - started)
        return said is not None


def ensure_topics(settings: Settings, partitions: int) -> list[str]:
    """Create the input and output topics that do not exist yet; return the names created.

    The topics are `settings.input_topics`, then the events, actions and dead-letter topics,
    each named once even if two settings name the same topic. Existing topics are left as they
    are (their partition count is not changed), and a topic that another process creates at the
    same time counts as existing, so calling this twice, or from two processes, is safe.

    Args:
        settings: the monitor's settings (broker and topic names).
        partitions: partitions of each topic created; replication follows the broker default.

    Returns:
        The names of the topics this call created, in the order above; empty if all existed.

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

    librdkafka's own log goes to a silent logger, so an unreachable broker shows as one
    `ConnectorError` sentence instead of a stream of retries on the terminal. Events are sent
    in the order `send` is called; Kafka keeps that order per key.

    Args:
        bootstrap_servers: the broker list, `host:port[,host:port...]`.
        topic: the one topic every event goes to.
        timeout_s: how long entering waits for the broker and leaving waits for the flush (s).

    Attributes:
        failed: events whose delivery Kafka reported as failed so far.
        first_error: the first client or delivery error seen, for the message; None if none.
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
        """Check that the broker answers, then return this sender.

        Raises:
            ConnectorError: the broker did not answer within `timeout_s`.
        """
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
        """Queue one event; wait for room when librdkafka's queue is full.

        Delivery is asynchronous: a failure is counted in `failed` and reported when the
        context is left, not here.

        Args:
            key: the Kafka message key (the conversation, so its events stay in order).
            value: the encoded event, sent as is.
        """
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
        """Flush for up to `timeout_s`; raise if an event was not delivered.

        When the block itself raised, its exception goes on unchanged and undelivered events
        are not reported a second time.

        Raises:
            ConnectorError: an event was refused, or still queued when the flush timed out.
        """
        left = self._producer.flush(self.timeout_s)
        if exc_type is None and (left or self.failed):
            msg = (
                f"{left + self.failed} events were not delivered to {self.topic} on "
                f"{self.bootstrap_servers} ({self.first_error or 'timed out'}); check the broker"
            )
            raise ConnectorError(msg)
