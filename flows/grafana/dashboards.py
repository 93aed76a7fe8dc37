"""The three dashboards (live wallboard, agent scorecard, trends) as Grafana dashboard JSON.

Plain dictionaries in the classic dashboard model that file provisioning loads
(`schemaVersion` 41). Every target is raw SQL against the data source uid `questdb`
(`rawQuery`, `editorMode: code`), taken from `flows.reports.queries`, rendered with the team's
calendar zone. Dashboards have stable uids (at most 40 characters) and no `id`.

The builders are pure: the same prefix and zone give the same JSON, byte for byte once
written by `flows.grafana.files`, which is how `slawatch dashboards --check` finds the
committed files stale. Panel titles, descriptions and units come from the queries; only the
layout, thresholds and display options are decided here. Thresholds are the SLA targets the
teams agreed on (compliance 95 %, yellow from 90 %; first response 3 min) and match the
terminal wallboard's (`flows.reports.top.TILES`).
"""

from __future__ import annotations

from typing import Any, Final

from flows.connectors.questdb import DEFAULT_PREFIX
from flows.connectors.questdb.views import DEFAULT_TIMEZONE
from flows.reports.queries import ALL_CHANNELS, CSAT_TARGET_PCT, QUERIES, Query

__all__ = [
    "DATASOURCE",
    "DATASOURCE_UID",
    "WALLBOARD_UID",
    "dashboards",
    "scorecard",
    "trends",
    "wallboard",
]

Json = dict[str, Any]

DATASOURCE_UID: Final = "questdb"
DATASOURCE: Final[Json] = {"type": "grafana-postgresql-datasource", "uid": DATASOURCE_UID}
WALLBOARD_UID: Final = "slawatch-wallboard"
SCORECARD_UID: Final = "slawatch-scorecard"
TRENDS_UID: Final = "slawatch-trends"
SCHEMA_VERSION: Final = 41

GREEN: Final = "green"
YELLOW: Final = "yellow"
RED: Final = "red"


def _steps(*steps: tuple[str, float | None]) -> Json:
    """Return absolute thresholds: each `(colour, from_value)`; the first's value is None.

    A value takes the colour of the last step whose `from_value` it reaches (inclusive), as
    Grafana evaluates absolute thresholds.
    """
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for color, value in steps],
    }


def _lower_is_better(warn: float, bad: float) -> Json:
    """Fewer is better: green, then yellow from `warn`, red from `bad` (`warn` < `bad`)."""
    return _steps((GREEN, None), (YELLOW, warn), (RED, bad))


def _higher_is_better(warn: float, good: float) -> Json:
    """More is better (compliance %): red, then yellow from `warn`, green from `good`."""
    return _steps((RED, None), (YELLOW, warn), (GREEN, good))


class _Builder:
    """Renders queries into targets and lays panels out left to right, top to bottom.

    One builder makes one dashboard: panel ids count from 1 in the order panels are added,
    and the grid is Grafana's, 24 columns wide.

    Args:
        prefix: the monitor's table prefix, rendered into every query.
        timezone: the team's IANA zone, rendered into every query.
    """

    def __init__(self, prefix: str, timezone: str) -> None:
        self.prefix = prefix
        self.timezone = timezone
        self.panels: list[Json] = []
        self._x = 0
        self._y = 0
        self._row_h = 0

    def target(self, query: Query, ref: str = "A") -> Json:
        """Return a raw-SQL target for `query` on the QuestDB data source.

        Time-series panels get `format: time_series` (Grafana reads the `time` column as the
        x axis); every other panel reads a table.

        Args:
            query: the panel's query, rendered with this builder's prefix and zone.
            ref: the target's `refId`; panels here have one target, `A`.
        """
        time_series = query.kind == "timeseries"
        return {
            "refId": ref,
            "datasource": DATASOURCE,
            "editorMode": "code",
            "rawQuery": True,
            "rawSql": query.render(self.prefix, self.timezone),
            "format": "time_series" if time_series else "table",
        }

    def variable(self, name: str, query_name: str, *, all_value: str | None = None) -> Json:
        """Return a dashboard variable `$name` whose options a query lists.

        The options are read again each time the dashboard loads (`refresh: 1`), in the
        query's own order. Without `all_value` it takes one value and has no "All" option.
        With it, it takes several values (Grafana pastes them quoted and comma-separated into
        the SQL) and has "All", chosen by default, which pastes `all_value` as it is.

        Args:
            name: the variable's name, used as `$name` in the panels' SQL.
            query_name: the query listing its options (first column).
            all_value: the custom all value of a multi-value variable with "All".

        Raises:
            KeyError: No query is called `query_name`.
        """
        query = QUERIES[query_name]
        sql = query.render(self.prefix, self.timezone)
        variable: Json = {
            "name": name,
            "label": query.title,
            "description": query.description,
            "type": "query",
            "datasource": DATASOURCE,
            "query": sql,
            "refresh": 1,
            "sort": 0,
            "multi": all_value is not None,
            "includeAll": all_value is not None,
            "hide": 0,
            "options": [],
        }
        if all_value is not None:
            variable["allValue"] = all_value
            variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
        return variable

    def channel(self) -> Json:
        """Return the `$channel` variable every dashboard filters its panels by (default All)."""
        return self.variable("channel", "var_channel", all_value=ALL_CHANNELS)

    def place(self, w: int, h: int) -> Json:
        """Return the grid position of the next `w` x `h` panel, reading order.

        A panel that does not fit in what is left of the row starts a new row below the
        tallest panel of the current one.
        """
        if self._x + w > 24:
            self._x = 0
            self._y += self._row_h
            self._row_h = 0
        pos = {"x": self._x, "y": self._y, "w": w, "h": h}
        self._x += w
        self._row_h = max(self._row_h, h)
        return pos

    def panel(
        self,
        name: str,
        w: int,
        h: int,
        *,
        title: str | None = None,
        thresholds: Json | None = None,
        options: Json | None = None,
        overrides: list[Json] | None = None,
        custom: Json | None = None,
    ) -> Json:
        """Add the panel of query `name`, placed next, and return it.

        The panel's type is the query's `kind`, its description and unit the query's.

        Args:
            name: the query's name in `flows.reports.queries.QUERIES`.
            w: width in grid columns (of 24).
            h: height in grid rows.
            title: a title other than the query's (for instance one naming the target).
            thresholds: colour steps of the main value; colours it by threshold when given.
            options: the panel type's options.
            overrides: per-field overrides (for instance coloured cells).
            custom: the field config's `custom` block (draw style, threshold lines).

        Raises:
            KeyError: No query is called `name`.
        """
        query = QUERIES[name]
        defaults: Json = {"unit": query.unit}
        if thresholds is not None:
            defaults["thresholds"] = thresholds
            defaults["color"] = {"mode": "thresholds"}
        if custom is not None:
            defaults["custom"] = custom
        panel: Json = {
            "id": len(self.panels) + 1,
            "type": query.kind,
            "title": title or query.title,
            "description": query.description,
            "datasource": DATASOURCE,
            "gridPos": self.place(w, h),
            "targets": [self.target(query)],
            "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
            "options": options or {},
        }
        self.panels.append(panel)
        return panel


def _stat_options(color_mode: str = "background") -> Json:
    """Return a stat panel's options: one big value, the last non-null, no sparkline."""
    return {
        "colorMode": color_mode,
        "graphMode": "none",
        "justifyMode": "center",
        "textMode": "value",
        "orientation": "auto",
        "wideLayout": True,
        "showPercentChange": False,
        "percentChangeColorMode": "standard",
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    }


def _table_options(sort_by: str | None = None, desc: bool = False) -> Json:
    """Return a table panel's options, sorted by `sort_by` if given (else in query order)."""
    options: Json = {"showHeader": True, "cellHeight": "md", "frameIndex": 0}
    if sort_by is not None:
        options["sortBy"] = [{"displayName": sort_by, "desc": desc}]
    return options


def _colour_cells(field: str, thresholds: Json) -> Json:
    """Return an override that colours the background of `field`'s cells by `thresholds`."""
    return {
        "matcher": {"id": "byName", "options": field},
        "properties": [
            {"id": "custom.cellOptions", "value": {"type": "color-background"}},
            {"id": "thresholds", "value": thresholds},
            {"id": "color", "value": {"mode": "thresholds"}},
        ],
    }


def _units(unit: str, *fields: str) -> list[Json]:
    """Return overrides that give each of `fields` the Grafana unit `unit` (`percent`, `s`)."""
    return [
        {
            "matcher": {"id": "byName", "options": field},
            "properties": [{"id": "unit", "value": unit}],
        }
        for field in fields
    ]


#: CSAT % cells: green from the target, yellow from 10 points under it, red below.
_CSAT_STEPS: Final = _higher_is_better(CSAT_TARGET_PCT - 10, CSAT_TARGET_PCT)
#: The per-cent and seconds columns of the two satisfaction tables (their other columns are counts).
_SATISFACTION_UNITS: Final = [
    *_units("percent", "response_rate_pct", "csat_pct", "fcr_pct", "compliance_pct"),
    *_units("s", "aht_s"),
]


def _dashboard(
    uid: str, title: str, panels: list[Json], *, refresh: str, time_from: str, **extra: Any
) -> Json:
    """Return a dashboard model around `panels`: read-only, tagged `slawatch`, browser time.

    Args:
        uid: the stable uid the dashboard's URL uses.
        title: the title shown in Grafana.
        panels: the panels, from one `_Builder`.
        refresh: the auto-refresh interval (`5s`, `1m`), or `""` for none.
        time_from: the time picker's start (`now-24h`); the queries ignore it.
        **extra: top-level keys to set or replace (for instance `templating`).
    """
    model: Json = {
        "uid": uid,
        "title": title,
        "tags": ["slawatch"],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 0,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": []},
        "panels": panels,
    }
    model.update(extra)
    return model


def wallboard(prefix: str = DEFAULT_PREFIX, timezone: str = DEFAULT_TIMEZONE) -> Json:
    """The live wallboard: six big tiles, the running clocks, agents, breaches and leads.

    Meant for a TV in kiosk mode (`/d/slawatch-wallboard?kiosk&autofitpanels`), refreshed
    every 5 s (Grafana's default minimum).

    The count tiles are yellow from their first clock (target 0) and red from 5 at risk, 3
    breached or 3 unassigned; open conversations yellow from 60, red from 100. Compliance is
    green from 95 %, yellow from 90 %; the median first response yellow from 2 min and red
    from 3 min; data age yellow from 30 s and red from 60 s (the stall alert's threshold).
    Time-left cells are red once the deadline has passed.

    Its variable `$channel` (several channels, or All, the default) keeps the clocks of the
    chosen channels in every panel but the data age; the running clocks and the leads show
    each clock's channel.

    Layout, top to bottom: the six tiles in one row (4 columns each); the running clocks (12),
    the agents' bar gauge (8) and the data age tile (4); then today's breach feed (12), the
    WhatsApp windows closing (6) and the leads short of attempts (6); then the team clocks
    (OLA stints running now: team, conversation, stint, time left; 18) and the hand-overs
    waiting tile (6: stints past their OLA warning or breached, yellow from 1, red from 3). The
    agents' bars are yellow from 15 open conversations and red from 20.

    Args:
        prefix: the monitor's table prefix.
        timezone: the team's IANA zone, which decides when "today" starts.

    Returns:
        The dashboard model, uid `slawatch-wallboard`.
    """
    b = _Builder(prefix, timezone)
    stat = _stat_options()
    b.panel("open_conversations", 4, 6, thresholds=_lower_is_better(60, 100), options=stat)
    b.panel(
        "at_risk", 4, 6, title="At risk (target 0)", thresholds=_lower_is_better(1, 5), options=stat
    )
    b.panel(
        "breached_now",
        4,
        6,
        title="Breached now (target 0)",
        thresholds=_lower_is_better(1, 3),
        options=stat,
    )
    b.panel(
        "unassigned_now",
        4,
        6,
        title="Unassigned waiting (target 0)",
        thresholds=_lower_is_better(1, 3),
        options=stat,
    )
    b.panel(
        "compliance_today",
        4,
        6,
        title="Compliance today (target 95 %)",
        thresholds=_higher_is_better(90, 95),
        options=stat,
    )
    b.panel(
        "median_first_response_today",
        4,
        6,
        title="Median first response today (target 3 min)",
        thresholds=_lower_is_better(120, 180),
        options=stat,
    )
    left = _steps((RED, None), (YELLOW, 0), (GREEN, 600))
    paused_text = {
        "matcher": {"id": "byName", "options": "state"},
        "properties": [
            {"id": "custom.cellOptions", "value": {"type": "color-text"}},
            {
                "id": "mappings",
                "value": [
                    {
                        "type": "value",
                        "options": {
                            "paused": {"text": "paused", "color": "blue", "index": 0},
                            "breached": {"text": "breached", "color": RED, "index": 1},
                            "running": {"text": "running", "color": GREEN, "index": 2},
                        },
                    }
                ],
            },
        ],
    }
    b.panel(
        "running_clocks",
        12,
        12,
        options=_table_options(),
        overrides=[_colour_cells("seconds_left", left), paused_text],
    )
    b.panel(
        "agent_load",
        8,
        12,
        options={
            "displayMode": "gradient",
            "orientation": "horizontal",
            "showUnfilled": True,
            "valueMode": "color",
            "namePlacement": "auto",
            "sizing": "auto",
            "minVizHeight": 16,
            "minVizWidth": 8,
            "maxVizHeight": 300,
            "legend": {
                "showLegend": False,
                "displayMode": "list",
                "placement": "bottom",
                "calcs": [],
            },
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True},
        },
        thresholds=_lower_is_better(15, 20),
    )
    b.panel(
        "data_age",
        4,
        12,
        title="Data age (red when the monitor stalls)",
        thresholds=_lower_is_better(30, 60),
        options=stat,
    )
    b.panel("breach_feed", 12, 10, options=_table_options())
    b.panel(
        "windows_closing",
        6,
        10,
        options=_table_options(),
        overrides=[_colour_cells("seconds_left", _steps((RED, None), (YELLOW, 1800)))],
    )
    b.panel(
        "leads_short",
        6,
        10,
        options=_table_options(),
        overrides=[
            _colour_cells("seconds_left", _steps((RED, None), (YELLOW, 3600), (GREEN, 14400)))
        ],
    )
    state_text = {
        "matcher": {"id": "byName", "options": "state"},
        "properties": [
            {"id": "custom.cellOptions", "value": {"type": "color-text"}},
            {
                "id": "mappings",
                "value": [
                    {
                        "type": "value",
                        "options": {
                            "paused": {"text": "paused", "color": "blue", "index": 0},
                            "breached": {"text": "breached", "color": RED, "index": 1},
                            "warning": {"text": "warning", "color": YELLOW, "index": 2},
                            "running": {"text": "running", "color": GREEN, "index": 3},
                        },
                    }
                ],
            },
        ],
    }
    b.panel(
        "team_clocks",
        18,
        10,
        options=_table_options(),
        overrides=[_colour_cells("seconds_left", left), state_text],
    )
    b.panel(
        "handovers_waiting",
        6,
        10,
        title="Hand-overs waiting (team OLA warned, target 0)",
        thresholds=_lower_is_better(1, 3),
        options=stat,
    )
    return _dashboard(
        WALLBOARD_UID,
        "slawatch: live wallboard",
        b.panels,
        refresh="5s",
        time_from="now-24h",
        templating={"list": [b.channel()]},
    )


def scorecard(prefix: str = DEFAULT_PREFIX, timezone: str = DEFAULT_TIMEZONE) -> Json:
    """The weekly agent review: pick an agent and a (local, Monday-based) week.

    Its variables `$agent` and `$week` are filled by the `var_agent` and `var_week` queries;
    the panels read the clocks started in that week whose latest record names the agent, of
    the channels `$channel` chooses (All by default). It does not refresh by itself.

    Layout: conversations, compliance (coloured against 90 % / 95 %), conversion (won /
    resolved) and contact attempts made vs required in the first row; qualified /
    disqualified / nurture / in progress, compliance per metric (cells coloured the same way)
    and response times; daily chats (bars) and breaches by cause; the OLA per team (every
    agent's stints of the week, compliance coloured as above, median budget used) and the share
    of the resolution promise each team used (bars yellow from 50 %, red from 100 %: the team
    alone used it all); satisfaction and effort of the agent's week (surveys sent and rated,
    response rate, CSAT %, mean rating, AHT, first-contact resolution %; 10 wide) beside the
    same per team with the team's compliance (every agent; 14 wide), CSAT cells green from
    `CSAT_TARGET_PCT`, yellow from 10 points under it, compliance cells as above; then every
    breach, full width.

    Args:
        prefix: the monitor's table prefix.
        timezone: the team's IANA zone, which decides the weeks' bounds.

    Returns:
        The dashboard model, uid `slawatch-scorecard`.
    """
    b = _Builder(prefix, timezone)
    stat = _stat_options("value")
    b.panel("sc_conversations", 4, 5, options=stat)
    b.panel(
        "sc_compliance",
        4,
        5,
        title="Compliance (target 95 %)",
        thresholds=_higher_is_better(90, 95),
        options=_stat_options(),
    )
    b.panel("sc_conversion", 4, 5, options=_stat_options())
    b.panel("sc_contact_attempts", 12, 5, options=_table_options())
    b.panel("sc_qualification", 8, 8, options=_table_options())
    b.panel(
        "sc_compliance_by_metric",
        8,
        8,
        options=_table_options(),
        overrides=[_colour_cells("compliance_pct", _higher_is_better(90, 95))],
    )
    b.panel("sc_response_times", 8, 8, options=_table_options())
    b.panel(
        "sc_daily_volume",
        12,
        8,
        options={
            "legend": {
                "showLegend": False,
                "displayMode": "list",
                "placement": "bottom",
                "calcs": [],
            },
            "tooltip": {"mode": "single", "sort": "none"},
        },
        custom={"drawStyle": "bars", "fillOpacity": 60},
    )
    b.panel(
        "sc_breaches_by_cause",
        12,
        8,
        options={
            "orientation": "horizontal",
            "xField": "cause",
            "showValue": "auto",
            "stacking": "none",
            "groupWidth": 0.7,
            "barWidth": 0.9,
            "barRadius": 0,
            "xTickLabelRotation": 0,
            "xTickLabelSpacing": 0,
            "xTickLabelMaxLength": 0,
            "fullHighlight": False,
            "legend": {
                "showLegend": False,
                "displayMode": "list",
                "placement": "bottom",
                "calcs": [],
            },
            "tooltip": {"mode": "single", "sort": "none"},
        },
    )
    b.panel(
        "sc_ola_by_team",
        14,
        8,
        options=_table_options(),
        overrides=[_colour_cells("compliance_pct", _higher_is_better(90, 95))],
    )
    b.panel(
        "sc_ola_budget",
        10,
        8,
        options={
            "displayMode": "gradient",
            "orientation": "horizontal",
            "showUnfilled": True,
            "valueMode": "color",
            "namePlacement": "auto",
            "sizing": "auto",
            "minVizHeight": 16,
            "minVizWidth": 8,
            "maxVizHeight": 300,
            "legend": {
                "showLegend": False,
                "displayMode": "list",
                "placement": "bottom",
                "calcs": [],
            },
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True},
        },
        thresholds=_lower_is_better(50, 100),
    )
    b.panel(
        "sc_satisfaction",
        10,
        6,
        options=_table_options(),
        overrides=[*_SATISFACTION_UNITS, _colour_cells("csat_pct", _CSAT_STEPS)],
    )
    b.panel(
        "sc_satisfaction_by_team",
        14,
        6,
        options=_table_options(),
        overrides=[
            *_SATISFACTION_UNITS,
            _colour_cells("csat_pct", _CSAT_STEPS),
            _colour_cells("compliance_pct", _higher_is_better(90, 95)),
        ],
    )
    b.panel("sc_breach_list", 24, 10, options=_table_options())
    return _dashboard(
        SCORECARD_UID,
        "slawatch: agent scorecard",
        b.panels,
        refresh="",
        time_from="now-7d",
        templating={
            "list": [b.variable("agent", "var_agent"), b.variable("week", "var_week"), b.channel()]
        },
    )


def trends(prefix: str = DEFAULT_PREFIX, timezone: str = DEFAULT_TIMEZONE) -> Json:
    """Thirty days of compliance against the 90 % and 95 % lines, and what drives it.

    Compliance per day, per lead source, per local weekday and hour the clock started, breach
    causes per week, conversion per compliance tier of the resolved cycles, daily chat volume,
    and the OLA compliance per owning team per day (one line per team, against the same 90 %
    and 95 % lines); then satisfaction: CSAT by what happened in the rated cycle (met, breached
    and recovered, breached and not; 10 wide, CSAT cells coloured against `CSAT_TARGET_PCT`)
    and CSAT per team per day (one line per team against the target line; 14 wide). Refreshed
    every minute. `$channel` (All by default) keeps the chosen channels.

    The daily compliance series draws the 90 % and 95 % lines and shades the bands they bound
    (red, yellow, green); the weekday and hour bars are coloured by the same steps, so a bar
    under 90 % is red whatever its neighbours.

    Args:
        prefix: the monitor's table prefix.
        timezone: the team's IANA zone, which decides the days.

    Returns:
        The dashboard model, uid `slawatch-trends`.
    """
    b = _Builder(prefix, timezone)
    lines = _steps((RED, None), (YELLOW, 90), (GREEN, 95))
    series = {
        "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom", "calcs": []},
        "tooltip": {"mode": "single", "sort": "none"},
    }
    b.panel(
        "tr_daily_compliance",
        16,
        9,
        options=series,
        thresholds=lines,
        custom={"thresholdsStyle": {"mode": "line+area"}, "lineWidth": 2},
    )
    b.panel(
        "tr_by_lead_source",
        8,
        9,
        thresholds=_higher_is_better(90, 95),
        options={
            "displayMode": "basic",
            "orientation": "horizontal",
            "showUnfilled": True,
            "valueMode": "color",
            "namePlacement": "auto",
            "sizing": "auto",
            "minVizHeight": 16,
            "minVizWidth": 8,
            "maxVizHeight": 300,
            "legend": {
                "showLegend": False,
                "displayMode": "list",
                "placement": "bottom",
                "calcs": [],
            },
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True},
        },
    )
    bars = {
        "orientation": "vertical",
        "showValue": "auto",
        "stacking": "none",
        "groupWidth": 0.7,
        "barWidth": 0.9,
        "barRadius": 0,
        "xTickLabelRotation": 0,
        "xTickLabelSpacing": 0,
        "xTickLabelMaxLength": 0,
        "fullHighlight": False,
        "legend": {"showLegend": False, "displayMode": "list", "placement": "bottom", "calcs": []},
        "tooltip": {"mode": "single", "sort": "none"},
    }
    b.panel("tr_by_weekday", 12, 8, options={**bars, "xField": "weekday"}, thresholds=lines)
    b.panel("tr_by_hour", 12, 8, options={**bars, "xField": "hour"}, thresholds=lines)
    b.panel("tr_causes_by_week", 12, 8, options=_table_options())
    b.panel(
        "tr_tier_conversion",
        12,
        8,
        options={**bars, "xField": "tier"},
        # The cycle count is context for the tooltip, not a second bar on a per-cent axis.
        overrides=[
            {
                "matcher": {"id": "byName", "options": "resolved"},
                "properties": [
                    {"id": "unit", "value": "none"},
                    {
                        "id": "custom.hideFrom",
                        "value": {"viz": True, "legend": True, "tooltip": False},
                    },
                ],
            }
        ],
    )
    b.panel(
        "tr_daily_volume", 24, 8, options=series, custom={"drawStyle": "bars", "fillOpacity": 60}
    )
    teams = b.panel(
        "tr_ola_by_team",
        24,
        9,
        options=series,
        thresholds=lines,
        custom={"thresholdsStyle": {"mode": "line"}, "lineWidth": 2},
    )
    # One colour per team: the thresholds only draw the 90 % and 95 % lines here.
    teams["fieldConfig"]["defaults"]["color"] = {"mode": "palette-classic-by-name"}
    b.panel(
        "tr_csat_by_outcome",
        10,
        8,
        options=_table_options(),
        overrides=[
            *_units("percent", "csat_pct"),
            _colour_cells("csat_pct", _CSAT_STEPS),
        ],
    )
    csat = b.panel(
        "tr_csat_by_team",
        14,
        8,
        options=series,
        thresholds=_steps((RED, None), (GREEN, CSAT_TARGET_PCT)),
        custom={"thresholdsStyle": {"mode": "line"}, "lineWidth": 2},
    )
    # One colour per team, as the OLA lines; the threshold draws the CSAT target line.
    csat["fieldConfig"]["defaults"]["color"] = {"mode": "palette-classic-by-name"}
    return _dashboard(
        TRENDS_UID,
        "slawatch: trends",
        b.panels,
        refresh="1m",
        time_from="now-30d",
        templating={"list": [b.channel()]},
    )


def dashboards(prefix: str = DEFAULT_PREFIX, timezone: str = DEFAULT_TIMEZONE) -> list[Json]:
    """Return the three dashboards, wallboard first.

    Args:
        prefix: the monitor's table prefix.
        timezone: the team's IANA calendar zone.

    Returns:
        The wallboard, the scorecard and the trends, as dashboard models.
    """
    return [wallboard(prefix, timezone), scorecard(prefix, timezone), trends(prefix, timezone)]
