"""The integration tests' wait: deadlines that stretch with the load, and failures that say why."""

from __future__ import annotations

import itertools
import os
import time

import pytest

from tests import waitkit
from tests.waitkit import SCALE_ENV, timeout_scale, wait_until

pytestmark = pytest.mark.unit


@pytest.fixture
def idle(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A machine with two idle cores and no scale in the environment."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.delenv(SCALE_ENV, raising=False)
    return monkeypatch


def test_returns_the_first_state_that_meets_the_condition(idle: pytest.MonkeyPatch) -> None:
    """The wait hands back the probe's result once the condition holds, without waiting more."""
    counter = itertools.count()
    began = time.monotonic()
    assert wait_until(lambda: next(counter), lambda n: n >= 3, timeout=10, what="n") == 3
    assert time.monotonic() - began < 2


def test_deadline_grows_with_the_load_per_core_up_to_a_cap(idle: pytest.MonkeyPatch) -> None:
    """Load per core stretches deadlines (1 on an idle machine, never above the cap)."""
    assert timeout_scale() == 1
    idle.setattr(os, "getloadavg", lambda: (6.0, 1.0, 1.0))
    assert timeout_scale() == 3
    idle.setattr(os, "getloadavg", lambda: (100.0, 1.0, 1.0))
    assert timeout_scale() == waitkit.LOAD_FACTOR_CAP


def test_environment_scale_multiplies_the_load_factor(idle: pytest.MonkeyPatch) -> None:
    """SLAWATCH_TEST_TIMEOUT_SCALE stretches every deadline on top of the load."""
    idle.setenv(SCALE_ENV, "2.5")
    idle.setattr(os, "getloadavg", lambda: (4.0, 1.0, 1.0))
    assert timeout_scale() == 5
    idle.setenv(SCALE_ENV, "zero")
    with pytest.raises(ValueError, match="could not convert"):
        timeout_scale()


def test_timeout_says_what_was_awaited_what_was_seen_and_the_load(
    idle: pytest.MonkeyPatch,
) -> None:
    """A wait that fails names the condition, the last state, the elapsed time and the load."""
    idle.setenv(SCALE_ENV, "0.5")
    with pytest.raises(AssertionError) as failed:
        wait_until(
            lambda: ["row-1", "row-2"], lambda rows: len(rows) > 5, timeout=0.4, what="6 rows"
        )
    message = str(failed.value)
    assert message.startswith("6 rows: not met after 0.")
    assert "deadline 0.2 s = 0.4 s × 0.50" in message
    assert f"{SCALE_ENV}=0.5" in message
    assert "load 0.0/0.0 (1/5 min) on 2 cores" in message
    assert "Last seen: ['row-1', 'row-2']" in message


def test_retried_errors_are_reported_and_others_rise(idle: pytest.MonkeyPatch) -> None:
    """A "not yet" error from the probe is retried and shown on timeout; any other rises at once."""
    idle.setenv(SCALE_ENV, "0.1")

    def missing() -> int:
        msg = "table t does not exist"
        raise LookupError(msg)

    with pytest.raises(AssertionError, match="Last seen: LookupError: table t does not exist"):
        wait_until(missing, timeout=1, what="rows", retry=(LookupError,))
    with pytest.raises(LookupError):
        wait_until(missing, timeout=100, what="rows")


def test_a_failing_check_stops_the_wait_at_once(idle: pytest.MonkeyPatch) -> None:
    """When the process under test dies, the wait says so instead of running out its deadline."""

    def died() -> None:
        msg = "monitor exited with 1"
        raise AssertionError(msg)

    began = time.monotonic()
    with pytest.raises(AssertionError, match="monitor exited with 1"):
        wait_until(lambda: False, timeout=100, what="a breach", check=died)
    assert time.monotonic() - began < 2
