"""Engine snapshots for recovery: the state without the policies.

Conversations and clocks point at `Policy`, `Target` and calendar objects. A snapshot replaces
those references with their ids (`persistent_id`), so it stays small and a restart binds the
state to the policies loaded at that start: a policy or calendar edited between runs applies to
clocks already running; one that was removed leaves its clocks unmeasured.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from flows.core.calendar import WALL_CLOCK
from flows.core.engine import Engine
from flows.core.model import BusinessTime, Policy, PolicySet, Target


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, policies: PolicySet) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._targets = {
            id(tgt): (policy.id, metric)
            for policy in policies.policies
            for metric, tgt in policy.targets.items()
        }
        self._cals = {id(cal): name for name, cal in policies.calendars.items()}

    def persistent_id(self, obj: Any) -> Any:  # noqa: D102 - pickle protocol hook
        if isinstance(obj, Policy):
            return ("policy", obj.id)
        if isinstance(obj, Target):
            return ("target", *self._targets.get(id(obj), ("", obj.metric)))
        if obj is WALL_CLOCK:
            return ("wall",)
        if isinstance(obj, PolicySet):
            return ("policies",)
        cal = self._cals.get(id(obj))
        if cal is not None:
            return ("calendar", cal)
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, policies: PolicySet) -> None:
        super().__init__(file)
        self._policies = policies
        self._by_id = {policy.id: policy for policy in policies.policies}

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102 - pickle protocol hook
        kind = pid[0]
        if kind == "policy":
            return self._by_id.get(pid[1])
        if kind == "target":
            policy = self._by_id.get(pid[1])
            return policy.targets.get(pid[2]) if policy is not None else None
        if kind == "wall":
            return WALL_CLOCK
        if kind == "policies":
            return self._policies
        if kind == "calendar":
            cal: BusinessTime | None = self._policies.calendars.get(pid[1])
            return cal if cal is not None else WALL_CLOCK
        msg = f"unknown persistent id in snapshot: {pid!r}"
        raise pickle.UnpicklingError(msg)


def dump_engine(engine: Engine) -> bytes:
    """Serialize an engine's state (conversations, timers, pending events) without policies."""
    buf = io.BytesIO()
    _Pickler(buf, engine.ctx.policies).dump(engine)
    return buf.getvalue()


def load_engine(data: bytes, policies: PolicySet) -> Engine:
    """Rebuild an engine from `dump_engine` output, bound to `policies`."""
    engine = _Unpickler(io.BytesIO(data), policies).load()
    if not isinstance(engine, Engine):
        msg = f"snapshot holds {type(engine).__name__}, not an Engine"
        raise TypeError(msg)
    engine.ctx.bind(policies)
    return engine
