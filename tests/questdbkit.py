"""Builders for QuestDB writer tests: SLA records with defaults, and instant conversions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flows.connectors.questdb import TableNames
from flows.connectors.questdb.views import ViewNames
from flows.core.records import SlaRecord

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def now_ms() -> int:
    """Return the wall clock in epoch ms."""
    return (datetime.now(UTC) - EPOCH) // timedelta(milliseconds=1)


def to_ms(value: datetime | None) -> int | None:
    """Turn a timestamp read over PG wire (naive, UTC) into epoch ms."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - EPOCH) // timedelta(milliseconds=1)


def new_prefix() -> str:
    """Return a table prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:16]}_"


def sla(
    status: str = "started",
    *,
    conv: str = "c-1",
    cycle: int = 1,
    metric: str = "first_response",
    seq: int = 1,
    started_at: int,
    at: int | None = None,
    target: int | None = 5 * MINUTE,
    breached: bool | None = None,
    cause: str | None = None,
    agent: str | None = "a-1",
    team: str | None = "t-1",
    late: bool = False,
    **extra: Any,
) -> SlaRecord:
    """Build an SLA record whose times follow from `started_at`, `at` and the target."""
    at = started_at if at is None else at
    deadline = None if target is None else started_at + target
    if breached is None:
        breached = status in ("breached", "stopped", "closed")
    fields: dict[str, Any] = {
        "conversation_id": conv,
        "cycle": cycle,
        "metric": metric,
        "seq": seq,
        "status": status,
        "at": at,
        "policy_id": "default",
        "target": target,
        "started_at": started_at,
        "warn_at": None if target is None else started_at + target * 4 // 5,
        "deadline_at": deadline,
        "stopped_at": at if status in ("met", "stopped", "closed", "cancelled") else None,
        "elapsed": at - started_at,
        "breached": breached,
        "agent_id": agent,
        "team_id": team,
        "priority": "P2",
        "segment": None,
        "lead_source": None,
        "channel": "whatsapp",
        "late": late,
        "cause": cause,
    }
    fields.update(extra)
    return SlaRecord(**fields)


def drop_tables(questdb: Any, prefix: str) -> None:
    """Drop the writer's materialized views and five tables for `prefix`."""
    for view in ViewNames(prefix).all():
        questdb.execute(f'DROP MATERIALIZED VIEW IF EXISTS "{view}"')
    for table in TableNames(prefix).all():
        questdb.execute(f'DROP TABLE IF EXISTS "{table}"')
