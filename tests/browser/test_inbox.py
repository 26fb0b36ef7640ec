"""The inbox in a real browser: an agent answers a WhatsApp conversation by e-mail (the customer wrote
through Twilio's signed webhook; the reply goes out through an SMTP relay on loopback) and sees it in
the thread; a new message appears in an open conversation, and the list says something changed,
without a reload; the list is worked with the keyboard; the pages fit a tablet."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import Page, expect

from parcours.channels.email import SmtpRelaySender
from parcours.channels.twilio import twilio_signature
from parcours.commerce import loyalty, orders, stock
from parcours.db.types import utcnow
from parcours.inbox import sla
from parcours.inbox.service import Inbound, receive, update_conversation
from parcours.models import Price, Product, User, Variant
from tests.browser.conftest import Console, assert_accessible, docs_screenshot, set_viewport, sign_in
from tests.conftest import free_port
from tests.helpers import ingest, make_source, profile_of
from tests.test_console_inbox import Relay

SID, TOKEN = "AC" + "5" * 32, "browser-test-twilio-token"
WHATSAPP_FROM = "+14155238886"
ANA_MOBILE = "+33612345678"


@pytest.fixture
def relay(console: Console) -> Iterator[Relay]:
    """Twilio's webhook checked with its token, and e-mail replies out through a relay on loopback."""
    recorder, port = Relay(), free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    settings = console.settings.model_copy(update={
        "twilio_account_sid": SID, "twilio_auth_token": TOKEN, "email_relay_host": "127.0.0.1",
        "email_relay_port": port, "email_relay_security": "none", "email_relay_timeout_seconds": 5,
        "email_inbox_domains": "support.maison-arabica.fr", "email_from_name": "Maison Arabica"})  # fmt: skip
    console.api.app.state.settings = console.api.settings = console.settings = settings
    console.api.app.state.outbox.register("email", SmtpRelaySender(settings))
    yield recorder
    controller.stop()


def whatsapp_webhook(console: Console, number: str, body: str, sid: str) -> None:
    """The customer writes on WhatsApp: Twilio posts the message to the webhook, signed."""
    form = [("AccountSid", SID), ("MessageSid", sid), ("From", f"whatsapp:{number}"),
            ("To", f"whatsapp:{WHATSAPP_FROM}"), ("Body", body), ("NumMedia", "0"), ("ProfileName", "Ana")]  # fmt: skip
    url = console.path("/v1/channels/twilio/messages")
    answer = console.api.client.post(url, content=urlencode(form), headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(TOKEN, url, form)})  # fmt: skip
    assert answer.status_code == 200, answer.text


def agent_id_of(console: Console, email: str) -> str:
    from sqlalchemy import select

    with console.db.read() as session:
        agent_id = session.scalar(select(User.agent_id).where(User.email == email))
    assert agent_id is not None
    return agent_id


def realistic_inbox(console: Console, agent: str) -> dict[str, Any]:
    """Ana Martin, a web-shop customer with an order and loyalty points, who e-mailed yesterday about a
    leaking machine; and a few other customers writing on other channels, some late for their SLA."""
    now = utcnow()
    with console.db.write() as session:
        sla.set_policy(session, "normal", first_response_minutes=60, next_response_minutes=120,
                       resolution_minutes=48 * 60, warn_at=0.75)  # fmt: skip
        session.add(Product(id="p-expresso", name="Machine expresso Arabica Pro", category="machines",
                            description="", created_at=now))  # fmt: skip
        session.flush()
        session.add(Variant(sku="EXP-PRO", product_id="p-expresso", ean=None, name="Arabica Pro", attributes={},
                            active=True))  # fmt: skip
        session.flush()
        session.add(Price(sku="EXP-PRO", currency="EUR", amount=Decimal("349.00"), channel=None, reason=None))
        stock.add_location(session, location_id="WH", kind="warehouse", name="Entrepôt d'Orléans", street="",
                           postal_code="45000", city="Orléans", latitude=47.9, longitude=1.9)  # fmt: skip
        stock.receive(session, "EXP-PRO", "WH", 10, now=now)
    web = make_source(console.db, "Web shop", "web")
    ingest(console.db, console.settings, web, [
        {"type": "identify", "messageId": "signup-ana", "userId": "u-ana", "timestamp": (now - timedelta(days=90)).isoformat(),
         "traits": {"email": "ana.martin@example.fr", "phone": "06 12 34 56 78", "firstName": "Ana", "lastName": "Martin",
                    "city": "Lyon", "language": "fr", "loyalty_card": "2901234567890"}},
        {"type": "track", "event": "Product Viewed", "messageId": "view-1", "userId": "u-ana",
         "timestamp": (now - timedelta(days=20)).isoformat(), "properties": {"sku": "EXP-PRO"}},
    ])  # fmt: skip
    ana = profile_of(console.db, console.settings, "user_id", "u-ana")
    with console.db.write() as session:
        order, _ = orders.place(session, channel="web", request_id="web-ana-1", lines=[{"sku": "EXP-PRO", "quantity": 1}],
                                fulfilment="ship_from_warehouse", profile_id=ana, now=now - timedelta(days=12))  # fmt: skip
        loyalty.earn_for_order(session, order, now - timedelta(days=12))
        first = receive(session, console.settings, Inbound(
            "email", "smtp", "<ana-1@mail.example.fr>", [("email", "ana.martin@example.fr")],
            f"Bonjour, ma machine achetée il y a deux semaines (commande {order.number}) fuit par le bas. "
            "Que dois-je faire ?", subject=f"Fuite machine — commande {order.number}",
            email_message_id="<ana-1@mail.example.fr>", customer_address="ana.martin@example.fr",
            sent_at=now - timedelta(hours=20)), now=now - timedelta(hours=20))  # fmt: skip
        others = [
            ("sms", [("phone", "+33698765432")], "Bonjour, mon retrait en magasin est-il prêt ?", 50),
            ("email", [("email", "louis.bernard@example.fr")], "Je souhaite retourner un moulin reçu abîmé.", 95),
            ("whatsapp", [("whatsapp", "+33677889900"), ("phone", "+33677889900")], "Avez-vous la capsule Lungo en stock à Lyon ?", 30),
            ("messenger", [("messenger", "psid-5521")], "Bonjour ! Vos magasins sont ouverts dimanche ?", 10),
        ]  # fmt: skip
        for n, (channel, identifiers, text, minutes) in enumerate(others):
            moment = now - timedelta(minutes=minutes)
            provider = {"sms": "twilio", "whatsapp": "twilio", "email": "smtp"}.get(channel, "meta")
            traits = {"name": "Léa Fontaine"} if channel == "messenger" else {}
            received = receive(session, console.settings, Inbound(channel, provider, f"other-{n}", identifiers, text,
                                                                  sent_at=moment, traits=traits), now=moment)  # fmt: skip
            if n % 2:
                update_conversation(session, received.conversation_id, unassign=True)
        update_conversation(session, first.conversation_id, assignee_id=agent, priority="high", tags=["sav"])
        sla.check(session, now)
    return {"profile": ana, "conversation": first.conversation_id, "order": order.number}


def test_an_agent_answers_a_whatsapp_conversation_by_email(
    page: Page, console: Console, relay: Relay
) -> None:
    email, password = console.user("agent", name="Alice Durand")
    world = realistic_inbox(console, agent_id_of(console, email))
    # Ana writes again, on WhatsApp, from the mobile on her profile: the same conversation continues.
    whatsapp_webhook(console, ANA_MOBILE, "Je vous écris aussi sur WhatsApp : l'eau coule encore ce matin.",
                     "SM" + "a" * 32)  # fmt: skip

    sign_in(page, console, email, password)
    page.goto(console.path("/console/inbox"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Inbox")
    row = page.get_by_role("row").filter(has_text="Ana Martin")
    expect(row).to_contain_text("WhatsApp")
    expect(row).to_contain_text("E-mail")
    expect(row).to_contain_text("l'eau coule encore")
    expect(page.locator("#key-hint")).to_be_visible()
    assert_accessible(page)

    # Keyboard: j moves to the first conversation, Enter opens it.
    page.locator("body").press("j")
    expect(page.get_by_role("link", name="Ana Martin")).to_be_focused()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect(page).to_have_url(console.path(f"/console/conversations/{world['conversation']}"))
    thread = page.locator("#thread")
    expect(thread.locator("li.msg")).to_have_count(2)
    expect(thread.locator("li.msg").nth(1)).to_contain_text("WhatsApp")
    panel = page.locator(".customer-panel")
    expect(panel).to_contain_text(world["order"])
    expect(panel).to_contain_text("349 points")
    expect(panel).to_contain_text("ana.martin@example.fr")

    # WhatsApp is not configured here; the agent answers by e-mail.
    expect(page.get_by_label("Reply on")).to_have_value("email")
    page.get_by_label("Reply on").select_option("email")
    page.get_by_label("Message", exact=True).fill(
        "Bonjour Ana, désolée pour cette fuite. Un coursier passe demain reprendre la machine et vous en "
        "laisse une de prêt. — Alice"
    )
    with page.expect_navigation():
        page.get_by_role("button", name="Send reply").click()

    expect(page.get_by_role("status").filter(has_text="Reply sent by E-mail.")).to_be_visible()
    sent = thread.locator("li.msg").filter(has_text="Un coursier passe demain")
    expect(sent).to_have_count(1)
    expect(sent.locator(".badge.channel")).to_have_text("E-mail")
    expect(sent.locator(".badge.delivery")).to_have_text("Sent")
    expect(sent).to_contain_text("Alice Durand")
    expect(sent).to_contain_text("to ana.martin@example.fr")
    ((recipients, mail),) = relay.received
    assert recipients == ["ana.martin@example.fr"]
    text = mail.get_body(("plain",))
    assert text is not None and "Un coursier passe demain" in text.get_content()
    assert str(mail["Subject"]).startswith("Re: Fuite machine")
    assert_accessible(page)
    docs_screenshot(page, "conversation")


def test_a_new_message_appears_without_a_reload(new_page: Any, console: Console, relay: Relay) -> None:
    email, password = console.user("agent", name="Alice Durand")
    world = realistic_inbox(console, agent_id_of(console, email))
    listing, page = new_page(), new_page()
    for browser_page in (listing, page):
        sign_in(browser_page, console, email, password)
    listing.goto(console.path("/console/inbox"))
    page.goto(console.path(f"/console/conversations/{world['conversation']}"))
    for browser_page in (listing, page):
        expect(browser_page.locator("body")).to_have_attribute("data-live", "ready")
    page.evaluate("window.__notReloaded = 'still here'")
    expect(page.locator("#thread li.msg")).to_have_count(1)

    whatsapp_webhook(console, ANA_MOBILE, "Le coursier peut-il venir avant midi ?", "SM" + "b" * 32)

    arrived = page.locator("#thread li.msg").filter(has_text="Le coursier peut-il venir avant midi ?")
    expect(arrived).to_be_visible()
    expect(arrived.locator(".badge.channel")).to_have_text("WhatsApp")
    expect(page.locator("#live-announce")).to_have_text("New message from Ana Martin on WhatsApp")
    assert page.evaluate("window.__notReloaded") == "still here", "the page was reloaded"
    expect(listing.locator("#live-bar")).to_contain_text("One conversation changed")
    with listing.expect_navigation():
        listing.get_by_role("link", name="Refresh the list").click()
    expect(listing.get_by_role("row").filter(has_text="Ana Martin")).to_contain_text("avant midi")
    assert_accessible(page)


def test_a_supervisor_filters_the_inbox_and_it_fits_a_tablet(tablet_page: Page, console: Console, relay: Relay) -> None:  # fmt: skip
    email, password = console.user("supervisor", name="Sonia Martin")
    agent, _ = console.user("agent", name="Alice Durand")
    world = realistic_inbox(console, agent_id_of(console, agent))
    page = tablet_page
    set_viewport(page, "desktop")
    sign_in(page, console, email, password)
    page.goto(console.path("/console/inbox"))
    expect(page.get_by_role("link", name="All", exact=True)).to_have_attribute("aria-current", "page")
    rows = page.locator("#conversation-list tbody tr")
    expect(rows).to_have_count(5)
    expect(page.get_by_role("row").filter(has_text="Ana Martin")).to_contain_text("Breached")
    expect(page.get_by_role("row").filter(has_text="Léa Fontaine")).to_contain_text("Messenger")
    docs_screenshot(page, "inbox")

    page.get_by_label("SLA").select_option("breached")
    with page.expect_navigation():
        page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(2)  # Ana's and Louis's, both late for their first response
    for index in range(2):
        expect(rows.nth(index)).to_contain_text("Breached")
    expect(rows.filter(has_text="Ana Martin")).to_have_count(1)
    page.get_by_label("SLA").select_option("")
    page.get_by_label("Channel").select_option("messenger")
    with page.expect_navigation():
        page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Vos magasins sont ouverts dimanche")
    assert_accessible(page)

    for viewport in ("tablet_landscape", "tablet_portrait"):
        set_viewport(page, viewport)
        for path in ("/console/inbox", f"/console/conversations/{world['conversation']}"):
            page.goto(console.path(path))
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{viewport} {path}: scrolls sideways by {overflow}px"
            assert_accessible(page)
    expect(page.get_by_role("button", name="Send reply")).to_be_visible()


def test_a_texter_gives_her_e_mail_and_the_agent_sees_her_whole_story(page: Page, console: Console) -> None:
    """An SMS from an unknown number; the customer says who she is: the agent adds her e-mail, and the
    conversation is Ana's, with her order and loyalty points."""
    from sqlalchemy import select

    from parcours.models import Conversation

    email, password = console.user("supervisor", name="Sonia Martin")
    world = realistic_inbox(console, agent_id_of(console, email))
    texter = profile_of(console.db, console.settings, "phone", "+33698765432")
    with console.db.read() as session:
        conversation_id = session.scalar(select(Conversation.id).where(Conversation.profile_id == texter))
    sign_in(page, console, email, password)
    page.goto(console.path(f"/console/conversations/{conversation_id}"))
    panel = page.locator(".customer-panel")
    expect(panel).not_to_contain_text(world["order"])

    panel.get_by_text("The customer gave another identifier").click()
    panel.get_by_label("Kind").select_option("email")
    panel.get_by_label("As the customer gave it").fill("Ana.Martin@example.fr")
    assert_accessible(page)
    with page.expect_navigation():
        panel.get_by_role("button", name="Add to this customer").click()
    expect(page.get_by_role("status")).to_contain_text(
        "E-mail ana.martin@example.fr was another customer's: they are now one customer, with both histories."
    )
    panel = page.locator(".customer-panel")
    expect(panel).to_contain_text(world["order"])
    expect(panel).to_contain_text("349 points")
    expect(panel).to_contain_text("+33698765432")
    assert profile_of(console.db, console.settings, "phone", "+33698765432") == world["profile"]
