"""The traffic simulator: a business (`flows.sim.business`) in, SPEC §1 events out.

`simulate` yields events in **delivery order**: the order in which slawatch would receive them.
Most events are delivered when they occur; a share arrives late (delivered after later events)
and a share twice (same `event_id`), as real webhooks do. The same business, seed and time span
always give the same events, byte for byte.

What a conversation does (each step drawn from the business's shares and distributions):

* arrivals follow the business's hourly profile in its time zone, lighter at weekends, with a
  daily ad-campaign spike (19:00 by default) and some messages at night;
* the customer writes a burst of one to four messages; a share of chats is greeted by a bot
  (`author: bot`, a template) and handed off to a human (`handled_by: human`);
* an agent on shift is assigned (night arrivals wait for the morning shift); replies take a
  log-normal time (most fast, a long tail; outside the agent's shift they wait for the next
  one); a share is never answered, and its WhatsApp window closes;
* leads (with a `lead_source`) are qualified, disqualified, nurtured or go silent; silent leads
  get calls, e-mails and templates (contact attempts with outcomes); qualified ones are handed
  to an account executive (`role: ae`), who calls and closes them (won, lost or booked);
  nurtured leads get an e-mail days later;
* service chats have a priority, wait on the customer (`status: pending`) at times, are
  resolved, sometimes reopened, and some customers come back days later (a new cycle);
* technical issues (a share of service chats) are handed over from the front line to a
  back-office team (`updated` with its `team_id`, then an assignment to a specialist), which
  works on them for hours on its own shifts, goes quiet for hours between updates to the
  customer, and answers itself or hands the chat back to the front line;
* agents promise follow-ups (`follow_up_promised`); most promises are kept, some broken;
* after a resolve a share of customers is offered a CSAT survey (`survey` `sent`; `not_sent`
  when the customer's last message is over 24 hours old, WhatsApp's window) and a share of
  those rate it, lower the longer they waited in the cycle (`Business.csat`). Surveys are
  drawn from their own random generator after the conversation's script, so turning them off
  (`csat: null`) leaves every other event of a seed as it was.

Instants inside `SimEvent.body` are integer epoch ms of simulated time; `stamp_body` maps them
through a `Timeline` (for accelerated runs) and formats them as RFC 3339.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flows.core.timefmt import format_instant
from flows.sim.business import WEEKDAYS, Agent, BackOffice, Business, Csat, Response

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@dataclass(frozen=True, slots=True)
class SimEvent:
    """One simulated event: when it is delivered, when it occurred, and its JSON body.

    `body` holds instants (`occurred_at`, `due_at`) as epoch ms of simulated time; `duplicate` marks
    the second delivery of an event already delivered.

    Attributes:
        deliver_at: When slawatch receives it, epoch ms of simulated time (≥ `occurred_at`).
        occurred_at: Its event time, epoch ms of simulated time.
        body: The SPEC §1 event with instants still as epoch ms (see `stamp_body`).
        duplicate: Whether this is a redelivery (same `event_id`) of an earlier event.
    """

    deliver_at: int
    occurred_at: int
    body: dict[str, Any]
    duplicate: bool = False

    @property
    def late(self) -> bool:
        """Whether the event reaches slawatch after it occurred (by at least one second)."""
        return self.deliver_at - self.occurred_at >= SECOND


@dataclass(frozen=True, slots=True)
class Timeline:
    """Maps simulated instants to output instants: `anchor + (t - origin) / speed`.

    With `speed` 1 and `anchor == origin` the output is the simulated time itself; a live run
    anchors at the wall clock; `speed` 60 plays a simulated hour in a minute.

    Attributes:
        origin: The simulated instant that maps to `anchor` (epoch ms).
        anchor: The output instant of `origin` (epoch ms).
        speed: Time compression (> 0); output intervals are simulated ones divided by it.
    """

    origin: int
    anchor: int
    speed: float = 1.0

    def __call__(self, t: int) -> int:
        """Return the output instant of simulated instant `t` (epoch ms)."""
        if self.speed == 1.0:
            return self.anchor + (t - self.origin)
        return self.anchor + round((t - self.origin) / self.speed)


def stamp_body(body: dict[str, Any], timeline: Timeline) -> dict[str, Any]:
    """Return a copy of `body` with its instants mapped through `timeline` as RFC 3339 text.

    Args:
        body: A `SimEvent.body`; it is not changed.
        timeline: The mapping from simulated to output time.

    Returns:
        The event as it is written or sent: `occurred_at` (and `due_at`) as RFC 3339 UTC.
    """
    out = dict(body)
    out["occurred_at"] = format_instant(timeline(body["occurred_at"]))
    if "due_at" in out:
        out["due_at"] = format_instant(timeline(body["due_at"]))
    return out


class _Shifts:
    """When each agent works, in UTC epoch ms, computed per local date and cached.

    Args:
        business: The business whose time zone the shifts are local to.
    """

    def __init__(self, business: Business) -> None:
        self.zone = ZoneInfo(business.timezone)
        self._local = functools.lru_cache(maxsize=4096)(self._window)

    def _window(self, agent: Agent, day: int) -> tuple[int, int] | None:
        """Return an agent's shift on local date `day` (a proleptic ordinal) in UTC epoch ms.

        Returns:
            (start, end), or None when the agent does not work that weekday.
        """
        d = date.fromordinal(day)
        if WEEKDAYS[d.weekday()] not in agent.days:
            return None
        start_min, end_min = agent.shift_minutes()
        midnight = datetime(d.year, d.month, d.day)  # noqa: DTZ001 - made aware just below
        start = (midnight + timedelta(minutes=start_min)).replace(tzinfo=self.zone)
        end = (midnight + timedelta(minutes=end_min)).replace(tzinfo=self.zone)
        return int(start.timestamp() * 1000), int(end.timestamp() * 1000)

    def local_day(self, t: int) -> int:
        """Return the local date of instant `t` as a proleptic ordinal."""
        return datetime.fromtimestamp(t / 1000, self.zone).toordinal()

    def next_on(self, agent: Agent, t: int) -> int:
        """Return `t` if `agent` works at `t`, else the start of its next shift."""
        today = self.local_day(t)
        best: int | None = None
        for day in range(today - 1, today + 9):
            window = self._local(agent, day)
            if window is None:
                continue
            start, end = window
            if start <= t < end:
                return t
            if start > t and (best is None or start < best):
                best = start
        return t + 7 * DAY if best is None else best

    def on(self, agent: Agent, t: int) -> bool:
        """Whether `agent` works at `t`."""
        return self.next_on(agent, t) == t

    def shift_end(self, agent: Agent, t: int) -> int:
        """Return the end of the shift `agent` works at `t` (`t` must be on shift)."""
        today = self.local_day(t)
        ends = [
            w[1]
            for day in range(today - 1, today + 2)
            if (w := self._local(agent, day)) is not None and w[0] <= t < w[1]
        ]
        return max(ends, default=t)

    def work(self, agent: Agent, t: int, duration: int) -> int:
        """Return when `agent`, starting at `t`, has worked `duration` ms of its shifts."""
        left = duration
        t = self.next_on(agent, t)
        for _ in range(1000):  # a bound, not a limit: a few shifts cover any drawn duration
            end = self.shift_end(agent, t)
            if t + left <= end:
                return t + left
            left -= end - t
            t = self.next_on(agent, end)
        return t + left


@dataclass(frozen=True, slots=True)
class _Arrival:
    """A conversation's arrival: its instant, its lead source (None for service) and its tier."""

    at: int
    source: str | None
    tier: str


class Simulator:
    """Generates the events of one business from one seed (see the module docstring).

    Deterministic: all randomness comes from one `random.Random(seed)` drawn in a fixed order, so
    the same business, seed and span give the same events. Not thread-safe.

    Args:
        business: The business (agents, shifts, volume, shares, response times).
        seed: The random seed.

    Attributes:
        conversations: Conversations generated so far (their ids are `sim<seed>-<n>`).
    """

    def __init__(self, business: Business, *, seed: int) -> None:
        self.business = business
        self.seed = seed
        self.rng = random.Random(seed)  # noqa: S311 - simulation, not cryptography
        # Surveys draw from their own generator: they leave the rest of the traffic unchanged.
        self.survey_rng = random.Random(f"csat:{seed}")  # noqa: S311 - as above
        self.shifts = _Shifts(business)
        self._rr = itertools.count()
        self._order = itertools.count()
        self.conversations = 0
        tiers = {s.name: s.tier for s in business.lead_sources}
        campaign = business.campaign
        self._campaign_tier = tiers.get(campaign.lead_source, "warm") if campaign else "warm"
        self._sources = [(s.name, s.tier) for s in business.lead_sources]
        self._source_weights = list(itertools.accumulate(s.share for s in business.lead_sources))
        self._hour_weights = list(itertools.accumulate(business.hourly))
        self.service_team = business.front_line_team()
        self.back_office_team = business.back_office_team()

    # -- arrivals ---------------------------------------------------------------------------

    def arrivals(self, start: int, end: int | None) -> Iterator[_Arrival]:
        """Yield conversation arrivals in time order from `start` until `end` (None: forever).

        Each local day draws its count from a normal around `conversations_per_day` (scaled by
        `weekend_factor` on Saturdays and Sundays); each arrival is a campaign spike, a lead of a
        source by its share, or a service chat.
        """
        b, rng, zone = self.business, self.rng, self.shifts.zone
        day = self.shifts.local_day(start)
        while True:
            d = date.fromordinal(day)
            midnight = datetime(d.year, d.month, d.day, tzinfo=zone)
            day_start = int(midnight.timestamp() * 1000)
            if end is not None and day_start >= end:
                return
            mean = b.conversations_per_day * (b.weekend_factor if d.weekday() >= 5 else 1.0)
            count = max(0, round(rng.gauss(mean, math.sqrt(mean)))) if mean > 0 else 0
            todays: list[_Arrival] = []
            for _ in range(count):
                todays.append(self._arrival(midnight))
            todays.sort(key=lambda a: a.at)
            for arrival in todays:
                if arrival.at >= start and (end is None or arrival.at < end):
                    yield arrival
            day += 1

    def _arrival(self, midnight: datetime) -> _Arrival:
        """Draw one arrival on the local day from `midnight`: a campaign lead, or by the hour."""
        b, rng = self.business, self.rng
        campaign = b.campaign
        if campaign is not None and rng.random() < campaign.share:
            hours, minutes = (int(x) for x in campaign.at.split(":"))
            offset = min(rng.expovariate(2.0 / campaign.minutes), campaign.minutes) * MINUTE
            local = midnight.replace(tzinfo=None) + timedelta(hours=hours, minutes=minutes)
            at = int(local.replace(tzinfo=midnight.tzinfo).timestamp() * 1000) + int(offset)
            return _Arrival(at, campaign.lead_source, self._campaign_tier)
        hour = rng.choices(range(24), cum_weights=self._hour_weights)[0]
        local = midnight.replace(tzinfo=None) + timedelta(hours=hour)
        at = int(local.replace(tzinfo=midnight.tzinfo).timestamp() * 1000)
        at += rng.randrange(HOUR)
        roll = rng.random()
        if self._sources and roll < self._source_weights[-1]:
            index = next(i for i, w in enumerate(self._source_weights) if roll < w)
            name, tier = self._sources[index]
            return _Arrival(at, name, tier)
        return _Arrival(at, None, "service")

    # -- the stream -------------------------------------------------------------------------

    def events(self, start: int, end: int | None = None) -> Iterator[SimEvent]:
        """Yield the events occurring in [`start`, `end`) in delivery order (None: no end).

        Ties in delivery time keep generation order. A conversation arriving before `end` may have
        events after it; those are left out.
        """
        heap: list[tuple[int, int, SimEvent]] = []
        for arrival in self.arrivals(start, end):
            while heap and heap[0][0] <= arrival.at:
                yield heapq.heappop(heap)[2]
            self.conversations += 1
            conv = f"sim{self.seed}-{self.conversations:06d}"
            for event in _Conversation(self, conv, arrival).run():
                if end is not None and event.occurred_at >= end:
                    continue
                heapq.heappush(heap, (event.deliver_at, next(self._order), event))
        while heap:
            yield heapq.heappop(heap)[2]

    # -- agents -----------------------------------------------------------------------------

    def pick_agent(
        self, roles: tuple[str, ...], t: int, *, team: str | None = None
    ) -> tuple[str, Agent]:
        """Return the (team, agent) with one of `roles` free soonest after `t`, round-robin.

        Falls back to the `cs` and `sdr` agents when no agent has one of `roles`. With `team`,
        any agent of that team (`roles` are ignored).
        """
        if team is not None:
            candidates = [(team, a) for a in self.business.teams[team].agents]
        else:
            candidates = self.business.agents(*roles) or self.business.agents("cs", "sdr")
        turn = next(self._rr)
        ranked = sorted(
            range(len(candidates)),
            key=lambda i: (
                self.shifts.next_on(candidates[i][1], t),
                (i - turn) % len(candidates),
            ),
        )
        return candidates[ranked[0]]

    def lognormal(self, median: float, sigma: float) -> int:
        """Return a log-normal duration in ms with this median."""
        return int(self.rng.lognormvariate(math.log(max(median, 1.0)), sigma))


class _Conversation:
    """The script of one conversation: a list of events in occurrence order.

    Args:
        sim: The simulator (its random generator, shifts and agent picking).
        conv: The conversation id.
        arrival: When and how the conversation arrives.
    """

    def __init__(self, sim: Simulator, conv: str, arrival: _Arrival) -> None:
        self.sim = sim
        self.b = sim.business
        self.rng = sim.rng
        self.conv = conv
        self.arrival = arrival
        self.out: list[SimEvent] = []
        self.ids = itertools.count(1)
        self.agent: Agent | None = None
        self.team: str | None = None
        self.owner: str | None = None
        self.response: Response = self.b.responses[arrival.tier]
        self.open = True
        self.last = arrival.at

    # -- emitting ---------------------------------------------------------------------------

    def emit(self, at: int, etype: str, /, rng: random.Random | None = None, **fields: Any) -> int:
        """Append one event (and maybe a late delivery or a duplicate); return its instant `at`.

        A share `late_share` is delivered 1 s to 30 min late and a share `duplicate_share` again
        within two minutes, drawn from `rng` (the simulator's generator by default). The
        conversation's open/resolved state follows its actions.
        """
        rng = rng or self.rng
        body: dict[str, Any] = {
            "event_id": f"{self.conv}-{next(self.ids)}",
            "type": etype,
            "conversation_id": self.conv,
            "occurred_at": at,
        }
        body.update({k: v for k, v in fields.items() if v is not None})
        action = fields.get("action")
        if action == "resolved":
            self.open = False
        elif action == "reopened" or fields.get("author") == "customer":
            self.open = True
        self.last = max(self.last, at)
        deliver = at
        if rng.random() < self.b.late_share:
            late = int(rng.lognormvariate(math.log(90 * SECOND), 1.0))
            deliver += min(late, 30 * MINUTE) + SECOND
        self.out.append(SimEvent(deliver, at, body))
        if rng.random() < self.b.duplicate_share:
            again = deliver + SECOND + rng.randrange(2 * MINUTE)
            self.out.append(SimEvent(again, at, body, duplicate=True))
        return at

    def customer(self, at: int, *, burst: bool = True) -> int:
        """The customer writes one message, or a burst of up to four; return the last instant."""
        count = 1
        while burst and count < 4 and self.rng.random() < 0.45:
            count += 1
        t = at
        for i in range(count):
            if i:
                t += self.rng.randint(3, 40) * SECOND
            kind = "media" if self.rng.random() < 0.1 else "text"
            self.emit(t, "message", direction="inbound", author="customer", kind=kind)
        return t

    def agent_says(self, at: int, kind: str = "text") -> int:
        """Append an outbound message of the assigned agent; return its instant."""
        assert self.agent is not None
        self.emit(
            at, "message", direction="outbound", author="agent", agent_id=self.agent.id, kind=kind
        )
        return at

    def reply_time(self, after: int, response: Response | None = None) -> int:
        """When the current agent answers something waiting since `after` (on shift)."""
        assert self.agent is not None
        response = response or self.response
        shifts = self.sim.shifts
        t = shifts.next_on(self.agent, after)
        t += self.sim.lognormal(response.median, response.sigma) + SECOND
        if not shifts.on(self.agent, t):
            t = shifts.next_on(self.agent, t) + self.sim.lognormal(5 * MINUTE, 1.0)
        return t

    def assign(
        self, at: int, roles: tuple[str, ...], *, by: str = "auto", team: str | None = None
    ) -> int:
        """Assign an agent with one of `roles` (or of `team`) once on shift; return its instant."""
        team, agent = self.sim.pick_agent(roles, at, team=team)
        t = self.sim.shifts.next_on(agent, at) + self.sim.lognormal(self.b.assignment_median, 1.0)
        self.agent, self.team = agent, team
        self.emit(
            t,
            "assignment",
            action="assigned",
            agent_id=agent.id,
            team_id=team,
            role=agent.role,
            by=by,
        )
        return t

    def customer_delay(self) -> int:
        """Return how long the customer takes to answer (log-normal, at least 5 s)."""
        return self.sim.lognormal(self.b.customer_reply_median, 1.4) + 5 * SECOND

    # -- the script -------------------------------------------------------------------------

    def run(self) -> list[SimEvent]:
        """Return the conversation's events; one left open is closed after days of silence."""
        self.script()
        if self.open:
            outcome = "lost" if self.arrival.source is not None else "no_reply"
            idle = self.last + DAY + self.sim.lognormal(DAY, 0.5)
            self.emit(idle, "conversation", action="resolved", outcome=outcome)
        if self.b.csat is not None:
            self.surveys(self.b.csat)
        return self.out

    def surveys(self, csat: Csat) -> None:
        """Append the CSAT surveys of the conversation's resolves (see `Business.csat`).

        Walks the script in event time: the longest wait of each stretch up to a resolve (from
        the oldest unanswered customer message to the next agent reply, or to the resolve when
        none came) sets the rating; the customer's last message before the resolve decides
        whether WhatsApp's window still allowed a survey. All draws come from the simulator's
        survey generator, in a fixed order.
        """
        rng = self.sim.survey_rng
        script = sorted((e.body for e in self.out if not e.duplicate), key=_event_time)
        waiting: int | None = None
        last_customer: int | None = None
        longest = 0
        for n, body in enumerate(script, 1):
            at = body["occurred_at"]
            if body["type"] == "message" and body.get("author") == "customer":
                waiting = at if waiting is None else waiting
                last_customer = at
            elif body.get("author") == "agent" and body.get("kind") != "note":
                if waiting is not None:
                    longest = max(longest, at - waiting)
                waiting = None
            elif body.get("action") == "resolved":
                if waiting is not None:
                    longest = max(longest, at - waiting)
                self.survey(
                    csat,
                    rng,
                    resolved=at,
                    wait=longest,
                    last_customer=last_customer,
                    survey_id=f"{self.conv}-s{n}",
                )
                waiting, longest = None, 0

    def survey(
        self,
        csat: Csat,
        rng: random.Random,
        *,
        resolved: int,
        wait: int,
        last_customer: int | None,
        survey_id: str,
    ) -> None:
        """Offer (or fail to offer) the survey of one resolve, and maybe rate it."""
        if rng.random() >= csat.share:
            return
        at = resolved + rng.randint(1, 5) * SECOND
        if last_customer is None or resolved - last_customer > _WINDOW:
            self.emit(at, "survey", rng, action="not_sent", reason="outside_window")
            return
        self.emit(at, "survey", rng, action="sent", survey_id=survey_id)
        if rng.random() >= csat.rated_share:
            return
        mean = 4.8 - 0.7 * math.log1p(wait / csat.patience)
        rating = min(5, max(1, round(rng.gauss(mean, 0.7))))
        later = min(int(rng.lognormvariate(math.log(20 * MINUTE), 1.2)), 3 * DAY)
        self.emit(
            at + later + SECOND, "survey", rng, action="rated", survey_id=survey_id, rating=rating
        )

    def script(self) -> None:
        """Write the conversation from its opening to its outcome (see the module docstring).

        Opening attributes, the customer's first burst, an optional bot greeting and hand-off, the
        assignment; then no reply at all (a share), or the first reply and the lead or service path.
        """
        a, rng, b = self.arrival, self.rng, self.b
        lead = a.source is not None
        attrs: dict[str, Any] = {}
        if lead:
            attrs.update(lead_source=a.source, lead_status="new")
        else:
            priority = rng.choices(list(b.priorities), weights=list(b.priorities.values()))[0]
            attrs.update(priority=priority, team_id=self.sim.service_team)
            self.owner = self.sim.service_team
        if rng.random() < b.vip_share:
            attrs["segment"] = "vip"
        bot = rng.random() < b.bot_share
        if bot:
            attrs["handled_by"] = "bot"
        t = self.emit(a.at, "conversation", action="opened", **attrs)
        last = self.customer(t + rng.randint(1, 5) * SECOND)
        ready = last
        if bot:
            greet = self.emit(
                last + 2 * SECOND, "message", direction="outbound", author="bot", kind="template"
            )
            if rng.random() < 0.6:
                last = self.customer(greet + self.sim.lognormal(40 * SECOND, 0.8), burst=False)
            ready = self.emit(
                last + self.sim.lognormal(90 * SECOND, 0.8),
                "conversation",
                action="updated",
                handled_by="human",
            )
        assigned = self.assign(ready, ("sdr",) if lead else ("cs",))
        if rng.random() < self.response.never:
            if rng.random() < 0.5:
                self.customer(last + self.sim.lognormal(2 * HOUR, 0.8), burst=False)
            return
        t = self.agent_says(self.reply_time(max(assigned, last)))
        if lead:
            self.lead(t)
        else:
            self.service(t)

    def exchange(self, t: int, rounds: int) -> int:
        """Customer and agent take turns `rounds` times, with a follow-up promise at times."""
        for _ in range(rounds):
            last = self.customer(t + self.customer_delay())
            if self.rng.random() < self.b.follow_up_share:
                t = self.promise(last)
                continue
            if self.rng.random() < self.response.never / 2:
                last = self.customer(last + self.sim.lognormal(HOUR, 0.7), burst=False)
            t = self.agent_says(self.reply_time(last))
        return t

    def promise(self, last: int) -> int:
        """The agent answers and promises to come back; the promise is kept or broken."""
        t = self.agent_says(self.reply_time(last))
        due = t + self.rng.choice((1, 2, 4, 24)) * HOUR
        self.emit(t + SECOND, "conversation", action="follow_up_promised", due_at=due)
        if self.rng.random() < self.b.follow_up_kept:
            return self.agent_says(t + int((due - t) * self.rng.uniform(0.2, 0.95)))
        if self.rng.random() < 0.6:
            return self.agent_says(due + self.sim.lognormal(2 * HOUR, 1.0))
        return t + SECOND

    def lead(self, t: int) -> None:
        """Script a lead after its first reply.

        It is qualified (hand-off to an AE, meeting, close), nurtured, disqualified, or silent
        (chased).
        """
        rng, b = self.rng, self.b
        if rng.random() < b.silent_share:
            self.chase(t)
            return
        t = self.exchange(t, rng.randint(1, 3))
        roll = rng.random()
        if rng.random() < 0.4:
            t = self.activity(t + self.sim.lognormal(20 * MINUTE, 1.0), "call", "connected")
        if roll < b.qualified_share:
            t = self.emit(t + MINUTE, "conversation", action="updated", lead_status="qualified")
            t = self.assign(t + self.sim.lognormal(2 * HOUR, 1.2), ("ae",), by="manual")
            t = self.agent_says(self.reply_time(t))
            t = self.exchange(t, rng.randint(0, 2))
            t = self.activity(t + self.sim.lognormal(DAY, 0.8), "meeting", "connected")
            outcome = rng.choice(("won", "won", "lost", "booked"))
            self.emit(
                t + self.sim.lognormal(2 * DAY, 1.0),
                "conversation",
                action="resolved",
                outcome=outcome,
            )
        elif roll < b.qualified_share + b.nurture_share:
            t = self.emit(t + MINUTE, "conversation", action="updated", lead_status="nurture")
            self.emit(
                t + self.sim.lognormal(HOUR, 1.0),
                "conversation",
                action="resolved",
                outcome="answered",
            )
            later = t + rng.randint(3, 20) * DAY
            self.activity(later, "email", None)
        else:
            t = self.emit(t + MINUTE, "conversation", action="updated", lead_status="disqualified")
            self.emit(
                t + self.sim.lognormal(30 * MINUTE, 1.0),
                "conversation",
                action="resolved",
                outcome="lost",
            )

    def activity(self, at: int, kind: str, outcome: str | None) -> int:
        """Append an agent activity at the agent's next shift instant; return that instant."""
        assert self.agent is not None
        at = self.sim.shifts.next_on(self.agent, at)
        self.emit(at, "activity", kind=kind, agent_id=self.agent.id, outcome=outcome)
        return at

    def chase(self, t: int) -> None:
        """A silent lead: the agent tries calls, e-mails and templates, then gives up or not."""
        rng = self.rng
        attempts = rng.randint(1, 6)
        for _ in range(attempts):
            t += self.sim.lognormal(6 * HOUR, 1.0) + 10 * MINUTE
            roll = rng.random()
            if roll < 0.5:
                t = self.activity(t, "call", rng.choice(("no_answer", "no_answer", "voicemail")))
            elif roll < 0.8:
                t = self.activity(t, "email", None)
            else:
                assert self.agent is not None
                self.agent_says(self.sim.shifts.next_on(self.agent, t), kind="template")
        if rng.random() < 0.5:
            t = self.emit(t + DAY, "conversation", action="updated", lead_status="disqualified")
            self.emit(t + MINUTE, "conversation", action="resolved", outcome="lost")

    def service(self, t: int) -> None:
        """Script a service chat after its first reply.

        Exchanges, maybe a hand-over to the back office (a technical issue), maybe a pending
        stretch, the resolve; sometimes a reopen, and sometimes the customer comes back days
        later (a new cycle, which the front line takes).
        """
        rng, b, sim = self.rng, self.b, self.sim
        t = self.exchange(t, rng.choice((0, 1, 1, 2, 3)))
        office, office_team = b.back_office, sim.back_office_team
        if office is not None and office_team is not None and rng.random() < office.share:
            t = self.technical(t, office, office_team)
        if rng.random() < b.pending_share:
            t = self.emit(t + SECOND, "conversation", action="updated", status="pending")
            if rng.random() < 0.6:
                last = self.customer(t + self.sim.lognormal(3 * HOUR, 1.0))
                t = self.agent_says(self.reply_time(last))
            else:
                t += self.sim.lognormal(DAY, 0.5)
        t = self.emit(
            t + self.sim.lognormal(20 * MINUTE, 1.0),
            "conversation",
            action="resolved",
            outcome="answered",
        )
        if rng.random() < b.reopen_share:
            t = self.emit(t + self.sim.lognormal(3 * HOUR, 1.0), "conversation", action="reopened")
            last = self.customer(t + 2 * SECOND)
            t = self.agent_says(self.reply_time(last))
            t = self.emit(
                t + self.sim.lognormal(HOUR, 1.0),
                "conversation",
                action="resolved",
                outcome="answered",
            )
        if rng.random() < b.return_share:
            back = t + rng.randint(1, 10) * DAY + rng.randrange(DAY)
            front = self.owner != sim.service_team
            if front:
                # Routing moves a new question to the front line as it arrives.
                self.hand_to(back, sim.service_team)
            last = self.customer(back)
            if front:
                last = max(last, self.assign(last, ("cs",)))
            t = self.agent_says(self.reply_time(last))
            self.emit(
                t + self.sim.lognormal(HOUR, 1.0),
                "conversation",
                action="resolved",
                outcome="answered",
            )

    def hand_to(self, at: int, team: str) -> int:
        """Move the conversation to `team` (`updated` with its `team_id`); return the instant."""
        self.owner = team
        return self.emit(at, "conversation", action="updated", team_id=team)

    def technical(self, t: int, office: BackOffice, team: str) -> int:
        """A technical issue: the front line hands it over to the back office `team`.

        The front line triages for a while after its last message `t`, then moves the chat to
        `team`, whose agent picks it up on shift and works on it for hours (`work_median`, on
        its shifts), updating the customer every `update_median` or so; then it answers and
        keeps the chat, or hands it back to the front line, which tells the customer.

        Returns:
            The instant of the last agent message to the customer.
        """
        sim, rng = self.sim, self.rng
        assert self.agent is not None
        handover = sim.shifts.next_on(self.agent, t + sim.lognormal(15 * MINUTE, 1.0))
        picked = self.assign(self.hand_to(handover, team), (), by="manual", team=team)
        specialist = self.agent
        assert specialist is not None
        done = sim.shifts.work(specialist, picked, sim.lognormal(office.work_median, 1.0))
        said = t
        while True:
            quiet = sim.lognormal(office.update_median, 0.8)
            update = sim.shifts.work(specialist, max(said, picked), quiet)
            if update >= done:
                break
            said = self.agent_says(update)
        if rng.random() < office.back_share:
            self.hand_to(done, self.sim.service_team)
            back = self.assign(done, ("cs",), by="manual")
            return self.agent_says(self.reply_time(back))
        return self.agent_says(done)


#: WhatsApp's customer-service window: a survey needs a customer message this recent.
_WINDOW = DAY


def _event_time(body: dict[str, Any]) -> int:
    """Sort key of a script's events: their event time."""
    return int(body["occurred_at"])


def default_start(now_ms: int, days: float) -> int:
    """Return the start of a history of `days` that ends at `now_ms` (whole seconds).

    Args:
        now_ms: The end, epoch ms UTC (usually the wall clock).
        days: The history's length in simulated days (may be fractional).

    Returns:
        Epoch ms, rounded down to a whole second.
    """
    return (now_ms - round(days * DAY)) // SECOND * SECOND
