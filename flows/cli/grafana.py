"""Click commands for Grafana: `slawatch dashboards` (write the files), `slawatch provision`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from flows.connectors.questdb import DEFAULT_PREFIX
from flows.connectors.questdb.views import DEFAULT_TIMEZONE
from flows.grafana.files import provisioning_files, write_files

__all__ = ["dashboards_command", "provision_command"]

_DEFAULT_OUT = Path("dashboards/provisioning")


@click.command("dashboards")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=_DEFAULT_OUT,
    show_default=True,
    help="Provisioning folder to write (the one infra/compose.yaml mounts).",
)
@click.option("--prefix", default=DEFAULT_PREFIX, show_default=True, help="QuestDB table prefix.")
@click.option(
    "--timezone", default=DEFAULT_TIMEZONE, show_default=True, help="The team's calendar zone."
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a file is out of date.")
def dashboards_command(out: Path, prefix: str, timezone: str, check: bool) -> None:
    """Generate Grafana's dashboards and alerting files from the shared SQL."""
    if check:
        stale = [
            rel
            for rel, text in provisioning_files(prefix, timezone).items()
            if not (out / rel).exists() or (out / rel).read_text(encoding="utf-8") != text
        ]
        for rel in stale:
            click.echo(f"out of date: {out / rel}", err=True)
        sys.exit(1 if stale else 0)
    changed = write_files(out, prefix, timezone)
    click.echo(f"{len(changed)} files written under {out}", err=True)


@click.command("provision")
@click.option("--url", required=True, help="Grafana's address, e.g. https://grafana.example.com.")
@click.option(
    "--token",
    required=True,
    envvar="GRAFANA_TOKEN",
    help="Service account token (or $GRAFANA_TOKEN).",
)
@click.option(
    "--questdb",
    "questdb_address",
    default="questdb:8812",
    show_default=True,
    help="QuestDB PG wire host:port as Grafana reaches it.",
)
@click.option("--prefix", default=DEFAULT_PREFIX, show_default=True, help="QuestDB table prefix.")
@click.option(
    "--timezone", default=DEFAULT_TIMEZONE, show_default=True, help="The team's calendar zone."
)
def provision_command(
    url: str, token: str, questdb_address: str, prefix: str, timezone: str
) -> None:
    """Push the data source, dashboards and alerting to a running Grafana (idempotent)."""
    from grafana_client import GrafanaApi  # noqa: PLC0415 - keep --help fast

    from flows.grafana.provision import provision  # noqa: PLC0415

    api = GrafanaApi.from_url(url, credential=token)
    report = provision(api, questdb_address=questdb_address, prefix=prefix, timezone=timezone)
    for name in report.created:
        click.echo(f"created   {name}", err=True)
    for name in report.updated:
        click.echo(f"updated   {name}", err=True)
    click.echo(f"Grafana at {url}: {report.line()}", err=True)
