"""`slawatch ingest map`: payload files in, SPEC events out as JSONL, ignored parts on stderr."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from flows.cli import main
from tests.ingestkit import (
    WHATSAPP_SAMPLES,
    chatwoot_message,
    contact_sender,
    dumps,
    user_sender,
    whatsapp_sample,
)

pytestmark = pytest.mark.unit


def test_map_whatsapp_samples_prints_events_and_ignored() -> None:
    """Every real sample maps: events on stdout as JSONL, ignored kinds with reasons on stderr."""
    files = sorted(WHATSAPP_SAMPLES.glob("*.json"))
    if not files:
        pytest.skip("real WhatsApp samples not found")
    result = CliRunner().invoke(main, ["ingest", "map", "--platform", "whatsapp", *map(str, files)])
    assert result.exit_code == 0, result.output
    events = [orjson.loads(line) for line in result.stdout.splitlines()]
    messages = [e for e in events if e["type"] == "message"]
    assert [e.get("action") for e in messages].count(None) == 6
    assert [e["message_id"] for e in messages if e.get("action") == "failed"] == ["wamid.xyzxyz"]
    assert [e["type"] for e in events].count("conversation") == 1
    assert "ignored message_reaction" in result.stderr
    assert "ignored status_read" in result.stderr


def test_map_chatwoot_needs_the_account_and_reports_unmappable(tmp_path: Path) -> None:
    """Chatwoot mapping needs --account; an unmappable file is reported and exits 1."""
    good = tmp_path / "good.json"
    good.write_bytes(dumps(chatwoot_message(5, sender=contact_sender())))
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"event": "invoice_paid"}')
    runner = CliRunner()
    missing = runner.invoke(main, ["ingest", "map", "--platform", "chatwoot", str(good)])
    assert missing.exit_code == 1 and "--account" in missing.stderr
    result = runner.invoke(
        main, ["ingest", "map", "--platform", "chatwoot", "--account", "3", str(good), str(bad)]
    )
    assert result.exit_code == 1
    (event,) = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert event["conversation_id"] == "cw:3:42"
    assert "unmappable: unknown Chatwoot event 'invoice_paid'" in result.stderr


def test_mapping_choices_come_from_the_environment(tmp_path: Path) -> None:
    """SLAWATCH_INGEST_* variables set the mapping choices `ingest map` uses."""
    body = tmp_path / "status.json"
    body.write_bytes(whatsapp_sample("06_status_sent_with_conversation_and_pricing.json"))
    env = {"SLAWATCH_INGEST_UNTAGGED_AUTHOR": "bot"}
    result = CliRunner().invoke(
        main, ["ingest", "map", "--platform", "whatsapp", str(body)], env=env
    )
    assert result.exit_code == 0, result.output
    (event,) = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert event["author"] == "bot" and "agent_id" not in event


def test_bot_users_and_inbox_channels_come_from_the_environment(tmp_path: Path) -> None:
    """CHATWOOT_BOT_USERS makes user 15 a bot; CHATWOOT_INBOX_CHANNELS names an API inbox."""
    body = tmp_path / "reply.json"
    payload = chatwoot_message(
        5,
        message_type="outgoing",
        sender=user_sender(15),
        channel="Channel::Api",
        source_id="c0ffee-42",
        inbox_id=12,
    )
    body.write_bytes(dumps(payload))
    env = {
        "SLAWATCH_INGEST_CHATWOOT_BOT_USERS": '{"3": [15]}',
        "SLAWATCH_INGEST_CHATWOOT_INBOX_CHANNELS": '{"3": {"12": "whatsapp"}}',
    }
    result = CliRunner().invoke(
        main, ["ingest", "map", "--platform", "chatwoot", "--account", "3", str(body)], env=env
    )
    assert result.exit_code == 0, result.output
    (event,) = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert (event["author"], event["channel"]) == ("bot", "whatsapp")
    assert "agent_id" not in event
