"""Micro-benchmark of the input decoder and the output instant formatter (µs per call).

Run: `.venv/bin/python bench/bench_decode.py`. Reports the best of 7 runs, so a busy machine
inflates the numbers less.
"""

from __future__ import annotations

import timeit

from flows.core.decode import decode_event
from flows.core.timefmt import format_instant, parse_instant

EVENTS = {
    "message, RFC 3339 Z": b'{"event_id":"e1","type":"message","conversation_id":"c1",'
    b'"occurred_at":"2026-11-23T10:00:00Z","direction":"inbound","author":"customer",'
    b'"text":"hi there, I would like a demo of the product next week"}',
    "message, epoch ms": b'{"event_id":"e2","type":"message","conversation_id":"c1",'
    b'"occurred_at":1795428000000,"direction":"outbound","author":"agent","agent_id":"a1",'
    b'"message_id":"wamid.HBgLMTIzNDU2Nzg5MBUCABIYFjNFQjA"}',
    "conversation opened, +07:00": b'{"event_id":"e3","type":"conversation",'
    b'"conversation_id":"c1","occurred_at":"2026-11-23T17:00:00.123+07:00","action":"opened",'
    b'"priority":"P1","tags":["x","y"],"segment":null,"lead_source":"pricing"}',
    "assignment": b'{"event_id":"e4","type":"assignment","conversation_id":"c1",'
    b'"occurred_at":1795428000000,"action":"assigned","agent_id":"a1","role":"sdr"}',
    "activity": b'{"event_id":"e5","type":"activity","conversation_id":"c1",'
    b'"occurred_at":"2026-11-23T10:00:00Z","kind":"call","agent_id":"a1","outcome":"connected"}',
    "rejected: missing agent_id": b'{"event_id":"e6","type":"activity","conversation_id":"c1",'
    b'"occurred_at":"2026-11-23T10:00:00Z","kind":"call"}',
}
N = 200_000


def best(stmt: str, setup: str = "pass", **names: object) -> float:
    """Return the best µs per call of `stmt` over 7 runs of `N` calls."""
    return min(timeit.repeat(stmt, setup, globals=names, number=N, repeat=7)) / N * 1e6


def main() -> None:
    """Print one line per measurement."""
    for name, raw in EVENTS.items():
        assert decode_event(raw)
        print(f"decode_event   {name:<30} {best('f(x)', f=decode_event, x=raw):6.2f} µs")
    for text in ("2026-11-23T10:00:00Z", "2026-11-23T17:00:00.123+07:00"):
        print(f"parse_instant  {text:<30} {best('f(x)', f=parse_instant, x=text):6.2f} µs")
    print(
        f"format_instant {'same minute':<30} {best('f(1795428000123)', f=format_instant):6.2f} µs"
    )
    advancing = best("f(x); x += 997", "x = 1795428000123", f=format_instant)
    print(f"format_instant {'advancing ~1 s per call':<30} {advancing:6.2f} µs")


if __name__ == "__main__":
    main()
