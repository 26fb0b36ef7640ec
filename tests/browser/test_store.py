"""The store area in a real browser on a tablet: a store associate finds a customer by the phone number
they say, checks a product's stock in every store nearest first and reserves it at the nearest store that
has it; the pickups waiting in the store are handed over with the loyalty card shown."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import Page, expect
from sqlalchemy import select

from parcours.commerce import loyalty, orders, reservations, stock
from parcours.db.types import utcnow
from parcours.models import LoyaltyEntry, Order, Reservation
from tests.browser.conftest import Console, assert_accessible, docs_screenshot, set_viewport, sign_in
from tests.test_console_store import CARD, OTHER_SKU, SKU, World, level, make_world


def shop_history(console: Console, world: World) -> None:
    """What makes the customer's page look like a real one: a web order last month (with its points), an
    app order delivered to a relay point."""
    now = utcnow()
    with console.db.write() as session:
        web, _ = orders.place(session, channel="web", request_id="web-1", lines=[{"sku": SKU, "quantity": 4}],
                              fulfilment="ship_from_warehouse", profile_id=world.camille, now=now - timedelta(days=32))  # fmt: skip
        loyalty.earn_for_order(session, web, now - timedelta(days=32))
        app, _ = orders.place(session, channel="app", request_id="app-1", lines=[{"sku": SKU, "quantity": 2}],
                              fulfilment="relay", pickup_location_id="RLY", profile_id=world.camille,
                              now=now - timedelta(days=6))  # fmt: skip
        loyalty.earn_for_order(session, app, now - timedelta(days=6))


def test_associate_reserves_the_nearest_available_stock_for_a_customer_found_by_phone(
    tablet_page: Page, console: Console
) -> None:
    page = tablet_page
    world = make_world(console.db, console.settings)  # Paris Marais, the nearest, has none; Versailles has 5
    shop_history(console, world)
    email, password = console.user("store_associate", name="Sasha Martin", location_code="PAR-RIV")
    sign_in(page, console, email, password)
    page.goto(console.path("/console/store"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Paris Rivoli")

    # The customer says her number the way people do.
    page.get_by_label("Loyalty card, phone, e-mail or name").fill("06 12 34 56 78")
    page.get_by_role("button", name="Find", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/console/store/customers/{world.camille}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Camille Léger")
    expect(page.get_by_text(CARD)).to_be_visible()
    assert_accessible(page)

    # The product's stock, nearest first from this store.
    page.get_by_label("SKU, EAN or product name").fill("capsules lungo")
    page.get_by_role("button", name="Check stock").click()
    page.get_by_role("link", name=re.compile("Capsules Lungo x10")).click()
    expect(page).to_have_url(re.compile(r"/console/store/stock\?"))
    rows = page.locator("table.stock tbody tr")
    expect(rows.nth(0)).to_contain_text("Paris Rivoli")
    expect(rows.nth(1)).to_contain_text("Paris Marais")
    reserve = page.get_by_role("button", name="Reserve here for Camille Léger")
    expect(reserve).to_have_count(2)  # Versailles and Lyon: the stores that have it
    nearest = rows.filter(has=reserve).first
    expect(nearest).to_contain_text("Versailles Parly")
    expect(page.get_by_role("heading", name="Order for home delivery or pickup elsewhere")).to_be_visible()
    assert_accessible(page)
    docs_screenshot(page, "store-stock")

    nearest.get_by_label("Quantity to reserve at Versailles Parly").fill("2")
    nearest.get_by_role("button", name="Reserve here for Camille Léger").click()

    expect(page).to_have_url(re.compile(rf"/console/store/customers/{world.camille}$"))
    expect(page.get_by_role("status")).to_contain_text("Reserved 2 of CAF-LUNGO at Versailles Parly until")
    held = page.get_by_role("region", name="Open reservations")
    expect(held).to_contain_text("Versailles Parly")
    expect(held).to_contain_text("2 \u00d7 Capsules Lungo x10")
    expect(page.get_by_role("region", name="Recent orders, every channel").get_by_role("row")).to_have_count(
        3
    )
    assert_accessible(page)
    set_viewport(page, "tablet_portrait")
    assert_accessible(page)
    docs_screenshot(page, "store-customer")

    with console.db.read() as session:
        reservation = session.scalars(select(Reservation)).one()
        assert (reservation.location_id, reservation.profile_id, reservation.status, reservation.channel) == (
            "VER", world.camille, "held", "store"
        )  # fmt: skip
        assert reservation.lines == [{"sku": SKU, "quantity": 2}]
    assert level(console.db, "VER") == (5, 2)  # set aside there, nothing taken anywhere else
    assert level(console.db, "PAR-MAR") == (0, 0)


def test_associate_hands_over_a_pickup_with_the_loyalty_card_shown(
    tablet_page: Page, console: Console
) -> None:
    page = tablet_page
    set_viewport(page, "tablet_portrait")
    world = make_world(console.db, console.settings)
    now = utcnow()
    with console.db.write() as session:
        stock.receive(session, SKU, "PAR-RIV", 8, now=now)
        camille, _ = reservations.reserve(session, location_id="PAR-RIV", lines=[{"sku": SKU, "quantity": 2}],
                                          channel="app", request_id="app-7", profile_id=world.camille,
                                          now=now - timedelta(hours=20))  # fmt: skip
        reservations.reserve(session, location_id="PAR-RIV", lines=[{"sku": OTHER_SKU, "quantity": 1}], channel="web",
                             request_id="web-7", profile_id=world.namesake, now=now - timedelta(hours=2))  # fmt: skip
        orders.place(session, channel="web", request_id="web-cc", lines=[{"sku": SKU, "quantity": 1}],
                     fulfilment="click_collect", pickup_location_id="PAR-RIV", profile_id=world.namesake,
                     now=now - timedelta(hours=5))  # fmt: skip
    email, password = console.user("store_associate", name="Sasha Martin", location_code="PAR-RIV")
    sign_in(page, console, email, password)
    page.goto(console.path("/console/store"))
    page.get_by_label("Loyalty card, phone, e-mail or name").fill("leger")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("2 customers match")
    pickups = page.get_by_role("region", name="Pickups to hand over today").get_by_role("listitem")
    expect(pickups.filter(has=page.get_by_role("heading", level=3))).to_have_count(3)
    expect(pickups.first).to_contain_text("Camille Léger")  # the oldest first
    assert_accessible(page)
    docs_screenshot(page, "store")

    card = pickups.filter(has_text="Camille Léger").first
    card.get_by_label("Loyalty card shown (optional)").fill("2901 2345 6789 0")
    card.get_by_role("button", name="Hand over").click()

    expect(page.get_by_role("status").first).to_contain_text(
        re.compile(r"Handed over: order CMD-\d+, €25\.00 paid in store\. 25 points earned\.")
    )
    region = page.get_by_role("region", name="Pickups to hand over today")
    expect(region).not_to_contain_text("Camille Léger")
    expect(region).to_contain_text("Hugo Leger")
    assert_accessible(page)

    with console.db.read() as session:
        order = session.scalars(select(Order).where(Order.request_id == f"reservation:{camille.id}")).one()
        assert (order.status, order.profile_id, order.channel, order.source_location_id) == (
            "collected", world.camille, "store", "PAR-RIV"
        )  # fmt: skip
        assert session.get(Reservation, camille.id).status == "collected"  # type: ignore[union-attr]
        points = session.scalar(select(LoyaltyEntry.points).where(LoyaltyEntry.order_id == order.id))
        assert points == 25
    assert level(console.db, "PAR-RIV") == (5, 0)  # 8 in, 1 sold to the click & collect order, 2 handed over


def test_a_web_order_returned_in_store_in_french(tablet_page: Page, console: Console) -> None:
    page = tablet_page
    set_viewport(page, "tablet_portrait")
    world = make_world(console.db, console.settings)
    shop_history(console, world)  # CMD-200001: 4 capsules on the web, 32 days ago; CMD-200002: 2 on the app
    email, password = console.user(
        "store_associate", name="Sasha Martin", location_code="PAR-RIV", locale="fr"
    )
    sign_in(page, console, email, password)
    page.goto(console.path("/console/store"))
    page.get_by_label("Carte de fidélité, téléphone, e-mail ou nom").fill("camille.leger@example.fr")
    page.get_by_role("button", name="Chercher", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Camille Léger")
    orders_table = page.get_by_role("region", name="Commandes récentes, tous canaux")
    orders_table.get_by_role("row").filter(has_text="CMD-200002").get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Retour de la commande CMD-200002")

    # More than was bought: refused beside the form, what was typed kept.
    quantity = page.get_by_label("Quantité de Capsules Lungo x10 retournée")
    quantity.fill("3")
    page.get_by_label("Motif").fill("Goût trop fort")
    page.evaluate("document.querySelector('#q-CAF-LUNGO').removeAttribute('max')")  # past the browser's check
    page.get_by_role("button", name="Enregistrer le retour et rembourser").click()
    expect(page.get_by_role("alert")).to_have_text("CAF-LUNGO\u00a0: 2 au plus peuvent être retournés.")
    expect(page.get_by_label("Motif")).to_have_value("Goût trop fort")
    expect(quantity).to_have_value("3")
    assert_accessible(page)
    docs_screenshot(page, "store-return-fr")

    page.get_by_label("Quantité de Capsules Lungo x10 retournée").fill("1")
    page.get_by_role("button", name="Enregistrer le retour et rembourser").click()
    expect(page.get_by_role("status").first).to_contain_text(
        "Retour enregistré pour la commande CMD-200002\u00a0: remboursement de 12,50\u00a0€"
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Camille Léger")
    expect(page.get_by_text("1 retourné(s)")).to_be_visible()
    assert_accessible(page)
    assert level(console.db, "PAR-RIV") == (1, 0)  # restocked in the store that took it back

    # The older web order is past the 30 days of the default return policy: no button, a clear reason.
    page.goto(console.path("/console/store"))
    page.get_by_label("Numéro de commande").fill("CMD-200001")
    page.get_by_role("button", name="Ouvrir la commande").click()
    expect(page.get_by_text("Le délai de retour de cette commande a pris fin le")).to_be_visible()
    expect(page.get_by_role("button", name="Enregistrer le retour et rembourser")).to_have_count(0)
    assert_accessible(page)


def test_an_admin_chooses_the_store_and_checks_stock_without_a_customer(page: Page, console: Console) -> None:
    make_world(console.db, console.settings)
    email, password = console.user("admin")
    sign_in(page, console, email, password)
    page.goto(console.path("/console/store"))
    expect(page.get_by_role("region", name="Pickups to hand over today")).to_have_count(0)
    assert_accessible(page)
    page.get_by_label("Store you work for").select_option(label="Versailles Parly")
    page.get_by_role("button", name="Open this store").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Versailles Parly")
    page.get_by_label("SKU, EAN or product name").fill(SKU.lower())
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/store/stock\?sku=CAF-LUNGO&store=VER$"))
    expect(page.locator("table.stock tbody tr").first).to_contain_text("Versailles Parly")
    expect(page.get_by_text("No customer chosen")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("^Reserve here"))).to_have_count(0)
    assert_accessible(page)
