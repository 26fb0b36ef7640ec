"""The customers area in a real browser: finding a customer by the phone number they give, their page with
the timeline on every channel, unmerging from the identity graph (the issue's acceptance test), and
accepting a pair in the matching review queue."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import select

from parcours.identity import service as identity
from parcours.matching.review import list_reviews
from parcours.models import Merge
from tests.browser.conftest import Console, assert_accessible, docs_screenshot, set_viewport, sign_in
from tests.helpers import active_profiles, ingest, make_source, profile_of
from tests.test_console_customers import at, helene_and_marc, lea, shop_for


def more_of_lea(console: Console) -> None:
    """What makes her page look like a real customer's: the app, browsed before she signed in on it (a
    second merge), e-mails opened."""
    app, mail = (
        make_source(console.db, "Application mobile", "app"),
        make_source(console.db, "Emailing", "email"),
    )
    ingest(console.db, console.settings, app, [
        {"type": "screen", "name": "Fiche produit", "messageId": "app-1", "anonymousId": "ios-7F3A",
         "timestamp": at(200)},
        {"type": "track", "event": "Product Viewed", "messageId": "app-2", "anonymousId": "ios-7F3A",
         "timestamp": at(201), "properties": {"name": "Moulin à café manuel", "sku": "MA-MOULIN-01"}},
    ])  # fmt: skip
    ingest(console.db, console.settings, app, [
        {"type": "identify", "messageId": "app-3", "anonymousId": "ios-7F3A", "userId": "u-lea",
         "timestamp": at(202)},
        {"type": "track", "event": "Product Added", "messageId": "app-4", "userId": "u-lea", "timestamp": at(203),
         "properties": {"name": "Moulin à café manuel", "quantity": 2}},
    ])  # fmt: skip
    ingest(console.db, console.settings, mail, [
        {"type": "track", "event": "Email Opened", "messageId": "mail-1", "userId": "u-lea", "timestamp": at(30),
         "properties": {"email_subject": "Nos cafés de printemps", "campaign_name": "Printemps"}},
    ])  # fmt: skip


def test_an_agent_finds_a_customer_by_phone_and_reads_her_page(page: Page, console: Console) -> None:
    lea_id, _ = lea(console.api)
    number, _ = shop_for(console.api, lea_id)
    more_of_lea(console)
    email, password = console.user("agent")
    sign_in(page, console, email, password)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
    expect(page.get_by_role("heading", name="Customers", level=1)).to_be_visible()
    page.get_by_label("Find a customer").fill("06 12 34 56 78")
    page.get_by_label("Find a customer").press("Enter")
    expect(page.get_by_role("heading", level=2)).to_contain_text("1 customer found")
    expect(page.get_by_role("row", name=re.compile("Léa Martin"))).to_contain_text("lea.martin@example.fr")
    assert_accessible(page)
    docs_screenshot(page, "customers")

    page.get_by_role("link", name="Léa Martin").click()
    expect(page.get_by_role("heading", name="Léa Martin", level=1)).to_be_visible()
    orders = page.get_by_role("region", name="Orders")
    expect(orders).to_contain_text(number)
    expect(orders).to_contain_text("€17.80")
    expect(page.get_by_role("region", name="Loyalty")).to_contain_text("17 points")
    timeline = page.get_by_role("region", name="Timeline on every channel")
    expect(timeline.get_by_role("listitem").first).to_contain_text("CSAT Answered")  # the newest first
    expect(timeline).to_contain_text("Store Visited")
    assert_accessible(page)
    docs_screenshot(page, "customer")

    # Only the app: the filter form, a plain GET.
    timeline.get_by_label("Channel").select_option(label="App")
    timeline.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"channel=app"))
    timeline = page.get_by_role("region", name="Timeline on every channel")
    expect(timeline).to_contain_text("Product Added")
    expect(timeline).not_to_contain_text("Store Visited")
    # A property of an event, behind "Details" (a native disclosure, keyboard-usable).
    timeline.get_by_text("Details").first.click()
    expect(timeline.get_by_text("quantity")).to_be_visible()


def test_the_customer_page_fits_a_tablet(tablet_page: Page, console: Console) -> None:
    lea_id, _ = lea(console.api)
    shop_for(console.api, lea_id)
    email, password = console.user("store_associate")
    sign_in(tablet_page, console, email, password)
    for viewport in ("tablet_landscape", "tablet_portrait"):
        set_viewport(tablet_page, viewport)
        for path in (
            f"/console/customers/{lea_id}",
            f"/console/customers/{lea_id}/graph",
            "/console/customers",
        ):
            tablet_page.goto(console.path(path))
            overflow = tablet_page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{viewport} {path}: scrolls sideways by {overflow}px"
    assert_accessible(tablet_page)


def test_a_supervisor_unmerges_from_the_identity_graph(page: Page, console: Console) -> None:
    lea_id, till_id = lea(console.api)
    more_of_lea(console)
    assert len(active_profiles(console.db)) == 1
    email, password = console.user("supervisor")
    sign_in(page, console, email, password)

    page.goto(console.path(f"/console/customers/{lea_id}"))
    page.get_by_role("link", name="Identity graph").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Identity graph of Léa Martin")
    tree = page.get_by_role("region", name="Profiles and their identifiers")
    expect(tree).to_contain_text("Merged profile")
    expect(tree).to_contain_text("2901234567890")
    merges = page.get_by_role("region", name="Merges")
    expect(merges).to_contain_text("Shared identifier")
    expect(merges).to_contain_text("Order Picked Up")  # the event that linked them
    assert_accessible(page)
    docs_screenshot(page, "identity-graph")

    # The merge of the till's profile (the loyalty card): the row of the event that linked them.
    till_merge = merges.get_by_role("row").filter(has_text="Order Picked Up")
    expect(merges.get_by_role("button", name="Unmerge")).to_have_count(2)  # the app's merge too
    # Changing one's mind at the question undoes nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    till_merge.get_by_role("button", name="Unmerge").click()
    expect(till_merge.get_by_role("button", name="Unmerge")).to_be_visible()
    assert len(active_profiles(console.db)) == 1

    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        till_merge.get_by_role("button", name="Unmerge").click()
    expect(page.get_by_role("status")).to_contain_text(f"Merge undone: 2901234567890 ({till_id})")
    expect(page.get_by_text("2 profiles make this customer.")).to_be_visible()  # Léa and her phone's app
    merges = page.get_by_role("region", name="Merges")
    till_merge = merges.get_by_role("row").filter(has_text="Order Picked Up")
    expect(till_merge).to_contain_text("Undone")
    expect(till_merge.get_by_role("button", name="Unmerge")).to_have_count(0)
    expect(merges.get_by_role("button", name="Unmerge")).to_have_count(1)
    assert_accessible(page)

    # Two customers again, in the database too: the card on the till's profile, the e-mail on Léa's.
    assert sorted(active_profiles(console.db)) == sorted([lea_id, till_id])
    assert profile_of(console.db, console.settings, "loyalty_card", "2901234567890") == till_id
    assert profile_of(console.db, console.settings, "email", "lea.martin@example.fr") == lea_id
    with console.db.read() as session:
        undone = session.scalars(select(Merge).where(Merge.undone_at.is_not(None))).all()
        assert [(m.survivor_id, m.merged_id) for m in undone] == [(lea_id, till_id)]
        assert identity.resolve_profile_id(session, till_id) == till_id

    # The restored customer opens from the graph, a page of their own.
    till_merge.get_by_role("link", name="Open 2901234567890").click()
    expect(page).to_have_url(console.path(f"/console/customers/{till_id}"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Unnamed customer")
    expect(page.get_by_role("region", name="Identifiers")).to_contain_text("2901234567890")

    # She was right the first time: merged again by hand, the card typed as it is printed.
    page.go_back()
    form = page.get_by_role("region", name="Merge with another customer")
    form.get_by_label("The other customer").fill("2901 2345 6789 0")
    form.get_by_label("Reason").fill("same card, checked with her at the till")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        form.get_by_role("button", name="Merge").click()
    expect(page.get_by_role("status")).to_contain_text("Merged: 2901234567890 is now part of this customer.")
    expect(page.get_by_text("3 profiles make this customer.")).to_be_visible()
    merges = page.get_by_role("region", name="Merges")
    expect(merges).to_contain_text(
        "Merged by hand by Sam Supervisor: same card, checked with her at the till"
    )
    expect(merges).to_contain_text("none: a person or the matcher decided")
    assert_accessible(page)
    assert profile_of(console.db, console.settings, "loyalty_card", "2901234567890") == lea_id


def test_a_supervisor_accepts_a_pair_in_the_review_queue(page: Page, console: Console) -> None:
    helene_and_marc(console.api)
    email, password = console.user("supervisor")
    sign_in(page, console, email, password)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Review queue").click()
    expect(page.get_by_role("heading", name="Review queue", level=1)).to_be_visible()
    helene = page.get_by_role("article").filter(
        has=page.get_by_role("heading", name=re.compile("Hélène Dupont"))
    )
    expect(helene.get_by_role("table")).to_contain_text("12 rue des Lilas")
    expect(helene.get_by_role("row", name=re.compile("Birth date"))).to_contain_text("exact")
    assert_accessible(page)
    docs_screenshot(page, "review-queue")

    with page.expect_navigation():
        helene.get_by_role("button", name=re.compile("Accept: same person")).click()
    expect(page.get_by_role("status")).to_contain_text("Merged: the two profiles are now one customer")
    expect(page.get_by_role("article")).to_have_count(1)  # Marc's pair still waits
    expect(page.get_by_role("article")).to_contain_text("Marc Lefèvre")

    with console.db.read() as session:
        (accepted,) = list_reviews(session, status="accepted", limit=10)
        first, second = (identity.resolve_profile_id(session, pid) for pid in accepted["profile_ids"])
    assert first == second and len(active_profiles(console.db)) == 3
    page.get_by_role("link", name="Decided").click()
    expect(page.get_by_role("article")).to_contain_text("Accepted (merged)")
    assert_accessible(page)


def test_a_supervisor_settles_identity_conflicts(page: Page, console: Console) -> None:
    """A shop tablet joined a browsing session to Léa's account; a supervisor unmerged it. When the same
    pair shows up together again, the event goes to one of them and a conflict waits: she checks and
    merges them. Another conflict, two accounts on one e-mail, she dismisses."""
    web = make_source(console.db, "Site web", "web")
    ingest(console.db, console.settings, web, [
        {"type": "identify", "messageId": "w1", "anonymousId": "web-4C21", "timestamp": at(0),
         "traits": {"firstName": "Léa", "lastName": "Martin", "email": "lea.martin@example.fr"}},
        {"type": "identify", "messageId": "w2", "userId": "u-lea", "timestamp": at(1),
         "traits": {"firstName": "Léa", "lastName": "Martin", "phone": "06 12 34 56 78"}},
        {"type": "track", "event": "Signed In", "messageId": "w3", "anonymousId": "web-4C21", "userId": "u-lea",
         "timestamp": at(2)},
    ])  # fmt: skip
    with console.db.write() as session:
        identity.unmerge(session, profile_of(console.db, console.settings, "anonymous_id", "web-4C21"))
    ingest(console.db, console.settings, web, [
        {"type": "track", "event": "Order Completed", "messageId": "w4", "anonymousId": "web-4C21",
         "userId": "u-lea", "timestamp": at(30), "properties": {"order_id": "W-1042", "total": 89.9}},
        {"type": "identify", "messageId": "p1", "userId": "u-paul", "timestamp": at(40),
         "traits": {"firstName": "Paul", "lastName": "Girard", "email": "famille.girard@example.fr"}},
        {"type": "identify", "messageId": "p2", "userId": "u-julie", "timestamp": at(41),
         "traits": {"firstName": "Julie", "lastName": "Girard", "email": "famille.girard@example.fr"}},
    ])  # fmt: skip
    assert len(active_profiles(console.db)) == 4
    email, password = console.user("supervisor", name="Sam Supervisor")
    sign_in(page, console, email, password)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Review queue").click()
    page.get_by_role("navigation", name="What to review").get_by_role(
        "link", name="Identity conflicts"
    ).click()
    expect(page.get_by_role("heading", name="Identity conflicts", level=1)).to_be_visible()
    articles = page.get_by_role("article")
    expect(articles).to_have_count(2)
    unmerged = articles.filter(has=page.get_by_role("heading", name="Kept apart by an unmerge"))
    expect(unmerged).to_contain_text("Order Completed")
    expect(unmerged).to_contain_text("Léa Martin")
    assert_accessible(page)
    docs_screenshot(page, "identity-conflicts")

    unmerged.get_by_label("Why (optional)").fill("same browser, checked with her by phone")
    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        unmerged.get_by_role("button", name=re.compile("Merge: same person")).click()
    expect(page.get_by_role("status")).to_contain_text(
        "Merged: the conflict's customers are now one, Léa Martin"
    )
    expect(articles).to_have_count(1)
    with page.expect_navigation():
        articles.get_by_role("button", name=re.compile("Dismiss: the rule was right")).click()
    expect(page.get_by_role("status")).to_contain_text("Dismissed")
    expect(page.get_by_text("No conflict waits for a decision.")).to_be_visible()
    assert len(active_profiles(console.db)) == 3

    page.get_by_role("link", name="Decided").click()
    expect(articles).to_have_count(2)
    expect(articles.filter(has_text="Merged")).to_contain_text("by Sam Supervisor")
    expect(articles.get_by_role("button", name=re.compile("Open again"))).to_have_count(1)
    assert_accessible(page)
