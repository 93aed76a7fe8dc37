"""Reading slawatch's QuestDB tables over PG wire for the reports.

The reports read `<prefix>clocks` (one row per clock, its latest state) and, for first-contact
resolution, `<prefix>events`. Rows come back as `ClockRow` values with instants in epoch ms UTC;
the arithmetic of each report is done in Python on those rows (`flows.reports.builders`), so a
report's numbers can be checked against the SLA records they came from.

Example:
    >>> store = ReportStore.from_settings(Settings())  # doctest: +SKIP
    >>> rows = store.clocks(started_at=(week_start, week_end))  # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import psycopg

from flows.connectors.questdb import TableNames
from flows.exceptions import ConnectorError
from flows.settings import Settings

__all__ = ["ClockRow", "ReportStore", "SegmentRow", "SurveyRow"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_RANGE_COLUMNS: Final = frozenset({"started_at", "deadline_at", "stopped_at", "updated_at"})
_CLOCK_COLUMNS: Final = (
    "started_at, conversation_id, cycle, metric, seq, status, open, breached, cause, "
    "deadline_at, stopped_at, elapsed_s, target_s, agent_id, lead_source, attempts, updated_at, "
    "policy_id, lead_status, outcome, attempts_required, team_id, priority, budget_pct"
)


def _ms(value: datetime | None) -> int | None:
    """Turn a PG-wire timestamp (naive, UTC) into epoch ms."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class ClockRow:
    """One clock as `<prefix>clocks` stores it: its latest state (instants in epoch ms UTC).

    Attributes:
        started_at: When the clock started.
        conversation_id: The conversation.
        cycle: The cycle of the conversation.
        metric: The SLA metric.
        seq: The clock's number within the cycle.
        status: Its latest status.
        open: Whether it still runs.
        breached: Whether it has breached (a breach stands after the clock stops).
        cause: The breach cause, if breached.
        deadline_at: The deadline, if the clock has one.
        stopped_at: When it stopped, if it did.
        elapsed_s: Counted seconds from start to its latest record (the time taken, once it
            stopped).
        target_s: The target in counted seconds, if any.
        agent_id: The assignee on the latest record.
        lead_source: The lead source on the latest record.
        attempts: Contact attempts (`contact_attempts` only).
        updated_at: The instant of its latest record.
        policy_id: The policy on its latest record.
        lead_status: The lead status on its latest record (lead metrics only).
        resolved_as: The resolve's outcome (`won`, `lost`, …) on a `resolution` clock ended
            by a resolve that gave one.
        attempts_required: The policy's minimum attempts (`contact_attempts` only).
        team_id: The team on the latest record; on a team stint (`team_ownership`) the team
            that owned it, also when it ended at the hand-over to the next team.
        priority: The conversation's priority on the latest record.
        budget_pct: On an ended team stint, its counted time as a per cent of the cycle's
            `resolution` target (None while it runs, or without a resolution target).
    """

    started_at: int
    conversation_id: str
    cycle: int
    metric: str
    seq: int
    status: str
    open: bool
    breached: bool
    cause: str | None
    deadline_at: int | None
    stopped_at: int | None
    elapsed_s: float
    target_s: float | None
    agent_id: str | None
    lead_source: str | None
    attempts: int | None
    updated_at: int
    policy_id: str | None = None
    lead_status: str | None = None
    resolved_as: str | None = None
    attempts_required: int | None = None
    team_id: str | None = None
    priority: str | None = None
    budget_pct: float | None = None

    @property
    def outcome(self) -> str:
        """`met`, `breached` (also `stopped` and `closed`), `cancelled`, or `open` (undecided).

        A clock counts as `breached` from its breach on, even while it still runs: a late
        reply does not undo a breach. `cancelled` wins over a breach (the clock counts in
        neither side of compliance). Any other unbreached status is `open`.
        """
        if self.status == "cancelled":
            return "cancelled"
        if self.breached:
            return "breached"
        if self.status == "met":
            return "met"
        return "open"

    @property
    def fulfilled(self) -> bool:
        """Whether the clock was fulfilled (`met`, or `stopped` after its breach).

        Only a fulfilled clock has a time taken (`elapsed_s`) that report percentiles use;
        a `closed` clock ended by a resolve without being fulfilled is not one.
        """
        return self.status in ("met", "stopped")

    @property
    def cycle_key(self) -> tuple[str, int]:
        """The clock's conversation and cycle."""
        return (self.conversation_id, self.cycle)


@dataclass(frozen=True, slots=True)
class SurveyRow:
    """One survey as `<prefix>csat` stores it: sent, and its latest rating (instants epoch ms).

    Attributes:
        survey_at: When it took effect first: its sending, else its rating.
        conversation_id: The conversation.
        cycle: The cycle it belongs to.
        rating: 1-5, or None while it has not been rated.
        sent: Whether a `sent` was seen (a rating without one counts as rated, not as sent).
        agent_id: The agent credited.
        team_id: The team at the cycle's resolve.
        breached: Whether a clock of the cycle breached.
        recovered: Whether a service recovery was sent in the cycle.
    """

    survey_at: int
    conversation_id: str
    cycle: int
    rating: int | None
    sent: bool
    agent_id: str | None
    team_id: str | None
    breached: bool
    recovered: bool


@dataclass(frozen=True, slots=True)
class SegmentRow:
    """One counted handle segment as `<prefix>handle` stores it (withdrawn ones left out).

    Attributes:
        started_at: Its start, epoch ms UTC.
        conversation_id: The conversation.
        cycle: The cycle it belongs to.
        agent_id: The agent who handled it.
        team_id: The conversation's team while the agent held it.
        handle_s: Its wall-clock seconds.
    """

    started_at: int
    conversation_id: str
    cycle: int
    agent_id: str | None
    team_id: str | None
    handle_s: float


def _row(values: Sequence[Any]) -> ClockRow:
    """Build a `ClockRow` from one result row, in `_CLOCK_COLUMNS` order.

    Null `elapsed_s` reads as 0.0; null `started_at` and `updated_at` as 0 (the epoch).
    """
    (started, conv, cycle, metric, seq, status, is_open, breached, cause, deadline, stopped) = (
        values[:11]
    )
    elapsed, target, agent, source, attempts, updated, policy = values[11:18]
    lead_status, resolved_as, required, team, priority, budget = values[18:]
    return ClockRow(
        started_at=_ms(started) or 0,
        conversation_id=conv,
        cycle=cycle,
        metric=metric,
        seq=seq,
        status=status,
        open=bool(is_open),
        breached=bool(breached),
        cause=cause,
        deadline_at=_ms(deadline),
        stopped_at=_ms(stopped),
        elapsed_s=float(elapsed or 0.0),
        target_s=None if target is None else float(target),
        agent_id=agent,
        lead_source=source,
        attempts=attempts,
        updated_at=_ms(updated) or 0,
        policy_id=policy,
        lead_status=lead_status,
        resolved_as=resolved_as,
        attempts_required=required,
        team_id=team,
        priority=priority,
        budget_pct=None if budget is None else float(budget),
    )


def _timestamp(ms: int) -> datetime:
    """Return epoch ms as the naive UTC datetime that QuestDB compares timestamps with."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).replace(tzinfo=None)


class ReportStore:
    """Reads the tables of one table prefix from QuestDB's PostgreSQL wire port.

    Each query opens its own short connection (autocommit), so a store holds no connection
    between calls and is cheap to keep. It only reads; nothing here writes to QuestDB.

    Args:
        conninfo: libpq connection string (host, port, user, password, dbname, sslmode).
        prefix: Table name prefix (`sla_` by default).
        where: `host:port` shown in error messages.
    """

    def __init__(self, conninfo: str, *, prefix: str = "sla_", where: str = "QuestDB") -> None:
        self.conninfo = conninfo
        self.tables = TableNames(prefix)
        self.where = where

    @classmethod
    def from_settings(cls, settings: Settings) -> ReportStore:
        """Build the store from `SLAWATCH_QUESTDB_*` settings and `SLAWATCH_TABLE_PREFIX`.

        The PG-wire host is the host of `SLAWATCH_QUESTDB_HTTP` (127.0.0.1 if it names
        none), the port `SLAWATCH_QUESTDB_PG_PORT`; database `qdb`, no TLS, and a 5 s connect
        timeout.

        Args:
            settings: the monitor's settings.

        Returns:
            A store for the monitor's table prefix.
        """
        host = settings.questdb_http.rsplit(":", 1)[0] or "127.0.0.1"
        port = settings.questdb_pg_port
        password = settings.questdb_password.get_secret_value()
        conninfo = psycopg.conninfo.make_conninfo(
            host=host,
            port=port,
            user=settings.questdb_user,
            password=password,
            dbname="qdb",
            sslmode="disable",
            connect_timeout=5,
        )
        return cls(conninfo, prefix=settings.table_prefix, where=f"{host}:{port}")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query and return its rows.

        Args:
            sql: the query, with `%s` placeholders.
            params: the values bound to the placeholders.

        Returns:
            Every row, as psycopg returns them (timestamps as naive UTC datetimes).

        Raises:
            ConnectorError: QuestDB cannot be reached, the tables do not exist, or QuestDB
                refused the query.
        """
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                return conn.execute(sql, params).fetchall()
        except psycopg.OperationalError as exc:
            msg = (
                f"QuestDB does not answer on PG wire at {self.where}; start it with "
                "`slawatch stack up` (then pass --from-stack) or set SLAWATCH_QUESTDB_HTTP "
                "and SLAWATCH_QUESTDB_PG_PORT"
            )
            raise ConnectorError(msg) from exc
        except psycopg.Error as exc:
            if "does not exist" in str(exc):
                msg = (
                    f"QuestDB at {self.where} has no table {self.tables.clocks}; run the "
                    "monitor or `slawatch backfill` first, or set SLAWATCH_TABLE_PREFIX"
                )
                raise ConnectorError(msg) from exc
            msg = f"QuestDB at {self.where} refused a report query: {exc}".rstrip()
            raise ConnectorError(msg) from exc

    def clocks(self, **ranges: tuple[int | None, int | None]) -> list[ClockRow]:
        """Return the clocks whose instants fall in the given half-open ranges (epoch ms).

        Args:
            **ranges: `column=(from, before)` for `started_at`, `deadline_at`, `stopped_at` or
                `updated_at`: `from <= column < before`; either bound may be None.

        Returns:
            The matching clocks, each once (the table holds one row per clock), in no
            particular order; every clock when no range is given.

        Raises:
            ValueError: A range names another column.
        """
        where: list[str] = []
        params: list[Any] = []
        for column, (low, high) in sorted(ranges.items()):
            if column not in _RANGE_COLUMNS:
                msg = f"cannot filter clocks on {column!r}"
                raise ValueError(msg)
            if low is not None:
                where.append(f"{column} >= %s")
                params.append(_timestamp(low))
            if high is not None:
                where.append(f"{column} < %s")
                params.append(_timestamp(high))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        # The table name comes from a validated prefix and the columns from a fixed set;
        # values are bound parameters.
        sql = f"SELECT {_CLOCK_COLUMNS} FROM {self.tables.clocks}{clause}"  # noqa: S608
        return [_row(values) for values in self.query(sql, params)]

    def resolutions_per_cycle(
        self, *, started_from: int, started_before: int
    ) -> Counter[tuple[str, int]]:
        """Count, per cycle, the records that ended its `resolution` clock (met or stopped).

        More than one means the cycle was resolved, reopened and resolved again.

        Args:
            started_from: the first `started_at` counted (epoch ms UTC, included).
            started_before: the end of the range (epoch ms UTC, excluded).

        Returns:
            Records per `(conversation_id, cycle)`; a cycle never resolved is absent (0).

        Raises:
            ConnectorError: QuestDB cannot be read.
        """
        sql = (
            "SELECT conversation_id, cycle, count() "  # noqa: S608 - validated table name
            f"FROM {self.tables.events} "
            "WHERE metric = 'resolution' AND status IN ('met', 'stopped') "
            "AND started_at >= %s AND started_at < %s"
        )
        rows = self.query(sql, [_timestamp(started_from), _timestamp(started_before)])
        return Counter({(conv, cycle): n for conv, cycle, n in rows})

    def surveys(self, start: int, end: int) -> list[SurveyRow]:
        """Read the surveys that took effect in `[start, end)` (epoch ms UTC) from `<prefix>csat`.

        Raises:
            ConnectorError: QuestDB cannot be read.
        """
        sql = (
            "SELECT survey_at, conversation_id, cycle, rating, sent_at, agent_id, team_id, "  # noqa: S608 - validated table name
            f"breached, recovered FROM {self.tables.csat} WHERE survey_at >= %s AND survey_at < %s"
        )
        return [
            SurveyRow(
                survey_at=_ms(at) or 0,
                conversation_id=conv,
                cycle=cycle,
                rating=rating,
                sent=sent_at is not None,
                agent_id=agent,
                team_id=team,
                breached=bool(breached),
                recovered=bool(recovered),
            )
            for at, conv, cycle, rating, sent_at, agent, team, breached, recovered in self.query(
                sql, [_timestamp(start), _timestamp(end)]
            )
        ]

    def segments(self, start: int, end: int) -> list[SegmentRow]:
        """Read the counted handle segments started in `[start, end)` (epoch ms UTC).

        Raises:
            ConnectorError: QuestDB cannot be read.
        """
        sql = (
            "SELECT started_at, conversation_id, cycle, agent_id, team_id, handle_s "  # noqa: S608 - validated table name
            f"FROM {self.tables.handle} WHERE started_at >= %s AND started_at < %s "
            "AND ended_by <> 'withdrawn'"
        )
        return [
            SegmentRow(_ms(at) or 0, conv, cycle, agent, team, float(seconds or 0.0))
            for at, conv, cycle, agent, team, seconds in self.query(
                sql, [_timestamp(start), _timestamp(end)]
            )
        ]
