"""`slawatch simulate` and `slawatch import`: simulated traffic and real-data importers.

Registered on the main group in `flows/cli/__init__.py`. Errors are `SimulationError`s (one sentence
saying what to do), printed by the main group without a traceback.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

import click

from flows.core.timefmt import parse_instant
from flows.exceptions import SimulationError
from flows.sim.business import Business, load_business
from flows.sim.importers import ImportSummary, import_helpdesk, import_twcs
from flows.sim.output import send_live, write_jsonl
from flows.sim.simulator import DAY, Simulator, Timeline, default_start


def _now_ms() -> int:
    """Return the wall clock in epoch ms (the simulator's anchor; the core never reads it)."""
    return time.time_ns() // 1_000_000


def _instant(value: str | None, option: str) -> int | None:
    """Parse an optional instant option (RFC 3339 with offset, or epoch ms) into epoch ms UTC.

    Raises:
        SimulationError: the value is not an instant; the message names `option`.
    """
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as exc:
        msg = f"{option}: {exc}"
        raise SimulationError(msg) from exc


@click.command()
@click.option(
    "--business",
    "business_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Business YAML (agents, shifts, lead sources, volume); default: the built-in one, "
    "as in examples/business.yaml.",
)
@click.option(
    "--per-day",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="New conversations per weekday, instead of the business file's volume.",
)
@click.option("--seed", type=int, default=None, help="Random seed: same seed, same events.")
@click.option(
    "--start", default=None, metavar="INSTANT", help="First simulated instant (RFC 3339)."
)
@click.option(
    "--days",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Simulated days to produce [JSONL: default 7, ending now; live: until Ctrl-C].",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Time compression: 60 plays a simulated hour in one minute (live and JSONL).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    default=None,
    help="Write JSONL here (- for standard output), as fast as possible [default -].",
)
@click.option("--from-stack", is_flag=True, help="Send live to the local stack's Kafka.")
@click.option(
    "--stack-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SLAWATCH_STACK_DIR",
    default=None,
    help="State folder of the stack for --from-stack [env SLAWATCH_STACK_DIR].",
)
@click.option("--bootstrap-servers", default=None, help="Send live to this Kafka.")
@click.option(
    "--topic",
    envvar="SLAWATCH_INPUT_TOPICS",
    default="wa.events",
    show_default=True,
    help="Topic for live sending [env SLAWATCH_INPUT_TOPICS, first topic].",
)
def simulate(
    *,
    business_path: Path | None,
    per_day: float | None,
    seed: int | None,
    start: str | None,
    days: float | None,
    speed: float,
    output: Path | None,
    from_stack: bool,
    stack_dir: Path | None,
    bootstrap_servers: str | None,
    topic: str,
) -> None:
    """Simulate WhatsApp traffic of a business: to JSONL (history) or live to Kafka.

    JSONL mode writes `--days` of history ending now (or from `--start`) as fast as possible. Live
    mode (`--from-stack` or `--bootstrap-servers`) sends each event when it is due, keyed by
    conversation, stamped with the wall clock, `--speed` times faster than real time.

    Without --seed a random seed is chosen and printed, so any run can be repeated: the same
    business file, seed, start and span give the same events. A summary line goes to stderr.
    """
    business = load_business(business_path) if business_path else Business()
    if per_day is not None:
        business = business.model_copy(update={"conversations_per_day": per_day})
    live = from_stack or bootstrap_servers is not None
    if live and output is not None:
        msg = "give either --output (JSONL) or --from-stack / --bootstrap-servers (Kafka), not both"
        raise SimulationError(msg)
    first = _instant(start, "--start")
    if from_stack:
        from flows.devstack import running_endpoints  # noqa: PLC0415

        bootstrap_servers = running_endpoints(stack_dir, need_questdb=False).bootstrap_servers
    if seed is None:
        seed = random.SystemRandom().randrange(1_000_000)
        click.echo(f"Seed {seed} (pass --seed {seed} to repeat this run)", err=True)
    sim = Simulator(business, seed=seed)
    now = _now_ms()
    if live:
        origin = now if first is None else first
        end = None if days is None else origin + round(days * DAY)
        timeline = Timeline(origin=origin, anchor=now, speed=speed)
        assert bootstrap_servers is not None
        _send(sim, timeline, end, servers=bootstrap_servers, topic=topic.split(",", maxsplit=1)[0])
        return
    span = 7.0 if days is None else days
    # By default the history, compressed by --speed, ends now.
    origin = default_start(now, span / speed) if first is None else first
    timeline = Timeline(origin=origin, anchor=origin, speed=speed)
    stream = sim.events(origin, origin + round(span * DAY))
    with ExitStack() as stack:
        out: BinaryIO
        if output is None or str(output) == "-":
            out, where = sys.stdout.buffer, "standard output"
        else:
            out, where = stack.enter_context(_open_out(output)), str(output)
        summary = write_jsonl(stream, out, timeline)
        out.flush()
    click.echo(summary.line(sim.conversations, where), err=True)


def _open_out(path: Path) -> BinaryIO:
    """Open `path` for writing bytes.

    Raises:
        SimulationError: the file cannot be created; the message says what to check.
    """
    try:
        return path.open("wb")
    except OSError as exc:
        msg = f"cannot write {path}: {exc.strerror}; check the folder exists and is writable"
        raise SimulationError(msg) from exc


def _send(sim: Simulator, timeline: Timeline, end: int | None, *, servers: str, topic: str) -> None:
    """Send the simulation live to Kafka until `end` (None: until Ctrl-C), then print a summary.

    Ctrl-C stops it quietly ("Stopped."); closing the sender then flushes what it queued.
    """
    from flows.connectors.kafka.admin import EventSender  # noqa: PLC0415

    with EventSender(servers, topic) as sender:
        click.echo(
            f"Sending simulated traffic to {topic} on {servers} at {timeline.speed:g}x "
            "(Ctrl-C stops)",
            err=True,
        )
        try:
            summary = send_live(sim.events(timeline.origin, end), sender.send, timeline)
        except KeyboardInterrupt:
            click.echo("Stopped.", err=True)
            return
    click.echo(summary.line(sim.conversations, f"{topic} on {servers}"), err=True)


# -- import -------------------------------------------------------------------------------------


@click.group(name="import")
def import_group() -> None:
    """Convert real-data files into SPEC events (JSONL), with a summary that reconciles.

    Each importer writes SPEC §1 events and prints, on stderr, how many input rows became events and
    how many were skipped and why, so that the counts add up.
    """


_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_OUTPUT = click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    default=None,
    help="Write JSONL here (- for standard output) [default -].",
)


def _run_import(output: Path | None, convert: Callable[[BinaryIO], ImportSummary]) -> None:
    """Run one importer into --output (standard output by default) and print its summary lines."""
    with ExitStack() as stack:
        if output is None or str(output) == "-":
            out: BinaryIO = sys.stdout.buffer
        else:
            out = stack.enter_context(_open_out(output))
        summary = convert(out)
        out.flush()
    for line in summary.lines():
        click.echo(line, err=True)


@import_group.command()
@click.argument("file", type=_FILE)
@_OUTPUT
def twcs(file: Path, output: Path | None) -> None:
    """Import the Kaggle "Customer Support on Twitter" CSV (threads become conversations).

    Customer tweets become inbound messages and company replies outbound agent messages; the summary
    on stderr says how many rows were converted or skipped, and why.
    """
    _run_import(output, lambda out: import_twcs(file, out))


@import_group.command()
@click.argument("file", type=_FILE)
@_OUTPUT
@click.option(
    "--timezone",
    default="Europe/Rome",
    show_default=True,
    help="Time zone of the file's zone-less timestamps.",
)
def helpdesk(file: Path, output: Path | None, timezone: str) -> None:
    """Import the 4TU "Helpdesk" event log CSV (cases become conversations).

    Timestamps in the file carry no zone: --timezone says where they were recorded. The summary on
    stderr says how many rows were converted or skipped, and why.
    """
    _run_import(output, lambda out: import_helpdesk(file, out, timezone=timezone))
