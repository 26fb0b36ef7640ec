"""The demo's commerce: the retailer's catalogue in the price book (one offer for every channel, a
member promotion), delivery options and the return policy, its stores (with their own stock), a warehouse
and relay points, loyalty points earned on the customers' past purchases; the last four weeks' orders on
every selling channel (web, app, phone, Instagram, endless aisle in store), paid by card, some returned;
reservations waiting in stores and click & collect orders to hand over today in the associates' stores."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from parcours.commerce import catalogue, loyalty, orders, payments, reservations, stock
from parcours.db.engine import Database
from parcours.demo.catalogue import PRODUCTS, STORES
from parcours.demo.console_users import ASSOCIATE_STORES
from parcours.demo.helpers import profiles_holding
from parcours.demo.people import DemoCustomer
from parcours.errors import InsufficientStock
from parcours.models import Event, Identifier, OrderLine

RELAYS = (  # a few relay points (tobacconists, newsagents) beside the stores
    ("RELAIS-BASTILLE", "Relais Tabac de la Bastille", "75011", "Paris", 48.8532, 2.3692),
    ("RELAIS-CROIX-ROUSSE", "Presse de la Croix-Rousse", "69004", "Lyon", 45.7745, 4.8320),
    ("RELAIS-CHARTRONS", "Relais des Chartrons", "33000", "Bordeaux", 44.8535, -0.5710),
)


@dataclass
class Shop:
    products: int
    locations: int
    points_posted: int
    reservations_held: int
    orders: int = 0  # recent orders (the orders table), all channels
    orders_by_channel: dict[str, int] = field(default_factory=dict)
    returns: int = 0


def seed_shop(
    database: Database, population: list[DemoCustomer], end: datetime, seed: int, now: datetime | None = None
) -> Shop:
    """The shop as it stands at ``now`` (default ``end``, midnight): history before ``end``, and the
    reservations and pickups waiting today."""
    now = now or end
    rng = random.Random(f"parcours-demo-shop:{seed}")
    with database.write() as session:
        for product in PRODUCTS:
            catalogue.create_product(
                session, product_id=product.sku, name=product.name, category=product.category
            )
            catalogue.create_variant(session, sku=product.sku, product_id=product.sku, name=product.name)
            catalogue.set_price(session, sku=product.sku, currency="EUR", amount=product.price)
        catalogue.create_promotion(session, name="Membres : -10 % sur les cafés", kind="percentage", value="10",
                                   starts_at=end - timedelta(days=30), ends_at=end + timedelta(days=60),
                                   categories=["cafes"], members_only=True)  # fmt: skip
        catalogue.set_delivery_option(
            session, method="home", zone="*", cost="4.90", free_from="49.00", lead_days=2
        )
        catalogue.set_delivery_option(session, method="click_collect", zone="*", cost="0.00", lead_days=0)
        catalogue.set_delivery_option(session, method="relay", zone="*", cost="3.90", lead_days=3)
        catalogue.set_return_policy(session, days=30, refund_methods=["original_payment", "store_credit"],
                                    conditions="Articles non ouverts, avec le ticket ou la commande.")  # fmt: skip
        stock.add_location(session, location_id="ENTREPOT-ORLEANS", kind="warehouse", name="Entrepôt d'Orléans",
                           street="12 rue de l'Industrie", postal_code="45000", city="Orléans", latitude=47.9029,
                           longitude=1.9093)  # fmt: skip
        for store in STORES:
            stock.add_location(session, location_id=store.id, kind="store", name=store.name, street=store.street,
                               postal_code=store.postal_code, city=store.city, latitude=store.latitude,
                               longitude=store.longitude, opening_hours=store.opening_hours,
                               services=["click_collect", "ship_from_store", "returns", "endless_aisle"])  # fmt: skip
        for relay_id, name, postcode, city, latitude, longitude in RELAYS:
            stock.add_location(session, location_id=relay_id, kind="relay", name=name, street="",
                               postal_code=postcode, city=city, latitude=latitude, longitude=longitude,
                               services=["relay_pickup"])  # fmt: skip
        for product in PRODUCTS:
            stock.receive(session, product.sku, "ENTREPOT-ORLEANS", rng.randint(80, 400), now=end)
            for store in STORES:
                if rng.random() < 0.8:  # some stores lack some items: endless aisle and transfers have work
                    stock.receive(session, product.sku, store.id, rng.randint(1, 25), now=end)

    posted = 0
    with database.write() as session:  # points on every past purchase of a card holder, on any channel
        members = dict(session.execute(
            select(Identifier.profile_id, Identifier.value).where(Identifier.kind == "loyalty_card")).all())  # fmt: skip
        for event_id, profile_id, channel, at, properties in session.execute(
            select(Event.id, Event.profile_id, Event.channel, Event.timestamp, Event.properties).where(
                Event.name == "Order Completed", Event.profile_id.in_(list(members)))
        ):  # fmt: skip
            total = (properties or {}).get("total") or (properties or {}).get("revenue")
            points = int(Decimal(str(total))) if total is not None else 0
            if points >= 1:
                loyalty.post(session, profile_id, kind="earn", points=points, channel=channel,
                             idempotency_key=f"demo-event:{event_id}", now=at)  # fmt: skip
                posted += 1

    held = _reservations(database, [c for c in population if c.loyalty_card], rng, seed, now)
    recent = _recent_orders(database, population, rng, seed, end, now)
    return Shop(len(PRODUCTS), 1 + len(STORES) + len(RELAYS), posted, held, **recent)


def _reservations(
    database: Database, with_cards: list[DemoCustomer], rng: random.Random, seed: int, now: datetime
) -> int:
    """Reserved on the app in the last day and held 48 hours: pickups waiting in the customers' stores,
    and a few more in each associate's store (still held when the demo starts)."""
    members = profiles_holding(
        database, "loyalty_card", [c.loyalty_card for c in with_cards if c.loyalty_card]
    )
    holders = [c for c in with_cards if (c.loyalty_card or "") in members]
    wanted = [(c, c.store.id) for c in rng.sample(holders, min(25, len(holders)))]
    for store_id in ASSOCIATE_STORES:  # locals first; someone working nearby otherwise
        local = [c for c in holders if c.store.id == store_id] or holders
        wanted += [(c, store_id) for c in rng.sample(local, min(4, len(local)))]
    held = 0
    for number, (customer, store_id) in enumerate(wanted):
        with database.write() as session:
            on_shelf = [p for p in PRODUCTS if stock.available(session, p.sku, store_id) > 0]
            if not on_shelf:
                continue
            product = rng.choice(on_shelf)
            reservations.reserve(session, location_id=store_id, lines=[{"sku": product.sku, "quantity": 1}],
                                 channel="app", request_id=f"demo-{seed}-{number}",
                                 profile_id=members[customer.loyalty_card or ""],
                                 now=now - timedelta(hours=rng.uniform(1, 30)), hold_hours=48)  # fmt: skip
            held += 1
    return held


# (channel, how, weight): how the last weeks' orders were placed. "reserve_collect": reserved on the app,
# collected and paid in store the next day (the order of the collection, points earned on the card).
ORDER_KINDS: tuple[tuple[str, str, int], ...] = (
    ("web", "ship_from_warehouse", 30), ("web", "relay", 8), ("app", "reserve_collect", 22),
    ("app", "ship_from_warehouse", 8), ("phone", "ship_from_warehouse", 6), ("instagram", "ship_from_warehouse", 6),
    ("store", "endless_aisle", 15),
)  # fmt: skip
FREE_DELIVERY_FROM = Decimal("49.00")
RECENT_ORDERS = 150  # over the last four weeks
HANDOVERS_PER_STORE = 6  # click & collect orders ready in each associate's store today
HANDOVERS_ELSEWHERE = 6  # and in other stores
RETURNS = 10
NEAREST_RELAY = {"Paris": "RELAIS-BASTILLE", "Lyon": "RELAIS-CROIX-ROUSSE", "Bordeaux": "RELAIS-CHARTRONS"}
RETURN_REASONS = ("Ne correspond pas à la machine", "Cadeau en double", "Produit abîmé à la livraison",
                  "Finalement pas convaincu")  # fmt: skip


@dataclass
class _Planned:
    customer: DemoCustomer
    channel: str
    how: str  # a fulfilment, "endless_aisle" or "reserve_collect"
    at: datetime
    pickup: str | None = None


def _basket(customer: DemoCustomer, rng: random.Random) -> tuple[list[dict[str, Any]], Decimal]:
    """Lines of the customer's favourite kind of product (and sometimes one more), and their list price."""
    product = rng.choice([p for p in PRODUCTS if p.category == customer.favourite] or PRODUCTS)
    basket = [(product, rng.choice((1, 1, 1, 2)))]
    extra = rng.choice(PRODUCTS)
    if rng.random() < 0.35 and extra.sku != product.sku:
        basket.append((extra, 1))
    lines = [{"sku": item.sku, "quantity": quantity} for item, quantity in basket]
    return lines, sum((Decimal(item.price) * quantity for item, quantity in basket), Decimal("0"))


def _plan(known: list[DemoCustomer], rng: random.Random, end: datetime, now: datetime) -> list[_Planned]:
    kinds = [(channel, how) for channel, how, _ in ORDER_KINDS]
    weights = [weight for _, _, weight in ORDER_KINDS]
    plan = []
    for customer in rng.sample(known, min(RECENT_ORDERS, len(known))):
        channel, how = rng.choices(kinds, weights)[0]
        plan.append(_Planned(customer, channel, how, end - timedelta(days=rng.uniform(1, 28))))
    # Click & collect ordered yesterday or the day before: to hand over today, most in the associates' stores.
    for store_id in ASSOCIATE_STORES:
        locals_ = [c for c in known if c.store.id == store_id] or known
        for customer in rng.sample(locals_, min(HANDOVERS_PER_STORE, len(locals_))):
            at = now - timedelta(hours=rng.uniform(20, 44))
            plan.append(_Planned(customer, rng.choice(("web", "app")), "click_collect", at, store_id))
    for customer in rng.sample(known, min(HANDOVERS_ELSEWHERE, len(known))):
        at = now - timedelta(hours=rng.uniform(20, 44))
        plan.append(_Planned(customer, rng.choice(("web", "app")), "click_collect", at, customer.store.id))
    return plan


def _recent_orders(
    database: Database, population: list[DemoCustomer], rng: random.Random, seed: int, end: datetime,
    now: datetime,
) -> dict[str, Any]:  # fmt: skip
    """The last four weeks' orders on every selling channel (paid by card, points earned), reservations
    collected in store, the click & collect orders waiting in the stores today, and a few returns."""
    people = profiles_holding(database, "email", [c.email for c in population])
    known = [c for c in population if c.email in people]
    placed: list[tuple[str, datetime, str]] = []  # (order id, placed at, customer's store)
    channels: dict[str, int] = {}
    for number, planned in enumerate(_plan(known, rng, end, now)):
        customer, channel, how, at = planned.customer, planned.channel, planned.how, planned.at
        lines, subtotal = _basket(customer, rng)
        profile_id = people[customer.email]
        request_id = f"demo-{seed}-order-{number}"
        fields: dict[str, Any] = {}
        if how == "endless_aisle":  # the customer's store orders what it lacks, delivered home
            how, fields["ordering_location_id"] = "ship_from_warehouse", customer.store.id
        elif how == "click_collect":
            fields["pickup_location_id"] = planned.pickup or customer.store.id
        elif how == "relay":
            fields["pickup_location_id"] = NEAREST_RELAY.get(customer.store.city, "RELAIS-BASTILLE")
            fields["delivery_cost"] = Decimal("3.90")
        if how == "ship_from_warehouse" and subtotal < FREE_DELIVERY_FROM:
            fields["delivery_cost"] = Decimal("4.90")
        try:
            with database.write() as session:
                if how == "reserve_collect":
                    reservation, _ = reservations.reserve(session, location_id=customer.store.id, lines=lines,
                                                          channel=channel, request_id=request_id,
                                                          profile_id=profile_id, now=at, hold_hours=48)  # fmt: skip
                    at += timedelta(hours=rng.uniform(3, 30))
                    order = orders.collect_reservation(session, reservation.id, profile_id=profile_id, now=at)
                    channel = "store"  # paid at the till when collected
                else:
                    order, _ = orders.place(session, channel=channel, request_id=request_id, lines=lines,
                                            fulfilment=how, profile_id=profile_id, now=at, **fields)  # fmt: skip
                    # paid by card online; by order number (the card-number guard can mistake an id's
                    # digits for a card number)
                    if channel != "store":
                        payments.record_payment(session, order.number, kind="payment", method="card",
                                                provider="demo-psp", provider_reference=f"demo-{seed}-pay-{number}",
                                                amount=order.total, currency=order.currency, status="captured",
                                                last4=f"{rng.randrange(10**4):04d}", now=at)  # fmt: skip
                    if customer.loyalty_card:  # members earn points on every channel
                        loyalty.earn_for_order(session, order, at)
                placed.append((order.id, at, customer.store.id))
                channels[channel] = channels.get(channel, 0) + 1
        except InsufficientStock:  # not in stock where the customer wanted it: no order
            continue

    returned = 0
    for order_id, at, home_store in rng.sample(placed, min(RETURNS * 2, len(placed))):
        back_at = at + timedelta(days=rng.uniform(3, 8))
        if returned >= RETURNS or back_at >= now:
            continue
        with database.write() as session:  # brought back to the customer's store, whatever the channel
            order = orders.get(session, order_id)
            line = session.scalars(select(OrderLine).where(OrderLine.order_id == order.id)).first()
            assert line is not None
            record, _ = orders.return_items(session, order_id, location_id=home_store, lines=[{"sku": line.sku,
                                            "quantity": 1}], channel="store", request_id=f"demo-{seed}-return-{returned}",
                                            reason=rng.choice(RETURN_REASONS), now=back_at)  # fmt: skip
            if order.channel != "store":  # refunded to the card it was paid with
                payments.record_payment(session, order.number, kind="refund", method="card", provider="demo-psp",
                                        provider_reference=f"demo-{seed}-refund-{returned}",
                                        amount=record.refund_amount, currency=order.currency, status="refunded",
                                        now=back_at)  # fmt: skip
            returned += 1
    return {"orders": len(placed), "orders_by_channel": dict(sorted(channels.items())), "returns": returned}
