"""The business the simulator imitates: agents and shifts, teams, lead sources, volume, habits.

A business is read from a small YAML file (`examples/business.yaml` is the commented example;
`examples/demo-business.yaml` is the seconds-scale demo) or built from the defaults below, which
describe the same Jakarta team as `examples/policies.yaml`. Every field has a default, so a file
names only what differs. Unknown keys are refused, so a typo never silently falls back.
Durations are written like `45s`, `5m`, `2h` or as a number of seconds; they are held in ms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from flows.core.durations import parse_duration
from flows.exceptions import DurationError, SimulationError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MON_FRI = WEEKDAYS[:5]
PRIORITIES = ("P1", "P2", "P3", "P4")
TIERS = ("hot", "warm", "cold", "service")

#: Share of a day's conversations arriving in each local hour, before the campaign spike:
#: quiet nights, a morning rise, busy office hours, a lighter evening.
DEFAULT_HOURLY = (
    0.4, 0.25, 0.2, 0.2, 0.3, 0.6, 1.2, 2.5, 4.5, 6.0, 6.5, 6.2,
    5.0, 5.5, 6.0, 5.8, 5.2, 4.5, 4.0, 4.2, 4.4, 3.5, 2.0, 1.0,
)  # fmt: skip


class _Model(BaseModel):
    """Base of the business models: frozen, no unknown keys, defaults validated too."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


def _duration_ms(value: object) -> int:
    """Return a duration in ms: an int is seconds, text is a SPEC §2 duration (`45s`, `2h`).

    Raises:
        ValueError: the text is not a duration (pydantic reports it against the field).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value * 1000
    try:
        return parse_duration(str(value))
    except DurationError as exc:
        raise ValueError(str(exc)) from exc


def _hhmm(text: str) -> int:
    """Return a local `HH:MM` time as minutes after midnight (`24:00` allowed, as 1440).

    Raises:
        ValueError: not `HH:MM`, or not a time of day.
    """
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        msg = f"{text!r} is not a time such as '08:00'"
        raise ValueError(msg)
    total = int(hours) * 60 + int(minutes)
    if total > 24 * 60 or int(minutes) >= 60:
        msg = f"{text!r} is not a time of day"
        raise ValueError(msg)
    return total


class Agent(_Model):
    """One agent: id, role and shift.

    Roles: `sdr` qualifies leads, `ae` closes them, `cs` serves (the front line) and
    `specialist` works in a back office on what the front line hands over (`back_office`).

    `shift` is local `HH:MM-HH:MM` (an end before the start runs past midnight); `days` are the
    weekdays worked.

    Attributes:
        id: The agent id events carry.
        role: `sdr`, `ae`, `cs` (default) or `specialist`.
        shift: Local working hours, default `08:00-17:00`.
        days: Weekday keys worked, default Monday to Saturday.
    """

    id: str = Field(min_length=1)
    role: Literal["sdr", "ae", "cs", "specialist"] = "cs"
    shift: str = "08:00-17:00"
    days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat")

    @field_validator("shift")
    @classmethod
    def _check_shift(cls, value: str) -> str:
        """Refuse a shift that is not `HH:MM-HH:MM`."""
        start, sep, end = value.partition("-")
        if not sep:
            msg = f"shift {value!r} must look like '08:00-17:00'"
            raise ValueError(msg)
        _hhmm(start)
        _hhmm(end)
        return value

    @field_validator("days")
    @classmethod
    def _check_days(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Refuse weekday keys other than `mon` .. `sun`."""
        unknown = [d for d in value if d not in WEEKDAYS]
        if unknown:
            msg = f"unknown weekday(s) {unknown}; use {', '.join(WEEKDAYS)}"
            raise ValueError(msg)
        return value

    def shift_minutes(self) -> tuple[int, int]:
        """Return the shift as local (start, end) minutes of the day; end may exceed 1440."""
        start_text, _, end_text = self.shift.partition("-")
        start, end = _hhmm(start_text), _hhmm(end_text)
        if end <= start:
            end += 24 * 60
        return start, end


class Team(_Model):
    """A team: its agents (round-robin order) and its supervisor.

    Attributes:
        agents: At least one agent.
        supervisor: Who `notify: supervisor` reaches, if anyone.
    """

    agents: tuple[Agent, ...] = Field(min_length=1)
    supervisor: str | None = None


class LeadSource(_Model):
    """Where leads come from, what share of conversations they are, and how hot they are.

    Attributes:
        name: The `lead_source` value conversations carry.
        share: Probability that a (non-campaign) conversation is a lead of this source.
        tier: `hot`, `warm` or `cold`: which response times apply.
    """

    name: str = Field(min_length=1)
    share: float = Field(ge=0)
    tier: Literal["hot", "warm", "cold"] = "warm"


class Response(_Model):
    """How fast agents answer: log-normal with this median (ms) and spread; some never answer.

    `never` is the share of conversations (and, halved, of later customer messages) that no
    agent answers.
    """

    median: int = 300
    sigma: float = Field(default=1.1, gt=0, le=3)
    never: float = Field(default=0.04, ge=0, le=1)

    @field_validator("median", mode="before")
    @classmethod
    def _parse_median(cls, value: object) -> int:
        """Accept the median as seconds or a duration; hold it in ms."""
        return _duration_ms(value)


class Campaign(_Model):
    """An ad campaign that sends a spike of leads from `at` (local) for `minutes` every day.

    Attributes:
        at: Local start time `HH:MM`.
        minutes: How long the spike lasts (arrivals thin out exponentially over it).
        share: Share of each day's conversations that come from the campaign.
        lead_source: The lead source campaign conversations carry.
    """

    at: str = "19:00"
    minutes: int = Field(default=60, gt=0, le=24 * 60)
    share: float = Field(default=0.18, ge=0, lt=1)
    lead_source: str = "ads"

    @field_validator("at")
    @classmethod
    def _check_at(cls, value: str) -> str:
        """Refuse a start time that is not `HH:MM`."""
        _hhmm(value)
        return value


class BackOffice(_Model):
    """Technical issues: service chats the front line hands over to a back-office team.

    A handed-over chat is the back office's (`updated` with its `team_id`, then an assignment
    to one of its agents) while it works on the case for hours, counted on its agents' shifts,
    updating the customer now and then; then it either answers and resolves the chat itself or
    hands it back to the front line, which closes with the customer. Durations are in ms once
    parsed.

    Attributes:
        share: Share of service chats that are technical issues, handed over.
        team: The back-office team; None means the first team with a `specialist` agent (a
            business without one hands nothing over).
        work_median: The back office's work on a case (log-normal, on its shifts).
        update_median: How long it stays quiet between updates to the customer (log-normal,
            on its shifts): the long silences `update` targets measure.
        back_share: Share of cases handed back to the front line to close.
    """

    share: float = Field(default=0.15, ge=0, le=1)
    team: str | None = None
    work_median: int = 3 * 3600
    update_median: int = 2 * 3600
    back_share: float = Field(default=0.4, ge=0, le=1)

    @field_validator("work_median", "update_median", mode="before")
    @classmethod
    def _parse_duration(cls, value: object) -> int:
        """Accept the medians as seconds or a duration; hold them in ms."""
        return _duration_ms(value)


class Csat(_Model):
    """CSAT surveys after a resolve (SPEC §1 `survey`), as an inbox sends them.

    A share `share` of resolves offers a survey a few seconds later (`sent`), unless the
    customer's last message is over 24 hours old: WhatsApp's window has closed, and the inbox
    writes `not_sent` (`outside_window`) instead. A share `rated_share` of the surveys sent is
    rated, minutes to hours later. The rating falls with the longest wait the customer had in
    the cycle (first response included, a question left unanswered at the resolve counting up
    to the resolve): on average 4.8 − 0.7 × ln(1 + wait / `patience`), so ≈ 4.7 after five
    minutes, ≈ 4.0 after an hour, ≈ 2.8 after eight and ≈ 2.1 after a day with the default
    half hour; each rating is that mean plus a normal spread (σ 0.7), rounded into 1–5.

    Attributes:
        share: Share of resolves that offer a survey.
        rated_share: Share of surveys sent that the customer rates.
        patience: The wait a customer takes in their stride (ms once parsed).
    """

    share: float = Field(default=0.7, ge=0, le=1)
    rated_share: float = Field(default=0.4, ge=0, le=1)
    patience: int = 1800

    @field_validator("patience", mode="before")
    @classmethod
    def _parse_patience(cls, value: object) -> int:
        """Accept the patience as seconds or a duration; hold it in ms; refuse zero."""
        ms = _duration_ms(value)
        if ms <= 0:
            msg = "patience must be a positive duration"
            raise ValueError(msg)
        return ms


def _default_teams() -> dict[str, Team]:
    """Return the built-in Jakarta teams.

    `sales` (three SDRs, two AEs), `support` (four CS: the front line) and `tech` (two
    specialists on weekdays: the back office).
    """
    sales = (
        Agent(id="sdr.rina", role="sdr", shift="08:00-17:00"),
        Agent(id="sdr.budi", role="sdr", shift="13:00-22:00"),
        Agent(id="sdr.sari", role="sdr", shift="10:00-19:00", days=WEEKDAYS[1:]),
        Agent(id="ae.dewi", role="ae", shift="09:00-18:00", days=_MON_FRI),
        Agent(id="ae.agus", role="ae", shift="10:00-19:00", days=_MON_FRI),
    )
    support = (
        Agent(id="cs.putri", shift="08:00-16:00"),
        Agent(id="cs.andi", shift="14:00-22:00"),
        Agent(id="cs.wulan", shift="08:00-16:00", days=("wed", "thu", "fri", "sat", "sun")),
        Agent(id="cs.yusuf", shift="14:00-22:00", days=("mon", "tue", "wed", "sun")),
    )
    tech = (
        Agent(id="tech.rudi", role="specialist", shift="08:00-17:00", days=_MON_FRI),
        Agent(id="tech.tika", role="specialist", shift="13:00-22:00", days=_MON_FRI),
    )
    return {
        "sales": Team(agents=sales, supervisor="spv.hendra"),
        "support": Team(agents=support, supervisor="spv.maya"),
        "tech": Team(agents=tech, supervisor="spv.joko"),
    }


def _default_sources() -> tuple[LeadSource, ...]:
    """Return the built-in lead sources (hot: demo requests, pricing; warm; cold)."""
    return (
        LeadSource(name="demo_request", share=0.08, tier="hot"),
        LeadSource(name="pricing", share=0.12, tier="hot"),
        LeadSource(name="referral", share=0.05, tier="warm"),
        LeadSource(name="content_download", share=0.07, tier="warm"),
        LeadSource(name="newsletter", share=0.05, tier="cold"),
        LeadSource(name="organic", share=0.08, tier="cold"),
    )


def _default_responses() -> dict[str, Response]:
    """Return the built-in response times per tier (hot leads fastest, cold slowest)."""
    return {
        "hot": Response(median=120, sigma=1.2, never=0.03),
        "warm": Response(median=480, sigma=1.2, never=0.04),
        "cold": Response(median=1800, sigma=1.3, never=0.06),
        "service": Response(median=420, sigma=1.2, never=0.04),
    }


def _front_line(teams: dict[str, Team]) -> str:
    """Return the first team with a `cs` agent, else the first with an `sdr` agent, else ''."""
    for role in ("cs", "sdr"):
        for team_id, team in teams.items():
            if any(a.role == role for a in team.agents):
                return team_id
    return ""


class Business(_Model):
    """Everything the simulator needs to know about the business it imitates.

    Shares are probabilities per conversation (or per event, for `late_share` and
    `duplicate_share`). Conversations whose lead source is not drawn are service chats for the
    first team with a `cs` agent (the front line), with a priority from `priorities`; a share
    of them is handed over to a back office (`back_office`, None: never). Resolves are
    followed by CSAT surveys (`csat`, None: never). `assignment_median`
    and `customer_reply_median` are in ms once parsed.
    """

    name: str = "Toko Maju Digital"
    timezone: str = "Asia/Jakarta"
    conversations_per_day: float = Field(default=240.0, gt=0, le=1_000_000)
    weekend_factor: float = Field(default=0.6, ge=0)
    hourly: tuple[float, ...] = DEFAULT_HOURLY
    campaign: Campaign | None = Campaign()
    teams: dict[str, Team] = Field(default_factory=_default_teams)
    back_office: BackOffice | None = BackOffice()
    csat: Csat | None = Csat()
    lead_sources: tuple[LeadSource, ...] = Field(default_factory=_default_sources)
    priorities: dict[str, float] = Field(
        default_factory=lambda: {"P1": 0.05, "P2": 0.2, "P3": 0.5, "P4": 0.25}
    )
    vip_share: float = Field(default=0.03, ge=0, le=1)
    responses: dict[str, Response] = Field(default_factory=_default_responses)
    assignment_median: int = 30
    customer_reply_median: int = 600
    bot_share: float = Field(default=0.3, ge=0, le=1)
    follow_up_share: float = Field(default=0.15, ge=0, le=1)
    follow_up_kept: float = Field(default=0.7, ge=0, le=1)
    silent_share: float = Field(default=0.25, ge=0, le=1)
    qualified_share: float = Field(default=0.35, ge=0, le=1)
    nurture_share: float = Field(default=0.2, ge=0, le=1)
    pending_share: float = Field(default=0.2, ge=0, le=1)
    reopen_share: float = Field(default=0.06, ge=0, le=1)
    return_share: float = Field(default=0.1, ge=0, le=1)
    late_share: float = Field(default=0.02, ge=0, le=1)
    duplicate_share: float = Field(default=0.01, ge=0, le=1)

    @field_validator("assignment_median", "customer_reply_median", mode="before")
    @classmethod
    def _parse_duration(cls, value: object) -> int:
        """Accept the two medians as seconds or a duration; hold them in ms."""
        return _duration_ms(value)

    @field_validator("priorities")
    @classmethod
    def _check_priorities(cls, value: dict[str, float]) -> dict[str, float]:
        """Refuse priorities outside P1..P4, negative weights, or none at all."""
        if not value or set(value) - set(PRIORITIES) or any(w < 0 for w in value.values()):
            msg = f"priorities must map some of {', '.join(PRIORITIES)} to non-negative weights"
            raise ValueError(msg)
        return value

    @field_validator("responses")
    @classmethod
    def _check_responses(cls, value: dict[str, Response]) -> dict[str, Response]:
        """Refuse unknown tiers; tiers not given keep their defaults."""
        unknown = set(value) - set(TIERS)
        if unknown:
            msg = f"unknown response tier(s) {sorted(unknown)}; use {', '.join(TIERS)}"
            raise ValueError(msg)
        return {**_default_responses(), **value}

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        """Refuse a time zone that is not an IANA name."""
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            msg = f"unknown time zone {value!r} (use an IANA name such as Asia/Jakarta)"
            raise ValueError(msg) from exc
        return value

    @field_validator("hourly")
    @classmethod
    def _check_hourly(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        """Refuse an hourly profile that is not 24 non-negative weights, not all zero."""
        if len(value) != 24 or any(v < 0 for v in value) or not any(value):
            msg = "hourly must list 24 non-negative weights, one per local hour, not all zero"
            raise ValueError(msg)
        return value

    @field_validator("teams")
    @classmethod
    def _check_teams(cls, value: dict[str, Team]) -> dict[str, Team]:
        """Refuse teams without any `cs` or `sdr` agent (nobody could answer first)."""
        roles = {a.role for t in value.values() for a in t.agents}
        if "cs" not in roles and "sdr" not in roles:
            msg = "teams need at least one agent with role 'cs' or 'sdr'"
            raise ValueError(msg)
        return value

    @field_validator("back_office")
    @classmethod
    def _check_back_office(
        cls, value: BackOffice | None, info: ValidationInfo
    ) -> BackOffice | None:
        """Refuse a back-office team that is not among `teams` or that is the front line."""
        teams: dict[str, Team] | None = info.data.get("teams")
        if value is None or value.team is None or teams is None:
            return value
        if value.team not in teams:
            msg = f"team {value.team!r} is not among teams ({', '.join(teams)})"
            raise ValueError(msg)
        if value.team == _front_line(teams):
            msg = f"team {value.team!r} is the front line that hands over; name another team"
            raise ValueError(msg)
        return value

    def front_line_team(self) -> str:
        """Return the team service chats go to: the first with a `cs` agent (else `sdr`)."""
        return _front_line(self.teams)

    def back_office_team(self) -> str | None:
        """Return the team technical issues are handed over to, or None (no hand-overs)."""
        if self.back_office is None or self.back_office.share == 0:
            return None
        if self.back_office.team is not None:
            return self.back_office.team
        for team_id, team in self.teams.items():
            if any(a.role == "specialist" for a in team.agents):
                return team_id
        return None

    def lead_share(self) -> float:
        """Return the share of conversations that are leads (campaign spike excluded)."""
        return sum(s.share for s in self.lead_sources)

    def agents(self, *roles: str) -> list[tuple[str, Agent]]:
        """Return (team id, agent) for every agent with one of `roles`, in file order."""
        return [(tid, a) for tid, t in self.teams.items() for a in t.agents if a.role in roles]


def load_business(path: str | Path) -> Business:
    """Read a business YAML file.

    An empty file is the default business.

    Args:
        path: The YAML file.

    Returns:
        The validated business.

    Raises:
        SimulationError: the file is missing, not YAML, or a field is invalid (named).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        msg = f"cannot read business file {path}: {exc.strerror}; check the path"
        raise SimulationError(msg) from exc
    except yaml.YAMLError as exc:
        msg = f"business file {path} is not valid YAML ({exc}); fix the syntax"
        raise SimulationError(msg) from exc
    return parse_business(data or {}, str(path))


def parse_business(data: object, where: str = "<business>") -> Business:
    """Build a `Business` from parsed YAML data.

    Args:
        data: The parsed YAML (a mapping).
        where: The file name the messages name.

    Returns:
        The validated business.

    Raises:
        SimulationError: a field is invalid, or the lead sources' shares add up to over 1; the
            message names it and says what to fix.
    """
    if not isinstance(data, dict):
        msg = f"business file {where} must hold a mapping of settings; see examples/business.yaml"
        raise SimulationError(msg)
    try:
        business = Business.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top)"
        msg = f"business file {where}: {field}: {err['msg']}; fix that field"
        raise SimulationError(msg) from exc
    if business.lead_share() > 1:
        msg = f"business file {where}: lead_sources shares add up to over 1; lower them"
        raise SimulationError(msg)
    return business
