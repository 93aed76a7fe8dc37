"""A simulated week replayed in order and with late agent events ends in the same states."""

from __future__ import annotations

import pytest

from bench.convergence import main

pytestmark = pytest.mark.unit


def test_a_week_with_late_agent_events_ends_as_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    """Clocks, CSAT, handle segments and recoveries: every final state the same (clocks a late
    event withdrew are stored `cancelled`, counted nowhere, and reported apart)."""
    assert main(["--days", "3", "--seed", "11", "--share", "0.05"]) == 0
    result = next(
        line for line in capsys.readouterr().out.splitlines() if line.startswith("RESULT")
    )
    figures = dict(item.split("=") for item in result.split()[1:])
    assert figures["differ"] == "0"
    assert (
        int(figures["clocks"]) > 1_000 and int(figures["csat"]) > 0 and int(figures["handle"]) > 0
    )
