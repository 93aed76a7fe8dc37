"""Webhook signature checks on the exact raw bytes, in constant time.

* Chatwoot (2026+): `X-Chatwoot-Signature: sha256=<hex HMAC-SHA256(secret, "<ts>.<body>")>`
  with `X-Chatwoot-Timestamp` (unix seconds) inside a replay window; older Chatwoot versions do
  not sign, so a shared token in the URL path is accepted instead.
* Meta: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>`, and the GET
  verification handshake (`hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`).

Each check returns None when the request is authentic, else the reason it is not. What happens
then (`off | log | enforce`) is the receiver's decision.
"""

from __future__ import annotations

import hashlib
import hmac

_PREFIX = "sha256="


def _hex_matches(expected: bytes, header: str | None) -> bool:
    """Whether `header` is `sha256=<hex>` of `expected` (hex case-insensitive, constant time)."""
    if not header or not header.startswith(_PREFIX):
        return False
    given = header[len(_PREFIX) :].strip().lower()
    return hmac.compare_digest(expected.hex(), given)


def check_chatwoot(
    body: bytes,
    *,
    secret: str | None,
    signature: str | None,
    timestamp: str | None,
    now_s: float,
    window_s: int,
    path_token: str | None = None,
    expected_token: str | None = None,
) -> str | None:
    """Check a Chatwoot webhook.

    Args:
        body: the raw request body.
        secret: the account's signing secret (None: no signature check possible).
        signature: the `X-Chatwoot-Signature` header.
        timestamp: the `X-Chatwoot-Timestamp` header (unix seconds).
        now_s: the wall clock in unix seconds.
        window_s: largest accepted distance between `timestamp` and `now_s`.
        path_token: the token given in the URL path, if any.
        expected_token: the account's shared URL token, if configured.

    Returns:
        None when the signature (or, for unsigned versions, the path token) is valid, else why
        not: missing, malformed, stale or wrong.
    """
    if signature is None and path_token is not None and expected_token is not None:
        if hmac.compare_digest(path_token.encode(), expected_token.encode()):
            return None
        return "wrong URL token"
    if secret is None:
        return "no signing secret or URL token configured for this account"
    if signature is None or timestamp is None:
        return "missing X-Chatwoot-Signature or X-Chatwoot-Timestamp"
    try:
        sent_at = int(timestamp)
    except ValueError:
        return "X-Chatwoot-Timestamp is not unix seconds"
    if abs(now_s - sent_at) > window_s:
        return f"stale X-Chatwoot-Timestamp (more than {window_s} s from now)"
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).digest()
    if not _hex_matches(digest, signature):
        return "X-Chatwoot-Signature does not match the body"
    return None


def check_meta(body: bytes, *, app_secret: str | None, signature: str | None) -> str | None:
    """Check Meta's `X-Hub-Signature-256` over the raw body; None when valid, else why not.

    The body must be the bytes as received: re-encoded JSON (other spacing, escaped
    characters) does not match. Meta signs with the app secret, one per Meta app.

    Args:
        body: the raw request body.
        app_secret: the Meta app secret (None: no check possible, which is a reason).
        signature: the `X-Hub-Signature-256` header.

    Returns:
        None when the signature matches, else why not: no secret, missing, or wrong.
    """
    if app_secret is None:
        return "no app secret configured"
    if signature is None:
        return "missing X-Hub-Signature-256"
    digest = hmac.new(app_secret.encode(), body, hashlib.sha256).digest()
    if not _hex_matches(digest, signature):
        return "X-Hub-Signature-256 does not match the body"
    return None


def meta_handshake(
    mode: str | None, token: str | None, challenge: str | None, verify_token: str | None
) -> str | None:
    """Answer Meta's GET verification: the challenge to echo back, or None to refuse (403).

    Args:
        mode: the `hub.mode` query parameter; only `subscribe` is answered.
        token: the `hub.verify_token` parameter.
        challenge: the `hub.challenge` parameter, echoed as it is.
        verify_token: the token configured for this receiver; None refuses every handshake.

    Returns:
        The challenge when the tokens match (compared in constant time), else None.
    """
    if mode != "subscribe" or token is None or verify_token is None or challenge is None:
        return None
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        return None
    return challenge
