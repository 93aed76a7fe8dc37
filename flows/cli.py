"""The `slawatch` command line.

Each command is a thin wrapper over a Python API: parse options, call it, print. Any
`SlawatchError` becomes one `Error: ...` line on stderr and exit status 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from flows.exceptions import SlawatchError
from flows.stack import Stack


class _Group(click.Group):
    """A click group that reports the project's own errors without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SlawatchError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Group)
@click.version_option(package_name="slawatch")
def main() -> None:
    """slawatch: a real-time SLA monitor for conversations over WhatsApp."""


# -- stack ------------------------------------------------------------------------------------


def _progress(message: str) -> None:
    click.echo(message, err=True)


@main.group()
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


if __name__ == "__main__":
    main()
