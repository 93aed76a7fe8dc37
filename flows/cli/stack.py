"""`slawatch stack`: the local Kafka and QuestDB (`flows.devstack`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flows.devstack import Stack


def _progress(message: str) -> None:
    click.echo(message, err=True)


@click.group()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SLAWATCH_STACK_DIR",
    default=None,
    help="State folder of the stack [env SLAWATCH_STACK_DIR; default <cache>/stack].",
)
@click.pass_context
def stack(ctx: click.Context, directory: Path | None) -> None:
    """Run a local Kafka and QuestDB from Maven Central jars (needs java 17+, and mvn once)."""
    ctx.obj = Stack(directory=directory, progress=_progress)


@stack.command()
@click.pass_obj
def fetch(obj: Stack) -> None:
    """Fetch the Kafka and QuestDB jars into the cache (done by `up` when needed)."""
    jars = obj.fetch()
    click.echo(f"Jars ready in {jars.root}")


@stack.command()
@click.pass_obj
def up(obj: Stack) -> None:
    """Start the stack, or reuse it if it already runs; wait until both servers answer."""
    obj.up()
    click.echo(obj.status().describe())


@stack.command()
@click.pass_obj
def down(obj: Stack) -> None:
    """Stop the stack's processes; data and logs stay in its folder."""
    if obj.down():
        click.echo(f"Stopped the stack in {obj.dir}")
    else:
        click.echo(f"No stack running in {obj.dir}")


@stack.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_obj
def status(obj: Stack, as_json: bool) -> None:
    """Say whether the stack runs and where it answers."""
    current = obj.status()
    if as_json:
        click.echo(json.dumps(current.to_dict(), indent=2))
    else:
        click.echo(current.describe())
