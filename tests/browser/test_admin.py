"""The admin area in a real browser: an administrator adds a user and a source (its write key shown once),
reads the channels' webhook URLs and reveals a secret, edits the merge rules; every admin page passes
axe-core and fits a tablet."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect
from pydantic import SecretStr
from sqlalchemy import select

from parcours.auth.service import create_source, create_token
from parcours.config import Settings
from parcours.inbox import agents as inbox_agents
from parcours.inbox import bot
from parcours.models import Agent, IdentifierKind, Source
from tests.browser.conftest import Console, assert_accessible, docs_screenshot, set_viewport, sign_in


def admin_signed_in(page: Page, console: Console) -> None:
    email, password = console.user("admin", name="Ada Lovelace")
    sign_in(page, console, email, password)
    expect(page).to_have_url(console.path("/console/"))


def a_team_of_people(console: Console) -> None:
    """The users, stores, sources and articles of a small retailer, for pages that look lived in."""
    console.store("store-lyon", name="Lyon Part-Dieu")
    console.store("store-paris", name="Paris Rivoli")
    console.user("supervisor", name="Camille Laurent", email="camille.laurent@maison-dupont.fr", locale="fr")
    console.user("agent", name="Hugo Petit", email="hugo.petit@maison-dupont.fr", locale="fr")
    console.user("agent", name="Emma Wilson", email="emma.wilson@maison-dupont.fr")
    console.user(
        "store_associate", name="Léa Moreau", email="lea.moreau@maison-dupont.fr", location_code="store-lyon"
    )
    console.user(
        "store_associate",
        name="Nathan Roux",
        email="nathan.roux@maison-dupont.fr",
        location_code="store-paris",
    )
    console.user("marketer", name="Inès Garnier", email="ines.garnier@maison-dupont.fr", locale="fr")
    with console.db.write() as session:
        create_source(session, "Application mobile", "app")
        create_source(session, "Caisses des magasins", "store")
        create_token(session, "CRM Salesforce")
        team = inbox_agents.create_team(session, "Service client", assignment="least_busy")
        for (agent_id,) in session.execute(
            select(Agent.id).where(Agent.name.in_(["Camille Laurent", "Hugo Petit"]))
        ):
            inbox_agents.add_member(session, team.id, agent_id)
        bot.save_article(session, "livraison", "fr", "Livraison", "La livraison est offerte dès 49 €, en 48 h.",
                         ["combien coûte la livraison", "quand vais-je recevoir mon colis"])  # fmt: skip
        bot.save_article(session, "delivery", "en", "Delivery", "Delivery is free from €49, within 48 hours.",
                         ["how much is delivery", "when will my parcel arrive"])  # fmt: skip


def configured_channels(console: Console) -> None:
    console.api.app.state.settings = Settings(
        database_url=console.db.url,
        console_public_url="https://relation-client.maison-dupont.fr",
        email_inbox_domains="sav.maison-dupont.fr",
        email_relay_host="smtp.maison-dupont.fr",
        email_relay_username="parcours",
        email_relay_password="relay-password-0f3c9a",
        email_from_address="service-client@sav.maison-dupont.fr",
        email_from_name="Service client Maison Dupont",
        twilio_account_sid="AC" + "5f" * 16,
        twilio_auth_token="4f1c2b9e8d7a6f5e4d3c2b1a0f9e8d7c",
        twilio_sms_from="+33757000000",
        meta_app_secret="b2c4d6e8f0a1b3c5d7e9f1a3b5c7d9e1",
        meta_verify_token="maison-dupont-verify-7c21",
        meta_whatsapp_phone_number_id="106540352242922",
        meta_whatsapp_access_token="EAAG-whatsapp-system-user-token-71b2",
        meta_page_access_token="EAAG-page-token-messenger-93fd",
        telephony_webhook_secret=SecretStr("telephony-shared-secret-5e0d"),
        widget_identity_secret=SecretStr("widget-identity-secret-2a9b"),
        widget_allowed_origins="https://www.maison-dupont.fr",
    )


def test_an_administrator_adds_a_user_and_a_source_whose_write_key_is_shown_once(
    page: Page, console: Console, new_page: Callable[..., Page]
) -> None:
    a_team_of_people(console)
    admin_signed_in(page, console)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Admin")
    expect(page.get_by_text("2 sources, 2 API tokens")).to_be_visible()  # the tests' token and the CRM's
    assert_accessible(page)

    page.get_by_role("navigation", name="Admin sections").get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Users")
    form = page.locator("form[action='/console/admin/users']")
    form.get_by_label("Name").fill("Chloé Bernard")
    form.get_by_label("E-mail").fill("chloe.bernard@maison-dupont.fr")
    form.get_by_label("Role").select_option(label="Store associate")
    form.get_by_label("Language of the console").select_option(label="Français")
    form.get_by_label(re.compile("Initial password")).fill("premier mot de passe")
    form.get_by_role("button", name="Add the user").click()
    # A store associate needs a store: the form says so beside it and keeps what was typed.
    expect(page.get_by_role("alert")).to_contain_text("location_id: a store associate works in a store")
    expect(form.get_by_label("Name")).to_have_value("Chloé Bernard")
    form.get_by_label("Store (for a store associate)").select_option(label="Lyon Part-Dieu (Paris)")
    form.get_by_label(re.compile("Initial password")).fill("premier mot de passe")
    form.get_by_role("button", name="Add the user").click()

    expect(page.get_by_role("status")).to_have_text(
        "Chloé Bernard (chloe.bernard@maison-dupont.fr) can now sign in."
    )
    row = page.get_by_role("row", name=re.compile("Chloé Bernard"))
    expect(row).to_contain_text("Store associate")
    expect(row).to_contain_text("Lyon Part-Dieu")
    assert_accessible(page)
    docs_screenshot(page, "admin-users")

    # The new user signs in, in French, in another browser.
    newcomer = new_page()
    sign_in(newcomer, console, "chloe.bernard@maison-dupont.fr", "premier mot de passe")
    expect(newcomer.get_by_role("heading", level=1)).to_have_text("Bienvenue, Chloé Bernard")

    page.get_by_role("navigation", name="Admin sections").get_by_role(
        "link", name="Sources and API tokens"
    ).click()
    source_form = page.locator("form[action='/console/admin/sources']")
    source_form.get_by_label("Name").fill("Boutique en ligne")
    source_form.get_by_label("Default channel of its events").select_option(label="Web")
    source_form.get_by_role("button", name="Create the source and its write key").click()

    reveal = page.get_by_role("region", name="Write key of the source Boutique en ligne")
    expect(reveal).to_be_visible()
    key = reveal.locator("code.copyable").inner_text()
    assert re.fullmatch(r"wk_[A-Za-z0-9_-]{32}", key), key
    expect(reveal).to_contain_text("Copy it now: it is shown only this once.")
    expect(reveal.get_by_role("button", name="Copy the write key")).to_be_visible()
    expect(reveal.locator("pre.copyable")).to_contain_text(f"curl -u {key}:")
    assert_accessible(page)
    with console.db.read() as session:
        assert session.scalar(select(Source.channel).where(Source.name == "Boutique en ligne")) == "web"
    assert (
        console.api.send(key, "/v1/track", {"type": "track", "event": "Test", "anonymousId": "a"}).status_code
        == 200
    )

    page.reload()
    expect(page.get_by_role("heading", name="Nothing to show")).to_be_visible()
    expect(page.get_by_text(key)).to_have_count(0)
    expect(page.get_by_role("row", name=re.compile("Boutique en ligne"))).to_contain_text("Active")

    # What the source sends shows here, and what is refused, since SDKs keep the API's answers to themselves.
    batch = [{"type": "track", "anonymousId": "a", "messageId": "sans-nom"},
             {"type": "track", "event": "Produit vu", "anonymousId": "a"}]  # fmt: skip
    assert console.api.send(key, "/v1/batch", {"batch": batch}).status_code == 200
    page.reload()
    row = page.get_by_role("row", name=re.compile("Boutique en ligne"))
    expect(row).to_contain_text("2 recorded")
    expect(row).to_contain_text("1 refused")
    row.get_by_role("link", name="Boutique en ligne").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Source Boutique en ligne")
    refused = page.get_by_role("region", name="Refused events")
    expect(refused).to_contain_text("event: is required")
    expect(refused).to_contain_text("event 1 of the batch")
    expect(refused).to_contain_text("sans-nom")
    assert_accessible(page)
    docs_screenshot(page, "admin-source")


def test_the_channels_page_shows_the_webhook_urls_and_reveals_a_secret_on_demand(
    page: Page, console: Console
) -> None:
    configured_channels(console)
    admin_signed_in(page, console)
    page.goto(console.path("/console/admin/channels"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Channels")

    for section, url in (
        ("Twilio: SMS and WhatsApp", "https://relation-client.maison-dupont.fr/v1/channels/twilio/messages"),
        ("Meta: WhatsApp Cloud, Messenger, Instagram", "https://relation-client.maison-dupont.fr/v1/channels/meta/webhook"),
        ("Telephony", "https://relation-client.maison-dupont.fr/v1/channels/telephony/calls"),
    ):  # fmt: skip
        region = page.get_by_role("region", name=re.compile("^" + re.escape(section)))
        expect(region.locator("code.copyable").filter(has_text=url)).to_be_visible()
        expect(region).to_contain_text("Configured")
    widget = page.get_by_role("region", name=re.compile("^Web chat widget"))
    expect(widget.locator("pre.copyable")).to_have_text(
        '<script src="https://relation-client.maison-dupont.fr/widget.js" data-parcours-site="shop" async></script>'
    )
    email = page.get_by_role("region", name=re.compile("^E-mail"))
    expect(email).to_contain_text("Replies through the relay, from service-client@sav.maison-dupont.fr")

    meta = page.get_by_role("region", name=re.compile("^Meta"))
    verify_token = meta.get_by_text("maison-dupont-verify-7c21")
    expect(verify_token).to_be_hidden()  # masked until asked for
    meta.get_by_text("Show PARCOURS_META_VERIFY_TOKEN").click()
    expect(verify_token).to_be_visible()
    expect(meta.get_by_role("button", name="Copy PARCOURS_META_VERIFY_TOKEN")).to_be_visible()
    expect(page.get_by_text("telephony-shared-secret-5e0d")).to_be_hidden()
    assert_accessible(page)
    docs_screenshot(page, "admin-channels")


def test_merge_rules_are_edited_with_the_error_beside_the_form(page: Page, console: Console) -> None:
    admin_signed_in(page, console)
    page.goto(console.path("/console/admin/identity"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Merge rules")
    expect(page.get_by_role("region", name="Matching in force")).to_contain_text("0.99")
    page.get_by_role("link", name="email", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Merge rules of email")

    page.get_by_label("Most identifiers of this kind on one profile").fill("3")
    page.get_by_label(re.compile("^Blocked values")).fill("test@example.com\nnoreply@maison-dupont.fr")
    page.get_by_label(re.compile("^Blocked patterns")).fill("@mailinator\\.com$\n(unclosed")
    page.get_by_role("button", name="Save the rules").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "blocked_patterns: '(unclosed' is not a valid regular expression"
    )
    expect(page.get_by_label(re.compile("^Blocked values"))).to_have_value(
        "test@example.com\nnoreply@maison-dupont.fr"
    )
    assert_accessible(page)
    page.get_by_label(re.compile("^Blocked patterns")).fill("@mailinator\\.com$")
    page.get_by_role("button", name="Save the rules").click()

    expect(page.get_by_role("status")).to_have_text("Merge rules of email saved.")
    row = page.get_by_role("row", name=re.compile("^email"))
    expect(row).to_contain_text("noreply@maison-dupont.fr")
    expect(row).to_contain_text("@mailinator\\.com$")
    with console.db.read() as session:
        kind = session.get(IdentifierKind, "email")
        assert kind is not None and kind.max_per_profile == 3

    form = page.locator("form[action='/console/admin/identity/kinds']")
    form.get_by_label(re.compile("^Name")).fill("crm_id")
    form.get_by_label("Description").fill("Identifiant client du CRM")
    form.get_by_label(re.compile("^Values normalised as")).select_option(
        label="Compact (no spaces, dashes or dots; upper case)"
    )
    form.get_by_label(re.compile("^Priority")).fill("15")
    form.get_by_label("Most identifiers of this kind on one profile").fill("1")
    form.get_by_role("button", name="Add the kind").click()
    expect(page.get_by_role("status")).to_have_text("Identifier kind crm_id added.")
    expect(page.get_by_role("row", name=re.compile("^crm_id"))).to_contain_text("15")
    assert_accessible(page)
    docs_screenshot(page, "admin-identity-rules")


DOCS_SCREENSHOTS = {
    "/console/admin": "admin",
    "/console/admin/sources": "admin-sources",
    "/console/admin/teams": "admin-teams",
    "/console/admin/knowledge": "admin-knowledge",
}


def test_every_admin_page_is_accessible_and_fits_a_tablet(page: Page, console: Console) -> None:
    a_team_of_people(console)
    configured_channels(console)
    admin_signed_in(page, console)
    with console.db.read() as session:
        agent_id = session.scalar(select(Agent.id).where(Agent.name == "Hugo Petit"))
    page.goto(console.path("/console/admin/users"))
    page.get_by_role("link", name="Camille Laurent").click()
    user_page = page.url
    pages = [
        "/console/admin",
        "/console/admin/sources",
        "/console/admin/channels",
        "/console/admin/teams",
        f"/console/admin/agents/{agent_id}",
        "/console/admin/users",
        user_page.removeprefix(console.url),
        "/console/admin/identity",
        "/console/admin/identity/kinds/phone",
        "/console/admin/knowledge",
        "/console/admin/knowledge/new",
        "/console/admin/knowledge/fr/livraison",
    ]
    for viewport in ("desktop", "tablet_portrait"):
        set_viewport(page, viewport)
        for path in pages:
            response = page.goto(console.path(path))
            assert response is not None and response.status == 200, path
            assert_accessible(page)
            if viewport == "desktop" and path in DOCS_SCREENSHOTS:
                docs_screenshot(page, DOCS_SCREENSHOTS[path])
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{viewport} {path}: the page scrolls sideways by {overflow}px"

    # The teams page works with the keyboard alone: Tab to an agent's availability button and press it.
    set_viewport(page, "desktop")
    page.goto(console.path("/console/admin/teams"))
    button = page.get_by_role("button", name="Set away Hugo Petit")
    button.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Hugo Petit is away.")
    expect(page.get_by_role("button", name="Set available Hugo Petit")).to_be_visible()
