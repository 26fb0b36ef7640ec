"""The service client and messaging: calls, support e-mails, WhatsApp, Instagram, SMS."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from parcours.demo.catalogue import PRODUCTS_BY_SKU
from parcours.demo.helpers import national_format, to_ascii
from parcours.demo.journey import Journey

_CALL_REASONS = (
    ("suivi_commande", "Où en est ma commande ?"),
    ("panne_machine", "Ma machine ne chauffe plus"),
    ("retour", "Je souhaite retourner un article"),
    ("fidelite", "Mes points fidélité n'apparaissent pas"),
    ("conseil", "Quel café pour ma machine ?"),
    ("facturation", "Double prélèvement sur ma carte"),
)
_AGENTS = ("Sonia", "Karim", "Audrey", "Thibault", "Nadège", "Malik", "Hélène")


class CustomerService(Journey):
    """Conversations with the service client, on the phone and in writing."""

    def call(self, number: str, *, known_by_email: bool = False, order_id: str | None = None) -> None:
        reason, summary = self.rng.choice(_CALL_REASONS)
        call_id = f"APL-{next(self.world.calls)}"
        duration = int(self.rng.triangular(45, 1500, 260))
        properties: dict[str, Any] = {
            "call_id": call_id,
            "direction": "inbound",
            "duration_seconds": duration,
            "queue": "service_client",
            "agent": self.rng.choice(_AGENTS),
            "reason": reason,
            "summary": summary,
            "outcome": self.rng.choice(("resolu", "resolu", "resolu", "rappel_programme", "transfere_sav")),
        }
        if order_id:
            properties["order_id"] = order_id
        context = {
            "library": {"name": "standard-telephonique", "version": "2.1"},
            "externalIds": self.external(("phone", national_format(number))),
        }
        self.track("phone", "Call Logged", properties, context)
        if known_by_email:
            # The caller is on an unknown number; the agent finds her by e-mail and links the number.
            traits = {"firstName": self.c.first_name, "lastName": self.c.last_name}
            ids = self.external(("phone", number), ("email", self.c.email))
            self.emit(
                "phone",
                {
                    "type": "identify",
                    "traits": traits,
                    "context": {"externalIds": ids, "library": context["library"]},
                },
            )

    def paper_coupon(self, *, with_address: bool) -> None:
        """A paper catalogue coupon keyed in by the service client: the name as the agent read it, no
        e-mail, phone or card. Only the name, birth date and address say who it is: probabilistic
        matching merges it (with the address) or queues it for review (without)."""
        first = to_ascii(self.c.first_name) if self.rng.random() < 0.5 else self.c.first_name
        last = self.c.last_name.upper()
        if self.rng.random() < 0.3 and len(last) > 4:  # a letter dropped while typing
            cut = self.rng.randrange(1, len(last) - 1)
            last = last[:cut] + last[cut + 1 :]
        traits: dict[str, Any] = {
            "firstName": first,
            "lastName": last,
            "birthday": self.c.birthday.isoformat(),
        }
        if with_address:
            traits["address"] = {"street": self.c.street.lower(), "postalCode": self.c.postal_code,
                                 "city": self.c.city.upper(), "country": "FR"}  # fmt: skip
        coupon = f"COUPON-{next(self.world.coupons)}"
        library = {"name": "saisie-coupons", "version": "1.0"}
        self.emit("phone", {"type": "identify", "anonymousId": coupon, "traits": traits,
                            "context": {"channel": "mail", "library": library}})  # fmt: skip
        self.track(
            "phone", "Catalogue Order Keyed", {"coupon": coupon, "catalogue": "printemps"},
            {"channel": "mail", "library": library}, anonymousId=coupon,
        )  # fmt: skip

    def support_email(self, order_id: str | None) -> None:
        conversation = f"TCK-{self.rng.randrange(10**6):06d}"
        subject = f"Question sur ma commande {order_id}" if order_id else "Demande de conseil"
        context = {"channel": "email", "externalIds": self.external(("email", self.c.email))}
        self.track(
            "phone", "Message Received", {"conversation_id": conversation, "subject": subject}, context
        )
        self.minutes(30, 300)
        self.track(
            "phone",
            "Message Sent",
            {"conversation_id": conversation, "subject": f"RE: {subject}", "agent": self.rng.choice(_AGENTS)},
            context,
        )

    def whatsapp(self, *, link_email: bool) -> None:
        conversation = f"WA-{self.rng.randrange(10**6):06d}"
        number = f"whatsapp:{self.c.mobile}"
        context = {"externalIds": self.external(("whatsapp", number)), "traits": {"name": self.c.first_name}}
        text = self.rng.choice(
            (
                "Bonjour, ma machine fuit, que faire ?",
                f"Avez-vous le moulin en stock à {self.c.store.city} ?",
                "Bonjour, je n'ai pas reçu mon colis",
            )
        )
        self.track(
            "whatsapp",
            "Message Received",
            {"conversation_id": conversation, "message_type": "text", "text": text},
            context,
        )
        self.minutes(2, 40)
        self.track(
            "whatsapp",
            "Message Sent",
            {"conversation_id": conversation, "message_type": "text", "agent": self.rng.choice(_AGENTS)},
            context,
        )
        if link_email:
            self.minutes(1, 10)
            ids = self.external(("whatsapp", number), ("email", self.c.email))
            self.emit(
                "whatsapp",
                {
                    "type": "identify",
                    "traits": {"firstName": self.c.first_name, "lastName": self.c.last_name},
                    "context": {"externalIds": ids},
                },
            )
            self.note_email()
            self.learn("whatsapp_linked")

    def instagram(self, *, order: bool) -> None:
        handle = self.c.instagram
        if handle is None:
            return
        context = {"externalIds": self.external(("instagram", handle))}
        self.track(
            "instagram",
            "Message Received",
            {
                "conversation_id": f"IG-{self.rng.randrange(10**6):06d}",
                "text": "Ce coffret est encore disponible ?",
            },
            context,
        )
        if not order:
            return
        self.days(0, 4)
        items = [(PRODUCTS_BY_SKU["CO-DEC-050"], 1), *self.basket()[:1]]
        order_id = self.order_id("IG")
        properties = self.order_properties(order_id, items, shipping=Decimal("4.90"), affiliation="Instagram")
        properties["delivery_method"] = "domicile"
        context = {"externalIds": self.external(("instagram", handle), ("email", self.c.email))}
        self.track("instagram", "Order Completed", properties, context)
        self.note_email()

    def sms_reply(self) -> None:
        context: dict[str, Any] = {"externalIds": self.external(("phone", self.c.mobile))}
        if self.rng.random() < 0.3:
            context["consent"] = {"channels": {"sms": {"marketing": False}}}
            self.track("sms", "SMS Received", {"body": "STOP"}, context)
            self.learn("sms_stop")
        else:
            self.track("sms", "SMS Received", {"body": "Merci, à samedi !"}, context)
