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
# the row itself. The two dicts are made once per call and refilled for each row (`row` reads
# them before it returns; their key order, the columns' order in the ILP line, stays the
# tables'): a dict literal per row cost ~10 % more (bench/questdb_rows.py), and made two
# objects per row for the garbage collector. The column order is the same as in the tables.
_EVENT_SYMBOLS: Final = (
    "metric", "status", "policy_id", "agent_id", "team_id", "priority", "segment", "lead_source",
    "channel", "cause", "lead_status", "outcome",
)  # fmt: skip
_EVENT_COLUMNS: Final = (
    "conversation_id", "cycle", "seq", "target_s", "started_at", "warn_at", "deadline_at",
    "stopped_at", "elapsed_s", "breached", "late", "attempts", "attempts_required", "budget_pct",
    "emitted_at",
)  # fmt: skip
_CLOCK_SYMBOLS: Final = (
    "metric", "status", "cause", "agent_id", "team_id", "priority", "segment", "lead_source",
    "channel", "policy_id", "lead_status", "outcome",
)  # fmt: skip
_CLOCK_COLUMNS: Final = (
    "conversation_id", "cycle", "seq", "open", "breached", "warn_at", "deadline_at",
    "stopped_at", "elapsed_s", "target_s", "attempts", "attempts_required", "budget_pct",
    "updated_at",
)  # fmt: skip


def _event_rows(
    buffer: Any, table: str, events: Iterable[tuple[SlaRecord, TimestampMicros]]
) -> None:
    row = buffer.row
    micros = TimestampMicros
    nanos = TimestampNanos
    sy: dict[str, Any] = dict.fromkeys(_EVENT_SYMBOLS)
    co: dict[str, Any] = dict.fromkeys(_EVENT_COLUMNS)
    for r, emitted in events:
        target = r.target
        warn_at = r.warn_at
        deadline_at = r.deadline_at
        stopped_at = r.stopped_at
        sy["metric"] = r.metric
        sy["status"] = r.status
        sy["policy_id"] = r.policy_id
        sy["agent_id"] = r.agent_id
        sy["team_id"] = r.team_id
        sy["priority"] = r.priority
        sy["segment"] = r.segment
        sy["lead_source"] = r.lead_source
        sy["channel"] = r.channel
        sy["cause"] = r.cause
        sy["lead_status"] = r.lead_status
        sy["outcome"] = r.outcome
        co["conversation_id"] = r.conversation_id
        co["cycle"] = r.cycle
        co["seq"] = r.seq
        co["target_s"] = None if target is None else target / 1000
        co["started_at"] = micros(r.started_at * 1000)
        co["warn_at"] = None if warn_at is None else micros(warn_at * 1000)
        co["deadline_at"] = None if deadline_at is None else micros(deadline_at * 1000)
        co["stopped_at"] = None if stopped_at is None else micros(stopped_at * 1000)
        co["elapsed_s"] = r.elapsed / 1000
        co["breached"] = r.breached
        co["late"] = r.late
        co["attempts"] = r.attempts
        co["attempts_required"] = r.attempts_required
        co["budget_pct"] = r.budget_pct
        co["emitted_at"] = emitted
        row(table, symbols=sy, columns=co, at=nanos(r.at * _MS_TO_NS))


def _clock_rows(buffer: Any, table: str, clocks: Iterable[SlaRecord]) -> None:
    row = buffer.row
    micros = TimestampMicros
    nanos = TimestampNanos
    sy: dict[str, Any] = dict.fromkeys(_CLOCK_SYMBOLS)
    co: dict[str, Any] = dict.fromkeys(_CLOCK_COLUMNS)
    for r in clocks:
        status = r.status
        metric = r.metric
        target = r.target
        warn_at = r.warn_at
        deadline_at = r.deadline_at
        stopped_at = r.stopped_at
        sy["metric"] = metric
        sy["status"] = status
        sy["cause"] = r.cause
        sy["agent_id"] = r.agent_id
        sy["team_id"] = r.team_id
        sy["priority"] = r.priority
        sy["segment"] = r.segment
        sy["lead_source"] = r.lead_source
        sy["channel"] = r.channel
        sy["policy_id"] = r.policy_id
        sy["lead_status"] = r.lead_status
        sy["outcome"] = r.outcome
        co["conversation_id"] = r.conversation_id
        co["cycle"] = r.cycle
        co["seq"] = r.seq
        co["open"] = clock_is_open(status, metric)
        co["breached"] = r.breached
        co["warn_at"] = None if warn_at is None else micros(warn_at * 1000)
        co["deadline_at"] = None if deadline_at is None else micros(deadline_at * 1000)
        co["stopped_at"] = None if stopped_at is None else micros(stopped_at * 1000)
        co["elapsed_s"] = r.elapsed / 1000
        co["target_s"] = None if target is None else target / 1000
        co["attempts"] = r.attempts
        co["attempts_required"] = r.attempts_required
        co["budget_pct"] = r.budget_pct
        co["updated_at"] = micros(r.at * 1000)
        row(table, symbols=sy, columns=co, at=nanos(r.started_at * _MS_TO_NS))


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
