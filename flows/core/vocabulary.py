"""The closed vocabularies of SPEC §1, §4 and §6, and what a clock's status says about it.

Every name the engine, the decoder, the policy loader, the QuestDB writer, the reports and the
dashboards share is spelled here once. The names are plain `str` constants grouped in
namespaces (not `enum.StrEnum`): records carry them as they are, so the QuestDB client, orjson
and the snapshots see ordinary strings. Each namespace is one frozen, slotted instance, so
reading `Metric.CADENCE` on the engine's hot path is a slot read (a class attribute read is
twice as slow on CPython 3.11).

The rules about statuses live here too: which statuses leave a clock running
(`clock_is_open`), which end it, and which count as breached in compliance. Connectors, reports
and dashboards ask these instead of keeping their own lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal


@dataclass(frozen=True, slots=True)
class _Metric:
    """SLA metrics (SPEC §4): one clock measures one metric in one cycle.

    `ALL` lists them in SPEC order. Plain `str` constants, so records carry them as they are.
    """

    ASSIGNMENT: Literal["assignment"] = "assignment"
    FIRST_RESPONSE: Literal["first_response"] = "first_response"
    NEXT_RESPONSE: Literal["next_response"] = "next_response"
    RESOLUTION: Literal["resolution"] = "resolution"
    FOLLOW_UP: Literal["follow_up"] = "follow_up"
    QUALIFICATION: Literal["qualification"] = "qualification"
    HANDOFF: Literal["handoff"] = "handoff"
    CONTACT_ATTEMPTS: Literal["contact_attempts"] = "contact_attempts"
    CADENCE: Literal["cadence"] = "cadence"
    SERVICE_WINDOW: Literal["service_window"] = "service_window"
    UPDATE: Literal["update"] = "update"
    TEAM_OWNERSHIP: Literal["team_ownership"] = "team_ownership"

    ALL: tuple[str, ...] = (
        ASSIGNMENT,
        FIRST_RESPONSE,
        NEXT_RESPONSE,
        RESOLUTION,
        FOLLOW_UP,
        QUALIFICATION,
        HANDOFF,
        CONTACT_ATTEMPTS,
        CADENCE,
        SERVICE_WINDOW,
        UPDATE,
        TEAM_OWNERSHIP,
    )
    #: Clocks that outlive cycles: `resolved` does not end them (only won/lost ends a cadence),
    #: and their `seq` counts per conversation, not per cycle.
    CONVERSATION_SCOPED: frozenset[str] = frozenset({CADENCE, SERVICE_WINDOW})
    #: Clocks that count wall-clock time whatever the policy's calendar (SPEC §4).
    WALL_CLOCK: frozenset[str] = frozenset({SERVICE_WINDOW, FOLLOW_UP})


Metric: Final = _Metric()


@dataclass(frozen=True, slots=True)
class _Status:
    """Statuses of an SLA record (SPEC §6).

    `started` opens a clock; `warning`, `paused`, `resumed` and `retargeted` keep it open;
    `attempt` (`contact_attempts` only) counts one more attempt and leaves the clock's state as it
    was (running, warned or breached: its `breached` field says which);
    `breached` keeps it open except for `service_window`; `met` (fulfilled in time), `stopped`
    (fulfilled after its breach), `closed` (ended by `resolved` after its breach) and `cancelled`
    (ended before its breach, left out of compliance) end it (see `clock_is_open`).
    """

    STARTED: Literal["started"] = "started"
    WARNING: Literal["warning"] = "warning"
    BREACHED: Literal["breached"] = "breached"
    MET: Literal["met"] = "met"
    STOPPED: Literal["stopped"] = "stopped"
    CLOSED: Literal["closed"] = "closed"
    CANCELLED: Literal["cancelled"] = "cancelled"
    PAUSED: Literal["paused"] = "paused"
    RESUMED: Literal["resumed"] = "resumed"
    RETARGETED: Literal["retargeted"] = "retargeted"
    ATTEMPT: Literal["attempt"] = "attempt"

    ALL: tuple[str, ...] = (
        STARTED,
        WARNING,
        BREACHED,
        MET,
        STOPPED,
        CLOSED,
        CANCELLED,
        PAUSED,
        RESUMED,
        RETARGETED,
        ATTEMPT,
    )


Status: Final = _Status()


@dataclass(frozen=True, slots=True)
class _Cause:
    """Breach causes (SPEC §4), in the order the first that applies is chosen.

    `unassigned`: no assignee; `bot_handled`: the bot handles the chat; `after_hours`: started while
    the desk was closed and breached within 2 h of its opening; `overloaded`: the assignee held at
    least `overload_at` open conversations; `agent`: none of these.
    """

    UNASSIGNED: Literal["unassigned"] = "unassigned"
    BOT_HANDLED: Literal["bot_handled"] = "bot_handled"
    AFTER_HOURS: Literal["after_hours"] = "after_hours"
    OVERLOADED: Literal["overloaded"] = "overloaded"
    AGENT: Literal["agent"] = "agent"

    ALL: tuple[str, ...] = (UNASSIGNED, BOT_HANDLED, AFTER_HOURS, OVERLOADED, AGENT)


Cause: Final = _Cause()


@dataclass(frozen=True, slots=True)
class _LeadStatus:
    """Values of the `lead_status` attribute (SPEC §1)."""

    NEW: Literal["new"] = "new"
    QUALIFIED: Literal["qualified"] = "qualified"
    DISQUALIFIED: Literal["disqualified"] = "disqualified"
    NURTURE: Literal["nurture"] = "nurture"

    ALL: tuple[str, ...] = (NEW, QUALIFIED, DISQUALIFIED, NURTURE)
    #: Statuses that end `qualification` (SPEC §4).
    QUALIFIED_OUTCOMES: frozenset[str] = frozenset({QUALIFIED, DISQUALIFIED, NURTURE})


LeadStatus: Final = _LeadStatus()


@dataclass(frozen=True, slots=True)
class _HandleEnd:
    """How a handle segment ended (SPEC §4 "Handle time", §6 handle record `end`).

    `pending`, `resolved`, `unassigned`, `reassigned` (another assignee) and `idle` (no message
    for the policy's `handle.idle`: the segment ended at its last message) are SPEC's.
    `withdrawn` is slawatch's: a late correction found that the segment stored under this identity
    does not exist (or no longer counts); the row is re-sent with it and `handle_s` 0, so stores
    keyed on the identity converge (docs/SEMANTICS.md, handle time).
    """

    PENDING: Literal["pending"] = "pending"
    RESOLVED: Literal["resolved"] = "resolved"
    UNASSIGNED: Literal["unassigned"] = "unassigned"
    REASSIGNED: Literal["reassigned"] = "reassigned"
    IDLE: Literal["idle"] = "idle"
    WITHDRAWN: Literal["withdrawn"] = "withdrawn"

    ALL: tuple[str, ...] = (PENDING, RESOLVED, UNASSIGNED, REASSIGNED, IDLE, WITHDRAWN)


HandleEnd: Final = _HandleEnd()


#: Resolve outcomes that end a lead's cadence for good (until `lead_status` changes again).
CLOSING_OUTCOMES: Final = frozenset({"won", "lost"})

#: Statuses after which a clock still runs (it can still stop, pause or breach).
OPEN_STATUSES: Final = frozenset(
    {
        Status.STARTED,
        Status.WARNING,
        Status.RETARGETED,
        Status.RESUMED,
        Status.PAUSED,
        Status.ATTEMPT,
    }
)
#: Statuses that end a clock for good; each such record carries a `deadline_at`.
ENDING_STATUSES: Final = frozenset({Status.MET, Status.STOPPED, Status.CLOSED, Status.CANCELLED})
#: Final outcomes counted as breached in compliance (SPEC §6): met / (met + these).
BREACHED_OUTCOMES: Final = frozenset({Status.BREACHED, Status.STOPPED, Status.CLOSED})
#: Metrics whose clock is over once breached: WhatsApp's window has closed, and the customer's
#: next message opens a new one (SPEC §4). Every other clock keeps running after its breach.
ENDS_AT_BREACH: Final = frozenset({Metric.SERVICE_WINDOW})


def clock_is_open(status: str, metric: str) -> bool:
    """Return whether a clock whose latest record has `status` is still running.

    A clock runs while its latest status is `started`, `warning`, `retargeted`, `resumed` or
    `paused`, and after `breached` (a breached clock keeps running until it stops, SPEC §4), except
    a `service_window`, which is over once breached. `met`, `stopped`, `closed` and `cancelled` end
    it.

    Args:
        status: The status of the clock's latest record.
        metric: The clock's metric.

    Returns:
        True while the clock runs (what a wallboard shows as a live clock).
    """
    if status in OPEN_STATUSES:
        return True
    return status == Status.BREACHED and metric not in ENDS_AT_BREACH
