"""YAML node plumbing of the policy file: nodes in, plain values or a line-naming error out.

`flows.core.policies` composes the file into nodes (never constructs Python objects, so YAML 1.1
surprises never reach the model) and reads them with a subclass of `NodeReader`; this module holds
what does not depend on the policy format: the tags, the line of a node, the readers of mappings,
scalars, lists, durations and numbers, and how a node is shown in an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NoReturn

from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from flows.core.durations import parse_duration
from flows.exceptions import DurationError, PolicyError

__all__ = ["NULL_TAG", "Entries", "NodeReader", "line_of", "listed", "shown"]

NULL_TAG: Final = "tag:yaml.org,2002:null"
_BOOL_TAG: Final = "tag:yaml.org,2002:bool"
_INT_TAG: Final = "tag:yaml.org,2002:int"
_FLOAT_TAG: Final = "tag:yaml.org,2002:float"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
_ZERO_DURATIONS: Final = frozenset({"0", "0s", "0m", "0h", "0d"})

#: A mapping's entries: key text → (key node, value node), in file order.
Entries = dict[str, tuple[ScalarNode, Node]]


def line_of(node: Node) -> int:
    """Return the 1-based line on which `node` starts (what every `PolicyError` names)."""
    return int(node.start_mark.line) + 1


def listed(names: Sequence[str]) -> str:
    """Return `names` joined for an error message ("a, b, c")."""
    return ", ".join(names)


def shown(node: Node) -> str:
    """Describe a node for an error message: its value, "empty", "a list" or "a mapping"."""
    if node.tag == NULL_TAG:
        return "empty"
    if isinstance(node, ScalarNode):
        return repr(node.value)
    return "a list" if isinstance(node, SequenceNode) else "a mapping"


class NodeReader:
    """Reads composed YAML nodes into plain values, or fails naming the file and the line.

    The policy reader (`flows.core.policies`) subclasses it with one method per key of the file;
    this base knows only YAML: mappings with merge keys and repeated keys, scalars, lists,
    durations, booleans, integers and fractions. Every method returns a validated value or raises
    `PolicyError`; none returns a partial value.

    Args:
        path: The file name the errors name.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._constructor = SafeConstructor()

    def fail(self, node: Node, reason: str) -> NoReturn:
        """Raise `PolicyError` for `node` with `reason`.

        Raises:
            PolicyError: Always, naming the file and the node's line.
        """
        raise PolicyError(reason, path=self.path, line=line_of(node))

    def mapping(self, node: Node, where: str) -> Entries:
        """Return the mapping's entries by key text, in file order, merge keys applied.

        A key written twice in the mapping itself is refused; a key given both explicitly and
        through a merge (`<<: *anchor`) takes the explicit value.

        Args:
            node: The node that must be a mapping.
            where: The location text errors start with.

        Returns:
            Key text → (key node, value node).
        """
        if not isinstance(node, MappingNode):
            self.fail(node, f"{where} must be a mapping of 'key: value' entries")
        own: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.key(key_node, where)
            if key in own:
                self.fail(key_node, f"{where}: key {key!r} is repeated (first at line {own[key]})")
            own[key] = line_of(key_node)
        try:
            self._constructor.flatten_mapping(node)
        except ConstructorError as err:
            mark = err.problem_mark or node.start_mark
            msg = f"{where}: invalid merge key: {err.problem}"
            raise PolicyError(msg, path=self.path, line=mark.line + 1) from err
        entries: Entries = {}
        for key_node, value_node in node.value:
            # Later entries win: flatten_mapping puts merged entries before the explicit ones.
            entries[self.key(key_node, where)] = (key_node, value_node)
        return entries

    def key(self, node: Node, where: str) -> str:
        """Return a mapping key's text; keys must be non-empty plain scalars."""
        if not isinstance(node, ScalarNode) or node.tag == NULL_TAG or not node.value:
            self.fail(node, f"{where}: keys must be plain names")
        return str(node.value)

    def only_keys(self, entries: Entries, allowed: Sequence[str], where: str) -> None:
        """Refuse the first key of `entries` that is not in `allowed`, listing the allowed keys."""
        for key, (key_node, _) in entries.items():
            if key not in allowed:
                self.fail(key_node, f"{where}: unknown key {key!r}; allowed: {listed(allowed)}")

    def text(self, node: Node, where: str) -> str:
        """Return a scalar's text, stripped; a list, a mapping, null or blank is refused."""
        if not isinstance(node, ScalarNode) or node.tag == NULL_TAG:
            self.fail(node, f"{where} must be a single value, not {shown(node)}")
        value = str(node.value).strip()
        if not value:
            self.fail(node, f"{where} must not be empty")
        return value

    def items(self, node: Node) -> list[Node]:
        """Return the items of a list node, or the node itself as a list of one."""
        return list(node.value) if isinstance(node, SequenceNode) else [node]

    def texts(self, node: Node, where: str, *, allow_empty: bool) -> tuple[str, ...]:
        """Read a value or a list of values (a single value is a list of one).

        Args:
            node: A scalar or a list of scalars.
            where: The location text errors start with.
            allow_empty: Whether an empty list is accepted.

        Returns:
            The texts, in file order.
        """
        if isinstance(node, SequenceNode) and not node.value and not allow_empty:
            self.fail(node, f"{where}: the list is empty; give at least one value")
        return tuple(self.text(item, where) for item in self.items(node))

    def duration(self, node: Node, where: str) -> int:
        """Return a SPEC §2 duration (`45s`, `5m`, `4h`, `2d`, `1h30m`) in milliseconds."""
        if not isinstance(node, ScalarNode) or node.tag == NULL_TAG:
            self.fail(node, f"{where} must be a duration such as 45s, 5m, 4h, 2d or 1h30m")
        try:
            return parse_duration(str(node.value))
        except DurationError as err:
            self.fail(node, f"{where}: {err}")

    def duration_or_zero(self, node: Node, where: str) -> int:
        """Return a duration in milliseconds, or 0 for `0` (also `0s`, `0m`, `0h`, `0d`)."""
        if isinstance(node, ScalarNode) and str(node.value).strip() in _ZERO_DURATIONS:
            return 0
        return self.duration(node, where)

    def boolean(self, node: Node, where: str) -> bool:
        """Return a YAML boolean (`true` / `false`); other scalars, quoted text included, fail."""
        if not isinstance(node, ScalarNode) or node.tag != _BOOL_TAG:
            self.fail(node, f"{where} must be true or false, not {shown(node)}")
        return bool(self._constructor.construct_yaml_bool(node))

    def integer(self, node: Node, where: str, minimum: int) -> int:
        """Return a YAML integer not below `minimum`; floats and quoted numbers are refused."""
        if not isinstance(node, ScalarNode) or node.tag != _INT_TAG:
            self.fail(node, f"{where} must be a whole number, not {shown(node)}")
        value = int(self._constructor.construct_yaml_int(node))
        if value < minimum:
            self.fail(node, f"{where} must be at least {minimum}, not {value}")
        return value

    def fraction(self, node: Node, where: str) -> float:
        """Return a number strictly between 0 and 1 (`warn_at`)."""
        if not isinstance(node, ScalarNode) or node.tag not in (_INT_TAG, _FLOAT_TAG):
            self.fail(node, f"{where} must be a number between 0 and 1, not {shown(node)}")
        if node.tag == _INT_TAG:
            value = float(self._constructor.construct_yaml_int(node))
        else:
            value = float(self._constructor.construct_yaml_float(node))
        if not 0.0 < value < 1.0:
            self.fail(node, f"{where} is {node.value}; it must lie strictly between 0 and 1")
        return value
