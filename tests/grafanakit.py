"""A recording HTTP stand-in for Grafana's API (no real Grafana can run here).

`RecordingGrafana` serves the uid-based endpoints `slawatch provision` uses from an in-memory
store, the way Grafana answers them: 404 for what does not exist, the stored object (plus
fields Grafana adds, such as `id` and `version`) for what does. Every request is recorded as
`(method, path, body)` so tests can assert which endpoints were called and that a second run
writes nothing. It checks the bearer token. It is a stand-in: it proves the requests, not
Grafana's acceptance of them.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Json = dict[str, Any]


class RecordingGrafana:
    """Start with `with RecordingGrafana(token) as grafana:`; `grafana.url` is its address."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.requests: list[tuple[str, str, Any]] = []
        self.datasources: dict[str, Json] = {}
        self.folders: dict[str, Json] = {}
        self.dashboards: dict[str, Json] = {}
        self.rule_groups: dict[tuple[str, str], Json] = {}
        self.contact_points: dict[str, Json] = {}
        self.mute_timings: dict[str, Json] = {}
        # Grafana's default tree before anyone provisions one.
        self.policies: Json = {"receiver": "grafana-default-email", "group_by": ["grafana_folder"]}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def writes(self) -> list[tuple[str, str]]:
        """The requests that change something (POST, PUT, DELETE)."""
        return [(m, p) for m, p, _ in self.requests if m != "GET"]

    def __enter__(self) -> RecordingGrafana:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """Grafana's answer to one request (status, JSON)."""
        m = re.fullmatch
        if method == "GET" and path == "/api/health":
            return 200, {"database": "ok", "version": "13.0.0"}
        if (found := m(r"/api/datasources/uid/([\w-]+)", path)) is not None:
            uid = found.group(1)
            if method == "PUT":
                self.datasources[uid] = _public(body)
            return _get(self.datasources, uid, extra={"id": 1})
        if method == "POST" and path == "/api/datasources":
            self.datasources[body["uid"]] = _public(body)
            return 200, {"datasource": body, "id": 1}
        if (found := m(r"/api/folders/([\w-]+)", path)) is not None:
            uid = found.group(1)
            if method == "PUT":
                self.folders[uid] = {"uid": uid, "title": body["title"]}
            return _get(self.folders, uid, extra={"id": 7, "version": 1})
        if method == "POST" and path == "/api/folders":
            self.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"]}
            return 200, self.folders[body["uid"]]
        if method == "GET" and (found := m(r"/api/dashboards/uid/([\w-]+)", path)) is not None:
            stored = self.dashboards.get(found.group(1))
            if stored is None:
                return 404, {"message": "Dashboard not found"}
            return 200, {"dashboard": stored, "meta": {"folderUid": "slawatch"}}
        if method == "POST" and path == "/api/dashboards/db":
            board = dict(body["dashboard"])
            previous = self.dashboards.get(board["uid"], {})
            board["id"] = 42
            board["version"] = previous.get("version", 0) + 1
            self.dashboards[board["uid"]] = board
            return 200, {"status": "success", "uid": board["uid"], "version": board["version"]}
        if found := m(r"/api/v1/provisioning/folder/([\w-]+)/rule-groups/([\w-]+)", path):
            key = (found.group(1), found.group(2))
            if method == "PUT":
                rules = [
                    {**r, "id": i + 1, "updated": "2026-12-01T00:00:00Z"}
                    for i, r in enumerate(body["rules"])
                ]
                self.rule_groups[key] = {**body, "rules": rules}
            return _get(self.rule_groups, key)
        if path == "/api/v1/provisioning/contact-points":
            if method == "POST":
                self.contact_points[body["uid"]] = body
                return 202, body
            return 200, list(self.contact_points.values())
        if (found := m(r"/api/v1/provisioning/contact-points/([\w-]+)", path)) and method == "PUT":
            self.contact_points[found.group(1)] = body
            return 202, {"message": "contactpoint updated"}
        if path == "/api/v1/provisioning/mute-timings" and method == "POST":
            self.mute_timings[body["name"]] = body
            return 201, body
        if (found := m(r"/api/v1/provisioning/mute-timings/([\w-]+)", path)) is not None:
            if method == "PUT":
                self.mute_timings[found.group(1)] = body
            return _get(self.mute_timings, found.group(1), extra={"version": "abc"})
        if path == "/api/v1/provisioning/policies":
            if method == "PUT":
                self.policies = body
                return 202, {"message": "policies updated"}
            return 200, self.policies
        return 404, {"message": f"the stand-in does not know {method} {path}"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        grafana = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path = self.path.split("?", 1)[0]
                grafana.requests.append((self.command, path, body))
                if self.headers.get("Authorization") != f"Bearer {grafana.token}":
                    status, answer = 401, {"message": "invalid API key"}
                else:
                    status, answer = grafana.answer(self.command, path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                del format, args

        return Handler


def _public(datasource: Json) -> Json:
    return {k: v for k, v in datasource.items() if k != "secureJsonData"}


def _get(store: dict[Any, Json], key: Any, extra: Json | None = None) -> tuple[int, Any]:
    if key not in store:
        return 404, {"message": "not found"}
    return 200, {**store[key], **(extra or {})}
