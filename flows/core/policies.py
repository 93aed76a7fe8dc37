"""Policy files (SPEC §2–§3): YAML in, a validated `PolicySet` out, and policy selection.

The file is composed into YAML nodes (not constructed into Python objects) so that every error can
name the line of the offending node, and so that YAML 1.1 surprises never reach the model: the
escalation key `on` stays the string `on` rather than `True`, and an unquoted `2026-12-25` stays the
string `2026-12-25` rather than a `date`. Scalars are read as the text written in the file; only
`bot_replies_count`, `reassign`, `overload_at`, `min` and `warn_at` are typed (bool, int, number).

Every problem raises `PolicyError` naming the file, the 1-based line and the reason. Merge keys
(`<<: *anchor`) are supported; a key written twice in one mapping is an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Final

import yaml
from yaml.nodes import Node, ScalarNode, SequenceNode

from flows.core.calendar import Calendar
from flows.core.durations import MINUTE, format_duration
from flows.core.events import ATTRIBUTE_KEYS, AttrValue
from flows.core.model import (
    LEAD_STATUSES,
    METRICS,
    BusinessTime,
    Escalation,
    Policy,
    PolicySet,
    Recovery,
    Target,
    Team,
)
from flows.core.yamlnodes import NULL_TAG, Entries, NodeReader, line_of, listed
from flows.exceptions import CalendarError, PolicyError

__all__ = ["WHEN_KEYS", "load_policies", "matches_when", "parse_policies", "select_policy"]

#: Attributes a policy's `when` may test: the conversation attributes plus the message channel.
WHEN_KEYS: Final = (*ATTRIBUTE_KEYS, "channel")

#: Values an unset attribute is taken to have when a policy tests it (SPEC §1 defaults).
_ATTRIBUTE_DEFAULTS: Final[Mapping[str, str]] = {"handled_by": "human", "status": "open"}

#: Attributes whose values SPEC §1 fixes; any other value in a `when` could never match.
_CLOSED_VALUES: Final[Mapping[str, tuple[str, ...]]] = {
    "priority": ("P1", "P2", "P3", "P4"),
    "lead_status": LEAD_STATUSES,
    "handled_by": ("bot", "human"),
    "status": ("open", "pending"),
}

_TOP_KEYS: Final = ("calendars", "policies", "teams")
_CALENDAR_KEYS: Final = ("timezone", "weekly", "holidays", "overrides")
_TEAM_KEYS: Final = ("agents", "supervisor")
_POLICY_KEYS: Final = (
    "id",
    "when",
    "calendar",
    "bot_replies_count",
    "overload_at",
    "targets",
    "escalations",
    "recovery",
    "handle",
)
_RECOVERY_KEYS: Final = ("metric", "over", "send", "cap", "when")
_DEFAULT_RECOVERY_CAP: Final = 30 * 24 * 60 * MINUTE
#: How a zero duration may be written for a recovery's `over` or `cap`.
_ESCALATION_KEYS: Final = ("on", "metric", "notify", "reassign")
_ESCALATION_TRIGGERS: Final = ("warning", "breached")
_PAUSE_STATUSES: Final = ("open", "pending")

_COMMON_TARGET_KEYS: Final = ("within", "warn_at", "warn_before", "pause_when")
_WARN_KEYS: Final = ("warn_at", "warn_before")
_TARGET_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "assignment": _COMMON_TARGET_KEYS,
    "first_response": _COMMON_TARGET_KEYS,
    "next_response": _COMMON_TARGET_KEYS,
    "resolution": _COMMON_TARGET_KEYS,
    # The deadline is the promised `due_at`, so there is nothing to put in `within`.
    "follow_up": ("warn_at", "warn_before", "pause_when"),
    "qualification": _COMMON_TARGET_KEYS,
    "handoff": (*_COMMON_TARGET_KEYS, "to_role"),
    "contact_attempts": (*_COMMON_TARGET_KEYS, "min", "gap"),
    "cadence": (*LEAD_STATUSES, *_WARN_KEYS),
    # WhatsApp's window is wall-clock time (SPEC §4), so statuses cannot pause it.
    "service_window": ("within", *_WARN_KEYS),
    # The longest silence towards the customer: `every`, not `within` (SPEC §3).
    "update": ("every", "warn_at", "warn_before", "pause_when"),
    # Team ids, each with a duration or its own target (SPEC §3); checked in `team_targets`.
    "team_ownership": (),
}
_NO_WITHIN: Final = ("follow_up", "cadence", "update", "team_ownership")

_DEFAULT_WARN_AT: Final = 0.8
_DEFAULT_GAP: Final = 10 * MINUTE
_DEFAULT_TO_ROLE: Final = "ae"
_DEFAULT_OVERLOAD_AT: Final = 20
#: SPEC §3 `handle`: a handle segment ends this long after its last message.
_DEFAULT_HANDLE_IDLE: Final = 10 * MINUTE
_HANDLE_KEYS: Final = ("idle",)


def load_policies(path: str | Path) -> PolicySet:
    """Read and validate a policy file.

    Args:
        path: the YAML file (UTF-8).

    Returns:
        The validated policies, teams and calendars.

    Raises:
        PolicyError: the file cannot be read, is not valid YAML, or breaks a rule of SPEC §2–§3;
            the error names the file, the line and the reason.
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        msg = f"cannot read the policy file: {err.strerror or err}"
        raise PolicyError(msg, path=name) from err
    except UnicodeDecodeError as err:
        msg = f"the policy file is not UTF-8 text: {err.reason} at byte {err.start}"
        raise PolicyError(msg, path=name) from err
    return parse_policies(text, path=name)


def parse_policies(text: str, path: str = "<string>") -> PolicySet:
    """Validate policy YAML given as text.

    Args:
        text: the YAML document: top-level `calendars`, `policies` and `teams`.
        path: the name used in error messages.

    Returns:
        The validated policies (in file order: the first whose `when` matches applies), teams
        and calendars.

    Raises:
        PolicyError: the text is not valid YAML or breaks a rule of SPEC §2–§3.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        msg = f"invalid YAML: {err.problem or err.context or err}"
        raise PolicyError(msg, path=path, line=None if mark is None else mark.line + 1) from err
    except yaml.YAMLError as err:
        msg = f"invalid YAML: {err}"
        raise PolicyError(msg, path=path) from err
    if root is None:
        msg = "the policy file is empty: expected a top-level 'policies' list"
        raise PolicyError(msg, path=path, line=1)
    return _Reader(path).policy_set(root)


def select_policy(policies: Sequence[Policy], attrs: Mapping[str, AttrValue]) -> Policy | None:
    """Return the first policy whose `when` matches the attributes, or None if none does.

    Every key of a policy's `when` must match: the attribute's value is one of the accepted
    values; for a tuple value (`tags`) any element accepted is enough. A missing or None attribute
    matches nothing, except `handled_by` (taken as `human`) and `status` (taken as `open`). A
    policy with an empty `when` matches every conversation.

    Args:
        policies: candidate policies in priority order (as loaded).
        attrs: the conversation's attributes, plus `channel` when known.

    Returns:
        The policy that applies, or None.
    """
    for policy in policies:
        if all(_matches(attrs, key, accepted) for key, accepted in policy.when.items()):
            return policy
    return None


def matches_when(when: Mapping[str, frozenset[str]], attrs: Mapping[str, AttrValue]) -> bool:
    """Return whether attributes match a `when` as `select_policy` matches a policy's.

    Used for the `when` of recovery rules (SPEC §3), which reads the same syntax.

    Args:
        when: Attribute → accepted values; empty matches everything.
        attrs: The conversation's attributes, plus `channel` when known.
    """
    return all(_matches(attrs, key, accepted) for key, accepted in when.items())


def _matches(attrs: Mapping[str, AttrValue], key: str, accepted: frozenset[str]) -> bool:
    """Return whether the attribute `key` has one of the `accepted` values (SPEC §3 `when`).

    A list of values means any of them; for a tuple attribute (`tags`) one accepted element is
    enough. An unset attribute takes its SPEC §1 default (`handled_by: human`, `status: open`) or
    matches nothing.
    """
    value = attrs.get(key)
    if value is None:
        value = _ATTRIBUTE_DEFAULTS.get(key)
        if value is None:
            return False
    if isinstance(value, tuple):
        return any(item in accepted for item in value)
    return value in accepted


class _Reader(NodeReader):
    """Walks the composed YAML nodes of one file, building model values or failing with a line.

    Every method either returns a validated value or raises `PolicyError` naming `path`, the line of
    the offending node and a reason that says what is allowed; none returns a partial value.

    Args:
        path: The file name the errors name.
    """

    # -- the document ------------------------------------------------------------------------

    def policy_set(self, root: Node) -> PolicySet:
        """Read the whole document: `calendars`, `teams` and `policies` (required).

        Calendars come first, so policies can name them; only the three top-level keys are allowed.

        Returns:
            The validated policy set.
        """
        entries = self.mapping(root, "the policy file")
        self.only_keys(entries, _TOP_KEYS, "top level")
        calendars: dict[str, Calendar] = {}
        if "calendars" in entries:
            calendars = self.calendars(entries["calendars"][1])
        teams: dict[str, Team] = {}
        if "teams" in entries:
            teams = self.teams(entries["teams"][1])
        if "policies" not in entries:
            self.fail(root, "missing top-level 'policies': the list of policies to apply")
        policies = self.policies(entries["policies"][1], calendars)
        business: dict[str, BusinessTime] = dict(calendars)
        return PolicySet(
            policies=policies, teams=teams, calendars=business, warnings=_warnings(policies)
        )

    # -- calendars ---------------------------------------------------------------------------

    def calendars(self, node: Node) -> dict[str, Calendar]:
        """Read the `calendars` mapping: one `Calendar` per id (SPEC §2)."""
        result: dict[str, Calendar] = {}
        for cal_id, (key, value) in self.mapping(node, "'calendars'").items():
            result[cal_id] = self.calendar(cal_id, key, value)
        return result

    def calendar(self, cal_id: str, key: ScalarNode, node: Node) -> Calendar:
        """Read one calendar: `timezone` and `weekly` required, `holidays` and `overrides` optional.

        The interval syntax, day names, dates and time zone are checked by `Calendar` itself; its
        `CalendarError` is reported on the calendar's key line.

        Args:
            cal_id: The calendar's id (its key in `calendars`).
            key: The key node, for the line of errors about the calendar as a whole.
            node: The calendar's mapping.

        Returns:
            The validated calendar.
        """
        where = f"calendar {cal_id!r}"
        entries = self.mapping(node, where)
        self.only_keys(entries, _CALENDAR_KEYS, where)
        for required in ("timezone", "weekly"):
            if required not in entries:
                self.fail(key, f"{where}: missing {required!r}")
        timezone = self.text(entries["timezone"][1], f"{where}, timezone")
        weekly = {
            day: self.texts(value, f"{where}, weekly.{day}", allow_empty=True)
            for day, (_, value) in self.mapping(entries["weekly"][1], f"{where}, weekly").items()
        }
        holidays: tuple[str, ...] = ()
        if "holidays" in entries:
            holidays = self.texts(entries["holidays"][1], f"{where}, holidays", allow_empty=True)
        overrides: dict[str, tuple[str, ...]] = {}
        if "overrides" in entries:
            overrides = {
                day: self.texts(value, f"{where}, overrides.{day}", allow_empty=True)
                for day, (_, value) in self.mapping(
                    entries["overrides"][1], f"{where}, overrides"
                ).items()
            }
        try:
            return Calendar(timezone, weekly, holidays=holidays, overrides=overrides)
        except CalendarError as err:
            self.fail(key, f"{where} is invalid: {err}")

    # -- teams -------------------------------------------------------------------------------

    def teams(self, node: Node) -> dict[str, Team]:
        """Read the `teams` mapping (SPEC §3): a non-empty list of distinct agents and a supervisor.

        Returns:
            The teams by id, in file order.
        """
        result: dict[str, Team] = {}
        for team_id, (key, value) in self.mapping(node, "'teams'").items():
            where = f"team {team_id!r}"
            entries = self.mapping(value, where)
            self.only_keys(entries, _TEAM_KEYS, where)
            if "agents" not in entries:
                self.fail(key, f"{where}: missing 'agents' (a non-empty list of agent ids)")
            agents_node = entries["agents"][1]
            if not isinstance(agents_node, SequenceNode):
                self.fail(agents_node, f"{where}: 'agents' must be a list of agent ids")
            agents = self.texts(agents_node, f"{where}, agents", allow_empty=False)
            seen: set[str] = set()
            for agent, agent_node in zip(agents, agents_node.value, strict=True):
                if agent in seen:
                    self.fail(agent_node, f"{where}: agent {agent!r} is listed twice")
                seen.add(agent)
            supervisor = None
            if "supervisor" in entries:
                supervisor = self.text(entries["supervisor"][1], f"{where}, supervisor")
            result[team_id] = Team(id=team_id, agents=agents, supervisor=supervisor)
        return result

    # -- policies ----------------------------------------------------------------------------

    def policies(self, node: Node, calendars: Mapping[str, Calendar]) -> tuple[Policy, ...]:
        """Read the `policies` list (SPEC §3: the first policy whose `when` matches applies).

        The list must not be empty; ids must be unique; a policy that an earlier one shadows (every
        conversation it matches is matched first) is refused, since it could never apply.

        Args:
            node: The list node.
            calendars: The calendars the policies may name.

        Returns:
            The policies in file order.
        """
        if not isinstance(node, SequenceNode):
            self.fail(node, "'policies' must be a list of policies (first match wins)")
        if not node.value:
            self.fail(node, "'policies' is empty: at least one policy is needed")
        result: list[Policy] = []
        lines: dict[str, int] = {}
        for index, item in enumerate(node.value):
            policy, id_node = self.policy(item, index, calendars)
            if policy.id in lines:
                self.fail(
                    id_node,
                    f"duplicate policy id {policy.id!r} (first defined at line {lines[policy.id]})",
                )
            for earlier in result:
                if _shadows(earlier, policy):
                    self.fail(
                        item,
                        f"policy {policy.id!r} can never apply: every conversation it matches "
                        f"is matched first by policy {earlier.id!r} (line {lines[earlier.id]})",
                    )
            lines[policy.id] = line_of(item)
            result.append(policy)
        return tuple(result)

    def policy(
        self, node: Node, index: int, calendars: Mapping[str, Calendar]
    ) -> tuple[Policy, Node]:
        """Read one policy (SPEC §3).

        Keys: `id` (required), `when`, `calendar`, `bot_replies_count`, `overload_at`, `targets`,
        `escalations`, `recovery`, `handle`.

        Defaults: no `when` matches everything, no calendar means 24/7 wall-clock time, bots'
        replies do not count, `overload_at` is 20, handle time is measured only with a `handle`
        key. A metric without a target is not measured.

        Args:
            node: The policy's mapping.
            index: Its 0-based position in the list (for errors before its id is known).
            calendars: The calendars it may name.

        Returns:
            The policy and its id node (for the line of a duplicate-id error).
        """
        entries = self.mapping(node, f"policy #{index + 1}")
        if "id" not in entries:
            self.fail(node, f"policy #{index + 1}: missing 'id'")
        id_node = entries["id"][1]
        policy_id = self.text(id_node, f"policy #{index + 1}, id")
        where = f"policy {policy_id!r}"
        self.only_keys(entries, _POLICY_KEYS, where)

        when: dict[str, frozenset[str]] = {}
        if "when" in entries:
            when = self.when(entries["when"][1], where)

        calendar: Calendar | None = None
        calendar_id: str | None = None
        if "calendar" in entries and entries["calendar"][1].tag != NULL_TAG:
            cal_node = entries["calendar"][1]
            calendar_id = self.text(cal_node, f"{where}, calendar")
            if calendar_id not in calendars:
                known = listed(sorted(calendars)) or "none"
                self.fail(
                    cal_node,
                    f"{where}: unknown calendar {calendar_id!r} (defined calendars: {known})",
                )
            calendar = calendars[calendar_id]

        bot_replies_count = False
        if "bot_replies_count" in entries:
            bot_replies_count = self.boolean(
                entries["bot_replies_count"][1], f"{where}, bot_replies_count"
            )
        overload_at = _DEFAULT_OVERLOAD_AT
        if "overload_at" in entries:
            overload_at = self.integer(entries["overload_at"][1], f"{where}, overload_at", 1)

        targets: dict[str, Target] = {}
        if "targets" in entries and entries["targets"][1].tag != NULL_TAG:
            for metric, (key, value) in self.mapping(
                entries["targets"][1], f"{where}, targets"
            ).items():
                if metric not in _TARGET_KEYS:
                    self.fail(
                        key,
                        f"{where}: unknown metric {metric!r} under 'targets' "
                        f"(known metrics: {listed(METRICS)})",
                    )
                targets[metric] = self.target(metric, key, value, f"{where}, target {metric}")

        escalations: tuple[Escalation, ...] = ()
        if "escalations" in entries:
            escalations = self.escalations(entries["escalations"][1], targets, where)
        recovery: tuple[Recovery, ...] = ()
        if "recovery" in entries:
            recovery = self.recovery(entries["recovery"][1], targets, policy_id, where)

        handle_idle: int | None = None
        if "handle" in entries:
            handle_idle = self.handle(entries["handle"][1], f"{where}, handle")

        policy = Policy(
            id=policy_id,
            when=when,
            targets=targets,
            calendar=calendar,
            calendar_id=calendar_id,
            bot_replies_count=bot_replies_count,
            escalations=escalations,
            overload_at=overload_at,
            recovery=recovery,
            handle_idle=handle_idle,
        )
        return policy, id_node

    def when(self, node: Node, where: str) -> dict[str, frozenset[str]]:
        """Read a policy's `when`: each known attribute (or `channel`) with one value or a list.

        Attributes with a closed set of values (priority, lead_status, handled_by, status) are
        checked against it, since any other value could never match.

        Returns:
            The accepted values per attribute.
        """
        result: dict[str, frozenset[str]] = {}
        for key, (key_node, value) in self.mapping(node, f"{where}, when").items():
            if key not in WHEN_KEYS:
                self.fail(
                    key_node,
                    f"{where}: unknown attribute {key!r} in 'when' "
                    f"(known attributes: {listed(WHEN_KEYS)})",
                )
            accepted = self.texts(value, f"{where}, when.{key}", allow_empty=False)
            allowed = _CLOSED_VALUES.get(key)
            if allowed is not None:
                for item, item_node in zip(accepted, self.items(value), strict=True):
                    if item not in allowed:
                        self.fail(
                            item_node,
                            f"{where}: {key} {item!r} in 'when' can never match "
                            f"(known values: {listed(allowed)})",
                        )
            result[key] = frozenset(accepted)
        return result

    # -- targets -----------------------------------------------------------------------------

    def target(self, metric: str, key: ScalarNode, node: Node, where: str) -> Target:
        """Read one metric's target (SPEC §3), checking the keys that metric allows.

        Durations are counted milliseconds. `within` is required except for `follow_up` (its
        deadline is the promised `due_at`) and `cadence` (a duration per listed lead status, at
        least one). `warn_at` (a fraction strictly between 0 and 1, default 0.8) and `warn_before`
        (shorter than the target) exclude each other. `contact_attempts` requires `min` (≥ 1) and
        takes `gap` (default 10m); `min` attempts `gap` apart must fit in `within`. `handoff`'s
        `to_role` defaults to `ae`. `pause_when` lists `open` and/or `pending`.

        Args:
            metric: The metric name (a key of `targets`).
            key: The metric's key node, for errors about the target as a whole.
            node: The target's mapping (or null, for a metric without keys).
            where: The location text errors start with.

        Returns:
            The validated target.
        """
        if metric == "team_ownership":
            return self.team_targets(key, node, where)
        entries: Entries = {} if node.tag == NULL_TAG else self.mapping(node, where)
        allowed = _TARGET_KEYS[metric]
        for name, (name_node, _) in entries.items():
            if name not in allowed:
                hint = ""
                if name == "within" and metric == "follow_up":
                    hint = ": its deadline is the promised due_at"
                elif name == "within" and metric == "update":
                    hint = ": an update target is 'every' (the longest silence allowed)"
                elif metric == "cadence":
                    hint = " (cadence lists a duration per lead_status)"
                self.fail(
                    name_node,
                    f"{where}: unknown key {name!r}{hint}; allowed: {listed(allowed)}",
                )

        within: int | None = None
        if metric not in _NO_WITHIN:
            if "within" not in entries:
                self.fail(key, f"{where}: missing 'within' (the target duration)")
            within = self.duration(entries["within"][1], f"{where}, within")
        if metric == "update":
            if "every" not in entries:
                self.fail(key, f"{where}: missing 'every' (the longest silence allowed)")
            within = self.duration(entries["every"][1], f"{where}, every")

        cadence: dict[str, int] = {}
        if metric == "cadence":
            for status in LEAD_STATUSES:
                if status in entries:
                    cadence[status] = self.duration(entries[status][1], f"{where}, {status}")
            if not cadence:
                self.fail(
                    key,
                    f"{where}: lists no lead status; give the longest silence allowed for "
                    f"one or more of: {listed(LEAD_STATUSES)}",
                )

        warn_at = _DEFAULT_WARN_AT
        warn_before: int | None = None
        if "warn_at" in entries and "warn_before" in entries:
            later = max(entries["warn_at"][0], entries["warn_before"][0], key=line_of)
            self.fail(later, f"{where}: give either 'warn_at' or 'warn_before', not both")
        if "warn_at" in entries:
            warn_at = self.fraction(entries["warn_at"][1], f"{where}, warn_at")
        if "warn_before" in entries:
            wb_node = entries["warn_before"][1]
            warn_before = self.duration(wb_node, f"{where}, warn_before")
            limits: dict[str, int | None] = {"every" if metric == "update" else "within": within}
            if metric == "cadence":
                limits = {f"the {status} silence": ms for status, ms in cadence.items()}
            for name, limit in limits.items():
                if limit is not None and warn_before >= limit:
                    self.fail(
                        wb_node,
                        f"{where}: warn_before {wb_node.value} must be shorter than "
                        f"{name} ({format_duration(limit)})",
                    )

        pause_when: frozenset[str] = frozenset()
        if "pause_when" in entries:
            pw_node = entries["pause_when"][1]
            statuses = self.texts(pw_node, f"{where}, pause_when", allow_empty=True)
            for status, status_node in zip(statuses, self.items(pw_node), strict=True):
                if status not in _PAUSE_STATUSES:
                    self.fail(
                        status_node,
                        f"{where}: pause_when {status!r} is not a conversation status "
                        f"(known statuses: {listed(_PAUSE_STATUSES)})",
                    )
            pause_when = frozenset(statuses)

        to_role = _DEFAULT_TO_ROLE
        if "to_role" in entries:
            to_role = self.text(entries["to_role"][1], f"{where}, to_role")

        min_attempts = 1
        gap = _DEFAULT_GAP
        if metric == "contact_attempts":
            if "min" not in entries:
                self.fail(key, f"{where}: missing 'min' (the number of attempts required)")
            min_attempts = self.integer(entries["min"][1], f"{where}, min", 1)
            if "gap" in entries:
                gap = self.duration(entries["gap"][1], f"{where}, gap")
            if within is not None and (min_attempts - 1) * gap > within:
                culprit = entries["gap"][1] if "gap" in entries else entries["min"][1]
                self.fail(
                    culprit,
                    f"{where}: {min_attempts} attempts at least {format_duration(gap)} apart "
                    f"cannot fit within {format_duration(within)}",
                )

        return Target(
            metric=metric,
            within=within,
            warn_at=warn_at,
            warn_before=warn_before,
            pause_when=pause_when,
            to_role=to_role,
            min_attempts=min_attempts,
            gap=gap,
            cadence=cadence,
        )

    def team_targets(self, key: ScalarNode, node: Node, where: str) -> Target:
        """Read a `team_ownership` target: the OLA of each listed team (SPEC §3, §4).

        Each key is a team id; its value is a duration (`l1: 30m`) or a target of its own with
        `within` and optionally `warn_at` / `warn_before` and `pause_when` (`l2: {within: 4h,
        pause_when: [pending]}`), read like any other target. At least one team is required.

        Args:
            key: The `team_ownership` key node, for errors about the target as a whole.
            node: The mapping of team ids.
            where: The location text errors start with.

        Returns:
            A target whose `teams` holds each team's own target (`within` stays None: a stint's
            target depends on the team that owns the conversation).
        """
        if node.tag == NULL_TAG:
            self.fail(key, f"{where}: lists no team; give each team's target, e.g. {{l1: 30m}}")
        teams: dict[str, Target] = {}
        for team_id, (team_key, value) in self.mapping(node, where).items():
            here = f"{where}, team {team_id!r}"
            if isinstance(value, ScalarNode) and value.tag != NULL_TAG:
                teams[team_id] = Target(
                    metric="team_ownership", within=self.duration(value, f"{here}")
                )
            else:
                own = self.target("resolution", team_key, value, here)
                teams[team_id] = replace(own, metric="team_ownership")
        if not teams:
            self.fail(key, f"{where}: lists no team; give each team's target, e.g. {{l1: 30m}}")
        return Target(metric="team_ownership", teams=teams)

    def handle(self, node: Node, where: str) -> int:
        """Read a policy's `handle` key (SPEC §3): `{idle: <duration>}`, or `{}` for the default.

        The key itself turns handle time on for the policy; `idle` (default 10m) is how long after
        a segment's last message it ends (SPEC §4).

        Returns:
            The idle time in wall-clock milliseconds.
        """
        if node.tag == NULL_TAG:
            self.fail(
                node,
                f"{where} is empty; give {{idle: 10m}} (or {{}} for the default 10m idle time)",
            )
        entries = self.mapping(node, where)
        self.only_keys(entries, _HANDLE_KEYS, where)
        if "idle" not in entries:
            return _DEFAULT_HANDLE_IDLE
        return self.duration(entries["idle"][1], f"{where}, idle")

    def escalations(
        self, node: Node, targets: Mapping[str, Target], where: str
    ) -> tuple[Escalation, ...]:
        """Read a policy's `escalations` list (SPEC §3).

        Each entry needs `on` (`warning` or `breached`) and a `metric` the policy has a target for,
        and does something: `notify` (a role or person) and/or `reassign: true`.

        Returns:
            The escalations in file order.
        """
        if not isinstance(node, SequenceNode):
            self.fail(node, f"{where}: 'escalations' must be a list")
        result: list[Escalation] = []
        for index, item in enumerate(node.value):
            here = f"{where}, escalation #{index + 1}"
            entries = self.mapping(item, here)
            self.only_keys(entries, _ESCALATION_KEYS, here)
            for required in ("on", "metric"):
                if required not in entries:
                    self.fail(item, f"{here}: missing {required!r}")
            on_node = entries["on"][1]
            on = self.text(on_node, f"{here}, on")
            if on not in _ESCALATION_TRIGGERS:
                self.fail(
                    on_node,
                    f"{here}: 'on' is {on!r}; expected one of: {listed(_ESCALATION_TRIGGERS)}",
                )
            metric = self.measured_metric(entries, targets, here, "warns or breaches")
            notify = None
            if "notify" in entries:
                notify = self.text(entries["notify"][1], f"{here}, notify")
            reassign = False
            if "reassign" in entries:
                reassign = self.boolean(entries["reassign"][1], f"{here}, reassign")
            if notify is None and not reassign:
                self.fail(item, f"{here}: does nothing; give 'notify' or 'reassign: true'")
            result.append(Escalation(on=on, metric=metric, notify=notify, reassign=reassign))
        return tuple(result)

    def measured_metric(
        self,
        entries: Entries,
        targets: Mapping[str, Target],
        here: str,
        never: str,
    ) -> str:
        """Return an entry's `metric`, refusing one that is unknown or has no target here.

        `never` says what a metric without a target never does (in the error).
        """
        metric_node = entries["metric"][1]
        metric = self.text(metric_node, f"{here}, metric")
        if metric not in METRICS:
            self.fail(
                metric_node,
                f"{here}: unknown metric {metric!r} (known metrics: {listed(METRICS)})",
            )
        if metric not in targets:
            self.fail(
                metric_node,
                f"{here}: metric {metric!r} has no target in this policy, so it never {never}",
            )
        return metric

    def recovery(
        self, node: Node, targets: Mapping[str, Target], policy_id: str, where: str
    ) -> tuple[Recovery, ...]:
        """Read a policy's `recovery` list (SPEC §3, §4 "Service recovery").

        Each rule needs a `metric` the policy has a target for and a non-empty `send`; `over`
        (default 0: at the breach) and `cap` (default 30d) are durations, `0` allowed; `when`
        reads like the policy's own. `service_window` ends at its breach (SPEC §4), so its rules
        cannot wait `over` past it.

        Returns:
            The rules in file order, each named `<policy id>#<n>`.
        """
        if not isinstance(node, SequenceNode):
            self.fail(node, f"{where}: 'recovery' must be a list of rules")
        result: list[Recovery] = []
        for index, item in enumerate(node.value):
            here = f"{where}, recovery #{index + 1}"
            entries = self.mapping(item, here)
            self.only_keys(entries, _RECOVERY_KEYS, here)
            for required in ("metric", "send"):
                if required not in entries:
                    self.fail(item, f"{here}: missing {required!r}")
            metric = self.measured_metric(entries, targets, here, "breaches")
            send = self.text(entries["send"][1], f"{here}, send")
            over = 0
            if "over" in entries:
                over_node = entries["over"][1]
                over = self.duration_or_zero(over_node, f"{here}, over")
                if over and metric == "service_window":
                    self.fail(
                        over_node,
                        f"{here}: service_window ends at its breach, so 'over' must be 0 "
                        f"(not {over_node.value})",
                    )
            cap = _DEFAULT_RECOVERY_CAP
            if "cap" in entries:
                cap = self.duration_or_zero(entries["cap"][1], f"{here}, cap")
            when: dict[str, frozenset[str]] = {}
            if "when" in entries:
                when = self.when(entries["when"][1], here)
            result.append(
                Recovery(
                    metric=metric,
                    send=send,
                    name=f"{policy_id}#{index + 1}",
                    over=over,
                    cap=cap,
                    when=when,
                )
            )
        return tuple(result)


def _shadows(earlier: Policy, later: Policy) -> bool:
    """Whether every conversation `later` matches is already matched by `earlier`.

    True when each key `earlier` tests is tested by `later` too, with accepted values that `earlier`
    also accepts; an `earlier` with an empty `when` shadows everything after it.
    """
    return all(
        key in later.when and later.when[key] <= accepted for key, accepted in earlier.when.items()
    )


def _warnings(policies: Sequence[Policy]) -> tuple[str, ...]:
    """Return what the policies allow but a reader probably did not mean (SPEC §4).

    A policy whose listed team targets add up to more than its `resolution` target is accepted,
    with a warning: the teams together may use more than the customer was promised.
    """
    found: list[str] = []
    for policy in policies:
        teams = policy.targets.get("team_ownership")
        resolution = policy.targets.get("resolution")
        if teams is None or resolution is None or resolution.within is None:
            continue
        total = sum(t.within or 0 for t in teams.teams.values())
        if total > resolution.within:
            found.append(
                f"policy {policy.id!r}: the team_ownership targets add up to "
                f"{format_duration(total)}, more than the resolution target "
                f"({format_duration(resolution.within)}): the teams together may use more time "
                "than the customer was promised"
            )
    return tuple(found)
