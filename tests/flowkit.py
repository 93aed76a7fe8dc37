"""Builders for dataflow and live-monitor tests: a seeded chat simulator and short policies."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from flows.core.timefmt import format_instant

#: Policies with targets of minutes, no reassignment, no calendar and an `overload_at` that is
#: never reached: agent loads are counted per worker in the live monitor, so only then do a
#: sharded run and a single engine agree record for record.
SHORT_POLICIES = """\
policies:
  - id: fast
    when: {priority: P1}
    overload_at: 100000
    targets:
      assignment:     {within: 30s}
      first_response: {within: 2m, warn_at: 0.5}
      next_response:  {within: 3m}
      resolution:     {within: 30m, pause_when: [pending]}
    escalations:
      - {on: breached, metric: first_response, notify: supervisor}
  - id: default
    overload_at: 100000
    targets:
      first_response: {within: 5m}
      next_response:  {within: 10m}
      resolution:     {within: 1h}
teams:
  sales: {agents: [a1, a2, a3, a4, a5, a6], supervisor: s1}
"""

#: One policy whose first response is due 3 s after the customer's message.
QUICK_POLICIES = """\
policies:
  - id: quick
    targets:
      first_response: {within: 3s}
"""


def write_policies(directory: Path, text: str = SHORT_POLICIES) -> Path:
    """Write a policy file into `directory` and return its path."""
    path = directory / "policies.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def simulate(
    start_ms: int, conversations: int, *, seed: int = 7, span_s: int = 3600
) -> list[dict[str, Any]]:
    """Return a day-in-the-life of `conversations` chats as event objects sorted by time.

    Each conversation opens (with a random priority), gets customer messages, is assigned to
    one of six agents, gets replies that are sometimes fast and sometimes late, and is often
    resolved; some go pending. Event ids are unique; instants are RFC 3339 strings.
    """
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    counter = 0

    def add(at: int, conv: str, kind: str, **fields: Any) -> None:
        nonlocal counter
        counter += 1
        events.append(
            {
                "event_id": f"s{seed}-{counter}",
                "type": kind,
                "conversation_id": conv,
                "occurred_at": format_instant(at),
                **fields,
            }
        )

    for n in range(conversations):
        conv = f"conv-{seed}-{n}"
        t = start_ms + rng.randrange(span_s * 1000)
        add(t, conv, "conversation", action="opened", priority=rng.choice(["P1", "P2", None]))
        t += rng.randrange(1, 5_000)
        add(t, conv, "message", direction="inbound", author="customer")
        agent = f"a{rng.randrange(1, 7)}"
        if rng.random() < 0.8:
            add(
                t + rng.randrange(1_000, 60_000),
                conv,
                "assignment",
                action="assigned",
                agent_id=agent,
            )
        for _ in range(rng.randrange(1, 4)):
            t += rng.randrange(10_000, 400_000)
            add(t, conv, "message", direction="outbound", author="agent", agent_id=agent)
            if rng.random() < 0.2:
                add(t + 1_000, conv, "conversation", action="updated", status="pending")
            t += rng.randrange(5_000, 200_000)
            add(t, conv, "message", direction="inbound", author="customer")
        if rng.random() < 0.6:
            add(t + rng.randrange(10_000, 900_000), conv, "conversation", action="resolved")
    events.sort(key=lambda e: e["occurred_at"])
    return events


def encode(events: list[dict[str, Any]]) -> list[bytes]:
    """Return the events as Kafka message values (JSON bytes)."""
    return [orjson.dumps(e) for e in events]


def chunks(values: list[bytes], size: int) -> Iterator[list[bytes]]:
    """Yield `values` in consecutive slices of `size`."""
    for i in range(0, len(values), size):
        yield values[i : i + size]
