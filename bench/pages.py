"""Console page times on the demo database: every page of the console that a link leads to, requested
many times as the role that works on it; p50/p99 per page against the 200 ms target.

    .venv/bin/python bench/pages.py                       # SQLite, the demo's 3,000 customers (~1-2 min)
    .venv/bin/python bench/pages.py --backend postgresql
    .venv/bin/python bench/pages.py --customers 500 --requests 10   # a quick look

The database is fresh and migrated, then filled by the demo generator exactly as ``parcours demo`` fills
it (:func:`parcours.demo.generator.populate`: thousands of customers, tens of thousands of events,
conversations on every channel, orders, reservations, review items, console users). ``uvicorn`` (one
worker, the app's background worker running) serves it on a loopback port.

The bench signs in with each role's demo login (the sign-in form with its hidden ``login_csrf`` field
and cookie) and discovers the pages by crawling from ``/console/``: GET only, ``<a href>`` links to the
same origin under ``/console/``, never a POST form, never ``/console/logout``, never a static file; a
link answering with an event stream is noted and left. The GET forms (searches and filters, which change
nothing) are submitted too, three ways each: search boxes filled with what a user would type, taken from
the demo (a phone number as an associate types it, an e-mail, a name, a loyalty card; a product name or
SKU; an order number), each select set to another of its options (``--links-only``: links alone).
URLs are grouped into page patterns by the app's own route templates
(``/console/conversations/{conversation_id}``) and the names of their query parameters
(``/console/inbox?channel=…&status=…``); per role, at most ``--urls`` different URLs of a pattern that
answer a page are kept (and at most three times as many tried). Each pattern is then measured with the
first role, in the order agent, store associate, supervisor, marketer, admin, whose pages link to it:
``--warmup`` requests, then ``--requests`` requests spread over its different URLs (different ids), one
at a time on each role's keep-alive connection, in rounds that visit every page once (a noisy moment on
a shared machine spreads over all the pages). Every measured answer must be 200.

Times are measured by the client around each HTTP request on loopback (request sent to body read): an
upper bound of the time the server spends on the page. Links that answered anything but 200 while
crawling are listed (they are bugs of the page that links to them). The table, then one JSON line, go to
stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from starlette.routing import Mount, Route

from _common import (
    BACKENDS,
    LOOPBACK,
    BenchError,
    bench_main,
    bench_workdir,
    checkpoint,
    exit_on_sigterm,
    fresh_database,
    log,
    migrated,
    percentile,
    print_json_line,
    print_table,
    run_server,
)
from parcours.app import create_app
from parcours.config import Settings
from parcours.demo.console_users import DEMO_LOGINS, DemoLogin
from parcours.demo.generator import populate

TARGET_MS = 200.0
ROLE_ORDER = ("agent", "store_associate", "supervisor", "marketer", "admin")
NEVER = ("/console/logout", "/console/login", "/console/static/")
STREAM_TYPES = ("text/event-stream",)


# ---------------------------------------------------------------------------------------------- client
@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    ms: float
    streamed: bool = False

    @property
    def html(self) -> bool:
        return self.headers.get("content-type", "").startswith("text/html")


class Browser:
    """One keep-alive connection with a cookie jar; no redirect is followed."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self.conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
        self.cookies: dict[str, str] = {}

    def _reconnect(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=self.timeout)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        sent = {"Accept": "text/html", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        for attempt in (1, 2):
            try:
                started = time.perf_counter()
                self.conn.request(method, path, body=body, headers=sent)
                response = self.conn.getresponse()
                answer_headers = {name.lower(): value for name, value in response.getheaders()}
                if answer_headers.get("content-type", "").startswith(STREAM_TYPES):
                    self._reconnect()  # a live stream never ends: leave it
                    return Answer(response.status, answer_headers, b"", 0.0, streamed=True)
                data = response.read()
                ms = (time.perf_counter() - started) * 1000
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._reconnect()  # a keep-alive connection the server closed between requests
                if attempt == 2:
                    raise
        for raw in response.msg.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(raw)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value or morsel.value == '""':
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return Answer(response.status, answer_headers, data, ms)

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def close(self) -> None:
        self.conn.close()


def sign_in(port: int, login: DemoLogin) -> Browser:
    """A browser signed in as ``login`` through the sign-in form (its hidden field and cookie)."""
    browser = Browser(port)
    form = browser.get("/console/login")
    match = re.search(rb'name="login_csrf" value="([^"]+)"', form.body)
    if form.status != 200 or match is None:
        raise BenchError(f"GET /console/login: HTTP {form.status}, no login_csrf field")
    fields = {"email": login.email, "password": login.password, "login_csrf": match.group(1).decode(),
              "next": "/console/"}  # fmt: skip
    answer = browser.request("POST", "/console/login", urlencode(fields).encode(),
                             {"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    if answer.status != 303 or "parcours_session" not in browser.cookies:
        raise BenchError(f"signing in as {login.email}: HTTP {answer.status} {answer.body[:200]!r}")
    return browser


# ---------------------------------------------------------------------------------------------- crawl
@dataclass
class Form:
    """A GET form: where it goes, and its fields (name, type, value or the options of a select)."""

    action: str
    fields: list[tuple[str, str, list[str]]] = field(default_factory=list)


class _Page(HTMLParser):
    """The ``<a href>`` links and the GET forms of a page (POST forms are never looked at)."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: tuple[str, list[str], list[str]] | None = None  # name, options, selected ones

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {name: value or "" for name, value in attrs}
        if tag == "a" and attr.get("href"):
            self.hrefs.append(attr["href"])
        elif tag == "form":
            get = attr.get("method", "get").lower() == "get"
            self._form = Form(attr.get("action", "")) if get else None
        elif self._form is None:
            return
        elif tag == "input" and attr.get("name"):
            kind = attr.get("type", "text").lower()
            if kind in ("checkbox", "radio") and "checked" not in attr:
                return
            if kind not in ("submit", "button", "image", "reset", "file"):
                self._form.fields.append((attr["name"], kind, [attr.get("value", "")]))
        elif tag == "select" and attr.get("name"):
            self._select = (attr["name"], [], [])
        elif tag == "option" and self._select is not None:
            self._select[1].append(attr.get("value", ""))
            if "selected" in attr:
                self._select[2].append(attr.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self._select is not None and self._form is not None:
            name, options, selected = self._select
            self._form.fields.append(
                (name, "select", selected[:1] + [o for o in options if o not in selected[:1]])
            )
            self._select = None
        elif tag == "form" and self._form is not None:
            self.forms.append(self._form)
            self._form = None


def search_terms(database: Any) -> dict[str, list[str]]:
    """What a user types in the console's search boxes, taken from the demo: phone numbers as an
    associate types them, e-mails, names, loyalty cards; product names and SKUs; order numbers."""
    from sqlalchemy import select

    from parcours.demo.helpers import national_format
    from parcours.models import Identifier, Order, Profile

    def values(kind: str, count: int) -> list[str]:
        query = select(Identifier.value).where(Identifier.kind == kind).order_by(Identifier.id).limit(count)
        return list(session.scalars(query))

    with database.read() as session:
        phones = [national_format(value) for value in values("phone", 3) if value.startswith("+33")]
        emails, cards = values("email", 3), values("loyalty_card", 2)
        names = [
            str(traits["lastName"])
            for traits in session.scalars(select(Profile.traits).order_by(Profile.id).limit(40))
            if traits and traits.get("lastName")
        ][:3]
        orders = list(session.scalars(select(Order.number).order_by(Order.created_at.desc()).limit(3)))
    people = [term for group in zip(phones, emails, names, cards, strict=False) for term in group]
    return {"person": people or ["Martin"], "product": ["MA-CAP-002", "capsules", "moulin"], "order": orders}


def form_urls(page_url: str, form: Form, terms: dict[str, list[str]], variants: int) -> list[str]:
    """``variants`` submissions of a GET form: text fields filled with demo search terms, each select
    set to another of its options."""
    urls = []
    for variant in range(variants):
        pairs = []
        for name, kind, values in form.fields:
            if kind == "select":
                value = values[variant % len(values)] if values else ""
            elif kind in ("hidden", "checkbox", "radio"):
                value = values[0]
            elif kind in ("text", "search", "tel", "email", ""):
                group = (
                    "order"
                    if name == "order"
                    else "product"
                    if "product" in name or "sku" in name
                    else "person"
                )
                choices = terms.get(group) or terms["person"]
                value = choices[variant % len(choices)]
            else:
                value = values[0]
            pairs.append((name, value))
        target = urlsplit(urljoin(f"http://{LOOPBACK}{page_url}", form.action or page_url))
        urls.append(f"{target.path}?{urlencode(pairs)}" if pairs else target.path)
    return urls


def links(
    page_url: str, html: bytes, terms: dict[str, list[str]] | None = None, variants: int = 3
) -> list[str]:
    """Same-origin console links of a page (and, given search terms, its GET forms filled in), as paths
    with a normalised query (fragments dropped)."""
    parser = _Page()
    parser.feed(html.decode(errors="replace"))
    hrefs = list(parser.hrefs)
    if terms is not None:
        for form in parser.forms:
            hrefs += form_urls(page_url, form, terms, variants)
    found = []
    for href in hrefs:
        target = urlsplit(urljoin(f"http://{LOOPBACK}{page_url}", href.strip()))
        same_host = target.netloc == LOOPBACK or target.netloc.startswith(f"{LOOPBACK}:")
        if target.scheme != "http" or not same_host:
            continue
        if not (target.path == "/console" or target.path.startswith("/console/")):
            continue
        if target.path.startswith(NEVER):
            continue
        found.append(normalise(target.path, target.query))
    return found


def normalise(path: str, query: str) -> str:
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    return path + (f"?{urlencode(pairs)}" if pairs else "")


def _get_routes(routes: list[Any], prefix: str = "") -> list[tuple[str, re.Pattern[str]]]:
    """(template, regex) of every GET route, routers included in routers followed."""
    found = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            context = getattr(route, "include_context", None)
            found += _get_routes(inner.routes, prefix + str(getattr(context, "prefix", "") or ""))
        elif isinstance(route, Route) and "GET" in (route.methods or ()):
            regex = re.compile("^" + re.escape(prefix) + route.path_regex.pattern.removeprefix("^"))
            found.append((prefix + route.path, regex))
        elif hasattr(route, "routes") and not isinstance(route, Mount):
            found += _get_routes(route.routes, prefix + str(getattr(route, "path", "")))
    return found


class Patterns:
    """URL -> page pattern: the app's route template for the path, and the query's parameter names."""

    def __init__(self, settings: Settings, database: Any) -> None:
        app = create_app(settings, database)
        self.routes = [
            (template, regex)
            for template, regex in _get_routes(app.routes)
            if template.startswith("/console")
        ]
        if not self.routes:
            raise BenchError("no console route found in the app")

    def __call__(self, url: str) -> str:
        parts = urlsplit(url)
        template = next((template for template, regex in self.routes if regex.match(parts.path)), None)
        if template is None:  # not a route of the app (a 404 to come): ids replaced by hand
            template = "/".join("{id}" if re.search(r"\d", part) else part for part in parts.path.split("/"))
        names = sorted({name for name, _ in parse_qsl(parts.query, keep_blank_values=True)})
        return template + ("?" + "&".join(f"{name}=…" for name in names) if names else "")


@dataclass
class Crawl:
    role: str
    pages: dict[str, list[str]] = field(default_factory=dict)  # pattern -> URLs that answered a page
    refused: list[tuple[str, int, str]] = field(default_factory=list)  # (url, status, linked from)
    streams: list[str] = field(default_factory=list)
    fetched: int = 0


def crawl(
    browser: Browser, role: str, pattern_of: Patterns, terms: dict[str, list[str]] | None, *, per_pattern: int,
    limit: int,
) -> Crawl:  # fmt: skip
    result = Crawl(role)
    queue: deque[tuple[str, str]] = deque([("/console/", "(start)")])
    seen = {"/console/"}
    tried: dict[str, int] = {}  # requests per pattern: pages that answered, and links that did not
    while queue and result.fetched < limit:
        url, source = queue.popleft()
        pattern = pattern_of(url)
        if len(result.pages.get(pattern, ())) >= per_pattern or tried.get(pattern, 0) >= 3 * per_pattern:
            continue
        tried[pattern] = tried.get(pattern, 0) + 1
        answer = browser.get(url)
        result.fetched += 1
        if answer.streamed:
            result.streams.append(url)
            continue
        if answer.status in (301, 302, 303, 307, 308):
            target = urlsplit(urljoin(f"http://{LOOPBACK}{url}", answer.headers.get("location", "")))
            nxt = normalise(target.path, target.query)
            if target.path.startswith("/console") and not target.path.startswith(NEVER) and nxt not in seen:
                seen.add(nxt)
                queue.append((nxt, url))
            continue
        if answer.status != 200:
            result.refused.append((url, answer.status, source))
            continue
        if not answer.html:
            continue  # a download, not a page
        result.pages.setdefault(pattern, []).append(url)
        for link in links(url, answer.body, terms):
            if link not in seen:
                seen.add(link)
                queue.append((link, url))
    return result


# ---------------------------------------------------------------------------------------------- measure
@dataclass
class PageTimes:
    pattern: str
    role: str
    urls: list[str]
    times: list[float]

    @property
    def p50(self) -> float:
        return percentile(self.times, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.times, 0.99)


def measure(browsers: dict[str, Browser], pages: list[PageTimes], requests: int, warmup: int) -> None:
    """``warmup`` then ``requests`` rounds; each round requests every page once (its next URL), so a
    noisy moment on the shared machine spreads over all the pages rather than spoiling one."""
    for number in range(warmup + requests):
        for page in pages:
            url = page.urls[number % len(page.urls)]
            answer = browsers[page.role].get(url)
            if answer.status != 200:
                raise BenchError(f"GET {url} as {page.role}: HTTP {answer.status} {answer.body[:300]!r}")
            if number >= warmup:
                page.times.append(answer.ms)


def first_logins() -> list[DemoLogin]:
    chosen: dict[str, DemoLogin] = {}
    for login in DEMO_LOGINS:
        chosen.setdefault(login.role, login)
    return [chosen[role] for role in ROLE_ORDER if role in chosen]


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite")
    parser.add_argument("--customers", type=int, default=3000, help="demo customers (parcours demo: 3000)")
    parser.add_argument("--seed", type=int, default=7, help="demo seed (parcours demo: 7)")
    parser.add_argument("--requests", type=int, default=30, help="measured requests per page")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured requests per page first")
    parser.add_argument("--urls", type=int, default=10, help="different URLs of a page pattern, at most")
    parser.add_argument("--max-fetches", type=int, default=2000, help="crawl requests per role, at most")
    parser.add_argument(
        "--links-only", action="store_true", help="follow links only; do not fill in the GET (search) forms"
    )
    args = parser.parse_args(argv)
    if args.customers < 1 or args.requests < 1 or args.warmup < 0 or args.urls < 1:
        parser.error("--customers, --requests and --urls must be positive, --warmup not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    exit_on_sigterm()
    args = parse_args(argv)
    began = time.perf_counter()
    with bench_workdir("parcours-bench-pages-") as workdir, fresh_database(args.backend, workdir) as url:
        database = migrated(url)
        try:
            settings = Settings(database_url=url)
            log(
                f"building the demo database ({args.customers:,} customers, seed {args.seed}) on {args.backend} …"
            )
            info = populate(database, settings, customers=args.customers, seed=args.seed)
            log(f"  {info.events:,} events, {info.profiles:,} profiles, {info.conversations} conversations, "
                f"{info.orders} orders in {info.seconds:.1f} s")  # fmt: skip
            checkpoint(database)
            pattern_of = Patterns(settings, database)
            terms = None if args.links_only else search_terms(database)
        finally:
            database.dispose()
        with run_server(url, workdir) as server:
            crawls: list[Crawl] = []
            browsers: dict[str, Browser] = {}
            try:
                for login in first_logins():
                    browsers[login.role] = browser = sign_in(server.port, login)
                    found = crawl(browser, login.role, pattern_of, terms, per_pattern=args.urls,
                                  limit=args.max_fetches)  # fmt: skip
                    log(f"  crawled as {login.role} ({login.email}): {found.fetched} requests, "
                        f"{len(found.pages)} page patterns, {len(found.refused)} links not 200")  # fmt: skip
                    crawls.append(found)
                chosen: dict[str, tuple[str, list[str]]] = {}
                for found in crawls:  # the first role in ROLE_ORDER that reaches a page measures it
                    for pattern, urls in found.pages.items():
                        chosen.setdefault(pattern, (found.role, urls))
                if not chosen:
                    raise BenchError("the crawl found no console page")
                results = [
                    PageTimes(pattern, role, urls, []) for pattern, (role, urls) in sorted(chosen.items())
                ]
                load_before = os.getloadavg()[0]
                measure(browsers, results, args.requests, args.warmup)
                load_after = os.getloadavg()[0]
                log(f"  measured {len(results)} pages")
            finally:
                for browser in browsers.values():
                    browser.close()

    worst = max(results, key=lambda page: page.p99)
    print()
    print(
        f"Console pages on the demo database ({args.backend}; {args.customers:,} customers, {info.events:,} "
        f"events, {info.conversations} conversations, {info.orders} orders): {args.requests} requests per page "
        f"after {args.warmup} warm-up, spread over up to {args.urls} URLs (different ids), one request at a time "
        "in rounds over every page, keep-alive connections to one uvicorn worker. Client-measured ms around each "
        "HTTP request on loopback: an upper bound of the server-side time."
    )
    print_table(
        ["page", "role", "urls", "p50 ms", "p99 ms", "max ms", f"< {TARGET_MS:.0f} ms"],
        [
            [page.pattern, page.role, len(page.urls), f"{page.p50:.1f}", f"{page.p99:.1f}", f"{max(page.times):.1f}",
             "yes" if page.p99 < TARGET_MS else "NO"]
            for page in results
        ],
    )  # fmt: skip
    refused = [(found.role, *item) for found in crawls for item in found.refused]
    if refused:
        print()
        print("Links that did not answer 200 while crawling (role, URL, status, linked from):")
        for role, link, status, source in refused[:30]:
            print(f"  {role:<16} {link}  HTTP {status}  (from {source})")
        if len(refused) > 30:
            print(f"  … and {len(refused) - 30} more")
    streams = sorted({link for found in crawls for link in found.streams})
    if streams:
        print(f"Event streams linked from pages (not measured): {', '.join(streams)}")
    over = [page.pattern for page in results if page.p99 >= TARGET_MS]
    print(
        f"target: every page p99 < {TARGET_MS:.0f} ms: "
        + ("met" if not over else f"NOT met ({len(over)} pages: {', '.join(over)})")
        + f"; worst {worst.pattern} ({worst.role}) p99 {worst.p99:.1f} ms"
    )
    print(
        f"machine load (1-minute load average, {os.cpu_count()} CPUs): {load_before:.1f} before the measurement, "
        f"{load_after:.1f} after"
    )
    per_page = {
        page.pattern: {
            "role": page.role,
            "urls": len(page.urls),
            "p50_ms": round(page.p50, 1),
            "p99_ms": round(page.p99, 1),
        }
        for page in results
    }
    print_json_line(
        {
            "worst_page_p99_ms": round(worst.p99, 1),
            "worst_page": worst.pattern,
            "worst_page_role": worst.role,
            "pages": len(results),
            "target_ms": TARGET_MS,
            "target_met": not over,
            "backend": args.backend,
            "customers": args.customers,
            "events": info.events,
            "requests_per_page": args.requests,
            "per_page": per_page,
            "links_not_200": len(refused),
            "load_average": [round(load_before, 1), round(load_after, 1)],
            "demo_seconds": round(info.seconds, 1),
            "elapsed_s": round(time.perf_counter() - began, 1),
        }
    )
    return 0


if __name__ == "__main__":
    bench_main(main, "bench/pages.py")
