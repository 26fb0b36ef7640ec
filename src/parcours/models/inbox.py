from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from parcours.db.base import Base
from parcours.db.types import BigIntKey


class Agent(Base):
    """A person answering customers. Authenticates with its own token; ``role``: agent, supervisor,
    admin."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Languages ("fr", "en") and skills ("machines", "subscriptions") used by routing.
    languages: Mapped[list[str]]
    skills: Mapped[list[str]]
    # Open conversations at once, per channel ("*": any channel not listed).
    capacity: Mapped[dict[str, Any]]
    available: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    # "round_robin" or "least_busy".
    assignment: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class TeamMember(Base):
    __tablename__ = "team_members"
    __table_args__ = (UniqueConstraint("team_id", "agent_id"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id"))
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"), index=True)
    last_assigned_at: Mapped[datetime | None]


class Conversation(Base):
    """One customer's thread with the brand, whatever the channels its messages came on."""

    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_profile", "profile_id", "last_message_at"),
        Index("ix_conversations_inbox", "status", "assignee_id", "last_message_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    profile_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))  # open, pending, snoozed, resolved
    snoozed_until: Mapped[datetime | None]
    assignee_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id"))
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.id"))
    priority: Mapped[str] = mapped_column(String(16))  # low, normal, high, urgent
    tags: Mapped[list[str]]
    subject: Mapped[str | None] = mapped_column(String(300))
    # The channel of the latest inbound message: where replies go unless the agent picks another.
    last_inbound_channel: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]
    last_message_at: Mapped[datetime]
    last_inbound_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]


class AgentLoad(Base):
    """How many active (open or pending) conversations an agent has on one channel (the channel of the
    conversation's latest inbound message): what routing weighs agents by and checks capacities against.
    Kept by triggers on ``conversations`` (migration 0014), whoever writes them; never written here."""

    __tablename__ = "agent_loads"

    agent_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    channel: Mapped[str] = mapped_column(String(40), primary_key=True)
    active: Mapped[int] = mapped_column(Integer)


class Message(Base):
    """An inbound message, an outbound reply or a private note, on one channel."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("provider", "provider_message_id"),
        Index("ix_messages_conversation", "conversation_id", "sent_at", "seq"),
        Index("ix_messages_email_id", "email_message_id"),
    )

    seq: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    # Given by the application for every row, so it tells the rows of one multi-row INSERT apart: the
    # messages of one flush are written by one statement, not one INSERT … RETURNING each.
    id: Mapped[str] = mapped_column(String(40), unique=True, insert_sentinel=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id"))
    direction: Mapped[str] = mapped_column(String(16))  # inbound, outbound, note
    channel: Mapped[str] = mapped_column(String(40))
    # smtp, twilio, meta, widget, telephony, agent (logged by hand), bot
    provider: Mapped[str] = mapped_column(String(40))
    provider_message_id: Mapped[str] = mapped_column(String(300))
    author_agent_id: Mapped[str | None] = mapped_column(String(40))
    # The customer's address on this channel (an e-mail, a phone number, a page-scoped id, a visitor id).
    customer_address: Mapped[str | None] = mapped_column(String(320))
    body: Mapped[str] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(String(300))
    # E-mail threading: this message's Message-ID and the ids it answers.
    email_message_id: Mapped[str | None] = mapped_column(String(300))
    in_reply_to: Mapped[list[str]]
    attachments: Mapped[list[Any]]
    # For calls and visits: direction, duration, outcome, recording link...
    details: Mapped[dict[str, Any]]
    sent_at: Mapped[datetime]
    received_at: Mapped[datetime]
    # Outbound: queued, sent, failed (with ``error``); inbound and notes: received.
    delivery: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The event this message is on the customer's timeline.
    event_id: Mapped[str | None] = mapped_column(String(40))


class InboxEvent(Base):
    """Something that happened to a conversation (assigned, SLA warning or breach, CSAT answered...):
    the agents' live feed and the automation rules read these."""

    __tablename__ = "inbox_events"
    __table_args__ = (Index("ix_inbox_events_conversation", "conversation_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String(40))
    type: Mapped[str] = mapped_column(String(40))
    agent_id: Mapped[str | None] = mapped_column(String(40))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class SlaPolicy(Base):
    """Response and resolution targets for one priority, counted in business hours."""

    __tablename__ = "sla_policies"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    priority: Mapped[str] = mapped_column(String(16), unique=True)
    first_response_minutes: Mapped[int] = mapped_column(Integer)
    next_response_minutes: Mapped[int] = mapped_column(Integer)
    resolution_minutes: Mapped[int] = mapped_column(Integer)
    # Share of a target after which a warning is raised (0.8: at 80 % of the time allowed).
    warn_at: Mapped[float] = mapped_column(Float)


class SlaClock(Base):
    """The SLA targets running on a conversation, and what was raised about them."""

    __tablename__ = "sla_clocks"
    __table_args__ = (
        UniqueConstraint("conversation_id", "target"),
        Index("ix_sla_clocks_due", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(24))  # first_response, next_response, resolution
    started_at: Mapped[datetime]
    warn_at: Mapped[datetime]
    due_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16))  # running, warned, breached, met
    met_at: Mapped[datetime | None]


class Macro(Base):
    """A canned response with variables ({{customer.first_name}}, {{last_order.order_id}}...) and the
    actions applied with it (tags, priority, status)."""

    __tablename__ = "macros"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    body: Mapped[str] = mapped_column(Text)
    actions: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class AutomationRule(Base):
    """When ``event`` happens and every condition holds, apply the actions (in ``position`` order)."""

    __tablename__ = "automation_rules"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    event: Mapped[str] = mapped_column(String(40))  # conversation_created, message_received
    conditions: Mapped[dict[str, Any]]
    actions: Mapped[dict[str, Any]]
    position: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]


class CsatSurvey(Base):
    """A satisfaction question sent on the conversation's channel after it was resolved, and the answer."""

    __tablename__ = "csat_surveys"
    __table_args__ = (Index("ix_csat_profile", "profile_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(40), unique=True)
    profile_id: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(40))
    agent_id: Mapped[str | None] = mapped_column(String(40))
    sent_at: Mapped[datetime]
    score: Mapped[int | None] = mapped_column(Integer)  # 1-5
    comment: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None]


class KnowledgeArticle(Base):
    """One answer of the knowledge base (delivery, returns, opening hours...), in one language: the
    bot answers from it on every channel, and the help pages show the same text."""

    __tablename__ = "kb_articles"
    __table_args__ = (UniqueConstraint("slug", "language"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    slug: Mapped[str] = mapped_column(String(80))
    language: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    # How customers ask it ("combien coûte la livraison", "delivery cost"...): what the bot matches.
    questions: Mapped[list[str]]
    updated_at: Mapped[datetime]
