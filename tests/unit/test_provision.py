"""`slawatch provision` against a recording stand-in of Grafana's HTTP API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from grafana_client import GrafanaApi

from flows.cli import main
from flows.grafana.alerting import RULES
from flows.grafana.dashboards import dashboards
from flows.grafana.provision import GrafanaError, provision
from tests.grafanakit import RecordingGrafana

pytestmark = pytest.mark.unit

TOKEN = "glsa_test"  # noqa: S105 - the stand-in's own token
ENV = {
    "SLAWATCH_ALERT_WEBHOOK_URL": "https://hooks.example.com/slawatch",
    "SLAWATCH_ALERT_EMAILS": "oncall@example.com",
}


@pytest.fixture
def grafana() -> Iterator[RecordingGrafana]:
    """A fresh recording stand-in of Grafana."""
    with RecordingGrafana(TOKEN) as stand_in:
        yield stand_in


def api(grafana: RecordingGrafana) -> GrafanaApi:
    return GrafanaApi.from_url(grafana.url, credential=TOKEN)


def test_first_run_creates_everything_through_uid_endpoints(grafana: RecordingGrafana) -> None:
    """A first run creates the data source, folder, dashboards, rule groups and alerting."""
    report = provision(api(grafana), env=ENV)
    writes = grafana.writes()
    assert ("POST", "/api/datasources") in writes
    assert ("POST", "/api/folders") in writes
    assert writes.count(("POST", "/api/dashboards/db")) == 3
    assert ("PUT", "/api/v1/provisioning/folder/slawatch/rule-groups/slawatch-urgent") in writes
    assert ("PUT", "/api/v1/provisioning/folder/slawatch/rule-groups/slawatch-compliance") in writes
    assert writes.count(("POST", "/api/v1/provisioning/contact-points")) == 2
    assert ("POST", "/api/v1/provisioning/mute-timings") in writes
    assert ("PUT", "/api/v1/provisioning/policies") in writes
    assert not any("/api/datasources/" in p and p.split("/")[-1].isdigit() for _, p in writes)
    assert set(grafana.dashboards) == {b["uid"] for b in dashboards()}
    rules = [r for g in grafana.rule_groups.values() for r in g["rules"]]
    assert sorted(r["uid"] for r in rules) == sorted(
        s.query.replace("_", "-").replace("al-", "slawatch-") for s in RULES
    )
    assert (
        grafana.contact_points["slawatch-webhook"]["settings"]["url"]
        == ENV["SLAWATCH_ALERT_WEBHOOK_URL"]
    )
    assert grafana.policies["receiver"] == "slawatch-oncall"
    # Grafana always has a policy tree (its default one): it is replaced, not created.
    assert report.updated == ["notification policy"] and report.unchanged == []


def test_second_run_sends_no_change(grafana: RecordingGrafana) -> None:
    """Run twice: the second run only reads, and reports everything unchanged."""
    provision(api(grafana), env=ENV)
    before = len(grafana.requests)
    report = provision(api(grafana), env=ENV)
    second = grafana.requests[before:]
    assert [r for r in second if r[0] != "GET"] == []
    assert report.created == [] and report.updated == []
    assert len(report.unchanged) >= 10


def test_a_changed_object_is_updated_alone(grafana: RecordingGrafana) -> None:
    """When someone edits a dashboard and a mute timing, only those two are written back."""
    provision(api(grafana), env=ENV)
    grafana.dashboards["slawatch-trends"]["refresh"] = "1h"
    grafana.mute_timings["slawatch-outside-business-hours"]["time_intervals"] = []
    before = len(grafana.requests)
    report = provision(api(grafana), env=ENV)
    writes = [(m, p) for m, p, _ in grafana.requests[before:] if m != "GET"]
    assert writes == [
        ("POST", "/api/dashboards/db"),
        ("PUT", "/api/v1/provisioning/mute-timings/slawatch-outside-business-hours"),
    ]
    assert report.updated == [
        "dashboard slawatch-trends",
        "mute timing slawatch-outside-business-hours",
    ]
    assert grafana.dashboards["slawatch-trends"]["refresh"] == "1m"


def test_a_wrong_token_is_one_clear_error(grafana: RecordingGrafana) -> None:
    """A refused token ends with one line saying Grafana refused, and no traceback."""
    result = CliRunner(env=ENV).invoke(
        main, ["provision", "--url", grafana.url, "--token", "wrong"]
    )
    assert result.exit_code == 1
    assert "Grafana refused a request (401)" in result.output
    assert "Traceback" not in result.output
    assert grafana.writes() == []


def test_provision_without_contact_addresses_is_refused(grafana: RecordingGrafana) -> None:
    """Without a webhook or e-mail address nothing is sent and the error says what to set."""
    with pytest.raises(GrafanaError, match="SLAWATCH_ALERT_WEBHOOK_URL"):
        provision(api(grafana), env={})
    assert grafana.requests == []


def test_cli_provision_reports_what_it_did(grafana: RecordingGrafana) -> None:
    """`slawatch provision` prints what it created, then nothing to do on the next run."""
    runner = CliRunner(env=ENV)
    first = runner.invoke(main, ["provision", "--url", grafana.url, "--token", TOKEN])
    assert first.exit_code == 0, first.output
    assert "created   dashboard slawatch-wallboard" in first.output
    second = runner.invoke(main, ["provision", "--url", grafana.url, "--token", TOKEN])
    assert second.exit_code == 0
    assert "0 created, 0 updated" in second.output
