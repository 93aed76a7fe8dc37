"""Customer satisfaction (SPEC §1 `survey`, §4 CSAT, §6 CSAT record).

A survey belongs to the cycle most recently resolved at or before its `sent` (a `rated` without
a `sent` to the cycle resolved last before it), and is credited to that cycle's assignee at its
resolve, else to the last agent who replied in it. The conversation keeps what a later survey
needs of its last resolved cycle (`Conversation.credit`, taken at each resolve) and the surveys
sent in the last 14 days (`Conversation.surveys`); a conversation that never gets a survey pays
one small tuple per resolve. `recovered` says whether a service recovery of the rated cycle had
been emitted by the record's instant (also one emitted after the resolve, before the rating).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from flows.core.families.recovery import recovered
from flows.core.records import CsatRecord

if TYPE_CHECKING:
    from flows.core.context import Context
    from flows.core.conversation import Conversation
    from flows.core.events import SurveyEvent

#: A later rating replaces the earlier one up to this long after the survey was sent.
RERATE_MS: Final = 14 * 24 * 3600 * 1000

#: What a resolve leaves for the cycle's survey: cycle, credited agent, team, policy id,
#: whether some clock of the cycle had breached, and the channel of its latest message (stored
#: with the survey, not published). A snapshot taken before the channel was kept holds the
#: first five only.
Credit = tuple[int, str | None, str | None, str | None, bool, str | None]


def credit_at_resolve(conv: Conversation, ctx: Context) -> Credit:
    """Return what a survey of the cycle being resolved is credited with."""
    policy = conv.policy
    return (
        conv.cycle,
        conv.agent if conv.agent is not None else conv.replier,
        conv.team_of(ctx),
        policy.id if policy is not None else None,
        conv.cycle_breached,
        conv.channel,
    )


def on_survey(conv: Conversation, ctx: Context, event: SurveyEvent, at: int) -> None:
    """Apply a `survey` event: `sent` and `rated` emit the cycle's CSAT record.

    `not_sent` emits nothing (the inbox could not offer a survey; nothing to rate). A survey of a
    conversation that has no resolved cycle yet emits nothing either (the engine counts it in
    `Engine.orphan_surveys`): a resolve delivered late rebuilds the conversation and credits it
    then. A rating more than 14 days after its survey was sent leaves the earlier one standing.
    """
    if event.action == "not_sent":
        return
    key = event.survey_id or ""
    surveys = conv.surveys
    if event.action == "sent":
        credit = conv.credit
        if credit is None:
            return
        kept = {k: v for k, v in surveys.items() if at - v[1] <= RERATE_MS} if surveys else {}
        kept[key] = (credit, at)
        conv.surveys = kept
        _emit(conv, ctx, event, credit, sent_at=at, rated_at=None)
        return
    sent = surveys.get(key) if surveys else None
    if sent is not None:
        credit, sent_at = sent
        if at - sent_at > RERATE_MS:
            return
        _emit(conv, ctx, event, credit, sent_at=sent_at, rated_at=at)
        return
    if conv.credit is None:
        return
    _emit(conv, ctx, event, conv.credit, sent_at=None, rated_at=at)


def _emit(
    conv: Conversation,
    ctx: Context,
    event: SurveyEvent,
    credit: Credit,
    *,
    sent_at: int | None,
    rated_at: int | None,
) -> None:
    cycle, agent, team, policy_id, breached, channel = credit
    ctx.out.append(
        CsatRecord(
            conv.id,
            cycle,
            event.survey_id,
            sent_at,
            rated_at,
            event.rating if rated_at is not None else None,
            agent,
            team,
            policy_id,
            breached,
            recovered(conv, cycle),
            channel=channel,
        )
    )
