"""Output records (SPEC §6) as frozen values, and their public JSON form.

Instants inside records are epoch ms UTC; `to_json_dict` turns them into RFC 3339 strings and
adds `emitted_at`, the only field that differs between two replays of the same input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Final

import orjson

from flows.core.redact import redact_raw
from flows.core.timefmt import format_instant, minute_prefix, second_suffixes


# Not `frozen=True`: a frozen dataclass sets each of these 23 fields through
# object.__setattr__, which made building a record ~10x slower (7 us against 0.6 us, measured),
# and records are the engine's hot path. Treat instances as immutable values all the same.
@dataclass(slots=True, unsafe_hash=True)
class SlaRecord:
    """One status change of one clock (an immutable value by convention).

    Identity: (`conversation_id`, `cycle`, `metric`, `seq`); one clock emits several records.
    Instants are epoch ms UTC and durations milliseconds; `to_json_dict` gives the SPEC §6 form
    (`target_s`, `elapsed_s` in seconds, instants as RFC 3339).

    Attributes:
        conversation_id: The conversation.
        cycle: The cycle the clock belongs to (1, 2, …).
        metric: A `Metric` name.
        seq: The clock's number among its metric's clocks (per cycle; per conversation for `cadence`
            and `service_window`).
        status: A `Status` name.
        at: When the status took effect (the warning instant, the deadline, the stop time…).
        policy_id: The policy whose target the clock measures.
        target: The target in counted ms.
        started_at: The clock's start.
        warn_at: The warning instant as known at `at`, or None.
        deadline_at: The deadline as known at `at`; None only on `paused` records.
        stopped_at: When the clock ended, for ending records other than `breached`.
        elapsed: Counted ms from `started_at` to `at` (wall ms for `service_window` and
            `follow_up`).
        breached: Whether the clock had breached by `at`.
        agent_id: The assignee at `at`.
        team_id: The team at `at` (attribute, assignment, or the agent's team).
        priority: The conversation's priority at `at`.
        segment: The conversation's segment at `at`.
        lead_source: The conversation's lead source at `at`.
        channel: The channel of the conversation's latest message.
        late: Whether this record corrects an outcome emitted before (SPEC §5).
        attempts: Contact attempts so far (`contact_attempts` only).
        cause: The breach cause (`breached` only, SPEC §4).
        lead_status: The conversation's lead status at `at`, on records of the lead metrics
            (`qualification`, `handoff`, `contact_attempts`, `cadence`) only. Stored, not
            published: see below.
        outcome: The resolve's `outcome` (`won`, `lost`, …), on the `resolution` record that the
            resolve ended only. Stored, not published.
        attempts_required: The policy's `min` attempts (`contact_attempts` only). Stored, not
            published.
        budget_pct: On ending records of `team_ownership` (SPEC §4): the stint's counted seconds
            as a per cent of the cycle's `resolution` target; None without one. Published.

    `lead_status`, `outcome` and `attempts_required` go to QuestDB (what the scorecard's
    conversion, qualification and attempts panels need) but not into the SPEC §6 JSON on Kafka
    (`to_json_dict` leaves them out), so the published record stays exactly the contract.
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
    lead_status: str | None = None
    outcome: str | None = None
    attempts_required: int | None = None
    budget_pct: float | None = None

    type = "sla"

    def __reduce__(self) -> tuple[Callable[..., SlaRecord], tuple[object, ...]]:
        # Positional: half the bytes of the default slot dict in every snapshot that keeps one.
        return (SlaRecord, tuple([getattr(self, name) for name in _SLA_FIELDS]))

    def __setstate__(self, state: object) -> None:
        # Only records pickled before `__reduce__` existed come here: `(None, {slot: value})`.
        # They predate the stored-only fields, which therefore start as None.
        slots = state[1] if isinstance(state, tuple) else state
        assert isinstance(slots, dict)
        for name in _SLA_FIELDS:
            setattr(self, name, slots.get(name))

    def identity(self) -> tuple[str, int, str, int]:
        """Return the clock's identity: conversation, cycle, metric and seq."""
        return (self.conversation_id, self.cycle, self.metric, self.seq)


_SLA_FIELDS: Final = tuple(field.name for field in fields(SlaRecord))
#: Statuses of `team_ownership` records that carry `budget_pct` (every ending record, SPEC §4).
_ENDING_WITH_BUDGET: Final = frozenset({"met", "stopped", "closed", "cancelled"})


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """An escalation (notify someone, suggest reassigning) or a service recovery to send.

    SPEC §6 action record; `slawatch act` carries it out in the inbox.

    Attributes:
        action: `notify`, `reassign` or `recover`.
        trigger: `warning` or `breached`; `recovery` for `recover`.
        conversation_id: The conversation.
        cycle: The clock's cycle.
        metric: The clock's metric.
        seq: The clock's seq.
        at: The warning or breach instant, epoch ms UTC.
        policy_id: The policy whose escalation fired.
        from_agent: The assignee at `at`.
        to_agent: For `reassign`, the team member with the fewest open conversations (never the
            assignee); None when nobody else is available.
        notify: For `notify`, who (the team's supervisor when the policy says `supervisor`).
        reason: Readable text: "<metric> <trigger>: <why>".
        send: For `recover`, the template or offer the rule names; None otherwise.
        rule: For `recover`, the rule that fired (`<policy id>#<n>`); None otherwise.
        withdrawn: For `recover` only: True on the record that withdraws an earlier one of the
            same identity and `at`, because a late correction removed (or moved) it.

    `send`, `rule` and `withdrawn` are published on `recover` records only (`withdrawn` only
    when true), so escalation records stay exactly SPEC §6's.
    """

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
    send: str | None = None
    rule: str | None = None
    withdrawn: bool = False

    type = "action"

    def identity(self) -> tuple[str, str, str, int, str, int, str | None]:
        """Return the action's identity: action, trigger, conversation, cycle, metric, seq, rule.

        SPEC §4: a recovery is identified by conversation, cycle, metric, seq and rule; `rule`
        is None for escalations.
        """
        return (
            self.action,
            self.trigger,
            self.conversation_id,
            self.cycle,
            self.metric,
            self.seq,
            self.rule,
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An input that could not be used, with the reason and where it came from.

    Build one with `dead_letter`, which caps `raw`.

    Attributes:
        reason: Why, naming the field at fault (SPEC §1, §6).
        raw: The input as text (at most `MAX_DEAD_LETTER_RAW` bytes of it).
        source: `topic/partition/offset`, `file:line` or `engine:<conversation id>`.
    """

    reason: str
    raw: str
    source: str

    type = "dead_letter"


@dataclass(frozen=True, slots=True)
class CsatRecord:
    """A customer-satisfaction survey of one cycle (SPEC §4 CSAT, §6 CSAT record).

    Emitted when the survey is sent (`rating` None, so response rate = rated / sent is a count
    over these records) and again when it is rated; a later rating of the same survey replaces
    the earlier one (the same `identity`).

    Attributes:
        conversation_id: The conversation.
        cycle: The cycle the survey belongs to (the one most recently resolved at its `sent`).
        survey_id: The survey's id, if the inbox gave one.
        sent_at: When it was sent, epoch ms UTC; None for a rating without a `sent`.
        rated_at: When it was rated; None until then.
        rating: 1-5; None until rated.
        agent_id: Who is credited: the cycle's assignee at its resolve, else the last agent who
            replied in the cycle.
        team_id: The conversation's team at the resolve.
        policy_id: The policy in force at the resolve.
        breached: Whether some clock of the cycle had breached by its resolve.
        recovered: Whether a service recovery was sent in the cycle.
        late: Whether it corrects an earlier record (SPEC §5).
        channel: The channel of the conversation's latest message at the resolve. Stored, not
            published: QuestDB keeps it so the dashboards' `$channel` filter can read
            `<prefix>csat` (which cannot be joined by subquery); `to_json_dict` leaves it out,
            as SPEC §6 lists no `channel` on a CSAT record.
    """

    conversation_id: str
    cycle: int
    survey_id: str | None
    sent_at: int | None
    rated_at: int | None
    rating: int | None
    agent_id: str | None
    team_id: str | None
    policy_id: str | None
    breached: bool
    recovered: bool
    late: bool = False
    channel: str | None = None

    type = "csat"

    @property
    def at(self) -> int:
        """The instant the record took effect: the rating, else the sending (epoch ms UTC)."""
        if self.rated_at is not None:
            return self.rated_at
        assert self.sent_at is not None  # a record is either a sent survey or a rating
        return self.sent_at

    def identity(self) -> tuple[str, str, int]:
        """Return the survey's identity: conversation, survey id (or "") and `survey_at`.

        `survey_at` is when it was sent (its rating's instant for a rating without a `sent`);
        the cycle is not part of it, so a correction that moves a survey to another cycle
        replaces its record instead of leaving the old one behind.
        """
        return (self.conversation_id, self.survey_id or "", self.survey_at)

    @property
    def survey_at(self) -> int:
        """When the survey was sent, else when it was rated (epoch ms UTC)."""
        return self.sent_at if self.sent_at is not None else self.at


@dataclass(frozen=True, slots=True)
class HandleRecord:
    """One counted handle segment of one agent (SPEC §4 "Handle time", §6 handle record).

    Emitted when the segment ends. Identity: (`conversation_id`, `cycle`, `agent_id`,
    `started_at`): two segments of one conversation never overlap, so a late correction that
    changes how a segment ended replaces its record, and one that removes the segment (or moves its
    start) re-sends the old identity with `end` `withdrawn` and `handle` 0.

    Attributes:
        conversation_id: The conversation.
        cycle: The cycle the segment belongs to.
        agent_id: The assignee who handled it.
        team_id: The conversation's team while the agent held it.
        started_at: The segment's start, epoch ms UTC.
        ended_at: Its end: the ending event's instant, or its last message for `idle`.
        handle: Wall-clock ms from `started_at` to `ended_at` (`handle_s` in the JSON).
        end: A `HandleEnd` name.
        late: Whether it corrects an earlier record (SPEC §5).
        channel: The channel of the conversation's latest message when the segment ended (a
            message of the segment: its messages open and extend it). Stored, not published,
            like `CsatRecord.channel`.
    """

    conversation_id: str
    cycle: int
    agent_id: str
    team_id: str | None
    started_at: int
    ended_at: int
    handle: int
    end: str
    late: bool = False
    channel: str | None = None

    type = "handle"

    @property
    def at(self) -> int:
        """The instant the record took effect: the segment's end (epoch ms UTC)."""
        return self.ended_at

    def identity(self) -> tuple[str, int, str, int]:
        """Return the segment's identity: conversation, cycle, agent and start."""
        return (self.conversation_id, self.cycle, self.agent_id, self.started_at)


Record = SlaRecord | ActionRecord | CsatRecord | HandleRecord | DeadLetter

#: Dead letters keep at most this many bytes of an oversized input (Kafka refuses big messages).
MAX_DEAD_LETTER_RAW: Final = 65_536


def dead_letter(reason: str, raw: bytes | str | None, source: str) -> DeadLetter:
    """Return the dead letter of an input that could not be used: the one way to build one.

    Message content is never kept (SPEC §1, §6): `raw` is stored with text, bodies, captions,
    contact names and phone numbers redacted (`flows.core.redact.redact_raw`).

    Args:
        reason: why, naming the field at fault (SPEC §1, §6).
        raw: the input as received; bytes are decoded as UTF-8 with replacement characters.
            Longer than `MAX_DEAD_LETTER_RAW` bytes once redacted, it is cut and the reason
            says so.
        source: where it came from: `topic/partition/offset`, `file:line` or `engine:<id>`.

    Returns:
        The dead letter; None as `raw` gives an empty `raw`.
    """
    text = redact_raw(raw) if raw else ""
    data = text.encode("utf-8", errors="replace")
    if len(data) > MAX_DEAD_LETTER_RAW:
        reason = f"{reason} (raw truncated to its first {MAX_DEAD_LETTER_RAW} bytes)"
        text = data[:MAX_DEAD_LETTER_RAW].decode("utf-8", errors="replace")
    return DeadLetter(reason, text, source)


def _seconds(ms: int) -> int | float:
    """Return milliseconds as seconds: an int when whole, else a float (`elapsed_s`, `target_s`)."""
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def _instant(ms: int | None) -> str | None:
    """Return an optional epoch-ms instant as RFC 3339 UTC with milliseconds, or None."""
    return None if ms is None else format_instant(ms)


def to_json_dict(record: Record, emitted_at: int | str) -> dict[str, Any]:
    """Return the public JSON object of a record (SPEC §6), stamped with `emitted_at`.

    `emitted_at` is epoch ms, or the instant already formatted (a batch formats it once). Instants
    become RFC 3339 UTC with milliseconds (`...Z`); `target_s` and `elapsed_s` are seconds (an int
    when whole). An SLA record carries `attempts` and `cause` only when set.

    Args:
        record: An SLA, action, CSAT or handle record, or a dead letter.
        emitted_at: The wall-clock instant of emission (epoch ms or already formatted).

    Returns:
        A dict ready for orjson, with `type` first.
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
        if record.metric == "team_ownership" and record.status in _ENDING_WITH_BUDGET:
            out["budget_pct"] = record.budget_pct
        return out
    if isinstance(record, ActionRecord):
        action: dict[str, Any] = {
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
        }
        if record.action == "recover":
            action["send"] = record.send
            action["rule"] = record.rule
            if record.withdrawn:
                action["withdrawn"] = True
        action["emitted_at"] = emitted
        return action
    if isinstance(record, CsatRecord):
        return {
            "type": "csat",
            "conversation_id": record.conversation_id,
            "cycle": record.cycle,
            "survey_id": record.survey_id,
            "sent_at": _instant(record.sent_at),
            "rated_at": _instant(record.rated_at),
            "rating": record.rating,
            "agent_id": record.agent_id,
            "team_id": record.team_id,
            "policy_id": record.policy_id,
            "breached": record.breached,
            "recovered": record.recovered,
            "late": record.late,
            "emitted_at": emitted,
        }
    if isinstance(record, HandleRecord):
        return {
            "type": "handle",
            "conversation_id": record.conversation_id,
            "cycle": record.cycle,
            "agent_id": record.agent_id,
            "team_id": record.team_id,
            "started_at": format_instant(record.started_at),
            "ended_at": format_instant(record.ended_at),
            "handle_s": _seconds(record.handle),
            "end": record.end,
            "late": record.late,
            "emitted_at": emitted,
        }
    return {
        "type": "dead_letter",
        "reason": record.reason,
        "raw": record.raw,
        "source": record.source,
        "emitted_at": emitted,
    }


#: Most minutes `RecordEncoder` keeps the text of before it starts again (a replay of months).
_ENCODER_MINUTES: Final = 65_536


class _MinutePrefixes(dict[int, str]):
    """The `YYYY-MM-DDTHH:MM:` text of epoch minutes, made once each (`minute_prefix`)."""

    __slots__ = ()

    def __missing__(self, minute: int) -> str:
        if len(self) >= _ENCODER_MINUTES:
            self.clear()
        text = self[minute] = minute_prefix(minute)
        return text


class RecordEncoder:
    """Writes records as their published JSON bytes (SPEC §6), once each and fast.

    The bytes are exactly `orjson.dumps(to_json_dict(record, emitted_at))` (the tests compare
    the two on every kind of record the engine emits). For SLA records, nearly all of the
    output, the dict is built inline: each instant is two table look-ups (its minute's text,
    cached, and its millisecond's within the minute, `second_suffixes`) instead of a call of
    `format_instant`, with no call per field; ~20 % less CPU per record (bench/record_json.py).
    The other kinds go through `to_json_dict`.

    Not thread-safe: one encoder per producer.
    """

    __slots__ = ("_emitted_at", "_emitted_text", "_minutes", "_suffixes")

    def __init__(self) -> None:
        self._minutes = _MinutePrefixes()
        self._suffixes = second_suffixes()
        self._emitted_at: int | str | None = None
        self._emitted_text = ""

    def _emitted(self, emitted_at: int | str) -> str:
        """Return `emitted_at` formatted, once per batch (the same value record after record)."""
        if emitted_at is not self._emitted_at and emitted_at != self._emitted_at:
            self._emitted_text = (
                emitted_at if isinstance(emitted_at, str) else format_instant(emitted_at)
            )
            self._emitted_at = emitted_at
        return self._emitted_text

    def encode(self, record: Record, emitted_at: int | str) -> bytes:
        """Return the published JSON of any record, stamped with `emitted_at`.

        Args:
            record: An SLA, action, CSAT or handle record, or a dead letter.
            emitted_at: Epoch ms, or the instant already formatted (as for `to_json_dict`).

        Returns:
            The same bytes as `orjson.dumps(to_json_dict(record, emitted_at))`.
        """
        if isinstance(record, SlaRecord):
            return self.sla(record, emitted_at)
        return orjson.dumps(to_json_dict(record, self._emitted(emitted_at)))

    def sla(self, r: SlaRecord, emitted_at: int | str) -> bytes:
        """Return the published JSON of an SLA record (see `encode`)."""
        m = self._minutes
        x = self._suffixes
        at = r.at
        started = r.started_at
        warn = r.warn_at
        deadline = r.deadline_at
        stopped = r.stopped_at
        target = r.target
        elapsed = r.elapsed
        # The keys, their order and the values' types are `to_json_dict`'s, field for field.
        out: dict[str, Any] = {
            "type": "sla",
            "conversation_id": r.conversation_id,
            "cycle": r.cycle,
            "metric": r.metric,
            "seq": r.seq,
            "status": r.status,
            "at": m[at // 60_000] + x[at % 60_000],
            "policy_id": r.policy_id,
            "target_s": None
            if target is None
            else (target // 1000 if target % 1000 == 0 else target / 1000),
            "started_at": m[started // 60_000] + x[started % 60_000],
            "warn_at": None if warn is None else m[warn // 60_000] + x[warn % 60_000],
            "deadline_at": None
            if deadline is None
            else m[deadline // 60_000] + x[deadline % 60_000],
            "stopped_at": None if stopped is None else m[stopped // 60_000] + x[stopped % 60_000],
            "elapsed_s": elapsed // 1000 if elapsed % 1000 == 0 else elapsed / 1000,
            "breached": r.breached,
            "agent_id": r.agent_id,
            "team_id": r.team_id,
            "priority": r.priority,
            "segment": r.segment,
            "lead_source": r.lead_source,
            "channel": r.channel,
            "late": r.late,
            "emitted_at": self._emitted_text
            if emitted_at is self._emitted_at
            else self._emitted(emitted_at),
        }
        if r.attempts is not None:
            out["attempts"] = r.attempts
        if r.cause is not None:
            out["cause"] = r.cause
        if r.metric == "team_ownership" and r.status in _ENDING_WITH_BUDGET:
            out["budget_pct"] = r.budget_pct
        return orjson.dumps(out)
