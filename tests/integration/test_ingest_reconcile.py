"""`slawatch reconcile chatwoot` against a local HTTP stand-in of Chatwoot's REST API."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer

from flows.cli import main
from flows.devstack import Endpoints
from flows.ingest.app import running
from flows.ingest.chatwoot import map_chatwoot
from tests.chatwoot_standin import ChatwootStandIn, rest_conversation, rest_message
from tests.ingestkit import (
    SECRET_TEXTS,
    change,
    chatwoot_conversation_event,
    chatwoot_message,
    contact_sender,
    dumps,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

T0 = 1_764_640_000
SINCE = T0 - 60
#: 42: opened, two messages, assigned, resolved; 43: opened and 45 messages.
EXPECTED_EVENTS = 5 + 46


@pytest.fixture
def standin() -> Iterator[tuple[ChatwootStandIn, str]]:
    api = ChatwootStandIn()
    # 42: resolved; the customer's first message reached the receiver, the reply did not.
    api.add_conversation(
        "7",
        rest_conversation(
            42,
            status="resolved",
            assignee=5,
            created_at=T0,
            timestamp=T0 + 600,
            updated_at=T0 + 600.5,
        ),
    )
    api.add_message("7", 42, rest_message(1001, 42, created_at=T0 + 1))
    api.add_message("7", 42, rest_message(1002, 42, created_at=T0 + 120, message_type=1, agent=5))
    api.add_message("7", 42, rest_message(1003, 42, created_at=T0 + 600, message_type=2))
    # 43: a long chat, more than two pages of messages.
    api.add_conversation("7", rest_conversation(43, created_at=T0, timestamp=T0 + 900))
    for n in range(45):
        api.add_message("7", 43, rest_message(2000 + n, 43, created_at=T0 + 10 * n))
    # 30 quiet conversations, last active before the checkpoint: not read.
    for display_id in range(100, 130):
        api.add_conversation(
            "7", rest_conversation(display_id, created_at=T0 - 9000, timestamp=T0 - 3000)
        )
        api.add_message(
            "7", display_id, rest_message(display_id * 100, display_id, created_at=T0 - 3000)
        )
    with running(api.app()) as url:
        yield api, url


def _run(url: str, token: str, *args: str) -> tuple[int, str, str]:
    env = {"SLAWATCH_INGEST_CHATWOOT_API_TOKEN": token, "SLAWATCH_INGEST_CHATWOOT_URL": url}
    result = CliRunner().invoke(main, ["reconcile", "chatwoot", "--account", "7", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_catch_up_emits_missed_events_with_webhook_ids(
    standin: tuple[ChatwootStandIn, str], tmp_path: Path
) -> None:
    """Missed messages come back with the ids their webhooks would have had; old chats are not
    read; every page is followed; the checkpoint advances to the latest activity."""
    api, url = standin
    checkpoint = tmp_path / "checkpoint"
    out = tmp_path / "events.jsonl"
    code, _, err = _run(
        url, api.token, "--since", str(SINCE), "--checkpoint", str(checkpoint), "--output", str(out)
    )
    assert code == 0, err
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    ids = {e["event_id"] for e in events}
    assert len(ids) == len(events) == EXPECTED_EVENTS

    seen = map_chatwoot(dumps(chatwoot_message(1001, sender=contact_sender())), "7").events[0]
    assert seen["event_id"] in ids
    reply = next(e for e in events if e["event_id"] == "cw:7:m:1002")
    assert (reply["author"], reply["agent_id"], reply["occurred_at"]) == (
        "agent",
        "5",
        (T0 + 120) * 1000,
    )
    assert {f"cw:7:m:{2000 + n}" for n in range(45)} <= ids
    assert not any(e["conversation_id"] == "cw:7:100" for e in events)
    assert "cw:7:m:1003" not in ids

    resolved = chatwoot_conversation_event(
        "conversation_status_changed",
        changed=[change("status", "open", "resolved")],
        updated_at=T0 + 600.5,
    )
    (webhook_resolve,) = map_chatwoot(dumps(resolved), "7").events
    assert webhook_resolve["event_id"] in ids
    created = chatwoot_conversation_event("conversation_created", created_at=T0)
    assert map_chatwoot(dumps(created), "7").events[0]["event_id"] in ids

    assignment = next(e for e in events if e["type"] == "assignment")
    assert (assignment["agent_id"], assignment["occurred_at"]) == ("5", (T0 + 120) * 1000)
    assert checkpoint.read_text().strip() == str(T0 + 900)
    assert all(secret.encode() not in out.read_bytes() for secret in SECRET_TEXTS)


def test_catch_up_produces_to_kafka_and_resumes_from_the_checkpoint(
    standin: tuple[ChatwootStandIn, str],
    stack: Endpoints,
    make_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    """Without --output the events go to Kafka keyed by conversation; a second run starts at
    the checkpoint and reads only what is newer."""
    api, url = standin
    topic = make_topic(2, prefix="reconcile")
    checkpoint = tmp_path / "checkpoint"
    checkpoint.write_text(f"{SINCE}\n")
    env_args = ("--checkpoint", str(checkpoint))
    runner = CliRunner()
    env = {
        "SLAWATCH_INGEST_CHATWOOT_API_TOKEN": api.token,
        "SLAWATCH_INGEST_CHATWOOT_URL": url,
        "SLAWATCH_INGEST_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
        "SLAWATCH_INGEST_TOPIC": topic,
    }
    first = runner.invoke(main, ["reconcile", "chatwoot", "--account", "7", *env_args], env=env)
    assert first.exit_code == 0, first.stderr
    consumer = Consumer(
        {"bootstrap.servers": stack.bootstrap_servers, "group.id": f"t-{uuid.uuid4()}",
         "auto.offset.reset": "earliest"}
    )  # fmt: skip
    consumer.subscribe([topic])
    got = []
    for _ in range(100):
        got.extend(m for m in consumer.consume(100, 0.2) if m.error() is None)
        if len(got) >= EXPECTED_EVENTS:
            break
    consumer.close()
    keys = {m.key().decode() for m in got}
    assert keys == {"cw:7:42", "cw:7:43"}
    assert len({orjson.loads(m.value())["event_id"] for m in got}) == len(got) == EXPECTED_EVENTS

    api.requests.clear()
    second = runner.invoke(main, ["reconcile", "chatwoot", "--account", "7", *env_args], env=env)
    assert second.exit_code == 0, second.stderr
    assert "1 conversations" in second.stderr
    assert "0 events" in second.stderr
    assert not any("/conversations/42/" in r for r in api.requests)


def test_wrong_token_is_a_clear_error(standin: tuple[ChatwootStandIn, str]) -> None:
    """A refused token stops the run with one line saying what to check, no traceback."""
    _, url = standin
    code, _, err = _run(url, "wrong", "--since", str(SINCE), "--output", "-")
    assert code == 1
    assert "answered 401" in err and "Traceback" not in err
