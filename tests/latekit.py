"""Random conversations with late deliveries, for the late-correction convergence properties.

`scenario` draws several conversations that share agents, with every event kind of SPEC §1
(cycles, resolves, reopens, pending, bot hand-offs, priority and segment changes, follow-up
promises, lead status changes, activities) and gaps from seconds to days, so quiet stretches
longer than the correction horizon happen. `deliver_late` then delays a random subset of the
events by up to the horizon. `final_states` is what a store keeping the latest record per clock
converges to, field by field.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from flows.core.engine import Engine
from flows.core.events import Event, SurveyEvent
from flows.core.model import PolicySet
from flows.core.records import ActionRecord, CsatRecord, HandleRecord, Record, SlaRecord
from flows.core.vocabulary import HandleEnd
from tests.enginekit import (
    activity,
    assign,
    bot,
    conv_event,
    inbound,
    ms,
    policies,
    reply,
    unassign,
)

HOUR = 3_600_000
HORIZON_MS = 24 * HOUR

POLICY_TEXT = """
calendars:
  office:
    timezone: Asia/Jakarta
    weekly:
      mon: ["08:00-12:00", "13:00-22:00"]
      tue: ["08:00-22:00"]
      wed: ["08:00-22:00"]
      thu: ["08:00-22:00"]
      fri: ["08:00-17:00"]
      sat: ["00:00-24:00"]
      sun: []
policies:
  - id: p1
    when: {priority: P1}
    calendar: office
    handle: {idle: 5m}
    targets:
      assignment: {within: 2m}
      first_response: {within: 3m}
      next_response: {within: 10m, warn_before: 2m}
      resolution: {within: 8h, pause_when: [pending]}
      follow_up: {warn_before: 5m}
      service_window: {within: 24h, warn_before: 2h}
      update: {every: 2h, pause_when: [pending]}
      team_ownership: {l1: 30m, l2: {within: 4h, pause_when: [pending], warn_before: 30m}}
  - id: hot
    when: {lead_source: demo_request}
    calendar: office
    targets:
      assignment: {within: 2m}
      first_response: {within: 3m}
      next_response: {within: 10m, warn_before: 2m}
      resolution: {within: 8h, pause_when: [pending]}
      follow_up: {warn_before: 5m}
      qualification: {within: 4h}
      handoff: {within: 4h, to_role: ae}
      contact_attempts: {min: 3, within: 2h, gap: 10m}
      cadence: {qualified: 1d, nurture: 3d}
      service_window: {within: 24h, warn_before: 2h}
    escalations:
      - {on: warning, metric: first_response, notify: supervisor}
      - {on: breached, metric: first_response, reassign: true}
  - id: vip
    when: {segment: vip}
    targets:
      first_response: {within: 1m}
      next_response: {within: 5m}
      resolution: {within: 4h, pause_when: [pending]}
      service_window: {within: 24h}
  - id: default
    handle: {}
    targets:
      assignment: {within: 2m}
      first_response: {within: 1h}
      next_response: {within: 15m}
      resolution: {within: 72h, pause_when: [pending]}
      follow_up: {warn_at: 0.5}
      service_window: {within: 24h, warn_before: 2h}
      update: {every: 8h}
      team_ownership: {l1: 1h, l2: 24h}
    escalations:
      - {on: warning, metric: team_ownership, notify: supervisor}
      - {on: breached, metric: update, notify: supervisor}
teams:
  sales: {agents: [a1, a2, a3], supervisor: s1}
  l1: {agents: [a1, a2], supervisor: s-l1}
  l2: {agents: [a3, a4], supervisor: s-l2}
"""
PSET = policies(POLICY_TEXT)
#: The same policies without what was added after 0.3 (`update`, `team_ownership`, `handle`),
#: as the engine of the stored 0.1 snapshot knew them.
PSET_BEFORE_TEAMS = policies(
    "\n".join(
        line
        for line in POLICY_TEXT.splitlines()
        if "update" not in line and "team_ownership" not in line and "handle:" not in line
    ).replace("    escalations:\nteams:", "teams:")
)

#: The same policies with service-recovery rules on every policy (SPEC §3 `recovery`): at the
#: breach and `over` past it, with `when`, caps from none to days, on clocks that pause, reopen,
#: outlive cycles and end at their breach.
PSET_RECOVERY = policies(
    POLICY_TEXT.replace(
        "  - id: hot\n",
        "    recovery:\n"
        "      - {metric: resolution, over: 1h, send: voucher}\n"
        "      - {metric: first_response, send: sorry, cap: 2d}\n"
        "  - id: hot\n",
    )
    .replace(
        "    escalations:\n      - {on: warning, metric: first_response",
        "    recovery:\n"
        "      - {metric: contact_attempts, send: call_back, cap: 0}\n"
        "      - {metric: next_response, over: 30m, send: sorry, when: {segment: vip}}\n"
        "      - {metric: cadence, over: 4h, send: nudge, cap: 1d}\n"
        "    escalations:\n      - {on: warning, metric: first_response",
    )
    .replace(
        "      service_window: {within: 24h}\n  - id: default",
        "      service_window: {within: 24h}\n"
        "    recovery:\n"
        "      - {metric: service_window, send: template, cap: 12h}\n"
        "  - id: default",
    )
    .replace(
        "    escalations:\n      - {on: warning, metric: team_ownership",
        "    recovery:\n"
        "      - {metric: update, over: 2h, send: nudge, cap: 1d}\n"
        "      - {metric: resolution, send: voucher, when: {priority: [P3]}}\n"
        "      - {metric: follow_up, over: 10m, send: sorry, cap: 0}\n"
        "    escalations:\n      - {on: warning, metric: team_ownership",
    )
)

KINDS = (
    "inbound",
    "inbound",
    "reply",
    "reply",
    "template",
    "note",
    "bot",
    "assign",
    "assign_other",
    "assign_ae",
    "unassign",
    "pending",
    "open",
    "vip",
    "hot",
    "p1",
    "p3",
    "new",
    "qualified",
    "nurture",
    "disqualified",
    "bot_on",
    "bot_off",
    "resolved",
    "won",
    "lost",
    "reopened",
    "promise",
    "call",
    "connected",
    "team_l1",
    "team_l2",
    "team_gone",
    "assign_l2",
    "survey_sent",
    "survey_rated",
)

#: Gaps in seconds: seconds to days, including the policies' targets exactly (an event at a
#: deadline or warning instant) and stretches longer than the correction horizon.
GAPS = (1, 7, 60, 120, 180, 480, 600, 900, 3_600, 4 * 3600, 8 * 3600, 26 * 3600, 50 * 3600)


def build(conv: str, steps: Sequence[tuple[str, int]], start_s: float) -> list[Event]:
    """Turn (kind, gap seconds) steps into events of one conversation, times increasing."""
    out: list[Event] = []
    t = start_s
    agents = ("a1", "a2", "a3")
    for i, (kind, gap) in enumerate(steps):
        t += gap
        agent = agents[(len(conv) + i) % 3]
        if kind == "inbound":
            out.append(inbound(t, conv))
        elif kind == "reply":
            out.append(reply(t, conv, agent=agent))
        elif kind == "template":
            out.append(reply(t, conv, agent=agent, kind="template"))
        elif kind == "note":
            out.append(reply(t, conv, agent=agent, kind="note"))
        elif kind == "reply_a1":
            out.append(reply(t, conv, agent="a1"))
        elif kind == "note_a1":
            out.append(reply(t, conv, agent="a1", kind="note"))
        elif kind == "bot":
            out.append(bot(t, conv))
        elif kind == "assign":
            out.append(assign(t, "a1", conv))
        elif kind == "assign_other":
            out.append(assign(t, agent, conv, team="sales"))
        elif kind == "assign_ae":
            out.append(assign(t, "a2", conv, role="ae"))
        elif kind == "unassign":
            out.append(unassign(t, conv))
        elif kind in ("pending", "open"):
            out.append(conv_event(t, "updated", conv, status=kind))
        elif kind == "vip":
            out.append(conv_event(t, "updated", conv, segment="vip"))
        elif kind == "hot":
            out.append(conv_event(t, "updated", conv, lead_source="demo_request"))
        elif kind in ("p1", "p3"):
            out.append(conv_event(t, "updated", conv, priority=kind.upper()))
        elif kind in ("new", "qualified", "nurture", "disqualified"):
            out.append(conv_event(t, "updated", conv, lead_status=kind))
        elif kind == "bot_on":
            out.append(conv_event(t, "updated", conv, handled_by="bot"))
        elif kind == "bot_off":
            out.append(conv_event(t, "updated", conv, handled_by="human"))
        elif kind == "resolved":
            out.append(conv_event(t, "resolved", conv))
        elif kind in ("won", "lost"):
            out.append(conv_event(t, "resolved", conv, outcome=kind))
        elif kind == "reopened":
            out.append(conv_event(t, "reopened", conv))
        elif kind == "promise":
            out.append(conv_event(t, "follow_up_promised", conv, due=t + 1800))
        elif kind == "call":
            out.append(activity(t, conv, agent=agent))
        elif kind in ("team_l1", "team_l2"):
            out.append(conv_event(t, "updated", conv, team_id=kind[5:]))
        elif kind == "team_gone":
            out.append(conv_event(t, "updated", conv, team_id=None))
        elif kind == "assign_l2":
            out.append(assign(t, "a4", conv, team="l2"))
        elif kind == "survey_sent":
            out.append(SurveyEvent(f"{conv}-sv{i}", conv, ms(t), "sent", f"{conv}-S{i // 6}"))
        elif kind == "survey_rated":
            rating = 1 + (i % 5)
            out.append(
                SurveyEvent(f"{conv}-sr{i}", conv, ms(t), "rated", f"{conv}-S{i // 6}", rating)
            )
        else:
            out.append(activity(t, conv, agent=agent, outcome="connected"))
    return out


step = st.tuples(st.sampled_from(KINDS), st.sampled_from(GAPS))
conversation = st.lists(step, min_size=1, max_size=30)
scenario = st.lists(conversation, min_size=1, max_size=4)

#: What starts, extends and ends handle segments (SPEC §4 "Handle time"), a1 being the agent
#: `assign` assigns, so that most drawn conversations have counted segments.
HANDLE_KINDS = (
    "inbound",
    "inbound",
    "reply_a1",
    "reply_a1",
    "note_a1",
    "reply",
    "assign",
    "assign",
    "assign_other",
    "unassign",
    "pending",
    "open",
    "p1",
    "p3",
    "vip",
    "team_l2",
    "resolved",
    "reopened",
)
#: The policies' idle times (5m, 10m) exactly, and just before them.
HANDLE_GAPS = (1, 7, 60, 120, 299, 300, 480, 599, 600, 900, 3_600, 26 * 3600)
#: Conversations that open a cycle and assign a1 first, then do any of `HANDLE_KINDS`.
handle_scenario = st.lists(
    st.lists(
        st.tuples(st.sampled_from(HANDLE_KINDS), st.sampled_from(HANDLE_GAPS)),
        min_size=1,
        max_size=30,
    ).map(lambda steps: [("inbound", 1), ("assign", 7), *steps]),
    min_size=1,
    max_size=4,
)


def in_time_order(convs: Sequence[Sequence[tuple[str, int]]]) -> list[Event]:
    """The scenario's events in time order; each conversation starts on its own instant."""
    events: list[Event] = []
    for i, steps in enumerate(convs):
        events += build(f"c{i}", steps, i * 0.013)
    events.sort(key=lambda e: e.occurred_at)
    return events


def deliver_late(
    events: Sequence[Event], seed: int, *, share: float = 0.3, max_delay_ms: int = 20 * HOUR
) -> list[Event]:
    """A delivery order in which a random `share` of events comes up to `max_delay_ms` late.

    An event delayed by d arrives just after the last on-time event of its time + d; delays
    are drawn from seconds to `max_delay_ms` (all inside the correction horizon).
    """
    rng = random.Random(seed)
    keyed: list[tuple[int, int, Event]] = []
    for n, event in enumerate(events):
        delay = 0
        if rng.random() < share:
            delay = rng.choice((1_000, 60_000, 600_000, HOUR, 4 * HOUR, max_delay_ms))
            delay = rng.randint(1, delay)
        keyed.append((event.occurred_at + delay, n, event))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [event for _, _, event in keyed]


FIELDS = (
    "status",
    "at",
    "policy_id",
    "target",
    "started_at",
    "warn_at",
    "deadline_at",
    "stopped_at",
    "elapsed",
    "breached",
    "agent_id",
    "team_id",
    "priority",
    "segment",
    "lead_source",
    "attempts",
    "cause",
    "budget_pct",
)


def final_csat(records: Sequence[object]) -> dict[tuple[str, str, int], tuple[object, ...]]:
    """The latest CSAT record of every survey, without its `late` flag (a voided one — neither
    sent nor rated, counted nowhere — is no survey)."""
    out: dict[tuple[str, str, int], tuple[object, ...]] = {}
    for r in records:
        if isinstance(r, CsatRecord) and r.sent_at is None and r.rating is None:
            out.pop(r.identity(), None)
        elif isinstance(r, CsatRecord):
            out[r.identity()] = (
                r.cycle,
                r.sent_at,
                r.rated_at,
                r.rating,
                r.agent_id,
                r.team_id,
                r.policy_id,
                r.breached,
                r.recovered,
            )
    return out


def final_recoveries(records: Sequence[object]) -> dict[tuple[object, ...], ActionRecord]:
    """The `recover` actions still standing, by identity, as `slawatch act` and QuestDB see them.

    A withdrawn record removes the recovery of its identity and `at`; a later one of the same
    identity (moved by a correction) replaces it.
    """
    out: dict[tuple[object, ...], ActionRecord] = {}
    for r in records:
        if isinstance(r, ActionRecord) and r.action == "recover":
            key = r.identity()
            if not r.withdrawn:
                out[key] = r
            elif key in out and out[key].at == r.at:
                del out[key]
    return out


def final_handles(records: Sequence[object]) -> dict[tuple[str, int, str, int], tuple[object, ...]]:
    """The counted handle segments a store keyed on their identity ends with (`late` aside).

    A withdrawn segment is no segment: the store's queries leave `end = withdrawn` rows out.
    """
    out: dict[tuple[str, int, str, int], tuple[object, ...]] = {}
    for r in records:
        if isinstance(r, HandleRecord):
            out[r.identity()] = (r.team_id, r.ended_at, r.handle, r.end)
    return {k: v for k, v in out.items() if v[3] != HandleEnd.WITHDRAWN}


def final_states(
    records: Sequence[object],
) -> dict[tuple[str, int, str, int], dict[str, Any]]:
    """The latest record of every clock, as a store keyed on the clock converges to it."""
    out: dict[tuple[str, int, str, int], dict[str, Any]] = {}
    for r in records:
        if isinstance(r, SlaRecord):
            out[r.identity()] = {name: getattr(r, name) for name in FIELDS}
    return out


def differences(
    in_order: dict[tuple[str, int, str, int], dict[str, Any]],
    late: dict[tuple[str, int, str, int], dict[str, Any]],
) -> list[str]:
    """Every way the late run's final states differ from the in-order run's, readable."""
    problems = []
    for ident, want in in_order.items():
        got = late.get(ident)
        if got is None:
            problems.append(f"{ident}: missing (in order: {want['status']})")
            continue
        for name in FIELDS:
            if got[name] != want[name]:
                problems.append(f"{ident}.{name}: {got[name]!r} != in-order {want[name]!r}")
    for ident, got in late.items():
        if ident not in in_order and got["status"] != "cancelled":
            problems.append(f"{ident}: {got['status']} but the in-order run has no such clock")
    return problems


def without_actions(records: Sequence[object]) -> list[SlaRecord | ActionRecord]:
    """Only SLA and action records (dead letters dropped), for comparisons."""
    return [r for r in records if isinstance(r, SlaRecord | ActionRecord)]


def run_in_batches(
    events: Sequence[Event],
    seed: int,
    until_ms: int,
    *,
    lateness_ms: int = 5_000,
    pset: PolicySet = PSET,
) -> list[object]:
    """Feed `events` to a fresh engine in random batches, as the live monitor's fetches do.

    The watermark trails the largest event time seen by `lateness_ms`; some events are
    delivered twice. At the end the watermark moves to `until_ms`.
    """
    engine = Engine(pset, horizon_ms=HORIZON_MS)
    out: list[object] = []
    records, _ = feed(engine, events, random.Random(seed), None, lateness_ms=lateness_ms)
    out += records
    out += engine.process([], until_ms)
    return out


def feed(
    engine: Engine,
    events: Sequence[Event],
    rng: random.Random,
    top: int | None,
    *,
    lateness_ms: int = 5_000,
) -> tuple[list[Record], int | None]:
    """Feed `events` in random fetch batches of 1-8 (some events delivered twice), the
    watermark trailing the largest event time seen (`top`, carried on) by `lateness_ms`."""
    out: list[Record] = []
    i = 0
    while i < len(events):
        n = rng.randint(1, 8)
        batch = list(events[i : i + n])
        i += n
        if rng.random() < 0.1:
            batch.append(rng.choice(batch))
        for event in batch:
            top = event.occurred_at if top is None else max(top, event.occurred_at)
        assert top is not None
        out += engine.process(batch, top - lateness_ms)
    return out, top
