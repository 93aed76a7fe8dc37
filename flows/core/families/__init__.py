"""The metric families the clock machine drives (../STYLE Shape 9 in docs/ARCHITECTURE.md).

Each family is a module of plain functions: what starts its clocks, what stops them and what they
emit, given the `Conversation` (which keeps only what they share: cycle, assignee, attributes,
the running clocks and the order of one instant). This module is the registration: for each
moment of a conversation, the families' hooks in the order they run. The order within one hook
list is part of the record stream (records of one event come out in it), so a new family is
appended, never inserted.

Hook signatures:

- message/assignment/activity/promise hooks: `(conv, ctx, event, at)`;
- cycle hooks (`CYCLE_OPENED`, `UNASSIGNED`, `REOPENED`): `(conv, ctx, at)`;
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

from flows.core.families import assignment, leads, replies, teams, updates, window
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
INBOUND: Final[tuple[_Hook, ...]] = (window.on_inbound, leads.on_inbound)
#: A reply (SPEC §4: an agent's message that is not a note, or a bot's if they count).
REPLY: Final[tuple[_Hook, ...]] = (replies.on_reply, window.on_reply, updates.on_reply)
#: Any agent message that is not a note (after the reply hooks).
AGENT_MESSAGE: Final[tuple[_Hook, ...]] = (leads.on_agent_message,)
ACTIVITY: Final[tuple[_Hook, ...]] = (leads.on_activity,)
ASSIGNED: Final[tuple[_Hook, ...]] = (
    assignment.on_assigned,
    leads.on_assigned,
    teams.on_assigned,
)
UNASSIGNED: Final[tuple[_Hook, ...]] = (assignment.on_unassigned,)
BEFORE_UPDATE: Final[tuple[_Hook, ...]] = (leads.before_update, teams.before_update)
AFTER_UPDATE: Final[tuple[_Hook, ...]] = (
    leads.after_update,
    replies.after_update,
    teams.after_update,
)
PROMISE: Final[tuple[_Hook, ...]] = (replies.on_promise,)
REOPENED: Final[tuple[_Hook, ...]] = (
    assignment.on_reopened,
    updates.on_reopened,
    teams.on_reopened,
)

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
)


class Hooks:
    """The hook lists above, keeping only the families some policy measures.

    A family none of whose metrics any policy targets could start no clock, so its hooks are
    skipped: per-event work is paid only for the metrics in use. `Context.bind` builds one per
    policy file. The attributes have the names of the module-level lists.
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
            object.__setattr__(self, name, hooks)

    CYCLE_OPENED: tuple[_Hook, ...]
    FIRST_INBOUND: tuple[_Hook, ...]
    LATER_INBOUND: tuple[_Hook, ...]
    INBOUND: tuple[_Hook, ...]
    REPLY: tuple[_Hook, ...]
    AGENT_MESSAGE: tuple[_Hook, ...]
    ACTIVITY: tuple[_Hook, ...]
    ASSIGNED: tuple[_Hook, ...]
    UNASSIGNED: tuple[_Hook, ...]
    BEFORE_UPDATE: tuple[_Hook, ...]
    AFTER_UPDATE: tuple[_Hook, ...]
    PROMISE: tuple[_Hook, ...]
    REOPENED: tuple[_Hook, ...]


#: Metrics whose records carry `lead_status`.
LEAD_METRICS: Final = leads.METRICS
budget_pct: Final = teams.budget_pct
