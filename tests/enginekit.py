"""Small builders for engine tests: events at second offsets, policies from YAML, a runner."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from flows.core.engine import Engine
from flows.core.events import (
    ActivityEvent,
    AssignmentEvent,
    AttrValue,
    ConversationEvent,
    Event,
    MessageEvent,
)
from flows.core.model import PolicySet
from flows.core.policies import parse_policies
from flows.core.records import ActionRecord, SlaRecord

#: Monday 2026-11-23 00:00:00 UTC.
T0 = 1_795_392_000_000
_ids = itertools.count(1)


def ms(seconds: float) -> int:
    """Return the instant `seconds` after T0."""
    return T0 + round(seconds * 1000)


def _eid() -> str:
    return f"e{next(_ids)}"


def inbound(t: float, conv: str = "c1", **kw: Any) -> MessageEvent:
    return MessageEvent(_eid(), conv, ms(t), "inbound", "customer", **kw)


def reply(t: float, conv: str = "c1", agent: str = "a1", **kw: Any) -> MessageEvent:
    return MessageEvent(_eid(), conv, ms(t), "outbound", "agent", agent, **kw)


def bot(t: float, conv: str = "c1", **kw: Any) -> MessageEvent:
    return MessageEvent(_eid(), conv, ms(t), "outbound", "bot", **kw)


def assign(
    t: float, agent: str = "a1", conv: str = "c1", role: str | None = None, team: str | None = None
) -> AssignmentEvent:
    return AssignmentEvent(_eid(), conv, ms(t), "assigned", agent, team, role)


def unassign(t: float, conv: str = "c1") -> AssignmentEvent:
    return AssignmentEvent(_eid(), conv, ms(t), "unassigned")


def conv_event(
    t: float,
    action: str,
    conv: str = "c1",
    outcome: str | None = None,
    due: float | None = None,
    **attrs: AttrValue,
) -> ConversationEvent:
    return ConversationEvent(
        _eid(),
        conv,
        ms(t),
        action,
        tuple(sorted(attrs.items())),
        outcome,
        None if due is None else ms(due),
    )


def activity(
    t: float, conv: str = "c1", agent: str = "a1", kind: str = "call", outcome: str | None = None
) -> ActivityEvent:
    return ActivityEvent(_eid(), conv, ms(t), kind, agent, outcome)


def policies(text: str) -> PolicySet:
    return parse_policies(text)


def run(
    events: Iterable[Event],
    pset: PolicySet,
    until: float | None = None,
    lateness_ms: int = 0,
    horizon_ms: int | None = None,
) -> list[SlaRecord | ActionRecord]:
    """Replay events like `slawatch replay`: watermark = largest time seen, then `until`."""
    engine = Engine(pset) if horizon_ms is None else Engine(pset, horizon_ms=horizon_ms)
    out: list[SlaRecord | ActionRecord] = []
    top: int | None = None
    for event in events:
        top = event.occurred_at if top is None else max(top, event.occurred_at)
        out += engine.process([event], top - lateness_ms)
    final = ms(until) if until is not None else top
    if final is not None:
        out += engine.process([], final)
    return out


def sla(records: Sequence[SlaRecord | ActionRecord], metric: str | None = None) -> list[SlaRecord]:
    return [
        r for r in records if isinstance(r, SlaRecord) and (metric is None or r.metric == metric)
    ]


def statuses(records: Sequence[SlaRecord | ActionRecord], metric: str) -> list[str]:
    return [r.status for r in sla(records, metric)]


def actions(records: Sequence[SlaRecord | ActionRecord]) -> list[ActionRecord]:
    return [r for r in records if isinstance(r, ActionRecord)]


def final_outcomes(
    records: Sequence[SlaRecord | ActionRecord],
) -> dict[tuple[str, int, str, int], str]:
    """Each clock's last status, ignoring intermediate ones."""
    out: dict[tuple[str, int, str, int], str] = {}
    for r in sla(records):
        if r.status in ("met", "breached", "stopped", "cancelled"):
            out[r.identity()] = r.status if r.status != "stopped" else "breached"
        elif r.identity() not in out:
            out[r.identity()] = "running"
    return out
