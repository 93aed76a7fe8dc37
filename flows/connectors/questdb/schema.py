"""The QuestDB tables of slawatch: names per prefix and their `CREATE TABLE` statements.

Every table is WAL, partitioned by day, with a TTL and `DEDUP UPSERT KEYS` on the row's identity,
so a retry or a replay never doubles a row and a record with the same identity (a late
correction, a clock's next status) replaces the stored one. Designated timestamps are event time:
`at` for records, `started_at` for the latest state of each clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

DEFAULT_PREFIX: Final = "sla_"
DEFAULT_TTL_DAYS: Final = 90

_PREFIX_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|")


@dataclass(frozen=True, slots=True)
class TableNames:
    """The names of the seven tables for one prefix (`sla_events`, `sla_clocks`, ...)."""

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
        """Every action record (notify, reassign, recover)."""
        return f"{self.prefix}actions"

    @property
    def deadletters(self) -> str:
        """Every dead letter."""
        return f"{self.prefix}deadletters"

    @property
    def heartbeat(self) -> str:
        """One row per worker heartbeat."""
        return f"{self.prefix}heartbeat"

    @property
    def csat(self) -> str:
        """One row per customer-satisfaction survey: sent, then rated (SPEC §6 CSAT record)."""
        return f"{self.prefix}csat"

    @property
    def handle(self) -> str:
        """One row per counted handle segment (SPEC §6 handle record)."""
        return f"{self.prefix}handle"

    def all(self) -> tuple[str, ...]:
        """Return the seven table names."""
        return (
            self.events,
            self.clocks,
            self.actions,
            self.deadletters,
            self.heartbeat,
            self.csat,
            self.handle,
        )


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
    lead_status SYMBOL,
    outcome SYMBOL,
    attempts_required INT,
    budget_pct DOUBLE,
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
    lead_status SYMBOL,
    outcome SYMBOL,
    attempts_required INT,
    budget_pct DOUBLE,
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
    emitted_at TIMESTAMP,
    send SYMBOL,
    rule SYMBOL,
    withdrawn BOOLEAN"""

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

# `survey_at` is the survey's `sent_at` (its rating's instant for a rating without a `sent`): a
# rating replaces the sent row of the same survey through the upsert keys; the cycle is not a
# key, so a late correction that moves a survey to another cycle replaces its row.
_CSAT_COLUMNS: Final = """
    survey_at TIMESTAMP,
    conversation_id VARCHAR,
    cycle INT,
    survey_id VARCHAR,
    sent_at TIMESTAMP,
    rated_at TIMESTAMP,
    rating INT,
    agent_id SYMBOL,
    team_id SYMBOL,
    policy_id SYMBOL,
    breached BOOLEAN,
    recovered BOOLEAN,
    late BOOLEAN,
    emitted_at TIMESTAMP,
    channel SYMBOL"""

#: The identity of a stored action: a recovery's `rule` keeps two rules of one clock apart, and
#: a withdrawal (`withdrawn`) replaces the row of the recovery it withdraws.
_ACTIONS_KEYS: Final = "at, conversation_id, cycle, metric, seq, action, trigger, rule"
#: Action columns added with service recovery (SPEC §6 `recover`: `send`, `rule`).
_ADDED_ACTION_COLUMNS: Final = ("send SYMBOL", "rule SYMBOL", "withdrawn BOOLEAN")
# The designated timestamp is the segment's `started_at`, part of its identity: a late correction
# of how it ended (or its withdrawal, `end` = `withdrawn`) replaces the row. The record's `end`
# is stored as `ended_by`: `end` is an SQL keyword that every query would have to quote.
_HANDLE_COLUMNS: Final = """
    started_at TIMESTAMP,
    conversation_id VARCHAR,
    cycle INT,
    agent_id SYMBOL,
    team_id SYMBOL,
    ended_at TIMESTAMP,
    handle_s DOUBLE,
    ended_by SYMBOL,
    late BOOLEAN,
    emitted_at TIMESTAMP,
    channel SYMBOL"""

#: Columns added after the first release (`ALTER TABLE ... ADD COLUMN IF NOT EXISTS` at start-up).
_ADDED_COLUMNS: Final = (
    "lead_status SYMBOL",
    "outcome SYMBOL",
    "attempts_required INT",
    "budget_pct DOUBLE",
)
#: Columns added to `<prefix>csat` and `<prefix>handle` for the dashboards' `$channel` filter:
#: stored, not published (SPEC §6 gives neither record a channel).
_ADDED_SURVEY_HANDLE_COLUMNS: Final = ("channel SYMBOL",)


def create_table_statements(
    names: TableNames, ttl_days: int = DEFAULT_TTL_DAYS
) -> list[tuple[str, str]]:
    """Return the `CREATE TABLE IF NOT EXISTS` statement of each table, with its name.

    Args:
        names: The table names.
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
        (names.actions, _ACTIONS_COLUMNS, "at", _ACTIONS_KEYS),
        (names.deadletters, _DEADLETTERS_COLUMNS, "emitted_at", "emitted_at, source"),
        (names.heartbeat, _HEARTBEAT_COLUMNS, "at", "at, worker"),
        (
            names.csat,
            _CSAT_COLUMNS,
            "survey_at",
            "survey_at, conversation_id, survey_id",
        ),
        (
            names.handle,
            _HANDLE_COLUMNS,
            "started_at",
            "started_at, conversation_id, cycle, agent_id",
        ),
    )
    return [
        (
            table,
            f"CREATE TABLE IF NOT EXISTS {table} ({columns}\n) TIMESTAMP({ts})"
            + _SUFFIX.format(ttl=ttl_days, keys=keys),
        )
        for table, columns, ts, keys in specs
    ]


def migrate_table_statements(names: TableNames) -> list[tuple[str, str]]:
    """Return the statements that bring tables of an earlier release up to this one's columns.

    Tables created by 0.2 and earlier lack the stored-only columns the scorecard reads
    (`lead_status`, `outcome`, `attempts_required`), and tables made before the team clocks
    lack `budget_pct` (SPEC §4, `team_ownership`); action tables made before service recovery
    lack `send`, `rule` and `withdrawn`, and get `rule` among their upsert keys; CSAT and handle
    tables made before the dashboards filtered them by channel lack `channel` (their old rows
    keep it null, so only "All" channels shows them). Each
    `ADD COLUMN IF NOT EXISTS` is a no-op on a table that has it, and setting the same keys
    again changes nothing.

    Args:
        names: The table names.

    Returns:
        `(table, sql)` pairs, run after the `CREATE TABLE` statements.
    """
    statements = [
        (table, f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column}")
        for table in (names.events, names.clocks)
        for column in _ADDED_COLUMNS
    ]
    actions = names.actions
    statements += [
        (actions, f"ALTER TABLE {actions} ADD COLUMN IF NOT EXISTS {column}")
        for column in _ADDED_ACTION_COLUMNS
    ]
    statements.append((actions, f"ALTER TABLE {actions} DEDUP ENABLE UPSERT KEYS({_ACTIONS_KEYS})"))
    statements += [
        (table, f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column}")
        for table in (names.csat, names.handle)
        for column in _ADDED_SURVEY_HANDLE_COLUMNS
    ]
    return statements
