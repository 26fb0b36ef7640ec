"""The web shop (analytics.js) and the newsletters that bring customers back to it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from parcours.demo.catalogue import RETAILER_NAME, RETAILER_WEBSITE, Product, product_properties
from parcours.demo.helpers import iso_utc, rng_uuid
from parcours.demo.journey import Journey

_DESKTOP_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
    "Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
_MOBILE_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile "
    "Safari/537.36",
)
_SEARCHES = ("capsules compatibles", "décaféiné", "moulin", "machine à grain", "thé vert", "coffret cadeau")


class WebShop(Journey):
    """Browsing, signing up and ordering on the web shop; the e-mailing tool's campaigns."""

    # ------------------------------------------------------------------ web shop
    def browser(self, mobile: bool | None = None) -> tuple[str, str]:
        if self.browsers and (mobile is None or self.rng.random() < 0.75):
            return self.rng.choice(self.browsers)
        is_mobile = self.rng.random() < 0.55 if mobile is None else mobile
        agent = self.rng.choice(_MOBILE_AGENTS if is_mobile else _DESKTOP_AGENTS)
        pair = (rng_uuid(self.rng), agent)
        self.browsers.append(pair)
        return pair

    def web_context(self, agent: str, path: str, title: str, referrer: str = "") -> dict[str, Any]:
        return {
            "library": {"name": "analytics.js", "version": "next-1.70.0"},
            "locale": self.c.locale,
            "userAgent": agent,
            "page": {"path": path, "url": RETAILER_WEBSITE + path, "title": title, "referrer": referrer},
        }

    def web_ids(self, anon: str, user_id: str | None) -> dict[str, str]:
        return {"anonymousId": anon, "userId": user_id} if user_id else {"anonymousId": anon}

    def web_visit(
        self,
        browser: tuple[str, str],
        *,
        user_id: str | None = None,
        products: list[Product] | None = None,
        add: bool = False,
        campaign: str | None = None,
    ) -> list[Product]:
        anon, agent = browser
        ids = self.web_ids(anon, user_id)
        referrer = self.rng.choice(
            ("https://www.google.fr/", "https://www.google.fr/", "https://www.instagram.com/", "")
        )
        context = self.web_context(agent, "/", f"{RETAILER_NAME} - Cafés, thés et machines", referrer)
        if campaign:
            context["campaign"] = {"source": "newsletter", "medium": "email", "name": campaign}
        self.emit(
            "web", {"type": "page", "name": "Accueil", "properties": {"path": "/"}, "context": context, **ids}
        )
        viewed = products or self.favourite_products(self.rng.randint(1, 3))
        if self.rng.random() < 0.25:
            self.minutes(0.2, 2)
            query = self.rng.choice(_SEARCHES)
            context = self.web_context(agent, f"/recherche?q={query}", "Recherche")
            self.track("web", "Products Searched", {"query": query}, context, **ids)
        for product in viewed:
            self.minutes(0.3, 4)
            path = f"/produits/{product.slug}"
            properties = product_properties(product, url=product.url)
            self.track(
                "web", "Product Viewed", properties, self.web_context(agent, path, product.name), **ids
            )
        if add:
            product = viewed[0]
            self.minutes(0.2, 3)
            properties = product_properties(product, quantity=1)
            path = f"/produits/{product.slug}"
            self.track("web", "Product Added", properties, self.web_context(agent, path, product.name), **ids)
        return viewed

    def web_identify(
        self,
        browser: tuple[str, str],
        *,
        user_id: str | None,
        card: bool = False,
        phone: bool = True,
        path: str = "/compte/creation",
    ) -> None:
        anon, agent = browser
        message: dict[str, Any] = {
            "type": "identify",
            "traits": self.full_traits(phone=phone, card=card),
            "context": {**self.web_context(agent, path, "Mon compte"), "consent": self.consent()},
            **self.web_ids(anon, user_id),
        }
        if user_id:
            message["traits"]["createdAt"] = iso_utc(self.t)
            self.learn("account")
        self.emit("web", message)
        self.note_email()

    def web_order(
        self, browser: tuple[str, str], user_id: str | None, items: list[tuple[Product, int]]
    ) -> str:
        anon, agent = browser
        ids = self.web_ids(anon, user_id)
        order_id = self.order_id("W")
        delivery = self.rng.choice(("domicile", "domicile", "point_relais", "retrait_magasin"))
        subtotal = sum((Decimal(p.price) * q for p, q in items), Decimal("0"))
        shipping = Decimal("0.00")
        if delivery == "domicile" and subtotal < Decimal("49.00"):
            shipping = Decimal("4.90")
        elif delivery == "point_relais" and subtotal < Decimal("49.00"):
            shipping = Decimal("2.90")
        self.minutes(1, 6)
        context = self.web_context(agent, "/commande", "Commande")
        properties = self.order_properties(
            order_id, items, shipping=shipping, affiliation="Boutique en ligne"
        )
        self.track(
            "web", "Checkout Started", {k: v for k, v in properties.items() if k != "coupon"}, context, **ids
        )
        self.minutes(1, 5)
        properties["delivery_method"] = delivery
        properties["payment_method"] = self.rng.choice(
            ("carte_bancaire", "carte_bancaire", "paypal", "apple_pay")
        )
        if delivery == "retrait_magasin":
            properties["store_id"] = self.c.store.id
        context = self.web_context(agent, "/commande/confirmation", "Merci pour votre commande")
        self.track("web", "Order Completed", properties, context, **ids)
        self.after_order(order_id, delivery)
        return order_id

    def after_order(self, order_id: str, delivery: str) -> None:
        """The transactional e-mail and the dispatch SMS any order triggers."""
        moment = self.t
        self.minutes(1, 3)
        self.track(
            "email",
            "Email Delivered",
            {
                "email_id": f"conf-{order_id}",
                "email_subject": f"Votre commande {order_id} est confirmée",
                "campaign_name": "Transactionnel - confirmation",
            },
            {"externalIds": self.external(("email", self.c.email))},
        )
        if self.knows("phone") and self.rng.random() < 0.7:
            self.t = moment + timedelta(hours=self.rng.uniform(18, 40))
            text = (
                f"Maison Arabica : votre commande {order_id} est prête en magasin."
                if delivery == "retrait_magasin"
                else f"Maison Arabica : votre commande {order_id} a été expédiée."
            )
            self.track(
                "sms",
                "SMS Sent",
                {"template": "expedition", "body": text, "order_id": order_id},
                {"externalIds": self.external(("phone", self.c.mobile))},
            )
        self.t = max(self.t, moment)

    # ------------------------------------------------------------------ campaigns
    def campaigns(self) -> None:
        """Newsletters to opted-in e-mails (and the odd SMS), from the day the e-mailing tool knows them."""
        if not (self.c.marketing and "email" in self.since and "opt_in" in self.since):
            return
        end = self.t
        reachable = max(self.since["email"], self.since["opt_in"])
        moment = self.world.start + timedelta(days=3, hours=7)
        number = 0
        while moment < self.world.end:
            number += 1
            if moment > reachable and not self.unsubscribed and self.rng.random() < 0.22:
                self.t = moment + timedelta(minutes=self.rng.randint(0, 90))
                name = f"Newsletter {moment:%Y-%m-%d}"
                email = {"externalIds": self.external(("email", self.c.email))}
                properties = {
                    "campaign_id": f"NL-{number:03d}",
                    "campaign_name": name,
                    "email_subject": "Les cafés du moment chez Maison Arabica",
                }
                self.track("email", "Email Delivered", properties, email)
                if self.rng.random() < 0.45:
                    self.minutes(10, 2000)
                    self.track("email", "Email Opened", properties, email)
                    if self.rng.random() < 0.25:
                        self.minutes(0.1, 2)
                        link = {**properties, "link_url": RETAILER_WEBSITE + "/nouveautes"}
                        self.track("email", "Email Link Clicked", link, email)
                        if self.browsers:
                            self.minutes(0.05, 0.2)
                            user_id = self.c.user_id if self.knows("account") else None
                            self.web_visit(self.browser(), user_id=user_id, campaign=name)
                    elif self.rng.random() < 0.04:
                        unsubscribe = {**email, "consent": {"channels": {"email": {"marketing": False}}}}
                        self.track("email", "Unsubscribed", properties, unsubscribe)
                        self.unsubscribed = True
                texting = self.knows("phone", moment) and not self.knows("sms_stop", moment)
                if texting and number % 6 == 0 and self.rng.random() < 0.5:
                    self.t = moment + timedelta(hours=3)
                    self.track(
                        "sms",
                        "SMS Sent",
                        {
                            "template": "promotion",
                            "campaign_name": name,
                            "body": "Maison Arabica : -15 % sur les cafés en grains ce "
                            "week-end. STOP au 36111",
                        },
                        {"externalIds": self.external(("phone", self.c.mobile))},
                    )
            moment += timedelta(days=14)
        self.t = end
