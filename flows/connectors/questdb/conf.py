"""The writer's configuration string: the Sender's defaults, and the check at start-up."""

from __future__ import annotations

from typing import Final

from questdb import QuestDBError, Sender

from flows.connectors.questdb.http import _format_conf, _parse_conf
from flows.connectors.questdb.schema import DEFAULT_PREFIX, TableNames
from flows.exceptions import ConnectorError

SENDER_DEFAULTS: Final = (
    # The writer flushes itself and keeps failed rows; the Sender only retries briefly so a
    # QuestDB outage does not hold up the dataflow.
    ("auto_flush", "off"),
    ("retry_timeout", "1000"),
    ("request_timeout", "5000"),
    # An explicit version stops the Sender from asking the server at start-up, so the writer
    # can be built while QuestDB is down.
    ("protocol_version", "2"),
)


def sender_conf(conf: str) -> tuple[str, dict[str, str]]:
    """Return the protocol and parameters of `conf` with the writer's Sender defaults filled in.

    Raises:
        ValueError: `conf` is not a QuestDB configuration string.
    """
    protocol, params = _parse_conf(conf)
    for key, value in SENDER_DEFAULTS:
        params.setdefault(key, value)
    return protocol, params


def check_conf(conf: str, prefix: str = DEFAULT_PREFIX) -> None:
    """Check a writer configuration at start-up, before any worker builds its writer.

    Raises:
        ConnectorError: the configuration or the table prefix is unusable; the message names
            what is wrong in one line.
    """
    try:
        TableNames(prefix)
        Sender.from_conf(_format_conf(*sender_conf(conf)))
    except (ValueError, QuestDBError) as exc:
        msg = f"invalid QuestDB configuration: {exc}"
        raise ConnectorError(msg) from exc
