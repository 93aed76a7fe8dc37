"""The SQL behind every dashboard panel, alert rule and `slawatch top`: one module, one truth.

Each `Query` holds a template naming the monitor's tables and views by placeholder
(`{clocks}`, `{events}`, `{heartbeat}`, `{deadletters}`, `{csat}`, `{handle}`,
`{compliance_daily}`, `{volume_daily}`, `{ola_daily}`), the team's calendar zone (`{tz}`) and
the start of its local day (`{today}`, `{days_ago_29}`, `{days_ago_6}`). `Query.render` fills
them in; the Grafana builder renders with the default table prefix, `slawatch top` and the tests
with theirs. Scorecard
queries also hold Grafana's dashboard variables `$agent` and `$week` (a local Monday,
`YYYY-MM-DD`), and every dashboard panel but the data age holds `$channel` (several channels,
or "All": `ALL_CHANNELS`), which Grafana substitutes; `Query.render` can substitute them too,
the way Grafana does.

Conventions every query keeps (see docs/ANALYTICS.md):

* A clock is open (`open`) as the monitor's writer decides it (`clock_is_open`): a breached
  clock of a resolved cycle gets a `closed` record and is no longer "breached now".
* Compliance = met / (met + breached), each clock once by its latest row; `stopped` and
  `closed` count as breached, `cancelled` as neither.
* Days and weeks are the team's local ones (`TIME ZONE '{tz}'`), never UTC days.
* Alert queries return exactly one numeric column, strings and symbols become labels, no
  `$__timeFilter` and no time column; zero rows mean "nothing to report".
* No query uses `$__timeFilter`: the wallboard shows "now" and "today", the scorecard a chosen
  week, the trends the last 30 days, whatever the dashboard's time picker says.
* Surveys (`{csat}`) belong to the local day and week of their `survey_at` (when sent, else
  rated), handle segments (`{handle}`) to those of their `started_at`, clocks to those of their
  `started_at`; `withdrawn` handle rows are left out. CSAT % = ratings of 4 or 5 / ratings,
  response rate = surveys rated / surveys (SPEC §4).

Units every query keeps: `*_s` columns are seconds (`elapsed_s` and `target_s` counted
seconds, business hours and pauses applied; `seconds_left` wall-clock seconds to `deadline_at`,
negative once it has passed), `*_min` minutes, `*_pct` per cent (0-100); instants
(`breached_at`, `time`, `week`) are QuestDB timestamps in UTC, which Grafana shows in the
browser's zone. A ratio over zero decided clocks has no value, never 0 %. What each column of
each query means is listed under its group (`WALLBOARD`, `SCORECARD`, `VARIABLES`, `TRENDS`,
`ALERTS`); docs/ANALYTICS.md shows the rendered SQL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from flows.connectors.questdb import DEFAULT_PREFIX, TableNames
from flows.connectors.questdb.views import DEFAULT_TIMEZONE, ViewNames, check_timezone

__all__ = [
    "ALERTS",
    "ALL_CHANNELS",
    "CSAT_MIN_RATINGS",
    "CSAT_TARGET_PCT",
    "QUERIES",
    "SCORECARD",
    "TRENDS",
    "VARIABLES",
    "WALLBOARD",
    "AlertQuery",
    "Query",
    "query",
]

#: What Grafana pastes for `$channel` when "All" is chosen (the variable's custom all value).
ALL_CHANNELS: Final = "'__all'"
#: The CSAT % a team is expected to keep over 7 days: the team CSAT alert fires below it and the
#: CSAT cells turn green from it. A team that agrees another target changes it here and runs
#: `make dashboards` (or `slawatch provision`); docs/ANALYTICS.md says so.
CSAT_TARGET_PCT: Final = 80
#: The team CSAT alert waits for this many ratings in 7 days: one bad rating is not a trend.
CSAT_MIN_RATINGS: Final = 5

Kind = Literal["stat", "table", "timeseries", "barchart", "bargauge", "alert", "variable"]

# The UTC instant of the local midnight that starts today, and of 29 and 6 days before it.
_TODAY: Final = "to_utc(timestamp_floor('d', to_timezone(now(), '{tz}')), '{tz}')"
_DAYS_AGO: Final = (
    "to_utc(dateadd('d', -{n}, timestamp_floor('d', to_timezone(now(), '{tz}'))), '{tz}')"
)
_WEEK_START: Final = "to_utc('$week'::timestamp, '{tz}')"
_WEEK_END: Final = "to_utc(dateadd('d', 7, '$week'::timestamp), '{tz}')"
_IN_WEEK: Final = f"started_at >= {_WEEK_START} AND started_at < {_WEEK_END}"
_SURVEY_IN_WEEK: Final = f"survey_at >= {_WEEK_START} AND survey_at < {_WEEK_END}"
#: A handle segment that counts (a late correction's `withdrawn` row does not).
_COUNTED: Final = "ended_by <> 'withdrawn'"
_SATISFIED: Final = "sum(CASE WHEN rating >= 4 THEN 1 ELSE 0 END)"
#: A survey row that counts: sent, or rated (a rating voided by its late `sent` is neither).
_LIVE_SURVEY: Final = "(sent_at IS NOT NULL OR rating IS NOT NULL)"
_CYCLE_KEY: Final = "concat(conversation_id, '#', cycle)"
_DECIDED: Final = "(status = 'met' OR (breached AND status <> 'cancelled'))"
_CHAT: Final = "metric NOT IN ('cadence', 'service_window')"
# A qualification clock ended by the lead status given (in time or late).
_DECIDED_AS: Final = "status IN ('met', 'stopped') AND lead_status = '{status}'"
# A cycle's resolve: its resolution clock, ended by it (the row carries the resolve's outcome).
_RESOLVED: Final = "metric = 'resolution' AND status IN ('met', 'stopped')"
#: The dashboards' `$channel` filter. `$channel` is a multi-value variable with "All": Grafana
#: pastes the chosen channels quoted and comma-separated (`'telegram','whatsapp'`), or for "All"
#: its custom all value `ALL_CHANNELS` as it is, which keeps every clock (one without a channel
#: too) and needs no channel to exist yet.
_CHANNEL: Final = "(channel IN ($channel) OR '__all' IN ($channel))"
#: A team stint (SPEC §4 `team_ownership`): one clock per team that owned the open cycle; its
#: `team_id` is the owning team on every row, also on the one written at the hand-over.
_STINT: Final = "metric = 'team_ownership'"
#: A stint that ended (not cancelled) with its share of the cycle's resolution target.
_BUDGETED: Final = "NOT open AND status <> 'cancelled' AND budget_pct IS NOT NULL"
_URGENT: Final = (
    "(priority = 'P1' OR segment = 'vip' OR lead_source IN ('demo_request', 'pricing'))"
)


@dataclass(frozen=True, slots=True)
class Query:
    """One named SQL query and what its consumer needs from it.

    A value: the dashboards, the alert rules, `slawatch top` and docs/ANALYTICS.md all read the
    same object, so a query changed here changes all of them (and the committed dashboard
    files must be generated again).

    Attributes:
        name: Stable identifier (also the panel's or rule's key).
        title: What a user reads above the panel.
        kind: The panel type that shows it (or `alert`).
        columns: The columns, in order, the consumer reads.
        template: SQL with `{placeholders}` (see the module docstring).
        description: One sentence on what the number means.
        unit: Grafana unit of the main value (`percent`, `s`, `none`).
    """

    name: str
    title: str
    kind: Kind
    columns: tuple[str, ...]
    template: str
    description: str
    unit: str = "none"

    def render(
        self,
        prefix: str = DEFAULT_PREFIX,
        timezone: str = DEFAULT_TIMEZONE,
        variables: Mapping[str, str | Sequence[str]] | None = None,
    ) -> str:
        """Return the SQL for tables with `prefix` and days in `timezone`.

        Table and view names come from `TableNames` / `ViewNames` (which validate the prefix),
        and "today" and "N days ago" become expressions of QuestDB's `now()`, so the SQL is
        evaluated afresh on every run rather than fixed when rendered. Variables are filled in
        as Grafana's SQL data sources do: a text value is pasted as it is (the SQL quotes it),
        which is why quotes and backslashes are refused; a sequence of values (a multi-value
        variable such as `$channel`) becomes each value quoted, joined by commas; and
        `ALL_CHANNELS` is pasted as it is, as Grafana pastes the variable's custom all value.

        Args:
            prefix: The monitor's table prefix.
            timezone: The team's IANA calendar zone.
            variables: Values for Grafana variables (`{"agent": "a1", "week": "2026-11-23",
                "channel": ALL_CHANNELS}` or `"channel": ("telegram", "whatsapp")`); omitted
                ones stay `$name` for Grafana to fill in.

        Returns:
            SQL that QuestDB runs as is, or Grafana after substituting the remaining variables.

        Raises:
            ValueError: The time zone is unknown, or a variable value holds a quote.
        """
        zone = check_timezone(timezone)
        tables = TableNames(prefix)
        views = ViewNames(prefix)
        sql = self.template.format(
            clocks=tables.clocks,
            events=tables.events,
            heartbeat=tables.heartbeat,
            deadletters=tables.deadletters,
            csat=tables.csat,
            handle=tables.handle,
            compliance_daily=views.compliance_daily,
            volume_daily=views.volume_daily,
            ola_daily=views.ola_daily,
            today=_TODAY.format(tz=zone),
            days_ago_29=_DAYS_AGO.format(n=29, tz=zone),
            days_ago_6=_DAYS_AGO.format(n=6, tz=zone),
            tz=zone,
        )
        for key, value in (variables or {}).items():
            values = (value,) if isinstance(value, str) else tuple(value)
            for one in values:
                if one != ALL_CHANNELS and ("'" in one or "\\" in one):
                    msg = f"variable {key} holds a quote or backslash: {one!r}"
                    raise ValueError(msg)
            if isinstance(value, str):
                text = value
            elif not values:
                msg = f"variable {key} has no value (give ALL_CHANNELS for every channel)"
                raise ValueError(msg)
            else:
                text = ",".join(f"'{one}'" for one in values)
            sql = sql.replace(f"${key}", text)
        return sql


@dataclass(frozen=True, slots=True)
class AlertQuery(Query):
    """An alert rule's query and its Grafana condition (reduce last, then threshold).

    Each row is one alert instance: its text and symbol columns are the instance's labels, its
    one numeric column the value that `fires` judges. Grafana and `fires` agree by design; the
    tests use `fires` to predict which instances Grafana raises.

    Attributes:
        op: Threshold evaluator: `gt` (fires above `threshold`) or `lt` (below).
        threshold: The value the reduced number is compared to.
    """

    op: Literal["gt", "lt"] = "gt"
    threshold: float = 0.0

    def fires(self, value: float | None) -> bool:
        """Whether one series with this reduced value fires (null or NaN never does).

        Args:
            value: the reduced (last) value of the series, or None when it has none.

        Returns:
            True when `value` is strictly above (`gt`) or strictly below (`lt`) `threshold`;
            a value equal to the threshold never fires.
        """
        if value is None or math.isnan(value):
            return False
        return value > self.threshold if self.op == "gt" else value < self.threshold


# -- live wallboard --------------------------------------------------------------------------

WALLBOARD: Final = (
    Query(
        "open_conversations",
        "Open conversations",
        "stat",
        ("open_conversations",),
        f"SELECT count_distinct(conversation_id) AS open_conversations\n"
        f"FROM {{clocks}}\nWHERE open AND {_CHAT} AND {_CHANNEL}",
        "Conversations with a running chat clock (cadence and WhatsApp windows left out).",
    ),
    Query(
        "at_risk",
        "At risk",
        "stat",
        ("at_risk",),
        "SELECT count() AS at_risk\nFROM {clocks}\n"
        f"WHERE open AND NOT breached AND status = 'warning' AND {_CHANNEL}",
        "Running clocks past their warning instant and not yet breached.",
    ),
    Query(
        "breached_now",
        "Breached now",
        "stat",
        ("breached_now",),
        f"SELECT count() AS breached_now\nFROM {{clocks}}\nWHERE open AND breached AND {_CHANNEL}",
        "Clocks that breached and still run (a resolve or a reply ends them).",
    ),
    Query(
        "unassigned_now",
        "Unassigned waiting",
        "stat",
        ("unassigned_now",),
        "SELECT count() AS unassigned_now\nFROM {clocks}\n"
        f"WHERE open AND metric = 'assignment' AND {_CHANNEL}",
        "Conversations waiting for an agent.",
    ),
    Query(
        "compliance_today",
        "Compliance today",
        "stat",
        ("compliance_pct",),
        "SELECT 100.0 * sum(met) / (sum(met) + sum(breached)) AS compliance_pct\n"
        f"FROM {{compliance_daily}}\nWHERE started_at = {{today}} AND {_CHANNEL}",
        "Met / (met + breached) of the clocks that started today (local day).",
        "percent",
    ),
    Query(
        "median_first_response_today",
        "Median first response today",
        "stat",
        ("median_s",),
        "SELECT approx_median(elapsed_s, 5) AS median_s\nFROM {clocks}\n"
        "WHERE metric = 'first_response' AND status IN ('met', 'stopped')\n"
        f"  AND started_at >= {{today}} AND {_CHANNEL}",
        "Median counted seconds to the first reply, of the chats that started today.",
        "s",
    ),
    Query(
        "data_age",
        "Data age",
        "stat",
        ("data_age_s",),
        "SELECT (now() - max(at)) / 1000000.0 AS data_age_s\nFROM {heartbeat}",
        "Seconds since the monitor last reported; red when it stalls.",
        "s",
    ),
    Query(
        "running_clocks",
        "Running clocks by time left",
        "table",
        (
            "conversation_id",
            "metric",
            "agent_id",
            "team_id",
            "priority",
            "channel",
            "state",
            "seconds_left",
        ),
        # QuestDB 9.3.4's top-n sort (`ORDER BY <computed column>, ... LIMIT n`, even over a
        # sub-query and with a constant in place of now()) drops rows: the sort runs in a
        # sub-query of its own, without a limit, and the outer query only cuts it.
        "SELECT * FROM (SELECT * FROM (\n"  # noqa: S608 (built from constants only)
        "  SELECT conversation_id, metric, agent_id, team_id, priority, channel,\n"
        "         CASE WHEN status = 'paused' THEN 'paused'\n"
        "              WHEN breached THEN 'breached' ELSE 'running' END AS state,\n"
        "         CASE WHEN status = 'paused' THEN target_s - elapsed_s\n"
        "              ELSE (deadline_at - now()) / 1000000.0 END AS seconds_left\n"
        "  FROM {clocks}\n"
        "  WHERE open AND (deadline_at IS NOT NULL OR status = 'paused')\n"
        "    AND (NOT breached OR deadline_at >= dateadd('h', -1, now()))\n"
        f"    AND {_CHANNEL}\n"
        ")\nORDER BY seconds_left, conversation_id, metric)\nLIMIT 100",
        "Running clocks, most urgent first (breached in the last hour on top); a paused one "
        "shows what is left of its target.",
        "s",
    ),
    Query(
        "agent_load",
        "Agents: open conversations and breaches today",
        "bargauge",
        ("agent_id", "open_conversations", "breaches_today"),
        "SELECT agent_id,\n"
        f"       count_distinct(CASE WHEN open AND {_CHAT} THEN conversation_id END)"
        " AS open_conversations,\n"
        "       sum(CASE WHEN breached AND status <> 'cancelled' AND deadline_at >= {today}\n"
        "                THEN 1 ELSE 0 END) AS breaches_today\n"
        "FROM {clocks}\nWHERE agent_id IS NOT NULL AND (open OR deadline_at >= {today})\n"
        f"  AND {_CHANNEL}\nORDER BY agent_id",
        "Per agent: conversations with a running chat clock; breaches whose deadline fell today.",
    ),
    Query(
        "breach_feed",
        "Breaches today, with cause",
        "table",
        ("breached_at", "conversation_id", "metric", "agent_id", "team_id", "priority", "cause"),
        "SELECT deadline_at AS breached_at, conversation_id, metric, agent_id, team_id,\n"
        "       priority, cause\nFROM {clocks}\n"
        "WHERE breached AND status <> 'cancelled' AND deadline_at >= {today}\n"
        f"  AND {_CHANNEL}\nORDER BY breached_at DESC, conversation_id, metric\nLIMIT 100",
        "Breaches whose deadline fell today, newest first (late corrections already applied).",
    ),
    Query(
        "windows_closing",
        "WhatsApp windows closing within 2 h, unanswered",
        "table",
        ("conversation_id", "agent_id", "team_id", "priority", "segment", "seconds_left"),
        "SELECT conversation_id, agent_id, team_id, priority, segment,\n"
        "       (deadline_at - now()) / 1000000.0 AS seconds_left\nFROM {clocks}\n"
        "WHERE metric = 'service_window' AND open AND NOT breached\n"
        f"  AND deadline_at <= dateadd('h', 2, now()) AND {_CHANNEL}\n"
        "ORDER BY seconds_left, conversation_id",
        "Customers whose 24-hour window closes within 2 hours with their message unanswered.",
        "s",
    ),
    Query(
        "leads_short",
        "Leads short of contact attempts",
        "table",
        (
            "conversation_id",
            "agent_id",
            "lead_source",
            "channel",
            "attempts",
            "required",
            "seconds_left",
        ),
        "SELECT conversation_id, agent_id, lead_source, channel, attempts,\n"
        "       attempts_required AS required,\n"
        "       (deadline_at - now()) / 1000000.0 AS seconds_left\nFROM {clocks}\n"
        f"WHERE metric = 'contact_attempts' AND open AND NOT breached AND {_CHANNEL}\n"
        "ORDER BY seconds_left, conversation_id",
        "New leads not yet reached with fewer attempts than required, and the time left.",
        "s",
    ),
    Query(
        "handovers_waiting",
        "Hand-overs waiting",
        "stat",
        ("handovers_waiting",),
        "SELECT count() AS handovers_waiting\nFROM {clocks}\n"
        f"WHERE open AND {_STINT} AND (breached OR status = 'warning') AND {_CHANNEL}",
        "Conversations a team still owns past the warning of its OLA (team_ownership), breached"
        " ones included: the team must hand them over or resolve them now. A stint paused while"
        " the customer is awaited counts only once it has breached.",
    ),
    Query(
        "team_clocks",
        "Team clocks (OLA) by time left",
        "table",
        (
            "team_id",
            "conversation_id",
            "stint",
            "agent_id",
            "priority",
            "channel",
            "state",
            "seconds_left",
        ),
        # Sorted in a sub-query and cut outside it, as `running_clocks` (QuestDB's top-n sort).
        "SELECT * FROM (SELECT * FROM (\n"  # noqa: S608 (built from constants only)
        "  SELECT team_id, conversation_id, seq AS stint, agent_id, priority, channel,\n"
        "         CASE WHEN status = 'paused' THEN 'paused'\n"
        "              WHEN breached THEN 'breached'\n"
        "              WHEN status = 'warning' THEN 'warning' ELSE 'running' END AS state,\n"
        "         CASE WHEN status = 'paused' THEN target_s - elapsed_s\n"
        "              ELSE (deadline_at - now()) / 1000000.0 END AS seconds_left\n"
        "  FROM {clocks}\n"
        f"  WHERE open AND {_STINT} AND {_CHANNEL}\n"
        ")\nORDER BY seconds_left, team_id, conversation_id)\nLIMIT 100",
        "Every team stint running now: the owning team, the conversation, which stint of the"
        " cycle it is, and the time left of the team's OLA (negative once breached; a paused"
        " one shows what is left of its target).",
        "s",
    ),
)
"""The live wallboard: "now" and "today" (the team's local day), one query per panel.

Columns, by query (a clock is one row of `{clocks}`, its latest state):

* `open_conversations.open_conversations`: distinct conversations with at least one open
  clock other than `cadence` and `service_window`.
* `at_risk.at_risk`: open clocks whose latest status is `warning` and that have not breached.
* `breached_now.breached_now`: open clocks that have breached (a resolve, a reply or a
  cancellation ends them; a breached `service_window` is no longer open).
* `unassigned_now.unassigned_now`: open `assignment` clocks, i.e. conversations with no agent.
* `compliance_today.compliance_pct`: met / (met + breached) in per cent, of the clocks started
  since local midnight (from `{compliance_daily}`).
* `median_first_response_today.median_s`: approximate median of `elapsed_s` (counted seconds)
  of today's `first_response` clocks that were fulfilled (`met`, or `stopped` after a breach).
* `data_age.data_age_s`: seconds since the newest heartbeat of any worker.
* `running_clocks`: the clock's `conversation_id`, `metric`, `agent_id`, `team_id`,
  `priority` and `channel`; `state` is `paused`, `breached` or `running`; `seconds_left` is,
  for a paused clock, what is left of its target in counted seconds, else wall-clock seconds
  to the deadline (negative once breached). Clocks without a deadline are left out unless
  paused, and breached ones once their deadline is more than an hour old; at most 100 rows.
* `agent_load`: per `agent_id`, `open_conversations` (distinct conversations with an open chat
  clock) and `breaches_today` (clocks breached, not cancelled, with the deadline since local
  midnight), for every agent with an open clock or a deadline today.
* `breach_feed`: `breached_at` (the deadline that was missed), the clock's `conversation_id`,
  `metric`, `agent_id`, `team_id`, `priority`, and the breach `cause`; newest 100 first.
* `windows_closing`: unanswered `service_window` clocks closing within 2 h: the clock's
  `conversation_id`, `agent_id`, `team_id`, `priority`, `segment`, and `seconds_left` to the
  window's end.
* `leads_short`: open `contact_attempts` clocks not yet breached: `conversation_id`,
  `agent_id`, `lead_source`, `channel`, `attempts` made so far (the live count: every `attempt`
  record updates it), `required` (the policy's `min`), `seconds_left` to the deadline.

* `handovers_waiting.handovers_waiting`: open `team_ownership` clocks (team stints) whose latest
  status is `warning` or that have breached: conversations a team must hand over or resolve
  now. Paused stints (waiting on the customer) count once breached, not for a warning.
* `team_clocks`: every open `team_ownership` clock: `team_id` (the owning team), the
  `conversation_id`, `stint` (its `seq`: 1 for the cycle's first owning team, 2 for the next,
  ...), `agent_id`, `priority`, `channel`, `state` (`paused`, `breached`, `warning` or
  `running`) and `seconds_left` as in `running_clocks`; most urgent first, at most 100 rows.

Every query but `data_age` keeps the clocks of the channels `$channel` chooses.
"""

# -- agent scorecard ($agent, $week) ---------------------------------------------------------


def _fcr(key: str, who: str) -> str:
    """Return the CTEs `resolved`, `resolves`, `waited` and `fcr` of first-contact resolution.

    The week's cycles resolved (their `resolution` clock, started in the week, ended by the
    resolve; `who` picks the agent or the team on it), and of those the first-contact ones:
    resolved once (one resolve instant in `{events}`: a reopened and resolved again cycle has
    two) and with no `next_response` clock (the customer never waited a second time), as
    `slawatch report scorecard` counts them. `key` is the grouping column and a comma, or "".
    """
    return (
        "resolved AS (\n"  # noqa: S608 (built from constants only)
        f"  SELECT {key}conversation_id, cycle FROM {{clocks}}\n"
        f"  WHERE {_RESOLVED} AND {who}\n"
        f"    AND {_IN_WEEK} AND {_CHANNEL}\n"
        "), resolves AS (\n"
        "  SELECT conversation_id, cycle, count_distinct(at) AS resolves FROM {events}\n"
        f"  WHERE {_RESOLVED} AND at >= {_WEEK_START}\n"
        f"    AND {_IN_WEEK}\n"
        "), waited AS (\n"
        "  SELECT conversation_id, cycle, count() AS waits FROM {clocks}\n"
        f"  WHERE metric = 'next_response' AND started_at >= {_WEEK_START}\n"
        "), fcr AS (\n"
        f"  SELECT {key}count() AS resolved,\n"
        "         sum(CASE WHEN resolves = 1 AND waits IS NULL THEN 1 ELSE 0 END)"
        " AS first_contact\n"
        "  FROM resolved JOIN resolves ON (conversation_id, cycle)\n"
        "  LEFT JOIN waited ON (conversation_id, cycle)\n"
        ")"
    )


def _surveys(key: str, who: str) -> str:
    """Return the CTE `surveys`: the week's surveys (by `survey_at`) of `who`, per `key`."""
    return (
        "surveys AS (\n"  # noqa: S608 (built from constants only)
        f"  SELECT {key}count() AS sent, count(rating) AS rated, {_SATISFIED} AS satisfied,\n"
        "         avg(rating) AS mean_rating\n"
        "  FROM {csat}\n"
        f"  WHERE {who} AND {_SURVEY_IN_WEEK} AND {_LIVE_SURVEY}\n"
        f"    AND {_CHANNEL}\n"
        ")"
    )


def _effort(key: str, who: str) -> str:
    """Return the CTE `effort`: the week's counted handle segments (by start) of `who`."""
    return (
        "effort AS (\n"  # noqa: S608 (built from constants only)
        f"  SELECT {key}sum(handle_s) AS handle_s, count_distinct({_CYCLE_KEY}) AS handled\n"
        "  FROM {handle}\n"
        f"  WHERE {who} AND {_COUNTED} AND {_IN_WEEK}\n"
        f"    AND {_CHANNEL}\n"
        ")"
    )


_AGENT: Final = "agent_id = '$agent'"
_HAS_TEAM: Final = "team_id IS NOT NULL"
#: The columns both satisfaction tables show, from `surveys`, `effort` and `fcr`.
_SATISFACTION_COLUMNS: Final = (
    "       100.0 * rated / sent AS response_rate_pct,\n"
    "       100.0 * satisfied / rated AS csat_pct, mean_rating,\n"
    "       handle_s / handled AS aht_s, 100.0 * first_contact / resolved AS fcr_pct"
)


SCORECARD: Final = (
    Query(
        "sc_conversations",
        "Conversations",
        "stat",
        ("conversations",),
        "SELECT count_distinct(conversation_id) AS conversations\nFROM {clocks}\n"
        f"WHERE agent_id = '$agent' AND status <> 'cancelled' AND {_IN_WEEK} AND {_CHANNEL}",
        "Conversations whose clocks of the week ended (or run) with this agent assigned.",
    ),
    Query(
        "sc_compliance",
        "Compliance",
        "stat",
        ("compliance_pct",),
        "SELECT 100.0 * sum(met) / (sum(met) + sum(breached)) AS compliance_pct\n"
        "FROM {compliance_daily}\n"
        f"WHERE agent_id = '$agent' AND {_IN_WEEK} AND {_CHANNEL}",
        "Met / (met + breached) over every metric, clocks started in the week.",
        "percent",
    ),
    Query(
        "sc_compliance_by_metric",
        "Compliance per metric",
        "table",
        ("metric", "met", "breached", "compliance_pct"),
        "SELECT metric, sum(met) AS met, sum(breached) AS breached,\n"
        "       100.0 * sum(met) / (sum(met) + sum(breached)) AS compliance_pct\n"
        "FROM {compliance_daily}\n"
        f"WHERE agent_id = '$agent' AND {_IN_WEEK} AND {_CHANNEL}\nORDER BY metric",
        "Per metric: clocks met and breached, and the compliance.",
        "percent",
    ),
    Query(
        "sc_response_times",
        "Response times",
        "table",
        ("metric", "responses", "avg_s", "p90_s"),
        "SELECT metric, count() AS responses, avg(elapsed_s) AS avg_s,\n"
        "       approx_percentile(elapsed_s, 0.9, 5) AS p90_s\nFROM {clocks}\n"
        "WHERE agent_id = '$agent' AND metric IN ('first_response', 'next_response')\n"
        f"  AND status IN ('met', 'stopped') AND {_IN_WEEK} AND {_CHANNEL}\nORDER BY metric",
        "Average and 90th percentile of counted seconds to reply, replies given.",
        "s",
    ),
    Query(
        "sc_contact_attempts",
        "Contact attempts",
        "table",
        ("leads", "attempts", "required", "done", "short", "running"),
        "SELECT count() AS leads, sum(attempts) AS attempts,"
        " sum(attempts_required) AS required,\n"
        "       sum(CASE WHEN status = 'met' THEN 1 ELSE 0 END) AS done,\n"
        "       sum(CASE WHEN breached AND status <> 'cancelled' THEN 1 ELSE 0 END) AS short,\n"
        "       sum(CASE WHEN open AND NOT breached THEN 1 ELSE 0 END) AS running\n"
        "FROM {clocks}\n"
        "WHERE metric = 'contact_attempts' AND status <> 'cancelled'\n"
        f"  AND agent_id = '$agent' AND {_IN_WEEK} AND {_CHANNEL}",
        "New leads: attempts made and required; leads reached or fully attempted, short at the"
        " deadline, open.",
    ),
    Query(
        "sc_qualification",
        "Qualification",
        "table",
        ("qualified", "disqualified", "nurture", "in_progress", "overdue"),
        f"SELECT sum(CASE WHEN {_DECIDED_AS.format(status='qualified')} THEN 1 ELSE 0 END)"
        " AS qualified,\n"
        f"       sum(CASE WHEN {_DECIDED_AS.format(status='disqualified')} THEN 1 ELSE 0 END)"
        " AS disqualified,\n"
        f"       sum(CASE WHEN {_DECIDED_AS.format(status='nurture')} THEN 1 ELSE 0 END)"
        " AS nurture,\n"
        "       sum(CASE WHEN open THEN 1 ELSE 0 END) AS in_progress,\n"
        "       sum(CASE WHEN open AND breached THEN 1 ELSE 0 END) AS overdue\n"
        "FROM {clocks}\n"
        "WHERE metric = 'qualification' AND agent_id = '$agent'\n"
        f"  AND {_IN_WEEK} AND {_CHANNEL}",
        "Leads qualified, disqualified or nurtured, still in progress, and of those overdue.",
    ),
    Query(
        "sc_conversion",
        "Conversion (won / resolved)",
        "stat",
        ("conversion_pct",),
        "SELECT 100.0 * sum(CASE WHEN outcome = 'won' THEN 1 ELSE 0 END) / count()"
        " AS conversion_pct\nFROM {clocks}\n"
        f"WHERE {_RESOLVED} AND agent_id = '$agent' AND {_IN_WEEK} AND {_CHANNEL}",
        "Cycles resolved as won, of the cycles resolved, the agent assigned at the resolve.",
        "percent",
    ),
    Query(
        "sc_daily_volume",
        "Daily chats",
        "timeseries",
        ("time", "conversations"),
        "SELECT started_at AS time, count_distinct(conversation_id) AS conversations\n"
        "FROM {clocks}\n"
        f"WHERE agent_id = '$agent' AND status <> 'cancelled' AND {_IN_WEEK} AND {_CHANNEL}\n"
        "SAMPLE BY 1d ALIGN TO CALENDAR TIME ZONE '{tz}'",
        "Conversations per local day of the week.",
    ),
    Query(
        "sc_breaches_by_cause",
        "Breaches by cause",
        "barchart",
        ("cause", "breaches"),
        "SELECT cause, count() AS breaches\nFROM {clocks}\n"
        "WHERE agent_id = '$agent' AND breached AND status <> 'cancelled'\n"
        f"  AND {_IN_WEEK} AND {_CHANNEL}\n"
        "ORDER BY breaches DESC, cause",
        "Breaches of the week by cause.",
    ),
    Query(
        "sc_ola_by_team",
        "OLA per team (the week, every agent)",
        "table",
        ("team_id", "stints", "met", "breached", "compliance_pct", "median_budget_pct"),
        "SELECT team_id, count() AS stints,\n"
        "       sum(CASE WHEN status = 'met' THEN 1 ELSE 0 END) AS met,\n"
        "       sum(CASE WHEN breached THEN 1 ELSE 0 END) AS breached,\n"
        "       100.0 * sum(CASE WHEN status = 'met' THEN 1 ELSE 0 END)\n"
        f"             / sum(CASE WHEN {_DECIDED} THEN 1 ELSE 0 END) AS compliance_pct,\n"
        f"       approx_median(CASE WHEN {_BUDGETED} THEN budget_pct END, 5)"
        " AS median_budget_pct\n"
        "FROM {clocks}\n"
        f"WHERE {_STINT} AND status <> 'cancelled' AND team_id IS NOT NULL\n"
        f"  AND {_IN_WEEK} AND {_CHANNEL}\nORDER BY team_id",
        "Per owning team, its stints of the week (whoever the agent): met and breached OLAs,"
        " the compliance, and the median share of the cycle's resolution target one stint used.",
        "percent",
    ),
    Query(
        "sc_ola_budget",
        "Share of the resolution promise used per team (the week)",
        "bargauge",
        ("team_id", "budget_pct"),
        "SELECT team_id, avg(used_pct) AS budget_pct FROM (\n"  # noqa: S608 (constants only)
        "  SELECT team_id, conversation_id, cycle, sum(budget_pct) AS used_pct\n"
        "  FROM {clocks}\n"
        f"  WHERE {_STINT} AND {_BUDGETED} AND team_id IS NOT NULL\n"
        f"    AND {_IN_WEEK} AND {_CHANNEL}\n"
        ")\nORDER BY team_id",
        "Per team, the per cent of the customer's resolution target its stints used in a cycle it"
        " held (all its stints of that cycle added up), averaged over those cycles.",
        "percent",
    ),
    Query(
        "sc_satisfaction",
        "Satisfaction and effort",
        "table",
        (
            "sent",
            "rated",
            "response_rate_pct",
            "csat_pct",
            "mean_rating",
            "aht_s",
            "fcr_pct",
        ),
        "WITH "  # noqa: S608 (built from constants only)
        f"{_surveys('', _AGENT)}, {_effort('', _AGENT)}, {_fcr('', _AGENT)}\n"
        "SELECT sent, rated,\n"
        f"{_SATISFACTION_COLUMNS}\n"
        "FROM surveys CROSS JOIN effort CROSS JOIN fcr",
        "The agent's week: surveys sent and rated, response rate, CSAT % (ratings 4-5 /"
        " ratings), mean rating, AHT (handle seconds / cycles handled) and first-contact"
        " resolution % of the cycles the agent resolved.",
    ),
    Query(
        "sc_satisfaction_by_team",
        "Satisfaction, effort and compliance per team (the week, every agent)",
        "table",
        (
            "team_id",
            "sent",
            "rated",
            "response_rate_pct",
            "csat_pct",
            "mean_rating",
            "aht_s",
            "fcr_pct",
            "compliance_pct",
        ),
        "WITH "  # noqa: S608 (built from constants only)
        f"{_surveys('team_id, ', _HAS_TEAM)}, {_effort('team_id, ', _HAS_TEAM)},\n"
        f"{_fcr('team_id, ', _HAS_TEAM)}, compliance AS (\n"
        "  SELECT team_id, sum(met) AS met, sum(breached) AS breached\n"
        "  FROM {compliance_daily}\n"
        f"  WHERE {_HAS_TEAM} AND {_IN_WEEK}\n"
        f"    AND {_CHANNEL}\n"
        "), teams AS (\n"
        "  SELECT DISTINCT team_id FROM (\n"
        "    SELECT team_id FROM surveys UNION SELECT team_id FROM effort\n"
        "    UNION SELECT team_id FROM fcr UNION SELECT team_id FROM compliance\n"
        "  )\n"
        ")\n"
        "SELECT teams.team_id AS team_id, coalesce(surveys.sent, 0) AS sent,\n"
        "       coalesce(surveys.rated, 0) AS rated,\n"
        f"{_SATISFACTION_COLUMNS},\n"
        "       100.0 * met / (met + breached) AS compliance_pct\n"
        "FROM teams LEFT JOIN surveys ON (team_id) LEFT JOIN effort ON (team_id)\n"
        "  LEFT JOIN fcr ON (team_id) LEFT JOIN compliance ON (team_id)\n"
        "ORDER BY team_id",
        "Per team, every agent's week: the same satisfaction and effort figures, and the"
        " compliance of the team's clocks, so supervisors compare teams.",
    ),
    Query(
        "sc_breach_list",
        "Breaches",
        "table",
        ("breached_at", "conversation_id", "metric", "cause", "target_s", "elapsed_s", "status"),
        "SELECT deadline_at AS breached_at, conversation_id, metric, cause, target_s,\n"
        "       elapsed_s, status\nFROM {clocks}\n"
        "WHERE agent_id = '$agent' AND breached AND status <> 'cancelled'\n"
        f"  AND {_IN_WEEK} AND {_CHANNEL}\n"
        "ORDER BY breached_at, conversation_id, metric",
        "Every breach of the week with its target and counted time.",
        "s",
    ),
)
"""The agent scorecard: one agent (`$agent`) and one local week (`$week`, its Monday).

Every query keeps the clocks started in the week whose latest record names the agent.
Columns, by query:

* `sc_conversations.conversations`: distinct conversations with a clock that was not cancelled.
* `sc_compliance.compliance_pct`: met / (met + breached) in per cent, over every metric.
* `sc_compliance_by_metric`: per `metric`, the clocks `met`, `breached` and `compliance_pct`.
* `sc_response_times`: per reply metric (`first_response`, `next_response`), the fulfilled
  clocks (`responses`), their average `avg_s` and approximate 90th percentile `p90_s` of
  counted seconds.
* `sc_contact_attempts`: of the week's `contact_attempts` clocks (not cancelled): `leads`,
  `attempts` made in all, `required` (the sum of each lead's policy `min`), `done` (met:
  reached or fully attempted), `short` (breached: too few attempts at the deadline) and
  `running` (open, not breached).
* `sc_qualification`: of the `qualification` clocks: `qualified`, `disqualified` and
  `nurture` (ended by that lead status, in time or late), `in_progress` (still open) and
  `overdue` (still open past the deadline; counted in `in_progress` too).
* `sc_conversion.conversion_pct`: of the cycles resolved (their `resolution` clock ended by
  the resolve, the agent assigned then), the per cent resolved with outcome `won`. Cycles under
  a policy without a `resolution` target are not counted.
* `sc_daily_volume`: per local day (`time`, the UTC instant of local midnight), the distinct
  `conversations` with a clock that was not cancelled.
* `sc_breaches_by_cause`: per `cause`, the number of `breaches` (most first).
* `sc_breach_list`: every breach: `breached_at` (the missed deadline), `conversation_id`,
  `metric`, `cause`, `target_s`, `elapsed_s` (counted seconds) and the clock's latest `status`.
* `sc_ola_by_team`: the team stints (`team_ownership` clocks) started in the week, **every
  agent's** (a stint belongs to its team; the agent on its row may already be the next team's
  at the hand-over), per owning `team_id`: `stints` (not cancelled), `met`, `breached`
  (running ones included), `compliance_pct` and `median_budget_pct`, the approximate median
  `budget_pct` of the stints that ended (the per cent of the cycle's `resolution` target the
  stint used; stints under a policy without one have none).
* `sc_ola_budget`: per `team_id`, `budget_pct`: of the cycles in which the team's stints of
  the week ended, the average of the team's summed `budget_pct` per cycle (a cycle handed
  l1 -> l2 -> l1 adds both l1 stints).
* `sc_satisfaction`: one row for the agent's week. `sent`: the surveys (rows of `{csat}`)
  credited to the agent whose `survey_at` is in the week (a rating that came without a `sent`
  counts as a survey sent); `rated`: those with a rating; `response_rate_pct` = rated / sent;
  `csat_pct`: ratings of 4 or 5 / ratings; `mean_rating` (1-5); `aht_s`: the seconds of the
  agent's counted handle segments started in the week over the cycles they belong to (SPEC §4
  AHT; `withdrawn` rows left out); `fcr_pct`: of the cycles resolved in the week with the agent
  assigned at the resolve (their `resolution` clock started in the week), the per cent resolved
  once with no `next_response` clock (first-contact resolution, as `slawatch report
  scorecard`). A ratio over nothing has no value. Surveys, segments and clocks keep
  `$channel`: a survey's channel is the conversation's at the resolve, a segment's the one of
  its last message.
* `sc_satisfaction_by_team`: the same columns per `team_id` (every agent's surveys, segments
  and resolved cycles of the week, by the team on each row: the team at the resolve for
  surveys and resolutions, the team while the agent held it for segments), plus
  `compliance_pct`, met / (met + breached) of the team's clocks started in the week; a team
  with clocks but no survey shows 0 sent and no CSAT.
"""

#: The dashboards' variables: the agents and the local Mondays that have clocks (scorecard), and
#: the channels (every dashboard).
VARIABLES: Final = (
    Query(
        "var_agent",
        "Agent",
        "variable",
        ("agent_id",),
        "SELECT DISTINCT agent_id FROM {clocks} WHERE agent_id IS NOT NULL ORDER BY agent_id",
        "Every agent that has a clock.",
    ),
    Query(
        "var_week",
        "Week (Monday)",
        "variable",
        ("week",),
        "SELECT DISTINCT to_str(timestamp_floor('w', to_timezone(started_at, '{tz}')),"
        " 'yyyy-MM-dd') AS week\nFROM {clocks}\nORDER BY week DESC",
        "The local Monday of every week with clocks, newest first.",
    ),
    Query(
        "var_channel",
        "Channel",
        "variable",
        ("channel",),
        "SELECT DISTINCT channel FROM {clocks} WHERE channel IS NOT NULL ORDER BY channel",
        "Every channel a clock was measured on (WhatsApp, Telegram, web chat, ...).",
    ),
)
"""The variables: `var_agent.agent_id` (every agent named on a clock, sorted),
`var_week.week` (each local Monday with a clock started in its week, `YYYY-MM-DD` text) and
`var_channel.channel` (every channel named on a clock, sorted; multi-value with "All")."""

# -- trends (last 30 local days) -------------------------------------------------------------

_PCT: Final = "100.0 * sum(met) / (sum(met) + sum(breached)) AS compliance_pct"

TRENDS: Final = (
    Query(
        "tr_daily_compliance",
        "Daily compliance, 30 days",
        "timeseries",
        ("time", "compliance_pct"),
        f"SELECT started_at AS time, {_PCT}\nFROM {{compliance_daily}}\n"
        f"WHERE started_at >= {{days_ago_29}} AND {_CHANNEL}\nORDER BY time",
        "Compliance per local day against the 90 % and 95 % lines.",
        "percent",
    ),
    Query(
        "tr_by_lead_source",
        "Compliance by lead source, 30 days",
        "bargauge",
        ("lead_source", "compliance_pct"),
        f"SELECT lead_source, {_PCT}\nFROM {{compliance_daily}}\n"
        "WHERE started_at >= {days_ago_29} AND lead_source IS NOT NULL\n"
        f"  AND {_CHANNEL}\nORDER BY lead_source",
        "Compliance of the last 30 days per lead source.",
        "percent",
    ),
    Query(
        "tr_by_weekday",
        "Compliance by weekday, 30 days",
        "barchart",
        ("weekday", "compliance_pct"),
        # A text x axis: Grafana's bar chart needs a string (or time) field to draw bars by.
        "SELECT day_of_week(to_timezone(started_at, '{tz}'))\n"
        "       || ' ' || to_str(to_timezone(started_at, '{tz}'), 'E') AS weekday,\n"
        "       100.0 * sum(CASE WHEN status = 'met' THEN 1 ELSE 0 END)"
        f" / count() AS compliance_pct\n"
        f"FROM {{clocks}}\nWHERE started_at >= {{days_ago_29}} AND {_DECIDED} AND {_CHANNEL}\n"
        "ORDER BY weekday",
        "Compliance by local weekday the clock started (`1 Mon` … `7 Sun`).",
        "percent",
    ),
    Query(
        "tr_by_hour",
        "Compliance by hour of day, 30 days",
        "barchart",
        ("hour", "compliance_pct"),
        "SELECT to_str(to_timezone(started_at, '{tz}'), 'HH') AS hour,\n"
        "       100.0 * sum(CASE WHEN status = 'met' THEN 1 ELSE 0 END)"
        f" / count() AS compliance_pct\n"
        f"FROM {{clocks}}\nWHERE started_at >= {{days_ago_29}} AND {_DECIDED} AND {_CHANNEL}\n"
        "ORDER BY hour",
        "Compliance by local hour the clock started (`00` … `23`).",
        "percent",
    ),
    Query(
        "tr_causes_by_week",
        "Breach causes by week",
        "table",
        ("week", "cause", "breaches"),
        "SELECT to_utc(timestamp_floor('w', to_timezone(started_at, '{tz}')), '{tz}') AS week,\n"
        "       cause, count() AS breaches\nFROM {clocks}\n"
        "WHERE started_at >= {days_ago_29} AND breached AND status <> 'cancelled'\n"
        f"  AND {_CHANNEL}\nORDER BY week, cause",
        "Breaches per local week (Monday) and cause.",
    ),
    Query(
        "tr_tier_conversion",
        "Compliance tier vs conversion, 30 days",
        "barchart",
        ("tier", "resolved", "conversion_pct"),
        "WITH cycles AS (\n"  # noqa: S608 (built from constants only)
        "  SELECT conversation_id, cycle,\n"
        "         sum(CASE WHEN status = 'met' THEN 1 ELSE 0 END) AS met, count() AS decided\n"
        "  FROM {clocks}\n"
        f"  WHERE started_at >= {{days_ago_29}} AND {_DECIDED} AND {_CHAT}\n"
        f"    AND metric <> 'resolution' AND {_CHANNEL}\n"
        "), resolved AS (\n"
        "  SELECT conversation_id, cycle, outcome FROM {clocks}\n"
        f"  WHERE started_at >= {{days_ago_29}} AND {_RESOLVED} AND {_CHANNEL}\n"
        ")\n"
        "SELECT CASE WHEN met = decided THEN '1 all met'\n"
        "            WHEN 2 * met >= decided THEN '2 half or more met'\n"
        "            ELSE '3 mostly breached' END AS tier,\n"
        "       count() AS resolved,\n"
        "       100.0 * sum(CASE WHEN outcome = 'won' THEN 1 ELSE 0 END) / count()"
        " AS conversion_pct\n"
        "FROM resolved JOIN cycles ON (conversation_id, cycle)\nORDER BY tier",
        "Resolved cycles by how many of their clocks were met, and the share won.",
        "percent",
    ),
    Query(
        "tr_ola_by_team",
        "OLA compliance per team, 30 days",
        "timeseries",
        ("time", "team_id", "compliance_pct"),
        f"SELECT started_at AS time, team_id, {_PCT}\nFROM {{ola_daily}}\n"
        "WHERE started_at >= {days_ago_29} AND team_id IS NOT NULL\n"
        f"  AND {_CHANNEL}\nORDER BY time, team_id",
        "Per local day and owning team, met / (met + breached) of the team stints started that"
        " day: which team holds conversations up.",
        "percent",
    ),
    Query(
        "tr_daily_volume",
        "Daily chats, 30 days",
        "timeseries",
        ("time", "conversations"),
        "SELECT started_at AS time, sum(conversations) AS conversations\n"
        f"FROM {{volume_daily}}\nWHERE started_at >= {{days_ago_29}} AND {_CHANNEL}\n"
        "ORDER BY time",
        "Chats (cycles a customer opened) per local day.",
    ),
    Query(
        "tr_csat_by_outcome",
        "CSAT by what happened in the cycle, 30 days",
        "table",
        ("outcome", "ratings", "csat_pct", "mean_rating"),
        "SELECT CASE WHEN NOT breached THEN '1 met'\n"
        "            WHEN recovered THEN '2 breached, recovered'\n"
        "            ELSE '3 breached, no recovery' END AS outcome,\n"
        f"       count() AS ratings, 100.0 * {_SATISFIED} / count() AS csat_pct,\n"
        "       avg(rating) AS mean_rating\n"
        "FROM {csat}\n"
        "WHERE survey_at >= {days_ago_29} AND rating IS NOT NULL\n"
        f"  AND {_CHANNEL}\nORDER BY outcome",
        "Rated surveys by their cycle: no clock breached, breached and a service recovery"
        " sent, breached and none; ratings, CSAT % and mean rating: does recovery pay?",
    ),
    Query(
        "tr_csat_by_team",
        "CSAT per team, 30 days",
        "timeseries",
        ("time", "team_id", "csat_pct"),
        "SELECT to_utc(timestamp_floor('d', to_timezone(survey_at, '{tz}')), '{tz}') AS time,\n"
        f"       team_id, 100.0 * {_SATISFIED} / count() AS csat_pct\n"
        "FROM {csat}\n"
        "WHERE survey_at >= {days_ago_29} AND rating IS NOT NULL AND team_id IS NOT NULL\n"
        f"  AND {_CHANNEL}\nORDER BY time, team_id",
        f"Per local day and team, ratings of 4 or 5 / ratings, against the {CSAT_TARGET_PCT} %"
        " target.",
        "percent",
    ),
)
"""The trends: the clocks started in the last 30 local days (today included).

Columns, by query:

* `tr_daily_compliance`: per local day, `time` (the UTC instant of local midnight) and
  `compliance_pct`, met / (met + breached) of the clocks started that day.
* `tr_by_lead_source`: per `lead_source` (clocks with none left out), `compliance_pct`.
* `tr_by_weekday`: per local weekday, `weekday` (text `1 Mon` ... `7 Sun`, so it sorts) and
  `compliance_pct` of the decided clocks started on it.
* `tr_by_hour`: per local hour, `hour` (text `00` ... `23`) and `compliance_pct` of the
  decided clocks started in it.
* `tr_causes_by_week`: per local week, `week` (the UTC instant of its Monday's midnight),
  `cause`, and the `breaches` (not cancelled) of clocks started in it.
* `tr_tier_conversion`: the cycles resolved in the last 30 days (resolution clock started in
  them) grouped by the compliance of their other chat clocks (assignment, replies, follow-up,
  lead clocks; decided ones only): `tier` `1 all met`, `2 half or more met` or
  `3 mostly breached`; `resolved`, the cycles in the tier, and `conversion_pct`, the per cent
  of them resolved `won`. Cycles with no decided clock besides resolution are left out.
* `tr_daily_volume`: per local day, `time` and `conversations`: cycles a customer opened by
  writing (their `first_response` clock, not cancelled), from `{volume_daily}`.
* `tr_ola_by_team`: per local day and owning `team_id` (one series per team), `time` and
  `compliance_pct` of the team stints started that day, from `{ola_daily}`; a day on which a
  team decided no stint has no value.

The satisfaction trends read the surveys (`{csat}`) whose `survey_at` is in the last 30 local
days, rated ones only:

* `tr_csat_by_outcome`: per `outcome` of the rated cycle, `1 met` (no clock of the cycle had
  breached by its resolve), `2 breached, recovered` (one had, and a service recovery of the
  cycle was sent by the rating) or `3 breached, no recovery`: `ratings`, `csat_pct` (ratings
  of 4 or 5 / ratings) and `mean_rating`. An outcome with no rating has no row.
* `tr_csat_by_team`: per local day and `team_id` (credited at the resolve; one series per
  team), `time` (the UTC instant of local midnight) and `csat_pct`; a day on which a team got
  no rating has no point.
"""

# -- alert rules -----------------------------------------------------------------------------

ALERTS: Final = (
    AlertQuery(
        "al_urgent_breach",
        "P1, VIP or hot-lead clock breached",
        "alert",
        ("conversation_id", "metric", "agent_id", "team_id", "breached_clocks"),
        "SELECT conversation_id, metric, agent_id, team_id, count() AS breached_clocks\n"
        f"FROM {{clocks}}\nWHERE open AND breached AND {_URGENT}",
        "One alert per conversation and metric while a breached urgent clock runs.",
        op="gt",
        threshold=0,
    ),
    AlertQuery(
        "al_team_ola_breach",
        "P1/P2 team OLA breached",
        "alert",
        ("team_id", "conversation_id", "priority", "breached_stints"),
        "SELECT team_id, conversation_id, priority, count() AS breached_stints\n"
        f"FROM {{clocks}}\nWHERE open AND breached AND {_STINT}"
        " AND priority IN ('P1', 'P2')",
        "One alert per owning team and conversation while a breached P1/P2 team stint runs.",
        op="gt",
        threshold=0,
    ),
    AlertQuery(
        "al_window_closing",
        "VIP or hot lead: WhatsApp window closes within 1 h, unanswered",
        "alert",
        ("conversation_id", "agent_id", "team_id", "minutes_left"),
        "SELECT conversation_id, agent_id, team_id,\n"
        "       min((deadline_at - now()) / 60000000.0) AS minutes_left\nFROM {clocks}\n"
        "WHERE metric = 'service_window' AND open AND NOT breached\n"
        "  AND (segment = 'vip' OR lead_source IN ('demo_request', 'pricing'))",
        "Minutes left of the customer's 24-hour window.",
        op="lt",
        threshold=60,
    ),
    AlertQuery(
        "al_team_compliance",
        "Team compliance today under target",
        "alert",
        ("team_id", "compliance_pct"),
        "SELECT team_id, compliance_pct FROM (\n  SELECT team_id, sum(met) + sum(breached)"
        " AS decided,\n         100.0 * sum(met) / (sum(met) + sum(breached)) AS compliance_pct\n"
        "  FROM {compliance_daily}\n"
        "  WHERE started_at = {today} AND team_id IS NOT NULL\n) WHERE decided > 0",
        "Met / (met + breached) of the team's clocks started today.",
        op="lt",
        threshold=90,
    ),
    AlertQuery(
        "al_agent_compliance_7d",
        "Agent under 80 % over 7 days",
        "alert",
        ("agent_id", "compliance_pct"),
        "SELECT agent_id, compliance_pct FROM (\n  SELECT agent_id, sum(met) + sum(breached)"
        " AS decided,\n         100.0 * sum(met) / (sum(met) + sum(breached)) AS compliance_pct\n"
        "  FROM {compliance_daily}\n"
        "  WHERE started_at >= {days_ago_6} AND agent_id IS NOT NULL\n) WHERE decided > 0",
        "Met / (met + breached) of the agent's clocks started in the last 7 local days.",
        op="lt",
        threshold=80,
    ),
    AlertQuery(
        "al_team_csat_7d",
        f"Team CSAT under {CSAT_TARGET_PCT} % over 7 days",
        "alert",
        ("team_id", "csat_pct"),
        "SELECT team_id, csat_pct FROM (\n"  # noqa: S608 (built from constants only)
        f"  SELECT team_id, count() AS ratings, 100.0 * {_SATISFIED} / count() AS csat_pct\n"
        "  FROM {csat}\n"
        "  WHERE rating IS NOT NULL AND team_id IS NOT NULL\n"
        "    AND survey_at >= dateadd('d', -14, {days_ago_6}) AND rated_at >= {days_ago_6}\n"
        f") WHERE ratings >= {CSAT_MIN_RATINGS}",
        "Ratings of 4 or 5 / ratings of the team's surveys rated in the last 7 local days"
        f" (teams with fewer than {CSAT_MIN_RATINGS} ratings give no row).",
        op="lt",
        threshold=CSAT_TARGET_PCT,
    ),
    AlertQuery(
        "al_unassigned",
        "Conversation unassigned longer than 5 minutes",
        "alert",
        ("conversation_id", "team_id", "waiting_min"),
        "SELECT conversation_id, team_id, max((now() - started_at) / 60000000.0) AS waiting_min\n"
        "FROM {clocks}\nWHERE open AND metric = 'assignment'",
        "Minutes the conversation has waited for an agent.",
        op="gt",
        threshold=5,
    ),
    AlertQuery(
        "al_monitor_stalled",
        "Monitor stalled",
        "alert",
        ("heartbeat_age_s",),
        "SELECT (now() - max(at)) / 1000000.0 AS heartbeat_age_s\nFROM {heartbeat}",
        "Seconds since any worker of the monitor last reported.",
        op="gt",
        threshold=60,
    ),
    AlertQuery(
        "al_dead_letters",
        "Dead letters rising",
        "alert",
        ("dead_letters",),
        "SELECT count() AS dead_letters\nFROM {deadletters}\n"
        "WHERE emitted_at > dateadd('m', -5, now())",
        "Inputs turned into dead letters in the last 5 minutes.",
        op="gt",
        threshold=10,
    ),
)
"""The alert rules: one row per alert instance, labels first and the judged value last.

Columns, by rule (the value, then when it fires):

* `al_urgent_breach`: labels `conversation_id`, `metric`, `agent_id`, `team_id`;
  `breached_clocks`, open breached clocks of a P1, VIP or demo/pricing lead; fires above 0.
* `al_team_ola_breach`: labels `team_id` (the team that owns the stint, the one to tell),
  `conversation_id`, `priority`; `breached_stints`, open breached `team_ownership` clocks of
  a P1 or P2 conversation; fires above 0.
* `al_window_closing`: labels `conversation_id`, `agent_id`, `team_id`; `minutes_left` of an
  unanswered VIP or hot-lead WhatsApp window; fires below 60.
* `al_team_compliance`: label `team_id`; `compliance_pct` of the team's clocks started today
  (teams with nothing decided give no row); fires below 90.
* `al_agent_compliance_7d`: label `agent_id`; `compliance_pct` of the clocks started in the
  last 7 local days, today included; fires below 80.
* `al_team_csat_7d`: label `team_id` (the team credited at the resolve); `csat_pct`, ratings of
  4 or 5 / ratings of the surveys rated since the local midnight 6 days ago (a re-rating
  counts once, as its latest rating), for teams with at least `CSAT_MIN_RATINGS` (5) of them;
  fires below `CSAT_TARGET_PCT` (80). (`survey_at` bounds the scan: a rating comes at most 14
  days after its survey was sent.)
* `al_unassigned`: labels `conversation_id`, `team_id`; `waiting_min`, minutes since the open
  `assignment` clock started; fires above 5.
* `al_monitor_stalled`: `heartbeat_age_s`, seconds since the newest heartbeat; fires above 60.
* `al_dead_letters`: `dead_letters` emitted in the last 5 minutes; fires above 10.
"""

#: Every query by name.
QUERIES: Final[Mapping[str, Query]] = {
    q.name: q for group in (WALLBOARD, SCORECARD, VARIABLES, TRENDS, ALERTS) for q in group
}


def query(name: str) -> Query:
    """Return the query called `name`.

    Args:
        name: a `Query.name`, e.g. `breach_feed` or `al_monitor_stalled`.

    Returns:
        The one query of that name, from any group (wallboard, scorecard, variables, trends
        or alerts).

    Raises:
        KeyError: No query has that name.
    """
    return QUERIES[name]
