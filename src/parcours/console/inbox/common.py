"""What the inbox's pages share: the words for the domain's codes, who may work on which conversation
(``Reach``), the agent the signed-in user answers as, customers' and agents' names, SLA states."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.orm import Session

from parcours.auth.users import UserInfo
from parcours.console import common
from parcours.console.common import active_profiles, display_name
from parcours.console.i18n import N_
from parcours.console.web import Page
from parcours.errors import Forbidden, InvalidInput, NotFound
from parcours.inbox.agents import AgentInfo
from parcours.inbox.outbound import Outbox
from parcours.models import Agent, Conversation, Identifier, SlaClock, TeamMember

CHANNEL_LABELS = {**common.CHANNEL_LABELS, "social": N_("Social network")}
STATUS_LABELS = common.CONVERSATION_STATUS_LABELS
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
IDENTIFIER_LABELS = {**common.IDENTIFIER_LABELS, "user_id": N_("Account"), "anonymous_id": N_("Device")}
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


def customers(session: Session, profile_ids: Iterable[str]) -> dict[str, Customer]:
    """Each profile's active profile and a name to show (its traits' name, else its best identifier),
    in a few queries whatever the number of profiles."""
    current = active_profiles(session, profile_ids)
    actives = {pid: now[0] if now is not None else pid for pid, now in current.items()}
    names = {now[0]: display_name(now[1]) for now in current.values() if now is not None}
    names.update({pid: "" for pid, now in current.items() if now is None})  # erased
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
    return {pid: Customer(active, names[active]) for pid, active in actives.items()}


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


def choice(page: Page, name: str, value: str, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``, else InvalidInput naming the field."""
    if value not in choices:
        raise InvalidInput(page.t.gettext("{field}: not one of the choices offered", field=name))
    return value
