"""Shared fixtures: a private Kafka + QuestDB stack for the session, unique topics and tables.

Fixtures for integration tests (mark them `@pytest.mark.integration`):

- `stack` (session): `flows.devstack.Endpoints` of a private stack started for this test session
  in its own temp folder on free ports; `.bootstrap_servers`, `.questdb_http` ("127.0.0.1:port"),
  `.questdb_http_port`, `.questdb_pg_port`, `.questdb_ilp_tcp_port`, `.questdb_ilp_conf`
  (for `Sender.from_conf`), `.questdb_pg_conninfo`.
- `local_stack` (session): the `flows.devstack.Stack` behind it (its `.dir` holds logs and state).
- `kafka_admin` (session): a confluent-kafka `AdminClient` for the stack.
- `make_topic(partitions=1, *, prefix="test", config=None)`: creates a `uuid4` topic, deleted
  afterwards.
- `make_table(prefix="t", *, ddl=None)`: a unique QuestDB table name, dropped afterwards; `ddl`
  (with a `{table}` placeholder) is run to create it.
- `questdb` (session): a `QuestDB` helper over PG wire: `.connect()`, `.execute()`, `.query()`,
  `.wait_for_rows()`, `.wait_for_wal()`.

Waits use `tests.waitkit.wait_until`: base deadlines for an idle machine, stretched by the load
and by `SLAWATCH_TEST_TIMEOUT_SCALE`; `pytest.mark.timeout` limits are stretched to match.

The session stack reuses the jar cache (`SLAWATCH_CACHE_DIR`, default `<repo>/.cache/slawatch`).
Set `SLAWATCH_TEST_STACK_DIR` to run the tests against a long-lived stack in that folder instead
(started if needed and left running) when iterating locally.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from flows.devstack import Endpoints, Stack
from tests.integration.kafkakit import create_topic
from tests.waitkit import env_scale, scaled, wait_until

Row = tuple[Any, ...]

#: How much more than the marked `pytest.mark.timeout` a test may take on a loaded machine: the
#: waits inside stretch with the load (`tests.waitkit`), so the hard limit must stretch as well.
HARD_TIMEOUT_LOAD_ALLOWANCE = 2.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Stretch each `timeout` marker by `SLAWATCH_TEST_TIMEOUT_SCALE` and a load allowance."""
    factor = env_scale() * HARD_TIMEOUT_LOAD_ALLOWANCE
    for item in items:
        marker = item.get_closest_marker("timeout")
        if marker is not None and marker.args:
            item.add_marker(pytest.mark.timeout(marker.args[0] * factor))


class QuestDB:
    """Small helper for talking to the stack's QuestDB over PG wire (psycopg 3, autocommit)."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints

    def connect(self) -> psycopg.Connection[Row]:
        """Open a new autocommit connection (QuestDB has no real transactions)."""
        return psycopg.connect(self.endpoints.questdb_pg_conninfo, autocommit=True)

    def execute(self, sql: str, params: tuple[Any, ...] | None = None) -> None:
        """Run one statement (DDL, INSERT...)."""
        with self.connect() as conn:
            conn.execute(sql, params)

    def query(self, sql: str, params: tuple[Any, ...] | None = None) -> list[Row]:
        """Run one query and return all its rows."""
        with self.connect() as conn:
            return conn.execute(sql, params).fetchall()

    def wait_for_rows(
        self,
        sql: str,
        params: tuple[Any, ...] | None = None,
        *,
        count: int | None = None,
        until: Callable[[list[Row]], bool] | None = None,
        timeout: float = 30.0,
    ) -> list[Row]:
        """Poll `sql` until it returns rows: exactly `count` of them, or until `until(rows)`.

        With neither, waits for at least one row. Rows written over ILP become visible only
        after QuestDB applies the WAL, so tests poll instead of sleeping.

        Raises:
            AssertionError: The condition did not hold within `timeout` seconds (the message
                shows the last rows seen).
        """
        if until is None:
            until = (lambda rows: len(rows) == count) if count is not None else bool
        conn: psycopg.Connection[Row] | None = None

        def probe() -> list[Row]:
            nonlocal conn
            if conn is None or conn.closed:
                conn = self.connect()
            try:
                return conn.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                # The connection broke (QuestDB restarted, or is too busy): a new one next time.
                conn.close()
                conn = None
                raise

        def show(rows: list[Row]) -> str:
            return f"{len(rows)} rows: {rows[:5]}"

        try:
            return wait_until(
                probe,
                until,
                timeout=timeout,
                what=f"{sql!r} {params or ''}",
                show=show,
                # The table may not exist yet while the first ILP batch is still in flight.
                retry=(psycopg.Error,),
                every=0.05,
                every_max=0.5,
            )
        finally:
            if conn is not None:
                conn.close()

    def wait_for_wal(self, table: str, timeout: float = 30.0) -> None:
        """Wait until QuestDB has applied every committed transaction of a WAL table."""
        sql = "SELECT writerTxn, sequencerTxn, suspended FROM wal_tables() WHERE name = %s"
        rows = self.wait_for_rows(
            sql,
            (table,),
            until=lambda rows: bool(rows) and (rows[0][2] or rows[0][0] >= rows[0][1]),
            timeout=timeout,
        )
        assert not rows[0][2], f"WAL apply of {table} is suspended"


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack private to this test session, stopped at its end."""
    shared = os.environ.get("SLAWATCH_TEST_STACK_DIR")
    if shared:
        stack = Stack(Path(shared))
        stack.up()
        yield stack
        return
    stack = Stack(tmp_path_factory.mktemp("stack"))
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def stack(local_stack: Stack) -> Endpoints:
    """Where the session's Kafka and QuestDB answer."""
    endpoints = local_stack.status(probe=False).endpoints
    assert endpoints is not None
    return endpoints


@pytest.fixture(scope="session")
def kafka_admin(stack: Endpoints) -> AdminClient:
    """An admin client for the session's Kafka."""
    return AdminClient({"bootstrap.servers": stack.bootstrap_servers})


@pytest.fixture
def make_topic(kafka_admin: AdminClient) -> Iterator[Callable[..., str]]:
    """Factory of fresh topics with unique names; they are deleted after the test."""
    created: list[str] = []

    def make(
        partitions: int = 1, *, prefix: str = "test", config: dict[str, str] | None = None
    ) -> str:
        name = create_topic(kafka_admin, partitions, prefix=prefix, config=config)
        created.append(name)
        return name

    yield make
    if created:
        for future in kafka_admin.delete_topics(created, operation_timeout=scaled(30)).values():
            future.exception(timeout=scaled(60))


@pytest.fixture(scope="session")
def questdb(stack: Endpoints) -> QuestDB:
    """PG-wire helper for the session's QuestDB."""
    return QuestDB(stack)


@pytest.fixture
def make_table(questdb: QuestDB) -> Iterator[Callable[..., str]]:
    """Factory of unique QuestDB table names; the tables are dropped after the test."""
    names: list[str] = []

    def make(prefix: str = "t", *, ddl: str | None = None) -> str:
        name = f"{prefix}_{uuid.uuid4().hex}"
        names.append(name)
        if ddl is not None:
            questdb.execute(ddl.format(table=name))
        return name

    yield make
    for name in names:
        questdb.execute(f'DROP TABLE IF EXISTS "{name}"')
