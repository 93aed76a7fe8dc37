"""`slawatch check`: the configuration and the services it names, one line per problem.

What is checked, in order (each problem is a `Problem`, nothing stops at the first one):

1. settings: every `SLAWATCH_*` and `SLAWATCH_INGEST_*` variable (and `.env`) parses, and no
   variable still holds a `CHANGE-ME` placeholder of `infra/slawatch.env.example`;
2. policies: each policy file, with its calendars and teams, loads (the first error of a file);
3. inbox configuration: an endpoint whose signature check is `enforce` has its secret (a
   Chatwoot account's secret or path token, Meta's app secret once WhatsApp's verify token is
   set); secrets name accepted accounts;
4. action configuration: policies that `reassign` have a Chatwoot URL and API token, policies
   that `notify` have a webhook or an SMTP server; every recovery rule's `send` has a
   delivery in `SLAWATCH_INGEST_RECOVERIES`, and each delivery has what it needs (the Cloud
   API token, Chatwoot's token; a bearer token only for a `webhook` delivery);
5. QuestDB's client configuration and table prefix;
6. unless offline: Kafka answers and the input topics exist, QuestDB answers `SELECT 1`, and the
   Chatwoot API (when an API token is set) accepts the token.

It is meant for a team's own CI (`slawatch check --offline policies/*.yaml`) as much as for a
start-up probe.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import ValidationError

from flows.core.model import PolicySet
from flows.exceptions import SlawatchError
from flows.ingest.settings import IngestSettings
from flows.settings import Settings

__all__ = ["Problem", "check_all", "describe"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that is wrong.

    Attributes:
        area: What it concerns: `settings`, `policies`, `inbox`, `actions`, `questdb`,
            `kafka`, `chatwoot`.
        message: One sentence saying what is wrong and, where it can, what to do.
    """

    area: str
    message: str

    def line(self) -> str:
        """Return the problem as the one line `slawatch check` prints."""
        return f"{self.area}: {self.message}"


def _validation(area: str, exc: ValidationError, prefix: str) -> list[Problem]:
    """Return one problem per field a `ValidationError` names, as its variable.

    Inside a JSON variable, the path to the value at fault follows the variable's name
    (`SLAWATCH_INGEST_RECOVERIES: sorry.webhook.token: Extra inputs are not permitted`).
    """
    found = []
    for err in exc.errors():
        name = "_".join(str(p) for p in err["loc"][:1]).upper()
        inside = ".".join(str(p) for p in err["loc"][1:])
        where = f"{name}: {inside}" if inside else name
        found.append(Problem(area, f"{prefix}{where}: {err['msg']}"))
    return found


def _policy_problems(files: Sequence[Path]) -> tuple[list[Problem], list[PolicySet]]:
    """Load each policy file; return the problems and the sets that loaded."""
    from flows.core.policies import load_policies  # noqa: PLC0415

    problems: list[Problem] = []
    loaded: list[PolicySet] = []
    for path in files:
        try:
            loaded.append(load_policies(path))
        except SlawatchError as exc:
            problems.append(Problem("policies", str(exc)))
    return problems, loaded


def _inbox_problems(ingest: IngestSettings) -> list[Problem]:
    """Return the endpoints whose enforced signature check has no secret to check with."""
    found = []
    accounts = set(ingest.chatwoot_accounts)
    keyed = set(ingest.chatwoot_secrets) | set(ingest.chatwoot_tokens)
    for account in sorted(accounts or keyed):
        endpoint = f"chatwoot/{account}"
        if ingest.mode(endpoint) == "enforce" and account not in keyed:
            found.append(
                Problem(
                    "inbox",
                    f"{endpoint} enforces signatures but has no secret or token: set "
                    f'SLAWATCH_INGEST_CHATWOOT_SECRETS=\'{{"{account}": "..."}}\' or '
                    "SLAWATCH_INGEST_CHATWOOT_TOKENS, or verify it `log` or `off`",
                )
            )
    for account in sorted(keyed - accounts if accounts else set()):
        found.append(
            Problem(
                "inbox",
                f"a secret or token is set for Chatwoot account {account}, which is not among "
                "SLAWATCH_INGEST_CHATWOOT_ACCOUNTS (its webhooks are answered 404)",
            )
        )
    # A verify token means the WhatsApp webhook is subscribed; without one it is not in use.
    subscribed = ingest.whatsapp_verify_token is not None
    if subscribed and ingest.mode("whatsapp") == "enforce" and ingest.whatsapp_app_secret is None:
        found.append(
            Problem(
                "inbox",
                "whatsapp enforces signatures but SLAWATCH_INGEST_WHATSAPP_APP_SECRET is unset "
                "(every WhatsApp webhook would be refused 401)",
            )
        )
    return found


def _action_problems(ingest: IngestSettings, loaded: Iterable[PolicySet]) -> list[Problem]:
    """Return the escalations `slawatch act` could not carry out with this configuration."""
    escalations = [e for s in loaded for p in s.policies for e in p.escalations]
    found = []
    if (
        ingest.act_reassign
        and any(e.reassign for e in escalations)
        and (not ingest.chatwoot_url or ingest.chatwoot_api_token is None)
    ):
        found.append(
            Problem(
                "actions",
                "a policy reassigns, but SLAWATCH_INGEST_CHATWOOT_URL and "
                "SLAWATCH_INGEST_CHATWOOT_API_TOKEN are not both set (or set "
                "SLAWATCH_INGEST_ACT_REASSIGN=false)",
            )
        )
    if (
        any(e.notify for e in escalations)
        and not ingest.notify_webhook_url
        and not ingest.smtp_host
    ):
        found.append(
            Problem(
                "actions",
                "a policy notifies, but neither SLAWATCH_INGEST_NOTIFY_WEBHOOK_URL nor "
                "SLAWATCH_INGEST_SMTP_HOST is set: notifications would only be counted",
            )
        )
    return found + _recovery_problems(ingest, loaded)


def _recovery_problems(ingest: IngestSettings, loaded: Iterable[PolicySet]) -> list[Problem]:
    """Return the recoveries `slawatch act` could not deliver with this configuration.

    A policy's recovery rules are its `recovery` list, each naming what to `send` (SPEC §3).
    """
    from flows.ingest.recovery import (  # noqa: PLC0415
        ChatwootMessage,
        RecoveryWebhook,
        WhatsAppTemplate,
    )

    found = []
    deliveries = ingest.recoveries
    sends = sorted(
        {
            rule.send
            for policy_set in loaded
            for policy in policy_set.policies
            for rule in policy.recovery
        }
    )
    for send in sends:
        if send not in deliveries:
            found.append(
                Problem(
                    "actions",
                    f"a recovery rule sends {send!r}, which SLAWATCH_INGEST_RECOVERIES does not "
                    "configure: its recoveries would be dead letters",
                )
            )
    kinds = {type(delivery) for delivery in deliveries.values()}
    if WhatsAppTemplate in kinds and ingest.whatsapp_access_token is None:
        found.append(
            Problem(
                "actions",
                "a recovery sends a WhatsApp template, but SLAWATCH_INGEST_WHATSAPP_ACCESS_TOKEN "
                "is unset",
            )
        )
    if ChatwootMessage in kinds and (not ingest.chatwoot_url or ingest.chatwoot_api_token is None):
        found.append(
            Problem(
                "actions",
                "a recovery posts a Chatwoot message, but SLAWATCH_INGEST_CHATWOOT_URL and "
                "SLAWATCH_INGEST_CHATWOOT_API_TOKEN are not both set",
            )
        )
    for name in sorted(ingest.recovery_tokens):
        if not isinstance(deliveries.get(name), RecoveryWebhook):
            found.append(
                Problem(
                    "actions",
                    f"SLAWATCH_INGEST_RECOVERY_TOKENS has a token for {name!r}, which is not a "
                    "webhook recovery in SLAWATCH_INGEST_RECOVERIES (a typo?)",
                )
            )
    return found


def _questdb_conf_problems(settings: Settings) -> list[Problem]:
    """Return a problem if the QuestDB client configuration or table prefix is unusable."""
    from flows.connectors.questdb.conf import check_conf  # noqa: PLC0415
    from flows.monitor.flow import questdb_conf  # noqa: PLC0415

    conf = questdb_conf(settings)
    if conf is None:
        return []
    try:
        check_conf(conf, settings.table_prefix)
    except SlawatchError as exc:
        return [Problem("questdb", str(exc))]
    return []


def _kafka_problems(settings: Settings, timeout_s: float) -> list[Problem]:
    """Return a problem if Kafka does not answer, and one per missing input topic."""
    from confluent_kafka import KafkaException  # noqa: PLC0415
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415

    where = settings.bootstrap_servers
    admin = AdminClient({**settings.kafka_common(), "log_level": 0})
    try:
        topics = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        return [Problem("kafka", f"Kafka at {where} does not answer: {exc.args[0]}")]
    return [
        Problem("kafka", f"input topic {topic} does not exist on {where}")
        for topic in settings.input_topics
        if topic not in topics
    ]


def _get(url: str, headers: dict[str, str], timeout_s: float) -> httpx.Response | str:
    """GET `url`; return the response, or why there was none."""
    try:
        return httpx.get(url, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return str(exc) or type(exc).__name__


def _questdb_problems(settings: Settings, timeout_s: float) -> list[Problem]:
    """Return a problem if QuestDB's HTTP endpoint does not run `SELECT 1`."""
    if settings.questdb_conf is not None or not settings.questdb_http:
        return []
    url = f"http://{settings.questdb_http}/exec"
    answer = _get(f"{url}?query=SELECT%201", {}, timeout_s)
    if isinstance(answer, str):
        return [Problem("questdb", f"QuestDB at {settings.questdb_http} does not answer: {answer}")]
    if answer.status_code != 200:
        return [Problem("questdb", f"QuestDB at {url} answered {answer.status_code} to SELECT 1")]
    return []


def _chatwoot_problems(ingest: IngestSettings, timeout_s: float) -> list[Problem]:
    """Return a problem if the Chatwoot API does not answer or refuses the token.

    Only checked when an API token is set: without one nothing calls the API.
    """
    if not ingest.chatwoot_url or ingest.chatwoot_api_token is None:
        return []
    base = ingest.chatwoot_url.rstrip("/")
    token = ingest.chatwoot_api_token
    headers = {} if token is None else {"api_access_token": token.get_secret_value()}
    accounts = list(ingest.chatwoot_accounts) or sorted(ingest.chatwoot_secrets)
    paths = [f"/api/v1/accounts/{a}/conversations?page=1" for a in accounts] or ["/api/v1/profile"]
    found = []
    for path in paths:
        answer = _get(base + path, headers, timeout_s)
        if isinstance(answer, str):
            return [Problem("chatwoot", f"Chatwoot API at {base} does not answer: {answer}")]
        if answer.status_code in (401, 403):
            found.append(
                Problem(
                    "chatwoot",
                    f"Chatwoot refused SLAWATCH_INGEST_CHATWOOT_API_TOKEN on {path.split('?')[0]}"
                    f" ({answer.status_code})",
                )
            )
        elif answer.status_code != 200:
            found.append(Problem("chatwoot", f"Chatwoot answered {answer.status_code} on {path}"))
    return found


def check_all(
    policy_files: Sequence[Path] = (),
    *,
    offline: bool = False,
    timeout_s: float = 5.0,
    settings_factory: Callable[[], Settings] = Settings,
    ingest_factory: Callable[[], IngestSettings] = IngestSettings,
    environ: Mapping[str, str] = os.environ,
) -> list[Problem]:
    """Check the configuration (and, unless `offline`, the services); return every problem.

    Args:
        policy_files: The policy files to check; empty checks the one `SLAWATCH_POLICIES` names.
        offline: Skip Kafka, QuestDB and Chatwoot (a CI job checking policy files).
        timeout_s: How long each service may take to answer.
        settings_factory: Builds the monitor's settings (tests pass their own values).
        ingest_factory: Builds the receiver's and `act`'s settings.
        environ: The environment, searched for placeholders left in place.

    Returns:
        The problems in the order of the module docstring; empty when all is well.
    """
    problems: list[Problem] = [
        Problem("secrets", f"{name} still holds a CHANGE-ME placeholder: set the real value")
        for name, value in sorted(environ.items())
        if "CHANGE-ME" in value
    ]
    settings: Settings | None = None
    ingest: IngestSettings | None = None
    try:
        settings = settings_factory()
    except ValidationError as exc:
        problems += _validation("settings", exc, "SLAWATCH_")
    try:
        ingest = ingest_factory()
    except ValidationError as exc:
        problems += _validation("settings", exc, "SLAWATCH_INGEST_")
    files = list(policy_files) or ([settings.policies] if settings is not None else [])
    policy_problems, loaded = _policy_problems(files)
    problems += policy_problems
    if ingest is not None:
        problems += _inbox_problems(ingest)
        problems += _action_problems(ingest, loaded)
    if settings is not None:
        problems += _questdb_conf_problems(settings)
    if offline:
        return problems
    if settings is not None:
        problems += _kafka_problems(settings, timeout_s)
        problems += _questdb_problems(settings, timeout_s)
    if ingest is not None:
        problems += _chatwoot_problems(ingest, timeout_s)
    return problems


def describe(problems: Sequence[Problem], *, offline: bool = False) -> list[str]:
    """Return the lines `slawatch check` prints: one per problem, or one saying all is well."""
    if problems:
        return [p.line() for p in problems]
    what = "configuration and policies" if offline else "configuration, policies and services"
    return [f"ok: {what} checked, no problem found"]
