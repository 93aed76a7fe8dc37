"""Team ownership (SPEC §4, `team_ownership`): the internal OLA of every listed team.

A *stint* is the time one listed team owns an open cycle: it starts when the conversation's team
becomes a listed team while a cycle is open, at the first customer message of a cycle the team
already owns, or at `reopened`; it ends `met` (or `stopped`, after a breach) when the team changes
or the cycle is resolved. A new agent of the same team, or `unassigned`, does not end it. Each
stint counts by the policy's calendar with its own team's target, warning and `pause_when`, and
its records name the owning team (`Clock.team`), also the one written at the hand-over. Ending
records carry `budget_pct`: the stint's counted time as a per cent of the cycle's `resolution`
target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from flows.core.phase import OPEN
from flows.core.vocabulary import Metric

if TYPE_CHECKING:
    from flows.core.clock import Clock
    from flows.core.context import Context
    from flows.core.conversation import AttrChange, Conversation
    from flows.core.events import AssignmentEvent, ConversationEvent, MessageEvent
    from flows.core.model import Target

#: The metrics this family measures.
METRICS: Final = frozenset({Metric.TEAM_OWNERSHIP})


def _start_stint(conv: Conversation, ctx: Context, at: int) -> None:
    """Start a stint for the owning team, if some policy lists it and the cycle is open."""
    team = conv.owner
    if team is not None and team in ctx.owning_teams and conv.phase == OPEN:
        conv.start(ctx, Metric.TEAM_OWNERSHIP, at, team=team)


def _hand_over(conv: Conversation, ctx: Context, team: str | None, at: int) -> bool:
    """Make `team` the owner; end the running stint if the owner changed. Return whether it did."""
    if team == conv.owner:
        return False
    conv.owner = team
    clock = conv.running(Metric.TEAM_OWNERSHIP)
    if clock is not None:
        conv.finish(ctx, clock, at)
    return True


def on_first_inbound(conv: Conversation, ctx: Context, event: MessageEvent, at: int) -> None:
    """The cycle's first customer message starts the stint of the team that already owns it."""
    if conv.running(Metric.TEAM_OWNERSHIP) is None:
        _start_stint(conv, ctx, at)


def on_assigned(conv: Conversation, ctx: Context, event: AssignmentEvent, at: int) -> None:
    """An assignment to another team hands the conversation over (an unknown team changes none)."""
    team = conv.team_of(ctx)
    if team is not None and _hand_over(conv, ctx, team, at):
        _start_stint(conv, ctx, at)


def before_update(conv: Conversation, ctx: Context, change: AttrChange, at: int) -> None:
    """A `team_id` change ends the old team's stint under the policy it ran by."""
    if change.team_set:
        change.handed_over = _hand_over(conv, ctx, conv.team_of(ctx), at)


def after_update(conv: Conversation, ctx: Context, change: AttrChange, at: int) -> None:
    """After the reselect, the new team's stint starts under the policy that now applies."""
    if change.handed_over:
        _start_stint(conv, ctx, at)


def on_reopened(conv: Conversation, ctx: Context, at: int) -> None:
    """A reopened cycle is the owning team's again: a new stint."""
    if conv.running(Metric.TEAM_OWNERSHIP) is None:
        _start_stint(conv, ctx, at)


def at_resolve(
    conv: Conversation, ctx: Context, clock: Clock, event: ConversationEvent, at: int
) -> None:
    """A resolve ends the stint fulfilled: the team finished its part."""
    conv.finish(ctx, clock, at)


def team_target(conv: Conversation, clock: Clock, tgt: Target) -> Target | None:
    """A stint's target is the owning team's own (None: the policy does not list that team)."""
    return tgt.teams.get(clock.team) if clock.team is not None else None


def budget_pct(conv: Conversation, clock: Clock, at: int) -> float | None:
    """Return the stint's counted time up to `at` as a per cent of the cycle's resolution target.

    The cycle's `resolution` clock's target when it is measured, else the current policy's; None
    when neither exists (SPEC §4).
    """
    res = conv.res_clock
    target = res.target if res is not None and res.cycle == clock.cycle else None
    if target is None and conv.policy is not None:
        tgt = conv.policy.targets.get(Metric.RESOLUTION)
        target = tgt.within if tgt is not None else None
    if not target:
        return None
    return clock.elapsed(at) * 100 / target
