"""Browser fixtures for the console: Debian's chromium driven by Playwright (sync API), a live server on the
test's database, console users, sign-in, axe-core accessibility checks, screenshots.

Rules: the browser is /usr/bin/chromium (installed by scripts/test.sh, never downloaded by Playwright);
pages are only ever loaded from 127.0.0.1; with CI=true the browser tests must run, elsewhere they skip
with a reason when chromium is missing. Every page a test opens is screenshotted into
test-artifacts/screenshots/ when the test fails; a request to any other host than 127.0.0.1 is blocked
and fails the test.

Tests import the helpers from here::

    from tests.browser.conftest import Console, assert_accessible, docs_screenshot, sign_in
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Route,
    sync_playwright,
)

from parcours.config import Settings
from parcours.db.engine import Database
from tests.conftest import IN_CI, Api, LiveServer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
FAILURE_SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"

DESKTOP = {"width": 1280, "height": 800}
VIEWPORTS = {
    "desktop": DESKTOP,
    "tablet_landscape": {"width": 1024, "height": 768},
    "tablet_portrait": {"width": 768, "height": 1024},
}
ROLES = ("agent", "supervisor", "store_associate", "marketer", "admin")
DEFAULT_PASSWORD = "correct horse battery"
_DEFAULT_NAMES = {
    "agent": "Alice Agent",
    "supervisor": "Sam Supervisor",
    "store_associate": "Sasha Store",
    "marketer": "Morgan Marketer",
    "admin": "Ada Admin",
}
TIMEOUT_MS = 10_000  # a console page that takes longer than this is a failure, not a wait


# --- failure reports on the test item (the standard pattern) -------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    return any(
        getattr(getattr(request.node, f"rep_{when}", None), "failed", False) for when in ("setup", "call")
    )


# --- the browser -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, one for the whole run."""
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does it)"
        if IN_CI:
            pytest.fail(f"CI=true requires the browser tests: {reason}")
        pytest.skip(reason)
    playwright: Playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except Exception:
        playwright.stop()
        raise
    try:
        yield chromium
    finally:
        chromium.close()
        playwright.stop()


# --- the console on the test's database ------------------------------------------------------------------


@dataclass
class Console:
    """The live server pointed at this test's database, and a way to make console users in it."""

    url: str
    db: Database
    settings: Settings
    api: Api
    _made: dict[str, int] = field(default_factory=dict, repr=False)

    def user(
        self,
        role: str,
        *,
        email: str | None = None,
        password: str = DEFAULT_PASSWORD,
        name: str | None = None,
        locale: str = "en",
        location_code: str | None = None,
    ) -> tuple[str, str]:
        """Create a console user; returns (email, password). Defaults: a name per role ("Ada Admin", then
        "Ada Admin 2", …: each user answers as an inbox agent of their own name), an e-mail from the role.
        ``location_code`` is the id of the user's store (made if missing, see ``store``); a store
        associate without one works in the store "store-test"."""
        from parcours.auth.users import create_user  # the console's module; imported when first needed

        assert role in ROLES, f"unknown role {role!r}; one of {ROLES}"
        number = self._made[role] = self._made.get(role, 0) + 1
        email = email or f"{role.replace('_', '-')}-{number}@example.com"
        if name is None:
            name = _DEFAULT_NAMES[role] + ("" if number == 1 else f" {number}")
        if location_code is None and role == "store_associate":
            location_code = "store-test"
        location_id = self.store(location_code) if location_code is not None else None
        with self.db.write() as session:
            create_user(
                session, email, password, name=name, role=role, locale=locale, location_id=location_id
            )
        return email, password

    def store(self, code: str = "store-test", *, name: str | None = None) -> str:
        """The store of this id, made (in Paris, open for click & collect and returns) if missing."""
        from parcours.commerce.stock import add_location
        from parcours.models import Location

        with self.db.write() as session:
            if session.get(Location, code) is None:
                add_location(
                    session,
                    kind="store",
                    name=name or f"Store {code}",
                    street="1 rue de Rivoli",
                    postal_code="75001",
                    city="Paris",
                    latitude=48.8606,
                    longitude=2.3376,
                    opening_hours="Mo-Sa 10:00-19:00",
                    services=["click_collect", "returns"],
                    location_id=code,
                )
        return code

    def path(self, path: str) -> str:
        """The absolute URL of a path on the console's server (``console.path("/console/admin")``)."""
        return self.url + path


@pytest.fixture
def console(api: Api, live_server: LiveServer, db: Database, settings: Settings) -> Console:
    """The live server (the same app state as the ``api`` fixture: this test's database and settings),
    with a fresh sign-in throttle (every test signs in from 127.0.0.1, and the throttle counts failures
    per address in the server's memory)."""
    from parcours.console.web import SignInThrottle

    live_server.app.state.sign_in_throttle = SignInThrottle()
    return Console(url=live_server.url, db=db, settings=settings, api=api)


# --- pages -----------------------------------------------------------------------------------------------


def _screenshot_name(node_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-\[\]]+", "_", node_name)


@pytest.fixture
def new_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Callable[..., Page]]:
    """A factory of pages, each in a fresh browser context (its own cookies): ``new_page()`` or
    ``new_page("tablet_portrait")``, e.g. one page per user in a test with two people. Each page is
    screenshotted into test-artifacts/screenshots/ if the test fails."""
    contexts: list[tuple[BrowserContext, Page]] = []
    errors: list[str] = []
    outside: list[str] = []

    def only_loopback(route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname != "127.0.0.1":
            outside.append(route.request.url)
            route.abort("blockedbyclient")
        else:
            route.continue_()

    def note_console(page: Page, message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"{page.url}: {message.text}")

    def make(viewport: str = "desktop", **context_options: Any) -> Page:
        context = browser.new_context(viewport=VIEWPORTS[viewport], **context_options)  # type: ignore[arg-type]
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        context.route("**/*", only_loopback)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
        page.on("console", lambda message: note_console(page, message))  # CSP refusals, failed loads
        contexts.append((context, page))
        return page

    yield make
    failed = _failed(request)
    for index, (context, page) in enumerate(contexts):
        if failed and not page.is_closed():
            FAILURE_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            suffix = "" if index == 0 else f"-{index + 1}"
            path = FAILURE_SCREENSHOTS / f"{_screenshot_name(request.node.name)}{suffix}.png"
            try:
                page.screenshot(path=str(path), full_page=True)
                print(f"screenshot of the failed test: {path} ({page.url})")
            except Exception as error:  # a crashed page must not hide the test's own failure
                print(f"no screenshot for {request.node.name}: {error}")
        context.close()
    if failed and errors:
        print("errors in the pages' consoles:\n" + "\n".join(errors))
    if outside:
        pytest.fail("the pages asked for resources outside 127.0.0.1 (blocked):\n" + "\n".join(outside))


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    """A page at 1280x800 in a fresh browser context."""
    return new_page()


@pytest.fixture
def tablet_page(new_page: Callable[..., Page]) -> Page:
    """A page at 1024x768 (a tablet held in landscape); ``set_viewport(page, "tablet_portrait")`` turns it."""
    return new_page("tablet_landscape")


def set_viewport(page: Page, viewport: str) -> None:
    """Resize a page: "desktop" (1280x800), "tablet_landscape" (1024x768), "tablet_portrait" (768x1024)."""
    page.set_viewport_size(VIEWPORTS[viewport])  # type: ignore[arg-type]


# --- helpers ---------------------------------------------------------------------------------------------


def sign_in(page: Page, console: Console, email: str, password: str) -> None:
    """Open the sign-in page, fill it in as a person would, press "Sign in" and wait for the next page
    (the console on success, the sign-in page again with an error otherwise)."""
    page.goto(console.path("/console/login"))
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_load_state()


_axe = Axe()


def assert_accessible(page: Page, context: str | None = None) -> None:
    """Run axe-core on the page as it is now (or on the ``context`` selector) and fail on any violation of
    impact "serious" or "critical", listing each with its rule, help and the elements' selectors."""
    results = _axe.run(page, context=context).response
    blocking = [v for v in results["violations"] if v.get("impact") in ("serious", "critical")]
    if not blocking:
        return
    lines = [f"{len(blocking)} serious/critical accessibility violation(s) on {page.url}:"]
    for violation in blocking:
        lines.append(
            f"- {violation['id']} ({violation['impact']}): {violation['help']} [{violation['helpUrl']}]"
        )
        for node in violation["nodes"]:
            target = " ".join(str(part) for part in node["target"])
            lines.append(f"    {target}: {node.get('failureSummary', '').replace(chr(10), ' ')}")
    pytest.fail("\n".join(lines), pytrace=False)


def docs_screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG of the page to docs/screenshots/<name>.png (the documentation's pictures are
    always those of the current console)."""
    assert re.fullmatch(r"[a-z0-9][a-z0-9\-]*", name), f"screenshot names are kebab-case: {name!r}"
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = DOCS_SCREENSHOTS / f"{name}.png"
    png = page.screenshot(full_page=True, animations="disabled", caret="hide")
    partial = path.with_name(f".{name}.{os.getpid()}.png")  # parallel runs (xdist) never see half a file
    partial.write_bytes(png)
    partial.replace(path)
    return path
