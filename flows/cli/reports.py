"""`slawatch backfill` and `slawatch report ...`: history into QuestDB, reports out of it.

Both read where QuestDB is from the monitor's settings (`SLAWATCH_QUESTDB_HTTP`,
`SLAWATCH_QUESTDB_PG_PORT`, `SLAWATCH_QUESTDB_USER`, `SLAWATCH_QUESTDB_PASSWORD`,
`SLAWATCH_TABLE_PREFIX`, or `.env`), the options below, or `--from-stack` (the running
`slawatch stack`). Errors are `SlawatchError`s: the CLI prints them as one line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from pydantic import ValidationError

from flows.core.durations import parse_duration
from flows.core.policies import load_policies
from flows.core.timefmt import parse_instant
from flows.exceptions import ConnectorError, SlawatchError
from flows.reports.render import FORMATS, Report, render
from flows.settings import Settings

if TYPE_CHECKING:
    from flows.reports.data import ReportStore

# The report builders read QuestDB through modules that load the `questdb` client (and numpy):
# they are imported inside the commands so that `slawatch --help` stays fast.

__all__ = ["backfill_command", "report"]


def _settings(
    *,
    from_stack: bool,
    stack_dir: Path | None,
    questdb_http: str | None,
    questdb_pg_port: int | None,
    table_prefix: str | None,
) -> Settings:
    """Return the monitor's `Settings` with the QuestDB options given on the command line applied.

    Precedence, lowest first: `.env` and `SLAWATCH_*` variables, the running stack's addresses
    (--from-stack), then the explicit options.

    Raises:
        SlawatchError: the resulting settings are invalid; the message names each field.
    """
    given: dict[str, Any] = {}
    if from_stack:
        from flows.devstack import stack_overrides  # noqa: PLC0415

        given.update(stack_overrides(stack_dir))
    for name, value in (
        ("questdb_http", questdb_http),
        ("questdb_pg_port", questdb_pg_port),
        ("table_prefix", table_prefix),
    ):
        if value is not None:
            given[name] = value
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        msg = f"invalid settings ({problems}); fix the option or its SLAWATCH_* variable"
        raise SlawatchError(msg) from exc


def _where_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options that say where QuestDB is.

    --from-stack, --stack-dir, --questdb-http, --questdb-pg-port and --table-prefix; each defaults
    to None so that the settings' own value applies (see `_settings`).

    Args:
        command: The click command to decorate.

    Returns:
        The decorated command; the options arrive in its `**where` keyword arguments.
    """
    options = [
        click.option(
            "--from-stack",
            "from_stack",
            is_flag=True,
            help="Use the QuestDB of the running `slawatch stack`.",
        ),
        click.option(
            "--stack-dir",
            "stack_dir",
            type=click.Path(file_okay=False, path_type=Path),
            envvar="SLAWATCH_STACK_DIR",
            default=None,
            help="State folder of the stack for --from-stack [env SLAWATCH_STACK_DIR].",
        ),
        click.option(
            "--questdb-http",
            default=None,
            help="QuestDB HTTP address host:port [env SLAWATCH_QUESTDB_HTTP].",
        ),
        click.option(
            "--questdb-pg-port",
            type=int,
            default=None,
            help="QuestDB PG wire port [env SLAWATCH_QUESTDB_PG_PORT].",
        ),
        click.option(
            "--table-prefix", default=None, help="Table name prefix [env SLAWATCH_TABLE_PREFIX]."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


# -- backfill ---------------------------------------------------------------------------------


@click.command("backfill")
@click.argument("events", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--policies",
    "policies_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Policy file (YAML, SPEC §2-§3).",
)
@click.option("--until", default=None, help="Move the watermark to this instant at the end.")
@click.option("--lateness", default="5s", show_default=True, help="Allowed lateness (a duration).")
@click.option(
    "--batch",
    "batch_size",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="Records per write to QuestDB.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_where_options
def backfill_command(
    *,
    events: Path,
    policies_path: Path,
    until: str | None,
    lateness: str,
    batch_size: int,
    quiet: bool,
    **where: Any,
) -> None:
    """Replay a history of events (JSONL) and store its records in QuestDB.

    The records go through the live monitor's own writer, so dashboards and reports show the
    history. Idempotent: backfilling the same file again stores each row once.

    The replay follows `slawatch replay` (same watermark, --until and --lateness). The tables are
    created first; a QuestDB that cannot be reached, or refuses the tables, stops it before anything
    is replayed. A progress bar shows on stderr (unless --quiet), then one summary line. Exit status
    1 if any row could not be stored: backfill again once QuestDB takes them.
    """
    from rich.console import Console  # noqa: PLC0415 - keep --help fast
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    from flows.connectors.questdb import QuestDBWriter  # noqa: PLC0415
    from flows.reports.backfill import BackfillProgress, backfill  # noqa: PLC0415

    pset = load_policies(policies_path)
    try:
        until_ms = None if until is None else parse_instant(until)
    except ValueError as exc:
        msg = f"--until: {exc}"
        raise click.BadParameter(msg) from exc
    lateness_ms = parse_duration(lateness)
    settings = _settings(**where)
    conf = (
        settings.questdb_conf.get_secret_value()
        if settings.questdb_conf is not None
        else f"http::addr={settings.questdb_http};"
    )
    try:
        writer = QuestDBWriter(conf, prefix=settings.table_prefix)
    except ValueError as exc:
        msg = f"{exc}; fix SLAWATCH_QUESTDB_HTTP or SLAWATCH_QUESTDB_CONF"
        raise SlawatchError(msg) from exc

    try:
        writer.ensure_tables()
    except ConnectorError as exc:
        writer.close(timeout_s=0)
        msg = (
            f"QuestDB does not answer at {writer.address}; start it with `slawatch stack up` "
            "(then pass --from-stack) or set SLAWATCH_QUESTDB_HTTP"
        )
        if "cannot be reached" not in str(exc):
            msg = f"{exc}; check SLAWATCH_QUESTDB_CONF (user, password or token)"
        raise SlawatchError(msg) from exc
    console = Console(stderr=True)
    bar = Progress(
        BarColumn(bar_width=24),
        TaskProgressColumn(),
        TextColumn("{task.fields[counts]},"),
        TextColumn("time left"),
        TimeRemainingColumn(compact=True),
        console=console,
        disable=quiet,
        transient=False,
    )
    started = time.monotonic()
    task = bar.add_task("backfill", total=events.stat().st_size or 1, counts="")

    def show(p: BackfillProgress) -> None:
        """Update the progress bar: bytes read, and events, records and events/s so far."""
        rate = p.events / max(time.monotonic() - started, 1e-6)
        counts = f"{p.events:,} events, {p.records:,} records, {rate:,.0f} events/s"
        bar.update(task, completed=p.bytes_read, counts=counts)

    with bar:
        summary = backfill(
            events,
            pset,
            writer,
            until=until_ms,
            lateness_ms=lateness_ms,
            batch_size=batch_size,
            progress=show,
        )
    click.echo(summary.line(), err=True)
    if summary.rows_lost:
        msg = f"{summary.rows_lost} rows were not stored; backfill again once QuestDB takes them"
        raise SlawatchError(msg)


# -- report -----------------------------------------------------------------------------------


def _zone(_ctx: click.Context, _param: click.Parameter, value: str) -> tzinfo:
    """Click callback of --tz: return the IANA zone (or UTC) named by `value`.

    Raises:
        click.BadParameter: the zone is unknown.
    """
    if value.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        msg = f"unknown time zone {value!r}; use an IANA name such as Asia/Jakarta"
        raise click.BadParameter(msg) from None


def _output_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --format, --output, --send and --tz.

    Args:
        command: The click command to decorate.

    Returns:
        The decorated command, receiving `fmt`, `output`, `send` and `tz`.
    """
    options = [
        click.option(
            "--format",
            "fmt",
            type=click.Choice(FORMATS),
            default="text",
            show_default=True,
            help="How to write the report.",
        ),
        click.option(
            "--output",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Write the report to this file instead of standard output.",
        ),
        click.option(
            "--send",
            is_flag=True,
            help="Send the report to the webhook / e-mail of SLAWATCH_NOTIFY_* instead.",
        ),
        click.option(
            "--tz",
            envvar="SLAWATCH_REPORT_TZ",
            default="UTC",
            show_default=True,
            callback=_zone,
            help="Time zone of days, weeks and months (IANA name) [env SLAWATCH_REPORT_TZ].",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _emit(report: Report, fmt: str, output: Path | None, send: bool) -> None:
    """Render `report` in `fmt` and send it, write it to `output`, or print it (in that order).

    Raises:
        SlawatchError: the output file cannot be written, or sending fails.
    """
    from flows.reports.send import NotifySettings, send_report  # noqa: PLC0415

    text = render(report, fmt)
    if send:
        for destination in send_report(report, text, fmt, NotifySettings()):
            click.echo(f"Sent {report.title!r} to {destination}", err=True)
        return
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            msg = f"cannot write {output} ({exc.strerror}); choose another --output"
            raise SlawatchError(msg) from exc
        return
    click.echo(text, nl=False)


def _store(where: dict[str, Any]) -> ReportStore:
    """Return a `ReportStore` reading QuestDB over PG wire where the options say it is."""
    from flows.reports.data import ReportStore  # noqa: PLC0415

    return ReportStore.from_settings(_settings(**where))


def _today(tz: tzinfo) -> date:
    """Return today's date in `tz` (the wall clock: reports default to the current period)."""
    return datetime.now(tz).date()


def _day(text: str | None, option: str, tz: tzinfo) -> date:
    """Parse a `YYYY-MM-DD` option, defaulting to today in `tz`.

    Raises:
        click.BadParameter: the text is not a date; the message names `option`.
    """
    if text is None:
        return _today(tz)
    try:
        return date.fromisoformat(text)
    except ValueError:
        msg = f"{text!r} is not a date; write it like 2026-11-23"
        raise click.BadParameter(msg, param_hint=option) from None


@click.group()
def report() -> None:
    """Reports from QuestDB as text, Markdown or CSV (printed, written or sent).

    Compliance in every report is met / (met + breached) over each clock's final outcome, with
    `stopped` and `closed` counted as breached and `cancelled` left out (SPEC §6). Days, weeks and
    months are local to --tz.
    """


@report.command()
@click.option("--week", default=None, help="ISO week, e.g. 2026-W47 [default: last week].")
@click.option("--agent", default=None, help="Only this agent's scorecard.")
@click.option(
    "--policies",
    "policies_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Policy file, to show the contact attempts required [env SLAWATCH_POLICIES].",
    envvar="SLAWATCH_POLICIES",
)
@_output_options
@_where_options
def scorecard(
    *,
    week: str | None,
    agent: str | None,
    policies_path: Path | None,
    fmt: str,
    output: Path | None,
    send: bool,
    tz: tzinfo,
    **where: Any,
) -> None:
    """Weekly scorecard: compliance per metric, response times, leads, breaches, trend.

    The week is an ISO week (Monday to Sunday in --tz), last week by default; with --agent it covers
    that agent only. With --policies it also shows the contact attempts each policy requires.
    """
    from flows.reports.builders import parse_week, scorecard_report  # noqa: PLC0415

    if week is None:
        last = date.fromordinal(_today(tz).toordinal() - 7).isocalendar()
        week = f"{last.year}-W{last.week:02d}"
    try:
        monday = parse_week(week)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--week") from None
    required = None
    if policies_path is not None:
        required = {
            policy.id: policy.targets["contact_attempts"].min_attempts
            for policy in load_policies(policies_path).policies
            if "contact_attempts" in policy.targets
        }
    report = scorecard_report(_store(where), monday, agent, tz, required)
    _emit(report, fmt, output, send)


@report.command()
@click.option("--date", "day", default=None, help="The day, e.g. 2026-11-23 [default: today].")
@_output_options
@_where_options
def daily(
    *, day: str | None, fmt: str, output: Path | None, send: bool, tz: tzinfo, **where: Any
) -> None:
    """Daily digest: breaches today, clocks due tomorrow, compliance per agent today."""
    from flows.reports.builders import daily_report  # noqa: PLC0415

    _emit(daily_report(_store(where), _day(day, "--date", tz), tz), fmt, output, send)


@report.command()
@click.option("--month", default=None, help="Month, e.g. 2026-11 [default: last month].")
@_output_options
@_where_options
def causes(
    *, month: str | None, fmt: str, output: Path | None, send: bool, tz: tzinfo, **where: Any
) -> None:
    """Monthly review: breaches by cause, and the agents, lead sources and hours behind each."""
    from flows.reports.builders import causes_report, parse_month  # noqa: PLC0415

    if month is None:
        first = _today(tz).replace(day=1)
        previous = date.fromordinal(first.toordinal() - 1)
        month = f"{previous.year}-{previous.month:02d}"
    try:
        first_day = parse_month(month)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--month") from None
    _emit(causes_report(_store(where), first_day, tz), fmt, output, send)


@report.command()
@click.option(
    "--days", type=click.IntRange(min=1), default=30, show_default=True, help="Days to look back."
)
@click.option("--until", "until", default=None, help="Last day of the period [default: today].")
@_output_options
@_where_options
def baseline(
    *,
    days: int,
    until: str | None,
    fmt: str,
    output: Path | None,
    send: bool,
    tz: tzinfo,
    **where: Any,
) -> None:
    """Median, p80, p90 time taken and compliance at candidate targets, per metric and source.

    The period is the --days days up to and including --until.
    """
    from flows.reports.builders import baseline_report  # noqa: PLC0415

    last_day = _day(until, "--until", tz)
    _emit(baseline_report(_store(where), last_day, days, tz), fmt, output, send)


@report.command()
@click.option("--quarter", default=None, help="Quarter, e.g. 2026-Q3 [default: last quarter].")
@_output_options
@_where_options
def quarterly(
    *, quarter: str | None, fmt: str, output: Path | None, send: bool, tz: tzinfo, **where: Any
) -> None:
    """Quarterly target review: compliance, time taken, tiers vs conversion, CSAT, suggestions.

    Per metric and team over the quarter; agents under 80 % two weeks in a row; per target a
    suggestion (tighten, keep, add capacity, loosen) with the figures behind it and the
    compliance the quarter would have had at the suggested target.
    """
    from flows.reports.quarterly import parse_quarter, quarterly_report  # noqa: PLC0415

    if quarter is None:
        today = _today(tz)
        first = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
        previous = date.fromordinal(first.toordinal() - 1)
        quarter = f"{previous.year}-Q{(previous.month - 1) // 3 + 1}"
    try:
        first_day = parse_quarter(quarter)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--quarter") from None
    _emit(quarterly_report(_store(where), first_day, tz), fmt, output, send)
