"""Engine snapshots for recovery: the state without the policies.

Conversations and clocks point at `Policy`, `Target` and calendar objects. A snapshot replaces
those references with their ids, so it stays small and a restart binds the state to the
policies loaded at that start: a policy or calendar edited between runs applies to clocks
already running; one that was removed leaves its clocks unmeasured.

Snapshots run every epoch for every touched shard, so they use the C pickler with a
`dispatch_table` for the few policy types only: a Python-level hook called for every object
(`persistent_id`) made them several times slower.
"""

from __future__ import annotations

import copyreg
import io
import pickle
import threading
from collections.abc import Callable
from typing import Any, Final

from flows.core.calendar import WALL_CLOCK, Calendar, WallClock
from flows.core.engine import Engine
from flows.core.model import BusinessTime, Policy, PolicySet, Target

_loading = threading.local()


def _active() -> PolicySet:
    """Return the policy set `load_engine` is binding the snapshot to (thread-local).

    Raises:
        pickle.UnpicklingError: called outside `load_engine` (a snapshot unpickled directly).
    """
    policies: PolicySet | None = getattr(_loading, "policies", None)
    if policies is None:
        msg = "engine snapshots can only be loaded through load_engine()"
        raise pickle.UnpicklingError(msg)
    return policies


def _policy(policy_id: str) -> Policy | None:
    """Return the loaded policy with this id, or None if the policy file no longer has it."""
    for policy in _active().policies:
        if policy.id == policy_id:
            return policy
    return None


def _target(policy_id: str, metric: str, team: str | None = None) -> Target | None:
    """Return the loaded target of `metric` in policy `policy_id`, or None.

    With `team`, the team's own target within it (`team_ownership`'s per-team targets). None
    leaves the clock unmeasured until its conversation next reselects its policy.
    """
    policy = _policy(policy_id)
    tgt = policy.targets.get(metric) if policy is not None else None
    if team is not None and tgt is not None:
        return tgt.teams.get(team)
    return tgt


def _calendar(name: str) -> BusinessTime:
    """Return the loaded calendar of this name; a removed calendar becomes wall-clock time."""
    cal = _active().calendars.get(name)
    return cal if cal is not None else WALL_CLOCK


def _wall() -> BusinessTime:
    """Return the shared `WALL_CLOCK`, which must keep its identity across restores."""
    return WALL_CLOCK


def _policy_set() -> PolicySet:
    """Return the loaded policy set (the context's reference is replaced, not pickled)."""
    return _active()


#: Marks the snapshot layout: an engine header and one pickle per conversation.
_LAYOUT: Final = "slawatch-engine/2"


def dump_engine(engine: Engine) -> bytes:
    """Serialize an engine's state (conversations, timers, pending events) without policies.

    Policies, targets and calendars are written as references (policy id, metric, calendar name);
    the duplicate filter and the worker-shared loads are left out (`Engine.__getstate__`,
    `Context.__getstate__`). Each conversation is pickled on its own and its bytes kept in
    `engine.blobs`: a later dump pickles again only the conversations touched since
    (`engine.dirty`), so a snapshot costs in proportion to what changed, not to the shard.

    Args:
        engine: The engine to snapshot; only its snapshot cache (`blobs`, `dirty`) changes.

    Returns:
        Pickle bytes for `load_engine` (this project's recovery store only).
    """
    policies = engine.ctx.policies
    targets: dict[int, tuple[str, ...]] = {
        id(tgt): (policy.id, metric)
        for policy in policies.policies
        for metric, tgt in policy.targets.items()
    }
    # A team stint's clock holds its team's own target: a reference to it, not a copy.
    targets.update(
        (id(sub), (policy.id, metric, team))
        for policy in policies.policies
        for metric, tgt in policy.targets.items()
        for team, sub in tgt.teams.items()
    )
    calendars = {id(cal): name for name, cal in policies.calendars.items()}

    def reduce_target(tgt: Target) -> tuple[Callable[..., Any], tuple[str, ...]]:
        """Pickle a target as (policy id, metric[, team]); an unknown one as ("", metric)."""
        return _target, targets.get(id(tgt), ("", tgt.metric))

    def reduce_calendar(cal: Calendar) -> tuple[Callable[..., Any], tuple[str]]:
        """Pickle a calendar as its name in the policy file ("" if it is not one of them)."""
        return _calendar, (calendars.get(id(cal), ""),)

    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    table = copyreg.dispatch_table.copy()
    table[Policy] = lambda policy: (_policy, (policy.id,))
    table[Target] = reduce_target
    table[Calendar] = reduce_calendar
    table[WallClock] = lambda _cal: (_wall, ())
    table[PolicySet] = lambda _pset: (_policy_set, ())
    pickler.dispatch_table = table

    def pickled(obj: object) -> bytes:
        buf.seek(0)
        buf.truncate()
        pickler.clear_memo()
        pickler.dump(obj)
        return buf.getvalue()

    convs, blobs = engine.conversations, engine.blobs
    dirty = engine.dirty if engine.dirty is not None else set()
    if len(blobs) != len(convs):
        # Conversations the cache never saw (the first dump, or an older snapshot layout).
        dirty.update(cid for cid in convs if cid not in blobs)
    for cid in dirty:
        conv = convs.get(cid)
        if conv is None:
            blobs.pop(cid, None)
        else:
            blobs[cid] = pickled(conv)
    dirty.clear()
    engine.dirty = dirty
    engine.conversations = {}
    try:
        header = pickled(engine)
    finally:
        engine.conversations = convs
    return pickle.dumps((_LAYOUT, header, blobs), protocol=pickle.HIGHEST_PROTOCOL)


#: Classes that moved since a snapshot layout was written: (old module, name) -> new module.
_MOVED: Final = {("flows.core.conversation", "Context"): "flows.core.context"}


class _Unpickler(pickle.Unpickler):
    """Reads this project's own snapshots, finding classes at their current import paths."""

    def find_class(self, module: str, name: str) -> Any:
        """Return the class `module.name` pickled, wherever it lives now."""
        return super().find_class(_MOVED.get((module, name), module), name)


def _loads(data: bytes) -> Any:
    # Our own recovery store only, never foreign input.
    return _Unpickler(io.BytesIO(data)).load()


def load_engine(data: bytes, policies: PolicySet) -> Engine:
    """Rebuild an engine from `dump_engine` output, bound to `policies`.

    A policy, target or calendar that no longer exists in `policies` leaves its clocks unmeasured
    (or on wall-clock time); edited ones apply to clocks already running. The restored engine shares
    no loads until `Engine.share_loads`. Snapshots of the older one-pickle layout load too.

    Args:
        data: Bytes written by `dump_engine` (never foreign input: this unpickles).
        policies: The policy file loaded at this start.

    Returns:
        The restored engine.

    Raises:
        TypeError: the bytes hold something other than an engine.
    """
    _loading.policies = policies
    try:
        loaded = _loads(data)
        if isinstance(loaded, tuple) and len(loaded) == 3 and loaded[0] == _LAYOUT:
            _, header, blobs = loaded
            engine = _loads(header)
            if isinstance(engine, Engine):
                engine.conversations = {cid: _loads(blob) for cid, blob in blobs.items()}
                engine.blobs = dict(blobs)
                engine.dirty = set()
        else:
            engine = loaded
    finally:
        _loading.policies = None
    if not isinstance(engine, Engine):
        msg = f"snapshot holds {type(engine).__name__}, not an Engine"
        raise TypeError(msg)
    engine.ctx.bind(policies)
    for conv in engine.conversations.values():
        conv.share_dicts(engine.ctx)
    return engine
