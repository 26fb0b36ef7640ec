"""The inbox's conversation list: the views (mine, unassigned, my teams, all) and the filters by team,
channel, status and SLA, one page of rows loaded in a fixed number of queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import ColumnElement, and_, exists, false, func, select
from sqlalchemy.orm import Session

from parcours.console.inbox.common import (
    ACTIVE_CLOCKS,
    CHANNEL_LABELS,
    SLA_FILTERS,
    STATUS_FILTERS,
    VIEW_LABELS,
    Sla,
    agent_names,
    choice,
    customers,
    labels,
    reach_of,
    sla_states,
)
from parcours.console.web import Page, page_for
from parcours.db.types import utcnow
from parcours.errors import Forbidden, InvalidInput
from parcours.models import Conversation, Message, SlaClock, Team

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50


def _sla_filter(kind: str, now: datetime) -> ColumnElement[bool]:
    unmet = and_(
        SlaClock.conversation_id == Conversation.id,
        SlaClock.met_at.is_(None),
        SlaClock.state.in_(ACTIVE_CLOCKS),
    )
    if kind == "breached":
        return exists(select(SlaClock.id).where(unmet, SlaClock.due_at <= now))
    return exists(select(SlaClock.id).where(unmet, SlaClock.due_at > now, SlaClock.warn_at <= now))


@dataclass(frozen=True)
class Row:
    id: str
    customer: str
    channels: list[str]
    snippet: str
    snippet_direction: str
    last_message_at: datetime
    status: str
    priority: str
    assignee: str | None
    team: str | None
    tags: list[str]
    sla: Sla | None


def list_rows(session: Session, conversations: list[Conversation], now: datetime) -> list[Row]:
    """The list's rows, in a fixed number of queries for the whole page."""
    ids = [c.id for c in conversations]
    if not ids:
        return []
    people = customers(session, [c.profile_id for c in conversations])
    channels: dict[str, list[tuple[int, str]]] = {}
    for conversation_id, channel, first in session.execute(
        select(Message.conversation_id, Message.channel, func.min(Message.seq))
        .where(Message.conversation_id.in_(ids), Message.direction != "note")
        .group_by(Message.conversation_id, Message.channel)
    ):
        channels.setdefault(conversation_id, []).append((first, channel))
    ranked = (
        select(
            Message.conversation_id,
            Message.direction,
            Message.author_agent_id,
            func.substr(Message.body, 1, 240).label("body"),
            func.row_number()
            .over(partition_by=Message.conversation_id, order_by=(Message.sent_at.desc(), Message.seq.desc()))
            .label("rank"),
        )
        .where(Message.conversation_id.in_(ids))
        .subquery()
    )
    last = {row.conversation_id: row for row in session.execute(select(ranked).where(ranked.c.rank == 1))}
    names = agent_names(session, [c.assignee_id for c in conversations])
    teams = dict(session.execute(select(Team.id, Team.name)).all())
    slas = sla_states(session, ids, now)
    rows = []
    for c in conversations:
        message = last.get(c.id)
        direction = "inbound"
        if message is not None:
            direction = message.direction
            if message.author_agent_id in ("bot", "system"):
                direction = str(message.author_agent_id)
        rows.append(
            Row(
                id=c.id,
                customer=people[c.profile_id].name,
                channels=[channel for _, channel in sorted(channels.get(c.id, []))],
                snippet=" ".join(str(message.body).split()) if message is not None else "",
                snippet_direction=direction,
                last_message_at=c.last_message_at,
                status=c.status,
                priority=c.priority,
                assignee=names.get(c.assignee_id or ""),
                team=teams.get(c.team_id) if c.team_id else None,
                tags=list(c.tags),
                sla=slas.get(c.id),
            )
        )
    return rows


@router.get("/console/inbox")
def inbox(
    page: Page = Depends(page_for("inbox")),
    view: str = "",
    team: str = "",
    channel: str = "",
    status: str = "active",
    sla: str = "",
    number: int = Query(default=1, alias="page"),
) -> Response:
    user = page.user
    view = view or ("mine" if user.role == "agent" else "all")
    choice(page, "view", view, VIEW_LABELS)
    choice(page, "status", status, STATUS_FILTERS)
    choice(page, "sla", sla, SLA_FILTERS)
    if channel:
        choice(page, "channel", channel, CHANNEL_LABELS)
    if not 1 <= number <= 10_000:
        raise InvalidInput(page.t.gettext("{field}: not one of the choices offered", field="page"))
    now = utcnow()
    with page.db.read() as session:
        reach = reach_of(session, user)
        if view == "all" and not reach.everything:
            raise Forbidden(page.t.gettext("Only supervisors and admins see every conversation."))
        all_teams = list(session.execute(select(Team.id, Team.name).order_by(Team.name)).all())
        teams = [(tid, name) for tid, name in all_teams if reach.everything or tid in reach.team_ids]
        if team and team not in {tid for tid, _ in teams}:
            raise Forbidden(page.t.gettext("You are not a member of this team."))
        query = select(Conversation).where(reach.clause())
        if view == "mine":
            query = query.where(
                Conversation.assignee_id == user.agent_id if user.agent_id is not None else false()
            )
        elif view == "unassigned":
            query = query.where(Conversation.assignee_id.is_(None))
        elif view == "teams":
            query = query.where(Conversation.team_id.in_(reach.team_ids) if reach.team_ids else false())
        if team:
            query = query.where(Conversation.team_id == team)
        if channel:
            query = query.where(
                exists(
                    select(Message.seq).where(
                        Message.conversation_id == Conversation.id, Message.channel == channel
                    )
                )
            )
        if status == "active":
            query = query.where(Conversation.status.in_(("open", "pending")))
        elif status != "any":
            query = query.where(Conversation.status == status)
        if sla:
            query = query.where(_sla_filter(sla, now))
        found = list(
            session.scalars(
                query.order_by(Conversation.last_message_at.desc(), Conversation.id)
                .offset((number - 1) * PAGE_SIZE)
                .limit(PAGE_SIZE + 1)
            )
        )
        rows = list_rows(session, found[:PAGE_SIZE], now)
        counts = {
            name: session.scalar(
                select(func.count())
                .select_from(Conversation)
                .where(reach.clause(), Conversation.status.in_(("open", "pending")), condition)
            )
            for name, condition in (
                ("mine", Conversation.assignee_id == user.agent_id if user.agent_id else false()),
                ("unassigned", Conversation.assignee_id.is_(None)),
            )
        }
    views = [v for v in VIEW_LABELS if v != "all" or reach.everything]
    if not reach.team_ids:
        views = [v for v in views if v != "teams"]
    filters = {"view": view, "team": team, "channel": channel, "status": status, "sla": sla}

    def link(**changes: Any) -> str:
        values = {**filters, **changes}
        values["page"] = values.pop("number")
        return "/console/inbox?" + urlencode({k: v for k, v in values.items() if v not in ("", None, 1)})

    return page.render(
        "inbox/list.html",
        rows=rows,
        views=views,
        view_labels=VIEW_LABELS,
        counts=counts,
        teams=teams,
        filters=filters,
        status_filters=STATUS_FILTERS,
        sla_filters=SLA_FILTERS,
        channel_choices=[c for c in CHANNEL_LABELS if c not in ("web", "app", "kiosk", "marketplace")],
        number=number,
        previous_link=link(number=number - 1) if number > 1 else None,
        next_link=link(number=number + 1) if len(found) > PAGE_SIZE else None,
        view_link=lambda v: link(view=v, number=1),
        current_link=link(number=number),
        **labels(page),
    )
