"""The console's inbox over HTTP on a live server (SQLite and PostgreSQL): who sees which conversations,
the list's filters and pages, a thread across channels with the customer 360 panel, replies on a chosen
channel through a real SMTP relay on loopback, notes, macros, assignment, priority, tags, snooze,
resolve, reopen, attachments, and the live feed (Server-Sent Events) with its ends."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from parcours.auth import users
from parcours.channels.email import SmtpRelaySender
from parcours.commerce import loyalty, orders, stock
from parcours.console.web import SignInThrottle
from parcours.db.types import utcnow
from parcours.inbox import agents, automation, feed, sla
from parcours.inbox.service import Inbound, Received, receive, set_status, update_conversation
from parcours.models import Conversation, CsatSurvey, InboxEvent, Message, Price, Product, Variant
from tests.conftest import Api, LiveServer, free_port
from tests.console_helpers import PASSWORD, client, csrf_of, sign_in
from tests.helpers import ingest, make_source, profile_of

ANA_MOBILE = "+33612345678"


# --------------------------------------------------------------------------------------------- helpers
@pytest.fixture(autouse=True)
def fresh_throttle(api: Api) -> None:
    api.app.state.sign_in_throttle = SignInThrottle()


def person(api: Api, role: str, name: str, *, locale: str = "en") -> tuple[httpx.Client, str, str | None]:
    """A console user signed in: (client, CSRF token, their inbox agent id)."""
    email = f"{name.lower().replace(' ', '.')}@example.org"
    with api.db.write() as session:
        info = users.create_user(session, email, PASSWORD, name=name, role=role, locale=locale)
    browser = client(api)
    assert sign_in(browser, email).status_code == 303
    return browser, csrf_of(browser.get("/console/preferences").text), info.agent_id


def customer(api: Api, user_id: str, **traits: Any) -> str:
    """A customer known to the web shop (account, e-mail, mobile...); returns the profile id."""
    web = make_source(api.db, f"web-{user_id}", "web")
    ingest(api.db, api.settings, web, [{"type": "identify", "messageId": f"signup-{user_id}", "userId": user_id,
                                        "traits": traits}])  # fmt: skip
    return profile_of(api.db, api.settings, "user_id", user_id)


def whatsapp(api: Api, number: str, body: str, sid: str, *, sent_at: datetime | None = None) -> Received:
    inbound = Inbound("whatsapp", "twilio", sid, [("whatsapp", number), ("phone", number)], body,
                      sent_at=sent_at, customer_address=number)  # fmt: skip
    with api.db.write() as session:
        return receive(session, api.settings, inbound, now=sent_at)


def email(api: Api, sender: str, body: str, message_id: str, *, subject: str = "Ma commande", **extra: Any) -> Received:  # fmt: skip
    inbound = Inbound("email", "smtp", message_id, [("email", sender)], body, subject=subject,
                      email_message_id=message_id, customer_address=sender, **extra)  # fmt: skip
    with api.db.write() as session:
        return receive(session, api.settings, inbound)


def assign(api: Api, conversation_id: str, agent_id: str | None, team_id: str | None = None) -> None:
    with api.db.write() as session:
        update_conversation(session, conversation_id, assignee_id=agent_id, unassign=agent_id is None,
                            team_id=team_id)  # fmt: skip


def row_ids(html: str) -> list[str]:
    return re.findall(r'class="conv-link" href="/console/conversations/([^"]+)"', html)


class Relay:
    """A local SMTP relay (aiosmtpd) that records the e-mails it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content or b"")
        assert isinstance(message, EmailMessage)
        self.received.append((list(envelope.rcpt_tos), message))
        return "250 2.0.0 OK"


@pytest.fixture
def relay(api: Api) -> Iterator[Relay]:
    """E-mail replies go out through a relay on loopback, as `parcours serve` configures it."""
    recorder, port = Relay(), free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    settings = api.settings.model_copy(update={
        "email_relay_host": "127.0.0.1", "email_relay_port": port, "email_relay_security": "none",
        "email_relay_timeout_seconds": 5, "email_inbox_domains": "shop.test"})  # fmt: skip
    api.app.state.settings = api.settings = settings
    api.app.state.outbox.register("email", SmtpRelaySender(settings))
    yield recorder
    controller.stop()


# --------------------------------------------------------------------------------------- who sees what
def test_roles_without_the_inbox_are_refused_and_agents_see_only_their_conversations(api: Api) -> None:
    with api.db.write() as session:
        from parcours.commerce.stock import add_location

        add_location(session, location_id="store-1", kind="store", name="Lyon", street="", postal_code="",
                     city="Lyon", latitude=45.7, longitude=4.8)  # fmt: skip
        users.create_user(session, "sasha@example.org", PASSWORD, name="Sasha", role="store_associate",
                          location_id="store-1")  # fmt: skip
        users.create_user(session, "morgan@example.org", PASSWORD, name="Morgan", role="marketer")
    for email_address in ("sasha@example.org", "morgan@example.org"):
        browser = client(api)
        sign_in(browser, email_address)
        for path in ("/console/inbox", "/console/inbox/live", "/console/conversations/cnv_x"):
            refused = browser.get(path)
            assert refused.status_code == 403 and "Not allowed" in refused.text, (email_address, path)
    anonymous = client(api).get("/console/inbox")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/console/login")

    alice, _, alice_id = person(api, "agent", "Alice Martin")
    _, _, bruno_id = person(api, "agent", "Bruno Petit")
    boss, _, _ = person(api, "supervisor", "Sonia Chef")
    with api.db.write() as session:
        billing = agents.create_team(session, "Billing").id
        delivery = agents.create_team(session, "Delivery").id
        agents.add_member(session, billing, str(alice_id))
    mine = whatsapp(api, "+33611111111", "Ma commande ?", "SM1").conversation_id
    brunos = whatsapp(api, "+33622222222", "Mon colis ?", "SM2").conversation_id
    team = whatsapp(api, "+33633333333", "Ma facture ?", "SM3").conversation_id
    other_team = whatsapp(api, "+33644444444", "Livraison ?", "SM4").conversation_id
    waiting = whatsapp(api, "+33655555555", "Bonjour", "SM5").conversation_id
    assign(api, mine, alice_id)
    assign(api, brunos, bruno_id)
    assign(api, team, None, billing)
    assign(api, other_team, None, delivery)
    assign(api, waiting, None)

    assert row_ids(alice.get("/console/inbox").text) == [mine]  # agents start on their own
    assert set(row_ids(alice.get("/console/inbox?view=unassigned").text)) == {team, waiting}
    assert row_ids(alice.get("/console/inbox?view=teams").text) == [team]
    assert row_ids(alice.get(f"/console/inbox?view=unassigned&team={billing}").text) == [team]
    assert alice.get("/console/inbox?view=all").status_code == 403
    assert alice.get(f"/console/inbox?view=unassigned&team={delivery}").status_code == 403
    for conversation in (mine, team, waiting):
        assert alice.get(f"/console/conversations/{conversation}").status_code == 200
    for conversation in (brunos, other_team):
        refused = alice.get(f"/console/conversations/{conversation}")
        assert refused.status_code == 403 and "another agent or team" in refused.text
        assert alice.get(f"/console/conversations/{conversation}/messages").status_code == 403
    assert alice.get("/console/conversations/cnv_missing").status_code == 404
    assert set(row_ids(boss.get("/console/inbox").text)) == {mine, brunos, team, other_team, waiting}
    assert boss.get(f"/console/conversations/{brunos}").status_code == 200
    bad = boss.get("/console/inbox?status=closed")
    assert bad.status_code == 400 and "status" in bad.text


# ------------------------------------------------------------------------------------ the list, filters
def test_the_list_shows_each_conversation_with_its_filters_and_pages(api: Api) -> None:
    boss, _, boss_id = person(api, "supervisor", "Sonia Chef")
    ana = customer(
        api, "u-ana", email="ana@example.fr", phone="06 12 34 56 78", firstName="Ana", lastName="Martin"
    )
    long_ago = utcnow() - timedelta(hours=3)
    with api.db.write() as session:
        sla.set_policy(session, "normal", first_response_minutes=60, next_response_minutes=60,
                       resolution_minutes=24 * 60, warn_at=0.5)  # fmt: skip
    # Ana wrote three hours ago on WhatsApp, then by e-mail: one conversation, two channels, SLA breached.
    first = whatsapp(api, ANA_MOBILE, "Bonjour, ma machine fuit", "SM-ana", sent_at=long_ago)
    email(api, "ana@example.fr", "Je vous envoie aussi un e-mail : la machine fuit toujours.", "<ana-2@x>")
    assert first.profile_id == ana
    # Someone unknown wrote on WhatsApp 40 minutes ago: due soon (warned at half the hour).
    soon = whatsapp(
        api, "+33699999999", "Où est mon colis ?", "SM-soon", sent_at=utcnow() - timedelta(minutes=40)
    )
    with api.db.write() as session:
        sla.check(session, utcnow())
        update_conversation(session, first.conversation_id, priority="urgent", tags=["fuite"])
    assign(api, first.conversation_id, boss_id)
    assign(api, soon.conversation_id, None)

    page = boss.get("/console/inbox")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert row_ids(html) == [first.conversation_id, soon.conversation_id]
    ana_row = html[html.index(first.conversation_id) : html.index(soon.conversation_id)]
    assert "Ana Martin" in ana_row and "WhatsApp" in ana_row and "E-mail" in ana_row
    assert "la machine fuit toujours" in ana_row and "Urgent" in ana_row and "Sonia Chef" in ana_row
    assert "Breached" in ana_row and "#fuite" in ana_row and " ago<" in ana_row  # t.ago
    soon_row = html[html.index(soon.conversation_id) :]
    assert "+33699999999" in soon_row and "Due soon" in soon_row and "Unassigned" in soon_row

    assert row_ids(boss.get("/console/inbox?sla=breached").text) == [first.conversation_id]
    assert row_ids(boss.get("/console/inbox?sla=soon").text) == [soon.conversation_id]
    assert row_ids(boss.get("/console/inbox?channel=email").text) == [first.conversation_id]
    assert row_ids(boss.get("/console/inbox?view=mine").text) == [first.conversation_id]
    assert row_ids(boss.get("/console/inbox?view=unassigned").text) == [soon.conversation_id]
    with api.db.write() as session:
        set_status(session, soon.conversation_id, "resolved", snoozed_until=None, now=utcnow())
    assert row_ids(boss.get("/console/inbox").text) == [first.conversation_id]
    assert row_ids(boss.get("/console/inbox?status=resolved").text) == [soon.conversation_id]
    assert len(row_ids(boss.get("/console/inbox?status=any").text)) == 2

    # Pages of 50, newest first.
    start = utcnow() - timedelta(days=2)
    for n in range(52):
        whatsapp(
            api, f"+336700000{n:02d}", f"Message {n}", f"SM-page-{n}", sent_at=start + timedelta(minutes=n)
        )
    one = boss.get("/console/inbox?status=any")
    assert len(row_ids(one.text)) == 50 and "Message 51<" in one.text and "Message 1<" not in one.text
    assert 'rel="next"' in one.text and 'rel="prev"' not in one.text
    two = boss.get("/console/inbox?status=any&page=2")
    assert len(row_ids(two.text)) == 4 and "Message 0<" in two.text
    assert 'rel="prev"' in two.text and 'rel="next"' not in two.text
    assert set(row_ids(one.text)).isdisjoint(row_ids(two.text))
    assert boss.get("/console/inbox?page=0").status_code == 400


# ------------------------------------------------------------------------------ a thread and the 360
def shop_with_an_order(api: Api, profile_id: str) -> str:
    """A product in a store, an order of the customer and the points it earned; returns the order number."""
    now = utcnow()
    with api.db.write() as session:
        session.add(Product(id="p-moulin", name="Moulin à café", category="accessoires", description="",
                            created_at=now))  # fmt: skip
        session.flush()
        session.add(
            Variant(sku="MOU-1", product_id="p-moulin", ean=None, name="Moulin", attributes={}, active=True)
        )
        session.flush()
        session.add(Price(sku="MOU-1", currency="EUR", amount=Decimal("59.90"), channel=None, reason=None))
        stock.add_location(session, location_id="WH", kind="warehouse", name="Entrepôt", street="",
                           postal_code="", city="", latitude=47.9, longitude=1.9)  # fmt: skip
        stock.receive(session, "MOU-1", "WH", 5, now=now)
        order, _ = orders.place(session, channel="web", request_id="w-1", lines=[{"sku": "MOU-1", "quantity": 2}],
                                fulfilment="ship_from_warehouse", profile_id=profile_id, now=now)  # fmt: skip
        loyalty.earn_for_order(session, order, now)
        return order.number


def test_a_thread_across_channels_with_the_customer_beside_it(api: Api) -> None:
    alice, _, alice_id = person(api, "agent", "Alice Martin")
    ana = customer(api, "u-ana", email="ana@example.fr", phone="06 12 34 56 78", firstName="Ana",
                   lastName="Martin", city="Lyon", loyalty_card="2901234567890")  # fmt: skip
    number = shop_with_an_order(api, ana)
    first = whatsapp(api, ANA_MOBILE, "Bonjour, ma machine fuit", "SM-1")
    email(api, "ana@example.fr", "Voici la photo.", "<ana-2@x>",
          attachments=[{"name": "fuite.jpg", "content_type": "image/jpeg", "size": 2048, "path": "2026/01/x.jpg"}])  # fmt: skip
    conversation = first.conversation_id
    assign(api, conversation, alice_id)
    with api.db.write() as session:  # an earlier conversation, resolved and rated 5/5 by e-mail
        old = Conversation(id="cnv_old", profile_id=ana, status="resolved", snoozed_until=None, assignee_id=alice_id,
                           team_id=None, priority="normal", tags=[], subject="Retour", last_inbound_channel="email",
                           created_at=utcnow() - timedelta(days=30), last_message_at=utcnow() - timedelta(days=29),
                           last_inbound_at=None, first_response_at=None, resolved_at=utcnow() - timedelta(days=29))  # fmt: skip
        session.add(old)
        session.flush()
        session.add(CsatSurvey(id="csat_1", conversation_id="cnv_old", profile_id=ana, channel="email",
                               agent_id=alice_id, sent_at=utcnow() - timedelta(days=29), score=5,
                               comment="Très bon service", answered_at=utcnow() - timedelta(days=28)))  # fmt: skip

    page = alice.get(f"/console/conversations/{conversation}")
    assert page.status_code == 200, page.text
    html = page.text
    thread = html[html.index('id="thread"') : html.index('id="reply-title"')]
    assert thread.index("Bonjour, ma machine fuit") < thread.index("Voici la photo.")
    assert (
        "ch-whatsapp" in thread and "ch-email" in thread and "Received" in thread and "Ana Martin" in thread
    )
    assert "fuite.jpg" in thread and "/console/messages/" in thread
    panel = html[html.index('id="customer-title"') :]
    assert "Ana Martin" in panel and "ana@example.fr" in panel and "+33612345678" in panel and "Lyon" in panel
    assert number in panel and "€119.80" in panel  # the order, in the user's locale
    assert "119 points" in panel and "Bronze" in panel  # loyalty earned on the order
    assert "5/5" in panel and "Très bon service" in panel
    assert "/console/conversations/cnv_old" in panel and f"/console/customers/{ana}" in panel
    assert "Message Received" in panel  # the timeline's recent events
    # Reply channels: where Ana can be reached, from her identifiers; none configured on this server.
    reply = html[html.index('id="reply-channel"') : html.index('id="reply-body"')]
    for label in ("E-mail — ana@example.fr", "SMS — +33612345678", "WhatsApp — +33612345678"):
        assert label in reply
    assert "not configured on this server" in reply and "Phone — +33612345678" in reply

    # The same page in French.
    french, _, _ = person(api, "supervisor", "Chloé Dupont", locale="fr")
    fr = french.get(f"/console/conversations/{conversation}").text
    assert "Conversation avec Ana Martin" in fr and "Répondre par" in fr and "Reçu" in fr
    assert "119,80\u00a0€" in fr and "119 points" in fr and "Carte de fidélité" in fr


# ------------------------------------------------------------------------------------------ actions
def test_reply_by_email_to_a_whatsapp_customer_note_and_a_failed_reply_sent_again(
    api: Api, relay: Relay
) -> None:
    alice, csrf, alice_id = person(api, "agent", "Alice Martin")
    customer(api, "u-ana", email="ana@example.fr", phone="06 12 34 56 78", firstName="Ana")
    conversation = whatsapp(api, ANA_MOBILE, "Ma commande n'est pas arrivée", "SM-1").conversation_id
    assign(api, conversation, alice_id)
    form = alice.get(f"/console/conversations/{conversation}").text
    # WhatsApp, her channel, cannot be answered on here: e-mail (the relay) is chosen instead.
    assert '<option value="whatsapp" disabled>WhatsApp — +33612345678 (not configured on this server)' in form
    assert '<option value="email" selected>E-mail — ana@example.fr</option>' in form

    sent = alice.post(f"/console/conversations/{conversation}/reply",
                      data={"csrf_token": csrf, "channel": "email", "kind": "reply", "body": "Elle part ce soir."})  # fmt: skip
    assert sent.status_code == 303 and sent.headers["location"].startswith(
        f"/console/conversations/{conversation}#m-"
    )
    ((recipients, mail),) = relay.received
    plain = mail.get_body(("plain",))
    assert plain is not None
    assert recipients == ["ana@example.fr"] and plain.get_content().strip() == "Elle part ce soir."
    page = alice.get(sent.headers["location"].split("#")[0])
    assert "Reply sent by E-mail." in page.text  # the flash, once
    message_id = sent.headers["location"].split("#m-")[1]
    item = page.text[page.text.index(f'id="m-{message_id}"') :]
    assert "ch-email" in item[:400] and "Sent" in item[:1200] and "Alice Martin" in item[:800]
    with api.db.read() as session:
        stored = session.scalar(select(Message).where(Message.id == message_id))
        assert stored is not None and stored.author_agent_id == alice_id and stored.delivery == "sent"
        assert session.get(Conversation, conversation).status == "pending"  # type: ignore[union-attr]

    note = alice.post(f"/console/conversations/{conversation}/reply",
                      data={"csrf_token": csrf, "kind": "note", "body": "Client fidèle, geste possible."})  # fmt: skip
    assert note.status_code == 303 and len(relay.received) == 1  # a note is never sent
    assert "Private note" in alice.get(f"/console/conversations/{conversation}").text

    # The relay is down: the reply is kept, failed with the reason, and "Send again" sends it.
    api.app.state.outbox.register(
        "email", SmtpRelaySender(api.settings.model_copy(update={"email_relay_port": free_port()}))
    )
    failed = alice.post(f"/console/conversations/{conversation}/reply",
                        data={"csrf_token": csrf, "channel": "email", "kind": "reply", "body": "Autre chose ?"})  # fmt: skip
    failed_id = failed.headers["location"].split("#m-")[1]
    shown = alice.get(f"/console/conversations/{conversation}").text
    assert "could not be sent: relay unreachable" in shown and "Send again" in shown
    api.app.state.outbox.register("email", SmtpRelaySender(api.settings))
    again = alice.post(f"/console/messages/{failed_id}/retry", data={"csrf_token": csrf})
    assert again.status_code == 303 and len(relay.received) == 2

    # Refusals: no CSRF token, an empty body, a channel the customer has no address on, a stranger's thread.
    assert (
        alice.post(
            f"/console/conversations/{conversation}/reply", data={"body": "x", "channel": "email"}
        ).status_code
        == 403
    )
    empty = alice.post(
        f"/console/conversations/{conversation}/reply",
        data={"csrf_token": csrf, "channel": "email", "body": " "},
    )
    assert empty.status_code == 400 and "body" in empty.text
    nowhere = alice.post(f"/console/conversations/{conversation}/reply",
                         data={"csrf_token": csrf, "channel": "messenger", "body": "Bonjour"})  # fmt: skip
    assert nowhere.status_code == 409 and "no address on messenger" in nowhere.text
    with api.db.read() as session:
        assert len(list(session.scalars(select(Message).where(Message.conversation_id == conversation)))) == 4


def test_a_macro_fills_the_reply_for_the_customer_and_applies_its_actions(api: Api, relay: Relay) -> None:
    alice, csrf, alice_id = person(api, "agent", "Alice Martin")
    customer(api, "u-ana", email="ana@example.fr", firstName="Ana")
    conversation = email(api, "ana@example.fr", "Où en est ma commande ?", "<a1@x>").conversation_id
    assign(api, conversation, alice_id)
    with api.db.write() as session:
        macro = automation.create_macro(session, "Commande en route",
                                        "Bonjour {{customer.first_name}}, c'est {{agent.name}} : elle arrive.",
                                        {"add_tags": ["livraison"], "set_status": "resolved"}).id  # fmt: skip
    page = alice.get(f"/console/conversations/{conversation}?macro={macro}").text
    assert "Bonjour Ana, c&#39;est Alice Martin : elle arrive." in page
    assert f'name="macro_id" value="{macro}"' in page
    sent = alice.post(f"/console/conversations/{conversation}/reply", data={
        "csrf_token": csrf, "channel": "email", "kind": "reply", "macro_id": macro,
        "body": "Bonjour Ana, c'est Alice Martin : elle arrive demain."})  # fmt: skip
    assert sent.status_code == 303
    bodies = [m.get_body(("plain",)).get_content().strip() for _, m in relay.received]  # type: ignore[union-attr]
    assert bodies[0] == "Bonjour Ana, c'est Alice Martin : elle arrive demain."  # the edited text
    assert len(bodies) == 2 and "1" in bodies[1] and "5" in bodies[1]  # resolved: the satisfaction question
    with api.db.read() as session:
        stored = session.get(Conversation, conversation)
        assert stored is not None and stored.status == "resolved" and stored.tags == ["livraison"]
    assert alice.get(f"/console/conversations/{conversation}?macro=mac_missing").status_code == 404


def test_assign_priority_tags_snooze_resolve_and_reopen(api: Api) -> None:
    alice, csrf, alice_id = person(api, "agent", "Alice Martin")
    _, _, bruno_id = person(api, "agent", "Bruno Petit")
    boss, boss_csrf, _ = person(api, "supervisor", "Sonia Chef")
    with api.db.write() as session:
        team = agents.create_team(session, "Billing").id
    conversation = whatsapp(api, ANA_MOBILE, "Bonjour", "SM-1").conversation_id
    assign(api, conversation, None)
    base = f"/console/conversations/{conversation}"

    def state() -> Conversation:
        with api.db.read() as session:
            found = session.get(Conversation, conversation)
            assert found is not None
            return found

    assert alice.post(f"{base}/assign", data={"csrf_token": csrf, "assignee": "me"}).status_code == 303
    assert state().assignee_id == alice_id and "Assigned to Alice Martin." in alice.get(base).text
    assert (
        alice.post(f"{base}/assign", data={"csrf_token": csrf, "assignee": str(bruno_id)}).status_code == 403
    )
    assert (
        alice.post(f"{base}/assign", data={"csrf_token": csrf, "assignee": "me", "team": team}).status_code
        == 403
    )
    assert state().assignee_id == alice_id and state().team_id is None
    moved = boss.post(
        f"{base}/assign", data={"csrf_token": boss_csrf, "assignee": str(bruno_id), "team": team}
    )
    assert moved.status_code == 303 and (state().assignee_id, state().team_id) == (bruno_id, team)
    assert alice.get(base).status_code == 403  # Bruno's now, in a team Alice is not in
    assert alice.post(f"{base}/assign", data={"csrf_token": csrf, "assignee": "me"}).status_code == 403
    with api.db.read() as session:
        kinds = [
            e.type
            for e in session.scalars(select(InboxEvent).where(InboxEvent.conversation_id == conversation))
        ]
    assert kinds.count("assigned") >= 2

    boss.post(
        f"{base}/details", data={"csrf_token": boss_csrf, "priority": "high", "tags": "Remboursement, vip ,"}
    )
    assert state().priority == "high" and state().tags == ["remboursement", "vip"]
    wrong = boss.post(f"{base}/details", data={"csrf_token": boss_csrf, "priority": "critical", "tags": ""})
    assert wrong.status_code == 400 and "priority" in wrong.text and state().priority == "high"

    # Snoozed until tomorrow 09:00 in the console's time zone (Europe/Paris by default).
    zone = ZoneInfo(api.settings.console_timezone)
    tomorrow = (utcnow().astimezone(zone) + timedelta(days=1)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    snoozed = boss.post(f"{base}/status", data={"csrf_token": boss_csrf, "status": "snoozed",
                                                "snoozed_until": tomorrow.strftime("%Y-%m-%dT%H:%M")})  # fmt: skip
    assert snoozed.status_code == 303
    assert state().status == "snoozed" and state().snoozed_until == tomorrow.astimezone(ZoneInfo("UTC"))
    past = boss.post(f"{base}/status", data={"csrf_token": boss_csrf, "status": "snoozed",
                                             "snoozed_until": "2020-01-01T09:00"})  # fmt: skip
    assert past.status_code == 400 and "future" in past.text
    garbage = boss.post(
        f"{base}/status", data={"csrf_token": boss_csrf, "status": "snoozed", "snoozed_until": "demain"}
    )
    assert garbage.status_code == 400 and state().status == "snoozed"
    assert (
        boss.post(f"{base}/status", data={"csrf_token": boss_csrf, "status": "resolved"}).status_code == 303
    )
    assert state().status == "resolved" and state().resolved_at is not None
    assert "Reopen" in boss.get(base).text
    boss.post(f"{base}/status", data={"csrf_token": boss_csrf, "status": "open"})
    assert state().status == "open" and state().resolved_at is None
    assert boss.post(f"{base}/status", data={"csrf_token": boss_csrf, "status": "closed"}).status_code == 400
    other_site = boss.post(f"{base}/status", data={"csrf_token": boss_csrf, "status": "resolved"},
                           headers={"Origin": "https://evil.example"})  # fmt: skip
    assert other_site.status_code == 403 and state().status == "open"


def test_an_email_attachment_is_downloaded_only_by_who_may_see_it(api: Api, tmp_path: Path) -> None:
    settings = api.settings.model_copy(update={"email_attachments_dir": str(tmp_path)})
    api.app.state.settings = api.settings = settings
    (tmp_path / "2026").mkdir()
    (tmp_path / "2026" / "f.pdf").write_bytes(b"%PDF-1.4 facture")
    alice, _, alice_id = person(api, "agent", "Alice Martin")
    _, _, bruno_id = person(api, "agent", "Bruno Petit")
    received = email(api, "ana@example.fr", "Ma facture", "<f@x>", attachments=[
        {"name": "facture mars/../2026.pdf", "content_type": "application/pdf", "size": 16, "path": "2026/f.pdf"},
        {"name": "evil", "content_type": "text/plain", "size": 1, "path": "../../etc/passwd"}])  # fmt: skip
    assign(api, received.conversation_id, alice_id)
    download = alice.get(f"/console/messages/{received.message_id}/attachments/0")
    assert download.status_code == 200 and download.content == b"%PDF-1.4 facture"
    assert download.headers["content-type"] == "application/pdf"
    assert (
        download.headers["content-disposition"].startswith("attachment;")
        and "/" not in download.headers["content-disposition"].split("filename")[1]
    )
    assert alice.get(f"/console/messages/{received.message_id}/attachments/1").status_code == 400
    assert alice.get(f"/console/messages/{received.message_id}/attachments/2").status_code == 404
    assign(api, received.conversation_id, bruno_id)
    assert alice.get(f"/console/messages/{received.message_id}/attachments/0").status_code == 403


# ---------------------------------------------------------------------------------------- live feed
class Stream:
    """A browser's EventSource, on a socket of its own in a thread: every event it reads, as (event,
    data); ``close`` drops the connection as a closed tab does."""

    def __init__(self, browser: httpx.Client, path: str, base_url: str | None = None) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.ended = threading.Event()
        self.status: int | None = None
        url = httpx.URL(base_url or str(browser.base_url))
        cookie = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())
        self.sock = socket.create_connection((url.host, url.port or 80), timeout=60)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\nCookie: {cookie}\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())  # fmt: skip
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            stream = self.sock.makefile("rb")
            self.status = int(stream.readline().split()[1])
            while stream.readline() not in (b"\r\n", b""):
                pass  # headers
            text = ""
            while True:  # chunked transfer encoding
                size = int(stream.readline().strip() or b"0", 16)
                if size == 0:
                    return
                text += stream.read(size + 2)[:-2].decode()
                while "\n\n" in text:
                    block, text = text.split("\n\n", 1)
                    fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
                    if "event" in fields:
                        self.events.append((fields["event"], json.loads(fields.get("data", "{}"))))
        except (OSError, ValueError, IndexError):
            pass
        finally:
            self.ended.set()

    def wait_for(self, predicate: Any, timeout: float = 10) -> tuple[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.events):
                if predicate(event):
                    return event
            time.sleep(0.02)
        raise AssertionError(f"no such event in {self.events}")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def listeners() -> int:
    return len(feed.FEED._listeners)


def wait_until(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_the_live_feed_brings_new_messages_to_whoever_may_see_them_and_ends_with_the_page(api: Api) -> None:
    alice, _, alice_id = person(api, "agent", "Alice Martin")
    _, _, bruno_id = person(api, "agent", "Bruno Petit")
    mine = whatsapp(api, ANA_MOBILE, "Bonjour", "SM-1")
    brunos = whatsapp(api, "+33622222222", "Bonjour", "SM-2")
    assign(api, mine.conversation_id, alice_id)
    assign(api, brunos.conversation_id, bruno_id)
    before = listeners()
    stream = Stream(alice, f"/console/inbox/live?conversation={mine.conversation_id}")
    stream.wait_for(lambda e: e[0] == "ready")
    assert stream.status == 200 and listeners() == before + 1

    whatsapp(api, "+33622222222", "Toujours là ?", "SM-3")  # Bruno's: not for Alice
    fresh = whatsapp(api, ANA_MOBILE, "Vous êtes là ?", "SM-4")
    _, data = stream.wait_for(lambda e: e[0] == "inbox")
    assert data == {
        "type": "message_received",
        "conversation_id": mine.conversation_id,
        "message_id": fresh.message_id,
    }
    assert all(d.get("conversation_id") != brunos.conversation_id for _, d in stream.events)

    # The page then fetches what it lacks, as HTML list items.
    fragment = alice.get(
        f"/console/conversations/{mine.conversation_id}/messages", params={"after": mine.message_id}
    )
    assert fragment.status_code == 200 and fragment.text.count('<li class="msg') == 1
    assert f'id="m-{fresh.message_id}"' in fragment.text and "Vous êtes là ?" in fragment.text
    assert "New message from +33612345678 on WhatsApp" in fragment.text
    nothing = alice.get(
        f"/console/conversations/{mine.conversation_id}/messages", params={"after": fresh.message_id}
    )
    assert nothing.status_code == 200 and "<li" not in nothing.text
    assert (
        alice.get(
            f"/console/conversations/{mine.conversation_id}/messages", params={"after": brunos.message_id}
        ).status_code
        == 400
    )

    # A supervisor's feed has every conversation; their "mine" list's, only theirs.
    boss, _, _ = person(api, "supervisor", "Sonia Chef")
    everything, own = Stream(boss, "/console/inbox/live"), Stream(boss, "/console/inbox/live?view=mine")
    for feed_stream in (everything, own):
        feed_stream.wait_for(lambda e: e[0] == "ready")
    later = whatsapp(api, "+33622222222", "Alors ?", "SM-5")
    everything.wait_for(lambda e: e[1].get("message_id") == later.message_id)
    time.sleep(0.5)
    assert [e for e in own.events if e[0] == "inbox"] == []
    for feed_stream in (everything, own):
        feed_stream.close()

    stream.close()  # the browser goes away: the server unsubscribes
    assert stream.ended.wait(10)
    wait_until(lambda: listeners() == before)
    assert alice.get(f"/console/inbox/live?conversation={brunos.conversation_id}").status_code == 403


def test_the_live_feed_ends_when_the_session_ends_and_when_the_server_stops(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from parcours.console.inbox import live

    monkeypatch.setattr(live, "LIVE_SESSION_CHECK_SECONDS", 0.2)
    alice, csrf, _ = person(api, "agent", "Alice Martin")
    stream = Stream(alice, "/console/inbox/live")
    stream.wait_for(lambda e: e[0] == "ready")
    assert alice.post("/console/logout", data={"csrf_token": csrf}).status_code == 303
    stream.wait_for(lambda e: e[0] == "signed_out")
    assert stream.ended.wait(10)

    # A server of its own, stopped while a page listens: it stops at once, the stream ends.
    server = LiveServer()
    server.app.state.database, server.app.state.settings = api.db, api.settings
    server.start()
    try:
        bruno, _, _ = person(api, "agent", "Bruno Petit")
        stream = Stream(bruno, "/console/inbox/live", base_url=server.url)
        stream.wait_for(lambda e: e[0] == "ready")
        started = time.monotonic()
        server.stop()
        assert not server.thread.is_alive(), "uvicorn still waits for the stream"
        assert time.monotonic() - started < 5
        assert stream.ended.wait(5)
    finally:
        server.stop()
