"""Who answers: a conversation goes to an available agent of its team who speaks the customer's
language and has the skills its tags call for, within that agent's capacity on the channel; the team
chooses round robin (the member assigned longest ago) or least busy (the fewest conversations)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Executable, bindparam, inspect, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.base import NEVER_SET, NO_VALUE

from parcours.db.reference import reference
from parcours.inbox import conversation_rows, feed
from parcours.models import Agent, AgentLoad, Conversation, Profile, Team, TeamMember

ACTIVE = ("open", "pending")


# The statements of a routing decision, built once (building them per call, "IN" lists especially,
# cost more Python than running them).
_TRAITS = select(Profile.traits).where(Profile.id == bindparam("profile"))
_AVAILABLE = (Agent.available.is_(True), Agent.disabled_at.is_(None))
_FIELDS = (Agent.id, Agent.languages, Agent.skills, Agent.capacity)
_TEAM = select(Team.assignment).where(Team.id == bindparam("team"))
_TEAM_CANDIDATES = (
    select(*_FIELDS, TeamMember.id)
    .join(TeamMember, TeamMember.agent_id == Agent.id)
    .where(TeamMember.team_id == bindparam("team"), *_AVAILABLE)
)
_ALL_CANDIDATES = select(*_FIELDS).where(*_AVAILABLE)
_SKILLS = select(Agent.skills).where(Agent.disabled_at.is_(None))
_LAST_ASSIGNED = select(TeamMember.id, TeamMember.last_assigned_at).where(
    TeamMember.id.in_(bindparam("members", expanding=True))
)
_ASSIGNED = (
    update(TeamMember).where(TeamMember.id == bindparam("member")).values(last_assigned_at=bindparam("at"))
)


@dataclass(frozen=True)
class Candidate:
    """An available agent who may take a team's conversations (shared between transactions: read-only)."""

    agent_id: str
    languages: tuple[str, ...]
    skills: frozenset[str]
    capacity: dict[str, Any]
    member_id: int | None  # the agent's membership of the team (None: routed without a team)


@dataclass(frozen=True)
class Roster:
    assignment: str | None  # the team's: round_robin or least_busy (None: no team)
    candidates: tuple[Candidate, ...]


def _roster(session: Session, team_id: str | None) -> Roster:
    """The available agents a conversation of ``team_id`` may go to (every available agent without a
    team, or when the team is gone), kept across transactions until an agent, a team or a membership
    changes (``parcours.db.reference``)."""

    def load() -> Roster:
        connection = session.connection()
        assignment = connection.execute(_TEAM, {"team": team_id}).scalar() if team_id else None
        if assignment is None:
            rows = [(*row, None) for row in connection.execute(_ALL_CANDIDATES)]
        else:
            rows = [tuple(row) for row in connection.execute(_TEAM_CANDIDATES, {"team": team_id})]
        candidates = tuple(
            Candidate(agent_id, tuple(languages), frozenset(skills), capacity, member_id)
            for agent_id, languages, skills, capacity, member_id in rows
        )
        return Roster(assignment, candidates)

    return reference(session, f"routing_roster:{team_id or '*'}", load)


_COUNTERS = select(AgentLoad.agent_id, AgentLoad.channel, AgentLoad.active).where(AgentLoad.active != 0)
_LOADS = _COUNTERS.where(AgentLoad.agent_id.in_(bindparam("agents", expanding=True)))
# A routing decision reads its roster's counters without binding a list of agent ids (an "IN" list is
# expanded into the SQL text on every call: a third of the decision's cost).
_TEAM_LOADS = _COUNTERS.join(TeamMember, TeamMember.agent_id == AgentLoad.agent_id).where(
    TeamMember.team_id == bindparam("team")
)
_STORED_PLACE = select(
    Conversation.assignee_id, Conversation.status, Conversation.last_inbound_channel
).where(Conversation.id == bindparam("conversation"))
_PLACE = ("assignee_id", "status", "last_inbound_channel")


def _language(session: Session, profile_id: str) -> str | None:
    traits = session.connection().execute(_TRAITS, {"profile": profile_id}).scalar()
    value = (traits or {}).get("language")
    return str(value).lower()[:2] if value else None


def load(session: Session, agent_id: str, channel: str | None = None) -> int:
    """Active conversations assigned to an agent (on one channel, if given)."""
    return loads(session, [agent_id], channel).get(agent_id, 0)


def loads(session: Session, agent_ids: list[str], channel: str | None = None) -> dict[str, int]:
    """Active conversations assigned to each agent (on one channel, if given), in one query."""
    overall, on_channel = _loads(session, agent_ids, channel)
    return overall if channel is None else on_channel


def _loads(
    session: Session,
    agent_ids: list[str],
    channel: str | None,
    *,
    counters: tuple[Executable, dict[str, Any]] | None = None,
) -> tuple[dict[str, int], dict[str, int]]:
    """Active conversations of each agent, overall and on ``channel``, as this transaction sees them:
    the counters (``agent_loads``, kept by triggers as conversations are written), corrected for the
    conversations the session changed or added and has not written yet, which count where they are now
    instead of where they are stored (so routing needs no flush between two assignments), and so do the
    conversations a ``receive_batch`` call holds as rows (``conversation_rows``). An agent with none is
    left out of both. ``counters``: a statement and its parameters reading at least these agents'
    counters (by default, by their ids)."""
    overall: dict[str, int] = {}
    on_channel: dict[str, int] = {}

    def add(place: tuple[str, str] | None, step: int) -> None:
        if place is not None:
            agent_id, where = place
            overall[agent_id] = overall.get(agent_id, 0) + step
            if where == channel:
                on_channel[agent_id] = on_channel.get(agent_id, 0) + step

    def move(stored: tuple[str, str] | None, now: tuple[str, str] | None) -> None:
        if stored != now:
            add(stored, -1)
            add(now, 1)

    statement, parameters = counters or (_LOADS, {"agents": agent_ids})
    for agent_id, where, active in session.connection().execute(statement, parameters):
        add((agent_id, where), int(active))
    new, deleted = session.new, session.deleted
    for item in (*new, *session.dirty, *deleted):
        if isinstance(item, Conversation):
            stored = None if item in new else _stored_place(session, item)
            move(stored, None if item in deleted else _place(item))
    # The conversations a message is being received for are held as rows, outside the session.
    for conversation, written in conversation_rows.held_with_stored(session):
        move(None if written is None else _counted(*(written[name] for name in _PLACE)), _place(conversation))
    wanted = set(agent_ids)
    return (
        {a: n for a, n in overall.items() if a in wanted and n},
        {a: n for a, n in on_channel.items() if a in wanted and n},
    )


def _counted(assignee_id: str | None, status: str, channel: str) -> tuple[str, str] | None:
    """Where a conversation counts: (its agent, its channel) while assigned and active, else nowhere."""
    return (assignee_id, channel) if assignee_id is not None and status in ACTIVE else None


def _place(conversation: Conversation) -> tuple[str, str] | None:
    """Where a conversation counts as it is now."""
    return _counted(conversation.assignee_id, conversation.status, conversation.last_inbound_channel)


def _stored_place(session: Session, conversation: Conversation) -> tuple[str, str] | None:
    """Where a changed, unwritten conversation counts in the stored counters: from the values it had when
    loaded (or last written), read again only if one of them was never loaded."""
    state = inspect(conversation)
    current = [getattr(conversation, name) for name in _PLACE]
    stored = [state.committed_state.get(name, value) for name, value in zip(_PLACE, current, strict=True)]
    if any(value in (NO_VALUE, NEVER_SET) for value in stored):
        stored = list(session.connection().execute(_STORED_PLACE, {"conversation": conversation.id}).one())
    return _counted(*stored)


def _capacity(candidate: Candidate, channel: str) -> int:
    return int(candidate.capacity.get(channel, candidate.capacity.get("*", 0)))


def route(
    session: Session, conversation: Conversation, now: datetime, *, exclude: str | None = None
) -> str | None:
    """Assign an unassigned conversation; returns the agent id, or None when nobody fits (it waits in its
    team's queue and is routed again when an agent becomes available)."""
    if conversation.assignee_id is not None:
        return conversation.assignee_id
    roster = _roster(session, conversation.team_id)
    language = _language(session, conversation.profile_id)
    tags = set(conversation.tags)
    channel = conversation.last_inbound_channel
    counters = (_TEAM_LOADS, {"team": conversation.team_id}) if roster.assignment else (_COUNTERS, {})
    overall, on_channel = _loads(session, [c.agent_id for c in roster.candidates], channel, counters=counters)
    needed = tags & _known_skills(session) if tags else set()
    fitting = [
        candidate
        for candidate in roster.candidates
        if candidate.agent_id != exclude
        and not (language and candidate.languages and language not in candidate.languages)
        and needed <= candidate.skills
        and on_channel.get(candidate.agent_id, 0) < _capacity(candidate, channel)
    ]
    if not fitting:
        return None
    if roster.assignment == "round_robin":
        oldest = datetime.min.replace(tzinfo=now.tzinfo)
        members = [c.member_id for c in fitting]
        rows = session.connection().execute(_LAST_ASSIGNED, {"members": members})
        last: dict[int | None, datetime | None] = {member: at for member, at in rows}
        chosen = min(fitting, key=lambda c: (last.get(c.member_id) or oldest, c.agent_id))
    else:
        chosen = min(fitting, key=lambda c: (overall.get(c.agent_id, 0), c.agent_id))
    conversation.assignee_id = chosen.agent_id
    if chosen.member_id is not None:
        session.connection().execute(_ASSIGNED, {"member": chosen.member_id, "at": now})
    feed.record(session, conversation.id, "assigned", now, agent_id=chosen.agent_id, data={"by": "routing"})
    return chosen.agent_id


def _known_skills(session: Session) -> frozenset[str]:
    """Every skill an agent has (kept across transactions until an agent changes)."""

    def load() -> frozenset[str]:
        return frozenset(skill for (values,) in session.connection().execute(_SKILLS) for skill in values)

    return reference(session, "routing_skills", load)


def set_availability(session: Session, agent_id: str, available: bool, now: datetime) -> list[str]:
    """An agent comes online or goes offline. Going offline hands their active conversations to the
    others (or back to the queue); coming online takes waiting ones. Returns the conversations moved."""
    agent = session.get(Agent, agent_id)
    if agent is None:
        from parcours.errors import NotFound

        raise NotFound(f"agent {agent_id} not found")
    agent.available = available
    session.flush()
    moved: list[str] = []
    if not available:
        for conversation in session.scalars(
            select(Conversation).where(Conversation.assignee_id == agent_id, Conversation.status.in_(ACTIVE))
        ):
            conversation.assignee_id = None
            feed.record(
                session, conversation.id, "unassigned", now, agent_id=agent_id, data={"reason": "offline"}
            )
            route(session, conversation, now, exclude=agent_id)
            moved.append(conversation.id)
            session.flush()  # keeps the unwritten conversations ``_loads`` looks at few
    else:
        moved = route_waiting(session, now)
    return moved


def route_waiting(session: Session, now: datetime) -> list[str]:
    """Route the unassigned active conversations, oldest first; returns those assigned."""
    assigned = []
    for conversation in session.scalars(
        select(Conversation)
        .where(Conversation.assignee_id.is_(None), Conversation.status.in_(ACTIVE))
        .order_by(Conversation.created_at)
    ):
        if route(session, conversation, now) is not None:
            assigned.append(conversation.id)
        session.flush()  # keeps the unwritten conversations ``_loads`` looks at few
    return assigned
