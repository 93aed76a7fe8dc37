"""The ILP rows QuestDBWriter builds for a realistic batch stay exactly what they were."""

from __future__ import annotations

import pytest

from bench.questdb_rows import records, run

pytestmark = pytest.mark.unit


def test_rows_of_a_mixed_batch_are_unchanged() -> None:
    """SLA (breaches, pauses, moved starts, gaps), action and dead-letter rows keep their bytes.

    The digest is of the ILP bytes `bench/questdb_rows.py` builds from 5,000 records (events
    and clocks rows, actions, dead letters) before any speed-up of the writer's row building;
    a change that alters any stored value, column or row changes it.
    """
    _, digest = run(records(5_000))
    assert digest == "6b0492f266b4e9a6"
