"""The store associates' API (agent tokens): look up a customer and see their orders, reservations and
points; check stock in every store; reserve or order for them (endless aisle); hand over a reservation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import ConfigDict, Field
from sqlalchemy import select

from parcours.commerce import orders, reservations
from parcours.commerce.stock_api import Customer, Line, customer_profile, get_availability
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.db.types import utcnow
from parcours.deps import JsonResponse, database, settings
from parcours.errors import InvalidInput
from parcours.identity import service as identity
from parcours.inbox.agents import AgentInfo
from parcours.inbox.endpoints import current_agent
from parcours.inputs import InputModel
from parcours.models import Reservation

router = APIRouter(tags=["store"])


class StoreReservationIn(Customer):
    store_id: str
    lines: list[Line] = Field(min_length=1, max_length=50)
    request_id: str = Field(min_length=1, max_length=100)
    hold_hours: float = Field(default=reservations.DEFAULT_HOLD_HOURS, gt=0, le=720)


class StoreOrderIn(Customer):
    """Endless aisle: the store orders for the customer, delivered home or to be picked up elsewhere."""

    store_id: str
    lines: list[Line] = Field(min_length=1, max_length=50)
    request_id: str = Field(min_length=1, max_length=100)
    fulfilment: str = Field(description="ship_from_warehouse (home), click_collect or relay")
    pickup_location_id: str | None = None


class CollectIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    identifier: str | None = Field(default=None, description="The loyalty card shown at the till: KIND:VALUE")


def customer_view(session: Any, profile_id: str) -> dict[str, Any]:
    """What an associate sees of a customer: the unified profile, orders from every channel, held
    reservations, loyalty points."""
    from parcours.commerce import loyalty

    held = session.scalars(
        select(Reservation).where(Reservation.profile_id == profile_id, Reservation.status == "held")
    )
    return {
        "profile": identity.profile_view(session, profile_id),
        "orders": orders.orders_of(session, profile_id),
        "reservations": [reservations.view(r) for r in held],
        "loyalty": loyalty.member_view(session, profile_id, utcnow()),
    }


@router.get("/v1/store/customers")
def find_customer(
    identifier: str = Query(description="KIND:VALUE: a loyalty card, a phone typed any way, an e-mail"),
    agent: AgentInfo = Depends(current_agent),
    db: Database = Depends(database),
    config: Settings = Depends(settings),
) -> JsonResponse:
    with db.read() as session:
        profile_id = identity.find_profile_by(session, config.default_phone_region, identifier)
        return JsonResponse(customer_view(session, profile_id))


@router.get("/v1/store/stock/{sku}")
async def store_stock(
    sku: str,
    near: str | None = Query(default=None, description="LAT,LON of the store"),
    agent: AgentInfo = Depends(current_agent),
    db: Database = Depends(database),
) -> JsonResponse:
    """The SKU in every store (nearest first) and relay point."""
    return await get_availability(sku, near=near, limit=500, db=db)


@router.post("/v1/store/reservations", status_code=201)
def store_reserve(
    body: StoreReservationIn,
    agent: AgentInfo = Depends(current_agent),
    db: Database = Depends(database),
    config: Settings = Depends(settings),
) -> JsonResponse:
    with db.write() as session:
        reservation, created = reservations.reserve(
            session, location_id=body.store_id, lines=[line.model_dump() for line in body.lines], channel="store",
            request_id=body.request_id, profile_id=customer_profile(session, config, body), now=utcnow(),
            hold_hours=body.hold_hours,
        )  # fmt: skip
        return JsonResponse(reservations.view(reservation), status_code=201 if created else 200)


@router.post("/v1/store/orders", status_code=201)
def store_order(
    body: StoreOrderIn,
    agent: AgentInfo = Depends(current_agent),
    db: Database = Depends(database),
    config: Settings = Depends(settings),
) -> JsonResponse:
    """The store orders for the customer what it lacks (endless aisle)."""
    if body.fulfilment not in ("ship_from_warehouse", "click_collect", "relay"):
        raise InvalidInput("fulfilment: ship_from_warehouse (home), click_collect or relay")
    with db.write() as session:
        order, created = orders.place(
            session, channel="store", request_id=body.request_id, lines=[line.model_dump() for line in body.lines],
            fulfilment=body.fulfilment, profile_id=customer_profile(session, config, body), now=utcnow(),
            pickup_location_id=body.pickup_location_id, ordering_location_id=body.store_id,
        )  # fmt: skip
        return JsonResponse(orders.view(session, order), status_code=201 if created else 200)


@router.post("/v1/store/reservations/{reservation_id}/collect")
def collect(
    reservation_id: str,
    body: CollectIn,
    agent: AgentInfo = Depends(current_agent),
    db: Database = Depends(database),
    config: Settings = Depends(settings),
) -> JsonResponse:
    """The customer picks up and pays in store: an order of the reserved units; points earned on the
    loyalty card shown (or the reservation's profile)."""
    with db.write() as session:
        member = (
            customer_profile(session, config, Customer(identifier=body.identifier))
            if body.identifier
            else None
        )
        order = orders.collect_reservation(session, reservation_id, profile_id=member, now=utcnow())
        return JsonResponse(orders.view(session, order))


class HandOverIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    store_id: str = Field(min_length=1, max_length=40, description="The store where the customer collects")


@router.post("/v1/store/orders/{order_id}/hand-over")
def hand_over(
    order_id: str,
    body: HandOverIn,
    agent: AgentInfo = Depends(current_agent),
    db: Database = Depends(database),
) -> JsonResponse:
    """The customer collects a click & collect or relay order at its pickup place; its points are earned."""
    with db.write() as session:
        order = orders.hand_over(session, order_id, location_id=body.store_id, now=utcnow())
        return JsonResponse(orders.view(session, order))
