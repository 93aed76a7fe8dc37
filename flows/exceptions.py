"""The project's exceptions: one base class, one subclass per kind of failure."""

from __future__ import annotations


class SlawatchError(Exception):
    """Base class of every error slawatch raises on purpose."""


class PolicyError(SlawatchError):
    """A policy file is invalid; the message names the file, the line and the reason."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = path or "<policies>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")


class CalendarError(SlawatchError):
    """A calendar definition is invalid (bad interval, unknown weekday or time zone...)."""


class DurationError(SlawatchError):
    """A duration string such as `5m` cannot be parsed."""


class StackError(SlawatchError):
    """The local Kafka / QuestDB stack cannot be fetched, started or reached."""


class ConnectorError(SlawatchError):
    """Kafka or QuestDB refused or lost data the monitor had to read or write."""


class SimulationError(SlawatchError):
    """A business file, simulator option or import input is unusable; the message says why."""
