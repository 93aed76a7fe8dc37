"""WhatsApp's customer-service window (SPEC §4, `service_window`).

Only WhatsApp customer messages open or move it: the first opens a window (one clock per
unanswered stretch), each newer one moves its deadline to `within` after that message
(`retargeted`). A reply that is not a `template` fulfils it; `resolved` does not end it; once
breached it is over (the clock machine drops it) and the next customer message opens a new one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from flows.core.vocabulary import Metric, Status

if TYPE_CHECKING:
    from flows.core.clock import Clock
    from flows.core.context import Context
    from flows.core.conversation import Conversation
    from flows.core.events import ConversationEvent, MessageEvent

#: The only channel with a customer-service window.
WHATSAPP: Final = "whatsapp"

#: The metrics this family measures.
METRICS: Final = frozenset({Metric.SERVICE_WINDOW})


def on_inbound(conv: Conversation, ctx: Context, event: MessageEvent, at: int) -> None:
    """A WhatsApp customer message opens a window, or moves the running one's deadline."""
    if event.channel != WHATSAPP:
        return
    window = conv.running(Metric.SERVICE_WINDOW)
    if window is None:
        conv.start(ctx, Metric.SERVICE_WINDOW, at)
    elif window.measured:
        window.count_from = at
        window.recompute()
        window.warned = window.warn is not None and window.warn < at
        conv.record(ctx, window, Status.RETARGETED, at)
    else:
        window.count_from = at


def on_reply(conv: Conversation, ctx: Context, event: MessageEvent, at: int) -> None:
    """A reply that is not a paid `template` closes the window as met."""
    if event.kind != "template":
        window = conv.running(Metric.SERVICE_WINDOW)
        if window is not None:
            conv.finish(ctx, window, at)


def at_resolve(
    conv: Conversation, ctx: Context, clock: Clock, event: ConversationEvent, at: int
) -> None:
    """A resolve leaves the window running: Meta's 24 hours do not care about cycles."""
