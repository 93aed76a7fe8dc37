"""`slawatch check` against the real Kafka and QuestDB and a Chatwoot API stand-in."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from flows.cli import main
from flows.devstack import Endpoints
from flows.ingest.app import free_port, running
from tests.chatwoot_standin import ChatwootStandIn
from tests.flowkit import QUICK_POLICIES, write_policies

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("SLAWATCH_"):
            monkeypatch.delenv(name)


def _check(env: dict[str, str]) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["check", "--timeout", "3"], env=env)
    return result.exit_code, result.output.splitlines()


def test_reachable_services_pass(
    tmp_path: Path, stack: Endpoints, make_topic: Callable[..., str]
) -> None:
    """Kafka with the input topic, QuestDB and Chatwoot accepting the token: `ok`, exit 0."""
    api = ChatwootStandIn()
    with running(api.app()) as url:
        code, lines = _check(
            {
                "SLAWATCH_POLICIES": str(write_policies(tmp_path, QUICK_POLICIES)),
                "SLAWATCH_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
                "SLAWATCH_INPUT_TOPICS": make_topic(1),
                "SLAWATCH_QUESTDB_HTTP": stack.questdb_http,
                "SLAWATCH_INGEST_CHATWOOT_URL": url,
                "SLAWATCH_INGEST_CHATWOOT_API_TOKEN": api.token,
                "SLAWATCH_INGEST_CHATWOOT_ACCOUNTS": '["7"]',
                "SLAWATCH_INGEST_VERIFY": '{"chatwoot": "log"}',
            }
        )

    assert (code, lines) == (
        0,
        ["ok: configuration, policies and services checked, no problem found"],
    )


def test_each_unreachable_or_refusing_service_gets_a_line(tmp_path: Path, stack: Endpoints) -> None:
    """A missing topic, a QuestDB that does not answer and a refused token: one line each."""
    api = ChatwootStandIn()
    with running(api.app()) as url:
        code, lines = _check(
            {
                "SLAWATCH_POLICIES": str(write_policies(tmp_path, QUICK_POLICIES)),
                "SLAWATCH_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
                "SLAWATCH_INPUT_TOPICS": "no-such-topic-for-check",
                "SLAWATCH_QUESTDB_HTTP": f"127.0.0.1:{free_port()}",
                "SLAWATCH_INGEST_CHATWOOT_URL": url,
                "SLAWATCH_INGEST_CHATWOOT_API_TOKEN": "wrong",
                "SLAWATCH_INGEST_CHATWOOT_ACCOUNTS": '["7"]',
                "SLAWATCH_INGEST_VERIFY": '{"chatwoot": "log"}',
            }
        )

    assert code == 1
    assert (
        lines[0]
        == f"kafka: input topic no-such-topic-for-check does not exist on {stack.bootstrap_servers}"
    )
    assert lines[1].startswith("questdb: QuestDB at 127.0.0.1:") and "does not answer" in lines[1]
    assert lines[2] == (
        "chatwoot: Chatwoot refused SLAWATCH_INGEST_CHATWOOT_API_TOKEN on "
        "/api/v1/accounts/7/conversations (401)"
    )
    assert len(lines) == 3


def test_kafka_that_does_not_answer_is_named(tmp_path: Path) -> None:
    """Nothing listening on the bootstrap address: one `kafka:` line naming it."""
    port = free_port()
    code, lines = _check(
        {
            "SLAWATCH_POLICIES": str(write_policies(tmp_path, QUICK_POLICIES)),
            "SLAWATCH_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
            "SLAWATCH_QUESTDB_HTTP": "",
        }
    )

    assert code == 1
    assert lines[0].startswith(f"kafka: Kafka at 127.0.0.1:{port} does not answer")
    assert len(lines) == 1
