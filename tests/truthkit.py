"""A replayed month for report tests: generated traffic with late events, run through the engine.

`month_events` generates a month of WhatsApp conversations ending at a given instant (some
still waiting at the end), in *delivery* order: a share of events arrives minutes after it
happened, so the engine emits late corrections. Every policy measures handle time, two have a
service recovery rule, and resolved conversations get CSAT surveys (sent, rated, re-rated, a
rating with no `sent`, `not_sent`), drawn from their own generator (`survey_events`) so every
other event is the one the month had before. `replay_month` runs the real engine over them
the way `slawatch replay` does. `Truth` folds the records independently of the writer and of
SQL: each clock's latest record, with the breach cause carried over (and, after an `attempt`
record, the state the clock was in with the new count).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from flows.connectors.questdb import record_is_open as clock_is_open
from flows.core.policies import parse_policies
from flows.core.records import ActionRecord, CsatRecord, HandleRecord, Record, SlaRecord
from flows.replay import replay_records

TZ = "Asia/Jakarta"
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

POLICIES = """
calendars:
  jakarta_office:
    timezone: Asia/Jakarta
    weekly:
      mon: ["08:00-20:00"]
      tue: ["08:00-20:00"]
      wed: ["08:00-20:00"]
      thu: ["08:00-20:00"]
      fri: ["08:00-20:00"]
      sat: ["09:00-15:00"]
      sun: []
policies:
  - id: hot-leads
    when: {lead_source: [demo_request, pricing]}
    targets:
      assignment: {within: 2m}
      first_response: {within: 5m, warn_at: 0.6}
      next_response: {within: 10m, warn_before: 3m}
      resolution: {within: 8h, pause_when: [pending]}
      team_ownership: {sales: 3h, support: 3h, backoffice: {within: 90m, pause_when: [pending]}}
      qualification: {within: 2h}
      contact_attempts: {min: 3, within: 4h, gap: 10m}
      service_window: {within: 24h, warn_before: 2h}
    handle: {idle: 10m}
    recovery:
      - {metric: first_response, send: sorry_note}
  - id: vip
    when: {segment: [vip]}
    targets:
      assignment: {within: 3m}
      first_response: {within: 5m}
      next_response: {within: 10m}
      resolution: {within: 12h, pause_when: [pending]}
      service_window: {within: 24h, warn_before: 2h}
    handle: {idle: 10m}
  - id: office
    calendar: jakarta_office
    targets:
      assignment: {within: 10m}
      first_response: {within: 15m}
      next_response: {within: 30m}
      resolution: {within: 24h, pause_when: [pending]}
      team_ownership: {sales: 4h, support: 4h, backoffice: {within: 2h, pause_when: [pending]}}
    handle: {idle: 10m}
    recovery:
      - {metric: first_response, over: 30m, send: apology_voucher}
teams:
  sales: {agents: [a1, a2, a3, a4], supervisor: s1}
  support: {agents: [b1, b2, b3], supervisor: s2}
  backoffice: {agents: [k1, k2], supervisor: s3}
"""

TEAMS = {"sales": ("a1", "a2", "a3", "a4"), "support": ("b1", "b2", "b3")}
#: The back-office team front-line teams hand conversations over to (SPEC §4 team_ownership).
BACK_OFFICE = ("backoffice", ("k1", "k2"))
#: Share of answered conversations handed to the back office, and of those handed back.
HANDED_OVER, HANDED_BACK = 0.25, 0.3
SOURCES = (None, None, None, "demo_request", "pricing", "referral", "newsletter")
#: Ratings by the team that resolved the conversation: support pleases, sales less so.
RATINGS = {
    "support": (3, 4, 5, 5, 5, 5),
    "sales": (1, 2, 3, 4, 5, 5),
    "backoffice": (2, 4, 4, 5),
}


def conversation(conv: str, start: int, end: int, rng: random.Random) -> list[dict[str, Any]]:
    """One conversation's events in time order, none after `end`."""
    events: list[dict[str, Any]] = []
    ids = iter(range(1, 10_000))

    def add(at: int, type_: str, **fields: Any) -> None:
        if at <= end:
            body = {"event_id": f"{conv}-{next(ids)}", "type": type_, "conversation_id": conv}
            events.append({**body, "occurred_at": at, **fields})

    team = rng.choice(list(TEAMS))
    attrs: dict[str, Any] = {
        "priority": rng.choice(["P1", "P2", "P3", "P3", "P4"]),
        "team_id": team,
    }
    source = rng.choice(SOURCES)
    if source is not None:
        attrs["lead_source"] = source
        attrs["lead_status"] = "new"
    if rng.random() < 0.1:
        attrs["segment"] = "vip"
    t = start
    add(t, "conversation", action="opened", **attrs)
    t += rng.randint(1_000, 30_000)
    add(t, "message", direction="inbound", author="customer")
    if rng.random() < 0.08:
        return events  # never picked up
    t += rng.choice([rng.randint(5_000, 90_000), rng.randint(60_000, 20 * MINUTE)])
    agent = rng.choice(TEAMS[team])
    add(t, "assignment", action="assigned", agent_id=agent, team_id=team)
    if source is not None and rng.random() < 0.5:
        for _ in range(rng.randint(1, 3)):
            t += rng.randint(2 * MINUTE, 40 * MINUTE)
            add(t, "activity", kind="call", agent_id=agent, outcome="no_answer")
    if rng.random() < 0.07:
        return events  # assigned, never answered
    t += rng.choice(
        [
            rng.randint(10_000, 4 * MINUTE),
            rng.randint(10_000, 4 * MINUTE),
            rng.randint(MINUTE, HOUR),
        ]
    )
    add(t, "message", direction="outbound", author="agent", agent_id=agent)
    # Hand-overs draw from their own generator, so every other conversation stays as it was.
    side = random.Random(f"{conv}-handover")
    if side.random() < HANDED_OVER:
        back_team, back_agents = BACK_OFFICE
        t += side.randint(MINUTE, 40 * MINUTE)
        add(t, "conversation", action="updated", team_id=back_team)
        agent = side.choice(back_agents)
        t += side.randint(10_000, 30 * MINUTE)
        add(t, "assignment", action="assigned", agent_id=agent, team_id=back_team)
        t += side.randint(MINUTE, 3 * HOUR)
        add(t, "message", direction="outbound", author="agent", agent_id=agent)
        if side.random() < HANDED_BACK:
            t += side.randint(MINUTE, HOUR)
            add(t, "conversation", action="updated", team_id=team)
            agent = side.choice(TEAMS[team])
            add(t, "assignment", action="assigned", agent_id=agent, team_id=team)
    for _ in range(rng.randint(0, 3)):
        t += rng.randint(30_000, 30 * MINUTE)
        add(t, "message", direction="inbound", author="customer")
        if rng.random() < 0.15:
            t += rng.randint(MINUTE, 10 * MINUTE)
            add(t, "conversation", action="updated", status="pending")
            t += rng.randint(5 * MINUTE, 3 * HOUR)
            add(t, "message", direction="inbound", author="customer")
        t += rng.choice([rng.randint(10_000, 8 * MINUTE), rng.randint(MINUTE, 50 * MINUTE)])
        add(t, "message", direction="outbound", author="agent", agent_id=agent)
    if source is not None and rng.random() < 0.7:
        t += rng.randint(5 * MINUTE, 3 * HOUR)
        add(
            t,
            "conversation",
            action="updated",
            lead_status=rng.choice(["qualified", "disqualified", "nurture"]),
        )
    if rng.random() < 0.85:
        t += rng.randint(MINUTE, 6 * HOUR)
        add(t, "conversation", action="resolved", outcome=rng.choice(["won", "lost", "answered"]))
    return events


def survey_events(conv: str, events: list[dict[str, Any]], end: int) -> list[dict[str, Any]]:
    """The CSAT surveys of a conversation whose cycle was resolved, none after `end`.

    Drawn from the conversation's own survey generator, so adding them changes no other event.
    Most resolved conversations are offered a survey; about half of those are rated (a few
    rated twice, the later rating replacing the first); a few ratings come with no `sent`,
    and a few surveys could not be offered (`not_sent`). Ratings depend on the team that
    owned the conversation at the resolve (`RATINGS`), so teams differ.
    """
    resolves = [e for e in events if e["type"] == "conversation" and e["action"] == "resolved"]
    if not resolves:
        return []
    side = random.Random(f"{conv}-survey")
    team = next(
        e["team_id"] for e in reversed(events) if e["type"] == "conversation" and "team_id" in e
    )
    ratings = RATINGS[team]
    out: list[dict[str, Any]] = []
    ids = iter(range(1, 100))

    def add(at: int, **fields: Any) -> None:
        if at <= end:
            body = {"event_id": f"{conv}-s{next(ids)}", "type": "survey", "conversation_id": conv}
            out.append({**body, "occurred_at": at, **fields})

    t = resolves[-1]["occurred_at"]
    roll = side.random()
    if roll < 0.6:
        sid = f"{conv}-csat"
        t += side.randint(10_000, 30 * MINUTE)
        add(t, action="sent", survey_id=sid)
        if side.random() < 0.55:
            t += side.randint(MINUTE, 2 * DAY)
            add(t, action="rated", survey_id=sid, rating=side.choice(ratings))
            if side.random() < 0.1:
                t += side.randint(HOUR, 3 * DAY)
                add(t, action="rated", survey_id=sid, rating=side.choice(ratings))
    elif roll < 0.65:
        add(t + side.randint(MINUTE, DAY), action="rated", rating=side.choice(ratings))
    elif roll < 0.68:
        add(t + side.randint(10_000, MINUTE), action="not_sent", reason="outside_window")
    return out


def month_events(end: int, *, per_day: int = 150, days: int = 30, seed: int = 7) -> list[bytes]:
    """JSONL lines of `days` days of traffic up to `end`, in delivery order (some arrive late).

    Surveys arrive when they happen; they draw nothing from the month's generator.
    """
    rng = random.Random(seed)
    start = end - days * DAY
    timed: list[tuple[int, int, bytes]] = []
    count = per_day * days
    for n in range(count):
        # The last hours are denser so "now" has open, warning and breached clocks.
        opened = (
            rng.randint(start, end - 2 * MINUTE) if n % 20 else end - rng.randint(1, 180) * MINUTE
        )
        events = conversation(f"c{n:05d}", opened, end, rng)
        for i, event in enumerate(events):
            delay = rng.randint(MINUTE, 15 * MINUTE) if rng.random() < 0.03 else 0
            arrival = min(event["occurred_at"] + delay, end)
            timed.append((arrival, n * 1000 + i, orjson.dumps(event)))
        for i, event in enumerate(survey_events(f"c{n:05d}", events, end)):
            timed.append((event["occurred_at"], n * 1000 + 900 + i, orjson.dumps(event)))
    timed.sort()
    return [line for _, _, line in timed]


def decisions(lines: list[bytes]) -> tuple[dict[str, str], dict[str, str]]:
    """From the input events alone: each conversation's resolve outcome, and its lead status.

    Every generated conversation has one cycle, so its resolve and its lead-status update are
    the ones its `resolution` and `qualification` clocks end with.
    """
    outcomes: dict[str, str] = {}
    statuses: dict[str, str] = {}
    for line in lines:
        event = orjson.loads(line)
        if event["type"] != "conversation":
            continue
        if event["action"] == "resolved":
            outcomes[event["conversation_id"]] = event["outcome"]
        elif event.get("lead_status") not in (None, "new"):
            statuses[event["conversation_id"]] = event["lead_status"]
    return outcomes, statuses


def replay_month(end: int, **kwargs: Any) -> list[Record]:
    """Every record the engine emits for `month_events(end)`, the watermark finally at `end`."""
    lines = month_events(end, **kwargs)
    return list(replay_records(lines, parse_policies(POLICIES), until=end, lateness_ms=5_000))


@dataclass(frozen=True, slots=True)
class Clock:
    """A clock's latest state, folded from its records in emission order."""

    last: SlaRecord
    cause: str | None

    @property
    def open(self) -> bool:
        """Whether the clock still runs (the monitor's own rule)."""
        return clock_is_open(self.last)

    @property
    def met(self) -> bool:
        """Whether the clock ended fulfilled in time."""
        return self.last.status == "met"

    @property
    def breached(self) -> bool:
        """Whether the clock counts as breached in compliance."""
        return self.last.breached and self.last.status != "cancelled"


class Truth:
    """Clocks folded from SLA records with no SQL: what every panel should show.

    Also the surveys (each survey's latest CSAT record, by its identity), the handle segments
    that count (each segment's latest record, `withdrawn` ones left out), the recoveries sent
    and not withdrawn, and per cycle the instants its resolution clock was fulfilled at (one
    per resolve).
    """

    def __init__(self, records: list[Record]) -> None:
        clocks: dict[tuple[str, int, str, int], Clock] = {}
        surveys: dict[tuple[str, str, int], CsatRecord] = {}
        segments: dict[tuple[str, int, str, int], HandleRecord] = {}
        recoveries: dict[tuple[object, ...], ActionRecord] = {}
        self.resolves: dict[tuple[str, int], set[int]] = {}
        for r in records:
            if isinstance(r, CsatRecord):
                surveys[r.identity()] = r
                continue
            if isinstance(r, HandleRecord):
                segments[r.identity()] = r
                continue
            if isinstance(r, ActionRecord) and r.action == "recover":
                recoveries[(*r.identity(), r.at)] = r
                continue
            if not isinstance(r, SlaRecord):
                continue
            if r.metric == "resolution" and r.status in ("met", "stopped"):
                self.resolves.setdefault((r.conversation_id, r.cycle), set()).add(r.at)
            key = r.identity()
            previous = clocks.get(key)
            last = r
            if r.status == "attempt" and previous is not None:
                # SPEC §4: an attempt leaves the clock's state as it was; only the count moves.
                last = replace(r, status=previous.last.status)
            cause = r.cause if r.cause is not None else (previous.cause if previous else None)
            clocks[key] = Clock(last, cause if r.breached else None)
        self.clocks = list(clocks.values())
        self.surveys = list(surveys.values())
        self.segments = [h for h in segments.values() if h.end != "withdrawn"]
        self.recoveries = [a for a in recoveries.values() if not a.withdrawn]

    def where(self, **attrs: Any) -> Iterator[Clock]:
        """Clocks whose latest record has these attribute values."""
        for c in self.clocks:
            if all(getattr(c.last, k) == v for k, v in attrs.items()):
                yield c


def local_midnight(instant_ms: int, days_back: int = 0) -> int:
    """Epoch ms of the local (TZ) midnight starting the day of `instant_ms`, minus whole days."""
    zone = ZoneInfo(TZ)
    local = datetime.fromtimestamp(instant_ms / 1000, tz=UTC).astimezone(zone)
    day = (local - timedelta(days=days_back)).date()
    midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
    return int(midnight.timestamp() * 1000)


def compliance(clocks: list[Clock]) -> float | None:
    """Met / (met + breached) in percent, or None when nothing is decided."""
    met = sum(c.met for c in clocks)
    breached = sum(c.breached for c in clocks)
    return None if met + breached == 0 else 100.0 * met / (met + breached)
