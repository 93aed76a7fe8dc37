"""A seeded two-week history of WhatsApp sales conversations, and the SLA truth computed from it.

`history(seed)` builds events with the engine test builders (several agents, lead sources,
slow and missing replies, second waits, qualification and hand-off, calls, resolutions and
reopens); `replayed(events)` runs the real engine over them as `slawatch replay` does. The
`Truth` helpers compute what the reports must show straight from the SLA records, without
QuestDB and without `flows.reports`.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from flows.core.decode import event_to_json
from flows.core.events import ConversationEvent, Event, SurveyEvent
from flows.core.policies import parse_policies
from flows.core.records import Record, SlaRecord
from flows.replay import replay_records
from tests.enginekit import T0, activity, assign, conv_event, inbound, ms, reply

DAY_S = 86_400
WEEK_S = 7 * DAY_S
AGENTS = ("a1", "a2", "a3", "a4")
SOURCES = ("demo_request", "pricing", None)

POLICIES = """
policies:
  - id: leads
    when: {lead_source: [demo_request, pricing]}
    targets:
      assignment: {within: 2m}
      first_response: {within: 5m}
      next_response: {within: 10m}
      resolution: {within: 4h}
      qualification: {within: 1h}
      handoff: {within: 30m, to_role: ae}
      contact_attempts: {min: 2, within: 1h, gap: 5m}
      team_ownership: {front: 1h, back: {within: 2h}}
    handle: {idle: 10m}
  - id: default
    targets:
      assignment: {within: 10m}
      first_response: {within: 15m}
      next_response: {within: 10m}
      resolution: {within: 4h}
      team_ownership: {front: 1h, back: {within: 2h}}
    handle: {idle: 10m}
"""


OUTCOMES = ("won", "lost", "answered")


def history(seed: int, conversations: int = 240) -> list[Event]:
    """Events of `conversations` conversations starting over the two weeks before T0 + 7 days.

    The last one starts at Sunday 22:30 (T0 + 6 d 22:30) and is never answered, so the last
    day has a breach and clocks still running into the next day.
    """
    rng = random.Random(seed)
    events: list[Event] = []
    for n in range(conversations):
        conv = f"c{n:04d}"
        t = rng.uniform(-WEEK_S, WEEK_S - 6 * 3600)
        source = rng.choice(SOURCES)
        agent = rng.choice(AGENTS)
        attrs = {"priority": rng.choice(["P1", "P2", "P3"]), "team_id": "front"}
        if source is not None:
            attrs["lead_source"] = source
        events.append(conv_event(t, "opened", conv, **attrs))
        events.append(inbound(t + 1, conv))
        # Leads are sometimes never assigned; other conversations always are.
        if source is None or rng.random() < 0.85:
            events.append(assign(t + rng.expovariate(1 / 90), agent, conv))
        first = t + 1 + rng.lognormvariate(4.8, 1.0)
        if rng.random() < 0.9:
            events.append(reply(first, conv, agent))
        else:
            first = t + 2 * 3600
        # Hand-overs to the back office (and back) draw from their own generator, so every
        # other event stays as it was.
        side = random.Random(f"{conv}-handover")
        if side.random() < 0.3:
            handed = first + side.uniform(60, 2400)
            events.append(conv_event(handed, "updated", conv, team_id="back"))
            if side.random() < 0.3:
                events.append(
                    conv_event(
                        handed + side.uniform(600, 3 * 3600), "updated", conv, team_id="front"
                    )
                )
        if source is not None and rng.random() < 0.8:
            events.append(activity(first + rng.uniform(60, 1200), conv, agent))
            status = rng.choice(["qualified", "disqualified", "nurture"])
            decided = first + rng.expovariate(1 / 2400)
            events.append(conv_event(decided, "updated", conv, lead_status=status))
            if status == "qualified" and rng.random() < 0.7:
                events.append(assign(decided + rng.expovariate(1 / 1200), "ae1", conv, role="ae"))
        if rng.random() < 0.4:
            again = first + rng.uniform(300, 3600)
            events.append(inbound(again, conv))
            if rng.random() < 0.85:
                events.append(reply(again + rng.lognormvariate(5.5, 1.0), conv, agent))
        if rng.random() < 0.8:
            done = first + rng.uniform(3600, 6 * 3600)
            events.append(conv_event(done, "resolved", conv, outcome=rng.choice(OUTCOMES)))
            events.extend(_survey(conv, done, slow=first - t > 600))
            if rng.random() < 0.15:
                events.append(conv_event(done + 1800, "reopened", conv))
                events.append(
                    conv_event(done + 3600, "resolved", conv, outcome=rng.choice(OUTCOMES))
                )
    last = WEEK_S - DAY_S + 22.5 * 3600
    events.append(conv_event(last, "opened", "zlast", lead_source="pricing"))
    events.append(inbound(last + 1, "zlast"))
    events.append(assign(last + 2, "a1", "zlast"))
    events.sort(key=lambda e: e.occurred_at)
    return events


def _survey(conv: str, resolved: float, *, slow: bool) -> list[Event]:
    """A survey after a resolve, from its own generator (every other event stays as it was):
    sent for most conversations, rated for most of those, lower when the first reply was slow."""
    side = random.Random(f"{conv}-survey")
    if side.random() >= 0.6:
        return []
    sid = f"sv-{conv}"
    out: list[Event] = [SurveyEvent(f"{sid}-sent", conv, ms(resolved + 120), "sent", sid)]
    if side.random() < 0.7:
        rating = side.choice((1, 2, 3, 4) if slow else (3, 4, 5, 5))
        out.append(SurveyEvent(f"{sid}-rated", conv, ms(resolved + 900), "rated", sid, rating))
    return out


def decided(events: Iterable[Event]) -> tuple[dict[str, str], dict[str, str]]:
    """From the events alone: each conversation's last resolve outcome and decided lead status."""
    outcomes: dict[str, str] = {}
    statuses: dict[str, str] = {}
    for e in events:
        if isinstance(e, ConversationEvent):
            if e.action == "resolved" and e.outcome is not None:
                outcomes[e.conversation_id] = e.outcome
            status = dict(e.attrs).get("lead_status")
            if isinstance(status, str):
                statuses[e.conversation_id] = status
    return outcomes, statuses


def write_events(events: Iterable[Event], path: Path, bad_lines: Sequence[bytes] = ()) -> Path:
    """Write events as JSONL, followed by `bad_lines` (which become dead letters)."""
    with path.open("wb") as out:
        for event in events:
            out.write(orjson.dumps(event_to_json(event)) + b"\n")
        for line in bad_lines:
            out.write(line + b"\n")
    return path


def replayed(path: Path) -> list[Record]:
    """Every record `slawatch replay` (and so `slawatch backfill`) makes of the file."""
    with path.open("rb") as src:
        return list(replay_records(src, parse_policies(POLICIES), source=path.name))


@dataclass(frozen=True)
class Clock:
    """A clock's final state, folded from its records."""

    last: SlaRecord
    cause: str | None

    @property
    def outcome(self) -> str:
        if self.last.status == "cancelled":
            return "cancelled"
        if self.last.breached:
            return "breached"
        return "met" if self.last.status == "met" else "open"

    @property
    def fulfilled(self) -> bool:
        return self.last.status in ("met", "stopped")

    @property
    def elapsed_s(self) -> float:
        return self.last.elapsed / 1000


def clocks(records: Iterable[Record]) -> list[Clock]:
    """Each clock's last record and the cause of its breach."""
    last: dict[tuple[str, int, str, int], SlaRecord] = {}
    causes: dict[tuple[str, int, str, int], str] = {}
    for r in records:
        if isinstance(r, SlaRecord):
            last[r.identity()] = r
            if r.cause is not None:
                causes[r.identity()] = r.cause
    return [Clock(rec, causes.get(key)) for key, rec in last.items()]


def compliance(cs: Iterable[Clock]) -> tuple[int, int, float | None]:
    """Met, breached and compliance % of clocks."""
    outcomes = Counter(c.outcome for c in cs)
    met, breached = outcomes["met"], outcomes["breached"]
    return met, breached, (100 * met / (met + breached) if met + breached else None)


def p(values: Sequence[float], q: int) -> float | None:
    """The q-th percentile (q in 10..90, step 10) by `statistics.quantiles(inclusive)`."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[q // 10 - 1]


def fmt(value: float | None) -> str:
    """A number as the reports print it."""
    return "-" if value is None else f"{value:.1f}"


def group(cs: Iterable[Clock], key: str) -> dict[str | None, list[Clock]]:
    """Clocks by an attribute of their last record."""
    out: dict[str | None, list[Clock]] = defaultdict(list)
    for c in cs:
        out[getattr(c.last, key)].append(c)
    return out


def at(seconds: float) -> int:
    """The instant `seconds` after T0, in epoch ms."""
    return ms(seconds)


__all__ = ["T0"]
