"""What the conversations of one engine share: the policies, agent loads and the output list.

Conversations read policies through `Context.policy_for` (memoised on the attributes policies
test), count open conversations per agent in `loads` (for the `overloaded` cause and
reassignment), append their records to `out`, and hold their attribute and clock-numbering
dicts through `share_attrs` / `share_seqs`, so conversations with equal ones hold one dict; the
engine swaps `loads`, `rr` and `out` for its rebuilds and shares `loads` and `rr` with the other
engines of a worker.
"""

from __future__ import annotations

from typing import Final, TypeVar

from flows.core.events import AttrValue
from flows.core.families import Hooks, handle
from flows.core.model import Policy, PolicySet
from flows.core.native import mypyc_attr
from flows.core.policies import select_policy
from flows.core.records import Record

#: At most this many distinct dicts per table of shared dicts (an engine per shard has two).
SHARED_MAX: Final = 1_024

_V = TypeVar("_V")


def _shared(
    table: dict[tuple[tuple[str, _V], ...], dict[str, _V]], d: dict[str, _V]
) -> dict[str, _V]:
    """Return the dict of `table` with the items of `d` in their order, or put `d` in and return it.

    A table that holds `SHARED_MAX` dicts is emptied first, so it stays bounded.
    """
    key = tuple(d.items())
    shared = table.get(key)
    if shared is not None:
        return shared
    if len(table) >= SHARED_MAX:
        table.clear()
    table[key] = d
    return d


#: The slots of `Context` (a compiled class has no `__slots__` to read back).
_CONTEXT_SLOTS: Final = (
    "_policy_cache",
    "_shared_attrs",
    "_shared_seqs",
    "_when_keys",
    "hooks",
    "loads",
    "out",
    "owning_teams",
    "policies",
    "rr",
    "team_of_agent",
    "tracked",
)


#: Slots a snapshot leaves out (rebuilt on restore).
_UNSAVED: Final = frozenset(("hooks", "_shared_attrs", "_shared_seqs"))


@mypyc_attr(allow_interpreted_subclasses=True)
class Context:
    """What conversations share within one engine: policies, agent loads and the output list.

    Attributes:
        policies: The policy file in force (`bind` replaces it).
        tracked: Every metric some policy gives a target; a metric outside it never gets a clock,
            not even an unmeasured one. Also `handle` when some policy measures handle time.
        hooks: The metric families' hooks for the tracked metrics (`flows.core.families.Hooks`).
        owning_teams: Every team some policy's `team_ownership` target lists: only they start
            stints (SPEC §4).
        team_of_agent: The first team listing each agent (for records without a `team_id`).
        loads: Open conversations per agent on this worker (SPEC §4 `overloaded`, §6 reassign).
            Shared by every shard of the worker; not part of a snapshot.
        rr: Per team, the index of the agent last chosen by a reassignment (round-robin ties).
        out: Records emitted since the engine last drained it, in emission order.

    A dict returned by `share_attrs` or `share_seqs` may be held by many conversations: it is
    never changed in place. A conversation that changes its attributes or numbering builds a new
    dict and shares that instead (copy-on-write). The tables are not part of a snapshot.
    """

    __slots__ = _CONTEXT_SLOTS

    def __init__(self, policies: PolicySet) -> None:
        self.loads: dict[str, int] = {}
        self.rr: dict[str, int] = {}
        self.out: list[Record] = []
        self._shared_attrs: dict[tuple[tuple[str, AttrValue], ...], dict[str, AttrValue]] = {}
        self._shared_seqs: dict[tuple[tuple[str, int], ...], dict[str, int]] = {}
        self.bind(policies)

    def __getstate__(self) -> dict[str, object]:
        """Return the state to snapshot, without the state shared with other engines.

        Agent loads and the output list belong to the worker (its shards share them); a
        restored engine counts its own conversations into the worker's again. Its round-robin
        positions are kept, for `Engine.share_loads` to merge into the worker's. The tables of
        shared dicts are rebuilt as restored conversations are shared again.
        """
        state = {name: getattr(self, name) for name in _CONTEXT_SLOTS if name not in _UNSAVED}
        # The round-robin positions are kept (`Engine.share_loads` merges them into the
        # worker's): a restart must hand the next conversation to the agent it would have.
        state["loads"], state["rr"], state["out"] = {}, dict(self.rr), []
        return state

    def __setstate__(self, state: dict[str, object] | tuple[None, dict[str, object]]) -> None:
        """Restore a snapshot taken with `__getstate__` (or, before it existed, by default).

        Args:
            state: The mapping `__getstate__` returned, or the `(None, slots)` pair of a default
                pickle of a slotted object.
        """
        values = state[1] if isinstance(state, tuple) else state
        for name, value in values.items():
            if name not in _UNSAVED:
                object.__setattr__(self, name, value)
        rr = values.get("rr")
        self.loads, self.out = {}, []
        self.rr = dict(rr) if isinstance(rr, dict) else {}
        self._shared_attrs = {}
        self._shared_seqs = {}
        self.hooks = Hooks(self.tracked)

    def bind(self, policies: PolicySet) -> None:
        """Use `policies` from now on (at start-up, or when a snapshot is restored).

        Recomputes the tracked metrics, the agents' teams and the attribute keys any `when` reads,
        and empties the policy cache, so nothing chosen under the previous file survives. Running
        clocks keep their bound targets until their conversation next reselects.

        Args:
            policies: The loaded policy file.
        """
        self.policies = policies
        tracked = {metric for policy in policies.policies for metric in policy.targets}
        if any(policy.handle_idle is not None for policy in policies.policies):
            tracked.add(handle.HANDLE)
        self.tracked: frozenset[str] = frozenset(tracked)
        self.hooks = Hooks(self.tracked)
        self.owning_teams: frozenset[str] = frozenset(
            team
            for policy in policies.policies
            if "team_ownership" in policy.targets
            for team in policy.targets["team_ownership"].teams
        )
        team_of: dict[str, str] = {}
        for team in policies.teams.values():
            for agent in team.agents:
                team_of.setdefault(agent, team.id)
        self.team_of_agent = team_of
        self._when_keys = tuple(
            sorted({key for policy in policies.policies for key in policy.when})
        )
        self._policy_cache: dict[tuple[AttrValue, ...], Policy | None] = {}

    def share_attrs(self, attrs: dict[str, AttrValue]) -> dict[str, AttrValue]:
        """Return the shared dict with the items of `attrs` in their order (`attrs` if it is new).

        The caller gives up `attrs`: once shared it must never be changed in place. A table
        that reaches `SHARED_MAX` distinct dicts is emptied before the next goes in, so it stays
        bounded whatever the attributes (the dicts shared until then stay with their holders).

        Args:
            attrs: A conversation's attributes, freshly built.
        """
        return _shared(self._shared_attrs, attrs)

    def share_seqs(self, seqs: dict[str, int]) -> dict[str, int]:
        """Return the shared dict with the items of `seqs` in their order (`seqs` if it is new).

        Like `share_attrs`, for a conversation's last clock number per metric.

        Args:
            seqs: A conversation's clock numbering, freshly built.
        """
        return _shared(self._shared_seqs, seqs)

    def policy_reads(self, key: str) -> bool:
        """Return whether any policy's `when` reads this attribute.

        A change to an attribute no policy reads cannot change the policy, so callers skip the
        reselection (and its retarget records).

        Args:
            key: A conversation attribute name (`priority`, `channel`, …).

        Returns:
            True if at least one policy's `when` has the key.
        """
        return key in self._when_keys

    def policy_for(self, attrs: dict[str, AttrValue]) -> Policy | None:
        """Return the policy for these attributes (memoised on the attributes policies read).

        SPEC §3: the first policy whose `when` matches applies. The cache is keyed on the values of
        the attributes some `when` reads and holds at most 65,536 entries (later keys are computed
        each time, never evicted).

        Args:
            attrs: The conversation's current attributes.

        Returns:
            The matching policy, or None when no policy matches (nothing is measured).
        """
        key = tuple([attrs.get(k) for k in self._when_keys])
        try:
            return self._policy_cache[key]
        except KeyError:
            policy = select_policy(self.policies.policies, attrs)
            if len(self._policy_cache) < 65_536:
                self._policy_cache[key] = policy
            return policy
