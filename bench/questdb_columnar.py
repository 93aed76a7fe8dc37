"""Row API against the client's columnar path for the SLA rows of one buffer (µs per record, CPU).

Issue 26, item 1. `QuestDBWriter._seal` builds the rows of the `events` and `clocks` tables
with `Buffer.row` (`flows.connectors.questdb.rows._event_rows` / `_clock_rows`). The client
can also serialize a pandas DataFrame (`Buffer.dataframe`, what `Sender.dataframe()` calls),
in C, column by column. The writer holds records, not columns, so the columnar path here counts
the whole conversion: records → one list per column → a DataFrame (numpy / pandas nullable
dtypes, or a pyarrow Table turned into `pd.ArrowDtype` columns) → `Buffer.dataframe`.

The records are `bench/questdb_rows.py`'s mix, folded by the writer itself (`_add`, so events
and clocks are what `_seal` would get, per chunk of `chunk_rows`). Each round times every path
on every chunk, one path after the other (alternating), best of ROUNDS; CPU is process time.
Each path's buffers are compared with the row API's, byte for byte; if they differ, their lines
are decoded and compared field by field.

pandas and pyarrow are not project dependencies: install them into the venv to run this
(`.venv/bin/pip install pandas pyarrow`). Run:
`.venv/bin/python bench/questdb_columnar.py [RECORDS] [ROUNDS] [CHUNK_ROWS ...]`.
"""

from __future__ import annotations

import os
import platform
import struct
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from operator import attrgetter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.questdb_rows import BATCH, CONF, T0, _nothing_stored, records  # noqa: E402
from flows.connectors.questdb import QuestDBWriter  # noqa: E402
from flows.connectors.questdb.rows import (  # noqa: E402
    _CLOCK_COLUMNS,
    _CLOCK_SYMBOLS,
    _EVENT_COLUMNS,
    _EVENT_SYMBOLS,
    _clock_rows,
    _event_rows,
)
from flows.core.records import SlaRecord  # noqa: E402
from flows.core.vocabulary import clock_is_open  # noqa: E402

try:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
except ImportError:  # pragma: no cover - depends on the venv
    print("bench/questdb_columnar.py needs pandas and pyarrow, which are not project "
          "dependencies: `.venv/bin/pip install pandas pyarrow`, then run it again.")  # fmt: skip
    sys.exit(0)

# pandas and pyarrow ship no stubs that mypy is given here (mypy covers `flows` only, and they
# are not dependencies): their values are typed `Any`.
Frame = Any
Chunk = tuple[list[SlaRecord], list[Any], list[SlaRecord]]  # events, their emitted_at, clocks
EVENTS = "sla_events"
CLOCKS = "sla_clocks"
_AT = "at_"  # the designated timestamp's column (sent as the line's timestamp, not a field)
# SlaRecord attributes read by both tables. One `map(attrgetter)` per column: 2.5x less CPU
# than transposing with `zip(*map(attrgetter(*FIELDS), records))`, 1.4x less than a list
# comprehension per column.
FIELDS = (
    "metric", "status", "policy_id", "agent_id", "team_id", "priority", "segment",
    "lead_source", "channel", "cause", "lead_status", "outcome", "conversation_id", "cycle",
    "seq", "target", "started_at", "warn_at", "deadline_at", "stopped_at", "elapsed",
    "breached", "late", "attempts", "attempts_required", "budget_pct", "at",
)  # fmt: skip
_GETTERS = [(name, attrgetter(name)) for name in FIELDS]


def chunks(data: Sequence[Any], chunk_rows: int) -> tuple[QuestDBWriter, list[Chunk]]:
    """Fold `data` as the writer does and return, per chunk, what `_seal` would turn into rows."""
    writer = QuestDBWriter(CONF, chunk_rows=chunk_rows, max_buffered_rows=10_000_000)
    writer._tables_ready = True  # noqa: SLF001
    writer._http.execute = _nothing_stored  # type: ignore[method-assign]  # noqa: SLF001
    for n, start in enumerate(range(0, len(data), BATCH)):
        writer._add(data[start : start + BATCH], T0 + n)  # noqa: SLF001
    out = [
        (list(c.events.values()), list(c.emitted.values()), list(c.clocks.values()))
        for c in writer._chunks  # noqa: SLF001
    ]
    writer._closed = True  # noqa: SLF001
    return writer, out


def row_api(writer: QuestDBWriter, chunk: Chunk) -> bytes:
    """Today's path: `_event_rows` and `_clock_rows` into a new buffer of the writer's Sender."""
    events, emitted, clocks = chunk
    buffer = writer._sender.new_buffer()  # noqa: SLF001
    _event_rows(buffer, EVENTS, zip(events, emitted, strict=True))
    _clock_rows(buffer, CLOCKS, clocks)
    return bytes(buffer)


def _columns(rs: list[SlaRecord]) -> dict[str, list[Any]]:
    return {name: list(map(get, rs)) for name, get in _GETTERS}


# --- pandas: numpy and pandas nullable dtypes; symbols as categoricals or `string` ---------


def _pd_ts(ms: list[int | None]) -> Any:
    """Epoch ms (None for null) → datetime64[us, UTC] with NaT."""
    return pd.to_datetime(pd.array(ms, dtype="Int64") * 1000, unit="us", utc=True)


_PY_STR = pd.StringDtype("python")


def _category(values: list[str | None]) -> Any:
    """Strings as a categorical; an all-null column gets one (unused) string category, as the
    client takes only categories of strings and pandas would infer float64 ones."""
    cat = pd.Categorical(values)
    return cat if len(cat.categories) else pd.Categorical(values, categories=[""])


def _string(values: list[str | None]) -> Any:
    # Not `object`: the client rejects an all-null object column ("inferred type: unknown").
    return pd.array(values, dtype=_PY_STR)


def _pd_frame(
    c: dict[str, list[Any]], symbols: Sequence[str], symbol: Callable[[Any], Any]
) -> dict[str, Any]:
    cols: dict[str, Any] = {s: symbol(c[s]) for s in symbols}
    cols["conversation_id"] = np.array(c["conversation_id"], dtype=object)
    cols["cycle"] = np.array(c["cycle"], dtype=np.int64)
    cols["seq"] = np.array(c["seq"], dtype=np.int64)
    cols["target_s"] = pd.array(c["target"], dtype="Float64") / 1000
    for name in ("started_at", "warn_at", "deadline_at", "stopped_at"):
        cols[name] = _pd_ts(c[name])
    cols["elapsed_s"] = np.array(c["elapsed"], dtype=np.int64) / 1000
    cols["breached"] = np.array(c["breached"], dtype=bool)
    cols["late"] = np.array(c["late"], dtype=bool)
    cols["attempts"] = pd.array(c["attempts"], dtype="Int64")
    cols["attempts_required"] = pd.array(c["attempts_required"], dtype="Int64")
    cols["budget_pct"] = pd.array(c["budget_pct"], dtype="Float64")
    return cols


def pandas_path(writer: QuestDBWriter, chunk: Chunk, symbol: Callable[[Any], Any]) -> bytes:
    """Records → column lists → pandas DataFrame (numpy / nullable dtypes) → `dataframe()`."""
    events, emitted, clocks = chunk
    buffer = writer._sender.new_buffer()  # noqa: SLF001
    c = _columns(events)
    cols = _pd_frame(c, _EVENT_SYMBOLS, symbol)
    cols["emitted_at"] = pd.to_datetime(
        np.array([e.value for e in emitted], dtype=np.int64), unit="us", utc=True
    )
    at = _AT
    cols[at] = pd.to_datetime(np.array(c["at"], dtype=np.int64), unit="ms", utc=True).as_unit("ns")
    df: Frame = pd.DataFrame(cols)
    buffer.dataframe(df[[*_EVENT_SYMBOLS, *_EVENT_COLUMNS, at]], table_name=EVENTS,
                     symbols=list(_EVENT_SYMBOLS), at=at)  # fmt: skip
    c = _columns(clocks)
    cols = _pd_frame(c, _CLOCK_SYMBOLS, symbol)
    cols["open"] = np.fromiter(map(clock_is_open, c["status"], c["metric"]), dtype=bool)
    cols["updated_at"] = _pd_ts(c["at"])
    cols[at] = pd.to_datetime(
        np.array(c["started_at"], dtype=np.int64), unit="ms", utc=True
    ).as_unit("ns")
    df = pd.DataFrame(cols)
    buffer.dataframe(df[[*_CLOCK_SYMBOLS, *_CLOCK_COLUMNS, at]], table_name=CLOCKS,
                     symbols=list(_CLOCK_SYMBOLS), at=at)  # fmt: skip
    return bytes(buffer)


# --- pyarrow: a Table of Arrow arrays, turned into a DataFrame of `pd.ArrowDtype` columns ------

_I64 = pa.int64()
_F64 = pa.float64()
_STR = pa.string()
_MS = pa.timestamp("ms", tz="UTC")
_US = pa.timestamp("us", tz="UTC")
_NS = pa.timestamp("ns", tz="UTC")


def _pa_ts(ms: list[int | None], unit: Any = _US) -> Any:
    return pa.array(ms, _I64).cast(_MS).cast(unit)


def _pa_columns(c: dict[str, list[Any]], symbols: Sequence[str]) -> dict[str, Any]:
    # `Buffer.dataframe` takes strings, not Arrow dictionaries, as symbols.
    cols: dict[str, Any] = {s: pa.array(c[s], _STR) for s in symbols}
    cols["conversation_id"] = pa.array(c["conversation_id"], _STR)
    cols["cycle"] = pa.array(c["cycle"], _I64)
    cols["seq"] = pa.array(c["seq"], _I64)
    cols["target_s"] = pc.divide(pa.array(c["target"], _F64), 1000.0)
    for name in ("started_at", "warn_at", "deadline_at", "stopped_at"):
        cols[name] = _pa_ts(c[name])
    cols["elapsed_s"] = pc.divide(pa.array(c["elapsed"], _F64), 1000.0)
    cols["breached"] = pa.array(c["breached"], pa.bool_())
    cols["late"] = pa.array(c["late"], pa.bool_())
    cols["attempts"] = pa.array(c["attempts"], _I64)
    cols["attempts_required"] = pa.array(c["attempts_required"], _I64)
    cols["budget_pct"] = pa.array(c["budget_pct"], _F64)
    return cols


def _pa_frame(cols: dict[str, Any], order: Sequence[str]) -> Frame:
    return pa.table({k: cols[k] for k in order}).to_pandas(types_mapper=pd.ArrowDtype)


def arrow_frames(chunk: Chunk) -> tuple[Frame, Frame]:
    """Records → column lists → pyarrow Tables → DataFrames of `pd.ArrowDtype` columns."""
    events, emitted, clocks = chunk
    at = _AT
    c = _columns(events)
    cols = _pa_columns(c, _EVENT_SYMBOLS)
    cols["emitted_at"] = pa.array([e.value for e in emitted], _I64).cast(_US)
    cols[at] = _pa_ts(c["at"], _NS)
    event_frame = _pa_frame(cols, [*_EVENT_SYMBOLS, *_EVENT_COLUMNS, at])
    c = _columns(clocks)
    cols = _pa_columns(c, _CLOCK_SYMBOLS)
    cols["open"] = pa.array(map(clock_is_open, c["status"], c["metric"]), pa.bool_())
    cols["updated_at"] = _pa_ts(c["at"])
    cols[at] = _pa_ts(c["started_at"], _NS)
    return event_frame, _pa_frame(cols, [*_CLOCK_SYMBOLS, *_CLOCK_COLUMNS, at])


def serialize(writer: QuestDBWriter, frames: tuple[Frame, Frame]) -> bytes:
    """`Buffer.dataframe` of the events' and the clocks' frames into a new buffer."""
    buffer = writer._sender.new_buffer()  # noqa: SLF001
    events, clocks = frames
    buffer.dataframe(events, table_name=EVENTS, symbols=list(_EVENT_SYMBOLS), at=_AT)
    buffer.dataframe(clocks, table_name=CLOCKS, symbols=list(_CLOCK_SYMBOLS), at=_AT)
    return bytes(buffer)


def arrow_path(writer: QuestDBWriter, chunk: Chunk) -> bytes:
    """Records → column lists → pyarrow Table → DataFrame (`pd.ArrowDtype`) → `dataframe()`."""
    return serialize(writer, arrow_frames(chunk))


# --- equivalence --------------------------------------------------------------------------


def _unescape_until(data: bytes, i: int, stops: bytes) -> tuple[str, int]:
    out = bytearray()
    while data[i] not in stops:
        if data[i] == 0x5C:  # backslash
            i += 1
        out.append(data[i])
        i += 1
    return out.decode(), i


def decode(data: bytes) -> list[tuple[str, dict[str, Any], dict[str, Any], str]]:
    """Decode ILP lines (protocol 2: binary f64 after `==`) into (table, symbols, fields, at)."""
    rows = []
    i = 0
    while i < len(data):
        table, i = _unescape_until(data, i, b", ")
        symbols: dict[str, Any] = {}
        while data[i] == 0x2C:  # ,
            key, i = _unescape_until(data, i + 1, b"=")
            symbols[key], i = _unescape_until(data, i + 1, b", ")
        fields: dict[str, Any] = {}
        sep = 0x2C
        while sep == 0x2C:
            key, i = _unescape_until(data, i + 1, b"=")
            i += 1
            if data[i] == 0x3D:  # `==`, then type 16 and 8 bytes of little-endian f64
                assert data[i + 1] == 16, data[i : i + 10]
                fields[key] = struct.unpack_from("<d", data, i + 2)[0]
                i += 10
            elif data[i] == 0x22:  # "
                fields[key], i = _unescape_until(data, i + 1, b'"')
                i += 1
            else:
                fields[key], i = _unescape_until(data, i, b", \n")
            sep = data[i]
        at, i = _unescape_until(data, i + 1, b"\n")
        rows.append((table, symbols, fields, at))
        i += 1
    return rows


def compare(reference: list[bytes], other: list[bytes]) -> str:
    """'bytes identical', or whether the decoded rows hold the same values (and where not)."""
    if reference == other:
        return f"bytes identical ({sum(map(len, reference))} bytes)"
    a = [r for b in reference for r in decode(b)]
    b = [r for b in other for r in decode(b)]
    if a == b:
        return f"bytes differ, all {len(a)} decoded rows equal field by field"
    bad = next(n for n, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    return f"DIFFER ({len(a)} vs {len(b)} rows; first at row {bad}: {a[bad]} vs {b[bad]})"


def _cpu() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = next(line.split(":", 1)[1].strip() for line in info.splitlines()
                     if line.startswith("model name"))  # fmt: skip
    except (OSError, StopIteration):
        model = platform.machine()
    return f"{model}, {os.cpu_count()} CPUs"


def main() -> None:
    args = [int(a) for a in sys.argv[1:]]
    count = args[0] if args else 100_000
    rounds = args[1] if len(args) > 1 else 5
    sizes = args[2:] or [5_000, 20_000]
    data = records(count)
    print(f"{platform.node()} | {_cpu()} | Python {platform.python_version()} | questdb "
          f"{version('questdb')}, pandas {pd.__version__}, pyarrow {pa.__version__}, "
          f"numpy {np.__version__}")  # fmt: skip
    print(
        f"{count} records of bench/questdb_rows.py's mix, folded by QuestDBWriter._add in "
        f"batches of {BATCH}; best of {rounds} alternating rounds, CPU (process time)"
    )
    paths: dict[str, Callable[[QuestDBWriter, Chunk], bytes]] = {
        "row API (_event_rows + _clock_rows)": row_api,
        "pandas, symbols as categoricals": lambda w, c: pandas_path(w, c, _category),
        "pandas, symbols as string dtype": lambda w, c: pandas_path(w, c, _string),
        "pyarrow Table -> ArrowDtype DataFrame": arrow_path,
    }
    for size in sizes:
        writer, cs = chunks(data, size)
        sla = sum(len(e) for e, _, _ in cs)
        rows = sla + sum(len(k) for _, _, k in cs)
        print(f"\nchunk_rows={size}: {len(cs)} buffers, {sla} SLA records -> {rows} rows "
              f"({sla // len(cs)} records, {rows // len(cs)} rows per buffer)")  # fmt: skip
        frames = {id(chunk): arrow_frames(chunk) for chunk in cs}
        only = "  of which dataframe() alone (pyarrow frames prebuilt)"
        paths[only] = lambda w, c, frames=frames: serialize(w, frames[id(c)])
        best = dict.fromkeys(paths, float("inf"))
        out: dict[str, list[bytes]] = {}
        for _ in range(rounds):
            for name, path in paths.items():
                began = time.process_time()
                out[name] = [path(writer, chunk) for chunk in cs]
                best[name] = min(best[name], time.process_time() - began)
        reference = next(iter(paths))
        base = best[reference]
        for name in paths:
            check = "reference" if name == reference else compare(out[reference], out[name])
            print(f"  {name:56} {best[name] * 1e6 / sla:6.2f} µs/record  "
                  f"{best[name] / base:5.2f}x row  {check}")  # fmt: skip
        del paths[only]


if __name__ == "__main__":
    main()
