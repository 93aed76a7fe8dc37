"""slawatch benchmarks: `python -m bench [--quick]` runs them all against a private stack.

The modules can also be run alone (`python bench/engine_bench.py`, `python bench/monitor_bench.py`,
...); `python -m bench` imports their functions and adds the raw ceiling, the polling baseline,
breach latency under load and the recovery measurement (see `bench/__main__.py`).
"""
