"""Output records (SPEC §6) as frozen values, and their public JSON form.

Instants inside records are epoch ms UTC; `to_json_dict` turns them into RFC 3339 strings and
adds `emitted_at`, the only field that differs between two replays of the same input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from flows.core.redact import redact_raw
from flows.core.timefmt import format_instant


# Not `frozen=True`: a frozen dataclass sets each of these 23 fields through
# object.__setattr__, which made building a record ~10x slower (7 us against 0.6 us, measured),
# and records are the engine's hot path. Treat instances as immutable values all the same.
@dataclass(slots=True, unsafe_hash=True)
class SlaRecord:
    """One status change of one clock (an immutable value by convention).

    Identity: (`conversation_id`, `cycle`, `metric`, `seq`); one clock emits several records.
    """

    conversation_id: str
    cycle: int
    metric: str
    seq: int
    status: str
    at: int
    policy_id: str | None
    target: int | None
    started_at: int
    warn_at: int | None
    deadline_at: int | None
    stopped_at: int | None
    elapsed: int
    breached: bool
    agent_id: str | None
    team_id: str | None
    priority: str | None
    segment: str | None
    lead_source: str | None
    channel: str | None
    late: bool = False
    attempts: int | None = None
    cause: str | None = None

    type = "sla"

    def identity(self) -> tuple[str, int, str, int]:
        """Return the clock's identity: conversation, cycle, metric and seq."""
        return (self.conversation_id, self.cycle, self.metric, self.seq)


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """An escalation: notify someone, or suggest reassigning the conversation."""

    action: str
    trigger: str
    conversation_id: str
    cycle: int
    metric: str
    seq: int
    at: int
    policy_id: str | None
    from_agent: str | None
    to_agent: str | None
    notify: str | None
    reason: str

    type = "action"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An input that could not be used, with the reason and where it came from."""

    reason: str
    raw: str
    source: str

    type = "dead_letter"


Record = SlaRecord | ActionRecord | DeadLetter

#: Dead letters keep at most this many bytes of an oversized input (Kafka refuses big messages).
MAX_DEAD_LETTER_RAW: Final = 65_536


def dead_letter(reason: str, raw: bytes | str | None, source: str) -> DeadLetter:
    """Return the dead letter of an input that could not be used: the one way to build one.

    Args:
        reason: why, naming the field at fault (SPEC §1, §6).
        raw: the input as received; bytes are decoded as UTF-8 with replacement characters.
            Longer than `MAX_DEAD_LETTER_RAW` bytes, it is cut and the reason says so. Message
            content, contact names and phone numbers in it are redacted (SPEC §6,
            `flows.core.redact.redact_raw`).
        source: where it came from: `topic/partition/offset`, `file:line` or `engine:<id>`.
    """
    if raw is None:
        data = b""
    elif isinstance(raw, str):
        data = raw.encode("utf-8", errors="replace")
    else:
        data = raw
    if len(data) > MAX_DEAD_LETTER_RAW:
        reason = f"{reason} (raw truncated to its first {MAX_DEAD_LETTER_RAW} bytes)"
        data = data[:MAX_DEAD_LETTER_RAW]
    return DeadLetter(reason, redact_raw(data) if data else "", source)


def _seconds(ms: int) -> int | float:
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def _instant(ms: int | None) -> str | None:
    return None if ms is None else format_instant(ms)


def to_json_dict(record: Record, emitted_at: int | str) -> dict[str, Any]:
    """Return the public JSON object of a record (SPEC §6), stamped with `emitted_at`.

    `emitted_at` is epoch ms, or the instant already formatted (a batch formats it once).
    """
    emitted = emitted_at if isinstance(emitted_at, str) else format_instant(emitted_at)
    if isinstance(record, SlaRecord):
        out: dict[str, Any] = {
            "type": "sla",
            "conversation_id": record.conversation_id,
            "cycle": record.cycle,
            "metric": record.metric,
            "seq": record.seq,
            "status": record.status,
            "at": format_instant(record.at),
            "policy_id": record.policy_id,
            "target_s": None if record.target is None else _seconds(record.target),
            "started_at": format_instant(record.started_at),
            "warn_at": _instant(record.warn_at),
            "deadline_at": _instant(record.deadline_at),
            "stopped_at": _instant(record.stopped_at),
            "elapsed_s": _seconds(record.elapsed),
            "breached": record.breached,
            "agent_id": record.agent_id,
            "team_id": record.team_id,
            "priority": record.priority,
            "segment": record.segment,
            "lead_source": record.lead_source,
            "channel": record.channel,
            "late": record.late,
            "emitted_at": emitted,
        }
        if record.attempts is not None:
            out["attempts"] = record.attempts
        if record.cause is not None:
            out["cause"] = record.cause
        return out
    if isinstance(record, ActionRecord):
        return {
            "type": "action",
            "action": record.action,
            "trigger": record.trigger,
            "conversation_id": record.conversation_id,
            "cycle": record.cycle,
            "metric": record.metric,
            "seq": record.seq,
            "at": format_instant(record.at),
            "policy_id": record.policy_id,
            "from_agent": record.from_agent,
            "to_agent": record.to_agent,
            "notify": record.notify,
            "reason": record.reason,
            "emitted_at": emitted,
        }
    return {
        "type": "dead_letter",
        "reason": record.reason,
        "raw": record.raw,
        "source": record.source,
        "emitted_at": emitted,
    }
