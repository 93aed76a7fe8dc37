"""The policy model (SPEC §2–§3) as frozen values the engine reads.

`flows.core.policies.load_policies` builds a `PolicySet` from YAML; everything here is plain
data so the engine stays free of parsing concerns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

from flows.core.vocabulary import LeadStatus, Metric

#: The metrics a policy may target, in SPEC order.
METRICS: Final = Metric.ALL
#: Values of `lead_status`.
LEAD_STATUSES: Final = LeadStatus.ALL


class BusinessTime(Protocol):
    """Counted time: wall clock (24/7) or a calendar's open hours. Instants are epoch ms UTC."""

    def add(self, start: int, counted: int) -> int:
        """Return the first instant at which `counted` ms have been counted since `start`."""
        ...

    def counted(self, start: int, end: int) -> int:
        """Return the ms counted between `start` and `end` (0 when `end <= start`)."""
        ...

    def is_open(self, at: int) -> bool:
        """Return whether time counts at instant `at`."""
        ...

    def next_opening(self, at: int) -> int | None:
        """Return the first instant >= `at` at which time counts (None if never again)."""
        ...


@dataclass(frozen=True, slots=True)
class Target:
    """One metric's target within a policy.

    Attributes:
        metric: one of `METRICS`.
        within: target in counted ms (None for `follow_up`, whose deadline is `due_at`,
            and for `cadence`, whose target depends on `lead_status`).
        warn_at: warning at this fraction of the target (used when `warn_before` is None).
        warn_before: warning this many counted ms ahead of the deadline.
        pause_when: conversation statuses during which the clock does not count.
        to_role: `handoff` only: the role whose assignment fulfils the clock.
        min_attempts: `contact_attempts` only: attempts needed.
        gap: `contact_attempts` only: attempts closer than this merge into one (ms).
        cadence: `cadence` only: longest silence allowed (ms) per `lead_status`.
        teams: `team_ownership` only: each listed team's own target (its `within`, warning and
            `pause_when`), by team id.
    """

    metric: str
    within: int | None = None
    warn_at: float = 0.8
    warn_before: int | None = None
    pause_when: frozenset[str] = frozenset()
    to_role: str = "ae"
    min_attempts: int = 1
    gap: int = 600_000
    cadence: Mapping[str, int] = field(default_factory=dict)
    teams: Mapping[str, Target] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Escalation:
    """An action taken when a clock of `metric` emits `on` (`warning` or `breached`).

    SPEC §3 `escalations`; each fires one SPEC §6 action record per `notify` and per `reassign`.

    Attributes:
        on: `warning` or `breached`.
        metric: The metric whose clocks trigger it (the policy has a target for it).
        notify: Whom to notify: `supervisor` (the team's), or a role or person as written.
        reassign: Whether to suggest reassigning to the least-loaded team member.
    """

    on: str
    metric: str
    notify: str | None = None
    reassign: bool = False


@dataclass(frozen=True, slots=True)
class Recovery:
    """A service-recovery rule (SPEC §3 `recovery`, §4 "Service recovery").

    It fires once for a clock of `metric` that breached and is still unfulfilled `over` past its
    deadline (counted on the clock's own business time, its pauses excluded), if the
    conversation matches `when` then, and no recovery of the conversation (by any rule) was
    emitted less than `cap` before.

    Attributes:
        metric: The metric whose clocks it watches (the policy has a target for it).
        send: The name of the template or offer to send (what `slawatch act` delivers).
        name: The rule's identity in action records (`rule`): `<policy id>#<n>`, `n` its
            1-based position in the policy's `recovery` list.
        over: Counted ms past the deadline (0: at the breach).
        cap: Event-time ms after a recovery of the conversation during which this rule does
            not fire.
        when: Attribute → accepted values, as a policy's `when`; empty matches every
            conversation.
    """

    metric: str
    send: str
    name: str
    over: int = 0
    cap: int = 30 * 24 * 3600 * 1000
    when: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Policy:
    """The first policy whose `when` matches a conversation's attributes applies to it.

    `when` maps an attribute name to the accepted values (any of them matches). A list-valued
    attribute (`tags`) matches when any of its values is accepted.

    Attributes:
        id: Unique within the file; records carry it as `policy_id`.
        when: Attribute → accepted values; empty matches every conversation.
        targets: Metric → target; a metric without one is not measured.
        calendar: The business time targets count (None: 24/7 wall clock).
        calendar_id: The calendar's name in the file (snapshots refer to it).
        bot_replies_count: Whether a bot's reply fulfils reply clocks.
        escalations: What to do on warnings and breaches, in file order.
        overload_at: Open conversations from which an assignee is `overloaded` (SPEC §4).
        recovery: Service-recovery rules, in file order (SPEC §3 `recovery`).
        handle_idle: Handle time (SPEC §3 `handle`, §4): a segment ends this many wall-clock ms
            after its last message; None when the policy has no `handle` key (not measured).
    """

    id: str
    when: Mapping[str, frozenset[str]]
    targets: Mapping[str, Target]
    calendar: BusinessTime | None = None
    calendar_id: str | None = None
    bot_replies_count: bool = False
    escalations: tuple[Escalation, ...] = ()
    overload_at: int = 20
    recovery: tuple[Recovery, ...] = ()
    handle_idle: int | None = None


@dataclass(frozen=True, slots=True)
class Team:
    """A team: its agents in round-robin order and its supervisor.

    Attributes:
        id: The team id, as `team_id` attributes and assignments name it.
        agents: Agent ids, distinct, in round-robin order.
        supervisor: Who `notify: supervisor` reaches, if anyone.
    """

    id: str
    agents: tuple[str, ...]
    supervisor: str | None = None


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Everything loaded from a policy file.

    Attributes:
        policies: In file order; the first match applies (`select_policy`).
        teams: By id.
        calendars: By name.
        warnings: What is accepted but probably not meant (e.g. team targets adding up to more
            than the resolution target, SPEC §4), one line each, for the start-up log.
    """

    policies: tuple[Policy, ...]
    teams: Mapping[str, Team] = field(default_factory=dict)
    calendars: Mapping[str, BusinessTime] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
