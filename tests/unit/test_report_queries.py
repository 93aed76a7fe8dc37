"""The shared SQL module: every query renders for any prefix and zone, and rejects bad input."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from flows.connectors.questdb import TableNames, create_table_statements
from flows.connectors.questdb.views import ViewNames, create_view_statements
from flows.reports.queries import (
    ALERTS,
    ALL_CHANNELS,
    QUERIES,
    SCORECARD,
    TRENDS,
    WALLBOARD,
    AlertQuery,
)
from flows.settings import Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_every_query_renders_completely(name: str) -> None:
    """A rendered query names only the prefix's tables and views and leaves no placeholder."""
    variables = {"agent": "a1", "week": "2026-11-23", "channel": ALL_CHANNELS}
    sql = QUERIES[name].render("acme_", "America/Sao_Paulo", variables)
    assert "{" not in sql and "$" not in sql
    known = set(TableNames("acme_").all()) | set(ViewNames("acme_").all())
    used = set(re.findall(r"\bFROM\s+(\w+)", sql))
    named = set(re.findall(r"(\w+)\s+AS\s+\(", sql))  # the query's own WITH clauses
    assert used <= known | named, used
    assert "'America/Sao_Paulo'" in sql or "tz" not in QUERIES[name].template


def test_grafana_variables_stay_for_grafana_unless_given() -> None:
    """Without values `$agent` and `$week` stay in the SQL for Grafana to substitute."""
    sql = QUERIES["sc_compliance"].render()
    assert "'$agent'" in sql and "'$week'" in sql


def test_every_dashboard_panel_filters_by_channel() -> None:
    """Each panel of the three dashboards reads `$channel`, except the data age and variables."""
    for query in (*WALLBOARD, *SCORECARD, *TRENDS):
        assert ("$channel" in query.template) is (query.name != "data_age"), query.name
    assert all("$channel" not in q.template for q in ALERTS)


def test_channels_are_pasted_as_grafana_pastes_a_multi_value_variable() -> None:
    """Chosen channels become a quoted list; All pastes the custom all value as it is."""
    sql = QUERIES["breached_now"].render(variables={"channel": ("telegram", "whatsapp")})
    assert "(channel IN ('telegram','whatsapp') OR '__all' IN ('telegram','whatsapp'))" in sql
    sql = QUERIES["breached_now"].render(variables={"channel": ALL_CHANNELS})
    assert "(channel IN ('__all') OR '__all' IN ('__all'))" in sql


@pytest.mark.parametrize("bad", [("tele'gram",), ("a\\b", "whatsapp"), ()])
def test_a_channel_that_cannot_be_pasted_is_refused(bad: tuple[str, ...]) -> None:
    """A channel with a quote or backslash, or no channel at all, is refused with a reason."""
    with pytest.raises(ValueError, match="channel"):
        QUERIES["breached_now"].render(variables={"channel": bad})


@pytest.mark.parametrize("bad", ["a1' OR '1'='1", "a\\1"])
def test_a_variable_with_a_quote_is_refused(bad: str) -> None:
    """A variable value that could break out of its SQL string is refused."""
    with pytest.raises(ValueError, match="quote"):
        QUERIES["sc_compliance"].render(variables={"agent": bad, "week": "2026-11-23"})


@pytest.mark.parametrize("zone", ["Mars/Olympus", "UTC'; DROP TABLE x; --"])
def test_an_unknown_zone_is_refused(zone: str) -> None:
    """Only IANA zone names reach the SQL."""
    with pytest.raises(ValueError, match="IANA"):
        QUERIES["compliance_today"].render(timezone=zone)
    with pytest.raises(ValueError, match="IANA"):
        create_view_statements(TableNames("x_"), zone)


def test_views_are_created_after_the_tables_they_read() -> None:
    """The writer runs the view statements after its tables, each over `<prefix>clocks`."""
    tables = [name for name, _ in create_table_statements(TableNames("p_"))]
    views = create_view_statements(TableNames("p_"), "Asia/Jakarta")
    assert [name for name, _ in views] == list(ViewNames("p_").all())
    assert "p_clocks" in tables
    for _, sql in views:
        assert "FROM p_clocks" in sql
        assert "ALIGN TO CALENDAR TIME ZONE 'Asia/Jakarta'" in sql


@pytest.mark.parametrize(
    ("op", "threshold", "value", "fires"),
    [
        ("gt", 5, 6.0, True),
        ("gt", 5, 5.0, False),
        ("lt", 90, 89.9, True),
        ("lt", 90, 90.0, False),
        ("gt", 0, None, False),
        ("lt", 90, float("nan"), False),
    ],
)
def test_alert_threshold_is_strict_and_ignores_missing_values(
    op: str, threshold: float, value: float | None, fires: bool
) -> None:
    """Thresholds compare strictly, as Grafana's gt/lt; null and NaN never fire."""
    query = AlertQuery("x", "x", "alert", ("v",), "SELECT 1", "x", op=op, threshold=threshold)
    assert query.fires(value) is fires


def test_alert_queries_end_with_their_number() -> None:
    """Each alert query's last column is its one number; the others become labels."""
    for query in ALERTS:
        assert re.search(rf"\bAS {query.columns[-1]}\b", query.render()), query.name
        assert "time" not in query.columns


def test_the_report_zone_setting_refuses_an_unknown_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """SLAWATCH_REPORT_TIMEZONE must be an IANA zone; the default is the team's Asia/Jakarta."""
    monkeypatch.delenv("SLAWATCH_REPORT_TIMEZONE", raising=False)
    assert Settings().report_timezone == "Asia/Jakarta"
    assert Settings(report_timezone="Europe/Berlin").report_timezone == "Europe/Berlin"
    with pytest.raises(ValidationError, match="IANA"):
        Settings(report_timezone="Mars/Olympus")
