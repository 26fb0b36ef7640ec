"""The console's customers area over HTTP on a live server (SQLite and PostgreSQL): finding a customer by any
identifier or by name, the customer's page, consent changes, the identity graph and unmerge, the matching
review queue. The data is made through the domains' services."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from parcours.commerce import loyalty, orders, reservations, stock
from parcours.console.customers import search
from parcours.identity import service as identity
from parcours.inbox import csat
from parcours.inbox.service import Inbound, get_conversation, receive, set_status
from parcours.matching.review import list_reviews
from parcours.models import Merge, MergeBlock, Price, Product, Variant
from tests.conftest import Api
from tests.console_helpers import add_store, signed_in
from tests.helpers import active_profiles, ingest, make_source, profile_of

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SKU = "MA-MOULIN-01"


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def rows_of(html: str) -> list[str]:
    """The customer links of a results list, in order."""
    return re.findall(r'<th scope="row"><a href="/console/customers/([^"]+)">', html)


def text_of(html: str) -> str:
    """The page's text without tags, spaces collapsed (for phrases split by markup)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("\xa0", " ")


# ------------------------------------------------------------------------------------------ the data
def lea(api: Api) -> tuple[str, str]:
    """Léa Martin: a web account (e-mail, phone, name, address, marketing consent) and a loyalty card at the
    till, joined when she gave her e-mail at the till: returns (her profile, the till's merged-away one)."""
    web, tills = make_source(api.db, "Boutique en ligne", "web"), make_source(api.db, "Caisses", "store")
    ingest(api.db, api.settings, web, [{
        "type": "identify", "messageId": "lea-1", "userId": "u-lea", "timestamp": at(0),
        "traits": {"email": "Lea.Martin@Example.fr", "phone": "06 12 34 56 78", "firstName": "Léa",
                   "lastName": "Martin", "birthday": "1990-04-12",
                   "address": {"street": "3 rue Nationale", "city": "Lille", "postalCode": "59000"}},
        "context": {"consent": {"categoryPreferences": {"marketing": True}}},
    }])  # fmt: skip
    ingest(api.db, api.settings, tills, [{
        "type": "track", "event": "Store Visited", "messageId": "lea-2", "anonymousId": "till-7",
        "timestamp": at(60), "context": {"traits": {"loyalty_card": "2901 2345 6789 0"}},
        "properties": {"store_name": "Lille Grand Place"},
    }])  # fmt: skip
    till_profile = profile_of(api.db, api.settings, "loyalty_card", "2901234567890")
    ingest(api.db, api.settings, tills, [{
        "type": "track", "event": "Order Picked Up", "messageId": "lea-3", "anonymousId": "till-7",
        "timestamp": at(120), "context": {"traits": {"loyalty_card": "2901234567890", "email": "lea.martin@example.fr"}},
        "properties": {"order_id": "W-1001"},
    }])  # fmt: skip
    return profile_of(api.db, api.settings, "email", "lea.martin@example.fr"), till_profile


def paul(api: Api) -> str:
    """Paul Durand, known by the till only (a loyalty card), seen after Léa."""
    tills = make_source(api.db, "Caisses Paris", "store")
    ingest(api.db, api.settings, tills, [{
        "type": "identify", "messageId": "paul-1", "anonymousId": "till-9", "timestamp": at(600),
        "traits": {"loyalty_card": "2909 8765 4321 0", "firstName": "Paul", "lastName": "Durand",
                   "birthday": "1975-01-02"},
    }])  # fmt: skip
    return profile_of(api.db, api.settings, "loyalty_card", "2909876543210")


def shop_for(api: Api, profile_id: str) -> tuple[str, str]:
    """A coffee grinder in a warehouse and a store; the customer ordered two on the web (points earned),
    reserved one in the store, wrote by SMS and answered the satisfaction question 5.
    Returns (the order's number, the conversation's id)."""
    now = datetime.now(UTC)
    with api.db.write() as session:
        session.add(Product(id="p-moulin", name="Moulin à café", category="accessoires", description="",
                            created_at=now))  # fmt: skip
        session.flush()
        session.add(Variant(sku=SKU, product_id="p-moulin", ean=None, name="Moulin manuel", attributes={},
                            active=True))  # fmt: skip
        session.flush()
        session.add(Price(sku=SKU, currency="EUR", amount=Decimal("8.90"), channel=None, reason=None))
        stock.add_location(session, location_id="WH", kind="warehouse", name="Entrepôt", street="",
                           postal_code="", city="", latitude=47.9, longitude=1.9)  # fmt: skip
        stock.add_location(session, location_id="LIL", kind="store", name="Lille Grand Place", street="",
                           postal_code="59000", city="Lille", latitude=50.63, longitude=3.06,
                           services=["click_collect"])  # fmt: skip
        stock.receive(session, SKU, "WH", 5, now=now)
        stock.receive(session, SKU, "LIL", 2, now=now)
        order, _ = orders.place(session, channel="web", request_id="w-1", lines=[{"sku": SKU, "quantity": 2}],
                                fulfilment="ship_from_warehouse", profile_id=profile_id, now=now)  # fmt: skip
        loyalty.earn_for_order(session, order, now)
        reservations.reserve(session, location_id="LIL", lines=[{"sku": SKU, "quantity": 1}], channel="store",
                             request_id="r-1", profile_id=profile_id, now=now)  # fmt: skip
        number = order.number
    settings = api.settings.model_copy(update={"inbox_csat": True})
    with api.db.write() as session:
        received = receive(session, settings, Inbound("sms", "twilio", "S1", [("phone", "+33612345678")],
                                                      "Mon moulin est-il parti ?", sent_at=now))  # fmt: skip
        conversation = set_status(session, received.conversation_id, "resolved", snoozed_until=None, now=now)
        assert csat.ask(session, settings, get_conversation(session, conversation.id), now)
    with api.db.write() as session:
        receive(session, settings, Inbound("sms", "twilio", "S2", [("phone", "+33612345678")],
                                           "5 parfait, merci", sent_at=now + timedelta(minutes=1)))  # fmt: skip
    return number, received.conversation_id


# ----------------------------------------------------------------------------------------- searching
def test_search_finds_a_customer_by_any_identifier_typed_any_way_and_by_name(api: Api) -> None:
    lea_id, _ = lea(api)
    paul_id = paul(api)
    browser, _ = signed_in(api, "marketer")

    def found(query: str) -> list[str]:
        page = browser.get("/console/customers", params={"q": query})
        assert page.status_code == 200, page.text
        return rows_of(page.text)

    assert found("LEA.MARTIN@example.fr") == [lea_id]
    assert found("+33 6 12 34 56 78") == found("06.12.34.56.78") == [lea_id]
    assert found("2909 8765 4321 0") == [paul_id]  # a loyalty card as printed
    assert found("loyalty_card:2901-2345-6789-0") == [lea_id]
    assert found("user_id:u-lea") == [lea_id]
    # Names: both names in either order, accents or not, one name, the start of one.
    assert found("Léa Martin") == found("martin lea") == found("MARTIN") == found("mart") == [lea_id]
    assert found("Durand") == found("paul") == [paul_id]
    assert found("Hélène Dupont") == found("nobody@example.fr") == []
    page = browser.get("/console/customers", params={"q": "Léa Martin"})
    assert "1 customer found for" in page.text and "Léa Martin</a>" in page.text
    assert "E-mail" in page.text and "lea.martin@example.fr" in page.text and ">Store<" in page.text

    wrong = browser.get("/console/customers", params={"q": "email:not-an-address"})
    assert wrong.status_code == 200 and 'role="alert"' in wrong.text
    assert "This identifier cannot be looked up: email is not a valid email address" in wrong.text
    assert rows_of(wrong.text) == []

    # Without a query: the most recently seen first (Paul after Léa).
    assert rows_of(browser.get("/console/customers").text) == [paul_id, lea_id]
    assert browser.get("/console/customers", params={"q": "x" * 321}).status_code == 400


def test_names_are_found_the_same_whether_the_key_index_sorts_by_code_point_or_not(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    lea_id, _ = lea(api)
    paul_id = paul(api)
    browser, _ = signed_in(api, "agent")
    queries = ("mart", "Martin", "lea martin", "DURAND Paul", "pau", "bob smith")
    by_range = [rows_of(browser.get("/console/customers", params={"q": q}).text) for q in queries]
    assert by_range == [[lea_id], [lea_id], [lea_id], [paul_id], [paul_id], []]
    if api.db.engine.dialect.name == "sqlite":
        with api.db.read() as session:
            assert search.keys_sort_bytewise(session)
    # A linguistic collation (en_US...): prefixes through LIKE instead of a range, the same answers.
    monkeypatch.setattr(search, "keys_sort_bytewise", lambda session: False)
    assert [rows_of(browser.get("/console/customers", params={"q": q}).text) for q in queries] == by_range


def test_the_list_of_customers_is_paginated(api: Api) -> None:
    web = make_source(api.db, "web", "web")
    ingest(api.db, api.settings, web, [
        {"type": "identify", "messageId": f"m{n}", "anonymousId": f"device-{n}", "timestamp": at(n),
         "traits": {"firstName": "Client", "lastName": f"Numéro {n}"}}
        for n in range(55)
    ])  # fmt: skip
    browser, _ = signed_in(api, "agent")
    first = browser.get("/console/customers")
    assert len(rows_of(first.text)) == 50 and "Next page" in first.text and "Previous page" not in first.text
    second = browser.get("/console/customers", params={"page": 2})
    assert (
        len(rows_of(second.text)) == 5 and "Previous page" in second.text and "Next page" not in second.text
    )
    assert not set(rows_of(first.text)) & set(rows_of(second.text))
    assert "Client Numéro 54" in first.text and "Client Numéro 0<" in second.text  # newest first
    for bad in ("0", "two", "-1"):
        refused = browser.get("/console/customers", params={"page": bad})
        assert refused.status_code == 400 and "page: a whole number" in refused.text


def test_every_role_may_find_customers_and_nobody_signed_out(api: Api) -> None:
    lea(api)
    for role in ("agent", "supervisor", "store_associate", "marketer", "admin"):
        extra = {"location_id": add_store(api)} if role == "store_associate" else {}
        browser, _ = signed_in(api, role, **extra)
        assert browser.get("/console/customers", params={"q": "lea martin"}).status_code == 200, role
    anonymous = httpx.get(api.url + "/console/customers")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/console/login")


# ---------------------------------------------------------------------------------------- a customer
def test_the_customer_page_shows_everything_known_on_every_channel(api: Api) -> None:
    lea_id, till_id = lea(api)
    number, conversation_id = shop_for(api, lea_id)
    browser, _ = signed_in(api, "agent")

    page = browser.get(f"/console/customers/{lea_id}")
    assert page.status_code == 200, page.text
    html, text = page.text, text_of(page.text)
    assert "<h1>Léa Martin</h1>" in html
    assert "April 12, 1990" in text and "3 rue Nationale, 59000 Lille" in text  # traits, dates per locale
    for shown in ("lea.martin@example.fr", "+33612345678", "2901234567890", "u-lea"):
        assert shown in html, shown
    assert (
        "Loyalty card" in text
        and "Account id" in text
        and "1 device or browser id" in text
        and "till-7" in html
    )
    # Channels used, consent from the web identify (source named), the merge that joined the till.
    assert re.search(r"Web\s*</span></th><td class=\"num\">", html) and ">SMS<" in html
    assert "marketing" in text and "Granted" in text and "event from source Boutique en ligne" in text
    assert "1 profile merged into this one" in text
    # The timeline, newest first, on every channel.
    for name in ("CSAT Answered", "Order Completed", "Order Picked Up", "Store Visited", "Reservation Held"):
        assert name in html, name
    assert html.index("Order Picked Up") < html.index("Store Visited")  # newest first
    assert "via Caisses" in text and "W-1001" in text
    assert "Message Received" in text and "Mon moulin est-il parti ?" in text  # the message's words
    # Orders, reservations, loyalty, satisfaction, conversations.
    assert number in text and "€17.80" in text and "Home delivery" in text and "2 items" in text
    assert "Lille Grand Place" in text and "Held" in text and "1 unit" in text
    assert "17 points" in text and "Bronze" in text and "Earned" in text
    assert "5/5" in text and "parfait, merci" in text
    assert f'href="/console/conversations/{conversation_id}"' in html  # an agent opens it in the inbox

    # The till's profile id, merged away, leads to Léa's page (filters kept).
    moved = browser.get(f"/console/customers/{till_id}?channel=store")
    assert (
        moved.status_code == 303 and moved.headers["location"] == f"/console/customers/{lea_id}?channel=store"
    )
    assert browser.get("/console/customers/prf_nobody").status_code == 404

    # A marketer sees the conversations without a link to an inbox they cannot open, and no consent form.
    marketer, _ = signed_in(api, "marketer")
    seen = marketer.get(f"/console/customers/{lea_id}").text
    assert "/console/conversations/" not in seen and "Record a consent decision" not in seen


def test_the_customer_page_in_french(api: Api) -> None:
    lea_id, _ = lea(api)
    shop_for(api, lea_id)
    browser, _ = signed_in(api, "supervisor", locale="fr")
    text = text_of(browser.get(f"/console/customers/{lea_id}").text)
    assert "Commandes" in text and "Fidélité" in text and "Parcours sur tous les canaux" in text
    assert "17,80 €" in text and "12 avril 1990" in text and "17 points" in text
    assert "2 articles" in text and "1 profil fusionné dans celui-ci" in text  # plurals in French
    assert "Retrait en magasin" not in text and "Livraison à domicile" in text


def test_the_timeline_pages_back_in_time_and_filters_by_channel_and_type(api: Api) -> None:
    lea_id, _ = lea(api)
    web = make_source(api.db, "Application", "app")
    ingest(api.db, api.settings, web, [
        {"type": "track", "event": f"Product Viewed {n:02d}", "messageId": f"view-{n}", "userId": "u-lea",
         "timestamp": at(1000 + n)}
        for n in range(60)
    ])  # fmt: skip
    browser, _ = signed_in(api, "agent")
    first = browser.get(f"/console/customers/{lea_id}").text
    shown = re.findall(r"Product Viewed (\d\d)", first)
    assert shown == [f"{n:02d}" for n in range(59, 9, -1)]  # the 50 newest, newest first
    older = re.search(r'href="(/console/customers/[^"]+before=[^"#]+)#timeline"', first)
    assert older
    second = browser.get(older.group(1).replace("&amp;", "&")).text
    assert re.findall(r"Product Viewed (\d\d)", second) == [f"{n:02d}" for n in range(9, -1, -1)]
    assert "Order Picked Up" in second and "Store Visited" in second and "Newest events" in second

    store_only = browser.get(f"/console/customers/{lea_id}", params={"channel": "store"}).text
    assert "Store Visited" in store_only and "Product Viewed" not in store_only
    identified = browser.get(f"/console/customers/{lea_id}", params={"type": "identify"}).text
    assert (
        "Identified" in identified
        and "Product Viewed" not in identified
        and "Store Visited" not in identified
    )
    for params, field in (({"channel": "telepathy"}, "channel"), ({"type": "shout"}, "type"),
                          ({"before": "not-a-cursor"}, "before")):  # fmt: skip
        refused = browser.get(f"/console/customers/{lea_id}", params=params)
        assert refused.status_code == 400 and f"{field}:" in refused.text, params


def test_consent_is_changed_by_a_supervisor_with_the_csrf_token_only(api: Api) -> None:
    lea_id, _ = lea(api)
    marketer, marketer_csrf = signed_in(api, "marketer")
    form = {"channel": "email", "purpose": "marketing", "granted": "no"}
    refused = marketer.post(
        f"/console/customers/{lea_id}/consent", data={**form, "csrf_token": marketer_csrf}
    )
    assert refused.status_code == 403
    supervisor, csrf = signed_in(api, "supervisor")
    assert supervisor.post(f"/console/customers/{lea_id}/consent", data=form).status_code == 403
    for bad, field in (({"channel": "pigeon"}, "channel"), ({"purpose": "mark eting"}, "purpose"),
                       ({"granted": "maybe"}, "granted"), ({"purpose": ""}, "purpose")):  # fmt: skip
        answer = supervisor.post(
            f"/console/customers/{lea_id}/consent", data={**form, **bad, "csrf_token": csrf}
        )
        assert answer.status_code == 400 and f"{field}:" in answer.text, bad
    with api.db.read() as session:
        assert len(identity.profile_view(session, lea_id)["consent"]) == 1  # nothing half-written

    done = supervisor.post(f"/console/customers/{lea_id}/consent", data={**form, "csrf_token": csrf})
    assert done.status_code == 303 and done.headers["location"] == f"/console/customers/{lea_id}#consent"
    with api.db.read() as session:
        consent = {(c["channel"], c["purpose"]): c for c in identity.profile_view(session, lea_id)["consent"]}
    assert consent[("email", "marketing")]["granted"] is False
    assert consent[("email", "marketing")]["source"] == "console: supervisor@example.org"
    page = supervisor.get(f"/console/customers/{lea_id}")
    assert "Consent recorded: marketing on E-mail withdrawn." in page.text
    assert "Withdrawn" in page.text and "console: supervisor@example.org" in page.text


# ------------------------------------------------------------------------------------ identity graph
def test_the_identity_graph_shows_the_merge_and_a_supervisor_undoes_it(api: Api) -> None:
    lea_id, till_id = lea(api)
    agent, agent_csrf = signed_in(api, "agent")
    page = agent.get(f"/console/customers/{till_id}/graph")
    assert page.status_code == 303 and page.headers["location"] == f"/console/customers/{lea_id}/graph"
    page = agent.get(f"/console/customers/{lea_id}/graph")
    html, text = page.text, text_of(page.text)
    assert page.status_code == 200 and "Identity graph of Léa Martin" in text
    assert (
        "2 profiles make this customer." in text and "Surviving profile" in text and "Merged profile" in text
    )
    assert "Shared identifier" in text and "Order Picked Up" in text  # the rule, the event that linked them
    assert "Loyalty card 2901234567890" in text and "first brought by" in text and "Store Visited" in text
    assert "<svg" in html and "Unmerge" not in html  # an agent sees the graph, cannot undo it
    with api.db.read() as session:
        merge_id = session.scalars(select(Merge.id)).one()
    forbidden = agent.post(f"/console/customers/{lea_id}/unmerge",
                           data={"merge_id": merge_id, "csrf_token": agent_csrf})  # fmt: skip
    assert forbidden.status_code == 403

    supervisor, csrf = signed_in(api, "supervisor")
    graph = supervisor.get(f"/console/customers/{lea_id}/graph").text
    assert "data-confirm=" in graph and f'name="merge_id" value="{merge_id}"' in graph
    assert (
        supervisor.post(f"/console/customers/{lea_id}/unmerge", data={"merge_id": merge_id}).status_code
        == 403
    )
    unknown = supervisor.post(
        f"/console/customers/{lea_id}/unmerge", data={"merge_id": "mrg_x", "csrf_token": csrf}
    )
    assert unknown.status_code == 404
    assert len(active_profiles(api.db)) == 1

    done = supervisor.post(
        f"/console/customers/{lea_id}/unmerge", data={"merge_id": merge_id, "csrf_token": csrf}
    )
    assert done.status_code == 303 and done.headers["location"] == f"/console/customers/{lea_id}/graph"
    assert sorted(active_profiles(api.db)) == sorted([lea_id, till_id])
    with api.db.read() as session:
        assert session.get(Merge, merge_id).undone_at is not None  # type: ignore[union-attr]
        assert session.scalars(select(MergeBlock)).one().reason.startswith("unmerge")
    after = supervisor.get(f"/console/customers/{lea_id}/graph")
    text = text_of(after.text)
    # The till's profile has the card back; the flash names it (no name of its own: its card).
    assert f"Merge undone: 2901234567890 ({till_id}) is a customer of their own again." in text
    assert "1 profile makes this customer." in text and "Undone" in text and "Kept apart" in text
    assert f'href="/console/customers/{till_id}"' in after.text
    again = supervisor.post(
        f"/console/customers/{lea_id}/unmerge", data={"merge_id": merge_id, "csrf_token": csrf}
    )
    assert again.status_code == 409 and "already undone" in again.text


def test_a_supervisor_merges_two_customers_by_hand_and_undoes_it(api: Api) -> None:
    lea_id, till_id = lea(api)
    paul_id = paul(api)
    phone = make_source(api.db, "Service client", "phone")
    ingest(api.db, api.settings, phone, [{
        "type": "track", "event": "Call Logged", "messageId": "call-1", "timestamp": at(700),
        "context": {"traits": {"phone": "07 61 22 33 44"}},
    }])  # fmt: skip
    caller_id = profile_of(api.db, api.settings, "phone", "+33761223344")
    agent, agent_csrf = signed_in(api, "agent")
    assert "Merge with another customer" not in agent.get(f"/console/customers/{lea_id}/graph").text
    forbidden = agent.post(f"/console/customers/{lea_id}/merge",
                           data={"other": "07 61 22 33 44", "csrf_token": agent_csrf})  # fmt: skip
    assert forbidden.status_code == 403

    supervisor, csrf = signed_in(api, "supervisor")
    graph = supervisor.get(f"/console/customers/{lea_id}/graph").text
    assert "Merge with another customer" in graph and 'action="/console/customers/' in graph

    def merge(into: str, other: str, reason: str = "") -> httpx.Response:
        return supervisor.post(f"/console/customers/{into}/merge",
                               data={"other": other, "reason": reason, "csrf_token": csrf})  # fmt: skip

    # What cannot be merged says why, and merges nothing.
    assert merge(lea_id, "09 99 99 99 99").status_code == 404
    assert merge(lea_id, "lea.martin@example.fr").status_code == 409  # already hers
    assert merge(lea_id, "phone:12").status_code == 400
    assert merge(lea_id, "").status_code == 400
    assert merge(lea_id, "07 61 22 33 44", reason="x" * 121).status_code == 400
    assert len(active_profiles(api.db)) == 3

    # The caller's phone, typed as the agent heard it: merged into Léa (the older profile).
    done = merge(caller_id, "Lea.Martin@Example.fr", reason="she called from her new mobile")
    assert done.status_code == 303 and done.headers["location"] == f"/console/customers/{lea_id}/graph"
    page = text_of(supervisor.get(done.headers["location"]).text)
    assert "Merged: +33761223344 is now part of this customer. Unmerge undoes it." in page
    assert "Merged by hand by Supervisor: she called from her new mobile" in page
    assert "3 profiles make this customer." in page
    assert identity_of(api, "phone", "+33761223344") == lea_id

    # Undone from the same page, then merged again from the "kept apart" list.
    with api.db.read() as session:
        merge_id = session.scalars(select(Merge.id).where(Merge.merged_id == caller_id)).one()
    undo = supervisor.post(
        f"/console/customers/{lea_id}/unmerge", data={"merge_id": merge_id, "csrf_token": csrf}
    )
    assert undo.status_code == 303 and identity_of(api, "phone", "+33761223344") == caller_id
    graph = supervisor.get(f"/console/customers/{lea_id}/graph").text
    assert "Merge again" in graph and f'name="other" value="{caller_id}"' in graph
    again = merge(lea_id, caller_id, reason="merged again after an unmerge")
    assert again.status_code == 303 and identity_of(api, "phone", "+33761223344") == lea_id
    # Paul holds a loyalty card and so does Léa: the rule (2 cards at most) still holds for a person.
    with api.db.write() as session:
        identity.update_kind(session, "loyalty_card", max_per_profile=1)
    refused = merge(lea_id, paul_id)
    assert refused.status_code == 409 and "different loyalty_card identifiers" in refused.text
    assert till_id in identity_people(api, lea_id)


def identity_of(api: Api, kind: str, value: str) -> str:
    return profile_of(api.db, api.settings, kind, value)


def identity_people(api: Api, profile_id: str) -> list[str]:
    with api.db.read() as session:
        return identity.people(session, profile_id)


def test_the_identity_graph_lists_the_conflicts_recorded_on_the_customer(api: Api) -> None:
    web = make_source(api.db, "web", "web")
    ingest(api.db, api.settings, web, [
        {"type": "identify", "messageId": "a", "userId": "u-1", "timestamp": at(0), "traits": {"email": "a@example.fr"}},
        {"type": "identify", "messageId": "b", "userId": "u-2", "timestamp": at(1), "traits": {"email": "b@example.fr"}},
        # One browser signs in with both e-mails: two user ids cannot be one person.
        {"type": "track", "event": "Newsletter", "messageId": "c", "anonymousId": "shared", "timestamp": at(2),
         "context": {"traits": {"email": ["a@example.fr", "b@example.fr"]}}},
    ])  # fmt: skip
    assert len(active_profiles(api.db)) == 2
    first = profile_of(api.db, api.settings, "email", "a@example.fr")
    second = profile_of(api.db, api.settings, "email", "b@example.fr")
    with api.db.read() as session:
        (conflict,) = identity.list_conflicts(session)["data"]
    attached = conflict["attached_profile_id"]
    browser, _ = signed_in(api, "supervisor")
    text = text_of(browser.get(f"/console/customers/{attached}/graph").text)
    assert conflict["rule"] == "limit user_id: 1 per profile"  # the resolver's words, in the API
    assert conflict["reason"] == "merging would give one profile 2 user_id (limit 1)"
    assert "Identity conflicts" in text and "Limit of Account id: 1 per customer" in text  # the console's
    assert "Merging would give one customer 2 identifiers of kind Account id (the limit is 1)." in text
    other = second if attached == first else first
    assert f'href="/console/customers/{other}"' in browser.get(f"/console/customers/{attached}/graph").text
    # The customer kept apart sees the conflict too, naming the one the event went to.
    page = browser.get(f"/console/customers/{other}/graph").text
    assert "Limit of Account id: 1 per customer" in text_of(page)
    assert f'href="/console/customers/{attached}"' in page


# -------------------------------------------------------------------------------------- review queue
def coupon_pair(api: Api, key: str, first: str, last: str, birthday: str, address: dict[str, str]) -> None:
    """A customer of the web shop (e-mail, address) and the same person keyed in from a paper coupon (an
    account id, the name as read, the birth date): likely one person, not certain -> a review item."""
    web = make_source(api.db, f"web {key}", "web")
    ingest(api.db, api.settings, web, [
        {"type": "identify", "messageId": f"{key}-web", "traits": {
            "email": f"{key}@example.fr", "firstName": first, "lastName": last, "birthday": birthday,
            "address": address}},
        {"type": "identify", "messageId": f"{key}-coupon", "userId": f"u-coupon-{key}", "traits": {
            "firstName": unicodedata.normalize("NFKD", first).encode("ascii", "ignore").decode(), "lastName": last.upper(), "birthday": birthday}},
    ])  # fmt: skip


def helene_and_marc(api: Api) -> None:
    coupon_pair(api, "helene", "Hélène", "Dupont", "1984-03-07",
                {"street": "12 rue des Lilas", "city": "Lyon", "postalCode": "69003"})  # fmt: skip
    coupon_pair(api, "marc", "Marc", "Lefèvre", "1962-11-30",
                {"street": "8 quai de la Fosse", "city": "Nantes", "postalCode": "44000"})  # fmt: skip


def test_the_review_queue_shows_the_evidence_and_accept_merges(api: Api) -> None:
    helene_and_marc(api)
    with api.db.read() as session:
        pending = list_reviews(session, status="pending", limit=10)
    assert len(pending) == 2
    agent, _ = signed_in(api, "agent")
    assert agent.get("/console/review").status_code == 403

    supervisor, csrf = signed_in(api, "supervisor")
    page = supervisor.get("/console/review")
    html, text = page.text, text_of(page.text)
    assert page.status_code == 200 and "Hélène Dupont" in text and "Helene DUPONT" in text
    assert "Marc Lefèvre" in text and "Marc LEFÈVRE" in text
    assert "Match probability" in text and "Given name" in text and "Birth date" in text
    assert "1984-03-07" in text and "12 rue des Lilas" in text and "69003" in text
    assert "exact" in text and "unknown on one side" in text and " for" in text
    assert html.count('action="/console/review/') == 4  # accept and reject, each pair

    first = next(p for p in pending if p["id"] in html)
    assert supervisor.post(f"/console/review/{first['id']}/accept").status_code == 403  # no CSRF
    accepted = supervisor.post(f"/console/review/{first['id']}/accept", data={"csrf_token": csrf})
    assert accepted.status_code == 303 and accepted.headers["location"] == "/console/review"
    with api.db.read() as session:
        decided = {r["id"]: r for r in list_reviews(session, status=None, limit=10)}
        survivor = identity.resolve_profile_id(session, first["profile_ids"][0])
        assert survivor == identity.resolve_profile_id(session, first["profile_ids"][1])
    assert decided[first["id"]]["status"] == "accepted" and decided[first["id"]]["merge_id"]
    assert len(active_profiles(api.db)) == 3
    after = supervisor.get("/console/review")
    assert "Merged: the two profiles are now one customer" in text_of(after.text)
    assert after.text.count('action="/console/review/') == 2
    again = supervisor.post(f"/console/review/{first['id']}/accept", data={"csrf_token": csrf})
    assert again.status_code == 409

    [second] = [p for p in pending if p["id"] != first["id"]]
    rejected = supervisor.post(f"/console/review/{second['id']}/reject", data={"csrf_token": csrf})
    assert rejected.status_code == 303
    with api.db.read() as session:
        assert list_reviews(session, status="rejected", limit=10)[0]["id"] == second["id"]
    assert len(active_profiles(api.db)) == 3
    empty = supervisor.get("/console/review")
    assert "Nothing waits for a decision." in empty.text and "stay two customers" in empty.text
    decided_page = text_of(supervisor.get("/console/review", params={"status": "decided"}).text)
    assert "Accepted (merged)" in decided_page and "Rejected" in decided_page
    assert supervisor.get("/console/review", params={"status": "everything"}).status_code == 400
    # The merge the review made is undone from the identity graph like any other.
    graph = supervisor.get(f"/console/customers/{survivor}/graph").text
    assert f"Match review {first['id']} accepted (probability" in graph and "Unmerge" in graph
