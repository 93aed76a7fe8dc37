"""Real payload quirks are each mapped, or ignored on purpose and counted: never a dead letter."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.ingest.chatwoot import ChatwootOptions, map_chatwoot
from flows.ingest.mapping import Mapped
from flows.ingest.whatsapp import WhatsAppOptions, map_whatsapp
from tests.ingestkit import (
    WA_BSUID,
    WA_NUMBER_ID,
    WA_PHONE,
    assert_spec_events,
    bot_sender,
    change,
    chatwoot_conversation_event,
    chatwoot_message,
    chatwoot_message_updated,
    contact_sender,
    dumps,
    user_sender,
    whatsapp_contact,
    whatsapp_inbound,
    whatsapp_notification,
    whatsapp_status,
)

pytestmark = pytest.mark.unit

WA_OPTIONS = WhatsAppOptions(pseudonym_key=b"test-key")
BOTS = ChatwootOptions(bot_user_ids={"7": frozenset({"15", "22"})})


def _chatwoot(payload: dict[str, Any], options: ChatwootOptions | None = None) -> Mapped:
    mapped = map_chatwoot(dumps(payload), "7", options)
    assert mapped.unmappable == [], mapped.unmappable
    assert_spec_events(mapped.events)
    return mapped


def _whatsapp(body: dict[str, Any]) -> Mapped:
    mapped = map_whatsapp(orjson.dumps(body), WA_OPTIONS)
    assert mapped.unmappable == [], mapped.unmappable
    assert_spec_events(mapped.events)
    return mapped


def _ignored(mapped: Mapped) -> list[str]:
    assert mapped.events == []
    return [i.kind for i in mapped.ignored]


# -- bot and integration users ----------------------------------------------------------------


def test_a_configured_integration_user_writes_as_bot() -> None:
    """A `user` sender listed for the account is `bot` (no agent id); other users stay agents."""
    by_bot = chatwoot_message(1, message_type="outgoing", sender=user_sender(15))
    (event,) = _chatwoot(by_bot, BOTS).events
    assert event["author"] == "bot"
    assert "agent_id" not in event
    by_agent = chatwoot_message(2, message_type="outgoing", sender=user_sender(9))
    assert _chatwoot(by_agent, BOTS).events[0]["agent_id"] == "9"


def test_bot_user_ids_are_per_account() -> None:
    """User 15 of account 8 is not account 7's bot: the list applies to its own account only."""
    payload = chatwoot_message(message_type="outgoing", sender=user_sender(15))
    options = ChatwootOptions(bot_user_ids={"8": frozenset({"15"})})
    assert _chatwoot(payload, options).events[0]["author"] == "agent"


def test_bot_user_notes_and_templates_are_bot() -> None:
    """A configured bot user's note and template are authored `bot` too; agent bots still are."""
    note = chatwoot_message(message_type="outgoing", sender=user_sender(22), private=True)
    assert _chatwoot(note, BOTS).events[0]["author"] == "bot"
    template = chatwoot_message(message_type="template", sender=user_sender(22))
    assert _chatwoot(template, BOTS).events[0]["author"] == "bot"
    agent_bot = chatwoot_message(message_type="outgoing", sender=bot_sender())
    assert _chatwoot(agent_bot, BOTS).events[0]["author"] == "bot"


# -- message_type, sender, timestamps ---------------------------------------------------------


@pytest.mark.parametrize(
    ("message_type", "expected"),
    [
        ("incoming", ("inbound", "customer", "text")),
        (0, ("inbound", "customer", "text")),
        ("0", ("inbound", "customer", "text")),
        ("outgoing", ("outbound", "agent", "text")),
        (1, ("outbound", "agent", "text")),
        ("Outgoing", ("outbound", "agent", "text")),
        ("template", ("outbound", "agent", "template")),
        (3, ("outbound", "agent", "template")),
    ],
)
def test_message_type_as_text_integer_or_digits(message_type: object, expected: tuple[str]) -> None:
    """`message_type` maps alike as Chatwoot's text, its integer, or a string of its digits."""
    sender = contact_sender() if expected[0] == "inbound" else user_sender(4)
    payload = chatwoot_message(sender=sender)
    payload["message_type"] = message_type
    (event,) = _chatwoot(payload).events
    assert (event["direction"], event["author"], event["kind"]) == expected


@pytest.mark.parametrize("message_type", ["activity", 2, "2"])
def test_activity_in_every_spelling_is_ignored(message_type: object) -> None:
    """Activity messages are ignored as `activity_message` whichever way the type is written."""
    payload = chatwoot_message(sender=None)
    payload["message_type"] = message_type
    assert _ignored(_chatwoot(payload)) == ["activity_message"]


@pytest.mark.parametrize("message_type", [7, "story", None, 1.5])
def test_unknown_message_type_is_ignored_and_counted(message_type: object) -> None:
    """A `message_type` Chatwoot does not send is ignored as `unknown_message_type`."""
    payload = chatwoot_message(sender=contact_sender())
    payload["message_type"] = message_type
    assert _ignored(_chatwoot(payload)) == ["unknown_message_type"]


@pytest.mark.parametrize(
    ("sender", "sender_type", "author"),
    [
        ({"id": 31, "name": "Siti Nurhaliza"}, None, "system"),
        ({"id": 4, "name": "Budi Santoso"}, "User", "agent"),
        ({"id": 3, "name": "Asisten"}, "AgentBot", "bot"),
        ({"id": 3, "name": "Asisten"}, "Captain::Assistant", "bot"),
        ({"id": 31, "name": "Siti Nurhaliza"}, "Contact", "system"),
    ],
)
def test_senders_without_type_use_the_message_sender_type(
    sender: dict[str, Any], sender_type: str | None, author: str
) -> None:
    """A sender without `type` is read from the message's `sender_type`, else as a contact."""
    payload = chatwoot_message(message_type="outgoing", sender=sender)
    if sender_type is not None:
        payload["sender_type"] = sender_type
    assert _chatwoot(payload).events[0]["author"] == author


def test_contact_without_type_writes_a_customer_message() -> None:
    """An incoming message from a contact with no `type` key is the customer's, unflagged."""
    mapped = _chatwoot(chatwoot_message(sender={"id": 31, "name": "Siti Nurhaliza"}))
    assert mapped.events[0]["author"] == "customer"
    assert mapped.flags == []


@pytest.mark.parametrize(
    "created_at",
    ["2025-12-02T03:00:05Z", 1_764_644_405, 1_764_644_405.0, "1764644405", "1764644405.000",
     "1764644405000", 1_764_644_405_000],
)  # fmt: skip
def test_message_times_as_iso_epoch_numbers_or_numeric_strings(created_at: object) -> None:
    """ISO strings, epoch seconds or milliseconds, as numbers or digit strings, all read alike."""
    payload = chatwoot_message(sender=contact_sender())
    payload["created_at"] = created_at
    assert _chatwoot(payload).events[0]["occurred_at"] == 1_764_644_405_000


def test_conversation_change_time_as_a_numeric_string() -> None:
    """A conversation's `updated_at` sent as a string of epoch seconds is read as the instant."""
    payload = chatwoot_conversation_event(
        "conversation_updated", changed=[change("priority", None, "high")]
    )
    payload["updated_at"] = "1764644460.5"
    assert _chatwoot(payload).events[0]["occurred_at"] == 1_764_644_460_500


def test_whatsapp_timestamp_as_a_number() -> None:
    """A WhatsApp `timestamp` sent as a number instead of a string of seconds reads the same."""
    as_text = _whatsapp(whatsapp_inbound(timestamp="1764644400")).events
    as_number = _whatsapp(whatsapp_inbound(timestamp=1_764_644_400)).events
    assert as_text == as_number
    assert as_number[0]["occurred_at"] == 1_764_644_400_000


# -- updates, receipts, automations -----------------------------------------------------------


@pytest.mark.parametrize("status", ["delivered", "read", 1, 2])
def test_message_updated_receipts_are_ignored_and_counted(status: object) -> None:
    """A `message_updated` that only says delivered or read is ignored as `message_receipt`."""
    payload = chatwoot_message_updated(status=status, external_error=None)  # type: ignore[arg-type]
    assert _ignored(_chatwoot(payload)) == ["message_receipt"]


def test_other_message_updates_are_ignored_and_counted() -> None:
    """An edit (status still `sent`) or an update without status is ignored as `message_updated`."""
    edit = chatwoot_message_updated(status="sent", external_error=None)
    assert _ignored(_chatwoot(edit)) == ["message_updated"]
    del edit["status"]
    assert _ignored(_chatwoot(edit)) == ["message_updated"]


@pytest.mark.parametrize(
    "event", ["automation_event.message_created", "automation_event.conversation_updated"]
)
def test_automation_events_are_ignored_and_counted(event: str) -> None:
    """Automation-rule webhooks of any kind are ignored as `automation_event`, never mapped."""
    payload = chatwoot_message(sender=contact_sender())
    payload["event"] = event
    assert _ignored(_chatwoot(payload)) == ["automation_event"]


# -- WhatsApp statuses and system messages ----------------------------------------------------


@pytest.mark.parametrize("status", ["delivered", "read", "played", "captured"])
def test_later_whatsapp_statuses_are_ignored_and_counted(status: str) -> None:
    """Delivered, read, played (voice) and captured statuses are no message: `status_<value>`."""
    assert _ignored(_whatsapp(whatsapp_status(status=status))) == [f"status_{status}"]


def test_an_unknown_whatsapp_status_is_ignored_as_other() -> None:
    """A status value this mapping does not know is ignored as `status_other`."""
    assert _ignored(_whatsapp(whatsapp_status(status="held_for_quality"))) == ["status_other"]


@pytest.mark.parametrize("kind", ["user_changed_number", "user_changed_user_id"])
def test_identity_change_system_messages_are_ignored_and_counted(kind: str) -> None:
    """A `system` notice that the customer changed number or BSUID is `system_<type>`."""
    message = {
        "from": WA_PHONE,
        "id": "wamid.SYS1",
        "timestamp": "1764644500",
        "type": "system",
        "system": {"body": "User Siti changed from 6281234567890", "type": kind},
    }
    body = whatsapp_notification({"messages": [message]})
    assert _ignored(_whatsapp(body)) == [f"system_{kind}"]


def test_other_system_messages_are_ignored_as_system() -> None:
    """A `system` message of another type is ignored as `message_system`."""
    message = {"from": WA_PHONE, "id": "wamid.S2", "timestamp": "1764644500", "type": "system"}
    assert _ignored(_whatsapp(whatsapp_notification({"messages": [message]}))) == ["message_system"]


# -- business-scoped user ids -----------------------------------------------------------------


def _conversation(body: dict[str, Any]) -> str:
    (event,) = _whatsapp(body).events
    conversation_id: str = event["conversation_id"]
    return conversation_id


def test_one_customer_keeps_one_conversation_whichever_ids_a_payload_carries() -> None:
    """Phone and BSUID, phone only, BSUID beside a contact with the phone: one conversation."""
    both = _conversation(whatsapp_inbound("wamid.A"))
    phone_only = _conversation(whatsapp_inbound("wamid.B", user_id=None))
    bsuid_in_item = whatsapp_inbound("wamid.C", phone=None, contacts=False)
    bsuid_in_item["entry"][0]["changes"][0]["value"]["contacts"] = [whatsapp_contact()]
    via_contact = _conversation(bsuid_in_item)
    reply = _conversation(whatsapp_status("wamid.D", "sent"))
    failed = _conversation(whatsapp_status("wamid.D", "failed", user_id=None, contacts=False))
    assert both == phone_only == via_contact == reply == failed
    assert both.startswith(f"wa:{WA_NUMBER_ID}:p")
    assert WA_PHONE not in both and WA_BSUID not in both


def test_a_customer_with_a_hidden_number_is_known_by_bsuid() -> None:
    """Without any phone number, the BSUID is the customer's key in every payload."""
    inbound = _conversation(whatsapp_inbound("wamid.E", phone=None))
    reply = _conversation(whatsapp_status("wamid.F", "sent", phone=None))
    assert inbound == reply == f"wa:{WA_NUMBER_ID}:{WA_BSUID}"


def test_batched_messages_find_their_own_contact() -> None:
    """In a batch of two customers, a BSUID-only message takes the phone of its own contact."""
    other = whatsapp_contact(phone="6289900011122", user_id="ID.5550001112223")
    body = whatsapp_inbound("wamid.G", phone=None, contacts=False)
    body["entry"][0]["changes"][0]["value"]["contacts"] = [other, whatsapp_contact()]
    assert _conversation(body) == _conversation(whatsapp_inbound("wamid.H"))


def test_a_lone_contact_of_another_customer_is_not_used() -> None:
    """A lone `contacts[]` entry naming another BSUID does not lend its phone number."""
    body = whatsapp_inbound("wamid.I", phone=None, contacts=False)
    body["entry"][0]["changes"][0]["value"]["contacts"] = [
        whatsapp_contact(phone="6289900011122", user_id="ID.5550001112223")
    ]
    assert _conversation(body) == f"wa:{WA_NUMBER_ID}:{WA_BSUID}"


# -- never a crash ----------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
CHATWOOT_KEYS = st.sampled_from(
    ["event", "message_type", "status", "sender", "sender_type", "created_at", "updated_at",
     "conversation", "inbox", "id", "private", "content_attributes", "changed_attributes",
     "priority", "meta", "custom_attributes", "labels", "display_id"]
)  # fmt: skip
CHATWOOT_BASES = {
    "message_created": lambda: chatwoot_message(sender=contact_sender()),
    "message_updated": chatwoot_message_updated,
    "conversation_created": lambda: chatwoot_conversation_event("conversation_created"),
    "conversation_updated": lambda: chatwoot_conversation_event(
        "conversation_updated", changed=[change("assignee_id", None, 5)]
    ),
}


@settings(max_examples=120, deadline=None)
@given(
    base=st.sampled_from(sorted(CHATWOOT_BASES)),
    changes=st.dictionaries(CHATWOOT_KEYS, JSON_VALUES, max_size=4),
)
def test_chatwoot_fields_of_any_shape_never_crash(base: str, changes: dict[str, Any]) -> None:
    """Whatever a field holds, the mapper answers with events, ignored parts or a dead letter."""
    payload = {**CHATWOOT_BASES[base](), **changes}
    mapped = map_chatwoot(dumps(payload), "7")
    assert mapped.events or mapped.ignored or mapped.unmappable
    assert_spec_events(mapped.events)


WA_KEYS = st.sampled_from(
    ["status", "id", "timestamp", "recipient_id", "recipient_user_id", "errors", "type", "from",
     "from_user_id", "system", "referral", "pricing", "conversation", "biz_opaque_callback_data"]
)  # fmt: skip
WA_VALUE_KEYS = st.sampled_from(["contacts", "messages", "statuses", "metadata"])


@settings(max_examples=120, deadline=None)
@given(
    inbound=st.booleans(),
    changes=st.dictionaries(WA_KEYS, JSON_VALUES, max_size=4),
    value_changes=st.dictionaries(WA_VALUE_KEYS, JSON_VALUES, max_size=1),
)
def test_whatsapp_items_of_any_shape_never_crash(
    inbound: bool, changes: dict[str, Any], value_changes: dict[str, Any]
) -> None:
    """Whatever a message or status holds, the mapper answers with events, ignored or a reason."""
    body = whatsapp_inbound() if inbound else whatsapp_status("wamid.Z", "failed")
    value = body["entry"][0]["changes"][0]["value"]
    value["messages" if inbound else "statuses"][0].update(changes)
    value.update(value_changes)
    mapped = map_whatsapp(json.dumps(body).encode(), WA_OPTIONS)
    assert mapped.events or mapped.ignored or mapped.unmappable
    assert_spec_events(mapped.events)
