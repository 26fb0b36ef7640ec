"""Orders from any channel, attached to the unified profile, fulfilled by shipping from a warehouse or a
store, click & collect (from the store's shelf, or transferred there from another location with a later
pickup date) or a relay point; endless aisle: a store orders for the customer what it lacks. Returns are
taken anywhere: restocked where they are received, refund computed, the return policy enforced."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from parcours.commerce import loyalty, reservations, stock
from parcours.commerce.events import timeline_event
from parcours.commerce.offers import LineDetail, price_lines
from parcours.errors import Conflict, InsufficientStock, InvalidInput, NotFound
from parcours.identity.service import people, resolve_profile_id
from parcours.ids import new_id
from parcours.models import (
    Counter,
    Identifier,
    Location,
    Order,
    OrderLine,
    Return,
    ReturnPolicy,
    StockLevel,
)
from parcours.vocabulary import CHANNELS

FULFILMENTS = ("ship_from_warehouse", "ship_from_store", "click_collect", "relay")
CENT = Decimal("0.01")
DEFAULT_RETURN_DAYS = 30


def is_member(session: Session, profile_id: str | None) -> bool:
    """A loyalty member: the profile holds a loyalty card (member-only promotions apply)."""
    if profile_id is None:
        return False
    found = session.scalar(
        select(Identifier.id)
        .where(Identifier.profile_id == profile_id, Identifier.kind == "loyalty_card")
        .limit(1)
    )
    return found is not None


def _priced(session: Session, lines: list[dict[str, Any]], *, channel: str, currency: str, profile_id: str | None,
            now: datetime) -> tuple[Decimal, Decimal, dict[str, LineDetail]]:  # fmt: skip
    """The offer's prices, the same on every channel (see ``commerce.offers``), promotions applied."""
    subtotal, discount, details = price_lines(session, lines, channel=channel, currency=currency,
                                              member=is_member(session, profile_id), now=now)  # fmt: skip
    return subtotal, discount, {detail.sku: detail for detail in details}


def _source_for(
    session: Session, sku: str, quantity: int, kinds: tuple[str, ...], exclude: str | None
) -> str:
    """A location of one of ``kinds`` with ``quantity`` available (warehouses before stores, then the
    most available), or InsufficientStock."""
    rows = session.execute(
        select(StockLevel.location_id, Location.kind, StockLevel.on_hand - StockLevel.reserved)
        .join(Location, Location.id == StockLevel.location_id)
        .where(StockLevel.sku == sku, Location.kind.in_(kinds), Location.active.is_(True))
    ).all()
    usable = [(kind != "warehouse", -free, location) for location, kind, free in rows
              if free >= quantity and location != exclude]  # fmt: skip
    if not usable:
        raise InsufficientStock(f"insufficient stock: no location has {quantity} of {sku} available",
                                details={"sku": sku, "asked": quantity})  # fmt: skip
    return min(usable)[2]


def lines_of(session: Session, order_ids: list[str]) -> dict[str, list[OrderLine]]:
    """The lines of several orders in one statement, in order of entry."""
    found: dict[str, list[OrderLine]] = {order_id: [] for order_id in order_ids}
    for part in (order_ids[i : i + 500] for i in range(0, len(order_ids), 500)):
        for line in session.scalars(
            select(OrderLine).where(OrderLine.order_id.in_(part)).order_by(OrderLine.id)
        ):
            found[line.order_id].append(line)
    return found


def view(session: Session, order: Order, lines: list[OrderLine] | None = None) -> dict[str, Any]:
    if lines is None:
        lines = lines_of(session, [order.id])[order.id]
    return {
        "id": order.id,
        "number": order.number,
        "profile_id": order.profile_id,
        "channel": order.channel,
        "fulfilment": order.fulfilment,
        "source_location_id": order.source_location_id,
        "pickup_location_id": order.pickup_location_id,
        "ordering_location_id": order.ordering_location_id,
        "status": order.status,
        "currency": order.currency,
        "subtotal": str(order.subtotal),
        "discount": str(order.discount),
        "delivery_cost": str(order.delivery_cost),
        "total": str(order.total),
        "ready_on": order.ready_on.isoformat() if order.ready_on else None,
        "created_at": order.created_at.isoformat(),
        "lines": [
            {"sku": line.sku, "quantity": line.quantity, "unit_price": str(line.unit_price),
             "discount": str(line.discount), "returned": line.returned}
            for line in lines
        ],
    }  # fmt: skip


def place(
    session: Session,
    *,
    channel: str,
    request_id: str,
    lines: list[dict[str, Any]],
    fulfilment: str,
    profile_id: str | None,
    now: datetime,
    source_location_id: str | None = None,
    pickup_location_id: str | None = None,
    ordering_location_id: str | None = None,
    currency: str = "EUR",
    delivery_cost: Decimal = Decimal("0"),
) -> tuple[Order, bool]:
    """Place an order: the goods are taken from stock at once (all lines or none). Idempotent on
    (channel, request_id). ``ordering_location_id``: the store that ordered it for the customer
    (endless aisle)."""
    if channel not in CHANNELS:
        raise InvalidInput(f"channel: unknown channel {channel!r}")
    if fulfilment not in FULFILMENTS:
        raise InvalidInput(f"fulfilment: must be one of {', '.join(FULFILMENTS)}")
    if not request_id or len(request_id) > 100:
        raise InvalidInput("request_id: 1 to 100 characters")
    if delivery_cost < 0:
        raise InvalidInput("delivery_cost: must not be negative")
    lines = reservations.check_lines(lines)
    existing = session.scalar(select(Order).where(Order.channel == channel, Order.request_id == request_id))
    if existing is not None:
        return existing, False
    if profile_id is not None:
        profile_id = resolve_profile_id(session, profile_id)
    if ordering_location_id is not None:
        ordering = session.get(Location, ordering_location_id)
        if ordering is None or ordering.kind != "store":
            raise InvalidInput(f"ordering_location_id: {ordering_location_id!r} is not a store")
    pickup = session.get(Location, pickup_location_id) if pickup_location_id else None
    if fulfilment in ("click_collect", "relay"):
        wanted = "store" if fulfilment == "click_collect" else "relay"
        if pickup is None or pickup.kind != wanted:
            raise InvalidInput(f"pickup_location_id: a {wanted} is needed for {fulfilment}")
    order_id = new_id("ord")
    ready_on: datetime | None = None
    plan: list[tuple[dict[str, Any], str, bool]] = []  # (line, source, reserved at pickup store)
    for line in lines:
        sku, quantity = line["sku"], line["quantity"]
        if fulfilment == "ship_from_warehouse":
            source = source_location_id or _source_for(session, sku, quantity, ("warehouse",), None)
            ready = now + timedelta(days=2)
        elif fulfilment == "ship_from_store":
            if source_location_id is None:
                raise InvalidInput("source_location_id: the store that ships is needed for ship_from_store")
            source, ready = source_location_id, now + timedelta(days=2)
        elif fulfilment == "click_collect":
            assert pickup is not None
            if stock.available(session, sku, pickup.id) >= quantity:
                source, ready = pickup.id, now + timedelta(hours=stock.READY_HOURS)
            else:  # transferred from a warehouse or another store
                source = _source_for(session, sku, quantity, ("warehouse", "store"), pickup.id)
                ready = now + timedelta(days=stock.TRANSFER_DAYS)
        else:  # relay
            source = source_location_id or _source_for(session, sku, quantity, ("warehouse",), None)
            ready = now + timedelta(days=stock.RELAY_DAYS)
        plan.append((line, source, False))
        ready_on = max(ready_on or ready, ready)
    subtotal, discount, details = _priced(session, lines, channel=channel, currency=currency,
                                          profile_id=profile_id, now=now)  # fmt: skip
    order = Order(
        id=order_id,
        number=_next_number(session),
        profile_id=profile_id,
        channel=channel,
        request_id=request_id,
        fulfilment=fulfilment,
        source_location_id=plan[0][1],
        pickup_location_id=pickup.id if pickup else None,
        ordering_location_id=ordering_location_id,
        status="placed",
        currency=currency,
        subtotal=subtotal,
        discount=discount.quantize(CENT),
        delivery_cost=delivery_cost.quantize(CENT),
        total=(subtotal - discount + delivery_cost).quantize(CENT),
        ready_on=ready_on,
        created_at=now,
    )
    try:
        with session.begin_nested():  # all lines or none
            for line, source, _ in plan:
                reason = (
                    "transfer_out"
                    if fulfilment == "click_collect" and pickup and source != pickup.id
                    else "sale"
                )
                stock.take(session, line["sku"], source, line["quantity"], reserved=False, reference=order_id,
                           reason=reason, now=now)  # fmt: skip
            session.add(order)
            session.flush()
            for line, _, _ in plan:
                detail = details[line["sku"]]
                session.add(OrderLine(order_id=order_id, sku=line["sku"], quantity=line["quantity"],
                                      unit_price=detail.unit_price, discount=detail.discount, returned=0))  # fmt: skip
            session.flush()
    except IntegrityError:  # the same request twice at once: the other one won
        return place(session, channel=channel, request_id=request_id, lines=lines, fulfilment=fulfilment,
                     profile_id=profile_id, now=now, source_location_id=source_location_id,
                     pickup_location_id=pickup_location_id, ordering_location_id=ordering_location_id,
                     currency=currency, delivery_cost=delivery_cost)  # fmt: skip
    timeline_event(session, profile_id, "Order Completed", channel,
                   {"order_id": order.number, "total": str(order.total), "currency": currency,
                    "fulfilment": fulfilment, "pickup_location_id": order.pickup_location_id}, now)  # fmt: skip
    return order, True


ORDER_NUMBER = "order_number"  # the counter holding the last order number
FIRST_NUMBER = 200_001


def _next_number(session: Session) -> str:
    """CMD-200001, CMD-200002, ...: a counter incremented by the statement that reads it, so concurrent
    orders never share a number (the row stays locked until the order commits)."""
    bump = (
        update(Counter)
        .where(Counter.name == ORDER_NUMBER)
        .values(value=Counter.value + 1)
        .returning(Counter.value)
        .execution_options(synchronize_session=False)
    )
    value = session.execute(bump).scalar_one_or_none()
    if value is None:  # the first order of the installation
        try:
            with session.begin_nested():
                session.add(Counter(name=ORDER_NUMBER, value=FIRST_NUMBER))
                session.flush()
            value = FIRST_NUMBER
        except IntegrityError:  # another first order made the row meanwhile
            value = session.execute(bump).scalar_one()
    return f"CMD-{value}"


def collect_reservation(
    session: Session, reservation_id: str, *, profile_id: str | None, now: datetime
) -> Order:
    """The customer picks up (and pays for) a reservation in store: an order of the reserved units."""
    reservation = reservations.get(session, reservation_id, lock=True)
    if reservation.status != "held":
        raise Conflict(f"reservation {reservation_id} is {reservation.status}")
    if reservation.expires_at <= now:
        raise Conflict(f"reservation {reservation_id} expired at {reservation.expires_at.isoformat()}")
    member = resolve_profile_id(session, profile_id) if profile_id else reservation.profile_id
    order_id = new_id("ord")
    subtotal, discount, details = _priced(session, reservation.lines, channel="store", currency="EUR",
                                          profile_id=member, now=now)  # fmt: skip
    for line in reservation.lines:
        stock.take(session, line["sku"], reservation.location_id, line["quantity"], reserved=True,
                   reference=order_id, reason="collected", now=now)  # fmt: skip
    order = Order(id=order_id, number=_next_number(session), profile_id=member, channel="store",
                  request_id=f"reservation:{reservation_id}", fulfilment="click_collect",
                  source_location_id=reservation.location_id, pickup_location_id=reservation.location_id,
                  ordering_location_id=None, status="collected", currency="EUR", subtotal=subtotal,
                  discount=discount, delivery_cost=Decimal("0.00"), total=(subtotal - discount).quantize(CENT),
                  ready_on=now, created_at=now)  # fmt: skip
    session.add(order)
    session.flush()
    for line in reservation.lines:
        detail = details[line["sku"]]
        session.add(OrderLine(order_id=order_id, sku=line["sku"], quantity=line["quantity"],
                              unit_price=detail.unit_price, discount=detail.discount, returned=0))  # fmt: skip
    reservations.mark_collected(session, reservation, order_id, now)
    timeline_event(session, member, "Order Completed", "store",
                   {"order_id": order.number, "total": str(order.total), "currency": "EUR",
                    "reservation_id": reservation_id}, now)  # fmt: skip
    loyalty.earn_for_order(session, order, now)
    return order


PICKUP_FULFILMENTS = ("click_collect", "relay")


def hand_over(session: Session, order_id: str, *, location_id: str, now: datetime) -> Order:
    """The customer collects a click & collect (or relay) order at its pickup location: the order becomes
    collected, the timeline says so, and its points are earned (once, whatever is retried). Refused
    elsewhere than the pickup location, while goods sent from another location are still on their way
    (before the promised date), and for an order already collected or cancelled."""
    order = get(session, order_id, lock=True)
    if order.fulfilment not in PICKUP_FULFILMENTS:
        raise Conflict(f"order {order.number} is delivered ({order.fulfilment}), not picked up")
    if order.pickup_location_id != location_id:
        raise Conflict(f"order {order.number} is to be picked up at {order.pickup_location_id}, not here")
    if order.status not in ("placed", "ready"):
        raise Conflict(f"order {order.number} is {order.status}")
    in_transit = order.source_location_id != order.pickup_location_id
    if in_transit and order.ready_on is not None and order.ready_on > now:
        raise Conflict(f"order {order.number} is not ready before {order.ready_on.isoformat()}")
    order.status = "collected"
    session.flush()
    timeline_event(session, order.profile_id, "Order Collected", "store",
                   {"order_id": order.number, "location_id": location_id}, now)  # fmt: skip
    loyalty.earn_for_order(session, order, now)
    return order


def get(session: Session, order_id: str, *, lock: bool = False) -> Order:
    """The order, by id or number; ``lock``: its row locked until the transaction ends (PostgreSQL;
    SQLite writers are serialised already) and read afresh, so that two changes at once cannot both
    pass their checks."""
    if lock:
        order = session.scalar(
            select(Order)
            .where(or_(Order.id == order_id, Order.number == order_id))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    else:
        order = session.get(Order, order_id) or session.scalar(select(Order).where(Order.number == order_id))
    if order is None:
        raise NotFound(f"order {order_id} not found")
    return order


def recent(session: Session, profile_ids: list[str], limit: int | None = None) -> list[Order]:
    """The latest orders (``limit``, or all) of these profiles — one person's, merged ones included —
    from every channel, newest first."""
    return list(session.scalars(
        select(Order).where(Order.profile_id.in_(profile_ids)).order_by(Order.created_at.desc(), Order.id).limit(limit)))  # fmt: skip


def orders_of(session: Session, profile_id: str, *, limit: int | None = None) -> list[dict[str, Any]]:
    """The customer's orders (the ``limit`` latest, or all), from every channel, newest first; two
    statements whatever their number."""
    found = recent(session, people(session, resolve_profile_id(session, profile_id)), limit)
    lines = lines_of(session, [o.id for o in found])
    return [view(session, o, lines[o.id]) for o in found]


# -------------------------------------------------------------------------------------------- returns
def return_items(
    session: Session,
    order_id: str,
    *,
    location_id: str,
    lines: list[dict[str, Any]],
    channel: str,
    request_id: str,
    reason: str,
    now: datetime,
) -> tuple[Return, bool]:
    """Goods of an order brought back to any store or warehouse: within the return policy's days, no
    more than bought and not yet returned; restocked at ``location_id``; the refund is the price paid.
    The order stays locked until the commit: two returns at once cannot both take the last unit."""
    order = get(session, order_id, lock=True)
    existing = session.scalar(
        select(Return).where(Return.channel == channel, Return.request_id == request_id)
    )
    if existing is not None:
        return existing, False
    location = session.get(Location, location_id)
    if location is None or location.kind == "relay":
        raise InvalidInput(f"location_id: {location_id!r} is not a store or warehouse taking returns")
    # The policy the order was bought under: its channel's own, where one is configured, else the policy.
    policies = {
        p.channel: p
        for p in session.scalars(
            select(ReturnPolicy).where(
                or_(ReturnPolicy.channel.is_(None), ReturnPolicy.channel == order.channel)
            )
        )
    }
    policy = policies.get(order.channel) or policies.get(None)
    days = policy.days if policy else DEFAULT_RETURN_DAYS
    if now - order.created_at > timedelta(days=days):
        raise Conflict(f"the return period of {days} days for order {order.number} is over")
    lines = reservations.check_lines(lines)
    bought = {
        line.sku: line
        for line in session.scalars(
            select(OrderLine).where(OrderLine.order_id == order.id).execution_options(populate_existing=True)
        )
    }
    refund = Decimal("0")
    for line in lines:
        ordered = bought.get(line["sku"])
        if ordered is None:
            raise InvalidInput(f"lines: {line['sku']} is not in order {order.number}")
        if ordered.returned + line["quantity"] > ordered.quantity:
            raise Conflict(
                f"lines: only {ordered.quantity - ordered.returned} of {line['sku']} can still be returned"
            )
        ordered.returned += line["quantity"]
        refund += (ordered.unit_price - ordered.discount / ordered.quantity) * line["quantity"]
        stock.receive(session, line["sku"], location_id, line["quantity"], reason="return", reference=order.id,
                      now=now)  # fmt: skip
    record = Return(id=new_id("ret"), order_id=order.id, location_id=location_id, channel=channel,
                    request_id=request_id, lines=lines, refund_amount=refund.quantize(CENT, ROUND_HALF_UP),
                    reason=reason[:300], created_at=now)  # fmt: skip
    session.add(record)
    session.flush()
    timeline_event(session, order.profile_id, "Order Refunded", channel,
                   {"order_id": order.number, "return_id": record.id, "refund": str(record.refund_amount),
                    "location_id": location_id}, now)  # fmt: skip
    return record, True
