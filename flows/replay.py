"""`slawatch replay`: the engine over a JSONL file, with no services (SPEC §7).

The watermark is the largest event time seen minus the allowed lateness; at the end it moves to
`until` (default: the largest event time), so every clock due by then fires. Bad lines become
dead letters with `file:line` as their source. Output is deterministic apart from `emitted_at`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import orjson

from flows.core.decode import MAX_FUTURE_MS as DEFAULT_MAX_FUTURE_MS
from flows.core.decode import decode_event
from flows.core.engine import DEFAULT_HORIZON_MS, Engine
from flows.core.events import Rejected
from flows.core.model import PolicySet
from flows.core.records import (
    ActionRecord,
    CsatRecord,
    HandleRecord,
    Record,
    SlaRecord,
    dead_letter,
    to_json_dict,
)
from flows.core.timefmt import format_instant
from flows.wallclock import now_ms as wall_now_ms


@dataclass(slots=True)
class ReplaySummary:
    """Counts of one replay, printed as a single line on stderr.

    Attributes:
        events: Valid events read.
        dead_letters: Lines rejected and events too late to correct.
        records: SLA records emitted.
        actions: Action records emitted.
        csat: CSAT records emitted (surveys sent and rated).
        handle: Handle records emitted (counted handle segments).
        statuses: SLA records per status.
        until: The final watermark (epoch ms UTC), None for an empty file.
    """

    events: int = 0
    dead_letters: int = 0
    records: int = 0
    actions: int = 0
    csat: int = 0
    handle: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    until: int | None = None

    def line(self) -> str:
        """Return the one-line human summary.

        E.g. "replayed 9 events (0 dead letters) up to 2026-11-23T09:30:00.000Z: 12 SLA records
        (breached 1, met 3, started 4, …), 0 actions"; statuses are sorted by name.
        """
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()))
        until = format_instant(self.until) if self.until is not None else "-"
        return (
            f"replayed {self.events} events ({self.dead_letters} dead letters) up to {until}: "
            f"{self.records} SLA records ({parts or 'none'}), {self.actions} actions"
            + (f", {self.csat} CSAT records" if self.csat else "")
            + (f", {self.handle} handle records" if self.handle else "")
        )


def replay_records(
    lines: Iterable[bytes],
    policies: PolicySet,
    *,
    source: str = "<stdin>",
    until: int | None = None,
    lateness_ms: int = 5_000,
    horizon_ms: int = DEFAULT_HORIZON_MS,
    max_future_ms: int | None = DEFAULT_MAX_FUTURE_MS,
    now_ms: int | None = None,
    summary: ReplaySummary | None = None,
) -> Iterator[Record]:
    """Yield every record of SPEC §6 produced by replaying `lines` (JSONL, one event each).

    Records come lazily, in the order the engine emits them: each line's records before the next
    line is read. The watermark after each event is the largest event time so far minus
    `lateness_ms`, so out-of-order lines within the lateness apply in time order and later ones are
    corrected with `late: true` records (SPEC §5). Nothing is dropped silently: every unusable line
    is a dead letter, and an `until` before the last event is raised to it.

    Args:
        lines: the events, one JSON object per line; blank lines are skipped.
        policies: the loaded policy file.
        source: the file's name, for dead letters' `source` (`file:line`).
        until: move the watermark here at the end (never before the last event).
        lateness_ms: the watermark trails the largest event time seen by this much.
        horizon_ms: the correction horizon (older late events become dead letters).
        max_future_ms: an event more than this after `now_ms` is a dead letter, as in the live
            monitor, so one mistyped year cannot move the watermark to it and fire every deadline;
            None accepts any instant (files generated for the future).
        now_ms: the wall clock for `max_future_ms`; None reads it once at the start.
        summary: counts to fill in, for the one-line summary.

    Yields:
        SLA records, action records and dead letters.
    """
    engine = Engine(policies, horizon_ms=horizon_ms)
    if max_future_ms is not None and now_ms is None:
        now_ms = wall_now_ms()
    check_now = now_ms if max_future_ms is not None else None
    max_future = max_future_ms if max_future_ms is not None else 0
    summary = summary if summary is not None else ReplaySummary()
    max_seen: int | None = None
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        line = raw.rstrip(b"\r\n")
        decoded = decode_event(line, now=check_now, max_future_ms=max_future)
        if isinstance(decoded, Rejected):
            summary.dead_letters += 1
            yield dead_letter(decoded.reason, line, f"{source}:{lineno}")
            continue
        summary.events += 1
        if max_seen is None or decoded.occurred_at > max_seen:
            max_seen = decoded.occurred_at
        yield from _count(engine.process([decoded], max_seen - lateness_ms), summary)
    final = max_seen
    if until is not None:
        # An earlier --until never leaves events unapplied: nothing is silently dropped.
        final = until if max_seen is None else max(until, max_seen)
    if final is not None:
        summary.until = final
        yield from _count(engine.process([], final), summary)


def _count(records: list[Record], summary: ReplaySummary) -> list[Record]:
    """Add `records` to the summary's counts and return them unchanged."""
    for rec in records:
        if isinstance(rec, SlaRecord):
            summary.records += 1
            summary.statuses[rec.status] += 1
        elif isinstance(rec, ActionRecord):
            summary.actions += 1
        elif isinstance(rec, CsatRecord):
            summary.csat += 1
        elif isinstance(rec, HandleRecord):
            summary.handle += 1
        else:
            summary.dead_letters += 1
    return records


def write_jsonl(records: Iterable[Record], out: BinaryIO, clock: Callable[[], int]) -> None:
    """Write records as JSON lines, stamping each with `emitted_at` from `clock` (epoch ms).

    The wall clock is read per record (formatted once per millisecond); nothing else in a line
    depends on it, so two replays differ only in `emitted_at`.

    Args:
        records: The records, written in order as they are produced.
        out: A binary stream; it is not flushed or closed.
        clock: The wall clock in epoch ms.
    """
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    last_ms, last_text = -1, ""
    for rec in records:
        now = clock()
        if now != last_ms:
            last_ms, last_text = now, format_instant(now)
        out.write(dumps(to_json_dict(rec, last_text), option=newline))
