"""A local HTTP stand-in of Chatwoot's REST API (not Chatwoot): the few endpoints slawatch uses.

* `GET /api/v1/accounts/{account}/conversations` (`page`, 25 per page, newest activity first;
  answers `{"data": {"meta": ..., "payload": [...]}}`);
* `GET /api/v1/accounts/{account}/conversations/{id}/messages` (`before`, 20 per page,
  ascending ids; answers `{"meta": ..., "payload": [...]}`);
* `GET /api/v1/accounts/{account}/conversations/{id}` (one conversation, 404 if unknown);
* `POST /api/v1/accounts/{account}/conversations/{id}/assignments` (`{"assignee_id": N}`);
* `POST /api/v1/accounts/{account}/conversations/{id}/messages` (`content`, `message_type`,
  `private`; answers the message with its new id).

Every request must carry the `api_access_token` header (401 otherwise). The shapes follow
Chatwoot's documented REST answers: integer `message_type`, epoch-second `created_at`, a sender
with `type` (`contact`, `user`, `agent_bot`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CONVERSATIONS_PER_PAGE = 25
MESSAGES_PER_PAGE = 20


@dataclass
class ChatwootStandIn:
    """The stand-in's state: conversations and messages per account, and what it was asked."""

    token: str = "standin-token"
    conversations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    messages: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    assignments: list[tuple[str, int, int]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    fail_assignments: int = 0
    posted: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    fail_messages: int = 0

    def add_conversation(self, account: str, conversation: dict[str, Any]) -> None:
        """Add a conversation (its `id` is the display id)."""
        self.conversations.setdefault(account, []).append(conversation)

    def add_message(self, account: str, display_id: int, message: dict[str, Any]) -> None:
        """Add a message to a conversation."""
        self.messages.setdefault((account, display_id), []).append(message)

    def app(self) -> Starlette:
        """Return the ASGI app serving this state."""

        def authorised(request: Request) -> bool:
            self.requests.append(f"{request.method} {request.url.path}?{request.url.query}")
            return request.headers.get("api_access_token") == self.token

        async def conversations(request: Request) -> Response:
            if not authorised(request):
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            account = request.path_params["account"]
            page = int(request.query_params.get("page", "1"))
            items = sorted(
                self.conversations.get(account, []), key=lambda c: c["timestamp"], reverse=True
            )
            start = (page - 1) * CONVERSATIONS_PER_PAGE
            chunk = items[start : start + CONVERSATIONS_PER_PAGE]
            return JSONResponse({"data": {"meta": {"all_count": len(items)}, "payload": chunk}})

        async def messages(request: Request) -> Response:
            if not authorised(request):
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            key = (request.path_params["account"], int(request.path_params["display_id"]))
            items = sorted(self.messages.get(key, []), key=lambda m: m["id"])
            before = request.query_params.get("before")
            if before is not None:
                items = [m for m in items if m["id"] < int(before)]
            return JSONResponse({"meta": {}, "payload": items[-MESSAGES_PER_PAGE:]})

        async def assign(request: Request) -> Response:
            if not authorised(request):
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            if self.fail_assignments > 0:
                self.fail_assignments -= 1
                return JSONResponse({"error": "try again"}, status_code=503)
            body = await request.json()
            account = request.path_params["account"]
            display_id = int(request.path_params["display_id"])
            self.assignments.append((account, display_id, int(body["assignee_id"])))
            return JSONResponse({"id": int(body["assignee_id"]), "type": "user"})

        async def conversation(request: Request) -> Response:
            if not authorised(request):
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            display_id = int(request.path_params["display_id"])
            for item in self.conversations.get(request.path_params["account"], []):
                if item["id"] == display_id:
                    return JSONResponse(item)
            return JSONResponse({"error": "Resource could not be found"}, status_code=404)

        async def post_message(request: Request) -> Response:
            if not authorised(request):
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            if self.fail_messages > 0:
                self.fail_messages -= 1
                return JSONResponse({"error": "try again"}, status_code=503)
            body = await request.json()
            account = request.path_params["account"]
            display_id = int(request.path_params["display_id"])
            self.posted.append((account, display_id, body))
            return JSONResponse({"id": 1000 + len(self.posted), **body})

        base = "/api/v1/accounts/{account}/conversations"
        return Starlette(
            routes=[
                Route(base, conversations, methods=["GET"]),
                Route(base + "/{display_id}", conversation, methods=["GET"]),
                Route(base + "/{display_id}/messages", post_message, methods=["POST"]),
                Route(base + "/{display_id}/messages", messages, methods=["GET"]),
                Route(base + "/{display_id}/assignments", assign, methods=["POST"]),
            ]
        )


def rest_conversation(
    display_id: int,
    *,
    status: str = "open",
    assignee: int | None = None,
    created_at: int,
    timestamp: int,
    updated_at: float | None = None,
    phone_number: str | None = None,
) -> dict[str, Any]:
    """A conversation as the REST list returns it (its contact's phone number if given)."""
    return {
        "id": display_id,
        "account_id": 7,
        "inbox_id": 2,
        "status": status,
        "priority": None,
        "labels": [],
        "custom_attributes": {},
        "meta": {
            "sender": {
                "id": 31,
                "name": "Siti Nurhaliza",
                "type": "contact",
                "phone_number": phone_number,
            },
            "assignee": None if assignee is None else {"id": assignee, "name": "Budi"},
            "team": None,
        },
        "created_at": created_at,
        "timestamp": timestamp,
        "updated_at": updated_at if updated_at is not None else float(timestamp),
        "messages": [],
    }


def rest_message(
    message_id: int,
    display_id: int,
    *,
    created_at: int,
    message_type: int = 0,
    agent: int | None = None,
    private: bool = False,
) -> dict[str, Any]:
    """A message as the REST messages list returns it (integer `message_type`)."""
    sender = (
        {"id": 31, "name": "Siti Nurhaliza", "type": "contact"}
        if agent is None
        else {"id": agent, "name": "Budi Santoso", "type": "user"}
    )
    return {
        "id": message_id,
        "content": "Rahasia pelanggan nomor satu",
        "conversation_id": display_id,
        "message_type": message_type,
        "content_type": "text",
        "created_at": created_at,
        "private": private,
        "sender": sender if message_type != 2 else None,
        "attachments": [],
    }
