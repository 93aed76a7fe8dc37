"""`slawatch check --offline`: settings, policy files, inbox and action configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from flows.checks import _recovery_problems
from flows.cli import main
from flows.core.policies import parse_policies
from flows.ingest.settings import IngestSettings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
GOOD = """\
policies:
  - id: p
    targets:
      first_response: {within: 5m}
"""
ESCALATING = (
    GOOD
    + """\
    escalations:
      - {on: breached, metric: first_response, reassign: true}
      - {on: warning, metric: first_response, notify: supervisor}
"""
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    for name in list(__import__("os").environ):
        if name.startswith("SLAWATCH_"):
            monkeypatch.delenv(name)


def _check(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["check", "--offline", *args], env=env)
    return result.exit_code, result.output.splitlines()


def test_a_good_policy_file_passes(tmp_path: Path) -> None:
    """A valid policy file without escalations gives one `ok` line and exit status 0."""
    (tmp_path / "p.yaml").write_text(GOOD)

    assert _check("p.yaml") == (0, ["ok: configuration and policies checked, no problem found"])


def test_each_bad_file_gets_its_own_line(tmp_path: Path) -> None:
    """Two broken files and an unknown calendar: one line each, naming file and line, exit 1."""
    (tmp_path / "a.yaml").write_text("policies: [\n")
    (tmp_path / "b.yaml").write_text(GOOD.replace("targets:", "calendar: nowhere\n    targets:"))

    code, lines = _check("a.yaml", "b.yaml", "missing.yaml")

    assert code == 1
    assert [line.split(":")[:2] for line in lines] == [
        ["policies", " a.yaml"],
        ["policies", " b.yaml"],
        ["policies", " missing.yaml"],
    ]
    assert "nowhere" in lines[1]


def test_escalations_need_their_channels(tmp_path: Path) -> None:
    """A policy that reassigns and notifies, with no Chatwoot API or channel: two lines."""
    (tmp_path / "p.yaml").write_text(ESCALATING)

    code, lines = _check("p.yaml")
    configured = _check(
        "p.yaml",
        env={
            "SLAWATCH_INGEST_CHATWOOT_URL": "http://chatwoot.example",
            "SLAWATCH_INGEST_CHATWOOT_API_TOKEN": "t",
            "SLAWATCH_INGEST_NOTIFY_WEBHOOK_URL": "http://hooks.example/x",
        },
    )

    assert code == 1
    assert [line.split(":")[0] for line in lines] == ["actions", "actions"]
    assert "SLAWATCH_INGEST_CHATWOOT_API_TOKEN" in lines[0]
    assert "SLAWATCH_INGEST_NOTIFY_WEBHOOK_URL" in lines[1]
    assert configured[0] == 0


def test_inbox_without_secrets_and_bad_settings_are_named(tmp_path: Path) -> None:
    """An enforced account without a secret, an unsubscribed WhatsApp secret and a bad
    variable each give one line."""
    (tmp_path / "p.yaml").write_text(GOOD)

    code, lines = _check(
        "p.yaml",
        env={
            "SLAWATCH_INGEST_CHATWOOT_ACCOUNTS": '["7"]',
            "SLAWATCH_INGEST_WHATSAPP_VERIFY_TOKEN": "v",
            "SLAWATCH_SHARDS": "none",
        },
    )

    assert code == 1
    assert lines[0].startswith("settings: SLAWATCH_SHARDS: ")
    assert lines[1].startswith("inbox: chatwoot/7 enforces signatures but has no secret")
    assert lines[2].startswith("inbox: whatsapp enforces signatures")
    assert len(lines) == 3


def test_the_shipped_example_policies_pass() -> None:
    """examples/policies.yaml, the default of SLAWATCH_POLICIES, has no problem of its own."""
    code, lines = _check(
        str(REPO / "examples" / "policies.yaml"),
        env={
            "SLAWATCH_INGEST_ACT_REASSIGN": "false",
            "SLAWATCH_INGEST_SMTP_HOST": "smtp.example",
            # The example's service recoveries send `apology_voucher`.
            "SLAWATCH_INGEST_RECOVERIES": '{"apology_voucher": {"via": "webhook", '
            '"url": "https://vouchers.example/issue"}}',
        },
    )

    assert (code, lines) == (0, ["ok: configuration and policies checked, no problem found"])


def test_recovery_deliveries_are_checked(tmp_path: Path) -> None:
    """A malformed RECOVERIES (a secret pasted in, an unknown kind, a non-http URL) is named;
    a good one missing its API tokens, or a token for no webhook, gets one line each."""
    (tmp_path / "p.yaml").write_text(GOOD)
    for deliveries, expected in [
        ('{"v": {"via": "webhook", "url": "https://v.example/x", "token": "s3"}}', "token"),
        ('{"v": {"via": "carrier_pigeon"}}', "carrier_pigeon"),
        ('{"v": {"via": "webhook", "url": "ftp://v.example/x"}}', "is not an http(s) URL"),
        ('{"v": {"via": "whatsapp_template", "template": "t", "language": "e n"}}', "language"),
    ]:
        code, lines = _check("p.yaml", env={"SLAWATCH_INGEST_RECOVERIES": deliveries})
        assert code == 1
        assert any(
            line.startswith("settings: SLAWATCH_INGEST_RECOVERIES") and expected in line
            for line in lines
        ), lines

    configured = (
        '{"sorry": {"via": "whatsapp_template", "template": "apology", "language": "id"},'
        ' "note": {"via": "chatwoot_message", "content": "Maaf!"},'
        ' "voucher": {"via": "webhook", "url": "https://v.example/issue"}}'
    )
    code, lines = _check(
        "p.yaml",
        env={
            "SLAWATCH_INGEST_RECOVERIES": configured,
            "SLAWATCH_INGEST_RECOVERY_TOKENS": '{"voucher": "t1", "sorry": "t2"}',
        },
    )
    assert code == 1
    assert lines == [
        "actions: a recovery sends a WhatsApp template, but SLAWATCH_INGEST_WHATSAPP_ACCESS_TOKEN"
        " is unset",
        "actions: a recovery posts a Chatwoot message, but SLAWATCH_INGEST_CHATWOOT_URL and "
        "SLAWATCH_INGEST_CHATWOOT_API_TOKEN are not both set",
        "actions: SLAWATCH_INGEST_RECOVERY_TOKENS has a token for 'sorry', which is not a "
        "webhook recovery in SLAWATCH_INGEST_RECOVERIES (a typo?)",
    ]
    fixed = {
        "SLAWATCH_INGEST_RECOVERIES": configured,
        "SLAWATCH_INGEST_RECOVERY_TOKENS": '{"voucher": "t1"}',
        "SLAWATCH_INGEST_WHATSAPP_ACCESS_TOKEN": "EAAG",
        "SLAWATCH_INGEST_CHATWOOT_URL": "http://chatwoot.example",
        "SLAWATCH_INGEST_CHATWOOT_API_TOKEN": "t",
    }
    assert _check("p.yaml", env=fixed)[0] == 0


def test_a_recovery_rule_needs_a_delivery_for_its_send() -> None:
    """A policy whose recovery rule sends a name RECOVERIES does not configure is a problem
    naming it; a configured name is not."""
    loaded = [
        parse_policies(
            "policies:\n"
            "  - id: vip\n"
            "    when: {segment: vip}\n"
            "    targets: {resolution: {within: 4h}}\n"
            "    recovery:\n"
            "      - {metric: resolution, over: 1h, send: apology_voucher}\n"
            "  - id: default\n"
            "    targets: {first_response: {within: 5m}}\n"
        )
    ]
    bare = IngestSettings(_env_file=None)  # type: ignore[call-arg]
    problems = _recovery_problems(bare, loaded)
    assert [p.line() for p in problems] == [
        "actions: a recovery rule sends 'apology_voucher', which SLAWATCH_INGEST_RECOVERIES "
        "does not configure: its recoveries would be dead letters"
    ]
    webhook = {"apology_voucher": {"via": "webhook", "url": "https://v.example/x"}}
    configured = IngestSettings(_env_file=None, recoveries=webhook)  # type: ignore[call-arg]
    assert _recovery_problems(configured, loaded) == []
