"""The associate's actions (POST, CSRF, permission "store"), each acting once for a request id: reserve,
order for the customer what the store lacks (endless aisle), hand over a reservation or a click &
collect order, cancel a reservation."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.commerce import offers, orders, reservations, stock
from parcours.console.common import whole_number
from parcours.console.store.common import CHANNEL, Here, StoreContext, form_context, request_id_of
from parcours.console.web import Page, form_for
from parcours.db.types import utcnow
from parcours.errors import Conflict, Forbidden, InsufficientStock, InvalidInput, NotFound
from parcours.identity import service as identity
from parcours.models import Location, LoyaltyEntry, Order, Profile, Reservation

router = APIRouter(include_in_schema=False)


def back_to(page: Page, context: StoreContext, default: str) -> str:
    """Where a form returns: its ``back`` field when it is a store page, else ``default``."""
    back = page.field("back", "", max_chars=500)
    return back if back.startswith("/console/store") and "//" not in back else context.link(default)


def _customer_field(page: Page, session: Session) -> str:
    return identity.resolve_profile_id(session, page.field("customer", max_chars=60))


@router.post("/console/store/reservations")
def store_reserve(page: Page = Depends(form_for("store"))) -> Response:
    t = page.t
    context, _ = form_context(page)
    request_id = request_id_of(page)
    quantity = whole_number(page, "quantity", 1, 1000, label=t.gettext("Quantity"))
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
    context, here = form_context(page)
    request_id = request_id_of(page)
    quantity = whole_number(page, "quantity", 1, 1000, label=t.gettext("Quantity"))
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
    context, here = form_context(page)
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
    context, here = form_context(page)
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
    context, here = form_context(page)
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
