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
    """A WhatsApp message in or out of the conversation (content is never carried)."""

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
    """An agent is assigned to, or removed from, the conversation."""

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

    `attrs` holds only the attribute keys present in the input, as sorted `(key, value)` pairs;
    a JSON `null` clears the attribute. `tags` is a tuple of strings.
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
    """Work on the lead outside the chat (call, email, ...): a contact attempt, never a reply."""

    event_id: str
    conversation_id: str
    occurred_at: int
    kind: str
    agent_id: str
    outcome: str | None = None

    type = "activity"


Event = MessageEvent | AssignmentEvent | ConversationEvent | ActivityEvent


@dataclass(frozen=True, slots=True)
class Rejected:
    """A raw input that is not a valid event: it becomes a dead letter with this reason."""

    reason: str


def _reduce(event: Event) -> tuple[type[Event], tuple[object, ...]]:
    # Pickle as (class, positional fields): the dataclass default builds a field list per
    # object, which made engine snapshots (thousands of logged events) twice as slow.
    return type(event), tuple([getattr(event, name) for name in event.__slots__])


for _cls in (MessageEvent, AssignmentEvent, ConversationEvent, ActivityEvent):
    _cls.__reduce__ = _reduce  # type: ignore[method-assign,assignment]
