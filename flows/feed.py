"""A live simulated event stream for the demo: WhatsApp conversations, produced to Kafka.

Conversations arrive at random; customers write, agents are assigned and reply (some too late,
some never), conversations are resolved. Event time is the wall clock, so the live monitor
shows warnings and breaches as they happen. This is a demo feed, not the simulator: it makes no
claim to realistic traffic.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

AGENTS = ("a1", "a2", "a3", "a4")
SOURCES = (None, None, "demo_request", "pricing", "referral", "newsletter")


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """How busy the feed is: new conversations per minute and how often agents are slow.

    Attributes:
        conversations_per_minute: Mean arrival rate (arrivals are a Poisson process).
        slow_reply_share: Share of conversations whose first reply comes after 40-90 s.
        no_reply_share: Share of conversations that get no reply at all (they breach).
        seed: Random seed; the same seed and clock give the same feed.
    """

    conversations_per_minute: float = 30.0
    slow_reply_share: float = 0.3
    no_reply_share: float = 0.1
    seed: int | None = None


def conversation_script(
    conv_id: str, start_ms: int, rng: random.Random, plan: FeedPlan
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (instant, event JSON) for one conversation, in time order.

    The script: `opened` (a random priority, sometimes a lead source), a customer message, an
    assignment to one of `AGENTS` in team `sales`, then (unless it is a no-reply conversation) the
    agent's reply, up to three more exchanges and a resolve. Instants are epoch ms UTC; event ids
    are `<conv_id>-<n>`.

    Args:
        conv_id: The conversation id.
        start_ms: The instant of its first event.
        rng: The feed's random generator (drawn from in script order).
        plan: How slow agents are.
    """
    ids = itertools.count(1)

    def event(at: int, kind: str, **fields: Any) -> tuple[int, dict[str, Any]]:
        """Return one SPEC §1 event of this conversation with the next event id."""
        body: dict[str, Any] = {
            "event_id": f"{conv_id}-{next(ids)}",
            "type": kind,
            "conversation_id": conv_id,
            "occurred_at": at,
        }
        body.update(fields)
        return at, body

    t = start_ms
    source = rng.choice(SOURCES)
    attrs: dict[str, Any] = {"priority": rng.choice(["P1", "P2", "P3", "P3", "P4"])}
    if source is not None:
        attrs["lead_source"] = source
    yield event(t, "conversation", action="opened", **attrs)
    t += rng.randint(200, 2_000)
    yield event(t, "message", direction="inbound", author="customer")
    agent = rng.choice(AGENTS)
    t += rng.randint(1_000, 25_000)
    yield event(t, "assignment", action="assigned", agent_id=agent, team_id="sales")
    roll = rng.random()
    if roll < plan.no_reply_share:
        return
    slow = roll < plan.no_reply_share + plan.slow_reply_share
    t += rng.randint(40_000, 90_000) if slow else rng.randint(3_000, 15_000)
    yield event(t, "message", direction="outbound", author="agent", agent_id=agent)
    for _ in range(rng.randint(0, 3)):
        t += rng.randint(5_000, 30_000)
        yield event(t, "message", direction="inbound", author="customer")
        t += rng.randint(5_000, 70_000)
        yield event(t, "message", direction="outbound", author="agent", agent_id=agent)
    t += rng.randint(5_000, 60_000)
    yield event(t, "conversation", action="resolved", outcome=rng.choice(["answered", "won"]))


def run_feed(
    send: Callable[[str, bytes], None],
    plan: FeedPlan,
    *,
    duration_s: float | None = None,
    now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Send events as their instants come, until `duration_s` passes; return how many.

    Event time follows the wall clock: each event is sent once `now_ms()` reaches its instant, in
    time order, polling every 100 ms.

    Args:
        send: Called with (conversation id as key, event JSON bytes) for each event.
        plan: How busy the feed is.
        duration_s: How long to run; None runs until interrupted.
        now_ms: The wall clock in epoch ms (injected by tests).
        sleep: How to wait between polls (injected by tests).

    Returns:
        The number of events sent.
    """
    rng = random.Random(plan.seed)  # noqa: S311 - a demo, not cryptography
    start = now_ms()
    pending: list[tuple[int, int, dict[str, Any]]] = []
    order = itertools.count()
    next_conv = start
    serial = itertools.count(1)
    sent = 0
    while duration_s is None or now_ms() - start < duration_s * 1000:
        now = now_ms()
        while next_conv <= now:
            conv = f"demo-{start}-{next(serial)}"
            for at, body in conversation_script(conv, next_conv, rng, plan):
                heapq.heappush(pending, (at, next(order), body))
            next_conv += int(rng.expovariate(plan.conversations_per_minute / 60_000))
        while pending and pending[0][0] <= now:
            _, _, body = heapq.heappop(pending)
            send(str(body["conversation_id"]), orjson.dumps(body))
            sent += 1
        sleep(0.1)
    return sent
