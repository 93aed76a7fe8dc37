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
