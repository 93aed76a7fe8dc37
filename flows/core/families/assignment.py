"""The `assignment` clock (SPEC §4): how long an open cycle waits for an assignee.

Starts when a cycle opens (or is reopened) with no assignee, and when the assignee is removed while
the cycle is open; `assigned` fulfils it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from flows.core.phase import OPEN
from flows.core.vocabulary import Metric

if TYPE_CHECKING:
    from flows.core.context import Context
    from flows.core.conversation import Conversation
    from flows.core.events import AssignmentEvent

#: The metrics this family measures.
METRICS: Final = frozenset({Metric.ASSIGNMENT})


def on_cycle_opened(conv: Conversation, ctx: Context, at: int) -> None:
    """An unassigned conversation starts waiting for an assignee when its cycle opens."""
    if conv.agent is None:
        conv.start(ctx, Metric.ASSIGNMENT, at)


def on_assigned(conv: Conversation, ctx: Context, event: AssignmentEvent, at: int) -> None:
    """`assigned` fulfils the running `assignment` clock."""
    clock = conv.running(Metric.ASSIGNMENT)
    if clock is not None:
        conv.finish(ctx, clock, at)


def on_unassigned(conv: Conversation, ctx: Context, at: int) -> None:
    """Removing the assignee of an open cycle starts a new wait (one clock at a time)."""
    if conv.phase == OPEN and conv.running(Metric.ASSIGNMENT) is None:
        conv.start(ctx, Metric.ASSIGNMENT, at)


def on_reopened(conv: Conversation, ctx: Context, at: int) -> None:
    """A reopened cycle without an assignee waits for one again."""
    if conv.agent is None:
        conv.start(ctx, Metric.ASSIGNMENT, at)
