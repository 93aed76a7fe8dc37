"""Run the golden scenarios on whichever SLA core this process imports, and write their records.

`python -m tests.pathkit MODE OUT [SNAPSHOT]` is run in subprocesses by
tests/unit/test_compiled_core.py, once with the compiled modules and once with `SLAWATCH_PURE=1`,
so that the two paths' outputs can be compared byte for byte. Every record is written as the
Kafka sink publishes it (`to_json_dict` + orjson, with a fixed `emitted_at`), one per line,
each scenario introduced by a `# name` line.

Modes:
  records   the docs/SEMANTICS.md examples (replayed as `slawatch replay` does), then seeded
            late-delivery scenarios of tests/latekit.py (every event kind, fetch batches with
            duplicates, the watermark trailing by the lateness), then the bench's generated
            conversations;
  first     the first half of each snapshot scenario; writes its records to OUT and the engines'
            snapshots (`dump_engine`) to SNAPSHOT;
  rest      loads SNAPSHOT (written by `first`, maybe on the other path) and writes the records
            of the second half;
  whole     both halves without a snapshot, for reference.
"""

from __future__ import annotations

import pickle
import random
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path

import orjson

from flows.core import native
from flows.core.engine import Engine
from flows.core.events import Event
from flows.core.policies import load_policies
from flows.core.records import Record, to_json_dict
from flows.core.snapshot import dump_engine, load_engine
from flows.core.timefmt import parse_instant
from flows.replay import replay_records
from tests.latekit import GAPS, HORIZON_MS, KINDS, PSET, deliver_late, feed, in_time_order

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples" / "semantics"
EMITTED_AT = 1_800_000_000_000
UNTIL_MS = 1_800_000_000_000
SEEDS = range(40)
SNAPSHOT_SEEDS = range(12)


def lines(records: Iterable[object]) -> list[bytes]:
    """The records as the Kafka sink serialises them."""
    return [orjson.dumps(to_json_dict(r, EMITTED_AT)) for r in records]  # type: ignore[arg-type]


def late_scenario(seed: int) -> list[Event]:
    """A seeded draw like latekit's `scenario`: 1-4 conversations of 1-40 (kind, gap) steps."""
    rng = random.Random(seed)
    convs = [
        [(rng.choice(KINDS), rng.choice(GAPS)) for _ in range(rng.randint(1, 40))]
        for _ in range(rng.randint(1, 4))
    ]
    return deliver_late(in_time_order(convs), seed, share=rng.choice((0.05, 0.3, 1.0)))


def semantics_examples() -> Iterable[tuple[str, list[bytes]]]:
    """The worked examples, replayed with the options of their stored command."""
    for folder in sorted(p for p in EXAMPLES.iterdir() if (p / "events.jsonl").is_file()):
        args = shlex.split((folder / "expected.txt").read_text().split("\n", 1)[0])[3:]
        options = dict(zip(args[1::2], args[2::2], strict=False))
        policies = load_policies(folder / options.get("--policies", "policies.yaml"))
        events = (folder / args[0]).read_bytes().splitlines()
        until = options.get("--until")
        records = replay_records(
            events,
            policies,
            until=None if until is None else parse_instant(until),
            max_future_ms=None,
        )
        yield folder.name, lines(records)


def bench_conversations() -> list[bytes]:
    """The bench's generated SPEC events (opened, replies on time / late / never, resolves)."""
    from bench.monitor_bench import DEFAULT_POLICIES, generate  # noqa: PLC0415

    values = generate(6_000, 1_500, UNTIL_MS - 3_600_000, seed=5)
    return lines(
        replay_records(
            (value for _, value in values),
            load_policies(DEFAULT_POLICIES),
            now_ms=UNTIL_MS,
            until=UNTIL_MS,
            max_future_ms=None,
        )
    )


def write(out: Path, sections: Iterable[tuple[str, list[bytes]]]) -> None:
    """Write each section's name line and record lines."""
    with out.open("wb") as fh:
        fh.write(f"# compiled={int(native.compiled())}\n".encode())
        for name, records in sections:
            fh.write(f"# {name}\n".encode())
            fh.writelines(line + b"\n" for line in records)


def records_mode() -> Iterable[tuple[str, list[bytes]]]:
    """Every scenario of the `records` mode."""
    yield from semantics_examples()
    for seed in SEEDS:
        engine = Engine(PSET, horizon_ms=HORIZON_MS)
        records, _ = feed(engine, late_scenario(seed), random.Random(seed), None)
        records += engine.process([], UNTIL_MS)
        yield f"late-{seed}", lines(records)
    yield "bench", bench_conversations()


def halves(seed: int) -> tuple[list[Event], list[Event]]:
    """A snapshot scenario cut in two at the middle of its delivery order."""
    events = late_scenario(1_000 + seed)
    return events[: len(events) // 2], events[len(events) // 2 :]


def main(argv: list[str]) -> None:
    """Run one mode (see the module docstring)."""
    mode, out = argv[0], Path(argv[1])
    if mode == "records":
        write(out, records_mode())
        return
    sections = []
    snapshots: dict[int, tuple[bytes, int | None, object]] = {}
    if mode == "rest":
        snapshots = pickle.loads(Path(argv[2]).read_bytes())  # noqa: S301 - written by `first`
    for seed in SNAPSHOT_SEEDS:
        first, rest = halves(seed)
        rng = random.Random(seed)
        if mode == "rest":
            blob, top, state = snapshots[seed]
            engine = load_engine(blob, PSET)
            rng.setstate(state)  # type: ignore[arg-type]
            records: list[Record] = []
        else:
            engine = Engine(PSET, horizon_ms=HORIZON_MS)
            records, top = feed(engine, first, rng, None)
            if mode == "first":
                snapshots[seed] = (dump_engine(engine), top, rng.getstate())
        if mode in ("rest", "whole"):
            more, _ = feed(engine, rest, rng, top)
            records += more + engine.process([], UNTIL_MS)
        sections.append((f"snapshot-{seed}", lines(records)))
    write(out, sections)
    if mode == "first":
        Path(argv[2]).write_bytes(pickle.dumps(snapshots))


if __name__ == "__main__":
    main(sys.argv[1:])
