"""The customer's unified view: profile, identifiers, channels, consent (which an agent may change), the
timeline on every channel (newest first, filtered by channel and event type), orders, reservations,
loyalty, satisfaction and conversations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from parcours.commerce import loyalty, orders
from parcours.console.common import FULFILMENT_LABELS, TIER_LABELS, display_name, parse_moment
from parcours.console.customers.common import (
    CHANNEL_LABELS,
    EVENT_TYPE_LABELS,
    KIND_LABELS,
    MAIN_KINDS,
    STATUS_LABELS,
)
from parcours.console.i18n import N_, Translator
from parcours.console.web import Page, form_for, page_for
from parcours.cursors import decode_cursor, encode_cursor
from parcours.db.probes import in_chunks
from parcours.db.types import utcnow
from parcours.errors import InvalidInput
from parcours.identity import service as identity
from parcours.models import (
    Conversation,
    CsatSurvey,
    Event,
    Location,
    Message,
    Reservation,
    Source,
)
from parcours.vocabulary import CHANNELS, EVENT_TYPES

router = APIRouter(include_in_schema=False)

TIMELINE_PAGE = 50
CONSENT_PURPOSE_CHARS = 60

LOYALTY_LABELS = {
    "earn": N_("Earned"),
    "redeem": N_("Redeemed"),
    "adjust": N_("Adjustment"),
    "expire": N_("Expired"),
    **TIER_LABELS,
}
TRAIT_LABELS = {
    "firstName": N_("First name"),
    "lastName": N_("Last name"),
    "name": N_("Name"),
    "email": N_("E-mail"),
    "phone": N_("Phone"),
    "birthday": N_("Birth date"),
    "gender": N_("Gender"),
    "address": N_("Address"),
    "language": N_("Language"),
    "preferredStore": N_("Preferred store"),
    "loyaltyCard": N_("Loyalty card"),
    "loyaltyProgram": N_("Loyalty programme"),
    "createdAt": N_("Account created"),
    "loyalty_card": N_("Loyalty card"),
    "posCustomerId": N_("Till customer id"),
    "postalCode": N_("Postcode"),
    "city": N_("Town"),
    "csatScore": N_("Last satisfaction score"),
    "csatAnsweredAt": N_("Last satisfaction answer"),
}


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def trait_display(t: Translator, value: Any) -> str:
    """A trait for a person: dates in the user's language, the rest as ``trait_text``."""
    if isinstance(value, str):
        try:
            if _ISO_DAY.match(value):
                return t.date(date.fromisoformat(value), "long")
            if _ISO_MOMENT.match(value):
                moment = datetime.fromisoformat(value)
                if moment.tzinfo is not None:
                    return t.datetime(moment, "medium")
        except ValueError:
            pass
    return trait_text(value)


def trait_text(value: Any) -> str:
    """A trait as one line: an address dict as "street, postcode city", a list joined."""
    if isinstance(value, dict):
        street = _text(value.get("street"))
        town = " ".join(
            part
            for part in (_text(value.get("postalCode") or value.get("postal_code")), _text(value.get("city")))
            if part
        )
        known = [part for part in (street, town, _text(value.get("country"))) if part]
        rest = [f"{k}: {trait_text(v)}" for k, v in value.items() if k not in _ADDRESS_KEYS]
        return ", ".join(known + rest)
    if isinstance(value, list):
        return ", ".join(trait_text(v) for v in value)
    if isinstance(value, bool):
        return "✓" if value else "✗"
    return _text(value)


_SOURCE_ID = re.compile(r"\bsrc_[0-9a-f]{8,40}\b")
_ADDRESS_KEYS = {"street", "postalCode", "postal_code", "city", "country"}


# ------------------------------------------------------------------------------------- the customer
@dataclass
class TimelineEvent:
    id: str
    type: str
    name: str | None
    channel: str
    timestamp: datetime
    source: str
    summary: list[str]
    details: list[tuple[str, str]]


# Properties worth a glance in the timeline, in this order (the rest are under "Details").
SUMMARY_PROPERTIES = (
    "order_id", "name", "text", "summary", "email_subject", "store_name", "query", "campaign_name", "reason",
)  # fmt: skip


def _event_summary(page: Page, properties: dict[str, Any]) -> list[str]:
    summary = [_text(properties[key]) for key in SUMMARY_PROPERTIES if _text(properties.get(key))][:3]
    total = properties.get("total") or properties.get("revenue")
    if total is not None and isinstance(properties.get("currency"), str):
        try:
            summary.append(page.t.money(str(total), properties["currency"]))
        except (ArithmeticError, ValueError, KeyError, TypeError):
            summary.append(_text(total))
    return summary


def _excerpt(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def timeline_page(
    page: Page,
    session: Session,
    profile_id: str,
    *,
    before: str | None,
    channels: list[str],
    types: list[str],
) -> tuple[list[TimelineEvent], str | None]:
    """One page of the customer's events on every channel, newest first (the index on (profile_id,
    timestamp, id) read backwards), and the cursor of the older page. The domain's ``timeline`` reads
    oldest first; a person reading a customer wants the latest first, with "older" to go back."""
    query = select(
        Event.id, Event.type, Event.name, Event.channel, Event.timestamp, Event.source_id, Event.properties
    ).where(Event.profile_id == profile_id)
    if channels:
        query = query.where(Event.channel.in_(channels))
    if types:
        query = query.where(Event.type.in_(types))
    if before:
        moment, event_id = decode_cursor(before, field="before")
        query = query.where(tuple_(Event.timestamp, Event.id) < tuple_(moment, event_id))
    rows = session.execute(
        query.order_by(Event.timestamp.desc(), Event.id.desc()).limit(TIMELINE_PAGE + 1)
    ).all()
    older = (
        encode_cursor(rows[TIMELINE_PAGE - 1].timestamp, rows[TIMELINE_PAGE - 1].id)
        if len(rows) > TIMELINE_PAGE
        else None
    )
    rows = rows[:TIMELINE_PAGE]
    sources = dict(
        session.execute(
            select(Source.id, Source.name).where(in_chunks(Source.id, {r.source_id for r in rows}))
        ).all()
    )
    # A message's event shows its words (one statement for the page's messages).
    message_ids = {
        str(r.properties["inbox_message_id"])
        for r in rows
        if isinstance(r.properties, dict) and r.properties.get("inbox_message_id")
    }
    bodies = dict(
        session.execute(select(Message.id, Message.body).where(in_chunks(Message.id, message_ids))).all()
    )
    events = []
    for row in rows:
        properties = row.properties if isinstance(row.properties, dict) else {}
        body = bodies.get(str(properties.get("inbox_message_id")))
        events.append(
            TimelineEvent(
                id=row.id,
                type=row.type,
                name=row.name,
                channel=row.channel,
                timestamp=row.timestamp,
                source=sources.get(row.source_id, row.source_id),
                summary=([_excerpt(body)] if body else []) + _event_summary(page, properties),
                details=[(key, trait_text(value)) for key, value in properties.items()][:40],
            )
        )
    return events, older


def _orders(session: Session, ids: list[str]) -> list[dict[str, Any]]:
    """The customer's latest orders from every channel."""
    found = orders.recent(session, ids, 20)
    lines = orders.lines_of(session, [o.id for o in found])
    return [
        {
            "number": o.number,
            "channel": o.channel,
            "fulfilment": o.fulfilment,
            "status": o.status,
            "total": o.total,
            "currency": o.currency,
            "item_count": sum(line.quantity for line in lines[o.id]),
            "created_at": o.created_at,
            "ready_on": o.ready_on,
        }
        for o in found
    ]


def _reservations(session: Session, ids: list[str]) -> list[dict[str, Any]]:
    found = list(
        session.scalars(
            select(Reservation)
            .where(in_chunks(Reservation.profile_id, ids))
            .order_by(Reservation.created_at.desc())
            .limit(20)
        )
    )
    stores = dict(
        session.execute(
            select(Location.id, Location.name).where(in_chunks(Location.id, {r.location_id for r in found}))
        ).all()
    )
    return [
        {
            "store": stores.get(r.location_id, r.location_id),
            "status": r.status,
            "channel": r.channel,
            "units": sum(int(line.get("quantity", 0)) for line in r.lines if isinstance(line, dict)),
            "created_at": r.created_at,
            "expires_at": r.expires_at,
            "closed_at": r.closed_at,
        }
        for r in found
    ]


def _satisfaction(session: Session, ids: list[str]) -> list[CsatSurvey]:
    return list(
        session.scalars(
            select(CsatSurvey)
            .where(in_chunks(CsatSurvey.profile_id, ids), CsatSurvey.answered_at.is_not(None))
            .order_by(CsatSurvey.answered_at.desc())
            .limit(20)
        )
    )


def _conversations(session: Session, ids: list[str]) -> list[Conversation]:
    return list(
        session.scalars(
            select(Conversation)
            .where(in_chunks(Conversation.profile_id, ids))
            .order_by(Conversation.last_message_at.desc())
            .limit(20)
        )
    )


def _filters(page: Page) -> tuple[list[str], list[str]]:
    channels = [c.strip() for c in page.request.query_params.getlist("channel") if c.strip()]
    types = [t.strip() for t in page.request.query_params.getlist("type") if t.strip()]
    for channel in channels:
        if channel not in CHANNELS:
            raise InvalidInput(
                f"channel: unknown channel {channel[:40]!r}; expected one of {', '.join(CHANNELS)}"
            )
    for kind in types:
        if kind not in EVENT_TYPES:
            raise InvalidInput(
                f"type: unknown event type {kind[:40]!r}; expected one of {', '.join(EVENT_TYPES)}"
            )
    return channels, types


@router.get("/console/customers/{profile_id}")
def customer(profile_id: str, page: Page = Depends(page_for("customers"))) -> Response:
    channels, types = _filters(page)
    before = page.request.query_params.get("before") or None
    if before is not None and len(before) > 400:
        raise InvalidInput("before: not a position this page gave")
    with page.db.read() as session:
        active = identity.resolve_profile_id(session, profile_id[:60])
        if active != profile_id:
            query = page.request.url.query
            return page.redirect(f"/console/customers/{active}" + (f"?{query}" if query else ""))
        view = identity.profile_view(session, active)
        ids = identity.people(session, active)
        events, older = timeline_page(page, session, active, before=before, channels=channels, types=types)
        member = loyalty.member_view(session, active, utcnow())
        source_names = dict(session.execute(select(Source.id, Source.name)).all())  # a few rows
        context: dict[str, Any] = {
            "orders": _orders(session, ids),
            "reservations": _reservations(session, ids),
            "surveys": _satisfaction(session, ids),
            "conversations": _conversations(session, ids),
        }
    rank = {kind: position for position, kind in enumerate(MAIN_KINDS)}
    view["identifiers"].sort(key=lambda i: (rank.get(i["kind"], len(rank)), i["kind"], i["value"]))
    for consent in view["consent"]:  # "event from source src_…": the source's name
        consent["source"] = _SOURCE_ID.sub(
            lambda found: source_names.get(found.group(0), found.group(0)), consent["source"]
        )
    for item in view["identifiers"] + view["channels"] + view["consent"]:
        for key in ("first_seen_at", "last_seen_at", "recorded_at"):
            if key in item:
                item[key] = parse_moment(item[key])
    for entry in member["entries"]:
        entry["created_at"] = parse_moment(entry["created_at"])
    if member["next_expiry"]:
        member["next_expiry"]["at"] = parse_moment(member["next_expiry"]["at"])
    return page.render(
        "customers/customer.html",
        customer=view,
        name=display_name(view["traits"]),
        traits=[
            (TRAIT_LABELS.get(k), k, trait_display(page.t, v))
            for k, v in view["traits"].items()
            if trait_text(v)
        ],
        first_seen=parse_moment(view["first_seen_at"]),
        last_seen=parse_moment(view["last_seen_at"]),
        events=events,
        older=older,
        newest=bool(before),
        filter_query=urlencode([("channel", c) for c in channels] + [("type", k) for k in types]),
        filter_channels=channels,
        filter_types=types,
        used_channels=[c["channel"] for c in view["channels"]],
        member=member,
        consent_channels=("*", *CHANNELS),
        kind_labels=KIND_LABELS,
        channel_labels=CHANNEL_LABELS,
        event_type_labels=EVENT_TYPE_LABELS,
        event_types=EVENT_TYPES,
        status_labels=STATUS_LABELS,
        fulfilment_labels=FULFILMENT_LABELS,
        loyalty_labels=LOYALTY_LABELS,
        **context,
    )


@router.post("/console/customers/{profile_id}/consent")
def change_consent(profile_id: str, page: Page = Depends(form_for("identity"))) -> Response:
    channel = page.field("channel", max_chars=40)
    purpose = page.field("purpose", max_chars=CONSENT_PURPOSE_CHARS).lower()
    granted = page.field("granted", max_chars=5)
    if granted not in ("yes", "no"):
        raise InvalidInput("granted: yes or no")
    if not all(ch.isalnum() or ch in "_-." for ch in purpose):
        raise InvalidInput("purpose: letters, digits, '_', '-' or '.' only (e.g. marketing)")
    with page.db.write() as session:
        result = identity.set_consent(
            session, profile_id[:60], channel=channel, purpose=purpose, granted=granted == "yes",
            source=f"console: {page.user.email}"[:160],
        )  # fmt: skip
    channel_name = page.t.gettext(CHANNEL_LABELS.get(channel, channel))
    message = (
        page.t.gettext(
            "Consent recorded: {purpose} on {channel} granted.", purpose=purpose, channel=channel_name
        )
        if granted == "yes"
        else page.t.gettext(
            "Consent recorded: {purpose} on {channel} withdrawn.", purpose=purpose, channel=channel_name
        )
    )
    return page.redirect(f"/console/customers/{result['profile_id']}#consent", flash=message)
