"""The JSON Schemas of `schemas/`: well formed, documented, in step with the code, and right."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from flows.core.decode import (
    ASSIGNMENT_ACTIONS,
    ATTRIBUTE_ENUMS,
    AUTHORS,
    CONVERSATION_ACTIONS,
    DIRECTIONS,
    EVENT_TYPES,
)
from flows.core.events import ATTRIBUTE_KEYS
from flows.core.model import METRICS
from flows.core.timefmt import MAX_INSTANT, MIN_INSTANT
from tests.schemakit import schemas, validator

pytestmark = pytest.mark.unit

EXPECTED = {
    "common.schema.json",
    "event.schema.json",
    "message.schema.json",
    "assignment.schema.json",
    "conversation.schema.json",
    "activity.schema.json",
    "survey.schema.json",
    "sla_record.schema.json",
    "action_record.schema.json",
    "dead_letter.schema.json",
    "csat_record.schema.json",
    "handle_record.schema.json",
}


def _property_maps(node: object, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                yield where, value
            yield from _property_maps(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _property_maps(value, f"{where}/{index}")


def test_every_expected_schema_exists() -> None:
    """schemas/ holds the four event schemas, the union, the four record schemas and defs."""
    assert set(schemas()) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    """Each schema is itself valid against the draft 2020-12 meta-schema."""
    Draft202012Validator.check_schema(schemas()[name])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_schema_has_id_title_and_description(name: str) -> None:
    """Each schema declares draft 2020-12, an `$id` ending in its file name, a title and a text."""
    schema = schemas()[name]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/" + name)
    assert schema["title"]
    assert schema["description"]


@pytest.mark.parametrize("name", sorted(EXPECTED - {"common.schema.json"}))
def test_every_top_level_field_has_a_description(name: str) -> None:
    """Every field a schema declares at the top level says what it means."""
    for key, spec in schemas()[name]["properties"].items():
        assert spec.get("description"), f"{name}: field {key!r} has no description"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_nested_property_is_documented_or_refines_a_documented_one(name: str) -> None:
    """A property declared inside a condition has a description or refines a top-level field."""
    schema = schemas()[name]
    documented = set(schema.get("properties", {}))
    for where, props in _property_maps(schema):
        for key, spec in props.items():
            assert spec.get("description") or key in documented, f"{name}{where}: {key!r}"


def _enum_of(schema: dict[str, Any], *path: str) -> list[Any]:
    node: Any = schema
    for step in path:
        node = node[step]
    return list(node["enum"])


def _conversation_attribute(key: str) -> dict[str, Any]:
    schema = schemas()["conversation.schema.json"]
    branch = next(
        part["then"]
        for part in schema["allOf"]
        if part["if"]["properties"]["action"].get("enum") == ["opened", "updated"]
    )
    spec: dict[str, Any] = branch["properties"][key]
    return spec


def test_event_enums_match_the_decoder() -> None:
    """Every enum of the event schemas lists exactly the values the decoder accepts."""
    message = schemas()["message.schema.json"]
    assert _enum_of(message, "properties", "direction") == list(DIRECTIONS)
    assert _enum_of(message, "properties", "author") == list(AUTHORS)
    assignment = schemas()["assignment.schema.json"]
    assert _enum_of(assignment, "properties", "action") == list(ASSIGNMENT_ACTIONS)
    conversation = schemas()["conversation.schema.json"]
    assert _enum_of(conversation, "properties", "action") == list(CONVERSATION_ACTIONS)
    assert _enum_of(schemas()["event.schema.json"], "properties", "type") == list(EVENT_TYPES)
    for key, allowed in ATTRIBUTE_ENUMS.items():
        assert _conversation_attribute(key)["enum"] == [*allowed, None]


def test_conversation_schema_declares_every_attribute() -> None:
    """The conversation schema documents and types every attribute the engine knows."""
    conversation = schemas()["conversation.schema.json"]
    for key in ATTRIBUTE_KEYS:
        assert key in conversation["properties"]
        assert _conversation_attribute(key)


def test_metric_enum_matches_the_model() -> None:
    """The metric enum of the records is the model's list of metrics."""
    assert _enum_of(schemas()["common.schema.json"], "$defs", "metric") == list(METRICS)


def test_integer_instant_bounds_match_timefmt() -> None:
    """Integer instants in the schemas have the same bounds as `parse_instant`."""
    integer = schemas()["common.schema.json"]["$defs"]["instant"]["oneOf"][1]
    assert (integer["minimum"], integer["maximum"]) == (MIN_INSTANT, MAX_INSTANT)


# Output records: one hand-built valid example of each, then broken variants.

SLA_STARTED: dict[str, Any] = {
    "type": "sla",
    "conversation_id": "c-1",
    "cycle": 1,
    "metric": "first_response",
    "seq": 1,
    "status": "started",
    "at": "2026-11-23T10:00:00.000Z",
    "policy_id": "hot-leads",
    "target_s": 180,
    "started_at": "2026-11-23T10:00:00.000Z",
    "warn_at": "2026-11-23T10:02:24.000Z",
    "deadline_at": "2026-11-23T10:03:00.000Z",
    "stopped_at": None,
    "elapsed_s": 0,
    "breached": False,
    "agent_id": None,
    "team_id": "sales",
    "priority": "P1",
    "segment": None,
    "lead_source": "pricing",
    "channel": "whatsapp",
    "late": False,
    "emitted_at": "2026-11-23T10:00:00.412Z",
}
SLA_BREACHED = {
    **SLA_STARTED,
    "status": "breached",
    "at": "2026-11-23T10:03:00.000Z",
    "elapsed_s": 180.0,
    "breached": True,
    "cause": "unassigned",
}
SLA_ATTEMPTS = {
    **SLA_STARTED,
    "metric": "contact_attempts",
    "status": "met",
    "target_s": 172800,
    "warn_at": None,
    "deadline_at": "2026-11-25T10:00:00.000Z",
    "stopped_at": "2026-11-23T12:00:00.000Z",
    "at": "2026-11-23T12:00:00.000Z",
    "elapsed_s": 7200.5,
    "attempts": 3,
}
SLA_ATTEMPT = {
    **SLA_ATTEMPTS,
    "status": "attempt",
    "stopped_at": None,
    "attempts": 2,
}
SLA_FOLLOW_UP_STOPPED = {
    **SLA_STARTED,
    "metric": "follow_up",
    "status": "stopped",
    "target_s": None,
    "stopped_at": "2026-11-23T11:00:00.000Z",
    "at": "2026-11-23T11:00:00.000Z",
    "breached": True,
    "late": True,
}
ACTION_NOTIFY: dict[str, Any] = {
    "type": "action",
    "action": "notify",
    "trigger": "warning",
    "conversation_id": "c-1",
    "cycle": 1,
    "metric": "first_response",
    "seq": 1,
    "at": "2026-11-23T10:02:24.000Z",
    "policy_id": "hot-leads",
    "from_agent": "a1",
    "to_agent": None,
    "notify": "s1",
    "reason": "first_response warning for c-1 (agent a1)",
}
ACTION_REASSIGN = {
    **ACTION_NOTIFY,
    "action": "reassign",
    "trigger": "breached",
    "to_agent": "a2",
    "notify": None,
    "emitted_at": "2026-11-23T10:03:00.101Z",
}
ACTION_RECOVER = {
    **ACTION_NOTIFY,
    "action": "recover",
    "trigger": "recovery",
    "metric": "resolution",
    "notify": None,
    "reason": "resolution recovery: 1h past its deadline, send apology_voucher",
    "send": "apology_voucher",
    "rule": "hot-leads#1",
}
DEAD_LETTER: dict[str, Any] = {
    "type": "dead_letter",
    "reason": "missing field 'conversation_id'",
    "raw": '{"event_id":"e1","type":"message"}',
    "source": "events.jsonl:7",
    "emitted_at": "2026-11-23T10:00:00.000Z",
}

VALID_RECORDS = [
    ("sla_record.schema.json", SLA_STARTED),
    ("sla_record.schema.json", SLA_BREACHED),
    ("sla_record.schema.json", SLA_ATTEMPTS),
    ("sla_record.schema.json", SLA_ATTEMPT),
    ("sla_record.schema.json", {**SLA_ATTEMPT, "breached": True}),
    ("sla_record.schema.json", SLA_FOLLOW_UP_STOPPED),
    ("action_record.schema.json", ACTION_NOTIFY),
    ("action_record.schema.json", ACTION_REASSIGN),
    ("action_record.schema.json", ACTION_RECOVER),
    ("action_record.schema.json", {**ACTION_RECOVER, "withdrawn": True}),
    ("dead_letter.schema.json", DEAD_LETTER),
]


@pytest.mark.parametrize(("name", "record"), VALID_RECORDS)
def test_hand_built_record_is_valid(name: str, record: dict[str, Any]) -> None:
    """A record written as SPEC §6 describes it passes its schema."""
    validator(name).validate(record)


def _without(record: dict[str, Any], key: str) -> dict[str, Any]:
    out = copy.deepcopy(record)
    del out[key]
    return out


INVALID_RECORDS = [
    ("sla: no cause on a breach", "sla_record.schema.json", _without(SLA_BREACHED, "cause")),
    ("sla: cause on a start", "sla_record.schema.json", {**SLA_STARTED, "cause": "agent"}),
    ("sla: unknown cause", "sla_record.schema.json", {**SLA_BREACHED, "cause": "weather"}),
    ("sla: breach not flagged", "sla_record.schema.json", {**SLA_BREACHED, "breached": False}),
    ("sla: met yet breached", "sla_record.schema.json", {**SLA_ATTEMPTS, "breached": True}),
    (
        "sla: stopped not breached",
        "sla_record.schema.json",
        {**SLA_FOLLOW_UP_STOPPED, "breached": False},
    ),
    ("sla: attempts elsewhere", "sla_record.schema.json", {**SLA_STARTED, "attempts": 1}),
    (
        "sla: attempt of another metric",
        "sla_record.schema.json",
        {**SLA_STARTED, "status": "attempt"},
    ),
    ("sla: no attempts", "sla_record.schema.json", _without(SLA_ATTEMPTS, "attempts")),
    ("sla: at without ms", "sla_record.schema.json", {**SLA_STARTED, "at": "2026-11-23T10:00:00Z"}),
    (
        "sla: at with an offset",
        "sla_record.schema.json",
        {**SLA_STARTED, "at": "2026-11-23T17:00:00.000+07:00"},
    ),
    ("sla: at as epoch ms", "sla_record.schema.json", {**SLA_STARTED, "at": 1795428000000}),
    ("sla: cycle 0", "sla_record.schema.json", {**SLA_STARTED, "cycle": 0}),
    ("sla: unknown metric", "sla_record.schema.json", {**SLA_STARTED, "metric": "vibes"}),
    ("sla: unknown status", "sla_record.schema.json", {**SLA_STARTED, "status": "late"}),
    ("sla: elapsed as text", "sla_record.schema.json", {**SLA_STARTED, "elapsed_s": "0"}),
    ("sla: no emitted_at", "sla_record.schema.json", _without(SLA_STARTED, "emitted_at")),
    ("sla: no channel", "sla_record.schema.json", _without(SLA_STARTED, "channel")),
    ("sla: extra field", "sla_record.schema.json", {**SLA_STARTED, "text": "hi"}),
    ("action: unknown action", "action_record.schema.json", {**ACTION_NOTIFY, "action": "page"}),
    ("action: unknown trigger", "action_record.schema.json", {**ACTION_NOTIFY, "trigger": "met"}),
    ("action: notify nobody", "action_record.schema.json", {**ACTION_NOTIFY, "notify": None}),
    ("action: no reason", "action_record.schema.json", _without(ACTION_NOTIFY, "reason")),
    ("recover: no send", "action_record.schema.json", _without(ACTION_RECOVER, "send")),
    ("recover: no rule", "action_record.schema.json", _without(ACTION_RECOVER, "rule")),
    ("recover: empty send", "action_record.schema.json", {**ACTION_RECOVER, "send": ""}),
    (
        "recover: on a breach trigger",
        "action_record.schema.json",
        {**ACTION_RECOVER, "trigger": "breached"},
    ),
    (
        "recover: withdrawn false",
        "action_record.schema.json",
        {**ACTION_RECOVER, "withdrawn": False},
    ),
    (
        "notify: recovery trigger",
        "action_record.schema.json",
        {**ACTION_NOTIFY, "trigger": "recovery"},
    ),
    ("notify: with a send", "action_record.schema.json", {**ACTION_NOTIFY, "send": "voucher"}),
    ("dead letter: no raw", "dead_letter.schema.json", _without(DEAD_LETTER, "raw")),
    ("dead letter: empty reason", "dead_letter.schema.json", {**DEAD_LETTER, "reason": ""}),
    ("dead letter: wrong type", "dead_letter.schema.json", {**DEAD_LETTER, "type": "sla"}),
]


@pytest.mark.parametrize(
    ("name", "record"),
    [(name, record) for _, name, record in INVALID_RECORDS],
    ids=[case for case, _, _ in INVALID_RECORDS],
)
def test_broken_record_is_refused(name: str, record: dict[str, Any]) -> None:
    """A record that breaks SPEC §6 (missing, extra, mistyped or inconsistent field) fails."""
    assert not validator(name).is_valid(record)
