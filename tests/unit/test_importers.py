"""`slawatch import twcs|helpdesk` on the real files: counts reconcile, figures match the CSV."""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from flows.cli import main
from flows.core.decode import decode_event
from flows.core.events import Rejected
from flows.core.policies import load_policies
from flows.core.records import SlaRecord
from flows.replay import replay_records
from flows.sim.importers import ImportSummary, import_helpdesk, import_twcs

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
TWCS = DATA / "twcs_sample.csv"
HELPDESK = DATA / "helpdesk.csv"


def _need(path: Path) -> None:
    if not path.is_file():
        pytest.skip(
            f"{path.name} is not in ../shared/data (the real data sets live outside the repo)"
        )


def _import(kind: str, source: Path, tmp_path: Path) -> tuple[list[bytes], str]:
    out = tmp_path / f"{kind}.jsonl"
    result = CliRunner().invoke(main, ["import", kind, str(source), "--output", str(out)])
    assert result.exit_code == 0, result.output
    return out.read_bytes().splitlines(), result.output


def _final_records(lines: list[bytes], policies: str) -> list[SlaRecord]:
    return [
        r
        for r in replay_records(lines, load_policies(ROOT / "examples" / policies))
        if isinstance(r, SlaRecord)
    ]


# -- twcs -------------------------------------------------------------------------------------


def test_twcs_import_reconciles_and_every_event_decodes(tmp_path: Path) -> None:
    """Rows read = events written + rows skipped; every written line is a valid event."""
    _need(TWCS)
    lines, output = _import("twcs", TWCS, tmp_path)
    with (tmp_path / "again.jsonl").open("wb") as out:
        summary = import_twcs(TWCS, out)
    assert summary.reconciles()
    assert summary.rows_read == summary.events_written + summary.rows_skipped
    assert summary.events_written == len(lines)
    assert f"read {summary.rows_read} rows = {summary.rows_converted} converted" in output
    assert not any(isinstance(decode_event(line), Rejected) for line in lines)
    times = [orjson.loads(line)["occurred_at"] for line in lines]
    assert times == sorted(times), "events are written in time order"


def _csv_threads() -> list[list[tuple[int, int, bool]]]:
    """Threads recomputed straight from the CSV: lists of (epoch s, file row, inbound)."""
    text = TWCS.read_bytes().replace(b"\r", b"").decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for row in rows:
        parent[row["tweet_id"]] = row["tweet_id"]
    for row in rows:
        reply_to = row["in_response_to_tweet_id"]
        if reply_to:
            other = str(int(float(reply_to)))
            if other in parent:
                parent[find(row["tweet_id"])] = find(other)
    threads: dict[str, list[tuple[int, int, bool]]] = defaultdict(list)
    for index, row in enumerate(rows):
        at = datetime.strptime(row["created_at"], "%a %b %d %H:%M:%S %z %Y")
        threads[find(row["tweet_id"])].append(
            (int(at.timestamp()), index, row["inbound"] == "True")
        )
    return list(threads.values())


def test_replayed_twitter_first_responses_equal_those_computed_from_the_csv(
    tmp_path: Path,
) -> None:
    """Replaying the import gives the same first-response times, count and median as the CSV."""
    _need(TWCS)
    lines, _ = _import("twcs", TWCS, tmp_path)
    expected: list[int] = []
    unanswered = 0
    for thread in _csv_threads():
        thread.sort()
        first_in = next((i for i, t in enumerate(thread) if t[2]), None)
        if first_in is None:
            continue
        reply = next((t for t in thread[first_in + 1 :] if not t[2]), None)
        if reply is None:
            unanswered += 1
        else:
            expected.append(reply[0] - thread[first_in][0])
    records = _final_records(lines, "twcs-policies.yaml")
    answered = [
        r.elapsed // 1000
        for r in records
        if r.metric == "first_response" and r.status in ("met", "stopped")
    ]
    started = sum(1 for r in records if r.metric == "first_response" and r.status == "started")
    assert sorted(answered) == sorted(expected)
    assert statistics.median(answered) == statistics.median(expected)
    assert started == len(expected) + unanswered
    met = sum(1 for r in records if r.metric == "first_response" and r.status == "met")
    assert met == sum(1 for s in expected if s <= 3600), "compliance at the 1 h target agrees"


# -- helpdesk ---------------------------------------------------------------------------------


def test_helpdesk_import_reconciles_with_every_skip_named(tmp_path: Path) -> None:
    """Rows read = converted + skipped (by reason); events = converted + derived; all decode."""
    _need(HELPDESK)
    lines, output = _import("helpdesk", HELPDESK, tmp_path)
    with (tmp_path / "again.jsonl").open("wb") as out:
        summary = import_helpdesk(HELPDESK, out)
    assert summary.reconciles()
    assert summary.events_written == len(lines)
    with HELPDESK.open(newline="", encoding="utf-8") as src:
        rows = list(csv.reader(src))[1:]
    assert summary.rows_read == len(rows)
    assert summary.conversations == len({row[0] for row in rows})
    for reason, count in summary.skipped.items():
        assert f"skipped {count}: {reason}" in output
    assert not any(isinstance(decode_event(line), Rejected) for line in lines)
    duplicates = len(rows) - len({tuple(row) for row in rows})
    assert summary.skipped["exact duplicate of an earlier row"] == duplicates


def test_helpdesk_replay_resolves_every_resolved_case_and_assigns_taken_ones(
    tmp_path: Path,
) -> None:
    """Cases with Resolve ticket/Closed end a resolution clock; taken ones get an assignee."""
    _need(HELPDESK)
    lines, _ = _import("helpdesk", HELPDESK, tmp_path)
    with HELPDESK.open(newline="", encoding="utf-8") as src:
        rows = list(csv.reader(src))[1:]
    resolved_cases = {r[0] for r in rows if r[1] in ("Resolve ticket", "Closed")}
    taken_cases = {r[0] for r in rows if r[1] == "Take in charge ticket"}
    records = _final_records(lines, "helpdesk-policies.yaml")
    ended: set[str] = set()
    assigned: set[str] = set()
    for r in records:
        case = r.conversation_id.removeprefix("helpdesk-case-")
        if r.metric == "resolution" and r.status in ("met", "stopped"):
            ended.add(f"Case {case}")
        if r.metric == "assignment" and r.status in ("met", "stopped"):
            assigned.add(f"Case {case}")
    assert ended == resolved_cases
    assert assigned <= taken_cases
    assert len(assigned) > 0.9 * len(taken_cases)


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "content"),
    [("twcs", "a,b\n1,2\n"), ("helpdesk", "tweet_id,author_id\n1,x\n"), ("twcs", "")],
)
def test_a_file_of_the_wrong_shape_is_one_error_line(
    tmp_path: Path, kind: str, content: str
) -> None:
    """An importer given the wrong CSV exits 1 with one `Error:` sentence, no traceback."""
    path = tmp_path / "wrong.csv"
    path.write_text(content)
    result = CliRunner().invoke(main, ["import", kind, str(path)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert result.output.count("\n") == 1
    assert "Traceback" not in result.output


def test_bad_rows_are_skipped_by_reason_not_lost(tmp_path: Path) -> None:
    """Unusable twcs rows are counted under their reason and the rest converted."""
    header = ",tweet_id,author_id,inbound,created_at,text,response_tweet_id,in_response_to_tweet_id"
    good = "0,1,acme,False,Tue Oct 31 22:10:47 +0000 2017,hi,,2.0"
    rows = [
        header,
        good,
        "1,2,55,True,Tue Oct 31 22:00:00 +0000 2017,help,1,",
        "2,3,55,maybe,Tue Oct 31 22:00:00 +0000 2017,help,,",
        "3,4,55,True,yesterday,help,,",
        "4,1,acme,False,Tue Oct 31 22:10:47 +0000 2017,again,,",
    ]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(rows) + "\n")
    out = io.BytesIO()
    summary: ImportSummary = import_twcs(path, out)
    assert summary.rows_read == 5
    assert summary.events_written == 2
    assert summary.skipped == {
        "inbound is neither True nor False": 1,
        "created_at is not like 'Tue Oct 31 22:10:47 +0000 2017'": 1,
        "tweet_id repeats an earlier row": 1,
    }
    events: list[dict[str, Any]] = [orjson.loads(x) for x in out.getvalue().splitlines()]
    assert {e["conversation_id"] for e in events} == {"twcs-2"}


@pytest.mark.parametrize("source", [TWCS, HELPDESK], ids=["twcs", "helpdesk"])
def test_no_real_dataset_has_satisfaction_so_imports_carry_no_survey(
    source: Path, tmp_path: Path
) -> None:
    """Neither file has a CSAT, rating or satisfaction column or activity (docs/IMPORTERS.md):
    the imports hold no `survey` event rather than invented ratings."""
    _need(source)
    header = source.read_text(encoding="utf-8").splitlines()[0].lower()
    words = ("satisf", "csat", "rating", "survey", "feedback", "score", "nps")
    assert not any(w in header for w in words), header
    if source == HELPDESK:
        with source.open(encoding="utf-8", newline="") as handle:
            activities = {row[1].lower() for row in csv.reader(handle)}
        assert not any(w in a for a in activities for w in words), activities
    lines, _ = _import("twcs" if source == TWCS else "helpdesk", source, tmp_path)
    assert lines
    assert not any(orjson.loads(line)["type"] == "survey" for line in lines)
