"""Signing in to the console in a real browser: the right password opens the console, a wrong one does
not, a role only opens what it may, signing out ends the session on the server too."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    Console,
    assert_accessible,
    docs_screenshot,
    set_viewport,
    sign_in,
)

SESSION_COOKIE = "parcours_session"


def session_cookies(page: Page) -> list[dict[str, object]]:
    return [dict(c) for c in page.context.cookies() if c["name"] == SESSION_COOKIE]


def test_admin_signs_in_and_sees_their_name(page: Page, console: Console) -> None:
    email, password = console.user("admin", name="Ada Lovelace")

    page.goto(console.path("/console/login"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert_accessible(page)
    docs_screenshot(page, "sign-in")

    sign_in(page, console, email, password)

    expect(page).to_have_url(console.path("/console/"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Ada Lovelace")
    expect(page.get_by_role("banner")).to_contain_text("Ada Lovelace")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    assert session_cookies(page), "no session cookie after signing in"
    assert_accessible(page)
    docs_screenshot(page, "home")
    page.goto(console.path("/console/preferences"))
    assert_accessible(page)
    docs_screenshot(page, "preferences")


def test_wrong_password_stays_on_the_sign_in_page(page: Page, console: Console) -> None:
    email, _ = console.user("agent")

    sign_in(page, console, email, "not the right password")

    expect(page).to_have_url(re.compile(r"/console/login(\?.*)?$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("Wrong e-mail or password")
    expect(page.get_by_label("Email", exact=True)).to_have_value(email)
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    assert session_cookies(page) == []
    assert_accessible(page)

    # No session: the console still sends this browser to the sign-in page.
    page.goto(console.path("/console/"))
    expect(page).to_have_url(re.compile(r"/console/login\?next=/console/$"))


def test_a_store_associate_is_refused_the_admin_pages(page: Page, console: Console) -> None:
    email, password = console.user("store_associate", name="Sasha Martin")
    sign_in(page, console, email, password)
    expect(page).to_have_url(console.path("/console/"))

    response = page.goto(console.path("/console/admin"))

    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    expect(page.get_by_role("banner")).to_contain_text("Sasha Martin")  # still signed in, just not allowed
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    assert_accessible(page)


def test_sign_out_ends_the_session(page: Page, console: Console) -> None:
    email, password = console.user("agent")
    sign_in(page, console, email, password)
    expect(page).to_have_url(console.path("/console/"))
    [cookie] = session_cookies(page)

    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()

    expect(page).to_have_url(re.compile(r"/console/login(\?.*)?$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(console.path("/console/"))
    expect(page).to_have_url(re.compile(r"/console/login\?next=/console/$"))

    # The server ended it too: the old cookie put back opens nothing.
    page.context.add_cookies([cookie])  # type: ignore[list-item]
    page.goto(console.path("/console/"))
    expect(page).to_have_url(re.compile(r"/console/login\?next=/console/$"))


def test_sign_in_returns_to_the_page_asked_for(page: Page, console: Console) -> None:
    email, password = console.user("supervisor")

    page.goto(console.path("/console/preferences"))
    expect(page).to_have_url(re.compile(r"/console/login\?next=/console/preferences$"))
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in", exact=True).click()

    expect(page).to_have_url(console.path("/console/preferences"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Preferences")


def test_the_sign_in_page_fits_a_tablet(tablet_page: Page, console: Console) -> None:
    for viewport in ("tablet_landscape", "tablet_portrait"):
        set_viewport(tablet_page, viewport)
        tablet_page.goto(console.path("/console/login"))
        expect(tablet_page.get_by_role("button", name="Sign in")).to_be_in_viewport()
        overflow = tablet_page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{viewport}: the sign-in page scrolls sideways by {overflow}px"
        assert_accessible(tablet_page)
