"""A message's `channel` is the one the customer wrote on (SPEC §4), for every inbox source."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from flows.ingest.chatwoot import ChatwootOptions, map_chatwoot, map_message
from flows.ingest.mapping import Mapped
from flows.ingest.whatsapp import WhatsAppOptions, map_whatsapp
from tests.ingestkit import (
    assert_spec_events,
    chatwoot_message,
    contact_sender,
    dumps,
    user_sender,
    whatsapp_inbound,
    whatsapp_notification,
    whatsapp_status,
)

pytestmark = pytest.mark.unit


def _mapped(payload: dict[str, Any], options: ChatwootOptions | None = None) -> Mapped:
    mapped = map_chatwoot(dumps(payload), "7", options)
    assert mapped.unmappable == []
    assert_spec_events(mapped.events)
    return mapped


def _channel(payload: dict[str, Any], options: ChatwootOptions | None = None) -> str:
    (event,) = _mapped(payload, options).events
    channel: str = event["channel"]
    return channel


@pytest.mark.parametrize(
    ("channel_type", "source_id", "expected"),
    [
        ("Channel::Whatsapp", "6281234567890", "whatsapp"),
        ("Channel::Telegram", "551234987", "telegram"),
        ("Channel::WebWidget", "239a4135-0f7b-4fd5-b108-17f84e596aef", "web"),
        ("Channel::Email", "siti@example.com", "email"),
        ("Channel::Sms", "+6281234567890", "sms"),
        ("Channel::TwilioSms", "+6281234567890", "sms"),
        ("Channel::TwilioSms", "whatsapp:+6281234567890", "whatsapp"),
        ("Channel::FacebookPage", "4410923387", "facebook"),
        ("Channel::Instagram", "17841400000000", "instagram"),
        ("Channel::Line", "U4af4980629", "line"),
        ("Channel::Api", "6281234567890@s.whatsapp.net", "whatsapp"),
    ],
)
def test_the_inbox_channel_type_sets_the_channel(
    channel_type: str, source_id: str, expected: str
) -> None:
    """Each Chatwoot channel type maps to its channel; Twilio and bridges carrying WhatsApp too."""
    payload = chatwoot_message(sender=contact_sender(), channel=channel_type, source_id=source_id)
    assert _channel(payload) == expected


def test_a_telegram_reply_is_telegram_whatever_the_default() -> None:
    """A Telegram inbox's customer message and agent reply are both `telegram`, never WhatsApp."""
    inbound = chatwoot_message(1, sender=contact_sender(), channel="Channel::Telegram")
    reply = chatwoot_message(
        2, message_type="outgoing", sender=user_sender(), channel="Channel::Telegram"
    )
    options = ChatwootOptions(fallback_channel="whatsapp")
    assert [_channel(inbound, options), _channel(reply, options)] == ["telegram", "telegram"]


def test_a_configured_inbox_names_its_channel() -> None:
    """An API inbox configured as WhatsApp is `whatsapp`; that inbox id elsewhere is not."""
    payload = chatwoot_message(
        sender=contact_sender(), channel="Channel::Api", source_id="c0ffee-42", inbox_id=12
    )
    options = ChatwootOptions(inbox_channels={"7": {"12": "whatsapp"}})
    assert _channel(payload, options) == "whatsapp"
    elsewhere = ChatwootOptions(inbox_channels={"8": {"12": "whatsapp"}})
    mapped = _mapped(payload, elsewhere)
    assert mapped.events[0]["channel"] == "api"
    assert mapped.flags == ["api_inbox_unconfigured"]


def test_the_inbox_configuration_wins_over_the_channel_type() -> None:
    """A configured inbox keeps its channel even when its payload names another type."""
    payload = chatwoot_message(sender=contact_sender(), channel="Channel::Sms", inbox_id=5)
    options = ChatwootOptions(inbox_channels={"7": {"5": "whatsapp"}})
    assert _channel(payload, options) == "whatsapp"


def test_no_channel_type_gives_the_fallback_and_a_flag() -> None:
    """A payload naming no channel type is `unknown` (configurable), flagged `channel_unknown`."""
    payload = chatwoot_message(sender=contact_sender(), channel=None)
    mapped = _mapped(payload)
    assert mapped.events[0]["channel"] == "unknown"
    assert mapped.flags == ["channel_unknown"]
    assert _channel(payload, ChatwootOptions(fallback_channel="web")) == "web"


def test_an_unknown_channel_type_is_named_after_it_and_flagged() -> None:
    """A channel type this mapping does not know yet is its name in snake case, flagged."""
    mapped = _mapped(chatwoot_message(sender=contact_sender(), channel="Channel::GoogleChat"))
    assert mapped.events[0]["channel"] == "google_chat"
    assert mapped.flags == ["unknown_channel_type"]


def test_rest_messages_take_the_channel_of_their_conversation() -> None:
    """A REST message (the catch-up) takes the channel type from its conversation's `meta`."""
    conversation = {"id": 42, "inbox_id": 2, "meta": {"channel": "Channel::Instagram"}}
    message = {
        "id": 9,
        "message_type": 0,
        "created_at": 1_764_644_400,
        "sender": {"id": 31, "type": "contact"},
    }
    out = Mapped()
    map_message(message, "7", ChatwootOptions(), out, display_id=42, conversation=conversation)
    assert [e["channel"] for e in out.events] == ["instagram"]


def test_whatsapp_cloud_api_events_are_always_whatsapp() -> None:
    """Customer messages, replies and echoes of the Cloud API are all `channel: whatsapp`."""
    echo = whatsapp_notification(
        {
            "message_echoes": [
                {"id": "wamid.E1", "to": "6281234567890", "timestamp": "1764644470", "type": "text"}
            ]
        },
        field="smb_message_echoes",
    )
    bodies = [whatsapp_inbound(), whatsapp_status(), echo]
    events = [e for b in bodies for e in map_whatsapp(orjson.dumps(b), WhatsAppOptions()).events]
    assert len(events) == 3
    assert {e["channel"] for e in events} == {"whatsapp"}
