"""WhatsApp Cloud API webhooks map to SPEC events as the real samples' README describes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from flows.core.decode import decode_event
from flows.core.events import MessageEvent
from flows.ingest.whatsapp import WhatsAppOptions, map_whatsapp, parse_callback_tag
from tests.ingestkit import whatsapp_sample
from tests.schemakit import validator

pytestmark = pytest.mark.unit

OPTIONS = WhatsAppOptions(pseudonym_key=b"test-key")


def _map(name: str) -> Any:
    return map_whatsapp(whatsapp_sample(name), OPTIONS)


def _one_message(name: str) -> dict[str, Any]:
    mapped = _map(name)
    assert not mapped.unmappable and not mapped.ignored
    messages = [e for e in mapped.events if e["type"] == "message"]
    assert len(messages) == 1
    validator("event.schema.json").validate(messages[0])
    assert isinstance(decode_event(orjson.dumps(messages[0])), MessageEvent)
    return messages[0]


@pytest.mark.parametrize(
    ("name", "kind", "seconds"),
    [
        ("01_message_text.json", "text", 1697043223),
        ("02_message_image.json", "media", 1697043379),
        ("03_message_reply_with_context.json", "text", 1697044746),
    ],
)
def test_inbound_samples_are_customer_messages(name: str, kind: str, seconds: int) -> None:
    """Inbound text, media and quoted replies become one inbound customer message each."""
    event = _one_message(name)
    assert event["direction"] == "inbound"
    assert event["author"] == "customer"
    assert event["kind"] == kind
    assert event["occurred_at"] == seconds * 1000
    assert event["conversation_id"].startswith("wa:1122334455667:")


def test_referral_sets_lead_source_before_the_message() -> None:
    """A Click-to-WhatsApp referral sets `lead_source` at the message's instant, first."""
    mapped = _map("04_message_ctwa_ad_referral.json")
    update, message = mapped.events
    assert update["type"] == "conversation" and update["action"] == "updated"
    assert update["lead_source"] == "click_to_whatsapp"
    assert update["occurred_at"] == message["occurred_at"] == 1697045000000
    assert update["conversation_id"] == message["conversation_id"]
    assert update["event_id"] != message["event_id"]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("05_message_reaction.json", "message_reaction"),
        ("07_status_delivered.json", "status_delivered"),
        ("08_status_read.json", "status_read"),
        ("11_message_edit_change_fragment.json", "message_edit"),
    ],
)
def test_reactions_edits_and_later_statuses_are_ignored_and_counted(name: str, kind: str) -> None:
    """Reactions, edits, delivered and read statuses yield no event and one ignored entry."""
    mapped = _map(name)
    assert mapped.events == []
    assert mapped.unmappable == []
    assert [ignored.kind for ignored in mapped.ignored] == [kind]


def test_first_sent_status_is_the_outbound_reply() -> None:
    """A `sent` status is the business's reply: outbound, by the untagged default agent."""
    event = _one_message("06_status_sent_with_conversation_and_pricing.json")
    assert event["direction"] == "outbound"
    assert (event["author"], event["agent_id"]) == ("agent", "api")
    assert event["kind"] == "text"
    assert event["occurred_at"] == 1698266945000


def test_business_app_echo_is_an_agent_reply_in_the_same_conversation() -> None:
    """An echo typed in the Business app is an agent reply to the customer of sample 01."""
    echo = _one_message("10_smb_message_echo_business_app_text.json")
    inbound = _one_message("01_message_text.json")
    assert (echo["direction"], echo["author"]) == ("outbound", "agent")
    assert echo["agent_id"] == "business_app"
    assert echo["conversation_id"] == inbound["conversation_id"]


def test_conversation_id_holds_no_phone_number() -> None:
    """The thread key is `wa:{phone_number_id}:{pseudonym}`; the customer's number is not in it."""
    event = _one_message("01_message_text.json")
    assert "972987654321" not in orjson.dumps(event).decode()
    other = map_whatsapp(whatsapp_sample("01_message_text.json"), WhatsAppOptions(b"other"))
    assert other.events[0]["conversation_id"] != event["conversation_id"]


def test_status_tags_name_the_author_and_templates() -> None:
    """`biz_opaque_callback_data` sets agent, bot or template; template pricing marks templates."""
    sample = orjson.loads(whatsapp_sample("06_status_sent_with_conversation_and_pricing.json"))
    status = sample["entry"][0]["changes"][0]["value"]["statuses"][0]
    status["biz_opaque_callback_data"] = "agent:a7"
    event = map_whatsapp(orjson.dumps(sample), OPTIONS).events[0]
    assert (event["author"], event["agent_id"], event["kind"]) == ("agent", "a7", "text")
    status["biz_opaque_callback_data"] = "bot"
    status["pricing"]["category"] = "marketing"
    event = map_whatsapp(orjson.dumps(sample), OPTIONS).events[0]
    assert (event["author"], event["kind"]) == ("bot", "template")
    assert "agent_id" not in event
    assert parse_callback_tag("agent:s1;template", OPTIONS) == ("agent", "s1", True)


def test_redelivery_maps_to_the_same_event_ids() -> None:
    """Meta's retries of one notification yield identical event ids (the monitor drops copies)."""
    first = _map("04_message_ctwa_ad_referral.json")
    second = _map("04_message_ctwa_ad_referral.json")
    assert [e["event_id"] for e in first.events] == [e["event_id"] for e in second.events]


def test_batched_entries_map_every_message() -> None:
    """A notification batching two changes maps both messages, each in its own conversation."""
    sample = orjson.loads(whatsapp_sample("01_message_text.json"))
    change = sample["entry"][0]["changes"][0]
    other = orjson.loads(orjson.dumps(change))
    other["value"]["contacts"] = [{"wa_id": "15550001111", "profile": {"name": "X"}}]
    other["value"]["messages"][0].update({"from": "15550001111", "id": "wamid.second"})
    sample["entry"][0]["changes"].append(other)
    mapped = map_whatsapp(orjson.dumps(sample), OPTIONS)
    assert len(mapped.events) == 2
    assert len({e["conversation_id"] for e in mapped.events}) == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b'{"object": "page"}', "not a WhatsApp Cloud API notification"),
        (
            b'{"entry": [{"changes": [{"field": "messages", "value": {"metadata": {}}}]}]}',
            "phone_number_id",
        ),
    ],
)
def test_unmappable_bodies_give_a_reason(body: bytes, reason: str) -> None:
    """A body that is not a usable notification yields no event and a reason naming the fault."""
    mapped = map_whatsapp(body, OPTIONS)
    assert mapped.events == []
    assert len(mapped.unmappable) == 1
    assert reason in mapped.unmappable[0]


def test_other_fields_are_ignored_not_dead_lettered() -> None:
    """Account or template-status notifications are counted as ignored, not refused."""
    body = b'{"entry": [{"changes": [{"field": "account_update", "value": {}}]}]}'
    mapped = map_whatsapp(body, OPTIONS)
    assert mapped.unmappable == []
    assert [i.kind for i in mapped.ignored] == ["field_account_update"]


def test_business_scoped_ids_and_plus_prefixed_numbers() -> None:
    """A status naming the customer only by user id maps; a `+` number is still pseudonymised."""
    sample = orjson.loads(whatsapp_sample("06_status_sent_with_conversation_and_pricing.json"))
    value = sample["entry"][0]["changes"][0]["value"]
    value.pop("contacts")
    value["statuses"][0]["recipient_id"] = "US.13491208655302741918"
    (event,) = map_whatsapp(orjson.dumps(sample), OPTIONS).events
    assert event["conversation_id"] == "wa:1122334455667:US.13491208655302741918"
    value["statuses"][0]["recipient_id"] = "+972987654321"
    (event,) = map_whatsapp(orjson.dumps(sample), OPTIONS).events
    assert "972987654321" not in event["conversation_id"]
    assert event["conversation_id"] == _one_message("01_message_text.json")["conversation_id"]
