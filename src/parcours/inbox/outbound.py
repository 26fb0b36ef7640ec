"""Agents' replies and notes, and their delivery through each channel's sender.

A reply is stored first (``queued``, in the agent's write transaction) and delivered after the commit
(``deliver``): a provider that is slow or down never holds the database, and a failure is recorded on
the message (``failed`` with the reason) for the agent to see and retry. Channels without a transport
(a phone call, a store visit) record the reply as ``logged``: the agent did it by phone or in person.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.config import Settings
from parcours.db.engine import Database
from parcours.db.types import utcnow
from parcours.errors import Conflict, InvalidInput
from parcours.identity.resolution import GraphCache
from parcours.ids import new_id
from parcours.inbox import feed, sla
from parcours.inbox.agents import AgentInfo
from parcours.inbox.service import MAX_BODY, get_conversation, record_event, write_messages
from parcours.models import Identifier, Message
from parcours.vocabulary import CHANNELS

log = logging.getLogger("parcours.inbox")

# Where a customer is reached on each channel: the identifier kinds to look for, in order.
ADDRESS_KINDS: dict[str, tuple[str, ...]] = {
    "email": ("email",),
    "sms": ("phone",),
    "whatsapp": ("whatsapp", "phone"),
    "messenger": ("messenger",),
    "instagram": ("instagram",),
    "chat": ("user_id", "anonymous_id"),
    "phone": ("phone",),
}
LOGGED_CHANNELS = ("phone", "store")
AUTOMATIC_AUTHORS = (
    "bot",
    "system",
)  # replies written by the bot and by automation rules  # the agent called or met the customer: nothing to transmit


@dataclass
class Outgoing:
    """What a sender transmits."""

    message_id: str
    conversation_id: str
    channel: str
    to: str  # the customer's address on the channel
    body: str
    subject: str | None = None
    email_message_id: str | None = None  # the Message-ID this reply carries (e-mail)
    in_reply_to: list[str] = field(default_factory=list)  # the customer's Message-IDs it answers


class DeliveryFailed(Exception):
    """The provider refused or could not be reached; the message says why (no secrets in it)."""


class Sender(Protocol):
    def send(self, outgoing: Outgoing) -> str:
        """Transmit; return the provider's id for the message, or raise DeliveryFailed."""
        ...


class Outbox:
    """The sender of each channel, registered at start-up from the settings (and by tests)."""

    def __init__(self) -> None:
        self._senders: dict[str, Sender] = {}
        self._lock = threading.Lock()

    def register(self, channel: str, sender: Sender) -> None:
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        with self._lock:
            self._senders[channel] = sender

    def sender(self, channel: str) -> Sender | None:
        with self._lock:
            return self._senders.get(channel)

    def channels(self) -> list[str]:
        with self._lock:
            return sorted(self._senders)


def customer_addresses(session: Session, profile_id: str) -> dict[str, tuple[str, str]]:
    """The customer's address on every channel they can be reached on (channel -> identifier kind,
    value), from the unified profile's identifiers in one query: for each channel, the most recently
    seen of the first kind it uses that the profile holds. A merged-away profile answers with its
    survivor's identifiers (they moved there with the merge)."""
    from parcours.identity.service import resolve_profile_id

    kinds = sorted({kind for channel_kinds in ADDRESS_KINDS.values() for kind in channel_kinds})
    latest: dict[str, str] = {}  # kind -> most recently seen value
    for kind, value in session.execute(
        select(Identifier.kind, Identifier.value)
        .where(Identifier.profile_id == resolve_profile_id(session, profile_id), Identifier.kind.in_(kinds))
        .order_by(Identifier.last_seen_at.desc())
    ):
        latest.setdefault(kind, value)
    found: dict[str, tuple[str, str]] = {}
    for channel, channel_kinds in ADDRESS_KINDS.items():
        held = next((k for k in channel_kinds if k in latest), None)
        if held is not None:
            found[channel] = (held, latest[held])
    return found


def customer_address(session: Session, profile_id: str, channel: str) -> tuple[str, str] | None:
    """The customer's address on one channel (see ``customer_addresses``)."""
    return customer_addresses(session, profile_id).get(channel)


def write_reply(
    session: Session,
    settings: Settings,
    outbox: Outbox | None,
    conversation_id: str,
    agent: AgentInfo,
    body: str,
    *,
    channel: str | None = None,
    private: bool = False,
    now: datetime | None = None,
    cache: GraphCache | None = None,
) -> Message:
    """Store an agent's reply (``queued`` for delivery, or ``logged``) or private note. The reply goes
    on ``channel``, by default the channel of the customer's latest message. With an ``outbox``, a
    channel it has no sender for is refused at once; without (automation), the reply is queued and the
    delivery worker records why it could not go."""
    now = now or utcnow()
    body = body.strip()
    if not body:
        raise InvalidInput("body: must not be empty")
    if len(body) > MAX_BODY:
        raise InvalidInput(f"body: at most {MAX_BODY} characters")
    # A conversation this transaction just opened must be found, and the customer messages it stored
    # come before this reply.
    write_messages(session)
    conversation = get_conversation(session, conversation_id)
    channel = channel or conversation.last_inbound_channel
    if channel not in CHANNELS:
        raise InvalidInput(f"channel: unknown channel {channel!r}")
    address: tuple[str, str] | None = None
    delivery = "note"
    if not private:
        address = customer_address(session, conversation.profile_id, channel)
        if address is None:
            raise Conflict(f"the customer has no address on {channel}; choose another channel")
        if channel in LOGGED_CHANNELS:
            delivery = "logged"
        elif outbox is not None and outbox.sender(channel) is None:
            raise Conflict(
                f"replies on {channel} are not configured on this server (configured: "
                f"{', '.join(outbox.channels()) or 'none'})"
            )
        else:
            delivery = "queued"
    message_id = new_id("msg")
    email_message_id = f"<{message_id}@{settings.inbox_email_domain}>" if channel == "email" else None
    in_reply_to: list[str] = []
    if channel == "email" and not private:
        last_email = session.scalar(
            select(Message.email_message_id)
            .where(
                Message.conversation_id == conversation.id,
                Message.channel == "email",
                Message.email_message_id.is_not(None),
            )
            .order_by(Message.sent_at.desc(), Message.seq.desc())
            .limit(1)
        )
        in_reply_to = [last_email] if last_email else []
    event_id = None
    if address is not None:
        event_id, _ = record_event(
            session,
            settings,
            cache=cache,
            channel=channel,
            identifiers=[address],
            name="Message Sent",
            key=f"agent:{message_id}",
            at=now,
            now=now,
            properties={"inbox_message_id": message_id, "agent_id": agent.id},
        )
    message = Message(
        id=message_id,
        conversation_id=conversation.id,
        direction="note" if private else "outbound",
        channel=channel,
        provider="agent",
        provider_message_id=message_id,
        author_agent_id=agent.id,
        customer_address=address[1] if address else None,
        body=body,
        subject=conversation.subject if channel == "email" else None,
        email_message_id=email_message_id,
        in_reply_to=in_reply_to,
        attachments=[],
        details={},
        sent_at=now,
        received_at=now,
        delivery=delivery,
        error=None,
        attempts=0,
        event_id=event_id,
    )
    session.add(message)
    if not private:
        if conversation.status == "open":
            conversation.status = "pending"  # waiting for the customer
        if agent.id not in AUTOMATIC_AUTHORS:  # the bot and automation do not stop the service clocks
            conversation.first_response_at = conversation.first_response_at or now
            sla.agent_answered(session, conversation.id, now)
    feed.record(
        session,
        conversation.id,
        "note_added" if private else "message_sent",
        now,
        agent_id=agent.id,
        data={"message_id": message_id, "channel": channel},
    )
    conversation.last_message_at = max(now, conversation.last_message_at)
    session.flush()
    return message


def deliver(db: Database, outbox: Outbox, message_id: str) -> Message:
    """Send a queued message through its channel's sender and record the result (``sent`` with the
    provider's id, or ``failed`` with the reason). Safe to call again on a failed message."""
    with db.read() as session:
        message = session.scalar(select(Message).where(Message.id == message_id))
        if message is None:
            raise InvalidInput(f"message {message_id} not found")
        if message.delivery not in ("queued", "failed"):
            return message
        outgoing = Outgoing(
            message_id=message.id,
            conversation_id=message.conversation_id,
            channel=message.channel,
            to=message.customer_address or "",
            body=message.body,
            subject=message.subject,
            email_message_id=message.email_message_id,
            in_reply_to=list(message.in_reply_to),
        )
    sender = outbox.sender(outgoing.channel)
    provider_id, error = None, None
    if sender is None:
        error = f"replies on {outgoing.channel} are not configured on this server"
    else:
        try:
            provider_id = sender.send(outgoing)
        except DeliveryFailed as failure:
            error = str(failure)
    with db.write() as session:
        stored = session.scalar(select(Message).where(Message.id == message_id))
        assert stored is not None
        stored.attempts += 1
        if error is None:
            stored.delivery, stored.error = "sent", None
            stored.details = {**stored.details, "provider_id": provider_id}
        else:
            stored.delivery, stored.error = "failed", error
            log.warning("delivery failed", extra={"channel": outgoing.channel, "message_id": message_id})
        session.flush()
        return stored


def deliver_pending(db: Database, outbox: Outbox, *, limit: int = 100) -> int:
    """Deliver replies still queued (automation replies, and any whose delivery a stopped process never
    finished), oldest first; returns how many were tried. Run by the server's background worker."""
    with db.read() as session:
        queued = list(
            session.scalars(
                select(Message.id)
                .where(Message.delivery == "queued", Message.direction == "outbound")
                .order_by(Message.seq)
                .limit(limit)
            )
        )
    for message_id in queued:
        deliver(db, outbox, message_id)
    return len(queued)
