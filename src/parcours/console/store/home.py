"""The store's home: look a customer up (loyalty card, phone typed any way, e-mail, ``KIND:VALUE`` or a
name), find a product (SKU, EAN or words of its name), open an order for a return, and the pickups
waiting at the store today (reservations held here, click & collect orders ready here)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Response
from sqlalchemy import String, func, literal, or_, select
from sqlalchemy.orm import Session

from parcours.commerce import orders
from parcours.console.common import display_name
from parcours.console.store.common import (
    MAX_MATCHES,
    PAGE_SIZE,
    Here,
    names_of,
    render,
    sku_names,
    store_context,
    variant_names,
)
from parcours.console.web import Page, page_for
from parcours.db.types import utcnow
from parcours.errors import InvalidInput, NotFound
from parcours.identity import service as identity
from parcours.models import Order, Product, Profile, Reservation, Variant

router = APIRouter(include_in_schema=False)

# The identifier kinds a value typed in the look-up field can be, by what it looks like.
LOOKUP_KINDS_DIGITS = ("loyalty_card", "phone", "whatsapp", "pos_customer_id")


def fold(text: str) -> str:
    """Lower case without accents (``Hélène`` -> ``helene``), for comparing names."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def loose_pattern(word: str) -> str:
    """A LIKE pattern matching ``word`` whatever the accents: letters that may carry one are any
    character (``dupont`` -> ``%d_p_nt%``); the exact comparison is made afterwards in Python."""
    escaped = "".join("_" if c in "aeiouycn" else c for c in word if c not in "%_\\")
    return f"%{escaped}%"


def _name_columns() -> list[Any]:
    return [
        func.coalesce(Profile.traits["firstName"].as_string(), Profile.traits["first_name"].as_string(), ""),
        func.coalesce(Profile.traits["lastName"].as_string(), Profile.traits["last_name"].as_string(), ""),
        func.coalesce(Profile.traits["name"].as_string(), ""),
    ]


def search_names(session: Session, text: str) -> list[tuple[str, dict[str, Any]]]:
    """Active profiles whose first/last name (or name) has a word starting with each word typed,
    accents and case ignored. One scan of the profiles' name traits with a loose LIKE per word (the
    same SQL on SQLite and PostgreSQL), then the exact comparison here."""
    words = [w for w in re.split(r"[\s,;]+", fold(text)) if w][:4]
    if not words:
        return []
    first, last, full = _name_columns()
    haystack = literal(" ", String) + first + " " + last + " " + full
    email = Profile.traits["email"].as_string()
    city = Profile.traits[("address", "city")].as_string()
    # Only the name, e-mail and city of each row, never the whole traits document.
    query = select(Profile.id, first, last, full, email, city).where(Profile.merged_into_id.is_(None))
    for word in words:
        query = query.where(haystack.ilike(loose_pattern(word)))
    found = []
    for profile_id, given, surname, name, mail, town in session.execute(query.limit(1000)):
        traits = {
            "firstName": given,
            "lastName": surname,
            "name": name,
            "email": mail,
            "address": {"city": town},
        }
        name_words = re.split(r"[\s\-']+", fold(f"{display_name(traits)} {name or ''}"))
        if all(any(part.startswith(word) for part in name_words) for word in words):
            found.append((profile_id, traits))
    found.sort(key=lambda row: (fold(display_name(row[1])), row[0]))
    return found[: MAX_MATCHES + 1]


def find_customers(page: Page, session: Session, text: str) -> list[tuple[str, dict[str, Any]]]:
    """Who the associate means: a loyalty card, a phone typed any way, an e-mail, ``KIND:VALUE``, or a
    name (several may match)."""
    registry = identity.load_registry(session, page.settings.default_phone_region)
    kind, sep, value = text.partition(":")
    if sep and kind.strip() in registry:
        candidates = [(kind.strip(), value)]
    elif "@" in text:
        candidates = [("email", text)]
    elif any(c.isdigit() for c in text):
        candidates = [(k, text) for k in LOOKUP_KINDS_DIGITS if k in registry]
    else:
        candidates = []
    ids: list[str] = []
    for kind_name, raw in candidates:
        try:
            found = identity.resolve_profile_id(
                session, identity.find_profile_id(session, registry, kind_name, raw)
            )
        except (NotFound, InvalidInput):
            continue
        if found not in ids:
            ids.append(found)
    if ids:
        query = select(Profile.id, Profile.traits).where(Profile.id.in_(ids))
        rows: dict[str, dict[str, Any]] = {
            profile_id: traits for profile_id, traits in session.execute(query)
        }
        return [(i, rows.get(i) or {}) for i in ids]
    if any(c.isalpha() for c in text):
        return search_names(session, text)
    return []


def search_products(session: Session, text: str) -> tuple[str | None, list[tuple[str, str, str | None]]]:
    """(the SKU when the text is one, or an EAN; else None, [(sku, name, ean)] whose names match)."""
    code = text.strip().upper()
    exact = session.scalar(select(Variant.sku).where(or_(Variant.sku == code, Variant.ean == text.strip())))
    if exact is not None:
        return exact, []
    words = [w for w in re.split(r"\s+", fold(text)) if w][:4]
    if not words:
        return None, []
    haystack = Product.name + " " + Variant.name + " " + Variant.sku
    query = select(Variant.sku, Variant.name, Variant.ean, Product.name).join(
        Product, Product.id == Variant.product_id
    )
    for word in words:
        query = query.where(haystack.ilike(loose_pattern(word)))
    matches = []
    for sku, name, ean, product in session.execute(query.where(Variant.active.is_(True)).limit(500)):
        words_of = re.split(r"[\s\-'x]+", fold(f"{product} {name} {sku}"))
        if all(any(part.startswith(word) for part in words_of) for word in words):
            matches.append((sku, name, ean))
    matches.sort(key=lambda row: (fold(row[1]), row[0]))
    return None, matches[: MAX_MATCHES + 1]


@dataclass(frozen=True)
class Match:
    """A customer in the look-up's list: name, and what tells namesakes apart (e-mail, city)."""

    id: str
    name: str
    detail: str

    @classmethod
    def of(cls, profile_id: str, traits: dict[str, Any]) -> Match:
        address = traits.get("address")
        city = address.get("city") if isinstance(address, dict) else None
        detail = " · ".join(str(part) for part in (traits.get("email"), city) if part)
        return cls(profile_id, display_name(traits), detail)


@dataclass
class Pickup:
    kind: str  # "reservation" or "order"
    id: str
    since: datetime
    profile_id: str | None
    lines: list[dict[str, Any]]
    expires_at: datetime | None = None
    number: str | None = None
    total: Any = None
    currency: str = "EUR"
    channel: str = ""


def pickups_at(
    session: Session, here: Here, *, now: datetime, end_of_day: datetime, offset: int
) -> list[Pickup]:
    """What waits for its customer at the store: reservations held here, and click & collect orders
    ready here by the end of the day, oldest first (``PAGE_SIZE + 1`` from ``offset``: one more says
    there is a next page)."""
    wanted = offset + PAGE_SIZE + 1
    held = session.scalars(
        select(Reservation)
        .where(Reservation.status == "held", Reservation.location_id == here.id, Reservation.expires_at > now)
        .order_by(Reservation.created_at, Reservation.id)
        .limit(wanted)
    )
    found = [
        Pickup("reservation", r.id, r.created_at, r.profile_id, r.lines, expires_at=r.expires_at)
        for r in held
    ]
    ready = list(
        session.scalars(
            select(Order)
            .where(
                Order.pickup_location_id == here.id,
                Order.fulfilment == "click_collect",
                Order.status == "placed",
                Order.ready_on <= end_of_day,
            )
            .order_by(Order.ready_on, Order.id)
            .limit(wanted)
        )
    )
    lines = orders.lines_of(session, [o.id for o in ready])
    for order in ready:
        found.append(Pickup("order", order.id, order.ready_on or order.created_at, order.profile_id,
                            [{"sku": line.sku, "quantity": line.quantity} for line in lines.get(order.id, [])],
                            number=order.number, total=order.total, currency=order.currency, channel=order.channel))  # fmt: skip
    found.sort(key=lambda p: (p.since, p.id))
    return found[offset:wanted]


def end_of_today(page: Page, now: datetime) -> datetime:
    zone = ZoneInfo(page.t.timezone)
    local = now.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(local, time(0), zone)


@router.get("/console/store")
def store_home(
    page: Page = Depends(page_for("store")),
    store: str | None = None,
    find: str | None = None,
    product: str | None = None,
    customer: str | None = None,
    order: str | None = None,
    offset: int = 0,
) -> Response:
    now = utcnow()
    find, product, order = (
        (find or "").strip()[:200],
        (product or "").strip()[:200],
        (order or "").strip()[:40],
    )
    with page.db.read() as session:
        context = store_context(page, session, store)
        if order:
            found_order = session.scalar(
                select(Order.id).where(or_(Order.number == order.upper(), Order.id == order))
            )
            if found_order is None:
                raise NotFound(page.t.gettext("No order {number}.", number=order))
            return page.redirect(context.link(f"/console/store/orders/{found_order}/return"))
        matches: list[Match] | None = None
        if find:
            matches = [
                Match.of(profile_id, traits) for profile_id, traits in find_customers(page, session, find)
            ]
            if len(matches) == 1:
                return page.redirect(context.link(f"/console/store/customers/{matches[0].id}"))
        products: list[tuple[str, str, str | None]] | None = None
        if product:
            sku, products = search_products(session, product)
            if sku is not None:
                return page.redirect(context.link("/console/store/stock", sku=sku, customer=customer))
        offset = max(0, min(offset, 100_000))
        pickups: list[Pickup] = []
        if context.here is not None:
            pickups = pickups_at(
                session, context.here, now=now, end_of_day=end_of_today(page, now), offset=offset
            )
        names = names_of(session, [p.profile_id for p in pickups])
        skus = variant_names(session, sku_names(p.lines for p in pickups))
        customer_name = names_of(session, [customer]).get(customer or "") if customer else None
    return render(
        page, "store/home.html", context, find=find, matches=matches, product=product, products=products,
        customer=customer, customer_name=customer_name, pickups=pickups[:PAGE_SIZE], names=names, skus=skus,
        offset=offset, more=len(pickups) > PAGE_SIZE, page_size=PAGE_SIZE, max_matches=MAX_MATCHES, now=now,
    )  # fmt: skip
