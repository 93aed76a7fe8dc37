"""The wall clock, read in one place: epoch milliseconds UTC.

The SLA core never reads it (it is driven by event time); connectors, the monitor's watermark
and the command line do, through `now_ms`, and tests inject their own clock instead.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    """Return the wall clock as integer epoch milliseconds (UTC).

    Returns:
        Milliseconds since 1970-01-01T00:00:00Z, truncated; not monotonic (it follows the system
        clock, which may be set back).
    """
    return time.time_ns() // 1_000_000
