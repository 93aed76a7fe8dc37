"""The SLA engine: many conversations driven by event time.

`Engine.process(events, watermark)` buffers the events, then applies every buffered event and
fires every warning and deadline up to `watermark`, strictly in time order (at one instant,
events first, in input order; then timers). It returns the records produced. The caller owns
the watermark: `slawatch replay` uses the largest event time seen, the live monitor a
per-shard watermark that follows the wall clock when the input is idle.

An event older than what its conversation has already processed is *late*: the conversation is
rebuilt from its event log with the late event in place, and every record that differs from what
was emitted is emitted again with `late: true` (a clock that no longer exists is `cancelled`).
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from dataclasses import replace
from typing import Final

from flows.core.conversation import OPEN, Context, Conversation
from flows.core.events import Event
from flows.core.model import PolicySet
from flows.core.records import ActionRecord, SlaRecord

_NEVER: Final = 2**62


def _time(event: Event) -> int:
    return event.occurred_at


class Engine:
    """Holds the conversations of one shard (or of a whole replay) and their timers."""

    __slots__ = (
        "_arrivals",
        "_pending",
        "_timers",
        "conversations",
        "ctx",
        "processed_until",
        "seen",
    )

    def __init__(self, policies: PolicySet) -> None:
        self.ctx = Context(policies)
        self.conversations: dict[str, Conversation] = {}
        self._pending: list[tuple[int, int, Event]] = []
        self._timers: list[tuple[int, str]] = []
        self._arrivals = 0
        self.processed_until = -_NEVER
        # Event ids applied, for duplicate deliveries (one set per engine is far smaller than
        # one per conversation).
        self.seen: set[str] = set()

    def process(self, events: list[Event], watermark: int) -> list[SlaRecord | ActionRecord]:
        """Buffer `events`, then apply all events and timers up to `watermark`.

        Returns the records produced, in time order.
        """
        pending = self._pending
        arrivals = self._arrivals
        for event in events:
            arrivals += 1
            heapq.heappush(pending, (event.occurred_at, arrivals, event))
        self._arrivals = arrivals
        ctx = self.ctx
        out: list[SlaRecord | ActionRecord] = []
        ctx.out = out
        timers = self._timers
        while True:
            if pending and pending[0][0] <= watermark:
                if timers and timers[0][0] < pending[0][0]:
                    self._fire(heapq.heappop(timers))
                    continue
                at, _, event = heapq.heappop(pending)
                self._apply(at, event)
                continue
            if timers and timers[0][0] <= watermark:
                self._fire(heapq.heappop(timers))
                continue
            break
        self.processed_until = max(self.processed_until, watermark)
        return out

    def next_due(self) -> int | None:
        """Return the earliest instant at which something is pending (event or timer)."""
        best = self._pending[0][0] if self._pending else None
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
        due = conv.next_due()
        if due is not None:
            heapq.heappush(self._timers, (due, conv.id))

    def _fire(self, entry: tuple[int, str]) -> None:
        at, cid = entry
        conv = self.conversations.get(cid)
        if conv is None or conv.next_due() != at:
            return
        conv.fire_until(self.ctx, at)
        self._schedule(conv)

    def _apply(self, at: int, event: Event) -> None:
        convs = self.conversations
        cid = event.conversation_id
        conv = convs.get(cid)
        if conv is None:
            conv = convs[cid] = Conversation(cid, self.ctx)
        seen = self.seen
        if event.event_id in seen:
            return
        seen.add(event.event_id)
        if at < conv.last_t or at <= conv.last_fired:
            self._rebuild(conv, event)
            return
        before = conv.next_due()
        conv.log.append(event)
        conv.apply(self.ctx, event)
        after = conv.next_due()
        if after is not None and after != before:
            heapq.heappush(self._timers, (after, cid))

    def _replay(self, cid: str, log: list[Event], until: int) -> Conversation:
        ctx = self.ctx
        conv = Conversation(cid, ctx)
        for event in log:
            conv.fire_until(ctx, event.occurred_at, inclusive=False)
            conv.log.append(event)
            conv.apply(ctx, event)
        conv.fire_until(ctx, until)
        return conv

    def _rebuild(self, old: Conversation, late: Event) -> None:
        """Recompute a conversation with a late event and emit what changed, marked late."""
        ctx = self.ctx
        until = max(self.processed_until, old.last_t)
        out, loads, rr = ctx.out, ctx.loads, ctx.rr
        if old.agent is not None and old.phase == OPEN:
            loads[old.agent] = loads.get(old.agent, 0) - 1
        # The log is in (time, arrival) order; the late event arrived last, so it goes after
        # every logged event of its instant.
        new_log = old.log[:]
        new_log.insert(bisect_right(new_log, late.occurred_at, key=_time), late)
        try:
            ctx.loads, ctx.rr, ctx.out = dict(loads), dict(rr), []
            self._replay(old.id, old.log, until)
            old_records = ctx.out
            ctx.loads, ctx.rr, ctx.out = dict(loads), dict(rr), []
            conv = self._replay(old.id, new_log, until)
            new_records = ctx.out
        finally:
            ctx.loads, ctx.rr, ctx.out = loads, rr, out
        if conv.agent is not None and conv.phase == OPEN:
            loads[conv.agent] = loads.get(conv.agent, 0) + 1
        self.conversations[old.id] = conv
        self._schedule(conv)

        old_set = set(old_records)
        old_actions = {
            (r.action, r.trigger, r.cycle, r.metric, r.seq)
            for r in old_records
            if isinstance(r, ActionRecord)
        }
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
            elif (rec.action, rec.trigger, rec.cycle, rec.metric, rec.seq) not in old_actions:
                out.append(rec)
        last_old: dict[tuple[str, int, str, int], SlaRecord] = {}
        for rec in old_records:
            if isinstance(rec, SlaRecord):
                last_old[rec.identity()] = rec
        # A clock's latest record must come last, so stores keeping the latest state per clock
        # converge to it even when that record itself was emitted before.
        for ident, rec in last_new.items():
            if ident in changed:
                if changed[ident] is None:
                    out.append(replace(rec, late=True))
            elif last_old.get(ident) != rec:
                out.append(replace(rec, late=True))
        for ident, rec in last_old.items():
            if ident not in last_new and rec.status != "cancelled":
                # The clock should never have existed: it leaves compliance as cancelled.
                out.append(
                    replace(
                        rec,
                        status="cancelled",
                        at=max(late.occurred_at, rec.started_at),
                        breached=False,
                        cause=None,
                        stopped_at=max(late.occurred_at, rec.started_at),
                        late=True,
                    )
                )
