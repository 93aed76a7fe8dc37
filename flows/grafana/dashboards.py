"""The three dashboards (live wallboard, agent scorecard, trends) as Grafana dashboard JSON.

Plain dictionaries in the classic dashboard model that file provisioning loads
(`schemaVersion` 41). Every target is raw SQL against the data source uid `questdb`
(`rawQuery`, `editorMode: code`), taken from `flows.reports.queries`, rendered with the team's
calendar zone. Dashboards have stable uids (at most 40 characters) and no `id`.
"""

from __future__ import annotations

from typing import Any, Final

from flows.connectors.questdb import DEFAULT_PREFIX
from flows.connectors.questdb.views import DEFAULT_TIMEZONE
from flows.reports.queries import QUERIES, Query

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
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for color, value in steps],
    }


#: Fewer is better: green, then yellow from `warn`, red from `bad`.
def _lower_is_better(warn: float, bad: float) -> Json:
    return _steps((GREEN, None), (YELLOW, warn), (RED, bad))


#: More is better (compliance %): red, then yellow from `warn`, green from `good`.
def _higher_is_better(warn: float, good: float) -> Json:
    return _steps((RED, None), (YELLOW, warn), (GREEN, good))


class _Builder:
    """Renders queries into targets and lays panels out left to right, top to bottom."""

    def __init__(self, prefix: str, timezone: str) -> None:
        self.prefix = prefix
        self.timezone = timezone
        self.panels: list[Json] = []
        self._x = 0
        self._y = 0
        self._row_h = 0

    def target(self, query: Query, ref: str = "A") -> Json:
        time_series = query.kind == "timeseries"
        return {
            "refId": ref,
            "datasource": DATASOURCE,
            "editorMode": "code",
            "rawQuery": True,
            "rawSql": query.render(self.prefix, self.timezone),
            "format": "time_series" if time_series else "table",
        }

    def variable(self, name: str, query_name: str) -> Json:
        query = QUERIES[query_name]
        sql = query.render(self.prefix, self.timezone)
        return {
            "name": name,
            "label": query.title,
            "description": query.description,
            "type": "query",
            "datasource": DATASOURCE,
            "query": sql,
            "refresh": 1,
            "sort": 0,
            "multi": False,
            "includeAll": False,
            "hide": 0,
            "options": [],
        }

    def place(self, w: int, h: int) -> Json:
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
    options: Json = {"showHeader": True, "cellHeight": "md", "frameIndex": 0}
    if sort_by is not None:
        options["sortBy"] = [{"displayName": sort_by, "desc": desc}]
    return options


def _colour_cells(field: str, thresholds: Json) -> Json:
    return {
        "matcher": {"id": "byName", "options": field},
        "properties": [
            {"id": "custom.cellOptions", "value": {"type": "color-background"}},
            {"id": "thresholds", "value": thresholds},
            {"id": "color", "value": {"mode": "thresholds"}},
        ],
    }


def _dashboard(
    uid: str, title: str, panels: list[Json], *, refresh: str, time_from: str, **extra: Any
) -> Json:
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
    return _dashboard(
        WALLBOARD_UID, "slawatch: live wallboard", b.panels, refresh="5s", time_from="now-24h"
    )


def scorecard(prefix: str = DEFAULT_PREFIX, timezone: str = DEFAULT_TIMEZONE) -> Json:
    """The weekly agent review: pick an agent and a (local, Monday-based) week."""
    b = _Builder(prefix, timezone)
    stat = _stat_options("value")
    b.panel("sc_conversations", 6, 5, options=stat)
    b.panel(
        "sc_compliance",
        6,
        5,
        title="Compliance (target 95 %)",
        thresholds=_higher_is_better(90, 95),
        options=_stat_options(),
    )
    b.panel("sc_contact_attempts", 6, 5, options=_table_options())
    b.panel("sc_qualification", 6, 5, options=_table_options())
    b.panel(
        "sc_compliance_by_metric",
        12,
        8,
        options=_table_options(),
        overrides=[_colour_cells("compliance_pct", _higher_is_better(90, 95))],
    )
    b.panel("sc_response_times", 12, 8, options=_table_options())
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
    b.panel("sc_breach_list", 24, 10, options=_table_options())
    return _dashboard(
        SCORECARD_UID,
        "slawatch: agent scorecard",
        b.panels,
        refresh="",
        time_from="now-7d",
        templating={"list": [b.variable("agent", "var_agent"), b.variable("week", "var_week")]},
    )


def trends(prefix: str = DEFAULT_PREFIX, timezone: str = DEFAULT_TIMEZONE) -> Json:
    """Thirty days of compliance against the 90 % and 95 % lines, and what drives it."""
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
        "tr_daily_volume", 12, 8, options=series, custom={"drawStyle": "bars", "fillOpacity": 60}
    )
    return _dashboard(TRENDS_UID, "slawatch: trends", b.panels, refresh="1m", time_from="now-30d")


def dashboards(prefix: str = DEFAULT_PREFIX, timezone: str = DEFAULT_TIMEZONE) -> list[Json]:
    """Return the three dashboards, wallboard first."""
    return [wallboard(prefix, timezone), scorecard(prefix, timezone), trends(prefix, timezone)]
