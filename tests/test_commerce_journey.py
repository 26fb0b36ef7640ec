"""The issue's journey: a customer reserves on the app, collects in store with her loyalty card, earns
points, and sees the same balance and the same order from the web API and from the store API."""

from __future__ import annotations

from decimal import Decimal

from parcours.commerce import stock
from parcours.db.types import utcnow
from parcours.inbox.agents import create_agent
from parcours.models import Price, Product, Variant
from tests.conftest import Api
from tests.helpers import ingest, make_source, profile_of

SKU = "ARA-045"


def test_reserve_on_the_app_collect_in_store_same_points_and_order_everywhere(api: Api) -> None:
    now = utcnow()
    with api.db.write() as session:
        session.add(Product(id="p-cafetiere", name="Cafetière italienne", category="accessoires", description="",
                            created_at=now))  # fmt: skip
        session.flush()
        session.add(Variant(sku=SKU, product_id="p-cafetiere", ean=None, name="6 tasses", attributes={},
                            active=True))  # fmt: skip
        session.flush()
        session.add(Price(sku=SKU, currency="EUR", amount=Decimal("39.90"), channel=None, reason=None))
        stock.add_location(session, location_id="PAR", kind="store", name="Paris Rivoli", street="", postal_code="",
                           city="Paris", latitude=48.86, longitude=2.35, services=["click_collect", "returns"])  # fmt: skip
        stock.receive(session, SKU, "PAR", 3, now=now)
        _, agent_token = create_agent(session, "Audrey")
    # Camille: app account, and a loyalty card the store knows her by.
    app = make_source(api.db, "app", "app")
    ingest(api.db, api.settings, app, [{"type": "identify", "messageId": "m", "userId": "u-camille",
                                        "traits": {"email": "camille@example.fr", "loyalty_card": "2901234567890"}}])  # fmt: skip
    camille = profile_of(api.db, api.settings, "user_id", "u-camille")
    api_headers, store_headers = api.bearer, {"Authorization": f"Bearer {agent_token}"}

    # 1. Reserve on the app.
    held = api.client.post("/v1/reservations", headers=api_headers, json={
        "location_id": "PAR", "lines": [{"sku": SKU, "quantity": 2}], "channel": "app", "request_id": "app-42",
        "profile_id": camille})  # fmt: skip
    assert held.status_code == 201, held.text
    # 2. Collect in store, showing the loyalty card at the till.
    collected = api.client.post(f"/v1/store/reservations/{held.json()['id']}/collect", headers=store_headers,
                                json={"identifier": "loyalty_card:2901 2345 6789 0"})  # fmt: skip
    assert collected.status_code == 200, collected.text
    order = collected.json()
    assert order["total"] == "79.80" and order["profile_id"] == camille

    # 3. The same balance and the same order, from the web API and from the store API.
    web_points = api.client.get(f"/v1/loyalty/{camille}", headers=api_headers).json()
    store_view = api.client.get("/v1/store/customers", params={"identifier": "loyalty_card:2901234567890"},
                                headers=store_headers).json()  # fmt: skip
    assert web_points["balance"] == store_view["loyalty"]["balance"] == 79
    web_orders = api.client.get(f"/v1/profiles/{camille}/orders", headers=api_headers).json()["data"]
    assert (
        [o["number"] for o in web_orders] == [o["number"] for o in store_view["orders"]] == [order["number"]]
    )
    assert store_view["reservations"] == []  # collected: no longer held
    # A till re-sending the collection does not earn twice.
    again = api.client.post(f"/v1/store/reservations/{held.json()['id']}/collect", headers=store_headers,
                            json={"identifier": "loyalty_card:2901234567890"})  # fmt: skip
    assert again.status_code == 409
    assert api.client.get(f"/v1/loyalty/{camille}", headers=api_headers).json()["balance"] == 79

    # 4. A click & collect order from the web shop, handed over in the store: its points too.
    from parcours.commerce import orders

    with api.db.write() as session:
        web_order, _ = orders.place(session, channel="web", request_id="web-7", lines=[{"sku": SKU, "quantity": 1}],
                                    fulfilment="click_collect", pickup_location_id="PAR", profile_id=camille,
                                    now=utcnow())  # fmt: skip
    elsewhere = api.client.post(f"/v1/store/orders/{web_order.id}/hand-over", headers=store_headers,
                                json={"store_id": "LYS"})  # fmt: skip
    assert elsewhere.status_code == 409
    handed = api.client.post(f"/v1/store/orders/{web_order.id}/hand-over", headers=store_headers,
                             json={"store_id": "PAR"})  # fmt: skip
    assert handed.status_code == 200 and handed.json()["status"] == "collected", handed.text
    assert api.client.get(f"/v1/loyalty/{camille}", headers=api_headers).json()["balance"] == 79 + 39


def test_erasure_removes_the_persons_conversations_and_points_and_unlinks_orders(api: Api) -> None:
    from sqlalchemy import func, select

    from parcours.commerce import loyalty, orders
    from parcours.identity import service as identity
    from parcours.inbox.service import Inbound, receive
    from parcours.models import Conversation, LoyaltyEntry, Message, Order

    now = utcnow()
    with api.db.write() as session:
        session.add(Product(id="p", name="Café", category="café", description="", created_at=now))
        session.flush()
        session.add(Variant(sku=SKU, product_id="p", ean=None, name="Café", attributes={}, active=True))
        session.flush()
        session.add(Price(sku=SKU, currency="EUR", amount=Decimal("8.90"), channel=None, reason=None))
        stock.add_location(session, location_id="WH", kind="warehouse", name="Entrepôt", street="", postal_code="",
                           city="", latitude=47.9, longitude=1.9)  # fmt: skip
        stock.receive(session, SKU, "WH", 5, now=now)
    with api.db.write() as session:
        received = receive(session, api.settings, Inbound("email", "smtp", "<x@y>", [("email", "zoe@example.fr")],
                                                          "Bonjour", sent_at=now))  # fmt: skip
        order, _ = orders.place(session, channel="web", request_id="w1", lines=[{"sku": SKU, "quantity": 2}],
                                fulfilment="ship_from_warehouse", profile_id=received.profile_id, now=now)  # fmt: skip
        loyalty.earn_for_order(session, order, now)
    with api.db.write() as session:
        identity.erase_profile(session, received.profile_id)
    with api.db.read() as session:
        for model in (Conversation, Message, LoyaltyEntry):
            assert session.scalar(select(func.count()).select_from(model)) == 0, model.__name__
        kept = session.scalars(select(Order)).one()
        assert kept.profile_id is None and kept.total == Decimal("17.80")  # the sale stays, anonymous
