"""The webhook receiver on loopback, producing to the real Kafka of the test stack."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import Consumer
from pydantic import SecretStr

from flows.core.policies import load_policies
from flows.core.records import SlaRecord
from flows.devstack import Endpoints
from flows.ingest.app import KafkaSink, Metrics, create_app, free_port, running
from flows.ingest.chatwoot import map_chatwoot
from flows.ingest.settings import IngestSettings
from flows.ingest.whatsapp import map_whatsapp
from flows.replay import replay_records
from tests.ingestkit import (
    ROOT,
    SECRET_TEXTS,
    WHATSAPP_SAMPLES,
    change,
    chatwoot_conversation_event,
    chatwoot_message,
    chatwoot_signature,
    contact_sender,
    dumps,
    meta_signature,
    user_sender,
)
from tests.integration.kafkakit import consume_at_least
from tests.schemakit import validator
from tests.waitkit import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CW_SECRET = "cw-secret-7"
UNIQUE_ID_SAMPLES = (
    "01_message_text.json",
    "04_message_ctwa_ad_referral.json",
    "05_message_reaction.json",
    "06_status_sent_with_conversation_and_pricing.json",
    "07_status_delivered.json",
    "10_smb_message_echo_business_app_text.json",
)
APP_SECRET = "meta-app-secret"


@dataclass
class Receiver:
    url: str
    events_topic: str
    deadletter_topic: str
    metrics: Metrics
    settings: IngestSettings


@pytest.fixture
def receiver(stack: Endpoints, make_topic: Callable[..., str]) -> Iterator[Receiver]:
    events_topic = make_topic(4, prefix="ingest")
    deadletter_topic = make_topic(prefix="ingest-dl")
    settings = IngestSettings(
        bootstrap_servers=stack.bootstrap_servers,
        topic=events_topic,
        deadletter_topic=deadletter_topic,
        verify={"chatwoot/7": "enforce", "chatwoot/8": "log", "chatwoot/9": "off"},
        chatwoot_secrets={"7": SecretStr(CW_SECRET), "8": SecretStr(CW_SECRET)},
        whatsapp_app_secret=SecretStr(APP_SECRET),
        whatsapp_verify_token=SecretStr("verify-me"),
        pseudonym_key=SecretStr("pseudonyms"),
        max_body_bytes=64 * 1024,
    )
    metrics = Metrics()
    sink = KafkaSink(settings.producer_config())
    app = create_app(settings, sink, metrics=metrics)
    with running(app) as url:
        yield Receiver(url, events_topic, deadletter_topic, metrics, settings)


def _consume(bootstrap: str, topic: str, count: int, settle_s: float = 1.0) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"t-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    try:
        return consume_at_least(consumer, count, timeout=30, what=f"on {topic}", settle_s=settle_s)
    finally:
        consumer.close()


def _chatwoot_headers(body: bytes, secret: str = CW_SECRET) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {
        "content-type": "application/json",
        "x-chatwoot-timestamp": stamp,
        "x-chatwoot-signature": chatwoot_signature(secret, stamp, body),
    }


def _meta_headers(body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-hub-signature-256": meta_signature(APP_SECRET, body),
    }


def _chatwoot_story(display_id: int, t0: int) -> list[bytes]:
    """One Chatwoot conversation: created, customer asks, agent assigned and answers, resolved."""

    def iso(seconds: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))

    conv = {"display_id": display_id}
    resolve = [change("status", "open", "resolved"), change("updated_at", 0, t0 + 600.5)]
    assign = [change("assignee_id", None, 5)]
    first, reply = display_id * 10, display_id * 10 + 1
    payloads = [
        chatwoot_conversation_event("conversation_created", created_at=t0, **conv),
        chatwoot_message(first, sender=contact_sender(), created_at=iso(t0 + 1), **conv),
        chatwoot_conversation_event(
            "conversation_updated", changed=assign, updated_at=t0 + 30.0, **conv
        ),
        chatwoot_message(
            reply,
            message_type="outgoing",
            sender=user_sender(5),
            created_at=iso(t0 + 120),
            **conv,
        ),
        chatwoot_conversation_event("conversation_status_changed", changed=resolve, **conv),
        chatwoot_conversation_event("conversation_updated", changed=resolve, **conv),
    ]
    return [dumps(payload) for payload in payloads]


def test_duplicate_deliveries_collapse_and_nothing_is_lost(
    stack: Endpoints, receiver: Receiver
) -> None:
    """Every payload sent twice, concurrently and shuffled: all events reach Kafka, copies are
    byte-identical under one event id, and the monitor's records equal those of one delivery."""
    t0 = 1_764_640_000
    requests: list[tuple[str, bytes, dict[str, str]]] = []
    expected: dict[str, dict[str, Any]] = {}
    for display_id in range(1, 21):
        for body in _chatwoot_story(display_id, t0 + display_id * 7):
            requests.append(("/webhooks/chatwoot/7", body, _chatwoot_headers(body)))
            for event in map_chatwoot(body, "7", receiver.settings.chatwoot_options()).events:
                expected[event["event_id"]] = event
    # Samples 01-03 share one sanitised wamid; one of them stands for all three.
    for name in UNIQUE_ID_SAMPLES:
        body = (WHATSAPP_SAMPLES / name).read_bytes()
        requests.append(("/webhooks/whatsapp", body, _meta_headers(body)))
        for event in map_whatsapp(body, receiver.settings.whatsapp_options()).events:
            expected[event["event_id"]] = event
    deliveries = requests * 2
    random.Random(17).shuffle(deliveries)

    async def send_all() -> list[int]:
        async with httpx.AsyncClient(base_url=receiver.url, timeout=30) as client:
            responses = await asyncio.gather(
                *(
                    client.post(path, content=body, headers=headers)
                    for path, body, headers in deliveries
                )
            )
        return [response.status_code for response in responses]

    assert set(asyncio.run(send_all())) == {200}
    sent_events = 2 * sum(
        len(map_chatwoot(b, "7").events) if "chatwoot" in p else len(map_whatsapp(b).events)
        for p, b, _ in requests
    )
    messages = _consume(stack.bootstrap_servers, receiver.events_topic, sent_events)
    assert len(messages) == sent_events
    copies: dict[str, set[bytes]] = {}
    for msg in messages:
        event = orjson.loads(msg.value())
        assert msg.key().decode() == event["conversation_id"]
        validator("event.schema.json").validate(event)
        copies.setdefault(event["event_id"], set()).add(msg.value())
    assert set(copies) == set(expected)
    assert all(len(values) == 1 for values in copies.values())

    policies = load_policies(ROOT / "examples" / "policies.yaml")
    by_time = sorted(
        (orjson.loads(m.value()) for m in messages), key=lambda e: (e["occurred_at"], e["event_id"])
    )
    once = sorted(expected.values(), key=lambda e: (e["occurred_at"], e["event_id"]))

    def outcome(events: list[dict[str, Any]]) -> list[SlaRecord]:
        lines = [orjson.dumps(e) for e in events]
        return [r for r in replay_records(lines, policies) if isinstance(r, SlaRecord)]

    twice_records = outcome(by_time)
    assert twice_records == outcome(once)
    assert any(r.status == "met" for r in twice_records)
    assert (
        receiver.metrics.value("slawatch_ingest_events_total", endpoint="chatwoot/7") == 2 * 20 * 6
    )


def test_no_message_text_reaches_kafka_logs_or_dead_letters(
    stack: Endpoints, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Payloads full of text, names and numbers: none of it in events, dead letters or logs."""
    caplog.set_level(logging.DEBUG)
    now = int(time.time())
    note = {"message_type": "outgoing", "sender": user_sender(), "private": True}
    photo = {"attachments": [{"data_url": "https://x/ktp.jpg"}], "content": SECRET_TEXTS[8]}
    payloads = [
        chatwoot_message(501, sender=contact_sender(), content=SECRET_TEXTS[0]),
        chatwoot_message(502, content=SECRET_TEXTS[7], **note),
        chatwoot_message(503, sender=contact_sender(), **photo),
        chatwoot_conversation_event("conversation_created", created_at=now),
        {
            "event": "message_created",
            "message_type": "incoming",
            "id": 504,
            "content": SECRET_TEXTS[1],
            "sender": contact_sender(),
        },
        {"event": "contact_updated", "name": SECRET_TEXTS[2], "phone_number": SECRET_TEXTS[3]},
    ]
    with httpx.Client(base_url=receiver.url) as client:
        for payload in payloads:
            body = dumps(payload)
            response = client.post(
                "/webhooks/chatwoot/7", content=body, headers=_chatwoot_headers(body)
            )
            assert response.status_code == 200
        broken = (
            b'{"event": "message_created", "content": "'
            + SECRET_TEXTS[1].encode()
            + b" +62 812-3456-7890"
        )
        response = client.post(
            "/webhooks/chatwoot/7", content=broken, headers=_chatwoot_headers(broken)
        )
        assert response.status_code == 200
    events = _consume(stack.bootstrap_servers, receiver.events_topic, 4)
    dead = _consume(stack.bootstrap_servers, receiver.deadletter_topic, 2)
    assert len(events) == 4 and len(dead) == 2
    letters = [orjson.loads(m.value()) for m in dead]
    for letter in letters:
        validator("dead_letter.schema.json").validate(letter)
        assert letter["source"] == "webhook:chatwoot/7"
    assert any("conversation id" in letter["reason"] for letter in letters)
    assert any("not valid JSON" in letter["reason"] for letter in letters)
    everything = b"".join(m.value() for m in [*events, *dead]) + caplog.text.encode()
    for secret in SECRET_TEXTS:
        assert secret.encode() not in everything, secret
    assert b"812" not in b"".join(m.value() for m in dead)


def test_signatures_enforce_log_and_off_per_endpoint(stack: Endpoints, receiver: Receiver) -> None:
    """Under enforce a bad, stale or missing signature is 401 and produces nothing; log and off
    accept it (log counts it)."""
    body = dumps(chatwoot_message(900, sender=contact_sender()))
    stale = {**_chatwoot_headers(body), "x-chatwoot-timestamp": str(int(time.time()) - 3600)}
    with httpx.Client(base_url=receiver.url) as client:
        bad = _chatwoot_headers(body, secret="wrong")
        assert client.post("/webhooks/chatwoot/7", content=body, headers=bad).status_code == 401
        assert client.post("/webhooks/chatwoot/7", content=body, headers=stale).status_code == 401
        assert client.post("/webhooks/chatwoot/7", content=body).status_code == 401
        altered = body.replace(b"premium", b"PREMIUM")
        signed = _chatwoot_headers(body)
        assert (
            client.post("/webhooks/chatwoot/7", content=altered, headers=signed).status_code == 401
        )
        assert client.post("/webhooks/whatsapp", content=b"{}").status_code == 401
        assert client.post("/webhooks/chatwoot/8", content=body, headers=bad).status_code == 200
        assert client.post("/webhooks/chatwoot/9", content=body).status_code == 200
        assert client.post("/webhooks/chatwoot/7", content=body, headers=signed).status_code == 200
    messages = _consume(stack.bootstrap_servers, receiver.events_topic, 3)
    assert sorted(orjson.loads(m.value())["conversation_id"] for m in messages) == [
        "cw:7:42",
        "cw:8:42",
        "cw:9:42",
    ]
    failures = receiver.metrics.value
    assert (
        failures("slawatch_ingest_signature_failures_total", endpoint="chatwoot/7", mode="enforce")
        == 4
    )
    assert (
        failures("slawatch_ingest_signature_failures_total", endpoint="chatwoot/8", mode="log") == 1
    )


def test_handshake_body_limit_health_and_metrics(receiver: Receiver) -> None:
    """Meta's GET handshake, 413 over the body limit, /healthz, and counters on /metrics."""
    with httpx.Client(base_url=receiver.url) as client:
        ok = client.get(
            "/webhooks/whatsapp",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": "verify-me",
                "hub.challenge": "42",
            },
        )
        assert (ok.status_code, ok.text) == (200, "42")
        wrong = client.get(
            "/webhooks/whatsapp",
            params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "42"},
        )
        assert wrong.status_code == 403
        huge = b'{"pad": "' + b"x" * (70 * 1024) + b'"}'
        assert client.post("/webhooks/whatsapp", content=huge).status_code == 413
        reaction = (WHATSAPP_SAMPLES / "05_message_reaction.json").read_bytes()
        assert (
            client.post(
                "/webhooks/whatsapp", content=reaction, headers=_meta_headers(reaction)
            ).status_code
            == 200
        )
        assert client.get("/healthz").json() == {"status": "ok"}
        text = client.get("/metrics").text
    assert 'slawatch_ingest_too_large_total{endpoint="whatsapp"} 1' in text
    assert 'slawatch_ingest_ignored_total{endpoint="whatsapp",kind="message_reaction"} 1' in text
    assert 'slawatch_ingest_requests_total{endpoint="whatsapp"} 2' in text


def test_kafka_down_answers_503_so_the_platform_retries() -> None:
    """With no Kafka to acknowledge, a request is answered 503 (never 200) within the timeout."""
    settings = IngestSettings(
        bootstrap_servers=f"127.0.0.1:{free_port()}",
        verify_default="off",
        produce_timeout_s=2,
    )
    metrics = Metrics()
    sink = KafkaSink({**settings.producer_config(), "log_level": 0}, timeout_s=2)
    body = (WHATSAPP_SAMPLES / "01_message_text.json").read_bytes()
    with running(create_app(settings, sink, metrics=metrics)) as url:
        response = httpx.post(f"{url}/webhooks/whatsapp", content=body, timeout=30)
    assert response.status_code == 503
    assert metrics.value("slawatch_ingest_produce_failures_total", endpoint="whatsapp") == 1


def test_cli_server_reads_secrets_from_the_environment_and_binds_loopback(
    stack: Endpoints, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    """`slawatch ingest` configured only by SLAWATCH_INGEST_* variables serves on 127.0.0.1,
    enforces the Meta signature, produces to Kafka and stops cleanly on SIGTERM."""
    topic = make_topic(prefix="ingest-cli")
    port = free_port()
    env = {
        **os.environ,
        "SLAWATCH_INGEST_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
        "SLAWATCH_INGEST_TOPIC": topic,
        "SLAWATCH_INGEST_PORT": str(port),
        "SLAWATCH_INGEST_WHATSAPP_APP_SECRET": APP_SECRET,
    }
    process = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "slawatch"), "ingest"], env=env, cwd=tmp_path
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def alive() -> None:
            assert process.poll() is None, f"slawatch ingest exited with {process.returncode}"

        wait_until(
            lambda: httpx.get(f"{url}/healthz").status_code,
            lambda status: status == 200,
            timeout=30,
            what=f"slawatch ingest answers /healthz on {url}",
            check=alive,
            retry=(httpx.HTTPError,),
            every=0.1,
        )
        body = (WHATSAPP_SAMPLES / "01_message_text.json").read_bytes()
        assert httpx.post(f"{url}/webhooks/whatsapp", content=body).status_code == 401
        signed = httpx.post(f"{url}/webhooks/whatsapp", content=body, headers=_meta_headers(body))
        assert signed.status_code == 200
        assert signed.json() == {"events": 1, "ignored": 0, "dead_letters": 0}
        with socket.socket() as other:
            assert other.connect_ex((_non_loopback_address(), port)) != 0
    finally:
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.wait(30) in (0, -signal.SIGTERM)
    (message,) = _consume(stack.bootstrap_servers, topic, 1)
    assert orjson.loads(message.value())["event_id"] == "wa:1122334455667:in:wamid.xyzxyz"


def _non_loopback_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 1))
        address: str = probe.getsockname()[0]
    if address.startswith("127."):
        pytest.skip("no non-loopback address on this machine")
    return address
