"""Service recovery (SPEC §3 `recovery`, §4 "Service recovery", §6 `recover` action record).

A rule watches the clocks of its `metric`. At a clock's breach every rule of the policy that
bound the clock is armed: one with `over` 0 is evaluated at once, one with `over` > 0 at the
instant the clock's counted time reaches its target plus `over` (on the clock's calendar, its
paused stretches excluded: lateness is counted as the clock counts). The instant is one more
timer of the conversation (`next_due`), so it fires on the watermark with a quiet stream like a
deadline. A clock that ends first (met, stopped, closed, cancelled) disarms its rules.

Evaluated, a rule fires only if the conversation's policy is still the clock's, its `when`
matches the attributes at that instant and no recovery of the conversation (by any rule) was
emitted less than the rule's `cap` before; either way it is evaluated once per clock.

State lives in `Conversation.recovery`, None until a clock of a policy with rules breaches, so a
conversation (or a policy file) without recovery rules pays one attribute test per timer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flows.core.durations import format_duration
from flows.core.native import mypyc_attr
from flows.core.policies import matches_when

if TYPE_CHECKING:
    from flows.core.clock import Clock
    from flows.core.context import Context
    from flows.core.conversation import Conversation
    from flows.core.model import Recovery

#: Pending evaluation: (instant or None while paused past it, rule index, clock).
Pending = tuple[int | None, int, "Clock"]


@mypyc_attr(allow_interpreted_subclasses=True)
class Recovering:
    """What a conversation keeps for service recovery.

    Attributes:
        pending: Rules armed on running breached clocks, waiting for their instant.
        last_at: When the conversation's last recovery was emitted (the cap counts from it).
        cycles: The cycles in which a recovery was emitted (CSAT records' `recovered`).
    """

    __slots__ = ("cycles", "last_at", "pending")

    def __init__(self) -> None:
        self.pending: list[Pending] = []
        self.last_at: int | None = None
        self.cycles: frozenset[int] = frozenset()

    def clone(self, clocks: dict[int, Clock]) -> Recovering:
        """Return a copy whose pending entries point at the copied clocks (`id` → copy)."""
        twin = Recovering()
        twin.pending = [(at, i, clocks.get(id(clock), clock)) for at, i, clock in self.pending]
        twin.last_at = self.last_at
        twin.cycles = self.cycles
        return twin


def _state(conv: Conversation) -> Recovering:
    state = conv.recovery
    if state is None:
        state = conv.recovery = Recovering()
    return state


def _instant(clock: Clock, rule: Recovery) -> int | None:
    """Return when `clock` has been unfulfilled `rule.over` past its deadline (None: paused)."""
    if clock.fixed_deadline is not None:
        return clock.fixed_deadline + rule.over
    if clock.target is None:
        return None
    return clock.instant_of(clock.target + rule.over)


def _rules_of(conv: Conversation, clock: Clock) -> tuple[Recovery, ...]:
    """Return the current policy's rules if that policy bound `clock`, else none."""
    policy = conv.policy
    if policy is None or not policy.recovery or clock.policy_id != policy.id:
        return ()
    return policy.recovery


def on_breach(conv: Conversation, ctx: Context, clock: Clock, at: int) -> None:
    """Arm the rules of `clock`'s metric at its breach; those with `over` 0 are evaluated now."""
    rules = _rules_of(conv, clock)
    if rules:
        arm(conv, ctx, clock, at, rules, reached=None)


def arm(
    conv: Conversation,
    ctx: Context,
    clock: Clock,
    at: int,
    rules: tuple[Recovery, ...],
    *,
    reached: int | None,
) -> None:
    """Arm `rules` of `clock`'s metric; evaluate at once those whose instant is already past.

    Args:
        conv: The conversation.
        ctx: The shared context.
        clock: A breached, running clock.
        at: The current instant.
        rules: The policy's recovery rules.
        reached: Counted ms already reached by a clock that resumes (a reopened resolution):
            rules whose target plus `over` lies below it were evaluated before; None at the
            breach (every rule of the metric is armed).
    """
    target = clock.target
    for index, rule in enumerate(rules):
        if rule.metric != clock.metric:
            continue
        if reached is not None and (target is None or target + rule.over < reached):
            continue
        if rule.over == 0 and reached is None:
            _evaluate(conv, ctx, clock, index, at)
            continue
        instant = _instant(clock, rule)
        if instant is not None and instant < at:
            _evaluate(conv, ctx, clock, index, at)
        else:
            _state(conv).pending.append((instant, index, clock))


def refresh(conv: Conversation, ctx: Context, clock: Clock, at: int) -> None:
    """Recompute the instants armed on `clock` after it paused or resumed."""
    state = conv.recovery
    if state is None or not state.pending:
        return
    rules = _rules_of(conv, clock)
    kept: list[Pending] = []
    due: list[int] = []
    for entry in state.pending:
        if entry[2] is not clock:
            kept.append(entry)
            continue
        index = entry[1]
        instant = _instant(clock, rules[index]) if index < len(rules) else entry[0]
        if instant is not None and instant < at:
            due.append(index)
        else:
            kept.append((instant, index, clock))
    state.pending = kept
    for index in due:
        _evaluate(conv, ctx, clock, index, at)


def disarm(conv: Conversation, clock: Clock) -> None:
    """Forget the rules armed on `clock` (it ended before their instant)."""
    state = conv.recovery
    if state is not None and state.pending:
        state.pending = [entry for entry in state.pending if entry[2] is not clock]


def next_due(state: Recovering) -> int | None:
    """Return the earliest armed instant, or None."""
    nxt = None
    for at, _, _ in state.pending:
        if at is not None and (nxt is None or at < nxt):
            nxt = at
    return nxt


def fire(conv: Conversation, ctx: Context, due: int) -> None:
    """Evaluate every rule armed for instant `due`, in arming order (clocks, then file order)."""
    state = conv.recovery
    if state is None or not state.pending:
        return
    now = [entry for entry in state.pending if entry[0] == due]
    if not now:
        return
    state.pending = [entry for entry in state.pending if entry[0] != due]
    for _, index, clock in now:
        if not clock.done:
            _evaluate(conv, ctx, clock, index, due)


def _evaluate(conv: Conversation, ctx: Context, clock: Clock, index: int, at: int) -> None:
    """Emit the `recover` action of rule `index` for `clock` at `at`, if nothing holds it back.

    Held back: the policy is no longer the clock's (or the file changed the rule), the rule's
    `when` does not match the attributes now, or the conversation's last recovery is less than
    the rule's `cap` ago.
    """
    rules = _rules_of(conv, clock)
    if index >= len(rules) or rules[index].metric != clock.metric:
        return
    rule = rules[index]
    if rule.when and not matches_when(rule.when, conv.attrs):
        return
    state = conv.recovery
    if state is not None and state.last_at is not None and at - state.last_at < rule.cap:
        return
    state = _state(conv)
    state.last_at = at
    state.cycles = state.cycles | {clock.cycle}
    late = "at its breach" if rule.over == 0 else f"{format_duration(rule.over)} past its deadline"
    conv.action(
        ctx,
        clock,
        "recover",
        "recovery",
        at,
        why=f"{late}, send {rule.send}",
        send=rule.send,
        rule=rule.name,
    )


def recovered(conv: Conversation, cycle: int) -> bool:
    """Return whether a recovery was emitted in `cycle` so far (CSAT record `recovered`)."""
    state = conv.recovery
    return state is not None and cycle in state.cycles
