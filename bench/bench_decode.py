"""Micro-benchmark of the input decoders and the output instant formatter (µs per call).

Run: `.venv/bin/python bench/bench_decode.py`. Reports the best of 7 runs, so a busy machine
inflates the numbers less; the two decoders are timed in alternation within each run, so a
spell of load hits both alike.

Decoders: `decode_event` (orjson, then checks by hand) and `decode_fast` (msgspec into a
`Struct`, falling back to `decode_event` when unsure), on

* the hand-written examples below, one at a time (the rejection falls back, by design);
* the realistic stream: two simulated days of the default business (`flows.sim`), stamped with
  RFC 3339 instants as `slawatch simulate` sends them to Kafka, decoded with `now` as
  `decode_fetch` does. Both decoders are first checked to agree on every event.
"""

from __future__ import annotations

import os
import platform
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

import orjson

from flows.core.decode import decode_event
from flows.core.events import Event, Rejected
from flows.core.fastdecode import decode_fast
from flows.core.timefmt import format_instant, parse_instant
from flows.sim.business import Business
from flows.sim.simulator import DAY, Simulator, Timeline, stamp_body

EVENTS = {
    "message, RFC 3339 Z": b'{"event_id":"e1","type":"message","conversation_id":"c1",'
    b'"occurred_at":"2026-11-23T10:00:00Z","direction":"inbound","author":"customer",'
    b'"text":"hi there, I would like a demo of the product next week"}',
    "message, epoch ms": b'{"event_id":"e2","type":"message","conversation_id":"c1",'
    b'"occurred_at":1795428000000,"direction":"outbound","author":"agent","agent_id":"a1",'
    b'"message_id":"wamid.HBgLMTIzNDU2Nzg5MBUCABIYFjNFQjA"}',
    "message, as simulated": b'{"event_id":"sim3-000001-2","type":"message",'
    b'"conversation_id":"sim3-000001","occurred_at":"2026-11-23T00:01:36.072Z",'
    b'"direction":"inbound","author":"customer","kind":"text"}',
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
REPEAT = 7
SIM_SEED = 3
SIM_START = parse_instant("2026-11-23T00:00:00Z")
SIM_DAYS = 2

Decoder = Callable[..., Event | Rejected]


def best(stmt: str, setup: str = "pass", **names: object) -> float:
    """Return the best µs per call of `stmt` over 7 runs of `N` calls."""
    return min(timeit.repeat(stmt, setup, globals=names, number=N, repeat=REPEAT)) / N * 1e6


def machine() -> str:
    """Return the CPU model, cores, load and Python this run measured on."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    load = "/".join(f"{value:.1f}" for value in os.getloadavg())
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{model}, {os.cpu_count()} cores, load {load}, {python} ({sys.platform})"


def simulated() -> list[bytes]:
    """Return the realistic stream: the simulator's events as the live simulator sends them."""
    stream = Simulator(Business(), seed=SIM_SEED).events(SIM_START, SIM_START + SIM_DAYS * DAY)
    timeline = Timeline(SIM_START, SIM_START)
    return [orjson.dumps(stamp_body(event.body, timeline)) for event in stream]


def alternate(raws: list[bytes], now: int, decoders: dict[str, Decoder]) -> dict[str, float]:
    """Return each decoder's best µs per event over `raws`, timed in alternation."""
    times: dict[str, list[float]] = {name: [] for name in decoders}
    for _ in range(REPEAT):
        for name, decode in decoders.items():
            times[name].append(
                min(
                    timeit.repeat(
                        "for raw in raws: decode(raw, now=now)",
                        globals={"raws": raws, "decode": decode, "now": now},
                        number=1,
                        repeat=3,
                    )
                )
            )
    return {name: min(runs) / len(raws) * 1e6 for name, runs in times.items()}


def main() -> None:
    """Print the machine, then one line per measurement."""
    print(f"machine: {machine()}")
    for name, raw in EVENTS.items():
        assert decode_fast(raw) == decode_event(raw), name
        old = best("f(x)", f=decode_event, x=raw)
        new = best("f(x)", f=decode_fast, x=raw)
        print(
            f"decode {name:<30} decode_event {old:6.2f} µs  decode_fast {new:6.2f} µs  "
            f"ratio {old / new:4.2f}x"
        )
    raws = simulated()
    now = SIM_START + SIM_DAYS * DAY
    for raw in raws:
        assert decode_fast(raw, now=now) == decode_event(raw, now=now), raw
    kinds: dict[str, int] = {}
    for raw in raws:
        kind = orjson.loads(raw)["type"]
        kinds[kind] = kinds.get(kind, 0) + 1
    mean = sum(map(len, raws)) / len(raws)
    shares = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    print(
        f"inputs: {len(raws)} simulated events (seed {SIM_SEED}, {SIM_DAYS} days, default "
        f"business: {shares}), {mean:.0f} bytes on average, identical results on all"
    )
    per_event = alternate(raws, now, {"decode_event": decode_event, "decode_fast": decode_fast})
    old, new = per_event["decode_event"], per_event["decode_fast"]
    print(
        f"decode simulated stream, per event   decode_event {old:6.2f} µs  "
        f"decode_fast {new:6.2f} µs  ratio {old / new:4.2f}x"
    )
    for text in ("2026-11-23T10:00:00Z", "2026-11-23T17:00:00.123+07:00"):
        print(f"parse_instant  {text:<30} {best('f(x)', f=parse_instant, x=text):6.2f} µs")
    print(
        f"format_instant {'same minute':<30} {best('f(1795428000123)', f=format_instant):6.2f} µs"
    )
    advancing = best("f(x); x += 997", "x = 1795428000123", f=format_instant)
    print(f"format_instant {'advancing ~1 s per call':<30} {advancing:6.2f} µs")


if __name__ == "__main__":
    main()
