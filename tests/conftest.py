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

The session stack reuses the jar cache (`SLAWATCH_CACHE_DIR`, default `<repo>/.cache/slawatch`).
Set `SLAWATCH_TEST_STACK_DIR` to run the tests against a long-lived stack in that folder instead
(started if needed and left running) when iterating locally.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from flows.devstack import Endpoints, Stack

Row = tuple[Any, ...]


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
        deadline = time.monotonic() + timeout
        rows: list[Row] = []
        with self.connect() as conn:
            while True:
                try:
                    rows = conn.execute(sql, params).fetchall()
                except psycopg.errors.Error:
                    # The table may not exist yet when the first ILP batch is still in flight.
                    rows = []
                if until(rows):
                    return rows
                if time.monotonic() > deadline:
                    shown = rows[:5]
                    message = f"after {timeout} s, {sql!r} gave {len(rows)} rows: {shown}"
                    raise AssertionError(message)
                time.sleep(0.1)

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
        name = f"{prefix}-{uuid.uuid4()}"
        new = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
        kafka_admin.create_topics([new], operation_timeout=30)[name].result(timeout=60)
        created.append(name)
        # Producing right after creation can race the partitions' leader election.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            topic = kafka_admin.list_topics(name, timeout=10).topics.get(name)
            if (
                topic is not None
                and topic.error is None
                and len(topic.partitions) == partitions
                and all(p.leader >= 0 for p in topic.partitions.values())
            ):
                return name
            time.sleep(0.1)
        message = f"topic {name} has no leader for all {partitions} partitions after 30 s"
        raise AssertionError(message)

    yield make
    if created:
        for future in kafka_admin.delete_topics(created, operation_timeout=30).values():
            future.exception(timeout=60)


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
