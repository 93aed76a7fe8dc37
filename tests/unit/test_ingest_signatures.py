"""Webhook signatures are checked on the exact bytes the test signs, and refused when tampered."""

from __future__ import annotations

import pytest

from flows.ingest.signatures import check_chatwoot, check_meta, meta_handshake
from tests.ingestkit import chatwoot_message, chatwoot_signature, dumps, meta_signature

pytestmark = pytest.mark.unit

SECRET = "cw-secret"
NOW = 1_764_644_400.0
BODY = dumps(chatwoot_message())


def _check(body: bytes = BODY, **overrides: object) -> str | None:
    args: dict[str, object] = {
        "secret": SECRET,
        "signature": chatwoot_signature(SECRET, str(int(NOW)), BODY),
        "timestamp": str(int(NOW)),
        "now_s": NOW,
        "window_s": 300,
    }
    args.update(overrides)
    return check_chatwoot(body, **args)  # type: ignore[arg-type]


def test_chatwoot_signature_over_timestamp_and_body_is_accepted() -> None:
    """A body signed as Chatwoot signs it (`<ts>.<body>`) passes, within the replay window."""
    assert _check() is None
    assert _check(now_s=NOW + 299) is None


def test_altered_body_is_refused() -> None:
    """One changed byte in the body breaks the signature."""
    assert "does not match" in str(_check(BODY.replace(b"premium", b"premiun")))


def test_stale_timestamp_is_refused_even_when_signed() -> None:
    """A correctly signed request older than the replay window is refused as stale."""
    old = str(int(NOW) - 301)
    reason = _check(timestamp=old, signature=chatwoot_signature(SECRET, old, BODY))
    assert "stale" in str(reason)


def test_missing_or_foreign_signature_is_refused() -> None:
    """No signature header, or one made with another secret, is refused."""
    assert "missing" in str(_check(signature=None))
    assert "does not match" in str(
        _check(signature=chatwoot_signature("other", str(int(NOW)), BODY))
    )
    assert "does not match" in str(_check(signature="md5=abc"))


def test_unsigned_chatwoot_may_use_the_url_token() -> None:
    """Older, unsigning Chatwoot versions pass with the configured path token, not a wrong one."""
    assert _check(signature=None, path_token="tok-1", expected_token="tok-1") is None
    assert _check(signature=None, path_token="tok-2", expected_token="tok-1") == "wrong URL token"


def test_meta_signature() -> None:
    """`X-Hub-Signature-256` over the raw body passes; altered, foreign or missing do not."""
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    good = meta_signature("app-secret", body)
    assert check_meta(body, app_secret="app-secret", signature=good) is None
    assert check_meta(body + b" ", app_secret="app-secret", signature=good) is not None
    assert check_meta(body, app_secret="app-secret", signature=meta_signature("x", body))
    assert check_meta(body, app_secret="app-secret", signature=None) is not None


def test_meta_handshake_echoes_the_challenge_only_for_the_right_token() -> None:
    """GET verification answers the challenge for the right token and mode, else refuses."""
    assert meta_handshake("subscribe", "vt", "1158201444", "vt") == "1158201444"
    assert meta_handshake("subscribe", "wrong", "1158201444", "vt") is None
    assert meta_handshake("unsubscribe", "vt", "1158201444", "vt") is None
    assert meta_handshake("subscribe", "vt", "1158201444", None) is None
