"""The project's exceptions: one base class, one subclass per kind of failure.

Every message is one sentence that says what went wrong and what to do; the CLI prints it as one
`Error: ...` line with exit status 1 and no traceback. Code outside the CLI raises these for
conditions a user can fix (bad files, options, unreachable services); anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations


class SlawatchError(Exception):
    """Base class of every error slawatch raises on purpose.

    Catch it to handle any user-fixable failure; the message is meant to be shown as is.
    """


class PolicyError(SlawatchError):
    """A policy file is invalid; the message names the file, the line and the reason.

    The message reads `<path>:<line>: <reason>` (or `<path>: <reason>` when no line applies).

    Args:
        message: The reason, saying what is allowed.
        path: The policy file; None shows `<policies>`.
        line: The 1-based line of the offending node, if known.

    Attributes:
        path: The policy file, as given.
        line: The 1-based line, or None.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = path or "<policies>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")


class CalendarError(SlawatchError):
    """A calendar definition is invalid (bad interval, unknown weekday or time zone...).

    Also raised by `Calendar.add` when a calendar never opens again and a target cannot be counted;
    the engine then leaves the clock without a deadline instead of stopping.
    """


class DurationError(SlawatchError):
    """A duration string such as `5m` cannot be parsed."""


class StackError(SlawatchError):
    """The local Kafka / QuestDB stack cannot be fetched, started or reached."""


class ConnectorError(SlawatchError):
    """Kafka or QuestDB refused or lost data the monitor had to read or write.

    Also raised at start-up when a topic is missing or the QuestDB configuration is unusable.
    """


class SimulationError(SlawatchError):
    """A business file, simulator option or import input is unusable; the message says why."""
