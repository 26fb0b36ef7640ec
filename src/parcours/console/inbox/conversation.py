"""One conversation: its thread across channels (latest messages, "show earlier", the messages the live
feed announces, e-mail attachments to download) with the customer 360 panel beside it: the unified
profile, recent events on every channel, orders, reservations, loyalty, satisfaction answers and their
other conversations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Response
from fastapi.responses import FileResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from parcours.commerce import loyalty
from parcours.commerce import orders as commerce_orders
from parcours.console.common import (
    ORDER_STATUS_LABELS,
    RESERVATION_STATUS_LABELS,
    TIER_LABELS,
    display_name,
    parse_moment,
)
from parcours.console.inbox.common import (
    IDENTIFIER_LABELS,
    NAME_TRAITS,
    Reach,
    acting_agent,
    agent_names,
    customers,
    labels,
    outbox_of,
    reach_of,
    sla_states,
    visible_conversation,
)
from parcours.console.web import SECURITY_HEADERS, Page, page_for
from parcours.db.types import utcnow
from parcours.errors import InvalidInput, NotFound
from parcours.identity import service as identity
from parcours.inbox import automation, identify
from parcours.inbox.outbound import LOGGED_CHANNELS, Outbox, customer_addresses
from parcours.models import (
    Agent,
    Conversation,
    CsatSurvey,
    Event,
    Location,
    Macro,
    Message,
    Reservation,
    Team,
)

router = APIRouter(include_in_schema=False)

THREAD_SIZE = 100  # latest messages shown; "show earlier" shows up to THREAD_MAX
THREAD_MAX = 2000
PANEL_ROWS = 5


@dataclass(frozen=True)
class ReplyChannel:
    channel: str
    address: str | None
    ready: bool  # an address and a way to send (or a channel where the reply is logged)


def reply_channels(session: Session, outbox: Outbox, conversation: Conversation) -> list[ReplyChannel]:
    """The channels this customer can be answered on, as ``write_reply`` decides: an address of the
    channel's kinds among the profile's identifiers, and a sender configured (or a logged channel)."""
    configured = set(outbox.channels())
    return [
        ReplyChannel(channel, value, channel in LOGGED_CHANNELS or channel in configured)
        for channel, (_kind, value) in customer_addresses(session, conversation.profile_id).items()
    ]


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
    latest_orders = commerce_orders.recent(session, ids, PANEL_ROWS)
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
        "orders": latest_orders,
        "reservations": reservations,
        "loyalty": member if has_card or member["entries"] else None,
        "tier_labels": TIER_LABELS,
        "order_status_labels": ORDER_STATUS_LABELS,
        "reservation_status_labels": RESERVATION_STATUS_LABELS,
        "surveys": surveys,
        "others": others,
        "parse_iso": parse_moment,
    }


def _trait_text(value: Any) -> str:
    if isinstance(value, dict):
        text = ", ".join(f"{k}: {v}" for k, v in value.items() if v not in (None, ""))
    elif isinstance(value, list):
        text = ", ".join(str(v) for v in value)
    else:
        text = str(value)
    return text if len(text) <= 120 else text[:119] + "…"


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
        given_kinds = identify.kinds_an_agent_may_add(
            identity.load_registry(session, page.settings.default_phone_region)
        )
    ready = [c.channel for c in channels if c.ready]
    preferred = conversation.last_inbound_channel
    selected = preferred if preferred in ready else (ready[0] if ready else "")
    return page.render(
        "inbox/conversation.html",
        conversation=conversation,
        given_kinds=given_kinds,
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
