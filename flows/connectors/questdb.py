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
HTTP request (one per `chunk_rows` records for bigger batches). When QuestDB cannot be reached,
the rows stay in a bounded in-memory buffer and are sent again, oldest first, by the next write
or `maybe_flush` after a back-off; nothing is lost unless the buffer overflows (then the oldest
rows go, with an error in the log). The module imports nothing from Bytewax;
`flows.connectors.questdb_sink` adapts the writer to a sink.

Example:
    >>> writer = QuestDBWriter("http::addr=127.0.0.1:9000;")  # doctest: +SKIP
    >>> writer.ensure_tables()  # doctest: +SKIP
    >>> writer.write_batch(records, emitted_at_ms=1_764_000_000_000)  # doctest: +SKIP
    >>> writer.close()  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
import logging
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, Final

from questdb import QuestDBError as _IngressError
from questdb import Sender, TimestampMicros, TimestampNanos

from flows.connectors.questdb_views import DEFAULT_TIMEZONE, create_view_statements
from flows.core.records import ActionRecord, DeadLetter, Record, SlaRecord
from flows.core.timefmt import parse_instant
from flows.exceptions import ConnectorError

__all__ = [
    "CLOSED_STATUSES",
    "DEFAULT_PREFIX",
    "OPEN_STATUSES",
    "ClockTracker",
    "Heartbeat",
    "QuestDBWriter",
    "TableNames",
    "WriterStats",
    "clock_is_open",
    "create_table_statements",
]

_log = logging.getLogger(__name__)

DEFAULT_PREFIX: Final = "sla_"
DEFAULT_TTL_DAYS: Final = 90

#: Statuses after which a clock is still running (it can still stop, pause or breach).
OPEN_STATUSES: Final = frozenset({"started", "warning", "retargeted", "resumed", "paused"})
#: Statuses that end a clock for good.
CLOSED_STATUSES: Final = frozenset({"met", "stopped", "cancelled"})
# A `service_window` that breached is over (SPEC §4): the next customer message opens a new one.
_ENDS_AT_BREACH: Final = frozenset({"service_window"})

_PREFIX_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|")
# QuestDB answers rows it cannot store with HTTP 400 and this code; resending cannot help.
_REJECTED: Final = re.compile(r'"code"\s*:\s*"invalid"')
_SENDER_DEFAULTS: Final = (
    # The writer flushes itself and keeps failed rows; the Sender only retries briefly so a
    # QuestDB outage does not hold up the dataflow.
    ("auto_flush", "off"),
    ("retry_timeout", "1000"),
    ("request_timeout", "5000"),
    # An explicit version stops the Sender from asking the server at start-up, so the writer
    # can be built while QuestDB is down.
    ("protocol_version", "2"),
)
_MS_TO_NS: Final = 1_000_000
_CLOCK_LOOKUP_CHUNK: Final = 200


# -- tables ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TableNames:
    """The names of the five tables for one prefix (`sla_events`, `sla_clocks`, ...)."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if _PREFIX_RE.fullmatch(self.prefix) is None:
            msg = f"table prefix {self.prefix!r} must be letters, digits and underscores"
            raise ValueError(msg)

    @property
    def events(self) -> str:
        """Every SLA record."""
        return f"{self.prefix}events"

    @property
    def clocks(self) -> str:
        """One row per clock: its latest state."""
        return f"{self.prefix}clocks"

    @property
    def actions(self) -> str:
        """Every action record (notify, reassign)."""
        return f"{self.prefix}actions"

    @property
    def deadletters(self) -> str:
        """Every dead letter."""
        return f"{self.prefix}deadletters"

    @property
    def heartbeat(self) -> str:
        """One row per worker heartbeat."""
        return f"{self.prefix}heartbeat"

    def all(self) -> tuple[str, str, str, str, str]:
        """Return the five table names."""
        return (self.events, self.clocks, self.actions, self.deadletters, self.heartbeat)


_SUFFIX: Final = " PARTITION BY DAY TTL {ttl} DAYS WAL DEDUP UPSERT KEYS({keys})"

_EVENTS_COLUMNS: Final = """
    at TIMESTAMP,
    conversation_id VARCHAR,
    cycle INT,
    metric SYMBOL,
    seq INT,
    status SYMBOL,
    policy_id SYMBOL,
    target_s DOUBLE,
    started_at TIMESTAMP,
    warn_at TIMESTAMP,
    deadline_at TIMESTAMP,
    stopped_at TIMESTAMP,
    elapsed_s DOUBLE,
    breached BOOLEAN,
    agent_id SYMBOL,
    team_id SYMBOL,
    priority SYMBOL,
    segment SYMBOL,
    lead_source SYMBOL,
    channel SYMBOL,
    late BOOLEAN,
    attempts INT,
    cause SYMBOL,
    emitted_at TIMESTAMP"""

_CLOCKS_COLUMNS: Final = """
    started_at TIMESTAMP,
    conversation_id VARCHAR,
    cycle INT,
    metric SYMBOL,
    seq INT,
    status SYMBOL,
    open BOOLEAN,
    breached BOOLEAN,
    cause SYMBOL,
    warn_at TIMESTAMP,
    deadline_at TIMESTAMP,
    stopped_at TIMESTAMP,
    elapsed_s DOUBLE,
    target_s DOUBLE,
    agent_id SYMBOL,
    team_id SYMBOL,
    priority SYMBOL,
    segment SYMBOL,
    lead_source SYMBOL,
    channel SYMBOL,
    attempts INT,
    policy_id SYMBOL,
    updated_at TIMESTAMP"""

_ACTIONS_COLUMNS: Final = """
    at TIMESTAMP,
    conversation_id VARCHAR,
    cycle INT,
    metric SYMBOL,
    seq INT,
    action SYMBOL,
    trigger SYMBOL,
    policy_id SYMBOL,
    from_agent SYMBOL,
    to_agent SYMBOL,
    notify VARCHAR,
    reason VARCHAR,
    emitted_at TIMESTAMP"""

_DEADLETTERS_COLUMNS: Final = """
    emitted_at TIMESTAMP,
    source VARCHAR,
    reason VARCHAR,
    raw VARCHAR"""

_HEARTBEAT_COLUMNS: Final = """
    at TIMESTAMP,
    worker SYMBOL,
    watermark TIMESTAMP,
    lag_ms LONG,
    events_in LONG,
    records_out LONG,
    dead_letters LONG"""


def create_table_statements(
    names: TableNames, ttl_days: int = DEFAULT_TTL_DAYS
) -> list[tuple[str, str]]:
    """Return the `CREATE TABLE IF NOT EXISTS` statement of each table, with its name.

    Args:
        names: The table names.
        report_timezone: IANA zone whose local days the materialized views bucket by
            (`flows.connectors.questdb_views`).
        ttl_days: Partitions older than this many days (by designated timestamp) are dropped.

    Returns:
        `(table, sql)` pairs, in the order they are run.
    """
    specs = (
        (names.events, _EVENTS_COLUMNS, "at", "at, conversation_id, cycle, metric, seq, status"),
        (
            names.clocks,
            _CLOCKS_COLUMNS,
            "started_at",
            "started_at, conversation_id, cycle, metric, seq",
        ),
        (
            names.actions,
            _ACTIONS_COLUMNS,
            "at",
            "at, conversation_id, cycle, metric, seq, action, trigger",
        ),
        (names.deadletters, _DEADLETTERS_COLUMNS, "emitted_at", "emitted_at, source"),
        (names.heartbeat, _HEARTBEAT_COLUMNS, "at", "at, worker"),
    )
    return [
        (
            table,
            f"CREATE TABLE IF NOT EXISTS {table} ({columns}\n) TIMESTAMP({ts})"
            + _SUFFIX.format(ttl=ttl_days, keys=keys),
        )
        for table, columns, ts, keys in specs
    ]


# -- clocks ----------------------------------------------------------------------------------

ClockId = tuple[str, int, str, int]
EventKey = tuple[int, str, int, str, int, str]
"""A row of `<prefix>events`: `(at, conversation_id, cycle, metric, seq, status)`."""
ClockKey = tuple[int, str, int, str, int]
"""A row of `<prefix>clocks`: `(started_at, conversation_id, cycle, metric, seq)`."""


_SLA_FIELDS: Final = tuple(f.name for f in fields(SlaRecord) if f.init)
_SLA_VALUES: Final = attrgetter(*_SLA_FIELDS)
_SLA_INDEX: Final = {name: i for i, name in enumerate(_SLA_FIELDS)}


def _replace(record: SlaRecord, **changes: Any) -> SlaRecord:
    """`dataclasses.replace` for an `SlaRecord`, several times faster."""
    values = list(_SLA_VALUES(record))
    for name, value in changes.items():
        values[_SLA_INDEX[name]] = value
    return SlaRecord(*values)


def clock_is_open(record: SlaRecord) -> bool:
    """Whether the clock is still running after `record`.

    A clock runs while its latest status is `started`, `warning`, `retargeted`, `resumed` or
    `paused`, and after `breached` (a breached clock keeps running until it stops, SPEC §4),
    except a `service_window`, which is over once breached. `met`, `stopped` and `cancelled`
    end it.
    """
    status = record.status
    if status in OPEN_STATUSES:
        return True
    return status == "breached" and record.metric not in _ENDS_AT_BREACH


class ClockTracker:
    """Turns SLA records into `<prefix>clocks` rows: the latest state of each clock.

    It remembers, for the most recently seen clocks, where their row is (`started_at`) and the
    cause of their breach, because the engine puts `cause` only on the `breached` record while
    the row must keep it through a later `stopped` or `paused`. A late correction can move a
    clock's start (an earlier customer message arrived late); the row keyed on the old start is
    then rewritten as `cancelled` so the clock is not counted twice.

    Args:
        max_clocks: How many clocks to remember (least recently seen are forgotten first).
    """

    __slots__ = ("_known", "max_clocks")

    def __init__(self, max_clocks: int = 200_000) -> None:
        if max_clocks < 1:
            msg = f"max_clocks must be at least 1, not {max_clocks}"
            raise ValueError(msg)
        self.max_clocks = max_clocks
        self._known: OrderedDict[ClockId, tuple[int, str | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._known)

    def __contains__(self, clock: object) -> bool:
        return clock in self._known

    def remember(self, clock: ClockId, started_at: int, cause: str | None) -> None:
        """Record where a clock's row is and its breach cause (e.g. read back from QuestDB)."""
        known = self._known
        known[clock] = (started_at, cause)
        known.move_to_end(clock)
        if len(known) > self.max_clocks:
            known.popitem(last=False)

    def needs_lookup(self, record: SlaRecord) -> bool:
        """Whether only the stored table can tell this record's breach cause or former start.

        True for a clock this tracker does not know whose record is a late correction (it may
        have moved the clock's start) or is breached without a cause (carried from earlier).
        """
        return (record.late or (record.breached and record.cause is None)) and (
            record.identity() not in self._known
        )

    def collect(self, records: Iterable[SlaRecord], into: dict[ClockKey, SlaRecord]) -> None:
        """Fold records, in emission order, into the clock rows `into` (last state wins).

        `into` maps each row key to the record whose values the row takes (its `cause` carried
        over while breached). A key already present is replaced, so rows collected over several
        batches collapse to one per clock before they are written.
        """
        known = self._known
        get = known.get
        limit = self.max_clocks
        for emitted in records:
            record = emitted
            conv, cycle, metric, seq = (
                record.conversation_id,
                record.cycle,
                record.metric,
                record.seq,
            )
            clock = (conv, cycle, metric, seq)
            started_at = record.started_at
            breached = record.breached
            previous = get(clock)
            if previous is None:
                into[(started_at, conv, cycle, metric, seq)] = record
                # A new key goes to the end of the OrderedDict: no move_to_end needed.
                known[clock] = (started_at, record.cause if breached else None)
                if len(known) > limit:
                    known.popitem(last=False)
                continue
            old_start, old_cause = previous
            cause = record.cause
            if cause is None and breached:
                cause = old_cause
                record = _replace(record, cause=cause)
            if old_start != started_at:
                into[(old_start, conv, cycle, metric, seq)] = _replace(
                    record,
                    started_at=old_start,
                    status="cancelled",
                    breached=False,
                    cause=None,
                )
            into[(started_at, conv, cycle, metric, seq)] = record
            known[clock] = (started_at, cause if breached else None)
            known.move_to_end(clock)


def collapse_clocks(records: Iterable[SlaRecord]) -> list[SlaRecord]:
    """Return the latest record of each clock among `records`, as a fresh tracker folds them."""
    rows: dict[ClockKey, SlaRecord] = {}
    ClockTracker().collect(records, rows)
    return list(rows.values())


# -- heartbeat and stats ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A worker's periodic report, stored in `<prefix>heartbeat` (stalled-monitor alerts).

    Attributes:
        worker: Which worker reports (e.g. `"0"`, or `host:index`).
        at: Wall-clock instant of the report, epoch ms UTC.
        watermark: The worker's event-time watermark, epoch ms UTC, if it has one yet.
        lag_ms: How far the watermark is behind the wall clock, in ms, if known.
        events_in: Input events counted by the worker (the caller decides since when).
        records_out: Records emitted by the worker.
        dead_letters: Dead letters emitted by the worker.
    """

    worker: str
    at: int
    watermark: int | None = None
    lag_ms: int | None = None
    events_in: int = 0
    records_out: int = 0
    dead_letters: int = 0


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters of one writer since it was built (rows are table rows, clocks included).

    Attributes:
        rows_written: Rows QuestDB accepted.
        rows_pending: Rows held in memory, not yet accepted.
        rows_dropped: Rows thrown away because the buffer overflowed while QuestDB was down.
        rows_rejected: Rows QuestDB refused as invalid (not retried).
        failures: Failed flush attempts.
        failing_since: Monotonic time of the first failure of the current outage, or None.
    """

    rows_written: int
    rows_pending: int
    rows_dropped: int
    rows_rejected: int
    failures: int
    failing_since: float | None


# -- configuration and HTTP -------------------------------------------------------------------


def _parse_conf(conf: str) -> tuple[str, dict[str, str]]:
    """Split a `questdb` client configuration string into its protocol and its parameters."""
    protocol, sep, rest = conf.strip().partition("::")
    if not sep or protocol not in ("http", "https"):
        msg = (
            f"QuestDB configuration {conf!r} must start with http:: or https:: "
            "(ILP over HTTP, e.g. 'http::addr=127.0.0.1:9000;')"
        )
        raise ValueError(msg)
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        eq = rest.find("=", i)
        if eq < 0:
            msg = f"QuestDB configuration {conf!r}: {rest[i:]!r} is not key=value"
            raise ValueError(msg)
        key = rest[i:eq].strip()
        value: list[str] = []
        j = eq + 1
        while j < n:
            if rest[j] == ";":
                if j + 1 < n and rest[j + 1] == ";":  # `;;` escapes a semicolon
                    value.append(";")
                    j += 2
                    continue
                break
            value.append(rest[j])
            j += 1
        params[key] = "".join(value)
        i = j + 1
    if "addr" not in params:
        msg = f"QuestDB configuration {conf!r} has no addr=host:port"
        raise ValueError(msg)
    return protocol, params


def _format_conf(protocol: str, params: dict[str, str]) -> str:
    body = "".join(f"{key}={value.replace(';', ';;')};" for key, value in params.items())
    return f"{protocol}::{body}"


class _Http:
    """QuestDB's REST `/exec` endpoint, for DDL and small reads."""

    def __init__(self, protocol: str, params: dict[str, str], timeout_s: float) -> None:
        addr = params["addr"]
        if ":" not in addr:
            addr = f"{addr}:9000"
        self.addr = addr
        self.base = f"{protocol}://{addr}/exec?"
        self.timeout_s = timeout_s
        self.headers: dict[str, str] = {}
        if "token" in params:
            self.headers["Authorization"] = f"Bearer {params['token']}"
        elif "username" in params:
            pair = f"{params['username']}:{params.get('password', '')}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        self.context: ssl.SSLContext | None = None
        if protocol == "https":
            self.context = ssl.create_default_context(cafile=params.get("tls_roots"))
            if params.get("tls_verify") == "unsafe_off":
                self.context.check_hostname = False
                self.context.verify_mode = ssl.CERT_NONE

    def execute(self, sql: str, timeout_s: float | None = None) -> dict[str, Any]:
        """Run one statement and return QuestDB's JSON answer.

        Raises:
            ConnectorError: QuestDB cannot be reached or refused the statement.
        """
        url = self.base + urllib.parse.urlencode({"query": sql})
        request = urllib.request.Request(url, headers=self.headers)  # noqa: S310 - http(s) only
        try:
            with urllib.request.urlopen(  # noqa: S310 - the scheme is checked in _parse_conf
                request, timeout=timeout_s or self.timeout_s, context=self.context
            ) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            try:
                detail = str(json.loads(detail).get("error", detail))
            except ValueError:
                pass
            msg = f"QuestDB at {self.addr} refused {_short(sql)}: HTTP {exc.code} {detail}"
            raise ConnectorError(msg) from None
        except (OSError, ValueError) as exc:
            msg = f"QuestDB at {self.addr} cannot be reached: {exc}"
            raise ConnectorError(msg) from exc
        answer: dict[str, Any] = json.loads(body)
        return answer


def _short(sql: str, limit: int = 80) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# -- the writer ------------------------------------------------------------------------------


def _micros(ms: int | None) -> TimestampMicros | None:
    return None if ms is None else TimestampMicros(ms * 1000)


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


class _Chunk:
    """Rows waiting to be sent in one HTTP request.

    SLA rows are kept as records, keyed like their tables' dedup keys, until the chunk is
    sealed: a row written twice before the request goes out (a correction of a record in the
    same chunk, a clock's next status) is sent once, as its latest version. The order in which
    QuestDB applies duplicate keys within one request is not something to rely on.
    """

    __slots__ = ("buffer", "clocks", "events", "rows", "sealed")

    def __init__(self, sender: Sender) -> None:
        self.buffer = sender.new_buffer()
        self.events: dict[EventKey, tuple[SlaRecord, TimestampMicros]] = {}
        self.clocks: dict[ClockKey, SlaRecord] = {}
        self.rows = 0
        self.sealed = False

    @property
    def size(self) -> int:
        """Rows in the chunk, SLA rows included."""
        return self.rows + len(self.events) + len(self.clocks)


class QuestDBWriter:
    """Writes slawatch's records to QuestDB in batches, keeping them while QuestDB is down.

    Args:
        conf: `questdb` client configuration for ILP over HTTP, e.g.
            `http::addr=127.0.0.1:9000;` (add `username=...;password=...;` or `token=...;`
            where QuestDB asks for them). Unless the string says otherwise, the Sender gets
            `auto_flush=off`, `retry_timeout=1000` and `request_timeout=5000` (ms) and
            `protocol_version=2`.
        prefix: Table name prefix (`<prefix>events`, `<prefix>clocks`, ...).
        ttl_days: TTL of every table, in days.
        max_buffered_rows: Most rows kept in memory while QuestDB cannot be reached; beyond
            it the oldest are dropped (logged as an error and counted in `stats`). At a few
            hundred bytes per row, the default holds a few hundred MB.
        chunk_rows: Most records per HTTP request: bigger batches are split, and batches
            kept while QuestDB is down are merged up to this size.
        flush_interval_s: `maybe_flush` sends buffered rows at most this often.
        retry_backoff_s: First and largest wait, in seconds, between two attempts after a
            failure (doubling in between).
        remembered_clocks: Clocks whose row and breach cause are remembered (`ClockTracker`).
        http_timeout_s: Timeout of `/exec` calls (table creation, clock look-ups).
        monotonic: The clock used for back-off and the flush timer (tests replace it).

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
        retry_backoff_s: tuple[float, float] = (0.5, 15.0),
        remembered_clocks: int = 200_000,
        http_timeout_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_buffered_rows < 1 or chunk_rows < 1 or ttl_days < 1:
            msg = "max_buffered_rows, chunk_rows and ttl_days must be at least 1"
            raise ValueError(msg)
        protocol, params = _parse_conf(conf)
        for key, value in _SENDER_DEFAULTS:
            params.setdefault(key, value)
        self.tables = TableNames(prefix)
        self.report_timezone = report_timezone
        self.ttl_days = ttl_days
        self.max_buffered_rows = max_buffered_rows
        self.chunk_rows = chunk_rows
        self.flush_interval_s = flush_interval_s
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
            rows_pending=self._pending_rows,
            rows_dropped=self._rows_dropped,
            rows_rejected=self._rows_rejected,
            failures=self._failures,
            failing_since=self._failing_since,
        )

    def ensure_tables(self) -> None:
        """Create the five tables unless they exist (runs before the first row is sent).

        Raises:
            ConnectorError: QuestDB cannot be reached or refused a statement.
        """
        statements = create_table_statements(self.tables, self.ttl_days)
        statements += create_view_statements(self.tables, self.report_timezone)
        for table, sql in statements:
            try:
                self._http.execute(sql)
            except ConnectorError as exc:
                # Two workers creating the same table at once: the loser is told it exists.
                if "already exists" not in str(exc):
                    raise
            _log.debug("QuestDB table %s is ready", table)
        self._tables_ready = True

    def write_batch(self, records: Sequence[Record], emitted_at_ms: int) -> None:
        """Add a batch of records and try to send everything pending.

        Every SLA record becomes a row of `<prefix>events` and updates its clock's row in
        `<prefix>clocks`; action records and dead letters go to their tables. If QuestDB
        cannot be reached, the rows are kept and sent again later (see the class docstring);
        this method never raises for that. A batch goes out in one HTTP request, or one per
        `chunk_rows` records when it is bigger.

        Args:
            records: The records, in the order they were emitted (a clock's last one wins).
            emitted_at_ms: Wall-clock instant of emission, epoch ms UTC (`emitted_at`).
        """
        step = self.chunk_rows
        for start in range(0, len(records), step):
            self._add(records[start : start + step], emitted_at_ms)
            self._enforce_bound()
        if records:
            self._flush(self._monotonic(), force=False)

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

    def maybe_flush(self, now: float | None = None) -> bool:
        """Send pending rows if the flush interval and any back-off have passed (for a timer).

        Args:
            now: The current `monotonic` time; read from the writer's clock when omitted.

        Returns:
            True if nothing is left pending.
        """
        if not self._chunks:
            return True
        now = self._monotonic() if now is None else now
        if now - self._last_attempt < self.flush_interval_s:
            return False
        return self._flush(now, force=False)

    def flush(self) -> bool:
        """Try to send every pending row now, ignoring any back-off.

        Returns:
            True if nothing is left pending; False if QuestDB could not take them (they are
            kept for the next attempt).
        """
        return self._flush(self._monotonic(), force=True)

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is pending, retrying for up to `timeout_s`, then close the Sender.

        Rows still pending after that are lost; the log says how many.
        """
        if self._closed:
            return
        deadline = self._monotonic() + timeout_s
        while not self.flush():
            now = self._monotonic()
            if now >= deadline:
                _log.error(
                    "Closing the QuestDB writer with %d rows that QuestDB at %s did not take; "
                    "they are lost",
                    self._pending_rows,
                    self.address,
                )
                break
            time.sleep(min(max(self._next_attempt - now, 0.1), deadline - now))
        self._closed = True
        self._sender.close(flush=False)

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
        sla: list[SlaRecord] = []
        keep = sla.append
        for r in records:
            if isinstance(r, SlaRecord):
                keep(r)
                events[(r.at, r.conversation_id, r.cycle, r.metric, r.seq, r.status)] = (r, emitted)
            elif isinstance(r, ActionRecord):
                _action_row(buffer, tables.actions, r, emitted)
                chunk.rows += 1
            else:
                _deadletter_row(buffer, tables.deadletters, r, emitted_at_ms)
                chunk.rows += 1
        if sla:
            self._look_up_clocks(sla)
            self.clocks.collect(sla, chunk.clocks)
        self._pending_rows += chunk.size - before

    def _seal(self, chunk: _Chunk) -> None:
        if chunk.sealed:
            return
        _event_rows(chunk.buffer, self.tables.events, chunk.events.values())
        _clock_rows(chunk.buffer, self.tables.clocks, chunk.clocks.values())
        chunk.rows += len(chunk.events) + len(chunk.clocks)
        chunk.events = {}
        chunk.clocks = {}
        chunk.sealed = True

    def _enforce_bound(self) -> None:
        dropped = 0
        while self._pending_rows > self.max_buffered_rows and len(self._chunks) > 1:
            chunk = self._chunks.popleft()
            self._pending_rows -= chunk.size
            dropped += chunk.size
        if dropped:
            self._rows_dropped += dropped
            _log.error(
                "QuestDB at %s has not taken rows for %.0f s: dropped the %d oldest buffered "
                "rows to stay under max_buffered_rows=%d (%d dropped so far)",
                self.address,
                self._outage_s(),
                dropped,
                self.max_buffered_rows,
                self._rows_dropped,
            )

    def _flush(self, now: float, *, force: bool) -> bool:
        if not self._chunks:
            return True
        if not force and now < self._next_attempt:
            return False
        self._last_attempt = now
        sent = 0
        try:
            if not self._tables_ready:
                self.ensure_tables()
            while self._chunks:
                chunk = self._chunks[0]
                self._seal(chunk)
                try:
                    self._sender.flush(chunk.buffer, clear=False)
                except _IngressError as exc:
                    if _REJECTED.search(str(exc)) is None:
                        raise
                    self._reject(chunk, exc)
                else:
                    self._rows_written += chunk.rows
                    sent += chunk.rows
                self._chunks.popleft()
                self._pending_rows -= chunk.rows
        except (_IngressError, ConnectorError) as exc:
            self._on_failure(now, exc, sent)
            return False
        self._on_success(now, sent)
        return True

    def _reject(self, chunk: _Chunk, exc: Exception) -> None:
        self._rows_rejected += chunk.rows
        _log.error(
            "QuestDB at %s refused a request of %d rows as invalid; they are dropped "
            "(was a table altered?): %s",
            self.address,
            chunk.rows,
            exc,
        )

    def _on_failure(self, now: float, exc: Exception, sent: int) -> None:
        self._failures += 1
        self._failures_in_row += 1
        first, largest = self.retry_backoff_s
        wait = min(largest, first * 2 ** (self._failures_in_row - 1))
        self._next_attempt = now + wait
        if self._failing_since is None:
            self._failing_since = now
            self._last_failure_log = now
            _log.warning(
                "QuestDB at %s cannot take rows (%s); keeping %d rows in memory and "
                "retrying in %.1f s",
                self.address,
                exc,
                self._pending_rows,
                wait,
            )
        elif now - self._last_failure_log >= 30.0:
            self._last_failure_log = now
            _log.warning(
                "QuestDB at %s still cannot take rows after %.0f s (%s); %d rows kept in memory",
                self.address,
                now - self._failing_since,
                exc,
                self._pending_rows,
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

    def _outage_s(self) -> float:
        if self._failing_since is None:
            return 0.0
        return self._monotonic() - self._failing_since

    def _look_up_clocks(self, records: list[SlaRecord]) -> None:
        """Teach the clock tracker what QuestDB stores about clocks it does not know.

        Best effort: skipped while QuestDB is failing, and a failed look-up only costs the
        carried-over cause (or the clean-up of a moved start) of those clocks.
        """
        if self._failing_since is not None or not self._tables_ready:
            return
        known = self.clocks._known  # noqa: SLF001
        wanted: set[ClockId] = set()
        for r in records:
            # `ClockTracker.needs_lookup`, inlined: most records are neither late nor breached.
            if r.late or (r.breached and r.cause is None):
                clock = (r.conversation_id, r.cycle, r.metric, r.seq)
                if clock not in known:
                    wanted.add(clock)
        if not wanted:
            return
        tracker = self.clocks
        conversations = sorted({clock[0] for clock in wanted})
        found: dict[ClockId, tuple[int, str | None, int]] = {}
        try:
            for i in range(0, len(conversations), _CLOCK_LOOKUP_CHUNK):
                names = ", ".join(_sql_text(c) for c in conversations[i : i + _CLOCK_LOOKUP_CHUNK])
                # Conversation ids are quoted by _sql_text; the table name is validated.
                sql = (
                    "SELECT conversation_id, cycle, metric, seq, started_at, cause, updated_at "  # noqa: S608
                    f"FROM {self.tables.clocks} WHERE conversation_id IN ({names}) "
                    "AND status <> 'cancelled'"
                )
                answer = self._http.execute(sql)
                for conv, cycle, metric, seq, started, cause, updated in answer["dataset"]:
                    clock = (conv, cycle, metric, seq)
                    updated_ms = parse_instant(updated) if updated else 0
                    if clock in wanted and (clock not in found or updated_ms >= found[clock][2]):
                        found[clock] = (parse_instant(started), cause, updated_ms)
        except (ConnectorError, KeyError, TypeError, ValueError) as exc:
            _log.warning("Could not read stored clocks from QuestDB at %s: %s", self.address, exc)
            return
        for clock, (started, cause, _updated) in found.items():
            tracker.remember(clock, started, cause)


# -- rows ------------------------------------------------------------------------------------


# Built inline, with the timestamp classes and `buffer.row` bound to locals: these loops run for
# every SLA record (twice), and a function call and five `_micros` calls per row cost as much as
# the row itself. The column order is the same as in the tables.


def _event_rows(
    buffer: Any, table: str, events: Iterable[tuple[SlaRecord, TimestampMicros]]
) -> None:
    row = buffer.row
    micros = TimestampMicros
    nanos = TimestampNanos
    for r, emitted in events:
        target = r.target
        warn_at = r.warn_at
        deadline_at = r.deadline_at
        stopped_at = r.stopped_at
        row(
            table,
            symbols={
                "metric": r.metric,
                "status": r.status,
                "policy_id": r.policy_id,
                "agent_id": r.agent_id,
                "team_id": r.team_id,
                "priority": r.priority,
                "segment": r.segment,
                "lead_source": r.lead_source,
                "channel": r.channel,
                "cause": r.cause,
            },
            columns={
                "conversation_id": r.conversation_id,
                "cycle": r.cycle,
                "seq": r.seq,
                "target_s": None if target is None else target / 1000,
                "started_at": micros(r.started_at * 1000),
                "warn_at": None if warn_at is None else micros(warn_at * 1000),
                "deadline_at": None if deadline_at is None else micros(deadline_at * 1000),
                "stopped_at": None if stopped_at is None else micros(stopped_at * 1000),
                "elapsed_s": r.elapsed / 1000,
                "breached": r.breached,
                "late": r.late,
                "attempts": r.attempts,
                "emitted_at": emitted,
            },
            at=nanos(r.at * _MS_TO_NS),
        )


def _clock_rows(buffer: Any, table: str, clocks: Iterable[SlaRecord]) -> None:
    row = buffer.row
    micros = TimestampMicros
    nanos = TimestampNanos
    for r in clocks:
        status = r.status
        metric = r.metric
        target = r.target
        warn_at = r.warn_at
        deadline_at = r.deadline_at
        stopped_at = r.stopped_at
        row(
            table,
            symbols={
                "metric": metric,
                "status": status,
                "cause": r.cause,
                "agent_id": r.agent_id,
                "team_id": r.team_id,
                "priority": r.priority,
                "segment": r.segment,
                "lead_source": r.lead_source,
                "channel": r.channel,
                "policy_id": r.policy_id,
            },
            columns={
                "conversation_id": r.conversation_id,
                "cycle": r.cycle,
                "seq": r.seq,
                # `clock_is_open`, inlined.
                "open": status in OPEN_STATUSES
                or (status == "breached" and metric not in _ENDS_AT_BREACH),
                "breached": r.breached,
                "warn_at": None if warn_at is None else micros(warn_at * 1000),
                "deadline_at": None if deadline_at is None else micros(deadline_at * 1000),
                "stopped_at": None if stopped_at is None else micros(stopped_at * 1000),
                "elapsed_s": r.elapsed / 1000,
                "target_s": None if target is None else target / 1000,
                "attempts": r.attempts,
                "updated_at": micros(r.at * 1000),
            },
            at=nanos(r.started_at * _MS_TO_NS),
        )


def _action_row(buffer: Any, table: str, r: ActionRecord, emitted: TimestampMicros) -> None:
    buffer.row(
        table,
        symbols={
            "metric": r.metric,
            "action": r.action,
            "trigger": r.trigger,
            "policy_id": r.policy_id,
            "from_agent": r.from_agent,
            "to_agent": r.to_agent,
        },
        columns={
            "conversation_id": r.conversation_id,
            "cycle": r.cycle,
            "seq": r.seq,
            "notify": r.notify,
            "reason": r.reason,
            "emitted_at": emitted,
        },
        at=TimestampNanos(r.at * _MS_TO_NS),
    )


def _deadletter_row(buffer: Any, table: str, r: DeadLetter, emitted_at_ms: int) -> None:
    buffer.row(
        table,
        columns={"source": r.source, "reason": r.reason, "raw": r.raw},
        at=TimestampNanos(emitted_at_ms * _MS_TO_NS),
    )
