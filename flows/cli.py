"""The `slawatch` command line.

Each command is a thin wrapper over a Python API: parse options, call it, print. Any
`SlawatchError` becomes one `Error: ...` line on stderr and exit status 1.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from flows.core.durations import parse_duration
from flows.core.policies import load_policies
from flows.core.timefmt import parse_instant
from flows.exceptions import SlawatchError
from flows.replay import ReplaySummary, replay_records, write_jsonl
from flows.settings import ENV_PREFIX, Settings
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


# -- run --------------------------------------------------------------------------------------

_SHORT_OPTIONS = {"recovery_dir": "-r", "snapshot_interval": "-s", "backup_interval": "-b"}


def _settings_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add one option per `Settings` field; its help names the environment variable."""
    for name, field in reversed(Settings.model_fields.items()):
        flag = "--" + name.replace("_", "-")
        decls = [flag, name] if name not in _SHORT_OPTIONS else [_SHORT_OPTIONS[name], flag, name]
        help_text = f"{field.description} [env {ENV_PREFIX}{name.upper()}]"
        command = click.option(*decls, default=None, metavar="VALUE", help=help_text)(command)
    return command


@main.command()
@_settings_options
@click.option(
    "-w",
    "--workers",
    "workers",
    type=int,
    default=1,
    show_default=True,
    help="Worker threads in this process.",
)
@click.option(
    "-i",
    "--process-id",
    "process_id",
    type=int,
    default=None,
    help="This process's index in a cluster (needs --addresses).",
)
@click.option(
    "-a",
    "--addresses",
    "addresses",
    default=None,
    help='host:port of every process of the cluster, ";"-separated, in process-id order.',
)
@click.option(
    "--from-stack",
    "from_stack",
    is_flag=True,
    help="Take the Kafka and QuestDB addresses from the running `slawatch stack`.",
)
@click.option(
    "--stack-dir",
    "stack_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="State folder of the stack for --from-stack [env SLAWATCH_STACK_DIR].",
)
@click.option(
    "--create-topics",
    "create_topics",
    type=int,
    default=None,
    metavar="PARTITIONS",
    help="Create missing input and output topics with this many partitions first.",
)
def run(
    *,
    workers: int,
    process_id: int | None,
    addresses: str | None,
    from_stack: bool,
    stack_dir: Path | None,
    create_topics: int | None,
    **options: str | None,
) -> None:
    """Run the live monitor: Kafka in, Kafka and QuestDB out, with recovery (SPEC §7).

    Every setting is read from its SLAWATCH_* environment variable or a .env file, unless the
    option is given. With --recovery-dir, a missing recovery store is created, and a restart
    resumes from the last snapshot: no clock is lost and no stored row is doubled.
    """
    # Imported here so that `slawatch --help` does not load Bytewax and librdkafka.
    from flows.runner import (  # noqa: PLC0415
        Cluster,
        ensure_topics,
        run_monitor,
        stack_overrides,
    )

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    given: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    if "kafka_config" in given:
        try:
            given["kafka_config"] = json.loads(given["kafka_config"])
        except json.JSONDecodeError as exc:
            msg = f"--kafka-config must be a JSON object: {exc}"
            raise SlawatchError(msg) from exc
    if from_stack:
        given = {**stack_overrides(stack_dir), **given}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        msg = f"invalid settings: {problems}"
        raise SlawatchError(msg) from exc
    cluster = Cluster(
        workers,
        process_id,
        tuple(a for a in (addresses or "").split(";") if a),
    )
    if create_topics is not None:
        created = ensure_topics(settings, create_topics)
        if created:
            click.echo(f"Created topics: {', '.join(created)}", err=True)
    run_monitor(settings, cluster)


# -- replay -----------------------------------------------------------------------------------


@main.command()
@click.argument("events", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--policies",
    "policies_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Policy file (YAML, SPEC §2-§3).",
)
@click.option("--until", default=None, help="Move the watermark to this instant at the end.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write records here (JSONL) instead of standard output.",
)
@click.option("--lateness", default="5s", show_default=True, help="Allowed lateness (a duration).")
def replay(
    events: Path, policies_path: Path, until: str | None, output: Path | None, lateness: str
) -> None:
    """Run the SLA engine over a JSONL file of events, with no services (SPEC §7)."""
    pset = load_policies(policies_path)
    try:
        until_ms = None if until is None else parse_instant(until)
    except ValueError as exc:
        msg = f"--until: {exc}"
        raise click.BadParameter(msg) from exc
    summary = ReplaySummary()

    def wall_ms() -> int:
        return time.time_ns() // 1_000_000

    with events.open("rb") as src:
        records = replay_records(
            src,
            pset,
            source=str(events),
            until=until_ms,
            lateness_ms=parse_duration(lateness),
            summary=summary,
        )
        if output is None:
            write_jsonl(records, sys.stdout.buffer, wall_ms)
            sys.stdout.buffer.flush()
        else:
            with output.open("wb") as out:
                write_jsonl(records, out, wall_ms)
    click.echo(summary.line(), err=True)


# -- feed -------------------------------------------------------------------------------------


@main.command()
@click.option("--from-stack", "from_stack", is_flag=True, help="Send to the local stack's Kafka.")
@click.option(
    "--bootstrap-servers",
    envvar="SLAWATCH_BOOTSTRAP_SERVERS",
    default="127.0.0.1:9092",
    show_default=True,
    help="Kafka bootstrap servers [env SLAWATCH_BOOTSTRAP_SERVERS].",
)
@click.option(
    "--topic",
    envvar="SLAWATCH_INPUT_TOPICS",
    default="wa.events",
    show_default=True,
    help="Topic to send events to [env SLAWATCH_INPUT_TOPICS, first topic].",
)
@click.option("--rate", default=30.0, show_default=True, help="New conversations per minute.")
@click.option("--duration", default=None, type=float, help="Stop after this many seconds.")
@click.option("--seed", default=None, type=int, help="Random seed, for a repeatable feed.")
def feed(
    *,
    from_stack: bool,
    bootstrap_servers: str,
    topic: str,
    rate: float,
    duration: float | None,
    seed: int | None,
) -> None:
    """Send a live simulated stream of WhatsApp conversation events to Kafka (the demo feed)."""
    from confluent_kafka import Producer  # noqa: PLC0415 - keep --help free of librdkafka

    from flows.feed import FeedPlan, run_feed  # noqa: PLC0415

    if from_stack:
        bootstrap_servers = (
            Stack(progress=_progress).status().to_dict()["kafka"]["bootstrap_servers"]
        )
    producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 50})
    topic = topic.split(",", maxsplit=1)[0]

    def send(key: str, value: bytes) -> None:
        producer.produce(topic, value=value, key=key)
        producer.poll(0)

    click.echo(f"Sending demo conversations to {topic} on {bootstrap_servers}", err=True)
    try:
        sent = run_feed(
            send, FeedPlan(conversations_per_minute=rate, seed=seed), duration_s=duration
        )
    except KeyboardInterrupt:
        sent = -1
    producer.flush(10)
    if sent >= 0:
        click.echo(f"Sent {sent} events", err=True)


from flows.grafana.cli import dashboards_command, provision_command  # noqa: E402

main.add_command(dashboards_command)
main.add_command(provision_command)

from flows.reports.cli import top_command  # noqa: E402

main.add_command(top_command)


if __name__ == "__main__":
    main()
