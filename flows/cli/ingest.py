"""`slawatch ingest` (the webhook receiver), `slawatch ingest map`, `reconcile`, `act`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
import orjson

from flows.exceptions import SlawatchError
from flows.ingest.chatwoot import map_chatwoot
from flows.ingest.mapping import Mapped
from flows.ingest.settings import IngestSettings
from flows.ingest.whatsapp import map_whatsapp


class IngestError(SlawatchError):
    """The receiver, the catch-up or the action runner cannot do its job."""


def _settings() -> IngestSettings:
    try:
        return IngestSettings()
    except ValueError as exc:
        msg = f"invalid SLAWATCH_INGEST_* setting: {exc}; fix the variable and retry."
        raise IngestError(msg) from None


@click.group(invoke_without_command=True)
@click.option("--host", default=None, help="Address to bind [env SLAWATCH_INGEST_HOST; 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [env SLAWATCH_INGEST_PORT; 8787].")
@click.option(
    "--bootstrap-servers", default=None, help="Kafka [env SLAWATCH_INGEST_BOOTSTRAP_SERVERS]."
)
@click.option("--topic", default=None, help="Event topic [env SLAWATCH_INGEST_TOPIC; wa.events].")
@click.pass_context
def ingest(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    bootstrap_servers: str | None,
    topic: str | None,
) -> None:
    """Receive Chatwoot and WhatsApp Cloud API webhooks and produce SPEC events to Kafka.

    Endpoints: POST /webhooks/chatwoot/{account}[/{token}], GET and POST /webhooks/whatsapp,
    GET /healthz, GET /metrics. Secrets come from SLAWATCH_INGEST_* variables only.
    """
    if ctx.invoked_subcommand is not None:
        return
    overrides = {
        key: value
        for key, value in (
            ("host", host),
            ("port", port),
            ("bootstrap_servers", bootstrap_servers),
            ("topic", topic),
        )
        if value is not None
    }
    settings = _settings().model_copy(update=overrides)
    from flows.ingest.app import serve  # noqa: PLC0415 - keep `map` free of the server stack

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    serve(settings)


@ingest.command("map")
@click.option(
    "--platform", type=click.Choice(["chatwoot", "whatsapp"]), required=True, help="Payload format."
)
@click.option("--account", default=None, help="Chatwoot account id (as in the webhook URL).")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def map_files(platform: str, account: str | None, files: tuple[Path, ...]) -> None:
    """Map webhook payload FILES (one body each; - for stdin) to SPEC events, as JSONL.

    No server and no Kafka: the events go to stdout; what was ignored, flagged or could not be
    mapped goes to stderr. Exit status 1 when some payload could not be mapped.
    """
    if platform == "chatwoot" and not account:
        msg = (
            "--account is required for Chatwoot payloads (it is in the webhook URL, not the body)."
        )
        raise IngestError(msg)
    settings = _settings()
    unmappable = 0
    for path in files:
        body = sys.stdin.buffer.read() if str(path) == "-" else _read(path)
        if platform == "chatwoot":
            mapped = map_chatwoot(body, str(account), settings.chatwoot_options())
        else:
            mapped = map_whatsapp(body, settings.whatsapp_options())
        _report(path, mapped)
        unmappable += len(mapped.unmappable)
    if unmappable:
        raise click.exceptions.Exit(1)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror}; check the path."
        raise IngestError(msg) from None


def _report(path: Path, mapped: Mapped) -> None:
    out = sys.stdout.buffer
    for event in mapped.events:
        out.write(orjson.dumps(event) + b"\n")
    out.flush()
    for ignored in mapped.ignored:
        click.echo(f"{path}: ignored {ignored.kind}: {ignored.reason}", err=True)
    for flag in mapped.flags:
        click.echo(f"{path}: flagged {flag}", err=True)
    for reason in mapped.unmappable:
        click.echo(f"{path}: unmappable: {reason}", err=True)


# -- reconcile --------------------------------------------------------------------------------


@click.group()
def reconcile() -> None:
    """Catch up on events an inbox's webhooks missed, through its REST API."""


@reconcile.command("chatwoot")
@click.option("--account", required=True, help="Chatwoot account id.")
@click.option(
    "--since",
    default=None,
    help="Checkpoint: RFC 3339 instant or epoch seconds (default: read from --checkpoint).",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File holding the checkpoint (epoch seconds); advanced after a successful run.",
)
@click.option(
    "--output",
    default=None,
    help="Write the events as JSONL to this file (- for stdout) instead of producing to Kafka.",
)
@click.option("--base-url", default=None, help="Chatwoot URL [env SLAWATCH_INGEST_CHATWOOT_URL].")
def reconcile_chatwoot(
    account: str,
    since: str | None,
    checkpoint: Path | None,
    output: str | None,
    base_url: str | None,
) -> None:
    """Emit the events of Chatwoot conversations changed since a checkpoint.

    Events carry the ids their webhooks would have had, so what the receiver already produced
    is dropped by the monitor as a duplicate. The API token comes from
    SLAWATCH_INGEST_CHATWOOT_API_TOKEN.
    """
    import httpx  # noqa: PLC0415

    from flows.ingest.reconcile import ReconcileError, catch_up  # noqa: PLC0415

    settings = _settings()
    since_s = _since(since, checkpoint)
    token = settings.chatwoot_api_token
    if token is None:
        msg = "set SLAWATCH_INGEST_CHATWOOT_API_TOKEN to a Chatwoot access token with read access."
        raise IngestError(msg)
    headers = {"api_access_token": token.get_secret_value()}
    with httpx.Client(
        base_url=base_url or settings.chatwoot_url, headers=headers, timeout=30
    ) as client:
        try:
            result = catch_up(client, account, since_s, settings.chatwoot_options())
        except ReconcileError as exc:
            msg = f"{exc}; check the URL, the account and the token."
            raise IngestError(msg) from None
    if output is not None:
        lines = b"".join(orjson.dumps(event) + b"\n" for event in result.events)
        if output == "-":
            sys.stdout.buffer.write(lines)
            sys.stdout.flush()
        else:
            Path(output).write_bytes(lines)
    else:
        _produce(settings, result.events)
    for reason in result.mapped.unmappable:
        click.echo(f"unmappable: {reason}", err=True)
    if checkpoint is not None:
        checkpoint.write_text(f"{result.checkpoint}\n", encoding="utf-8")
    click.echo(
        f"reconciled account {account} since {since_s}: {result.conversations} conversations, "
        f"{result.messages} messages, {len(result.events)} events; checkpoint {result.checkpoint}",
        err=True,
    )


def _since(since: str | None, checkpoint: Path | None) -> int:
    from flows.ingest.mapping import MappingError, epoch_ms  # noqa: PLC0415

    if since is None and checkpoint is not None and checkpoint.exists():
        since = checkpoint.read_text(encoding="utf-8").strip()
    if since is None:
        msg = "give --since, or a --checkpoint file written by an earlier run."
        raise IngestError(msg)
    try:
        return epoch_ms(since, "--since") // 1000
    except MappingError as exc:
        msg = f"{exc}; write an RFC 3339 instant or epoch seconds."
        raise IngestError(msg) from None


def _produce(settings: IngestSettings, events: list[dict[str, object]]) -> None:
    from confluent_kafka import Producer  # noqa: PLC0415

    producer = Producer(settings.producer_config())
    failures: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for event in events:
        producer.produce(
            settings.topic,
            value=orjson.dumps(event),
            key=str(event["conversation_id"]),
            on_delivery=delivered,
        )
        producer.poll(0)
    remaining = producer.flush(30)
    if failures or remaining:
        msg = (
            f"Kafka did not take {len(failures) + remaining} events ({failures[:1]}); "
            "the checkpoint was not advanced: run again."
        )
        raise IngestError(msg)


# -- act --------------------------------------------------------------------------------------


@click.command()
@click.option("--dry-run", is_flag=True, help="Log and count what would be done; change nothing.")
@click.option(
    "--exit-when-idle",
    type=float,
    default=None,
    help="Stop after this many seconds without an action (default: run until interrupted).",
)
def act(dry_run: bool, exit_when_idle: float | None) -> None:
    """Carry out actions from sla.actions: reassign, notify, and service recoveries.

    Configured with SLAWATCH_INGEST_* variables (CHATWOOT_URL, CHATWOOT_API_TOKEN, AGENT_MAP,
    NOTIFY_WEBHOOK_URL, NOTIFY_ADDRESSES, SMTP_HOST, RECOVERIES, RECOVERY_TOKENS,
    WHATSAPP_GRAPH_URL, WHATSAPP_ACCESS_TOKEN, ACT_LEDGER, ACTIONS_TOPIC, ACT_GROUP). Each
    action is applied once, whatever the redeliveries, and a recovery never twice; every
    outcome is counted and logged.
    """
    import httpx  # noqa: PLC0415

    from flows.ingest.act import ActionRunner, Ledger, run  # noqa: PLC0415

    settings = _settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    token = settings.chatwoot_api_token
    headers = {} if token is None else {"api_access_token": token.get_secret_value()}
    meta_token = settings.whatsapp_access_token
    meta_headers = (
        {} if meta_token is None else {"Authorization": f"Bearer {meta_token.get_secret_value()}"}
    )
    with (
        httpx.Client(base_url=settings.chatwoot_url, headers=headers, timeout=10) as chatwoot,
        httpx.Client(timeout=10) as webhook,
        httpx.Client(
            base_url=settings.whatsapp_graph_url.rstrip("/"), headers=meta_headers, timeout=10
        ) as whatsapp,
    ):
        runner = ActionRunner(
            settings,
            Ledger(settings.act_ledger),
            dry_run,
            chatwoot=chatwoot,
            webhook=webhook,
            whatsapp=None if meta_token is None else whatsapp,
        )
        try:
            outcomes = run(runner, settings, exit_when_idle_s=exit_when_idle)
        except KeyboardInterrupt:
            outcomes = runner.outcomes
    summary = ", ".join(f"{name} {count}" for name, count in sorted(outcomes.items())) or "nothing"
    click.echo(f"act: {summary}", err=True)
