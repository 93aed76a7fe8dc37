"""`slawatch act` executing service recoveries (SPEC §4, §6 `recover`) against local stand-ins.

The WhatsApp Cloud API, Chatwoot and a voucher webhook run on loopback (`Desk` of
`test_act_runner.py`); each test hands `ActionRunner.handle` the bytes of a `recover` record and
looks at what the servers took: every delivery kind, retries, an unknown send, and a recovery
never executed twice (restarts, redeliveries, corrections, withdrawals, a crash mid-delivery).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from flows.ingest.act import ActionRunner, Ledger
from tests.unit.test_act_runner import Desk, action, desk, fresh

__all__ = ["desk", "fresh"]  # the fixtures used below

pytestmark = pytest.mark.unit

DELIVERIES: dict[str, Any] = {
    "apology_template": {
        "via": "whatsapp_template",
        "template": "sla_apology",
        "language": "id",
        "phone_number_id": "5550001",
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "10%"}]}],
    },
    "apology_note": {"via": "chatwoot_message", "content": "Maaf atas keterlambatan kami."},
    "agent_note": {"via": "chatwoot_message", "content": "Call them back", "private": True},
}
BSUID_CONVERSATION = "wa:1122:ID.13491208655302741918"


def recovery(**changes: Any) -> bytes:
    """A SPEC §6 `recover` record (`changes` override; `...` removes a field)."""
    fields: dict[str, Any] = {
        "action": "recover",
        "trigger": "recovery",
        "metric": "resolution",
        "notify": None,
        "send": "apology_template",
        "rule": "r1",
        "reason": "resolution breached 1h ago: recovery apology_template",
        **changes,
    }
    return action(**fields)


def _runner(desk: Desk, ledger: Path, **changes: Any) -> ActionRunner:
    deliveries = {
        **DELIVERIES,
        "voucher": {"via": "webhook", "url": f"{desk.webhook_url}/vouchers"},
    }
    values: dict[str, Any] = {
        "recoveries": deliveries,
        "recovery_tokens": {"voucher": "voucher-secret"},
        **changes,
    }
    return desk.runner(ledger, **values)


def test_a_template_goes_to_the_bsuid_of_a_whatsapp_conversation_once(
    fresh: Desk, tmp_path: Path
) -> None:
    """A `wa:` conversation of a business-scoped user gets the approved template from its own
    business number, as `recipient`, once; the redelivered record is a duplicate."""
    runner = _runner(fresh, tmp_path / "ledger.jsonl")
    done = runner.handle(recovery(conversation_id=BSUID_CONVERSATION), "sla.actions/0/1")
    assert done.outcomes == ("recover_done",) and done.applied and done.dead_letter is None
    (number, body), *others = fresh.whatsapp.sent
    assert others == [] and number == "1122"
    assert body["recipient"] == "ID.13491208655302741918" and "to" not in body
    assert body["type"] == "template" and body["messaging_product"] == "whatsapp"
    assert body["template"] == {
        "name": "sla_apology",
        "language": {"code": "id"},
        "components": DELIVERIES["apology_template"]["components"],
    }
    again = runner.handle(recovery(conversation_id=BSUID_CONVERSATION), "sla.actions/0/2")
    assert again.outcomes == ("duplicate",) and len(fresh.whatsapp.sent) == 1


def test_a_template_to_a_chatwoot_conversation_reads_the_contact_phone(
    fresh: Desk, tmp_path: Path
) -> None:
    """For `cw:7:42` the customer's phone comes from Chatwoot's contact (digits only) and the
    template leaves from the configured business number."""
    handled = _runner(fresh, tmp_path / "l.jsonl").handle(
        recovery(conversation_id="cw:7:42"), "t/0/1"
    )
    assert handled.outcomes == ("recover_done",)
    ((number, body),) = fresh.whatsapp.sent
    assert number == "5550001" and body["to"] == "6281211112222"
    assert "GET /api/v1/accounts/7/conversations/42?" in fresh.chatwoot.requests


@pytest.mark.parametrize(
    ("conversation", "changes", "expected"),
    [
        ("wa:1122:p0123456789abcdef0123", {}, "the customer's phone number cannot be known"),
        ("cw:7:43", {}, "has no contact with a phone number"),
        ("cw:7:99", {}, "reading the contact of 'cw:7:99' from Chatwoot failed after 3"),
        ("tg:7:1", {}, "neither wa: nor a Chatwoot conversation"),
        (
            "cw:7:42",
            {
                "recoveries": {
                    "apology_template": {**DELIVERIES["apology_template"]}
                    | {"phone_number_id": None}
                }
            },
            "has no phone_number_id",
        ),
    ],
)
def test_a_customer_whose_phone_cannot_be_known_is_a_dead_letter(
    fresh: Desk, tmp_path: Path, conversation: str, changes: dict[str, Any], expected: str
) -> None:
    """No template is sent when the recipient cannot be known: a pseudonymous `wa:` customer, a
    Chatwoot contact without a phone (or no such conversation), another inbox, no sending
    number; the dead letter says which, and the record stays out of the ledger."""
    runner = _runner(fresh, tmp_path / "l.jsonl", **changes)
    handled = runner.handle(recovery(conversation_id=conversation), "t/0/1")
    assert handled.outcomes == ("recover_no_recipient",) and not handled.applied
    assert handled.dead_letter is not None and expected in handled.dead_letter.reason
    assert fresh.whatsapp.sent == []
    assert not (tmp_path / "l.jsonl").exists()


def test_a_chatwoot_message_is_posted_into_the_conversation(fresh: Desk, tmp_path: Path) -> None:
    """`chatwoot_message` posts its text as an outgoing message (or a private note) into the
    conversation; a conversation outside Chatwoot is a dead letter."""
    runner = _runner(fresh, tmp_path / "l.jsonl")
    reply = runner.handle(recovery(conversation_id="cw:7:42", send="apology_note"), "t/0/1")
    note = runner.handle(recovery(conversation_id="cw:7:43", send="agent_note", rule="r2"), "t/0/2")
    assert reply.outcomes == note.outcomes == ("recover_done",)
    assert fresh.chatwoot.posted == [
        (
            "7",
            42,
            {
                "content": "Maaf atas keterlambatan kami.",
                "message_type": "outgoing",
                "private": False,
            },
        ),
        ("7", 43, {"content": "Call them back", "message_type": "outgoing", "private": True}),
    ]
    elsewhere = runner.handle(
        recovery(conversation_id=BSUID_CONVERSATION, send="apology_note"), "t/0/3"
    )
    assert elsewhere.outcomes == ("recover_not_chatwoot",)
    assert elsewhere.dead_letter is not None
    assert "a chatwoot_message cannot reach it" in elsewhere.dead_letter.reason
    assert len(fresh.chatwoot.posted) == 2


def test_a_webhook_recovery_posts_the_record_with_its_identity_and_token(
    fresh: Desk, tmp_path: Path
) -> None:
    """The voucher system gets the record as JSON, `Idempotency-Key` = the recovery's identity
    (rule included) and its bearer token from RECOVERY_TOKENS."""
    handled = _runner(fresh, tmp_path / "l.jsonl").handle(
        recovery(conversation_id="cw:7:42", send="voucher"), "t/0/1"
    )
    assert handled.outcomes == ("recover_done",)
    ((key, body, _, authorization, path),) = fresh.posts
    assert key == "recover|recovery|cw:7:42|1|resolution|1|r1"
    assert authorization == "Bearer voucher-secret" and path == "/vouchers"
    assert orjson.loads(body)["send"] == "voucher"


def test_an_unknown_send_is_a_dead_letter_and_act_goes_on(fresh: Desk, tmp_path: Path) -> None:
    """A send name RECOVERIES does not configure is dead-lettered naming it and what is
    configured; the next recovery is carried out."""
    runner = _runner(fresh, tmp_path / "l.jsonl")
    unknown = runner.handle(recovery(send="free_pizza"), "t/0/1")
    assert unknown.outcomes == ("recover_unknown_send",)
    assert unknown.dead_letter is not None
    assert "field 'send': 'free_pizza' has no delivery in SLAWATCH_INGEST_RECOVERIES" in (
        unknown.dead_letter.reason
    )
    assert "'apology_note', 'apology_template'" in unknown.dead_letter.reason
    nxt = runner.handle(recovery(conversation_id=BSUID_CONVERSATION), "t/0/2")
    assert nxt.outcomes == ("recover_done",) and len(fresh.whatsapp.sent) == 1
    assert fresh.posts == [] and fresh.chatwoot.posted == []


def test_busy_servers_are_retried_and_a_refusal_is_not(fresh: Desk, tmp_path: Path) -> None:
    """Two 503s then success: sent once. Three 503s: a dead letter, retried by a later replay.
    A 400 from the voucher system: tried once (the request, not the server, is at fault)."""
    ledger = tmp_path / "l.jsonl"
    fresh.whatsapp.fail = 2
    first = _runner(fresh, ledger).handle(recovery(conversation_id=BSUID_CONVERSATION), "t/0/1")
    assert first.outcomes == ("recover_done",) and len(fresh.whatsapp.sent) == 1

    fresh.chatwoot.fail_messages = 3
    busy = recovery(conversation_id="cw:7:42", send="apology_note")
    failed = _runner(fresh, ledger).handle(busy, "t/0/2")
    assert failed.outcomes == ("recover_failed",) and not failed.applied
    assert failed.dead_letter is not None
    assert "after 3 attempts: HTTP 503 Service Unavailable" in failed.dead_letter.reason
    assert "may have been delivered" not in failed.dead_letter.reason
    assert _runner(fresh, ledger).handle(busy, "t/0/2").outcomes == ("recover_done",)
    assert len(fresh.chatwoot.posted) == 1

    fresh.webhook_status = 400
    refused = _runner(fresh, ledger).handle(recovery(send="voucher"), "t/0/3")
    assert refused.outcomes == ("recover_failed",) and len(fresh.posts) == 1
    assert refused.dead_letter is not None
    assert "after 1 attempt: HTTP 400 Bad Request" in refused.dead_letter.reason


def test_an_executed_recovery_is_never_executed_again(
    fresh: Desk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After a restart (a new runner on the same ledger), the redelivered record, a corrected
    late copy naming another offer, and a late withdrawal all execute nothing; the
    withdrawal is counted and logged as arriving after the execution."""
    ledger = tmp_path / "l.jsonl"
    raw = recovery(conversation_id=BSUID_CONVERSATION)
    assert _runner(fresh, ledger).handle(raw, "t/0/1").outcomes == ("recover_done",)

    restarted = _runner(fresh, ledger)
    corrected = recovery(conversation_id=BSUID_CONVERSATION, send="voucher", late=True)
    withdrawn = recovery(conversation_id=BSUID_CONVERSATION, withdrawn=True, late=True)
    with caplog.at_level(logging.WARNING, logger="slawatch.act"):
        outcomes = [restarted.handle(r, "t/0/9").outcomes for r in (raw, corrected, withdrawn)]
    assert outcomes == [("duplicate",), ("duplicate",), ("recover_withdrawn_after_execution",)]
    assert restarted.outcomes["recover_withdrawn_after_execution"] == 1
    assert "recover_withdrawn_after_execution" in caplog.text
    assert len(fresh.whatsapp.sent) == 1 and fresh.posts == []
    other_rule = recovery(conversation_id=BSUID_CONVERSATION, rule="r2")
    assert restarted.handle(other_rule, "t/0/10").outcomes == ("recover_done",)


def test_a_withdrawn_recovery_is_not_executed_even_when_replayed(
    fresh: Desk, tmp_path: Path
) -> None:
    """A recovery whose delivery failed, then withdrawn by a correction, is not executed when
    a replay (a new group, a restart) reads the original record again."""
    ledger = tmp_path / "l.jsonl"
    fresh.whatsapp.fail = 3
    raw = recovery(conversation_id=BSUID_CONVERSATION)
    assert _runner(fresh, ledger).handle(raw, "t/0/1").outcomes == ("recover_failed",)
    withdrawal = recovery(conversation_id=BSUID_CONVERSATION, withdrawn=True)
    settled = _runner(fresh, ledger).handle(withdrawal, "t/0/2")
    assert settled.outcomes == ("recover_withdrawn",) and settled.dead_letter is None
    replayed = _runner(fresh, ledger).handle(raw, "t/0/1")
    assert replayed.outcomes == ("recover_withdrawn",)
    assert fresh.whatsapp.sent == []


def test_a_delivery_cut_off_mid_request_is_never_repeated(fresh: Desk, tmp_path: Path) -> None:
    """The Cloud API took the request but its answer never came (a read timeout): the recovery
    may have reached the customer, so neither this runner nor a restarted one sends it again;
    each says so in a dead letter."""
    ledger = tmp_path / "l.jsonl"
    fresh.whatsapp.delay_s = 1.0
    raw = recovery(conversation_id=BSUID_CONVERSATION)
    with httpx.Client(
        base_url=str(fresh.whatsapp_client.base_url),
        headers={"Authorization": f"Bearer {fresh.whatsapp.token}"},
        timeout=0.3,
    ) as impatient:
        runner = _runner(fresh, ledger)
        runner.whatsapp = impatient
        cut = runner.handle(raw, "t/0/1")
        assert cut.outcomes == ("recover_failed",)
        assert cut.dead_letter is not None
        assert "after 1 attempt: ReadTimeout" in cut.dead_letter.reason
        assert "may have been delivered, so it is not repeated" in cut.dead_letter.reason
        assert runner.handle(raw, "t/0/1").outcomes == ("recover_uncertain",)
    fresh.whatsapp.delay_s = 0.0
    restarted = _runner(fresh, ledger).handle(raw, "t/0/1")
    assert restarted.outcomes == ("recover_uncertain",)
    assert restarted.dead_letter is not None
    assert "act stopped while delivering it" in restarted.dead_letter.reason
    assert len(fresh.whatsapp.sent) == 1


def test_a_crash_after_the_request_leaves_the_recovery_pending(fresh: Desk, tmp_path: Path) -> None:
    """A ledger whose last word on a recovery is `pending` (act killed between its request
    and the answer) makes the recovery uncertain: dead-lettered, not sent."""
    ledger = tmp_path / "l.jsonl"
    key = "recover|recovery|cw:7:42|1|resolution|1|r1"
    Ledger(ledger).begin(key)
    handled = _runner(fresh, ledger).handle(recovery(conversation_id="cw:7:42"), "t/0/1")
    assert handled.outcomes == ("recover_uncertain",) and handled.dead_letter is not None
    assert fresh.whatsapp.sent == []
    assert [orjson.loads(line)["state"] for line in ledger.read_bytes().splitlines()] == ["pending"]


def test_dry_run_sends_no_recovery_and_writes_no_ledger(fresh: Desk, tmp_path: Path) -> None:
    """--dry-run counts what would be sent (after resolving the recipient) and sends nothing."""
    runner = _runner(fresh, tmp_path / "l.jsonl")
    runner.dry_run = True
    handled = runner.handle(recovery(conversation_id="cw:7:42"), "t/0/1")
    assert handled.outcomes == ("recover_dry_run",) and handled.dead_letter is None
    assert fresh.whatsapp.sent == [] and not (tmp_path / "l.jsonl").exists()


def test_the_engines_own_recover_records_are_orders_act_accepts() -> None:
    """The records the engine emits for the worked recovery example (SEMANTICS.md), and their
    withdrawals, decode into recover orders with the engine's `send` and `rule`."""
    from dataclasses import replace  # noqa: PLC0415

    from flows.core.decode import decode_event  # noqa: PLC0415
    from flows.core.engine import Engine  # noqa: PLC0415
    from flows.core.events import Event, Rejected  # noqa: PLC0415
    from flows.core.policies import parse_policies  # noqa: PLC0415
    from flows.core.records import ActionRecord, to_json_dict  # noqa: PLC0415
    from flows.ingest.action_check import Order, check_action  # noqa: PLC0415

    example = Path(__file__).parents[2] / "docs/examples/semantics/recovery"
    events: list[Event] = []
    for line in (example / "events.jsonl").read_bytes().splitlines():
        if line.strip():
            event = decode_event(line, now=10**13)
            assert not isinstance(event, Rejected), event
            events.append(event)
    engine = Engine(parse_policies((example / "policies.yaml").read_text(encoding="utf-8")))
    out = engine.process(events, max(e.occurred_at for e in events) + 10 * 3_600_000)
    recoveries = [r for r in out if isinstance(r, ActionRecord) and r.action == "recover"]
    assert {(r.send, r.rule) for r in recoveries} == {
        ("sorry_note", "default#1"),
        ("apology_voucher", "default#2"),
    }
    for record in recoveries:
        for withdrawn in (False, True):
            raw = orjson.dumps(to_json_dict(replace(record, withdrawn=withdrawn), emitted_at=0))
            order = check_action(raw)
            assert isinstance(order, Order), order
            assert (order.send, order.rule, order.withdrawn) == (
                record.send,
                record.rule,
                withdrawn,
            )
