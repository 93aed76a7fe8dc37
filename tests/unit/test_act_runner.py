"""`slawatch act` handling one message against real local servers: carried out or dead-lettered.

The Chatwoot API stand-in (`tests/chatwoot_standin.py`), the WhatsApp Cloud API stand-in
(`tests/whatsapp_standin.py`), a webhook receiver and an SMTP server (aiosmtpd) run on
loopback; `ActionRunner.handle` gets raw message bytes as Kafka delivers them.
`Desk` is shared with `test_act_fuzz.py`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from flows.ingest.act import ActionRunner, Ledger
from flows.ingest.app import free_port, running
from flows.ingest.settings import IngestSettings
from tests.chatwoot_standin import ChatwootStandIn, rest_conversation
from tests.whatsapp_standin import WhatsAppStandIn

pytestmark = pytest.mark.unit


@dataclass
class Mailbox:
    """The SMTP stand-in's state: mails taken, and whether it refuses recipients."""

    mails: list[Message] = field(default_factory=list)
    refuse: bool = False

    async def handle_RCPT(  # noqa: N802
        self, _server: Any, _session: Any, envelope: Any, address: str, _options: Any
    ) -> str:
        if self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        self.mails.append(BytesParser(policy=policy.default).parsebytes(envelope.content))
        return "250 OK"


@dataclass
class Desk:
    """The stand-ins one runner talks to, and what each took.

    Attributes:
        chatwoot: the Chatwoot API stand-in (`assignments`, `fail_assignments`).
        posts: every webhook request: (Idempotency-Key, body bytes, status answered,
            Authorization, path).
        webhook_status: the status the webhook answers next.
        mailbox: the SMTP stand-in.
        chatwoot_url: Chatwoot's base URL; `webhook_url` the webhook's; `smtp_port` SMTP's.
        chatwoot_client: the API client runners share (token set); `webhook_client` likewise.
        whatsapp: the Cloud API stand-in (`sent`, `fail`); `whatsapp_client` its client.
    """

    chatwoot: ChatwootStandIn
    mailbox: Mailbox
    chatwoot_url: str
    webhook_url: str
    smtp_port: int
    chatwoot_client: httpx.Client
    webhook_client: httpx.Client
    whatsapp: WhatsAppStandIn
    whatsapp_client: httpx.Client
    posts: list[tuple[str | None, bytes, int, str | None, str]] = field(default_factory=list)
    webhook_status: int = 200

    def settings(self, **changes: Any) -> IngestSettings:
        """The act settings pointing at these stand-ins (`changes` override)."""
        values: dict[str, Any] = {
            "chatwoot_url": self.chatwoot_url,
            "agent_map": {"ae.dewi": "12", "ae.typo": "l2"},
            "notify_webhook_url": f"{self.webhook_url}/hook",
            "notify_addresses": {
                "spv.hendra": "hendra@example.com",
                "spv.list": "a@example.com, b@example.com",
            },
            "smtp_host": "127.0.0.1",
            "smtp_port": self.smtp_port,
            **changes,
        }
        return IngestSettings(_env_file=None, **values)  # type: ignore[call-arg]

    def runner(self, ledger: Path | None = None, **changes: Any) -> ActionRunner:
        """A runner with a fresh ledger (or `ledger`), no waits between attempts."""
        path = ledger or Path(tempfile.mkdtemp(prefix="act-ledger-")) / "ledger.jsonl"
        return ActionRunner(
            self.settings(**changes),
            Ledger(path),
            chatwoot=self.chatwoot_client,
            webhook=self.webhook_client,
            whatsapp=self.whatsapp_client,
            sleep=lambda _s: None,
        )

    def reset(self) -> None:
        """Forget what was received; answer normally again."""
        self.chatwoot.assignments.clear()
        self.chatwoot.fail_assignments = 0
        self.chatwoot.posted.clear()
        self.chatwoot.fail_messages = 0
        self.whatsapp.sent.clear()
        self.whatsapp.fail = 0
        self.whatsapp.delay_s = 0.0
        self.posts.clear()
        self.webhook_status = 200
        self.mailbox.mails.clear()
        self.mailbox.refuse = False


@pytest.fixture(scope="module")
def desk() -> Iterator[Desk]:
    """Chatwoot, webhook and SMTP stand-ins on loopback for the whole module."""
    chatwoot = ChatwootStandIn()
    for display_id, phone in ((42, "+62 812-1111-2222"), (43, None)):
        chatwoot.add_conversation(
            "7",
            rest_conversation(display_id, created_at=1, timestamp=2, phone_number=phone),
        )
    whatsapp = WhatsAppStandIn()
    mailbox = Mailbox()
    holder: list[Desk] = []

    async def hook(request: Request) -> Response:
        status = holder[0].webhook_status
        holder[0].posts.append(
            (
                request.headers.get("idempotency-key"),
                await request.body(),
                status,
                request.headers.get("authorization"),
                request.url.path,
            )
        )
        if 300 <= status < 400:
            return Response(status_code=status, headers={"location": "/elsewhere"})
        return PlainTextResponse("<html>not json</html>", status_code=status)

    webhook_app = Starlette(
        routes=[
            Route("/hook", hook, methods=["POST"]),
            Route("/vouchers", hook, methods=["POST"]),
        ]
    )
    smtp_port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        with (
            running(chatwoot.app()) as chatwoot_url,
            running(webhook_app) as webhook_url,
            running(whatsapp.app()) as whatsapp_url,
            httpx.Client(
                base_url=f"{whatsapp_url}/{whatsapp.version}",
                headers={"Authorization": f"Bearer {whatsapp.token}"},
                timeout=5,
            ) as whatsapp_client,
            httpx.Client(
                base_url=chatwoot_url, headers={"api_access_token": chatwoot.token}, timeout=5
            ) as chatwoot_client,
            httpx.Client(timeout=5) as webhook_client,
        ):
            holder.append(
                Desk(
                    chatwoot,
                    mailbox,
                    chatwoot_url,
                    webhook_url,
                    smtp_port,
                    chatwoot_client,
                    webhook_client,
                    whatsapp,
                    whatsapp_client,
                )
            )
            yield holder[0]
    finally:
        smtp.stop()


@pytest.fixture
def fresh(desk: Desk) -> Desk:
    """The module's stand-ins, emptied for one test."""
    desk.reset()
    return desk


def action(**changes: Any) -> bytes:
    """An action record as the monitor writes it (`changes` override; `...` removes a field)."""
    record: dict[str, Any] = {
        "type": "action",
        "action": "notify",
        "trigger": "breached",
        "conversation_id": "cw:7:43",
        "cycle": 1,
        "metric": "first_response",
        "seq": 1,
        "at": "2025-12-02T01:46:40.000Z",
        "policy_id": "hot-leads",
        "from_agent": "sdr.rina",
        "to_agent": None,
        "notify": "spv.hendra",
        "reason": "first_response breached: no reply in 3m",
        "emitted_at": "2025-12-02T01:46:41.000Z",
        **changes,
    }
    return orjson.dumps({k: v for k, v in record.items() if v is not ...})


def test_a_crlf_conversation_id_is_dead_lettered_and_nothing_is_sent(fresh: Desk) -> None:
    """The record that used to crash `act` on the e-mail header becomes a dead letter naming
    `conversation_id`; no webhook, no mail, no ledger entry."""
    runner = fresh.runner()
    raw = action(conversation_id="cw:7:43\r\nBcc: all@example.com")
    handled = runner.handle(raw, "sla.actions/0/5")
    assert handled.dead_letter is not None
    assert "field 'conversation_id' must not contain control characters" in (
        handled.dead_letter.reason
    )
    assert handled.dead_letter.source == "sla.actions/0/5"
    assert handled.outcomes == ("invalid",) and not handled.applied
    assert fresh.posts == [] and fresh.mailbox.mails == []
    assert runner.outcomes["dead_letter"] == 1


def test_a_good_notify_is_posted_and_mailed_once(fresh: Desk) -> None:
    """A good notify reaches the webhook and the supervisor's inbox, then is a duplicate."""
    runner = fresh.runner()
    first = runner.handle(action(), "sla.actions/0/1")
    assert first.outcomes == ("webhook_done", "mail_done") and first.dead_letter is None
    again = runner.handle(action(), "sla.actions/0/2")
    assert again.outcomes == ("duplicate",) and again.dead_letter is None
    assert [post[0] for post in fresh.posts] == ["notify|breached|cw:7:43|1|first_response|1"]
    assert [m["To"] for m in fresh.mailbox.mails] == ["hendra@example.com"]


def test_odd_characters_reach_headers_escaped(fresh: Desk) -> None:
    """A conversation id with a U+2028 line separator and non-ASCII text (a valid id) is
    mailed with a one-line subject and posted with a printable-ASCII `Idempotency-Key`."""
    handled = fresh.runner().handle(action(conversation_id="wa:1\u2028Bcc: é"), "t/0/1")
    assert handled.outcomes == ("webhook_done", "mail_done")
    key = fresh.posts[0][0]
    assert key == "notify|breached|wa:1%E2%80%A8Bcc:%20%C3%A9|1|first_response|1"
    (mail,) = fresh.mailbox.mails
    assert mail["Bcc"] is None
    assert str(mail["Subject"]) == "[slawatch] first_response breached on wa:1%E2%80%A8Bcc: é"
    assert orjson.loads(fresh.posts[0][1])["conversation_id"] == "wa:1\u2028Bcc: é"


@pytest.mark.parametrize(
    ("notify", "expected"),
    [
        ("boss@example.com, all@example.com", "is not one e-mail address"),
        ("spv.list", "is not one e-mail address (NOTIFY_ADDRESSES['spv.list'])"),
        ("spv.unknown", "has no e-mail address in NOTIFY_ADDRESSES"),
        (None, "field 'notify' is null"),
    ],
)
def test_no_mail_to_anyone_but_one_address(fresh: Desk, notify: str | None, expected: str) -> None:
    """A `notify` that is not exactly one address mails nobody: the webhook still gets it, and
    the dead letter says why no e-mail went out."""
    handled = fresh.runner().handle(action(notify=notify), "t/0/1")
    assert handled.outcomes[0] == "webhook_done" and handled.applied
    assert handled.dead_letter is not None and expected in handled.dead_letter.reason
    assert fresh.mailbox.mails == []


@pytest.mark.parametrize(
    ("conversation", "to_agent", "outcome", "expected"),
    [
        ("cw:7:٤٢", "ae.dewi", "reassign_bad_conversation", "is not a Chatwoot conversation"),
        ("cw:7:4/2", "ae.dewi", "reassign_bad_conversation", "is not a Chatwoot conversation"),
        ("cw:7:42", "²", "reassign_unmapped_agent", "field 'to_agent': '²' has no Chatwoot"),
        ("cw:7:42", "ae.typo", "reassign_unmapped_agent", "has no Chatwoot user id"),
        ("cw:7:42", "ae.nobody", "reassign_unmapped_agent", "has no Chatwoot user id"),
    ],
)
def test_a_reassignment_act_cannot_address_is_dead_lettered(
    fresh: Desk, conversation: str, to_agent: str, outcome: str, expected: str
) -> None:
    """No Chatwoot request is made for an id that is not decimal or an agent without a user
    id; each becomes a dead letter saying which field."""
    handled = fresh.runner().handle(
        action(action="reassign", conversation_id=conversation, to_agent=to_agent), "t/0/1"
    )
    assert handled.outcomes == (outcome,)
    assert handled.dead_letter is not None and expected in handled.dead_letter.reason
    assert fresh.chatwoot.assignments == []


def test_a_chatwoot_error_after_the_retries_is_dead_lettered(fresh: Desk) -> None:
    """Chatwoot answering 503 three times gives a dead letter with the answer, no ledger entry;
    the next time it answers, the same action is carried out."""
    fresh.chatwoot.fail_assignments = 3
    runner = fresh.runner()
    raw = action(action="reassign", conversation_id="cw:7:42", to_agent="ae.dewi")
    failed = runner.handle(raw, "t/0/1")
    assert failed.outcomes == ("reassign_failed",) and not failed.applied
    assert failed.dead_letter is not None
    assert "after 3 attempts: HTTP 503 Service Unavailable" in failed.dead_letter.reason
    assert runner.handle(raw, "t/0/2").outcomes == ("reassign_done",)
    assert fresh.chatwoot.assignments == [("7", 42, 12)]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (500, "HTTP 500 Internal Server Error: <html>not json</html>"),
        (302, "HTTP 302 Found"),
        (404, "HTTP 404 Not Found"),
    ],
)
def test_a_webhook_error_is_dead_lettered_and_the_mail_still_goes(
    fresh: Desk, status: int, expected: str
) -> None:
    """A webhook answering 5xx, a redirect or 4xx is a failed side effect in the dead letter;
    the e-mail is sent and recorded, so the action is not mailed again."""
    fresh.webhook_status = status
    runner = fresh.runner()
    handled = runner.handle(action(), "t/0/1")
    assert handled.outcomes == ("webhook_failed", "mail_done") and handled.applied
    assert handled.dead_letter is not None and expected in handled.dead_letter.reason
    assert len(fresh.posts) == 3 and len(fresh.mailbox.mails) == 1
    assert runner.handle(action(), "t/0/2").outcomes == ("duplicate",)


def test_a_refused_recipient_and_an_unreachable_server_are_dead_lettered(fresh: Desk) -> None:
    """An SMTP 550 and a closed SMTP port each end in a dead letter naming the SMTP error."""
    fresh.mailbox.refuse = True
    refused = fresh.runner(notify_webhook_url=None).handle(action(), "t/0/1")
    assert refused.outcomes == ("mail_failed",) and not refused.applied
    assert refused.dead_letter is not None
    assert "SMTPRecipientsRefused" in refused.dead_letter.reason
    closed = fresh.runner(notify_webhook_url=None, smtp_port=free_port()).handle(action(), "t/0/2")
    assert closed.dead_letter is not None
    assert "notify e-mail failed after 3 attempts: ConnectionRefusedError" in (
        closed.dead_letter.reason
    )


def test_a_bad_sender_setting_fails_the_mail_not_the_loop(fresh: Desk) -> None:
    """A From setting the mail library refuses is a failed e-mail with its reason, not a crash."""
    handled = fresh.runner(notify_webhook_url=None, smtp_from="a@b\nc").handle(action(), "t/0/1")
    assert handled.outcomes == ("mail_failed",)
    assert handled.dead_letter is not None and "mail raised ValueError" in (
        handled.dead_letter.reason
    )


def test_settled_on_purpose_needs_no_dead_letter(fresh: Desk) -> None:
    """No candidate, a WhatsApp conversation, reassign disabled: counted, never dead letters."""
    runner = fresh.runner()
    outcomes = [
        runner.handle(action(action="reassign", conversation_id="cw:7:44", to_agent=None), "t/0/1"),
        runner.handle(action(action="reassign", conversation_id="wa:1:p", to_agent="12"), "t/0/2"),
        fresh.runner(act_reassign=False).handle(action(action="reassign"), "t/0/3"),
    ]
    assert [h.outcomes for h in outcomes] == [
        ("reassign_no_candidate",),
        ("reassign_not_chatwoot",),
        ("reassign_disabled",),
    ]
    assert all(h.dead_letter is None for h in outcomes)
    assert fresh.chatwoot.assignments == []


def test_a_dead_letter_keeps_the_record_redacted(fresh: Desk) -> None:
    """The dead letter's `raw` is the message with content fields redacted (SPEC §6)."""
    raw = action(cycle="1", text="Rahasia pelanggan")
    handled = fresh.runner().handle(raw, "t/0/1")
    assert handled.dead_letter is not None
    assert "Rahasia" not in handled.dead_letter.raw
    assert '"cycle":"1"' in handled.dead_letter.raw
