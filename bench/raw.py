"""The raw ceiling: a plain confluent-kafka consumer + orjson decode of the bench's own events.

Nothing of slawatch runs: one consumer is assigned every partition of the input topic from the
beginning and calls `consume(10000)` and `orjson.loads` on each value until it has read all the
events. Its events/s (wall clock, librdkafka's fetch threads included) is the ceiling that the
other figures are measured against, in the same session on the same machine.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Final

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

#: Fetch up to 10 MB per partition instead of librdkafka's 1 MB: what a tuned reader gains.
LARGE_FETCHES: Final[dict[str, str | int]] = {"max.partition.fetch.bytes": 10_485_760}


@dataclass(frozen=True, slots=True)
class RawRun:
    """One pass of the raw consumer over a topic."""

    events: int
    seconds: float

    @property
    def eps(self) -> float:
        """Events per wall second."""
        return self.events / self.seconds if self.seconds > 0 else float("nan")


def raw_ceiling(
    bootstrap: str,
    topic: str,
    partitions: int,
    events: int,
    *,
    config: dict[str, str | int] | None = None,
    timeout_s: float = 120.0,
) -> RawRun:
    """Read the `events` values of `topic` from the beginning, decoding each; time it.

    `config` adds consumer settings to librdkafka's defaults
    (the plain ceiling uses none, as the monitor's own consumers do).

    The clock starts once the first fetch is decoded, and that fetch is not counted
    (connection and assignment excluded, as the monitor's window also starts at its first
    heartbeat).

    Raises:
        RuntimeError: Fewer than `events` values were read within `timeout_s`.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-raw-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            **(config or {}),
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    loads = orjson.loads
    read = 0
    first: float | None = None
    untimed = 0
    deadline = time.monotonic() + timeout_s
    try:
        while read < events:
            if time.monotonic() > deadline:
                msg = f"the raw consumer read {read} of {events} events in {timeout_s:.0f} s"
                raise RuntimeError(msg)
            # Never ask for more than is left: consume() would wait out its timeout.
            batch = consumer.consume(min(10_000, events - read), 0.5)
            if not batch:
                continue
            for message in batch:
                if message.error() is None:
                    loads(message.value())
                    read += 1
            if first is None:
                first = time.perf_counter()
                untimed = read
        took = time.perf_counter() - (first if first is not None else time.perf_counter())
    finally:
        consumer.close()
    return RawRun(read - untimed, took)
