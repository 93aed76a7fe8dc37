"""Alert rules, contact points, the notification policy and mute timings as provisioning data.

Every rule's query comes from `flows.reports.queries` (`ALERTS`) and is evaluated the way the
notes prescribe: the SQL (table format, one numeric column, strings become labels) is reduced
to its last value, then compared with the query's threshold. Rules that page someone now
(severity `critical`) are evaluated every 10 s and never muted; the slower compliance rules
(severity `warning`) every minute and muted outside business hours.

Annotations use `{{ .Labels.x }}` rather than `$labels`: Grafana expands `$NAME` in provisioning
files from the environment, which is also how the contact points get their addresses
(`SLAWATCH_ALERT_WEBHOOK_URL`, `SLAWATCH_ALERT_EMAILS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from flows.connectors.questdb import DEFAULT_PREFIX
from flows.connectors.questdb.views import DEFAULT_TIMEZONE
from flows.grafana.dashboards import DATASOURCE_UID, WALLBOARD_UID
from flows.reports.queries import CSAT_TARGET_PCT, QUERIES, AlertQuery

__all__ = [
    "FOLDER",
    "FOLDER_UID",
    "RULES",
    "TEAM_SUPERVISOR",
    "RuleSpec",
    "alerting",
    "rule_groups",
]

Json = dict[str, Any]

FOLDER: Final = "slawatch"
FOLDER_UID: Final = "slawatch"
CONTACT_POINT: Final = "slawatch-oncall"
MUTE_OUTSIDE_HOURS: Final = "slawatch-outside-business-hours"
WALLBOARD_PATH: Final = f"/d/{WALLBOARD_UID}?kiosk&autofitpanels"
#: The `audience` label of alerts for the supervisor of the team in their `team_id` label.
TEAM_SUPERVISOR: Final = "team-supervisor"


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """How one alert query becomes a Grafana rule.

    The query gives the condition (what fires and at which threshold); the spec gives how it
    is evaluated and routed. The values are Grafana's own words, passed through unchecked:
    a typo shows when Grafana loads the file or `slawatch provision` sends it.

    Attributes:
        query: The name of an `AlertQuery` in `flows.reports.queries`.
        group: Rule group (`urgent`: every 10 s, `compliance`: every minute).
        severity: `critical` pages at once, never muted; `warning` is muted out of hours.
        pending: Grafana's `for`: how long the condition must hold before firing (`0s`, `5m`).
        no_data: State when the query returns no rows (`OK`, `NoData`, `Alerting`,
            `KeepLast`); the reason is in the comment beside the rule in `RULES`.
        exec_error: State when the query fails (`Error`, `Alerting`, `OK`, `KeepLast`); the
            reason likewise.
        summary: The annotation a person reads first (Go template over `.Labels`/`.Values`;
            `.Values.B.Value` is the reduced number the threshold judged).
        audience: Who the notification policy sends it to, as the rule's `audience` label:
            None for the on-call receiver by severity, `TEAM_SUPERVISOR` for the supervisor
            of the team the alert's `team_id` label names (`policies`).
    """

    query: str
    group: str
    severity: str
    pending: str
    no_data: str
    exec_error: str
    summary: str
    audience: str | None = None


#: Why each state was chosen is in the comment beside the rule.
RULES: Final = (
    # No rows = no breached urgent clock: OK. A failing query must not hide breaches: Error.
    RuleSpec(
        "al_urgent_breach",
        "urgent",
        "critical",
        "0s",
        "OK",
        "Error",
        "{{ .Labels.metric }} breached on {{ .Labels.conversation_id }}"
        " (agent {{ .Labels.agent_id }}, team {{ .Labels.team_id }})",
    ),
    # No rows = no breached P1/P2 stint: OK. A failing query must not hide breaches: Error.
    # Sent to the owning team's supervisor (label `team_id`), not to on-call (`policies`).
    RuleSpec(
        "al_team_ola_breach",
        "urgent",
        "critical",
        "0s",
        "OK",
        "Error",
        "Team {{ .Labels.team_id }} breached its OLA on {{ .Labels.priority }}"
        " conversation {{ .Labels.conversation_id }}: hand it over or resolve it",
        TEAM_SUPERVISOR,
    ),
    # No rows = no urgent window open: OK.
    RuleSpec(
        "al_window_closing",
        "urgent",
        "critical",
        "0s",
        "OK",
        "Error",
        "WhatsApp window of {{ .Labels.conversation_id }} closes in"
        " {{ humanize .Values.B.Value }} min, unanswered (agent {{ .Labels.agent_id }})",
    ),
    # The query already waits 5 minutes; no rows = nobody waiting: OK.
    RuleSpec(
        "al_unassigned",
        "urgent",
        "critical",
        "0s",
        "OK",
        "Error",
        "{{ .Labels.conversation_id }} (team {{ .Labels.team_id }}) has waited"
        " {{ humanize .Values.B.Value }} min for an agent",
    ),
    # No heartbeat row at all means the monitor never ran (or stopped 90 days ago), and a
    # failing query means nobody can see whether it runs: both alert.
    RuleSpec(
        "al_monitor_stalled",
        "urgent",
        "critical",
        "0s",
        "Alerting",
        "Alerting",
        "slawatch has not reported for {{ humanize .Values.B.Value }} s",
    ),
    # count() always returns a row; an error keeps the last state rather than flapping.
    RuleSpec(
        "al_dead_letters",
        "urgent",
        "critical",
        "0s",
        "OK",
        "KeepLast",
        "{{ .Values.B.Value }} inputs became dead letters in 5 minutes",
    ),
    # No decided clock yet today: OK. A transient error keeps the last state; the team's
    # compliance has to stay under target for 5 minutes before anyone is told.
    RuleSpec(
        "al_team_compliance",
        "compliance",
        "warning",
        "5m",
        "OK",
        "KeepLast",
        "Team {{ .Labels.team_id }} compliance today is"
        " {{ humanize .Values.B.Value }} % (target 90 %)",
    ),
    # Fewer than 5 ratings in 7 days give no row: OK. Ratings change slowly: a transient error
    # keeps the last state, and the rate must stay under target for 15 minutes. Sent to the
    # credited team's supervisor (label `team_id`), muted out of hours like every warning.
    RuleSpec(
        "al_team_csat_7d",
        "compliance",
        "warning",
        "15m",
        "OK",
        "KeepLast",
        "Team {{ .Labels.team_id }} CSAT over 7 days is"
        f" {{{{ humanize .Values.B.Value }}}} % (target {CSAT_TARGET_PCT} %)",
        TEAM_SUPERVISOR,
    ),
    RuleSpec(
        "al_agent_compliance_7d",
        "compliance",
        "warning",
        "15m",
        "OK",
        "KeepLast",
        "Agent {{ .Labels.agent_id }} compliance over 7 days is"
        " {{ humanize .Values.B.Value }} % (target 80 %)",
    ),
)

_GROUPS: Final = {"urgent": "10s", "compliance": "1m"}


def _alert_query(spec: RuleSpec) -> AlertQuery:
    """Return the `AlertQuery` that `spec` names.

    Raises:
        KeyError: No query has that name.
        TypeError: The query is a panel query, not an alert query.
    """
    query = QUERIES[spec.query]
    if not isinstance(query, AlertQuery):
        msg = f"{spec.query} is not an alert query"
        raise TypeError(msg)
    return query


def _rule(
    spec: RuleSpec, prefix: str, timezone: str, alert_query: AlertQuery | None = None
) -> Json:
    """Return the Grafana rule of `spec`: query A, reduce B (last, nulls dropped), threshold C.

    `alert_query` is the rule's query when it is not one of `flows.reports.queries` (the
    monitor-health rules of `flows.grafana.health`).

    The rule's uid is the query's name with `al_` made `slawatch-` and `_` made `-`
    (`al_urgent_breach` is `slawatch-urgent-breach`), so it stays the same across
    provisioning runs. Every alert carries labels `severity` and `product: slawatch` and
    points to the wallboard; its title and description are the query's.
    """
    query = alert_query or _alert_query(spec)
    sql = query.render(prefix, timezone)
    return {
        "uid": spec.query.replace("_", "-").replace("al-", "slawatch-"),
        "title": query.title,
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": 600, "to": 0},
                "datasourceUid": DATASOURCE_UID,
                "model": {
                    "refId": "A",
                    "datasource": {"type": "grafana-postgresql-datasource", "uid": DATASOURCE_UID},
                    "editorMode": "code",
                    "rawQuery": True,
                    "rawSql": sql,
                    "format": "table",
                    "intervalMs": 1000,
                    "maxDataPoints": 43200,
                },
            },
            {
                "refId": "B",
                "relativeTimeRange": {"from": 0, "to": 0},
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "B",
                    "type": "reduce",
                    "datasource": {"type": "__expr__", "uid": "__expr__"},
                    "expression": "A",
                    "reducer": "last",
                    "settings": {"mode": "dropNN"},
                },
            },
            {
                "refId": "C",
                "relativeTimeRange": {"from": 0, "to": 0},
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "datasource": {"type": "__expr__", "uid": "__expr__"},
                    "expression": "B",
                    "conditions": [{"evaluator": {"type": query.op, "params": [query.threshold]}}],
                },
            },
        ],
        "noDataState": spec.no_data,
        "execErrState": spec.exec_error,
        "for": spec.pending,
        "isPaused": False,
        "labels": {"severity": spec.severity, "product": "slawatch"}
        | ({} if spec.audience is None else {"audience": spec.audience}),
        "annotations": {
            "summary": spec.summary,
            "description": query.description,
            "wallboard": WALLBOARD_PATH,
            "__dashboardUid__": WALLBOARD_UID,
        },
    }


def rule_groups(prefix: str = DEFAULT_PREFIX, timezone: str = DEFAULT_TIMEZONE) -> list[Json]:
    """Return the rule groups (`slawatch-urgent` every 10 s, `slawatch-compliance` every 1 m).

    Args:
        prefix: the monitor's table prefix, rendered into every rule's query.
        timezone: the team's IANA zone, which decides when "today" starts.

    Returns:
        Both groups, in the `slawatch` folder, each with its rules in `RULES` order.
    """
    return [
        {
            "orgId": 1,
            "name": f"slawatch-{group}",
            "folder": FOLDER,
            "interval": interval,
            "rules": [_rule(s, prefix, timezone) for s in RULES if s.group == group],
        }
        for group, interval in _GROUPS.items()
    ]


def contact_points() -> list[Json]:
    """A webhook and an e-mail receiver, addresses from the environment Grafana runs in.

    `${SLAWATCH_ALERT_WEBHOOK_URL}` and `${SLAWATCH_ALERT_EMAILS}` are left for Grafana to
    expand when it loads the file, so no address is written into the repository. Both
    receivers also send a message when an alert resolves; all e-mail recipients share one
    message.

    Returns:
        The one contact point, `slawatch-oncall`.
    """
    return [
        {
            "orgId": 1,
            "name": CONTACT_POINT,
            "receivers": [
                {
                    "uid": "slawatch-webhook",
                    "type": "webhook",
                    "settings": {"url": "${SLAWATCH_ALERT_WEBHOOK_URL}", "httpMethod": "POST"},
                    "disableResolveMessage": False,
                },
                {
                    "uid": "slawatch-email",
                    "type": "email",
                    "settings": {"addresses": "${SLAWATCH_ALERT_EMAILS}", "singleEmail": True},
                    "disableResolveMessage": False,
                },
            ],
        }
    ]


def policies() -> list[Json]:
    """The notification tree: critical alerts at once and never muted; warnings in hours.

    Alerts for a team's supervisor (label `audience: team-supervisor`) come first. Critical
    ones (the P1/P2 team OLA breach) are grouped per team (`team_id`) and conversation, sent at
    once, never muted; warnings (team CSAT under target over 7 days) are grouped per team, wait
    a minute, repeat every 4 h at most and are muted out of hours, as every warning. They go to
    the on-call receiver unless a child route is added under each of these two routes per
    team, matching `team_id` (e.g. `team_id = l2`) with that supervisor's contact point
    (dashboards/README.md); the label is what such a route matches.

    Critical alerts are grouped per conversation and metric (one notification each) with no
    `group_wait`, so a breach reaches the webhook within one evaluation (10 s).

    Warnings are grouped per team and agent, wait a minute for company, repeat every 4 h at
    most and are muted by `MUTE_OUTSIDE_HOURS`. A still-firing critical alert is repeated
    every hour.

    Returns:
        The one policy tree, rooted at the `slawatch-oncall` contact point.
    """
    return [
        {
            "orgId": 1,
            "receiver": CONTACT_POINT,
            "group_by": ["grafana_folder", "alertname"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {
                    "receiver": CONTACT_POINT,
                    "object_matchers": [
                        ["severity", "=", "critical"],
                        ["audience", "=", TEAM_SUPERVISOR],
                    ],
                    "group_by": ["alertname", "team_id", "conversation_id"],
                    "group_wait": "0s",
                    "group_interval": "30s",
                    "repeat_interval": "1h",
                },
                {
                    "receiver": CONTACT_POINT,
                    "object_matchers": [
                        ["severity", "=", "warning"],
                        ["audience", "=", TEAM_SUPERVISOR],
                    ],
                    "group_by": ["alertname", "team_id"],
                    "group_wait": "1m",
                    "group_interval": "10m",
                    "repeat_interval": "4h",
                    "mute_time_intervals": [MUTE_OUTSIDE_HOURS],
                },
                {
                    "receiver": CONTACT_POINT,
                    "object_matchers": [["severity", "=", "critical"]],
                    "group_by": ["alertname", "conversation_id", "metric"],
                    "group_wait": "0s",
                    "group_interval": "30s",
                    "repeat_interval": "1h",
                },
                {
                    "receiver": CONTACT_POINT,
                    "object_matchers": [["severity", "=", "warning"]],
                    "group_by": ["alertname", "team_id", "agent_id"],
                    "group_wait": "1m",
                    "group_interval": "10m",
                    "repeat_interval": "4h",
                    "mute_time_intervals": [MUTE_OUTSIDE_HOURS],
                },
            ],
        }
    ]


def mute_times(timezone: str = DEFAULT_TIMEZONE) -> list[Json]:
    """Outside business hours in the team's zone: before 08:00 and from 20:00, and Sundays.

    Args:
        timezone: the team's IANA zone; Grafana evaluates the hours there, daylight saving
            included.

    Returns:
        The one mute timing, `slawatch-outside-business-hours`.
    """
    return [
        {
            "orgId": 1,
            "name": MUTE_OUTSIDE_HOURS,
            "time_intervals": [
                {
                    "times": [
                        {"start_time": "00:00", "end_time": "08:00"},
                        {"start_time": "20:00", "end_time": "24:00"},
                    ],
                    "weekdays": ["monday:saturday"],
                    "location": timezone,
                },
                {"weekdays": ["sunday"], "location": timezone},
            ],
        }
    ]


def alerting(prefix: str = DEFAULT_PREFIX, timezone: str = DEFAULT_TIMEZONE) -> Json:
    """The whole alerting provisioning file (`apiVersion: 1`).

    Args:
        prefix: the monitor's table prefix.
        timezone: the team's IANA zone, for "today" in the queries and for the mute timing.

    Returns:
        The rule groups, contact points, notification policies and mute timings, in that
        order, as `flows.grafana.files` writes them to `alerting/slawatch.yaml`.
    """
    return {
        "apiVersion": 1,
        "groups": rule_groups(prefix, timezone),
        "contactPoints": contact_points(),
        "policies": policies(),
        "muteTimes": mute_times(timezone),
    }
