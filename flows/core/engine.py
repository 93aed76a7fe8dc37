"""The SLA engine: many conversations driven by event time.

`Engine.process(events, watermark)` buffers the events, then applies every buffered event and fires
every warning and deadline up to `watermark`, strictly in time order (at one instant, events first,
in input order; then timers). It returns the records produced. The caller owns the watermark:
`slawatch replay` uses the largest event time seen, the live monitor a per-shard watermark that
follows the wall clock when the input is idle (SPEC §5).

An event older than what its conversation has already processed is *late*: the conversation is
rebuilt from its event log with the late event in place, and every record that differs from what was
emitted is emitted again with `late: true` (a clock that no longer exists is `cancelled`). Stores
that keep the latest record per clock therefore converge to the truth (SPEC §5).

Duplicates (SPEC §1): a repeated `event_id` is ignored, whether it is still in the engine's filter
or, once the filter forgot it, in its conversation's log. Units: instants are epoch ms UTC,
`horizon_ms` is milliseconds.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Final

import orjson

from flows.core.context import Context
from flows.core.conversation import Conversation
from flows.core.decode import event_to_json
from flows.core.events import Event, MessageEvent, RetractionEvent, SurveyEvent, order_key
from flows.core.model import PolicySet
from flows.core.native import mypyc_attr
from flows.core.phase import OPEN
from flows.core.records import (
    ActionRecord,
    CsatRecord,
    DeadLetter,
    HandleRecord,
    Record,
    SlaRecord,
    dead_letter,
)
from flows.core.timefmt import format_instant
from flows.core.vocabulary import HandleEnd

_NEVER: Final = 2**62
DEFAULT_HORIZON_MS: Final = 24 * 3600 * 1000


def _time(event: Event) -> int:
    """Return an event's instant (epoch ms UTC): the sort key of the pending buffer and logs."""
    return event.occurred_at


#: The slots of `Engine` (a compiled class has no `__slots__` to read back).
_ENGINE_SLOTS: Final = (
    "_compacted_at",
    "_pending",
    "_timers",
    "blobs",
    "conversations",
    "ctx",
    "dirty",
    "horizon",
    "processed_until",
    "seen",
    "seen_from",
    "orphan_surveys",
    "unknown_retractions",
)


@mypyc_attr(allow_interpreted_subclasses=True)
class Engine:
    """Holds the conversations of one shard (or of a whole replay) and their timers.

    Invariants: events are applied in `order_key` order (event time, then SPEC §4's rank of one
    instant, then `event_id`), and a conversation's warnings and deadlines before an event's
    instant fire before it, so the records are a function of the set of events (SPEC §4, §5): an
    event that arrives after one it should precede is applied by a rebuild. `processed_until`
    never goes back. The timer heap may hold stale entries (a conversation's due instant moved);
    they are skipped when popped.
    """

    __slots__ = _ENGINE_SLOTS

    def __init__(self, policies: PolicySet, *, horizon_ms: int = DEFAULT_HORIZON_MS) -> None:
        """Create an empty engine.

        Args:
            policies: The loaded policy file.
            horizon_ms: How far behind the watermark a late event can still correct outcomes. Quiet
                conversations forget their event logs, and the engine the ids of events, once they
                are older than this, so memory stays bounded on a long run. A late event behind a
                forgotten log becomes a dead letter instead of a correction.
        """
        self.ctx = Context(policies)
        self.conversations: dict[str, Conversation] = {}
        # Events not yet applied (later than the watermark), sorted by time then arrival.
        self._pending: list[Event] = []
        self._timers: list[tuple[int, str]] = []
        self.processed_until = -_NEVER
        self.horizon = horizon_ms
        self._compacted_at = -_NEVER
        # Event id -> event time, for duplicate deliveries (one map per engine is far smaller
        # than one set per conversation); ids older than `seen_from` have been forgotten.
        self.seen: dict[str, int] = {}
        self.seen_from = -_NEVER
        # For snapshots in proportion to change: the conversations touched since the last
        # `dump_engine` (None until the first one: an engine never snapshotted tracks nothing),
        # and each conversation's pickled bytes as of then.
        self.dirty: set[str] | None = None
        self.blobs: dict[str, bytes] = {}
        # Retractions (failed deliveries) of messages this engine never applied (SPEC §1: counted,
        # not an error).
        self.unknown_retractions = 0
        self.orphan_surveys = 0

    def __getstate__(self) -> dict[str, object]:
        """Return the state to snapshot, without the duplicate filter.

        The filter holds one id per event of the correction horizon and would dominate every
        snapshot. After a restore, a redelivered event older than the snapshot is recognised in
        its conversation's event log instead (`seen_from`).
        """
        state = {name: getattr(self, name) for name in _ENGINE_SLOTS}
        state["seen"] = {}
        state["seen_from"] = max(self.seen_from, self.processed_until + 1)
        state["dirty"] = None
        state["blobs"] = {}
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        """Restore a snapshot taken with `__getstate__`.

        The restored engine shares no loads with anyone until `share_loads` is called.

        Args:
            state: The mapping `__getstate__` returned.
        """
        self.dirty = None
        self.blobs = {}
        self.unknown_retractions = 0
        self.orphan_surveys = 0
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def share_loads(self, loads: dict[str, int], rr: dict[str, int], *, count_own: bool) -> None:
        """Count agent loads and round-robin positions in dictionaries shared with others.

        The live monitor's shards on one worker share one pair, so an agent's open conversations are
        counted across them (the `overloaded` cause, reassignment).

        Args:
            loads: Open conversations per agent, shared.
            rr: Last round-robin position per team, shared.
            count_own: Add this engine's open assigned conversations to `loads` (an engine restored
                from a snapshot, whose conversations nobody has counted yet).
        """
        if count_own:
            for conv in self.conversations.values():
                if conv.agent is not None and conv.phase == OPEN:
                    loads[conv.agent] = loads.get(conv.agent, 0) + 1
            for team, position in self.ctx.rr.items():
                rr.setdefault(team, position)
        self.ctx.loads = loads
        self.ctx.rr = rr

    @contextmanager
    def _isolated(self) -> Iterator[list[Record]]:
        """Run a replay on copies of the shared loads, collecting its records apart.

        Yields:
            The list the replay's records are appended to; the engine's own loads, round-robin
            positions and output list are restored on exit.
        """
        ctx = self.ctx
        loads, rr, out = ctx.loads, ctx.rr, ctx.out
        ctx.loads, ctx.rr, ctx.out = dict(loads), dict(rr), []
        try:
            yield ctx.out
        finally:
            ctx.loads, ctx.rr, ctx.out = loads, rr, out

    def process(self, events: list[Event], watermark: int) -> list[Record]:
        """Buffer `events`, then apply all events and timers up to `watermark`.

        Events later than `watermark` stay buffered until a later call's watermark passes them.
        Among due events and timers, those of an earlier instant come first; at one instant events
        apply before timers, and events in SPEC §4's order of one instant (`order_key`: rank, then
        `event_id`), whatever order they arrived in. Every `horizon / 24`
        of watermark progress the engine compacts (`compact`).

        Args:
            events: Decoded events in any order (usually one fetch's worth).
            watermark: Epoch ms UTC up to which everything has been seen.

        Returns:
            The records produced, in time order: SLA and action records, late corrections, and
            dead letters for events too late to correct.
        """
        pending = self._pending
        if events:
            prev = pending[-1] if pending else None
            last = prev.occurred_at if prev is not None else -_NEVER
            in_order = True
            for event in events:
                at = event.occurred_at
                # Events of one instant apply in SPEC §4's order, whatever their arrival order.
                if at < last or (
                    at == last and prev is not None and order_key(event) < order_key(prev)
                ):
                    in_order = False
                    break
                last = at
                prev = event
            pending.extend(events)
            if not in_order:
                pending.sort(key=order_key)
        n = bisect_right(pending, watermark, key=_time)
        due = pending[:n]
        del pending[:n]
        ctx = self.ctx
        out: list[Record] = []
        ctx.out = out
        timers = self._timers
        apply = self._apply
        fire = self._fire
        pop = heapq.heappop
        for event in due:
            at = event.occurred_at
            while timers and timers[0][0] < at:
                fire(pop(timers))
            apply(at, event)
        while timers and timers[0][0] <= watermark:
            fire(pop(timers))
        self.processed_until = max(self.processed_until, watermark)
        if watermark - self._compacted_at >= self.horizon // 24:
            self.compact(watermark - self.horizon)
        # The caller owns the records now: the engine must not keep a batch alive until the next.
        ctx.out = []
        return out

    def next_due(self) -> int | None:
        """Return the earliest instant at which something is pending (event or timer).

        Stale timer entries at the top of the heap are dropped on the way.

        Returns:
            Epoch ms UTC, or None when nothing is buffered or scheduled. The live monitor turns it
            into the wall instant Bytewax should wake the shard at.
        """
        best = self._pending[0].occurred_at if self._pending else None
        timers = self._timers
        convs = self.conversations
        while timers:
            at, cid = timers[0]
            conv = convs.get(cid)
            if conv is not None and conv.next_due() == at:
                if best is None or at < best:
                    best = at
                break
            heapq.heappop(timers)
        return best

    def _schedule(self, conv: Conversation) -> None:
        """Push a timer for the conversation's next due instant, unless one is already scheduled."""
        due = conv.next_due()
        if due is not None and due != conv.scheduled:
            conv.scheduled = due
            heapq.heappush(self._timers, (due, conv.id))

    def _fire(self, entry: tuple[int, str]) -> None:
        """Fire one timer entry: the conversation's warnings and deadlines at its instant.

        A stale entry (the conversation's next due instant is no longer this one) is ignored; the
        conversation's next instant is scheduled afterwards.
        """
        at, cid = entry
        conv = self.conversations.get(cid)
        if conv is None or conv.next_due() != at:
            return
        if self.dirty is not None:
            self.dirty.add(cid)
        conv.fire_until(self.ctx, at)
        conv.scheduled = None
        self._schedule(conv)

    def _apply(self, at: int, event: Event) -> None:
        """Apply one due event to its conversation (created on first sight).

        A repeated `event_id` is ignored (SPEC §1). An event before its conversation's latest
        applied event, or at or before its latest fired timer, is late: the conversation is rebuilt
        (`_rebuild`), or, if its log before the event was forgotten, the event becomes a dead letter
        (`_too_late`). Otherwise it is logged, applied and the next timer scheduled.
        """
        convs = self.conversations
        cid = event.conversation_id
        conv = convs.get(cid)
        if conv is None:
            conv = convs[cid] = Conversation(cid, self.ctx)
        seen = self.seen
        eid = event.event_id
        if eid in seen:
            return
        if at < self.seen_from and any(e.event_id == eid for e in conv.log):
            return
        seen[eid] = at
        if self.dirty is not None:
            self.dirty.add(cid)
        log = conv.log
        if (
            at < conv.last_t
            or at <= conv.last_fired
            or (log and at == log[-1].occurred_at and order_key(event) < order_key(log[-1]))
        ):
            if at <= conv.forgotten_until:
                self.ctx.out.append(self._too_late(event))
                return
            self._rebuild(conv, event)
            return
        if type(event) is RetractionEvent and self._retracts_applied(conv, event):
            # The failed message was applied: recompute as if it had never been sent.
            self._rebuild(conv, event)
            return
        if not conv.log and conv.forgotten_until > -_NEVER:
            # The log was forgotten while the conversation was quiet (no clock running, so its
            # state has not moved since): a later rebuild starts from this state.
            conv.base = conv.clone()
        if conv.log:
            conv.log.append(event)
        else:
            # A list made for its first event holds one pointer, where an append to an empty
            # list reserves four: 24 B per conversation that has seen one event.
            conv.log = [event]
        if isinstance(event, SurveyEvent) and conv.credit is None and event.action != "not_sent":
            # No resolved cycle to credit (yet: a late resolve rebuilds and credits it).
            self.orphan_surveys += 1
        conv.apply(self.ctx, event)
        after = conv.next_due()
        if after is not None and after != conv.scheduled:
            conv.scheduled = after
            heapq.heappush(self._timers, (after, cid))

    def _retracts_applied(self, conv: Conversation, event: RetractionEvent) -> bool:
        """Return whether `event` retracts an outbound message `conv` has applied.

        A retraction of a message the conversation never applied (unknown, inbound, already
        retracted, or forgotten with its log) is counted in `unknown_retractions`; it still marks
        the id, so the message is ignored should it arrive later.
        """
        mid = event.message_id
        if not conv.is_retracted(mid):
            for logged in conv.log:
                if (
                    type(logged) is MessageEvent
                    and logged.message_id == mid
                    and logged.direction == "outbound"
                ):
                    return True
        self.unknown_retractions += 1
        return False

    def compact(self, cutoff: int) -> None:
        """Forget what only late events older than `cutoff` would need.

        Conversations with no running clock or handle segment whose last activity is before
        `cutoff` drop their event logs; event ids older than `cutoff` are dropped from the
        duplicate filter (an old duplicate is then recognised in its conversation's log, if it
        still has one).

        Args:
            cutoff: Epoch ms UTC; usually the watermark minus the horizon.
        """
        self._compacted_at = cutoff + self.horizon
        for cid, conv in self.conversations.items():
            if conv.log and not conv.clocks and conv.handling is None and conv.last_t < cutoff:
                conv.log = []
                conv.forgotten_until = conv.last_t
                if self.dirty is not None:
                    self.dirty.add(cid)
        if cutoff > self.seen_from:
            self.seen = {eid: at for eid, at in self.seen.items() if at >= cutoff}
            self.seen_from = cutoff

    def _too_late(self, event: Event) -> DeadLetter:
        """Return the dead letter for a late event whose conversation forgot the history it needs.

        The reason names the event's instant, the conversation, the instant before which its history
        was forgotten and the correction horizon; `raw` is the event re-encoded as JSON.
        """
        return dead_letter(
            (
                f"event at {format_instant(event.occurred_at)} is too late to correct "
                f"conversation {event.conversation_id!r}: its history before "
                f"{format_instant(self.conversations[event.conversation_id].forgotten_until)} "
                f"was forgotten ({self.horizon // 3_600_000} h correction horizon)"
            ),
            raw=orjson.dumps(event_to_json(event)).decode(),
            source=f"engine:{event.conversation_id}",
        )

    def _replay(
        self,
        cid: str,
        base: Conversation | None,
        log: list[Event],
        until: int,
        *,
        inclusive: bool = True,
    ) -> Conversation:
        """Rebuild a conversation from `base` (None: from nothing) by applying `log` in order.

        Timers before each event's instant fire first (not those at it: events at an instant apply
        before its timers), and every timer up to `until` at the end (before it, unless
        `inclusive`). Records go to the context's
        current output list, so callers wrap this in `_isolated`.

        Returns:
            The rebuilt conversation, with `base` as its base and `log` as its log.
        """
        ctx = self.ctx
        conv = Conversation(cid, ctx) if base is None else base.clone()
        conv.base = base
        # A failed message counts as never sent, also before the retraction's own instant.
        for event in log:
            if type(event) is RetractionEvent:
                conv.retract(event.message_id)
        for event in log:
            conv.fire_until(ctx, event.occurred_at, inclusive=False)
            conv.log.append(event)
            conv.apply(ctx, event)
        conv.fire_until(ctx, until, inclusive=inclusive)
        return conv

    def _rebuild(self, old: Conversation, late: Event) -> None:
        """Recompute a conversation with a late event and emit what changed, marked late.

        SPEC §5: the conversation is replayed twice from its base up to what was already processed,
        without and with the late event; every SLA record of the second run that the first did not
        produce is emitted with `late: true`, new action records are emitted as they are (a
        `recover` action the second run lacks or moved is emitted again `withdrawn`), and each
        clock's latest record is emitted last so stores keeping the latest state per clock converge.
        A clock that only the first run had is `cancelled` at the late event's instant (or returns
        to the record that ended it before a reopen the late event undid). Agent loads move from the
        old state to the new.
        """
        # Replay as far as the live run has gone: every timer up to the last watermark, and the
        # events applied since. Timers at the latest event's instant have not fired yet when it
        # is past the watermark (they fire after this call's events): replaying them here would
        # put them in both runs, so neither would ever be emitted.
        latest = max(old.last_t, late.occurred_at)
        if latest > self.processed_until and old.last_fired < latest:
            until, inclusive = latest, False
        else:
            until, inclusive = max(self.processed_until, latest), True
        out, loads = self.ctx.out, self.ctx.loads
        if old.agent is not None and old.phase == OPEN:
            loads[old.agent] = loads.get(old.agent, 0) - 1
        # The log is in `order_key` order: the late event goes where that order puts it.
        new_log = old.log[:]
        new_log.insert(bisect_right(new_log, order_key(late), key=order_key), late)
        with self._isolated() as old_records:
            self._replay(old.id, old.base, old.log, until, inclusive=inclusive)
        with self._isolated() as new_records:
            conv = self._replay(old.id, old.base, new_log, until, inclusive=inclusive)
        if conv.agent is not None and conv.phase == OPEN:
            loads[conv.agent] = loads.get(conv.agent, 0) + 1
        self.conversations[old.id] = conv
        self._schedule(conv)

        old_set = set(old_records)
        old_actions = {r.identity(): r for r in old_records if isinstance(r, ActionRecord)}
        new_recoveries: set[tuple[str, str, str, int, str, int, str | None]] = set()
        new_surveys: set[tuple[str, str, int]] = set()
        last_new: dict[tuple[str, int, str, int], SlaRecord] = {}
        changed: dict[tuple[str, int, str, int], SlaRecord | None] = {}
        for rec in new_records:
            if isinstance(rec, SlaRecord):
                ident = rec.identity()
                last_new[ident] = rec
                if rec not in old_set:
                    fixed = replace(rec, late=True)
                    out.append(fixed)
                    changed[ident] = rec
                elif ident in changed:
                    changed[ident] = None
            elif isinstance(rec, ActionRecord):
                before = old_actions.get(rec.identity())
                if before is None:
                    out.append(rec)
                elif rec.action == "recover":
                    new_recoveries.add(rec.identity())
                    if before != rec:
                        # A recovery the correction moved: the stored one (same identity, so
                        # never executed twice) is withdrawn where it stood, the new one kept.
                        if before.at != rec.at:
                            out.append(replace(before, withdrawn=True))
                        out.append(rec)
            elif isinstance(rec, CsatRecord):
                new_surveys.add(rec.identity())
                if rec not in old_set:
                    # A survey credited differently (another cycle, agent, breach): the
                    # corrected record replaces the stored one through its identity.
                    out.append(replace(rec, late=True))
            elif isinstance(rec, HandleRecord) and rec not in old_set:
                out.append(replace(rec, late=True))
        self._withdraw_segments(old_records, new_records)
        for rec in old_records:
            if (
                isinstance(rec, CsatRecord)
                and rec.sent_at is None
                and rec.rating is not None
                and rec.identity() not in new_surveys
            ):
                # A rating stored before its late `sent` arrived: the survey is now keyed by
                # the sending, so the rating-only row is voided (no rating, never sent: counted
                # nowhere), as a store cannot delete it.
                out.append(replace(rec, rating=None, late=True))
        for key, action in old_actions.items():
            if action.action == "recover" and key not in new_recoveries:
                # SPEC §4: a recovery whose clock the correction withdrew (or that another rule
                # or the cap now takes) is withdrawn; one already executed is never executed
                # again, since `slawatch act` keys on the identity.
                out.append(replace(action, withdrawn=True))
        last_old: dict[tuple[str, int, str, int], SlaRecord] = {}
        due_old: dict[tuple[str, int, str, int], int] = {}
        for rec in old_records:
            if isinstance(rec, SlaRecord):
                ident = rec.identity()
                last_old[ident] = rec
                if rec.deadline_at is not None:
                    due_old[ident] = rec.deadline_at
        # A clock's latest record must come last, so stores keeping the latest state per clock
        # converge to it even when that record itself was emitted before.
        for ident, rec in last_new.items():
            if ident in changed:
                if changed[ident] is None:
                    out.append(replace(rec, late=True))
            elif last_old.get(ident) != rec:
                out.append(replace(rec, late=True))
        kept = old.base.res_record if old.base is not None else None
        for ident, rec in last_old.items():
            if ident in last_new:
                continue
            if kept is not None and ident == kept.identity():
                # A clock ended before the base (a resolved cycle's resolution, resumed by a
                # reopen the late event undid) returns to the record that ended it.
                out.append(replace(kept, late=True))
            elif rec.status != "cancelled":
                # The clock should never have existed: it leaves compliance as cancelled.
                out.append(
                    replace(
                        rec,
                        status="cancelled",
                        at=max(late.occurred_at, rec.started_at),
                        # An ending record says when the clock was due: a clock withdrawn while
                        # paused keeps the last deadline it was given.
                        deadline_at=rec.deadline_at
                        if rec.deadline_at is not None
                        else due_old.get(ident, _started_plus_target(rec)),
                        breached=False,
                        cause=None,
                        stopped_at=max(late.occurred_at, rec.started_at),
                        late=True,
                    )
                )

    def _withdraw_segments(self, old_records: list[Record], new_records: list[Record]) -> None:
        """Withdraw the handle segments a rebuild no longer has (SPEC §5 for handle records).

        A segment emitted before whose identity the corrected run lacks (it no longer counts, or
        it starts elsewhere now) is sent again with `end` `withdrawn` and no time, marked late, so
        a store keyed on the identity stops counting it.
        """
        kept = {rec.identity() for rec in new_records if isinstance(rec, HandleRecord)}
        for rec in old_records:
            if isinstance(rec, HandleRecord) and rec.identity() not in kept:
                self.ctx.out.append(
                    replace(
                        rec,
                        ended_at=rec.started_at,
                        handle=0,
                        end=HandleEnd.WITHDRAWN,
                        late=True,
                    )
                )


def _started_plus_target(rec: SlaRecord) -> int | None:
    """The wall-clock deadline of a clock that never had one on record (its start + target)."""
    return None if rec.target is None else rec.started_at + rec.target
