"""The pure SLA core: events, policies, calendars and the clock machine.

Nothing in this package imports bytewax, confluent_kafka or questdb, and nothing reads the wall
clock: time is always passed in. Its hot modules may run compiled by mypyc (`flows.core.native`
says which, and when the interpreted sources are used instead).
"""

from flows.core.native import choose

#: Why this process runs the pure sources of the compiled modules ("" if it may run them compiled).
PURE_REASON = choose()
