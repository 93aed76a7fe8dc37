"""`slawatch replay`: the engine over a JSONL file, with no services (SPEC §7)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from flows.core.durations import parse_duration
from flows.core.policies import load_policies
from flows.core.timefmt import parse_instant
from flows.exceptions import DurationError
from flows.replay import ReplaySummary, replay_records, write_jsonl
from flows.wallclock import now_ms


@click.command()
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
@click.option(
    "--horizon",
    envvar="SLAWATCH_HORIZON",
    default="24h",
    show_default=True,
    help="Correction horizon: later events become dead letters [env SLAWATCH_HORIZON].",
)
@click.option(
    "--max-future",
    envvar="SLAWATCH_MAX_FUTURE",
    default="5m",
    show_default=True,
    help=(
        "Events further ahead of the wall clock become dead letters; `off` accepts any instant "
        "(files generated for the future) [env SLAWATCH_MAX_FUTURE]."
    ),
)
def replay(
    *,
    events: Path,
    policies_path: Path,
    until: str | None,
    output: Path | None,
    lateness: str,
    horizon: str,
    max_future: str,
) -> None:
    """Run the SLA engine over a JSONL file of events, with no services (SPEC §7).

    The watermark is the largest event time seen minus --lateness; at the end it moves to --until
    (default, and never earlier than, the last event's time), so every warning and deadline due by
    then fires. Every SLA record, action and dead letter (a bad line's source is FILE:LINE) is
    written as JSONL; a one-line summary goes to stderr. Replaying the same file gives the same
    records apart from `emitted_at`. An invalid policy file or option stops it with one error line
    and exit status 1 (or 2 for a bad option value).
    """
    pset = load_policies(policies_path)
    for warning in pset.warnings:
        click.echo(f"warning: {policies_path}: {warning}", err=True)
    durations = {}
    for name, value in (("--lateness", lateness), ("--horizon", horizon)):
        durations[name] = _duration_option(name, value)
    future_ms = (
        None
        if max_future.strip().lower() == "off"
        else _duration_option("--max-future", max_future)
    )
    try:
        until_ms = None if until is None else parse_instant(until)
    except ValueError as exc:
        msg = f"--until: {exc}"
        raise click.BadParameter(msg) from exc
    summary = ReplaySummary()

    with events.open("rb") as src:
        records = replay_records(
            src,
            pset,
            source=str(events),
            until=until_ms,
            lateness_ms=durations["--lateness"],
            horizon_ms=durations["--horizon"],
            max_future_ms=future_ms,
            summary=summary,
        )
        if output is None:
            write_jsonl(records, sys.stdout.buffer, now_ms)
            sys.stdout.buffer.flush()
        else:
            with output.open("wb") as out:
                write_jsonl(records, out, now_ms)
    click.echo(summary.line(), err=True)


def _duration_option(name: str, value: str) -> int:
    """Parse a duration option, or fail with one line naming the option.

    Args:
        name: The option as typed (`--lateness`), for the message.
        value: The duration text (`45s`, `5m`, `4h`, `2d`).

    Returns:
        Milliseconds.

    Raises:
        click.BadParameter: the value is not a duration.
    """
    try:
        return parse_duration(value)
    except DurationError as exc:
        msg = f"{name}: {exc}"
        raise click.BadParameter(msg) from exc
