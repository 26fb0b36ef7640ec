"""The console's admin area over HTTP on a live server (SQLite and PostgreSQL): sources and write keys shown
once, API tokens, the channels' webhook URLs and secrets, teams and agents, users, merge rules, the
knowledge base; roles, CSRF, validation that names the field and writes nothing."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from parcours.auth import service as auth
from parcours.auth import users
from parcours.config import Settings
from parcours.console.web import SignInThrottle
from parcours.db.engine import Database
from parcours.inbox import agents as inbox_agents
from parcours.inbox import bot
from parcours.models import Agent, ApiToken, IdentifierKind, KnowledgeArticle, Source, Team, TeamMember, User
from tests.conftest import Api
from tests.console_helpers import PASSWORD, add_store, add_user, client, csrf_of, sign_in, signed_in

ADMIN_PAGES = (
    "/console/admin",
    "/console/admin/sources",
    "/console/admin/channels",
    "/console/admin/teams",
    "/console/admin/users",
    "/console/admin/identity",
    "/console/admin/identity/kinds/email",
    "/console/admin/knowledge",
    "/console/admin/knowledge/new",
)


@pytest.fixture
def admin(api: Api) -> Iterator[tuple[httpx.Client, str]]:
    """A signed-in administrator's client and CSRF token."""
    api.app.state.sign_in_throttle = SignInThrottle()
    browser, csrf = signed_in(api, "admin")
    yield browser, csrf
    browser.close()


def error_beside_form(html: str) -> str:
    match = re.search(r'<p class="error" role="alert" id="[a-z]+-error">([^<]*)</p>', html)
    assert match, "no error shown beside the form"
    return match.group(1)


def count(api: Api, model: type, *where: object) -> int:
    with api.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- access
def test_only_administrators_open_the_admin_area(api: Api) -> None:
    store = add_store(api)
    api.app.state.sign_in_throttle = SignInThrottle()
    for role in ("agent", "supervisor", "store_associate", "marketer"):
        browser, csrf = signed_in(api, role, location_id=store if role == "store_associate" else None)
        for path in ADMIN_PAGES:
            answer = browser.get(path)
            assert answer.status_code == 403, (role, path)
            assert "Not allowed" in answer.text
        refused = browser.post(
            "/console/admin/sources", data={"csrf_token": csrf, "name": "Shop", "channel": "web"}
        )
        assert refused.status_code == 403
        browser.close()
    assert count(api, Source) == 0
    anonymous = client(api)
    answer = anonymous.get("/console/admin/users")
    assert (
        answer.status_code == 303 and answer.headers["location"] == "/console/login?next=/console/admin/users"
    )
    assert anonymous.post("/console/admin/users", data={"name": "X"}).status_code == 303  # to sign in
    assert count(api, User) == 4


def test_every_admin_page_opens_for_an_administrator_and_forms_need_the_csrf_token(
    api: Api, admin: tuple[httpx.Client, str]
) -> None:
    browser, csrf = admin
    for path in ADMIN_PAGES:
        answer = browser.get(path)
        assert answer.status_code == 200, path
        assert "/console/static/admin.css" in answer.text and "style=" not in answer.text
    without = browser.post("/console/admin/sources", data={"name": "Shop", "channel": "web"})
    assert without.status_code == 403 and "reload the page" in without.text
    other_site = browser.post(
        "/console/admin/tokens",
        data={"csrf_token": csrf, "token_name": "x"},
        headers={"Origin": "https://evil.example"},
    )
    assert other_site.status_code == 403
    assert count(api, Source) == 0 and count(api, ApiToken) == 1  # the fixture's own token only


def test_the_index_sums_up_each_section(api: Api, admin: tuple[httpx.Client, str]) -> None:
    browser, _ = admin
    api.source("Web shop", "web")
    api.source("Tills", "store")
    with api.db.write() as session:
        inbox_agents.create_team(session, "Service client")
        bot.save_article(session, "delivery", "en", "Delivery", "Free from 49 EUR.", ["delivery cost"])
    page = browser.get("/console/admin").text
    assert "2 sources, 1 API token" in page
    assert "1 team, 1 agent, 1 available now" in page  # the admin answers as an agent
    assert "1 active user, 1 administrator" in page
    assert "9 identifier kinds; merge at 0.99, review from 0.8" in page
    assert "1 article (en 1)" in page
    assert (
        "Partly configured: E-mail, Web chat widget; Not configured: Twilio: SMS and WhatsApp, Meta" in page
    )


# --------------------------------------------------------------------------------- sources, tokens
def test_a_new_sources_write_key_is_shown_once_and_works(api: Api, admin: tuple[httpx.Client, str]) -> None:
    browser, csrf = admin
    made = browser.post(
        "/console/admin/sources", data={"csrf_token": csrf, "name": "Web shop", "channel": "web"}
    )
    assert made.status_code == 303
    target = made.headers["location"]
    assert target.startswith("/console/admin/sources?shown=")
    shown = browser.get(target)
    assert "Source Web shop created." in shown.text
    key = re.search(r'data-copy-name="the write key">(wk_[A-Za-z0-9_-]+)</code>', shown.text)
    assert key, shown.text
    write_key = key.group(1)
    assert "shown only this once" in shown.text and "SHA-256" in shown.text
    with api.db.read() as session:
        source = session.scalar(select(Source).where(Source.name == "Web shop"))
        assert source is not None and source.channel == "web"
        assert source.write_key_hash == hashlib.sha256(write_key.encode()).hexdigest()
    track = {"type": "track", "event": "Product Viewed", "anonymousId": "a-1"}
    assert api.send(write_key, "/v1/track", track).status_code == 200

    again = browser.get(target)  # reloading the page does not show it again
    assert write_key not in again.text and "Nothing to show" in again.text

    # Another administrator's session cannot pick up someone else's new key.
    made = browser.post("/console/admin/sources", data={"csrf_token": csrf, "name": "App", "channel": "app"})
    other, _ = signed_in(api, "admin", email="other-admin@example.org")
    peek = other.get(made.headers["location"])
    assert "wk_" not in peek.text and "Nothing to show" in peek.text
    assert "wk_" in browser.get(made.headers["location"]).text
    other.close()

    disabled = browser.post("/console/admin/sources/disable", data={"csrf_token": csrf, "name": "Web shop"})
    assert disabled.status_code == 303
    listing = browser.get("/console/admin/sources").text
    assert "Source Web shop disabled" in listing and "Disabled" in listing
    assert api.send(write_key, "/v1/track", track).status_code == 401


def test_source_form_errors_name_the_field_and_write_nothing(
    api: Api, admin: tuple[httpx.Client, str]
) -> None:
    browser, csrf = admin
    blank = browser.post("/console/admin/sources", data={"csrf_token": csrf, "name": "  ", "channel": "web"})
    assert blank.status_code == 400 and error_beside_form(blank.text) == "name: required"
    unknown = browser.post(
        "/console/admin/sources", data={"csrf_token": csrf, "name": "Kiosk", "channel": "fax"}
    )
    assert unknown.status_code == 400 and error_beside_form(unknown.text).startswith(
        "channel: must be one of"
    )
    assert 'value="Kiosk"' in unknown.text  # what was typed is kept
    api.source("Tills", "store")
    twice = browser.post(
        "/console/admin/sources", data={"csrf_token": csrf, "name": "Tills", "channel": "store"}
    )
    assert twice.status_code == 409 and "already exists" in error_beside_form(twice.text)
    too_long = browser.post(
        "/console/admin/sources", data={"csrf_token": csrf, "name": "x" * 121, "channel": "web"}
    )
    assert too_long.status_code == 400 and error_beside_form(too_long.text) == "name: at most 120 characters"
    missing = browser.post("/console/admin/sources/disable", data={"csrf_token": csrf, "name": "Nope"})
    assert missing.status_code == 404 and "no active source named" in missing.text
    assert count(api, Source) == 1


def test_api_tokens_are_shown_once_then_revoked(api: Api, admin: tuple[httpx.Client, str]) -> None:
    browser, csrf = admin
    made = browser.post("/console/admin/tokens", data={"csrf_token": csrf, "token_name": "CRM sync"})
    assert made.status_code == 303
    shown = browser.get(made.headers["location"]).text
    token = re.search(r'data-copy-name="the API token">(pat_[A-Za-z0-9_-]+)</code>', shown)
    assert token and "Authorization: Bearer " + token.group(1) in shown
    answer = api.client.get("/v1/identity/kinds", headers={"Authorization": f"Bearer {token.group(1)}"})
    assert answer.status_code == 200
    twice = browser.post("/console/admin/tokens", data={"csrf_token": csrf, "token_name": "CRM sync"})
    assert twice.status_code == 409 and "already exists" in error_beside_form(twice.text)
    revoked = browser.post(
        "/console/admin/tokens/revoke", data={"csrf_token": csrf, "token_name": "CRM sync"}
    )
    assert revoked.status_code == 303
    assert "API token CRM sync revoked." in browser.get("/console/admin/sources").text
    assert count(api, ApiToken, ApiToken.name == "CRM sync", ApiToken.revoked_at.is_not(None)) == 1


def test_long_lists_are_paginated(api: Api, admin: tuple[httpx.Client, str]) -> None:
    browser, csrf = admin
    with api.db.write() as session:
        from parcours.auth.service import create_source

        for n in range(53):
            create_source(session, f"Source {n:02d}", "web")
    first = browser.get("/console/admin/sources").text
    assert first.count("Disable<span") == 50 and 'href="/console/admin/sources?page=2"' in first
    second = browser.get("/console/admin/sources?page=2").text
    assert (
        second.count("Disable<span") == 3
        and "Source 52" in second
        and 'href="/console/admin/sources"' in second
    )
    assert browser.get("/console/admin/sources?page=zero").status_code == 400
    refused = browser.post("/console/admin/sources", data={"csrf_token": csrf, "name": "", "channel": "web"})
    assert refused.status_code == 400 and 'href="/console/admin/sources?page=2"' in refused.text


def test_list_sources_gives_the_admin_page_its_disabled_sources_and_dates(db: Database) -> None:
    """The domain's list (auth.service.list_sources) the sources page pages through."""
    with db.write() as session:
        shop, _ = auth.create_source(session, "Shop", "web")
        auth.create_source(session, "Tills", "store")
        auth.create_source(session, "App", "app")
    with db.write() as session:
        auth.disable_source(session, "Tills")
    with db.read() as session:
        active = auth.list_sources(session)
        every = auth.list_sources(session, include_disabled=True)
        second_page = auth.list_sources(session, include_disabled=True, limit=2, offset=1)
    assert [s.name for s in active] == ["App", "Shop"]  # as the CLI's "source list" shows them
    assert [(s.name, s.channel, s.disabled_at is not None) for s in every] == [
        ("App", "app", False),
        ("Shop", "web", False),
        ("Tills", "store", True),  # disabled ones last
    ]
    assert all(s.created_at is not None and s.created_at <= (s.disabled_at or s.created_at) for s in every)
    assert [s.name for s in second_page] == ["Shop", "Tills"]
    assert every[1] == shop  # the same source, whichever function read it


# -------------------------------------------------------------------------------------------- channels
def test_channels_show_the_webhook_urls_and_the_secrets_to_paste(
    api: Api, admin: tuple[httpx.Client, str]
) -> None:
    browser, _ = admin
    bare = browser.get("/console/admin/channels").text
    assert f"{api.url}/v1/channels/twilio/messages" in bare  # no public URL set: the browser's
    assert "Incoming messages refused: no auth token" in bare and "Not configured" in bare
    assert "Set PARCOURS_CONSOLE_PUBLIC_URL" in bare

    api.app.state.settings = Settings(
        database_url=api.db.url,
        console_public_url="https://cx.example.com",
        meta_verify_token="verify-me-please-1234",
        meta_app_secret="meta-app-secret-5678",
        meta_page_access_token="EAAB-page-token-0000",
        twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token="twilio-auth-token-9999",
        twilio_sms_from="+33612345678",
        telephony_webhook_secret=SecretStr("phone-shared-secret-4242"),
        widget_identity_secret=SecretStr("widget-secret-7777"),
        email_relay_host="smtp.example.com",
        email_relay_password="relay-password-3131",
    )
    page = browser.get("/console/admin/channels").text
    for url in (
        "https://cx.example.com/v1/channels/twilio/messages",
        "https://cx.example.com/v1/channels/meta/webhook",
        "https://cx.example.com/v1/channels/telephony/calls",
    ):
        assert f'">{url}</code>' in page, url
    assert (
        "&lt;script src=&#34;https://cx.example.com/widget.js&#34; data-parcours-site=&#34;shop&#34; async&gt;"
        "&lt;/script&gt;" in page
    )
    # Each secret the provider needs is on the page, but only inside a closed "Show" disclosure.
    for variable, secret in (
        ("PARCOURS_META_VERIFY_TOKEN", "verify-me-please-1234"),
        ("PARCOURS_TELEPHONY_WEBHOOK_SECRET", "phone-shared-secret-4242"),
        ("PARCOURS_TWILIO_AUTH_TOKEN", "twilio-auth-token-9999"),
        ("PARCOURS_EMAIL_RELAY_PASSWORD", "relay-password-3131"),
    ):
        assert page.count(secret) == 1, variable
        shown = re.search(
            rf'<details class="secret"><summary>Show<span class="visually-hidden"> {variable}</span></summary>'
            rf'<code class="copyable"[^>]*>{re.escape(secret)}</code>',
            page,
        )
        assert shown, variable
    assert "Incoming messages accepted (signed with the auth token)" in page
    assert "Replies through the relay, from support@parcours.localhost" in page
    assert "WhatsApp replies are sent through:" in page and "nobody" in page
    assert "Set PARCOURS_CONSOLE_PUBLIC_URL" not in page

    # The URLs shown are this server's real routes: Meta's handshake answers on the callback URL's path.
    handshake = api.client.get(
        "/v1/channels/meta/webhook",
        params={"hub.mode": "subscribe", "hub.verify_token": "verify-me-please-1234", "hub.challenge": "42"},
    )
    assert handshake.status_code == 200 and handshake.text == "42"


# ----------------------------------------------------------------------------------------------- users
def test_an_administrator_adds_a_user_who_can_sign_in(api: Api, admin: tuple[httpx.Client, str]) -> None:
    browser, csrf = admin
    store = add_store(api)
    form = {
        "csrf_token": csrf, "name": "Sasha Martin", "email": "Sasha@Example.org", "role": "store_associate",
        "locale": "fr", "location_id": "", "password": "a long first password",
    }  # fmt: skip
    no_store = browser.post("/console/admin/users", data=form)
    assert no_store.status_code == 400 and error_beside_form(no_store.text).startswith("location_id:")
    assert "a long first password" not in no_store.text and 'value="Sasha Martin"' in no_store.text
    short = browser.post("/console/admin/users", data={**form, "location_id": store, "password": "short"})
    assert short.status_code == 400 and error_beside_form(short.text) == "password: at least 10 characters"
    bad_email = browser.post("/console/admin/users", data={**form, "location_id": store, "email": "sasha@"})
    assert bad_email.status_code == 400 and error_beside_form(bad_email.text).startswith("email:")
    assert count(api, User) == 1

    made = browser.post("/console/admin/users", data={**form, "location_id": store})
    assert made.status_code == 303
    listing = browser.get("/console/admin/users").text
    assert "Sasha Martin (sasha@example.org) can now sign in." in listing and "Lyon Part-Dieu" in listing
    twice = browser.post("/console/admin/users", data={**form, "location_id": store})
    assert twice.status_code == 409 and "already exists" in error_beside_form(twice.text)

    newcomer = client(api)
    assert sign_in(newcomer, "sasha@example.org", "a long first password").status_code == 303
    assert "Bienvenue, Sasha Martin" in newcomer.get("/console/").text
    newcomer.close()

    agent = browser.post("/console/admin/users", data={**form, "email": "ana@example.org", "name": "Ana Agent",
                                                      "role": "agent", "location_id": store})  # fmt: skip
    assert agent.status_code == 303
    with api.db.read() as session:
        ana = session.scalar(select(User).where(User.email == "ana@example.org"))
        assert (
            ana is not None and ana.location_id is None and ana.agent_id is not None
        )  # answers in the inbox


def test_role_language_access_and_password_of_a_user(api: Api, admin: tuple[httpx.Client, str]) -> None:
    browser, csrf = admin
    store = add_store(api)
    email = add_user(api, "agent")
    with api.db.read() as session:
        user_id = session.scalar(select(User.id).where(User.email == email))
    page = f"/console/admin/users/{user_id}"
    assert browser.get(page).status_code == 200
    assert browser.get("/console/admin/users/usr_nobody").status_code == 404

    elsewhere = client(api)
    sign_in(elsewhere, email)
    assert elsewhere.get("/console/").status_code == 200

    to_store = browser.post(
        f"{page}/role", data={"csrf_token": csrf, "role": "store_associate", "location_id": ""}
    )
    assert to_store.status_code == 400 and error_beside_form(to_store.text).startswith("location_id:")
    moved = browser.post(
        f"{page}/role", data={"csrf_token": csrf, "role": "store_associate", "location_id": store}
    )
    assert moved.status_code == 303 and "is now: Store associate." in browser.get(page).text
    french = browser.post(f"{page}/locale", data={"csrf_token": csrf, "locale": "fr"})
    assert french.status_code == 303
    bad = browser.post(f"{page}/locale", data={"csrf_token": csrf, "locale": "de"})
    assert bad.status_code == 400 and error_beside_form(bad.text).startswith("locale: must be one of")

    disabled = browser.post(f"{page}/disable", data={"csrf_token": csrf})
    assert disabled.status_code == 303 and "can no longer sign in" in browser.get(page).text
    assert elsewhere.get("/console/").status_code == 303  # their session ended
    assert sign_in(elsewhere, email).status_code == 401
    assert browser.post(f"{page}/enable", data={"csrf_token": csrf}).status_code == 303

    differ = browser.post(f"{page}/password", data={"csrf_token": csrf, "new_password": "another long one",
                                                    "confirm_password": "something else"})  # fmt: skip
    assert differ.status_code == 400 and error_beside_form(differ.text).startswith("confirm_password:")
    reset = browser.post(f"{page}/password", data={"csrf_token": csrf, "new_password": "another long one",
                                                   "confirm_password": "another long one"})  # fmt: skip
    assert reset.status_code == 303
    assert sign_in(elsewhere, email).status_code == 401
    assert sign_in(elsewhere, email, "another long one").status_code == 303
    with api.db.read() as session:
        user = users.get_user(session, user_id or "")
        assert (user.role, user.locale, user.location_id, user.disabled_at) == (
            "store_associate",
            "fr",
            store,
            None,
        )
    elsewhere.close()


def test_the_last_administrator_cannot_be_demoted_nor_disabled(
    api: Api, admin: tuple[httpx.Client, str]
) -> None:
    browser, csrf = admin
    with api.db.read() as session:
        me = session.scalar(select(User.id).where(User.role == "admin"))
    page = f"/console/admin/users/{me}"
    demoted = browser.post(f"{page}/role", data={"csrf_token": csrf, "role": "agent", "location_id": ""})
    assert demoted.status_code == 409
    assert error_beside_form(demoted.text) == "this is the last admin: make another admin first"
    own = browser.post(f"{page}/disable", data={"csrf_token": csrf})
    assert own.status_code == 409 and "your own account" in error_beside_form(own.text)
    own_password = browser.post(f"{page}/password", data={"csrf_token": csrf, "new_password": "x" * 12,
                                                          "confirm_password": "x" * 12})  # fmt: skip
    assert own_password.status_code == 409 and "Preferences" in error_beside_form(own_password.text)

    # With a second administrator, the first may step down; the admin area is then closed to them.
    add_user(api, "admin", email="second@example.org")
    stepped_down = browser.post(
        f"{page}/role", data={"csrf_token": csrf, "role": "supervisor", "location_id": ""}
    )
    assert stepped_down.status_code == 303 and stepped_down.headers["location"] == "/console/"
    assert browser.get("/console/admin").status_code == 403
    with api.db.read() as session:
        assert session.scalar(select(User.role).where(User.id == me)) == "supervisor"
        assert session.scalar(select(User.password_hash).where(User.id == me)) is not None


# ---------------------------------------------------------------------------------------- teams, agents
def test_teams_members_assignment_and_agents(api: Api, admin: tuple[httpx.Client, str]) -> None:
    browser, csrf = admin
    add_user(api, "agent")
    with api.db.read() as session:
        ada = session.scalar(select(Agent.id).where(Agent.name == "Admin"))
        alice = session.scalar(select(Agent.id).where(Agent.name == "Agent"))
    assert ada and alice

    made = browser.post(
        "/console/admin/teams", data={"csrf_token": csrf, "name": "Boutique", "assignment": "least_busy"}
    )
    assert made.status_code == 303
    twice = browser.post(
        "/console/admin/teams", data={"csrf_token": csrf, "name": "Boutique", "assignment": "least_busy"}
    )
    assert twice.status_code == 409 and "already exists" in error_beside_form(twice.text)
    odd = browser.post(
        "/console/admin/teams", data={"csrf_token": csrf, "name": "Other", "assignment": "random"}
    )
    assert odd.status_code == 400 and error_beside_form(odd.text).startswith("assignment:")
    with api.db.read() as session:
        team_id = session.scalar(select(Team.id).where(Team.name == "Boutique"))
    assert count(api, Team) == 1 and team_id

    for agent_id in (ada, alice, alice):  # adding twice is harmless
        added = browser.post(
            "/console/admin/teams/members",
            data={"csrf_token": csrf, "team_id": team_id, "agent_id": agent_id},
        )
        assert added.status_code == 303
    assert "Agent added to Boutique." in browser.get("/console/admin/teams").text
    nobody = browser.post(
        "/console/admin/teams/members", data={"csrf_token": csrf, "team_id": team_id, "agent_id": "agt_x"}
    )
    assert nobody.status_code == 400 and error_beside_form(nobody.text).startswith("agent_id:")
    assert count(api, TeamMember, TeamMember.team_id == team_id) == 2

    switched = browser.post(
        f"/console/admin/teams/{team_id}/assignment", data={"csrf_token": csrf, "assignment": "round_robin"}
    )
    assert switched.status_code == 303
    removed = browser.post(
        f"/console/admin/teams/{team_id}/members/{alice}/remove", data={"csrf_token": csrf}
    )
    assert (
        removed.status_code == 303
        and "Agent removed from Boutique." in browser.get("/console/admin/teams").text
    )
    assert (
        browser.post(
            f"/console/admin/teams/{team_id}/members/{alice}/remove", data={"csrf_token": csrf}
        ).status_code
        == 404
    )
    with api.db.read() as session:
        assert session.scalar(select(Team.assignment).where(Team.id == team_id)) == "round_robin"
        assert list(session.scalars(select(TeamMember.agent_id).where(TeamMember.team_id == team_id))) == [
            ada
        ]

    away = browser.post(
        f"/console/admin/agents/{alice}/availability", data={"csrf_token": csrf, "available": "no"}
    )
    assert away.status_code == 303 and "Agent is away." in browser.get("/console/admin/teams").text
    with api.db.read() as session:
        assert session.scalar(select(Agent.available).where(Agent.id == alice)) is False

    editing = f"/console/admin/agents/{alice}"
    assert browser.get(editing).status_code == 200
    form = {"csrf_token": csrf, "languages": "fr, en", "skills": "Machines, returns", "capacity_any": "6",
            "capacity_phone": "1", "capacity_chat": ""}  # fmt: skip
    too_many = browser.post(editing, data={**form, "capacity_phone": "5000"})
    assert too_many.status_code == 400 and error_beside_form(too_many.text).startswith("capacity_phone:")
    no_language = browser.post(editing, data={**form, "languages": " "})
    assert no_language.status_code == 400 and error_beside_form(no_language.text).startswith("languages:")
    odd_language = browser.post(editing, data={**form, "languages": "français"})
    assert odd_language.status_code == 400 and error_beside_form(odd_language.text).startswith("languages:")
    saved = browser.post(editing, data=form)
    assert saved.status_code == 303
    with api.db.read() as session:
        agent = session.get(Agent, alice)
        assert agent is not None
        assert (agent.languages, agent.skills, agent.capacity) == (
            ["en", "fr"],
            ["machines", "returns"],
            {"*": 6, "phone": 1},
        )


# ------------------------------------------------------------------------------------------ merge rules
def test_merge_rules_are_edited_and_added_with_clear_errors(
    api: Api, admin: tuple[httpx.Client, str]
) -> None:
    browser, csrf = admin
    page = browser.get("/console/admin/identity").text
    for kind in ("user_id", "loyalty_card", "email", "phone", "anonymous_id"):
        assert f'href="/console/admin/identity/kinds/{kind}"' in page
    assert "0.99" in page and "0.8" in page and "default weights" in page

    rules = {"csrf_token": csrf, "priority": "35", "max_per_profile": "3",
             "blocked_values": "test@example.com\nnoreply@shop.example\n", "blocked_patterns": r"@mailinator\.com$"}  # fmt: skip
    bad_pattern = browser.post(
        "/console/admin/identity/kinds/email", data={**rules, "blocked_patterns": "(unclosed"}
    )
    assert bad_pattern.status_code == 400 and error_beside_form(bad_pattern.text).startswith(
        "blocked_patterns:"
    )
    assert "noreply@shop.example" in bad_pattern.text  # the form keeps what was typed
    zero = browser.post("/console/admin/identity/kinds/email", data={**rules, "max_per_profile": "0"})
    assert zero.status_code == 400 and error_beside_form(zero.text).startswith("max_per_profile:")
    words = browser.post("/console/admin/identity/kinds/email", data={**rules, "priority": "first"})
    assert words.status_code == 400 and error_beside_form(words.text).startswith("priority:")
    assert browser.post("/console/admin/identity/kinds/fax", data=rules).status_code == 404
    with api.db.read() as session:
        email = session.get(IdentifierKind, "email")
        assert email is not None and (email.priority, email.max_per_profile) == (40, 5)

    saved = browser.post("/console/admin/identity/kinds/email", data=rules)
    assert (
        saved.status_code == 303
        and "Merge rules of email saved." in browser.get("/console/admin/identity").text
    )
    with api.db.read() as session:
        email = session.get(IdentifierKind, "email")
        assert email is not None
        assert (email.priority, email.max_per_profile, email.blocked_values, email.blocked_patterns) == (
            35, 3, ["test@example.com", "noreply@shop.example"], [r"@mailinator\.com$"],
        )  # fmt: skip

    new = {"csrf_token": csrf, "name": "crm_id", "description": "The CRM's id", "normalizer": "compact",
           "priority": "15", "max_per_profile": "1", "blocked_values": "", "blocked_patterns": ""}  # fmt: skip
    bad_name = browser.post("/console/admin/identity/kinds", data={**new, "name": "CRM-id"})
    assert bad_name.status_code == 400 and error_beside_form(bad_name.text).startswith("name:")
    bad_normalizer = browser.post("/console/admin/identity/kinds", data={**new, "normalizer": "upper"})
    assert bad_normalizer.status_code == 400 and error_beside_form(bad_normalizer.text).startswith(
        "normalizer:"
    )
    assert count(api, IdentifierKind) == 9
    added = browser.post("/console/admin/identity/kinds", data=new)
    assert added.status_code == 303
    twice = browser.post("/console/admin/identity/kinds", data=new)
    assert twice.status_code == 409 and "already exists" in error_beside_form(twice.text)
    with api.db.read() as session:
        crm = session.get(IdentifierKind, "crm_id")
        assert crm is not None and (crm.normalizer, crm.priority, crm.builtin) == ("compact", 15, False)

    # The new rule is in force: an identify call with the new kind as a trait lands on a profile by it.
    write_key = api.source("CRM", "other")
    sent = api.send(write_key, "/v1/identify", {"userId": "u-1", "traits": {"crm_id": "ab-12 34"}})
    assert sent.status_code == 200
    profile = api.get("/v1/profiles", identifier="crm_id:AB1234")
    assert profile.status_code == 200, profile.text


# --------------------------------------------------------------------------------------- knowledge base
def test_knowledge_base_articles_are_created_edited_and_deleted(
    api: Api, admin: tuple[httpx.Client, str]
) -> None:
    browser, csrf = admin
    article = {"csrf_token": csrf, "slug": "delivery", "language": "en", "title": "Delivery",
               "body": "Delivery is free from 49 EUR, within 48 hours.",
               "questions": "how much is delivery\n\nwhen will my parcel arrive\n"}  # fmt: skip
    bad_slug = browser.post("/console/admin/knowledge", data={**article, "slug": "Delivery Costs"})
    assert bad_slug.status_code == 400 and error_beside_form(bad_slug.text).startswith("slug:")
    no_question = browser.post("/console/admin/knowledge", data={**article, "questions": "\n"})
    assert no_question.status_code == 400 and error_beside_form(no_question.text).startswith("questions:")
    assert count(api, KnowledgeArticle) == 0

    made = browser.post("/console/admin/knowledge", data=article)
    assert made.status_code == 303 and made.headers["location"] == "/console/admin/knowledge/en/delivery"
    twice = browser.post("/console/admin/knowledge", data=article)
    assert twice.status_code == 409 and "already exists" in error_beside_form(twice.text)
    french = browser.post("/console/admin/knowledge", data={**article, "language": "fr", "title": "Livraison",
                                                           "body": "Offerte dès 49 €.", "questions": "frais de livraison"})  # fmt: skip
    assert french.status_code == 303
    listing = browser.get("/console/admin/knowledge").text
    assert "Delivery" in listing and "Livraison" in listing
    only_french = browser.get("/console/admin/knowledge?language=fr").text
    assert "Livraison" in only_french and ">Delivery<" not in only_french

    edited = browser.post(
        "/console/admin/knowledge/en/delivery", data={**article, "body": "Free from 39 EUR."}
    )
    assert edited.status_code == 303
    help_articles = api.client.get("/v1/help/articles", params={"language": "en"}).json()["data"]
    assert [(a["slug"], a["body"], a["questions"]) for a in help_articles] == [
        ("delivery", "Free from 39 EUR.", ["how much is delivery", "when will my parcel arrive"])
    ]
    assert browser.post("/console/admin/knowledge/en/returns", data=article).status_code == 404
    assert count(api, KnowledgeArticle) == 2

    deleted = browser.post("/console/admin/knowledge/en/delivery/delete", data={"csrf_token": csrf})
    assert (
        deleted.status_code == 303
        and "Article Delivery deleted." in browser.get("/console/admin/knowledge").text
    )
    assert browser.get("/console/admin/knowledge/en/delivery").status_code == 404
    assert [a["slug"] for a in api.client.get("/v1/help/articles").json()["data"]] == [
        "delivery"
    ]  # the French one


def test_the_admin_area_speaks_french(api: Api) -> None:
    api.app.state.sign_in_throttle = SignInThrottle()
    browser, csrf = signed_in(api, "admin", locale="fr")
    index = browser.get("/console/admin").text
    assert '<html lang="fr">' in index and "Sources et jetons d\u2019API" in index
    assert "1 utilisateur actif" in index
    blank = browser.post(
        "/console/admin/teams", data={"csrf_token": csrf, "name": "", "assignment": "least_busy"}
    )
    assert blank.status_code == 400 and "Nouvelle équipe" in blank.text
    last = browser.get("/console/admin/channels").text
    assert "Non configuré" in last and "<summary>Afficher" not in last  # no secret is set: nothing to show
    with api.db.read() as session:
        me = session.scalar(select(User.id))
    demoted = browser.post(
        f"/console/admin/users/{me}/role", data={"csrf_token": csrf, "role": "agent", "location_id": ""}
    )
    assert demoted.status_code == 409 and "dernier administrateur" in error_beside_form(demoted.text)
    browser.close()


def test_the_password_field_is_never_echoed(api: Api, admin: tuple[httpx.Client, str]) -> None:
    browser, csrf = admin
    answer = browser.post(
        "/console/admin/users",
        data={"csrf_token": csrf, "name": "X", "email": "x@example.org", "role": "marketer", "locale": "en",
              "location_id": "", "password": "the-secret-" + PASSWORD[:3] + "x" * 300},
    )  # fmt: skip
    assert answer.status_code == 400 and "the-secret-" not in answer.text
    assert csrf_of(answer.text) == csrf
