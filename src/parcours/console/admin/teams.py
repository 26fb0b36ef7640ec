"""Teams (assignment by round robin or least busy, members) and agents (availability, languages,
skills, capacity per channel)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.console.admin.common import (
    ADMIN,
    attempt,
    choice_field,
    paged,
    render,
    words_field,
)
from parcours.console.common import CHANNEL_LABELS, whole_number
from parcours.console.i18n import N_
from parcours.console.web import Page, form_for, page_for
from parcours.db.types import utcnow
from parcours.errors import InvalidInput, NotFound
from parcours.inbox import agents as inbox_agents
from parcours.inbox import routing
from parcours.models import Agent, Team, TeamMember

router = APIRouter(include_in_schema=False)

ASSIGNMENT_LABELS = {"round_robin": N_("Round robin"), "least_busy": N_("Least busy")}

# The channels the inbox answers on: an agent's capacity can be set for each.
CAPACITY_CHANNELS = ("email", "sms", "whatsapp", "messenger", "instagram", "chat", "phone", "store")
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")


# ------------------------------------------------------------------------------------- teams, agents
def _teams_page(page: Page, *, status: int = 200, **values: Any) -> Response:
    with page.db.read() as session:
        teams = paged(
            session,
            select(Team.id, Team.name, Team.assignment).order_by(Team.name),
            page,
            "/console/admin/teams",
            name="teams_page",
        )
        team_ids = [row.id for row in teams.rows]
        members: dict[str, list[Any]] = {team_id: [] for team_id in team_ids}
        for row in session.execute(
            select(TeamMember.team_id, Agent.id, Agent.name, Agent.available)
            .join(Agent, Agent.id == TeamMember.agent_id)
            .where(TeamMember.team_id.in_(team_ids), Agent.disabled_at.is_(None))
            .order_by(Agent.name)
        ):
            members[row.team_id].append(row)
        agents = paged(
            session,
            select(Agent).where(Agent.disabled_at.is_(None)).order_by(Agent.name),
            page,
            "/console/admin/teams",
        )
        agent_rows = [row[0] for row in agents.rows]
        agent_ids = [a.id for a in agent_rows]
        teams_of: dict[str, list[str]] = {agent_id: [] for agent_id in agent_ids}
        for agent_id, team_name in session.execute(
            select(TeamMember.agent_id, Team.name)
            .join(Team, Team.id == TeamMember.team_id)
            .where(TeamMember.agent_id.in_(agent_ids))
            .order_by(Team.name)
        ):
            teams_of[agent_id].append(team_name)
        loads = routing.loads(session, agent_ids) if agent_ids else {}
        choices = list(
            session.execute(
                select(Agent.id, Agent.name).where(Agent.disabled_at.is_(None)).order_by(Agent.name)
            )
        )
        all_teams = list(session.execute(select(Team.id, Team.name).order_by(Team.name)))
    return render(
        page,
        "admin/teams.html",
        status=status,
        teams=teams,
        members=members,
        agents=agents,
        agent_rows=agent_rows,
        teams_of=teams_of,
        loads=loads,
        agent_choices=choices,
        team_choices=all_teams,
        assignment_labels=ASSIGNMENT_LABELS,
        channel_labels=CHANNEL_LABELS,
        **values,
    )


@router.get("/console/admin/teams")
def teams_page(page: Page = Depends(page_for(ADMIN))) -> Response:
    return _teams_page(page)


@router.post("/console/admin/teams")
def create_team(page: Page = Depends(form_for(ADMIN))) -> Response:
    def create(session: Session) -> str:
        name = page.field("name", max_chars=120)
        assignment = choice_field(page, "assignment", inbox_agents.ASSIGNMENTS)
        return inbox_agents.create_team(session, name, assignment=assignment).name

    made = attempt(page, create, _teams_page, "team")
    if isinstance(made, Response):
        return made
    return page.redirect("/console/admin/teams", flash=page.t.gettext("Team {name} created.", name=made))


@router.post("/console/admin/teams/{team_id}/assignment")
def set_assignment(team_id: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    assignment = choice_field(page, "assignment", inbox_agents.ASSIGNMENTS)
    with page.db.write() as session:
        team = inbox_agents.set_assignment(session, team_id, assignment)
    return page.redirect(
        "/console/admin/teams",
        flash=page.t.gettext("{team} now assigns by {assignment}.", team=team.name,
                             assignment=page.t.gettext(ASSIGNMENT_LABELS[assignment]).lower()),
    )  # fmt: skip


@router.post("/console/admin/teams/members")
def add_member(page: Page = Depends(form_for(ADMIN))) -> Response:
    def add(session: Session) -> tuple[str, str]:
        team_id = page.field("team_id", max_chars=40)
        agent_id = page.field("agent_id", max_chars=40)
        team = session.get(Team, team_id)
        if team is None:
            raise InvalidInput(f"team_id: no team {team_id!r}")
        try:
            agent = inbox_agents.get_agent(session, agent_id)
        except NotFound:
            raise InvalidInput(f"agent_id: no agent {agent_id!r}") from None
        inbox_agents.add_member(session, team_id, agent_id)
        return agent.name, team.name

    made = attempt(page, add, _teams_page, "member")
    if isinstance(made, Response):
        return made
    agent, team = made
    return page.redirect(
        "/console/admin/teams", flash=page.t.gettext("{agent} added to {team}.", agent=agent, team=team)
    )


@router.post("/console/admin/teams/{team_id}/members/{agent_id}/remove")
def remove_member(team_id: str, agent_id: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    with page.db.write() as session:
        inbox_agents.remove_member(session, team_id, agent_id)
        team = session.get(Team, team_id)
        agent = session.get(Agent, agent_id)
        names = (agent.name if agent else agent_id, team.name if team else team_id)
    return page.redirect(
        "/console/admin/teams",
        flash=page.t.gettext("{agent} removed from {team}.", agent=names[0], team=names[1]),
    )


@router.post("/console/admin/agents/{agent_id}/availability")
def set_availability(agent_id: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    available = choice_field(page, "available", ("yes", "no")) == "yes"
    with page.db.write() as session:
        agent = inbox_agents.get_agent(session, agent_id)
        moved = routing.set_availability(session, agent_id, available, utcnow())
        name = agent.name
    t = page.t
    message = (t.gettext("{name} is available.", name=name) if available
               else t.gettext("{name} is away.", name=name))  # fmt: skip
    if moved:
        message += " " + t.ngettext(
            "{count} conversation reassigned.", "{count} conversations reassigned.", len(moved)
        )
    return page.redirect("/console/admin/teams", flash=message)


def _agent_page(page: Page, agent_id: str, *, status: int = 200, **values: Any) -> Response:
    with page.db.read() as session:
        agent = inbox_agents.get_agent(session, agent_id)
        load = routing.load(session, agent_id)
    return render(
        page,
        "admin/agent.html",
        status=status,
        agent=agent,
        load=load,
        capacity_channels=CAPACITY_CHANNELS,
        channel_labels=CHANNEL_LABELS,
        **values,
    )


@router.get("/console/admin/agents/{agent_id}")
def agent_page(agent_id: str, page: Page = Depends(page_for(ADMIN))) -> Response:
    return _agent_page(page, agent_id)


@router.post("/console/admin/agents/{agent_id}")
def update_agent(agent_id: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    def save(session: Session) -> str:
        languages = [w.lower() for w in words_field(page, "languages")]
        if not languages:
            raise InvalidInput(page.t.gettext("languages: at least one (fr, en…)"))
        for code in languages:
            if not LANGUAGE_CODE.match(code):
                raise InvalidInput(page.t.gettext("languages: {code} is not a language code such as fr or en",
                                                  code=repr(code)[:20]))  # fmt: skip
        skills = words_field(page, "skills")
        capacity: dict[str, Any] = {"*": whole_number(page, "capacity_any", 0, 1000)}
        agent = inbox_agents.get_agent(session, agent_id)
        # Channels this form does not show keep their limits.
        capacity.update({k: v for k, v in agent.capacity.items() if k != "*" and k not in CAPACITY_CHANNELS})
        for channel in CAPACITY_CHANNELS:
            if page.field(f"capacity_{channel}", required=False, max_chars=12):
                capacity[channel] = whole_number(page, f"capacity_{channel}", 0, 1000)
        agent = inbox_agents.update_agent(
            session, agent_id, languages=languages, skills=skills, capacity=capacity
        )
        return agent.name

    made = attempt(page, save, lambda p, **v: _agent_page(p, agent_id, **v), "agent")
    if isinstance(made, Response):
        return made
    return page.redirect("/console/admin/teams", flash=page.t.gettext("{name} saved.", name=made))
