"""Service recovery: `recover` actions after breaches (SPEC §3 `recovery`, §4, §6)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.core.engine import Engine
from flows.core.events import SurveyEvent
from flows.core.records import ActionRecord, CsatRecord, to_json_dict
from flows.core.snapshot import dump_engine, load_engine
from flows.exceptions import PolicyError
from tests.enginekit import assign, conv_event, inbound, ms, policies, reply, run
from tests.latekit import (
    HORIZON_MS,
    PSET_RECOVERY,
    deliver_late,
    differences,
    final_csat,
    final_recoveries,
    final_states,
    in_time_order,
    run_in_batches,
    scenario,
)
from tests.schemakit import validator

pytestmark = pytest.mark.unit

HOUR = 3600
DAY = 24 * HOUR

PSET = policies(
    """
policies:
  - id: vip
    when: {segment: vip}
    targets:
      first_response: {within: 5m}
      resolution: {within: 1h, pause_when: [pending]}
    recovery:
      - {metric: first_response, send: sorry_note, when: {priority: [P1, P2]}}
      - {metric: resolution, over: 1h, send: apology_voucher}
  - id: default
    targets:
      first_response: {within: 5m}
      resolution: {within: 1h, pause_when: [pending]}
    escalations:
      - {on: breached, metric: first_response, notify: supervisor}
"""
)


def _vip(t: float = 0, conv: str = "c1", **attrs: str) -> object:
    return conv_event(t, "opened", conv, segment="vip", **attrs)


def _recoveries(records: list) -> list[ActionRecord]:
    return [r for r in records if isinstance(r, ActionRecord) and r.action == "recover"]


def _shown(records: list) -> list[tuple[str, str | None, float, bool]]:
    """(metric, rule, seconds after T0, withdrawn) of each recover action, in emission order."""
    return [(r.metric, r.rule, (r.at - ms(0)) / 1000, r.withdrawn) for r in _recoveries(records)]


def test_over_zero_fires_at_the_breach_with_send_and_rule() -> None:
    """A P1 VIP chat unanswered for 5 min gets the rule's `sorry_note` at the breach instant."""
    recs = run([_vip(priority="P1"), inbound(1), assign(2)], PSET, until=400)
    (action,) = _recoveries(recs)
    assert (action.metric, action.at, action.send, action.rule) == (
        "first_response",
        ms(301),
        "sorry_note",
        "vip#1",
    )
    published = to_json_dict(action, 0)
    validator("action_record.schema.json").validate(published)
    assert (published["action"], published["trigger"]) == ("recover", "recovery")
    assert (published["send"], published["rule"], published["from_agent"]) == (
        "sorry_note",
        "vip#1",
        "a1",
    )
    assert "withdrawn" not in published


def test_escalation_records_publish_no_recovery_fields() -> None:
    """A policy without recovery rules emits its notify exactly as SPEC §6 lists it."""
    (action,) = [r for r in run([inbound(0)], PSET, until=400) if isinstance(r, ActionRecord)]
    published = to_json_dict(action, 0)
    assert action.action == "notify"
    assert not {"send", "rule", "withdrawn"} & set(published)


def test_over_fires_that_long_past_the_deadline() -> None:
    """resolution due at 01:00:01 and still open at 02:00:01 gets its voucher then, not before."""
    events = [_vip(), inbound(1), assign(2), reply(60)]
    assert _recoveries(run(events, PSET, until=2 * HOUR)) == []
    recs = run(events, PSET, until=2 * HOUR + 1)
    assert _shown(recs) == [("resolution", "vip#2", 2 * HOUR + 1, False)]
    assert recs[-1].reason == "resolution recovery: 1h past its deadline, send apology_voucher"


def test_fulfilment_before_over_sends_nothing() -> None:
    """Resolved 59 min after its breach: the resolution clock stops and no recovery follows."""
    recs = run(
        [_vip(), inbound(1), assign(2), reply(60), conv_event(HOUR + 1 + 59 * 60, "resolved")],
        PSET,
        until=5 * HOUR,
    )
    assert _recoveries(recs) == []


def test_the_rule_when_is_read_at_the_breach() -> None:
    """The same breach gets no `sorry_note` at P3, nor once the priority dropped to P3 before it."""
    p3 = run([_vip(priority="P3"), inbound(1)], PSET, until=400)
    dropped = run(
        [_vip(priority="P1"), inbound(1), conv_event(200, "updated", priority="P3")],
        PSET,
        until=400,
    )
    assert _recoveries(p3) == _recoveries(dropped) == []


def test_one_recovery_per_cap_across_rules() -> None:
    """First response breached and recovered: the resolution rule 2 h later is within the cap."""
    recs = run([_vip(priority="P1"), inbound(1), assign(2)], PSET, until=3 * HOUR)
    assert _shown(recs) == [("first_response", "vip#1", 301, False)]


def test_the_cap_expires_after_30_days() -> None:
    """A second breach 31 days after the first recovery is recovered again; one at 29 days not."""

    def cycle(start: float) -> list:
        return [inbound(start), conv_event(start + 10 * 60, "resolved")]

    early = run([_vip(priority="P1"), *cycle(1), *cycle(29 * DAY)], PSET, until=29 * DAY + HOUR)
    later = run([_vip(priority="P1"), *cycle(1), *cycle(31 * DAY)], PSET, until=31 * DAY + HOUR)
    assert [r.cycle for r in _recoveries(early)] == [1]
    assert [(r.cycle, r.at) for r in _recoveries(later)] == [
        (1, ms(301)),
        (2, ms(31 * DAY + 300)),
    ]


def test_a_cap_of_zero_lets_every_rule_fire() -> None:
    """With `cap: 0` both rules of one conversation fire, each once."""
    pset = policies(
        """
policies:
  - id: default
    targets: {first_response: {within: 5m}, resolution: {within: 1h}}
    recovery:
      - {metric: first_response, send: sorry_note, cap: 0}
      - {metric: resolution, over: 30m, send: voucher, cap: 0s}
"""
    )
    recs = run([inbound(0)], pset, until=3 * HOUR)
    assert _shown(recs) == [
        ("first_response", "default#1", 300, False),
        ("resolution", "default#2", HOUR + 30 * 60, False),
    ]


CALENDAR = """
calendars:
  office:
    timezone: UTC
    weekly: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: [], thu: [], fri: [], sat: [],
             sun: []}
policies:
  - id: default
    calendar: office
    targets: {resolution: {within: 1h}}
    recovery:
      - {metric: resolution, over: 2h, send: voucher}
"""


def test_over_counts_the_clock_business_time() -> None:
    """Due at Monday's 17:00 closing, 2 h over in open time is Tuesday 11:00, not Monday 19:00."""
    recs = run([inbound(16 * HOUR)], policies(CALENDAR), until=2 * DAY)
    assert _shown(recs) == [("resolution", "default#1", DAY + 11 * HOUR, False)]


def test_a_pause_after_the_breach_postpones_the_recovery() -> None:
    """Pending for 30 min after the breach: lateness stops counting, so `over` ends 30 min later."""
    recs = run(
        [
            _vip(),
            inbound(1),
            reply(60),
            conv_event(HOUR + 600, "updated", status="pending"),
            conv_event(HOUR + 600 + 1800, "updated", status="open"),
        ],
        PSET,
        until=4 * HOUR,
    )
    assert _shown(recs) == [("resolution", "vip#2", 2 * HOUR + 1 + 1800, False)]


def test_a_quiet_stream_fires_the_recovery_on_the_watermark() -> None:
    """No event after the reply: the engine asks to wake at deadline + over and fires then."""
    engine = Engine(PSET)
    engine.process([_vip(), inbound(1), reply(60)], ms(60))
    engine.process([], ms(HOUR + 2))  # the breach
    assert engine.next_due() == ms(2 * HOUR + 1)
    assert _recoveries(engine.process([], ms(2 * HOUR))) == []
    assert _shown(engine.process([], ms(2 * HOUR + 1))) == [
        ("resolution", "vip#2", 2 * HOUR + 1, False)
    ]
    assert engine.next_due() is None


def test_a_pending_recovery_survives_a_snapshot() -> None:
    """Snapshotted between the breach and `over`, the restored engine still sends it once."""
    engine = Engine(PSET)
    engine.process([_vip(), inbound(1), reply(60)], ms(HOUR + 2))
    restored = load_engine(dump_engine(engine), PSET)
    assert restored.next_due() == ms(2 * HOUR + 1)
    recs = restored.process([], ms(3 * HOUR))
    assert _shown(recs) == [("resolution", "vip#2", 2 * HOUR + 1, False)]
    assert _recoveries(restored.process([], ms(4 * HOUR))) == []


def test_a_resolve_after_a_restore_still_disarms_the_pending_recovery() -> None:
    """Restored between the breach and `over`, then resolved: the voucher is not sent."""
    engine = Engine(PSET)
    engine.process([_vip(), inbound(1), reply(60)], ms(HOUR + 2))
    restored = load_engine(dump_engine(engine), PSET)
    recs = restored.process([conv_event(HOUR + 100, "resolved")], ms(4 * HOUR))
    assert _recoveries(recs) == []
    assert restored.next_due() is None


def test_the_cap_survives_a_snapshot() -> None:
    """Restored after a recovery, the next breach within 30 days is still capped."""
    engine = Engine(PSET)
    engine.process([_vip(priority="P1"), inbound(1)], ms(400))
    restored = load_engine(dump_engine(engine), PSET)
    recs = restored.process(
        [conv_event(500, "resolved"), inbound(DAY), conv_event(DAY + 3600, "resolved")],
        ms(2 * DAY),
    )
    assert _recoveries(recs) == []


def test_a_late_reply_withdraws_the_recovery_of_its_breach() -> None:
    """The reply at 00:03 arrives after the breach: the `sorry_note` is emitted again withdrawn."""
    engine = Engine(PSET)
    first = engine.process([_vip(priority="P1"), inbound(1), assign(2)], ms(400))
    late = engine.process([reply(180)], ms(401))
    assert _shown(first) == [("first_response", "vip#1", 301, False)]
    (withdrawn,) = _recoveries(late)
    assert withdrawn.identity() == _recoveries(first)[0].identity()
    assert withdrawn.withdrawn
    assert to_json_dict(withdrawn, 0)["withdrawn"] is True
    validator("action_record.schema.json").validate(to_json_dict(withdrawn, 0))


def test_a_late_pause_moves_the_recovery_and_withdraws_the_early_one() -> None:
    """A pending status delivered late postpones `over`: the early send is withdrawn, moved."""
    events = [_vip(), inbound(1), reply(60)]
    pause = [
        conv_event(HOUR + 600, "updated", status="pending"),
        conv_event(HOUR + 600 + 1800, "updated", status="open"),
    ]
    engine = Engine(PSET)
    first = engine.process(events, ms(3 * HOUR))
    late = engine.process(pause, ms(3 * HOUR))
    assert _shown(first) + _shown(late) == [
        ("resolution", "vip#2", 2 * HOUR + 1, False),
        ("resolution", "vip#2", 2 * HOUR + 1, True),
        ("resolution", "vip#2", 2 * HOUR + 1 + 1800, False),
    ]


def test_a_reopened_resolution_is_recovered_when_its_lateness_reaches_over() -> None:
    """Breached, resolved, reopened: the hour over counts on after the reopen, paused between."""
    recs = run(
        [
            _vip(),
            inbound(1),
            reply(60),
            conv_event(HOUR + 1800 + 1, "resolved"),
            conv_event(3 * HOUR, "reopened"),
        ],
        PSET,
        until=5 * HOUR,
    )
    assert _shown(recs) == [("resolution", "vip#2", 3 * HOUR + 1800, False)]


def _survey(t: float, action: str, rating: int | None = None) -> SurveyEvent:
    return SurveyEvent(f"s-{t}-{action}", "c1", ms(t), action, "S1", rating)


def test_csat_says_recovered_for_a_recovery_in_the_rated_cycle() -> None:
    """The rating of a recovered cycle says recovered; the next, unrecovered cycle's does not."""
    recs = run(
        [
            _vip(priority="P1"),
            inbound(1),
            reply(600),
            conv_event(900, "resolved"),
            _survey(900, "sent"),
            _survey(1000, "rated", 2),
            inbound(DAY),
            reply(DAY + 10),
            conv_event(DAY + 20, "resolved"),
            SurveyEvent("s2", "c1", ms(DAY + 20), "sent", "S2", None),
            SurveyEvent("r2", "c1", ms(DAY + 30), "rated", "S2", 5),
        ],
        PSET,
    )
    rated = [r for r in recs if isinstance(r, CsatRecord) and r.rating is not None]
    assert [(r.cycle, r.breached, r.recovered) for r in rated] == [
        (1, True, True),
        (2, False, False),
    ]


def test_a_recovery_after_the_resolve_counts_for_the_rating_after_it() -> None:
    """A template answered, so the window breaches after the resolve: the rating says recovered."""
    pset = policies(
        """
policies:
  - id: default
    targets: {first_response: {within: 5m}, service_window: {within: 24h}}
    recovery:
      - {metric: service_window, send: paid_template}
"""
    )
    recs = run(
        [
            inbound(0),
            reply(60, kind="template"),
            conv_event(120, "resolved"),
            _survey(120, "sent"),
            _survey(DAY + 60, "rated", 4),
        ],
        pset,
    )
    assert _shown(recs) == [("service_window", "default#1", DAY, False)]
    sent, rated = [r for r in recs if isinstance(r, CsatRecord)]
    assert (sent.recovered, rated.recovered, rated.breached) == (False, True, False)


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("{metric: resolution}", "recovery #1: missing 'send'"),
        ("{send: voucher}", "recovery #1: missing 'metric'"),
        ("{metric: resolution, send: ''}", "recovery #1, send must not be empty"),
        ("{metric: vibes, send: voucher}", "unknown metric 'vibes'"),
        ("{metric: first_response, send: voucher}", "metric 'first_response' has no target"),
        ("{metric: resolution, send: voucher, over: soon}", "recovery #1, over: invalid duration"),
        ("{metric: resolution, send: voucher, cap: -1d}", "recovery #1, cap: invalid duration"),
        ("{metric: resolution, send: voucher, when: {priority: P9}}", "priority 'P9'"),
        ("{metric: resolution, send: voucher, when: {mood: sad}}", "unknown attribute 'mood'"),
        ("{metric: resolution, send: voucher, every: 1h}", "unknown key 'every'"),
        ("{metric: service_window, send: t, over: 1h}", "service_window ends at its breach"),
    ],
)
def test_bad_recovery_rules_are_refused_with_the_line(rule: str, reason: str) -> None:
    """Each bad rule stops the load naming line 6 and what is wrong."""
    text = f"""policies:
  - id: default
    targets: {{resolution: {{within: 1h}}, service_window: {{within: 24h}}}}
    recovery:
      - {{metric: resolution, send: voucher}}
      - {rule}
"""
    with pytest.raises(PolicyError) as err:
        policies(text.replace("recovery #1", "recovery #2"))
    message = str(err.value)
    assert ":6:" in message
    assert reason.replace("recovery #1", "recovery #2") in message


def test_recovery_must_be_a_list() -> None:
    """A single mapping instead of a list is refused."""
    with pytest.raises(PolicyError, match="'recovery' must be a list"):
        policies(
            "policies:\n  - id: d\n    targets: {resolution: {within: 1h}}\n"
            "    recovery: {metric: resolution, send: v}\n"
        )


def test_defaults_and_names_of_parsed_rules() -> None:
    """`over` 0 and `cap` 30d by default; each rule is named by its policy and position."""
    first, second = PSET.policies[0].recovery
    assert (first.over, first.cap, first.name, second.name) == (
        0,
        30 * DAY * 1000,
        "vip#1",
        "vip#2",
    )
    assert second.over == HOUR * 1000


# ---------------------------------------------------------------- delivery order

UNTIL = 60 * DAY


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario, st.integers(0, 2**32), st.sampled_from([0.05, 0.3, 1.0]))
def test_late_delivery_converges_to_the_in_order_recoveries(
    convs: list, seed: int, share: float
) -> None:
    """Late delivery within the horizon ends with the in-order recover actions, clocks and CSAT."""
    events = in_time_order(convs)
    in_order = run(events, PSET_RECOVERY, until=UNTIL, horizon_ms=HORIZON_MS)
    late = run(
        deliver_late(events, seed, share=share), PSET_RECOVERY, until=UNTIL, horizon_ms=HORIZON_MS
    )
    assert final_recoveries(late) == final_recoveries(in_order)
    assert differences(final_states(in_order), final_states(late)) == []
    assert final_csat(late) == final_csat(in_order)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario, st.integers(0, 2**32))
def test_batches_and_duplicates_converge_to_the_in_order_recoveries(convs: list, seed: int) -> None:
    """Fetch-sized batches with duplicates and a trailing watermark give the same recoveries."""
    events = in_time_order(convs)
    in_order = run(events, PSET_RECOVERY, until=UNTIL, horizon_ms=HORIZON_MS)
    batched = run_in_batches(events, seed, ms(UNTIL), pset=PSET_RECOVERY)
    assert final_recoveries(batched) == final_recoveries(in_order)
