"""How `slawatch act` delivers service recoveries (SPEC §4): one delivery per `send` name.

A recovery rule names what to send (`send: apology_voucher`); the team says how in
`SLAWATCH_INGEST_RECOVERIES`, a JSON object of send name → delivery, one of:

* `whatsapp_template`: an approved WhatsApp template through the Cloud API
  (`POST {graph}/{phone_number_id}/messages`, `type: template`) to the conversation's customer;
* `chatwoot_message`: a message posted into the Chatwoot conversation
  (`POST /api/v1/accounts/{account}/conversations/{id}/messages`);
* `webhook`: the action record as a JSON POST to the team's own system (a voucher service),
  with the action's identity as `Idempotency-Key`.

Deliveries hold no secrets (unknown keys are refused, so a token pasted into one is an error):
the Cloud API token, Chatwoot's API token and the webhooks' bearer tokens come from their own
`SLAWATCH_INGEST_*` variables. This module is configuration and pure helpers; `act.py` carries
the deliveries out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: The Cloud API version `act` targets unless `SLAWATCH_INGEST_WHATSAPP_GRAPH_URL` says another.
DEFAULT_GRAPH_URL: Final = "https://graph.facebook.com/v21.0"

# A business-scoped user id (Meta's BSUID, e.g. `US.13491208655302741918`), as ingest keeps it.
_BSUID: Final = re.compile(r"[A-Za-z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}", re.ASCII)
# The keyed pseudonym ingest puts in place of a phone number: `p` + 20 hex digits.
_PSEUDONYM: Final = re.compile(r"p[0-9a-f]{20}", re.ASCII)
_DIGITS: Final = re.compile(r"[0-9]{1,20}", re.ASCII)


class _Delivery(BaseModel):
    """What every delivery shares: frozen, and no key it does not know (typos, secrets)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class WhatsAppTemplate(_Delivery):
    """An approved template sent through the WhatsApp Cloud API.

    Attributes:
        via: `whatsapp_template`.
        template: The template's name as approved in WhatsApp Manager.
        language: Its language code (`en_US`, `id`).
        phone_number_id: The business number to send from for Chatwoot conversations; a
            `wa:{phone_number_id}:…` conversation is always answered from its own number.
        components: The template's `components` (parameters), passed to the API as they are.
    """

    via: Literal["whatsapp_template"]
    template: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=2, max_length=16, pattern=r"^[A-Za-z]{2,3}(_[A-Za-z]{2,4})?$")
    phone_number_id: str | None = Field(default=None, pattern=r"^[0-9]{1,20}$")
    components: list[dict[str, Any]] = Field(default_factory=list)


class ChatwootMessage(_Delivery):
    """A message posted into the Chatwoot conversation by the API token's user.

    Attributes:
        via: `chatwoot_message`.
        content: The text sent to the customer (or shown to agents when `private`).
        private: Post it as a private note (an agent then follows up) instead of a reply.
    """

    via: Literal["chatwoot_message"]
    content: str = Field(min_length=1, max_length=4096)
    private: bool = False


class RecoveryWebhook(_Delivery):
    """The team's own system: the action record as a JSON POST.

    Attributes:
        via: `webhook`.
        url: Where to POST (http or https). A bearer token, if the system needs one, is
            `SLAWATCH_INGEST_RECOVERY_TOKENS[<send name>]`.
    """

    via: Literal["webhook"]
    url: str = Field(min_length=8, max_length=2048)

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        """Refuse anything but an absolute http(s) URL without credentials."""
        if not re.fullmatch(r"https?://[^\s/@]+(/\S*)?", url):
            msg = f"{url[:60]!r} is not an http(s) URL (credentials go in RECOVERY_TOKENS)"
            raise ValueError(msg)
        return url


Delivery = Annotated[
    WhatsAppTemplate | ChatwootMessage | RecoveryWebhook, Field(discriminator="via")
]


@dataclass(frozen=True, slots=True)
class Recipient:
    """Whom a WhatsApp template goes to.

    Attributes:
        phone_number_id: The business number sending it.
        field: `to` (a phone number) or `recipient` (a business-scoped user id).
        value: The number's digits, or the BSUID.
    """

    phone_number_id: str
    field: Literal["to", "recipient"]
    value: str


def wa_recipient(conversation_id: str) -> Recipient | str | None:
    """Return whom a `wa:` conversation's template goes to, why it cannot be known, or None.

    `wa:{phone_number_id}:{customer}` carries the business number; the customer part is a
    BSUID (sent to as `recipient`) or a keyed pseudonym of the phone number, from which the
    number cannot be recovered on purpose (SPEC §1: no phone number in the events).

    Returns:
        The recipient; a problem (the dead letter's reason); or None when the id is not `wa:`.
    """
    parts = conversation_id.split(":", 2)
    if len(parts) != 3 or parts[0] != "wa":
        return None
    _, number, customer = parts
    if _DIGITS.fullmatch(number) is None:
        return f"conversation {conversation_id[:60]!r} names no business phone number id"
    if _BSUID.fullmatch(customer) is not None:
        return Recipient(number, "recipient", customer)
    if _PSEUDONYM.fullmatch(customer) is not None:
        return (
            "the customer's phone number cannot be known: the conversation id holds a keyed "
            "pseudonym of it, and slawatch keeps no phone number (deliver this send through "
            "Chatwoot or a webhook)"
        )
    return f"conversation {conversation_id[:60]!r} names no WhatsApp customer"


def phone_digits(value: object) -> str | None:
    """Return a phone number's digits (`+62 812-3456` → `628123456`), or None if not one."""
    if not isinstance(value, str):
        return None
    digits = value.strip().removeprefix("+").replace(" ", "").replace("-", "")
    return digits if _DIGITS.fullmatch(digits) is not None and len(digits) >= 6 else None


def template_body(delivery: WhatsAppTemplate, recipient: Recipient) -> dict[str, Any]:
    """Return the Cloud API request body sending `delivery`'s template to `recipient`."""
    template: dict[str, Any] = {
        "name": delivery.template,
        "language": {"code": delivery.language},
    }
    if delivery.components:
        template["components"] = delivery.components
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        recipient.field: recipient.value,
        "type": "template",
        "template": template,
    }
