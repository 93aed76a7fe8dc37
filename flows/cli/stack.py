"""`slawatch stack`: the local Kafka and QuestDB (`flows.devstack`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flows.devstack import Stack


def _progress(message: str) -> None:
    """Print a progress line of the stack on stderr (stdout stays for results)."""
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
    """Run a local Kafka and QuestDB from Maven Central jars (needs java 17+, and mvn once).

    The stack lives in one state folder (data, logs, ports, process ids); `up` is idempotent and
    `down` keeps the data. The monitor finds it with `slawatch run --from-stack`.
    """
    ctx.obj = Stack(directory=directory, progress=_progress)


@stack.command()
@click.pass_obj
def fetch(obj: Stack) -> None:
    """Fetch the Kafka and QuestDB jars into the cache (done by `up` when needed).

    Uses Maven (`mvn`) once; later runs find the jars in the cache and need no network.
    """
    jars = obj.fetch()
    click.echo(f"Jars ready in {jars.root}")


@stack.command()
@click.pass_obj
def up(obj: Stack) -> None:
    """Start the stack, or reuse it if it already runs; wait until both servers answer.

    Prints where Kafka and QuestDB answer. A failure to fetch, start or reach a server stops it with
    one error line; the servers' logs stay in the state folder.
    """
    obj.up()
    click.echo(obj.status().describe())


@stack.command()
@click.pass_obj
def down(obj: Stack) -> None:
    """Stop the stack's processes; data and logs stay in its folder.

    The next `up` starts them again on the same data.
    """
    if obj.down():
        click.echo(f"Stopped the stack in {obj.dir}")
    else:
        click.echo(f"No stack running in {obj.dir}")


@stack.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.pass_obj
def status(obj: Stack, as_json: bool) -> None:
    """Say whether the stack runs and where it answers.

    With --json, print the same as a JSON object (for scripts and the test fixtures).
    """
    current = obj.status()
    if as_json:
        click.echo(json.dumps(current.to_dict(), indent=2))
    else:
        click.echo(current.describe())
