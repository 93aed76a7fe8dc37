"""Chatwoot teams reach the monitor as `team_id`, so `team_ownership` (the OLA) runs on them.

There are no captured Chatwoot payloads in ../shared/data (its README lists WhatsApp Cloud
samples and two CSV data sets), so the payloads are the builders of `tests/ingestkit.py`, which
follow Chatwoot's documented webhook shapes: a conversation's `meta.team` is `{id, name}`
(`Team#push_event_data`), a message's `conversation` is the same conversation data, and a team
change is `conversation_updated` with `changed_attributes: [{"team_id": {previous_value,
current_value}}]`.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from flows.core.decode import decode_event
from flows.core.events import ConversationEvent, Rejected
from flows.core.policies import load_policies
from flows.core.records import SlaRecord
from flows.ingest.chatwoot import ChatwootOptions, map_chatwoot
from flows.ingest.mapping import Mapped
from flows.ingest.settings import IngestSettings
from flows.replay import replay_records
from tests.ingestkit import (
    change,
    chatwoot_conversation_event,
    chatwoot_message,
    contact_sender,
    dumps,
    user_sender,
)
from tests.schemakit import validator

pytestmark = pytest.mark.unit

TEAMS = ChatwootOptions(teams={"3": "l1", "4": "l2"})
T0 = 1_764_644_400


def _map(payload: dict[str, Any], options: ChatwootOptions = TEAMS) -> Mapped:
    mapped = map_chatwoot(dumps(payload), "7", options)
    assert mapped.unmappable == []
    for event in mapped.events:
        validator("event.schema.json").validate(event)
        assert not isinstance(decode_event(orjson.dumps(event)), Rejected)
    return mapped


def _with_team(payload: dict[str, Any], team: object) -> dict[str, Any]:
    """Put `team` as the message's conversation's `meta.team` (Chatwoot's `{id, name}`)."""
    payload["conversation"]["meta"]["team"] = team
    return payload


def _iso(seconds: int) -> str:
    return f"2025-12-02T03:{(seconds - T0) // 60:02d}:{(seconds - T0) % 60:02d}Z"


# -- conversation events ------------------------------------------------------------------------


def test_created_conversation_names_the_mapped_team() -> None:
    """`conversation_created` with `meta.team.id` 3 opens with the policy's team name `l1`."""
    mapped = _map(chatwoot_conversation_event("conversation_created", team=3))
    assert [e.get("team_id") for e in mapped.events] == ["l1"]
    assert mapped.flags == []


def test_without_a_map_the_team_is_the_chatwoot_id_and_an_unlisted_team_is_flagged() -> None:
    """No map: `team_id` is "3"; a map that does not list team 9 keeps "9", flagged."""
    plain = _map(chatwoot_conversation_event("conversation_created", team=3), ChatwootOptions())
    assert (plain.events[0]["team_id"], plain.flags) == ("3", [])
    unlisted = _map(chatwoot_conversation_event("conversation_created", team=9))
    assert (unlisted.events[0]["team_id"], unlisted.flags) == ("9", ["team_unmapped"])


def test_team_change_is_an_update_and_the_assignment_carries_no_team() -> None:
    """Team 3 → 4 with Chatwoot auto-assigning agent 5: `updated team_id l2` and a bare
    `assigned` (the team travels on the conversation event only)."""
    changed = [change("team_id", 3, 4), change("assignee_id", 9, 5)]
    payload = chatwoot_conversation_event(
        "conversation_updated", changed=changed, team=4, assignee=5
    )
    mapped = _map(payload)
    by_type = {e["type"]: e for e in mapped.events}
    assert (by_type["conversation"]["action"], by_type["conversation"]["team_id"]) == (
        "updated",
        "l2",
    )
    assert by_type["assignment"]["agent_id"] == "5"
    assert "team_id" not in by_type["assignment"]


def test_team_removal_clears_the_team() -> None:
    """`team_id` 4 → null is `updated` with `team_id: null`, which the decoder reads as a clear."""
    payload = chatwoot_conversation_event(
        "conversation_updated", changed=[change("team_id", 4, None)]
    )
    (event,) = _map(payload).events
    assert event["team_id"] is None
    decoded = decode_event(orjson.dumps(event))
    assert isinstance(decoded, ConversationEvent)
    assert dict(decoded.attrs) == {"team_id": None}


def test_meta_team_of_another_change_is_not_read() -> None:
    """A status change whose payload shows team 4 in `meta` sets no team: `meta` may already
    be a later state, `changed_attributes` is the change."""
    payload = chatwoot_conversation_event(
        "conversation_updated", changed=[change("status", "pending", "open")], team=4
    )
    assert all("team_id" not in e for e in _map(payload).events)


def test_a_team_id_that_is_no_id_is_a_dead_letter() -> None:
    """`team_id` changed to an object is unmappable with a reason naming the team id."""
    payload = chatwoot_conversation_event(
        "conversation_updated", changed=[change("team_id", 3, {"id": 4})]
    )
    mapped = map_chatwoot(dumps(payload), "7", TEAMS)
    assert mapped.events == []
    assert ["team id" in reason for reason in mapped.unmappable] == [True]


# -- messages -----------------------------------------------------------------------------------


def test_customer_message_brings_its_conversation_team_first() -> None:
    """An incoming message whose conversation is team 4's is preceded by `updated team_id l2`
    at the same instant, with an id derived from the message (a redelivery collapses)."""
    payload = _with_team(chatwoot_message(1001, sender=contact_sender()), {"id": 4, "name": "L2"})
    mapped = _map(payload)
    team, message = mapped.events
    assert (team["type"], team["action"], team["team_id"]) == ("conversation", "updated", "l2")
    assert team["event_id"] == "cw:7:m:1001:team"
    assert (team["conversation_id"], team["occurred_at"]) == (
        message["conversation_id"],
        message["occurred_at"],
    )
    assert message["type"] == "message"
    assert _map(payload).events == mapped.events


@pytest.mark.parametrize(
    ("message_type", "private", "team"),
    [
        ("outgoing", False, {"id": 4, "name": "L2"}),
        ("incoming", True, {"id": 4, "name": "L2"}),
        ("incoming", False, None),
    ],
    ids=["agent-reply", "note", "no-team"],
)
def test_only_customer_messages_of_a_team_bring_the_team(
    message_type: str, private: bool, team: object
) -> None:
    """Agent replies, notes and conversations without a team add no team event."""
    payload = chatwoot_message(message_type=message_type, sender=user_sender(5), private=private)
    events = _map(_with_team(payload, team)).events
    assert [e["type"] for e in events] == ["message"]


def test_a_bad_team_on_a_message_is_ignored_and_the_message_kept() -> None:
    """A message whose conversation team id is not an id keeps its message, counted ignored."""
    payload = _with_team(chatwoot_message(sender=contact_sender()), {"id": "a b", "name": "x"})
    mapped = _map(payload)
    assert [e["type"] for e in mapped.events] == ["message"]
    assert [i.kind for i in mapped.ignored] == ["bad_team_id"]


# -- settings -----------------------------------------------------------------------------------


def test_team_map_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """SLAWATCH_INGEST_CHATWOOT_TEAMS='{"3": "l2"}' maps Chatwoot team 3 to `l2`."""
    monkeypatch.setenv("SLAWATCH_INGEST_CHATWOOT_TEAMS", '{"3": "l2"}')
    options = IngestSettings(_env_file=None).chatwoot_options()  # type: ignore[call-arg]
    payload = chatwoot_conversation_event("conversation_created", team=3)
    assert map_chatwoot(dumps(payload), "7", options).events[0]["team_id"] == "l2"


@pytest.mark.parametrize(
    ("teams", "says"),
    [
        ({"L2 team": "l2"}, "are numbers"),
        ({"3": ""}, "not a slawatch id"),
        ({"3": "l\n2"}, "not a slawatch id"),
    ],
)
def test_a_team_map_that_cannot_work_is_refused_at_start(teams: dict[str, str], says: str) -> None:
    """Team names as keys, or empty or control-character team ids, are refused with a reason."""
    with pytest.raises(ValidationError, match=says):
        IngestSettings(chatwoot_teams=teams)


# -- through the monitor --------------------------------------------------------------------------

POLICY = """
policies:
  - id: default
    targets:
      resolution: {within: 8h}
      team_ownership: {l1: 30m, l2: 4h}
"""


def _stints(bodies: list[bytes], tmp_path: Any) -> list[tuple[int, str, str | None, int]]:
    path = tmp_path / "policies.yaml"
    path.write_text(POLICY)
    lines = [orjson.dumps(e) for b in bodies for e in map_chatwoot(b, "7", TEAMS).events]
    records = replay_records(lines, load_policies(path), max_future_ms=None)
    return [
        (r.seq, r.status, r.team_id, r.at // 1000 - T0)
        for r in records
        if isinstance(r, SlaRecord) and r.metric == "team_ownership"
    ]


def test_chatwoot_hand_over_and_removal_end_the_team_stints(tmp_path: Any) -> None:
    """Opened for team 3 (l1), a customer asks, an agent is assigned, team 4 (l2) takes over,
    then the team is removed: l1's stint is met at the hand-over, l2's at the removal."""
    conv: dict[str, Any] = {"created_at": T0}
    bodies = [
        chatwoot_conversation_event("conversation_created", team=3, **conv),
        chatwoot_message(1, sender=contact_sender(), created_at=_iso(T0 + 10)),
        chatwoot_conversation_event(
            "conversation_updated",
            changed=[change("assignee_id", None, 5), change("updated_at", 0, T0 + 60)],
            assignee=5,
            team=3,
            **conv,
        ),
        chatwoot_conversation_event(
            "conversation_updated",
            changed=[change("team_id", 3, 4), change("updated_at", 0, T0 + 600)],
            assignee=5,
            team=4,
            **conv,
        ),
        chatwoot_conversation_event(
            "conversation_updated",
            changed=[change("team_id", 4, None), change("updated_at", 0, T0 + 1200)],
            assignee=5,
            **conv,
        ),
    ]
    stints = _stints([dumps(b) for b in bodies], tmp_path)
    assert stints == [
        (1, "started", "l1", 0),
        (1, "met", "l1", 600),
        (2, "started", "l2", 600),
        (2, "met", "l2", 1200),
    ]


def test_a_conversation_older_than_slawatch_gets_its_stint_at_the_customers_message(
    tmp_path: Any,
) -> None:
    """The first payload slawatch sees is a customer message of team 4's conversation: an l2
    stint starts at that message."""
    payload = _with_team(
        chatwoot_message(1, sender=contact_sender(), created_at=_iso(T0 + 30)), {"id": 4}
    )
    assert _stints([dumps(payload)], tmp_path) == [(1, "started", "l2", 30)]


def test_a_repeated_team_changes_no_record(tmp_path: Any) -> None:
    """Customer messages of a conversation opened for team 3 repeat team 3: the monitor's
    records are the same as without those repeats (no hand-over, no retarget)."""
    path = tmp_path / "policies.yaml"
    path.write_text(POLICY.replace("resolution: {within: 8h}", "first_response: {within: 5m}"))
    bodies = [dumps(chatwoot_conversation_event("conversation_created", team=3, created_at=T0))]
    for number, (at, customer) in enumerate([(5, True), (60, False), (120, True), (130, True)]):
        payload = chatwoot_message(
            100 + number,
            message_type="incoming" if customer else "outgoing",
            sender=contact_sender() if customer else user_sender(5),
            created_at=_iso(T0 + at),
        )
        bodies.append(dumps(_with_team(payload, {"id": 3, "name": "L1"})))
    events = [e for b in bodies for e in map_chatwoot(b, "7", TEAMS).events]
    repeats = [e for e in events if e["event_id"].endswith(":team")]
    assert len(repeats) == 3

    def records(lines: list[dict[str, Any]]) -> list[SlaRecord]:
        out = replay_records(
            [orjson.dumps(e) for e in lines], load_policies(path), max_future_ms=None
        )
        return [r for r in out if isinstance(r, SlaRecord)]

    with_repeats = records(events)
    assert with_repeats == records([e for e in events if e not in repeats])
    assert {r.metric for r in with_repeats} == {"first_response", "team_ownership"}
