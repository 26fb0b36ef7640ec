"""Console pages: the inbox. The conversation list with its filters, one conversation's thread across
channels with the customer 360 panel beside it, the agent's actions on it (reply on a chosen channel,
private note, macro, assign, priority and tags, snooze, resolve, reopen, retry a failed reply), and the
live feed (Server-Sent Events) that brings new messages into open pages without a reload.

Who sees what: supervisors and admins ("inbox.all") every conversation; an agent the conversations
assigned to them, those of their teams, and the unassigned ones that belong to no team.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import ColumnElement, and_, exists, false, func, or_, select, true
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from parcours.auth import users
from parcours.auth.users import UserInfo
from parcours.commerce import loyalty
from parcours.console.i18n import N_
from parcours.console.web import SECURITY_HEADERS, SESSION_COOKIE, Page, form_for, page_for
from parcours.db.types import utcnow
from parcours.errors import Forbidden, InvalidInput, NotAuthenticated, NotFound
from parcours.identity import service as identity
from parcours.inbox import automation, feed, service
from parcours.inbox.agents import AgentInfo
from parcours.inbox.csat import ask as ask_csat
from parcours.inbox.outbound import (
    ADDRESS_KINDS,
    LOGGED_CHANNELS,
    Outbox,
    customer_address,
    deliver,
    write_reply,
)
from parcours.models import (
    Agent,
    Conversation,
    CsatSurvey,
    Event,
    Identifier,
    Location,
    Macro,
    Message,
    Order,
    Profile,
    Reservation,
    SlaClock,
    Team,
    TeamMember,
)

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
THREAD_SIZE = 100  # latest messages shown; "show earlier" shows up to THREAD_MAX
THREAD_MAX = 2000
PANEL_ROWS = 5

CHANNEL_LABELS = {
    "web": N_("Web"),
    "app": N_("App"),
    "store": N_("Store"),
    "phone": N_("Phone"),
    "email": N_("E-mail"),
    "sms": N_("SMS"),
    "chat": N_("Web chat"),
    "whatsapp": N_("WhatsApp"),
    "messenger": N_("Messenger"),
    "instagram": N_("Instagram"),
    "social": N_("Social network"),
    "kiosk": N_("Kiosk"),
    "marketplace": N_("Marketplace"),
    "mail": N_("Postal mail"),
    "other": N_("Other"),
}
STATUS_LABELS = {
    "open": N_("Open"),
    "pending": N_("Pending"),
    "snoozed": N_("Snoozed"),
    "resolved": N_("Resolved"),
}
PRIORITY_LABELS = {"low": N_("Low"), "normal": N_("Normal"), "high": N_("High"), "urgent": N_("Urgent")}
VIEW_LABELS = {"mine": N_("Mine"), "unassigned": N_("Unassigned"), "teams": N_("My teams"), "all": N_("All")}
STATUS_FILTERS = {
    "active": N_("Open and pending"),
    "open": N_("Open"),
    "pending": N_("Pending"),
    "snoozed": N_("Snoozed"),
    "resolved": N_("Resolved"),
    "any": N_("Any status"),
}
SLA_FILTERS = {"": N_("Any"), "soon": N_("Due soon"), "breached": N_("Breached")}
SLA_TARGETS = {
    "first_response": N_("First response"),
    "next_response": N_("Next response"),
    "resolution": N_("Resolution"),
}
DELIVERY_LABELS = {
    "queued": N_("Queued"),
    "sent": N_("Sent"),
    "failed": N_("Failed"),
    "logged": N_("Logged"),
}
TIER_LABELS = {"bronze": N_("Bronze"), "silver": N_("Silver"), "gold": N_("Gold")}
ORDER_STATUS_LABELS = {
    "placed": N_("Placed"),
    "ready": N_("Ready"),
    "shipped": N_("Shipped"),
    "collected": N_("Collected"),
    "cancelled": N_("Cancelled"),
}
RESERVATION_STATUS_LABELS = {
    "held": N_("Held"),
    "collected": N_("Collected"),
    "cancelled": N_("Cancelled"),
    "expired": N_("Expired"),
}
IDENTIFIER_LABELS = {
    "email": N_("E-mail"),
    "phone": N_("Phone"),
    "whatsapp": N_("WhatsApp"),
    "messenger": N_("Messenger"),
    "instagram": N_("Instagram"),
    "loyalty_card": N_("Loyalty card"),
    "user_id": N_("Account"),
    "anonymous_id": N_("Device"),
    "pos_customer_id": N_("Till customer id"),
}
# The identifier shown for a customer without a name, best first.
NAME_KINDS = ("email", "phone", "whatsapp", "loyalty_card", "messenger", "instagram", "user_id")
# Traits shown as the customer's name, not again among the traits.
NAME_TRAITS = ("name", "firstName", "lastName", "first_name", "last_name")
ACTIVE_CLOCKS = ("running", "warned", "breached")


def labels(page: Page) -> dict[str, Any]:
    """The translated words the inbox templates show for the domain's codes."""
    return {
        "channel_labels": CHANNEL_LABELS,
        "status_labels": STATUS_LABELS,
        "priority_labels": PRIORITY_LABELS,
        "delivery_labels": DELIVERY_LABELS,
        "sla_targets": SLA_TARGETS,
        "identifier_labels": IDENTIFIER_LABELS,
    }


# ------------------------------------------------------------------------------------ who sees what
@dataclass(frozen=True)
class Reach:
    """The conversations a console user may work on."""

    everything: bool
    agent_id: str | None
    team_ids: tuple[str, ...]

    def clause(self) -> ColumnElement[bool]:
        if self.everything:
            return true()
        allowed: list[ColumnElement[bool]] = [
            and_(Conversation.assignee_id.is_(None), Conversation.team_id.is_(None))
        ]
        if self.agent_id is not None:
            allowed.append(Conversation.assignee_id == self.agent_id)
        if self.team_ids:
            allowed.append(Conversation.team_id.in_(self.team_ids))
        return or_(*allowed)

    def allows(self, assignee_id: str | None, team_id: str | None) -> bool:
        return (
            self.everything
            or (assignee_id is None and team_id is None)
            or (self.agent_id is not None and assignee_id == self.agent_id)
            or (team_id is not None and team_id in self.team_ids)
        )


def reach_of(session: Session, user: UserInfo) -> Reach:
    teams: tuple[str, ...] = ()
    if user.agent_id is not None:
        teams = tuple(session.scalars(select(TeamMember.team_id).where(TeamMember.agent_id == user.agent_id)))
    return Reach(user.can("inbox.all"), user.agent_id, teams)


def visible_conversation(session: Session, page: Page, conversation_id: str) -> Conversation:
    """The conversation, if this user may work on it (NotFound or Forbidden otherwise)."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise NotFound(page.t.gettext("This conversation does not exist."))
    if not reach_of(session, page.user).allows(conversation.assignee_id, conversation.team_id):
        raise Forbidden(page.t.gettext("This conversation belongs to another agent or team."))
    return conversation


def acting_agent(page: Page) -> AgentInfo:
    """The inbox agent the signed-in user answers as."""
    if page.user.agent_id is None:
        raise Forbidden(page.t.gettext("Your user has no inbox agent: ask an administrator."))
    return AgentInfo(page.user.agent_id, page.user.name, page.user.role)


def outbox_of(page: Page) -> Outbox:
    value: Outbox = page.request.app.state.outbox
    return value


# ---------------------------------------------------------------------------------- read helpers
@dataclass(frozen=True)
class Customer:
    profile_id: str  # the active profile
    name: str


def display_name(traits: dict[str, Any] | None) -> str:
    """First and last name (as the customer gave them), else the name a channel knew them by."""
    traits = traits or {}
    first = str(traits.get("firstName") or traits.get("first_name") or "").strip()
    last = str(traits.get("lastName") or traits.get("last_name") or "").strip()
    return " ".join(part for part in (first, last) if part) or str(traits.get("name") or "").strip()


def customers(session: Session, profile_ids: Iterable[str]) -> dict[str, Customer]:
    """Each profile's active profile and a name to show (its traits' name, else its best identifier),
    in a few queries whatever the number of profiles."""
    wanted = set(profile_ids)
    rows: dict[str, tuple[str | None, dict[str, Any]]] = {}
    pending = set(wanted)
    for _ in range(100):  # merge chains are short; this bounds a broken one
        if not pending:
            break
        found = session.execute(
            select(Profile.id, Profile.merged_into_id, Profile.traits).where(Profile.id.in_(pending))
        ).all()
        pending = set()
        for profile_id, merged_into, traits in found:
            rows[profile_id] = (merged_into, traits or {})
            if merged_into is not None and merged_into not in rows:
                pending.add(merged_into)

    def active(profile_id: str) -> str:
        seen = set()
        while profile_id in rows and rows[profile_id][0] is not None and profile_id not in seen:
            seen.add(profile_id)
            profile_id = str(rows[profile_id][0])
        return profile_id

    actives = {pid: active(pid) for pid in wanted}
    names = {pid: display_name(rows[pid][1]) if pid in rows else "" for pid in set(actives.values())}
    unnamed = [pid for pid, name in names.items() if not name]
    if unnamed:
        best: dict[str, tuple[int, str]] = {}
        for profile_id, kind, value in session.execute(
            select(Identifier.profile_id, Identifier.kind, Identifier.value).where(
                Identifier.profile_id.in_(unnamed), Identifier.kind.in_(NAME_KINDS)
            )
        ):
            rank = NAME_KINDS.index(kind)
            if profile_id not in best or rank < best[profile_id][0]:
                best[profile_id] = (rank, value)
        for profile_id in unnamed:
            names[profile_id] = best[profile_id][1] if profile_id in best else ""
    return {pid: Customer(actives[pid], names[actives[pid]]) for pid in wanted}


def agent_names(session: Session, agent_ids: Iterable[str | None]) -> dict[str, str]:
    ids = {agent_id for agent_id in agent_ids if agent_id}
    if not ids:
        return {}
    return {
        str(agent_id): str(name)
        for agent_id, name in session.execute(select(Agent.id, Agent.name).where(Agent.id.in_(ids)))
    }


@dataclass(frozen=True)
class Sla:
    state: str  # breached, soon, running
    target: str
    due_at: datetime


def sla_states(session: Session, conversation_ids: list[str], now: datetime) -> dict[str, Sla]:
    """The most urgent unmet SLA target of each conversation."""
    found: dict[str, Sla] = {}
    if not conversation_ids:
        return found
    for conversation_id, target, warn_at, due_at, state in session.execute(
        select(SlaClock.conversation_id, SlaClock.target, SlaClock.warn_at, SlaClock.due_at, SlaClock.state)
        .where(
            SlaClock.conversation_id.in_(conversation_ids),
            SlaClock.met_at.is_(None),
            SlaClock.state.in_(ACTIVE_CLOCKS),
        )
        .order_by(SlaClock.due_at)
    ):
        if conversation_id in found:
            continue
        if state == "breached" or due_at <= now:
            level = "breached"
        elif state == "warned" or warn_at <= now:
            level = "soon"
        else:
            level = "running"
        found[conversation_id] = Sla(level, target, due_at)
    return found


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


# ----------------------------------------------------------------------------------------- the list
def _choice(page: Page, name: str, value: str, choices: Iterable[str]) -> str:
    if value not in choices:
        raise InvalidInput(page.t.gettext("{field}: not one of the choices offered", field=name))
    return value


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
    _choice(page, "view", view, VIEW_LABELS)
    _choice(page, "status", status, STATUS_FILTERS)
    _choice(page, "sla", sla, SLA_FILTERS)
    if channel:
        _choice(page, "channel", channel, CHANNEL_LABELS)
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


# --------------------------------------------------------------------------------- one conversation
@dataclass(frozen=True)
class ReplyChannel:
    channel: str
    address: str | None
    ready: bool  # an address and a way to send (or a channel where the reply is logged)


def reply_channels(session: Session, outbox: Outbox, conversation: Conversation) -> list[ReplyChannel]:
    """The channels this customer can be answered on, as ``write_reply`` decides: an address of the
    channel's kinds among the profile's identifiers, and a sender configured (or a logged channel)."""
    found = []
    configured = set(outbox.channels())
    for channel in ADDRESS_KINDS:
        address = customer_address(session, conversation.profile_id, channel)
        if address is None:
            continue
        ready = channel in LOGGED_CHANNELS or channel in configured
        found.append(ReplyChannel(channel, address[1], ready))
    return found


def thread_messages(session: Session, conversation_id: str, limit: int) -> tuple[list[Message], int]:
    """The latest ``limit`` messages in time order, and how many earlier ones are not shown."""
    total = session.scalar(
        select(func.count()).select_from(Message).where(Message.conversation_id == conversation_id)
    )
    latest = list(
        session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.sent_at.desc(), Message.seq.desc())
            .limit(limit)
        )
    )
    latest.reverse()
    return latest, max(0, int(total or 0) - len(latest))


def message_context(session: Session, messages: list[Message], customer_name: str) -> dict[str, Any]:
    return {
        "authors": agent_names(session, [m.author_agent_id for m in messages]),
        "customer_name": customer_name,
    }


def customer_panel(
    session: Session, reach: Reach, conversation: Conversation, now: datetime
) -> dict[str, Any]:
    """The customer 360 panel: the unified profile, recent events on every channel, orders,
    reservations, loyalty, satisfaction answers and their other conversations."""
    view = identity.profile_view(session, conversation.profile_id)
    profile_id = view["id"]
    ids = identity.people(session, profile_id)
    traits = view["traits"] or {}
    shown_traits = [
        (key, _trait_text(value))
        for key, value in sorted(traits.items())
        if key not in NAME_TRAITS and key not in IDENTIFIER_LABELS and value not in (None, "", [], {})
    ]
    events = list(
        session.scalars(
            select(Event)
            .where(Event.profile_id == profile_id)
            .order_by(Event.timestamp.desc(), Event.id.desc())
            .limit(8)
        )
    )
    orders = list(
        session.scalars(
            select(Order).where(Order.profile_id.in_(ids)).order_by(Order.created_at.desc()).limit(PANEL_ROWS)
        )
    )
    reservations = list(
        session.execute(
            select(Reservation, Location.name)
            .join(Location, Location.id == Reservation.location_id)
            .where(Reservation.profile_id.in_(ids))
            .order_by(Reservation.created_at.desc())
            .limit(PANEL_ROWS)
        ).all()
    )
    has_card = any(i["kind"] == "loyalty_card" for i in view["identifiers"])
    member = loyalty.member_view(session, profile_id, now)
    surveys = list(
        session.scalars(
            select(CsatSurvey)
            .where(CsatSurvey.profile_id.in_(ids), CsatSurvey.answered_at.is_not(None))
            .order_by(CsatSurvey.answered_at.desc())
            .limit(PANEL_ROWS)
        )
    )
    others = list(
        session.scalars(
            select(Conversation)
            .where(Conversation.profile_id.in_(ids), Conversation.id != conversation.id, reach.clause())
            .order_by(Conversation.last_message_at.desc())
            .limit(PANEL_ROWS)
        )
    )
    return {
        "profile": view,
        "name": display_name(traits),
        "traits": shown_traits[:12],
        "events": events,
        "orders": orders,
        "reservations": reservations,
        "loyalty": member if has_card or member["entries"] else None,
        "tier_labels": TIER_LABELS,
        "order_status_labels": ORDER_STATUS_LABELS,
        "reservation_status_labels": RESERVATION_STATUS_LABELS,
        "surveys": surveys,
        "others": others,
        "parse_iso": _parse_iso,
    }


def _trait_text(value: Any) -> str:
    if isinstance(value, dict):
        text = ", ".join(f"{k}: {v}" for k, v in value.items() if v not in (None, ""))
    elif isinstance(value, list):
        text = ", ".join(str(v) for v in value)
    else:
        text = str(value)
    return text if len(text) <= 120 else text[:119] + "…"


def _parse_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _snooze_default(page: Page, now: datetime) -> str:
    """Tomorrow at 09:00 in the console's time zone, as a datetime-local value."""
    local = now.astimezone(ZoneInfo(page.settings.console_timezone)) + timedelta(days=1)
    return local.replace(hour=9, minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M")


@router.get("/console/conversations/{conversation_id}")
def conversation_page(
    conversation_id: str,
    page: Page = Depends(page_for("inbox")),
    macro: str = "",
    earlier: bool = False,
) -> Response:
    now = utcnow()
    outbox = outbox_of(page)
    with page.db.read() as session:
        conversation = visible_conversation(session, page, conversation_id)
        reach = reach_of(session, page.user)
        messages, hidden = thread_messages(session, conversation.id, THREAD_MAX if earlier else THREAD_SIZE)
        panel = customer_panel(session, reach, conversation, now)
        customer_name = customers(session, [conversation.profile_id])[conversation.profile_id].name
        channels = reply_channels(session, outbox, conversation)
        macros = list(session.execute(select(Macro.id, Macro.name).order_by(Macro.name)).all())
        prefill, macro_id = "", ""
        if macro:
            chosen = session.get(Macro, macro)
            if chosen is None:
                raise NotFound(page.t.gettext("This macro does not exist."))
            values = automation.variables(session, conversation, acting_agent(page))
            prefill, macro_id = automation.render(chosen.body, values), chosen.id
        agents = (
            list(
                session.execute(
                    select(Agent.id, Agent.name).where(Agent.disabled_at.is_(None)).order_by(Agent.name)
                ).all()
            )
            if reach.everything
            else []
        )
        teams = list(session.execute(select(Team.id, Team.name).order_by(Team.name)).all())
        team_name = dict(teams).get(conversation.team_id) if conversation.team_id else None
        names = agent_names(session, [conversation.assignee_id])
        sla = sla_states(session, [conversation.id], now).get(conversation.id)
        context = message_context(session, messages, customer_name or page.t.gettext("Unknown customer"))
    ready = [c.channel for c in channels if c.ready]
    preferred = conversation.last_inbound_channel
    selected = preferred if preferred in ready else (ready[0] if ready else "")
    return page.render(
        "inbox/conversation.html",
        conversation=conversation,
        messages=messages,
        hidden=hidden,
        panel=panel,
        channels=channels,
        selected_channel=selected,
        macros=macros,
        macro_id=macro_id,
        prefill=prefill,
        agents=agents,
        teams=teams if reach.everything else [],
        team_name=team_name,
        assignee_name=names.get(conversation.assignee_id or ""),
        may_assign_others=reach.everything,
        mine=conversation.assignee_id is not None and conversation.assignee_id == page.user.agent_id,
        sla=sla,
        snooze_default=_snooze_default(page, now),
        **context,
        **labels(page),
    )


@router.get("/console/conversations/{conversation_id}/messages")
def new_messages(conversation_id: str, after: str = "", page: Page = Depends(page_for("inbox"))) -> Response:
    """The thread's messages stored after message ``after`` (as the thread's ``<li>`` elements): what the
    page appends when the live feed says something arrived."""
    with page.db.read() as session:
        conversation = visible_conversation(session, page, conversation_id)
        query = select(Message).where(Message.conversation_id == conversation.id)
        if after:
            seq = session.scalar(
                select(Message.seq).where(Message.id == after, Message.conversation_id == conversation.id)
            )
            if seq is None:
                raise InvalidInput(
                    page.t.gettext("{field}: not a message of this conversation", field="after")
                )
            query = query.where(Message.seq > seq)
        messages = list(session.scalars(query.order_by(Message.sent_at, Message.seq).limit(THREAD_SIZE)))
        customer_name = customers(session, [conversation.profile_id])[conversation.profile_id].name
        context = message_context(session, messages, customer_name)
    return page.render("inbox/messages.html", messages=messages, **context, **labels(page))


@router.get("/console/messages/{message_id}/attachments/{index}")
def attachment(message_id: str, index: int, page: Page = Depends(page_for("inbox"))) -> Response:
    """An e-mail attachment kept by the inbox, downloaded (never shown inline)."""
    from parcours.channels.email import AttachmentStore, attachments_dir

    with page.db.read() as session:
        message = session.scalar(select(Message).where(Message.id == message_id))
        if message is None:
            raise NotFound(page.t.gettext("This message does not exist."))
        visible_conversation(session, page, message.conversation_id)
        records = message.attachments
    if (
        not 0 <= index < len(records)
        or not isinstance(records[index], dict)
        or not records[index].get("path")
    ):
        raise NotFound(page.t.gettext("This attachment is not kept here."))
    record = records[index]
    path = AttachmentStore(attachments_dir(page.settings), page.settings).path(str(record["path"]))
    if not path.is_file():
        raise NotFound(page.t.gettext("This attachment is not kept here."))
    name = re.sub(r"[^\w.\- ]+", "_", str(record.get("name") or "attachment"))[:120] or "attachment"
    return FileResponse(
        path,
        media_type=str(record.get("content_type") or "application/octet-stream"),
        filename=name,
        content_disposition_type="attachment",
        headers={**SECURITY_HEADERS, "Content-Security-Policy": "default-src 'none'; sandbox"},
    )


# ------------------------------------------------------------------------------------------ actions
def _back(conversation_id: str, anchor: str = "") -> str:
    return f"/console/conversations/{conversation_id}" + (f"#{anchor}" if anchor else "")


def _delivered_flash(page: Page, message: Message) -> str:
    label = page.t.gettext(CHANNEL_LABELS.get(message.channel, message.channel))
    if message.delivery == "note":
        return page.t.gettext("Private note added.")
    if message.delivery == "sent":
        return page.t.gettext("Reply sent by {channel}.", channel=label)
    if message.delivery == "logged":
        return page.t.gettext("Reply logged on {channel}.", channel=label)
    if message.delivery == "failed":
        return page.t.gettext("The reply by {channel} could not be sent: {error}", channel=label,
                              error=message.error or "")  # fmt: skip
    return page.t.gettext("Reply queued on {channel}.", channel=label)


def _apply_macro_actions(
    page: Page, session: Session, conversation: Conversation, actions: dict[str, Any], now: datetime
) -> str | None:
    """A macro's actions after its (possibly edited) reply, as ``automation.apply_macro`` applies them;
    returns the satisfaction survey's message to deliver if the macro resolved the conversation."""
    if "add_tags" in actions or "set_priority" in actions:
        tags = sorted(set(conversation.tags) | {str(t) for t in actions.get("add_tags", [])})
        service.update_conversation(
            session, conversation.id, priority=actions.get("set_priority"),
            tags=tags if "add_tags" in actions else None,
        )  # fmt: skip
    if "set_status" in actions:
        was_resolved = conversation.status == "resolved"
        service.set_status(session, conversation.id, actions["set_status"], snoozed_until=None, now=now)
        if conversation.status == "resolved" and not was_resolved:
            return ask_csat(session, page.settings, conversation, now)
    return None


@router.post("/console/conversations/{conversation_id}/reply")
def reply(conversation_id: str, page: Page = Depends(form_for("inbox"))) -> Response:
    """A reply on the chosen channel (delivered once stored), or a private note; with a macro's id, the
    macro's actions too."""
    body = page.field("body", max_chars=service.MAX_BODY)
    kind = _choice(page, "kind", page.field("kind", "reply", max_chars=10), ("reply", "note"))
    channel = page.field("channel", "", max_chars=40)
    macro_id = page.field("macro_id", "", max_chars=40)
    agent = acting_agent(page)
    outbox = outbox_of(page)
    now = utcnow()
    survey = None
    with page.db.write() as session:
        conversation = visible_conversation(session, page, conversation_id)
        if kind == "reply" and not channel:
            raise InvalidInput(page.t.gettext("Channel: choose the channel to reply on."))
        if channel:
            _choice(page, "channel", channel, CHANNEL_LABELS)
        macro = session.get(Macro, macro_id) if macro_id else None
        if macro_id and macro is None:
            raise NotFound(page.t.gettext("This macro does not exist."))
        message = write_reply(
            session, page.settings, outbox, conversation.id, agent, body,
            channel=channel or None, private=kind == "note", now=now,
        )  # fmt: skip
        if macro is not None:
            survey = _apply_macro_actions(page, session, conversation, macro.actions, now)
        reply_channel = conversation.last_inbound_channel
    if message.delivery == "queued":
        message = deliver(page.db, outbox, message.id)
    if survey is not None and outbox.sender(reply_channel) is not None:
        deliver(page.db, outbox, survey)
    return page.redirect(_back(conversation_id, f"m-{message.id}"), flash=_delivered_flash(page, message))


@router.post("/console/messages/{message_id}/retry")
def retry(message_id: str, page: Page = Depends(form_for("inbox"))) -> Response:
    """Send a failed reply again."""
    with page.db.read() as session:
        message = session.scalar(select(Message).where(Message.id == message_id))
        if message is None:
            raise NotFound(page.t.gettext("This message does not exist."))
        visible_conversation(session, page, message.conversation_id)
    if message.delivery != "failed":
        return page.redirect(_back(message.conversation_id, f"m-{message.id}"))
    sent = deliver(page.db, outbox_of(page), message_id)
    return page.redirect(_back(sent.conversation_id, f"m-{sent.id}"), flash=_delivered_flash(page, sent))


@router.post("/console/conversations/{conversation_id}/status")
def change_status(conversation_id: str, page: Page = Depends(form_for("inbox"))) -> Response:
    """Resolve, reopen, mark pending or snooze until a time (in the console's time zone)."""
    status = _choice(page, "status", page.field("status", max_chars=20), service.STATUSES)
    until = None
    now = utcnow()
    if status == "snoozed":
        until = _local_moment(page, page.field("snoozed_until", max_chars=40))
        if until <= now:
            raise InvalidInput(page.t.gettext("Snooze until: choose a time in the future."))
    outbox = outbox_of(page)
    with page.db.write() as session:
        conversation = visible_conversation(session, page, conversation_id)
        was_resolved = conversation.status == "resolved"
        service.set_status(session, conversation.id, status, snoozed_until=until, now=now)
        survey = (
            ask_csat(session, page.settings, conversation, now)
            if status == "resolved" and not was_resolved
            else None
        )
        reply_channel = conversation.last_inbound_channel
    if survey is not None and outbox.sender(reply_channel) is not None:
        deliver(page.db, outbox, survey)
    flash = {
        "open": page.t.gettext("Conversation reopened."),
        "pending": page.t.gettext("Conversation marked pending."),
        "resolved": page.t.gettext("Conversation resolved."),
        "snoozed": page.t.gettext("Conversation snoozed until {when}.", when=page.t.datetime(until, "short")),
    }[status]
    return page.redirect(_back(conversation_id), flash=flash)


def _local_moment(page: Page, text: str) -> datetime:
    """A datetime-local value (console time zone) as an aware UTC moment."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(page.t.gettext("Snooze until: enter a date and a time.")) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(page.settings.console_timezone))
    return moment.astimezone(ZoneInfo("UTC"))


@router.post("/console/conversations/{conversation_id}/assign")
def assign(conversation_id: str, page: Page = Depends(form_for("inbox"))) -> Response:
    """Assign to me, to another agent or to a team (supervisors and admins), or unassign."""
    assignee = page.field("assignee", "", max_chars=40)
    team = page.field("team", "", max_chars=40)
    agent = acting_agent(page)
    now = utcnow()
    with page.db.write() as session:
        conversation = visible_conversation(session, page, conversation_id)
        everything = reach_of(session, page.user).everything
        target = agent.id if assignee == "me" else assignee
        if not everything:
            if team or target not in ("", agent.id, "none"):
                raise Forbidden(page.t.gettext("Only supervisors and admins assign to others or to teams."))
            if target == "none" and conversation.assignee_id not in (None, agent.id):
                raise Forbidden(page.t.gettext("Only supervisors and admins unassign a colleague."))
        service.update_conversation(
            session, conversation.id, assignee_id=target if target not in ("", "none") else None,
            team_id=team or None, unassign=target == "none", by=agent.id, now=now,
        )  # fmt: skip
        names = agent_names(session, [conversation.assignee_id])
        team_name = session.scalar(select(Team.name).where(Team.id == conversation.team_id)) if team else None
    if conversation.assignee_id is None:
        flash = page.t.gettext("Conversation unassigned.")
    else:
        flash = page.t.gettext("Assigned to {name}.", name=names.get(conversation.assignee_id, ""))
    if team_name:
        flash += " " + page.t.gettext("Team: {team}.", team=team_name)
    return page.redirect(_back(conversation_id), flash=flash)


@router.post("/console/conversations/{conversation_id}/details")
def details(conversation_id: str, page: Page = Depends(form_for("inbox"))) -> Response:
    """Priority and tags."""
    priority = _choice(page, "priority", page.field("priority", max_chars=20), service.PRIORITIES)
    tags = [t for t in page.field("tags", "", required=False, max_chars=1000).split(",") if t.strip()]
    if len(tags) > 20:
        raise InvalidInput(page.t.gettext("Tags: at most 20."))
    with page.db.write() as session:
        conversation = visible_conversation(session, page, conversation_id)
        service.update_conversation(session, conversation.id, priority=priority, tags=tags)
    return page.redirect(_back(conversation_id), flash=page.t.gettext("Priority and tags saved."))


# -------------------------------------------------------------------------------------- live feed
LIVE_POLL_SECONDS = 0.5  # how often a stream looks whether the server is stopping
LIVE_HEARTBEAT_SECONDS = 15.0  # a comment line keeps proxies from closing an idle stream
LIVE_SESSION_CHECK_SECONDS = 60.0  # a signed-out or disabled user's stream ends within this
LIVE_QUEUE = 500


def server_stopping(request: Request) -> bool:
    """Whether uvicorn has begun a graceful shutdown: it then turns off keep-alive on the connections
    still answering (its only signal to a running response), and waits for them to finish."""
    cycle = getattr(request.receive, "__self__", None)
    return getattr(cycle, "keep_alive", True) is False


def _session_valid(page: Page, token: str) -> bool:
    try:
        with page.db.read() as session:
            users.session_user(session, token)
        return True
    except NotAuthenticated:
        return False


def _offer(queue: asyncio.Queue[dict[str, Any]], item: dict[str, Any]) -> None:
    if not queue.full():  # a page that does not keep up misses old items; the server never blocks
        queue.put_nowait(item)


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.get("/console/inbox/live")
async def live(page: Page = Depends(page_for("inbox")), conversation: str = "", view: str = "") -> Response:
    """Server-Sent Events: what happens to the conversations this user may work on (``view=mine``: only
    theirs), and always to ``conversation`` (the page open). Each event is ``inbox`` with JSON data
    {type, conversation_id, message_id}; the page fetches what changed as HTML. The stream ends when the
    browser goes away, when the session ends, and when the server stops."""
    request = page.request
    user = page.user
    token = request.cookies.get(SESSION_COOKIE, "")
    if view not in ("", "mine"):
        raise InvalidInput(page.t.gettext("{field}: not one of the choices offered", field="view"))

    def start() -> Reach:
        with page.db.read() as session:
            if conversation:
                visible_conversation(session, page, conversation)
            return reach_of(session, user)

    reach = await run_in_threadpool(start)

    def visible(conversation_id: str) -> bool:
        with page.db.read() as session:
            row = session.execute(
                select(Conversation.assignee_id, Conversation.team_id).where(
                    Conversation.id == conversation_id
                )
            ).first()
        return row is not None and reach.allows(row.assignee_id, row.team_id)

    async def wanted(item: dict[str, Any]) -> bool:
        conversation_id = str(item.get("conversation_id") or "")
        if conversation_id == conversation:
            return True
        if view == "mine":
            return user.agent_id is not None and item.get("agent_id") == user.agent_id
        if reach.everything or (user.agent_id is not None and item.get("agent_id") == user.agent_id):
            return True
        return await run_in_threadpool(visible, conversation_id)

    async def stream() -> AsyncIterator[str]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=LIVE_QUEUE)
        loop = asyncio.get_running_loop()

        def listener(item: dict[str, Any]) -> None:  # called in the committing thread
            loop.call_soon_threadsafe(_offer, queue, item)

        subscription = feed.FEED.subscribe(listener)
        try:
            # Subscribed: the page may now fetch what it missed, nothing later will be lost.
            yield "retry: 3000\n" + _event("ready", {})
            beat = checked = time.monotonic()
            while True:
                try:
                    item: dict[str, Any] | None = await asyncio.wait_for(queue.get(), LIVE_POLL_SECONDS)
                except TimeoutError:
                    item = None
                if server_stopping(request):
                    return
                moment = time.monotonic()
                if moment - checked >= LIVE_SESSION_CHECK_SECONDS:
                    checked = moment
                    if not await run_in_threadpool(_session_valid, page, token):
                        yield _event("signed_out", {})
                        return
                if item is not None and await wanted(item):
                    data = item.get("data") or {}
                    beat = moment
                    yield _event("inbox", {"type": item.get("type"), "conversation_id": item.get("conversation_id"),
                                           "message_id": data.get("message_id")})  # fmt: skip
                elif moment - beat >= LIVE_HEARTBEAT_SECONDS:
                    beat = moment
                    yield ": keep-alive\n\n"
        finally:
            feed.FEED.unsubscribe(subscription)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={**SECURITY_HEADERS, "X-Accel-Buffering": "no"},
    )
