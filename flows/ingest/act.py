"""Actions that act (`slawatch act`): reassign, notify, and service recoveries (`recover`).

`act` consumes the monitor's action records (`sla.actions`, its own consumer group) and, per
configuration:

* `reassign` → `POST /api/v1/accounts/{account}/conversations/{id}/assignments` with the
  Chatwoot user id mapped from the slawatch agent id (`agent_map`; numeric ids map to
  themselves). Only `cw:{account}:{display_id}` conversations can be reassigned.
* `notify` → a JSON POST to `notify_webhook_url` (with an `Idempotency-Key` header) and/or an
  e-mail to the address of whom the action names (`notify_addresses`, or the value itself when
  it is an address).
* `recover` → the delivery `RECOVERIES[send]` names (`flows.ingest.recovery`): a WhatsApp
  template to the customer (`POST {graph}/{phone_number_id}/messages`), a message in the
  Chatwoot conversation, or a JSON POST to the team's webhook. A recovery is executed at most
  once: the ledger records `pending` before its request and `done` after, so a crash in between
  leaves it pending and it is dead-lettered as uncertain instead of sent again.

Every message is checked first (`flows.ingest.action_check`: a known action, well-typed fields,
ids within SPEC §1 bounds). Each message then ends in exactly one way, and its offset is
committed after it: carried out (at least one side effect done, recorded in the ledger),
settled on purpose without a side effect (`SETTLED`: counted and logged, e.g. no candidate to
reassign to), or dead-lettered to `deadletter_topic` with a reason naming the field or the
failure — a malformed or unsupported record, a target `act` cannot reach (an unmapped agent, no
address), or a side effect that failed after its retries or raised. A side effect that failed
beside one that was done gives both a ledger entry and a dead letter. One bad record never
stops the loop, and is never read again by the same group.

Idempotence: an action's identity is `action|trigger|conversation|cycle|metric|seq` (and
`|rule` for a recovery). A ledger
file records each applied identity (flushed and fsynced) before the Kafka offset is committed,
so a redelivered or replayed action is skipped. A crash between carrying out an action and
writing the ledger can repeat that one action once (at-least-once at that instant); the
webhook's `Idempotency-Key` lets the receiver drop it. A crash between producing a dead letter
and the commit can repeat that dead letter. Every outcome is counted and logged.

Nothing from a record goes unescaped into a header or a URL path (`header_token`,
`header_text`, `single_address`, `chatwoot_target`).
"""

from __future__ import annotations

import logging
import os
import smtplib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import httpx
import orjson

from flows.core.records import DeadLetter, dead_letter, to_json_dict
from flows.ingest.action_check import (
    Order,
    Refused,
    chatwoot_target,
    check_action,
    header_text,
    header_token,
    is_user_id,
    show,
    single_address,
)
from flows.ingest.recovery import (
    ChatwootMessage,
    Delivery,
    Recipient,
    RecoveryWebhook,
    WhatsAppTemplate,
    phone_digits,
    template_body,
    wa_recipient,
)
from flows.ingest.settings import IngestSettings

if TYPE_CHECKING:
    from confluent_kafka import Producer

log = logging.getLogger("slawatch.act")

_T = TypeVar("_T")

#: Attempts per side effect before it counts as failed.
ATTEMPTS: Final = 3

#: Outcomes that settle a record on purpose, without a side effect and without a dead letter.
SETTLED: Final = frozenset(
    {
        "duplicate",
        "reassign_disabled",
        "reassign_not_chatwoot",
        "reassign_no_candidate",
        "reassign_no_api",
        "reassign_dry_run",
        "webhook_dry_run",
        "mail_dry_run",
        "notify_not_configured",
        "recover_dry_run",
        "recover_withdrawn",
        "recover_withdrawn_after_execution",
    }
)

#: Outcomes settled without a dead letter that an operator should still see in the log.
_NOTEWORTHY: Final = frozenset({"recover_withdrawn_after_execution"})

#: HTTP answers after which a recovery's request is tried again: the server did not act on it.
_RETRY_STATUSES: Final = frozenset({408, 425, 429, 500, 502, 503, 504})

#: The longest failure text a dead letter's reason quotes (an HTTP body, an exception).
_MAX_PROBLEM: Final = 300


@dataclass(frozen=True, slots=True)
class Effect:
    """What became of one side effect of an action (or of the whole record).

    Attributes:
        outcome: The counted label, e.g. `reassign_done`, `mail_failed`, `invalid`.
        problem: Why it could not be carried out (the dead letter's reason), or None.
    """

    outcome: str
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Handled:
    """What `ActionRunner.handle` did with one message.

    Attributes:
        outcomes: The counted labels, e.g. `("webhook_done", "mail_failed")`.
        dead_letter: The dead letter to produce before the offset is committed, or None.
        applied: Whether the action went into the ledger (at least one side effect done).
    """

    outcomes: tuple[str, ...]
    dead_letter: DeadLetter | None
    applied: bool = False


class Ledger:
    """The actions already applied: an append-only JSONL file, loaded at start.

    One line per applied action: `{"key": <identity>, "outcome": "<labels>"}`. Recoveries
    (which must never be executed twice) add lines with a `state`: `pending` is written
    (fsynced) just before a delivery's first request, `undelivered` after a delivery that
    certainly did not happen, `withdrawn` for a recovery withdrawn before it was executed. The
    last line of a key wins; a key left `pending` by a crash is neither applied nor free. The
    file is never rewritten or trimmed; keep it with the consumer group, since a new ledger with
    an old group (or the reverse) may repeat or skip actions.

    Args:
        path: the ledger file; created (with its folder) at the first write.

    Raises:
        orjson.JSONDecodeError: a line of an existing ledger is not JSON.
        KeyError: a line has no `key`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.applied: set[str] = set()
        self.pending: set[str] = set()
        self.withdrawn: set[str] = set()
        if path.exists():
            for line in path.read_bytes().splitlines():
                if line.strip():
                    entry = orjson.loads(line)
                    self._note(entry["key"], entry.get("state"))

    def __contains__(self, key: str) -> bool:
        """Whether the action with this identity (`Order.key`) was applied already."""
        return key in self.applied

    def add(self, key: str, outcome: str) -> None:
        """Record an applied action durably (flush and fsync) before its offset is committed."""
        self._write({"key": key, "outcome": outcome})

    def begin(self, key: str) -> None:
        """Record durably that a recovery's delivery starts: after a crash it is not repeated."""
        self._write({"key": key, "state": "pending"})

    def undelivered(self, key: str) -> None:
        """Record that a started delivery certainly did not happen (a later replay may retry)."""
        self._write({"key": key, "state": "undelivered"})

    def withdraw(self, key: str) -> None:
        """Record that a recovery not executed was withdrawn: it is never executed afterwards."""
        self._write({"key": key, "state": "withdrawn"})

    def _write(self, entry: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            handle.write(orjson.dumps(entry) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        self._note(entry["key"], entry.get("state"))

    def _note(self, key: str, state: str | None) -> None:
        """Apply one line: the key's latest state replaces what earlier lines said.

        Applied is final: no later line makes an executed action free again.
        """
        if key in self.applied:
            return
        for held in (self.pending, self.withdrawn):
            held.discard(key)
        if state is None:
            self.applied.add(key)
        elif state == "pending":
            self.pending.add(key)
        elif state == "withdrawn":
            self.withdrawn.add(key)


@dataclass
class ActionRunner:
    """Carries out one action message at a time; `outcomes` counts what happened.

    Attributes:
        settings: where Chatwoot, the webhook and the SMTP server are, and the id maps.
        ledger: the applied actions.
        dry_run: log and count what would be done, change nothing (the ledger included).
        chatwoot: an httpx client for Chatwoot's API (base URL and token set).
        webhook: an httpx client for the notify webhook and recovery webhooks.
        whatsapp: an httpx client for the WhatsApp Cloud API (base URL with its version and
            the bearer token set), or None when no access token is configured.
        send_mail: sends one e-mail (smtplib by default).
        outcomes: every outcome label counted so far, `dead_letter` included.
        sleep: waits between attempts (`time.sleep`; tests pass a no-op).
    """

    settings: IngestSettings
    ledger: Ledger
    dry_run: bool = False
    chatwoot: httpx.Client | None = None
    webhook: httpx.Client | None = None
    whatsapp: httpx.Client | None = None
    send_mail: Callable[[EmailMessage], None] | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    sleep: Callable[[float], None] = time.sleep

    def handle(self, raw: bytes | None, source: str) -> Handled:
        """Check and carry out one message of the actions topic; never raises for its content.

        A message that fails the checks is not carried out (`invalid`). A record already in the
        ledger is skipped (`duplicate`); a `recover` is executed at most once (`_recover`). A
        record is
        added to the ledger once at least one of its side effects is done (`*_done`), so a
        `notify` whose webhook succeeded and whose e-mail failed is not sent again. Every
        problem (a refusal, an unreachable target, a side effect failed after `ATTEMPTS`
        attempts or raising) goes into one dead letter, its reasons joined by `; `.

        Args:
            raw: the message value (None: no value).
            source: where it came from, `topic/partition/offset`.

        Returns:
            The outcome labels and the dead letter, if any.

        Raises:
            OSError: the ledger could not be written; going on would repeat the action after
                a restart, so this stops `act`.
        """
        checked = check_action(raw)
        if isinstance(checked, Refused):
            return self._settle([Effect("invalid", checked.reason)], raw, source, None)
        if checked.action == "recover":
            effect = self._recover(checked)
            applied = effect.outcome == "recover_done"
            return self._settle([effect], raw, source, checked, applied=applied)
        if checked.key in self.ledger:
            return self._settle([Effect("duplicate")], raw, source, checked)
        if checked.action == "reassign":
            effects = [self._guarded("reassign", lambda: self._reassign(checked))]
        else:
            effects = self._notify(checked)
        applied = any(e.outcome.endswith("_done") for e in effects) and not self.dry_run
        if applied:
            self.ledger.add(checked.key, ",".join(e.outcome for e in effects))
        return self._settle(effects, raw, source, checked, applied=applied)

    def _settle(
        self,
        effects: list[Effect],
        raw: bytes | None,
        source: str,
        order: Order | None,
        *,
        applied: bool = False,
    ) -> Handled:
        """Count and log each effect; return them with the dead letter of their problems."""
        what = "message" if order is None else f"{order.action} {order.trigger}"
        on = "?" if order is None else show(order.conversation_id)
        for effect in effects:
            self.outcomes[effect.outcome] += 1
            level = logging.WARNING if effect.outcome in _NOTEWORTHY else logging.INFO
            log.log(level, "%s: %s on %s from %s", effect.outcome, what, on, source)
        problems = [e.problem for e in effects if e.problem is not None]
        if not problems:
            return Handled(tuple(e.outcome for e in effects), None, applied)
        reason = "; ".join(problems)
        self.outcomes["dead_letter"] += 1
        log.warning("dead letter from %s: %s", source, reason)
        letter = dead_letter(reason, raw, source)
        return Handled(tuple(e.outcome for e in effects), letter, applied)

    def _guarded(self, side: str, carry_out: Callable[[], _T]) -> _T | Effect:
        """Run one side effect; an exception it lets through becomes `<side>_failed`."""
        try:
            return carry_out()
        except Exception as exc:  # noqa: BLE001 - one record must never stop the loop
            log.exception("%s raised", side)
            return Effect(f"{side}_failed", f"{side} raised {_describe(exc)}")

    def _retry(self, attempt: Callable[[], None]) -> str | None:
        """Run `attempt` up to `ATTEMPTS` times, backing off 0.2, 0.4, 0.8 s after failures.

        Only network, HTTP-status and SMTP errors are retried; any other exception ends the
        side effect at once (the record, not the network, is at fault).

        Returns:
            None as soon as one attempt succeeds; else what went wrong, e.g. `after 3
            attempts: HTTP 503 Service Unavailable: {"error": "try again"}`.
        """
        for number in range(ATTEMPTS):
            try:
                attempt()
            except (httpx.HTTPError, OSError, smtplib.SMTPException) as exc:
                log.warning("attempt %d of %d failed: %s", number + 1, ATTEMPTS, _describe(exc))
                last = exc
                self.sleep(0.2 * 2**number)
            except Exception as exc:  # noqa: BLE001 - e.g. a value no header or body takes
                return f"after 1 attempt: {_describe(exc)}"
            else:
                return None
        return f"after {ATTEMPTS} attempts: {_describe(last)}"

    def _reassign(self, order: Order) -> Effect:
        """Assign a Chatwoot conversation to the action's `to_agent`.

        Returns:
            `reassign_done`; `reassign_failed`, `reassign_bad_conversation` (a `cw:` id of
            another shape) or `reassign_unmapped_agent` with a problem; or why nothing was
            tried: disabled, not a Chatwoot conversation, no candidate agent, dry run, or no
            API client.
        """
        if not self.settings.act_reassign:
            return Effect("reassign_disabled")
        target = chatwoot_target(order.conversation_id)
        if target is None:
            if not order.conversation_id.startswith("cw:"):
                return Effect("reassign_not_chatwoot")
            problem = (
                f"field 'conversation_id': {show(order.conversation_id)} is not a Chatwoot "
                "conversation cw:<account>:<display id> (decimal numbers)"
            )
            return Effect("reassign_bad_conversation", problem)
        to_agent = order.to_agent
        if to_agent is None:
            return Effect("reassign_no_candidate")
        mapped = self.settings.agent_map.get(to_agent)
        user = mapped if mapped is not None else to_agent
        if not is_user_id(user):
            problem = (
                f"field 'to_agent': {show(to_agent)} has no Chatwoot user id "
                "(AGENT_MAP maps it to none, or to a value that is not a number)"
            )
            return Effect("reassign_unmapped_agent", problem)
        if self.dry_run:
            return Effect("reassign_dry_run")
        client = self.chatwoot
        if client is None:
            return Effect("reassign_no_api")
        account, display_id = target
        path = f"/api/v1/accounts/{account}/conversations/{display_id}/assignments"

        def attempt() -> None:
            client.post(path, json={"assignee_id": int(user)}).raise_for_status()

        failure = self._retry(attempt)
        if failure is None:
            return Effect("reassign_done")
        return Effect("reassign_failed", f"reassign in Chatwoot failed {failure}")

    def _notify(self, order: Order) -> list[Effect]:
        """Send the notification through every configured channel: webhook, then e-mail.

        Returns:
            One effect per channel tried, or `[notify_not_configured]`.
        """
        effects: list[Effect] = []
        if self.settings.notify_webhook_url is not None:
            effects.append(self._guarded("webhook", lambda: self._notify_webhook(order)))
        if self.settings.smtp_host is not None or self.send_mail is not None:
            effects.append(self._guarded("mail", lambda: self._notify_mail(order)))
        return effects or [Effect("notify_not_configured")]

    def _notify_webhook(self, order: Order) -> Effect:
        """POST the action record as JSON, with its identity as `Idempotency-Key`.

        The key is `header_token(identity)`: unchanged for plain ASCII ids, `%XX`-escaped
        otherwise.

        Returns:
            `webhook_done` (a 2xx answer), `webhook_failed` (with the problem) or
            `webhook_dry_run`.
        """
        if self.dry_run:
            return Effect("webhook_dry_run")
        client = self.webhook or httpx.Client(timeout=10)
        url = str(self.settings.notify_webhook_url)
        headers = {"Idempotency-Key": header_token(order.key)}

        def attempt() -> None:
            client.post(url, json=order.record, headers=headers).raise_for_status()

        problem = self._retry(attempt)
        if problem is None:
            return Effect("webhook_done")
        return Effect("webhook_failed", f"notify webhook failed {problem}")

    def _address(self, order: Order) -> str | Effect:
        """Return the e-mail address of whom `order` names, or the effect saying why none."""
        who = order.notify
        if who is None:
            return Effect("mail_no_address", "field 'notify' is null: nobody to e-mail")
        configured = self.settings.notify_addresses.get(who)
        candidate = configured if configured is not None else (who if "@" in who else None)
        if candidate is None:
            problem = f"field 'notify': {show(who)} has no e-mail address in NOTIFY_ADDRESSES"
            return Effect("mail_no_address", problem)
        address = single_address(candidate)
        if address is None:
            where = f"NOTIFY_ADDRESSES[{show(who)}]" if configured is not None else "it"
            problem = f"field 'notify': {show(who)} is not one e-mail address ({where})"
            return Effect("mail_bad_address", problem)
        return address

    def _notify_mail(self, order: Order) -> Effect:
        """E-mail the action's reason, conversation, cycle, instant and agent.

        The subject names the metric, trigger and conversation (`header_text`); header
        `X-Slawatch-Action` carries the identity (`header_token`).

        Returns:
            `mail_done`, `mail_dry_run`, or with a problem `mail_failed`, `mail_no_address`,
            `mail_bad_address`.
        """
        address = self._address(order)
        if isinstance(address, Effect):
            return address
        if self.dry_run:
            return Effect("mail_dry_run")
        message = EmailMessage()
        message["From"] = self.settings.smtp_from
        message["To"] = address
        message["Subject"] = header_text(
            f"[slawatch] {order.metric} {order.trigger} on {order.conversation_id}"
        )
        message["X-Slawatch-Action"] = header_token(order.key)
        message.set_content(
            f"{order.reason}\n\nconversation: {order.conversation_id}\n"
            f"cycle {order.cycle}, at {order.at}, agent {order.from_agent}\n"
        )
        send = self.send_mail or self._smtp_send
        problem = self._retry(lambda: send(message))
        if problem is None:
            return Effect("mail_done")
        return Effect("mail_failed", f"notify e-mail failed {problem}")

    def _smtp_send(self, message: EmailMessage) -> None:
        """Send one message through `smtp_host:smtp_port` (no login, no TLS, 10 s timeout)."""
        with smtplib.SMTP(
            str(self.settings.smtp_host), self.settings.smtp_port, timeout=10
        ) as smtp:
            smtp.send_message(message)

    # -- service recovery (SPEC §4) -----------------------------------------------------------

    def _recover(self, order: Order) -> Effect:
        """Execute a recovery at most once, across restarts, redeliveries, replays and corrections.

        The identity is `Order.key`: conversation, cycle, metric, seq and rule.

        A withdrawn record executes nothing: it is recorded (so the recovery is never executed
        afterwards) or, when the recovery was executed already, counted and logged as
        `recover_withdrawn_after_execution`. A recovery whose delivery was under way when `act`
        stopped (`pending` in the ledger) may have reached the customer: it is not repeated but
        dead-lettered (`recover_uncertain`).

        Returns:
            `recover_done`; settled `duplicate`, `recover_withdrawn`,
            `recover_withdrawn_after_execution` or `recover_dry_run`; or, with a problem,
            `recover_unknown_send`, `recover_uncertain`, `recover_no_recipient`,
            `recover_not_chatwoot`, `recover_no_api`, `recover_failed`.

        Raises:
            OSError: the ledger could not be written (this stops `act`).
        """
        key = order.key
        what = f"recovery {show(str(order.send))} (rule {show(str(order.rule))})"
        if order.withdrawn:
            if key in self.ledger or key in self.ledger.pending:
                return Effect("recover_withdrawn_after_execution")
            if not self.dry_run and key not in self.ledger.withdrawn:
                self.ledger.withdraw(key)
            return Effect("recover_withdrawn")
        if key in self.ledger:
            return Effect("duplicate")
        if key in self.ledger.withdrawn:
            return Effect("recover_withdrawn")
        if key in self.ledger.pending:
            problem = (
                f"{what} may have been delivered: act stopped while delivering it, and a "
                "recovery is never executed twice, so it is not repeated (check the receiver)"
            )
            return Effect("recover_uncertain", problem)
        delivery = self.settings.recoveries.get(str(order.send))
        if delivery is None:
            known = ", ".join(show(name) for name in sorted(self.settings.recoveries)) or "none"
            problem = (
                f"field 'send': {show(str(order.send))} has no delivery in "
                f"SLAWATCH_INGEST_RECOVERIES (configured: {known})"
            )
            return Effect("recover_unknown_send", problem)
        prepared = self._guarded("recover", lambda: self._prepare(order, delivery))
        if isinstance(prepared, Effect):
            return prepared
        if self.dry_run:
            return Effect("recover_dry_run")
        self.ledger.begin(key)
        failure, certain = self._deliver(prepared)
        if failure is None:
            self.ledger.add(key, "recover_done")
            return Effect("recover_done")
        if certain:
            self.ledger.undelivered(key)
            return Effect("recover_failed", f"{what} via {delivery.via} failed {failure}")
        problem = (
            f"{what} via {delivery.via} failed {failure}; it may have been delivered, so it "
            "is not repeated"
        )
        return Effect("recover_failed", problem)

    def _prepare(self, order: Order, delivery: Delivery) -> _Request | Effect:
        """Return the one request that delivers `order`, or the effect saying why there is none.

        A WhatsApp template to a Chatwoot conversation reads the customer's phone number from
        Chatwoot first (`GET …/conversations/{id}`, `meta.sender.phone_number`): a lookup, not a
        side effect, so it is retried like any read.
        """
        if isinstance(delivery, RecoveryWebhook):
            if self.webhook is None:
                return Effect("recover_no_api", "no HTTP client for recovery webhooks")
            headers = {"Idempotency-Key": header_token(order.key)}
            token = self.settings.recovery_tokens.get(str(order.send))
            if token is not None:
                headers["Authorization"] = f"Bearer {token.get_secret_value()}"
            return _Request(self.webhook, delivery.url, order.record, headers)
        if isinstance(delivery, ChatwootMessage):
            target = chatwoot_target(order.conversation_id)
            if target is None:
                problem = (
                    f"conversation {show(order.conversation_id)} is not a Chatwoot conversation "
                    "cw:<account>:<display id>: a chatwoot_message cannot reach it"
                )
                return Effect("recover_not_chatwoot", problem)
            if self.chatwoot is None:
                return Effect("recover_no_api", "no Chatwoot API client (CHATWOOT_URL)")
            account, display_id = target
            path = f"/api/v1/accounts/{account}/conversations/{display_id}/messages"
            body = {"content": delivery.content, "message_type": "outgoing"}
            return _Request(self.chatwoot, path, {**body, "private": delivery.private}, {})
        recipient = self._recipient(order, delivery)
        if isinstance(recipient, Effect):
            return recipient
        if self.whatsapp is None:
            problem = (
                "SLAWATCH_INGEST_WHATSAPP_ACCESS_TOKEN is unset: no WhatsApp template can be sent"
            )
            return Effect("recover_no_api", problem)
        path = f"/{recipient.phone_number_id}/messages"
        return _Request(self.whatsapp, path, template_body(delivery, recipient), {})

    def _recipient(self, order: Order, delivery: WhatsAppTemplate) -> Recipient | Effect:
        """Return whom the template goes to: from a `wa:` id, or the Chatwoot contact's phone."""
        found = wa_recipient(order.conversation_id)
        if isinstance(found, Recipient):
            return found
        if isinstance(found, str):
            return Effect("recover_no_recipient", found)
        target = chatwoot_target(order.conversation_id)
        if target is None:
            problem = (
                f"conversation {show(order.conversation_id)} is neither wa: nor a Chatwoot "
                "conversation: the customer's phone number cannot be known"
            )
            return Effect("recover_no_recipient", problem)
        if delivery.phone_number_id is None:
            problem = (
                f"send {show(str(order.send))} has no phone_number_id to send from to Chatwoot "
                "conversations (set it in SLAWATCH_INGEST_RECOVERIES)"
            )
            return Effect("recover_no_recipient", problem)
        client = self.chatwoot
        if client is None:
            return Effect("recover_no_api", "no Chatwoot API client to read the contact from")
        account, display_id = target
        answers: list[httpx.Response] = []

        def attempt() -> None:
            answer = client.get(f"/api/v1/accounts/{account}/conversations/{display_id}")
            answers.append(answer.raise_for_status())

        failure = self._retry(attempt)
        if failure is not None:
            problem = f"reading the contact of {show(order.conversation_id)} from Chatwoot failed"
            return Effect("recover_no_recipient", f"{problem} {failure}")
        phone = _contact_phone(answers[-1])
        if phone is None:
            problem = (
                f"Chatwoot conversation {show(order.conversation_id)} has no contact with a "
                "phone number (meta.sender.phone_number)"
            )
            return Effect("recover_no_recipient", problem)
        return Recipient(delivery.phone_number_id, "to", phone)

    def _deliver(self, request: _Request) -> tuple[str | None, bool]:
        """POST `request` up to `ATTEMPTS` times, but only while it certainly did not arrive.

        Tried again: a connection that failed before the request was sent, and answers saying
        the server did not act (408, 425, 429, 5xx). Any other answer ends it at once, and so
        does an error after the request may have been received (a read timeout, a dropped
        connection): then the delivery is uncertain, and a recovery is never sent twice.

        Returns:
            `(None, True)` once a 2xx answer came; else what went wrong, and whether the
            request certainly did not take effect.
        """
        for number in range(ATTEMPTS):
            try:
                request.client.post(
                    request.url, json=request.body, headers=request.headers
                ).raise_for_status()
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code not in _RETRY_STATUSES:
                    return f"after {_attempts(number + 1)}: {_describe(exc)}", True
                last: Exception = exc
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                last = exc
            except httpx.HTTPError as exc:
                return f"after {_attempts(number + 1)}: {_describe(exc)}", False
            except Exception as exc:  # noqa: BLE001 - e.g. a body that is not JSON: never sent
                return f"after 1 attempt: {_describe(exc)}", True
            else:
                return None, True
            log.warning("attempt %d of %d failed: %s", number + 1, ATTEMPTS, _describe(last))
            self.sleep(0.2 * 2**number)
        return f"after {ATTEMPTS} attempts: {_describe(last)}", True


@dataclass(frozen=True, slots=True)
class _Request:
    """One POST that delivers a recovery: client, URL (or path), JSON body, headers."""

    client: httpx.Client
    url: str
    body: dict[str, Any]
    headers: dict[str, str]


def _attempts(count: int) -> str:
    """Return `1 attempt`, `2 attempts`…: how a reason counts them."""
    return "1 attempt" if count == 1 else f"{count} attempts"


def _contact_phone(answer: httpx.Response) -> str | None:
    """Return the phone number of a Chatwoot conversation's contact, or None."""
    try:
        conversation = answer.json()
    except ValueError:
        return None
    meta = conversation.get("meta") if isinstance(conversation, dict) else None
    sender = meta.get("sender") if isinstance(meta, dict) else None
    return phone_digits(sender.get("phone_number")) if isinstance(sender, dict) else None


def _describe(exc: BaseException) -> str:
    """Return a one-line account of a failure: an HTTP answer's status and body, else the error.

    Cut to 300 characters, non-printable characters escaped, so a reason stays one line.
    """
    if isinstance(exc, httpx.HTTPStatusError):
        answer = exc.response
        text = f"HTTP {answer.status_code} {answer.reason_phrase}"
        body = answer.text.strip()
        if body:
            text = f"{text}: {body}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = header_text(text)
    return text if len(text) <= _MAX_PROBLEM else text[: _MAX_PROBLEM - 3] + "..."


def run(
    runner: ActionRunner,
    settings: IngestSettings,
    *,
    exit_when_idle_s: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Counter[str]:
    """Consume `settings.actions_topic` in group `settings.act_group` and carry out each action.

    Each message is handled (`ActionRunner.handle`), its dead letter (if any) produced to
    `settings.deadletter_topic` and acknowledged by Kafka, and only then its offset committed:
    a message is never read twice by the group, and never lost without a trace. Under
    `--dry-run` dead letters are logged, not produced.

    The group starts at the topic's earliest offset the first time, so a new group carries
    out every action still on the topic unless the ledger already holds it. Kafka errors that
    carry no message (a broker down) are logged and the loop goes on.

    Args:
        runner: what carries the actions out.
        settings: Kafka address, topics and group.
        exit_when_idle_s: stop after this long without a message (None: run until stopped).
        should_stop: polled between messages (and while a dead letter waits for Kafka);
            True stops the loop.

    Returns:
        The outcome counts.
    """
    from confluent_kafka import Consumer, KafkaException, Producer  # noqa: PLC0415

    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": settings.act_group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **settings.kafka_config,
        }
    )
    producer = Producer(settings.producer_config())
    assigned: list[bool] = []
    # The idle clock starts once the group has given this consumer its partitions: joining a
    # group takes seconds on a busy broker, and idleness before that means nothing.
    consumer.subscribe(
        [settings.actions_topic], on_assign=lambda _consumer, _parts: assigned.append(True)
    )
    idle_since = time.monotonic()
    try:
        while not should_stop():
            message = consumer.poll(0.2)
            if message is None:
                if not assigned:
                    idle_since = time.monotonic()
                elif (
                    exit_when_idle_s is not None
                    and time.monotonic() - idle_since > exit_when_idle_s
                ):
                    break
                continue
            idle_since = time.monotonic()
            if message.error() is not None:
                log.warning("Kafka error on %s: %s", settings.actions_topic, message.error())
                continue
            source = f"{message.topic()}/{message.partition()}/{message.offset()}"
            handled = runner.handle(message.value(), source)
            letter = handled.dead_letter
            if letter is not None and not runner.dry_run:
                if not _produce_dead_letter(
                    producer, settings.deadletter_topic, letter, should_stop
                ):
                    break  # not committed: handled again at the next start
            try:
                consumer.commit(message=message, asynchronous=False)
            except KafkaException as exc:
                # A rebalance can take the partition away between poll and commit; the next
                # owner reads the message again, and the ledger makes that a duplicate.
                log.warning("commit of %s failed: %s", source, exc)
    finally:
        consumer.close()
        producer.flush(10)
    return runner.outcomes


def _produce_dead_letter(
    producer: Producer, topic: str, letter: DeadLetter, should_stop: Callable[[], bool]
) -> bool:
    """Produce one dead letter and wait for Kafka's acknowledgement, retrying until it is taken.

    Returns:
        True once Kafka took it; False when `should_stop` said stop first.
    """
    from confluent_kafka import KafkaException  # noqa: PLC0415

    value = orjson.dumps(to_json_dict(letter, int(time.time() * 1000)))
    result: list[object] = []
    while True:
        result.clear()
        try:
            producer.produce(
                topic,
                value=value,
                key=letter.source.encode(),
                on_delivery=lambda err, _msg: result.append(err),
            )
        except (BufferError, KafkaException) as exc:
            result.append(exc)
        while not result:
            producer.poll(0.5)
            if not result and should_stop():
                return False
        if result[0] is None:
            return True
        log.error("Kafka refused the dead letter of %s: %s; retrying", letter.source, result[0])
        time.sleep(1)
        if should_stop():
            return False
