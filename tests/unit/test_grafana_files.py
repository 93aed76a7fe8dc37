"""The generated Grafana files: up to date, well-formed, and valid against Grafana's own types."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from flows.grafana.alerting import RULES, alerting
from flows.grafana.dashboards import DATASOURCE_UID, dashboards
from flows.grafana.files import provisioning_files
from flows.reports.queries import ALERTS, QUERIES

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = ROOT / "dashboards" / "provisioning"
SCHEMAS = ROOT / "dashboards" / "schemas"


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


def errors(instance: Any, name: str) -> list[str]:
    validator = jsonschema.Draft7Validator(schema(name))
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def committed_dashboards() -> list[dict[str, Any]]:
    return [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((PROVISIONING / "dashboards").glob("*.json"))
    ]


def committed_alerting() -> dict[str, Any]:
    return yaml.safe_load((PROVISIONING / "alerting" / "slawatch.yaml").read_text(encoding="utf-8"))


def test_committed_files_equal_a_fresh_generation() -> None:
    """Regenerating the provisioning files changes nothing (`slawatch dashboards` fixes it)."""
    for relative, text in provisioning_files().items():
        path = PROVISIONING / relative
        assert path.exists(), f"{relative} is not committed"
        assert path.read_text(encoding="utf-8") == text, f"{relative} is stale"
    generated = {PROVISIONING / r for r in provisioning_files()}
    on_disk = set((PROVISIONING / "dashboards").glob("*")) | set(
        (PROVISIONING / "alerting").glob("*")
    )
    assert on_disk == generated, "a provisioning file is not generated (or no longer is)"


def test_dashboards_validate_against_grafanas_dashboard_type() -> None:
    """Every dashboard validates against the JSON Schema of @grafana/schema's Dashboard type."""
    for board in committed_dashboards():
        assert errors(board, "dashboard.json") == [], board["uid"]


def test_panel_options_validate_against_grafanas_panel_types() -> None:
    """Each panel's options and custom field config validate against its panel type's schema."""
    checked = 0
    for board in committed_dashboards():
        for panel in board["panels"]:
            kind = panel["type"]
            assert errors(panel["options"], f"panel-{kind}.json") == [], (
                board["uid"],
                panel["title"],
            )
            custom = panel["fieldConfig"]["defaults"].get("custom")
            if custom is not None and (SCHEMAS / f"field-{kind}.json").exists():
                assert errors(custom, f"field-{kind}.json") == [], (board["uid"], panel["title"])
            checked += 1
    assert checked >= 20


def test_the_schema_catches_what_grafana_would_refuse() -> None:
    """The dashboard schema rejects a numeric refresh and a string grid height (it can fail)."""
    board = copy.deepcopy(committed_dashboards()[0])
    board["refresh"] = 5
    board["panels"][0]["gridPos"]["h"] = "6"
    found = errors(board, "dashboard.json")
    assert any(e.startswith("refresh") for e in found)
    assert any(e.startswith("panels/0:") for e in found)
    stat = copy.deepcopy(board["panels"][0]["options"])
    stat["colorMode"] = "rainbow"
    assert errors(stat, "panel-stat.json")


def test_uids_are_unique_and_short() -> None:
    """Dashboard, rule and receiver uids are unique, at most 40 characters, and ids are absent."""
    uids = [b["uid"] for b in committed_dashboards()]
    data = committed_alerting()
    uids += [r["uid"] for g in data["groups"] for r in g["rules"]]
    uids += [r["uid"] for p in data["contactPoints"] for r in p["receivers"]]
    assert len(uids) == len(set(uids))
    assert all(0 < len(u) <= 40 and re.fullmatch(r"[a-z0-9-]+", u) for u in uids)
    assert all("id" not in b for b in committed_dashboards())


def test_every_panel_is_raw_sql_from_the_shared_module() -> None:
    """Each panel queries the `questdb` data source with raw SQL from flows.reports.queries."""
    rendered = {q.render() for q in QUERIES.values()}
    for board in committed_dashboards():
        assert board["refresh"] in ("5s", "1m", "")
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == DATASOURCE_UID
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == DATASOURCE_UID
                assert (target["editorMode"], target["rawQuery"]) == ("code", True)
                assert target["rawSql"] in rendered, panel["title"]
                assert "$__timeFilter" not in target["rawSql"]
                if panel["type"] == "timeseries":
                    assert target["format"] == "time_series"
                    assert re.search(r"\bAS time\b", target["rawSql"])
        for variable in board["templating"]["list"]:
            assert variable["datasource"]["uid"] == DATASOURCE_UID
            assert variable["query"] in rendered
    wall = next(b for b in committed_dashboards() if b["uid"] == "slawatch-wallboard")
    assert wall["refresh"] == "5s"
    tiles = [p for p in wall["panels"] if p["type"] == "stat" and p["gridPos"]["y"] == 0]
    assert 4 <= len(tiles) <= 6
    assert all(p["gridPos"]["h"] >= 6 for p in tiles)


def test_alerting_file_validates_and_follows_grafanas_rules() -> None:
    """The alerting file matches the provisioning format; rules use the data source, 10 s steps."""
    data = committed_alerting()
    assert errors(data, "alerting-provisioning.json") == []
    assert data == json.loads(json.dumps(alerting()))
    seconds = {"s": 1, "m": 60, "h": 3600}
    names = set()
    for group in data["groups"]:
        interval = int(group["interval"][:-1]) * seconds[group["interval"][-1]]
        assert interval % 10 == 0 and interval >= 10
        for rule in group["rules"]:
            names.add(rule["title"])
            refs = {d["refId"]: d for d in rule["data"]}
            assert rule["condition"] in refs
            sql = refs["A"]
            assert sql["datasourceUid"] == DATASOURCE_UID
            assert sql["model"]["format"] == "table"
            assert "$__timeFilter" not in sql["model"]["rawSql"]
            assert "$" not in json.dumps(rule["annotations"]), "Grafana expands $NAME from the env"
            assert refs["B"]["model"]["type"] == "reduce"
            assert refs["C"]["model"]["type"] == "threshold"
    assert names == {QUERIES[spec.query].title for spec in RULES}
    assert {spec.query for spec in RULES} == {q.name for q in ALERTS}
    urgent = next(g for g in data["groups"] if g["name"] == "slawatch-urgent")
    assert urgent["interval"] == "10s"


def test_contact_points_come_from_the_environment_and_warnings_are_muted_out_of_hours() -> None:
    """Webhook and e-mail addresses are env references; only warning routes have the mute timing."""
    data = committed_alerting()
    receivers = {r["type"]: r["settings"] for p in data["contactPoints"] for r in p["receivers"]}
    assert receivers["webhook"]["url"] == "${SLAWATCH_ALERT_WEBHOOK_URL}"
    assert receivers["email"]["addresses"] == "${SLAWATCH_ALERT_EMAILS}"
    mute = data["muteTimes"][0]["name"]
    for route in data["policies"][0]["routes"]:
        severity = route["object_matchers"][0][2]
        assert (mute in route.get("mute_time_intervals", [])) is (severity == "warning")
    critical = {s.query for s in RULES if s.severity == "critical"}
    assert {"al_urgent_breach", "al_monitor_stalled", "al_unassigned"} <= critical


def test_dashboards_render_with_another_zone_and_prefix() -> None:
    """A team elsewhere gets its own zone in every time bucket and its own table names."""
    boards = dashboards("acme_", "Europe/Berlin")
    text = json.dumps(boards)
    assert "Asia/Jakarta" not in text and "Europe/Berlin" in text
    assert "sla_clocks" not in text and "acme_clocks" in text


def test_analytics_doc_shows_every_shared_query_exactly() -> None:
    """docs/ANALYTICS.md shows each dashboard and alert query as the module renders it."""
    doc = (ROOT / "docs" / "ANALYTICS.md").read_text(encoding="utf-8")
    blocks = {}
    for block in re.findall(r"```sql\n(.*?)```", doc, re.DOTALL):
        name = re.match(r"--\s*query:\s*(\w+)\n", block)
        assert name is not None
        blocks[name.group(1)] = block[name.end() :].rstrip().removesuffix(";")
    for name, query in QUERIES.items():
        assert blocks.get(name) == query.render(), f"{name} in docs/ANALYTICS.md is stale"


def test_compose_gives_grafana_every_variable_the_alerting_file_reads() -> None:
    """Each `${VAR}` of the alerting and data source files reaches the Grafana container, from
    its environment or the env file (else it won't start)."""
    files = [
        *(PROVISIONING / "alerting").glob("*.yaml"),
        PROVISIONING / "datasources" / "questdb.yaml",
    ]
    wanted = {v for f in files for v in re.findall(r"\$\{(\w+)\}", f.read_text(encoding="utf-8"))}
    compose = yaml.safe_load((ROOT / "infra" / "compose.yaml").read_text(encoding="utf-8"))
    grafana = compose["services"]["grafana"]
    given = set(grafana.get("environment", {}))
    if {"path": "slawatch.env", "required": True} in grafana.get("env_file", []):
        example = (ROOT / "infra" / "slawatch.env.example").read_text(encoding="utf-8")
        given |= set(re.findall(r"^(\w+)=", example, re.MULTILINE))
    assert wanted
    assert wanted <= given
