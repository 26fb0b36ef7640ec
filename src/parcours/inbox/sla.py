"""Service-level targets: first response, next response and resolution, per priority, counted in
business hours (a weekly schedule in a time zone, minus holidays). Each target running on a conversation
is an ``SlaClock``; ``check`` raises a warning event when a clock passes its warning point and a breach
event when it passes its due time. Every function takes ``now``: the clock is the caller's."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.db.engine import forget_memo
from parcours.db.reference import reference
from parcours.errors import InvalidInput
from parcours.ids import new_id
from parcours.inbox import feed
from parcours.models import Conversation, SlaClock, SlaPolicy
from parcours.models.instance import read_setting, write_setting

CALENDAR_SETTING = "inbox_business_hours"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TARGETS = ("first_response", "next_response", "resolution")


@dataclass(frozen=True)
class Calendar:
    """Opening hours per weekday (local time) and closed dates; no schedule at all means always open."""

    timezone: str = "UTC"
    hours: dict[str, tuple[time, time]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()

    @property
    def always_open(self) -> bool:
        return not self.hours and not self.holidays

    def as_json(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "hours": {day: [a.strftime("%H:%M"), b.strftime("%H:%M")] for day, (a, b) in self.hours.items()},
            "holidays": sorted(d.isoformat() for d in self.holidays),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calendar:
        """Validated: a clear error names what is wrong."""
        if not isinstance(data, dict):
            raise InvalidInput("business hours: must be an object")
        zone = data.get("timezone", "UTC")
        try:
            ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(f"timezone: unknown time zone {zone!r}") from None
        hours: dict[str, tuple[time, time]] = {}
        for day, span in (data.get("hours") or {}).items():
            if day not in DAYS:
                raise InvalidInput(f"hours: unknown day {day!r}; use {', '.join(DAYS)}")
            try:
                opens, closes = (time.fromisoformat(span[0]), time.fromisoformat(span[1]))
            except (TypeError, ValueError, IndexError):
                raise InvalidInput(f'hours.{day}: expected ["HH:MM", "HH:MM"]') from None
            if closes <= opens:
                raise InvalidInput(f"hours.{day}: closes before it opens")
            hours[day] = (opens, closes)
        try:
            holidays = frozenset(date.fromisoformat(d) for d in data.get("holidays") or [])
        except (TypeError, ValueError):
            raise InvalidInput("holidays: expected a list of YYYY-MM-DD dates") from None
        return cls(str(zone), hours, holidays)

    def add(self, start: datetime, minutes: float) -> datetime:
        """The moment ``minutes`` business minutes after ``start``."""
        if self.always_open:
            return start + timedelta(minutes=minutes)
        zone = ZoneInfo(self.timezone)
        local = start.astimezone(zone)
        left = timedelta(minutes=minutes)
        for _ in range(366 * 2):  # at most two years of days
            day = local.date()
            span = self.hours.get(DAYS[day.weekday()]) if day not in self.holidays else None
            if span is not None:
                opens = datetime.combine(day, span[0], zone)
                closes = datetime.combine(day, span[1], zone)
                begin = max(local, opens)
                if begin < closes:
                    available = closes - begin
                    if left <= available:
                        return (begin + left).astimezone(start.tzinfo)
                    left -= available
            local = datetime.combine(day + timedelta(days=1), time(0), zone)
        raise InvalidInput("business hours: no opening time within two years")


def calendar(session: Session) -> Calendar:
    def load() -> Calendar:
        stored = read_setting(session, CALENDAR_SETTING)
        return Calendar.from_json(orjson.loads(stored)) if stored else Calendar()

    return reference(session, "sla_calendar", load)


def set_calendar(session: Session, data: dict[str, Any]) -> Calendar:
    checked = Calendar.from_json(data)
    forget_memo(session, "sla_calendar")
    write_setting(session, CALENDAR_SETTING, orjson.dumps(checked.as_json()).decode())
    return checked


def set_policy(
    session: Session,
    priority: str,
    *,
    first_response_minutes: int,
    next_response_minutes: int,
    resolution_minutes: int,
    warn_at: float = 0.8,
) -> SlaPolicy:
    from parcours.inbox.service import PRIORITIES

    if priority not in PRIORITIES:
        raise InvalidInput(f"priority: must be one of {', '.join(PRIORITIES)}")
    for name, value in (
        ("first_response_minutes", first_response_minutes),
        ("next_response_minutes", next_response_minutes),
        ("resolution_minutes", resolution_minutes),
    ):
        if not 1 <= value <= 60 * 24 * 365:
            raise InvalidInput(f"{name}: must be from 1 minute to a year")
    if not 0 < warn_at < 1:
        raise InvalidInput("warn_at: must be between 0 and 1")
    forget_memo(session, "sla_policies")
    policy = session.scalar(select(SlaPolicy).where(SlaPolicy.priority == priority))
    if policy is None:
        policy = SlaPolicy(id=new_id("sla"), priority=priority)
        session.add(policy)
    policy.first_response_minutes = first_response_minutes
    policy.next_response_minutes = next_response_minutes
    policy.resolution_minutes = resolution_minutes
    policy.warn_at = warn_at
    session.flush()
    return policy


def _start(
    session: Session, conversation: Conversation, target: str, minutes: int, share: float, now: datetime
) -> None:
    cal = calendar(session)
    clock = session.scalar(
        select(SlaClock).where(SlaClock.conversation_id == conversation.id, SlaClock.target == target)
    )
    if clock is None:
        clock = SlaClock(conversation_id=conversation.id, target=target)
        session.add(clock)
    clock.started_at = now
    clock.warn_at = cal.add(now, minutes * share)
    clock.due_at = cal.add(now, minutes)
    clock.state = "running"
    clock.met_at = None


def policy_minutes(session: Session) -> dict[str, tuple[int, int, int, float]]:
    """Per priority: first response, next response and resolution minutes, and the share of each at
    which a warning goes out (kept across transactions until a policy changes)."""
    return reference(
        session,
        "sla_policies",
        lambda: {
            p.priority: (p.first_response_minutes, p.next_response_minutes, p.resolution_minutes, p.warn_at)
            for p in session.scalars(select(SlaPolicy))
        },
    )


def customer_wrote(session: Session, conversation: Conversation, now: datetime, *, new: bool) -> None:
    """Start the clocks a customer message starts: resolution and first response on a new conversation,
    next response when an agent had answered and the customer writes again."""
    policies = policy_minutes(session)
    if conversation.priority not in policies:
        return
    first_minutes, next_minutes, resolution_minutes, share = policies[conversation.priority]
    if new:
        _start(session, conversation, "resolution", resolution_minutes, share, now)
        _start(session, conversation, "first_response", first_minutes, share, now)
        return
    waiting = session.scalar(
        select(SlaClock.id).where(
            SlaClock.conversation_id == conversation.id,
            SlaClock.target.in_(("first_response", "next_response")),
            SlaClock.state.in_(("running", "warned", "breached")),
        )
    )
    if waiting is None and conversation.first_response_at is not None:
        _start(session, conversation, "next_response", next_minutes, share, now)


def agent_answered(session: Session, conversation_id: str, now: datetime) -> None:
    _meet(session, conversation_id, ("first_response", "next_response"), now)


def resolved(session: Session, conversation_id: str, now: datetime) -> None:
    _meet(session, conversation_id, TARGETS, now)


def _meet(session: Session, conversation_id: str, targets: tuple[str, ...], now: datetime) -> None:
    for clock in session.scalars(
        select(SlaClock).where(
            SlaClock.conversation_id == conversation_id,
            SlaClock.target.in_(targets),
            SlaClock.state.in_(("running", "warned", "breached")),
        )
    ):
        if clock.state != "breached":
            clock.state = "met"
        clock.met_at = now


def check(session: Session, now: datetime) -> list[tuple[str, str, str]]:
    """Raise the warnings and breaches due by ``now``; returns (conversation, target, event) raised."""
    raised = []
    for clock in session.scalars(
        select(SlaClock).where(SlaClock.state.in_(("running", "warned")), SlaClock.warn_at <= now)
    ):
        conversation = session.get(Conversation, clock.conversation_id)
        agent = conversation.assignee_id if conversation else None
        if clock.due_at <= now:
            clock.state = "breached"
            kind = "sla_breached"
        elif clock.state == "running":
            clock.state = "warned"
            kind = "sla_warning"
        else:
            continue
        feed.record(
            session,
            clock.conversation_id,
            kind,
            now,
            agent_id=agent,
            data={"target": clock.target, "due_at": clock.due_at.isoformat()},
        )
        raised.append((clock.conversation_id, clock.target, kind))
    session.flush()
    return raised
