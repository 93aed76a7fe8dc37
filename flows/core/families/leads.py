"""Lead clocks (SPEC §4): `qualification`, `handoff`, `contact_attempts` and `cadence`.

They run only for conversations with a `lead_source` (`cadence` for any listed `lead_status`).
`qualification` runs from the cycle's first agent message until `lead_status` leaves `new`;
`handoff` from `qualified` until an `assigned` with the target's `to_role`; `contact_attempts`
from the cycle's first assignment until the `min`-th attempt or contact made; `cadence` measures
each silence between agent activities while `lead_status` is listed, across cycles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from flows.core.phase import OPEN
from flows.core.vocabulary import CLOSING_OUTCOMES, LeadStatus, Metric, Status

if TYPE_CHECKING:
    from flows.core.clock import Clock
    from flows.core.context import Context
    from flows.core.conversation import AttrChange, Conversation
    from flows.core.events import ActivityEvent, AssignmentEvent, ConversationEvent, MessageEvent
    from flows.core.model import Target

#: The metrics whose records carry `lead_status`.
METRICS: Final = frozenset(
    {Metric.QUALIFICATION, Metric.HANDOFF, Metric.CONTACT_ATTEMPTS, Metric.CADENCE}
)


def on_agent_message(conv: Conversation, ctx: Context, event: MessageEvent, at: int) -> None:
    """An agent's message (not a note) is a contact attempt and agent activity.

    The cycle's first also starts `qualification` for a new lead.
    """
    if not conv.agent_out and conv.phase == OPEN:
        conv.agent_out = True
        status = conv.attrs.get("lead_status")
        if conv.attrs.get("lead_source") is not None and status in (None, "new"):
            conv.start(ctx, Metric.QUALIFICATION, at)
    attempt(conv, ctx, at, connected=False)
    agent_activity(conv, ctx, at)


def on_inbound(conv: Conversation, ctx: Context, event: MessageEvent, at: int) -> None:
    """A customer message after a first attempt is contact made: `contact_attempts` is met."""
    clock = conv.running(Metric.CONTACT_ATTEMPTS)
    if clock is not None and clock.attempts > 0:
        conv.finish(ctx, clock, at)


def on_activity(conv: Conversation, ctx: Context, event: ActivityEvent, at: int) -> None:
    """An activity is a contact attempt and agent activity, never a reply (SPEC §1)."""
    attempt(conv, ctx, at, connected=event.outcome == "connected")
    agent_activity(conv, ctx, at)


def on_assigned(conv: Conversation, ctx: Context, event: AssignmentEvent, at: int) -> None:
    """`assigned` meets `handoff` for its `to_role`; a lead's first starts `contact_attempts`.

    The target's `to_role` defaults to `ae`; only the cycle's first assignment starts attempts.
    """
    handoff = conv.running(Metric.HANDOFF)
    if handoff is not None:
        to_role = handoff.tgt.to_role if handoff.tgt is not None else "ae"
        if event.role == to_role:
            conv.finish(ctx, handoff, at)
    if conv.phase == OPEN and not conv.ca_started and conv.attrs.get("lead_source") is not None:
        conv.ca_started = True
        conv.start(ctx, Metric.CONTACT_ATTEMPTS, at)


def before_update(conv: Conversation, ctx: Context, change: AttrChange, at: int) -> None:
    """A lead-status change fulfils or ends lead clocks before the policy is chosen again.

    qualified/disqualified/nurture meets `qualification`; leaving `new` is contact made for
    `contact_attempts`; leaving `qualified` cancels `handoff`.
    """
    if not change.lead_changed:
        return
    new_status = conv.attrs.get("lead_status")
    if new_status in LeadStatus.QUALIFIED_OUTCOMES:
        clock = conv.running(Metric.QUALIFICATION)
        if clock is not None:
            conv.finish(ctx, clock, at)
    if change.old_lead_status in (None, "new") and new_status not in (None, "new"):
        clock = conv.running(Metric.CONTACT_ATTEMPTS)
        if clock is not None:
            conv.finish(ctx, clock, at)
    if new_status != "qualified":
        clock = conv.running(Metric.HANDOFF)
        if clock is not None:
            conv.cancel(ctx, clock, at)


def after_update(conv: Conversation, ctx: Context, change: AttrChange, at: int) -> None:
    """After the reselect, cadence follows the lead status and `qualified` starts `handoff`.

    A new policy that lists the current lead status starts a cadence too.
    """
    if change.lead_changed:
        cadence = conv.running(Metric.CADENCE)
        if cadence is not None and not cadence_listed(conv):
            conv.cancel(ctx, cadence, at)
        elif cadence is None and cadence_listed(conv):
            conv.start(ctx, Metric.CADENCE, at)
        if conv.attrs.get("lead_status") == "qualified":
            conv.start(ctx, Metric.HANDOFF, at)
    elif (
        conv.policy is not change.old_policy
        and conv.running(Metric.CADENCE) is None
        and cadence_listed(conv)
    ):
        conv.start(ctx, Metric.CADENCE, at)


def at_resolve(
    conv: Conversation, ctx: Context, clock: Clock, event: ConversationEvent, at: int
) -> None:
    """A resolve ends a cadence only with outcome `won` or `lost` (other lead clocks end)."""
    if clock.metric != Metric.CADENCE or event.outcome in CLOSING_OUTCOMES:
        conv.cancel(ctx, clock, at)


def cadence_target(conv: Conversation, clock: Clock, tgt: Target) -> int | None:
    """A cadence clock's target is the silence listed for the current `lead_status`."""
    status = conv.attrs.get("lead_status")
    return tgt.cadence.get(status) if isinstance(status, str) else None


def attempt(conv: Conversation, ctx: Context, at: int, *, connected: bool) -> None:
    """SPEC §4, "Attempts": count a contact attempt for `contact_attempts`.

    One less than `gap` (default 10m) after the last counted attempt is part of it. The clock is
    met at the `min`-th attempt, or at once when the attempt made contact (`connected`); any other
    counted attempt emits an `attempt` record with the new count (SPEC §4, §6).
    """
    clock = conv.running(Metric.CONTACT_ATTEMPTS)
    if clock is None:
        return
    gap = clock.tgt.gap if clock.tgt is not None else 600_000
    counted = clock.last_attempt is None or at - clock.last_attempt >= gap
    if counted:
        clock.attempts += 1
        clock.last_attempt = at
    minimum = clock.tgt.min_attempts if clock.tgt is not None else 1
    if connected or (clock.measured and clock.attempts >= minimum):
        conv.finish(ctx, clock, at)
    elif counted and clock.measured:
        # The live count, for wallboards; the clock's state (running, warned, breached) stays.
        conv.record(ctx, clock, Status.ATTEMPT, at)


def agent_activity(conv: Conversation, ctx: Context, at: int) -> None:
    """SPEC §4, `cadence`: agent activity ends the running silence and starts the next one.

    The next clock starts only while `lead_status` is one the target lists and no won/lost
    resolution switched cadence off.
    """
    cadence = conv.running(Metric.CADENCE)
    if cadence is not None:
        conv.finish(ctx, cadence, at)
    if cadence_listed(conv):
        conv.start(ctx, Metric.CADENCE, at)


def cadence_listed(conv: Conversation) -> bool:
    """Return whether a cadence clock should run now: a listed lead status, and not won/lost."""
    policy = conv.policy
    if policy is None or conv.cadence_off:
        return False
    tgt = policy.targets.get(Metric.CADENCE)
    status = conv.attrs.get("lead_status")
    return tgt is not None and isinstance(status, str) and status in tgt.cadence
