"""Running the live monitor: recovery store, topics, stack addresses, and Bytewax's `cli_main`.

`slawatch run` is a thin wrapper over `run_monitor`; it is the same as::

    python -m bytewax.recovery DIR N            # once, if DIR holds no store yet
    python -m bytewax.run "flows.monitor.flow:get_flow()" -r DIR -s SECS -b SECS [-w N|-i I -a ..]

with the settings taken from `SLAWATCH_*` variables, `.env` and the command's options.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bytewax.errors import BytewaxRuntimeError
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main

from flows.connectors.kafka.admin import ensure_topics, wait_for_kafka
from flows.connectors.questdb.conf import check_conf
from flows.core.policies import load_policies
from flows.exceptions import SlawatchError
from flows.monitor.flow import get_flow, questdb_conf
from flows.monitor.health import HealthBoard, HealthServer, KafkaProbe, serve_health
from flows.settings import Settings

__all__ = ["Cluster", "ensure_recovery_store", "run_monitor", "start_health"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Cluster:
    """How the monitor is spread over threads and processes (Bytewax's `-w`, `-i`, `-a`).

    Attributes:
        workers_per_process: Worker threads in this process (≥ 1).
        process_id: This process's index in `addresses`; None for a single process.
        addresses: `host:port` of every process of the cluster, the same list in each.
    """

    workers_per_process: int = 1
    process_id: int | None = None
    addresses: tuple[str, ...] = ()

    def check(self) -> None:
        """Refuse inconsistent options before anything starts.

        Raises:
            SlawatchError: fewer than one worker per process, a process id without addresses, or the
                other way round, or an id outside the address list.
        """
        if self.workers_per_process < 1:
            msg = f"workers per process must be at least 1, not {self.workers_per_process}"
            raise SlawatchError(msg)
        if (self.process_id is None) != (not self.addresses):
            msg = "a cluster needs both --process-id and --addresses (one per process)"
            raise SlawatchError(msg)
        if self.process_id is not None and not 0 <= self.process_id < len(self.addresses):
            msg = (
                f"--process-id {self.process_id} is not an index of the {len(self.addresses)} "
                "--addresses"
            )
            raise SlawatchError(msg)


def ensure_recovery_store(
    directory: Path, partitions: int, *, create: bool = True, wait_s: float = 60.0
) -> bool:
    """Make sure `directory` holds a Bytewax recovery store (some `part-*.sqlite3` files).

    Args:
        directory: the store's folder.
        partitions: how many partitions a new store gets.
        create: create the store if the folder holds none; if False, wait up to `wait_s` for
            another process to create it (a cluster sharing one folder: process 0 creates it).
        wait_s: how long to wait when `create` is False.

    Returns:
        True if a new store was created here.

    Raises:
        SlawatchError: `create` is False and no store appeared in time.
    """
    if any(directory.glob("part-*.sqlite3")):
        return False
    if create:
        directory.mkdir(parents=True, exist_ok=True)
        init_db_dir(directory, partitions)  # type: ignore[no-untyped-call]
        return True
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if any(directory.glob("part-*.sqlite3")):
            return False
    msg = (
        f"no recovery store in {directory} after {wait_s:.0f} s: process 0 creates it in a "
        "shared folder; with one folder per process, create the store once with "
        "`python -m bytewax.recovery DIR N` and give each process some of its partitions"
    )
    raise SlawatchError(msg)


def start_health(settings: Settings, workers: int) -> tuple[HealthBoard, HealthServer | None]:
    """Build this process's health board and serve it on `settings.health_address`.

    A default address that cannot be bound (another monitor on this host has it) is logged and
    the monitor runs without the endpoints; an address set explicitly must be served, or the
    start-up stops. An empty address serves nothing.

    Args:
        settings: The address, the allowed lag, the heartbeat interval and Kafka's address.
        workers: The worker threads of this process.

    Returns:
        The board (given to the dataflow) and the server, if one runs.

    Raises:
        SlawatchError: an explicit address is malformed or cannot be bound.
    """
    board = HealthBoard(
        workers=workers,
        max_lag_ms=settings.ready_max_lag_ms,
        stale_ms=max(3 * settings.heartbeat_interval_ms, 15_000),
        kafka=KafkaProbe(settings.kafka_common()),
        recovery_dir=settings.recovery_dir,
    )
    if not settings.health_address:
        return board, None
    try:
        server = serve_health(settings.health_address, board)
    except SlawatchError as exc:
        if "health_address" in settings.model_fields_set:
            raise
        _log.error("%s; running without them (set SLAWATCH_HEALTH_ADDRESS)", exc)
        return board, None
    _log.info("health endpoints on %s (/healthz, /readyz, /metrics)", server.url)
    return board, server


def run_monitor(
    settings: Settings, cluster: Cluster | None = None, *, create_topics: int | None = None
) -> None:
    """Run the live monitor in this process until it is stopped (blocks).

    Creates the recovery store if `settings.recovery_dir` is set and holds none, builds the dataflow
    and hands it to Bytewax. First it refuses what can be refused without Kafka (the cluster
    options, the policy file, the QuestDB configuration), then waits for Kafka if it does not
    answer yet (`wait_for_kafka`: one log line, then it starts when Kafka comes), and creates the
    missing topics if asked. In a cluster only process 0 creates a shared store;
    the others wait for it. Ctrl-C or SIGTERM ends it normally (logged, not raised).

    Args:
        settings: The configuration (topics, QuestDB, recovery, snapshot intervals).
        cluster: How it is spread; None is one process with one worker.
        create_topics: Create the input and output topics that are missing, with this many
            partitions; None creates none.

    Raises:
        SlawatchError: inconsistent cluster options, no recovery store in time, an invalid policy
            file, or Kafka / QuestDB refusing the start-up.
    """
    cluster = cluster or Cluster()
    cluster.check()
    # What can be refused without Kafka is refused before waiting for it (`get_flow` checks
    # these again, and then needs Kafka for the input partitions).
    load_policies(settings.policies)
    conf = questdb_conf(settings)
    if conf is not None:
        check_conf(conf, settings.table_prefix)
    # Served before the wait for Kafka, so that a probe sees "alive, not ready" meanwhile.
    health, server = start_health(settings, cluster.workers_per_process)
    try:
        _run(settings, cluster, health, create_topics)
    finally:
        if server is not None:
            server.close()


def _run(
    settings: Settings, cluster: Cluster, health: HealthBoard, create_topics: int | None
) -> None:
    """Wait for Kafka, create topics and the recovery store, then run Bytewax (blocks)."""
    wait_for_kafka(settings)
    if create_topics is not None:
        created = ensure_topics(settings, create_topics)
        if created:
            _log.info("created topics: %s", ", ".join(created))
    recovery: RecoveryConfig | None = None
    if settings.recovery_dir is not None:
        first = cluster.process_id in (None, 0)
        store = settings.recovery_dir
        if ensure_recovery_store(store, settings.recovery_partitions, create=first):
            _log.info(
                "created a recovery store of %d partitions in %s",
                settings.recovery_partitions,
                settings.recovery_dir,
            )
        recovery = RecoveryConfig(  # type: ignore[no-untyped-call]
            settings.recovery_dir, settings.backup_interval
        )
    flow = get_flow(settings, health=health)
    addresses: Sequence[str] | None = list(cluster.addresses) or None
    try:
        cli_main(  # type: ignore[no-untyped-call]
            flow,
            workers_per_process=cluster.workers_per_process,
            process_id=cluster.process_id,
            addresses=addresses,
            epoch_interval=settings.snapshot_interval,
            recovery_config=recovery,
        )
    except BytewaxRuntimeError as exc:
        # Ctrl-C or SIGTERM: Bytewax stops the workers and reports the signal as an error.
        if "signal received" not in str(exc):
            raise
        _log.info("stopped by a signal")
