"""What `slawatch act` accepts: an action record checked field by field, and header/URL escaping.

`check_action` turns the bytes of one `sla.actions` message into an `Order` (an action `act`
can carry out, every field well typed) or a `Refused` whose reason names the field at fault, in
the words of the event decoder's reasons. Ids follow the bounds of SPEC §1: non-empty strings of
at most `MAX_ID_CHARS` characters with no control characters.

Nothing taken from a record reaches an e-mail header, an HTTP header or a URL path unescaped:
`header_token` (HTTP and `X-` headers: printable ASCII), `header_text` (the e-mail subject:
every non-printable character escaped), `single_address` (one plain addr-spec, or nothing) and
`chatwoot_target` (ASCII decimal account and display id) are the only ways in.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Any, Final, NoReturn
from urllib.parse import quote

import orjson

from flows.core.timefmt import parse_instant

#: Longest id accepted, in characters (SPEC §1).
MAX_ID_CHARS: Final = 256

#: The actions `act` carries out.
CARRIED_OUT: Final = ("notify", "reassign", "recover")

#: Triggers SPEC §6 defines.
TRIGGERS: Final = ("warning", "breached", "recovery")

_MAX_SHOWN: Final = 40

# Printable ASCII but `%` (the escape itself) and space (folded or stripped by header parsers).
_TOKEN_SAFE: Final = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")

# One plain addr-spec: a dot-atom local part and a host name. Anything fancier (quoted local
# parts, display names, lists, comments) is refused rather than handed to a header parser.
_ADDRESS: Final = re.compile(
    r"[A-Za-z0-9!#$&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*",
    re.ASCII,
)
_DECIMAL: Final = re.compile(r"[0-9]{1,18}", re.ASCII)


@dataclass(frozen=True, slots=True)
class Order:
    """An action record that passed every check: what `act` carries out.

    Attributes:
        action: `notify`, `reassign` or `recover`.
        trigger: `warning`, `breached` or `recovery` (always `recovery` for `recover`).
        conversation_id: The conversation (an id within SPEC §1 bounds).
        cycle: The clock's cycle (≥ 1).
        metric: The clock's metric (an id-like name).
        seq: The clock's seq (≥ 1).
        at: The instant as the record gave it (RFC 3339 text or epoch ms).
        policy_id: The policy, or None.
        from_agent: The assignee at `at`, or None.
        to_agent: Whom to reassign to, or None (nobody available).
        notify: Whom to notify, or None.
        reason: The record's readable reason.
        record: The record as decoded, posted as is to the notify webhook.
        send: `recover`: the name of what to send (a key of `RECOVERIES`); else None.
        rule: `recover`: the recovery rule that fired, as text; else None.
        withdrawn: `recover`: a correction withdrew the recovery (do not execute it).
    """

    action: str
    trigger: str
    conversation_id: str
    cycle: int
    metric: str
    seq: int
    at: str | int
    policy_id: str | None
    from_agent: str | None
    to_agent: str | None
    notify: str | None
    reason: str
    record: dict[str, Any]
    send: str | None = None
    rule: str | None = None
    withdrawn: bool = False

    @property
    def key(self) -> str:
        """The action's identity, `action|trigger|conversation_id|cycle|metric|seq`.

        A recovery's identity also names its rule (SPEC §4: conversation, cycle, metric, seq,
        rule): `recover|recovery|…|seq|rule`. `send` is not part of it, so a corrected record
        that names another offer is still the recovery already executed.
        """
        parts: tuple[str | int, ...] = (
            self.action,
            self.trigger,
            self.conversation_id,
            self.cycle,
            self.metric,
            self.seq,
        )
        if self.rule is not None:
            parts = (*parts, self.rule)
        return "|".join(str(part) for part in parts)


@dataclass(frozen=True, slots=True)
class Refused:
    """A message `act` cannot carry out.

    Attributes:
        reason: Why, naming the field at fault (the dead letter's reason).
    """

    reason: str


class _Invalid(Exception):
    """Raised inside the checks with the refusal reason; turned into `Refused`."""

    def __init__(self, reason: str) -> None:
        """Carry `reason`, the text the dead letter will show."""
        super().__init__(reason)
        self.reason = reason


def check_action(raw: bytes | None) -> Order | Refused:
    """Check the value of one `sla.actions` message.

    Unknown fields are ignored (kept in `Order.record`). The checks, in order: a value, JSON,
    an object, `type` = `action`, `action` one `act` carries out, then `trigger`,
    `conversation_id`, `cycle`, `metric`, `seq`, `at`, `policy_id`, `from_agent`, `to_agent`,
    `notify` and `reason`; for `recover`, then `trigger` = `recovery`, `send` (an id), `rule`
    (an id, or an integer ≥ 0: the rule's position) and `withdrawn` (optional boolean).

    Args:
        raw: the message value (None: a message without one).

    Returns:
        The order, or why not: e.g. `field 'conversation_id' must not contain control
        characters (U+000D at position 6)`, `field 'cycle' must be an integer, not a string`.
    """
    if raw is None:
        return Refused("message has no value")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Refused(f"action is not valid JSON: {exc}")
    if not isinstance(obj, dict):
        return Refused(f"action must be a JSON object, not {_json_type(obj)}")
    action = obj.get("action")
    try:
        if "type" not in obj:
            _fail("missing field 'type'")
        if obj["type"] != "action":
            _fail(f"field 'type' must be 'action', not {_show_value(obj['type'])}")
        _enum(obj, "action", CARRIED_OUT)
        order = Order(
            action=str(action),
            trigger=_enum(obj, "trigger", TRIGGERS),
            conversation_id=_id(obj, "conversation_id"),
            cycle=_count(obj, "cycle"),
            metric=_id(obj, "metric"),
            seq=_count(obj, "seq"),
            at=_instant(obj, "at"),
            policy_id=_optional_id(obj, "policy_id"),
            from_agent=_optional_id(obj, "from_agent"),
            to_agent=_optional_id(obj, "to_agent"),
            notify=_optional_id(obj, "notify"),
            reason=_text(obj, "reason"),
            record=obj,
        )
        if action == "recover":
            return _recovery(order, obj)
    except _Invalid as exc:
        return Refused(exc.reason)
    return order


def _recovery(order: Order, obj: dict[str, Any]) -> Order:
    """Return `order` with the recovery fields of SPEC §6, or raise `_Invalid` naming one."""
    if order.trigger != "recovery":
        _fail(f"field 'trigger' must be 'recovery' for action 'recover', not {order.trigger!r}")
    withdrawn = obj.get("withdrawn", False)
    if type(withdrawn) is not bool:
        _fail(f"field 'withdrawn' must be a boolean, not {_json_type(withdrawn)}")
    return replace(order, send=_id(obj, "send"), rule=_rule(obj), withdrawn=withdrawn)


def _rule(obj: dict[str, Any]) -> str:
    """Return the required recovery rule (an id, or a position ≥ 0) as text."""
    if "rule" not in obj:
        _fail("missing field 'rule'")
    value = obj["rule"]
    if type(value) is int:
        if not 0 <= value < 2**63:
            _fail(f"field 'rule' must be at least 0, not {value}")
        return str(value)
    if not isinstance(value, str):
        _fail(f"field 'rule' must be a string or an integer, not {_json_type(value)}")
    return _id(obj, "rule")


def id_problem(value: str) -> str | None:
    """Return why `value` is not an id within SPEC §1's bounds (after "field 'F' "), or None.

    Args:
        value: a string.

    Returns:
        None for a good id; else e.g. `must not be empty`, `is 300 characters long, over the
        256-character limit`, `must not contain control characters (U+000A at position 3)`.
    """
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_CHARS:
        return f"is {len(value)} characters long, over the {MAX_ID_CHARS}-character limit"
    for position, char in enumerate(value):
        if unicodedata.category(char) == "Cc":
            return f"must not contain control characters (U+{ord(char):04X} at position {position})"
    return None


def header_token(text: str) -> str:
    """Return `text` as an HTTP or `X-` header value: printable ASCII, no spaces.

    `%`, spaces, control characters and non-ASCII characters become `%XX` (UTF-8 bytes), the
    rest is kept, so an identity of plain ASCII ids (`notify|breached|cw:7:43|1|…`) is unchanged
    and any other is one unambiguous token.
    """
    return quote(text, safe=_TOKEN_SAFE)


def header_text(text: str) -> str:
    """Return `text` fit for an e-mail subject: every non-printable character as `%XX`.

    Line breaks of any kind (CR, LF, NEL, U+2028…), other control and format characters, and
    `%` itself are escaped; other non-ASCII text is kept (the mail library encodes it as RFC
    2047 words).
    """
    return "".join(
        char if char.isprintable() and char != "%" else quote(char, safe="") for char in text
    )


def single_address(text: str | None) -> str | None:
    """Return `text` if it is exactly one plain e-mail address (`local@host`), else None.

    No display names, lists, quoted parts or comments, and ASCII only: a value that would make
    the `To` header name anyone else (`a@x.com, b@y.com`) is not an address.
    """
    if text is None or len(text) > MAX_ID_CHARS or _ADDRESS.fullmatch(text) is None:
        return None
    return text


def chatwoot_target(conversation_id: str) -> tuple[str, str] | None:
    """Return the account and display id of a Chatwoot conversation id, or None.

    Args:
        conversation_id: `cw:{account}:{display_id}`, both ASCII decimal (at most 18 digits).

    Returns:
        `(account, display_id)` ready for a URL path, or None when the id has another shape.
    """
    parts = conversation_id.split(":")
    if len(parts) != 3 or parts[0] != "cw":
        return None
    _, account, display_id = parts
    if _DECIMAL.fullmatch(account) is None or _DECIMAL.fullmatch(display_id) is None:
        return None
    return quote(account, safe=""), quote(display_id, safe="")


def is_user_id(text: str) -> bool:
    """Whether `text` is a Chatwoot user id: ASCII decimal, at most 18 digits."""
    return _DECIMAL.fullmatch(text) is not None


def show(text: str) -> str:
    """Return `repr(text)` cut to 40 characters: how a reason or a log line quotes a value."""
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return repr(text)


def _fail(reason: str) -> NoReturn:
    raise _Invalid(reason)


def _id(obj: dict[str, Any], key: str) -> str:
    """Return the required id `key`, or raise `_Invalid` naming it."""
    if key not in obj:
        _fail(f"missing field '{key}'")
    value = obj[key]
    if not isinstance(value, str):
        _fail(f"field '{key}' must be a string, not {_json_type(value)}")
    problem = id_problem(value)
    if problem is not None:
        _fail(f"field '{key}' {problem}")
    return str(value)


def _optional_id(obj: dict[str, Any], key: str) -> str | None:
    """Return the optional id `key` (missing or null: None), or raise `_Invalid` naming it."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        _fail(f"field '{key}' must be a string or null, not {_json_type(value)}")
    return _id(obj, key)


def _enum(obj: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    """Return the required string `key`, one of `allowed`, or raise `_Invalid` naming it."""
    if key not in obj:
        _fail(f"missing field '{key}'")
    value = obj[key]
    if not isinstance(value, str) or value not in allowed:
        choices = ", ".join(f"'{choice}'" for choice in allowed)
        _fail(f"field '{key}' must be one of {choices}, not {_show_value(value)}")
    return str(value)


def _count(obj: dict[str, Any], key: str) -> int:
    """Return the required integer `key` (≥ 1), or raise `_Invalid` naming it."""
    if key not in obj:
        _fail(f"missing field '{key}'")
    value = obj[key]
    if type(value) is not int:
        _fail(f"field '{key}' must be an integer, not {_json_type(value)}")
    if not 1 <= value < 2**63:
        _fail(f"field '{key}' must be at least 1, not {value}")
    return int(value)


def _instant(obj: dict[str, Any], key: str) -> str | int:
    """Return the required instant `key` as given, or raise `_Invalid` naming it."""
    if key not in obj:
        _fail(f"missing field '{key}'")
    value = obj[key]
    try:
        parse_instant(value)
    except ValueError as exc:
        _fail(f"field '{key}': {exc}")
    return value  # type: ignore[no-any-return]


def _text(obj: dict[str, Any], key: str) -> str:
    """Return the required string `key` (any text), or raise `_Invalid` naming it."""
    if key not in obj:
        _fail(f"missing field '{key}'")
    value = obj[key]
    if not isinstance(value, str):
        _fail(f"field '{key}' must be a string, not {_json_type(value)}")
    return str(value)


def _show_value(value: object) -> str:
    """Quote a string value as `show` does; name the JSON type of any other."""
    return show(value) if isinstance(value, str) else _json_type(value)


def _json_type(value: object) -> str:
    """Return the JSON type of a parsed value as a reason says it ("null", "an integer", …)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
