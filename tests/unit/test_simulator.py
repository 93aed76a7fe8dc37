"""`slawatch simulate`: valid, deterministic, realistic traffic that the engine measures."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from click.testing import CliRunner

from flows.cli import main
from flows.core.decode import decode_event
from flows.core.events import Rejected
from flows.core.policies import load_policies
from flows.core.records import to_json_dict
from flows.core.timefmt import parse_instant
from flows.core.vocabulary import Metric
from flows.exceptions import SimulationError
from flows.replay import ReplaySummary, replay_records
from flows.sim.business import Business, load_business, parse_business
from flows.sim.simulator import DAY, Simulator
from tests.schemakit import validator

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
JAKARTA = ZoneInfo("Asia/Jakarta")
START = "2026-11-02T00:00:00+07:00"  # a Monday, local midnight
DAYS = 14


def _simulate(tmp: Path, *args: str) -> tuple[Path, str]:
    out = tmp / "events.jsonl"
    result = CliRunner().invoke(main, ["simulate", "--output", str(out), *args])
    assert result.exit_code == 0, result.output
    return out, result.output


@dataclass
class History:
    """A simulated fortnight of the default business, and its replay."""

    events: list[dict[str, Any]]
    records: list[dict[str, Any]]
    summary: ReplaySummary
    path: Path


def _replay(path: Path, policies: Path) -> tuple[list[dict[str, Any]], ReplaySummary]:
    summary = ReplaySummary()
    with path.open("rb") as src:
        records = [
            {k: v for k, v in rec_json(r).items() if k != "emitted_at"}
            for r in replay_records(src, load_policies(policies), summary=summary)
        ]
    return records, summary


def rec_json(record: Any) -> dict[str, Any]:
    return to_json_dict(record, "-")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    tmp = tmp_path_factory.mktemp("sim")
    path, _ = _simulate(tmp, "--seed", "11", "--start", START, "--days", str(DAYS))
    events = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    records, summary = _replay(path, ROOT / "examples" / "policies.yaml")
    return History(events, records, summary, path)


def _final(records: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """The last ending record of each clock (met, stopped, closed, cancelled, breached)."""
    final: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in records:
        if r["type"] == "sla" and r["status"] in ("met", "stopped", "closed", "cancelled"):
            final[(r["conversation_id"], r["cycle"], r["metric"], r["seq"])] = r
        elif r["type"] == "sla" and r["status"] == "breached":
            final.setdefault((r["conversation_id"], r["cycle"], r["metric"], r["seq"]), r)
    return final


def _local(instant: str) -> datetime:
    return datetime.fromtimestamp(parse_instant(instant) / 1000, JAKARTA)


def _sla(history: History, **match: Any) -> Iterator[dict[str, Any]]:
    for r in history.records:
        if r["type"] == "sla" and all(r.get(k) == v for k, v in match.items()):
            yield r


def test_every_simulated_event_decodes_and_matches_the_schema(history: History) -> None:
    """Each line is an event the decoder accepts and `schemas/event.schema.json` validates."""
    check = validator("event.schema.json")
    for body in history.events:
        assert not isinstance(decode_event(orjson.dumps(body)), Rejected), body
        check.validate(body)
    assert history.summary.dead_letters == 0


def test_same_seed_same_bytes_other_seed_other_traffic(tmp_path: Path) -> None:
    """--seed and --start make a run repeatable byte for byte; another seed differs."""
    runs = {}
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        (tmp_path / name).mkdir()
        path, _ = _simulate(tmp_path / name, "--seed", seed, "--start", START, "--days", "1")
        runs[name] = path.read_bytes()
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def test_per_day_sets_the_volume(tmp_path: Path) -> None:
    """--per-day scales how many conversations a day brings."""
    counts = []
    for per_day in ("50", "400"):
        (tmp_path / per_day).mkdir()
        path, _ = _simulate(
            tmp_path / per_day, "--seed", "1", "--start", START, "--days", "1", "--per-day", per_day
        )
        lines = path.read_bytes().splitlines()
        counts.append(len({orjson.loads(line)["conversation_id"] for line in lines}))
    assert counts[0] * 4 < counts[1]


def test_history_covers_the_requested_span_and_says_so(tmp_path: Path) -> None:
    """Events occur within [--start, --start + --days); the summary line counts them."""
    path, output = _simulate(tmp_path, "--seed", "2", "--start", START, "--days", "2")
    lines = path.read_bytes().splitlines()
    times = [parse_instant(orjson.loads(line)["occurred_at"]) for line in lines]
    start = parse_instant(START)
    assert min(times) >= start
    assert max(times) < start + 2 * DAY
    assert f"{len(lines)} events" in output


def test_replay_shows_breaches_and_mets_for_every_kind_of_clock(history: History) -> None:
    """Replayed under examples/policies.yaml, each measured metric has both mets and breaches."""
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    for r in _final(history.records).values():
        outcomes[r["metric"]][r["status"]] += 1
    for metric in Metric.ALL:
        breached = sum(outcomes[metric][s] for s in ("breached", "stopped", "closed"))
        assert outcomes[metric]["met"] > 0, metric
        assert breached > 0, metric
    first = outcomes["first_response"]
    compliance = first["met"] / (first["met"] + first["breached"] + first["stopped"])
    assert 0.5 < compliance < 0.98, "a realistic team meets most first-response targets"


def test_arrivals_peak_at_the_19h_campaign_and_some_come_at_night(history: History) -> None:
    """New conversations peak in the 19:00 local hour; some arrive while nobody works."""
    by_hour = Counter(
        _local(e["occurred_at"]).hour
        for e in history.events
        if e["type"] == "conversation" and e["action"] == "opened"
    )
    assert by_hour.most_common(1)[0][0] == 19
    night = sum(by_hour[h] for h in range(0, 6))
    assert night > 0
    assert any(r["cause"] == "after_hours" for r in _sla(history, status="breached"))


def test_weekends_are_quieter_than_weekdays(history: History) -> None:
    """Fewer conversations open per weekend day than per weekday."""
    per_day = Counter(
        _local(e["occurred_at"]).date()
        for e in history.events
        if e["type"] == "conversation" and e["action"] == "opened"
    )
    weekday = [n for d, n in per_day.items() if d.weekday() < 5]
    weekend = [n for d, n in per_day.items() if d.weekday() >= 5]
    assert statistics.mean(weekend) < statistics.mean(weekday)


def test_reply_times_are_mostly_fast_with_a_long_tail(history: History) -> None:
    """Hot leads are answered faster than cold ones; the slowest tenth takes far longer."""
    elapsed: dict[str | None, list[float]] = defaultdict(list)
    for r in _final(history.records).values():
        if r["metric"] == "first_response" and r["status"] in ("met", "stopped"):
            elapsed[r["lead_source"]].append(r["elapsed_s"])
    hot = elapsed["demo_request"] + elapsed["pricing"]
    cold = elapsed["newsletter"] + elapsed["organic"]
    assert statistics.median(hot) < statistics.median(cold)
    every = sorted(x for xs in elapsed.values() for x in xs)
    assert every[int(len(every) * 0.9)] > 3 * statistics.median(every)


def test_some_conversations_are_never_answered_and_their_window_closes(history: History) -> None:
    """Unanswered chats exist, and WhatsApp's 24 h service window breaches for some."""
    replied = {
        e["conversation_id"]
        for e in history.events
        if e["type"] == "message" and e["author"] == "agent"
    }
    opened = {e["conversation_id"] for e in history.events if e["type"] == "conversation"}
    assert opened - replied
    assert any(True for _ in _sla(history, metric="service_window", status="breached"))


def test_bursts_bots_and_handoffs(history: History) -> None:
    """Customers send bursts; bot greetings do not start the human clock before the hand-off."""
    by_conv: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in history.events:
        by_conv[e["conversation_id"]].append(e)
    bursts = 0
    for events in by_conv.values():
        kinds = [(e["type"], e.get("author")) for e in events]
        bursts += any(a == b == ("message", "customer") for a, b in itertools.pairwise(kinds))
    assert bursts > 0
    handoffs = {
        e["conversation_id"]: e["occurred_at"]
        for e in history.events
        if e["type"] == "conversation" and e.get("handled_by") == "human"
    }
    assert any(e["type"] == "message" and e["author"] == "bot" for e in history.events)
    assert handoffs
    started = {
        r["conversation_id"]: r["started_at"]
        for r in _sla(history, metric="first_response", status="started", cycle=1)
    }
    checked = [c for c in handoffs if c in started]
    assert checked
    for conv in checked:
        assert parse_instant(started[conv]) >= parse_instant(handoffs[conv])


def test_leads_are_qualified_handed_off_called_and_closed(history: History) -> None:
    """Lead statuses, AE hand-offs, calls and e-mails with outcomes, and won/lost closes occur."""
    statuses = {e.get("lead_status") for e in history.events if e["type"] == "conversation"}
    assert {"new", "qualified", "disqualified", "nurture"} <= statuses
    assert any(e["type"] == "assignment" and e.get("role") == "ae" for e in history.events)
    activities = {(e["kind"], e.get("outcome")) for e in history.events if e["type"] == "activity"}
    assert {k for k, _ in activities} >= {"call", "email", "meeting"}
    assert {o for _, o in activities} >= {"connected", "no_answer"}
    outcomes = {e.get("outcome") for e in history.events if e.get("action") == "resolved"}
    assert {"won", "lost"} <= outcomes
    assert any(r["attempts"] >= 2 for r in _sla(history, metric="contact_attempts", status="met"))


def test_follow_up_promises_kept_and_broken(history: History) -> None:
    """Agents promise follow-ups; some promises are met, some breached."""
    ends = Counter(
        r["status"] for r in _final(history.records).values() if r["metric"] == "follow_up"
    )
    assert ends["met"] > 0
    assert ends["breached"] + ends["stopped"] + ends["closed"] > 0


def test_pending_resolutions_reopenings_and_returning_customers(history: History) -> None:
    """Chats wait on the customer (paused clocks), are reopened, and customers come back."""
    assert any(True for _ in _sla(history, metric="resolution", status="paused"))
    assert any(e.get("action") == "reopened" for e in history.events)
    assert any(r["cycle"] >= 2 for r in _sla(history, status="started"))


def test_a_week_hands_technical_issues_from_the_front_line_to_the_back_office(
    history: History,
) -> None:
    """Week one: support -> tech (-> support) hand-overs; stints met and breached per team."""
    week_end = parse_instant(START) + 7 * DAY
    teams: dict[str, list[str]] = defaultdict(list)
    for e in history.events:
        if (
            e["type"] == "conversation"
            and "team_id" in e
            and parse_instant(e["occurred_at"]) < week_end
        ):
            path = teams[e["conversation_id"]]
            if not path or path[-1] != e["team_id"]:
                path.append(e["team_id"])
    handed = {c for c, path in teams.items() if path[:2] == ["support", "tech"]}
    assert len(handed) >= 30
    assert any(path[:3] == ["support", "tech", "support"] for path in teams.values())
    specialists = {
        e["conversation_id"]
        for e in history.events
        if e["type"] == "assignment" and e.get("team_id") == "tech" and e["role"] == "specialist"
    }
    assert handed <= specialists

    stints = [
        r
        for r in _final(history.records).values()
        if r["metric"] == "team_ownership" and parse_instant(r["started_at"]) < week_end
    ]
    outcomes = {
        team: Counter(r["breached"] for r in stints if r["team_id"] == team)
        for team in ("support", "tech")
    }
    for team, counted in outcomes.items():
        assert counted[False] > counted[True] > 0, (team, counted)
    # The front line's stint ends met or stopped at the hand-over; the back office's takes hours.
    first = {r["conversation_id"]: r for r in stints if r["seq"] == 1 and r["cycle"] == 1}
    assert all(first[c]["team_id"] == "support" for c in handed if c in first)
    back_office = [r["elapsed_s"] for r in stints if r["team_id"] == "tech"]
    assert statistics.median(back_office) > 3600
    assert all(r.get("budget_pct") is not None for r in stints if r["status"] != "breached")
    assert {r["seq"] for r in stints if r["team_id"] == "support"} >= {1, 3}


def test_back_office_silences_breach_update_clocks_and_escalate_per_team(history: History) -> None:
    """Long cases go quiet for hours: update clocks warn and breach; supervisors are notified."""
    updates = [r for r in _final(history.records).values() if r["metric"] == "update"]
    breached = [r for r in updates if r["breached"]]
    assert sum(not r["breached"] for r in updates) > len(breached) > 0
    assert any(r["team_id"] == "tech" for r in breached), "the back office's silences breach"
    assert any(True for _ in _sla(history, metric="update", status="warning"))
    notified = Counter(
        (r["trigger"], r["metric"], r["notify"])
        for r in history.records
        if r["type"] == "action" and r["action"] == "notify"
    )
    # Each team's OLA warning reaches that team's own supervisor (examples/policies.yaml).
    assert notified[("warning", "team_ownership", "spv.maya")] > 0
    assert notified[("warning", "team_ownership", "spv.joko")] > 0
    assert notified[("breached", "update", "spv.joko")] > 0


def test_demo_profile_hands_over_and_turns_team_and_update_clocks_red(tmp_path: Path) -> None:
    """demo-business.yaml at --speed 60: l1 -> l2 stints and update breaches within minutes."""
    path, _ = _simulate(
        tmp_path,
        "--business",
        str(ROOT / "examples" / "demo-business.yaml"),
        "--seed",
        "2",
        "--start",
        "2026-11-23T10:00:00Z",
        "--days",
        str(8 / 24),
        "--speed",
        "60",
    )
    records, summary = _replay(path, ROOT / "examples" / "demo-policies.yaml")
    assert summary.dead_letters == 0
    start = parse_instant("2026-11-23T10:00:00Z")
    first: dict[tuple[str, str | None, str], int] = {}
    for r in records:
        if r["type"] == "sla" and r["metric"] in ("update", "team_ownership"):
            team = r["team_id"] if r["metric"] == "team_ownership" else None
            first.setdefault((r["metric"], team, r["status"]), parse_instant(r["at"]) - start)
    assert first[("team_ownership", "l2", "started")] <= 2 * 60_000
    assert first[("team_ownership", "l2", "met")] <= 8 * 60_000
    assert first[("team_ownership", "l2", "breached")] <= 8 * 60_000
    assert first[("team_ownership", "l1", "breached")] <= 5 * 60_000
    assert first[("update", None, "breached")] <= 5 * 60_000


def test_duplicates_are_delivered_and_ignored(history: History, tmp_path: Path) -> None:
    """Some events arrive twice; replaying without the copies gives the very same records."""
    seen: set[str] = set()
    unique: list[bytes] = []
    for line in history.path.read_bytes().splitlines():
        event_id = orjson.loads(line)["event_id"]
        if event_id not in seen:
            seen.add(event_id)
            unique.append(line)
    assert len(unique) < len(history.events)
    deduped = tmp_path / "unique.jsonl"
    deduped.write_bytes(b"\n".join(unique) + b"\n")
    records, _ = _replay(deduped, ROOT / "examples" / "policies.yaml")
    assert records == history.records


def test_late_events_arrive_after_newer_ones_and_correct_outcomes(history: History) -> None:
    """Some events are delivered after newer ones (beyond the 5 s lateness) and are applied."""
    newest = 0
    late = 0
    for e in history.events:
        at = parse_instant(e["occurred_at"])
        late += at < newest - 5_000
        newest = max(newest, at)
    assert late > 0
    assert history.summary.dead_letters == 0
    assert any(r.get("late") for r in history.records if r["type"] == "sla")


def test_demo_profile_warns_and_breaches_within_a_minute(tmp_path: Path) -> None:
    """demo-business.yaml at --speed 60 under demo-policies.yaml: yellow and red in a minute."""
    for seed in range(1, 6):
        out = tmp_path / f"demo-{seed}"
        out.mkdir()
        path, _ = _simulate(
            out,
            "--business",
            str(ROOT / "examples" / "demo-business.yaml"),
            "--seed",
            str(seed),
            "--start",
            "2026-11-23T10:00:00Z",
            "--days",
            str(3 / 24),
            "--speed",
            "60",
        )
        records, _ = _replay(path, ROOT / "examples" / "demo-policies.yaml")
        start = parse_instant("2026-11-23T10:00:00Z")
        first: dict[str, int] = {}
        for r in records:
            if r["type"] == "sla":
                first.setdefault(r["status"], parse_instant(r["at"]) - start)
        assert first["warning"] <= 60_000, seed
        assert first["breached"] <= 60_000, seed


def test_examples_business_yaml_is_the_default_business() -> None:
    """examples/business.yaml documents exactly the built-in defaults."""
    assert load_business(ROOT / "examples" / "business.yaml") == Business()


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"teams": {"s": {"agents": [{"id": "a", "shift": "8-17"}]}}}, "shift"),
        ({"conversations_per_day": -3}, "conversations_per_day"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"colour": "red"}, "colour"),
        ({"lead_sources": [{"name": "x", "share": 0.7}, {"name": "y", "share": 0.6}]}, "over 1"),
        ({"back_office": {"team": "nobody"}}, "back_office: .*'nobody' is not among teams"),
        ({"back_office": {"team": "support"}}, "back_office: .*front line"),
        ({"back_office": {"work_median": "soon"}}, "back_office.work_median"),
    ],
)
def test_a_bad_business_file_is_refused_naming_the_field(data: dict[str, Any], names: str) -> None:
    """An invalid business setting is one error sentence that names the field."""
    with pytest.raises(SimulationError, match=names):
        parse_business(data, "b.yaml")


def test_a_business_without_a_back_office_hands_nothing_over() -> None:
    """No `specialist` team (or `back_office: null`): service chats stay with the front line."""
    start = parse_instant(START)
    for business in (
        Business(back_office=None),
        parse_business({"teams": {"support": {"agents": [{"id": "cs.a"}, {"id": "cs.b"}]}}}),
    ):
        stream = list(Simulator(business, seed=3).events(start, start + DAY))
        moved = {
            e.body["team_id"]
            for e in stream
            if e.body["type"] == "conversation" and "team_id" in e.body
        }
        assert len(stream) > 100
        assert moved <= {business.front_line_team()}
        assert not any(e.body.get("role") == "specialist" for e in stream)


def test_simulator_stream_is_in_delivery_order() -> None:
    """Events come out in the order they are delivered, each conversation keyed consistently."""
    sim = Simulator(Business(), seed=3)
    start = parse_instant(START)
    stream = list(sim.events(start, start + DAY))
    delivered = [e.deliver_at for e in stream]
    assert delivered == sorted(delivered)
    assert all(e.deliver_at >= e.occurred_at for e in stream)


# -- CSAT surveys (issue 24) -----------------------------------------------------------------


def _mean(values: list[int]) -> float:
    assert len(values) >= 20, "too few ratings to compare"
    return statistics.fmean(values)


def test_csat_ratings_fall_with_the_first_response_wait(history: History) -> None:
    """Over a fortnight, customers answered within 10 minutes rate higher than those who waited
    up to two hours, who rate higher than those who waited longer; breached cycles rate lower."""
    final = _final(history.records)
    waits: dict[tuple[str, int], int] = {}
    for (conv, cycle, metric, _), r in final.items():
        if metric == "first_response":
            end = r.get("stopped_at") or r["at"]
            waits[(conv, cycle)] = parse_instant(end) - parse_instant(r["started_at"])
    rated = [r for r in history.records if r["type"] == "csat" and r["rating"] is not None]
    buckets: dict[str, list[int]] = defaultdict(list)
    for r in rated:
        wait = waits.get((r["conversation_id"], r["cycle"]))
        if wait is not None:
            label = "fast" if wait <= 10 * 60_000 else "slow" if wait <= 2 * 3_600_000 else "long"
            buckets[label].append(r["rating"])
    fast, slow, long = (_mean(buckets[k]) for k in ("fast", "slow", "long"))
    assert fast > slow > long, (fast, slow, long)
    assert fast > long + 1.0, (fast, long)
    breached = _mean([r["rating"] for r in rated if r["breached"]])
    met = _mean([r["rating"] for r in rated if not r["breached"]])
    assert met > breached + 0.25, (met, breached)
    happy = sum(r["rating"] >= 4 for r in rated) / len(rated)
    assert 0.5 < happy < 0.95, "a realistic CSAT %"


def test_csat_surveys_are_sent_rated_or_not_sent_when_the_window_had_closed(
    history: History,
) -> None:
    """A share of resolves offers a survey, a share of those is rated; a resolve more than 24 h
    after the customer's last message gives `not_sent` (outside_window) instead."""
    last_customer: dict[str, int] = {}
    counts: Counter[str] = Counter()
    unique = {e["event_id"]: e for e in history.events}.values()
    for e in sorted(unique, key=lambda e: parse_instant(e["occurred_at"])):
        at = parse_instant(e["occurred_at"])
        if e["type"] == "message" and e.get("author") == "customer":
            last_customer[e["conversation_id"]] = at
        elif e["type"] == "survey" and e["action"] != "rated":
            quiet = at - last_customer[e["conversation_id"]]
            counts[e["action"]] += 1
            if e["action"] == "not_sent":
                assert e["reason"] == "outside_window"
                assert quiet > DAY, e
            else:
                assert quiet <= DAY + 5_000, e
    sent = [
        r
        for r in history.records
        if r["type"] == "csat" and r["sent_at"] is not None and r["rating"] is None
    ]
    rated = [r for r in history.records if r["type"] == "csat" and r["rating"] is not None]
    assert counts["sent"] == len(sent) > 300
    assert counts["not_sent"] > 50
    assert 0.25 < len({(r["conversation_id"], r["survey_id"]) for r in rated}) / len(sent) < 0.6


def test_turning_surveys_off_leaves_every_other_event_as_it_was() -> None:
    """`csat: null` removes the survey events and changes nothing else of a seed's traffic."""
    start = parse_instant(START)
    with_csat = list(Simulator(Business(), seed=4).events(start, start + 2 * DAY))
    without = list(Simulator(Business(csat=None), seed=4).events(start, start + 2 * DAY))
    assert any(e.body["type"] == "survey" for e in with_csat)
    assert [e for e in with_csat if e.body["type"] != "survey"] == without
