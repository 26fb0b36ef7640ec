"""Agents and teams: who answers, with which role, languages, skills and capacity."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.auth.service import digest
from parcours.db.types import utcnow
from parcours.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound
from parcours.ids import new_id
from parcours.models import Agent, Team, TeamMember
from parcours.vocabulary import CHANNELS

ROLES = ("agent", "supervisor", "admin")
ASSIGNMENTS = ("round_robin", "least_busy")
DEFAULT_CAPACITY = {"*": 8, "phone": 1}


@dataclass(frozen=True)
class AgentInfo:
    id: str
    name: str
    role: str

    def require(self, role: str) -> None:
        """Forbidden unless this agent's role is ``role`` or above."""
        if ROLES.index(self.role) < ROLES.index(role):
            raise Forbidden(f"this needs the {role} role (you are {self.role})")


def _name(value: str, what: str) -> str:
    cleaned = value.strip()
    if not cleaned or len(cleaned) > 120:
        raise InvalidInput(f"name: a {what} name must be 1 to 120 characters")
    return cleaned


def _capacity(capacity: dict[str, Any] | None) -> dict[str, int]:
    if capacity is None:
        return dict(DEFAULT_CAPACITY)
    checked: dict[str, int] = {}
    for channel, limit in capacity.items():
        if channel != "*" and channel not in CHANNELS:
            raise InvalidInput(f"capacity: unknown channel {channel!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= 1000:
            raise InvalidInput(f"capacity.{channel}: must be a whole number from 0 to 1000")
        checked[channel] = limit
    checked.setdefault("*", DEFAULT_CAPACITY["*"])
    return checked


def _words(values: list[str] | None, what: str) -> list[str]:
    cleaned = sorted({v.strip().lower() for v in values or [] if v.strip()})
    if any(len(v) > 40 for v in cleaned):
        raise InvalidInput(f"{what}: each at most 40 characters")
    return cleaned


def create_agent(
    session: Session,
    name: str,
    *,
    role: str = "agent",
    email: str | None = None,
    languages: list[str] | None = None,
    skills: list[str] | None = None,
    capacity: dict[str, Any] | None = None,
) -> tuple[Agent, str]:
    """A new agent and its token (returned once; only its digest is kept)."""
    name = _name(name, "agent")
    if role not in ROLES:
        raise InvalidInput(f"role: must be one of {', '.join(ROLES)}")
    if session.scalar(select(Agent.id).where(Agent.name == name)) is not None:
        raise Conflict(f"an agent named {name!r} already exists")
    token = "agt_" + secrets.token_urlsafe(32)
    agent = Agent(
        id=new_id("agt"),
        name=name,
        email=email,
        role=role,
        token_hash=digest(token),
        languages=_words(languages, "languages") or ["fr"],
        skills=_words(skills, "skills"),
        capacity=_capacity(capacity),
        available=True,
        created_at=utcnow(),
        disabled_at=None,
    )
    session.add(agent)
    session.flush()
    return agent, token


def agent_for_token(session: Session, token: str) -> AgentInfo:
    row = session.execute(
        select(Agent.id, Agent.name, Agent.role).where(
            Agent.token_hash == digest(token), Agent.disabled_at.is_(None)
        )
    ).first()
    if row is None:
        raise NotAuthenticated("unknown or disabled agent token")
    return AgentInfo(row.id, row.name, row.role)


def agent_view(agent: Agent) -> dict[str, Any]:
    return {
        "id": agent.id,
        "name": agent.name,
        "email": agent.email,
        "role": agent.role,
        "languages": agent.languages,
        "skills": agent.skills,
        "capacity": agent.capacity,
        "available": agent.available,
    }


def get_agent(session: Session, agent_id: str) -> Agent:
    agent = session.get(Agent, agent_id)
    if agent is None or agent.disabled_at is not None:
        raise NotFound(f"agent {agent_id} not found")
    return agent


def create_team(session: Session, name: str, *, assignment: str = "round_robin") -> Team:
    name = _name(name, "team")
    if assignment not in ASSIGNMENTS:
        raise InvalidInput(f"assignment: must be one of {', '.join(ASSIGNMENTS)}")
    if session.scalar(select(Team.id).where(Team.name == name)) is not None:
        raise Conflict(f"a team named {name!r} already exists")
    team = Team(id=new_id("team"), name=name, assignment=assignment, created_at=utcnow())
    session.add(team)
    session.flush()
    return team


def add_member(session: Session, team_id: str, agent_id: str) -> None:
    if session.get(Team, team_id) is None:
        raise NotFound(f"team {team_id} not found")
    get_agent(session, agent_id)
    exists = session.scalar(
        select(TeamMember.id).where(TeamMember.team_id == team_id, TeamMember.agent_id == agent_id)
    )
    if exists is None:
        session.add(TeamMember(team_id=team_id, agent_id=agent_id, last_assigned_at=None))
        session.flush()


def set_assignment(session: Session, team_id: str, assignment: str) -> Team:
    """How the team's new conversations are shared out: ``round_robin`` or ``least_busy``."""
    if assignment not in ASSIGNMENTS:
        raise InvalidInput(f"assignment: must be one of {', '.join(ASSIGNMENTS)}")
    team = session.get(Team, team_id)
    if team is None:
        raise NotFound(f"team {team_id} not found")
    team.assignment = assignment
    session.flush()
    return team


def remove_member(session: Session, team_id: str, agent_id: str) -> None:
    """The agent no longer answers for the team (the conversations already assigned to them stay)."""
    member = session.scalar(
        select(TeamMember).where(TeamMember.team_id == team_id, TeamMember.agent_id == agent_id)
    )
    if member is None:
        raise NotFound(f"agent {agent_id} is not a member of team {team_id}")
    session.delete(member)
    session.flush()


def update_agent(
    session: Session,
    agent_id: str,
    *,
    languages: list[str] | None = None,
    skills: list[str] | None = None,
    capacity: dict[str, Any] | None = None,
) -> Agent:
    """Change what is given of an agent's languages (at least one), skills and capacity (the whole
    mapping of channel to limit, ``*`` for any other channel); what is None stays as it is."""
    agent = get_agent(session, agent_id)
    checked_languages = _words(languages, "languages") if languages is not None else agent.languages
    if not checked_languages:
        raise InvalidInput("languages: at least one")
    checked_skills = _words(skills, "skills") if skills is not None else agent.skills
    checked_capacity = _capacity(capacity) if capacity is not None else agent.capacity
    # Everything checked before anything changes: a refused update leaves the agent as it was.
    agent.languages, agent.skills, agent.capacity = checked_languages, checked_skills, checked_capacity
    session.flush()
    return agent
