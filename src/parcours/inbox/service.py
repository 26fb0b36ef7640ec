"""The inbox: every customer message, whatever its channel, lands on the sender's unified profile and in
that customer's one conversation; agents answer on the channel of their choice.

Channel adapters (``parcours.channels``) turn what a provider sends into an ``Inbound`` and call
``receive``; replies go out through ``parcours.inbox.outbound``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from parcours.auth.service import SourceInfo, internal_source
from parcours.config import Settings
from parcours.db.base import table_of
from parcours.db.bulk import BulkWriter
from parcours.db.types import utcnow
from parcours.errors import Conflict, InvalidInput, NotFound
from parcours.identity import service as identity
from parcours.identity.kinds import InvalidIdentifier, KindRegistry
from parcours.identity.resolution import GraphCache
from parcours.identity.touchpoints import Touchpoint
from parcours.ids import new_id
from parcours.inbox import conversation_rows, csat, feed
from parcours.ingest.parse import InvalidEvent, ParseLimits, parse_message
from parcours.ingest.service import limits_from
from parcours.inputs import find_nul, without_nul
from parcours.matching.realtime import load_policy
from parcours.models import Conversation, Message, Profile
from parcours.vocabulary import CHANNELS

STATUSES = ("open", "pending", "snoozed", "resolved")
PRIORITIES = ("low", "normal", "high", "urgent")
MAX_BODY = 100_000  # characters of a message body kept


@dataclass
class Inbound:
    """A message (or a logged call or visit) from a customer, as a channel adapter understood it."""

    channel: str  # email, sms, whatsapp, messenger, instagram, chat, phone, store
    provider: str  # smtp, twilio, meta, widget, telephony, agent
    provider_message_id: str  # unique per provider: a replay is recognised and ignored
    # The sender's identifiers as the channel knows them: ("email", "Ana <ana@x.fr>" parsed to the
    # address by the adapter), ("phone", "+33…"), ("whatsapp", "+33…"), ("messenger", psid)…
    # A WhatsApp number is a phone number: adapters give both ("whatsapp" and "phone"), so a message
    # from the mobile on a profile lands on that profile.
    identifiers: list[tuple[str, str]]
    body: str
    sent_at: datetime | None = None
    customer_address: str | None = None
    subject: str | None = None
    email_message_id: str | None = None
    in_reply_to: list[str] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)  # e.g. {"name": "Ana Martin"} from a From header
    direction: str = "inbound"  # a logged outbound call is "outbound"

    def __post_init__(self) -> None:
        # A provider may pass on a NUL character (a WhatsApp or SMS text, a mail header); PostgreSQL cannot
        # store one, and the customer's message must not be refused (the provider would retry it forever)
        # nor lost for it: it is dropped here, for every channel.
        if find_nul([getattr(self, name) for name in _TEXT_FIELDS], "message") is not None:
            for name in _TEXT_FIELDS:
                setattr(self, name, without_nul(getattr(self, name)))


_TEXT_FIELDS = (
    "provider_message_id", "body", "customer_address", "subject", "email_message_id",
    "identifiers", "in_reply_to", "attachments", "details", "traits",
)  # fmt: skip


@dataclass
class Received:
    conversation_id: str
    message_id: str
    profile_id: str
    duplicate: bool = False
    new_conversation: bool = False


def inbox_source(session: Session, channel: str) -> SourceInfo:
    """The event source the inbox records a channel's messages under (made on first use)."""
    return internal_source(session, f"Inbox · {channel}", channel)


def _check(inbound: Inbound) -> None:
    if inbound.channel not in CHANNELS:
        raise InvalidInput(f"channel: unknown channel {inbound.channel!r}")
    if not inbound.provider_message_id or len(inbound.provider_message_id) > 300:
        raise InvalidInput("provider message id: must be 1 to 300 characters")
    if not inbound.identifiers:
        raise InvalidInput("sender: no identifier (e-mail address, phone number, account id…)")
    if inbound.direction not in ("inbound", "outbound"):
        raise InvalidInput("direction: must be inbound or outbound")


def receive(
    session: Session,
    settings: Settings,
    inbound: Inbound,
    *,
    cache: GraphCache | None = None,
    now: datetime | None = None,
) -> Received:
    """Store one customer message in the caller's write transaction: the sender resolved to the unified
    profile through identity resolution (the message is an event on the timeline), the conversation
    found by e-mail threading or continuity (the customer's latest conversation, active within
    ``settings.inbox_continuity_hours``), or a new one. A replayed provider message id changes nothing."""
    return receive_batch(session, settings, [inbound], cache=cache, now=now)[0]


def receive_batch(
    session: Session,
    settings: Settings,
    inbounds: list[Inbound],
    *,
    cache: GraphCache | None = None,
    now: datetime | None = None,
) -> list[Received]:
    """``receive`` for several messages, with one identity-resolution pass for all. Any invalid message
    fails the whole call (the inbox writer then stores them one by one)."""
    now = now or utcnow()
    for inbound in inbounds:
        _check(inbound)
    keys = [(inbound.provider, inbound.provider_message_id) for inbound in inbounds]
    if len(set(keys)) != len(keys):
        raise Conflict("the same provider message twice in one batch")
    session.flush()  # conversations are read as rows below: the caller's unwritten changes first
    results: list[Received | None] = _existing(session, inbounds)
    fresh = [index for index, result in enumerate(results) if result is None]
    message_ids = {index: new_id("msg") for index in fresh}
    sent = {index: min(inbounds[index].sent_at or now, now) for index in fresh}
    timeline = TimelineContext.load(session, settings)
    touchpoints = [
        event_touchpoint(
            session,
            settings,
            timeline=timeline,
            channel=inbounds[index].channel,
            identifiers=inbounds[index].identifiers,
            name="Message Received" if inbounds[index].direction == "inbound" else "Message Sent",
            key=f"{inbounds[index].provider}:{inbounds[index].provider_message_id}",
            at=sent[index],
            now=now,
            properties={"inbox_message_id": message_ids[index], "provider": inbounds[index].provider},
            traits=inbounds[index].traits,
        )
        for index in fresh
    ]
    resolved = (
        resolve(session, settings, touchpoints, cache=cache, registry=timeline.registry)
        if touchpoints
        else []
    )
    try:
        _preload_latest(session, [profile_id for _, profile_id in resolved])
        for index, (event_id, profile_id) in zip(fresh, resolved, strict=True):
            results[index] = _store(
                session,
                settings,
                inbounds[index],
                message_ids[index],
                sent[index],
                event_id,
                profile_id,
                now,
                cache,
            )
        write_messages(session)  # the batch's conversations, then its messages, written together
    except BaseException:
        session.info.pop(_UNWRITTEN, None)
        raise
    finally:
        # Written above (or failed with the transaction): from here on the session reads them.
        conversation_rows.forget(session)
        session.info.pop(_LATEST, None)
    return [result for result in results if result is not None]


# The customer messages stored by this transaction and not written yet, as ``messages`` rows: written by
# one statement (``write_messages``) rather than as ORM objects, the heaviest part of a flush.
_UNWRITTEN = "parcours_inbox_unwritten_messages"


def _unwritten(session: Session) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = session.info.setdefault(_UNWRITTEN, [])
    return rows


def write_messages(session: Session) -> None:
    """Write the conversations and flush the session, then write the customer messages stored since the
    last call, in the order they were stored: whatever is written after this (a reply, a note) comes
    after them."""
    conversation_rows.write(session)
    session.flush()
    rows = session.info.pop(_UNWRITTEN, None)
    if not rows:
        return
    bulk = BulkWriter(session.connection())
    table = table_of(Message)
    columns = tuple(rows[0])
    bulk.insert(table, columns, bulk.rows(table, columns, rows))


# The per-batch look-ups, built once (an "IN" list built per call costs more Python than the query).
_REPLAYS = (
    select(Message.provider_message_id, Message.id, Message.conversation_id, Conversation.profile_id)
    .join(Conversation, Conversation.id == Message.conversation_id)
    .where(
        Message.provider == bindparam("provider"),
        Message.provider_message_id.in_(bindparam("ids", expanding=True)),
    )
)
_MERGED_INTO = select(Profile.id, Profile.merged_into_id).where(
    Profile.merged_into_id.in_(bindparam("profiles", expanding=True))
)
_CONVERSATIONS_OF = (
    select(conversation_rows.TABLE)
    .where(Conversation.profile_id.in_(bindparam("profiles", expanding=True)))
    .order_by(Conversation.last_message_at)
)
_THREADED = (
    select(conversation_rows.TABLE)
    .join(Message, Message.conversation_id == Conversation.id)
    .where(Message.email_message_id.in_(bindparam("references", expanding=True)))
    .order_by(Message.sent_at.desc())
    .limit(1)
)


def _existing(session: Session, inbounds: list[Inbound]) -> list[Received | None]:
    """For each message, what stored it before (a replay), or None."""
    by_provider: dict[str, list[str]] = {}
    for inbound in inbounds:
        by_provider.setdefault(inbound.provider, []).append(inbound.provider_message_id)
    found: dict[tuple[str, str], Received] = {}
    for provider, ids in by_provider.items():
        for row in session.connection().execute(_REPLAYS, {"provider": provider, "ids": ids}):
            found[(provider, row.provider_message_id)] = Received(
                row.conversation_id, row.id, row.profile_id, duplicate=True
            )
    return [found.get((inbound.provider, inbound.provider_message_id)) for inbound in inbounds]


# Each customer's latest conversation, by profile id, for one ``receive_batch`` call.
_LATEST = "parcours_inbox_latest_conversation"


def _latest(session: Session) -> dict[str, Conversation | None]:
    latest: dict[str, Conversation | None] = session.info.setdefault(_LATEST, {})
    return latest


def _preload_latest(session: Session, profile_ids: list[str]) -> None:
    """Each customer's latest conversation (theirs or of a profile merged into theirs), for the
    messages of this ``receive_batch`` call, in a few queries; kept up to date as messages open
    conversations."""
    latest = _latest(session)
    roots = [pid for pid in dict.fromkeys(profile_ids) if pid not in latest]
    if not roots:
        return
    owner = {pid: pid for pid in roots}
    frontier = list(roots)
    while frontier:
        rows = session.connection().execute(_MERGED_INTO, {"profiles": frontier})
        frontier = []
        for merged, into in rows:
            if merged not in owner and into is not None:
                owner[merged] = owner[into]
                frontier.append(merged)
    for root in roots:
        latest[root] = None
    for row in session.connection().execute(_CONVERSATIONS_OF, {"profiles": list(owner)}).mappings():
        # In time order: the last one stays.
        latest[owner[row["profile_id"]]] = conversation_rows.hold(session, row)


def _store(
    session: Session,
    settings: Settings,
    inbound: Inbound,
    message_id: str,
    sent_at: datetime,
    event_id: str,
    profile_id: str,
    now: datetime,
    cache: GraphCache | None,
) -> Received:
    conversation, created = _conversation_for(session, settings, profile_id, inbound, sent_at)
    body = inbound.body[:MAX_BODY]
    _unwritten(session).append(
        {
            "id": message_id,
            "conversation_id": conversation.id,
            "direction": inbound.direction,
            "channel": inbound.channel,
            "provider": inbound.provider,
            "provider_message_id": inbound.provider_message_id,
            "author_agent_id": None,
            "customer_address": inbound.customer_address,
            "body": body,
            "subject": inbound.subject,
            "email_message_id": inbound.email_message_id,
            "in_reply_to": list(inbound.in_reply_to),
            "attachments": list(inbound.attachments),
            "details": dict(inbound.details),
            "sent_at": sent_at,
            "received_at": now,
            "delivery": "received",
            "error": None,
            "attempts": 0,
            "event_id": event_id,
        }
    )
    if inbound.direction == "inbound" and conversation.status == "resolved" and not created:
        survey = csat.answer(session, conversation, body, sent_at, now)
        if survey is not None:  # a satisfaction score: recorded, the conversation stays resolved
            conversation.last_message_at = max(sent_at, conversation.last_message_at)
            record_event(
                session, settings, cache=cache, channel=inbound.channel, identifiers=inbound.identifiers,
                name="CSAT Answered", key=f"csat:{survey.id}", at=sent_at, now=now,
                properties={"score": survey.score, "conversation_id": conversation.id},
                traits={"csatScore": survey.score, "csatAnsweredAt": sent_at.isoformat()},
            )  # fmt: skip
            session.flush()
            return Received(conversation.id, message_id, profile_id)
    if inbound.direction == "inbound":
        conversation.last_inbound_channel = inbound.channel
        conversation.last_inbound_at = max(sent_at, conversation.last_inbound_at or sent_at)
        if conversation.status in ("pending", "snoozed", "resolved"):
            conversation.status, conversation.snoozed_until = "open", None
            conversation.resolved_at = None
    conversation.last_message_at = max(sent_at, conversation.last_message_at)
    if inbound.direction == "inbound":
        _after_customer_message(
            session, settings, conversation, message_id, inbound, body, created, now, cache
        )
    return Received(conversation.id, message_id, profile_id, new_conversation=created)


def _after_customer_message(
    session: Session,
    settings: Settings,
    conversation: Conversation,
    message_id: str,
    inbound: Inbound,
    body: str,
    created: bool,
    now: datetime,
    cache: GraphCache | None,
) -> None:
    """Automation rules, SLA clocks, the bot or routing, and the live feed, for a new customer message.
    ``cache``: the writer's identity-graph cache, kept warm through the replies these write."""
    from parcours.inbox import automation, bot, routing, sla

    if created:
        automation.run(
            session, "conversation_created", conversation, now, body=body, settings=settings, cache=cache
        )
    automation.run(session, "message_received", conversation, now, body=body, settings=settings, cache=cache)
    sla.customer_wrote(session, conversation, now, new=created)
    answered = bot.handle(session, settings, conversation, body, now, cache=cache)
    if conversation.assignee_id is None and not answered:
        routing.route(session, conversation, now)
    feed.record(
        session,
        conversation.id,
        "message_received",
        now,
        agent_id=conversation.assignee_id,
        data={
            "message_id": message_id,
            "channel": inbound.channel,
            "provider": inbound.provider,
            "provider_message_id": inbound.provider_message_id,
            "new_conversation": created,
        },
    )


@dataclass(frozen=True)
class TimelineContext:
    """What a message's timeline event is validated with: read once for a batch of messages rather than
    once a message."""

    registry: KindRegistry
    limits: ParseLimits
    sources: dict[str, SourceInfo] = field(default_factory=dict)  # the inbox's source by channel

    @classmethod
    def load(cls, session: Session, settings: Settings) -> TimelineContext:
        return cls(identity.load_registry(session, settings.default_phone_region), limits_from(settings))

    def source(self, session: Session, channel: str) -> SourceInfo:
        found = self.sources.get(channel)
        if found is None:
            found = self.sources[channel] = inbox_source(session, channel)
        return found


def event_touchpoint(
    session: Session,
    settings: Settings,
    *,
    timeline: TimelineContext | None = None,
    channel: str,
    identifiers: list[tuple[str, str]],
    name: str,
    key: str,
    at: datetime,
    now: datetime,
    properties: dict[str, Any],
    traits: dict[str, Any] | None = None,
) -> Touchpoint:
    """The timeline event of a message, validated, for identity resolution (``resolve``)."""
    timeline = timeline or TimelineContext.load(session, settings)
    source = timeline.source(session, channel)
    registry = timeline.registry
    usable: list[tuple[str, str]] = []
    for kind, value in identifiers:
        if kind not in registry:
            raise InvalidInput(f"sender: unknown identifier kind {kind!r}")
        try:
            registry.normalize(kind, value)
            usable.append((kind, value))
        except InvalidIdentifier:
            continue  # an address the identity rules cannot use (an unknown phone range...): see below
    if not usable:
        # The customer's message is kept all the same, on a profile of its own keyed by the raw address
        # (a person can merge it later); refusing it would lose it (providers do not resend on 4xx).
        kind, value = identifiers[0]
        usable = [("anonymous_id", f"{channel}:{kind}:{str(value).strip()[:150]}")]
    event = {
        "type": "track",
        "event": name,
        "messageId": f"inbox:{key}"[:200],
        "timestamp": at.isoformat(),
        "properties": properties,
        "context": {
            "channel": channel,
            "externalIds": [{"type": kind, "id": value} for kind, value in usable],
            **({"traits": traits} if traits else {}),
        },
    }
    try:
        return parse_message(
            event,
            expected_type=None,
            source_id=source.id,
            default_channel=channel,
            registry=registry,
            received_at=now,
            batch_sent_at=None,
            limits=timeline.limits,
        )
    except InvalidEvent as error:
        raise InvalidInput(f"sender: {error}") from None


def resolve(
    session: Session,
    settings: Settings,
    touchpoints: list[Touchpoint],
    *,
    cache: GraphCache | None = None,
    registry: KindRegistry | None = None,
) -> list[tuple[str, str]]:
    """Identity resolution of the events, in one pass: (event id, profile id) of each."""
    registry = registry or identity.load_registry(session, settings.default_phone_region)
    outcome = identity.record_touchpoints(
        session,
        registry,
        touchpoints,
        cache=cache,
        matching=load_policy(session, settings),
    )
    found = []
    for event_id, profile_id in zip(outcome.event_ids, outcome.profile_ids, strict=True):
        if event_id is None or profile_id is None:  # a replay, or an erased person's message
            raise Conflict("the message was already recorded, or the sender's data was erased")
        found.append((event_id, profile_id))
    return found


def record_event(
    session: Session,
    settings: Settings,
    *,
    cache: GraphCache | None = None,
    **event: Any,
) -> tuple[str, str]:
    """Put a message on the customer's timeline through identity resolution (the core links the
    channel's identifiers to the unified profile); returns the event id and the profile id."""
    return resolve(session, settings, [event_touchpoint(session, settings, **event)], cache=cache)[0]


def _conversation_for(
    session: Session, settings: Settings, profile_id: str, inbound: Inbound, sent_at: datetime
) -> tuple[Conversation, bool]:
    # E-mail threading first: a reply to a message of a conversation continues it.
    if inbound.in_reply_to:
        threaded = (
            session.connection()
            .execute(_THREADED, {"references": list(inbound.in_reply_to)})
            .mappings()
            .first()
        )
        if threaded is not None:
            return conversation_rows.hold(session, threaded), False
    # Continuity: the customer's latest conversation, whatever its channel, continues while it is not
    # resolved; a resolved one reopens when the customer writes again within the window.
    window = timedelta(hours=settings.inbox_continuity_hours)
    _preload_latest(session, [profile_id])
    known = _latest(session)
    latest = known[profile_id]
    if latest is not None and (latest.status != "resolved" or sent_at - latest.last_message_at <= window):
        if latest.profile_id != profile_id:
            latest.profile_id = profile_id  # its profile was merged into this one since
        return latest, False
    values: dict[str, Any] = dict(
        id=new_id("cnv"),
        profile_id=profile_id,
        status="open",
        snoozed_until=None,
        assignee_id=None,
        team_id=None,
        priority="normal",
        tags=[],
        subject=inbound.subject,
        last_inbound_channel=inbound.channel,
        created_at=sent_at,
        last_message_at=sent_at,
        last_inbound_at=None,
        first_response_at=None,
        resolved_at=None,
    )
    conversation = conversation_rows.hold_new(session, values)
    known[profile_id] = conversation
    return conversation, True


# ------------------------------------------------------------------------------------------ agent work
def get_conversation(session: Session, conversation_id: str) -> Conversation:
    """The conversation: the object the inbox is receiving a message for, if it is (a reply written
    by the bot or a rule changes that one), else the session's."""
    conversation = conversation_rows.held(session, conversation_id) or session.get(
        Conversation, conversation_id
    )
    if conversation is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return conversation


def conversation_view(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "profile_id": conversation.profile_id,
        "status": conversation.status,
        "snoozed_until": _iso(conversation.snoozed_until),
        "assignee_id": conversation.assignee_id,
        "team_id": conversation.team_id,
        "priority": conversation.priority,
        "tags": conversation.tags,
        "subject": conversation.subject,
        "reply_channel": conversation.last_inbound_channel,
        "created_at": _iso(conversation.created_at),
        "last_message_at": _iso(conversation.last_message_at),
        "first_response_at": _iso(conversation.first_response_at),
        "resolved_at": _iso(conversation.resolved_at),
    }


def message_view(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "direction": message.direction,
        "channel": message.channel,
        "provider": message.provider,
        "author_agent_id": message.author_agent_id,
        "customer_address": message.customer_address,
        "subject": message.subject,
        "body": message.body,
        "attachments": message.attachments,
        "details": message.details,
        "sent_at": _iso(message.sent_at),
        "delivery": message.delivery,
        "error": message.error,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def list_conversations(
    session: Session,
    *,
    status: str | None,
    assignee_id: str | None,
    channel: str | None,
    profile_id: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status: must be one of {', '.join(STATUSES)}")
    query = select(Conversation).order_by(Conversation.last_message_at.desc(), Conversation.id).limit(limit)
    if status is not None:
        query = query.where(Conversation.status == status)
    if assignee_id is not None:
        query = query.where(
            Conversation.assignee_id.is_(None)
            if assignee_id == "none"
            else Conversation.assignee_id == assignee_id
        )
    if channel is not None:
        query = query.where(Conversation.last_inbound_channel == channel)
    if profile_id is not None:
        query = query.where(Conversation.profile_id.in_(identity.people(session, profile_id)))
    return [conversation_view(c) for c in session.scalars(query)]


def read_conversation(session: Session, conversation_id: str) -> dict[str, Any]:
    """The thread, every channel in time order, with the customer's unified profile beside it."""
    conversation = get_conversation(session, conversation_id)
    messages = session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation_id)
        .order_by(Message.sent_at, Message.seq)
    )
    return {
        **conversation_view(conversation),
        "messages": [message_view(m) for m in messages],
        "customer": identity.profile_view(session, conversation.profile_id),
    }


def set_status(
    session: Session, conversation_id: str, status: str, *, snoozed_until: datetime | None, now: datetime
) -> Conversation:
    if status not in STATUSES:
        raise InvalidInput(f"status: must be one of {', '.join(STATUSES)}")
    if status == "snoozed" and (snoozed_until is None or snoozed_until <= now):
        raise InvalidInput("snoozed_until: a snoozed conversation needs a time in the future")
    conversation = get_conversation(session, conversation_id)
    from parcours.inbox import sla

    previous = conversation.status
    conversation.status = status
    conversation.snoozed_until = snoozed_until if status == "snoozed" else None
    conversation.resolved_at = now if status == "resolved" else None
    if status == "resolved" and previous != "resolved":
        sla.resolved(session, conversation.id, now)
    feed.record(session, conversation.id, f"status_{status}", now, agent_id=conversation.assignee_id)
    session.flush()
    return conversation


def wake_snoozed(session: Session, now: datetime) -> int:
    """Snoozed conversations whose time has come are open again; returns how many."""
    due = list(
        session.scalars(
            select(Conversation).where(Conversation.status == "snoozed", Conversation.snoozed_until <= now)
        )
    )
    for conversation in due:
        conversation.status, conversation.snoozed_until = "open", None
    session.flush()
    return len(due)


def update_conversation(
    session: Session,
    conversation_id: str,
    *,
    priority: str | None = None,
    tags: list[str] | None = None,
    assignee_id: str | None = None,
    team_id: str | None = None,
    unassign: bool = False,
    by: str | None = None,
    now: datetime | None = None,
) -> Conversation:
    """Priority, tags, assignee, team. A change of assignee is an ``assigned`` / ``unassigned`` event on
    the live feed (``by``: the agent who did it)."""
    from parcours.models import Agent, Team

    conversation = get_conversation(session, conversation_id)
    assigned_before = conversation.assignee_id
    if priority is not None:
        if priority not in PRIORITIES:
            raise InvalidInput(f"priority: must be one of {', '.join(PRIORITIES)}")
        conversation.priority = priority
    if tags is not None:
        cleaned = sorted({t.strip().lower() for t in tags if t.strip()})
        if any(len(t) > 60 for t in cleaned):
            raise InvalidInput("tags: each at most 60 characters")
        conversation.tags = cleaned
    if unassign:
        conversation.assignee_id = None
    elif assignee_id is not None:
        agent = session.get(Agent, assignee_id)
        if agent is None or agent.disabled_at is not None:
            raise NotFound(f"agent {assignee_id} not found")
        conversation.assignee_id = assignee_id
    if team_id is not None:
        if session.get(Team, team_id) is None:
            raise NotFound(f"team {team_id} not found")
        conversation.team_id = team_id
    if conversation.assignee_id != assigned_before:
        kind = "assigned" if conversation.assignee_id else "unassigned"
        feed.record(session, conversation.id, kind, now or utcnow(), agent_id=conversation.assignee_id or assigned_before,
                    data={"by": by} if by else None)  # fmt: skip
    session.flush()
    return conversation
