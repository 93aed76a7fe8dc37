"""A local HTTP stand-in of the WhatsApp Cloud API (not Meta's): sending messages only.

* `POST /{version}/{phone_number_id}/messages` with `Authorization: Bearer <token>` (401
  otherwise): records the JSON body and answers as the Cloud API does,
  `{"messaging_product": "whatsapp", "contacts": [...], "messages": [{"id": "wamid..."}]}`.

`fail` answers that many requests 503 first; `delay_s` holds each answer back (a slow API, for
read timeouts); `on_message` runs in the handler before the answer (a test can kill the
sender there: the request has arrived, its answer never leaves).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class WhatsAppStandIn:
    """The stand-in's state: every message taken, and how it answers."""

    token: str = "meta-standin-token"
    version: str = "v21.0"
    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail: int = 0
    delay_s: float = 0.0
    on_message: Callable[[dict[str, Any]], None] | None = None

    def app(self) -> Starlette:
        """Return the ASGI app serving this state."""

        async def messages(request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return JSONResponse({"error": {"code": 190}}, status_code=401)
            if self.fail > 0:
                self.fail -= 1
                return JSONResponse({"error": {"code": 131000}}, status_code=503)
            body = await request.json()
            self.sent.append((request.path_params["number"], body))
            if self.on_message is not None:
                self.on_message(body)
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            to = body.get("to") or body.get("recipient")
            return JSONResponse(
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": to, "wa_id": to}],
                    "messages": [{"id": f"wamid.standin{len(self.sent)}"}],
                }
            )

        return Starlette(
            routes=[Route(f"/{self.version}/{{number}}/messages", messages, methods=["POST"])]
        )
