"""The "monitor not advancing" alert's query against the real QuestDB heartbeat table."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import yaml

from flows.connectors.questdb import Heartbeat, QuestDBWriter
from flows.connectors.questdb.views import ViewNames
from flows.devstack import Endpoints
from flows.grafana.files import provisioning_files
from flows.grafana.health import NOT_ADVANCING
from tests.conftest import QuestDB

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix(questdb: QuestDB) -> Iterator[str]:
    name = f"hz{uuid.uuid4().hex[:8]}_"
    yield name
    for view in ViewNames(name).all():
        questdb.execute(f'DROP MATERIALIZED VIEW IF EXISTS "{view}"')
    for table in ("events", "clocks", "actions", "deadletters", "heartbeat"):
        questdb.execute(f'DROP TABLE IF EXISTS "{name}{table}"')


def test_a_stuck_worker_fires_and_an_advancing_one_does_not(
    stack: Endpoints, questdb: QuestDB, prefix: str
) -> None:
    """Worker 1's watermark stuck for 3 minutes fires; worker 0, advancing, does not."""
    writer = QuestDBWriter(f"http::addr={stack.questdb_http};", prefix=prefix)
    writer.ensure_tables()
    now = time.time_ns() // 1_000_000
    for i in range(10):
        at = now - (9 - i) * 20_000
        writer.write_heartbeat(Heartbeat("0", at, at - 5_000, 5_000, i, i, 0))
        writer.write_heartbeat(Heartbeat("1", at, min(at, now - 180_000) - 5_000, 5_000, i, i, 0))
    writer.flush()
    writer.close()
    questdb.wait_for_wal(f"{prefix}heartbeat")

    rows = questdb.query(NOT_ADVANCING.render(prefix))

    stalled = {worker: NOT_ADVANCING.fires(value) for worker, value in rows}
    assert stalled == {"0": False, "1": True}
    assert 170 < dict(rows)["1"] < 200


def test_the_health_rule_is_provisioned_as_a_page() -> None:
    """The generated alerting file holds the rule, critical, alerting on no data and errors."""
    health = yaml.safe_load(provisioning_files()["alerting/slawatch-health.yaml"])

    (rule,) = health["groups"][0]["rules"]
    assert rule["title"] == "Monitor not advancing"
    assert rule["labels"]["severity"] == "critical"
    assert (rule["noDataState"], rule["execErrState"]) == ("Alerting", "Alerting")
    assert rule["data"][2]["model"]["conditions"][0]["evaluator"] == {"type": "gt", "params": [120]}
