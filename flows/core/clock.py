"""One SLA clock: counted time, pauses, warning and deadline instants.

A clock measures one metric once. It counts time on its business-time calendar from `count_from`
(the start, or for `service_window` the latest customer message), excluding paused stretches, and
knows the instants at which the counted time reaches the warning offset and the target. It emits
nothing itself: `flows.core.conversation` decides what happens and when.

The arithmetic implements SPEC §2 (deadline = the instant at which counted time since the start
equals the target; a clock started while closed counts from the next opening; a target used up
exactly at a closing instant is due at that closing instant), SPEC §3 (a retarget recomputes from
the original start) and SPEC §4 (warnings in the same counted time; paused time does not count; a
promised `due_at` is a fixed deadline).
"""

from __future__ import annotations

from typing import Final

from flows.core.calendar import WALL_CLOCK
from flows.core.model import BusinessTime, Target
from flows.core.native import mypyc_attr
from flows.core.slots import restore_slots
from flows.exceptions import CalendarError

#: Stands for "no instant" in the instant slots: an `int` slot, unlike `int | None`, is stored
#: unboxed by mypyc, where a boxed epoch-ms int would take 32 B per instant.
NO_INSTANT: Final = -(2**61)

#: The fields of `Clock` (instants by their public names), also the order of its pickled
#: layout, whose instants are None when there is none.
_CLOCK_SLOTS: Final = (
    "attempts",
    "breached",
    "cal",
    "count_from",
    "counted",
    "cycle",
    "deadline",
    "done",
    "fixed_deadline",
    "last_attempt",
    "metric",
    "policy_id",
    "segments",
    "seq",
    "started_at",
    "stopped_at",
    "target",
    "team",
    "tgt",
    "warn",
    "warned",
)
#: The instants stored as `int` with `NO_INSTANT` in a slot of the same name with a `_`.
_INSTANTS: Final = ("count_from", "deadline", "stopped_at", "warn")
#: The fields only some metrics' clocks set, kept in a `_Rare` the clock allocates when one of
#: them first leaves its default.
_RARE: Final = ("attempts", "fixed_deadline", "last_attempt", "team")
#: The real slots of `Clock` (a compiled class has no `__slots__` to read back).
_SLOTS: Final = (
    *(f"_{name}" if name in _INSTANTS else name for name in _CLOCK_SLOTS if name not in _RARE),
    "_rare",
)


@mypyc_attr(allow_interpreted_subclasses=True)
class _Rare:
    """A clock's fields that only a few metrics set (`follow_up`, `contact_attempts`, teams).

    Attributes:
        attempts: Contact attempts counted so far.
        last_attempt: Epoch ms UTC of the last counted attempt, `NO_INSTANT` for none.
        fixed_deadline: A promised `due_at` (epoch ms UTC), `NO_INSTANT` for none.
        team: The team that owns the stint.
    """

    __slots__ = ("attempts", "fixed_deadline", "last_attempt", "team")

    def __init__(self) -> None:
        self.attempts = 0
        self.last_attempt = NO_INSTANT
        self.fixed_deadline = NO_INSTANT
        self.team: str | None = None

    def copy(self) -> _Rare:
        """Return an independent copy."""
        twin = _Rare()
        twin.attempts = self.attempts
        twin.last_attempt = self.last_attempt
        twin.fixed_deadline = self.fixed_deadline
        twin.team = self.team
        return twin


@mypyc_attr(allow_interpreted_subclasses=True)
class Clock:
    """Mutable state of one clock; instants and durations are epoch / counted milliseconds.

    Attributes:
        metric: The `Metric` it measures.
        cycle: The cycle it belongs to (1, 2, …).
        seq: Its number among the clocks of its metric (per cycle, or per conversation for
            conversation-scoped metrics).
        started_at: Epoch ms UTC of its start; never moves.
        count_from: Start of the running stretch, None while paused.
        counted: Counted ms of the closed stretches (`segments`) before `count_from`.
        segments: The closed counting stretches `(start, end)`, allocated at the first pause.
        tgt: The policy's target, None while unmeasured.
        target: The target in counted ms, None while unmeasured.
        fixed_deadline: A promised `due_at` (epoch ms) that is the deadline whatever is counted.
        cal: The business-time calendar it counts on (`WALL_CLOCK` for wall-clock time).
        policy_id: The id of the policy that bound its target.
        deadline: Epoch ms UTC at which it breaches; None while unmeasured or paused.
        warn: Epoch ms UTC at which it warns; None likewise.
        warned: Whether its warning has fired (or was skipped because it coincided with the
            deadline).
        breached: Whether its deadline has passed unfulfilled; never goes back to False.
        done: Whether it has ended (met, stopped, closed, cancelled, or a breached window).
        stopped_at: Epoch ms UTC at which it ended, if it did.
        attempts: Contact attempts counted so far (`contact_attempts` only).
        last_attempt: Epoch ms UTC of the last counted attempt (`contact_attempts` only).
        team: The team that owns the stint (`team_ownership` only), None for other metrics.

    The instants (`count_from`, `deadline`, `warn`, `fixed_deadline`, `stopped_at`,
    `last_attempt`) are properties over `int` slots holding `NO_INSTANT` for None; `attempts`,
    `last_attempt`, `fixed_deadline` and `team` live in a `_Rare`, None while all four have
    their defaults (0 and None), so the clocks of most metrics carry one slot for them.

    Args:
        metric: The `Metric` it measures.
        cycle: The cycle it belongs to.
        seq: Its number among the clocks of its metric.
        started_at: Epoch ms UTC of its start.
    """

    __slots__ = _SLOTS

    def __init__(self, metric: str, cycle: int, seq: int, started_at: int) -> None:
        self.metric = metric
        self.cycle = cycle
        self.seq = seq
        self.started_at = started_at
        # Start of the running stretch; NO_INSTANT while paused.
        self._count_from = started_at
        # Counted ms in the closed stretches before `count_from`, and those stretches
        # (only allocated once the clock has been paused).
        self.counted = 0
        self.segments: list[tuple[int, int]] | None = None
        self.tgt: Target | None = None
        self.target: int | None = None
        self.cal: BusinessTime = WALL_CLOCK
        self.policy_id: str | None = None
        self._deadline = NO_INSTANT
        self._warn = NO_INSTANT
        self.warned = False
        self.breached = False
        self.done = False
        self._stopped_at = NO_INSTANT
        self._rare: _Rare | None = None

    @property
    def count_from(self) -> int | None:
        """Start of the running stretch (epoch ms UTC), None while paused."""
        at = self._count_from
        return None if at == NO_INSTANT else at

    @count_from.setter
    def count_from(self, at: int | None) -> None:
        self._count_from = NO_INSTANT if at is None else at

    @property
    def deadline(self) -> int | None:
        """Epoch ms UTC at which it breaches; None while unmeasured or paused."""
        at = self._deadline
        return None if at == NO_INSTANT else at

    @deadline.setter
    def deadline(self, at: int | None) -> None:
        self._deadline = NO_INSTANT if at is None else at

    @property
    def warn(self) -> int | None:
        """Epoch ms UTC at which it warns; None while unmeasured or paused."""
        at = self._warn
        return None if at == NO_INSTANT else at

    @warn.setter
    def warn(self, at: int | None) -> None:
        self._warn = NO_INSTANT if at is None else at

    def _rare_fields(self) -> _Rare:
        """Return the clock's `_Rare`, allocated on first use."""
        rare = self._rare
        if rare is None:
            rare = self._rare = _Rare()
        return rare

    @property
    def fixed_deadline(self) -> int | None:
        """A promised `due_at` (epoch ms UTC) that is the deadline whatever is counted."""
        rare = self._rare
        if rare is None or rare.fixed_deadline == NO_INSTANT:
            return None
        return rare.fixed_deadline

    @fixed_deadline.setter
    def fixed_deadline(self, at: int | None) -> None:
        if at is not None or self._rare is not None:
            self._rare_fields().fixed_deadline = NO_INSTANT if at is None else at

    @property
    def attempts(self) -> int:
        """Contact attempts counted so far (`contact_attempts` only)."""
        rare = self._rare
        return 0 if rare is None else rare.attempts

    @attempts.setter
    def attempts(self, count: int) -> None:
        if count != 0 or self._rare is not None:
            self._rare_fields().attempts = count

    @property
    def team(self) -> str | None:
        """The team that owns the stint (`team_ownership` only), None for other metrics."""
        rare = self._rare
        return None if rare is None else rare.team

    @team.setter
    def team(self, team: str | None) -> None:
        if team is not None or self._rare is not None:
            self._rare_fields().team = team

    @property
    def stopped_at(self) -> int | None:
        """Epoch ms UTC at which it ended, if it did."""
        at = self._stopped_at
        return None if at == NO_INSTANT else at

    @stopped_at.setter
    def stopped_at(self, at: int | None) -> None:
        self._stopped_at = NO_INSTANT if at is None else at

    @property
    def last_attempt(self) -> int | None:
        """Epoch ms UTC of the last counted attempt (`contact_attempts` only)."""
        rare = self._rare
        if rare is None or rare.last_attempt == NO_INSTANT:
            return None
        return rare.last_attempt

    @last_attempt.setter
    def last_attempt(self, at: int | None) -> None:
        if at is not None or self._rare is not None:
            self._rare_fields().last_attempt = NO_INSTANT if at is None else at

    def __setstate__(self, state: tuple[None, dict[str, object]]) -> None:
        """Restore a default pickle (0.1 snapshots); slots newer than it take their defaults.

        Its instants are None or ints by their public names, set through the properties.

        Args:
            state: The `(None, slots)` pair a default pickle of a slotted object produces.
        """
        self._rare = None
        for name, value in state[1].items():
            object.__setattr__(self, name, value)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        """Pickle as the field values in a fixed order (see `Conversation.__reduce__`).

        The layout is `_CLOCK_SLOTS`' with None for no instant, whatever the slots store, so a
        snapshot is the same bytes on the compiled and the pure path and as before `NO_INSTANT`.
        """
        return _restore_clock, (_LAYOUT, *[getattr(self, n) for n in _FIELDS])

    def clone(self) -> Clock:
        """Return an independent copy (paused stretches and rare fields copied, policies shared)."""
        twin = Clock.__new__(Clock)
        for name in _SLOTS:
            object.__setattr__(twin, name, getattr(self, name))
        if self.segments is not None:
            twin.segments = list(self.segments)
        if self._rare is not None:
            twin._rare = self._rare.copy()
        return twin

    def _fixed(self) -> int:
        """Return the fixed deadline, `NO_INSTANT` for none."""
        rare = self._rare
        return NO_INSTANT if rare is None else rare.fixed_deadline

    @property
    def measured(self) -> bool:
        """Whether the clock has a target (a clock without one is tracked but never reported)."""
        return self.target is not None

    @property
    def paused(self) -> bool:
        """Whether the clock is paused (not counting time)."""
        return self._count_from == NO_INSTANT

    def instant_of(self, offset: int) -> int | None:
        """Return the instant at which `offset` counted ms are reached (None: not while paused).

        Walks the closed stretches first; an offset they do not use up is added to the running
        stretch on the calendar (so an offset used up exactly at a closing instant lands on it).

        Args:
            offset: Counted milliseconds since the start (the target, or the warning offset).

        Returns:
            Epoch ms UTC, or None when the offset lies beyond the closed stretches while the clock
            is paused, or the calendar never opens again.
        """
        cal = self.cal
        try:
            if self.segments:
                for start, end in self.segments:
                    length = cal.counted(start, end)
                    if offset <= length:
                        return cal.add(start, offset)
                    offset -= length
            start = self._count_from
            if start == NO_INSTANT:
                return None
            return cal.add(start, offset)
        except CalendarError:
            # A calendar that never opens again (only past overrides): no deadline, rather
            # than an exception that would stop the monitor.
            return None

    def elapsed(self, at: int) -> int:
        """Return the counted ms from the start to `at` (wall ms for `service_window`).

        A clock with a fixed deadline (`follow_up`) and `service_window` count wall-clock time from
        their start; every other clock counts its calendar's open time, minus paused stretches. This
        is the SLA record's `elapsed_s` in milliseconds.

        Args:
            at: Epoch ms UTC, not before the start.
        """
        if self.metric == "service_window" or self._fixed() != NO_INSTANT:
            return max(0, at - self.started_at)
        total = self.counted
        start = self._count_from
        if start != NO_INSTANT and at > start:
            total += self.cal.counted(start, at)
        return total

    def recompute(self) -> None:
        """Recompute the warning and deadline instants from the start and the target.

        Always from the original start (SPEC §3), so it serves both a fresh clock and a retarget. A
        fixed deadline is used as is, warning `warn_before` ahead of it (or at `warn_at` × target of
        wall time). Otherwise the deadline is where the target is used up in counted time and the
        warning where `warn_at` × target, or target − `warn_before` (not below 0), is. A clock
        without a target gets neither; a paused clock whose instants lie past its closed stretches
        gets None.
        """
        tgt = self.tgt
        target = self.target
        if tgt is None or target is None:
            self._deadline = self._warn = NO_INSTANT
            return
        fixed = self._fixed()
        if fixed != NO_INSTANT:
            self._deadline = fixed
            if tgt.warn_before is not None:
                self._warn = fixed - tgt.warn_before
            else:
                self._warn = self.started_at + round(target * tgt.warn_at)
            return
        deadline = self.instant_of(target)
        self._deadline = NO_INSTANT if deadline is None else deadline
        if tgt.warn_before is not None:
            warn_offset = max(0, target - tgt.warn_before)
        else:
            warn_offset = round(target * tgt.warn_at)
        warn = self.instant_of(warn_offset)
        self._warn = NO_INSTANT if warn is None else warn

    def deadline_if_resumed(self, at: int) -> int | None:
        """Return the deadline the clock would have if it resumed counting at `at`.

        SPEC §4 edge rules: every ending record carries a deadline, and a clock that ends while
        paused carries this one. The clock is left unchanged.

        Args:
            at: Epoch ms UTC at which the clock ends.

        Returns:
            Epoch ms UTC, or the current deadline when the clock is running, unmeasured or has a
            fixed deadline.
        """
        target = self.target
        if self._count_from != NO_INSTANT or target is None or self._fixed() != NO_INSTANT:
            return self.deadline
        self._count_from = at
        try:
            return self.instant_of(target)
        finally:
            self._count_from = NO_INSTANT

    def pause(self, at: int) -> None:
        """Stop counting at `at` (no-op while already paused).

        The running stretch is closed and its counted time added to `counted`; the caller then
        recomputes the instants (which become None unless reached within the closed stretches).
        """
        start = self._count_from
        if start == NO_INSTANT:
            return
        if self.segments is None:
            self.segments = []
        self.segments.append((start, at))
        self.counted += self.cal.counted(start, at)
        self._count_from = NO_INSTANT

    def resume(self, at: int) -> None:
        """Count again from `at` (no-op while running); the caller then recomputes the instants."""
        if self._count_from == NO_INSTANT:
            self._count_from = at

    def next_instant(self) -> int | None:
        """Return the next instant at which the clock warns or breaches, if any.

        Returns:
            The earlier of the pending warning and the deadline (epoch ms UTC); None once the clock
            is done or breached (a breached clock has nothing more to fire), or while it has no
            instants.
        """
        if self.done or self.breached:
            return None
        warn = NO_INSTANT if self.warned else self._warn
        deadline = self._deadline
        if warn == NO_INSTANT:
            return None if deadline == NO_INSTANT else deadline
        if deadline != NO_INSTANT and deadline < warn:
            return deadline
        return warn


#: Slot order of the pickled layout `_LAYOUT` (`Clock.__reduce__`).
_FIELDS: Final = _CLOCK_SLOTS
_LAYOUT: Final = 2
#: Layout 1 (before team clocks): no `team` slot.
_FIELDS_V1: Final = tuple(name for name in _FIELDS if name != "team")


def _restore_clock(layout: int, *values: object) -> Clock:
    """Rebuild a clock pickled by `Clock.__reduce__` (the name snapshots refer to).

    Layout 1 snapshots (before team clocks) load as clocks of no team.
    """
    if layout == 1:
        clock = restore_slots(Clock, _FIELDS_V1, layout, 1, values, nones=("_rare",))
        clock.team = None
        return clock
    return restore_slots(Clock, _FIELDS, layout, _LAYOUT, values, nones=("_rare",))
