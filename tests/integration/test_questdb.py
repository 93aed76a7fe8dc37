"""QuestDBWriter and QuestDBSink against the session's real QuestDB: values, idempotence, clocks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from flows.connectors.questdb import (
    Heartbeat,
    QuestDBWriter,
    TableNames,
    create_table_statements,
)
from flows.connectors.questdb.sink import QuestDBSink
from flows.connectors.questdb.views import ViewNames, create_view_statements
from flows.core.records import ActionRecord, CsatRecord, DeadLetter, HandleRecord, SlaRecord
from flows.devstack import Endpoints
from tests.conftest import QuestDB
from tests.questdbkit import DAY, MINUTE, drop_tables, new_prefix, now_ms, sla, to_ms

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

T0 = now_ms() - 3 * DAY


@pytest.fixture
def prefix(questdb: QuestDB) -> Iterator[str]:
    """A table prefix of this test only; its tables are dropped afterwards."""
    name = new_prefix()
    yield name
    drop_tables(questdb, name)


@pytest.fixture
def writer(stack: Endpoints, prefix: str) -> Iterator[QuestDBWriter]:
    """A writer on the session's QuestDB whose tables exist."""
    w = QuestDBWriter(stack.questdb_ilp_conf, prefix=prefix)
    w.ensure_tables()
    yield w
    w.close()


def settle(questdb: QuestDB, prefix: str) -> None:
    """Wait until QuestDB has applied everything written to the prefix's tables."""
    for table in TableNames(prefix).all():
        questdb.wait_for_wal(table)


def clock_row(questdb: QuestDB, prefix: str, conv: str) -> list[tuple[Any, ...]]:
    return questdb.query(
        "SELECT started_at, status, open, breached, cause, elapsed_s, updated_at "
        f"FROM {prefix}clocks WHERE conversation_id = %s ORDER BY started_at",
        (conv,),
    )


def test_records_read_back_with_the_values_written(
    writer: QuestDBWriter, questdb: QuestDB, prefix: str
) -> None:
    """Every field of SLA, action, dead-letter and heartbeat rows comes back as written."""
    record = SlaRecord(
        conversation_id="conv-'quoted' 1",
        cycle=3,
        metric="contact_attempts",
        seq=2,
        status="breached",
        at=T0 + 90_750,
        policy_id="leads",
        target=90_500,
        started_at=T0,
        warn_at=T0 + 60_000,
        deadline_at=T0 + 90_500,
        stopped_at=None,
        elapsed=90_750,
        breached=True,
        agent_id="a-7",
        team_id="sales",
        priority="P1",
        segment="vip",
        lead_source="pricing",
        channel="whatsapp",
        late=True,
        attempts=2,
        cause="after_hours",
        lead_status="new",
        attempts_required=3,
    )
    action = ActionRecord(
        "reassign", "breached", "conv-2", 1, "first_response", 1, T0 + 5, "p", "a-1", "a-2",
        None, "first response breached",
    )  # fmt: skip
    dead = DeadLetter("occurred_at: not an instant", '{"a": "b;c"}\nzażółć', "wa.events/3/1041")
    emitted = T0 + 100_000
    writer.write_batch([record, action, dead], emitted_at_ms=emitted)
    writer.write_heartbeat(
        Heartbeat("w-0", at=T0 + 200, watermark=T0 - 5000, lag_ms=5200, events_in=10,
                  records_out=7, dead_letters=1)
    )  # fmt: skip
    assert writer.stats.rows_pending == 0
    settle(questdb, prefix)

    (row,) = questdb.query(
        "SELECT at, conversation_id, cycle, metric, seq, status, policy_id, target_s, started_at,"
        " warn_at, deadline_at, stopped_at, elapsed_s, breached, agent_id, team_id, priority,"
        f" segment, lead_source, channel, late, attempts, cause, emitted_at, lead_status,"
        f" outcome, attempts_required FROM {prefix}events"
    )
    assert [to_ms(v) if i in (0, 8, 9, 10, 11, 23) else v for i, v in enumerate(row)] == [
        T0 + 90_750, "conv-'quoted' 1", 3, "contact_attempts", 2, "breached", "leads", 90.5, T0,
        T0 + 60_000, T0 + 90_500, None, 90.75, True, "a-7", "sales", "P1", "vip", "pricing",
        "whatsapp", True, 2, "after_hours", emitted, "new", None, 3,
    ]  # fmt: skip

    (clock,) = questdb.query(
        "SELECT started_at, conversation_id, cycle, metric, seq, status, open, breached, cause,"
        " deadline_at, elapsed_s, target_s, agent_id, attempts, policy_id, updated_at,"
        f" lead_status, outcome, attempts_required FROM {prefix}clocks"
    )
    assert [to_ms(v) if i in (0, 9, 15) else v for i, v in enumerate(clock)] == [
        T0, "conv-'quoted' 1", 3, "contact_attempts", 2, "breached", True, True, "after_hours",
        T0 + 90_500, 90.75, 90.5, "a-7", 2, "leads", T0 + 90_750, "new", None, 3,
    ]  # fmt: skip

    (act,) = questdb.query(
        "SELECT at, action, trigger, conversation_id, cycle, metric, seq, policy_id, from_agent,"
        f" to_agent, notify, reason, emitted_at FROM {prefix}actions"
    )
    assert [to_ms(v) if i in (0, 12) else v for i, v in enumerate(act)] == [
        T0 + 5, "reassign", "breached", "conv-2", 1, "first_response", 1, "p", "a-1", "a-2",
        None, "first response breached", emitted,
    ]  # fmt: skip

    (letter,) = questdb.query(f"SELECT emitted_at, source, reason, raw FROM {prefix}deadletters")
    assert (to_ms(letter[0]), *letter[1:]) == (emitted, dead.source, dead.reason, dead.raw)

    (beat,) = questdb.query(
        "SELECT at, worker, watermark, lag_ms, events_in, records_out, dead_letters"
        f" FROM {prefix}heartbeat"
    )
    assert (to_ms(beat[0]), beat[1], to_ms(beat[2]), *beat[3:]) == (
        T0 + 200, "w-0", T0 - 5000, 5200, 10, 7, 1,
    )  # fmt: skip


def test_team_stints_keep_their_team_and_budget_share(
    writer: QuestDBWriter, questdb: QuestDB, prefix: str
) -> None:
    """A team stint's rows carry the owning team, and its ending record's `budget_pct` reaches
    both tables; a running stint's rows have none yet (SPEC §4 team_ownership)."""
    stint = {"metric": "team_ownership", "target": 30 * MINUTE}
    handed = T0 + 20 * MINUTE
    records = [
        sla("started", conv="c-team", team="l1", **stint, started_at=T0),
        # Written at the hand-over: the conversation is already l2's, the stint stays l1's.
        sla("met", conv="c-team", team="l1", **stint, started_at=T0, at=handed, budget_pct=12.5),
        sla("started", conv="c-team", seq=2, team="l2", **stint, started_at=handed),
    ]
    writer.write_batch(records, emitted_at_ms=T0 + DAY)
    settle(questdb, prefix)
    assert questdb.query(
        f"SELECT seq, status, team_id, budget_pct FROM {prefix}events ORDER BY seq, at"
    ) == [(1, "started", "l1", None), (1, "met", "l1", 12.5), (2, "started", "l2", None)]
    assert questdb.query(
        f"SELECT seq, status, open, team_id, budget_pct FROM {prefix}clocks ORDER BY seq"
    ) == [(1, "met", False, "l1", 12.5), (2, "started", True, "l2", None)]


def test_writing_the_same_batch_twice_leaves_one_row_per_record(
    stack: Endpoints, writer: QuestDBWriter, questdb: QuestDB, prefix: str
) -> None:
    """A retry or a replay (even by a fresh writer) never doubles a row in any table."""
    batch: list[Any] = []
    for i in range(40):
        start = T0 + i * MINUTE
        batch += [
            sla("started", conv=f"c-{i}", started_at=start),
            sla("warning", conv=f"c-{i}", started_at=start, at=start + 4 * MINUTE),
        ]
        if i % 2:
            batch.append(sla("met", conv=f"c-{i}", started_at=start, at=start + 4 * MINUTE + 1))
    batch += [
        ActionRecord("notify", "warning", "c-1", 1, "first_response", 1, T0, None, None, None,
                     "supervisor", "warning"),
        DeadLetter("bad", "{", "wa.events/0/1"),
    ]  # fmt: skip
    writer.write_batch(batch, emitted_at_ms=T0 + DAY)
    writer.write_batch(batch, emitted_at_ms=T0 + DAY)
    replayer = QuestDBWriter(stack.questdb_ilp_conf, prefix=prefix)
    replayer.write_batch(batch, emitted_at_ms=T0 + DAY)
    replayer.close()
    settle(questdb, prefix)

    sla_count = sum(isinstance(r, SlaRecord) for r in batch)
    assert questdb.query(f"SELECT count() FROM {prefix}events") == [(sla_count,)]
    assert questdb.query(f"SELECT count() FROM {prefix}clocks") == [(40,)]
    assert questdb.query(f"SELECT status, count() FROM {prefix}clocks ORDER BY status") == [
        ("met", 20),
        ("warning", 20),
    ]
    assert questdb.query(f"SELECT count() FROM {prefix}actions") == [(1,)]
    assert questdb.query(f"SELECT count() FROM {prefix}deadletters") == [(1,)]


def test_late_correction_replaces_the_clock_row_with_the_true_outcome(
    writer: QuestDBWriter, questdb: QuestDB, prefix: str
) -> None:
    """A breach later shown to be a reply in time ends as one met clock, events keep history."""
    deadline = T0 + 5 * MINUTE
    writer.write_batch(
        [
            sla("started", started_at=T0),
            sla("breached", started_at=T0, at=deadline, cause="agent"),
            sla("stopped", started_at=T0, at=deadline + MINUTE),
        ],
        emitted_at_ms=T0 + DAY,
    )
    rows = questdb.wait_for_rows(
        f"SELECT status, open, breached, cause FROM {prefix}clocks", count=1
    )
    assert rows == [("stopped", False, True, "agent")]  # cause kept after the stop

    writer.write_batch(
        [sla("met", started_at=T0, at=T0 + 2 * MINUTE, late=True)], emitted_at_ms=T0 + DAY
    )
    questdb.wait_for_rows(
        f"SELECT status FROM {prefix}clocks", until=lambda rows: rows == [("met",)]
    )
    settle(questdb, prefix)
    (row,) = clock_row(questdb, prefix, "c-1")
    assert row[1:6] == ("met", False, False, None, 120.0)
    assert (to_ms(row[0]), to_ms(row[6])) == (T0, T0 + 2 * MINUTE)
    statuses = questdb.query(f"SELECT status, late FROM {prefix}events ORDER BY at")
    assert statuses == [("started", False), ("met", True), ("breached", False), ("stopped", False)]


def test_a_correction_sent_in_the_same_request_as_the_original_wins(
    writer: QuestDBWriter, questdb: QuestDB, prefix: str
) -> None:
    """Batches merged while QuestDB was away still store the later of two same-key records."""
    deadline = T0 + 5 * MINUTE
    original = sla("breached", started_at=T0, at=deadline, cause="agent")
    corrected = sla("breached", started_at=T0, at=deadline, cause="overloaded", late=True)
    writer.write_batch([original, corrected], emitted_at_ms=T0 + DAY)
    settle(questdb, prefix)
    assert questdb.query(f"SELECT status, cause, late FROM {prefix}events") == [
        ("breached", "overloaded", True)
    ]
    assert questdb.query(f"SELECT status, cause FROM {prefix}clocks") == [
        ("breached", "overloaded")
    ]


def test_breach_cause_survives_a_writer_restart(
    stack: Endpoints, writer: QuestDBWriter, questdb: QuestDB, prefix: str
) -> None:
    """A fresh writer reads the stored cause back when a breached clock stops after a restart."""
    writer.write_batch(
        [sla("breached", started_at=T0, at=T0 + 5 * MINUTE, cause="overloaded")],
        emitted_at_ms=T0 + DAY,
    )
    questdb.wait_for_rows(f"SELECT cause FROM {prefix}clocks", count=1)
    settle(questdb, prefix)

    restarted = QuestDBWriter(stack.questdb_ilp_conf, prefix=prefix)
    restarted.ensure_tables()
    restarted.write_batch(
        [sla("stopped", started_at=T0, at=T0 + 9 * MINUTE)], emitted_at_ms=T0 + DAY
    )
    restarted.close()
    rows = questdb.wait_for_rows(
        f"SELECT status, breached, cause FROM {prefix}clocks",
        until=lambda rows: [r[0] for r in rows] == ["stopped"],
    )
    assert rows == [("stopped", True, "overloaded")]


def test_a_late_event_that_moves_the_start_leaves_one_counted_clock(
    stack: Endpoints, writer: QuestDBWriter, questdb: QuestDB, prefix: str
) -> None:
    """The row at the old start is cancelled, even when a fresh writer gets the correction."""
    writer.write_batch(
        [sla("breached", started_at=T0, at=T0 + 5 * MINUTE, cause="agent")],
        emitted_at_ms=T0 + DAY,
    )
    questdb.wait_for_rows(f"SELECT status FROM {prefix}clocks", count=1)
    settle(questdb, prefix)
    restarted = QuestDBWriter(stack.questdb_ilp_conf, prefix=prefix)
    restarted.ensure_tables()
    earlier = T0 - 2 * MINUTE
    restarted.write_batch(
        [sla("met", started_at=earlier, at=T0 + MINUTE, late=True)], emitted_at_ms=T0 + DAY
    )
    restarted.close()
    questdb.wait_for_rows(f"SELECT status FROM {prefix}clocks", count=2)
    settle(questdb, prefix)
    rows = questdb.query(
        f"SELECT started_at, status, open, breached FROM {prefix}clocks ORDER BY started_at"
    )
    assert [(to_ms(r[0]), *r[1:]) for r in rows] == [
        (earlier, "met", False, False),
        (T0, "cancelled", False, False),
    ]


def test_bytewax_sink_writes_record_batches_and_heartbeats(
    stack: Endpoints, questdb: QuestDB, prefix: str
) -> None:
    """A flow whose items are lists of records stores them all once it completes."""
    items: list[Any] = [
        [sla("started", conv="s-1", started_at=T0), sla("started", conv="s-2", started_at=T0)],
        [sla("met", conv="s-1", started_at=T0, at=T0 + MINUTE)],
        Heartbeat("0", at=T0 + MINUTE, watermark=T0, lag_ms=0),
    ]
    flow = Dataflow("questdb_sink_test")
    batches = op.input("inp", flow, TestingSource(items))  # list[SlaRecord] | Heartbeat
    op.output("questdb_out", batches, QuestDBSink(stack.questdb_ilp_conf, prefix=prefix))
    run_main(flow)
    settle(questdb, prefix)
    assert questdb.query(f"SELECT count() FROM {prefix}events") == [(3,)]
    assert questdb.query(
        f"SELECT conversation_id, status FROM {prefix}clocks ORDER BY conversation_id"
    ) == [("s-1", "met"), ("s-2", "started")]
    assert questdb.query(f"SELECT worker FROM {prefix}heartbeat") == [("0",)]


def test_tables_of_the_previous_release_gain_the_stored_columns(
    stack: Endpoints, questdb: QuestDB, prefix: str
) -> None:
    """Tables created by 0.2 (without `lead_status`, `outcome`, `attempts_required`, and
    `budget_pct` of the team stints) are brought up to date at start-up: old rows stay, new
    rows carry the outcome and the budget share."""
    stored_only = ("lead_status", "outcome", "attempts_required", "budget_pct")
    for _table, sql in create_table_statements(TableNames(prefix)):
        old_sql = "\n".join(
            line for line in sql.splitlines() if not line.strip().startswith(stored_only)
        )
        questdb.execute(old_sql)
    # A row the writer of 0.2 stored, without the columns.
    questdb.execute(
        f"INSERT INTO {prefix}clocks (started_at, conversation_id, cycle, metric, seq, status)"
        f" VALUES ({T0 * 1000}, 'c-old', 1, 'resolution', 1, 'met')"
    )
    columns = {
        r[0] for r in questdb.query(f"SELECT \"column\" FROM table_columns('{prefix}clocks')")
    }
    assert not columns & set(stored_only)

    writer = QuestDBWriter(stack.questdb_ilp_conf, prefix=prefix)
    writer.ensure_tables()
    won = sla("met", conv="c-new", started_at=T0 + MINUTE, metric="resolution", outcome="won")
    stint = sla(
        "met", conv="c-new", started_at=T0 + MINUTE, metric="team_ownership", budget_pct=40.0
    )
    writer.write_batch([won, stint], emitted_at_ms=T0 + 2 * MINUTE)
    writer.close()
    settle(questdb, prefix)
    rows = questdb.query(
        f"SELECT conversation_id, metric, status, outcome, budget_pct FROM {prefix}clocks"
        " ORDER BY conversation_id, metric"
    )
    assert rows == [
        ("c-new", "resolution", "met", "won", None),
        ("c-new", "team_ownership", "met", None, 40.0),
        ("c-old", "resolution", "met", None, None),
    ]
    for table in (f"{prefix}events", f"{prefix}clocks"):
        columns = {r[0] for r in questdb.query(f"SELECT \"column\" FROM table_columns('{table}')")}
        assert set(stored_only) <= columns, table


def test_csat_and_handle_tables_without_a_channel_gain_it_at_start_up(
    stack: Endpoints, questdb: QuestDB, prefix: str
) -> None:
    """CSAT and handle tables made before the dashboards filtered them by channel get the
    `channel` column at start-up: old rows keep it null, new rows store the record's."""
    names = TableNames(prefix)
    for table, sql in create_table_statements(names):
        if table in (names.csat, names.handle):
            questdb.execute(sql.replace(",\n    channel SYMBOL", ""))
    questdb.execute(
        f"INSERT INTO {names.csat} (survey_at, conversation_id, cycle, survey_id, rating)"
        f" VALUES ({T0 * 1000}, 'c-old', 1, 'S0', 5)"
    )
    for table in (names.csat, names.handle):
        columns = {r[0] for r in questdb.query(f"SELECT \"column\" FROM table_columns('{table}')")}
        assert "channel" not in columns, table

    writer = QuestDBWriter(stack.questdb_ilp_conf, prefix=prefix)
    writer.ensure_tables()
    rated = CsatRecord(
        "c-new", 1, "S1", T0 + MINUTE, T0 + 2 * MINUTE, 4, "a-1", "l1", "p", False, False,
        channel="telegram",
    )  # fmt: skip
    segment = HandleRecord(
        "c-new", 1, "a-1", "l1", T0, T0 + MINUTE, MINUTE, "idle", channel="telegram"
    )
    writer.write_batch([rated, segment], emitted_at_ms=T0 + DAY)
    writer.close()
    settle(questdb, prefix)
    assert questdb.query(
        f"SELECT conversation_id, channel FROM {names.csat} ORDER BY conversation_id"
    ) == [("c-new", "telegram"), ("c-old", None)]
    assert questdb.query(f"SELECT agent_id, ended_by, channel FROM {names.handle}") == [
        ("a-1", "idle", "telegram")
    ]


def test_views_of_the_previous_release_are_rebuilt_with_the_channel(
    stack: Endpoints, questdb: QuestDB, prefix: str
) -> None:
    """A view made without `channel` (by an earlier release) is dropped and made again at
    start-up, rebuilt from the clocks already stored, so the dashboards can filter by channel."""
    writer = QuestDBWriter(stack.questdb_ilp_conf, prefix=prefix)
    writer.ensure_tables()
    writer.write_batch(
        [
            sla("met", conv="c-tg", started_at=T0, at=T0 + MINUTE, channel="telegram"),
            sla("breached", conv="c-wa", started_at=T0, at=T0 + 5 * MINUTE, cause="agent"),
        ],
        emitted_at_ms=T0 + DAY,
    )
    writer.close()
    settle(questdb, prefix)
    views = ViewNames(prefix)
    for view, sql in create_view_statements(TableNames(prefix), "Asia/Jakarta"):
        questdb.execute(f"DROP MATERIALIZED VIEW {view}")
        questdb.execute(sql.replace(", channel", ""))  # an earlier release's definition
    columns = f"SELECT \"column\" FROM table_columns('{views.compliance_daily}')"  # noqa: S608
    assert "channel" not in {r[0] for r in questdb.query(columns)}

    restarted = QuestDBWriter(stack.questdb_ilp_conf, prefix=prefix)
    restarted.ensure_tables()
    restarted.close()
    for view in views.all():
        assert "channel" in {
            r[0] for r in questdb.query(f"SELECT \"column\" FROM table_columns('{view}')")
        }, view
    rows = questdb.wait_for_rows(
        f"SELECT channel, sum(met), sum(breached) FROM {views.compliance_daily} ORDER BY channel",
        count=2,
        timeout=60,
    )
    assert rows == [("telegram", 1, 0), ("whatsapp", 0, 1)]


def test_an_attempt_after_a_writer_restart_keeps_the_stored_state(
    stack: Endpoints, writer: QuestDBWriter, questdb: QuestDB, prefix: str
) -> None:
    """A fresh writer reads a warned lead's state back: its next attempt leaves it warned."""
    lead = {"metric": "contact_attempts", "conv": "c-lead", "started_at": T0, "attempts": 1}
    writer.write_batch([sla("warning", at=T0 + 4 * MINUTE, **lead)], emitted_at_ms=T0 + DAY)
    questdb.wait_for_rows(f"SELECT status FROM {prefix}clocks", count=1)
    settle(questdb, prefix)

    restarted = QuestDBWriter(stack.questdb_ilp_conf, prefix=prefix)
    restarted.ensure_tables()
    # Without the stored state, this record alone would read as `paused` (it has no deadline).
    again = sla("attempt", at=T0 + 4 * MINUTE + 1, **{**lead, "attempts": 2}, deadline_at=None)
    restarted.write_batch([again], emitted_at_ms=T0 + DAY)
    restarted.close()
    rows = questdb.wait_for_rows(
        f"SELECT status, attempts, open FROM {prefix}clocks",
        until=lambda rows: [r[1] for r in rows] == [2],
    )
    assert rows == [("warning", 2, True)]
    events = questdb.query(f"SELECT status, attempts FROM {prefix}events ORDER BY at")
    assert events == [("warning", 1), ("attempt", 2)]


def test_a_rating_replaces_its_sent_survey_row_in_the_csat_table(
    writer: QuestDBWriter, questdb: QuestDB, prefix: str
) -> None:
    """Sent, then rated: one row per survey, holding the rating; response rate is a count."""
    sent = CsatRecord("c-1", 2, "S1", T0, None, None, "a-1", "l1", "p", True, False)
    rated = CsatRecord("c-1", 2, "S1", T0, T0 + 60_000, 4, "a-1", "l1", "p", True, False)
    unrated = CsatRecord("c-2", 1, None, T0 + 5, None, None, "a-2", None, "p", False, False)
    writer.write_batch([sent, unrated], emitted_at_ms=T0 + DAY)
    writer.write_batch([rated], emitted_at_ms=T0 + DAY)
    settle(questdb, prefix)

    rows = questdb.query(
        "SELECT survey_at, conversation_id, cycle, survey_id, sent_at, rated_at, rating,"
        f" agent_id, team_id, policy_id, breached, recovered, late FROM {prefix}csat"
        " ORDER BY conversation_id"
    )
    assert [[to_ms(v) if i in (0, 4, 5) else v for i, v in enumerate(r)] for r in rows] == [
        [T0, "c-1", 2, "S1", T0, T0 + 60_000, 4, "a-1", "l1", "p", True, False, False],
        [T0 + 5, "c-2", 1, "", T0 + 5, None, None, "a-2", None, "p", False, False, False],
    ]
    ((rated_n, sent_n),) = questdb.query(f"SELECT count(rating), count() FROM {prefix}csat")
    assert (rated_n, sent_n) == (1, 2)


def _recover(rule: str, send: str, *, withdrawn: bool = False) -> ActionRecord:
    return ActionRecord(
        "recover", "recovery", "c-rec", 1, "resolution", 1, T0 + 2 * MINUTE, "p", "a-1", None,
        None, f"resolution recovery: at its breach, send {send}", send, rule, withdrawn,
    )  # fmt: skip


def _actions(questdb: QuestDB, prefix: str) -> list[tuple[Any, ...]]:
    return questdb.query(
        f"SELECT action, trigger, rule, send, withdrawn FROM {prefix}actions ORDER BY action, rule"
    )


def test_recover_actions_keep_their_rules_apart_and_a_withdrawal_replaces_its_row(
    writer: QuestDBWriter, questdb: QuestDB, prefix: str
) -> None:
    """Two rules on one clock at one instant are two rows; a withdrawal flags its rule's row."""
    notify = ActionRecord(
        "notify", "breached", "c-rec", 1, "resolution", 1, T0 + 2 * MINUTE, "p", "a-1", None,
        "s1", "resolution breached: notify supervisor",
    )  # fmt: skip
    writer.write_batch(
        [notify, _recover("p#1", "voucher"), _recover("p#2", "sorry")], emitted_at_ms=T0 + DAY
    )
    writer.write_batch([_recover("p#2", "sorry", withdrawn=True)], emitted_at_ms=T0 + DAY + 1)
    settle(questdb, prefix)
    assert _actions(questdb, prefix) == [
        ("notify", "breached", None, None, False),
        ("recover", "recovery", "p#1", "voucher", False),
        ("recover", "recovery", "p#2", "sorry", True),
    ]


def test_an_action_table_from_before_recovery_gains_send_rule_and_its_key(
    stack: Endpoints, questdb: QuestDB, prefix: str
) -> None:
    """An actions table of the previous release gets `send`, `rule`, `withdrawn` and `rule` as
    an upsert key at start-up: its old rows stay, two rules of one clock become two rows."""
    names = TableNames(prefix)
    (sql,) = [sql for table, sql in create_table_statements(names) if table == names.actions]
    old_sql = "\n".join(
        line
        for line in sql.splitlines()
        if not line.strip().startswith(("send", "rule", "withdrawn"))
    ).replace("emitted_at TIMESTAMP,", "emitted_at TIMESTAMP")
    old_sql = old_sql.replace(", trigger, rule)", ", trigger)")
    questdb.execute(old_sql)
    questdb.execute(
        f"INSERT INTO {names.actions} (at, conversation_id, cycle, metric, seq, action, trigger)"
        f" VALUES ({T0 * 1000}, 'c-old', 1, 'first_response', 1, 'notify', 'warning')"
    )
    writer = QuestDBWriter(stack.questdb_ilp_conf, prefix=prefix)
    writer.ensure_tables()
    writer.write_batch([_recover("p#1", "voucher"), _recover("p#2", "sorry")], T0 + DAY)
    writer.close()
    settle(questdb, prefix)
    keys = {
        r[0]
        for r in questdb.query(
            f"SELECT \"column\" FROM table_columns('{names.actions}') WHERE upsertKey"
        )
    }
    assert keys == {"at", "conversation_id", "cycle", "metric", "seq", "action", "trigger", "rule"}
    assert _actions(questdb, prefix) == [
        ("notify", "warning", None, None, False),
        ("recover", "recovery", "p#1", "voucher", False),
        ("recover", "recovery", "p#2", "sorry", False),
    ]
