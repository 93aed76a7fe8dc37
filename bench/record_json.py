"""CPU cost of serialising output records for Kafka: `RecordEncoder` against the dict path.

The records are what the engine emits: `bench.monitor_bench.generate`'s events (the monitor
bench's input) replayed through `flows.replay.replay_records`, plus every worked example of
docs/SEMANTICS.md (all record kinds: SLA with causes, attempts and budgets, actions and
recoveries, CSAT, handle, dead letters). Both paths serialise the same records in the same
process, alternating, best of REPEATS; the bytes are compared first (they must be identical).
Run: `.venv/bin/python bench/record_json.py [EVENTS] [REPEATS]`.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flows.core.policies import load_policies  # noqa: E402
from flows.core.records import Record, RecordEncoder, to_json_dict  # noqa: E402
from flows.core.timefmt import format_instant  # noqa: E402
from flows.replay import replay_records  # noqa: E402

EXAMPLES = REPO / "docs" / "examples" / "semantics"
EMITTED_AT = 1_795_000_123_456
BATCH = 500


def example_records() -> list[Record]:
    """Return the records of every SEMANTICS example, replayed to a week after its last event."""
    out: list[Record] = []
    for folder in sorted(EXAMPLES.iterdir()):
        events = folder / "events.jsonl"
        if not events.is_file():
            continue
        lines = events.read_bytes().splitlines()
        policies = load_policies(folder / "policies.yaml")
        replayed = list(replay_records(lines, policies, source=folder.name, max_future_ms=None))
        out += replayed
        instants = [r.at for r in replayed if hasattr(r, "at")]
        if instants:  # and on to a week later: the windows, deadlines and follow-ups fire too
            week = max(instants) + 7 * 86_400_000
            out += list(replay_records(lines, policies, until=week, max_future_ms=None))
    return out


def bench_records(events: int) -> list[Record]:
    """Return the records of `events` events of the monitor bench's generator."""
    from bench.monitor_bench import DEFAULT_POLICIES, generate  # noqa: PLC0415 - heavy imports

    lines = [value for _key, value in generate(events, max(events // 8, 1), EMITTED_AT)]
    return list(replay_records(lines, load_policies(DEFAULT_POLICIES), max_future_ms=None))


def old_path(records: list[Record], emitted: str) -> list[bytes]:
    """The sink before `RecordEncoder`: a dict per record, then orjson."""
    dumps = orjson.dumps
    return [dumps(to_json_dict(r, emitted)) for r in records]


def new_path(
    records: list[Record], emitted: str, encoder: RecordEncoder | None = None
) -> list[bytes]:
    """The sink now: one encoder per producer (here per run), each record encoded once."""
    encode = (encoder or RecordEncoder()).encode
    return [encode(r, emitted) for r in records]


def timed(path: Callable[..., list[bytes]], records: list[Record]) -> float:
    """Process CPU seconds to serialise `records` in batches of BATCH (one `emitted_at` each)."""
    extra = (RecordEncoder(),) if path is new_path else ()
    began = time.process_time()
    for start in range(0, len(records), BATCH):
        path(records[start : start + BATCH], format_instant(EMITTED_AT + start), *extra)
    return time.process_time() - began


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    records = bench_records(events) + example_records()
    emitted = format_instant(EMITTED_AT)
    same = old_path(records, emitted) == new_path(records, emitted)
    kinds = sorted({type(r).__name__ for r in records})
    print(f"{platform.node()} | Python {platform.python_version()} | {len(records):,} records "
          f"({', '.join(kinds)}) from {events:,} bench events and the SEMANTICS examples; "
          f"bytes identical: {same}")  # fmt: skip
    if not same:
        sys.exit("RecordEncoder's bytes differ from to_json_dict + orjson")
    old = new = float("inf")
    for _ in range(repeats):
        old = min(old, timed(old_path, records))
        new = min(new, timed(new_path, records))
    n = len(records)
    print(f"to_json_dict + orjson.dumps: {old * 1e6 / n:.2f} µs/record")
    print(f"RecordEncoder:               {new * 1e6 / n:.2f} µs/record")
    print(f"ratio old / new: {old / new:.2f}x (best of {repeats}, same process, alternating)")


if __name__ == "__main__":
    main()
