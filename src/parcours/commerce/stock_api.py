"""The commerce API for channels' back ends (API tokens): locations, stock, availability, reservations,
orders and returns. Every write is idempotent on the caller's ``request_id``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import ConfigDict, Field

from parcours.auth.endpoints import require_api_token
from parcours.commerce import orders, reservations, stock
from parcours.commerce.reservation_writer import ReservationWriter
from parcours.commerce.reservations import ReservationRequest
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.db.types import as_utc, utcnow
from parcours.deps import JsonResponse, database, settings
from parcours.errors import InvalidInput, ParcoursError
from parcours.identity import service as identity
from parcours.inputs import InputModel

router = APIRouter(tags=["commerce"], dependencies=[Depends(require_api_token)])


class LocationIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,40}$")
    kind: str
    name: str
    street: str = ""
    postal_code: str = ""
    city: str = ""
    latitude: float
    longitude: float
    opening_hours: str = ""
    services: list[str] = Field(default_factory=list)


class ReceiveIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    quantity: int = Field(ge=1, le=100_000)
    reference: str | None = Field(default=None, max_length=60)


class Line(InputModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=60)
    quantity: int = Field(ge=1, le=1000)


class Customer(InputModel):
    """Who it is for: a profile id, or an identifier in KIND:VALUE form (``loyalty_card:2901…``)."""

    model_config = ConfigDict(extra="forbid")

    profile_id: str | None = None
    identifier: str | None = None


class ReservationIn(Customer):
    location_id: str
    lines: list[Line] = Field(min_length=1, max_length=50)
    channel: str
    request_id: str = Field(min_length=1, max_length=100)
    hold_hours: float = Field(default=reservations.DEFAULT_HOLD_HOURS, gt=0, le=720)


class OrderIn(Customer):
    lines: list[Line] = Field(min_length=1, max_length=50)
    channel: str
    request_id: str = Field(min_length=1, max_length=100)
    fulfilment: str
    source_location_id: str | None = None
    pickup_location_id: str | None = None
    ordering_location_id: str | None = None
    delivery_cost: Decimal = Field(default=Decimal("0"), ge=0, max_digits=10, decimal_places=2)


class ReturnIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    location_id: str
    lines: list[Line] = Field(min_length=1, max_length=50)
    channel: str
    request_id: str = Field(min_length=1, max_length=100)
    reason: str = Field(default="", max_length=300)


def customer_profile(session: Any, config: Settings, customer: Customer) -> str | None:
    """The profile a request names (by id, or by identifier), or None for an anonymous sale."""
    return identity.named_profile(
        session, config.default_phone_region, profile_id=customer.profile_id, identifier=customer.identifier
    )


def _lines(lines: list[Line]) -> list[dict[str, Any]]:
    return [line.model_dump() for line in lines]


@router.post("/v1/locations", status_code=201)
def post_location(body: LocationIn, db: Database = Depends(database)) -> JsonResponse:
    with db.write() as session:
        location = stock.add_location(session, location_id=body.id, **body.model_dump(exclude={"id"}))
        return JsonResponse(
            {"id": location.id, "kind": location.kind, "name": location.name}, status_code=201
        )


@router.post("/v1/stock/{sku}/{location_id}/receipts", status_code=201)
def post_receipt(
    sku: str, location_id: str, body: ReceiveIn, db: Database = Depends(database)
) -> JsonResponse:
    """Goods arrive at a warehouse or store."""
    with db.write() as session:
        stock.receive(session, sku, location_id, body.quantity, reference=body.reference, now=utcnow())
        return JsonResponse({"sku": sku, "location_id": location_id,
                             "available": stock.available(session, sku, location_id)}, status_code=201)  # fmt: skip


@router.get("/v1/availability/{sku}")
async def get_availability(
    sku: str,
    near: str | None = Query(default=None, description="LAT,LON: nearest first"),
    limit: int = Query(default=20, ge=1, le=500),
    db: Database = Depends(database),
) -> JsonResponse:
    """Stores and relay points where the SKU can be picked up, with quantities and pickup dates."""
    point = None
    if near:
        try:
            lat, lon = (float(part) for part in near.split(","))
        except ValueError:
            raise InvalidInput("near: expected LAT,LON, e.g. 48.8566,2.3522") from None
        if not -90 <= lat <= 90 or not -180 <= lon <= 180:
            raise InvalidInput("near: latitude or longitude out of range")
        point = (lat, lon)
    now = utcnow()
    found = await db.short_read(
        lambda session: stock.availability(session, sku, near=point, now=now, limit=limit)
    )
    return JsonResponse({"sku": sku, "data": found})


@router.post("/v1/reservations", status_code=201)
async def post_reservation(body: ReservationIn, request: Request) -> JsonResponse:
    """Reserve online, pay and pick up in store. 409 ``insufficient_stock`` when a line is short."""
    writer: ReservationWriter = request.app.state.reservation_writer  # group commit with other requests
    outcome = await writer.submit_async(ReservationRequest(
        location_id=body.location_id, lines=_lines(body.lines), channel=body.channel, request_id=body.request_id,
        profile_id=body.profile_id, identifier=body.identifier, hold_hours=body.hold_hours,
    ))  # fmt: skip
    if isinstance(outcome, ParcoursError):
        raise outcome
    reservation, created = outcome
    return JsonResponse(reservations.view(reservation), status_code=201 if created else 200)


@router.get("/v1/reservations/{reservation_id}")
async def get_reservation(reservation_id: str, db: Database = Depends(database)) -> JsonResponse:
    return JsonResponse(
        await db.short_read(lambda session: reservations.view(reservations.get(session, reservation_id)))
    )


@router.post("/v1/reservations/{reservation_id}/cancel")
def cancel_reservation(reservation_id: str, db: Database = Depends(database)) -> JsonResponse:
    with db.write() as session:
        return JsonResponse(reservations.view(reservations.cancel(session, reservation_id, utcnow())))


@router.post("/v1/orders", status_code=201)
def post_order(
    body: OrderIn, db: Database = Depends(database), config: Settings = Depends(settings)
) -> JsonResponse:
    """An order from any channel, attached to the customer's unified profile."""
    with db.write() as session:
        order, created = orders.place(
            session, channel=body.channel, request_id=body.request_id, lines=_lines(body.lines),
            fulfilment=body.fulfilment, profile_id=customer_profile(session, config, body), now=utcnow(),
            source_location_id=body.source_location_id, pickup_location_id=body.pickup_location_id,
            ordering_location_id=body.ordering_location_id, delivery_cost=body.delivery_cost,
        )  # fmt: skip
        return JsonResponse(orders.view(session, order), status_code=201 if created else 200)


@router.get("/v1/orders/{order_id}")
async def get_order(order_id: str, db: Database = Depends(database)) -> JsonResponse:
    return JsonResponse(
        await db.short_read(lambda session: orders.view(session, orders.get(session, order_id)))
    )


@router.get("/v1/profiles/{profile_id}/orders")
def get_profile_orders(profile_id: str, db: Database = Depends(database)) -> JsonResponse:
    """Every order of the customer, whatever the channel."""
    with db.read() as session:
        return JsonResponse({"data": orders.orders_of(session, profile_id)})


@router.post("/v1/orders/{order_id}/returns", status_code=201)
def post_return(order_id: str, body: ReturnIn, db: Database = Depends(database)) -> JsonResponse:
    """Goods brought back to any store: restocked there, refund amount computed."""
    with db.write() as session:
        record, created = orders.return_items(
            session, order_id, location_id=body.location_id, lines=_lines(body.lines), channel=body.channel,
            request_id=body.request_id, reason=body.reason, now=utcnow(),
        )  # fmt: skip
        return JsonResponse({"id": record.id, "order_id": record.order_id, "location_id": record.location_id,
                             "lines": record.lines, "refund_amount": str(record.refund_amount),
                             "created_at": as_utc(record.created_at).isoformat()},
                            status_code=201 if created else 200)  # fmt: skip
