"""Arbitrary messages on the actions topic: `act` never raises, and each ends one way, once.

Random bytes, random JSON and near-valid action records (ids with line breaks, control and
non-ASCII characters, wrong types, unknown actions, lists of addresses) go through
`ActionRunner.handle` against the real local stand-ins of `test_act_runner.py`, whose answers
vary per example (webhook 2xx/3xx/4xx/5xx, Chatwoot 503s, SMTP refusing recipients, the
WhatsApp Cloud API answering 503). Recovery records (`recover`, every delivery kind, unknown
sends, withdrawals, corrections) are never executed twice, whatever follows them.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from flows.ingest.act import SETTLED
from tests.unit.test_act_runner import Desk, desk

__all__ = ["desk"]  # the module-scoped fixture used below

pytestmark = [pytest.mark.unit, pytest.mark.slow]

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=15,
)
_odd = st.sampled_from(
    ["\r\n", "\n", "\r", "\x00", "\t", "\x85", "\u2028", "\u2029", "\x1c", "é", " ", "%", ",", "/"]
)
odd_ids = st.builds(lambda a, b, c: a + b + c, st.text(max_size=6), _odd, st.text(max_size=6))
conversations = (
    st.sampled_from(
        ["cw:7:42", "cw:7:43", "cw:7:٤٢", "cw:x:1", "cw:7:4/2", "wa:1122:pabc", "", "c" * 257]
    )
    | odd_ids.map(lambda s: f"cw:7:{s}")
    | st.text(max_size=12)
)
agents = st.sampled_from(["ae.dewi", "12", "²", "ae.typo", "ae.nobody", "", None]) | odd_ids
whom = (
    st.sampled_from(
        [
            "spv.hendra",
            "spv.list",
            "spv.unknown",
            "boss@example.com",
            "a@example.com, b@example.com",
            "x\r\nBcc: all@example.com",
            "Boss <boss@example.com>",
            None,
        ]
    )
    | odd_ids
)
action_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.just("action") | st.sampled_from(["sla", "dead_letter"]) | json_values,
        "action": st.sampled_from(["notify", "reassign", "recover", "escalate"]) | json_values,
        "trigger": st.sampled_from(["warning", "breached", "recovery", "late"]) | json_values,
        "conversation_id": conversations | json_values,
        "cycle": st.sampled_from([1, 2, 0, -1, True, "1", 2**63]) | json_values,
        "metric": st.sampled_from(["first_response", "resolution", ""]) | odd_ids | json_values,
        "seq": st.sampled_from([1, 3, 0]) | json_values,
        "at": st.sampled_from(["2025-12-02T01:46:40.000Z", 1_764_640_000_000, "nope", 1.5])
        | json_values,
        "policy_id": st.sampled_from(["hot-leads", None, ""]) | odd_ids | json_values,
        "from_agent": agents | json_values,
        "to_agent": agents | json_values,
        "notify": whom | json_values,
        "reason": st.text(max_size=60) | json_values,
        "send": st.sampled_from(["apology_voucher"]) | json_values,
        "rule": st.sampled_from(["r1", 0, -1]) | json_values,
        "withdrawn": st.booleans() | json_values,
        "emitted_at": json_values,
    },
)
# Most examples should be carried-out candidates: a full, well-typed record with one field odd.
_valid_base: dict[str, Any] = {
    "type": "action",
    "trigger": "breached",
    "cycle": 1,
    "metric": "first_response",
    "seq": 1,
    "at": "2025-12-02T01:46:40.000Z",
    "reason": "first_response breached",
}
_good = {
    "action": st.sampled_from(["notify", "reassign"]),
    "conversation_id": st.sampled_from(
        ["cw:7:42", "cw:7:43", "cw:8:9", "wa:1122:pabc", "wa:1122:ID.1349", "wa:1:p" + "0" * 20]
    ),
    "to_agent": st.sampled_from(["ae.dewi", "12", None]),
    "notify": st.sampled_from(["spv.hendra", "boss@example.com"]),
    "seq": st.integers(min_value=1, max_value=4),
}
_odd_values = {
    "action": st.sampled_from(["recover", "escalate"]) | json_values,
    "conversation_id": conversations | json_values,
    "to_agent": agents | json_values,
    "notify": whom | json_values,
    "seq": st.sampled_from([0, -1, True, "1", 2**63]) | json_values,
    "cycle": st.sampled_from([0, "2"]) | json_values,
    "at": st.sampled_from(["nope", 1.5, ""]) | json_values,
    "trigger": st.sampled_from(["late", ""]) | json_values,
    "reason": json_values,
    "metric": odd_ids | json_values,
}


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    """A full record of good values; one time in three, one field odd."""
    record = {**_valid_base, **{key: draw(values) for key, values in _good.items()}}
    if draw(st.integers(min_value=0, max_value=2)) == 0:
        key = draw(st.sampled_from(sorted(_odd_values)))
        record[key] = draw(_odd_values[key])
    return record


#: Deliveries configured for the fuzzed runner: one of each kind (the webhook is the desk's).
SENDS = ("template", "note", "voucher")


@st.composite
def recoveries(draw: st.DrawFn) -> dict[str, Any]:
    """A SPEC §6 `recover` record of good values; one time in three, one field odd."""
    record = {
        **_valid_base,
        "action": "recover",
        "trigger": "recovery",
        "metric": "resolution",
        "conversation_id": draw(_good["conversation_id"]),
        "seq": draw(_good["seq"]),
        "send": draw(st.sampled_from([*SENDS, "unknown_offer"])),
        "rule": draw(st.sampled_from(["r1", "r2", 0])),
        "notify": None,
        "to_agent": None,
    }
    if draw(st.booleans()):
        record["withdrawn"] = draw(st.booleans())
    if draw(st.integers(min_value=0, max_value=2)) == 0:
        key = draw(st.sampled_from(["send", "rule", "withdrawn", "trigger", "conversation_id"]))
        record[key] = draw(
            st.sampled_from(["", "x\r\ny", -1, None, True, "breached"]) | json_values
        )
    return record


def _dumps(value: object) -> bytes:
    return orjson.dumps(value)


raw_inputs = (
    st.binary(max_size=200)
    | recoveries().map(_dumps)
    | json_values.map(_dumps)
    | action_like.map(_dumps)
    | near_valid().map(_dumps)
    | near_valid().map(lambda r: _dumps(r)[: len(_dumps(r)) // 2])
)
answers = st.fixed_dictionaries(
    {
        "webhook_status": st.sampled_from([200, 204, 302, 404, 500]),
        "chatwoot_failures": st.integers(min_value=0, max_value=3),
        "smtp_refuses": st.booleans(),
        "whatsapp_failures": st.integers(min_value=0, max_value=3),
    }
)


def _deliveries(desk: Desk) -> dict[str, Any]:
    """One delivery of each kind, under the names of `SENDS`."""
    return {
        "template": {
            "via": "whatsapp_template",
            "template": "sla_apology",
            "language": "en_US",
            "phone_number_id": "5550001",
        },
        "note": {"via": "chatwoot_message", "content": "Sorry!"},
        "voucher": {"via": "webhook", "url": f"{desk.webhook_url}/vouchers"},
    }


def _taken(desk: Desk) -> int:
    """How many side effects the stand-ins took (accepted webhooks, mails, assignments, sends)."""
    return (
        len([p for p in desk.posts if 200 <= p[2] < 300])
        + len(desk.mailbox.mails)
        + len(desk.chatwoot.assignments)
        + len(desk.whatsapp.sent)
        + len(desk.chatwoot.posted)
    )


def _handle_and_check(desk: Desk, raw: bytes, answer: dict[str, Any]) -> str:
    """Handle `raw` twice under `answer`; assert every invariant; return how it ended."""
    desk.reset()
    desk.webhook_status = answer["webhook_status"]
    desk.chatwoot.fail_assignments = answer["chatwoot_failures"]
    desk.mailbox.refuse = answer["smtp_refuses"]
    desk.whatsapp.fail = answer["whatsapp_failures"]
    runner = desk.runner(recoveries=_deliveries(desk))

    handled = runner.handle(raw, "sla.actions/0/7")

    problems = [o for o in handled.outcomes if o not in SETTLED and not o.endswith("_done")]
    if problems:
        assert handled.dead_letter is not None, handled.outcomes
    if handled.dead_letter is not None:
        assert handled.dead_letter.reason.strip()
        assert "\n" not in handled.dead_letter.reason and "\r" not in handled.dead_letter.reason
        assert handled.dead_letter.source == "sla.actions/0/7"
    if not handled.applied and handled.dead_letter is None:
        assert set(handled.outcomes) <= SETTLED, handled.outcomes
    taken = _taken(desk)
    assert len([p for p in desk.posts if 200 <= p[2] < 300]) <= 1
    assert len(desk.mailbox.mails) <= 1 and len(desk.chatwoot.assignments) <= 1
    assert len(desk.whatsapp.sent) <= 1 and len(desk.chatwoot.posted) <= 1
    assert handled.applied == (taken > 0)
    for key, *_ in desk.posts:
        assert key is not None and all(0x21 <= ord(c) < 0x7F for c in key)
    for mail in desk.mailbox.mails:
        assert mail["Bcc"] is None and mail["Cc"] is None
        assert len(mail.get_all("To", [])) == 1 and "," not in str(mail["To"])

    again = runner.handle(raw, "sla.actions/0/8")
    if handled.applied:
        assert again.outcomes == ("duplicate",) and _taken(desk) == taken
    if b'"recover"' in raw and handled.applied:
        # Not even a restart, a withdrawal or a corrected copy executes a recovery again.
        record = orjson.loads(raw)
        restarted = desk.runner(runner.ledger.path, recoveries=_deliveries(desk))
        for copy in ({**record, "late": True, "send": "voucher"}, {**record, "withdrawn": True}):
            restarted.handle(orjson.dumps(copy), "sla.actions/0/9")
        assert _taken(desk) == taken
    assert runner.outcomes["dead_letter"] == sum(
        h.dead_letter is not None for h in (handled, again)
    )
    if handled.applied:
        return "carried out"
    return "dead letter" if handled.dead_letter is not None else "settled"


_FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@given(raw=raw_inputs, answer=answers)
@_FUZZ
def test_act_never_raises_and_each_message_ends_one_way_once(
    desk: Desk, raw: bytes, answer: dict[str, Any]
) -> None:
    """Any message ends carried out (in the ledger, each side effect taken once), settled on
    purpose, or in one dead letter with a reason; handling it again repeats no side effect."""
    event(_handle_and_check(desk, raw, answer))


@given(record=near_valid(), answer=answers)
@_FUZZ
def test_near_valid_actions_are_carried_out_once_or_dead_lettered(
    desk: Desk, record: dict[str, Any], answer: dict[str, Any]
) -> None:
    """Good records with at most one odd field, against failing and working servers, end
    carried out once or in a dead letter (or settled on purpose); nothing raises."""
    event(_handle_and_check(desk, orjson.dumps(record), answer))


@given(record=recoveries(), answer=answers)
@_FUZZ
def test_recoveries_are_executed_at_most_once_or_dead_lettered(
    desk: Desk, record: dict[str, Any], answer: dict[str, Any]
) -> None:
    """Recovery records of every kind (some withdrawn, some with an odd field) against failing
    and working servers: one delivery at most, never again after a restart, a withdrawal or a
    corrected copy; anything not executed is settled or dead-lettered with a reason."""
    event(_handle_and_check(desk, orjson.dumps(record), answer))
