"""Reports as text, Markdown and CSV; `--send` to a webhook and e-mail (local stand-ins); and the
one-line errors of `slawatch backfill` and `slawatch report`."""

from __future__ import annotations

import csv
import io
import socket
from datetime import date
from email.message import Message
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from flows.cli import main
from flows.reports.builders import day_start, parse_month, parse_week, percentile
from flows.reports.render import Report, Section, render
from flows.reports.send import NotifySettings, SendError, send_report
from tests.enginekit import T0
from tests.standins import Webhook, smtp_standin, webhook_standin

__all__ = ["smtp_standin", "webhook_standin"]  # fixtures used below

pytestmark = pytest.mark.unit

REPORT = Report(
    "SLA scorecard, week of 2026-11-23",
    ("Clocks started in the week.",),
    (
        Section("Summary", ("measure", "value"), (("replies", "12"), ("p90 | s", "45.0"))),
        Section("Breaches", ("conversation", "metric"), (), ("No breaches.",)),
    ),
)


def test_text_report_aligns_columns_and_shows_notes() -> None:
    """Plain text puts each column at one position and prints a section's notes."""
    lines = render(REPORT, "text").splitlines()
    header = lines.index("measure  value")
    assert lines[header + 1 : header + 3] == ["replies  12", "p90 | s  45.0"]
    assert "No breaches." in lines


def test_markdown_report_is_a_table_per_section() -> None:
    """Markdown has a heading per section and pipe tables with escaped pipes."""
    text = render(REPORT, "markdown")
    assert text.startswith("# SLA scorecard, week of 2026-11-23\n")
    assert "## Summary\n\n| measure | value |\n|---|---|\n| replies | 12 |\n" in text
    assert "| p90 \\| s | 45.0 |" in text


def test_csv_report_parses_back_to_the_cells() -> None:
    """CSV holds each section as title row, header row and its rows."""
    rows = list(csv.reader(io.StringIO(render(REPORT, "csv"))))
    assert rows[:5] == [
        ["Summary"],
        ["measure", "value"],
        ["replies", "12"],
        ["p90 | s", "45.0"],
        [],
    ]
    assert rows[5:7] == [["Breaches"], ["conversation", "metric"]]


def test_percentile_interpolates_between_ranks() -> None:
    """p90 of 1..10 is 9.1 and the median of an even count is the mean of the middle two."""
    values = [float(v) for v in range(10, 0, -1)]
    assert percentile(values, 0.9) == pytest.approx(9.1)
    assert percentile(values, 0.5) == pytest.approx(5.5)
    assert percentile([], 0.5) is None


def test_weeks_and_months_are_read_as_calendar_days() -> None:
    """2026-W48 starts Monday 2026-11-23 (T0 at UTC midnight); 2026-12 starts on its first day."""
    assert parse_week("2026-w48") == date(2026, 11, 23)
    assert day_start(parse_week("2026-W48")) == T0
    assert day_start(date(2026, 11, 23), ZoneInfo("Asia/Jakarta")) == T0 - 7 * 3_600_000
    assert parse_month("2026-12") == date(2026, 12, 1)
    with pytest.raises(ValueError, match="2026-W47"):
        parse_week("2026-W60")
    with pytest.raises(ValueError, match="2026-11"):
        parse_month("2026-13")


def test_send_posts_the_report_to_the_webhook(
    webhook_standin: tuple[str, list[dict[str, str]], type[Webhook]],
) -> None:
    """`--send` with a webhook configured POSTs the title and the rendered report as JSON."""
    url, received, _ = webhook_standin
    text = render(REPORT, "markdown")
    sent = send_report(REPORT, text, "markdown", NotifySettings(webhook_url=url))
    assert sent == [f"webhook {url}"]
    assert received == [{"title": REPORT.title, "text": text, "format": "markdown"}]


def test_send_mails_the_report(smtp_standin: tuple[int, list[Message]]) -> None:
    """`--send` with SMTP configured mails the report with its title as subject."""
    port, messages = smtp_standin
    settings = NotifySettings(
        smtp_host="127.0.0.1", smtp_port=port, email_to="boss@example.com, ops@example.com"
    )
    text = render(REPORT, "text")
    assert send_report(REPORT, text, "text", settings) == [
        "e-mail to boss@example.com, ops@example.com"
    ]
    (message,) = messages
    assert message["Subject"] == REPORT.title
    assert message["To"] == "boss@example.com, ops@example.com"
    assert message.get_payload(decode=True).decode().replace("\r\n", "\n") == text


def test_send_refused_by_the_webhook_is_one_sentence(
    webhook_standin: tuple[str, list[dict[str, str]], type[Webhook]],
) -> None:
    """A webhook answering 500 gives an error naming it and the variable to check."""
    url, _, handler = webhook_standin
    handler.status = 500
    with pytest.raises(SendError, match=r"answered HTTP 500; check SLAWATCH_NOTIFY_WEBHOOK_URL"):
        send_report(REPORT, "x", "text", NotifySettings(webhook_url=url))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_line_error(output: str) -> None:
    assert output.startswith("Error: ") and output.count("\n") == 1, output
    assert "Traceback" not in output


def test_report_send_without_a_destination_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`--send` with nothing configured fails in one line naming the variables to set."""
    monkeypatch.chdir(tmp_path)
    for var in ("SLAWATCH_NOTIFY_WEBHOOK_URL", "SLAWATCH_NOTIFY_SMTP_HOST"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(SendError, match="SLAWATCH_NOTIFY_WEBHOOK_URL"):
        send_report(REPORT, "x", "text", NotifySettings())


def test_report_with_no_questdb_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report when QuestDB is not running says to start the stack, without a traceback."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["report", "daily", "--questdb-pg-port", str(_free_port())])
    assert result.exit_code == 1
    _one_line_error(result.output)
    assert "slawatch stack up" in result.output


def test_backfill_with_no_questdb_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backfill when QuestDB is not running says to start the stack, without a traceback."""
    monkeypatch.chdir(tmp_path)
    events = tmp_path / "e.jsonl"
    events.write_text("", encoding="utf-8")
    policies = tmp_path / "p.yaml"
    policies.write_text("policies:\n  - id: p\n    targets: {first_response: {within: 5m}}\n")
    port = _free_port()
    result = CliRunner().invoke(
        main,
        [
            "backfill",
            str(events),
            "--policies",
            str(policies),
            "--quiet",
            "--questdb-http",
            f"127.0.0.1:{port}",
        ],
    )
    assert result.exit_code == 1
    _one_line_error(result.output)
    assert "slawatch stack up" in result.output


def test_from_stack_with_no_stack_is_one_line(tmp_path: Path) -> None:
    """`--from-stack` when no stack runs says to start it, without a traceback."""
    result = CliRunner().invoke(
        main, ["report", "causes", "--from-stack", "--stack-dir", str(tmp_path / "none")]
    )
    assert result.exit_code == 1
    _one_line_error(result.output)
    assert "slawatch stack up" in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["backfill", "missing.jsonl", "--policies", "missing.yaml"], "does not exist"),
        (["report", "scorecard", "--week", "47"], "write it like 2026-W47"),
        (["report", "causes", "--month", "Nov"], "write it like 2026-11"),
        (["report", "daily", "--date", "yesterday"], "write it like 2026-11-23"),
        (["report", "daily", "--format", "pdf"], "'pdf' is not one of"),
        (["report", "baseline", "--days", "0"], "0 is not in the range x>=1"),
        (["report", "daily", "--tz", "Mars/Olympus"], "use an IANA name such as Asia/Jakarta"),
    ],
)
def test_bad_files_and_options_are_one_error_line(args: list[str], expected: str) -> None:
    """A missing file or a bad option ends with one `Error:` line saying what to write."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and expected in last, result.output
