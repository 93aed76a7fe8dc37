"""QuestDB storage of slawatch's records: tables, row building and a buffering ILP/HTTP writer.

`QuestDBWriter` creates its tables (`CREATE TABLE IF NOT EXISTS` over HTTP `/exec`, before the
first row), then writes records over ILP/HTTP with one `questdb.Sender`:

* `<prefix>events`: every SLA record (SPEC §6), designated timestamp `at`;
* `<prefix>clocks`: one row per clock holding its latest state, so compliance counts each
  clock once by its final outcome; designated timestamp `started_at`;
* `<prefix>actions`, `<prefix>deadletters` and `<prefix>heartbeat`.

Every table is WAL, partitioned by day, with a TTL and `DEDUP UPSERT KEYS` on the row's
identity: a retry or a replay never doubles a row, and a record with the same identity (a late
correction, a clock's next status) replaces the stored one.

Writes are batched: `write_batch` turns a batch of records into ILP rows and flushes them in one
HTTP request (one per `chunk_rows` records for bigger batches). With `batch_window_s`, batches
written within that window after a request are held and go out together, at the window's end
(one request, so one commit per table, whatever the number of writes); the held records are
appended to a journal on disk (`flows.connectors.questdb.journal`) before `write_batch` returns,
so a crash loses none. QuestDB's cost is per commit more than per row: each commit of the
clocks table rewrites the part of its partition after the oldest clock start it touches
(out-of-order rows), and refreshes the materialized views over the days it touches
(docs/PERFORMANCE.md). When QuestDB cannot be reached,
nothing is dropped and nothing waits for it: the pending requests are sealed and appended to a
durable spill on disk (`flows.connectors.questdb.spill`) before the write returns, and are sent
again, oldest first and in their original order, after a back-off: by the next write or
`maybe_flush`, or by a daemon thread that retries while rows are pending (so they go out on a
quiet stream too). A writer built on a spill folder that an earlier process left behind sends
those rows first. The spill is bounded by the disk (and `max_spill_bytes`): when it is full the
write raises `SpillFullError`, which stops the dataflow with that message instead of losing rows.

Why a spill and not back-pressure: back-pressure would hold up the sink, hence the whole
dataflow, so a QuestDB outage would delay breach detection on Kafka; a spill keeps the Kafka
outputs on time and only delays the QuestDB rows. The module imports nothing from Bytewax;
`flows.connectors.questdb.sink` adapts the writer to a sink.

Example:
    >>> writer = QuestDBWriter("http::addr=127.0.0.1:9000;")  # doctest: +SKIP
    >>> writer.ensure_tables()  # doctest: +SKIP
    >>> writer.write_batch(records, emitted_at_ms=1_764_000_000_000)  # doctest: +SKIP
    >>> writer.close()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Concatenate, Final, ParamSpec, TypeVar

from questdb import QuestDBError as _IngressError
from questdb import Sender, TimestampMicros, TimestampNanos

from flows.connectors.questdb.clocks import (
    ClockKey,
    ClockTracker,
    EventKey,
    read_stored_clocks,
)
from flows.connectors.questdb.conf import sender_conf
from flows.connectors.questdb.http import (
    IlpRejectedError,
    _format_conf,
    _Http,
)
from flows.connectors.questdb.journal import JOURNAL_NAME, Journal
from flows.connectors.questdb.rows import (
    _action_row,
    _clock_rows,
    _csat_row,
    _deadletter_row,
    _event_rows,
    _handle_row,
    _micros,
)
from flows.connectors.questdb.schema import (
    DEFAULT_PREFIX,
    DEFAULT_TTL_DAYS,
    TableNames,
    create_table_statements,
    migrate_table_statements,
)
from flows.connectors.questdb.spill import Spill
from flows.connectors.questdb.status import Heartbeat, WriterStats
from flows.connectors.questdb.views import (
    DEFAULT_TIMEZONE,
    REQUIRED_COLUMN,
    create_view_statements,
    drop_view_statement,
)
from flows.core.records import ActionRecord, CsatRecord, HandleRecord, Record, SlaRecord
from flows.exceptions import ConnectorError

_log = logging.getLogger(__name__)


# QuestDB answers rows it cannot store with HTTP 400 and this code; resending cannot help.
_REJECTED: Final = re.compile(r'"code"\s*:\s*"invalid"')
_MS_TO_NS: Final = 1_000_000
# Spilled requests the retry thread sends before it lets the dataflow's writes in again.
_FRAMES_PER_TURN: Final = 8
_P = ParamSpec("_P")
_R = TypeVar("_R")


class _Chunk:
    """Rows waiting to be sent in one HTTP request.

    SLA rows are kept as records, keyed like their tables' dedup keys, until the chunk is
    sealed: a row written twice before the request goes out (a correction of a record in the
    same chunk, a clock's next status) is sent once, as its latest version. The order in which
    QuestDB applies duplicate keys within one request is not something to rely on.

    `emitted` holds each event row's `emitted_at`, under the same keys in the same order as
    `events` (two dicts rather than a pair per row: one fewer object for the garbage collector
    to track per record, which in the monitor's large heap costs more than the row itself).
    """

    __slots__ = ("buffer", "clocks", "emitted", "events", "rows", "sealed")

    def __init__(self, sender: Sender) -> None:
        self.buffer = sender.new_buffer()
        self.events: dict[EventKey, SlaRecord] = {}
        self.emitted: dict[EventKey, TimestampMicros] = {}
        self.clocks: dict[ClockKey, SlaRecord] = {}
        self.rows = 0
        self.sealed = False

    @property
    def size(self) -> int:
        """Rows in the chunk, SLA rows included."""
        return self.rows + len(self.events) + len(self.clocks)


def _locked(
    method: Callable[Concatenate[QuestDBWriter, _P], _R],
) -> Callable[Concatenate[QuestDBWriter, _P], _R]:
    """Run a public method of the writer under its lock (the retry thread shares the state)."""

    def locked(self: QuestDBWriter, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._lock:
            return method(self, *args, **kwargs)

    locked.__name__ = method.__name__
    locked.__qualname__ = method.__qualname__
    locked.__doc__ = method.__doc__
    return locked


class QuestDBWriter:
    """Writes slawatch's records to QuestDB in batches, spilling them to disk while it is down.

    Args:
        conf: `questdb` client configuration for ILP over HTTP, e.g.
            `http::addr=127.0.0.1:9000;` (add `username=...;password=...;` or `token=...;`
            where QuestDB asks for them). Unless the string says otherwise, the Sender gets
            `auto_flush=off`, `retry_timeout=1000` and `request_timeout=5000` (ms) and
            `protocol_version=2`.
        prefix: Table name prefix (`<prefix>events`, `<prefix>clocks`, ...).
        ttl_days: TTL of every table, in days.
        report_timezone: IANA zone whose local days the materialized views bucket by
            (`flows.connectors.questdb.views`).
        max_buffered_rows: Most rows kept in memory before the oldest are spilled to disk
            (while QuestDB cannot be reached rows are spilled at once, whatever this is).
        chunk_rows: Most records per HTTP request: bigger batches are split, and batches
            kept while QuestDB is down are merged up to this size.
        flush_interval_s: `maybe_flush` sends buffered rows at most this often.
        batch_window_s: 0 (the default): every `write_batch` sends its rows at once. Above 0:
            a batch written less than this many seconds after the last request is held
            (journaled to disk first) and goes out with the others at the window's end, by the
            next write, `maybe_flush`, or the daemon thread on a quiet stream; a full chunk
            (`chunk_rows` records) goes out at once. Fewer, bigger commits cost QuestDB much
            less; rows reach it up to this much later.
        retry_backoff_s: First and largest wait, in seconds, between two attempts after a
            failure (doubling in between).
        remembered_clocks: Clocks whose row and breach cause are remembered (`ClockTracker`).
        http_timeout_s: Timeout of `/exec` calls (table creation, clock look-ups) and of the
            requests that send spilled rows back.
        monotonic: The clock used for back-off and the flush timer (tests replace it).
        spill_dir: Folder of the durable spill; rows left there by an earlier process are sent
            first. None spills to a new temporary folder (made at the first spill), which
            outlives an outage but not the process (its path is logged if rows are left in it
            at `close`).
        max_spill_bytes: Most bytes the spill may hold; None bounds it by the disk only.
        background_retry: While rows are pending after a failure, a daemon thread retries at
            the back-off times, so they reach QuestDB when it returns even if no new record
            comes to trigger a write. None: on unless `monotonic` is replaced (tests that
            drive the clock themselves).

    Raises:
        ValueError: `conf` is not ILP-over-HTTP configuration, or an option is out of range.
    """

    def __init__(
        self,
        conf: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        ttl_days: int = DEFAULT_TTL_DAYS,
        report_timezone: str = DEFAULT_TIMEZONE,
        max_buffered_rows: int = 1_000_000,
        chunk_rows: int = 20_000,
        flush_interval_s: float = 1.0,
        batch_window_s: float = 0.0,
        retry_backoff_s: tuple[float, float] = (0.5, 15.0),
        remembered_clocks: int = 200_000,
        http_timeout_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        spill_dir: Path | str | None = None,
        max_spill_bytes: int | None = None,
        background_retry: bool | None = None,
    ) -> None:
        if max_buffered_rows < 1 or chunk_rows < 1 or ttl_days < 1:
            msg = "max_buffered_rows, chunk_rows and ttl_days must be at least 1"
            raise ValueError(msg)
        if batch_window_s < 0:
            msg = f"batch_window_s must not be negative, not {batch_window_s}"
            raise ValueError(msg)
        protocol, params = sender_conf(conf)
        self.tables = TableNames(prefix)
        self.report_timezone = report_timezone
        self.ttl_days = ttl_days
        self.max_buffered_rows = max_buffered_rows
        self.chunk_rows = chunk_rows
        self.flush_interval_s = flush_interval_s
        self.batch_window_s = batch_window_s
        self.retry_backoff_s = retry_backoff_s
        self.clocks = ClockTracker(remembered_clocks)
        self._monotonic = monotonic
        self._http = _Http(protocol, params, http_timeout_s)
        self._sender = Sender.from_conf(_format_conf(protocol, params))
        self._sender.establish()  # type: ignore[no-untyped-call]
        self._chunks: deque[_Chunk] = deque()
        self._pending_rows = 0
        self._tables_ready = False
        self._closed = False
        self._next_attempt = 0.0
        self._last_attempt = -float("inf")
        self._failures_in_row = 0
        self._failing_since: float | None = None
        self._last_failure_log = -float("inf")
        self._rows_written = 0
        self._rows_dropped = 0
        self._rows_rejected = 0
        self._failures = 0
        self._temporary_spill = spill_dir is None
        self._lock = threading.RLock()
        self._background_retry = (
            monotonic is time.monotonic if background_retry is None else background_retry
        )
        self._retrier: threading.Thread | None = None
        folder = None if spill_dir is None else Path(spill_dir)
        self._spill = Spill(folder, max_bytes=max_spill_bytes)
        self._journal = Journal(None if folder is None else folder / JOURNAL_NAME)
        self._replay_journal()
        if self._spill:
            self._start_retrier()
            _log.warning(
                "Found %d rows (%d bytes) that an earlier run spilled to %s; they go to QuestDB "
                "at %s before any new row",
                self._spill.rows,
                self._spill.size,
                folder,
                self.address,
            )

    # -- public API -------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """QuestDB's `host:port`."""
        return self._http.addr

    @property
    def stats(self) -> WriterStats:
        """Counters since the writer was built."""
        return WriterStats(
            rows_written=self._rows_written,
            rows_pending=self._pending_rows + self._spill.rows,
            rows_dropped=self._rows_dropped,
            rows_rejected=self._rows_rejected,
            failures=self._failures,
            failing_since=self._failing_since,
            rows_spilled=self._spill.rows,
            spill_bytes=self._spill.size,
        )

    @property
    def spill_dir(self) -> Path | None:
        """The folder of the durable spill (None: a temporary one, not needed yet)."""
        return self._spill.folder

    @_locked
    def ensure_tables(self) -> None:
        """Create the five tables and the views unless they exist (before the first row is sent).

        Tables of an earlier release get the columns added since (`migrate_table_statements`);
        views of an earlier release without the `channel` column are dropped and made again.

        Raises:
            ConnectorError: QuestDB cannot be reached or refused a statement.
        """
        tables = create_table_statements(self.tables, self.ttl_days)
        tables += migrate_table_statements(self.tables)
        views = create_view_statements(self.tables, self.report_timezone)
        for table, sql in tables:
            self._create(table, sql)
        for view, _sql in views:
            self._drop_view_if_stale(view)
        for view, sql in views:
            self._create(view, sql)
        self._tables_ready = True

    def _create(self, table: str, sql: str) -> None:
        try:
            self._http.execute(sql)
        except ConnectorError as exc:
            # Two workers creating the same table at once: the loser is told it exists.
            if "already exists" not in str(exc):
                raise
        _log.debug("QuestDB table %s is ready", table)

    def _drop_view_if_stale(self, view: str) -> None:
        """Drop a view an earlier release made without `REQUIRED_COLUMN` (it is made again)."""
        try:
            # The view name comes from a validated prefix.
            sql = f"SELECT \"column\" FROM table_columns('{view}')"  # noqa: S608
            columns = {row[0] for row in self._http.execute(sql)["dataset"]}
        except ConnectorError as exc:
            if "does not exist" in str(exc):
                return
            raise
        if REQUIRED_COLUMN in columns:
            return
        _log.warning(
            "QuestDB view %s has no %s column (made by an earlier release): dropping it; it is "
            "created again and rebuilt from the clocks table",
            view,
            REQUIRED_COLUMN,
        )
        self._http.execute(drop_view_statement(view))

    @_locked
    def write_batch(self, records: Sequence[Record], emitted_at_ms: int) -> None:
        """Add a batch of records and try to send everything pending.

        Every SLA record becomes a row of `<prefix>events` and updates its clock's row in
        `<prefix>clocks`; action records and dead letters go to their tables. If QuestDB
        cannot be reached, the rows are on disk in the spill when this returns and are sent
        later (see the class docstring); this method does not raise for that. A batch goes out
        in one HTTP request, or one per `chunk_rows` records when it is bigger.

        Args:
            records: The records, in the order they were emitted (a clock's last one wins).
            emitted_at_ms: Wall-clock instant of emission, epoch ms UTC (`emitted_at`).

        Raises:
            SpillFullError: QuestDB cannot be reached and the spill is full; no row was lost,
                but these were not kept (stop and restart with recovery).
        """
        step = self.chunk_rows
        for start in range(0, len(records), step):
            self._add(records[start : start + step], emitted_at_ms)
            self._enforce_bound()
        if records:
            now = self._monotonic()
            if self._holds(now):
                self._journal.append(records, emitted_at_ms)
                self._start_retrier()  # sends them at the window's end if no write comes
            else:
                self._flush(now, force=False)
            self._spill_if_failing()

    @_locked
    def write_heartbeat(self, heartbeat: Heartbeat) -> None:
        """Add a worker heartbeat and try to send everything pending.

        Args:
            heartbeat: The report; stored in `<prefix>heartbeat` keyed on `(at, worker)`.
        """
        chunk = self._open_chunk()
        chunk.buffer.row(
            self.tables.heartbeat,
            symbols={"worker": heartbeat.worker},
            columns={
                "watermark": _micros(heartbeat.watermark),
                "lag_ms": heartbeat.lag_ms,
                "events_in": heartbeat.events_in,
                "records_out": heartbeat.records_out,
                "dead_letters": heartbeat.dead_letters,
            },
            at=TimestampNanos(heartbeat.at * _MS_TO_NS),
        )
        chunk.rows += 1
        self._pending_rows += 1
        self._enforce_bound()
        self._flush(self._monotonic(), force=False)
        self._spill_if_failing()

    @_locked
    def maybe_flush(self, now: float | None = None) -> bool:
        """Send pending rows if the flush interval and any back-off have passed (for a timer).

        Rows held for a longer `batch_window_s` wait for the window instead.

        Args:
            now: The current `monotonic` time; read from the writer's clock when omitted.

        Returns:
            True if nothing is left pending.
        """
        if not self._chunks and not self._spill:
            return True
        now = self._monotonic() if now is None else now
        interval = self.flush_interval_s
        if self._failing_since is None and not self._spill:
            interval = max(interval, self.batch_window_s)  # held rows wait for their window
        if now - self._last_attempt < interval:
            return False
        done = self._flush(now, force=False)
        self._spill_if_failing()
        return done

    @_locked
    def flush(self) -> bool:
        """Try to send every pending row now, ignoring any back-off.

        Returns:
            True if nothing is left pending; False if QuestDB could not take them (they are
            kept for the next attempt).
        """
        return self._flush(self._monotonic(), force=True)

    @_locked
    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is pending, retrying for up to `timeout_s`, then close the Sender.

        Rows still pending after that stay in the spill folder, and the log says where: a
        writer built on that folder sends them (a temporary folder is not reused by itself).
        """
        if self._closed:
            return
        deadline = self._monotonic() + timeout_s
        while not self.flush():
            now = self._monotonic()
            if now >= deadline:
                self._spill_memory()
                _log.error(
                    "Closing the QuestDB writer with %d rows that QuestDB at %s did not take; "
                    "they stay in %s%s",
                    self._spill.rows,
                    self.address,
                    self._spill.folder,
                    " (a temporary folder: load them by building a writer with spill_dir set to it)"
                    if self._temporary_spill
                    else " and are sent at the next start",
                )
                break
            time.sleep(min(max(self._next_attempt - now, 0.1), deadline - now))
        self._closed = True
        self._sender.close(flush=False)
        self._journal.remove()
        if self._temporary_spill:
            self._spill.remove_if_empty()

    # -- internals --------------------------------------------------------------------------

    def _open_chunk(self) -> _Chunk:
        if self._closed:
            msg = "the QuestDB writer is closed"
            raise ConnectorError(msg)
        chunks = self._chunks
        if chunks and not chunks[-1].sealed and chunks[-1].size < self.chunk_rows:
            return chunks[-1]
        chunk = _Chunk(self._sender)
        chunks.append(chunk)
        return chunk

    def _add(self, records: Sequence[Record], emitted_at_ms: int) -> None:
        """Add the rows of up to `chunk_rows` records to the open chunk."""
        chunk = self._open_chunk()
        before = chunk.size
        buffer = chunk.buffer
        tables = self.tables
        emitted = TimestampMicros(emitted_at_ms * 1000)
        events = chunk.events
        emitted_at = chunk.emitted
        sla: list[SlaRecord] = []
        keep = sla.append
        for r in records:
            if isinstance(r, SlaRecord):
                keep(r)
                key = (r.at, r.conversation_id, r.cycle, r.metric, r.seq, r.status)
                events[key] = r
                emitted_at[key] = emitted
            elif isinstance(r, ActionRecord):
                _action_row(buffer, tables.actions, r, emitted)
                chunk.rows += 1
            elif isinstance(r, CsatRecord):
                _csat_row(buffer, tables.csat, r, emitted)
                chunk.rows += 1
            elif isinstance(r, HandleRecord):
                _handle_row(buffer, tables.handle, r, emitted)
                chunk.rows += 1
            else:
                _deadletter_row(buffer, tables.deadletters, r, emitted_at_ms)
                chunk.rows += 1
        if sla:
            self._look_up_clocks(sla)
            self.clocks.collect(sla, chunk.clocks)
        self._pending_rows += chunk.size - before

    def _holds(self, now: float) -> bool:
        """Whether the rows just added wait for the batch window instead of going out now."""
        chunks = self._chunks
        return (
            self.batch_window_s > 0
            and now - self._last_attempt < self.batch_window_s
            and self._failing_since is None
            and not self._spill
            and len(chunks) == 1
            and chunks[0].size < self.chunk_rows
        )

    def _replay_journal(self) -> None:
        """Hold again the records an earlier process journaled and did not send."""
        batches = self._journal.load()
        if not batches:
            return
        try:
            # With the tables known, `_add` reads the stored state of the clocks it does not
            # know (a breach cause to carry to a later stop), as it does for any new write.
            self.ensure_tables()
        except ConnectorError as exc:
            _log.warning("QuestDB at %s does not answer yet: %s", self.address, exc)
        for emitted_at_ms, records in batches:
            self._add(records, emitted_at_ms)
        _log.warning(
            "Found %d batches (%d records) that an earlier run held in %s without sending them; "
            "they go to QuestDB at %s first",
            len(batches),
            sum(len(records) for _, records in batches),
            self._journal.path,
            self.address,
        )
        self._start_retrier()

    def _seal(self, chunk: _Chunk) -> None:
        if chunk.sealed:
            return
        _event_rows(
            chunk.buffer,
            self.tables.events,
            zip(chunk.events.values(), chunk.emitted.values(), strict=True),
        )
        _clock_rows(chunk.buffer, self.tables.clocks, chunk.clocks.values())
        chunk.rows += len(chunk.events) + len(chunk.clocks)
        chunk.events = {}
        chunk.emitted = {}
        chunk.clocks = {}
        chunk.sealed = True

    def _enforce_bound(self) -> None:
        if self._pending_rows > self.max_buffered_rows:
            self._spill_memory()

    def _spill_if_failing(self) -> None:
        """While QuestDB is failing or the spill is not yet drained, put pending rows on disk.

        The dataflow may commit its snapshot right after the write: rows kept only in memory
        would then be lost by a crash. Behind a spill that is being drained, new rows must
        wait their turn on disk too, so that they reach QuestDB after the older ones.
        """
        if self._chunks and (self._failing_since is not None or self._spill):
            self._spill_memory()
            self._start_retrier()

    def _spill_memory(self) -> None:
        """Seal every chunk held in memory and append it to the spill, oldest first."""
        spilled = 0
        while self._chunks:
            chunk = self._chunks[0]
            self._seal(chunk)
            if chunk.rows:
                self._spill.append(bytes(chunk.buffer), chunk.rows)
            self._chunks.popleft()
            self._pending_rows -= chunk.rows
            spilled += chunk.rows
        self._journal.clear()
        if spilled:
            _log.debug("Spilled %d rows to %s", spilled, self._spill.folder)

    def _flush(self, now: float, *, force: bool, frames: int | None = None) -> bool:
        """Send what is pending, spilled rows first; True if nothing is left.

        Without `force`, and while a retry thread drains the spill, the caller's thread sends
        nothing (its rows go to the spill behind the older ones): a long catch-up after an
        outage never holds up the dataflow. `frames` bounds how many spilled requests one call
        sends, so the retry thread lets go of the lock between them.
        """
        if not self._chunks and not self._spill:
            return True
        if not force and now < self._next_attempt:
            return False
        if not force and frames is None and self._spill and self._retrier is not None:
            return False
        self._last_attempt = now
        sent = 0
        try:
            if not self._tables_ready:
                self.ensure_tables()
            # Spilled rows are older than any row in memory: they go first.
            while (frame := self._spill.peek()) is not None:
                if frames is not None:
                    if frames <= 0:
                        self._on_success(now, sent)  # QuestDB answers: the outage is over
                        return False
                    frames -= 1
                payload, rows = frame
                try:
                    self._http.write(payload)
                except IlpRejectedError as exc:
                    self._reject(rows, exc)
                else:
                    self._rows_written += rows
                    sent += rows
                self._spill.pop()
            while self._chunks:
                chunk = self._chunks[0]
                self._seal(chunk)
                try:
                    self._sender.flush(chunk.buffer, clear=False)
                except _IngressError as exc:
                    if _REJECTED.search(str(exc)) is None:
                        raise
                    self._reject(chunk.rows, exc)
                else:
                    self._rows_written += chunk.rows
                    sent += chunk.rows
                self._chunks.popleft()
                self._pending_rows -= chunk.rows
            self._journal.clear()
        except (_IngressError, ConnectorError) as exc:
            self._on_failure(now, exc, sent)
            return False
        self._on_success(now, sent)
        return True

    def _reject(self, rows: int, exc: Exception) -> None:
        self._rows_rejected += rows
        _log.error(
            "QuestDB at %s refused a request of %d rows as invalid; they are dropped "
            "(was a table altered?): %s",
            self.address,
            rows,
            exc,
        )

    def _start_retrier(self) -> None:
        if self._background_retry and self._retrier is None and not self._closed:
            self._retrier = threading.Thread(
                target=self._retry_loop, name="questdb-writer-retry", daemon=True
            )
            self._retrier.start()

    def _retry_loop(self) -> None:
        """Send pending rows from a daemon thread until none is left or the writer closes.

        Waits out the back-off after a failure; otherwise drains the spill a few requests at
        a time, letting go of the lock in between so the dataflow's writes are not held up.
        """
        try:
            self._retry_until_done()
        finally:
            # Also after an error (a full spill): the dataflow's own writes take over.
            with self._lock:
                if self._retrier is threading.current_thread():
                    self._retrier = None

    def _retry_until_done(self) -> None:
        while True:
            with self._lock:
                if self._closed or not (self._chunks or self._spill):
                    self._retrier = None
                    return
                now = self._monotonic()
                wait = self._next_attempt - now
                if self.batch_window_s > 0 and self._failing_since is None and not self._spill:
                    wait = max(wait, self._last_attempt + self.batch_window_s - now)
                if wait <= 0:
                    done = self._flush(now, force=False, frames=_FRAMES_PER_TURN)
                    if not done and self._failing_since is None:
                        wait = 0.0  # more to send: go on after letting the writer in
                    elif not done:
                        wait = max(self._next_attempt - self._monotonic(), 0.05)
                    self._spill_if_failing()
            time.sleep(max(wait, 0.0) if wait > 0 else 0.001)

    def _on_failure(self, now: float, exc: Exception, sent: int) -> None:
        self._start_retrier()
        self._failures += 1
        self._failures_in_row += 1
        first, largest = self.retry_backoff_s
        wait = min(largest, first * 2 ** (self._failures_in_row - 1))
        self._next_attempt = now + wait
        if self._failing_since is None:
            self._failing_since = now
            self._last_failure_log = now
            _log.warning(
                "QuestDB at %s cannot take rows (%s); keeping %d rows on disk in %s and "
                "retrying in %.1f s",
                self.address,
                exc,
                self._pending_rows + self._spill.rows,
                self._spill.folder or "a new temporary folder",
                wait,
            )
        elif now - self._last_failure_log >= 30.0:
            self._last_failure_log = now
            _log.warning(
                "QuestDB at %s still cannot take rows after %.0f s (%s); %d rows kept on disk "
                "(%d bytes)",
                self.address,
                now - self._failing_since,
                exc,
                self._pending_rows + self._spill.rows,
                self._spill.size,
            )
        if sent:
            _log.info("Sent %d buffered rows to QuestDB at %s before it failed", sent, self.address)

    def _on_success(self, now: float, sent: int) -> None:
        if self._failing_since is not None:
            _log.warning(
                "QuestDB at %s takes rows again after %.1f s; sent %d buffered rows",
                self.address,
                now - self._failing_since,
                sent,
            )
        self._failing_since = None
        self._failures_in_row = 0
        self._next_attempt = 0.0

    def _look_up_clocks(self, records: list[SlaRecord]) -> None:
        """Teach the clock tracker what QuestDB stores about clocks it does not know.

        Best effort: skipped while QuestDB is failing, and a failed look-up only costs the
        carried-over cause (or the clean-up of a moved start) of those clocks, or the state an
        `attempt` record keeps (then read from the record, `state_of_attempt`).
        """
        if self._failing_since is not None or not self._tables_ready:
            return
        wanted = self.clocks.unknown_needing_lookup(records)
        if not wanted:
            return
        try:
            found = read_stored_clocks(self._http, self.tables.clocks, wanted)
        except (ConnectorError, KeyError, TypeError, ValueError) as exc:
            _log.warning("Could not read stored clocks from QuestDB at %s: %s", self.address, exc)
            return
        tracker = self.clocks
        for clock, (started, cause, _updated, status) in found.items():
            tracker.remember(clock, started, cause, status)
