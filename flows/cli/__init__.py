"""The `slawatch` command line: one module per command group, composed here.

Each command is a thin wrapper over a Python API: parse options, call it, print. Any
`SlawatchError` becomes one `Error: ...` line on stderr and exit status 1, never a traceback.
Modules that load Bytewax or librdkafka are imported inside their commands, so `slawatch --help`
stays fast.
"""

from __future__ import annotations

from typing import Any

import click

from flows.cli.check import check
from flows.cli.demo import demo
from flows.cli.feed import feed
from flows.cli.grafana import dashboards_command, provision_command
from flows.cli.ingest import act, ingest, reconcile
from flows.cli.monitor import run
from flows.cli.replay import replay
from flows.cli.reports import backfill_command, report
from flows.cli.sim import import_group, simulate
from flows.cli.stack import stack
from flows.cli.top import top_command
from flows.exceptions import SlawatchError


class _Group(click.Group):
    """A click group that reports the project's own errors without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the chosen command; a `SlawatchError` becomes an `Error: ...` line, exit status 1.

        Args:
            ctx: The click context.

        Returns:
            What the command returns.

        Raises:
            click.ClickException: wrapping a `SlawatchError`, printed by click without a traceback.
        """
        try:
            return super().invoke(ctx)
        except SlawatchError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group)
@click.version_option(package_name="slawatch")
def main() -> None:
    """slawatch: a real-time SLA monitor for conversations over WhatsApp."""


for _command in (
    stack,
    run,
    replay,
    simulate,
    import_group,
    backfill_command,
    report,
    top_command,
    dashboards_command,
    provision_command,
    ingest,
    reconcile,
    act,
    demo,
    feed,
    check,
):
    main.add_command(_command)
