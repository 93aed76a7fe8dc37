"""`slawatch top`: the live wallboard in a terminal, from the same SQL as Grafana's.

Reads QuestDB over PG wire with exactly the queries of the Grafana wallboard
(`flows.reports.queries.WALLBOARD`) and draws them with `rich`: the seven tiles and the data age
coloured by the same thresholds, then the running clocks (every metric, `update` and
`team_ownership` included, with their team), the team clocks (each OLA stint running now: the
owning team, the conversation, the stint number and the time left), the agents, today's
breaches, WhatsApp windows closing and leads short of attempts (with the live attempt count).
Like the Grafana wallboard's `$channel` variable, `--channel` keeps the clocks of the channels
given (every channel by default). Refreshes every few seconds until Ctrl-C, or prints one frame
with `--once`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from flows.connectors.questdb import DEFAULT_PREFIX
from flows.connectors.questdb.views import DEFAULT_TIMEZONE
from flows.exceptions import SlawatchError
from flows.reports.queries import ALL_CHANNELS, WALLBOARD, Query

__all__ = ["TILES", "Wallboard", "read_wallboard", "render"]

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Tile:
    """A big number: its query, its label, how it is shown and when it turns yellow or red.

    Attributes:
        query: Name of the wallboard query (one row, one value).
        label: What the terminal shows above the number.
        warn: Value from which the tile is yellow.
        bad: Value from which it is red.
        higher_is_better: Compliance: red below `bad`, yellow below `warn`.
        unit: `""`, `"%"` or `"s"`.
    """

    query: str
    label: str
    warn: float
    bad: float
    higher_is_better: bool = False
    unit: str = ""

    def colour(self, value: float | None) -> str:
        """The tile's colour for `value` (grey when there is no value).

        Thresholds are inclusive: a count equal to `bad` is red, equal to `warn` yellow; with
        `higher_is_better`, a value equal to `warn` is green and equal to `bad` yellow.

        Args:
            value: the tile query's value, or None.

        Returns:
            A `rich` colour name: `green`, `yellow`, `red` or `grey50`.
        """
        if value is None:
            return "grey50"
        if self.higher_is_better:
            return "green" if value >= self.warn else "yellow" if value >= self.bad else "red"
        return "red" if value >= self.bad else "yellow" if value >= self.warn else "green"

    def text(self, value: float | None) -> str:
        """The number as shown.

        Per cent with one decimal (`97.5 %`), seconds as a duration (`2m05s`, `1h03m`),
        counts as whole numbers, and `-` when there is no value.

        Args:
            value: the tile query's value, or None.

        Returns:
            The text the tile shows.
        """
        if value is None:
            return "-"
        if self.unit == "%":
            return f"{value:.1f} %"
        if self.unit == "s":
            return _duration(value)
        return f"{value:.0f}"


#: The wallboard's tiles, with the thresholds of the Grafana panels (flows.grafana.dashboards).
TILES: Final = (
    Tile("open_conversations", "Open conversations", 60, 100),
    Tile("at_risk", "At risk", 1, 5),
    Tile("breached_now", "Breached now", 1, 3),
    Tile("unassigned_now", "Unassigned waiting", 1, 3),
    Tile("compliance_today", "Compliance today", 95, 90, higher_is_better=True, unit="%"),
    Tile("median_first_response_today", "Median 1st response", 120, 180, unit="s"),
    Tile("handovers_waiting", "Hand-overs waiting", 1, 3),
    Tile("data_age", "Data age", 30, 60, unit="s"),
)
_TABLES: Final = (
    "running_clocks",
    "team_clocks",
    "agent_load",
    "breach_feed",
    "windows_closing",
    "leads_short",
)
_BY_NAME: Final = {q.name: q for q in WALLBOARD}


@dataclass(frozen=True, slots=True)
class Wallboard:
    """One reading of every wallboard query.

    All queries of a reading run one after the other on one connection, each at its own
    `now()`, so two numbers of one frame may be a few milliseconds apart.

    Attributes:
        tiles: Each tile's value by query name (None when the query gave no value).
        tables: Each table's rows by query name, columns in the query's `columns` order.
    """

    tiles: dict[str, float | None]
    tables: dict[str, list[Row]]


def queries() -> list[Query]:
    """The queries `top` runs: the Grafana wallboard's, the same objects.

    Returns:
        The tiles' queries in `TILES` order, then the six tables' queries.
    """
    return [_BY_NAME[t.query] for t in TILES] + [_BY_NAME[name] for name in _TABLES]


def read_wallboard(
    conn: psycopg.Connection[Row],
    prefix: str = DEFAULT_PREFIX,
    timezone: str = DEFAULT_TIMEZONE,
    channels: Sequence[str] = (),
) -> Wallboard:
    """Run every wallboard query once on `conn` and return the numbers and rows.

    Args:
        conn: an open PG-wire connection to QuestDB.
        prefix: the monitor's table prefix.
        timezone: the team's IANA zone, which decides when "today" starts.
        channels: the channels whose clocks are shown (Grafana's `$channel`); none: all.

    Returns:
        Each tile's value as a float (None when its query gave no row or a null) and each
        table's rows as QuestDB returned them.

    Raises:
        psycopg.Error: QuestDB refused a query (for instance, the tables do not exist).
        ValueError: a channel holds a quote or a backslash.
    """
    tiles: dict[str, float | None] = {}
    tables: dict[str, list[Row]] = {}
    variables = {"channel": tuple(channels) if channels else ALL_CHANNELS}
    for query in queries():
        rows = conn.execute(query.render(prefix, timezone, variables)).fetchall()
        if query.kind == "stat":
            value = rows[0][0] if rows else None
            tiles[query.name] = None if value is None else float(value)
        else:
            tables[query.name] = rows
    return Wallboard(tiles, tables)


def _duration(seconds: float) -> str:
    """Format seconds, rounded, as `45s`, `2m05s` or `1h03m` (negative with a leading `-`)."""
    sign = "-" if seconds < 0 else ""
    s = abs(int(round(seconds)))
    if s >= 3600:
        return f"{sign}{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{sign}{s // 60}m{s % 60:02d}s"
    return f"{sign}{s}s"


def _left(seconds: float | None, state: str = "running") -> Text:
    """Format time left: red once past or breached, yellow when under 10 min or warned."""
    if seconds is None:
        return Text("-")
    label = _duration(seconds) + (" paused" if state == "paused" else "")
    style = (
        "red"
        if seconds < 0 or state == "breached"
        else "yellow"
        if seconds < 600 or state == "warning"
        else ""
    )
    return Text(label, style=style)


def _table(title: str, headers: Sequence[str], rows: list[list[RenderableType]]) -> Table:
    """Build a full-width table whose cells never wrap; an empty one shows a `-` row."""
    table = Table(title=title, title_justify="left", expand=True, show_edge=False, pad_edge=False)
    for header in headers:
        table.add_column(header, overflow="ellipsis", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    if not rows:
        table.add_row(*(["-"] + [""] * (len(headers) - 1)))
    return table


def _s(value: Any) -> str:
    """Return a cell's text: `-` for null."""
    return "-" if value is None else str(value)


def render(board: Wallboard, *, limit: int = 10) -> RenderableType:
    """Draw the wallboard: tiles on top, then the tables (at most `limit` rows each).

    The breach feed shows the breach's time of day in UTC (`HH:MM:SS`), as QuestDB returns it.

    Args:
        board: one reading, from `read_wallboard`.
        limit: most rows shown per table.

    Returns:
        A `rich` renderable to print or to show in a `Live` display.
    """
    tiles = Table.grid(expand=True, padding=(0, 1))
    for _ in TILES:
        tiles.add_column(justify="center", ratio=1)
    tiles.add_row(*(Text(t.label, style="bold") for t in TILES))
    tiles.add_row(
        *(
            Text(t.text(board.tiles.get(t.query)), style=f"bold white on {t.colour(v)}")
            for t in TILES
            for v in (board.tiles.get(t.query),)
        )
    )
    t = board.tables
    clocks: list[list[RenderableType]] = [
        [_s(r[0]), _s(r[1]), _s(r[2]), _s(r[3]), _s(r[4]), _s(r[5]), _left(r[7], r[6])]
        for r in t["running_clocks"][:limit]
    ]
    stints: list[list[RenderableType]] = [
        [_s(r[0]), _s(r[1]), _s(r[2]), _s(r[3]), _s(r[4]), _left(r[7], r[6])]
        for r in t["team_clocks"][:limit]
    ]
    agents: list[list[RenderableType]] = [
        [_s(r[0]), _s(r[1]), Text(_s(r[2]), style="red" if r[2] else "")]
        for r in t["agent_load"][:limit]
    ]
    feed: list[list[RenderableType]] = [
        [r[0].strftime("%H:%M:%S") if r[0] else "-", _s(r[1]), _s(r[2]), _s(r[3]), _s(r[6])]
        for r in t["breach_feed"][:limit]
    ]
    windows: list[list[RenderableType]] = [
        [_s(r[0]), _s(r[1]), _left(r[5])] for r in t["windows_closing"][:limit]
    ]
    leads: list[list[RenderableType]] = [
        [_s(r[0]), _s(r[1]), _s(r[3]), f"{_s(r[4])}/{_s(r[5])}", _left(r[6])]
        for r in t["leads_short"][:limit]
    ]
    return Group(
        tiles,
        Text(""),
        _table(
            "Running clocks by time left",
            ["conversation", "metric", "agent", "team", "prio", "channel", "left"],
            clocks,
        ),
        _table(
            "Team clocks (OLA) by time left",
            ["team", "conversation", "stint", "agent", "prio", "left"],
            stints,
        ),
        _table("Agents", ["agent", "open", "breaches today"], agents),
        _table("Breaches today", ["at (UTC)", "conversation", "metric", "agent", "cause"], feed),
        _table("WhatsApp windows closing < 2 h", ["conversation", "agent", "left"], windows),
        _table(
            "Leads short of attempts",
            ["conversation", "agent", "channel", "attempts/required", "left"],
            leads,
        ),
    )


class TopError(SlawatchError):
    """QuestDB cannot be read; start it (`slawatch stack up`) or check --pg."""
