"""The personas' journeys: how each kind of customer meets the brand, channel after channel."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Sequence
from datetime import timedelta

from parcours.demo.app import MobileApp
from parcours.demo.catalogue import (
    APP_MEMBER,
    CURRENCY,
    HISTORY_DAYS,
    MESSAGING,
    OMNICHANNEL,
    PRODUCTS,
    ROPO,
    SERVICE,
    SHOWROOMING,
    STORE_ONLY,
    WEB_ONLY,
    Product,
)
from parcours.demo.conversations import CustomerService
from parcours.demo.journey import Done, World
from parcours.demo.people import DemoCustomer
from parcours.demo.stores import StoreTills
from parcours.demo.web import WebShop


class CustomerJourney(WebShop, MobileApp, StoreTills, CustomerService):
    """A journey on every channel the retailer has."""


def _episodes(
    j: CustomerJourney,
    options: Sequence[tuple[Callable[[], object], int]],
    *,
    gap: tuple[float, float],
    times: tuple[int, int] = (1, 7),
) -> None:
    """Repeat habits (purchases, visits, calls) until the customer drifts away or today is reached."""
    for _ in range(j.rng.randint(*times)):
        j.days(*gap)
        action = j.rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]
        action()


def _web_only(j: CustomerJourney) -> None:
    browser = j.browser()
    viewed: list[Product] = []
    for _ in range(j.rng.randint(1, 3)):
        viewed = j.web_visit(browser, add=j.rng.random() < 0.3)
        j.days(0, 6)
    j.web_visit(browser, products=viewed[:1], add=True)
    j.web_identify(browser, user_id=j.c.user_id)
    order_id = j.web_order(browser, j.c.user_id, j.basket(viewed[0]))

    def again() -> None:
        device = j.browser(mobile=j.rng.random() < 0.5)
        seen = j.web_visit(device, user_id=j.c.user_id if device == browser else None, add=True)
        if device != browser:  # a new device: anonymous until the customer logs in
            j.web_identify(device, user_id=j.c.user_id, path="/compte/connexion")
        if j.rng.random() < 0.6:
            j.web_order(device, j.c.user_id, j.basket(seen[0]))

    def support() -> None:
        if j.rng.random() < 0.5:
            j.call(j.c.mobile, order_id=order_id)
        else:
            j.support_email(order_id)

    _episodes(j, [(again, 6), (support, 1)], gap=(15, 110))


def _store_only(j: CustomerJourney) -> None:
    j.store_purchase()
    visits = [
        (lambda: j.store_purchase(receipt_email=False), 6),
        (lambda: j.store_visit(j.c.store, j.rng.choice(("degustation", "atelier_barista"))), 2),
        (lambda: j.call(j.c.mobile) if j.knows("phone") else None, 1),  # the till has her number
    ]
    _episodes(j, visits, gap=(10, 60), times=(2, 12))


def _ropo(j: CustomerJourney) -> None:
    browser = j.browser()
    viewed = j.web_visit(browser, products=j.favourite_products(2), add=j.rng.random() < 0.4)
    for _ in range(j.rng.randint(0, 2)):
        j.days(0, 5)
        j.web_visit(browser, products=viewed[:1] + j.favourite_products(1))
    j.days(1, 12, hours=(8, 18))
    j.store_purchase(items=j.basket(viewed[0]))
    j.days(2, 40)
    # Creates a web account and attaches the loyalty card: the browsing and the till purchase meet.
    j.web_visit(browser)
    j.web_identify(browser, user_id=j.c.user_id, card=True)

    def web() -> None:
        seen = j.web_visit(browser, user_id=j.c.user_id, add=True)
        if j.rng.random() < 0.5:
            j.web_order(browser, j.c.user_id, j.basket(seen[0]))

    _episodes(j, [(web, 3), (lambda: j.store_purchase(), 5)], gap=(15, 80), times=(1, 9))


def _showrooming(j: CustomerJourney) -> None:
    store = j.c.store
    machine = j.rng.choice([p for p in PRODUCTS if p.category in ("machines", "accessoires")])
    j.days(0, 1, hours=(9, 18))
    j.kiosk_showroom(store, machine)
    j.days(0, 6)
    browser = j.browser()
    j.web_visit(browser, products=[machine], add=True)
    j.minutes(1, 10)
    j.web_identify(browser, user_id=j.c.user_id, path="/commande/identification")
    order_id = j.web_order(browser, j.c.user_id, [(machine, 1)])

    def return_in_store() -> None:
        # Returns the web order in the store: the till finds it by e-mail.
        properties = {
            "order_id": order_id,
            "store_id": store.id,
            "store_name": store.name,
            "total": machine.price,
            "currency": CURRENCY,
            "reason": "ne convient pas",
        }
        j.track("store", "Order Refunded", properties, j.store_context(store, 1, ("email", j.c.email)))

    def web() -> None:
        seen = j.web_visit(browser, user_id=j.c.user_id)
        if j.rng.random() < 0.5:
            j.web_order(browser, j.c.user_id, j.basket(seen[0]))

    def kiosk_again() -> None:
        j.kiosk_showroom(store, j.rng.choice(PRODUCTS))

    _episodes(j, [(web, 5), (kiosk_again, 2), (return_in_store, 1)], gap=(20, 120))


def _app_member(j: CustomerJourney) -> None:
    j.app_install()
    j.app_session()
    j.app_sign_in()

    def shop() -> None:
        order_id = j.app_session(order=j.rng.random() < 0.5)
        if order_id:
            j.click_and_collect_pickup(order_id)

    _episodes(j, [(shop, 5), (lambda: j.store_purchase(), 4), (lambda: j.app_session(), 2)], gap=(7, 60))


def _service(j: CustomerJourney) -> None:
    browser = j.browser()
    viewed = j.web_visit(browser, add=True)
    j.web_identify(browser, user_id=j.c.user_id)
    order_id = j.web_order(browser, j.c.user_id, j.basket(viewed[0]))
    j.days(2, 20, hours=(7, 17))
    if j.c.landline and j.rng.random() < 0.6:
        j.call(j.c.landline, known_by_email=True, order_id=order_id)
    else:
        j.call(j.c.mobile, order_id=order_id)

    def call() -> None:
        j.call(j.c.landline if j.c.landline and j.rng.random() < 0.5 else j.c.mobile)

    def order() -> None:
        seen = j.web_visit(browser, user_id=j.c.user_id)
        j.web_order(browser, j.c.user_id, j.basket(seen[0]))

    _episodes(j, [(call, 3), (order, 4), (lambda: j.support_email(None), 1)], gap=(20, 120))


def _messaging(j: CustomerJourney) -> None:
    browser = j.browser(mobile=True)
    viewed = j.web_visit(browser)
    j.web_identify(browser, user_id=j.c.user_id)
    j.web_order(browser, j.c.user_id, j.basket(viewed[0]))
    j.days(3, 40)
    if j.c.instagram and j.rng.random() < 0.6:
        j.instagram(order=True)
    else:
        j.whatsapp(link_email=j.rng.random() < 0.7)

    def write() -> None:
        choice = j.rng.randrange(4)
        if choice == 0:
            j.whatsapp(link_email=not j.knows("whatsapp_linked") and j.rng.random() < 0.7)
        elif choice == 1:
            j.sms_reply()
        elif choice == 2:
            j.support_email(None)
        else:
            j.instagram(order=j.rng.random() < 0.3)

    def order() -> None:
        seen = j.web_visit(browser, user_id=j.c.user_id)
        j.web_order(browser, j.c.user_id, j.basket(seen[0]))

    _episodes(j, [(write, 3), (order, 3)], gap=(15, 100))


def _omnichannel(j: CustomerJourney) -> None:
    desktop = j.browser(mobile=False)
    for _ in range(j.rng.randint(1, 2)):
        j.web_visit(desktop)
        j.days(0, 4)
    # Signs up to the newsletter: the browser now has an e-mail, but no account.
    j.web_identify(desktop, user_id=None, phone=False, path="/newsletter")
    j.days(2, 25, hours=(8, 18))
    j.store_purchase()  # a loyalty card and a till customer id, nothing else
    j.days(10, 60, hours=(8, 18))
    j.store_purchase(receipt_email=True)  # the e-receipt joins the card to the newsletter e-mail
    j.days(5, 40)
    j.app_install()
    j.app_session()
    j.app_sign_in()
    j.days(3, 30, hours=(7, 17))
    j.call(j.c.mobile)

    def mobile_web() -> None:
        phone_browser = j.browser(mobile=True)
        seen = j.web_visit(phone_browser, add=True)
        j.web_identify(phone_browser, user_id=j.c.user_id, path="/compte/connexion")
        if j.rng.random() < 0.5:
            j.web_order(phone_browser, j.c.user_id, j.basket(seen[0]))

    def app() -> None:
        order_id = j.app_session(order=j.rng.random() < 0.5)
        if order_id:
            j.click_and_collect_pickup(order_id)

    _episodes(
        j,
        [
            (mobile_web, 2),
            (app, 3),
            (lambda: j.store_purchase(), 4),
            (lambda: j.whatsapp(link_email=not j.knows("whatsapp_linked")), 1),
            (lambda: j.call(j.c.mobile), 1),
        ],
        gap=(10, 70),
        times=(2, 9),
    )


_PERSONA_JOURNEYS: dict[str, Callable[[CustomerJourney], None]] = {
    WEB_ONLY: _web_only,
    STORE_ONLY: _store_only,
    ROPO: _ropo,
    SHOWROOMING: _showrooming,
    APP_MEMBER: _app_member,
    SERVICE: _service,
    MESSAGING: _messaging,
    OMNICHANNEL: _omnichannel,
}


def live(world: World, customer: DemoCustomer, rng: random.Random) -> None:
    """Draw one customer's history into ``world``: their persona's journey, then the campaigns they get."""
    start = world.start + timedelta(days=rng.uniform(0, HISTORY_DAYS - 20))
    journey = CustomerJourney(world, customer, rng, start)
    journey.days(0, 1)
    with contextlib.suppress(Done):
        _PERSONA_JOURNEYS[customer.persona](journey)
    with contextlib.suppress(Done):
        journey.campaigns()
    with contextlib.suppress(Done):  # a few order from the paper catalogue, by post
        roll = rng.random()
        if roll < 0.06:
            journey.days(1, 60)
            journey.paper_coupon(with_address=roll < 0.045)
