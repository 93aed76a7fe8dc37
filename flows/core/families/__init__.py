"""The metric families the clock machine drives (../STYLE Shape 9 in docs/ARCHITECTURE.md).

Each family is a module of plain functions: what starts its clocks, what stops them and what they
emit, given the `Conversation` (which keeps only what they share: cycle, assignee, attributes,
the running clocks and the order of one instant). This module is the registration: for each
moment of a conversation, the families' hooks in the order they run. The order within one hook
list is part of the record stream (records of one event come out in it), so a new family is
appended, never inserted.

Hook signatures:

- message/assignment/activity/promise hooks: `(conv, ctx, event, at)`;
- cycle hooks (`CYCLE_OPENED`, `UNASSIGNED`, `REOPENED`, `RESOLVED`): `(conv, ctx, at)`;
- attribute hooks (`BEFORE_UPDATE` run before the policy is chosen again, `AFTER_UPDATE` after):
  `(conv, ctx, change, at)`;
- `AT_RESOLVE[metric]`: `(conv, ctx, clock, event, at)`, what `resolved` does to a running clock
  of that metric (default: end it unfulfilled, `cancelled` or `closed`);
- `TARGET_MS[metric]`: `(conv, clock, tgt) -> int | None`, the target in counted ms (default
  `within`); `SUB_TARGET[metric]`: `(conv, clock, tgt) -> Target | None`, the target that
  applies to this clock within the policy's (default the policy's own).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from flows.core.families import assignment, handle, leads, replies, teams, updates, window
from flows.core.vocabulary import Metric

if TYPE_CHECKING:
    from flows.core.clock import Clock
    from flows.core.model import Target

_Hook = Callable[..., None]

#: A cycle opened (after the shared per-cycle state was reset).
CYCLE_OPENED: Final[tuple[_Hook, ...]] = (assignment.on_cycle_opened,)
#: The cycle's first customer message, then every customer message.
FIRST_INBOUND: Final[tuple[_Hook, ...]] = (replies.on_first_inbound, teams.on_first_inbound)
LATER_INBOUND: Final[tuple[_Hook, ...]] = (replies.on_later_inbound,)
INBOUND: Final[tuple[_Hook, ...]] = (window.on_inbound, leads.on_inbound, handle.on_inbound)
#: A reply (SPEC §4: an agent's message that is not a note, or a bot's if they count).
REPLY: Final[tuple[_Hook, ...]] = (replies.on_reply, window.on_reply, updates.on_reply)
#: Any agent message that is not a note (after the reply hooks).
AGENT_MESSAGE: Final[tuple[_Hook, ...]] = (leads.on_agent_message,)
ACTIVITY: Final[tuple[_Hook, ...]] = (leads.on_activity,)
ASSIGNED: Final[tuple[_Hook, ...]] = (
    assignment.on_assigned,
    leads.on_assigned,
    teams.on_assigned,
    handle.on_assigned,
)
UNASSIGNED: Final[tuple[_Hook, ...]] = (assignment.on_unassigned, handle.on_unassigned)
BEFORE_UPDATE: Final[tuple[_Hook, ...]] = (leads.before_update, teams.before_update)
AFTER_UPDATE: Final[tuple[_Hook, ...]] = (
    leads.after_update,
    replies.after_update,
    teams.after_update,
    handle.after_update,
)
PROMISE: Final[tuple[_Hook, ...]] = (replies.on_promise,)
REOPENED: Final[tuple[_Hook, ...]] = (
    assignment.on_reopened,
    updates.on_reopened,
    teams.on_reopened,
)
#: Any outbound message by an agent, notes included (before the reply hooks).
AGENT_OUTBOUND: Final[tuple[_Hook, ...]] = (handle.on_agent_outbound,)
#: A cycle was resolved (after its clocks ended).
RESOLVED: Final[tuple[_Hook, ...]] = (handle.on_resolved,)

AT_RESOLVE: Final[dict[str, _Hook]] = {
    Metric.SERVICE_WINDOW: window.at_resolve,
    Metric.CADENCE: leads.at_resolve,
    Metric.TEAM_OWNERSHIP: teams.at_resolve,
}
TARGET_MS: Final[dict[str, Callable[[Any, Clock, Target], int | None]]] = {
    Metric.CADENCE: leads.cadence_target,
    Metric.FOLLOW_UP: replies.follow_up_target,
}
SUB_TARGET: Final[dict[str, Callable[[Any, Clock, Target], Target | None]]] = {
    Metric.TEAM_OWNERSHIP: teams.team_target,
}
_HOOK_LISTS: Final = (
    "CYCLE_OPENED",
    "FIRST_INBOUND",
    "LATER_INBOUND",
    "INBOUND",
    "REPLY",
    "AGENT_MESSAGE",
    "ACTIVITY",
    "ASSIGNED",
    "UNASSIGNED",
    "BEFORE_UPDATE",
    "AFTER_UPDATE",
    "PROMISE",
    "REOPENED",
    "AGENT_OUTBOUND",
    "RESOLVED",
)


#: Hook points whose hooks take `(conv, ctx, at)`; the others take `(conv, ctx, x, at)`.
_THREE_ARGS: Final = frozenset({"CYCLE_OPENED", "UNASSIGNED", "REOPENED", "RESOLVED"})


def _nothing3(conv: Any, ctx: Any, at: int) -> None:
    """No family listens at this hook point."""


def _nothing4(conv: Any, ctx: Any, x: Any, at: int) -> None:
    """No family listens at this hook point."""


def _chain3(hooks: tuple[_Hook, ...]) -> _Hook:
    """Return one callable running `hooks` in order, for `(conv, ctx, at)` hooks."""
    if not hooks:
        return _nothing3
    if len(hooks) == 1:
        return hooks[0]

    def run(conv: Any, ctx: Any, at: int) -> None:
        for hook in hooks:
            hook(conv, ctx, at)

    return run


def _chain4(hooks: tuple[_Hook, ...]) -> _Hook:
    """Return one callable running `hooks` in order, for `(conv, ctx, x, at)` hooks.

    Unrolled up to three hooks: a `for` over a tuple allocates an iterator the garbage
    collector tracks, and per event that made the collector run measurably more often.
    """
    if not hooks:
        return _nothing4
    if len(hooks) == 1:
        return hooks[0]
    if len(hooks) == 2:
        first, second = hooks

        def run2(conv: Any, ctx: Any, x: Any, at: int) -> None:
            first(conv, ctx, x, at)
            second(conv, ctx, x, at)

        return run2
    if len(hooks) == 3:
        one, two, three = hooks

        def run3(conv: Any, ctx: Any, x: Any, at: int) -> None:
            one(conv, ctx, x, at)
            two(conv, ctx, x, at)
            three(conv, ctx, x, at)

        return run3

    def run(conv: Any, ctx: Any, x: Any, at: int) -> None:
        for hook in hooks:
            hook(conv, ctx, x, at)

    return run


class Hooks:
    """Each hook point above as one callable, keeping only the families some policy measures.

    A family none of whose metrics any policy targets could start no clock, so its hooks are
    skipped: per-event work is paid only for the metrics in use. `Context.bind` builds one per
    policy file. The attributes have the names of the module-level lists; each runs that list's
    remaining hooks in order (a no-op when none is left).
    """

    __slots__ = _HOOK_LISTS

    def __init__(self, tracked: frozenset[str]) -> None:
        module = sys.modules[__name__]
        for name in _HOOK_LISTS:
            hooks = tuple(
                hook
                for hook in getattr(module, name)
                if sys.modules[hook.__module__].METRICS & tracked
            )
            chain = _chain3 if name in _THREE_ARGS else _chain4
            object.__setattr__(self, name, chain(hooks))

    CYCLE_OPENED: _Hook
    FIRST_INBOUND: _Hook
    LATER_INBOUND: _Hook
    INBOUND: _Hook
    REPLY: _Hook
    AGENT_MESSAGE: _Hook
    ACTIVITY: _Hook
    ASSIGNED: _Hook
    UNASSIGNED: _Hook
    BEFORE_UPDATE: _Hook
    AFTER_UPDATE: _Hook
    PROMISE: _Hook
    REOPENED: _Hook
    AGENT_OUTBOUND: _Hook
    RESOLVED: _Hook


#: Metrics whose records carry `lead_status`.
LEAD_METRICS: Final = leads.METRICS
budget_pct: Final = teams.budget_pct
