"""The console's store area over HTTP on a live server (SQLite and PostgreSQL): finding a customer by
card, phone typed any way, e-mail or name; a SKU's stock nearest first; reserving, ordering for the
customer (endless aisle), handing over, cancelling, returns; who may do what at which store."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select, update

from parcours.commerce import orders, reservations, stock
from parcours.commerce.catalogue import ean_check_digit
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.db.types import utcnow
from parcours.models import (
    Location,
    LoyaltyEntry,
    Order,
    Price,
    Product,
    Reservation,
    Return,
    ReturnPolicy,
    StockLevel,
    StockMovement,
    Variant,
)
from tests.conftest import Api
from tests.console_helpers import client, csrf_of, sign_in, signed_in
from tests.helpers import ingest, make_source, profile_of

SKU = "CAF-LUNGO"
EAN = "376012345678" + str(ean_check_digit("376012345678"))
OTHER_SKU = "CAF-MOULIN"
PHONE = "+33612345678"
CARD = "2901234567890"

# Paris Rivoli (the associate's store), Paris Marais 1.3 km away (none of the SKU), Versailles 17 km
# (some), Lyon 390 km (more), a relay point near the Bastille, the warehouse in Orléans.
STORES = (
    ("PAR-RIV", "store", "Paris Rivoli", "Paris", 48.8600, 2.3434, 0),
    ("PAR-MAR", "store", "Paris Marais", "Paris", 48.8576, 2.3620, 0),
    ("VER", "store", "Versailles Parly", "Versailles", 48.8049, 2.1204, 5),
    ("LYS", "store", "Lyon République", "Lyon", 45.7622, 4.8357, 10),
    ("RLY", "relay", "Relais Bastille", "Paris", 48.8532, 2.3692, 0),
    ("WH", "warehouse", "Entrepôt Orléans", "Orléans", 47.9029, 1.9093, 50),
)


@dataclass
class World:
    camille: str  # the customer found by phone
    namesake: str  # another Léger, found by name only


def make_world(db: Database, settings: Settings) -> World:
    """The stores above with the SKU's stock, its price (12.50 EUR), a second SKU in Paris Rivoli, and two
    customers: Camille Léger (phone, loyalty card, e-mail) and Hugo Leger."""
    now = utcnow()
    with db.write() as session:
        session.add(
            Product(id="p-lungo", name="Capsules Lungo", category="cafe", description="", created_at=now)
        )
        session.flush()
        session.add(Variant(sku=SKU, product_id="p-lungo", ean=EAN, name="Capsules Lungo x10", attributes={},
                            active=True))  # fmt: skip
        session.add(Variant(sku=OTHER_SKU, product_id="p-lungo", ean=None, name="Moulin manuel", attributes={},
                            active=True))  # fmt: skip
        session.flush()
        session.add(Price(sku=SKU, currency="EUR", amount=Decimal("12.50"), channel=None, reason=None))
        session.add(Price(sku=OTHER_SKU, currency="EUR", amount=Decimal("54.00"), channel=None, reason=None))
        session.flush()
        for code, kind, name, city, lat, lon, units in STORES:
            services = ["click_collect", "returns", "endless_aisle"] if kind == "store" else []
            stock.add_location(session, location_id=code, kind=kind, name=name, street="1 rue", postal_code="75001",
                               city=city, latitude=lat, longitude=lon, services=services)  # fmt: skip
            if units:
                stock.receive(session, SKU, code, units, now=now)
        stock.receive(session, OTHER_SKU, "PAR-RIV", 4, now=now)
    till = make_source(db, "Tills", "store")
    ingest(db, settings, till, [
        {"type": "identify", "messageId": "m-camille", "traits": {
            "firstName": "Camille", "lastName": "Léger", "phone": "+33 6 12 34 56 78", "loyaltyCard": CARD,
            "email": "camille.leger@example.fr"}},
        {"type": "identify", "messageId": "m-hugo", "traits": {
            "firstName": "Hugo", "lastName": "Leger", "email": "hugo.leger@example.fr"}},
    ])  # fmt: skip
    return World(
        camille=profile_of(db, settings, "phone", PHONE),
        namesake=profile_of(db, settings, "email", "hugo.leger@example.fr"),
    )


def associate(api: Api, store_id: str = "PAR-RIV") -> tuple[httpx.Client, str]:
    return signed_in(api, "store_associate", location_id=store_id)


def level(db: Database, location: str, sku: str = SKU) -> tuple[int, int]:
    with db.read() as session:
        row = session.execute(
            select(StockLevel.on_hand, StockLevel.reserved).where(StockLevel.sku == sku, StockLevel.location_id == location)
        ).first()  # fmt: skip
        return (int(row.on_hand), int(row.reserved)) if row else (0, 0)


def flash_of(browser: httpx.Client, answer: httpx.Response) -> str:
    """The page a form redirected to, and its flash message."""
    assert answer.status_code == 303, answer.text
    page = browser.get(answer.headers["location"])
    assert page.status_code == 200, page.text
    match = re.search(r'<p class="flash" role="status">([^<]*)</p>', page.text)
    assert match, "no flash message"
    return match.group(1)


def rid() -> str:
    return str(uuid.uuid4())


# ------------------------------------------------------------------------------------------ look-up
def test_find_a_customer_by_phone_typed_any_way_card_email_or_name(api: Api) -> None:
    world = make_world(api.db, api.settings)
    browser, _ = associate(api)
    for typed in ("06 12 34 56 78", "06.12.34.56.78", "+33 6 12 34 56 78", "2901 2345 6789 0",
                  "Camille.Leger@Example.fr", "phone:0612345678"):  # fmt: skip
        answer = browser.get("/console/store", params={"find": typed})
        assert answer.status_code == 303, (typed, answer.text[-500:])
        assert answer.headers["location"] == f"/console/store/customers/{world.camille}", typed
    # A name: accents and case do not matter; namesakes are listed to choose from.
    both = browser.get("/console/store", params={"find": "leger"})
    assert both.status_code == 200
    assert f"/console/store/customers/{world.camille}" in both.text
    assert f"/console/store/customers/{world.namesake}" in both.text
    assert "2 customers match" in both.text
    one = browser.get("/console/store", params={"find": "cam LÉGER"})
    assert one.status_code == 303 and one.headers["location"].endswith(world.camille)
    nobody = browser.get("/console/store", params={"find": "07 99 99 99 99"})
    assert nobody.status_code == 200 and "No customer matches" in nobody.text
    assert "/console/store/customers/" not in nobody.text.split("Pickups to hand over")[0]


def test_the_customer_as_the_store_sees_them(api: Api) -> None:
    world = make_world(api.db, api.settings)
    now = utcnow()
    with api.db.write() as session:
        web, _ = orders.place(session, channel="web", request_id="web-1", lines=[{"sku": SKU, "quantity": 3}],
                              fulfilment="ship_from_warehouse", profile_id=world.camille, now=now)  # fmt: skip
        reservations.reserve(session, location_id="LYS", lines=[{"sku": SKU, "quantity": 1}], channel="app",
                             request_id="app-1", profile_id=world.camille, now=now)  # fmt: skip
        web_number = web.number
    browser, _ = associate(api)
    page = browser.get(f"/console/store/customers/{world.camille}")
    assert page.status_code == 200
    text = page.text
    assert "Camille Léger" in text and CARD in text and PHONE in text
    assert web_number in text and "Web" in text and "Home delivery" in text and "€37.50" in text
    assert "Lyon République" in text and "Held at another store" in text  # not handed over here
    assert f"/console/store/orders/{web.id}/return" in text
    assert browser.get("/console/store/customers/prf_nobody").status_code == 404


# -------------------------------------------------------------------------------- stock and reserve
def test_stock_nearest_first_and_reserving_at_the_nearest_store_that_has_it(api: Api) -> None:
    world = make_world(api.db, api.settings)
    browser, csrf = associate(api)
    # The product by name, then by EAN, for the customer.
    found = browser.get("/console/store", params={"product": "lungo", "customer": world.camille})
    assert found.status_code == 200 and f"sku={SKU}" in found.text
    by_ean = browser.get("/console/store", params={"product": EAN, "customer": world.camille})
    assert by_ean.status_code == 303
    page = browser.get(by_ean.headers["location"])
    assert page.status_code == 200
    names = [name for _, _, name, *_ in STORES if name != "Entrepôt Orléans"]
    order = sorted(names, key=lambda n: page.text.index(f"{n}<br>"))
    assert order == ["Paris Rivoli", "Paris Marais", "Relais Bastille", "Versailles Parly", "Lyon République"]
    assert "None in this store" in page.text and "Order for home delivery or pickup elsewhere" in page.text
    # A reserve button only where there is stock: Versailles and Lyon.
    reservable = re.findall(r'name="location" value="([^"]+)"', page.text)
    assert reservable == ["VER", "LYS"]
    assert "Reserve here for Camille Léger" in page.text
    request_id = rid()
    form = {"csrf_token": csrf, "request_id": request_id, "customer": world.camille, "sku": SKU,
            "location": "VER", "quantity": "2"}  # fmt: skip
    answer = browser.post("/console/store/reservations", data=form)
    assert answer.headers["location"] == f"/console/store/customers/{world.camille}"
    message = flash_of(browser, answer)
    assert message.startswith("Reserved 2 of CAF-LUNGO at Versailles Parly until")
    # A double tap: the same request id reserves once.
    again = browser.post("/console/store/reservations", data=form)
    assert flash_of(browser, again) == "This reservation was already made."
    with api.db.read() as session:
        held = session.scalars(select(Reservation)).all()
        assert len(held) == 1 and held[0].location_id == "VER" and held[0].profile_id == world.camille
        assert held[0].channel == "store" and held[0].lines == [{"sku": SKU, "quantity": 2}]
    assert level(api.db, "VER") == (5, 2)
    customer = browser.get(f"/console/store/customers/{world.camille}")
    assert "Versailles Parly" in customer.text and "2 \u00d7 Capsules Lungo x10" in customer.text


def test_reserving_more_than_the_store_has_is_refused_and_writes_nothing(api: Api) -> None:
    world = make_world(api.db, api.settings)
    browser, csrf = associate(api)
    base = {"csrf_token": csrf, "customer": world.camille, "sku": SKU}
    short = browser.post("/console/store/reservations", data={**base, "request_id": rid(), "location": "VER",
                                                              "quantity": "6"})  # fmt: skip
    assert short.status_code == 409
    assert "Not enough stock: 5 of CAF-LUNGO available at Versailles Parly, 6 asked." in short.text
    relay = browser.post("/console/store/reservations", data={**base, "request_id": rid(), "location": "RLY",
                                                              "quantity": "1"})  # fmt: skip
    assert relay.status_code == 400 and "does not take reservations" in relay.text
    for bad in ("0", "-1", "two", "1001", "²"):
        refused = browser.post("/console/store/reservations", data={**base, "request_id": rid(), "location": "VER",
                                                                    "quantity": bad})  # fmt: skip
        assert refused.status_code == 400 and "Quantity: a whole number from 1 to 1,000" in refused.text, bad
    no_id = browser.post("/console/store/reservations", data={**base, "location": "VER", "quantity": "1"})
    assert no_id.status_code == 400 and "request_id" in no_id.text
    with api.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Reservation)) == 0
    assert level(api.db, "VER") == (5, 0)


# ----------------------------------------------------------------------------------------- pickups
def test_pickups_today_hand_over_with_the_card_shown_and_cancel(api: Api) -> None:
    world = make_world(api.db, api.settings)
    now = utcnow()
    with api.db.write() as session:
        stock.receive(session, SKU, "PAR-RIV", 6, now=now)
        first, _ = reservations.reserve(session, location_id="PAR-RIV", lines=[{"sku": SKU, "quantity": 2}],
                                        channel="app", request_id="app-1", profile_id=world.camille,
                                        now=now - timedelta(hours=3))  # fmt: skip
        second, _ = reservations.reserve(session, location_id="PAR-RIV", lines=[{"sku": SKU, "quantity": 1}],
                                         channel="web", request_id="web-1", profile_id=world.namesake, now=now)  # fmt: skip
        elsewhere, _ = reservations.reserve(session, location_id="VER", lines=[{"sku": SKU, "quantity": 1}],
                                            channel="web", request_id="web-2", profile_id=world.namesake, now=now)  # fmt: skip
        # Placed READY_HOURS ago, so ready now: placed now, it would be ready tomorrow once the test runs
        # in the evening (the store's day ends at midnight, Paris time).
        ready, _ = orders.place(session, channel="web", request_id="web-cc", lines=[{"sku": SKU, "quantity": 1}],
                                fulfilment="click_collect", pickup_location_id="PAR-RIV", profile_id=world.namesake,
                                now=now - timedelta(hours=stock.READY_HOURS))  # fmt: skip
    browser, csrf = associate(api)
    home = browser.get("/console/store")
    assert home.status_code == 200
    pickups = home.text.split("Pickups to hand over today")[1]
    # Oldest first: Camille's reservation (3 hours ago), then Hugo's and his click & collect order.
    assert pickups.index("Camille Léger") < pickups.index("Hugo Leger")
    assert f"/console/store/reservations/{first.id}/collect" in pickups
    assert f"/console/store/reservations/{second.id}/collect" in pickups
    assert f"/console/store/reservations/{elsewhere.id}/collect" not in pickups  # another store's
    assert f"Click &amp; collect order {ready.number}" in pickups
    # Hand over Camille's with her card shown: an order paid in store, points on her card.
    form = {"csrf_token": csrf, "card": "2901 2345 6789 0", "back": "/console/store"}
    answer = browser.post(f"/console/store/reservations/{first.id}/collect", data=form)
    message = flash_of(browser, answer)
    assert re.fullmatch(r"Handed over: order CMD-\d+, €25\.00 paid in store\. 25 points earned\.", message), (
        message
    )
    with api.db.read() as session:
        order = session.scalars(select(Order).where(Order.request_id == f"reservation:{first.id}")).one()
        assert (
            order.status == "collected"
            and order.profile_id == world.camille
            and order.total == Decimal("25.00")
        )
        assert session.scalar(select(LoyaltyEntry.points).where(LoyaltyEntry.order_id == order.id)) == 25
    # 6 in, 1 sold to the click & collect order, 2 collected; 1 still held for Hugo.
    assert level(api.db, "PAR-RIV") == (3, 1)
    # A second tap says so and does nothing.
    assert flash_of(browser, browser.post(f"/console/store/reservations/{first.id}/collect", data=form)).startswith(
        "Already handed over: order CMD-")  # fmt: skip
    # An unknown card is refused, naming the field; nothing is handed over.
    bad = browser.post(f"/console/store/reservations/{second.id}/collect", data={**form, "card": "123"})
    assert bad.status_code == 400 and "card: no member has the loyalty card 123" in bad.text
    # Another store's reservation cannot be handed over or cancelled here.
    for action in ("collect", "cancel"):
        other = browser.post(f"/console/store/reservations/{elsewhere.id}/{action}", data=form)
        assert other.status_code == 403, action
    # Cancel Hugo's: the unit goes back on the shelf.
    cancelled = browser.post(f"/console/store/reservations/{second.id}/cancel", data={"csrf_token": csrf})
    assert flash_of(browser, cancelled) == "Reservation cancelled: the items are back on the shelf."
    assert level(api.db, "PAR-RIV") == (3, 0)
    with api.db.read() as session:
        statuses = {
            rid: status for rid, status in session.execute(select(Reservation.id, Reservation.status))
        }
    assert statuses == {first.id: "collected", second.id: "cancelled", elsewhere.id: "held"}
    # Hugo's click & collect order leaves with him: collected, his points earned; a second tap says so.
    assert f"/console/store/orders/{ready.id}/hand-over" in browser.get("/console/store").text
    handed = browser.post(f"/console/store/orders/{ready.id}/hand-over", data={"csrf_token": csrf})
    assert flash_of(browser, handed) == f"Handed over: order {ready.number}. 12 points earned."  # 12.50 €
    again = browser.post(f"/console/store/orders/{ready.id}/hand-over", data={"csrf_token": csrf})
    assert flash_of(browser, again) == f"Already handed over: order {ready.number}."
    assert f"/console/store/orders/{ready.id}/hand-over" not in browser.get("/console/store").text
    with api.db.read() as session:
        assert session.scalar(select(Order.status).where(Order.id == ready.id)) == "collected"


# ------------------------------------------------------------------------------------- endless aisle
def test_ordering_for_the_customer_what_the_store_lacks(api: Api) -> None:
    world = make_world(api.db, api.settings)
    browser, csrf = associate(api)
    page = browser.get("/console/store/stock", params={"sku": SKU, "customer": world.camille})
    assert 'value="ship_from_warehouse"' in page.text and '<option value="VER">' in page.text
    base = {"csrf_token": csrf, "customer": world.camille, "sku": SKU, "quantity": "2"}
    home = browser.post(
        "/console/store/orders", data={**base, "request_id": rid(), "fulfilment": "ship_from_warehouse"}
    )
    assert re.fullmatch(r"Order CMD-\d+ placed: €25\.00, ready on .+\.", flash_of(browser, home))
    collect_request = rid()
    elsewhere = {**base, "request_id": collect_request, "fulfilment": "click_collect", "pickup_store": "VER"}
    flash_of(browser, browser.post("/console/store/orders", data=elsewhere))
    assert "was already placed" in flash_of(browser, browser.post("/console/store/orders", data=elsewhere))
    relay = browser.post("/console/store/orders", data={**base, "request_id": rid(), "fulfilment": "relay",
                                                         "relay": "RLY"})  # fmt: skip
    flash_of(browser, relay)
    with api.db.read() as session:
        placed = session.scalars(select(Order).order_by(Order.number)).all()
    assert [(o.fulfilment, o.pickup_location_id, o.ordering_location_id, o.channel, o.profile_id) for o in placed] == [
        ("ship_from_warehouse", None, "PAR-RIV", "store", world.camille),
        ("click_collect", "VER", "PAR-RIV", "store", world.camille),
        ("relay", "RLY", "PAR-RIV", "store", world.camille),
    ]  # fmt: skip
    assert level(api.db, "WH") == (46, 0) and level(api.db, "VER") == (3, 0)
    wrong = browser.post(
        "/console/store/orders", data={**base, "request_id": rid(), "fulfilment": "teleport"}
    )
    assert wrong.status_code == 400 and "fulfilment" in wrong.text
    too_many = browser.post("/console/store/orders", data={**base, "request_id": rid(), "quantity": "999",
                                                            "fulfilment": "ship_from_warehouse"})  # fmt: skip
    assert too_many.status_code == 409 and "No location has 999 of CAF-LUNGO to send." in too_many.text
    with api.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 3


# ------------------------------------------------------------------------------------------ returns
def test_a_return_of_a_web_order_here_restocks_here_and_enforces_the_policy(api: Api) -> None:
    world = make_world(api.db, api.settings)
    now = utcnow()
    with api.db.write() as session:
        bought, _ = orders.place(session, channel="web", request_id="web-1", lines=[{"sku": SKU, "quantity": 3}],
                                 fulfilment="ship_from_warehouse", profile_id=world.camille, now=now)  # fmt: skip
        old, _ = orders.place(session, channel="app", request_id="app-old", lines=[{"sku": SKU, "quantity": 1}],
                              fulfilment="ship_from_warehouse", profile_id=world.camille, now=now - timedelta(days=45))  # fmt: skip
        session.add(ReturnPolicy(id="rp", channel=None, days=30, conditions="", refund_methods=["card"]))
    browser, csrf = associate(api)
    opened = browser.get("/console/store", params={"order": bought.number.lower()})
    assert (
        opened.status_code == 303
        and opened.headers["location"] == f"/console/store/orders/{bought.id}/return"
    )
    form_page = browser.get(opened.headers["location"])
    assert form_page.status_code == 200 and f'name="quantity_{SKU}"' in form_page.text
    base = {"csrf_token": csrf, "reason": "Wrong size"}
    over = browser.post(f"/console/store/orders/{bought.id}/returns", data={**base, "request_id": rid(),
                                                                             f"quantity_{SKU}": "4"})  # fmt: skip
    assert over.status_code == 400 and "CAF-LUNGO: at most 3 can be returned." in over.text
    assert 'value="Wrong size"' in over.text  # the form is shown again, as typed
    nothing = browser.post(f"/console/store/orders/{bought.id}/returns", data={**base, "request_id": rid()})
    assert nothing.status_code == 400 and "Choose at least one item to return." in nothing.text
    request_id = rid()
    ok = browser.post(f"/console/store/orders/{bought.id}/returns", data={**base, "request_id": request_id,
                                                                           f"quantity_{SKU}": "2"})  # fmt: skip
    assert ok.headers["location"] == f"/console/store/customers/{world.camille}"
    assert flash_of(browser, ok) == (
        f"Return recorded for order {bought.number}: refund €25.00; the items are back in stock here."
    )
    again = browser.post(f"/console/store/orders/{bought.id}/returns", data={**base, "request_id": request_id,
                                                                              f"quantity_{SKU}": "2"})  # fmt: skip
    assert flash_of(browser, again) == "This return was already recorded."
    assert level(api.db, "PAR-RIV") == (2, 0)  # restocked here, where it was brought back
    left = browser.post(f"/console/store/orders/{bought.id}/returns", data={**base, "request_id": rid(),
                                                                             f"quantity_{SKU}": "2"})  # fmt: skip
    assert left.status_code == 400 and "CAF-LUNGO: at most 1 can be returned." in left.text
    late_page = browser.get(f"/console/store/orders/{old.id}/return")
    assert "The return period of this order ended on" in late_page.text
    late = browser.post(f"/console/store/orders/{old.id}/returns", data={**base, "request_id": rid(),
                                                                          f"quantity_{SKU}": "1"})  # fmt: skip
    assert late.status_code == 409 and "The return period of this order ended on" in late.text
    with api.db.read() as session:
        kept = session.scalars(select(Return)).all()
        assert [(r.order_id, r.location_id, r.refund_amount, r.reason) for r in kept] == [
            (bought.id, "PAR-RIV", Decimal("25.00"), "Wrong size")
        ]
        moves = session.scalars(
            select(StockMovement.reason).where(StockMovement.location_id == "PAR-RIV")
        ).all()
        assert moves.count("return") == 1
    assert browser.get("/console/store", params={"order": "CMD-1"}).status_code == 404


# ------------------------------------------------------------------------------- roles and stores
def test_only_store_roles_and_only_their_own_store(api: Api) -> None:
    make_world(api.db, api.settings)
    agent, _ = signed_in(api, "agent")
    assert agent.get("/console/store").status_code == 403
    assert agent.get(f"/console/store/stock?sku={SKU}").status_code == 403
    assert (
        agent.post(
            "/console/store/reservations", data={"csrf_token": csrf_of(agent.get("/console/").text)}
        ).status_code
        == 403
    )
    anonymous = client(api)
    answer = anonymous.get("/console/store")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/console/login")

    browser, csrf = associate(api)
    assert "Paris Rivoli" in browser.get("/console/store").text
    assert browser.get("/console/store", params={"store": "VER"}).status_code == 403
    assert browser.get(f"/console/store/stock?sku={SKU}&store=LYS").status_code == 403
    posted = browser.post("/console/store/orders", data={"csrf_token": csrf, "store": "LYS"})
    assert posted.status_code == 403
    assert browser.post("/console/store/reservations", data={"location": "VER"}).status_code == 403  # no CSRF

    # An admin chooses the store from a list; the choice travels in the links and forms.
    admin = client(api)
    from tests.console_helpers import add_user

    sign_in(admin, add_user(api, "admin"))
    chooser = admin.get("/console/store")
    assert chooser.status_code == 200 and '<select id="store" name="store">' in chooser.text
    assert "Pickups to hand over" not in chooser.text
    assert admin.get(f"/console/store/stock?sku={SKU}").status_code == 400
    marais = admin.get("/console/store", params={"store": "PAR-MAR"})
    assert marais.status_code == 200 and "<h1>Paris Marais</h1>" in marais.text
    assert 'name="store" value="PAR-MAR"' in marais.text
    stock_page = admin.get("/console/store/stock", params={"sku": SKU, "store": "PAR-MAR"})
    assert stock_page.text.index("Paris Marais<br>") < stock_page.text.index("Paris Rivoli<br>")
    assert admin.get("/console/store", params={"store": "RLY"}).status_code == 404  # a relay is not a store


def test_an_associate_whose_store_closed_is_told_so(api: Api) -> None:
    make_world(api.db, api.settings)
    browser, csrf = associate(api, "PAR-MAR")
    with api.db.write() as session:
        session.execute(update(Location).where(Location.id == "PAR-MAR").values(active=False))
    stock.forget_places()
    page = browser.get("/console/store")
    assert page.status_code == 200 and "Your account has no store yet" in page.text
    assert browser.get("/console/store/stock", params={"sku": SKU}).status_code == 400
    refused = browser.post("/console/store/orders", data={"csrf_token": csrf})
    assert refused.status_code == 400 and "choose a store first" in refused.text


def test_store_pages_in_french(api: Api) -> None:
    world = make_world(api.db, api.settings)
    browser, _ = signed_in(api, "store_associate", location_id="PAR-RIV", locale="fr")
    home = browser.get("/console/store", params={"find": "leger"})
    assert "Trouver un client" in home.text and "2 clients correspondent" in home.text
    stock_page = browser.get("/console/store/stock", params={"sku": SKU, "customer": world.camille})
    assert "Réserver ici pour Camille Léger" in stock_page.text and "12,50\u00a0€" in stock_page.text


@pytest.mark.parametrize("path", ["/console/store/stock?sku=NOPE", "/console/store/orders/ord_nope/return"])
def test_unknown_things_are_404(api: Api, path: str) -> None:
    make_world(api.db, api.settings)
    browser, _ = associate(api)
    assert browser.get(path).status_code == 404


def test_pickups_are_listed_fifty_a_page_oldest_first(api: Api) -> None:
    make_world(api.db, api.settings)
    now = utcnow()
    with api.db.write() as session:
        stock.receive(session, OTHER_SKU, "PAR-RIV", 100, now=now)
        made = [
            reservations.reserve(
                session,
                location_id="PAR-RIV",
                lines=[{"sku": OTHER_SKU, "quantity": 1}],
                channel="web",
                request_id=f"web-{n}",
                profile_id=None,
                now=now - timedelta(minutes=60 - n),
            )[0].id
            for n in range(55)
        ]
    browser, _ = associate(api)
    first = browser.get("/console/store")
    shown = re.findall(r"/console/store/reservations/([^/]+)/collect", first.text)
    assert shown == made[:50] and "Next page" in first.text and "Previous page" not in first.text
    second = browser.get("/console/store", params={"offset": 50})
    assert re.findall(r"/console/store/reservations/([^/]+)/collect", second.text) == made[50:]
    assert "Next page" not in second.text and "Previous page" in second.text
