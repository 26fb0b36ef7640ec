"""The console's sign-in, sessions, CSRF and roles, over HTTP on a live server (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from parcours.auth import users
from parcours.cli import app as cli
from parcours.console import messages
from parcours.console.i18n import translator
from parcours.console.web import SignInThrottle, safe_next
from parcours.db.types import utcnow
from parcours.errors import Conflict, InvalidInput, TooManyRequests
from parcours.models import Agent, ConsoleSession, User
from tests.conftest import Api
from tests.console_helpers import PASSWORD, add_store, add_user, csrf_of, sign_in


@pytest.fixture
def browser(api: Api) -> httpx.Client:
    """A cookie-keeping client that does not follow redirects (to see them)."""
    api.app.state.sign_in_throttle = SignInThrottle()
    return httpx.Client(base_url=api.url, timeout=30, follow_redirects=False)


def test_sign_in_shows_the_users_areas_and_sign_out_ends_the_session(api: Api, browser: httpx.Client) -> None:
    email = add_user(api, "agent")
    root = browser.get("/")  # the server's bare address opens the console
    assert root.status_code == 303 and root.headers["location"] == "/console/"
    first = browser.get("/console/preferences")
    assert (
        first.status_code == 303 and first.headers["location"] == "/console/login?next=/console/preferences"
    )
    answer = sign_in(browser, email, next_path="/console/preferences")
    assert answer.status_code == 303 and answer.headers["location"] == "/console/preferences"
    cookie = answer.headers["set-cookie"]
    assert (
        "parcours_session=" in cookie
        and "HttpOnly" in cookie
        and "SameSite=lax" in cookie.replace("Lax", "lax")
    )
    home = browser.get("/console/")
    assert home.status_code == 200
    assert "Welcome, Agent" in home.text and 'href="/console/inbox"' in home.text
    assert 'href="/console/admin"' not in home.text and 'href="/console/store"' not in home.text
    assert "script-src 'self'" in home.headers["content-security-policy"]
    out = browser.post("/console/logout", data={"csrf_token": csrf_of(home.text)})
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    assert browser.get("/console/").status_code == 303
    with api.db.read() as session:
        assert session.scalar(select(ConsoleSession.id)) is None


def test_wrong_password_unknown_email_and_throttle(api: Api, browser: httpx.Client) -> None:
    email = add_user(api, "admin")
    wrong = sign_in(browser, email, "not the password")
    assert wrong.status_code == 401 and "Wrong e-mail or password." in wrong.text
    unknown = sign_in(browser, "nobody@example.org")
    assert unknown.status_code == 401 and "Wrong e-mail or password." in unknown.text
    assert "parcours_session" not in browser.cookies
    for _ in range(4):
        sign_in(browser, email, "still not it")
    blocked = sign_in(browser, email)  # even the right password waits after 5 failures
    assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.text


def test_a_form_without_the_sessions_csrf_token_or_from_another_site_is_refused(
    api: Api, browser: httpx.Client
) -> None:
    email = add_user(api, "agent")
    sign_in(browser, email)
    home = browser.get("/console/")
    assert browser.post("/console/preferences/language", data={"locale": "fr"}).status_code == 403
    forged = browser.post("/console/preferences/language", data={"locale": "fr", "csrf_token": "x" * 43})
    assert forged.status_code == 403 and "reload the page" in forged.text
    other_site = browser.post(
        "/console/preferences/language",
        data={"locale": "fr", "csrf_token": csrf_of(home.text)},
        headers={"Origin": "https://evil.example"},
    )
    assert other_site.status_code == 403
    login_without_cookie = httpx.post(
        f"{api.url}/console/login", data={"email": email, "password": PASSWORD, "login_csrf": "guess"}
    )
    assert login_without_cookie.status_code == 400 and "expired" in login_without_cookie.text
    with api.db.read() as session:
        assert session.scalar(select(User.locale)) == "en"


def test_each_role_opens_only_its_areas(api: Api) -> None:
    store = add_store(api)
    expectations = {
        "agent": {"/console/admin": 403},
        "store_associate": {"/console/admin": 403},
        "marketer": {"/console/admin": 403},
        "admin": {"/console/admin": 200},
    }
    for role, pages in expectations.items():
        client = httpx.Client(base_url=api.url, timeout=30, follow_redirects=False)
        add_user(api, role, location_id=store if role == "store_associate" else None)
        sign_in(client, f"{role}@example.org")
        for path, status in pages.items():
            answer = client.get(path)
            assert answer.status_code == status, (role, path)
            if status == 403:
                assert "Not allowed" in answer.text and "does not allow this" in answer.text
        client.close()


def test_language_preference_translates_the_console(api: Api, browser: httpx.Client) -> None:
    email = add_user(api, "agent")
    sign_in(browser, email)
    home = browser.get("/console/")
    browser.post("/console/preferences/language", data={"locale": "fr", "csrf_token": csrf_of(home.text)})
    french = browser.get("/console/")
    assert (
        '<html lang="fr">' in french.text
        and "Bienvenue, Agent" in french.text
        and "Se déconnecter" in french.text
    )
    refused = browser.get("/console/admin")
    assert refused.status_code == 403 and "Accès refusé" in refused.text
    bad = browser.post(
        "/console/preferences/language", data={"locale": "de", "csrf_token": csrf_of(french.text)}
    )
    assert bad.status_code == 400 and "locale: must be one of en, fr" in bad.text


def test_password_change_ends_every_session(api: Api, browser: httpx.Client) -> None:
    email = add_user(api, "supervisor")
    other_device = httpx.Client(base_url=api.url, timeout=30, follow_redirects=False)
    sign_in(other_device, email)
    sign_in(browser, email)
    csrf = csrf_of(browser.get("/console/preferences").text)
    mismatch = browser.post(
        "/console/preferences/password",
        data={
            "csrf_token": csrf,
            "current_password": PASSWORD,
            "new_password": "a new long secret",
            "confirm_password": "other",
        },
    )
    assert mismatch.status_code == 400
    wrong = browser.post(
        "/console/preferences/password",
        data={
            "csrf_token": csrf,
            "current_password": "nope nope nope",
            "new_password": "a new long secret",
            "confirm_password": "a new long secret",
        },
    )
    assert wrong.status_code == 403
    done = browser.post(
        "/console/preferences/password",
        data={
            "csrf_token": csrf,
            "current_password": PASSWORD,
            "new_password": "a new long secret",
            "confirm_password": "a new long secret",
        },
    )
    assert done.status_code == 303
    assert other_device.get("/console/").status_code == 303  # signed out there too
    assert sign_in(browser, email).status_code == 401
    assert sign_in(browser, email, "a new long secret").status_code == 303
    other_device.close()


def test_expired_and_disabled_sessions_end(api: Api, browser: httpx.Client) -> None:
    email = add_user(api, "admin")
    add_user(api, "agent")
    sign_in(browser, email)
    assert browser.get("/console/").status_code == 200
    with api.db.write() as session:
        session.execute(update(ConsoleSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert browser.get("/console/").status_code == 303
    sign_in(browser, "agent@example.org")
    with api.db.write() as session:
        agent_id = session.scalar(select(User.id).where(User.email == "agent@example.org"))
        assert agent_id
        users.update_user(session, agent_id, disabled=True)
    assert browser.get("/console/").status_code == 303
    assert sign_in(browser, "agent@example.org").status_code == 401


def test_user_rules(db: object, api: Api) -> None:
    with api.db.write() as session:
        admin = users.create_user(session, "Root@Example.org ", PASSWORD, name="  Root  User ", role="admin")
        assert admin.email == "root@example.org" and admin.name == "Root User" and admin.agent_id
        assert session.get(Agent, admin.agent_id).role == "admin"  # type: ignore[union-attr]
        with pytest.raises(Conflict):
            users.create_user(session, "root@example.org", PASSWORD, name="Again", role="agent")
        with pytest.raises(Conflict, match="last admin"):
            users.update_user(session, admin.id, role="agent")
        with pytest.raises(Conflict, match="last admin"):
            users.update_user(session, admin.id, disabled=True)
        marketer = users.create_user(session, "m@example.org", PASSWORD, name="M", role="marketer")
        assert marketer.agent_id is None
        stored = session.get(User, admin.id)
        assert (
            stored is not None
            and stored.password_hash.startswith("$argon2id$")
            and PASSWORD not in stored.password_hash
        )
    for bad, match in [
        ({"email": "not-an-email"}, "email"),
        ({"password": "short"}, "at least 10"),
        ({"role": "root"}, "role: must be one of"),
        ({"locale": "de"}, "locale"),
        ({"role": "store_associate"}, "store associate works in a store"),
        ({"role": "store_associate", "location_id": "nowhere"}, "no store"),
        ({"name": " "}, "name"),
    ]:
        values = {"email": "x@example.org", "password": PASSWORD, "name": "X", "role": "agent", **bad}
        with api.db.write() as session, pytest.raises(InvalidInput, match=match):
            users.create_user(session, values.pop("email"), values.pop("password"), **values)


def test_a_user_answers_as_their_own_inbox_agent(api: Api) -> None:
    from parcours.inbox.agents import create_agent

    with api.db.write() as session:
        mine, _ = create_agent(session, "Sonia Martin", email="sonia@example.org")
        blank, _ = create_agent(session, "Léo Petit")
        sonia = users.create_user(
            session, "Sonia@example.org", PASSWORD, name="Sonia Martin", role="supervisor"
        )
        leo = users.create_user(session, "leo@example.org", PASSWORD, name="Léo Petit", role="agent")
        # Another person with the same name gets an agent of their own.
        namesake = users.create_user(
            session, "sonia.m@example.org", PASSWORD, name="Sonia Martin", role="agent"
        )
        assert sonia.agent_id == mine.id and leo.agent_id == blank.id
        assert namesake.agent_id not in (None, mine.id)
        agent = session.get(Agent, namesake.agent_id)
        assert agent is not None and agent.name == "Sonia Martin (sonia.m@example.org)"
        assert session.get(Agent, mine.id).role == "supervisor"  # type: ignore[union-attr]


def test_safe_next_and_throttle_unit() -> None:
    assert safe_next("https://evil.example/console") == "/console/"
    assert safe_next("//evil.example/console") == "/console/"
    assert safe_next("/v1/profiles") == "/console/"
    assert safe_next("/console/inbox?view=mine") == "/console/inbox?view=mine"
    throttle = SignInThrottle(limit=2, window=60, client_limit=3)
    throttle.failed("a@example.org", "1.2.3.4")
    throttle.check("a@example.org", "1.2.3.4")
    throttle.failed("A@example.org", "5.6.7.8")
    with pytest.raises(TooManyRequests):
        throttle.check("a@example.org", "9.9.9.9")
    throttle.succeeded("a@example.org")
    throttle.check("a@example.org", "9.9.9.9")
    throttle.failed("b@example.org", "1.2.3.4")
    throttle.failed("c@example.org", "1.2.3.4")
    with pytest.raises(TooManyRequests):  # the third failure from one address, whatever the e-mail
        throttle.check("d@example.org", "1.2.3.4")


def test_user_cli(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARCOURS_DATABASE_URL", api.db.url)
    from parcours.config import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    try:
        added = runner.invoke(
            cli, ["user", "add", "cli@example.org", "--name", "Cli User", "--role", "supervisor", "--locale", "fr"],
            input="a long password\na long password\n",
        )  # fmt: skip
        assert added.exit_code == 0, added.output
        short = runner.invoke(
            cli, ["user", "add", "b@example.org", "--name", "B", "--role", "agent"], input="short\nshort\n"
        )
        assert short.exit_code == 2 and "at least 10 characters" in short.output
        listed = runner.invoke(cli, ["user", "list"])
        assert "cli@example.org\tCli User\tsupervisor\tfr\tactive" in listed.output
        assert runner.invoke(cli, ["user", "disable", "cli@example.org"]).exit_code == 0
        assert "disabled" in runner.invoke(cli, ["user", "list"]).output
        assert runner.invoke(cli, ["user", "disable", "nobody@example.org"]).exit_code == 2
    finally:
        get_settings.cache_clear()


def test_every_console_string_has_a_french_translation() -> None:
    gaps = messages.missing()
    assert not gaps, "\n".join(f"{area}.po: {text}" for area, found in gaps.items() for text in found)
    clashes = messages.conflicts()
    assert not clashes, f"strings translated differently in two catalogues: {clashes}"


def test_plurals_follow_each_languages_rule() -> None:
    english, french = translator("en", "Europe/Paris"), translator("fr", "Europe/Paris")
    assert english.ngettext("{count} order", "{count} orders", 0) == "0 orders"
    assert english.ngettext("{count} order", "{count} orders", 1) == "1 order"
    assert english.ngettext("{count} order", "{count} orders", 12345) == "12,345 orders"
    # French says "0 ..." in the singular; the numbers use French grouping.
    assert french.ngettext("Welcome, {name}", "{count} unused", 0, name="Léa") == "Bienvenue, Léa"
    assert french.number(12345) == "12\u202f345"
    assert french.money("1234.5", "EUR") == "1\u202f234,50\xa0€"
    assert english.money("1234.5", "EUR") == "€1,234.50"
