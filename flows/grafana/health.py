"""Alerting on slawatch's own health: "the monitor is not advancing" pages someone.

The compose stack has no Prometheus, so the rule reads the heartbeats the monitor already stores
in QuestDB (`<prefix>heartbeat`, one row per worker per heartbeat interval). A worker's watermark
only grows; the rule measures, per worker, how long ago its newest watermark was first reported.
That is about one heartbeat interval while the worker advances, and grows when it is stuck (or
stopped, since its newest row then ages). It fires above 120 s: "monitor not advancing for 2
minutes". Workers that reported nothing for an hour are left out (a cluster that shrank), and no
row at all, or a failing query, alerts too. Teams with Prometheus scrape `/metrics` instead and
alert on `slawatch_monitor_watermark_delay_seconds` (docs/DEPLOY.md).

The rules go to their own provisioning file, `alerting/slawatch-health.yaml`, beside the
product's alerts; they use the same contact point and notification policy.
"""

from __future__ import annotations

from typing import Any, Final

from flows.connectors.questdb import DEFAULT_PREFIX
from flows.connectors.questdb.views import DEFAULT_TIMEZONE
from flows.grafana.alerting import FOLDER, RuleSpec, _rule
from flows.reports.queries import AlertQuery

__all__ = ["NOT_ADVANCING", "NOT_ADVANCING_S", "health_alerting"]

Json = dict[str, Any]

NOT_ADVANCING_S: Final = 120
"""Seconds a worker's watermark may stay where it is before someone is paged."""

NOT_ADVANCING: Final = AlertQuery(
    "al_monitor_not_advancing",
    "Monitor not advancing",
    "alert",
    ("worker", "stalled_s"),
    "WITH latest AS (\n"
    "  SELECT worker, max(watermark) AS mark\n"
    "  FROM {heartbeat}\n"
    "  WHERE at > dateadd('h', -1, now())\n"
    ")\n"
    "SELECT h.worker, (now() - min(h.at)) / 1000000.0 AS stalled_s\n"
    "FROM {heartbeat} h\n"
    "JOIN latest ON h.worker = latest.worker AND h.watermark = latest.mark\n"
    "WHERE h.at > dateadd('h', -1, now())",
    "Seconds since each worker's watermark last moved (its newest watermark was first seen).",
    unit="s",
    op="gt",
    threshold=NOT_ADVANCING_S,
)

# No row means no worker reported for an hour, and a failing query means nobody can see whether
# the monitor runs: both page.
_SPEC: Final = RuleSpec(
    NOT_ADVANCING.name,
    "health",
    "critical",
    "0s",
    "Alerting",
    "Alerting",
    "slawatch worker {{ .Labels.worker }} has not advanced for {{ humanize .Values.B.Value }} s",
)


def health_alerting(prefix: str = DEFAULT_PREFIX, timezone: str = DEFAULT_TIMEZONE) -> Json:
    """The monitor-health alerting file (`apiVersion: 1`): one group evaluated every 30 s.

    Args:
        prefix: The monitor's table prefix.
        timezone: The team's IANA zone (the query does not depend on it).

    Returns:
        The `slawatch-health` rule group in the `slawatch` folder.
    """
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": "slawatch-health",
                "folder": FOLDER,
                "interval": "30s",
                "rules": [_rule(_SPEC, prefix, timezone, NOT_ADVANCING)],
            }
        ],
    }
