"""Importers of real third-party data into SPEC §1 events (JSONL), documented in docs/IMPORTERS.md.

Each importer reads a whole CSV file, converts every usable row into one event, counts every
other row under a named skip reason, adds the few events a row implies but the file lacks
(counted as *derived*), and writes the events sorted by `occurred_at` (ties keep file order),
so a replay never sees an old event after a newer one. Its `ImportSummary` reconciles:
rows read = rows converted + rows skipped, and events written = rows converted + derived.
"""

from __future__ import annotations

import csv
import functools
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from flows.core.timefmt import format_instant
from flows.exceptions import SimulationError


@dataclass(slots=True)
class ImportSummary:
    """What an import read, converted, skipped (by reason), derived and wrote.

    Attributes:
        source: The input file, as named in the summary.
        rows_read: Data rows read (the header excluded).
        rows_converted: Rows that became one event each.
        skipped: Rows not used, per reason.
        derived: Events added that no row holds (e.g. `opened`), per kind.
        events_written: Events written.
        conversations: Distinct conversations in the output.
    """

    source: str
    rows_read: int = 0
    rows_converted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    derived: Counter[str] = field(default_factory=Counter)
    events_written: int = 0
    conversations: int = 0

    @property
    def rows_skipped(self) -> int:
        """Return how many rows were skipped, all reasons together."""
        return sum(self.skipped.values())

    def reconciles(self) -> bool:
        """Whether every row and every event is accounted for."""
        return (
            self.rows_read == self.rows_converted + self.rows_skipped
            and self.events_written == self.rows_converted + sum(self.derived.values())
        )

    def lines(self) -> list[str]:
        """Return the human summary: the two balances, then one line per reason.

        Reasons are listed most frequent first, skips before derived events.
        """
        out = [
            f"{self.source}: read {self.rows_read} rows = {self.rows_converted} converted + "
            f"{self.rows_skipped} skipped",
            f"wrote {self.events_written} events = {self.rows_converted} from rows + "
            f"{sum(self.derived.values())} derived, in {self.conversations} conversations",
        ]
        out += [f"  skipped {n}: {reason}" for reason, n in self.skipped.most_common()]
        out += [f"  derived {n}: {what}" for what, n in self.derived.most_common()]
        return out


def _write(events: list[tuple[int, int, dict[str, Any]]], out: BinaryIO) -> int:
    """Sort events by (instant, file order), stamp `occurred_at` as RFC 3339 and write JSONL.

    Args:
        events: (epoch ms, file order, event body without `occurred_at`); sorted in place.
        out: The binary stream written to.

    Returns:
        The number of events written.
    """
    events.sort(key=lambda e: (e[0], e[1]))
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    for at, _, body in events:
        body["occurred_at"] = format_instant(at)
        out.write(dumps(body, option=newline))
    return len(events)


def _read_text(path: Path) -> str:
    """Return a file's text, decoded as UTF-8 with line endings left as they are.

    Raises:
        SimulationError: the file cannot be read or is not UTF-8; the message says what to do.
    """
    try:
        # Bytes, not read_text: universal newlines would turn the bare \r of a field into rows.
        return path.read_bytes().decode("utf-8")
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror}; check the path"
        raise SimulationError(msg) from exc
    except UnicodeDecodeError as exc:
        msg = f"{path} is not UTF-8 text ({exc.reason}); convert it to UTF-8 first"
        raise SimulationError(msg) from exc


# -- Twitter customer support (Kaggle twcs) --------------------------------------------------

TWCS_COLUMNS = (
    "tweet_id",
    "author_id",
    "inbound",
    "created_at",
    "text",
    "response_tweet_id",
    "in_response_to_tweet_id",
)


@dataclass(frozen=True, slots=True)
class Tweet:
    """The fields of one tweet that the import uses (never its text).

    Attributes:
        tweet_id: The tweet's id.
        author_id: The customer's or company's handle.
        inbound: Whether a customer wrote it.
        at: When it was posted, epoch ms UTC.
        parent: The tweet it answers, if any.
    """

    tweet_id: int
    author_id: str
    inbound: bool
    at: int
    parent: int | None


def parse_twcs_row(row: dict[str, str]) -> Tweet | str:
    """Return the row's `Tweet`, or the reason it cannot be used.

    The text is never read. `created_at` is Twitter's `Tue Oct 31 22:10:47 +0000 2017` form;
    `in_response_to_tweet_id` may be written as a float (`123.0`), as pandas exports it.

    Args:
        row: The CSV row by column name.

    Returns:
        The tweet, or a skip reason naming the column at fault.
    """
    tweet_id = row.get("tweet_id", "").strip()
    if not tweet_id.isdigit():
        return "tweet_id is not a number"
    author = row.get("author_id", "").strip()
    if not author:
        return "author_id is empty"
    inbound = row.get("inbound", "").strip()
    if inbound not in ("True", "False"):
        return "inbound is neither True nor False"
    try:
        at = datetime.strptime(row.get("created_at", "").strip(), "%a %b %d %H:%M:%S %z %Y")
    except ValueError:
        return "created_at is not like 'Tue Oct 31 22:10:47 +0000 2017'"
    parent_text = row.get("in_response_to_tweet_id", "").strip()
    parent: int | None = None
    if parent_text:
        try:
            value = float(parent_text)
        except ValueError:
            return "in_response_to_tweet_id is not a number"
        if not value.is_integer() or value <= 0:
            return "in_response_to_tweet_id is not a tweet id"
        parent = int(value)
    return Tweet(int(tweet_id), author, inbound == "True", int(at.timestamp() * 1000), parent)


def twcs_threads(tweets: Iterable[Tweet]) -> dict[int, int]:
    """Map each tweet id to the id of its thread's root.

    The root is the oldest ancestor present in the data: a reply whose parent is not in the
    file (the sample is cut) starts its own thread.
    """
    by_id = {t.tweet_id: t for t in tweets}
    roots: dict[int, int] = {}
    for tweet_id in by_id:
        path = []
        current = tweet_id
        while current not in roots:
            path.append(current)
            parent = by_id[current].parent
            if parent is None or parent not in by_id or parent in path:
                roots[current] = current
                break
            current = parent
        root = roots[current]
        for node in path:
            roots[node] = root
    return roots


def twcs_conversation_id(root: int) -> str:
    """Return the conversation id of the thread rooted at tweet `root`: `twcs-<root>`."""
    return f"twcs-{root}"


def read_twcs(path: Path, summary: ImportSummary) -> list[Tweet]:
    """Read the usable tweets of a twcs CSV, counting every row in `summary`.

    Rows with the wrong number of columns, unusable fields or a repeated tweet id are skipped with
    their reason.

    Raises:
        SimulationError: the file cannot be read or lacks the twcs columns.
    """
    # A record of the sample holds bare carriage returns in an unquoted field, which ends a
    # row for Python's csv module: they are not line breaks, so they become spaces.
    text = _read_text(path).replace("\r", " ")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or not set(TWCS_COLUMNS) <= set(header):
        msg = f"{path} is not a twcs CSV (columns {', '.join(TWCS_COLUMNS)}); check the file"
        raise SimulationError(msg)
    tweets: list[Tweet] = []
    seen: set[int] = set()
    for values in reader:
        summary.rows_read += 1
        if len(values) != len(header):
            summary.skipped[f"{len(values)} columns instead of {len(header)}"] += 1
            continue
        parsed = parse_twcs_row(dict(zip(header, values, strict=True)))
        if isinstance(parsed, str):
            summary.skipped[parsed] += 1
        elif parsed.tweet_id in seen:
            summary.skipped["tweet_id repeats an earlier row"] += 1
        else:
            seen.add(parsed.tweet_id)
            tweets.append(parsed)
    return tweets


def import_twcs(path: Path, out: BinaryIO) -> ImportSummary:
    """Convert the twcs CSV at `path` into message events written to `out` as JSONL.

    Each tweet becomes one `message`: inbound tweets are customer messages, company tweets are agent
    messages whose `agent_id` is the company handle; `channel` is `twitter`. A thread is a
    conversation (see `twcs_threads`). No events are derived.

    Args:
        path: The CSV file.
        out: Where the JSONL goes (sorted by `occurred_at`).

    Returns:
        The reconciling summary.

    Raises:
        SimulationError: the file cannot be read or is not a twcs CSV.
    """
    summary = ImportSummary(source=str(path))
    tweets = read_twcs(path, summary)
    roots = twcs_threads(tweets)
    events: list[tuple[int, int, dict[str, Any]]] = []
    for order, tweet in enumerate(tweets):
        body: dict[str, Any] = {
            "event_id": f"twcs-{tweet.tweet_id}",
            "type": "message",
            "conversation_id": twcs_conversation_id(roots[tweet.tweet_id]),
            "direction": "inbound" if tweet.inbound else "outbound",
            "author": "customer" if tweet.inbound else "agent",
            "message_id": str(tweet.tweet_id),
            "channel": "twitter",
        }
        if not tweet.inbound:
            body["agent_id"] = tweet.author_id
        events.append((tweet.at, order, body))
        summary.rows_converted += 1
    summary.conversations = len(set(roots.values()))
    summary.events_written = _write(events, out)
    return summary


# -- 4TU Helpdesk event log ---------------------------------------------------------------------

HELPDESK_HEADER = ("Case ID", "Activity", "Resource", "Complete Timestamp")
_HELPDESK_TIME = "%Y/%m/%d %H:%M:%S"
#: Column positions (the header repeats `Variant`, so columns are found by position).
_CASE, _ACTIVITY, _RESOURCE, _TIME = 0, 1, 2, 3
_SERVICE_LEVEL, _WORKGROUP = 12, 15
_WORK_RESUMES = ("Take in charge ticket", "Wait", "Assign seriousness")


def _value_number(text: str) -> str | None:
    """Return N of an anonymised `Value N`, or None."""
    head, _, number = text.strip().partition(" ")
    return number if head == "Value" and number.isdigit() else None


def _body(conv: str, base: str, etype: str, /, suffix: str = "", **fields: Any) -> dict[str, Any]:
    """Return an event body for helpdesk conversation `conv`; fields that are None are left out.

    The event id is `base` (the conversation and CSV line) plus `suffix` for derived events.
    """
    body = {"event_id": base + suffix, "type": etype, "conversation_id": conv}
    body.update({k: v for k, v in fields.items() if v is not None})
    return body


def _snake(text: str) -> str:
    """Return `text` lower-cased, spaces as underscores (`Resolve ticket` → `resolve_ticket`)."""
    return "_".join(text.lower().split())


class _Case:
    """The state of one helpdesk case while its rows are converted."""

    __slots__ = ("conv", "resolved", "started")

    def __init__(self, conv: str) -> None:
        """Start a case that has not opened yet and is not resolved."""
        self.conv = conv
        self.started = False
        self.resolved = False


def import_helpdesk(path: Path, out: BinaryIO, *, timezone: str = "Europe/Rome") -> ImportSummary:
    """Convert the 4TU Helpdesk CSV at `path` into events written to `out` as JSONL.

    Mapping (docs/IMPORTERS.md explains each choice): a case is a conversation; its first row also
    derives `opened` and, unless it is `Insert ticket`, the customer's inbound message; `Insert
    ticket` is an inbound customer message; `Assign seriousness` sets the priority (`service_level`
    Value N -> PN); `Take in charge ticket` assigns the Resource; `Wait` sets status pending;
    `Resolve ticket` and `Closed` resolve (a second one is skipped: already resolved); work after a
    resolve derives `reopened`; other activities become `activity` events of kind `other`. Zone-less
    timestamps are read in `timezone`.

    Args:
        path: The CSV file.
        out: Where the JSONL goes (sorted by `occurred_at`).
        timezone: The IANA zone of the file's timestamps.

    Returns:
        The reconciling summary.

    Raises:
        SimulationError: unknown time zone, unreadable file, or not a Helpdesk CSV.
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        msg = f"unknown time zone {timezone!r}; give an IANA name such as Europe/Rome"
        raise SimulationError(msg) from exc
    summary = ImportSummary(source=str(path))
    reader = csv.reader(io.StringIO(_read_text(path)))
    header = next(reader, None)
    if header is None or tuple(header[:4]) != HELPDESK_HEADER or len(header) <= _WORKGROUP:
        msg = f"{path} is not a Helpdesk CSV (starting {', '.join(HELPDESK_HEADER)}); check it"
        raise SimulationError(msg)
    events: list[tuple[int, int, dict[str, Any]]] = []
    cases: dict[str, _Case] = {}
    seen_rows: set[tuple[str, ...]] = set()
    order = 0

    def add(at: int, body: dict[str, Any], derived: str | None = None) -> None:
        """Queue one event: a converted row, or (with `derived`) an event the row implies."""
        nonlocal order
        order += 1
        events.append((at, order, body))
        if derived is None:
            summary.rows_converted += 1
        else:
            summary.derived[derived] += 1

    for lineno, values in enumerate(reader, start=2):
        summary.rows_read += 1
        if len(values) != len(header):
            summary.skipped[f"{len(values)} columns instead of {len(header)}"] += 1
            continue
        row = tuple(values)
        if row in seen_rows:
            summary.skipped["exact duplicate of an earlier row"] += 1
            continue
        seen_rows.add(row)
        case_id, activity, resource = (v.strip() for v in values[:3])
        if not case_id:
            summary.skipped["Case ID is empty"] += 1
            continue
        try:
            # The file has no zone: the time zone is given (`timezone`) and attached below.
            local = datetime.strptime(values[_TIME].strip(), _HELPDESK_TIME)  # noqa: DTZ007
        except ValueError:
            summary.skipped["Complete Timestamp is not like 2012/10/9 14:50:17"] += 1
            continue
        at = int(local.replace(tzinfo=zone).astimezone(UTC).timestamp() * 1000)
        agent = f"res-{n}" if (n := _value_number(resource)) else None
        level = _value_number(values[_SERVICE_LEVEL])
        priority = f"P{level}" if level in ("1", "2", "3", "4") else None
        group = _value_number(values[_WORKGROUP])
        team = f"wg-{group}" if group else None
        case = cases.get(case_id)
        if case is None:
            case = cases[case_id] = _Case(f"helpdesk-{_snake(case_id).replace('_', '-')}")
        conv = case.conv
        base = f"{conv}-{lineno}"

        event = functools.partial(_body, conv, base)
        if not activity:
            summary.skipped["Activity is empty"] += 1
            continue
        needs_agent = activity == "Take in charge ticket" or activity not in KNOWN_ACTIVITIES
        if needs_agent and agent is None:
            summary.skipped[f"{activity}: Resource is not 'Value N'"] += 1
            continue
        if activity in ("Resolve ticket", "Closed") and case.resolved:
            summary.skipped[f"{activity}: case already resolved"] += 1
            continue
        if not case.started:
            case.started = True
            add(
                at,
                event("conversation", "-opened", action="opened", priority=priority, team_id=team),
                "opened (first row of a case)",
            )
            if activity != "Insert ticket":
                add(
                    at,
                    event("message", "-ticket", direction="inbound", author="customer"),
                    "inbound customer message (the ticket, first row of a case)",
                )
        elif case.resolved and activity in _WORK_RESUMES:
            case.resolved = False
            add(
                at,
                event("conversation", "-reopened", action="reopened"),
                "reopened (work on a resolved case)",
            )
        if activity == "Insert ticket":
            add(at, event("message", direction="inbound", author="customer"))
            case.resolved = False
        elif activity == "Assign seriousness":
            add(at, event("conversation", action="updated", priority=priority))
        elif activity == "Take in charge ticket":
            add(
                at,
                event("assignment", action="assigned", agent_id=agent, team_id=team, by="manual"),
            )
        elif activity == "Wait":
            add(at, event("conversation", action="updated", status="pending"))
        elif activity in ("Resolve ticket", "Closed"):
            add(at, event("conversation", action="resolved", outcome=_snake(activity)))
            case.resolved = True
        else:
            add(at, event("activity", kind="other", agent_id=agent, outcome=_snake(activity)))
    summary.conversations = len(cases)
    summary.events_written = _write(events, out)
    return summary


#: Activities with their own mapping; any other becomes an `activity` of kind `other`.
KNOWN_ACTIVITIES = frozenset(
    {
        "Insert ticket",
        "Assign seriousness",
        "Take in charge ticket",
        "Wait",
        "Resolve ticket",
        "Closed",
    }
)
