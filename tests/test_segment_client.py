"""The official Segment Python SDK, unchanged, talking to a live Parcours server on loopback."""

from __future__ import annotations

from typing import Any

from segment.analytics import Client

from tests.conftest import Api


def _client(api: Api, write_key: str, errors: list[Any]) -> Client:
    return Client(
        write_key=write_key,
        host=api.url,
        sync_mode=True,
        max_retries=0,
        on_error=lambda error, _items: errors.append(error),
    )


def test_web_store_and_phone_land_on_one_profile(api: Api) -> None:
    errors: list[Any] = []
    web = _client(api, api.source("Boutique en ligne", "web"), errors)
    store = _client(api, api.source("Caisses", "store"), errors)
    phone = _client(api, api.source("Service client", "phone"), errors)

    web.identify(
        user_id="cust-1042",
        anonymous_id="browser-7f3a",
        traits={"email": "Camille.Martin@Example.fr", "phone": "06 12 34 56 78", "firstName": "Camille"},
    )
    web.track(user_id="cust-1042", event="Product Viewed", properties={"sku": "VESTE-42"})
    store.track(
        anonymous_id="till-3-session-88",
        event="Order Completed",
        properties={"order_id": "T-9001", "total": "129.90", "currency": "EUR"},
        context={"traits": {"loyalty_card": "FID 0042 7781", "email": "camille.martin@example.fr"}},
    )
    phone.track(
        anonymous_id="call-5531",
        event="Call Logged",
        properties={"direction": "inbound", "duration_s": 312, "outcome": "resolved"},
        context={"externalIds": [{"id": "+33612345678", "type": "phone", "collection": "users"}]},
    )
    for client in (web, store, phone):
        client.flush()
    assert errors == []

    by_phone = api.get("/v1/profiles", identifier="phone:06 12 34 56 78")
    assert by_phone.status_code == 200, by_phone.text
    profile = by_phone.json()
    by_card = api.get("/v1/profiles", identifier="loyalty_card:FID00427781").json()
    by_user = api.get("/v1/profiles", identifier="user_id:cust-1042").json()
    assert profile["id"] == by_card["id"] == by_user["id"]
    assert {c["channel"] for c in profile["channels"]} == {"web", "store", "phone"}
    assert profile["traits"]["firstName"] == "Camille"

    timeline = api.get(f"/v1/profiles/{profile['id']}/timeline").json()
    assert [(e["channel"], e["type"], e["name"]) for e in timeline["data"]] == [
        ("web", "identify", None),
        ("web", "track", "Product Viewed"),
        ("store", "track", "Order Completed"),
        ("phone", "track", "Call Logged"),
    ]
    # Every profile that ever existed for Camille now resolves to this one.
    for merged_id in profile["merged_from"]:
        assert api.get(f"/v1/profiles/{merged_id}").json()["id"] == profile["id"]


def test_gzip_batches_from_the_sdk_are_recorded(api: Api) -> None:
    """With ``gzip=True`` the SDK compresses each batch (``Content-Encoding: gzip``)."""
    errors: list[Any] = []
    key = api.source("Application", "app")
    client = Client(
        write_key=key,
        host=api.url,
        sync_mode=True,
        max_retries=0,
        gzip=True,
        on_error=lambda error, _items: errors.append(error),
    )
    client.identify(user_id="cust-2077", traits={"email": "Noe.Petit@Example.fr", "firstName": "Noé"})
    client.track(user_id="cust-2077", event="App Opened", properties={"screen": "home" * 3})
    client.flush()
    assert errors == []
    profile = api.get("/v1/profiles", identifier="email:noe.petit@example.fr").json()
    assert profile["traits"]["firstName"] == "Noé"
    assert [c["channel"] for c in profile["channels"]] == ["app"]
    events = api.get(f"/v1/profiles/{profile['id']}/timeline").json()["data"]
    assert [(e["type"], e["name"]) for e in events] == [("identify", None), ("track", "App Opened")]
