"""The demo's commerce: the retailer's catalogue in the price book (one offer for every channel, a
member promotion), delivery options and the return policy, its stores (with their own stock), a warehouse
and relay points, loyalty points earned on the customers' past purchases, and a few reservations waiting
in stores."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from parcours.commerce import catalogue, loyalty, reservations, stock
from parcours.db.engine import Database
from parcours.demo.catalogue import PRODUCTS, STORES
from parcours.demo.people import DemoCustomer
from parcours.models import Event, Identifier

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


def seed_shop(database: Database, population: list[DemoCustomer], end: datetime, seed: int) -> Shop:
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

    held = 0
    with_cards = [c for c in population if c.loyalty_card]
    for number, customer in enumerate(rng.sample(with_cards, min(25, len(with_cards)))):
        product = rng.choice(PRODUCTS)
        with database.write() as session:
            profile = session.scalar(select(Identifier.profile_id).where(
                Identifier.kind == "loyalty_card", Identifier.value == customer.loyalty_card))  # fmt: skip
            if stock.available(session, product.sku, customer.store.id) < 1:
                continue
            reservations.reserve(session, location_id=customer.store.id, lines=[{"sku": product.sku, "quantity": 1}],
                                 channel="app", request_id=f"demo-{seed}-{number}", profile_id=profile,
                                 now=end - timedelta(hours=rng.uniform(1, 30)), hold_hours=48)  # fmt: skip
            held += 1
    return Shop(len(PRODUCTS), 1 + len(STORES) + len(RELAYS), posted, held)
