"""Console pages: the store area, for store associates on a tablet.

The associate's store is ``page.user.location_id`` (an admin picks one, remembered in the query string as
``store``). Pages: the store's home (customer look-up, product search, the pickups to hand over today), a
customer as the store sees them, a SKU's stock in every store nearest first, an order's return. Actions
(POST, CSRF, permission "store"): reserve, order for the customer (endless aisle), hand over a reservation,
cancel one, take a return. Each form carries a request id (a uuid) so that a double tap acts once.

Everything is done through the commerce and identity services; the few read-only queries the pages need
(names, pickups, recent orders with their lines) are here, each one statement."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Response
from sqlalchemy import String, func, literal, or_, select
from sqlalchemy.orm import Session

from parcours.commerce import loyalty as loyalty_service
from parcours.commerce import offers, orders, reservations, stock
from parcours.console.i18n import N_
from parcours.console.web import Page, form_for, page_for
from parcours.db.types import utcnow
from parcours.errors import Conflict, Forbidden, InsufficientStock, InvalidInput, NotFound
from parcours.identity import service as identity
from parcours.models import (
    Identifier,
    Location,
    LoyaltyEntry,
    Order,
    OrderLine,
    Product,
    Profile,
    Reservation,
    Return,
    ReturnPolicy,
    StockLevel,
    Variant,
)

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
MAX_MATCHES = 20  # customers or products listed for a search
RECENT_ORDERS = 20
CHANNEL = "store"
REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")
EAN = re.compile(r"^\d{8}$|^\d{13}$")

FULFILMENT_LABELS = {
    "ship_from_warehouse": N_("Home delivery"),
    "ship_from_store": N_("Shipped from a store"),
    "click_collect": N_("Click & collect"),
    "relay": N_("Relay point"),
}
ORDER_STATUS_LABELS = {
    "placed": N_("Placed"),
    "ready": N_("Ready"),
    "shipped": N_("Shipped"),
    "collected": N_("Collected"),
    "cancelled": N_("Cancelled"),
}
TIER_LABELS = {"bronze": N_("Bronze"), "silver": N_("Silver"), "gold": N_("Gold")}
CHANNEL_LABELS = {
    "web": N_("Web"),
    "app": N_("App"),
    "store": N_("Store"),
    "phone": N_("Phone"),
    "email": N_("E-mail"),
    "sms": N_("SMS"),
    "chat": N_("Chat"),
    "whatsapp": N_("WhatsApp"),
    "messenger": N_("Messenger"),
    "instagram": N_("Instagram"),
    "social": N_("Social"),
    "kiosk": N_("Kiosk"),
    "marketplace": N_("Marketplace"),
    "mail": N_("Mail"),
    "other": N_("Other"),
}
# The identifier kinds a value typed in the look-up field can be, by what it looks like.
LOOKUP_KINDS_DIGITS = ("loyalty_card", "phone", "whatsapp", "pos_customer_id")


# ------------------------------------------------------------------------------------------- helpers
def fold(text: str) -> str:
    """Lower case without accents (``Hélène`` -> ``helene``), for comparing names."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def loose_pattern(word: str) -> str:
    """A LIKE pattern matching ``word`` whatever the accents: letters that may carry one are any
    character (``dupont`` -> ``%d_p_nt%``); the exact comparison is made afterwards in Python."""
    escaped = "".join("_" if c in "aeiouycn" else c for c in word if c not in "%_\\")
    return f"%{escaped}%"


def display_name(traits: dict[str, Any] | None) -> str:
    traits = traits or {}
    first = str(traits.get("firstName") or traits.get("first_name") or "").strip()
    last = str(traits.get("lastName") or traits.get("last_name") or "").strip()
    return " ".join(part for part in (first, last) if part) or str(traits.get("name") or "").strip()


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _int_field(page: Page, name: str, label: str, low: int, high: int, default: int | None = None) -> int:
    raw = page.field(name, None if default is None else str(default), max_chars=12)
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput(
            page.t.gettext("{field}: a whole number from {low} to {high}", field=label, low=low, high=high)
        )
    return int(raw)


def _request_id(page: Page) -> str:
    raw = page.field("request_id", max_chars=64)
    if not REQUEST_ID.match(raw):
        raise InvalidInput("request_id: reload the page and try again")
    return f"console:{raw}"


# ------------------------------------------------------------------------------------------ the store
@dataclass(frozen=True)
class Here:
    """The store the page works for."""

    id: str
    name: str
    city: str
    latitude: float
    longitude: float


@dataclass
class StoreContext:
    here: Here | None
    chosen: str | None  # the admin's store in the query string, carried by every link and form
    stores: list[Location]  # every store, for an admin's choice

    def link(self, path: str, **params: Any) -> str:
        values = {key: value for key, value in params.items() if value not in (None, "")}
        if self.chosen:
            values["store"] = self.chosen
        return path + ("?" + urlencode(values) if values else "")


def store_context(page: Page, session: Session, given: str | None) -> StoreContext:
    """An associate works in their own store (another one is refused); an admin picks any store."""
    user = page.user
    given = (given or "").strip() or None
    if user.role == "admin":
        wanted, chosen = given or user.location_id, given
    else:
        if given is not None and given != user.location_id:
            raise Forbidden(page.t.gettext("You work for your own store only."))
        wanted, chosen = user.location_id, None
    here = None
    if wanted is not None:
        location = session.get(Location, wanted)
        if location is not None and location.kind == "store" and location.active:
            here = Here(location.id, location.name, location.city, location.latitude, location.longitude)
        elif user.role == "admin":
            raise NotFound(page.t.gettext("Store {store} not found.", store=wanted))
        # An associate whose store closed works for no store until an admin gives them another.
    stores: list[Location] = []
    if user.role == "admin":
        stores = list(
            session.scalars(
                select(Location)
                .where(Location.kind == "store", Location.active.is_(True))
                .order_by(Location.name)
            )
        )
    return StoreContext(here, chosen, stores)


def require_here(page: Page, context: StoreContext) -> Here:
    if context.here is None:
        raise InvalidInput(page.t.gettext("store: choose a store first."))
    return context.here


def render(page: Page, template: str, context: StoreContext, *, status: int = 200, **values: Any) -> Response:
    return page.render(
        template,
        status=status,
        here=context.here,
        chosen_store=context.chosen,
        stores=context.stores,
        link=context.link,
        new_request_id=lambda: str(uuid.uuid4()),
        fulfilment_labels=FULFILMENT_LABELS,
        order_status_labels=ORDER_STATUS_LABELS,
        channel_labels=CHANNEL_LABELS,
        tier_labels=TIER_LABELS,
        **values,
    )


def back_to(page: Page, context: StoreContext, default: str) -> str:
    """Where a form returns: its ``back`` field when it is a store page, else ``default``."""
    back = page.field("back", "", max_chars=500)
    return back if back.startswith("/console/store") and "//" not in back else context.link(default)


# ------------------------------------------------------------------------------------------- queries
def names_of(session: Session, ids: Iterable[str | None]) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = session.execute(select(Profile.id, Profile.traits).where(Profile.id.in_(wanted)))
    return {profile_id: display_name(traits) for profile_id, traits in rows}


def variant_names(session: Session, skus: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(skus))
    if not wanted:
        return {}
    return {
        sku: name
        for sku, name in session.execute(select(Variant.sku, Variant.name).where(Variant.sku.in_(wanted)))
    }


def location_names(session: Session, ids: Iterable[str | None]) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    query = select(Location.id, Location.name).where(Location.id.in_(wanted))
    return {location_id: name for location_id, name in session.execute(query)}


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
    lines = order_lines(session, [o.id for o in ready])
    for order in ready:
        found.append(Pickup("order", order.id, order.ready_on or order.created_at, order.profile_id,
                            [{"sku": line.sku, "quantity": line.quantity} for line in lines.get(order.id, [])],
                            number=order.number, total=order.total, currency=order.currency, channel=order.channel))  # fmt: skip
    found.sort(key=lambda p: (p.since, p.id))
    return found[offset:wanted]


def order_lines(session: Session, order_ids: list[str]) -> dict[str, list[OrderLine]]:
    result: dict[str, list[OrderLine]] = {}
    if order_ids:
        query = select(OrderLine).where(OrderLine.order_id.in_(order_ids)).order_by(OrderLine.id)
        for line in session.scalars(query):
            result.setdefault(line.order_id, []).append(line)
    return result


def end_of_today(page: Page, now: datetime) -> datetime:
    zone = ZoneInfo(page.t.timezone)
    local = now.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(local, time(0), zone)


def _sku_names(items: Iterable[Iterable[dict[str, Any]]]) -> set[str]:
    return {line["sku"] for lines in items for line in lines}


# -------------------------------------------------------------------------------------------- pages
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
        skus = variant_names(session, _sku_names(p.lines for p in pickups))
        customer_name = names_of(session, [customer]).get(customer or "") if customer else None
    return render(
        page, "store/home.html", context, find=find, matches=matches, product=product, products=products,
        customer=customer, customer_name=customer_name, pickups=pickups[:PAGE_SIZE], names=names, skus=skus,
        offset=offset, more=len(pickups) > PAGE_SIZE, page_size=PAGE_SIZE, max_matches=MAX_MATCHES, now=now,
    )  # fmt: skip


@router.get("/console/store/customers/{profile_id}")
def store_customer(
    profile_id: str, page: Page = Depends(page_for("store")), store: str | None = None
) -> Response:
    now = utcnow()
    with page.db.read() as session:
        context = store_context(page, session, store)
        active = identity.resolve_profile_id(session, profile_id[:60])
        if active != profile_id:
            return page.redirect(context.link(f"/console/store/customers/{active}"))
        traits = session.scalar(select(Profile.traits).where(Profile.id == active)) or {}
        ids = identity.people(session, active)
        identifiers = session.execute(
            select(Identifier.kind, Identifier.value)
            .where(Identifier.profile_id == active, Identifier.kind.in_(("loyalty_card", "phone", "email")))
            .order_by(Identifier.kind, Identifier.value)
        ).all()
        member = loyalty_service.member_view(session, active, now)
        held = list(
            session.scalars(
                select(Reservation)
                .where(
                    Reservation.profile_id.in_(ids),
                    Reservation.status == "held",
                    Reservation.expires_at > now,
                )
                .order_by(Reservation.created_at)
            )
        )
        recent = list(
            session.scalars(
                select(Order)
                .where(Order.profile_id.in_(ids))
                .order_by(Order.created_at.desc())
                .limit(RECENT_ORDERS)
            )
        )
        lines = order_lines(session, [o.id for o in recent])
        skus = variant_names(
            session, _sku_names([r.lines for r in held]) | {line.sku for ls in lines.values() for line in ls}
        )
        places = location_names(
            session, [r.location_id for r in held] + [o.pickup_location_id for o in recent]
        )
    return render(
        page, "store/customer.html", context, profile_id=active, name=display_name(traits), traits=traits,
        cards=[v for k, v in identifiers if k == "loyalty_card"], phones=[v for k, v in identifiers if k == "phone"],
        emails=[v for k, v in identifiers if k == "email"], member=member, held=held, orders=recent, lines=lines,
        skus=skus, places=places, now=now,
    )  # fmt: skip


@router.get("/console/store/stock")
def store_stock(
    sku: str = "",
    page: Page = Depends(page_for("store")),
    store: str | None = None,
    customer: str | None = None,
) -> Response:
    now = utcnow()
    with page.db.read() as session:
        context = store_context(page, session, store)
        here = require_here(page, context)
        code = sku.strip().upper()[:60]
        variant = session.get(Variant, code) or session.scalar(
            select(Variant).where(Variant.ean == sku.strip())
        )
        if variant is None:
            raise NotFound(page.t.gettext("No product has the SKU or EAN {sku}.", sku=sku.strip()[:60]))
        places = stock.availability(
            session, variant.sku, near=(here.latitude, here.longitude), now=now, limit=500
        )
        warehouses = session.execute(
            select(Location.id, Location.name, Location.city, StockLevel.on_hand - StockLevel.reserved)
            .join(StockLevel, StockLevel.location_id == Location.id)
            .where(StockLevel.sku == variant.sku, Location.kind == "warehouse", Location.active.is_(True))
            .order_by(Location.name)
        ).all()
        reserving = {
            place["location_id"]
            for place in places
            if place["kind"] == "store" and stock.takes_reservations(session, place["location_id"])
        }
        customer_id = customer_name = None
        if customer:
            customer_id = identity.resolve_profile_id(session, customer[:60])
            customer_name = names_of(session, [customer_id]).get(customer_id, "")
        member = orders.is_member(session, customer_id)
        try:
            offer: dict[str, Any] | None = offers.offer(
                session, variant.sku, channel=CHANNEL, member=member, now=now
            )
        except NotFound:
            offer = None
    promotion = next(
        (
            p["name"]
            for p in (offer or {}).get("promotions", [])
            if p["id"] == (offer or {}).get("best_promotion")
        ),
        None,
    )
    here_available = next((p["available_here"] for p in places if p["location_id"] == here.id), 0)
    for place in places:
        place["pickup_at"] = _moment(place["pickup_from"])
    return render(
        page, "store/stock.html", context, variant=variant, places=places, warehouses=warehouses,
        reserving=reserving, promotion=promotion, customer=customer_id, customer_name=customer_name, offer=offer,
        here_available=here_available, hold_hours=reservations.DEFAULT_HOLD_HOURS,
        store_places=[p for p in places if p["kind"] == "store" and p["location_id"] in reserving],
        relay_places=[p for p in places if p["kind"] == "relay"],
    )  # fmt: skip


def _return_deadline(session: Session, order: Order) -> datetime:
    """The end of the return period (the return policy's days, as ``orders.return_items`` applies it)."""
    days = session.scalar(select(ReturnPolicy.days).where(ReturnPolicy.channel.is_(None)))
    return order.created_at + timedelta(days=days if days is not None else orders.DEFAULT_RETURN_DAYS)


def _return_page(
    page: Page, session: Session, context: StoreContext, order_id: str, *, error: str | None = None,
    values: dict[str, int] | None = None, reason: str = "", status: int = 200,
) -> Response:  # fmt: skip
    order = session.get(Order, order_id[:60])
    if order is None:
        raise NotFound(page.t.gettext("No order {number}.", number=order_id[:60]))
    lines = order_lines(session, [order.id]).get(order.id, [])
    deadline = _return_deadline(session, order)
    return render(
        page, "store/return.html", context, status=status, order=order, lines=lines, deadline=deadline,
        within_period=utcnow() <= deadline, skus=variant_names(session, [line.sku for line in lines]),
        name=names_of(session, [order.profile_id]).get(order.profile_id or ""), error=error,
        values=values or {}, reason=reason,
    )  # fmt: skip


@router.get("/console/store/orders/{order_id}/return")
def store_return_form(
    order_id: str, page: Page = Depends(page_for("store")), store: str | None = None
) -> Response:
    with page.db.read() as session:
        context = store_context(page, session, store)
        require_here(page, context)
        return _return_page(page, session, context, order_id)


# ------------------------------------------------------------------------------------------ actions
def _form_context(page: Page) -> tuple[StoreContext, Here]:
    """The store a form acts for (checked before anything else in the form), which must be chosen."""
    with page.db.read() as session:
        context = store_context(page, session, page.field("store", "", max_chars=40) or None)
    return context, require_here(page, context)


def _customer_field(page: Page, session: Session) -> str:
    return identity.resolve_profile_id(session, page.field("customer", max_chars=60))


@router.post("/console/store/reservations")
def store_reserve(page: Page = Depends(form_for("store"))) -> Response:
    t = page.t
    context, _ = _form_context(page)
    request_id = _request_id(page)
    quantity = _int_field(page, "quantity", t.gettext("Quantity"), 1, 1000)
    location_id = page.field("location", max_chars=40)
    sku = page.field("sku", max_chars=60).upper()
    now = utcnow()
    with page.db.write() as session:
        customer = _customer_field(page, session)
        place = session.get(Location, location_id)
        if place is None or not stock.takes_reservations(session, location_id):
            raise InvalidInput(t.gettext("location: {store} does not take reservations.", store=location_id))
        try:
            reservation, created = reservations.reserve(
                session, location_id=location_id, lines=[{"sku": sku, "quantity": quantity}], channel=CHANNEL,
                request_id=request_id, profile_id=customer, now=now,
            )  # fmt: skip
        except InsufficientStock as error:
            details = error.details or {}
            raise Conflict(t.gettext(
                "Not enough stock: {available} of {sku} available at {store}, {asked} asked.",
                available=details.get("available", 0), sku=sku, store=place.name, asked=quantity,
            )) from None  # fmt: skip
        until = t.datetime(reservation.expires_at, "short")
    message = (
        t.gettext("Reserved {quantity} of {sku} at {store} until {until}.", quantity=quantity, sku=sku,
                  store=place.name, until=until)
        if created
        else t.gettext("This reservation was already made.")
    )  # fmt: skip
    return page.redirect(context.link(f"/console/store/customers/{customer}"), flash=message)


DELIVERY_METHODS = {"ship_from_warehouse": "home", "click_collect": "click_collect", "relay": "relay"}


@router.post("/console/store/orders")
def store_order(page: Page = Depends(form_for("store"))) -> Response:
    """Endless aisle: the store orders for the customer what it lacks."""
    t = page.t
    context, here = _form_context(page)
    request_id = _request_id(page)
    quantity = _int_field(page, "quantity", t.gettext("Quantity"), 1, 1000)
    sku = page.field("sku", max_chars=60).upper()
    fulfilment = page.field("fulfilment", max_chars=30)
    if fulfilment not in DELIVERY_METHODS:
        raise InvalidInput(t.gettext("fulfilment: choose home delivery, a store or a relay point."))
    pickup = None
    if fulfilment == "click_collect":
        pickup = page.field("pickup_store", max_chars=40)
    elif fulfilment == "relay":
        pickup = page.field("relay", max_chars=40)
    now = utcnow()
    with page.db.write() as session:
        customer = _customer_field(page, session)
        lines = [{"sku": sku, "quantity": quantity}]
        member = orders.is_member(session, customer)
        subtotal, discount, _ = offers.price_lines(session, lines, channel=CHANNEL, currency="EUR", member=member,
                                                   now=now)  # fmt: skip
        traits = session.scalar(select(Profile.traits).where(Profile.id == customer)) or {}
        address = traits.get("address") if isinstance(traits.get("address"), dict) else None
        address = address or {}
        postcode = str(address.get("postalCode") or traits.get("postalCode") or "") or None
        quote = offers.delivery_quote(session, channel=CHANNEL, postcode=postcode, amount=subtotal - discount,
                                      method=DELIVERY_METHODS[fulfilment])  # fmt: skip
        cost = Decimal(str(quote[0]["cost"])) if quote else Decimal("0")
        try:
            order, created = orders.place(
                session, channel=CHANNEL, request_id=request_id, lines=lines, fulfilment=fulfilment,
                profile_id=customer, now=now, pickup_location_id=pickup, ordering_location_id=here.id,
                delivery_cost=cost,
            )  # fmt: skip
        except InsufficientStock:
            raise Conflict(
                t.gettext("No location has {quantity} of {sku} to send.", quantity=quantity, sku=sku)
            ) from None
        total = t.money(order.total, order.currency)
        ready = t.date(order.ready_on)
        number = order.number
    message = (
        t.gettext("Order {number} placed: {total}, ready on {date}.", number=number, total=total, date=ready)
        if created
        else t.gettext("Order {number} was already placed.", number=number)
    )
    return page.redirect(context.link(f"/console/store/customers/{customer}"), flash=message)


def _reservation_here(page: Page, session: Session, here: Here, reservation_id: str) -> Reservation:
    """The reservation, locked while it is handed over or cancelled (two taps at once act once), if it is
    held at this store."""
    reservation = session.scalars(
        select(Reservation).where(Reservation.id == reservation_id[:60]).with_for_update()
    ).first()
    if reservation is None:
        raise NotFound(page.t.gettext("No reservation {id}.", id=reservation_id[:60]))
    if reservation.location_id != here.id:
        raise Forbidden(page.t.gettext("This reservation is held at another store."))
    return reservation


@router.post("/console/store/reservations/{reservation_id}/collect")
def store_collect(reservation_id: str, page: Page = Depends(form_for("store"))) -> Response:
    """The customer picks up and pays in store; the loyalty card shown earns the points."""
    t = page.t
    context, here = _form_context(page)
    back = back_to(page, context, "/console/store")
    card = page.field("card", "", max_chars=40)
    now = utcnow()
    with page.db.write() as session:
        reservation = _reservation_here(page, session, here, reservation_id)
        if reservation.status == "collected" and reservation.order_id:
            number = session.scalar(select(Order.number).where(Order.id == reservation.order_id))
            return page.redirect(back, flash=t.gettext("Already handed over: order {number}.", number=number))
        if reservation.status != "held":
            raise Conflict(t.gettext("This reservation is no longer held."))
        member = None
        if card:
            try:
                member = identity.find_profile_by(
                    session, page.settings.default_phone_region, f"loyalty_card:{card}"
                )
            except (NotFound, InvalidInput):
                raise InvalidInput(
                    t.gettext("card: no member has the loyalty card {card}.", card=card)
                ) from None
        order = orders.collect_reservation(session, reservation.id, profile_id=member, now=now)
        points = session.scalar(
            select(LoyaltyEntry.points).where(LoyaltyEntry.idempotency_key == f"order:{order.id}")
        )
        message = t.gettext("Handed over: order {number}, {total} paid in store.", number=order.number,
                            total=t.money(order.total, order.currency))  # fmt: skip
        if points:
            message += " " + t.ngettext("{count} point earned.", "{count} points earned.", points)
    return page.redirect(back, flash=message)


@router.post("/console/store/orders/{order_id}/hand-over")
def store_hand_over_order(order_id: str, page: Page = Depends(form_for("store"))) -> Response:
    """A click & collect order ready at this store leaves with its customer; their points are earned."""
    t = page.t
    context, here = _form_context(page)
    back = back_to(page, context, "/console/store")
    with page.db.write() as session:
        order = session.get(Order, order_id[:60])
        if order is None:
            raise NotFound(t.gettext("No order {id}.", id=order_id[:60]))
        if order.pickup_location_id != here.id:
            raise Forbidden(t.gettext("This order is to be picked up at another store."))
        if order.status == "collected":
            return page.redirect(
                back, flash=t.gettext("Already handed over: order {number}.", number=order.number)
            )
        order = orders.hand_over(session, order.id, location_id=here.id, now=utcnow())
        points = session.scalar(
            select(LoyaltyEntry.points).where(LoyaltyEntry.idempotency_key == f"order:{order.id}")
        )
        message = t.gettext("Handed over: order {number}.", number=order.number)
        if points:
            message += " " + t.ngettext("{count} point earned.", "{count} points earned.", points)
    return page.redirect(back, flash=message)


@router.post("/console/store/reservations/{reservation_id}/cancel")
def store_cancel(reservation_id: str, page: Page = Depends(form_for("store"))) -> Response:
    context, here = _form_context(page)
    back = back_to(page, context, "/console/store")
    with page.db.write() as session:
        reservation = _reservation_here(page, session, here, reservation_id)
        if reservation.status == "cancelled":
            return page.redirect(back, flash=page.t.gettext("This reservation was already cancelled."))
        if reservation.status != "held":
            raise Conflict(page.t.gettext("This reservation is no longer held."))
        reservations.cancel(session, reservation.id, utcnow())
    return page.redirect(
        back, flash=page.t.gettext("Reservation cancelled: the items are back on the shelf.")
    )


@router.post("/console/store/orders/{order_id}/returns")
def store_return(order_id: str, page: Page = Depends(form_for("store"))) -> Response:
    """Goods of an order bought on any channel, brought back here: restocked here, refund recorded. A
    refusal (return period over, more than can still be returned) shows beside the form."""
    t = page.t
    context, here = _form_context(page)
    request_id = _request_id(page)
    reason = page.field("reason", "", max_chars=300)
    now = utcnow()
    with page.db.read() as session:
        order = session.get(Order, order_id[:60])
        if order is None:
            raise NotFound(t.gettext("No order {number}.", number=order_id[:60]))
        done = session.scalar(
            select(Return.id).where(Return.channel == CHANNEL, Return.request_id == request_id)
        )
        bought = order_lines(session, [order.id]).get(order.id, [])
        deadline = _return_deadline(session, order)
    target = context.link(
        f"/console/store/customers/{order.profile_id}" if order.profile_id else "/console/store"
    )
    if done is not None:  # a second tap, or the page sent again
        return page.redirect(target, flash=t.gettext("This return was already recorded."))
    values: dict[str, int] = {}
    problem, status = None, 400
    for line in bought:
        raw = page.field(f"quantity_{line.sku}", "0", max_chars=12)
        left = line.quantity - line.returned
        if not raw.isdigit() or int(raw) > left:
            problem = problem or t.gettext(
                "{sku}: at most {count} can be returned.", sku=line.sku, count=left
            )
            continue
        if int(raw):
            values[line.sku] = int(raw)
    if problem is None and now > deadline:
        problem, status = (
            t.gettext("The return period of this order ended on {date}.", date=t.date(deadline)),
            409,
        )
    if problem is None and not values:
        problem = t.gettext("Choose at least one item to return.")
    if problem is None and not reason:
        problem = t.gettext("Reason: say why the items come back.")
    if problem is None:
        try:
            with page.db.write() as session:
                record, created = orders.return_items(
                    session, order.id, location_id=here.id, channel=CHANNEL, request_id=request_id, reason=reason,
                    lines=[{"sku": sku, "quantity": quantity} for sku, quantity in values.items()], now=now,
                )  # fmt: skip
                refund = t.money(record.refund_amount, order.currency)
        except (InvalidInput, Conflict) as error:  # a return made meanwhile, a rule checked by the domain
            problem, status = error.message, 409 if isinstance(error, Conflict) else 400
        else:
            message = (
                t.gettext("Return recorded for order {number}: refund {refund}; the items are back in stock here.",
                          number=order.number, refund=refund)
                if created
                else t.gettext("This return was already recorded.")
            )  # fmt: skip
            return page.redirect(target, flash=message)
    with page.db.read() as session:
        return _return_page(page, session, context, order.id, error=problem, values=values, reason=reason,
                            status=status)  # fmt: skip
