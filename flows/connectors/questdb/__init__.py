"""QuestDB storage of slawatch's records.

`schema` names the tables and creates them; `clocks` folds records into the latest state of each
clock; `rows` builds ILP rows; `http` parses client configurations and runs SQL over `/exec`;
`writer` is the buffering ILP/HTTP writer, `spill` its durable queue on disk while QuestDB is down;
`sink` adapts the writer to Bytewax.
"""

from flows.connectors.questdb.clocks import ClockTracker, collapse_clocks, record_is_open
from flows.connectors.questdb.schema import (
    DEFAULT_PREFIX,
    DEFAULT_TTL_DAYS,
    TableNames,
    create_table_statements,
)
from flows.connectors.questdb.spill import SpillFullError
from flows.connectors.questdb.status import Heartbeat, WriterStats
from flows.connectors.questdb.writer import QuestDBWriter

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_TTL_DAYS",
    "ClockTracker",
    "Heartbeat",
    "QuestDBWriter",
    "SpillFullError",
    "TableNames",
    "WriterStats",
    "collapse_clocks",
    "create_table_statements",
    "record_is_open",
]
