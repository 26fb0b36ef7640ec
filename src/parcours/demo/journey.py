"""A customer's journey: the clock, the messages sent, what the brand knows, baskets and orders.

Each channel adds its own messages in a subclass of :class:`Journey`; :mod:`parcours.demo.personas` joins
them into the journey a persona lives.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

from parcours.demo.catalogue import CURRENCY, PRODUCTS, Product, product_properties
from parcours.demo.helpers import iso_utc, money, rng_uuid
from parcours.demo.people import DemoCustomer


class Done(Exception):
    """The journey reached the present: nothing more happens to this customer."""


@dataclass
class Pending:
    """A message waiting to be ingested, in time order (``seq`` breaks ties)."""

    timestamp: datetime
    seq: int
    source: str
    message: dict[str, Any]


@dataclass
class World:
    """The whole population's history: its time span, the messages drawn and the shared counters."""

    start: datetime
    end: datetime
    pending: list[Pending] = field(default_factory=list)
    seq: Iterator[int] = field(default_factory=count)
    order_numbers: Iterator[int] = field(default_factory=lambda: count(100_001))
    calls: Iterator[int] = field(default_factory=lambda: count(500_001))
    coupons: Iterator[int] = field(default_factory=lambda: count(70_001))


class Journey:
    """One customer's life with the brand: a clock that only moves forward and the messages sent.

    The channels (:mod:`~parcours.demo.web`, :mod:`~parcours.demo.app`, :mod:`~parcours.demo.stores`,
    :mod:`~parcours.demo.conversations`) add their messages as subclasses; the state they share lives here.
    """

    def __init__(self, world: World, customer: DemoCustomer, rng: random.Random, start: datetime) -> None:
        self.world = world
        self.c = customer
        self.rng = rng
        self.t = start
        self.browsers: list[tuple[str, str]] = []  # (anonymousId, user agent), reused across visits
        self.app_device: tuple[str, dict[str, str], dict[str, str]] | None = None
        self.app_logged_in = False
        # When the brand learnt something: "email", "phone", "account", "opt_in" (marketing), "sms_stop", …
        self.since: dict[str, datetime] = {}
        self.card_enrolled = False
        self.unsubscribed = False

    # ------------------------------------------------------------------ time
    def minutes(self, low: float, high: float) -> None:
        self.t += timedelta(minutes=self.rng.uniform(low, high))

    def days(self, low: float, high: float, hours: tuple[int, int] = (6, 21)) -> None:
        """Jump some days ahead to a time of day (UTC) when this kind of thing happens."""
        day = (self.t + timedelta(days=self.rng.uniform(low, high))).date()
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
            hours=self.rng.randint(hours[0], hours[1] - 1),
            minutes=self.rng.randint(0, 59),
            seconds=self.rng.randint(0, 59),
        )
        self.t = max(moment, self.t + timedelta(minutes=10))
        if self.t > self.world.end:
            raise Done

    # ------------------------------------------------------------------ sending
    def emit(self, source: str, message: dict[str, Any]) -> None:
        if self.t > self.world.end:
            raise Done
        message["messageId"] = rng_uuid(self.rng)
        message["timestamp"] = iso_utc(self.t)
        self.world.pending.append(Pending(self.t, next(self.world.seq), source, message))
        self.t += timedelta(seconds=self.rng.randint(5, 90))

    def track(
        self, source: str, event: str, properties: dict[str, Any], context: dict[str, Any], **ids: Any
    ) -> None:
        self.emit(
            source, {"type": "track", "event": event, "properties": properties, "context": context, **ids}
        )

    # ------------------------------------------------------------------ identifiers as each system sees them
    def card_spaced(self) -> str:
        card = self.c.loyalty_card or ""
        return " ".join(card[i : i + 4] for i in range(0, len(card), 4))

    def external(self, *pairs: tuple[str, str | None]) -> list[dict[str, str]]:
        return [
            {"id": value, "type": kind, "collection": "users", "encoding": "none"}
            for kind, value in pairs
            if value is not None
        ]

    def full_traits(self, *, phone: bool = True, card: bool = False) -> dict[str, Any]:
        c = self.c
        traits: dict[str, Any] = {
            "firstName": c.first_name,
            "lastName": c.last_name,
            "email": c.email if self.rng.random() < 0.85 else c.email.capitalize(),
            "birthday": c.birthday.isoformat(),
            "gender": c.gender,
            "address": {"street": c.street, "postalCode": c.postal_code, "city": c.city, "country": "FR"},
            "language": c.language,
            "preferredStore": c.store.id,
        }
        if phone:
            traits["phone"] = c.mobile if self.rng.random() < 0.6 else c.mobile_national
            self.learn("phone")
        if card and c.loyalty_card:
            traits["loyaltyCard"] = self.card_spaced()
        return traits

    def consent(self) -> dict[str, Any]:
        """What the customer ticks on a sign-up form (the same answer everywhere)."""
        if self.c.marketing:
            self.learn("opt_in")
        return {"categoryPreferences": {"marketing": self.c.marketing, "analytics": True}}

    def learn(self, *facts: str) -> None:
        for fact in facts:
            self.since.setdefault(fact, self.t)

    def knows(self, fact: str, at: datetime | None = None) -> bool:
        return fact in self.since and self.since[fact] <= (at or self.t)

    def note_email(self) -> None:
        self.learn("email")

    # ------------------------------------------------------------------ catalogue
    def favourite_products(self, how_many: int) -> list[Product]:
        liked = [p for p in PRODUCTS if p.category == self.c.favourite]
        others = [p for p in PRODUCTS if p.category != self.c.favourite]
        picked: list[Product] = []
        while len(picked) < how_many:
            pool = liked if self.rng.random() < 0.7 else others
            product = self.rng.choice(pool)
            if product not in picked:
                picked.append(product)
        return picked

    def basket(self, around: Product | None = None) -> list[tuple[Product, int]]:
        items: list[tuple[Product, int]] = []
        if around is not None:
            items.append((around, 1))
        for product in self.favourite_products(self.rng.randint(1, 3)):
            if product not in [p for p, _ in items]:
                quantity = self.rng.randint(2, 8) if product.category == "capsules" else 1
                items.append((product, quantity))
        return items[:4]

    def order_properties(
        self, order_id: str, items: list[tuple[Product, int]], *, shipping: Decimal, affiliation: str
    ) -> dict[str, Any]:
        subtotal = sum((Decimal(p.price) * q for p, q in items), Decimal("0"))
        discount = Decimal("0")
        coupon = None
        if self.c.loyalty_card and self.rng.random() < 0.2:
            discount = Decimal("5.00")
            coupon = "FIDELITE5"
        elif self.rng.random() < 0.08:
            discount = (subtotal * Decimal("0.10")).quantize(Decimal("0.01"))
            coupon = "BIENVENUE10"
        total = subtotal - discount + shipping
        properties: dict[str, Any] = {
            "order_id": order_id,
            "affiliation": affiliation,
            "subtotal": money(subtotal),
            "shipping": money(shipping),
            "discount": money(discount),
            "total": money(total),
            "revenue": money(subtotal - discount),
            "currency": CURRENCY,
            "products": [product_properties(p, quantity=q) for p, q in items],
        }
        if coupon:
            properties["coupon"] = coupon
        return properties

    def order_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.world.order_numbers)}"
