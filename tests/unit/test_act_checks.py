"""What `slawatch act` accepts from the actions topic, and how record values reach headers and URLs.

Pure checks (`flows.ingest.action_check`): every field of an action record, the SPEC §1 id
bounds, and the escaping that keeps record values out of header syntax and URL paths.
"""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.ingest.action_check import (
    MAX_ID_CHARS,
    Order,
    Refused,
    chatwoot_target,
    check_action,
    header_text,
    header_token,
    single_address,
)

pytestmark = pytest.mark.unit

GOOD: dict[str, Any] = {
    "type": "action",
    "action": "notify",
    "trigger": "breached",
    "conversation_id": "cw:7:43",
    "cycle": 1,
    "metric": "first_response",
    "seq": 1,
    "at": "2025-12-02T01:46:40.000Z",
    "policy_id": "hot-leads",
    "from_agent": "sdr.rina",
    "to_agent": None,
    "notify": "spv.hendra",
    "reason": "first_response breached: no reply",
    "emitted_at": "2025-12-02T01:46:41.000Z",
}


def _check(**changes: Any) -> Order | Refused:
    record = {**GOOD, **changes}
    return check_action(orjson.dumps({k: v for k, v in record.items() if v is not ...}))


def test_a_monitor_action_record_is_an_order_with_its_identity() -> None:
    """The record the monitor writes passes every check; its identity is the ledger's key."""
    order = _check()
    assert isinstance(order, Order)
    assert order.key == "notify|breached|cw:7:43|1|first_response|1"
    assert order.record["emitted_at"] == "2025-12-02T01:46:41.000Z"


REFUSALS = [
    ({"conversation_id": "cw:7:4\r\n3"}, "field 'conversation_id' must not contain control"),
    ({"conversation_id": "cw:7:43\x00"}, "U+0000 at position 7"),
    ({"conversation_id": ""}, "field 'conversation_id' must not be empty"),
    ({"conversation_id": "c" * (MAX_ID_CHARS + 1)}, "over the 256-character limit"),
    ({"conversation_id": 43}, "field 'conversation_id' must be a string, not an integer"),
    ({"conversation_id": ...}, "missing field 'conversation_id'"),
    ({"to_agent": "ae.\tdewi"}, "field 'to_agent' must not contain control characters"),
    ({"from_agent": ["a1"]}, "field 'from_agent' must be a string or null, not an array"),
    ({"notify": "spv\nBcc: all@example.com"}, "field 'notify' must not contain control"),
    ({"policy_id": ""}, "field 'policy_id' must not be empty"),
    ({"metric": "first\rresponse"}, "field 'metric' must not contain control characters"),
    ({"action": "escalate"}, "field 'action' must be one of 'notify', 'reassign', 'recover'"),
    ({"action": None}, "field 'action' must be one of"),
    ({"trigger": "late"}, "field 'trigger' must be one of 'warning', 'breached', 'recovery'"),
    ({"cycle": "1"}, "field 'cycle' must be an integer, not a string"),
    ({"cycle": True}, "field 'cycle' must be an integer, not a boolean"),
    ({"seq": 0}, "field 'seq' must be at least 1, not 0"),
    ({"at": "yesterday"}, "field 'at'"),
    ({"at": ...}, "missing field 'at'"),
    ({"reason": None}, "field 'reason' must be a string, not null"),
    ({"type": "sla"}, "field 'type' must be 'action', not 'sla'"),
    ({"type": ...}, "missing field 'type'"),
]


@pytest.mark.parametrize(("changes", "expected"), REFUSALS)
def test_a_record_act_cannot_carry_out_is_refused_naming_the_field(
    changes: dict[str, Any], expected: str
) -> None:
    """Each malformed field gives a refusal whose reason names that field and what is wrong."""
    refused = _check(**changes)
    assert isinstance(refused, Refused)
    assert expected in refused.reason


def test_bytes_that_are_no_action_object_are_refused_with_a_reason() -> None:
    """No value, bad JSON and a JSON array are refused, each saying which."""
    assert check_action(None) == Refused("message has no value")
    bad_json = check_action(b'{"type": "action",')
    assert isinstance(bad_json, Refused) and "not valid JSON" in bad_json.reason
    assert check_action(b"[1]") == Refused("action must be a JSON object, not an array")


RECOVERY: dict[str, Any] = {
    "action": "recover",
    "trigger": "recovery",
    "metric": "resolution",
    "notify": None,
    "send": "apology_voucher",
    "rule": "r1",
    "reason": "resolution breached 1h ago: recovery apology_voucher",
}


def test_a_recovery_record_is_an_order_whose_identity_names_its_rule() -> None:
    """A SPEC §6 `recover` record passes; its identity is conversation, cycle, metric, seq and
    rule (not `send`), and it is not withdrawn unless it says so."""
    order = _check(**RECOVERY)
    assert isinstance(order, Order)
    assert (order.send, order.rule, order.withdrawn) == ("apology_voucher", "r1", False)
    assert order.key == "recover|recovery|cw:7:43|1|resolution|1|r1"
    other_offer = _check(**{**RECOVERY, "send": "free_shipping"})
    assert isinstance(other_offer, Order) and other_offer.key == order.key
    by_position = _check(**{**RECOVERY, "rule": 0, "withdrawn": True})
    assert isinstance(by_position, Order) and by_position.withdrawn
    assert by_position.key == "recover|recovery|cw:7:43|1|resolution|1|0"


RECOVERY_REFUSALS = [
    ({"send": ...}, "missing field 'send'"),
    ({"send": ""}, "field 'send' must not be empty"),
    ({"send": "apology\r\nX"}, "field 'send' must not contain control characters"),
    ({"send": 7}, "field 'send' must be a string, not an integer"),
    ({"rule": ...}, "missing field 'rule'"),
    ({"rule": -1}, "field 'rule' must be at least 0, not -1"),
    ({"rule": True}, "field 'rule' must be a string or an integer, not a boolean"),
    ({"rule": "r\n1"}, "field 'rule' must not contain control characters"),
    ({"trigger": "breached"}, "field 'trigger' must be 'recovery' for action 'recover'"),
    ({"withdrawn": "yes"}, "field 'withdrawn' must be a boolean, not a string"),
    ({"withdrawn": None}, "field 'withdrawn' must be a boolean, not null"),
]


@pytest.mark.parametrize(("changes", "expected"), RECOVERY_REFUSALS)
def test_a_malformed_recovery_is_refused_naming_the_field(
    changes: dict[str, Any], expected: str
) -> None:
    """A `recover` record with a bad `send`, `rule`, `trigger` or `withdrawn` is refused."""
    refused = _check(**{**RECOVERY, **changes})
    assert isinstance(refused, Refused)
    assert expected in refused.reason


def test_ids_at_the_bounds_are_accepted() -> None:
    """A 256-character id and one with non-ASCII text or a U+2028 (not a control) pass."""
    for conversation in ("c" * MAX_ID_CHARS, "cw:7:Siti-é", "wa:1\u2028x"):
        assert isinstance(_check(conversation_id=conversation), Order)


def test_a_plain_identity_is_its_own_header_token() -> None:
    """Plain ASCII identities reach `Idempotency-Key` unchanged (receivers' keys stay stable)."""
    key = "notify|breached|cw:7:43|1|first_response|1"
    assert header_token(key) == key


@given(st.text(max_size=80))
def test_a_header_token_is_printable_ascii_and_reversible(text: str) -> None:
    """Any text becomes one printable-ASCII token without spaces, and decodes back to itself."""
    from urllib.parse import unquote  # noqa: PLC0415

    token = header_token(text)
    assert all(0x21 <= ord(char) < 0x7F for char in token)
    assert unquote(token) == text


@given(st.text(max_size=80))
def test_any_text_makes_one_subject_line(text: str) -> None:
    """Any text in a subject (after `header_text`) is taken by the mail library as one header."""
    message = EmailMessage()
    message["Subject"] = header_text(f"[slawatch] x on {text}")
    message["To"] = "hendra@example.com"
    message.set_content("body")
    parsed = message_from_bytes(message.as_bytes())
    assert parsed.keys() == [
        "Subject",
        "To",
        "Content-Type",
        "Content-Transfer-Encoding",
        "MIME-Version",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "a@x.com, b@y.com",
        "Hendra <hendra@example.com>",
        "hendra@example.com\r\nBcc: all@example.com",
        '"a b"@example.com',
        "hendra@exämple.com",
        "@example.com",
        "hendra@",
        "hendra@example.com (boss)",
    ],
)
def test_only_one_plain_address_is_an_address(text: str) -> None:
    """Lists, display names, comments, line breaks and non-ASCII are not one plain address."""
    assert single_address(text) is None


def test_a_plain_address_is_kept() -> None:
    """A plain local@host address passes as it is."""
    assert single_address("hendra.s+sla@mail.example.com") == "hendra.s+sla@mail.example.com"


@pytest.mark.parametrize(
    ("conversation", "target"),
    [
        ("cw:7:42", ("7", "42")),
        ("cw:7:4/2", None),
        ("cw:7:../../admin", None),
        ("cw:7:٤٢", None),
        ("cw:7:²", None),
        ("cw:7:42:1", None),
        ("wa:1122:pabc", None),
    ],
)
def test_only_decimal_chatwoot_ids_reach_the_url_path(
    conversation: str, target: tuple[str, str] | None
) -> None:
    """A URL path gets the account and display id only when both are ASCII decimal numbers."""
    assert chatwoot_target(conversation) == target
