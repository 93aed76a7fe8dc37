"""Catch up on what Chatwoot's webhooks missed, through its REST API (`slawatch reconcile`).

Chatwoot does not retry a webhook that failed, so a receiver outage loses events. This pulls the
conversations active since a checkpoint (`GET /api/v1/accounts/{id}/conversations`, newest
activity first) and their messages (`GET .../conversations/{id}/messages`, paged back with
`before`), and maps them with the webhook mapping, so every event gets the id its webhook would
have had: what the receiver already produced is dropped by the monitor as a duplicate.

Only events at or after the checkpoint are emitted: earlier ones were the previous run's, and
the monitor would refuse those older than its correction horizon.

What the REST API can and cannot restore:

* messages: exactly (same ids; `created_at` to the second);
* the conversation's opening (same id as `conversation_created`), with its current attributes;
* a resolution: the current `resolved` status, at the conversation's `updated_at` (same id as the
  webhook when nothing changed the conversation after the resolve);
* the current assignee: `assigned` at that agent's first reply of the window (an agent who
  replies holds the conversation), else not at all; earlier assignees and their times are not
  in the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from flows.ingest.chatwoot import ChatwootOptions, map_message, map_payload
from flows.ingest.mapping import Mapped, MappingError, epoch_ms

#: Most pages read per list (a guard against an API that never ends).
MAX_PAGES: Final = 1000


class ReconcileError(Exception):
    """The Chatwoot API refused or answered something unreadable; the message says which."""


@dataclass(slots=True)
class Catchup:
    """What one catch-up found.

    Attributes:
        events: the mapped events, in the order they apply per conversation.
        conversations: conversations read.
        messages: messages read.
        checkpoint: the latest activity seen, in epoch seconds (the next `since`).
        mapped: ignored parts and unmappable reasons, as the webhook mapping reports them.
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    conversations: int = 0
    messages: int = 0
    checkpoint: int = 0
    mapped: Mapped = field(default_factory=Mapped)


def _get(client: httpx.Client, path: str, params: dict[str, Any]) -> Any:
    """GET one API path and return its decoded JSON.

    Raises:
        ReconcileError: the API cannot be reached or answered other than 200.
    """
    try:
        response = client.get(path, params=params)
    except httpx.HTTPError as exc:
        msg = f"Chatwoot API unreachable at {client.base_url}: {exc}"
        raise ReconcileError(msg) from None
    if response.status_code != 200:
        msg = f"Chatwoot API answered {response.status_code} to GET {path}"
        raise ReconcileError(msg)
    return response.json()


def _conversations(client: httpx.Client, account: str, since_s: int) -> Iterator[dict[str, Any]]:
    """Yield the account's conversations with activity at or after `since_s`, newest first.

    Every status and assignee is included. Pages are read until one holds a conversation
    older than `since_s` (the list is sorted by last activity), an empty page, or
    `MAX_PAGES`.

    Raises:
        ReconcileError: a page could not be read.
    """
    path = f"/api/v1/accounts/{account}/conversations"
    for page in range(1, MAX_PAGES + 1):
        params = {
            "status": "all",
            "assignee_type": "all",
            "sort_by": "last_activity_at_desc",
            "page": page,
        }
        data = _get(client, path, params)
        items = data.get("data", {}).get("payload", []) if isinstance(data, dict) else []
        if not items:
            return
        fresh = [c for c in items if _activity_s(c) >= since_s]
        yield from fresh
        if len(fresh) < len(items):
            return


def _activity_s(conversation: dict[str, Any]) -> int:
    """Return a conversation's last activity in epoch seconds; 0 when it has none readable."""
    stamp = conversation.get("timestamp") or conversation.get("last_activity_at")
    try:
        return epoch_ms(stamp, "conversation 'timestamp'") // 1000
    except MappingError:
        return 0


def _messages(
    client: httpx.Client, account: str, display_id: object, since_s: int
) -> list[dict[str, Any]]:
    """Return a conversation's messages back to `since_s` (or a little before), oldest first.

    The API returns the newest page first; older pages are asked for with `before=<oldest
    id>` until a page reaches before `since_s`, is empty, or has an unreadable time. A
    message seen on two pages is kept once. Messages before `since_s` may be returned; the
    caller filters the events.

    Raises:
        ReconcileError: a page could not be read.
    """
    path = f"/api/v1/accounts/{account}/conversations/{display_id}/messages"
    found: dict[object, dict[str, Any]] = {}
    params: dict[str, Any] = {}
    for _ in range(MAX_PAGES):
        data = _get(client, path, params)
        items = data.get("payload", []) if isinstance(data, dict) else []
        if not items:
            break
        for item in items:
            found[item.get("id")] = item
        oldest = min(items, key=lambda m: m.get("id") or 0)
        try:
            oldest_s = epoch_ms(oldest.get("created_at"), "message 'created_at'") // 1000
        except MappingError:
            break
        if oldest_s < since_s:
            break
        params = {"before": oldest.get("id")}
    return sorted(found.values(), key=lambda m: m.get("id") or 0)


def catch_up(
    client: httpx.Client, account: str, since_s: int, options: ChatwootOptions | None = None
) -> Catchup:
    """Read what changed since `since_s` and map it to events with their webhook ids.

    Args:
        client: an httpx client whose `base_url` is the Chatwoot installation and whose headers
            carry the `api_access_token`.
        account: the Chatwoot account id.
        since_s: the checkpoint, in epoch seconds: conversations with activity at or after it.
        options: the mapping choices (the receiver's).

    Returns:
        The events at or after `since_s`, per conversation in the order they apply (the
        opening, the messages, the current assignee's assignment before that agent's first
        reply, the resolution), and the checkpoint for the next run. A conversation or
        message that cannot be mapped is reported in `mapped.unmappable`, not raised.

    Raises:
        ReconcileError: the API could not be read.
    """
    opts = options or ChatwootOptions()
    result = Catchup(checkpoint=since_s)
    for conversation in _conversations(client, account, since_s):
        result.conversations += 1
        result.checkpoint = max(result.checkpoint, _activity_s(conversation))
        display_id = conversation.get("id")
        out = Mapped()
        try:
            map_payload({**conversation, "event": "conversation_created"}, account, opts, out)
        except MappingError as exc:
            out.unmappable.append(str(exc))
        # The opening's own assignee event carries the creation time; drop it (see module doc).
        out.events = [e for e in out.events if e["type"] != "assignment"]
        messages = _messages(client, account, display_id, since_s)
        result.messages += len(messages)
        for message in messages:
            try:
                map_message(
                    message, account, opts, out, display_id=display_id, conversation=conversation
                )
            except MappingError as exc:
                out.unmappable.append(str(exc))
        _assignee(conversation, account, out)
        if conversation.get("status") == "resolved":
            stamp = conversation.get("updated_at") or conversation.get("timestamp")
            change = {"changed_attributes": [{"status": {"current_value": "resolved"}}]}
            try:
                map_payload(
                    {**conversation, **change, "event": "conversation_status_changed",
                     "updated_at": stamp},
                    account,
                    opts,
                    out,
                )  # fmt: skip
            except MappingError as exc:
                out.unmappable.append(str(exc))
        # Events before the checkpoint were covered by the previous run (or lie outside the
        # window asked for); the monitor would refuse those beyond its correction horizon.
        result.events.extend(e for e in out.events if e["occurred_at"] >= since_s * 1000)
        result.mapped.ignored.extend(out.ignored)
        result.mapped.flags.extend(out.flags)
        result.mapped.unmappable.extend(out.unmappable)
    return result


def _assignee(conversation: dict[str, Any], account: str, out: Mapped) -> None:
    """Add an `assignment` event (action `assigned`) for the conversation's current assignee.

    It is placed at, and just before, that agent's first reply among the mapped events; an
    assignee who has not replied gets none. Its id ends in `:rest`, unlike any webhook id,
    because its time is inferred rather than read from Chatwoot.
    """
    meta = conversation.get("meta")
    assignee = meta.get("assignee") if isinstance(meta, dict) else None
    agent = assignee.get("id") if isinstance(assignee, dict) else None
    if agent is None:
        return
    replies = [
        e
        for e in out.events
        if e["type"] == "message" and e.get("author") == "agent" and e.get("agent_id") == str(agent)
    ]
    if not replies:
        return
    first = min(replies, key=lambda e: e["occurred_at"])
    display_id = conversation.get("id")
    event = {
        "event_id": f"cw:{account}:c:{display_id}:assignee:{agent}:rest",
        "type": "assignment",
        "conversation_id": f"cw:{account}:{display_id}",
        "occurred_at": first["occurred_at"],
        "action": "assigned",
        "agent_id": str(agent),
    }
    position = out.events.index(first)
    out.events.insert(position, event)
