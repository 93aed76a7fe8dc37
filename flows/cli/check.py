"""`slawatch check`: configuration, policies and services, one line per problem."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("check")
@click.argument("policy_files", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--offline",
    is_flag=True,
    help="Check files and settings only: do not contact Kafka, QuestDB or Chatwoot.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds each service may take to answer.",
)
@click.pass_context
def check(
    ctx: click.Context, policy_files: tuple[Path, ...], offline: bool, timeout_s: float
) -> None:
    """Check the configuration and the services: one line per problem, exit 1 if any.

    Settings, policy files (calendars, teams), inbox and action configuration, and whether
    Kafka, QuestDB and the Chatwoot API answer. With no POLICY_FILES, the file
    SLAWATCH_POLICIES names is checked. In a team's CI: `slawatch check --offline
    policies/*.yaml`.
    """
    from flows.checks import check_all, describe  # noqa: PLC0415

    problems = check_all(policy_files, offline=offline, timeout_s=timeout_s)
    for line in describe(problems, offline=offline):
        click.echo(line)
    if problems:
        ctx.exit(1)
