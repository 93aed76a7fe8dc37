"""Configuration of the webhook receiver and its helpers, from `SLAWATCH_INGEST_*` variables.

Secrets (webhook signing secrets, Meta's app secret and verify token, the pseudonym key, API
tokens) come from the environment or a `.env` file only, never from options. Dicts are JSON
objects, e.g. `SLAWATCH_INGEST_CHATWOOT_SECRETS='{"7": "s3cret"}'`.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flows.core.decode import MAX_ID_CHARS
from flows.ingest.chatwoot import ChatwootOptions
from flows.ingest.recovery import DEFAULT_GRAPH_URL, Delivery
from flows.ingest.whatsapp import WhatsAppOptions

INGEST_ENV_PREFIX: Final = "SLAWATCH_INGEST_"

VerifyMode = Literal["off", "log", "enforce"]


class IngestSettings(BaseSettings):
    """Settings of `slawatch ingest` (and the mapping choices `ingest map` shares).

    Read from `SLAWATCH_INGEST_<FIELD>` variables, then `.env`; unknown variables are
    ignored and the object is frozen once built. Each field's meaning is its `description`.
    Secrets are `SecretStr`, so they never show in a log or a `repr`. Also read by `slawatch
    reconcile chatwoot` and `slawatch act` (Chatwoot URL and token, the actions topic, the
    agent map, the notify destinations and the recovery deliveries).

    Raises:
        pydantic.ValidationError: a variable does not parse (e.g. a dict that is not a JSON
            object, a port out of range, an unknown verify mode).
    """

    model_config = SettingsConfigDict(
        env_prefix=INGEST_ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    host: str = Field(default="127.0.0.1", description="Address to bind (loopback by default).")
    port: int = Field(default=8787, ge=0, le=65535, description="Port to bind.")
    bootstrap_servers: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers.")
    topic: str = Field(default="wa.events", description="Topic receiving the mapped events.")
    deadletter_topic: str = Field(
        default="sla.deadletter", description="Topic receiving unmappable payloads (redacted)."
    )
    kafka_config: dict[str, str] = Field(
        default_factory=dict, description="Extra librdkafka producer properties (JSON object)."
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest webhook body accepted (413 above)."
    )
    produce_timeout_s: float = Field(
        default=10.0, gt=0, description="How long a request waits for Kafka's acknowledgement."
    )
    verify: dict[str, VerifyMode] = Field(
        default_factory=dict,
        description=(
            "Signature check per endpoint (`whatsapp`, `chatwoot/<account>`, or `chatwoot` for "
            "every account): off, log or enforce."
        ),
    )
    verify_default: VerifyMode = Field(
        default="enforce", description="Signature check of endpoints not listed in `verify`."
    )
    chatwoot_accounts: list[str] = Field(
        default_factory=list,
        description="Chatwoot account ids accepted (empty: any account).",
    )
    chatwoot_secrets: dict[str, SecretStr] = Field(
        default_factory=dict, description="Chatwoot webhook signing secret per account id."
    )
    chatwoot_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Shared URL-path token per account id, for Chatwoot versions that do not sign.",
    )
    replay_window_s: int = Field(
        default=300, ge=1, description="Largest age of a signed Chatwoot timestamp, in seconds."
    )
    whatsapp_app_secret: SecretStr | None = Field(
        default=None, description="Meta app secret: checks `X-Hub-Signature-256`."
    )
    whatsapp_verify_token: SecretStr | None = Field(
        default=None, description="Token Meta's GET verification handshake must present."
    )
    pseudonym_key: SecretStr = Field(
        default=SecretStr(""), description="HMAC key turning customer phone numbers into ids."
    )
    chatwoot_url: str = Field(
        default="http://127.0.0.1:3000", description="Chatwoot base URL (reconcile and act)."
    )
    chatwoot_api_token: SecretStr | None = Field(
        default=None, description="Chatwoot `api_access_token` (reconcile reads, act assigns)."
    )
    actions_topic: str = Field(default="sla.actions", description="Topic `act` consumes.")
    act_group: str = Field(default="slawatch-act", description="Consumer group of `act`.")
    act_ledger: Path = Field(
        default=Path("act-applied.jsonl"),
        description="File of the actions `act` applied (what makes redeliveries harmless).",
    )
    act_reassign: bool = Field(default=True, description="Carry out `reassign` in Chatwoot.")
    agent_map: dict[str, str] = Field(
        default_factory=dict,
        description="slawatch agent id → Chatwoot user id (numeric agent ids map to themselves).",
    )
    notify_webhook_url: str | None = Field(
        default=None, description="URL receiving `notify` actions as JSON POSTs."
    )
    notify_addresses: dict[str, str] = Field(
        default_factory=dict,
        description="Who (`notify` of the action: a supervisor id) → e-mail address.",
    )
    smtp_host: str | None = Field(default=None, description="SMTP server for `notify` e-mails.")
    smtp_port: int = Field(default=25, description="SMTP port.")
    smtp_from: str = Field(default="slawatch@localhost", description="Sender of e-mails.")
    recoveries: dict[str, Delivery] = Field(
        default_factory=dict,
        description=(
            "Service recoveries: send name (the rule's `send`) → how to deliver it, a "
            "`whatsapp_template`, a `chatwoot_message` or a `webhook` (JSON object; see "
            "docs/INTEGRATIONS.md). No secrets here."
        ),
    )
    recovery_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Bearer token per `webhook` recovery (send name → token).",
    )
    whatsapp_graph_url: str = Field(
        default=DEFAULT_GRAPH_URL, description="WhatsApp Cloud API base URL, with its version."
    )
    whatsapp_access_token: SecretStr | None = Field(
        default=None, description="Cloud API access token (system user) sending recoveries."
    )
    segment_attribute: str = Field(default="segment", description="Chatwoot custom attribute.")
    lead_source_attribute: str = Field(default="lead_source", description="Custom attribute.")
    lead_status_attribute: str = Field(default="lead_status", description="Custom attribute.")
    outcome_attribute: str = Field(default="outcome", description="Custom attribute.")
    segment_labels: list[str] = Field(
        default_factory=list, description="Chatwoot labels that set `segment` (e.g. vip)."
    )
    null_sender_author: Literal["system", "bot", "agent"] = Field(
        default="system", description="Author of a Chatwoot outgoing message with no sender."
    )
    null_sender_agent: str = Field(
        default="chatwoot", description="`agent_id` when NULL_SENDER_AUTHOR is `agent`."
    )
    chatwoot_bot_users: dict[str, list[int | str]] = Field(
        default_factory=dict,
        description=(
            "Per Chatwoot account id, the user ids of integrations and AI assistants that post "
            'as users: their messages are authored `bot`, not `agent` (e.g. `{"7": [15, 22]}`).'
        ),
    )
    chatwoot_inbox_channels: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description=(
            "Per Chatwoot account id, inbox id → `channel` of its messages, over the inbox's "
            'channel type (e.g. an API inbox bridging WhatsApp: `{"7": {"12": "whatsapp"}}`).'
        ),
    )
    chatwoot_teams: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Chatwoot team id → the `team_id` the policies list (e.g. `l2`), for every account "
            '(team ids are unique in a Chatwoot installation): `{"3": "l1", "4": "l2"}`. '
            "A team not listed keeps its Chatwoot id."
        ),
    )
    chatwoot_csat_not_sent_texts: list[str] = Field(
        default_factory=list,
        description=(
            "More wordings (an account's locale) of the activity Chatwoot writes when it could "
            "not send the CSAT survey, besides the English one: they map to survey `not_sent`."
        ),
    )
    chatwoot_fallback_channel: str = Field(
        default="unknown",
        min_length=1,
        description="`channel` of a Chatwoot message whose payload and inbox name no channel.",
    )
    referral_lead_source: str = Field(
        default="click_to_whatsapp", description="`lead_source` of a Click-to-WhatsApp referral."
    )
    echo_agent_id: str = Field(
        default="business_app", description="`agent_id` of replies typed in the Business app."
    )
    untagged_author: Literal["agent", "bot", "system"] = Field(
        default="agent", description="Author of a `sent` status without callback data."
    )
    untagged_agent_id: str = Field(
        default="api", description="`agent_id` of untagged `sent` statuses by `agent`."
    )

    @field_validator("chatwoot_teams")
    @classmethod
    def _check_teams(cls, teams: dict[str, str]) -> dict[str, str]:
        """Refuse a team map that would make every team event a dead letter.

        Keys are Chatwoot team ids (ASCII digits, as Chatwoot numbers teams); values are SPEC
        §1 ids (1-256 characters, no control characters).
        """
        for key, name in teams.items():
            if not (key.isascii() and key.isdigit()):
                msg = f"Chatwoot team ids are numbers, not {key!r:.40} (map ids, not names)"
                raise ValueError(msg)
            if not 0 < len(name) <= MAX_ID_CHARS or any(
                unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name
            ):
                msg = f"team {key}: {name!r:.40} is not a slawatch id (1-256 characters)"
                raise ValueError(msg)
        return teams

    @field_validator("recoveries")
    @classmethod
    def _check_send_names(cls, recoveries: dict[str, Delivery]) -> dict[str, Delivery]:
        """Refuse a send name that no action record could carry (not a SPEC §1 id)."""
        for name in recoveries:
            if not 0 < len(name) <= MAX_ID_CHARS or any(
                unicodedata.category(c) == "Cc" for c in name
            ):
                msg = f"send name {name!r:.40} is not a slawatch id (1-256 characters)"
                raise ValueError(msg)
        return recoveries

    def mode(self, endpoint: str) -> VerifyMode:
        """Return the signature check of an endpoint (`whatsapp` or `chatwoot/<account>`).

        The most specific entry of `verify` wins: the endpoint itself, then its family
        (`chatwoot` for every account), then `verify_default` (`enforce` unless set).
        """
        if endpoint in self.verify:
            return self.verify[endpoint]
        family = endpoint.split("/", 1)[0]
        return self.verify.get(family, self.verify_default)

    def chatwoot_options(self) -> ChatwootOptions:
        """Return the Chatwoot mapping choices.

        Bot user ids and inbox ids are compared as text, so `15` and `"15"` are one user.
        """
        return ChatwootOptions(
            segment_attribute=self.segment_attribute,
            lead_source_attribute=self.lead_source_attribute,
            lead_status_attribute=self.lead_status_attribute,
            outcome_attribute=self.outcome_attribute,
            segment_labels=tuple(self.segment_labels),
            null_sender_author=self.null_sender_author,
            null_sender_agent=self.null_sender_agent,
            bot_user_ids={
                account: frozenset(str(user) for user in users)
                for account, users in self.chatwoot_bot_users.items()
            },
            inbox_channels={
                account: {str(inbox): channel for inbox, channel in inboxes.items()}
                for account, inboxes in self.chatwoot_inbox_channels.items()
            },
            fallback_channel=self.chatwoot_fallback_channel,
            teams=dict(self.chatwoot_teams),
            csat_not_sent_texts=tuple(self.chatwoot_csat_not_sent_texts),
        )

    def whatsapp_options(self) -> WhatsAppOptions:
        """Return the WhatsApp mapping choices.

        The pseudonym key is passed as its UTF-8 bytes; an empty key makes pseudonyms
        guessable from phone numbers, so set it on every receiver that feeds one monitor.
        """
        return WhatsAppOptions(
            pseudonym_key=self.pseudonym_key.get_secret_value().encode(),
            referral_lead_source=self.referral_lead_source,
            echo_agent_id=self.echo_agent_id,
            untagged_author=self.untagged_author,
            untagged_agent_id=self.untagged_agent_id,
        )

    def producer_config(self) -> dict[str, Any]:
        """Return the librdkafka properties of the idempotent producer (`acks=all`).

        `kafka_config` is applied last, so it may override any default (for instance to add
        SASL properties or change `linger.ms`); turning idempotence off loses the
        no-duplicate guarantee of the producer's own retries.
        """
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "compression.type": "lz4",
            **self.kafka_config,
        }
