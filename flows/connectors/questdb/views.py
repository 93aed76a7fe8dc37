"""The QuestDB view model behind the dashboards, alerts and `slawatch top`.

The monitor creates these materialized views at start-up, after its tables
(`QuestDBWriter.ensure_tables`). Each one is refreshed by QuestDB itself whenever rows land in
its base table (`REFRESH IMMEDIATE`, the default), so panels read a few hundred pre-aggregated
rows instead of scanning a month of clocks. A late correction that replaces a clock row (the
tables are `DEDUP UPSERT KEYS`) makes QuestDB recompute the day it falls in, so the views
converge with the table.

* `<prefix>compliance_daily`: per local calendar day (`SAMPLE BY 1d ALIGN TO CALENDAR TIME ZONE`
  the team's zone) and per `team_id`, `agent_id`, `metric`, `policy_id`, `lead_source`,
  `priority`, `channel`: clocks started, `met`, `breached` (SPEC §6: `stopped` and `closed` count as
  breached, `cancelled` counts as neither) and the summed response time of the fulfilled ones.
  The designated timestamp `started_at` is the UTC instant of the local midnight.
* `<prefix>volume_daily`: chats (cycles) started per local day, team and channel, counted by their
  `first_response` clock (one per cycle that a customer opened by writing; a cycle resolved
  before any reply, whose clock is `cancelled`, is left out, and so is the stale row a late
  event leaves at a clock's former start).
* `<prefix>ola_daily`: the team stints (`team_ownership` clocks, SPEC §4) per local day of
  their start and per `team_id` (the owning team), `priority`, `policy_id`, `channel`: stints
  started (`stints`, cancelled ones and the stale row of a moved start left out), `met`,
  `breached` (as in `compliance_daily`), and of the stints that ended (not
  cancelled) with a `budget_pct`, their number (`budgeted`) and summed `budget_pct` (the per
  cent of the cycle's `resolution` target each stint used), so "which team breached its OLA, and
  how much of the customer's promise did it use" is a sum over a few rows per team and day.

The time zone is fixed when a view is created: changing it means dropping the views (they are
rebuilt from the tables at the next start). A view made by an earlier release lacks the
`channel` column the dashboards filter on (`REQUIRED_COLUMN`); the writer drops it at start-up
(`drop_view_statement`) and creates it again, rebuilt from the clocks table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from flows.connectors.questdb import TableNames

__all__ = [
    "DEFAULT_TIMEZONE",
    "REQUIRED_COLUMN",
    "ViewNames",
    "check_timezone",
    "create_view_statements",
    "drop_view_statement",
]

#: The team's calendar zone used for daily buckets unless configured otherwise.
DEFAULT_TIMEZONE: Final = "Asia/Jakarta"

_ZONE_RE: Final = re.compile(r"[A-Za-z0-9_+\-/]+")

#: The newest column of every view: a view without it was made by an earlier release (without
#: `channel`), and is dropped and created again.
REQUIRED_COLUMN: Final = "channel"


#: A team stint that ended (not cancelled) with its share of the resolution budget.
_ENDED_WITH_BUDGET: Final = "NOT open AND status <> 'cancelled' AND budget_pct IS NOT NULL"


@dataclass(frozen=True, slots=True)
class ViewNames:
    """The names of the materialized views for one table prefix."""

    prefix: str = "sla_"

    @property
    def compliance_daily(self) -> str:
        """Daily compliance per team, agent, metric, policy, lead source and priority."""
        return f"{self.prefix}compliance_daily"

    @property
    def volume_daily(self) -> str:
        """Daily conversations started per team."""
        return f"{self.prefix}volume_daily"

    @property
    def ola_daily(self) -> str:
        """Daily team stints (OLA) per team, priority, policy and channel, with budget used."""
        return f"{self.prefix}ola_daily"

    def all(self) -> tuple[str, str, str]:
        """Return the view names, in creation order."""
        return (self.compliance_daily, self.volume_daily, self.ola_daily)


def check_timezone(zone: str) -> str:
    """Return `zone` if it is an IANA time zone name safe to put into SQL.

    Raises:
        ValueError: The name is not a known IANA zone.
    """
    if _ZONE_RE.fullmatch(zone) is None:
        msg = f"time zone {zone!r} is not an IANA zone name such as Asia/Jakarta"
        raise ValueError(msg)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        msg = f"time zone {zone!r} is not an IANA zone name such as Asia/Jakarta"
        raise ValueError(msg) from exc
    return zone


def create_view_statements(
    tables: TableNames, timezone: str = DEFAULT_TIMEZONE
) -> list[tuple[str, str]]:
    """Return the `CREATE MATERIALIZED VIEW IF NOT EXISTS` statement of each view, with its name.

    Args:
        tables: The monitor's tables (the views read `<prefix>clocks`).
        timezone: IANA zone of the team's calendar: days start at its local midnight.

    Returns:
        `(view, sql)` pairs, in the order they are run (after the tables exist).
    """
    zone = check_timezone(timezone)
    views = ViewNames(tables.prefix)
    clocks = tables.clocks
    compliance = f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {views.compliance_daily} AS (
    SELECT started_at, team_id, agent_id, metric, policy_id, lead_source, priority, channel,
           count() AS clocks,
           sum(CASE WHEN status = 'met' THEN 1 ELSE 0 END) AS met,
           sum(CASE WHEN breached AND status <> 'cancelled' THEN 1 ELSE 0 END) AS breached,
           sum(CASE WHEN status IN ('met', 'stopped') THEN 1 ELSE 0 END) AS fulfilled,
           sum(CASE WHEN status IN ('met', 'stopped') THEN elapsed_s ELSE 0.0 END) AS fulfilled_s
    FROM {clocks}
    SAMPLE BY 1d ALIGN TO CALENDAR TIME ZONE '{zone}'
) PARTITION BY MONTH"""  # noqa: S608 - names validated, zone checked
    volume = f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {views.volume_daily} AS (
    SELECT started_at, team_id, channel,
           count() AS conversations
    FROM {clocks}
    WHERE seq = 1 AND metric = 'first_response' AND status <> 'cancelled'
    SAMPLE BY 1d ALIGN TO CALENDAR TIME ZONE '{zone}'
) PARTITION BY MONTH"""  # noqa: S608 - names validated, zone checked
    # A stint's `budget_pct` is on its ending records only (SPEC §4): a running stint's row has
    # none yet, so only the ended ones are summed (and counted in `budgeted`).
    ola = f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {views.ola_daily} AS (
    SELECT started_at, team_id, priority, policy_id, channel,
           sum(CASE WHEN status <> 'cancelled' THEN 1 ELSE 0 END) AS stints,
           sum(CASE WHEN status = 'met' THEN 1 ELSE 0 END) AS met,
           sum(CASE WHEN breached AND status <> 'cancelled' THEN 1 ELSE 0 END) AS breached,
           sum(CASE WHEN {_ENDED_WITH_BUDGET} THEN 1 ELSE 0 END) AS budgeted,
           sum(CASE WHEN {_ENDED_WITH_BUDGET} THEN budget_pct ELSE 0.0 END) AS budget_pct
    FROM {clocks}
    WHERE metric = 'team_ownership'
    SAMPLE BY 1d ALIGN TO CALENDAR TIME ZONE '{zone}'
) PARTITION BY MONTH"""  # noqa: S608 - names validated, zone checked
    return [
        (views.compliance_daily, compliance),
        (views.volume_daily, volume),
        (views.ola_daily, ola),
    ]


def drop_view_statement(view: str) -> str:
    """Return the statement that drops the materialized view `view` if it exists.

    Args:
        view: A name from `ViewNames` (validated with the table prefix).
    """
    return f"DROP MATERIALIZED VIEW IF EXISTS {view}"
