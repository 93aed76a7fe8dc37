"""Local stand-ins for the destinations of `--send`: a webhook receiver and a mail server.

Both are real servers on loopback ports (not mocks of slawatch's code): `webhook_standin` is an
HTTP server recording every POSTed JSON body, `smtp_standin` speaks just enough SMTP (EHLO, MAIL,
RCPT, DATA, QUIT) to take messages and keep them.
"""

from __future__ import annotations

import email
import socketserver
import threading
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, HTTPServer

import orjson
import pytest


class Webhook(BaseHTTPRequestHandler):
    received: list[dict[str, str]]
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(orjson.loads(body))
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook_standin() -> Iterator[tuple[str, list[dict[str, str]], type[Webhook]]]:
    """A local HTTP server standing in for a chat webhook; records every POSTed JSON body."""
    handler = type("Handler", (Webhook,), {"received": [], "status": 200})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", handler.received, handler
    server.shutdown()
    server.server_close()


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP to take one message: EHLO, MAIL, RCPT, DATA, QUIT."""

    messages: list[Message]

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._say("220 standin ESMTP")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self._say("250 standin")
            elif verb == b"DATA":
                self._say("354 go ahead")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk
                self.messages.append(email.message_from_bytes(data))
                self._say("250 queued")
            elif verb == b"QUIT":
                self._say("221 bye")
                return
            else:
                self._say("250 ok")


@pytest.fixture
def smtp_standin() -> Iterator[tuple[int, list[Message]]]:
    """A local SMTP server standing in for the mail relay; keeps every message it receives."""
    handler = type("Handler", (_Smtp,), {"messages": []})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler.messages
    server.shutdown()
    server.server_close()
