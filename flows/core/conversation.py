"""The per-conversation clock machine (SPEC §4).

A `Conversation` applies its events in event-time order and fires its clocks' warnings and deadlines
when told that time has passed them. It appends records to the `Context`'s output list. It never
reads the wall clock, and it depends on other conversations only through the `Context`'s agent load
counts (for the `overloaded` cause and reassignment).

Units: every instant is epoch milliseconds UTC (event time), every duration counted milliseconds;
records convert to seconds and RFC 3339 only when they are encoded.

What it keeps is what the metric families share (STYLE Shape 9): the cycle and its phase, the
assignee and owning team, the attributes and policy, the running clocks and their lifecycle
(start, fulfil, cancel, pause, retarget, warn, breach, escalate). Which clock starts or stops on
which event is each family's rule, in `flows.core.families` (assignment, replies, window, leads,
updates, teams, handle); `apply` decides the shared state an event changes and then runs the
families' hooks for that moment in their registered order.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from flows.core import families
from flows.core.calendar import WALL_CLOCK
from flows.core.clock import NO_INSTANT, Clock
from flows.core.context import Context
from flows.core.events import (
    ActivityEvent,
    AssignmentEvent,
    AttrValue,
    ConversationEvent,
    Event,
    MessageEvent,
    RetractionEvent,
    SurveyEvent,
)
from flows.core.families import handle, recovery, satisfaction
from flows.core.families.handle import Segment
from flows.core.families.recovery import Recovering
from flows.core.families.satisfaction import Credit
from flows.core.model import Policy
from flows.core.native import mypyc_attr
from flows.core.phase import IDLE, OPEN, RESOLVED
from flows.core.records import ActionRecord, SlaRecord
from flows.core.slots import restore_slots
from flows.core.vocabulary import (
    CLOSING_OUTCOMES,
    ENDING_STATUSES,
    ENDS_AT_BREACH,
    Cause,
    Metric,
    Status,
)

CONVERSATION_SCOPED: Final = Metric.CONVERSATION_SCOPED
LEAD_METRICS: Final = families.LEAD_METRICS
# Module globals, not `families.X` lookups: `_bind` and `_record` run for every clock and record.
_SUB_TARGET: Final = families.SUB_TARGET
_TARGET_MS: Final = families.TARGET_MS
_BUDGET_PCT: Final = families.budget_pct
AFTER_HOURS_GRACE_MS: Final = 2 * 3600 * 1000


class AttrChange:
    """What one `opened` / `updated` event changed, as the families' update hooks read it.

    Attributes:
        old_lead_status: `lead_status` before the event.
        lead_changed: Whether `lead_status` changed.
        to_human: Whether `handled_by` went from `bot` to `human`.
        old_policy: The policy before the event (the reselect may change it).
        team_set: Whether the event set or removed `team_id`.
        handed_over: Set by the team family when the owning team changed.
        old_status: `status` before the event.
    """

    __slots__ = (
        "handed_over",
        "lead_changed",
        "old_lead_status",
        "old_policy",
        "old_status",
        "team_set",
        "to_human",
    )

    def __init__(
        self,
        old_lead_status: AttrValue,
        lead_changed: bool,
        to_human: bool,
        old_policy: Policy | None,
        team_set: bool,
        *,
        old_status: AttrValue = None,
    ) -> None:
        self.old_lead_status = old_lead_status
        self.lead_changed = lead_changed
        self.to_human = to_human
        self.old_policy = old_policy
        self.team_set = team_set
        self.handed_over = False
        self.old_status = old_status


#: The fields of `Conversation` (instants by their public names), also the order of its pickled
#: layout, whose instants are None when there is none (a compiled class has no `__slots__` to
#: read back).
_CONVERSATION_SLOTS: Final = (
    "agent",
    "agent_out",
    "assign_team",
    "attrs",
    "base",
    "ca_started",
    "cadence_off",
    "channel",
    "clocks",
    "credit",
    "cycle",
    "cycle_breached",
    "first_inbound",
    "handling",
    "id",
    "forgotten_until",
    "last_fired",
    "last_t",
    "log",
    "owner",
    "phase",
    "policy",
    "recovery",
    "replied",
    "replier",
    "res_clock",
    "retracted",
    "res_record",
    "scheduled",
    "seqs",
    "surveys",
    "unanswered",
)
#: Instants stored as `int` with `NO_INSTANT` in a slot of the same name with a `_` (unboxed
#: by mypyc); properties of the public names return None for it.
_INSTANTS: Final = ("scheduled", "unanswered")
#: The real slots of `Conversation`.
_SLOTS: Final = tuple(f"_{name}" if name in _INSTANTS else name for name in _CONVERSATION_SLOTS)


@mypyc_attr(allow_interpreted_subclasses=True)
class Conversation:
    """All SLA state of one conversation.

    Invariants: events reach `apply` in event-time order (ties in input order) and every timer due
    before an event's instant has fired (`fire_until`) before it; `clocks` holds only the clocks
    still running (including unmeasured ones, which emit nothing until a policy gives them a
    target); `cycle` is 0 until the first cycle opens; `phase` is `IDLE`, `OPEN` or `RESOLVED`. A
    conversation is rebuilt, not patched, when a late event arrives: the engine replays `log` from
    `base`.

    Args:
        conversation_id: The SPEC §1 `conversation_id`.
        ctx: The engine's shared context (its policy file selects the starting policy).
    """

    __slots__ = _SLOTS

    def __init__(self, conversation_id: str, ctx: Context) -> None:
        self.id = conversation_id
        # Shared with every conversation of equal attributes (`Context.share_attrs`): replaced,
        # never changed in place (`set_attrs`).
        self.attrs: dict[str, AttrValue] = ctx.share_attrs({})
        self.policy: Policy | None = ctx.policy_for(self.attrs)
        self.agent: str | None = None
        self.assign_team: str | None = None
        # The team that owns the conversation for `team_ownership` (an `unassigned` keeps it).
        self.owner: str | None = None
        self.channel: str | None = None
        self.cycle = 0
        self.phase = IDLE
        self.clocks: list[Clock] = []
        self.res_clock: Clock | None = None
        # The record that ended the resolved cycle's resolution clock: its final record unless
        # a `reopened` resumes it (a rebuild from a base restores it when a late event undoes
        # that reopen).
        self.res_record: SlaRecord | None = None
        # Last seq per metric: per cycle, except for CONVERSATION_SCOPED metrics. Shared like
        # `attrs` (`Context.share_seqs`).
        self.seqs: dict[str, int] = ctx.share_seqs({})
        self.first_inbound = False
        self.replied = False
        self.agent_out = False
        self.ca_started = False
        # After a won/lost resolve no cadence runs until lead_status next changes (SPEC §4).
        self.cadence_off = False
        # Instant of the oldest unanswered customer message of the cycle (`unanswered`).
        self._unanswered = NO_INSTANT
        self.last_t = -(2**62)
        # Last instant at which a warning or deadline fired: an event at or before it is late,
        # since events of an instant apply before its timers.
        self.last_fired = -(2**62)
        # The log holds no event before this instant (it was compacted away).
        self.forgotten_until = -(2**62)
        # Instant of the engine's latest timer entry for this conversation.
        self._scheduled = NO_INSTANT
        # Events applied so far, in application order (time, then arrival): a late event
        # rebuilds the conversation from `base` (None: a new conversation) replaying it.
        self.log: list[Event] = []
        self.base: Conversation | None = None
        # Message ids of outbound messages whose delivery failed (SPEC §1): they count as never
        # sent. None until the first retraction, so a conversation without one costs nothing.
        self.retracted: frozenset[str] | None = None
        # For CSAT (SPEC §4): the last agent who replied in the cycle, whether some clock of the
        # cycle breached, what the last resolve credits a survey with, and the surveys sent in
        # the last 14 days (None until the first).
        self.replier: str | None = None
        self.cycle_breached = False
        self.credit: Credit | None = None
        self.surveys: dict[str, tuple[Credit, int]] | None = None
        # Service recovery (SPEC §4): armed rules, the last recovery and the recovered cycles;
        # None until a clock of a policy with recovery rules breaches.
        self.recovery: Recovering | None = None
        # The open handle segment (SPEC §4 "Handle time"), None while none is open.
        self.handling: Segment | None = None

    @property
    def unanswered(self) -> int | None:
        """Epoch ms UTC of the oldest customer message not answered yet, None when none is."""
        at = self._unanswered
        return None if at == NO_INSTANT else at

    @unanswered.setter
    def unanswered(self, at: int | None) -> None:
        self._unanswered = NO_INSTANT if at is None else at

    @property
    def scheduled(self) -> int | None:
        """Instant of the engine's latest timer entry for this conversation, None if none."""
        at = self._scheduled
        return None if at == NO_INSTANT else at

    @scheduled.setter
    def scheduled(self, at: int | None) -> None:
        self._scheduled = NO_INSTANT if at is None else at

    def __setstate__(self, state: tuple[None, dict[str, object]]) -> None:
        """Restore a pickled conversation; older snapshots lack the newer slots' defaults.

        Args:
            state: The `(None, slots)` pair a default pickle of a slotted object produces.
        """
        self.base = None
        self.res_record = None
        self.cadence_off = False
        self.retracted = None
        self.owner = None
        self.replier = None
        self.cycle_breached = False
        self.credit = None
        self.surveys = None
        self.recovery = None
        self.handling = None
        for name, value in state[1].items():
            object.__setattr__(self, name, value)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        """Pickle as the slot values in a fixed order, tagged with the layout's version.

        Half the size of the default `(None, {slot: value})` state and faster to write: a
        snapshot holds one per conversation. `_restore_conversation` reads it back; pickles of
        the default form (older snapshots) still load through `__setstate__`.
        """
        return _restore_conversation, (_LAYOUT, *[getattr(self, n) for n in _FIELDS])

    def clone(self) -> Conversation:
        """Return an independent copy of this state, without its log and base.

        The copy shares only immutable objects (policies, targets, calendars, events, and the
        attribute and numbering dicts, which are replaced rather than changed), so applying
        events to it leaves this conversation untouched. The engine keeps such a copy
        as the `base` a late event's rebuild starts from once the log before it was forgotten.
        """
        twin = Conversation.__new__(Conversation)
        for name in _COPIED_AS_IS:
            object.__setattr__(twin, name, getattr(self, name))
        twin.surveys = None if self.surveys is None else dict(self.surveys)
        clocks = {id(clock): clock.clone() for clock in self.clocks}
        twin.clocks = list(clocks.values())
        res = self.res_clock
        twin.res_clock = None if res is None else clocks.get(id(res)) or res.clone()
        if self.recovery is not None:
            twin.recovery = self.recovery.clone(clocks)
        twin.log = []
        twin.base = None
        twin.scheduled = None
        return twin

    def share_dicts(self, ctx: Context) -> None:
        """Hold this conversation's (and its base's) attributes and numbering through `ctx`.

        For conversations restored from a snapshot, whose dicts were unpickled on their own.
        """
        self.attrs = ctx.share_attrs(self.attrs)
        self.seqs = ctx.share_seqs(self.seqs)
        if self.base is not None:
            self.base.share_dicts(ctx)

    # ------------------------------------------------------------------ records

    def team_of(self, ctx: Context) -> str | None:
        """Return the team a record names, or None.

        The `team_id` attribute, else the assignment's `team_id`, else the assignee's first team in
        the policy file.
        """
        team = self.attrs.get("team_id")
        if isinstance(team, str):
            return team
        if self.assign_team is not None:
            return self.assign_team
        if self.agent is not None:
            return ctx.team_of_agent.get(self.agent)
        return None

    def record(
        self, ctx: Context, clock: Clock, status: str, at: int, cause: str | None = None
    ) -> None:
        """Append one SLA record (SPEC §6) for `clock` with `status` taking effect at `at`.

        The record carries the conversation's attributes as they are now (agent, team, priority,
        segment, lead source, channel), `attempts` and the policy's `min` for `contact_attempts`
        only, the lead status for the lead metrics only, and `cause` only when given (breaches).
        An ending record of a paused clock carries the deadline it would have
        had had it resumed at `at` (SPEC §4 edge rules), so only `paused` records leave it null.

        Args:
            ctx: The context whose output list receives the record.
            clock: The clock the record describes.
            status: A `Status` name.
            at: Epoch ms UTC at which the status took effect.
            cause: A `Cause` name, for `breached` records.
        """
        attrs = self.attrs
        priority = attrs.get("priority")
        segment = attrs.get("segment")
        lead_source = attrs.get("lead_source")
        metric = clock.metric
        lead_status = attrs.get("lead_status") if metric in LEAD_METRICS else None
        attempts = required = None
        if metric == Metric.CONTACT_ATTEMPTS:
            attempts = clock.attempts
            required = clock.tgt.min_attempts if clock.tgt is not None else None
        deadline = clock.deadline
        if deadline is None and clock.done and clock.paused:
            # An ending record always says when the clock was due (SPEC §4 edge rules).
            deadline = clock.deadline_if_resumed(at)
        team = clock.team
        budget = None
        if team is None:
            # `team_of`, inlined: one call fewer for every record.
            named = attrs.get("team_id")
            if isinstance(named, str):
                team = named
            else:
                team = self.assign_team
                if team is None and self.agent is not None:
                    team = ctx.team_of_agent.get(self.agent)
        elif status in ENDING_STATUSES:
            budget = _BUDGET_PCT(self, clock, at)
        # Positional on purpose: this runs for every record, and keywords cost twice as much.
        ctx.out.append(
            SlaRecord(
                self.id,
                clock.cycle,
                clock.metric,
                clock.seq,
                status,
                at,
                clock.policy_id,
                clock.target,
                clock.started_at,
                clock.warn,
                deadline,
                clock.stopped_at,
                clock.elapsed(at),
                clock.breached,
                self.agent,
                team,
                priority if isinstance(priority, str) else None,
                segment if isinstance(segment, str) else None,
                lead_source if isinstance(lead_source, str) else None,
                self.channel,
                False,
                attempts,
                cause,
                lead_status if isinstance(lead_status, str) else None,
                None,
                required,
                budget,
            )
        )

    # ------------------------------------------------------------------ clock lifecycle

    def _bind(self, clock: Clock) -> None:
        """Attach the current policy's target (or none) to a clock and compute its instants.

        The target is the policy's for the clock's metric, narrowed by the family where a clock's
        own target depends on it (a team's stint, a lead status's cadence, a promised `due_at`).
        The clock counts wall-clock time when its metric is wall-clock (`service_window`,
        `follow_up`), when no policy applies, or when the policy has no calendar; otherwise it
        counts the policy's business time (SPEC §2). Deadlines are recomputed from the clock's
        original start (SPEC §3), so binding a new target is a retarget.
        """
        policy = self.policy
        metric = clock.metric
        tgt = policy.targets.get(metric) if policy is not None else None
        if tgt is not None and metric in _SUB_TARGET:
            tgt = _SUB_TARGET[metric](self, clock, tgt)
        clock.tgt = tgt
        clock.policy_id = policy.id if policy is not None else None
        target = None
        if tgt is not None:
            target = _TARGET_MS[metric](self, clock, tgt) if metric in _TARGET_MS else tgt.within
        clock.target = target
        if target is None:
            clock.tgt = None
        if clock.metric in Metric.WALL_CLOCK or policy is None:
            clock.cal = WALL_CLOCK
        else:
            clock.cal = policy.calendar or WALL_CLOCK
        clock.recompute()

    def set_attrs(
        self, ctx: Context, changes: tuple[tuple[str, AttrValue], ...]
    ) -> dict[str, AttrValue]:
        """Set attributes (None removes one) in a new dict, shared through `ctx`, and return it.

        Copy-on-write: `attrs` may be held by other conversations, so it is never changed in
        place; every change of the attributes goes through here.

        Args:
            ctx: The shared context holding the table of shared attribute dicts.
            changes: `(key, value)` pairs applied in order.
        """
        attrs = dict(self.attrs)
        for key, value in changes:
            if value is None:
                attrs.pop(key, None)
            else:
                attrs[key] = value
        shared = ctx.share_attrs(attrs)
        self.attrs = shared
        return shared

    def _should_pause(self, clock: Clock) -> bool:
        """Return whether `clock` must not count time now (SPEC §3 `pause_when`).

        True when the clock's target lists the conversation's current `status` (default `open`). A
        promised `due_at` and WhatsApp's 24-hour window are fixed instants and never pause.
        """
        tgt = clock.tgt
        # A promised due_at and WhatsApp's window are fixed instants: nothing pauses them.
        if tgt is None or not tgt.pause_when or clock.fixed_deadline is not None:
            return False
        if clock.metric == Metric.SERVICE_WINDOW:
            return False
        status = self.attrs.get("status") or "open"
        return status in tgt.pause_when

    def start(
        self,
        ctx: Context,
        metric: str,
        at: int,
        *,
        fixed_deadline: int | None = None,
        team: str | None = None,
    ) -> Clock | None:
        """Start a new clock of `metric` at `at` (SPEC §4, "starts" column).

        The clock takes the next `seq` of its metric and the current policy's target. A measured
        clock emits `started`, then `paused` at once when the conversation's status pauses it, and
        breaches (or warns) at once if its instants are already past. A metric no policy tracks gets
        no clock; one the current policy does not measure gets an unmeasured clock that a later
        policy change can start measuring (`_reselect`).

        Args:
            ctx: The shared context.
            metric: A `Metric` name.
            at: Epoch ms UTC of the start (the event's instant).
            fixed_deadline: For `follow_up`, the promised `due_at` (epoch ms), which is the
                deadline.
            team: For `team_ownership`, the team that owns the stint.

        Returns:
            The new clock, or None when no policy tracks the metric.
        """
        if metric not in ctx.tracked:
            return None
        seqs = dict(self.seqs)
        seq = seqs[metric] = seqs.get(metric, 0) + 1
        self.seqs = ctx.share_seqs(seqs)
        clock = Clock(metric, max(self.cycle, 1), seq, at)
        if fixed_deadline is not None:
            clock.fixed_deadline = fixed_deadline
        clock.team = team
        self._bind(clock)
        self.clocks.append(clock)
        if clock.measured:
            self.record(ctx, clock, Status.STARTED, at)
            if self._should_pause(clock):
                clock.pause(at)
                clock.recompute()
                self.record(ctx, clock, Status.PAUSED, at)
            self._catch_up(ctx, clock, at)
        return clock

    def _catch_up(self, ctx: Context, clock: Clock, at: int) -> None:
        """Breach (or warn) at once a clock whose recomputed instants are already past.

        SPEC §3: a recomputed deadline that is already past breaches at once; the record's `at` is
        the event's instant and its `deadline_at` the recomputed deadline. An instant equal to `at`
        is not caught up here: it fires through `fire_until`, after the events of that instant.
        """
        if clock.deadline is not None and clock.deadline < at and not clock.breached:
            self._breach(ctx, clock, at)
        elif clock.warn is not None and clock.warn < at and not clock.warned and not clock.breached:
            self._warn(ctx, clock, at)

    def finish(self, ctx: Context, clock: Clock, at: int) -> None:
        """Fulfil a clock: `met` before its breach, `stopped` after it.

        SPEC §4: a clock stopped exactly at its deadline is met (events at a deadline instant apply
        before the breach fires). The clock keeps the deadline it had; `stopped_at` is `at`.
        """
        clock.done = True
        clock.stopped_at = at
        if clock.measured:
            self.record(ctx, clock, Status.STOPPED if clock.breached else Status.MET, at)
        self._drop(clock)

    def cancel(self, ctx: Context, clock: Clock, at: int) -> None:
        """End a clock unfulfilled (SPEC §4: `resolved` ends the cycle's other clocks).

        A clock not yet breached is `cancelled` (left out of compliance); a breached one stays
        breached and is `closed`, so no store shows it running any more.
        """
        clock.done = True
        if clock.measured:
            clock.stopped_at = at
            self.record(ctx, clock, Status.CLOSED if clock.breached else Status.CANCELLED, at)
        self._drop(clock)

    def _drop(self, clock: Clock) -> None:
        """Remove `clock` from the running clocks (no-op if it is not there)."""
        try:
            self.clocks.remove(clock)
        except ValueError:
            pass
        if self.recovery is not None:
            recovery.disarm(self, clock)

    def running(self, metric: str) -> Clock | None:
        """Return the running clock of `metric` (the oldest, should there be several), or None."""
        for clock in self.clocks:
            if clock.metric == metric:
                return clock
        return None

    def _cause(self, ctx: Context, clock: Clock, at: int) -> str:
        """Return the breach cause of `clock` breaching at `at` (SPEC §4, "Breach cause").

        The first that applies: `unassigned` (no assignee); `bot_handled` (`handled_by` is `bot`);
        `after_hours` (the clock started while the policy's calendar was closed and breaches no
        later than 2 h after the next opening; wall-clock metrics read the policy's calendar here
        too); `overloaded` (the assignee holds at least the policy's `overload_at` open
        conversations on this worker, default 20); else `agent`.
        """
        if self.agent is None:
            return Cause.UNASSIGNED
        if self.attrs.get("handled_by") == "bot":
            return Cause.BOT_HANDLED
        cal = clock.cal
        if cal is WALL_CLOCK and self.policy is not None and self.policy.calendar is not None:
            # `service_window` and `follow_up` count wall time, but "after hours" still means
            # the policy's desk was closed (SPEC §4, breach cause).
            cal = self.policy.calendar
        if cal is not WALL_CLOCK and not cal.is_open(clock.started_at):
            opening = cal.next_opening(clock.started_at)
            if opening is not None and at <= opening + AFTER_HOURS_GRACE_MS:
                return Cause.AFTER_HOURS
        overload_at = self.policy.overload_at if self.policy is not None else 20
        if ctx.loads.get(self.agent, 0) >= overload_at:
            return Cause.OVERLOADED
        return Cause.AGENT

    def _warn(self, ctx: Context, clock: Clock, at: int) -> None:
        """Emit `warning` for `clock` at `at` and run the policy's `on: warning` escalations.

        SPEC §3/§4: the warning instant is `warn_at` × target, or `warn_before` ahead of the
        deadline, in the clock's counted time.
        """
        clock.warned = True
        self.record(ctx, clock, Status.WARNING, at)
        self._escalate(ctx, clock, Status.WARNING, at)

    def _breach(self, ctx: Context, clock: Clock, at: int) -> None:
        """Emit `breached` (with its cause) for `clock` at `at` and run `on: breached` escalations.

        SPEC §4: a breached clock keeps running until it stops (`stopped`) or a resolve closes it
        (`closed`), so lateness can be measured; `service_window` is the exception: once breached it
        is over (`stopped_at` stays null) and the next customer message opens a new window.
        """
        clock.breached = True
        clock.warned = True
        if clock.cycle == self.cycle:
            self.cycle_breached = True
        cause = self._cause(ctx, clock, at)
        if clock.metric in ENDS_AT_BREACH:
            # WhatsApp's window is over once it closes: the next customer message opens a new one.
            clock.done = True
            clock.stopped_at = None
            self._drop(clock)
        self.record(ctx, clock, Status.BREACHED, at, cause)
        self._escalate(ctx, clock, Status.BREACHED, at)
        if self.policy is not None and self.policy.recovery:
            recovery.on_breach(self, ctx, clock, at)

    def _escalate(self, ctx: Context, clock: Clock, trigger: str, at: int) -> None:
        """Emit the action records the current policy's escalations ask for (SPEC §3, §6).

        Only escalations whose `on` is `trigger` and whose metric is the clock's apply, and only
        while the clock was bound by the current policy (an escalation of a policy that no longer
        applies does not fire). `notify: supervisor` names the team's supervisor when the team has
        one.

        Args:
            ctx: The shared context (output list, teams, loads).
            clock: The clock that warned or breached.
            trigger: `warning` or `breached`.
            at: Epoch ms UTC of the warning or breach.
        """
        policy = self.policy
        if policy is None or not policy.escalations or clock.policy_id != policy.id:
            return
        for esc in policy.escalations:
            if esc.on != trigger or esc.metric != clock.metric:
                continue
            if esc.notify is not None:
                who = esc.notify
                if who == "supervisor":
                    # A stint's supervisor is its own team's, also once handed over.
                    team = ctx.policies.teams.get(clock.team or self.team_of(ctx) or "")
                    if team is not None and team.supervisor is not None:
                        who = team.supervisor
                why = f"notify {esc.notify}"
                self.action(ctx, clock, "notify", trigger, at, notify=who, why=why)
            if esc.reassign:
                to_agent, why = self._pick_agent(ctx, clock.team or self.team_of(ctx))
                self.action(ctx, clock, "reassign", trigger, at, to_agent=to_agent, why=why)

    def action(
        self,
        ctx: Context,
        clock: Clock,
        action: str,
        trigger: str,
        at: int,
        *,
        why: str,
        to_agent: str | None = None,
        notify: str | None = None,
        send: str | None = None,
        rule: str | None = None,
    ) -> None:
        """Append one action record (SPEC §6) for `clock`.

        Its `reason` reads "<metric> <trigger>: <why>"; `from_agent` is the current assignee;
        `send` and `rule` are a recovery's.
        """
        ctx.out.append(
            ActionRecord(
                action=action,
                trigger=trigger,
                conversation_id=self.id,
                cycle=clock.cycle,
                metric=clock.metric,
                seq=clock.seq,
                at=at,
                policy_id=clock.policy_id,
                from_agent=self.agent,
                to_agent=to_agent,
                notify=notify,
                reason=f"{clock.metric} {trigger}: {why}",
                send=send,
                rule=rule,
            )
        )

    def _pick_agent(self, ctx: Context, team_id: str | None) -> tuple[str | None, str]:
        """Choose the agent a reassignment goes to (SPEC §6 action record, `to_agent`).

        The team member with the fewest open conversations on this worker, never the current
        assignee; ties go to the first such agent after the team's last pick (round-robin), and the
        pick is remembered in `ctx.rr`.

        Args:
            ctx: The shared context.
            team_id: The team to pick from (a stint's own team for `team_ownership`).

        Returns:
            The agent (None when the conversation has no known team or the team no other agent) and
            the reason text the action record carries.
        """
        team = ctx.policies.teams.get(team_id) if team_id is not None else None
        if team is None:
            return None, "reassign: no team known for this conversation"
        agents = team.agents
        n = len(agents)
        last = ctx.rr.get(team.id, -1)
        best: str | None = None
        best_i = -1
        best_load = 0
        for k in range(1, n + 1):
            i = (last + k) % n
            agent = agents[i]
            if agent == self.agent:
                continue
            load = ctx.loads.get(agent, 0)
            if best is None or load < best_load:
                best, best_i, best_load = agent, i, load
        if best is None:
            return None, f"reassign: team {team.id} has no other agent"
        ctx.rr[team.id] = best_i
        return best, f"reassign to {best} ({best_load} open conversations) in team {team.id}"

    # ------------------------------------------------------------------ time

    def next_due(self) -> int | None:
        """Return the earliest pending warning or deadline instant of the running clocks.

        The open handle segment's idle end counts as such an instant too (SPEC §4 "Handle time").

        Returns:
            Epoch ms UTC, or None when nothing has an instant to fire (no clock running, all paused,
            unmeasured or breached, and no handle segment open).
        """
        nxt = None
        for clock in self.clocks:
            inst = clock.next_instant()
            if inst is not None and (nxt is None or inst < nxt):
                nxt = inst
        if self.recovery is not None and self.recovery.pending:
            inst = recovery.next_due(self.recovery)
            if inst is not None and (nxt is None or inst < nxt):
                nxt = inst
        seg = self.handling
        if seg is not None:
            inst = seg.last + seg.idle
            if nxt is None or inst < nxt:
                nxt = inst
        return nxt

    def fire_until(self, ctx: Context, limit: int, *, inclusive: bool = True) -> None:
        """Emit every warning and breach due up to `limit`, in time order.

        A clock whose warning and deadline coincide only breaches (no separate warning). An open
        handle segment idle at an instant ends then, after that instant's clock timers. Each
        instant fired moves `last_fired`, so an event that later arrives at or before it is known to
        be late.

        Args:
            ctx: The shared context that receives the records.
            limit: Epoch ms UTC (the watermark or the next event's instant).
            inclusive: Whether instants equal to `limit` fire; the engine passes False before
                applying an event at `limit`, since events at a deadline instant apply before the
                breach fires (SPEC §4 edge rules).
        """
        while True:
            due = self.next_due()
            if due is None or due > limit or (due == limit and not inclusive):
                return
            self.last_t = max(self.last_t, due)
            self.last_fired = due
            for clock in list(self.clocks):
                if clock.done:
                    continue
                if not clock.warned and not clock.breached and clock.warn == due:
                    if clock.deadline == due:
                        clock.warned = True
                    else:
                        self._warn(ctx, clock, due)
                if not clock.breached and clock.deadline == due:
                    self._breach(ctx, clock, due)
            if self.recovery is not None:
                # After the instant's warnings and breaches: a recovery follows the breach.
                recovery.fire(self, ctx, due)
            seg = self.handling
            if seg is not None and seg.last + seg.idle == due:
                handle.on_idle(self, ctx, due)

    # ------------------------------------------------------------------ events

    def apply(self, ctx: Context, event: Event) -> None:
        """Apply one event at its own instant (timers before it must have fired already).

        Dispatches on the event's type (SPEC §1): inbound and outbound messages, assignments,
        conversation actions and activities. An outbound message retracted as failed does nothing;
        a retraction only marks its message (the engine rebuilds what it changes). Events at one
        instant apply in the order given: the engine gives them in SPEC §4's order.

        Args:
            ctx: The shared context that receives the records.
            event: A decoded event of this conversation.
        """
        at = event.occurred_at
        self.last_t = max(self.last_t, at)
        if isinstance(event, SurveyEvent):
            satisfaction.on_survey(self, ctx, event, at)
            return
        if isinstance(event, MessageEvent):
            if event.direction == "inbound":
                self._inbound(ctx, event, at)
            elif event.message_id is None or not self.is_retracted(event.message_id):
                self._outbound(ctx, event, at)
        elif isinstance(event, RetractionEvent):
            self.retract(event.message_id)
        elif isinstance(event, AssignmentEvent):
            self._assignment(ctx, event, at)
        elif isinstance(event, ConversationEvent):
            self._conversation(ctx, event, at)
        else:
            self._activity(ctx, event, at)

    def is_retracted(self, message_id: str) -> bool:
        """Return whether the outbound message `message_id` failed (it counts as never sent)."""
        return self.retracted is not None and message_id in self.retracted

    def retract(self, message_id: str) -> None:
        """Mark the outbound message `message_id` as failed: from now on it is never applied.

        The engine rebuilds the conversation when the message was already applied, so every clock
        is computed as if it had never been sent (SPEC §1).
        """
        if self.retracted is None:
            self.retracted = frozenset((message_id,))
        else:
            self.retracted = self.retracted | {message_id}

    def _load(self, ctx: Context, delta: int) -> None:
        """Add `delta` to the assignee's open-conversation count while the cycle is open."""
        if self.agent is not None and self.phase == OPEN:
            ctx.loads[self.agent] = ctx.loads.get(self.agent, 0) + delta

    def _open_cycle(self, ctx: Context, at: int) -> None:
        """Open a new cycle at `at` (SPEC §4: a customer message after `resolved`, or `opened`).

        The cycle number goes up by one, per-cycle `seq`s restart (conversation-scoped metrics keep
        counting) and the per-cycle flags reset; then the families' `CYCLE_OPENED` hooks run.
        """
        if self.cycle > 0:
            # Clocks started before the first cycle opened (a promise, say) belong to cycle 1.
            self.seqs = ctx.share_seqs(
                {m: n for m, n in self.seqs.items() if m in CONVERSATION_SCOPED}
            )
        self.cycle += 1
        self.phase = OPEN
        self.first_inbound = False
        self.replied = False
        self.agent_out = False
        self.ca_started = False
        self.unanswered = None
        self.res_clock = None
        self.res_record = None
        self.replier = None
        self.cycle_breached = False
        self._load(ctx, +1)
        ctx.hooks.CYCLE_OPENED(self, ctx, at)

    def _set_status(self, ctx: Context, status: str, at: int) -> None:
        """Set the conversation `status` (`open` / `pending`) and apply what it changes.

        A status change can change the policy (`_reselect`) and pauses or resumes the clocks whose
        `pause_when` lists it (SPEC §3).
        """
        old = self.attrs.get("status") or "open"
        if status == old:
            return
        self.set_attrs(ctx, (("status", status),))
        self._reselect(ctx, at)
        self._apply_pauses(ctx, at)

    def _apply_pauses(self, ctx: Context, at: int) -> None:
        """Pause or resume every measured running clock as the current status asks (SPEC §3).

        Each change emits `paused` or `resumed`; a resumed clock whose recomputed deadline is
        already past breaches at once.
        """
        for clock in list(self.clocks):
            if not clock.measured or clock.done:
                continue
            should = self._should_pause(clock)
            if should and not clock.paused:
                clock.pause(at)
                clock.recompute()
                self.record(ctx, clock, Status.PAUSED, at)
                if self.recovery is not None:
                    recovery.refresh(self, ctx, clock, at)
            elif not should and clock.paused:
                clock.resume(at)
                clock.recompute()
                self.record(ctx, clock, Status.RESUMED, at)
                self._catch_up(ctx, clock, at)
                if self.recovery is not None:
                    recovery.refresh(self, ctx, clock, at)

    def is_reply(self, event: MessageEvent) -> bool:
        """Return whether a message fulfils reply clocks (SPEC §4).

        An agent's message that is not a `note` (templates count), or a bot's under
        `bot_replies_count: true`. System messages never count.
        """
        if event.kind == "note":
            return False
        if event.author == "agent":
            return True
        return event.author == "bot" and self.policy is not None and self.policy.bot_replies_count

    def bot_handled(self) -> bool:
        """Return whether `handled_by` is `bot` (then customer messages start no reply clock)."""
        return self.attrs.get("handled_by") == "bot"

    def _set_channel(self, ctx: Context, channel: str, at: int) -> None:
        """Record the message's channel; reselect the policy if some `when` reads `channel`."""
        if channel == self.channel:
            return
        self.channel = channel
        self.set_attrs(ctx, (("channel", channel),))
        if ctx.policy_reads("channel"):
            self._reselect(ctx, at)
            self._apply_pauses(ctx, at)

    def _inbound(self, ctx: Context, event: MessageEvent, at: int) -> None:
        """SPEC §4, an inbound customer message.

        Shared first: it opens a cycle if none is open, sets a `pending` conversation back to
        `open` and marks the oldest unanswered message. Then the families: the cycle's first
        message (`FIRST_INBOUND`) or a later one (`LATER_INBOUND`), then every message (`INBOUND`).
        """
        self._set_channel(ctx, event.channel, at)
        if self.phase != OPEN:
            self._open_cycle(ctx, at)
        if self.attrs.get("status") == "pending":
            self._set_status(ctx, "open", at)
        if self.unanswered is None:
            self.unanswered = at
        if not self.first_inbound:
            self.first_inbound = True
            ctx.hooks.FIRST_INBOUND(self, ctx, event, at)
        else:
            ctx.hooks.LATER_INBOUND(self, ctx, event, at)
        ctx.hooks.INBOUND(self, ctx, event, at)

    def _outbound(self, ctx: Context, event: MessageEvent, at: int) -> None:
        """SPEC §4, an outbound message.

        An agent's message, a note too, first runs the `AGENT_OUTBOUND` hooks (handle time); then
        a `note` does nothing more. A reply (`is_reply`) runs the `REPLY` hooks and answers the
        customer (the cycle counts as replied, no message is unanswered); an agent's message also
        runs the `AGENT_MESSAGE` hooks (attempts, agent activity, qualification).
        """
        self._set_channel(ctx, event.channel, at)
        if event.author == "agent":
            ctx.hooks.AGENT_OUTBOUND(self, ctx, event, at)
        if event.kind == "note":
            return
        if self.is_reply(event):
            ctx.hooks.REPLY(self, ctx, event, at)
            if self.phase == OPEN:
                self.replied = True
                if event.author == "agent":
                    self.replier = event.agent_id
            self.unanswered = None
        if event.author == "agent":
            ctx.hooks.AGENT_MESSAGE(self, ctx, event, at)

    def _activity(self, ctx: Context, event: ActivityEvent, at: int) -> None:
        """SPEC §1/§4, `activity`: work outside the chat, never a reply (`ACTIVITY` hooks)."""
        ctx.hooks.ACTIVITY(self, ctx, event, at)

    def _assignment(self, ctx: Context, event: AssignmentEvent, at: int) -> None:
        """SPEC §4, `assigned` / `unassigned`.

        `assigned` moves the open-conversation load to the new assignee, then runs the `ASSIGNED`
        hooks; `unassigned` (ignored when nobody is assigned) removes the assignee and runs the
        `UNASSIGNED` hooks.
        """
        if event.action == "assigned":
            self._load(ctx, -1)
            self.agent = event.agent_id
            self.assign_team = event.team_id
            self._load(ctx, +1)
            ctx.hooks.ASSIGNED(self, ctx, event, at)
        else:
            if self.agent is None:
                return
            self._load(ctx, -1)
            self.agent = None
            self.assign_team = None
            ctx.hooks.UNASSIGNED(self, ctx, at)

    def _conversation(self, ctx: Context, event: ConversationEvent, at: int) -> None:
        """SPEC §1, `conversation` events: dispatch on the action.

        `opened` (which opens a cycle when none is open) and `updated` set attributes; `resolved`
        and `reopened` end and continue cycles; `follow_up_promised` runs the `PROMISE` hooks.
        """
        action = event.action
        if action in ("opened", "updated"):
            if action == "opened" and self.phase != OPEN:
                self._open_cycle(ctx, at)
            self._update(ctx, event, at)
        elif action == "resolved":
            self._resolve(ctx, event, at)
        elif action == "reopened":
            self._reopen(ctx, at)
        elif action == "follow_up_promised":
            ctx.hooks.PROMISE(self, ctx, event, at)

    def _update(self, ctx: Context, event: ConversationEvent, at: int) -> None:
        """SPEC §1/§4, `opened` / `updated`: set attributes and apply what they change.

        The families' `BEFORE_UPDATE` hooks run first, so a clock fulfilled by this change is not
        retargeted by it; then the policy is chosen again (retargets) and pauses applied; then the
        `AFTER_UPDATE` hooks start what the new attributes start.
        """
        attrs = self.attrs
        old_status = attrs.get("lead_status")
        old_conv_status = attrs.get("status")
        old_handled = attrs.get("handled_by") or "human"
        team_set = any(key == "team_id" for key, _ in event.attrs)
        attrs = self.set_attrs(ctx, event.attrs)
        new_status = attrs.get("lead_status")
        lead_changed = new_status != old_status
        if lead_changed:
            self.cadence_off = False
        to_human = old_handled == "bot" and (attrs.get("handled_by") or "human") == "human"
        change = AttrChange(
            old_status, lead_changed, to_human, self.policy, team_set, old_status=old_conv_status
        )
        ctx.hooks.BEFORE_UPDATE(self, ctx, change, at)
        self._reselect(ctx, at)
        self._apply_pauses(ctx, at)
        ctx.hooks.AFTER_UPDATE(self, ctx, change, at)

    def _reselect(self, ctx: Context, at: int) -> None:
        """Choose the policy again and retarget running clocks whose target changed (SPEC §3).

        For each running clock not yet breached (a breach is never undone): a new target, policy or
        calendar recomputes its instants from its original start and emits `retargeted` (or
        `started` for a clock that becomes measured, paused at once if the status pauses it); a
        recomputed instant already past fires at once. A clock whose target disappears ends
        `cancelled` with the deadline it had.
        """
        self.policy = ctx.policy_for(self.attrs)
        for clock in list(self.clocks):
            if clock.done or clock.breached:
                continue
            old = (clock.policy_id, clock.target, clock.cal)
            was_measured = clock.measured
            old_tgt, old_deadline, old_warn = clock.tgt, clock.deadline, clock.warn
            self._bind(clock)
            if (clock.policy_id, clock.target, clock.cal) == old:
                continue
            if not clock.measured:
                if was_measured:
                    # Its target is gone: it ends as it stood, with the deadline it had.
                    clock.policy_id, clock.target, clock.cal = old
                    clock.tgt, clock.deadline, clock.warn = old_tgt, old_deadline, old_warn
                    clock.done = True
                    clock.stopped_at = at
                    self.record(ctx, clock, Status.CANCELLED, at)
                    self._drop(clock)
                continue
            if clock.warn is not None and clock.warn >= at:
                clock.warned = False
            if not was_measured:
                self.record(ctx, clock, Status.STARTED, at)
                if self._should_pause(clock) and not clock.paused:
                    clock.pause(at)
                    clock.recompute()
                    self.record(ctx, clock, Status.PAUSED, at)
            else:
                self.record(ctx, clock, Status.RETARGETED, at)
            self._catch_up(ctx, clock, at)

    def _resolve(self, ctx: Context, event: ConversationEvent, at: int) -> None:
        """SPEC §4, `resolved`: the cycle ends.

        `resolution` is fulfilled (its final record is kept in case a `reopened` resumes it). Every
        other running clock gets what its family's `AT_RESOLVE` rule says, by default it ends
        unfulfilled (`cancelled`, or `closed` if breached); then the `RESOLVED` hooks run. A
        `pending` status becomes `open`. A
        resolve while no cycle is open is ignored.
        """
        if self.phase != OPEN:
            return
        res = self.running(Metric.RESOLUTION)
        rules = families.AT_RESOLVE
        for clock in list(self.clocks):
            if clock is res:
                self.finish(ctx, clock, at)
                if clock.measured:
                    record = ctx.out[-1]
                    assert isinstance(record, SlaRecord)
                    if event.outcome is not None:
                        # The cycle's outcome is stored with the record that ended it.
                        record = replace(record, outcome=event.outcome)
                        ctx.out[-1] = record
                    self.res_record = record
            elif clock.metric in rules:
                rules[clock.metric](self, ctx, clock, event, at)
            else:
                self.cancel(ctx, clock, at)
        ctx.hooks.RESOLVED(self, ctx, at)
        if event.outcome in CLOSING_OUTCOMES:
            self.cadence_off = True
        self.credit = satisfaction.credit_at_resolve(self, ctx)
        self._load(ctx, -1)
        self.phase = RESOLVED
        if self.attrs.get("status") == "pending":
            self.set_attrs(ctx, (("status", "open"),))
            self._reselect(ctx, at)
        self.unanswered = None

    def _reopen(self, ctx: Context, at: int) -> None:
        """SPEC §4, `reopened`: continue the resolved cycle.

        The resolution clock resumes, the time spent resolved counting as paused (a breach before
        the resolve stands); clocks the resolve cancelled stay cancelled. The cycle counts as
        replied, so customer messages start `next_response`; then the `REOPENED` hooks run. A
        reopen with no resolved cycle to continue is ignored.
        """
        if self.phase != RESOLVED:
            return
        self.phase = OPEN
        self._load(ctx, +1)
        self.replied = True
        res = self.res_clock
        self.res_record = None
        if res is not None and res.done and res.stopped_at is not None:
            # The time spent resolved does not count: close the stretch at the resolve.
            if not res.paused:
                res.pause(res.stopped_at)
            res.done = False
            res.stopped_at = None
            self.clocks.append(res)
            res.resume(at)
            if res.breached:
                res.recompute()
            else:
                self._bind(res)
            if res.measured:
                self.record(ctx, res, Status.RESUMED, at)
                self._catch_up(ctx, res, at)
                if res.breached and self.policy is not None and self.policy.recovery:
                    # Its lateness goes on: rules not yet reached are armed again.
                    rules = self.policy.recovery if res.policy_id == self.policy.id else ()
                    recovery.arm(self, ctx, res, at, rules, reached=res.elapsed(at))
        ctx.hooks.REOPENED(self, ctx, at)


# Immutable or scalar state a clone shares with its original.
_COPIED_AS_IS: Final = tuple(
    name
    for name in _SLOTS
    if name not in ("surveys", "clocks", "res_clock", "log", "base", "_scheduled")
)

#: Slot order of the pickled layout `_LAYOUT` (`Conversation.__reduce__`).
_FIELDS: Final = _CONVERSATION_SLOTS
_LAYOUT: Final = 5
#: Layout 4 (before service recovery and handle time): no `recovery` or `handling` slot.
_FIELDS_V4: Final = tuple(name for name in _FIELDS if name not in ("recovery", "handling"))
_CSAT_SLOTS: Final = ("credit", "cycle_breached", "replier", "surveys")
#: Layout 3 (before CSAT): none of `_CSAT_SLOTS`.
_FIELDS_V3: Final = tuple(name for name in _FIELDS_V4 if name not in _CSAT_SLOTS)
#: Layout 2 (before team clocks): no `owner` slot either.
_FIELDS_V2: Final = tuple(name for name in _FIELDS_V3 if name != "owner")
#: Layout 1 (0.3 snapshots): no `retracted` slot either.
_FIELDS_V1: Final = tuple(name for name in _FIELDS_V2 if name != "retracted")


def _restore_conversation(layout: int, *values: object) -> Conversation:
    """Rebuild a conversation pickled by `Conversation.__reduce__` (the name snapshots refer to).

    Layout 1 snapshots (before retractions) load with no retracted message; layouts 1 and 2
    (before team clocks) take the owning team from the conversation's team attribute or its
    assignment's; layouts 1 to 3 (before CSAT) have no survey and no credit yet; layouts 1 to 4
    (before service recovery and handle time) have no recovery state and no open handle
    segment.
    """
    if layout == _LAYOUT:
        return restore_slots(Conversation, _FIELDS, layout, _LAYOUT, values)
    conv = _restore_before_recovery(layout, values)
    conv.recovery = None
    conv.handling = None
    return conv


def _restore_before_recovery(layout: int, values: tuple[object, ...]) -> Conversation:
    """Rebuild a conversation of layouts 1 to 4 (its `recovery` slot left unset)."""
    if layout == 4:
        return restore_slots(Conversation, _FIELDS_V4, layout, 4, _channel_in_credits(values))
    if layout == 3:
        conv = restore_slots(Conversation, _FIELDS_V3, layout, 3, values)
        _csat_defaults(conv)
        return conv
    if layout == 2:
        conv = restore_slots(Conversation, _FIELDS_V2, layout, 2, values)
    else:
        conv = restore_slots(Conversation, _FIELDS_V1, layout, 1, values)
        conv.retracted = None
    team = conv.attrs.get("team_id")
    conv.owner = team if isinstance(team, str) else conv.assign_team
    _csat_defaults(conv)
    return conv


def _channel_in_credits(values: tuple[object, ...]) -> tuple[object, ...]:
    """Pad layout 4's credits (taken before the channel was kept) with no channel.

    A compiled conversation checks its slots' types, so the values are made whole before they
    are set.
    """
    out = list(values)
    at = _FIELDS_V4.index("credit")
    credit = out[at]
    if isinstance(credit, tuple) and len(credit) == 5:
        out[at] = (*credit, None)
    at = _FIELDS_V4.index("surveys")
    surveys = out[at]
    if isinstance(surveys, dict):
        out[at] = {
            key: ((*kept, None) if len(kept) == 5 else kept, sent_at)
            for key, (kept, sent_at) in surveys.items()
        }
    return tuple(out)


def _csat_defaults(conv: Conversation) -> None:
    """Give a conversation from a snapshot older than CSAT the state of one without surveys."""
    conv.handling = None
    conv.replier = None
    conv.cycle_breached = False
    conv.credit = None
    conv.surveys = None
