"""What every console page shares: who is signed in (a session cookie), what their role lets them open,
CSRF-checked forms, the Jinja2 templates in the user's language, flash messages, error pages.

A page handler looks like::

    @router.get("/console/things")
    def things(page: Page = Depends(page_for("customers"))) -> Response:
        with page.db.read() as session:
            ...
        return page.render("area/things.html", things=...)

    @router.post("/console/things")
    async def add_thing(page: Page = Depends(form_for("customers"))) -> Response:
        name = page.field("name")           # the form, CSRF already checked
        ...
        return page.redirect("/console/things", flash=page.t.gettext("Thing added"))
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import jinja2
from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from parcours import __version__
from parcours.auth import users
from parcours.auth.users import SignedIn, UserInfo
from parcours.config import Settings
from parcours.console.i18n import N_, Translator, best_locale, translator
from parcours.db.engine import Database
from parcours.errors import Forbidden, InvalidInput, NotAuthenticated, ParcoursError, TooManyRequests
from parcours.inputs import NUL_MESSAGE

SESSION_COOKIE = "parcours_session"
LOGIN_CSRF_COOKIE = "parcours_login_csrf"
FLASH_COOKIE = "parcours_flash"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
MAX_FORM_BYTES = 1024 * 1024

# Content-Security-Policy of every console page: no inline script or style, nothing from elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class NavItem:
    permission: str
    path: str
    label: str  # English source string, translated when shown


# The console's areas, in the order the header shows them; each shown only to roles that may open it.
NAVIGATION = (
    NavItem("inbox", "/console/inbox", N_("Inbox")),
    NavItem("customers", "/console/customers", N_("Customers")),
    NavItem("identity", "/console/review", N_("Review queue")),
    NavItem("store", "/console/store", N_("Store")),
    NavItem("admin", "/console/admin", N_("Admin")),
)


ROLE_LABELS = {
    "agent": N_("Agent"),
    "supervisor": N_("Supervisor"),
    "store_associate": N_("Store associate"),
    "marketer": N_("Marketer"),
    "admin": N_("Administrator"),
}


def secure_cookies(request: Request, settings: Settings) -> bool:
    if settings.console_secure_cookies != "auto":
        return settings.console_secure_cookies == "always"
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


@dataclass
class Page:
    """One request to a console page: the signed-in user, the database, the form (for POSTs)."""

    request: Request
    db: Database
    settings: Settings
    signed: SignedIn | None
    t: Translator
    form: FormData | None = None
    _cookies: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def user(self) -> UserInfo:
        if self.signed is None:
            raise NotAuthenticated("not signed in")
        return self.signed.user

    @property
    def csrf_token(self) -> str:
        return self.signed.csrf_token if self.signed is not None else ""

    # ------------------------------------------------------------------ forms
    def field(
        self, name: str, default: str | None = None, *, required: bool = True, max_chars: int = 20_000
    ) -> str:
        """A text field of the submitted form, stripped. Missing or blank: ``default`` if given, else
        InvalidInput naming the field."""
        value = self.form.get(name) if self.form is not None else None
        text = value.strip() if isinstance(value, str) else ""
        if not text:
            if default is not None or not required:
                return default or ""
            raise InvalidInput(f"{name}: required")
        if len(text) > max_chars:
            raise InvalidInput(f"{name}: at most {max_chars} characters")
        return text

    def fields(self, name: str) -> list[str]:
        """Every value of a repeated field (checkboxes, multi-selects), stripped, blanks dropped."""
        if self.form is None:
            return []
        return [v.strip() for v in self.form.getlist(name) if isinstance(v, str) and v.strip()]

    # -------------------------------------------------------------- responses
    def context(self, **values: Any) -> dict[str, Any]:
        t = self.t
        user = self.signed.user if self.signed is not None else None
        flash = self.request.cookies.get(FLASH_COOKIE)
        if flash:
            self._cookies.append((FLASH_COOKIE, "", 0))
        return {
            "request": self.request,
            "path": self.request.url.path,
            "user": user,
            "csrf_token": self.csrf_token,
            "t": t,
            "_": t.gettext,
            "ngettext": t.ngettext,
            "navigation": [item for item in NAVIGATION if user is not None and user.can(item.permission)],
            "flash": unquote(flash)[:300] if flash else None,
            "version": __version__,
            "role_labels": ROLE_LABELS,
            "lang": t.locale,
            **values,
        }

    def render(self, template: str, *, status: int = 200, **values: Any) -> HTMLResponse:
        html = templates.get_template(template).render(self.context(**values))
        response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
        self._apply_cookies(response)
        return response

    def redirect(self, path: str, *, flash: str | None = None) -> RedirectResponse:
        """See-other to a console path (after a form), with a message shown once on the next page."""
        response = RedirectResponse(safe_next(path), status_code=303, headers={"Cache-Control": "no-store"})
        if flash:
            self._cookies.append((FLASH_COOKIE, quote(flash[:300]), 60))
        self._apply_cookies(response)
        return response

    def _apply_cookies(self, response: Response) -> None:
        secure = secure_cookies(self.request, self.settings)
        for name, value, max_age in self._cookies:
            if max_age:
                response.set_cookie(
                    name,
                    value,
                    max_age=max_age,
                    path="/console",
                    httponly=True,
                    samesite="lax",
                    secure=secure,
                )
            else:
                response.delete_cookie(name, path="/console")
        self._cookies.clear()


def safe_next(path: str | None) -> str:
    """Only a path inside the console: never an open redirect to another site."""
    if not path:
        return "/console/"
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not path.startswith("/console") or "\\" in path:
        return "/console/"
    return path


def _page_basics(request: Request) -> tuple[Database, Settings]:
    return request.app.state.database, request.app.state.settings


def _signed_in(request: Request, db: Database, settings: Settings) -> SignedIn:
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 200:
        raise NotAuthenticated("not signed in")
    with db.read() as session:
        signed, stale = users.session_user(session, token)
    if stale:
        with db.write() as session:
            users.touch_session(session, token, hours=settings.console_session_hours)
    return signed


def anonymous_page(request: Request) -> Page:
    db, settings = _page_basics(request)
    locale = best_locale(request.headers.get("accept-language"))
    return Page(request, db, settings, None, translator(locale, settings.console_timezone))


def page_for(permission: str | None) -> Callable[[Request], Awaitable[Page]]:
    """A dependency: the page of a signed-in user whose role has ``permission`` (None: any role).
    Not signed in: NotAuthenticated (the edge sends the browser to the sign-in page); not allowed:
    Forbidden (a 403 page)."""

    async def dependency(request: Request) -> Page:
        db, settings = _page_basics(request)
        signed = await run_in_threadpool(_signed_in, request, db, settings)
        if permission is not None:
            signed.user.require(permission)
        return Page(request, db, settings, signed, translator(signed.user.locale, settings.console_timezone))

    return dependency


async def read_form(request: Request) -> FormData:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise InvalidInput(f"form: larger than {MAX_FORM_BYTES // 1024} KB")
    form = await request.form(max_files=0, max_fields=1000, max_part_size=MAX_FORM_BYTES)
    for name, value in form.multi_items():
        if "\x00" in name or (isinstance(value, str) and "\x00" in value):
            raise InvalidInput(f"{name.replace(chr(0), '')}: {NUL_MESSAGE}")
    return form


def check_same_origin(request: Request) -> None:
    """A form posted from another site is refused even before the CSRF token is looked at."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = urlsplit(origin).netloc
        if host != request.headers.get("host", ""):
            raise Forbidden("this form was sent from another site")


def form_for(permission: str | None) -> Callable[[Request], Awaitable[Page]]:
    """A dependency for POSTs: the signed-in user's page as ``page_for``, with the form read and its CSRF
    token (field ``csrf_token`` or header ``X-CSRF-Token``) checked against the session's."""
    signed_page = page_for(permission)

    async def dependency(request: Request) -> Page:
        check_same_origin(request)
        page = await signed_page(request)
        page.form = await read_form(request)
        given = page.form.get("csrf_token")
        token = given if isinstance(given, str) else request.headers.get("x-csrf-token")
        assert page.signed is not None
        if not users.csrf_matches(page.signed.csrf_token, token):
            raise Forbidden(
                "this form has expired or did not come from the console; reload the page and try again"
            )
        return page

    return dependency


# ------------------------------------------------------------------------------------------- errors
# Fixed messages of domain errors that console pages show (translated in console.po).
DOMAIN_MESSAGES = (
    N_("Your role does not allow this."),
    N_("this form was sent from another site"),
    N_("this form has expired or did not come from the console; reload the page and try again"),
)

STATUS_TITLES = {
    400: N_("Something in the form is not right"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    409: N_("That cannot be done now"),
    413: N_("Too large"),
    429: N_("Too many attempts"),
}


async def error_page(request: Request, error: ParcoursError, status: int) -> Response:
    """A domain error on a console page, as a page in the user's language. Not signed in: to sign in."""
    if isinstance(error, NotAuthenticated):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = "/console/"
        return RedirectResponse("/console/login?next=" + quote(safe_next(target), safe="/"), status_code=303)
    page = anonymous_page(request)
    try:
        signed = await run_in_threadpool(_signed_in, request, page.db, page.settings)
        page = Page(
            request,
            page.db,
            page.settings,
            signed,
            translator(signed.user.locale, page.settings.console_timezone),
        )
    except ParcoursError:
        pass
    return page.render(
        "error.html",
        status=status,
        title=page.t.gettext(STATUS_TITLES.get(status, N_("Something went wrong"))),
        message=page.t.gettext(error.message),  # fixed domain messages have translations
        status_code=status,
    )


# -------------------------------------------------------------------------------- sign-in throttle
class SignInThrottle:
    """At most ``limit`` failed sign-ins per e-mail, and ``client_limit`` per client address (an office
    shares one), in ``window`` seconds. In this process's memory: a restart forgets."""

    def __init__(self, limit: int = 5, window: float = 900.0, client_limit: int = 50) -> None:
        self.limit = limit
        self.client_limit = client_limit
        self.window = window
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures[key]
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def check(self, email: str, client: str) -> None:
        now = time.monotonic()
        for key, limit in ((f"e:{email.strip().lower()}", self.limit), (f"c:{client}", self.client_limit)):
            failures = self._recent(key, now)
            if len(failures) >= limit:
                minutes = max(1, round((failures[0] + self.window - now) / 60))
                raise TooManyRequests(f"too many failed sign-ins; try again in {minutes} minutes")

    def failed(self, email: str, client: str) -> None:
        now = time.monotonic()
        for key in (f"e:{email.strip().lower()}", f"c:{client}"):
            self._recent(key, now).append(now)
        if len(self._failures) > 100_000:  # forget idle keys rather than grow without end
            for key in [k for k, v in self._failures.items() if not v]:
                del self._failures[key]

    def succeeded(self, email: str) -> None:
        self._failures.pop(f"e:{email.strip().lower()}", None)
