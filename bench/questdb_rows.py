"""CPU cost of QuestDBWriter's row building, without a server (µs per record, process time).

Feeds a realistic mix of SLA records (3 per clock plus breaches, pauses, late corrections
that move a clock's start, records with missing optional fields), some actions and dead letters,
through `QuestDBWriter`'s batching and row building into ILP buffers that are never sent, and
prints the cost per record and a hash of the rows built (it must not change when the code is
only made faster). Run: `.venv/bin/python bench/questdb_rows.py [RECORDS] [REPEATS]`.

With `--against DIR` (another checkout, e.g. `main`'s worktree), the same measurement runs in
fresh processes alternately on that checkout's `flows` and on this one's, best of REPEATS
each, and the ratio is printed (the rows' hashes must match).
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from flows.connectors.questdb import QuestDBWriter
from flows.core.records import ActionRecord, DeadLetter, Record, SlaRecord

BATCH = 200
T0 = 1_795_000_000_000
CONF = "http::addr=127.0.0.1:1;"
METRICS = ("first_response", "next_response", "service_window")


def sla(
    i: int,
    status: str,
    at: int,
    *,
    started: int,
    breached: bool = False,
    cause: str | None = None,
    late: bool = False,
) -> SlaRecord:
    """Record `i`'s clock; `i % 10` picks which optional fields are missing."""
    kind = i % 10
    return SlaRecord(f"c-{i % 5000}", i // 5000 + 1, METRICS[i % 3], 1 + i % 2, status, at,
                     "default" if kind else None, 300_000 if kind != 3 else None, started,
                     started + 240_000 if kind != 4 else None,
                     started + 300_000 if kind != 3 else None,
                     at if status in ("met", "stopped") else None, at - started, breached,
                     f"a-{i % 200}" if i % 7 else None, f"t-{i % 8}", "P2" if kind else None,
                     "vip" if kind == 5 else None, None, "whatsapp", late,
                     2 if kind == 6 else None, cause)  # fmt: skip


def records(count: int) -> list[Record]:
    out: list[Record] = []
    i = 0
    while len(out) < count:
        start = T0 + i * 50
        kind = i % 10
        out.append(sla(i, "started", start, started=start))
        out.append(sla(i, "warning", start + 240_000, started=start))
        if kind in (1, 2):
            out.append(sla(i, "breached", start + 300_000, started=start, breached=True,
                           cause="agent_idle"))  # fmt: skip
            out.append(sla(i, "stopped", start + 400_000, started=start, breached=True))
            out.append(ActionRecord("notify", "breached", f"c-{i % 5000}", 1, METRICS[i % 3], 1,
                                    start + 300_000, "default", None, None, "team-lead",
                                    "deadline passed"))  # fmt: skip
        elif kind == 3:
            out.append(sla(i, "paused", start + 250_000, started=start))
            out.append(sla(i, "resumed", start + 260_000, started=start))
            out.append(sla(i, "met", start + 270_000, started=start - 1000, late=True))
        elif kind == 8:
            out.append(DeadLetter("kafka:events/0@12", "bad json", '{"x":'))
        else:
            out.append(sla(i, "met", start + 250_000, started=start))
        i += 1
    return out[:count]


def _nothing_stored(sql: str, timeout_s: float | None = None) -> dict[str, Any]:
    return {"dataset": []}


def run(data: list[Record]) -> tuple[float, str]:
    writer = QuestDBWriter(CONF, chunk_rows=20_000, max_buffered_rows=10_000_000)
    # As live: the tables exist, and QuestDB knows nothing of the clocks the writer looks up.
    writer._tables_ready = True  # noqa: SLF001
    writer._http.execute = _nothing_stored  # type: ignore[method-assign]  # noqa: SLF001
    digest = hashlib.sha256()
    began = time.process_time()
    for n, start in enumerate(range(0, len(data), BATCH)):
        writer._add(data[start : start + BATCH], T0 + n)  # noqa: SLF001
        if n % 5 == 4:  # a flush every few batches: seal and start a new chunk
            for chunk in writer._chunks:  # noqa: SLF001
                writer._seal(chunk)  # noqa: SLF001
    for chunk in writer._chunks:  # noqa: SLF001
        writer._seal(chunk)  # noqa: SLF001
    spent = time.process_time() - began
    for chunk in writer._chunks:  # noqa: SLF001
        digest.update(bytes(chunk.buffer))
    writer._closed = True  # noqa: SLF001
    return spent, digest.hexdigest()[:16]


def in_process(tree: Path, count: int) -> tuple[float, str]:
    """Run one measurement in a fresh process on the `flows` package of `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, __file__, str(count), "1"],
        env=env, cwd=tree, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    us, digest = out.split(" µs/record")[0].rsplit(" ", 1)[1], out.rsplit("rows ", 1)[1].strip()
    return float(us), digest


def against(other: Path, count: int, repeats: int) -> None:
    """Print the cost per record of `other`'s row building and this checkout's, and the ratio."""
    here = Path(__file__).resolve().parents[1]
    print(f"{platform.node()} | Python {platform.python_version()} | {count} records, best of "
          f"{repeats} fresh processes each, alternating: old = {other}, new = {here}")  # fmt: skip
    old: list[tuple[float, str]] = []
    new: list[tuple[float, str]] = []
    for _ in range(repeats):
        old.append(in_process(other, count))
        new.append(in_process(here, count))
    (o, od), (n, nd) = min(old), min(new)
    print(f"old {o:.2f} µs/record (rows {od}), new {n:.2f} µs/record (rows {nd}): "
          f"{o / n:.2f}x less CPU; rows {'identical' if od == nd else 'DIFFER'}")  # fmt: skip


def main() -> None:
    if "--against" in sys.argv:
        at = sys.argv.index("--against")
        other = Path(sys.argv[at + 1]).resolve()
        del sys.argv[at : at + 2]
        count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
        against(other, count, int(sys.argv[2]) if len(sys.argv) > 2 else 5)
        return
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    data = records(count)
    best, digest = min(run(data) for _ in range(repeats))
    print(f"{count} records: {best * 1e6 / count:.2f} µs/record (best of {repeats}), rows {digest}")


if __name__ == "__main__":
    main()
