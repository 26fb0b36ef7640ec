"""A SKU's stock in every store, nearest first, and in the warehouses, with its price and promotion on
the store channel: where the associate reserves it, or orders it for the customer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select

from parcours.commerce import offers, orders, reservations, stock
from parcours.console.common import parse_moment
from parcours.console.store.common import CHANNEL, names_of, render, require_here, store_context
from parcours.console.web import Page, page_for
from parcours.db.types import utcnow
from parcours.errors import NotFound
from parcours.identity import service as identity
from parcours.models import Location, StockLevel, Variant

router = APIRouter(include_in_schema=False)


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
        place["pickup_at"] = parse_moment(place["pickup_from"])
    return render(
        page, "store/stock.html", context, variant=variant, places=places, warehouses=warehouses,
        reserving=reserving, promotion=promotion, customer=customer_id, customer_name=customer_name, offer=offer,
        here_available=here_available, hold_hours=reservations.DEFAULT_HOLD_HOURS,
        store_places=[p for p in places if p["kind"] == "store" and p["location_id"] in reserving],
        relay_places=[p for p in places if p["kind"] == "relay"],
    )  # fmt: skip
