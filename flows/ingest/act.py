"""Escalations that act (`slawatch act`): `reassign` in Chatwoot, `notify` by webhook or e-mail.

`act` consumes the monitor's action records (`sla.actions`, its own consumer group) and, per
configuration:

* `reassign` → `POST /api/v1/accounts/{account}/conversations/{id}/assignments` with the
  Chatwoot user id mapped from the slawatch agent id (`agent_map`; numeric ids map to
  themselves). Only `cw:{account}:{display_id}` conversations can be reassigned.
* `notify` → a JSON POST to `notify_webhook_url` (with an `Idempotency-Key` header) and/or an
  e-mail to the address of whom the action names (`notify_addresses`, or the value itself when
  it is an address).

Idempotence: an action's identity is `action|trigger|conversation|cycle|metric|seq`. A ledger
file records each applied identity (flushed and fsynced) before the Kafka offset is committed,
so a redelivered or replayed action is skipped. A crash between carrying out an action and
writing the ledger can repeat that one action once (at-least-once at that instant); the
webhook's `Idempotency-Key` lets the receiver drop it. Every outcome is counted and logged.
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
from typing import Any, Final

import httpx
import orjson

from flows.ingest.settings import IngestSettings

log = logging.getLogger("slawatch.act")

#: Attempts per side effect before it counts as failed.
ATTEMPTS: Final = 3


def action_key(record: dict[str, Any]) -> str:
    """Return the identity of an action record (the same for every redelivery of it).

    Args:
        record: an action record as JSON (SPEC §6); missing fields read as `None`.

    Returns:
        `action|trigger|conversation_id|cycle|metric|seq`, e.g.
        `notify|breach|cw:7:42|1|first_response|1`.
    """
    parts = ("action", "trigger", "conversation_id", "cycle", "metric", "seq")
    return "|".join(str(record.get(part)) for part in parts)


class Ledger:
    """The actions already applied: an append-only JSONL file, loaded at start.

    One line per applied action: `{"key": <action_key>, "outcome": "<labels>"}`. The file is
    never rewritten or trimmed; keep it with the consumer group, since a new ledger with an
    old group (or the reverse) may repeat or skip actions.

    Args:
        path: the ledger file; created (with its folder) at the first `add`.

    Raises:
        orjson.JSONDecodeError: a line of an existing ledger is not JSON.
        KeyError: a line has no `key`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.applied: set[str] = set()
        if path.exists():
            for line in path.read_bytes().splitlines():
                if line.strip():
                    self.applied.add(orjson.loads(line)["key"])

    def __contains__(self, key: str) -> bool:
        """Whether the action with this `action_key` was applied already."""
        return key in self.applied

    def add(self, key: str, outcome: str) -> None:
        """Record an applied action durably (flush and fsync) before its offset is committed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            handle.write(orjson.dumps({"key": key, "outcome": outcome}) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.applied.add(key)


@dataclass
class ActionRunner:
    """Carries out one action record at a time; `outcomes` counts what happened.

    Attributes:
        settings: where Chatwoot, the webhook and the SMTP server are, and the id maps.
        ledger: the applied actions.
        dry_run: log and count what would be done, change nothing (the ledger included).
        chatwoot: an httpx client for Chatwoot's API (base URL and token set).
        webhook: an httpx client for the notify webhook.
        send_mail: sends one e-mail (smtplib by default).
    """

    settings: IngestSettings
    ledger: Ledger
    dry_run: bool = False
    chatwoot: httpx.Client | None = None
    webhook: httpx.Client | None = None
    send_mail: Callable[[EmailMessage], None] | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    sleep: Callable[[float], None] = time.sleep

    def handle(self, record: dict[str, Any]) -> list[str]:
        """Carry out one record (action records only); return the outcome labels it got.

        A record already in the ledger is skipped (`duplicate`). A record is added to the
        ledger once at least one of its side effects is done (`*_done`), so a `notify` whose
        webhook succeeded and whose e-mail failed is not sent again. An action whose every
        side effect failed (`*_failed`) is counted and logged but not retried later.

        Args:
            record: one decoded message of the actions topic.

        Returns:
            The outcome labels, e.g. `["reassign_done"]`, `["webhook_done", "mail_failed"]`,
            `["duplicate"]`, `["not_an_action"]`.
        """
        if record.get("type") != "action":
            return self._count(["not_an_action"], record)
        key = action_key(record)
        if key in self.ledger:
            return self._count(["duplicate"], record)
        if record.get("action") == "reassign":
            outcomes = [self._reassign(record)]
        elif record.get("action") == "notify":
            outcomes = self._notify(record)
        else:
            outcomes = ["unknown_action"]
        applied = [o for o in outcomes if o.endswith("_done")]
        if applied and not self.dry_run:
            self.ledger.add(key, ",".join(outcomes))
        return self._count(outcomes, record)

    def _count(self, outcomes: list[str], record: dict[str, Any]) -> list[str]:
        """Count and log each outcome of `record`; return `outcomes` unchanged."""
        for outcome in outcomes:
            self.outcomes[outcome] += 1
            log.info(
                "%s %s %s on %s (%s)",
                outcome,
                record.get("action"),
                record.get("trigger"),
                record.get("conversation_id"),
                action_key(record),
            )
        return outcomes

    def _retry(self, attempt: Callable[[], None]) -> bool:
        """Run `attempt` up to `ATTEMPTS` times, backing off 0.2, 0.4, 0.8 s after failures.

        Only network, HTTP-status and SMTP errors are retried; others propagate.

        Returns:
            True as soon as one attempt succeeds; False when all failed.
        """
        for number in range(ATTEMPTS):
            try:
                attempt()
            except (httpx.HTTPError, OSError, smtplib.SMTPException) as exc:
                log.warning("attempt %d of %d failed: %s", number + 1, ATTEMPTS, exc)
                self.sleep(0.2 * 2**number)
            else:
                return True
        return False

    def _reassign(self, record: dict[str, Any]) -> str:
        """Assign a Chatwoot conversation to the action's `to_agent`.

        Returns:
            `reassign_done` or `reassign_failed`, or why nothing was tried: disabled, not a
            Chatwoot conversation, no candidate agent, an agent with no Chatwoot user id,
            dry run, or no API client.
        """
        if not self.settings.act_reassign:
            return "reassign_disabled"
        parts = str(record.get("conversation_id")).split(":")
        if len(parts) != 3 or parts[0] != "cw":
            return "reassign_not_chatwoot"
        to_agent = record.get("to_agent")
        if not to_agent:
            return "reassign_no_candidate"
        user = self.settings.agent_map.get(to_agent) or (to_agent if to_agent.isdigit() else None)
        if user is None or not user.isdigit():
            return "reassign_unmapped_agent"
        if self.dry_run:
            return "reassign_dry_run"
        client = self.chatwoot
        if client is None:
            return "reassign_no_api"
        _, account, display_id = parts
        path = f"/api/v1/accounts/{account}/conversations/{display_id}/assignments"

        def attempt() -> None:
            client.post(path, json={"assignee_id": int(user)}).raise_for_status()

        return "reassign_done" if self._retry(attempt) else "reassign_failed"

    def _notify(self, record: dict[str, Any]) -> list[str]:
        """Send the notification through every configured channel: webhook, then e-mail.

        The e-mail goes to `notify_addresses[notify]`, or to `notify` itself when it is an
        address.

        Returns:
            One outcome per channel tried, or `["notify_not_configured"]`.
        """
        outcomes: list[str] = []
        if self.settings.notify_webhook_url is not None:
            outcomes.append(self._notify_webhook(record))
        who = str(record.get("notify") or "")
        address = self.settings.notify_addresses.get(who) or (who if "@" in who else None)
        if self.settings.smtp_host is not None or self.send_mail is not None:
            outcomes.append(self._notify_mail(record, address))
        return outcomes or ["notify_not_configured"]

    def _notify_webhook(self, record: dict[str, Any]) -> str:
        """POST the action record as JSON, with its `action_key` as `Idempotency-Key`.

        Returns:
            `webhook_done` (a 2xx answer), `webhook_failed` or `webhook_dry_run`.
        """
        if self.dry_run:
            return "webhook_dry_run"
        client = self.webhook or httpx.Client(timeout=10)
        url = str(self.settings.notify_webhook_url)
        headers = {"Idempotency-Key": action_key(record)}

        def attempt() -> None:
            client.post(url, json=record, headers=headers).raise_for_status()

        return "webhook_done" if self._retry(attempt) else "webhook_failed"

    def _notify_mail(self, record: dict[str, Any], address: str | None) -> str:
        """E-mail the action's reason, conversation, cycle, instant and agent to `address`.

        The subject names the metric, trigger and conversation; header `X-Slawatch-Action`
        carries the `action_key`.

        Returns:
            `mail_done`, `mail_failed`, `mail_no_address` or `mail_dry_run`.
        """
        if address is None:
            return "mail_no_address"
        if self.dry_run:
            return "mail_dry_run"
        message = EmailMessage()
        message["From"] = self.settings.smtp_from
        message["To"] = address
        message["Subject"] = (
            f"[slawatch] {record.get('metric')} {record.get('trigger')} on "
            f"{record.get('conversation_id')}"
        )
        message["X-Slawatch-Action"] = action_key(record)
        message.set_content(
            f"{record.get('reason')}\n\nconversation: {record.get('conversation_id')}\n"
            f"cycle {record.get('cycle')}, at {record.get('at')}, "
            f"agent {record.get('from_agent')}\n"
        )
        send = self.send_mail or self._smtp_send
        return "mail_done" if self._retry(lambda: send(message)) else "mail_failed"

    def _smtp_send(self, message: EmailMessage) -> None:
        """Send one message through `smtp_host:smtp_port` (no login, no TLS, 10 s timeout)."""
        with smtplib.SMTP(
            str(self.settings.smtp_host), self.settings.smtp_port, timeout=10
        ) as smtp:
            smtp.send_message(message)


def run(
    runner: ActionRunner,
    settings: IngestSettings,
    *,
    exit_when_idle_s: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Counter[str]:
    """Consume `settings.actions_topic` in group `settings.act_group` and carry out each action.

    Offsets are committed after each action is handled (and recorded in the ledger).

    The group starts at the topic's earliest offset the first time, so a new group carries
    out every action still on the topic unless the ledger already holds it. A message that
    is not a JSON object is handled as an empty record (`not_an_action`) and committed;
    Kafka errors on a message are logged and skipped.

    Args:
        runner: what carries the actions out.
        settings: Kafka address, topic and group.
        exit_when_idle_s: stop after this long without a message (None: run until stopped).
        should_stop: polled between messages; True stops the loop.

    Returns:
        The outcome counts.
    """
    from confluent_kafka import Consumer  # noqa: PLC0415

    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": settings.act_group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **settings.kafka_config,
        }
    )
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
            try:
                record = orjson.loads(message.value() or b"")
            except orjson.JSONDecodeError:
                record = {}
            runner.handle(record if isinstance(record, dict) else {})
            consumer.commit(message=message, asynchronous=False)
    finally:
        consumer.close()
    return runner.outcomes
