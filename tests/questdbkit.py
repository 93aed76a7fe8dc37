"""Builders for QuestDB writer tests: SLA records with defaults, and instant conversions."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
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


PROVISIONED = Path(__file__).resolve().parents[1] / "dashboards" / "provisioning" / "dashboards"


def panel_sql(board: str, title: str, prefix: str, **values: str | tuple[str, ...]) -> str:
    """The SQL of a committed dashboard's panel, for `prefix`, as Grafana fills its variables.

    Reads `dashboards/provisioning/dashboards/<board>.json`, takes the panel called `title`,
    renames the default tables (`sla_...`) to `prefix`, and fills each dashboard variable the
    way Grafana's SQL data sources do: a multi-value variable with "All" gets its custom all
    value for `"All"` (the default when not given) or its values quoted and comma-separated; a
    single-value variable its text as it is (the SQL quotes it).
    """
    model = json.loads((PROVISIONED / f"{board}.json").read_text(encoding="utf-8"))
    (panel,) = [p for p in model["panels"] if p["title"] == title]
    (target,) = panel["targets"]
    sql = re.sub(r"\bsla_(?=\w)", prefix, target["rawSql"])
    for variable in model["templating"]["list"]:
        name = variable["name"]
        if variable["multi"]:
            chosen = values.get(name, "All")
            text = (
                variable["allValue"]
                if chosen == "All"
                else ",".join(f"'{v}'" for v in ((chosen,) if isinstance(chosen, str) else chosen))
            )
        else:
            if name not in values:
                continue
            text = str(values[name])
        sql = sql.replace(f"${name}", text)
    assert "$" not in sql, sql
    return sql


def variable_sql(board: str, name: str, prefix: str) -> str:
    """The SQL listing the options of the committed dashboard's variable `name`, for `prefix`."""
    model = json.loads((PROVISIONED / f"{board}.json").read_text(encoding="utf-8"))
    (variable,) = [v for v in model["templating"]["list"] if v["name"] == name]
    return re.sub(r"\bsla_(?=\w)", prefix, variable["query"])
