"""The worked examples of docs/SEMANTICS.md still hold: each one is replayed and compared.

Every folder under `docs/examples/semantics/` holds `events.jsonl`, `policies.yaml` and
`expected.txt`. The first line of `expected.txt` is the replay command (run in that folder); the
rest is the compact table of the records it produces. The doc shows each example between
`<!-- example: NAME -->` and `<!-- /example -->`, and that region must be exactly what
`render_region` makes of the folder, so neither the tables nor the snippets can rot silently.

After a deliberate change of behaviour, regenerate the tables and the doc's regions with
`.venv/bin/python -m tests.unit.test_semantics_examples --update`, then read the diff.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flows.cli import main as cli_main
from flows.core.durations import format_duration
from flows.core.timefmt import parse_instant

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples" / "semantics"
DOC = ROOT / "docs" / "SEMANTICS.md"
PROMPT = "$ slawatch replay "
REGION = re.compile(r"<!-- example: ([a-z0-9_]+) -->\n(.*?)<!-- /example -->\n", re.DOTALL)


def example_names() -> list[str]:
    """Return the example folders, sorted."""
    return sorted(p.name for p in EXAMPLES.iterdir() if (p / "events.jsonl").is_file())


def command_of(name: str) -> str:
    """Return the replay command line stored as the first line of `expected.txt`."""
    first = (EXAMPLES / name / "expected.txt").read_text(encoding="utf-8").split("\n", 1)[0]
    if not first.startswith(PROMPT):
        msg = f"{name}/expected.txt must start with {PROMPT!r}"
        raise ValueError(msg)
    return first


def run_example(name: str) -> list[dict[str, Any]]:
    """Run the example's command with the real CLI, in its folder; return the records."""
    args = shlex.split(command_of(name))[2:]
    with contextlib.chdir(EXAMPLES / name):
        result = CliRunner().invoke(cli_main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _ms(text: str | None) -> int | None:
    return None if text is None else parse_instant(text)


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def _time(ms: int | None, *, one_day: bool) -> str:
    if ms is None:
        return "—"
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%H:%M:%S" if one_day else "%a %m-%d %H:%M:%S")


def _elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g}"
    return f"{seconds:g} ({format_duration(round(seconds * 1000))})"


def render_table(records: list[dict[str, Any]]) -> str:
    """Return the compact Markdown table of replayed records (with a one-line time note)."""
    timed = [r for r in records if r["type"] != "dead_letter"]
    instants = [
        ms
        for r in timed
        for ms in (_ms(r.get("at")), _ms(r.get("deadline_at")), _ms(r.get("started_at")))
        if ms is not None
    ]
    days = sorted({_day(ms) for ms in instants})
    one_day = len(days) == 1
    convs = {r["conversation_id"] for r in timed}
    cycles = {r["cycle"] for r in timed}
    policies = {r["policy_id"] for r in timed if r["type"] == "sla"}
    head = ["metric", "seq", "status", "at", "deadline_at", "elapsed_s", "cause / notes"]
    if len(cycles) > 1:
        head.insert(0, "cycle")
    if len(convs) > 1:
        head.insert(0, "conv")
    rows = []
    for rec in records:
        cells: dict[str, str] = {}
        if rec["type"] == "dead_letter":
            cells["status"] = "dead letter"
            cells["cause / notes"] = f"`{rec['source']}`: {rec['reason']}"
        elif rec["type"] == "handle":
            # A handle segment: its end as the status, at its end, its handle time as elapsed.
            cells.update(
                conv=rec["conversation_id"],
                cycle=str(rec["cycle"]),
                metric="handle",
                status=rec["end"],
                at=_time(_ms(rec["ended_at"]), one_day=one_day),
                elapsed_s=_elapsed(rec["handle_s"]),
            )
        else:
            cells.update(
                conv=rec["conversation_id"],
                cycle=str(rec["cycle"]),
                metric=rec["metric"],
                seq=str(rec["seq"]),
                at=_time(_ms(rec["at"]), one_day=one_day),
            )
        notes: list[str] = []
        if rec["type"] == "sla":
            status = rec["status"]
            cells["status"] = f"**{status}**" if status == "breached" else status
            cells["deadline_at"] = _time(_ms(rec["deadline_at"]), one_day=one_day)
            cells["elapsed_s"] = _elapsed(rec["elapsed_s"])
            if "cause" in rec:
                notes.append(rec["cause"])
            if rec["status"] == "started" and rec["started_at"] != rec["at"]:
                notes.append(f"started_at {_time(_ms(rec['started_at']), one_day=one_day)}")
            if "attempts" in rec:
                notes.append(f"attempts {rec['attempts']}")
            if len(policies) > 1:
                notes.append(f"policy {rec['policy_id']}")
            if rec["late"]:
                notes.append("**late**")
        elif rec["type"] == "handle":
            notes.append(
                f"`{rec['agent_id']}` from {_time(_ms(rec['started_at']), one_day=one_day)}"
            )
            if rec["late"]:
                notes.append("**late**")
        elif rec["type"] == "action":
            cells["status"] = f"→ {rec['action']}"
            if rec["action"] == "notify":
                notes.append(f"on {rec['trigger']}: notify `{rec['notify']}`")
            elif rec["action"] == "recover":
                notes.append(f"rule `{rec['rule']}`: send `{rec['send']}`")
                if rec.get("withdrawn"):
                    notes.append("**withdrawn**")
            else:
                to = f"`{rec['to_agent']}`" if rec["to_agent"] else "null"
                notes.append(f"on {rec['trigger']}: `{rec['from_agent']}` → {to}")
                if rec["to_agent"] is None:
                    notes.append(f"reason “{rec['reason']}”")
        if notes:
            cells["cause / notes"] = ", ".join(notes)
        rows.append("| " + " | ".join(cells.get(col, "") for col in head) + " |")
    when = f"Times are UTC, on {days[0]}." if one_day else "Times are UTC."
    lines = [
        when,
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
        *rows,
    ]
    return "\n".join(lines) + "\n"


def expected_text(name: str) -> str:
    """Return what `expected.txt` must hold: the command line, a blank line, the table."""
    return f"{command_of(name)}\n\n{render_table(run_example(name))}"


def render_region(name: str) -> str:
    """Return the doc's region for one example, built from its folder's files."""
    folder = EXAMPLES / name
    events = (folder / "events.jsonl").read_text(encoding="utf-8")
    policy = (folder / "policies.yaml").read_text(encoding="utf-8")
    command, table = (folder / "expected.txt").read_text(encoding="utf-8").split("\n\n", 1)
    where = f"docs/examples/semantics/{name}/"
    return (
        f"Events ([`{where}events.jsonl`]({where.removeprefix('docs/')}events.jsonl)):\n\n"
        f"```json\n{events.rstrip()}\n```\n\n"
        f"Policy ([`{where}policies.yaml`]({where.removeprefix('docs/')}policies.yaml)):\n\n"
        f"```yaml\n{policy.rstrip()}\n```\n\n"
        f"```console\n{command}\n```\n\n"
        f"{table}"
    )


def doc_regions() -> dict[str, str]:
    """Return the doc's example regions by name."""
    return {m.group(1): m.group(2) for m in REGION.finditer(DOC.read_text(encoding="utf-8"))}


@pytest.mark.parametrize("name", example_names())
def test_replay_still_gives_the_expected_table(name: str) -> None:
    """Replaying the example's events gives exactly the table stored in its expected.txt."""
    stored = (EXAMPLES / name / "expected.txt").read_text(encoding="utf-8")
    assert expected_text(name) == stored


@pytest.mark.parametrize("name", example_names())
def test_doc_shows_the_example_as_stored(name: str) -> None:
    """The doc's region for the example shows its current events, policy, command and table."""
    regions = doc_regions()
    assert name in regions, f"docs/SEMANTICS.md has no <!-- example: {name} --> region"
    assert regions[name] == render_region(name)


def test_doc_names_no_missing_example() -> None:
    """Every example region of the doc has a folder (none was renamed or deleted)."""
    assert sorted(doc_regions()) == example_names()


def _update() -> None:
    """Rewrite every expected.txt from a fresh replay, then every region of the doc."""
    for name in example_names():
        (EXAMPLES / name / "expected.txt").write_text(expected_text(name), encoding="utf-8")
    text = DOC.read_text(encoding="utf-8")

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"<!-- example: {name} -->\n{render_region(name)}<!-- /example -->\n"

    DOC.write_text(REGION.sub(fill, text), encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python -m tests.unit.test_semantics_examples --update")
    _update()
