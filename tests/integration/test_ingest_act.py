"""`slawatch act` against the real Kafka, the Chatwoot API stand-in and local webhook/SMTP
stand-ins: each action is applied once whatever the redeliveries, dry runs change nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from confluent_kafka import Consumer, Producer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flows.cli import main
from flows.core.records import ActionRecord, to_json_dict
from flows.devstack import Endpoints
from flows.ingest.app import free_port, running
from tests.chatwoot_standin import ChatwootStandIn

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

T0 = 1_764_640_000_000


@dataclass
class Inbox:
    """What the local webhook and SMTP stand-ins received."""

    posts: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)
    mails: list[Message] = field(default_factory=list)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        self.mails.append(BytesParser().parsebytes(envelope.content))
        return "250 OK"


@dataclass
class Services:
    chatwoot: ChatwootStandIn
    inbox: Inbox
    env: dict[str, str]


@pytest.fixture
def services(
    stack: Endpoints, make_topic: Callable[..., str], tmp_path: Path
) -> Iterator[Services]:
    chatwoot = ChatwootStandIn(fail_assignments=1)
    inbox = Inbox()

    async def hook(request: Request) -> Response:
        inbox.posts.append((request.headers.get("idempotency-key"), await request.json()))
        return JSONResponse({"ok": True})

    webhook_app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    smtp_port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        with running(chatwoot.app()) as chatwoot_url, running(webhook_app) as webhook_url:
            env = {
                "SLAWATCH_INGEST_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
                "SLAWATCH_INGEST_ACTIONS_TOPIC": make_topic(2, prefix="actions"),
                "SLAWATCH_INGEST_DEADLETTER_TOPIC": make_topic(1, prefix="deadletter"),
                "SLAWATCH_INGEST_ACT_GROUP": f"act-{uuid.uuid4()}",
                "SLAWATCH_INGEST_ACT_LEDGER": str(tmp_path / "ledger.jsonl"),
                "SLAWATCH_INGEST_CHATWOOT_URL": chatwoot_url,
                "SLAWATCH_INGEST_CHATWOOT_API_TOKEN": chatwoot.token,
                "SLAWATCH_INGEST_AGENT_MAP": '{"ae.dewi": "12"}',
                "SLAWATCH_INGEST_NOTIFY_WEBHOOK_URL": f"{webhook_url}/hook",
                "SLAWATCH_INGEST_NOTIFY_ADDRESSES": '{"spv.hendra": "hendra@example.com"}',
                "SLAWATCH_INGEST_SMTP_HOST": "127.0.0.1",
                "SLAWATCH_INGEST_SMTP_PORT": str(smtp_port),
            }
            yield Services(chatwoot, inbox, env)
    finally:
        smtp.stop()


def _action(action: str, conversation: str, **fields: Any) -> bytes:
    record = ActionRecord(
        action=action,
        trigger="breached",
        conversation_id=conversation,
        cycle=1,
        metric="first_response",
        seq=1,
        at=T0,
        policy_id="hot-leads",
        from_agent="sdr.rina",
        to_agent=fields.get("to_agent"),
        notify=fields.get("notify"),
        reason="first_response breached: test",
    )
    return orjson.dumps(to_json_dict(record, T0))


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, value=value, key=b"k")
    assert producer.flush(10) == 0


def _act(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(main, ["act", "--exit-when-idle", "3", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.stderr


ACTIONS = [
    _action("reassign", "cw:7:42", to_agent="ae.dewi"),
    _action("notify", "cw:7:43", notify="spv.hendra"),
    _action("reassign", "wa:1122:pabc", to_agent="ae.dewi"),
    _action("reassign", "cw:7:44", to_agent=None),
]


def test_actions_apply_once_whatever_the_redeliveries(services: Services) -> None:
    """Each action delivered twice (and replayed by a new group) reassigns once in Chatwoot,
    posts the webhook once and mails the supervisor once; the rest is counted as skipped."""
    env = services.env
    _produce(
        env["SLAWATCH_INGEST_BOOTSTRAP_SERVERS"], env["SLAWATCH_INGEST_ACTIONS_TOPIC"], ACTIONS * 2
    )
    summary = _act(env)
    assert services.chatwoot.assignments == [("7", 42, 12)]
    assert len(services.inbox.posts) == 1
    key, body = services.inbox.posts[0]
    assert key == "notify|breached|cw:7:43|1|first_response|1"
    assert body["conversation_id"] == "cw:7:43"
    assert [m["To"] for m in services.inbox.mails] == ["hendra@example.com"]
    assert "cw:7:43" in str(services.inbox.mails[0]["Subject"])
    assert "reassign_done 1" in summary and "duplicate 2" in summary
    assert "reassign_not_chatwoot 2" in summary and "reassign_no_candidate 2" in summary

    replay = {**env, "SLAWATCH_INGEST_ACT_GROUP": f"act-{uuid.uuid4()}"}
    assert "duplicate 4" in _act(replay)
    assert services.chatwoot.assignments == [("7", 42, 12)]
    assert len(services.inbox.posts) == 1 and len(services.inbox.mails) == 1


def test_dry_run_changes_nothing(services: Services, tmp_path: Path) -> None:
    """--dry-run logs and counts what would be done and applies nothing, ledger included."""
    env = services.env
    _produce(
        env["SLAWATCH_INGEST_BOOTSTRAP_SERVERS"], env["SLAWATCH_INGEST_ACTIONS_TOPIC"], ACTIONS[:2]
    )
    summary = _act(env, "--dry-run")
    assert "reassign_dry_run 1" in summary
    assert "webhook_dry_run 1" in summary and "mail_dry_run 1" in summary
    assert services.chatwoot.assignments == []
    assert services.inbox.posts == [] and services.inbox.mails == []
    assert not Path(env["SLAWATCH_INGEST_ACT_LEDGER"]).exists()


def _dead_letters(bootstrap: str, topic: str, quiet_s: float = 3.0) -> list[dict[str, Any]]:
    """Every record of the dead-letter topic: read until it has been quiet for `quiet_s`."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"dl-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    assigned: list[bool] = []
    consumer.subscribe([topic], on_assign=lambda _c, _p: assigned.append(True))
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 90  # joining a group on a busy 2-core machine takes a while
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            messages = consumer.consume(100, 0.2)
            for message in messages:
                assert message.error() is None, message.error()
                got.append(orjson.loads(message.value() or b""))
            if messages or not assigned:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > quiet_s:
                return got
    finally:
        consumer.close()
    msg = f"the dead-letter topic did not settle within 90 s; read so far: {got}"
    raise AssertionError(msg)


def test_a_crlf_id_is_dead_lettered_and_the_next_action_is_carried_out(
    services: Services,
) -> None:
    """A notify whose conversation_id holds CR/LF becomes one dead letter naming the field; the
    good notify after it is posted and mailed; a restart redoes neither and stalls on neither."""
    env = services.env
    bootstrap = env["SLAWATCH_INGEST_BOOTSTRAP_SERVERS"]
    actions_topic = env["SLAWATCH_INGEST_ACTIONS_TOPIC"]
    bad = _action("notify", "cw:7:43\r\nBcc: all@example.com", notify="spv.hendra")
    good = _action("notify", "cw:7:45", notify="spv.hendra")
    _produce(bootstrap, actions_topic, [bad, good])

    summary = _act(env)
    assert "dead_letter 1" in summary and "invalid 1" in summary
    assert "webhook_done 1" in summary and "mail_done 1" in summary
    assert [body["conversation_id"] for _, body in services.inbox.posts] == ["cw:7:45"]
    assert [str(m["Subject"]) for m in services.inbox.mails] == [
        "[slawatch] first_response breached on cw:7:45"
    ]
    letters = _dead_letters(bootstrap, env["SLAWATCH_INGEST_DEADLETTER_TOPIC"])
    assert len(letters) == 1, letters
    (letter,) = letters
    assert letter["type"] == "dead_letter"
    assert "field 'conversation_id' must not contain control characters" in letter["reason"]
    assert letter["source"].startswith(f"{actions_topic}/")
    assert '"conversation_id":"cw:7:43\\r\\nBcc: ' in letter["raw"]

    started = time.monotonic()
    assert "act: nothing" in _act(env)
    assert time.monotonic() - started < 60
    assert len(services.inbox.posts) == 1 and len(services.inbox.mails) == 1
    assert len(_dead_letters(bootstrap, env["SLAWATCH_INGEST_DEADLETTER_TOPIC"])) == 1
