"""The mobile app (analytics-swift and analytics-kotlin)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from parcours.demo.catalogue import RETAILER_NAME, product_properties
from parcours.demo.helpers import rng_uuid
from parcours.demo.journey import Journey

_APP_DEVICES = (
    ({"manufacturer": "Apple", "model": "iPhone15,2", "type": "ios"}, {"name": "iOS", "version": "17.4"}),
    ({"manufacturer": "Apple", "model": "iPhone13,2", "type": "ios"}, {"name": "iOS", "version": "16.7"}),
    (
        {"manufacturer": "samsung", "model": "SM-S911B", "type": "android"},
        {"name": "Android", "version": "14"},
    ),
    ({"manufacturer": "Google", "model": "Pixel 7", "type": "android"}, {"name": "Android", "version": "14"}),
    (
        {"manufacturer": "Xiaomi", "model": "2201117TY", "type": "android"},
        {"name": "Android", "version": "13"},
    ),
)


class MobileApp(Journey):
    """Installing the app, signing in, browsing and ordering for pick-up in store."""

    def app_context(self) -> dict[str, Any]:
        assert self.app_device is not None
        _, device, os_info = self.app_device
        library = "analytics-swift" if os_info["name"] == "iOS" else "analytics-kotlin"
        return {
            "app": {
                "name": RETAILER_NAME,
                "version": "4.12.0",
                "build": "4120",
                "namespace": "fr.maisonarabica",
            },
            "device": dict(device),
            "os": dict(os_info),
            "locale": self.c.locale,
            "library": {"name": library, "version": "1.5.11"},
        }

    def app_ids(self) -> dict[str, str]:
        assert self.app_device is not None
        ids = {"anonymousId": self.app_device[0]}
        if self.app_logged_in and self.c.user_id:
            ids["userId"] = self.c.user_id
        return ids

    def app_install(self) -> None:
        device, os_info = self.rng.choice(_APP_DEVICES)
        self.app_device = (rng_uuid(self.rng), device, os_info)
        self.track(
            "app",
            "Application Installed",
            {"version": "4.12.0", "build": "4120"},
            self.app_context(),
            **self.app_ids(),
        )
        self.minutes(0.1, 1)
        self.emit(
            "app", {"type": "screen", "name": "Bienvenue", "context": self.app_context(), **self.app_ids()}
        )

    def app_sign_in(self) -> None:
        self.minutes(0.5, 4)
        self.app_logged_in = True
        context = {**self.app_context(), "consent": self.consent()}
        traits = self.full_traits(card=True)
        self.emit("app", {"type": "identify", "traits": traits, "context": context, **self.app_ids()})
        self.note_email()
        self.learn("account")

    def app_session(self, *, order: bool = False) -> str | None:
        if self.app_device is None:
            self.app_install()
        ids, context = self.app_ids(), self.app_context()
        if self.rng.random() < 0.3:
            self.track(
                "app", "Push Notification Opened", {"campaign": "Nouveautés de la semaine"}, context, **ids
            )
        self.track(
            "app",
            "Application Opened",
            {"from_background": self.rng.random() < 0.5, "version": "4.12.0"},
            context,
            **ids,
        )
        self.emit("app", {"type": "screen", "name": "Accueil", "context": context, **ids})
        products = self.favourite_products(self.rng.randint(1, 2))
        for product in products:
            self.minutes(0.2, 2)
            self.emit(
                "app",
                {
                    "type": "screen",
                    "name": "Fiche produit",
                    "properties": {"sku": product.sku},
                    "context": context,
                    **ids,
                },
            )
            self.track("app", "Product Viewed", product_properties(product), context, **ids)
        if self.rng.random() < 0.4 and self.c.loyalty_card:
            self.emit("app", {"type": "screen", "name": "Ma carte Club Arabica", "context": context, **ids})
        if not order:
            return None
        items = self.basket(products[0])
        order_id = self.order_id("A")
        properties = self.order_properties(
            order_id, items, shipping=Decimal("0.00"), affiliation="Application"
        )
        properties.update(
            delivery_method="retrait_magasin",
            store_id=self.c.store.id,
            payment_method="apple_pay" if context["os"]["name"] == "iOS" else "google_pay",
        )
        self.minutes(1, 5)
        self.track("app", "Order Completed", properties, context, **ids)
        return order_id
