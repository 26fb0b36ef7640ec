"""HTTP helpers for console tests: users of each role, signing in with a cookie-keeping client, the CSRF
token of a page (for posting its forms)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from parcours.auth import users
from parcours.commerce import stock
from parcours.models import Location
from tests.conftest import Api

PASSWORD = "correct horse battery"


def add_user(api: Api, role: str, email: str | None = None, **extra: Any) -> str:
    """A console user of ``role`` (e-mail ROLE@example.org unless given); returns the e-mail."""
    email = email or f"{role}@example.org"
    with api.db.write() as session:
        users.create_user(session, email, PASSWORD, name=role.replace("_", " ").title(), role=role, **extra)
    return email


def add_store(api: Api, location_id: str = "store-lyon", **fields: object) -> str:
    values: dict[str, object] = {
        "kind": "store", "name": "Lyon Part-Dieu", "street": "17 rue du Docteur Bouchut", "postal_code": "69003",
        "city": "Lyon", "latitude": 45.76, "longitude": 4.86, "opening_hours": "Mo-Sa 10:00-20:00",
        "services": ["click_collect"], "active": True, **fields,
    }  # fmt: skip
    with api.db.write() as session:
        session.add(Location(id=location_id, **values))
    stock.forget_places()  # availability keeps locations for a few seconds
    return location_id


def client(api: Api) -> httpx.Client:
    """A cookie-keeping client on the live server that does not follow redirects (to see them)."""
    return httpx.Client(base_url=api.url, timeout=30, follow_redirects=False)


def login_form(browser: httpx.Client) -> str:
    page = browser.get("/console/login")
    assert page.status_code == 200
    match = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def sign_in(
    browser: httpx.Client, email: str, password: str = PASSWORD, next_path: str = "/console/"
) -> httpx.Response:
    token = login_form(browser)
    return browser.post(
        "/console/login", data={"email": email, "password": password, "login_csrf": token, "next": next_path}
    )


def csrf_of(html: str) -> str:
    """The session's CSRF token, as the page's forms carry it."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def signed_in(api: Api, role: str, **extra: Any) -> tuple[httpx.Client, str]:
    """A client signed in as a new user of ``role``, and that page's CSRF token."""
    browser = client(api)
    email = add_user(api, role, **extra)
    answer = sign_in(browser, email)
    assert answer.status_code == 303, answer.text
    return browser, csrf_of(browser.get("/console/preferences").text)
