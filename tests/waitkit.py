"""One load-aware wait for the integration tests: poll a condition, report what was seen last.

Integration tests run Kafka, QuestDB and monitor processes on a machine that may be shared: the
same wait that takes 2 s alone takes 30 s when the cores are busy. `wait_until` therefore

- stretches its deadline by `timeout_scale()`: `SLAWATCH_TEST_TIMEOUT_SCALE` (default 1, for a
  slow CI runner) times the machine's load per core (1-minute load average over the CPU count,
  at least 1, at most `LOAD_FACTOR_CAP`), re-read while it waits so a load that rises mid-wait
  still counts; the deadline only ever grows;
- polls with a backoff (fast at first, then at most every `every_max` seconds), so a quick
  condition is seen at once and a slow one does not spin on the busy cores;
- on timeout fails with an `AssertionError` that names the condition, the elapsed time, the
  deadline and how it was scaled, the load, and what the probe returned last (or raised).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Final, TypeVar

T = TypeVar("T")

#: The environment variable that stretches every deadline (a float, e.g. 2 on a slow runner).
SCALE_ENV: Final = "SLAWATCH_TEST_TIMEOUT_SCALE"
#: The most the machine's load stretches a deadline (on top of the environment's scale).
LOAD_FACTOR_CAP: Final = 4.0


def env_scale() -> float:
    """Return `SLAWATCH_TEST_TIMEOUT_SCALE` (1 when unset; at least 0.1).

    Raises:
        ValueError: The variable is set but is not a positive number.
    """
    raw = os.environ.get(SCALE_ENV, "").strip()
    if not raw:
        return 1.0
    value = float(raw)
    if not value > 0:
        message = f"{SCALE_ENV} must be a positive number, not {raw!r}"
        raise ValueError(message)
    return max(0.1, value)


def load_per_cpu() -> float:
    """Return the 1-minute load average per CPU core (0 where the OS does not say)."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 0.0
    return load / (os.cpu_count() or 1)


def load_factor() -> float:
    """Return how much the machine's load stretches a deadline: 1 to `LOAD_FACTOR_CAP`."""
    return min(LOAD_FACTOR_CAP, max(1.0, load_per_cpu()))


def timeout_scale() -> float:
    """Return the factor applied to every base deadline now: environment × load."""
    return env_scale() * load_factor()


def scaled(seconds: float) -> float:
    """Return `seconds` stretched by the current `timeout_scale()`."""
    return seconds * timeout_scale()


def describe_load() -> str:
    """Return the load as a short phrase for failure messages."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load unknown"
    return f"load {one:.1f}/{five:.1f} (1/5 min) on {os.cpu_count() or 1} cores"


def _shown(value: object, limit: int = 2_000) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def wait_until(
    probe: Callable[[], T],
    until: Callable[[T], bool] = bool,
    *,
    timeout: float,
    what: str,
    show: Callable[[T], str] = _shown,
    check: Callable[[], None] | None = None,
    retry: tuple[type[Exception], ...] = (),
    every: float = 0.05,
    every_max: float = 0.5,
) -> T:
    """Call `probe` until `until(result)` holds, and return that result.

    Args:
        probe: Reads the state (a query, a poll, a log); may block briefly itself.
        until: Whether the state is the one waited for (default: truthy).
        timeout: The base deadline in seconds, for an idle machine; stretched by
            `timeout_scale()`, re-read on every poll.
        what: The condition in words, for the failure message ("20 breaches on Kafka").
        show: Renders the last state for the failure message.
        check: Called before each probe; raises to stop at once (e.g. the process under test
            died), so a crash is not reported as a timeout.
        retry: Exceptions of `probe` that mean "not yet" (e.g. a table that does not exist
            yet); the last one is reported on timeout.
        every: The first pause between polls (s); it grows by half on each poll.
        every_max: The longest pause between polls (s). 0 with `every` 0 for probes that wait
            by themselves (a Kafka consume).

    Returns:
        The first probe result that satisfied `until`.

    Raises:
        AssertionError: The condition did not hold before the deadline.
    """
    began = time.monotonic()
    deadline = timeout * timeout_scale()
    pause = every
    polls = 0
    last: str = "nothing (the probe never returned)"
    while True:
        if check is not None:
            check()
        polls += 1
        try:
            state = probe()
        except retry as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if until(state):
                return state
            last = show(state)
        elapsed = time.monotonic() - began
        deadline = max(deadline, timeout * timeout_scale())
        if elapsed >= deadline:
            message = (
                f"{what}: not met after {elapsed:.1f} s ({polls} polls; deadline "
                f"{deadline:.1f} s = {timeout:g} s × {deadline / timeout:.2f} for "
                f"{SCALE_ENV}={env_scale():g} and {describe_load()}).\nLast seen: {last}"
            )
            raise AssertionError(message)
        time.sleep(max(0.0, min(pause, deadline - elapsed)))
        pause = min(every_max, pause * 1.5)
