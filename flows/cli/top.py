"""Click command `slawatch top`: the live wallboard in a terminal."""

from __future__ import annotations

import time

import click

__all__ = ["top_command"]


def _conninfo(pg: str | None, from_stack: bool) -> str:
    if pg:
        return pg
    if from_stack:
        from flows.devstack import Stack  # noqa: PLC0415

        endpoints = Stack().status().endpoints
        if endpoints is None:
            from flows.reports.top import TopError  # noqa: PLC0415

            msg = "the local stack is not running; start it with `slawatch stack up`"
            raise TopError(msg)
        return endpoints.questdb_pg_conninfo
    from flows.settings import Settings  # noqa: PLC0415

    settings = Settings()
    host = settings.questdb_http.rsplit(":", 1)[0]
    return (
        f"host={host} port={settings.questdb_pg_port} user={settings.questdb_user} "
        f"password={settings.questdb_password.get_secret_value()} dbname=qdb sslmode=disable"
    )


@click.command("top")
@click.option("--pg", help="libpq connection string of QuestDB's PG wire (default: settings).")
@click.option("--from-stack", is_flag=True, help="Read the local stack's QuestDB.")
@click.option("--prefix", default=None, help="QuestDB table prefix (default: settings).")
@click.option("--timezone", default=None, help="The team's calendar zone (default: settings).")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between refreshes.")
@click.option("--rows", default=10, show_default=True, help="Rows shown per table.")
@click.option("--once", is_flag=True, help="Print one frame and exit.")
@click.option(
    "--channel",
    "channels",
    multiple=True,
    help="Show only this channel's clocks (repeat for several; default: every channel).",
)
def top_command(
    *,
    pg: str | None,
    from_stack: bool,
    prefix: str | None,
    timezone: str | None,
    interval: float,
    rows: int,
    once: bool,
    channels: tuple[str, ...],
) -> None:
    """The live wallboard in the terminal: the same numbers as Grafana's, from QuestDB."""
    import psycopg  # noqa: PLC0415
    from rich.console import Console  # noqa: PLC0415
    from rich.live import Live  # noqa: PLC0415

    from flows.reports.top import TopError, read_wallboard, render  # noqa: PLC0415

    if prefix is None or timezone is None:
        from flows.settings import Settings  # noqa: PLC0415

        settings = Settings()
        prefix = settings.table_prefix if prefix is None else prefix
        timezone = settings.report_timezone if timezone is None else timezone
    console = Console()
    try:
        with psycopg.connect(_conninfo(pg, from_stack), autocommit=True) as conn:
            if once:
                console.print(render(read_wallboard(conn, prefix, timezone, channels), limit=rows))
                return
            with Live(console=console, screen=False, auto_refresh=False) as live:
                while True:
                    board = read_wallboard(conn, prefix, timezone, channels)
                    live.update(render(board, limit=rows))
                    live.refresh()
                    time.sleep(interval)
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = f"cannot read QuestDB ({reason}); start it with `slawatch stack up` or pass --pg"
        raise TopError(msg) from exc
    except ValueError as exc:  # a --channel value that cannot go into the SQL
        raise TopError(str(exc)) from exc
    except KeyboardInterrupt:
        pass
