"""The pure SLA core: events, policies, calendars and the clock machine.

Nothing in this package imports bytewax, confluent_kafka or questdb, and nothing reads the wall
clock: time is always passed in.
"""
