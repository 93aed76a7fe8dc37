"""Policy files: validation errors with line numbers, the loaded model, and policy selection."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from flows.core import policies as policies_module
from flows.core.calendar import Calendar
from flows.core.durations import DAY, HOUR, MINUTE
from flows.core.events import AttrValue
from flows.core.model import Policy
from flows.core.policies import load_policies, parse_policies, select_policy
from flows.exceptions import PolicyError

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policies.yaml"


def _yaml(text: str) -> str:
    return textwrap.dedent(text).strip("\n") + "\n"


def _error(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        parse_policies(_yaml(text), path="team.yaml")
    return caught.value


def _policy(text: str) -> Policy:
    return parse_policies(_yaml(text)).policies[0]


# Each case: YAML, the 1-based line the error must name, and text the reason must contain.
INVALID = {
    "unknown top-level key": (
        """
        policies:
          - id: a
        polices: []
        """,
        3,
        "'polices'",
    ),
    "missing policies": ("teams: {}", 1, "'policies'"),
    "empty policies": (
        """
        calendars: {}
        policies: []
        """,
        2,
        "empty",
    ),
    "policies not a list": ("policies: {id: a}", 1, "list"),
    "top level not a mapping": ("- id: a", 1, "mapping"),
    "empty file": ("# nothing here", 1, "empty"),
    "yaml syntax": (
        """
        policies:
          - id: a
            when: {segment: vip
        """,
        4,
        "invalid YAML",
    ),
    "repeated key": (
        """
        policies:
          - id: a
            targets:
              first_response: {within: 5m}
              first_response: {within: 3m}
        """,
        5,
        "'first_response' is repeated (first at line 4)",
    ),
    "unknown metric": (
        """
        policies:
          - id: a
            targets:
              first_reply: {within: 5m}
        """,
        4,
        "unknown metric 'first_reply'",
    ),
    "unknown target key": (
        """
        policies:
          - id: a
            targets:
              first_response:
                within: 5m
                witihn: 3m
        """,
        6,
        "unknown key 'witihn'",
    ),
    "to_role outside handoff": (
        """
        policies:
          - id: a
            targets:
              first_response: {within: 5m, to_role: ae}
        """,
        4,
        "unknown key 'to_role'",
    ),
    "follow_up with within": (
        """
        policies:
          - id: a
            targets:
              follow_up:
                within: 1h
        """,
        5,
        "'within': its deadline is the promised due_at",
    ),
    "service_window with pause_when": (
        """
        policies:
          - id: a
            targets:
              service_window:
                within: 24h
                pause_when: [pending]
        """,
        6,
        "unknown key 'pause_when'",
    ),
    "bad duration": (
        """
        policies:
          - id: a
            targets:
              first_response:
                within: 5 minutes
        """,
        5,
        "'5 minutes'",
    ),
    "duration without unit": (
        """
        policies:
          - id: a
            targets:
              first_response: {within: 30}
        """,
        4,
        "'30'",
    ),
    "zero duration": (
        """
        policies:
          - id: a
            targets:
              resolution:
                within: 0m
        """,
        5,
        "'0m'",
    ),
    "missing within": (
        """
        policies:
          - id: a
            targets:
              next_response:
                warn_at: 0.5
        """,
        4,
        "next_response: missing 'within'",
    ),
    "warn_at one": (
        """
        policies:
          - id: a
            targets:
              first_response:
                within: 5m
                warn_at: 1
        """,
        6,
        "warn_at is 1",
    ),
    "warn_at zero": (
        """
        policies:
          - id: a
            targets:
              first_response: {within: 5m,
                warn_at: 0.0}
        """,
        5,
        "warn_at is 0.0",
    ),
    "warn_at above one": (
        """
        policies:
          - id: a
            targets:
              first_response: {within: 5m, warn_at: 1.5}
        """,
        4,
        "warn_at is 1.5",
    ),
    "warn_at not a number": (
        """
        policies:
          - id: a
            targets:
              first_response: {within: 5m, warn_at: soon}
        """,
        4,
        "'soon'",
    ),
    "warn_before not shorter than within": (
        """
        policies:
          - id: a
            targets:
              first_response:
                within: 5m
                warn_before: 5m
        """,
        6,
        "warn_before 5m must be shorter than within (5m)",
    ),
    "both warn_at and warn_before": (
        """
        policies:
          - id: a
            targets:
              first_response:
                within: 5m
                warn_at: 0.5
                warn_before: 1m
        """,
        7,
        "either 'warn_at' or 'warn_before'",
    ),
    "pause_when unknown status": (
        """
        policies:
          - id: a
            targets:
              resolution:
                within: 8h
                pause_when:
                  - pending
                  - closed
        """,
        8,
        "'closed'",
    ),
    "contact_attempts missing min": (
        """
        policies:
          - id: a
            targets:
              contact_attempts:
                within: 48h
        """,
        4,
        "missing 'min'",
    ),
    "contact_attempts min zero": (
        """
        policies:
          - id: a
            targets:
              contact_attempts: {min: 0, within: 48h}
        """,
        4,
        "min must be at least 1",
    ),
    "contact_attempts min not an int": (
        """
        policies:
          - id: a
            targets:
              contact_attempts:
                min: six
                within: 48h
        """,
        5,
        "'six'",
    ),
    "contact_attempts cannot fit": (
        """
        policies:
          - id: a
            targets:
              contact_attempts:
                min: 6
                within: 1h
                gap: 15m
        """,
        7,
        "6 attempts at least 15m apart cannot fit within 1h",
    ),
    "cadence unknown status": (
        """
        policies:
          - id: a
            targets:
              cadence:
                qualified: 2d
                hot: 1d
        """,
        6,
        "unknown key 'hot'",
    ),
    "cadence lists nothing": (
        """
        policies:
          - id: a
            targets:
              cadence: {warn_at: 0.5}
        """,
        4,
        "lists no lead status",
    ),
    "cadence warn_before too long": (
        """
        policies:
          - id: a
            targets:
              cadence:
                qualified: 2d
                nurture: 30d
                warn_before: 3d
        """,
        7,
        "shorter than the qualified silence (2d)",
    ),
    "unknown calendar": (
        """
        calendars:
          office: {timezone: Asia/Jakarta, weekly: {mon: ["08:00-17:00"]}}
        policies:
          - id: a
            calendar: ofice
        """,
        5,
        "unknown calendar 'ofice'",
    ),
    "invalid calendar time zone": (
        """
        calendars:
          office:
            timezone: Asia/Djakarta
            weekly: {mon: ["08:00-17:00"]}
        policies:
          - id: a
        """,
        2,
        "calendar 'office' is invalid",
    ),
    "invalid calendar interval": (
        """
        policies:
          - id: a
        calendars:
          other: {timezone: UTC, weekly: {sat: ["00:00-24:00"]}}
          office:
            timezone: UTC
            weekly: {mon: ["8am-5pm"]}
        """,
        5,
        "calendar 'office' is invalid",
    ),
    "calendar missing timezone": (
        """
        calendars:
          office:
            weekly: {mon: ["08:00-17:00"]}
        policies:
          - id: a
        """,
        2,
        "missing 'timezone'",
    ),
    "calendar unknown key": (
        """
        calendars:
          office:
            timezone: UTC
            weekly: {mon: ["08:00-17:00"]}
            holiday: ["2026-12-25"]
        policies:
          - id: a
        """,
        5,
        "unknown key 'holiday'",
    ),
    "unknown when key": (
        """
        policies:
          - id: a
            when:
              segment: vip
              source: pricing
        """,
        5,
        "unknown attribute 'source'",
    ),
    "empty when list": (
        """
        policies:
          - id: a
            when: {lead_source: []}
        """,
        3,
        "lead_source",
    ),
    "when value that can never match": (
        """
        policies:
          - id: a
            when:
              priority: [P1, p2]
        """,
        4,
        "'p2'",
    ),
    "duplicate policy id": (
        """
        policies:
          - id: a
            when: {segment: vip}
          - id: b
            when: {priority: P1}
          - id: a
        """,
        6,
        "duplicate policy id 'a' (first defined at line 2)",
    ),
    "missing policy id": (
        """
        policies:
          - id: a
            when: {segment: vip}
          - when: {priority: P1}
            targets: {}
        """,
        4,
        "policy #2: missing 'id'",
    ),
    "unknown policy key": (
        """
        policies:
          - id: a
            target: {first_response: {within: 5m}}
        """,
        3,
        "unknown key 'target'",
    ),
    "unreachable after catch-all": (
        """
        policies:
          - id: default
          - id: vip
            when: {segment: vip}
        """,
        3,
        "policy 'vip' can never apply",
    ),
    "unreachable after broader policy": (
        """
        policies:
          - id: p1
            when: {priority: [P1, P2]}
          - id: p1-vip
            when: {priority: P1, segment: vip}
        """,
        4,
        "matched first by policy 'p1' (line 2)",
    ),
    "escalation on unknown trigger": (
        """
        policies:
          - id: a
            targets: {first_response: {within: 5m}}
            escalations:
              - on: breach
                metric: first_response
                notify: supervisor
        """,
        5,
        "'breach'",
    ),
    "escalation unknown metric": (
        """
        policies:
          - id: a
            targets: {first_response: {within: 5m}}
            escalations:
              - {on: warning, metric: first_reply, notify: supervisor}
        """,
        5,
        "unknown metric 'first_reply'",
    ),
    "escalation metric without target": (
        """
        policies:
          - id: a
            targets: {first_response: {within: 5m}}
            escalations:
              - on: breached
                metric: resolution
                reassign: true
        """,
        6,
        "'resolution' has no target",
    ),
    "escalation doing nothing": (
        """
        policies:
          - id: a
            targets: {first_response: {within: 5m}}
            escalations:
              - {on: breached, metric: first_response}
              - {on: breached, metric: first_response, reassign: false}
        """,
        5,
        "escalation #1: does nothing",
    ),
    "escalation reassign not a bool": (
        """
        policies:
          - id: a
            targets: {first_response: {within: 5m}}
            escalations:
              - {on: breached, metric: first_response, reassign: "true"}
        """,
        5,
        "reassign must be true or false",
    ),
    "overload_at zero": (
        """
        policies:
          - id: a
            overload_at: 0
        """,
        3,
        "overload_at must be at least 1",
    ),
    "overload_at not an int": (
        """
        policies:
          - id: a
            overload_at: 2.5
        """,
        3,
        "overload_at must be a whole number, not '2.5'",
    ),
    "bot_replies_count not a bool": (
        """
        policies:
          - id: a
            bot_replies_count: sometimes
        """,
        3,
        "bot_replies_count must be true or false, not 'sometimes'",
    ),
    "team agents empty": (
        """
        policies:
          - id: a
        teams:
          sales: {agents: [], supervisor: s1}
        """,
        4,
        "team 'sales', agents: the list is empty",
    ),
    "team agents not a list": (
        """
        policies:
          - id: a
        teams:
          sales:
            agents: a1
        """,
        5,
        "'agents' must be a list",
    ),
    "team agent not a string": (
        """
        policies:
          - id: a
        teams:
          sales:
            agents:
              - a1
              - [a2, a3]
        """,
        7,
        "team 'sales', agents must be a single value, not a list",
    ),
    "team agent listed twice": (
        """
        policies:
          - id: a
        teams:
          sales:
            agents:
              - a1
              - a1
        """,
        7,
        "agent 'a1' is listed twice",
    ),
    "team missing agents": (
        """
        policies:
          - id: a
        teams:
          sales: {supervisor: s1}
        """,
        4,
        "missing 'agents'",
    ),
    "team unknown key": (
        """
        policies:
          - id: a
        teams:
          sales:
            agents: [a1]
            lead: s1
        """,
        6,
        "unknown key 'lead'",
    ),
}


@pytest.mark.parametrize(("text", "line", "reason"), INVALID.values(), ids=INVALID.keys())
def test_invalid_policy_file_names_line_and_reason(text: str, line: int, reason: str) -> None:
    """Each invalid construct raises PolicyError naming the file, the node's line and the key."""
    error = _error(text)
    assert error.path == "team.yaml"
    assert error.line == line, str(error)
    assert reason in str(error)
    assert str(error).startswith(f"team.yaml:{line}: ")


def test_target_defaults() -> None:
    """Unset target keys take the documented defaults: warn_at 0.8, gap 10m, to_role ae."""
    policy = _policy(
        """
        policies:
          - id: a
            targets:
              first_response: {within: 3m}
              handoff: {within: 24h}
              contact_attempts: {min: 6, within: 48h}
              follow_up: {}
        """
    )
    first = policy.targets["first_response"]
    assert (first.within, first.warn_at, first.warn_before) == (3 * MINUTE, 0.8, None)
    assert first.pause_when == frozenset()
    assert policy.targets["handoff"].to_role == "ae"
    attempts = policy.targets["contact_attempts"]
    assert (attempts.min_attempts, attempts.within, attempts.gap) == (6, 48 * HOUR, 10 * MINUTE)
    assert policy.targets["follow_up"].within is None
    assert (policy.overload_at, policy.bot_replies_count, policy.calendar) == (20, False, None)


def test_target_values_are_converted() -> None:
    """Durations become ms, pause_when a frozenset, cadence a status→ms mapping."""
    policy = _policy(
        """
        policies:
          - id: a
            bot_replies_count: true
            overload_at: 12
            targets:
              resolution: {within: 1h30m, pause_when: pending}
              next_response: {within: 10m, warn_before: 2m}
              service_window: {within: 24h, warn_at: 0.9}
              handoff: {within: 1d, to_role: closer}
              cadence: {qualified: 2d, nurture: 30d, warn_before: 1h}
        """
    )
    assert policy.targets["resolution"].within == 90 * MINUTE
    assert policy.targets["resolution"].pause_when == frozenset({"pending"})
    assert policy.targets["next_response"].warn_before == 2 * MINUTE
    assert policy.targets["service_window"].warn_at == 0.9
    assert policy.targets["handoff"].to_role == "closer"
    cadence = policy.targets["cadence"]
    assert dict(cadence.cadence) == {"qualified": 2 * DAY, "nurture": 30 * DAY}
    assert (cadence.within, cadence.warn_before) == (None, HOUR)
    assert (policy.bot_replies_count, policy.overload_at) == (True, 12)


def test_escalations_keep_yaml_1_1_keywords_as_text() -> None:
    """`on:` (a YAML 1.1 boolean) still reads as the key `on`; escalations keep file order."""
    policy = _policy(
        """
        policies:
          - id: a
            targets: {first_response: {within: 3m}}
            escalations:
              - {on: warning,  metric: first_response, notify: supervisor}
              - {on: breached, metric: first_response, reassign: true, notify: lead}
        """
    )
    assert [(e.on, e.metric, e.notify, e.reassign) for e in policy.escalations] == [
        ("warning", "first_response", "supervisor", False),
        ("breached", "first_response", "lead", True),
    ]


def test_when_accepts_a_string_or_a_list() -> None:
    """A `when` value is one string or a list of strings, stored as a frozenset."""
    policy = _policy(
        """
        policies:
          - id: a
            when: {segment: vip, lead_source: [demo_request, pricing], channel: whatsapp}
        """
    )
    assert dict(policy.when) == {
        "segment": frozenset({"vip"}),
        "lead_source": frozenset({"demo_request", "pricing"}),
        "channel": frozenset({"whatsapp"}),
    }


def test_policy_gets_its_calendar_instance_and_id() -> None:
    """A policy's calendar is the Calendar built from `calendars`; no calendar means 24/7."""
    loaded = parse_policies(
        _yaml(
            """
            calendars:
              office:
                timezone: Asia/Jakarta
                weekly: {mon: ["08:00-22:00"], sun: []}
                holidays: [2026-12-25]
                overrides: {2026-12-24: ["08:00-15:00"]}
            policies:
              - id: a
                when: {segment: vip}
                calendar: office
              - id: b
            """
        )
    )
    first, second = loaded.policies
    assert isinstance(first.calendar, Calendar)
    assert first.calendar is loaded.calendars["office"]
    assert first.calendar_id == "office"
    assert (second.calendar, second.calendar_id) == (None, None)


def test_calendar_dates_reach_calendar_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unquoted dates and times are passed to Calendar as written, not as YAML dates or numbers."""
    seen: dict[str, Any] = {}

    class Recorder:
        def __init__(self, timezone: str, weekly: Any, *, holidays: Any, overrides: Any) -> None:
            seen.update(timezone=timezone, weekly=weekly, holidays=holidays, overrides=overrides)

    monkeypatch.setattr(policies_module, "Calendar", Recorder)
    parse_policies(
        _yaml(
            """
            calendars:
              office:
                timezone: Asia/Jakarta
                weekly: {mon: [08:00-12:00, "13:00-22:00"], sat: "00:00-24:00", sun: []}
                holidays: [2026-12-25]
                overrides: {2026-12-24: [08:00-15:00]}
            policies:
              - id: a
            """
        )
    )
    assert seen == {
        "timezone": "Asia/Jakarta",
        "weekly": {"mon": ("08:00-12:00", "13:00-22:00"), "sat": ("00:00-24:00",), "sun": ()},
        "holidays": ("2026-12-25",),
        "overrides": {"2026-12-24": ("08:00-15:00",)},
    }


def test_merge_keys_share_targets() -> None:
    """`<<: *anchor` merges shared targets; keys written beside the merge override them."""
    loaded = parse_policies(
        _yaml(
            """
            policies:
              - id: vip
                when: {segment: vip}
                targets: &base
                  first_response: {within: 5m}
                  next_response: {within: 15m}
              - id: default
                targets:
                  <<: *base
                  first_response: {within: 10m}
            """
        )
    )
    vip, default = loaded.policies
    assert vip.targets["first_response"].within == 5 * MINUTE
    assert default.targets["first_response"].within == 10 * MINUTE
    assert default.targets["next_response"].within == 15 * MINUTE


def test_teams_are_loaded_in_round_robin_order() -> None:
    """Teams keep their agents in file order and an optional supervisor."""
    loaded = parse_policies(
        _yaml(
            """
            policies:
              - id: a
            teams:
              sales: {agents: [a3, a1, a2], supervisor: s1}
              support: {agents: [c1]}
            """
        )
    )
    assert loaded.teams["sales"].agents == ("a3", "a1", "a2")
    assert loaded.teams["sales"].supervisor == "s1"
    assert (loaded.teams["support"].id, loaded.teams["support"].supervisor) == ("support", None)


def test_load_policies_names_the_file(tmp_path: Path) -> None:
    """Errors from a file carry its path; a missing file is a PolicyError too."""
    path = tmp_path / "bad.yaml"
    path.write_text("policies:\n  - id: a\n    overload_at: -1\n", encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policies(path)
    assert (caught.value.path, caught.value.line) == (str(path), 3)
    assert str(caught.value).startswith(f"{path}:3: ")
    with pytest.raises(PolicyError, match="cannot read"):
        load_policies(tmp_path / "missing.yaml")


# -- selection ---------------------------------------------------------------------------------

SELECTION = _yaml(
    """
    policies:
      - id: vip
        when: {segment: vip}
      - id: hot
        when: {lead_source: [demo_request, pricing]}
      - id: hot-bot
        when: {lead_source: newsletter, handled_by: bot}
      - id: urgent-tag
        when: {tags: [urgent, escalated]}
      - id: pending-p1
        when: {priority: P1, status: pending}
      - id: open-p1
        when: {priority: P1, status: open}
      - id: human
        when: {handled_by: human}
      - id: default
    """
)


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"segment": "vip", "lead_source": "pricing"}, "vip"),
        ({"segment": "smb", "lead_source": "pricing"}, "hot"),
        ({"lead_source": "demo_request"}, "hot"),
        ({"lead_source": "newsletter", "handled_by": "bot"}, "hot-bot"),
        ({"tags": ("vip-prospect", "escalated")}, "urgent-tag"),
        ({"tags": ("other",), "priority": "P1"}, "open-p1"),
        ({"priority": "P1", "status": "pending"}, "pending-p1"),
        ({"priority": "P1", "status": None}, "open-p1"),
        ({"segment": None, "lead_source": "newsletter"}, "human"),
        ({"handled_by": "bot"}, "default"),
        ({"tags": (), "handled_by": "bot"}, "default"),
    ],
)
def test_select_policy_first_match_wins(attrs: dict[str, AttrValue], expected: str) -> None:
    """The first policy whose every `when` key matches applies (lists any-of, tags any element)."""
    loaded = parse_policies(SELECTION)
    selected = select_policy(loaded.policies, attrs)
    assert selected is not None
    assert selected.id == expected


def test_select_policy_unset_attribute_does_not_match() -> None:
    """A missing attribute never matches a `when` on it (no catch-all means no policy)."""
    loaded = parse_policies(
        _yaml(
            """
            policies:
              - id: vip
                when: {segment: vip}
            """
        )
    )
    assert select_policy(loaded.policies, {}) is None
    assert select_policy(loaded.policies, {"segment": None}) is None
    assert select_policy(loaded.policies, {"segment": "smb"}) is None


# -- the example file -----------------------------------------------------------------------


def test_example_policy_file_loads_in_order() -> None:
    """examples/policies.yaml is valid and lists its policies most specific first."""
    loaded = load_policies(EXAMPLE)
    assert [p.id for p in loaded.policies] == [
        "vip",
        "hot-leads",
        "warm-leads",
        "cold-leads",
        "service-p1",
        "service-p2",
        "service-p3",
        "service-p4",
        "default",
    ]
    assert set(loaded.teams) == {"sales", "support", "tech"}
    assert all(p.calendar_id == "jakarta_office" for p in loaded.policies)


def test_example_hot_leads_targets() -> None:
    """The example's hot-lead policy carries the targets a speed-to-lead team expects."""
    loaded = load_policies(EXAMPLE)
    hot = select_policy(loaded.policies, {"lead_source": "pricing"})
    assert hot is not None
    assert hot.id == "hot-leads"
    targets = hot.targets
    assert targets["first_response"].within == 3 * MINUTE
    assert targets["qualification"].within == 24 * HOUR
    assert (targets["handoff"].within, targets["handoff"].to_role) == (24 * HOUR, "ae")
    attempts = targets["contact_attempts"]
    assert (attempts.min_attempts, attempts.within, attempts.gap) == (6, 48 * HOUR, 10 * MINUTE)
    assert dict(targets["cadence"].cadence) == {"qualified": 2 * DAY, "nurture": 30 * DAY}
    window = targets["service_window"]
    assert (window.within, window.warn_before) == (24 * HOUR, 2 * HOUR)
    assert [(e.on, e.reassign) for e in hot.escalations[:2]] == [
        ("warning", False),
        ("breached", True),
    ]


def test_example_service_priorities() -> None:
    """The example's P1–P4 policies pause resolution while waiting on the customer."""
    loaded = load_policies(EXAMPLE)
    expected = {
        "P1": (5 * MINUTE, 10 * MINUTE, 4 * HOUR),
        "P2": (15 * MINUTE, 30 * MINUTE, 8 * HOUR),
        "P3": (HOUR, 2 * HOUR, 24 * HOUR),
        "P4": (4 * HOUR, 8 * HOUR, 3 * DAY),
    }
    for priority, (first, following, resolution) in expected.items():
        policy = select_policy(loaded.policies, {"priority": priority})
        assert policy is not None
        assert policy.id == f"service-{priority.lower()}"
        targets = policy.targets
        assert targets["first_response"].within == first
        assert targets["next_response"].within == following
        assert targets["resolution"].within == resolution
        assert targets["resolution"].pause_when == frozenset({"pending"})


def test_example_calendar_closes_on_holidays() -> None:
    """The example's Jakarta calendar is closed on Idulfitri 2026 and open on a normal Monday."""
    loaded = load_policies(EXAMPLE)
    calendar = loaded.calendars["jakarta_office"]
    # 2026-03-21 10:00 WIB (UTC+7) is Idulfitri; 2026-03-02 10:00 WIB is an ordinary Monday.
    idulfitri = 1_774_062_000_000
    ordinary_monday = 1_772_420_400_000
    assert not calendar.is_open(idulfitri)
    assert calendar.is_open(ordinary_monday)
