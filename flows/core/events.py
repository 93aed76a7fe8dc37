"""Input events (SPEC §1) as frozen, slotted values.

All instants are integer epoch milliseconds, UTC. The decoder (`flows.core.decode`) is the only
place that builds these from bytes; the engine only reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: Conversation attributes that `opened` / `updated` may set and policies may match on.
ATTRIBUTE_KEYS: Final = (
    "priority",
    "segment",
    "lead_source",
    "lead_status",
    "team_id",
    "handled_by",
    "status",
    "tags",
)

#: Type of one attribute value: a string, a tuple of strings (`tags`), or None (cleared).
AttrValue = str | tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """A WhatsApp message in or out of the conversation (content is never carried).

    SPEC §1 `message`. Every inbound message is the customer's, whatever `author` says; only an
    outbound `agent` message that is not a `note` is a reply (or a bot's, if the policy says so).

    Attributes:
        event_id: Unique id; a repeated one is ignored.
        conversation_id: The conversation it belongs to.
        occurred_at: Event time, epoch ms UTC.
        direction: `inbound` (from the customer) or `outbound`.
        author: `customer`, `agent`, `bot` or `system`.
        agent_id: The agent, required when `author` is `agent`.
        message_id: The inbox's message id, if given.
        channel: Default `whatsapp`; policies may match on it.
        kind: Default `text`; a `note` never counts as a reply, a `template` does (but does not end
            the `service_window`).
    """

    event_id: str
    conversation_id: str
    occurred_at: int
    direction: str  # "inbound" | "outbound"
    author: str  # "customer" | "agent" | "bot" | "system"
    agent_id: str | None = None
    message_id: str | None = None
    channel: str = "whatsapp"
    kind: str = "text"  # "text" | "media" | "template" | "note" | other strings

    type = "message"


@dataclass(frozen=True, slots=True)
class AssignmentEvent:
    """An agent is assigned to, or removed from, the conversation.

    SPEC §1 `assignment`; the assignee stays across cycles until `unassigned` or a new `assigned`.

    Attributes:
        event_id: Unique id; a repeated one is ignored.
        conversation_id: The conversation it belongs to.
        occurred_at: Event time, epoch ms UTC.
        action: `assigned` or `unassigned`.
        agent_id: The agent; required when `assigned`.
        team_id: The team, if given (it names the team in records).
        role: The assignee's role (`sdr`, `ae`, …); `handoff` is met by its target's `to_role`.
        by: `auto`, `manual` or `escalation`, if given (informational).
    """

    event_id: str
    conversation_id: str
    occurred_at: int
    action: str  # "assigned" | "unassigned"
    agent_id: str | None = None
    team_id: str | None = None
    role: str | None = None
    by: str | None = None

    type = "assignment"


@dataclass(frozen=True, slots=True)
class ConversationEvent:
    """A change to the conversation: attributes, resolution, reopening or a follow-up promise.

    `attrs` holds only the attribute keys present in the input, as sorted `(key, value)` pairs; a
    JSON `null` clears the attribute. `tags` is a tuple of strings.

    Attributes:
        event_id: Unique id; a repeated one is ignored.
        conversation_id: The conversation it belongs to.
        occurred_at: Event time, epoch ms UTC.
        action: `opened`, `updated`, `resolved`, `reopened` or `follow_up_promised`.
        attrs: The attributes set (only for `opened` / `updated`).
        outcome: The resolution's outcome (`won`, `lost`, …), only for `resolved`.
        due_at: The promised instant, epoch ms UTC, only for `follow_up_promised`.
    """

    event_id: str
    conversation_id: str
    occurred_at: int
    action: str  # "opened" | "updated" | "resolved" | "reopened" | "follow_up_promised"
    attrs: tuple[tuple[str, AttrValue], ...] = ()
    outcome: str | None = None
    due_at: int | None = None

    type = "conversation"


@dataclass(frozen=True, slots=True)
class ActivityEvent:
    """Work on the lead outside the chat (call, email, ...): a contact attempt, never a reply.

    Attributes:
        event_id: Unique id; a repeated one is ignored.
        conversation_id: The conversation it belongs to.
        occurred_at: Event time, epoch ms UTC.
        kind: `call`, `email`, `sms`, `meeting`, `other` (any non-empty text is accepted).
        agent_id: The agent who did it.
        outcome: `connected` is contact made for `contact_attempts`; other values are kept as given.
    """

    event_id: str
    conversation_id: str
    occurred_at: int
    kind: str
    agent_id: str
    outcome: str | None = None

    type = "activity"


@dataclass(frozen=True, slots=True)
class RetractionEvent:
    """An outbound message whose delivery failed: it never reached the customer.

    SPEC §1 `{"type": "message", "action": "failed", "message_id": …}`. Every clock is computed
    as if the outbound message with that `message_id` had never been sent (a late correction).

    Attributes:
        event_id: Unique id; a repeated one is ignored.
        conversation_id: The conversation it belongs to.
        occurred_at: When the failure was reported, epoch ms UTC.
        message_id: The `message_id` of the outbound message that failed.
    """

    event_id: str
    conversation_id: str
    occurred_at: int
    message_id: str

    type = "message"
    action = "failed"


@dataclass(frozen=True, slots=True)
class SurveyEvent:
    """A customer-satisfaction survey offered, not offered, or rated (SPEC §1 `survey`).

    A comment the customer writes is content and is never read.

    Attributes:
        event_id: Unique id; a repeated one is ignored.
        conversation_id: The conversation it belongs to.
        occurred_at: Event time, epoch ms UTC.
        action: `sent`, `not_sent` or `rated`.
        survey_id: The survey, if given.
        rating: 1-5, only for `rated` (required there).
        reason: Why no survey was sent (e.g. `outside_window`), only for `not_sent`.
    """

    event_id: str
    conversation_id: str
    occurred_at: int
    action: str  # "sent" | "not_sent" | "rated"
    survey_id: str | None = None
    rating: int | None = None
    reason: str | None = None

    type = "survey"


Event = (
    MessageEvent
    | AssignmentEvent
    | ConversationEvent
    | ActivityEvent
    | RetractionEvent
    | SurveyEvent
)

#: SPEC §4 edge rules, the order of events at one instant: conversation actions by rank.
_CONVERSATION_RANKS: Final = {"opened": 1, "reopened": 1, "follow_up_promised": 6, "resolved": 7}


def instant_rank(event: Event) -> int:
    """Return the rank of `event` among events at its instant (SPEC §4 edge rules).

    (1) `opened` and `reopened`; (2) `updated` without a `status` field; (3) inbound messages;
    (4) assignments; (5) outbound messages, activities and retractions of failed messages;
    (6) `updated` with a `status` field, and `follow_up_promised`; (7) `resolved`; then (8)
    surveys, which SPEC does not rank: a survey sent at a resolve's instant belongs to that
    resolved cycle.
    """
    if isinstance(event, MessageEvent):
        return 3 if event.direction == "inbound" else 5
    if isinstance(event, AssignmentEvent):
        return 4
    if isinstance(event, ConversationEvent):
        rank = _CONVERSATION_RANKS.get(event.action)
        if rank is not None:
            return rank
        for key, _ in event.attrs:
            if key == "status":
                return 6
        return 2
    if isinstance(event, SurveyEvent):
        return 8
    return 5


def order_key(event: Event) -> tuple[int, int, str]:
    """Return the key events are applied in: instant, then rank (`instant_rank`), then event id.

    Ids compare by code point, which is their UTF-8 byte order. With this order the records are a
    function of the set of events, never of their delivery order (SPEC §4 edge rules).
    """
    return (event.occurred_at, instant_rank(event), event.event_id)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A raw input that is not a valid event: it becomes a dead letter with this reason.

    Attributes:
        reason: Why, naming the field at fault (e.g. "missing field 'occurred_at'").
    """

    reason: str


def _reduce(event: Event) -> tuple[type[Event], tuple[object, ...]]:
    """Return how pickle rebuilds an event: its class and its fields in slot order."""
    # Pickle as (class, positional fields): the dataclass default builds a field list per
    # object, which made engine snapshots (thousands of logged events) twice as slow.
    return type(event), tuple([getattr(event, name) for name in event.__slots__])


for _cls in (
    MessageEvent,
    AssignmentEvent,
    ConversationEvent,
    ActivityEvent,
    RetractionEvent,
    SurveyEvent,
):
    _cls.__reduce__ = _reduce  # type: ignore[method-assign,assignment]
