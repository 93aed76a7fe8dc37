"""Periodic updates (SPEC §4, `update`): the longest silence towards the customer on a long case.

While a cycle is open the customer hears from the business at least every `every`: the cycle's
first reply (or `reopened`) starts a clock, every reply fulfils the running one and starts the
next (one clock per silence, `seq` 1, 2, …). Replies are what fulfil reply clocks (agent
messages that are not notes, templates included; bots' only under `bot_replies_count`); customer
messages and activities do not reset it. `resolved` ends it like any clock of the cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from flows.core.phase import OPEN
from flows.core.vocabulary import Metric

if TYPE_CHECKING:
    from flows.core.context import Context
    from flows.core.conversation import Conversation
    from flows.core.events import MessageEvent

#: The metrics this family measures.
METRICS: Final = frozenset({Metric.UPDATE})


def on_reply(conv: Conversation, ctx: Context, event: MessageEvent, at: int) -> None:
    """A reply ends the running silence and, while the cycle is open, starts the next one."""
    clock = conv.running(Metric.UPDATE)
    if clock is not None:
        conv.finish(ctx, clock, at)
    if conv.phase == OPEN:
        conv.start(ctx, Metric.UPDATE, at)


def on_reopened(conv: Conversation, ctx: Context, at: int) -> None:
    """A reopened cycle owes the customer an update again, counted from the reopen."""
    if conv.running(Metric.UPDATE) is None:
        conv.start(ctx, Metric.UPDATE, at)
