"""`slawatch replay`: the engine over a JSONL file, as a user runs it (SPEC §7)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest
from click.testing import CliRunner
from referencing import Registry, Resource

from flows.cli import main
from flows.core.decode import event_to_json
from tests.enginekit import assign, conv_event, inbound, reply

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
POLICIES = """
policies:
  - id: p
    targets:
      first_response: {within: 5m}
      resolution: {within: 1h}
    escalations:
      - {on: breached, metric: first_response, notify: supervisor}
      - {on: breached, metric: first_response, reassign: true}
teams:
  sales: {agents: [a1, a2], supervisor: s1}
"""


def _schema(name: str) -> jsonschema.Draft202012Validator:
    registry_schemas = {
        p.name: json.loads(p.read_text()) for p in (ROOT / "schemas").glob("*.schema.json")
    }
    registry = Registry().with_resources(
        (s.get("$id", n), Resource.from_contents(s)) for n, s in registry_schemas.items()
    )
    return jsonschema.Draft202012Validator(registry_schemas[name], registry=registry)


def _write_inputs(tmp_path: Path) -> tuple[Path, Path]:
    events = [
        inbound(0, "c1"),
        assign(10, "a1", "c1"),
        inbound(5, "c2"),
        reply(60, "c1"),
        conv_event(400, "resolved", "c1"),
    ]
    lines = [orjson.dumps(event_to_json(e)) for e in events]
    lines.insert(2, b'{"type": "message", "conversation_id": "c9"}')
    lines.insert(3, b"\xff\xfe not utf-8")
    src = tmp_path / "events.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    pol = tmp_path / "policies.yaml"
    pol.write_text(POLICIES)
    return src, pol


def _run(args: list[str]) -> tuple[list[dict[str, object]], str]:
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return lines, result.stderr


def test_replay_writes_valid_records_dead_letters_and_a_summary(tmp_path: Path) -> None:
    """Replay prints schema-valid records, dead letters with file:line, and a summary line."""
    src, pol = _write_inputs(tmp_path)
    records, stderr = _run(
        ["replay", str(src), "--policies", str(pol), "--until", "2026-11-23T02:00:00Z"]
    )
    validators = {
        "sla": _schema("sla_record.schema.json"),
        "action": _schema("action_record.schema.json"),
        "dead_letter": _schema("dead_letter.schema.json"),
    }
    for rec in records:
        validators[str(rec["type"])].validate(rec)
    dead = [r for r in records if r["type"] == "dead_letter"]
    assert [d["source"] for d in dead] == [f"{src}:3", f"{src}:4"]
    assert "event_id" in str(dead[0]["reason"])
    c2 = [
        (r["metric"], r["status"])
        for r in records
        if r["type"] == "sla" and r["conversation_id"] == "c2"
    ]
    assert ("first_response", "breached") in c2 and ("resolution", "breached") in c2
    # c2 has no assignee, so no team: the role is named instead of a person.
    acts = [
        (a["conversation_id"], a["action"], a["notify"], a["to_agent"])
        for a in records
        if a["type"] == "action"
    ]
    assert acts == [("c2", "notify", "supervisor", None), ("c2", "reassign", None, None)]
    assert stderr.startswith("replayed 5 events (2 dead letters)")


def test_replay_is_deterministic_apart_from_emitted_at(tmp_path: Path) -> None:
    """Replaying the same file twice gives the same records, except `emitted_at`."""
    src, pol = _write_inputs(tmp_path)
    out1, out2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    _run(["replay", str(src), "--policies", str(pol), "--output", str(out1)])
    _run(["replay", str(src), "--policies", str(pol), "--output", str(out2)])

    def strip(path: Path) -> list[dict[str, object]]:
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        for row in rows:
            row.pop("emitted_at")
        return rows

    assert strip(out1) == strip(out2) and strip(out1)


def test_until_defaults_to_last_event_time(tmp_path: Path) -> None:
    """Without --until, clocks due after the last event's time do not fire."""
    src, pol = _write_inputs(tmp_path)
    records, _ = _run(["replay", str(src), "--policies", str(pol)])
    c2 = [
        (r["metric"], r["status"])
        for r in records
        if r["type"] == "sla" and r["conversation_id"] == "c2"
    ]
    assert ("first_response", "breached") in c2
    assert ("resolution", "breached") not in c2


def test_invalid_policy_file_is_refused_with_line(tmp_path: Path) -> None:
    """A bad policy file stops replay with the file, line and reason."""
    src, _ = _write_inputs(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("policies:\n  - id: p\n    targets:\n      first_reply: {within: 5m}\n")
    result = CliRunner().invoke(main, ["replay", str(src), "--policies", str(bad)])
    assert result.exit_code != 0
    assert f"{bad}:4" in result.output and "first_reply" in result.output


def test_example_policies_replay(tmp_path: Path) -> None:
    """The shipped examples/policies.yaml drives a replay without errors."""
    src, _ = _write_inputs(tmp_path)
    records, stderr = _run(
        ["replay", str(src), "--policies", str(ROOT / "examples" / "policies.yaml")]
    )
    assert any(r["type"] == "sla" for r in records)
    assert "replayed 5 events" in stderr


def test_replay_warns_when_team_targets_add_up_to_more_than_the_promise(tmp_path: Path) -> None:
    """A policy whose OLAs exceed its resolution target replays, with a warning on stderr."""
    src, _ = _write_inputs(tmp_path)
    pol = tmp_path / "ola.yaml"
    pol.write_text(
        "policies:\n  - id: ola\n    targets:\n      resolution: {within: 1h}\n"
        "      team_ownership: {l1: 45m, l2: 30m}\n"
    )
    result = CliRunner().invoke(main, ["replay", str(src), "--policies", str(pol)])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr
    assert "1h15m" in result.stderr
