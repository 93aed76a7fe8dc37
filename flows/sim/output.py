"""Where simulated events go: a JSONL file as fast as possible, or a live sender in (scaled) time.

Both take the simulator's stream in delivery order and a `Timeline`; both count what they
wrote in a `SimSummary`, printed as one line on stderr by the CLI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

import orjson

from flows.core.timefmt import format_instant
from flows.sim.simulator import SimEvent, Timeline, stamp_body


@dataclass(slots=True)
class SimSummary:
    """What one simulator run produced.

    Attributes:
        events: Events written or sent, duplicates included.
        duplicates: Second deliveries of an event (same `event_id`).
        late: Events delivered at least a second after they occurred.
        first: The earliest output `occurred_at`, epoch ms UTC.
        last: The latest output `occurred_at`, epoch ms UTC.
    """

    events: int = 0
    duplicates: int = 0
    late: int = 0
    first: int | None = None
    last: int | None = None

    def add(self, event: SimEvent, at: int) -> None:
        """Count one written event whose output `occurred_at` is `at`."""
        self.events += 1
        self.duplicates += event.duplicate
        self.late += event.late
        if self.first is None or at < self.first:
            self.first = at
        if self.last is None or at > self.last:
            self.last = at

    def line(self, conversations: int, where: str) -> str:
        """Return the one-line human summary.

        Args:
            conversations: Conversations the simulator generated.
            where: Where the events went (a file, standard output, a topic).
        """
        span = (
            f" from {format_instant(self.first)} to {format_instant(self.last)}"
            if self.first is not None and self.last is not None
            else ""
        )
        return (
            f"simulated {conversations} conversations: {self.events} events{span} "
            f"({self.late} delivered late, {self.duplicates} delivered twice) to {where}"
        )


def write_jsonl(stream: Iterable[SimEvent], out: BinaryIO, timeline: Timeline) -> SimSummary:
    """Write every event of `stream` as one JSON line, in delivery order, without waiting.

    Instants are mapped through `timeline` and written as RFC 3339 UTC.

    Args:
        stream: The simulator's events in delivery order.
        out: The binary stream written to; not flushed or closed.
        timeline: Maps simulated to output instants.

    Returns:
        What was written.
    """
    summary = SimSummary()
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    for event in stream:
        body = stamp_body(event.body, timeline)
        out.write(dumps(body, option=newline))
        summary.add(event, timeline(event.occurred_at))
    return summary


def send_live(
    stream: Iterable[SimEvent],
    send: Callable[[str, bytes], None],
    timeline: Timeline,
    *,
    now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    sleep: Callable[[float], None] = time.sleep,
) -> SimSummary:
    """Send each event, keyed by conversation, when its delivery instant comes on `timeline`.

    The timeline should be anchored at the wall clock, so `occurred_at` is never in the future when
    sent. Runs until the stream ends (or forever, for an endless stream).

    Args:
        stream: The simulator's events in delivery order.
        send: Called with (conversation id, event JSON bytes).
        timeline: Maps simulated to output instants (and thus to wall time).
        now_ms: The wall clock in epoch ms (injected by tests).
        sleep: How to wait, in seconds (injected by tests).

    Returns:
        What was sent.
    """
    summary = SimSummary()
    dumps = orjson.dumps
    for event in stream:
        due = timeline(event.deliver_at)
        wait = due - now_ms()
        if wait > 0:
            sleep(wait / 1000)
        body = stamp_body(event.body, timeline)
        send(body["conversation_id"], dumps(body))
        summary.add(event, timeline(event.occurred_at))
    return summary
