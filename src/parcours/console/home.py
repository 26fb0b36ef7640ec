"""Signing in and out, the home page (what the user's role may open) and the user's own preferences
(language, password)."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from parcours.auth import users
from parcours.console.i18n import N_
from parcours.console.web import (
    LOGIN_CSRF_COOKIE,
    NAVIGATION,
    SESSION_COOKIE,
    Page,
    SignInThrottle,
    anonymous_page,
    check_same_origin,
    form_for,
    page_for,
    read_form,
    safe_next,
    secure_cookies,
)
from parcours.errors import Forbidden, InvalidInput, NotAuthenticated, TooManyRequests

router = APIRouter(include_in_schema=False)

# What each area of the console is for, on the home page (English source strings).
AREA_DESCRIPTIONS = {
    "inbox": N_("Every conversation on every channel, with the customer beside it."),
    "customers": N_("Find a customer: profile, identifiers, timeline on every channel, orders, loyalty."),
    "identity": N_("Possible duplicates and identity conflicts waiting for a decision, with the evidence."),
    "store": N_("Find a customer, check stock in every store, reserve, order, hand over pickups, returns."),
    "admin": N_("Sources, channels, teams, users, merge rules and the knowledge base."),
}


def _login_form(
    page: Page, *, next_path: str, email: str = "", error: str | None = None, status: int = 200
) -> Response:
    token = page.request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = page.render(
        "login.html",
        status=status,
        next_path=safe_next(next_path),
        email=email,
        error=error,
        login_csrf=token,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, max_age=3600, path="/console", httponly=True, samesite="strict",
        secure=secure_cookies(page.request, page.settings),
    )  # fmt: skip
    return response


@router.get("/console/login")
def login_page(request: Request, next: str = "/console/") -> Response:
    return _login_form(anonymous_page(request), next_path=next)


@router.post("/console/login")
async def login(request: Request) -> Response:
    check_same_origin(request)
    page = anonymous_page(request)
    page.form = await read_form(request)
    email = page.field("email", "", max_chars=320)
    password = page.field("password", "", max_chars=users.MAX_PASSWORD_CHARS)
    next_path = page.field("next", "/console/", max_chars=2000)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    given = page.field("login_csrf", "", max_chars=200)
    if not expected or not users.csrf_matches(expected, given):
        # No cookie: cookies are off, or the form is older than an hour.
        error = page.t.gettext("The sign-in form expired. Please try again.")
        return _login_form(page, next_path=next_path, email=email, error=error, status=400)
    client = request.client.host if request.client else "-"
    throttle: SignInThrottle = request.app.state.sign_in_throttle
    try:
        throttle.check(email, client)
        if not email or not password:
            raise NotAuthenticated("wrong e-mail or password")
        token, _signed = await run_in_threadpool(_sign_in, page, email, password)
    except NotAuthenticated:
        throttle.failed(email, client)
        error = page.t.gettext("Wrong e-mail or password.")
        return _login_form(page, next_path=next_path, email=email, error=error, status=401)
    except TooManyRequests:
        message = page.t.gettext("Too many failed sign-ins. Try again in a few minutes.")
        return _login_form(page, next_path=next_path, email=email, error=message, status=429)
    throttle.succeeded(email)
    response = page.redirect(next_path)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=page.settings.console_session_hours * 3600, path="/", httponly=True,
        samesite="lax", secure=secure_cookies(request, page.settings),
    )  # fmt: skip
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return response


def _sign_in(page: Page, email: str, password: str) -> tuple[str, users.SignedIn]:
    with page.db.write() as session:
        return users.sign_in(session, email, password, hours=page.settings.console_session_hours)


@router.post("/console/logout")
async def logout(page: Page = Depends(form_for(None))) -> Response:
    token = page.request.cookies.get(SESSION_COOKIE, "")

    def end() -> None:
        with page.db.write() as session:
            users.sign_out(session, token)

    await run_in_threadpool(end)
    response = page.redirect("/console/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/console/")
def home(page: Page = Depends(page_for(None))) -> Response:
    areas = [item for item in NAVIGATION if page.user.can(item.permission)]
    return page.render("home.html", areas=areas, descriptions=AREA_DESCRIPTIONS)


@router.get("/")
def site_root() -> Response:
    """The server's address opens the console (its sign-in page until someone is signed in)."""
    return RedirectResponse("/console/", status_code=303)


@router.get("/console")
def home_without_slash(page: Page = Depends(page_for(None))) -> Response:
    return page.redirect("/console/")


@router.get("/console/preferences")
def preferences(page: Page = Depends(page_for(None))) -> Response:
    return page.render("preferences.html", locales=users.LOCALES)


@router.post("/console/preferences/language")
def set_language(page: Page = Depends(form_for(None))) -> Response:
    locale = page.field("locale")
    with page.db.write() as session:
        updated = users.update_user(session, page.user.id, locale=locale)
    t = page.t.__class__(updated.locale, page.t.timezone)
    return page.redirect("/console/preferences", flash=t.gettext("Language saved."))


@router.post("/console/preferences/password")
def change_password(page: Page = Depends(form_for(None))) -> Response:
    current = page.field("current_password", max_chars=users.MAX_PASSWORD_CHARS)
    new = page.field("new_password", max_chars=users.MAX_PASSWORD_CHARS)
    if new != page.field("confirm_password", max_chars=users.MAX_PASSWORD_CHARS):
        raise InvalidInput(page.t.gettext("The two new passwords differ."))
    with page.db.write() as session:
        if not users.password_matches(session, page.user.id, current):
            raise Forbidden(page.t.gettext("The current password is wrong."))
        users.set_password(session, page.user.id, new)  # ends every session, this one too
    response = page.redirect(
        "/console/login", flash=page.t.gettext("Password changed. Sign in with the new one.")
    )
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
