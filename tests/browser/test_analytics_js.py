"""Segment's browser SDK, analytics.js (``@segment/analytics-next`` from npm, unchanged), on a shop page of
another origin than Parcours, in Debian's chromium: it reads its settings from Parcours (``cdnURL``) and
sends its calls there, one by one or in batches; every call lands once on one profile of the web channel,
and the browser reports no failed request (without CORS it would, and the SDK would send every call again).

The SDK is installed by scripts/test.sh (``npm ci`` in tests/js); with CI=true these tests must run,
elsewhere they skip with a reason when it is missing."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Response

from tests.conftest import IN_CI, Api

SDK = Path(__file__).parents[1] / "js" / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"

PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>Boutique</title>
<script src="/analytics-next/index.js"></script></head>
<body><h1>Vestes</h1>
<script>
window.shop = async (writeKey, parcours, options, steps) => {
  const [analytics] = await AnalyticsNext.AnalyticsBrowser.load({writeKey, cdnURL: parcours}, options);
  await analytics.page("Vestes", {path: "/vestes"});
  await analytics.identify("cust-1042", {email: "Camille.Martin@Example.fr", firstName: "Camille"});
  await analytics.track("Product Viewed", {sku: "VESTE-42", price: 129.9});
  await analytics.track("Product Added", {sku: "VESTE-42"});
  return analytics.user().anonymousId();
};
</script></body></html>
"""


class _Shop(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def shop_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A shop's web server on its own loopback port (another origin than Parcours): the page above, and the
    SDK's files as npm installed them."""
    if not (SDK / "index.js").is_file():
        reason = f"{SDK / 'index.js'} is missing: scripts/test.sh installs it (npm ci in tests/js)"
        if IN_CI:
            pytest.fail(f"CI=true requires the browser tests: {reason}")
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("shop")
    (root / "index.html").write_text(PAGE, encoding="utf-8")
    (root / "analytics-next").symlink_to(SDK, target_is_directory=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Shop, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_shop(page: Page, shop_url: str, api: Api, write_key: str, options: object) -> tuple[str, list[str]]:
    """Open the shop page, let analytics.js load and send its four calls; the anonymous id it gave the
    visitor, and every request the page made to Parcours with its answer's status (or its failure)."""
    to_parcours: list[str] = []

    def answered(response: Response) -> None:
        if response.url.startswith(api.url):
            request = response.request
            basic = " (Basic auth)" if request.headers.get("authorization", "").startswith("Basic ") else ""
            to_parcours.append(f"{request.method} {response.url[len(api.url) :]} {response.status}{basic}")

    page.on("response", answered)
    page.on("requestfailed", lambda request: to_parcours.append(f"FAILED {request.url} {request.failure}"))
    page.goto(shop_url + "/index.html")
    anonymous_id = page.evaluate(
        "([key, parcours, options]) => window.shop(key, parcours, options)", [write_key, api.url, options]
    )
    return str(anonymous_id), to_parcours


CALLS = [("page", "Vestes"), ("identify", None), ("track", "Product Viewed"), ("track", "Product Added")]


def check_one_web_profile(api: Api, anonymous_id: str) -> None:
    """The page's four calls, once each, on one profile known by the SDK's anonymous id, the user id and
    the e-mail (whatever its case), on the web channel only."""
    profile = api.get("/v1/profiles", identifier="email:camille.martin@example.fr").json()
    assert {(i["kind"], i["value"]) for i in profile["identifiers"]} >= {
        ("user_id", "cust-1042"),
        ("anonymous_id", anonymous_id),
        ("email", "camille.martin@example.fr"),
    }
    assert profile["traits"]["firstName"] == "Camille"
    assert [c["channel"] for c in profile["channels"]] == ["web"]
    events = api.get(f"/v1/profiles/{profile['id']}/timeline").json()["data"]
    assert [(e["type"], e["name"]) for e in events] == CALLS
    assert all(e["context"]["library"]["name"] == "analytics.js" for e in events)
    page_call = events[0]
    assert page_call["properties"]["path"] == "/vestes"


def test_analytics_js_sends_each_call_to_parcours(page: Page, shop_url: str, api: Api) -> None:
    """The SDK sends its write key in an Authorization header (and in the body), so the browser asks first
    (a CORS preflight, which Playwright does not list): each post is only sent once Parcours allowed it."""
    write_key = api.source("Boutique en ligne", "web")
    anonymous_id, requests = run_shop(page, shop_url, api, write_key, {})

    assert requests == [
        f"GET /v1/projects/{write_key}/settings 200",
        "POST /v1/p 200 (Basic auth)",
        "POST /v1/i 200 (Basic auth)",
        "POST /v1/t 200 (Basic auth)",
        "POST /v1/t 200 (Basic auth)",
    ]
    check_one_web_profile(api, anonymous_id)


def test_analytics_js_batches_reach_parcours(page: Page, shop_url: str, api: Api) -> None:
    """In batches the fourth call fills the batch of four, and waits for its answer."""
    write_key = api.source("Boutique en ligne", "web")
    batching = {"strategy": "batching", "config": {"size": 4, "timeout": 10_000}}
    options = {"integrations": {"Segment.io": {"deliveryStrategy": batching}}}
    anonymous_id, requests = run_shop(page, shop_url, api, write_key, options)

    assert requests == [f"GET /v1/projects/{write_key}/settings 200", "POST /v1/b 200 (Basic auth)"]
    check_one_web_profile(api, anonymous_id)
