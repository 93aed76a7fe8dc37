"""The phase of a conversation's current cycle, shared by the clock machine and its families."""

from __future__ import annotations

from typing import Final

#: No cycle has opened yet.
IDLE: Final = 0
#: A cycle is open.
OPEN: Final = 1
#: The last cycle was resolved (a customer message opens the next, `reopened` continues it).
RESOLVED: Final = 2
