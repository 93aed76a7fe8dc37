"""The `<prefix>clocks` rows: the latest state of each clock, folded from its records.

The open-clock rule itself is the core's (`flows.core.vocabulary.clock_is_open`); here the
tracker carries what only earlier records knew (the breach cause, the row's old start, and the
state a `contact_attempts` clock was in before an `attempt` record).

An `attempt` record (SPEC §4/§6: one more contact attempt counted, the clock left as it was)
is stored in `<prefix>events` as it is, but in `<prefix>clocks` it updates the row's
`attempts` (and everything else the record carries) while the row's `status` stays the clock's
state before it (`started`, `warning`, `breached`, `paused`, ...): the wallboard counts a
warned clock as at risk and a breached one as breached whatever attempts follow, and no
compliance query ever sees `attempt` as an outcome (docs/ANALYTICS.md, "attempt records").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import fields
from operator import attrgetter
from typing import Any, Final

from flows.connectors.questdb.http import _Http, _sql_text
from flows.core.records import SlaRecord
from flows.core.timefmt import parse_instant
from flows.core.vocabulary import Metric, Status, clock_is_open

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


#: SPEC §6 `attempt` (`contact_attempts` only): one more attempt, the clock's state unchanged.
ATTEMPT: Final = Status.ATTEMPT


def record_is_open(record: SlaRecord) -> bool:
    """Whether the clock is still running after `record` (the core's `clock_is_open`)."""
    return clock_is_open(record.status, record.metric)


def state_of_attempt(record: SlaRecord) -> str:
    """The state an `attempt` record's clock is in, read from the record alone.

    Used only when the state before the attempt is known neither to the tracker nor to the
    stored table: a clock without a deadline but with a target is `paused` (only paused
    clocks leave `deadline_at` null), a breached one `breached`, one past its warning instant
    `warning`, any other `started`.
    """
    if record.deadline_at is None and record.target is not None:
        return Status.PAUSED
    if record.breached:
        return Status.BREACHED
    if record.warn_at is not None and record.at >= record.warn_at:
        return Status.WARNING
    return Status.STARTED


class ClockTracker:
    """Turns SLA records into `<prefix>clocks` rows: the latest state of each clock.

    It remembers, for the most recently seen clocks, where their row is (`started_at`) and the
    cause of their breach, because the engine puts `cause` only on the `breached` record while
    the row must keep it through a later `stopped` or `paused`. A late correction can move a
    clock's start (an earlier customer message arrived late); the row keyed on the old start is
    then rewritten as `cancelled` so the clock is not counted twice. For `contact_attempts`
    clocks it also remembers the latest status other than `attempt`: an `attempt` record's row
    takes that status (the clock's state stays what it was) with the record's new count.

    Args:
        max_clocks: How many clocks to remember (least recently seen are forgotten first).
    """

    __slots__ = ("_known", "_states", "max_clocks")

    def __init__(self, max_clocks: int = 200_000) -> None:
        if max_clocks < 1:
            msg = f"max_clocks must be at least 1, not {max_clocks}"
            raise ValueError(msg)
        self.max_clocks = max_clocks
        self._known: OrderedDict[ClockId, tuple[int, str | None]] = OrderedDict()
        # The state of each remembered `contact_attempts` clock (few clocks: a separate dict
        # keeps the tuples of every other clock as they are).
        self._states: dict[ClockId, str] = {}

    def __len__(self) -> int:
        return len(self._known)

    def __contains__(self, clock: object) -> bool:
        return clock in self._known

    def remember(
        self, clock: ClockId, started_at: int, cause: str | None, status: str | None = None
    ) -> None:
        """Record where a clock's row is, its breach cause and (for `contact_attempts`) status.

        Args:
            clock: `(conversation_id, cycle, metric, seq)`.
            started_at: The row's `started_at`, epoch ms UTC.
            cause: The breach cause the row carries, or None.
            status: The row's status (e.g. read back from QuestDB); kept for
                `contact_attempts` clocks, whose `attempt` records leave it as it is.
        """
        known = self._known
        known[clock] = (started_at, cause)
        known.move_to_end(clock)
        if status is not None and status != ATTEMPT and clock[2] == Metric.CONTACT_ATTEMPTS:
            self._states[clock] = status
        if len(known) > self.max_clocks:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        forgotten, _ = self._known.popitem(last=False)
        self._states.pop(forgotten, None)

    def needs_lookup(self, record: SlaRecord) -> bool:
        """Whether only the stored table can tell this record's breach cause or former start.

        True for a clock this tracker does not know whose record is a late correction (it may
        have moved the clock's start) or is breached without a cause (carried from earlier),
        and for an `attempt` record of a clock whose state the tracker does not know.
        """
        if record.status == ATTEMPT:
            return record.identity() not in self._states
        return (record.late or (record.breached and record.cause is None)) and (
            record.identity() not in self._known
        )

    def unknown_needing_lookup(self, records: Iterable[SlaRecord]) -> set[ClockId]:
        """Return the clocks of `records` for which `needs_lookup` holds, each once."""
        known = self._known
        states = self._states
        wanted: set[ClockId] = set()
        stated: set[ClockId] = set()  # given a state by an earlier record of `records`
        lead = Metric.CONTACT_ATTEMPTS
        for r in records:
            if r.metric == lead:
                clock: ClockId = (r.conversation_id, r.cycle, r.metric, r.seq)
                if r.status != ATTEMPT:
                    stated.add(clock)
                elif clock not in states and clock not in stated:
                    wanted.add(clock)
                    continue
            # Most records are neither late nor breached: test that before building the key.
            if r.late or (r.breached and r.cause is None):
                clock = (r.conversation_id, r.cycle, r.metric, r.seq)
                if clock not in known:
                    wanted.add(clock)
        return wanted

    def collect(self, records: Iterable[SlaRecord], into: dict[ClockKey, SlaRecord]) -> None:
        """Fold records, in emission order, into the clock rows `into` (last state wins).

        `into` maps each row key to the record whose values the row takes (its `cause` carried
        over while breached; an `attempt` record with the clock's state before it as status,
        see `state_of_attempt` for a clock whose state is unknown). A key already present is
        replaced, so rows collected over several batches collapse to one per clock before they
        are written.
        """
        known = self._known
        get = known.get
        states = self._states
        limit = self.max_clocks
        lead = Metric.CONTACT_ATTEMPTS
        attempt = ATTEMPT
        for emitted in records:
            record = emitted
            conv, cycle, metric, seq = (
                record.conversation_id,
                record.cycle,
                record.metric,
                record.seq,
            )
            clock = (conv, cycle, metric, seq)
            if metric == lead:
                status = record.status
                if status == attempt:
                    state = states.get(clock)
                    if state is None:
                        state = states[clock] = state_of_attempt(record)
                    record = _replace(record, status=state)
                else:
                    states[clock] = status
            started_at = record.started_at
            breached = record.breached
            previous = get(clock)
            if previous is None:
                into[(started_at, conv, cycle, metric, seq)] = record
                # A new key goes to the end of the OrderedDict: no move_to_end needed.
                known[clock] = (started_at, record.cause if breached else None)
                if len(known) > limit:
                    self._forget_oldest()
                continue
            old_start, old_cause = previous
            if old_start == started_at and not breached and old_cause is None:
                # The common case (same start, no cause to carry): the remembered value stays,
                # and no new object is made for the garbage collector to track.
                into[(started_at, conv, cycle, metric, seq)] = record
                known.move_to_end(clock)
                continue
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


_LOOKUP_CHUNK: Final = 200


def read_stored_clocks(
    http: _Http, table: str, wanted: set[ClockId]
) -> dict[ClockId, tuple[int, str | None, int, str]]:
    """Read what the clocks table stores of `wanted` clocks: start, cause, update (ms), status.

    Cancelled rows are left out, and of several rows of one clock (a moved start) the latest
    update wins. Conversation ids go into the SQL quoted, 200 conversations per query.

    Raises:
        ConnectorError: QuestDB refused or could not be reached.
        KeyError, TypeError, ValueError: the answer is not what the query asks for.
    """
    conversations = sorted({clock[0] for clock in wanted})
    found: dict[ClockId, tuple[int, str | None, int, str]] = {}
    for i in range(0, len(conversations), _LOOKUP_CHUNK):
        names = ", ".join(_sql_text(c) for c in conversations[i : i + _LOOKUP_CHUNK])
        # Conversation ids are quoted by _sql_text; the table name is validated.
        sql = (
            "SELECT conversation_id, cycle, metric, seq, started_at, cause, updated_at, "  # noqa: S608
            f"status FROM {table} WHERE conversation_id IN ({names}) AND status <> 'cancelled'"
        )
        dataset = http.execute(sql)["dataset"]
        for conv, cycle, metric, seq, started, cause, updated, status in dataset:
            clock = (conv, cycle, metric, seq)
            updated_ms = parse_instant(updated) if updated else 0
            if clock in wanted and (clock not in found or updated_ms >= found[clock][2]):
                found[clock] = (parse_instant(started), cause, updated_ms, status)
    return found


def collapse_clocks(records: Iterable[SlaRecord]) -> list[SlaRecord]:
    """Return the latest record of each clock among `records`, as a fresh tracker folds them."""
    rows: dict[ClockKey, SlaRecord] = {}
    ClockTracker().collect(records, rows)
    return list(rows.values())
