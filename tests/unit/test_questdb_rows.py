"""QuestDB writer without a server: table DDL, clock rows, configuration, buffering and back-off."""

from __future__ import annotations

import logging
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.connectors.questdb import (
    ClockTracker,
    Heartbeat,
    QuestDBWriter,
    TableNames,
    collapse_clocks,
    create_table_statements,
    record_is_open,
)
from flows.connectors.questdb.http import _format_conf, _parse_conf
from flows.connectors.questdb.sink import QuestDBSink
from flows.connectors.questdb.spill import Spill
from flows.core.records import ActionRecord, DeadLetter, SlaRecord

pytestmark = pytest.mark.unit

T0 = 1_795_000_000_000  # 2026-11-18T...Z


def sla(
    status: str = "started",
    *,
    conv: str = "c-1",
    cycle: int = 1,
    metric: str = "first_response",
    seq: int = 1,
    at: int = T0,
    started_at: int = T0,
    breached: bool = False,
    cause: str | None = None,
    late: bool = False,
    attempts: int | None = None,
    deadline_at: int | None = -1,
) -> SlaRecord:
    return SlaRecord(
        conversation_id=conv,
        cycle=cycle,
        metric=metric,
        seq=seq,
        status=status,
        at=at,
        policy_id="default",
        target=300_000,
        started_at=started_at,
        warn_at=started_at + 240_000,
        deadline_at=started_at + 300_000 if deadline_at == -1 else deadline_at,
        stopped_at=at if status in ("met", "stopped") else None,
        elapsed=at - started_at,
        breached=breached,
        agent_id="a-1",
        team_id="t-1",
        priority="P2",
        segment=None,
        lead_source=None,
        channel="whatsapp",
        late=late,
        cause=cause,
        attempts=attempts,
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- DDL -------------------------------------------------------------------------------------


def test_every_table_is_wal_day_partitioned_with_ttl_and_dedup_on_its_timestamp() -> None:
    """Each CREATE keeps QuestDB's clause order and starts the dedup keys with the timestamp."""
    statements = dict(create_table_statements(TableNames("p_"), ttl_days=30))
    expected = {
        "p_events": ("at", "at, conversation_id, cycle, metric, seq, status"),
        "p_clocks": ("started_at", "started_at, conversation_id, cycle, metric, seq"),
        "p_actions": ("at", "at, conversation_id, cycle, metric, seq, action, trigger, rule"),
        "p_deadletters": ("emitted_at", "emitted_at, source"),
        "p_heartbeat": ("at", "at, worker"),
        "p_csat": ("survey_at", "survey_at, conversation_id, survey_id"),
        "p_handle": ("started_at", "started_at, conversation_id, cycle, agent_id"),
    }
    assert set(statements) == set(expected)
    for table, (ts, keys) in expected.items():
        sql = statements[table]
        assert sql.startswith(f"CREATE TABLE IF NOT EXISTS {table} (")
        assert sql.endswith(
            f") TIMESTAMP({ts}) PARTITION BY DAY TTL 30 DAYS WAL DEDUP UPSERT KEYS({keys})"
        )


def test_dedup_key_columns_are_fixed_size_symbol_or_varchar() -> None:
    """No dedup key is a STRING column, which QuestDB refuses as a key."""
    for _table, sql in create_table_statements(TableNames()):
        columns = dict(
            line.strip().rstrip(",").split(" ", 1)
            for line in sql.split("(", 1)[1].split(")")[0].strip().splitlines()
        )
        keys = sql.rsplit("KEYS(", 1)[1].rstrip(")").split(", ")
        assert all(columns[key] in {"TIMESTAMP", "INT", "SYMBOL", "VARCHAR"} for key in keys)


@pytest.mark.parametrize("prefix", ["sla-", "a b_", "x;DROP TABLE y;", "1abc_"])
def test_table_prefix_that_is_not_a_plain_identifier_is_refused(prefix: str) -> None:
    """A prefix that would need quoting (or could inject SQL) is refused up front."""
    with pytest.raises(ValueError, match="table prefix"):
        TableNames(prefix)


# -- clock rows ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "metric", "is_open"),
    [
        ("started", "first_response", True),
        ("warning", "first_response", True),
        ("retargeted", "resolution", True),
        ("paused", "resolution", True),
        ("resumed", "resolution", True),
        ("breached", "first_response", True),
        ("breached", "service_window", False),
        ("met", "first_response", False),
        ("stopped", "first_response", False),
        ("closed", "next_response", False),
        ("cancelled", "first_response", False),
        ("attempt", "contact_attempts", True),
    ],
)
def test_open_flag_follows_the_latest_status(status: str, metric: str, is_open: bool) -> None:
    """A clock is open while running or breached-but-not-stopped; a breached window is over."""
    assert record_is_open(sla(status, metric=metric, breached=status == "breached")) is is_open


def test_only_the_last_record_of_each_clock_is_kept() -> None:
    """Several records of one clock in a batch collapse to the last one, per clock."""
    a1 = sla("started")
    a2 = sla("warning", at=T0 + 240_000)
    a3 = sla("met", at=T0 + 250_000)
    b1 = sla("started", conv="c-2")
    c1 = sla("started", metric="resolution")
    rows = collapse_clocks([a1, b1, a2, c1, a3])
    assert sorted(rows, key=lambda r: r.identity()) == [a3, c1, b1]


def test_breach_cause_is_carried_to_the_records_after_the_breach() -> None:
    """A clock stopped after its breach keeps the cause that only the breached record carries."""
    tracker = ClockTracker()
    rows: dict[Any, SlaRecord] = {}
    tracker.collect([sla("breached", at=T0 + 300_000, breached=True, cause="overloaded")], rows)
    rows.clear()
    tracker.collect([sla("stopped", at=T0 + 400_000, breached=True)], rows)
    (row,) = rows.values()
    assert (row.status, row.breached, row.cause) == ("stopped", True, "overloaded")


def test_a_breached_clock_closed_by_a_resolve_leaves_open_and_keeps_its_cause() -> None:
    """The `closed` row of a breached clock is not open and still says why it breached."""
    tracker = ClockTracker()
    rows: dict[Any, SlaRecord] = {}
    tracker.collect([sla("breached", at=T0 + 300_000, breached=True, cause="agent")], rows)
    rows.clear()
    tracker.collect([sla("closed", at=T0 + 900_000, breached=True)], rows)
    (row,) = rows.values()
    assert (row.status, row.breached, row.cause) == ("closed", True, "agent")
    assert not record_is_open(row)


def test_cause_is_dropped_when_a_late_correction_undoes_the_breach() -> None:
    """A clock corrected from breached to met has no breach cause any more."""
    tracker = ClockTracker()
    rows: dict[Any, SlaRecord] = {}
    tracker.collect([sla("breached", at=T0 + 300_000, breached=True, cause="agent")], rows)
    tracker.collect([sla("met", at=T0 + 200_000, late=True)], rows)
    (row,) = rows.values()
    assert (row.status, row.breached, row.cause) == ("met", False, None)


def test_a_clock_whose_start_moves_cancels_its_row_at_the_old_start() -> None:
    """A late event that moves a clock's start leaves one counted row, not two."""
    tracker = ClockTracker()
    rows: dict[Any, SlaRecord] = {}
    tracker.collect([sla("breached", at=T0 + 300_000, breached=True, cause="agent")], rows)
    rows.clear()
    moved = sla("met", at=T0 + 100_000, started_at=T0 - 60_000, late=True)
    tracker.collect([moved], rows)
    assert rows[(T0 - 60_000, "c-1", 1, "first_response", 1)] == moved
    old = rows[(T0, "c-1", 1, "first_response", 1)]
    assert (old.status, old.breached, old.cause, record_is_open(old)) == (
        "cancelled",
        False,
        None,
        False,
    )


def test_tracker_forgets_the_least_recently_seen_clocks_beyond_its_size() -> None:
    """Memory for clocks is bounded; recently seen clocks are the ones kept."""
    tracker = ClockTracker(max_clocks=2)
    rows: dict[Any, SlaRecord] = {}
    tracker.collect([sla(conv="c-1"), sla(conv="c-2"), sla(conv="c-1"), sla(conv="c-3")], rows)
    assert len(tracker) == 2
    assert ("c-1", 1, "first_response", 1) in tracker
    assert ("c-2", 1, "first_response", 1) not in tracker


def test_only_unknown_late_or_causeless_breached_clocks_need_a_table_lookup() -> None:
    """The writer reads the table only for a clock it does not know and cannot settle alone."""
    tracker = ClockTracker()
    assert not tracker.needs_lookup(sla("started"))
    assert tracker.needs_lookup(sla("met", late=True))
    assert tracker.needs_lookup(sla("stopped", breached=True))
    assert not tracker.needs_lookup(sla("breached", breached=True, cause="agent"))
    tracker.remember(("c-1", 1, "first_response", 1), T0, "agent")
    assert not tracker.needs_lookup(sla("stopped", breached=True))


CA = "contact_attempts"


def attempt(n: int, at: int, *, breached: bool = False, **kw: Any) -> SlaRecord:
    """The `attempt` record of the n-th attempt of the `contact_attempts` clock `c-1`."""
    return sla("attempt", metric=CA, at=at, attempts=n, breached=breached, **kw)


@pytest.mark.parametrize(
    ("before", "breached"),
    [("started", False), ("warning", False), ("breached", True), ("paused", False)],
)
def test_an_attempt_updates_the_count_and_keeps_the_clock_state(
    before: str, breached: bool
) -> None:
    """An `attempt` row takes the new count while its status stays the clock's state."""
    tracker = ClockTracker()
    rows: dict[Any, SlaRecord] = {}
    tracker.collect([sla(before, metric=CA, at=T0 + 60_000, attempts=0, breached=breached)], rows)
    rows.clear()
    tracker.collect([attempt(1, T0 + 120_000, breached=breached)], rows)
    (row,) = rows.values()
    assert (row.status, row.attempts, row.at, row.breached) == (
        before,
        1,
        T0 + 120_000,
        breached,
    )
    assert record_is_open(row)


def test_attempts_in_one_batch_collapse_to_the_last_count_and_the_state() -> None:
    """Started, warned, then three attempts in one batch: one row, warned, 3 attempts."""
    rows = collapse_clocks(
        [
            sla("started", metric=CA, attempts=0),
            attempt(1, T0 + 1_000),
            sla("warning", metric=CA, at=T0 + 240_000, attempts=1),
            attempt(2, T0 + 250_000),
            attempt(3, T0 + 260_000),
        ]
    )
    assert [(r.status, r.attempts) for r in rows] == [("warning", 3)]


def test_a_breached_clock_keeps_its_cause_through_attempts() -> None:
    """Attempts after a breach leave the row breached with the breach's cause."""
    tracker = ClockTracker()
    rows: dict[Any, SlaRecord] = {}
    tracker.collect(
        [sla("breached", metric=CA, at=T0 + 300_000, breached=True, cause="agent", attempts=1)],
        rows,
    )
    tracker.collect([attempt(2, T0 + 400_000, breached=True)], rows)
    (row,) = rows.values()
    assert (row.status, row.cause, row.attempts) == ("breached", "agent", 2)


@pytest.mark.parametrize(
    ("record", "state"),
    [
        (attempt(1, T0 + 1_000), "started"),
        (attempt(1, T0 + 250_000), "warning"),
        (attempt(1, T0 + 350_000, breached=True), "breached"),
        (attempt(1, T0 + 1_000, deadline_at=None), "paused"),
    ],
)
def test_an_attempt_of_an_unknown_clock_takes_the_state_its_fields_show(
    record: SlaRecord, state: str
) -> None:
    """With no earlier record known, an attempt's row is paused, breached, warned or started."""
    (row,) = collapse_clocks([record])
    assert (row.status, row.attempts) == (state, 1)


def test_a_stored_state_read_back_is_what_an_attempt_keeps() -> None:
    """A state read back from the table (after a restart) is kept by the next attempt."""
    tracker = ClockTracker()
    assert tracker.needs_lookup(attempt(1, T0 + 1_000))
    tracker.remember(("c-1", 1, CA, 1), T0, None, "warning")
    assert not tracker.needs_lookup(attempt(1, T0 + 1_000))
    rows: dict[Any, SlaRecord] = {}
    tracker.collect([attempt(2, T0 + 1_000)], rows)
    (row,) = rows.values()
    assert (row.status, row.attempts) == ("warning", 2)


def test_attempts_need_no_lookup_when_their_clock_starts_in_the_same_batch() -> None:
    """Only an attempt of a clock that nothing in the batch or the tracker knows is looked up."""
    tracker = ClockTracker()
    fresh = [sla("started", metric=CA, attempts=0), attempt(1, T0 + 1_000)]
    assert tracker.unknown_needing_lookup(fresh) == set()
    assert tracker.unknown_needing_lookup([attempt(1, T0 + 1_000)]) == {("c-1", 1, CA, 1)}


@st.composite
def lead_lifecycles(draw: st.DrawFn) -> tuple[list[SlaRecord], str, list[int]]:
    """A lead clock's records with attempts anywhere, its last state, and batch cut points."""
    states = draw(
        st.sampled_from(
            [
                ["started"],
                ["started", "warning"],
                ["started", "warning", "breached"],
                ["started", "paused"],
            ]
        )
    )
    records: list[SlaRecord] = []
    at, count, breached = T0, 0, False
    for state in states:
        breached = breached or state == "breached"
        records.append(sla(state, metric=CA, at=at, attempts=count, breached=breached))
        for _ in range(draw(st.integers(0, 3))):
            at += 60_000
            count += 1
            records.append(attempt(count, at, breached=breached))
        at += 60_000
    cuts = draw(st.lists(st.integers(0, len(records)), max_size=4))
    return records, states[-1], sorted(cuts)


@given(lead_lifecycles())
def test_a_lead_row_is_its_last_state_with_the_live_count_however_batched(
    case: tuple[list[SlaRecord], str, list[int]],
) -> None:
    """However the records are batched, the row has the last state and the latest count."""
    records, state, cuts = case
    tracker = ClockTracker()
    written: dict[Any, SlaRecord] = {}
    for start, end in zip([0, *cuts], [*cuts, len(records)], strict=True):
        rows: dict[Any, SlaRecord] = {}  # one request's rows, as the writer sends them
        tracker.collect(records[start:end], rows)
        written.update(rows)
    (row,) = written.values()
    assert (row.status, row.attempts) == (state, records[-1].attempts)
    assert collapse_clocks(records) == [row]


# -- configuration ---------------------------------------------------------------------------


def test_conf_string_round_trips_with_escaped_semicolons() -> None:
    """Parameters keep `;;`-escaped semicolons and come back in the same form."""
    protocol, params = _parse_conf("https::addr=db:9000;password=a;;b;username=u;")
    assert protocol == "https"
    assert params == {"addr": "db:9000", "password": "a;b", "username": "u"}
    assert _format_conf(protocol, params) == "https::addr=db:9000;password=a;;b;username=u;"


@pytest.mark.parametrize(
    "conf", ["tcp::addr=localhost:9009;", "addr=localhost:9000;", "http::username=u;"]
)
def test_conf_that_is_not_ilp_over_http_with_an_address_is_refused(conf: str) -> None:
    """Only ILP over HTTP(S) with an addr can run the DDL the writer needs."""
    with pytest.raises(ValueError, match="QuestDB configuration"):
        QuestDBWriter(conf)


# -- buffering without a server --------------------------------------------------------------


def test_rows_are_kept_and_nothing_raises_while_questdb_is_unreachable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Writes succeed while QuestDB is down; the rows wait in memory and the log says so."""
    clock = FakeClock()
    writer = QuestDBWriter(f"http::addr=127.0.0.1:{closed_port()};", monotonic=clock)
    with caplog.at_level(logging.WARNING, logger="flows.connectors.questdb"):
        writer.write_batch([sla("started"), sla("warning", at=T0 + 1)], emitted_at_ms=T0)
        writer.write_batch(
            [
                ActionRecord(
                    "notify",
                    "warning",
                    "c-1",
                    1,
                    "first_response",
                    1,
                    T0,
                    None,
                    None,
                    None,
                    "lead",
                    "r",
                ),
                DeadLetter("bad json", "{", "topic/0/7"),
            ],
            emitted_at_ms=T0,
        )
        writer.write_heartbeat(Heartbeat("0", at=T0))
    stats = writer.stats
    # 2 events + 1 clock row + 1 action + 1 dead letter + 1 heartbeat
    assert stats.rows_pending == 6
    assert stats.rows_written == 0
    assert stats.failing_since is not None
    assert "cannot take rows" in caplog.text
    assert "keeping" in caplog.text


def test_retries_back_off_and_maybe_flush_waits_for_the_back_off() -> None:
    """After a failure the next attempts wait 1 s, 2 s, 4 s... (not on every write)."""
    clock = FakeClock()
    writer = QuestDBWriter(
        f"http::addr=127.0.0.1:{closed_port()};",
        monotonic=clock,
        retry_backoff_s=(1.0, 8.0),
        flush_interval_s=0.0,
    )
    writer.write_batch([sla()], emitted_at_ms=T0)
    assert writer.stats.failures == 1
    writer.write_batch([sla("warning", at=T0 + 1)], emitted_at_ms=T0)
    assert writer.stats.failures == 1  # still inside the back-off
    clock.now += 1.0
    assert writer.maybe_flush() is False
    assert writer.stats.failures == 2
    clock.now += 1.5
    writer.maybe_flush()
    assert writer.stats.failures == 2
    clock.now += 0.5
    writer.maybe_flush()
    assert writer.stats.failures == 3
    writer.flush()  # an explicit flush ignores the back-off
    assert writer.stats.failures == 4


def test_rows_past_the_memory_bound_go_to_disk_in_order_and_none_is_dropped(
    tmp_path: Path,
) -> None:
    """Past max_buffered_rows nothing is dropped: the rows wait on disk, oldest first."""
    writer = QuestDBWriter(
        f"http::addr=127.0.0.1:{closed_port()};",
        max_buffered_rows=10,
        chunk_rows=4,
        retry_backoff_s=(60.0, 60.0),
        spill_dir=tmp_path / "spill",
    )
    for i in range(10):
        writer.write_batch([sla(conv=f"c-{i}")], emitted_at_ms=T0)  # 2 rows each
    stats = writer.stats
    assert stats.rows_dropped == 0
    assert stats.rows_pending == 20
    assert stats.rows_spilled == 20
    assert stats.spill_bytes > 0
    spill = Spill(tmp_path / "spill")
    order = []
    while (frame := spill.peek()) is not None:
        order += re.findall(rb'conversation_id="(c-[0-9]+)"', frame[0])
        spill.pop()
    assert order[::2] == [f"c-{i}".encode() for i in range(10)]


def test_writer_refuses_rows_after_close() -> None:
    """A closed writer fails loudly instead of silently keeping rows nobody will send."""
    writer = QuestDBWriter(f"http::addr=127.0.0.1:{closed_port()};")
    writer.close(timeout_s=0)
    with pytest.raises(Exception, match="closed"):
        writer.write_batch([sla()], emitted_at_ms=T0)


# -- sink adapter ----------------------------------------------------------------------------


class RecordingWriter:
    def __init__(self) -> None:
        self.batches: list[tuple[list[Any], int]] = []
        self.beats: list[Heartbeat] = []
        self.closed = False

    def write_batch(self, records: list[Any], emitted_at_ms: int) -> None:
        self.batches.append((list(records), emitted_at_ms))

    def write_heartbeat(self, heartbeat: Heartbeat) -> None:
        self.beats.append(heartbeat)

    def maybe_flush(self, now: float | None = None) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


def test_sink_partition_writes_all_items_as_one_batch_and_closes_the_writer() -> None:
    """Bytewax's list of record lists becomes one writer batch; heartbeats go beside it."""
    sink = QuestDBSink(f"http::addr=127.0.0.1:{closed_port()};", now_ms=lambda: 42)
    part: Any = sink.build("questdb_out", 0, 1)
    part.writer.close(timeout_s=0)
    fake = RecordingWriter()
    part.writer = fake
    first, second = [sla(), sla("warning")], [sla(conv="c-9")]
    beat = Heartbeat("0", at=T0)
    part.write_batch([first, beat, second])
    assert fake.batches == [([*first, *second], 42)]
    assert fake.beats == [beat]
    part.close()
    assert fake.closed


def test_a_batch_bigger_than_a_chunk_is_spilled_whole(tmp_path: Path) -> None:
    """One huge batch written while QuestDB is down is cut into chunks and kept whole on disk."""
    writer = QuestDBWriter(
        f"http::addr=127.0.0.1:{closed_port()};",
        max_buffered_rows=10,
        chunk_rows=3,
        retry_backoff_s=(60.0, 60.0),
        spill_dir=tmp_path,
    )
    writer.write_batch([sla(conv=f"c-{i}") for i in range(20)], emitted_at_ms=T0)
    stats = writer.stats
    assert stats.rows_dropped == 0
    assert stats.rows_pending == stats.rows_spilled == 40
