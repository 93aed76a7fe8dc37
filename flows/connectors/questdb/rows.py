"""ILP rows of each table, built straight into a `questdb.Buffer` (the writer's hot path)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from questdb import TimestampMicros, TimestampNanos

from flows.core.records import ActionRecord, CsatRecord, DeadLetter, HandleRecord, SlaRecord
from flows.core.vocabulary import clock_is_open

_MS_TO_NS: Final = 1_000_000


def _micros(ms: int | None) -> TimestampMicros | None:
    return None if ms is None else TimestampMicros(ms * 1000)


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


# Built inline, with the timestamp classes and `buffer.row` bound to locals: these loops run for
# every SLA record (twice), and a function call and five `_micros` calls per row cost as much as
# the row itself. The column order is the same as in the tables.


def _event_rows(
    buffer: Any, table: str, events: Iterable[tuple[SlaRecord, TimestampMicros]]
) -> None:
    row = buffer.row
    micros = TimestampMicros
    nanos = TimestampNanos
    for r, emitted in events:
        target = r.target
        warn_at = r.warn_at
        deadline_at = r.deadline_at
        stopped_at = r.stopped_at
        row(
            table,
            symbols={
                "metric": r.metric,
                "status": r.status,
                "policy_id": r.policy_id,
                "agent_id": r.agent_id,
                "team_id": r.team_id,
                "priority": r.priority,
                "segment": r.segment,
                "lead_source": r.lead_source,
                "channel": r.channel,
                "cause": r.cause,
                "lead_status": r.lead_status,
                "outcome": r.outcome,
            },
            columns={
                "conversation_id": r.conversation_id,
                "cycle": r.cycle,
                "seq": r.seq,
                "target_s": None if target is None else target / 1000,
                "started_at": micros(r.started_at * 1000),
                "warn_at": None if warn_at is None else micros(warn_at * 1000),
                "deadline_at": None if deadline_at is None else micros(deadline_at * 1000),
                "stopped_at": None if stopped_at is None else micros(stopped_at * 1000),
                "elapsed_s": r.elapsed / 1000,
                "breached": r.breached,
                "late": r.late,
                "attempts": r.attempts,
                "attempts_required": r.attempts_required,
                "budget_pct": r.budget_pct,
                "emitted_at": emitted,
            },
            at=nanos(r.at * _MS_TO_NS),
        )


def _clock_rows(buffer: Any, table: str, clocks: Iterable[SlaRecord]) -> None:
    row = buffer.row
    micros = TimestampMicros
    nanos = TimestampNanos
    for r in clocks:
        status = r.status
        metric = r.metric
        target = r.target
        warn_at = r.warn_at
        deadline_at = r.deadline_at
        stopped_at = r.stopped_at
        row(
            table,
            symbols={
                "metric": metric,
                "status": status,
                "cause": r.cause,
                "agent_id": r.agent_id,
                "team_id": r.team_id,
                "priority": r.priority,
                "segment": r.segment,
                "lead_source": r.lead_source,
                "channel": r.channel,
                "policy_id": r.policy_id,
                "lead_status": r.lead_status,
                "outcome": r.outcome,
            },
            columns={
                "conversation_id": r.conversation_id,
                "cycle": r.cycle,
                "seq": r.seq,
                "open": clock_is_open(status, metric),
                "breached": r.breached,
                "warn_at": None if warn_at is None else micros(warn_at * 1000),
                "deadline_at": None if deadline_at is None else micros(deadline_at * 1000),
                "stopped_at": None if stopped_at is None else micros(stopped_at * 1000),
                "elapsed_s": r.elapsed / 1000,
                "target_s": None if target is None else target / 1000,
                "attempts": r.attempts,
                "attempts_required": r.attempts_required,
                "budget_pct": r.budget_pct,
                "updated_at": micros(r.at * 1000),
            },
            at=nanos(r.started_at * _MS_TO_NS),
        )


def _action_row(buffer: Any, table: str, r: ActionRecord, emitted: TimestampMicros) -> None:
    buffer.row(
        table,
        symbols={
            "metric": r.metric,
            "action": r.action,
            "trigger": r.trigger,
            "policy_id": r.policy_id,
            "from_agent": r.from_agent,
            "to_agent": r.to_agent,
            "send": r.send,
            "rule": r.rule,
        },
        columns={
            "conversation_id": r.conversation_id,
            "cycle": r.cycle,
            "seq": r.seq,
            "notify": r.notify,
            "reason": r.reason,
            "emitted_at": emitted,
            "withdrawn": r.withdrawn,
        },
        at=TimestampNanos(r.at * _MS_TO_NS),
    )


def _csat_row(buffer: Any, table: str, r: CsatRecord, emitted: TimestampMicros) -> None:
    survey_at = r.survey_at
    buffer.row(
        table,
        symbols={
            "agent_id": r.agent_id,
            "team_id": r.team_id,
            "policy_id": r.policy_id,
            "channel": r.channel,
        },
        columns={
            "conversation_id": r.conversation_id,
            "cycle": r.cycle,
            "survey_id": r.survey_id or "",
            "sent_at": None if r.sent_at is None else TimestampMicros(r.sent_at * 1000),
            "rated_at": None if r.rated_at is None else TimestampMicros(r.rated_at * 1000),
            "rating": r.rating,
            "breached": r.breached,
            "recovered": r.recovered,
            "late": r.late,
            "emitted_at": emitted,
        },
        at=TimestampNanos(survey_at * _MS_TO_NS),
    )


def _handle_row(buffer: Any, table: str, r: HandleRecord, emitted: TimestampMicros) -> None:
    buffer.row(
        table,
        symbols={
            "agent_id": r.agent_id,
            "team_id": r.team_id,
            "ended_by": r.end,
            "channel": r.channel,
        },
        columns={
            "conversation_id": r.conversation_id,
            "cycle": r.cycle,
            "ended_at": TimestampMicros(r.ended_at * 1000),
            "handle_s": r.handle / 1000,
            "late": r.late,
            "emitted_at": emitted,
        },
        at=TimestampNanos(r.started_at * _MS_TO_NS),
    )


def _deadletter_row(buffer: Any, table: str, r: DeadLetter, emitted_at_ms: int) -> None:
    buffer.row(
        table,
        columns={"source": r.source, "reason": r.reason, "raw": r.raw},
        at=TimestampNanos(emitted_at_ms * _MS_TO_NS),
    )
