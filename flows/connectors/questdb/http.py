"""QuestDB's client configuration strings, and a small HTTP client for `/exec` and `/write`."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from flows.exceptions import ConnectorError


def _parse_conf(conf: str) -> tuple[str, dict[str, str]]:
    """Split a `questdb` client configuration string into its protocol and its parameters."""
    protocol, sep, rest = conf.strip().partition("::")
    if not sep or protocol not in ("http", "https"):
        msg = (
            f"QuestDB configuration {conf!r} must start with http:: or https:: "
            "(ILP over HTTP, e.g. 'http::addr=127.0.0.1:9000;')"
        )
        raise ValueError(msg)
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        eq = rest.find("=", i)
        if eq < 0:
            msg = f"QuestDB configuration {conf!r}: {rest[i:]!r} is not key=value"
            raise ValueError(msg)
        key = rest[i:eq].strip()
        value: list[str] = []
        j = eq + 1
        while j < n:
            if rest[j] == ";":
                if j + 1 < n and rest[j + 1] == ";":  # `;;` escapes a semicolon
                    value.append(";")
                    j += 2
                    continue
                break
            value.append(rest[j])
            j += 1
        params[key] = "".join(value)
        i = j + 1
    if "addr" not in params:
        msg = f"QuestDB configuration {conf!r} has no addr=host:port"
        raise ValueError(msg)
    return protocol, params


def _format_conf(protocol: str, params: dict[str, str]) -> str:
    body = "".join(f"{key}={value.replace(';', ';;')};" for key, value in params.items())
    return f"{protocol}::{body}"


class _Http:
    """QuestDB's REST `/exec` endpoint (DDL, small reads) and its ILP `/write` endpoint."""

    def __init__(self, protocol: str, params: dict[str, str], timeout_s: float) -> None:
        addr = params["addr"]
        if ":" not in addr:
            addr = f"{addr}:9000"
        self.addr = addr
        self.base = f"{protocol}://{addr}/exec?"
        self.write_url = f"{protocol}://{addr}/write"
        self.timeout_s = timeout_s
        self.headers: dict[str, str] = {}
        if "token" in params:
            self.headers["Authorization"] = f"Bearer {params['token']}"
        elif "username" in params:
            pair = f"{params['username']}:{params.get('password', '')}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        self.context: ssl.SSLContext | None = None
        if protocol == "https":
            self.context = ssl.create_default_context(cafile=params.get("tls_roots"))
            if params.get("tls_verify") == "unsafe_off":
                self.context.check_hostname = False
                self.context.verify_mode = ssl.CERT_NONE

    def execute(self, sql: str, timeout_s: float | None = None) -> dict[str, Any]:
        """Run one statement and return QuestDB's JSON answer.

        Raises:
            ConnectorError: QuestDB cannot be reached or refused the statement.
        """
        url = self.base + urllib.parse.urlencode({"query": sql})
        request = urllib.request.Request(url, headers=self.headers)  # noqa: S310 - http(s) only
        try:
            with urllib.request.urlopen(  # noqa: S310 - the scheme is checked in _parse_conf
                request, timeout=timeout_s or self.timeout_s, context=self.context
            ) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            try:
                detail = str(json.loads(detail).get("error", detail))
            except ValueError:
                pass
            msg = f"QuestDB at {self.addr} refused {_short(sql)}: HTTP {exc.code} {detail}"
            raise ConnectorError(msg) from None
        except (OSError, ValueError) as exc:
            msg = f"QuestDB at {self.addr} cannot be reached: {exc}"
            raise ConnectorError(msg) from exc
        answer: dict[str, Any] = json.loads(body)
        return answer

    def write(self, payload: bytes) -> None:
        """Send ILP rows already encoded (one request, as the Sender would have sent them).

        Raises:
            IlpRejectedError: QuestDB refused the rows as invalid; sending them again cannot help.
            ConnectorError: QuestDB cannot be reached or failed otherwise (try again later).
        """
        request = urllib.request.Request(  # noqa: S310 - http(s) only
            self.write_url,
            data=payload,
            headers={**self.headers, "Content-Type": "text/plain; charset=utf-8"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(  # noqa: S310 - the scheme is checked in _parse_conf
                request, timeout=self.timeout_s, context=self.context
            ) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            msg = (
                f"QuestDB at {self.addr} refused {len(payload)} bytes of ILP: "
                f"HTTP {exc.code} {detail}"
            )
            if exc.code == 400 and '"invalid"' in detail:
                raise IlpRejectedError(msg) from None
            raise ConnectorError(msg) from None
        except (OSError, ValueError) as exc:
            msg = f"QuestDB at {self.addr} cannot be reached: {exc}"
            raise ConnectorError(msg) from exc


class IlpRejectedError(ConnectorError):
    """QuestDB answered rows with HTTP 400 `invalid`: they cannot be stored as they are."""


def _short(sql: str, limit: int = 80) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
