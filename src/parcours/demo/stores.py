"""The stores: tills, the loyalty club, the in-store kiosk and click & collect pick-ups."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from parcours.demo.catalogue import STORES, Product, Store, product_properties
from parcours.demo.helpers import rng_uuid
from parcours.demo.journey import Journey


class StoreTills(Journey):
    """What the tills and kiosks of the stores send."""

    # ------------------------------------------------------------------ tills and kiosks
    def store_context(self, store: Store, register: int, *extra: tuple[str, str | None]) -> dict[str, Any]:
        return {
            "library": {"name": "caisse-arabica", "version": "3.8.2"},
            "location": {
                "city": store.city,
                "country": "France",
                "latitude": store.latitude,
                "longitude": store.longitude,
            },
            "device": {"id": f"{store.id}-CAISSE-{register}", "type": "pos"},
            "externalIds": self.external(*extra),
        }

    def store_enrol(self, store: Store, *, phone: bool = False) -> None:
        """The associate creates a loyalty card at the till."""
        c = self.c
        traits: dict[str, Any] = {
            "firstName": c.first_name,
            "lastName": c.last_name,
            "loyaltyCard": c.loyalty_card,
            "posCustomerId": c.pos_customer_id,
            "postalCode": c.postal_code,
            "birthday": c.birthday.isoformat(),
            "loyaltyProgram": "Club Arabica",
        }
        if phone:
            traits["phone"] = c.mobile_national
            self.learn("phone")
        context = {**self.store_context(store, self.rng.randint(1, 3)), "consent": self.consent()}
        self.emit("store", {"type": "identify", "traits": traits, "context": context})
        self.card_enrolled = True

    def store_purchase(
        self,
        store: Store | None = None,
        items: list[tuple[Product, int]] | None = None,
        *,
        receipt_email: bool = False,
    ) -> str:
        store = store or (self.c.store if self.rng.random() < 0.85 else self.rng.choice(STORES))
        if self.c.loyalty_card and not self.card_enrolled:
            self.store_enrol(store, phone=self.rng.random() < 0.5)
            self.minutes(1, 3)
        items = items or self.basket()
        order_id = self.order_id(store.id)
        properties = self.order_properties(order_id, items, shipping=Decimal("0.00"), affiliation=store.name)
        properties.update(
            store_id=store.id,
            store_name=store.name,
            payment_method=self.rng.choice(("carte_bancaire", "carte_bancaire", "especes", "sans_contact")),
        )
        pairs: list[tuple[str, str | None]] = [
            ("loyalty_card", self.c.loyalty_card),
            ("pos_customer_id", self.c.pos_customer_id),
        ]
        if receipt_email:
            properties["receipt"] = "email"
            pairs.append(("email", self.c.email))
            self.note_email()
        context = self.store_context(store, self.rng.randint(1, 3), *pairs)
        if not context["externalIds"]:  # no card: the till only knows the e-mail for the receipt, or nobody
            context["externalIds"] = self.external(("email", self.c.email))
            self.note_email()
        self.track("store", "Order Completed", properties, context)
        return order_id

    def store_visit(self, store: Store, reason: str) -> None:
        properties = {"store_id": store.id, "store_name": store.name, "reason": reason}
        context = self.store_context(store, 0, ("loyalty_card", self.c.loyalty_card))
        if context["externalIds"]:
            self.track("store", "Store Visited", properties, context)

    def kiosk_showroom(self, store: Store, product: Product) -> None:
        """Scans a machine at the in-store kiosk and has its sheet sent by e-mail."""
        session = rng_uuid(self.rng)
        context: dict[str, Any] = {
            "library": {"name": "borne-arabica", "version": "1.9.0"},
            "device": {"id": f"{store.id}-BORNE-1", "type": "kiosk"},
            "location": {"city": store.city, "country": "France"},
            "locale": self.c.locale,
        }
        item = product_properties(product, store_id=store.id)
        self.track("kiosk", "Product Scanned", item, context, anonymousId=session)
        self.minutes(0.5, 3)
        shared = {**item, "share_via": "email", "share_message": "Fiche produit envoyée depuis la borne"}
        self.track(
            "kiosk",
            "Product Shared",
            shared,
            {**context, "traits": {"email": self.c.email}},
            anonymousId=session,
        )
        self.note_email()

    # ------------------------------------------------------------------ click & collect
    def click_and_collect_pickup(self, order_id: str) -> None:
        self.days(0.5, 3, hours=(9, 18))
        store = self.c.store
        context = self.store_context(
            store, self.rng.randint(1, 3), ("loyalty_card", self.c.loyalty_card), ("email", self.c.email)
        )
        self.track(
            "store",
            "Order Picked Up",
            {"order_id": order_id, "store_id": store.id, "store_name": store.name},
            context,
        )
