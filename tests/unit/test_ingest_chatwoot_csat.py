"""Chatwoot's CSAT survey maps to SPEC §1 `survey` events (issue 24 item 1).

The survey message Chatwoot sends at a resolve is a survey `sent` (never a reply), the rating
the customer gives comes back as a `message_updated` (`rated`, same `survey_id`), and the
activity Chatwoot writes when the WhatsApp window had closed is a `not_sent`. The customer's
comment never leaves the receiver.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from flows.core.policies import load_policies
from flows.core.records import CsatRecord, SlaRecord
from flows.core.redact import redact_raw
from flows.ingest.chatwoot import ChatwootOptions, map_chatwoot, map_message
from flows.ingest.mapping import Mapped
from flows.replay import replay_records
from tests.ingestkit import (
    CSAT_FEEDBACK,
    assert_spec_events,
    change,
    chatwoot_activity,
    chatwoot_conversation_event,
    chatwoot_csat_message,
    chatwoot_message,
    contact_sender,
    dumps,
    user_sender,
)

pytestmark = pytest.mark.unit

RATED_AT = "2025-12-02T04:07:30.000Z"
RATED_MS = 1_764_648_450_000
SENT_MS = 1_764_648_001_500


def _map(payload: dict[str, Any], options: ChatwootOptions | None = None) -> Mapped:
    mapped = map_chatwoot(dumps(payload), "7", options)
    assert_spec_events(mapped.events)
    return mapped


def _everything(mapped: Mapped) -> str:
    """All a mapping hands on (events, ignored reasons, flags, dead-letter reasons) as text."""
    return orjson.dumps(
        [mapped.events, [(i.kind, i.reason) for i in mapped.ignored], mapped.flags],
    ).decode() + " ".join(mapped.unmappable)


# -- sent -------------------------------------------------------------------------------------


@pytest.mark.parametrize("message_type", ["template", 3, "outgoing"])
def test_csat_survey_message_is_a_survey_sent_and_no_message(message_type: object) -> None:
    """The inbox's CSAT message (`template`) or a WhatsApp CSAT template (`outgoing`, no
    sender) is one `survey` `sent` with a stable `survey_id`, and no `message` event."""
    mapped = _map(chatwoot_csat_message(1050, message_type=message_type))  # type: ignore[arg-type]
    assert mapped.unmappable == []
    assert mapped.events == [
        {
            "event_id": "cw:7:m:1050",
            "type": "survey",
            "conversation_id": "cw:7:42",
            "occurred_at": SENT_MS,
            "action": "sent",
            "survey_id": "cw:7:csat:1050",
        }
    ]


def test_private_note_with_csat_content_type_stays_a_note() -> None:
    """Only a message to the customer is a survey: a note is still a note."""
    payload = chatwoot_csat_message(1051, message_type="outgoing")
    payload.update(private=True, sender=user_sender(9))
    (event,) = _map(payload).events
    assert (event["type"], event["kind"]) == ("message", "note")


def test_incoming_message_with_csat_content_type_stays_a_customer_message() -> None:
    """An incoming message is the customer's, whatever its content type."""
    payload = chatwoot_csat_message(1052, message_type="incoming")
    payload["sender"] = contact_sender()
    (event,) = _map(payload).events
    assert (event["type"], event["author"]) == ("message", "customer")


# -- rated ------------------------------------------------------------------------------------


def _rated(rating: object, *, updated_at: str | float | None = RATED_AT, **kw: Any) -> Mapped:
    return _map(
        chatwoot_csat_message(
            1050, event="message_updated", rating=rating, updated_at=updated_at, **kw
        )
    )


def test_rating_update_is_survey_rated_with_the_same_survey_id() -> None:
    """The `message_updated` carrying the customer's rating is `rated`, at the update."""
    mapped = _rated(4)
    assert mapped.unmappable == []
    assert mapped.events == [
        {
            "event_id": f"cw:7:m:1050:rated:4:{RATED_MS // 1000}",
            "type": "survey",
            "conversation_id": "cw:7:42",
            "occurred_at": RATED_MS,
            "action": "rated",
            "survey_id": "cw:7:csat:1050",
            "rating": 4,
        }
    ]


def test_rating_as_digits_is_read_alike() -> None:
    """A rating serialised as text ("5") is the same rating."""
    (event,) = _rated("5").events
    assert event["rating"] == 5


def test_rating_time_falls_back_to_the_conversation_never_before_the_survey() -> None:
    """Without the message's `updated_at` the conversation's is used, never before `sent`."""
    payload = chatwoot_csat_message(1050, event="message_updated", rating=3)
    payload["conversation"]["updated_at"] = RATED_MS / 1000
    assert _map(payload).events[0]["occurred_at"] == RATED_MS
    payload["conversation"]["updated_at"] = 1_764_600_000
    assert _map(payload).events[0]["occurred_at"] == SENT_MS


def test_redelivered_rating_collapses_and_a_re_rating_is_a_new_event() -> None:
    """Both webhooks of one rating give one event id; the customer changing the rating later
    gives a new event (which replaces the rating in the monitor)."""
    first = _rated(5).events[0]
    again = _rated(5).events[0]
    changed = _rated(2, updated_at="2025-12-02T05:00:00.000Z").events[0]
    assert first["event_id"] == again["event_id"]
    assert changed["event_id"] != first["event_id"]
    assert (changed["survey_id"], changed["rating"]) == (first["survey_id"], 2)


@pytest.mark.parametrize("rating", [0, 6, 10, -1, 4.5, True, "five", "", [], {"value": 3}])
def test_rating_outside_one_to_five_is_a_dead_letter_naming_the_rating(rating: object) -> None:
    """A rating that is not an integer 1-5 gives no event and a dead-letter reason."""
    mapped = _rated(rating)
    assert mapped.events == []
    (reason,) = mapped.unmappable
    assert "CSAT rating must be an integer from 1 to 5" in reason


def test_update_without_rating_is_ignored_and_a_receipt_is_a_receipt() -> None:
    """A survey message updated before the customer answered carries nothing to map."""
    (ignored,) = _map(chatwoot_csat_message(event="message_updated", status="read")).ignored
    assert ignored.kind == "message_receipt"
    (ignored,) = _map(chatwoot_csat_message(event="message_updated", status="sent")).ignored
    assert ignored.kind == "csat_unrated"


def test_failed_survey_delivery_is_not_sent_and_no_retraction() -> None:
    """A CSAT message the platform could not deliver is `not_sent` (`delivery_failed`)."""
    payload = chatwoot_csat_message(
        1050, event="message_updated", status="failed", updated_at=RATED_AT
    )
    (event,) = _map(payload).events
    assert (event["type"], event["action"], event["reason"]) == (
        "survey",
        "not_sent",
        "delivery_failed",
    )
    assert (event["survey_id"], event["occurred_at"]) == ("cw:7:csat:1050", RATED_MS)


def test_rest_catch_up_of_a_rated_survey_gives_sent_then_rated() -> None:
    """A CSAT message read back from the REST API with its rating gives both events."""
    message = chatwoot_csat_message(1050, rating=1, updated_at=RATED_AT)
    message["message_type"] = 3
    del message["event"], message["conversation"]
    out = Mapped()
    map_message(message, "7", ChatwootOptions(), out, display_id=42, conversation={"id": 42})
    assert [(e["action"], e.get("rating"), e["occurred_at"]) for e in out.events] == [
        ("sent", None, SENT_MS),
        ("rated", 1, RATED_MS),
    ]


# -- not sent ---------------------------------------------------------------------------------


def test_csat_not_sent_activity_is_survey_not_sent_outside_window() -> None:
    """Chatwoot's "CSAT survey not sent" activity (window closed) is `not_sent`."""
    mapped = _map(chatwoot_activity(1060))
    assert mapped.events == [
        {
            "event_id": "cw:7:m:1060",
            "type": "survey",
            "conversation_id": "cw:7:42",
            "occurred_at": 1_764_752_402_000,
            "action": "not_sent",
            "reason": "outside_window",
        }
    ]


def test_other_activities_stay_ignored_and_a_localised_wording_can_be_configured() -> None:
    """Only Chatwoot's own wording is a `not_sent`; an account's locale is configured."""
    other = _map(chatwoot_activity(1061, content="Conversation was marked resolved by Budi"))
    assert (other.events, [i.kind for i in other.ignored]) == ([], ["activity_message"])
    localised = "Survei CSAT tidak terkirim karena pembatasan pesan keluar"
    assert _map(chatwoot_activity(1062, content=localised)).events == []
    options = ChatwootOptions(csat_not_sent_texts=(localised,))
    (event,) = _map(chatwoot_activity(1062, content=f"  {localised.upper()} "), options).events
    assert event["action"] == "not_sent"


# -- privacy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rating", [5, 9])
def test_feedback_text_appears_nowhere_in_the_output(rating: int) -> None:
    """The customer's comment is in no event, reason or flag, nor in the dead letter's raw."""
    payload = chatwoot_csat_message(1050, event="message_updated", rating=rating)
    body = dumps(payload)
    mapped = map_chatwoot(body, "7")
    assert mapped.events or mapped.unmappable
    assert CSAT_FEEDBACK not in _everything(mapped)
    assert "kecewa" not in _everything(mapped)
    assert CSAT_FEEDBACK not in redact_raw(body)


# -- the monitor sees a survey, not a reply ---------------------------------------------------

POLICY = """
policies:
  - id: default
    bot_replies_count: true
    targets:
      first_response: {within: 5m}
      next_response: {within: 30m}
      resolution: {within: 8h}
      update: {every: 2h}
      service_window: {within: 24h}
"""
RESOLVED_MS = 1_764_648_000_000


def _conversation(survey: str | None) -> list[bytes]:
    """A customer asks, agent 9 answers, the customer writes again and the chat is resolved
    while that question waits; Chatwoot's survey message has the resolve's very instant.

    `survey`: None (no survey message), `input_csat` (the survey, then its rating) or `text`
    (the same message as an ordinary bot template, which a bot reply policy counts).
    """
    t0 = 1_764_644_400
    payloads = [
        chatwoot_conversation_event("conversation_created", created_at=t0),
        chatwoot_message(1001, sender=contact_sender(), created_at="2025-12-02T03:00:05Z"),
        chatwoot_message(
            1002,
            message_type="outgoing",
            sender=user_sender(9),
            created_at="2025-12-02T03:03:00Z",
        ),
        chatwoot_message(1003, sender=contact_sender(), created_at="2025-12-02T03:58:00Z"),
        chatwoot_conversation_event(
            "conversation_status_changed",
            changed=[change("status", "open", "resolved"), change("updated_at", 0, t0 + 3600)],
        ),
    ]
    if survey is not None:
        sent = chatwoot_csat_message(1050, created_at="2025-12-02T04:00:00.000Z")
        sent["content_type"] = survey
        payloads.append(sent)
    if survey == "input_csat":
        payloads.append(
            chatwoot_csat_message(1050, event="message_updated", rating=2, updated_at=RATED_AT)
        )
    events: list[bytes] = []
    for payload in payloads:
        mapped = map_chatwoot(dumps(payload), "7")
        assert mapped.unmappable == []
        events.extend(orjson.dumps(e) for e in mapped.events)
    return events


def test_survey_at_the_resolve_instant_replies_to_nothing_and_rates_the_cycle(
    tmp_path: Any,
) -> None:
    """Replayed, the webhooks with the survey give the same SLA records as without it (the
    waiting question is cancelled by the resolve, not answered by the survey, even with
    `bot_replies_count`), plus the CSAT records of the resolved cycle credited to agent 9;
    the same message as an ordinary bot template would have answered it."""
    path = tmp_path / "policies.yaml"
    path.write_text(POLICY)
    pset = load_policies(path)

    def sla(survey: str | None) -> list[Any]:
        until = RATED_MS + 48 * 3600 * 1000
        return list(replay_records(_conversation(survey), pset, until=until))

    with_survey, without, as_template = sla("input_csat"), sla(None), sla("text")
    clocks = [r for r in with_survey if isinstance(r, SlaRecord)]
    assert clocks == [r for r in without if isinstance(r, SlaRecord)]
    assert clocks != [r for r in as_template if isinstance(r, SlaRecord)]
    waiting = [(r.status, r.at) for r in clocks if r.metric == "next_response"]
    assert waiting[-1] == ("cancelled", RESOLVED_MS)
    csat = [r for r in with_survey if isinstance(r, CsatRecord)]
    assert [(r.cycle, r.survey_id, r.rating, r.agent_id) for r in csat] == [
        (1, "cw:7:csat:1050", None, "9"),
        (1, "cw:7:csat:1050", 2, "9"),
    ]
    assert (csat[-1].sent_at, csat[-1].rated_at) == (RESOLVED_MS, RATED_MS)
