"""Reply clocks and the cycle's own clock (SPEC §4).

The metrics: `first_response`, `next_response`, `follow_up` and `resolution`.

A cycle's first customer message starts `resolution` and (unless a bot handles the chat)
`first_response`; a later one after a reply starts `next_response` when no reply clock runs (one
clock per wait); a promise starts `follow_up` with its `due_at` as the deadline. A reply fulfils
`first_response`, `next_response` and every `follow_up`; `resolved` fulfils `resolution` (the
conversation keeps that clock, since `reopened` resumes it). The hand-off from bot to human starts
the reply clock the customer's unanswered message would have started, counted from the hand-off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from flows.core.phase import OPEN
from flows.core.vocabulary import Metric

if TYPE_CHECKING:
    from flows.core.clock import Clock
    from flows.core.context import Context
    from flows.core.conversation import AttrChange, Conversation
    from flows.core.events import ConversationEvent, MessageEvent
    from flows.core.model import Target

#: The metrics this family measures.
METRICS: Final = frozenset(
    {Metric.FIRST_RESPONSE, Metric.NEXT_RESPONSE, Metric.RESOLUTION, Metric.FOLLOW_UP}
)


def on_first_inbound(conv: Conversation, ctx: Context, event: MessageEvent, at: int) -> None:
    """The cycle's first customer message starts `resolution` and `first_response`."""
    conv.res_clock = conv.start(ctx, Metric.RESOLUTION, at)
    if not conv.bot_handled():
        conv.start(ctx, Metric.FIRST_RESPONSE, at)


def on_later_inbound(conv: Conversation, ctx: Context, event: MessageEvent, at: int) -> None:
    """A customer message after a reply starts `next_response` unless a reply clock runs."""
    if (
        conv.replied
        and not conv.bot_handled()
        and conv.running(Metric.NEXT_RESPONSE) is None
        and conv.running(Metric.FIRST_RESPONSE) is None
    ):
        conv.start(ctx, Metric.NEXT_RESPONSE, at)


def on_reply(conv: Conversation, ctx: Context, event: MessageEvent, at: int) -> None:
    """A reply fulfils `first_response`, `next_response` and every running `follow_up`."""
    first = conv.running(Metric.FIRST_RESPONSE)
    if first is not None:
        conv.finish(ctx, first, at)
    nxt = conv.running(Metric.NEXT_RESPONSE)
    if nxt is not None:
        conv.finish(ctx, nxt, at)
    for clock in [c for c in conv.clocks if c.metric == Metric.FOLLOW_UP]:
        conv.finish(ctx, clock, at)


def on_promise(conv: Conversation, ctx: Context, event: ConversationEvent, at: int) -> None:
    """`follow_up_promised` starts `follow_up`, due at the promised `due_at` (none: ignored)."""
    if event.due_at is not None:
        conv.start(ctx, Metric.FOLLOW_UP, at, fixed_deadline=event.due_at)


def after_update(conv: Conversation, ctx: Context, change: AttrChange, at: int) -> None:
    """The hand-off from bot to human starts the reply clock an unanswered message needs."""
    if not change.to_human or conv.unanswered is None or not conv.phase == OPEN:
        return
    if not conv.replied:
        if conv.running(Metric.FIRST_RESPONSE) is None:
            conv.start(ctx, Metric.FIRST_RESPONSE, at)
    elif conv.running(Metric.NEXT_RESPONSE) is None:
        conv.start(ctx, Metric.NEXT_RESPONSE, at)


def follow_up_target(conv: Conversation, clock: Clock, tgt: Target) -> int | None:
    """A follow-up runs from the promise to the promised `due_at`."""
    if clock.fixed_deadline is None:
        return None
    return max(0, clock.fixed_deadline - clock.started_at)
