"""Handle time (SPEC §4 "Handle time", §6 handle record): the effort an assignee spends on a case.

A *segment* of agent A opens when A is assigned to a conversation with an open cycle, and again,
when none is open, at a customer message or at an outbound message by A (a note too) while A is
assigned and the cycle open. Each customer message and each outbound message of A extends it. It
ends at the first of: `status` becomes `pending`, `resolved`, `unassigned`, another assignee, or
`idle` (the policy's `handle.idle`) after its last message, and then it ends at that message. A
segment in which A sent no outbound message other than a note does not count; each one that counts
emits one `HandleRecord`. Time is wall-clock time, whatever the policy's calendar.

Only conversations whose policy has a `handle` key open segments (decision in
docs/SEMANTICS.md): the family is skipped entirely when no policy has one. The open segment is
`Conversation.handling`, an immutable `Segment`; its idle close fires on the watermark like a
deadline (`Conversation.next_due` and `fire_until` read `Segment.due`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, NamedTuple

from flows.core.phase import OPEN
from flows.core.records import HandleRecord
from flows.core.vocabulary import HandleEnd

if TYPE_CHECKING:
    from flows.core.context import Context
    from flows.core.conversation import AttrChange, Conversation
    from flows.core.events import AssignmentEvent, MessageEvent

#: What the family measures: `Context` tracks it when some policy has a `handle` key.
HANDLE: Final = "handle"
#: The metrics this family measures (the hook registration skips it when none is tracked).
METRICS: Final = frozenset({HANDLE})


class Segment(NamedTuple):
    """The open handle segment of a conversation (immutable: a clone shares it safely).

    Attributes:
        agent: The assignee whose segment it is.
        cycle: The cycle it belongs to.
        started_at: Its start, epoch ms UTC.
        last: Its last message (its start until one comes), epoch ms UTC.
        idle: The idle time of the policy in force at `last`, ms.
        sent: Whether the agent has sent an outbound message other than a note in it.
        team: The agent's assignment `team_id`, if the assignment gave one.
    """

    agent: str
    cycle: int
    started_at: int
    last: int
    idle: int
    sent: bool
    team: str | None

    @property
    def due(self) -> int:
        """The instant it ends idle unless a message comes first (epoch ms UTC)."""
        return self.last + self.idle


def _open(conv: Conversation, at: int, *, sent: bool = False) -> None:
    """Open a segment of the assignee at `at`, if the conversation's policy measures handle time."""
    policy = conv.policy
    agent = conv.agent
    if policy is None or policy.handle_idle is None or agent is None:
        return
    conv.handling = Segment(agent, conv.cycle, at, at, policy.handle_idle, sent, conv.assign_team)


def _touch(conv: Conversation, seg: Segment, at: int, *, sent: bool = False) -> None:
    """Extend the open segment to a message at `at` (the idle time of the policy now in force)."""
    policy = conv.policy
    idle = policy.handle_idle if policy is not None and policy.handle_idle is not None else seg.idle
    conv.handling = Segment(
        seg.agent, seg.cycle, seg.started_at, at, idle, seg.sent or sent, seg.team
    )


def _close(conv: Conversation, ctx: Context, at: int, end: str) -> None:
    """End the open segment at `at` (at its last message for `idle`); emit it if it counts."""
    seg = conv.handling
    if seg is None:
        return
    conv.handling = None
    if not seg.sent:
        return
    ended = seg.last if end == HandleEnd.IDLE else at
    team = conv.attrs.get("team_id")
    if not isinstance(team, str):
        # The agent's own team: the conversation's assignment may already be someone else's.
        team = seg.team if seg.team is not None else ctx.team_of_agent.get(seg.agent)
    ctx.out.append(
        HandleRecord(
            conv.id,
            seg.cycle,
            seg.agent,
            team,
            seg.started_at,
            ended,
            ended - seg.started_at,
            end,
            channel=conv.channel,
        )
    )


def on_assigned(conv: Conversation, ctx: Context, event: AssignmentEvent, at: int) -> None:
    """Another assignee ends the segment (`reassigned`); the new one opens one if the cycle is open.

    Assigning the agent who holds the segment again changes nothing but its team.
    """
    seg = conv.handling
    if seg is not None:
        if seg.agent == conv.agent:
            if seg.team != conv.assign_team:
                conv.handling = seg._replace(team=conv.assign_team)
            return
        _close(conv, ctx, at, HandleEnd.REASSIGNED)
    if conv.phase == OPEN:
        _open(conv, at)


def on_unassigned(conv: Conversation, ctx: Context, at: int) -> None:
    """`unassigned` ends the segment."""
    _close(conv, ctx, at, HandleEnd.UNASSIGNED)


def on_inbound(conv: Conversation, ctx: Context, event: MessageEvent, at: int) -> None:
    """A customer message extends the segment, or opens one for the assignee."""
    seg = conv.handling
    if seg is not None:
        _touch(conv, seg, at)
    elif conv.phase == OPEN:
        _open(conv, at)


def on_agent_outbound(conv: Conversation, ctx: Context, event: MessageEvent, at: int) -> None:
    """An outbound message of the assignee (a note too) extends the segment, or opens one.

    Only a message that is not a note makes the segment count. Other agents' messages are not
    the assignee's handling.
    """
    agent = conv.agent
    if agent is None or event.agent_id != agent:
        return
    sent = event.kind != "note"
    seg = conv.handling
    if seg is not None:
        _touch(conv, seg, at, sent=sent)
    elif conv.phase == OPEN:
        _open(conv, at, sent=sent)


def after_update(conv: Conversation, ctx: Context, change: AttrChange, at: int) -> None:
    """`status` becoming `pending` ends the segment (the customer is awaited, not handled)."""
    if (
        conv.handling is not None
        and change.old_status != "pending"
        and conv.attrs.get("status") == "pending"
    ):
        _close(conv, ctx, at, HandleEnd.PENDING)


def on_resolved(conv: Conversation, ctx: Context, at: int) -> None:
    """`resolved` ends the segment."""
    _close(conv, ctx, at, HandleEnd.RESOLVED)


def on_idle(conv: Conversation, ctx: Context, at: int) -> None:
    """No message for the idle time: the segment ends at its last message."""
    _close(conv, ctx, at, HandleEnd.IDLE)
