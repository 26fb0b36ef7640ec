"""What analytics.js (Segment's browser SDK) sends and needs, over HTTP on a live server, on SQLite and
PostgreSQL: the short paths (/v1/t, /v1/i, … /v1/b) with the write key in a text/plain body, its settings
document, and CORS on the tracking API only. The real SDK in a real browser: tests/browser/test_analytics_js.py."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from parcours.config import Settings
from tests.conftest import Api

SHOP = "https://shop.example.fr"


def text_plain(body: Any, **headers: str) -> dict[str, Any]:
    """A request as analytics.js sends one: JSON in a text/plain body (no CORS preflight needed)."""
    return {
        "content": orjson.dumps(body),
        "headers": {"Content-Type": "text/plain", "Origin": SHOP, **headers},
    }


def ajs_call(kind: str, write_key: str, message_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "writeKey": write_key,
        "messageId": message_id,
        "anonymousId": "3f0c1e5a-ajs-anon",
        "timestamp": "2026-12-06T09:30:00.000Z",
        "sentAt": "2026-12-06T09:30:00.120Z",
        "context": {
            "library": {"name": "analytics.js", "version": "next-1.84.3"},
            "page": {"path": "/vestes", "url": "https://shop.example.fr/vestes", "title": "Vestes"},
            "userAgent": "Mozilla/5.0",
            "locale": "fr-FR",
        },
        "integrations": {},
        "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
        **fields,
    }


def test_the_short_paths_record_each_call_type_from_a_text_plain_body(api: Api) -> None:
    write_key = api.source("Boutique en ligne", "web")
    calls = [
        ("/v1/p", ajs_call("page", write_key, "ajs-next-1", name="Vestes", properties={"path": "/vestes"})),
        (
            "/v1/i",
            ajs_call(
                "identify", write_key, "ajs-next-2", userId="cust-77", traits={"email": "Lea@Example.fr"}
            ),
        ),
        (
            "/v1/t",
            ajs_call("track", write_key, "ajs-next-3", event="Product Viewed", properties={"sku": "V1"}),
        ),
        ("/v1/s", ajs_call("screen", write_key, "ajs-next-4", name="Panier")),
        ("/v1/g", ajs_call("group", write_key, "ajs-next-5", groupId="b2b-12", traits={"name": "Atelier"})),
        (
            "/v1/a",
            ajs_call("alias", write_key, "ajs-next-6", previousId="3f0c1e5a-ajs-anon", userId="cust-77"),
        ),
    ]
    for path, body in calls:
        response = api.client.post(path, **text_plain(body))
        assert response.status_code == 200, (path, response.text)
        assert response.json()["recorded"] == 1, (path, response.text)
        assert response.headers["access-control-allow-origin"] == "*"

    profile = api.get("/v1/profiles", identifier="email:lea@example.fr").json()
    timeline = api.get(f"/v1/profiles/{profile['id']}/timeline").json()["data"]
    assert [event["type"] for event in timeline] == ["page", "identify", "track", "screen", "group", "alias"]
    assert {event["channel"] for event in timeline} == {"web"}

    # The SDK sends a call again when it could not read the answer: the same messageId changes nothing.
    again = api.client.post("/v1/t", **text_plain(calls[2][1]))
    assert again.status_code == 200 and again.json()["duplicates"] == 1


def test_a_short_path_checks_the_call_type_like_the_long_one(api: Api) -> None:
    write_key = api.source("Boutique en ligne", "web")
    body = ajs_call("track", write_key, "ajs-next-x", event="Added")
    response = api.client.post("/v1/i", **text_plain(body))
    assert response.status_code == 400, response.text
    assert (
        response.json()["error"]["message"]
        == api.client.post("/v1/identify", **text_plain(body)).json()["error"]["message"]
    )


def test_the_batch_path_takes_the_write_key_from_basic_auth_or_the_body(api: Api) -> None:
    write_key = api.source("Application", "app")
    events = [ajs_call("track", write_key, f"b-{n}", event="Opened", userId="cust-9") for n in range(3)]
    for event in events:
        del event["writeKey"], event["sentAt"]  # batches carry one sentAt and one write key
    in_body = api.client.post(
        "/v1/b", **text_plain({"writeKey": write_key, "batch": events[:2], "sentAt": "2026-12-06T09:30:01Z"})
    )
    assert in_body.status_code == 200, in_body.text
    assert in_body.json()["recorded"] == 2
    by_header = api.client.post("/v1/b", json={"batch": events[1:]}, headers=api.basic(write_key))
    assert by_header.status_code == 200, by_header.text
    assert (by_header.json()["recorded"], by_header.json()["duplicates"]) == (1, 1)


def test_a_preflight_is_answered_for_the_tracking_paths_only(api: Api) -> None:
    preflight = {
        "Origin": SHOP,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-retry-count",
    }
    for path in ("/v1/b", "/v1/batch", "/v1/t", "/v1/identify"):
        response = api.client.options(path, headers=preflight)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["access-control-allow-origin"] == "*"
        assert "POST" in response.headers["access-control-allow-methods"]
        assert response.headers["access-control-allow-headers"] == "authorization,content-type,x-retry-count"
        assert response.headers["access-control-max-age"] == "7200"
    # The rest of the API (tokens that read personal data) and the console never answer a browser page.
    for path in ("/v1/profiles", "/v1/profiles/prf_x", "/console/login", "/v1/store/customers"):
        response = api.client.options(path, headers=preflight)
        assert "access-control-allow-origin" not in response.headers, path
        answer = api.client.get(path, headers={**api.bearer, "Origin": SHOP})
        assert "access-control-allow-origin" not in answer.headers, path


def test_a_page_can_read_why_its_call_was_refused(api: Api) -> None:
    """analytics.js retries on some statuses and drops on others: it must be able to read them."""
    no_key = api.client.post("/v1/t", **text_plain({"type": "track", "event": "X", "userId": "u"}))
    assert no_key.status_code == 401
    assert no_key.headers["access-control-allow-origin"] == "*"
    bad_json = api.client.post("/v1/t", content=b"{", headers={"Content-Type": "text/plain", "Origin": SHOP})
    assert bad_json.status_code == 400
    assert bad_json.headers["access-control-allow-origin"] == "*"
    nul = api.client.post("/v1/t?x=%00", content=b"{}", headers={"Origin": SHOP})
    assert nul.status_code == 400
    assert nul.headers["access-control-allow-origin"] == "*"


def test_only_the_allowed_origins_get_cors_answers(api: Api) -> None:
    api.app.state.settings = api.settings.model_copy(update={"tracking_allowed_origins": SHOP})
    write_key = api.source("Boutique en ligne", "web")
    body = ajs_call("track", write_key, "o-1", event="Viewed")
    allowed = api.client.post("/v1/t", **text_plain(body))
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == SHOP
    assert "Origin" in allowed.headers["vary"]

    elsewhere = api.client.post(
        "/v1/t", **text_plain(body | {"messageId": "o-2"}, Origin="https://evil.example")
    )
    # A request still reaches the API (an origin is not a credential: the write key is), but the page of
    # another origin cannot read the answer, and its preflights are refused.
    assert elsewhere.status_code == 200
    assert "access-control-allow-origin" not in elsewhere.headers
    refused = api.client.options(
        "/v1/b", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


def test_the_settings_document_points_the_sdk_at_this_server(api: Api) -> None:
    write_key = api.source("Boutique en ligne", "web")
    response = api.client.get(f"/v1/projects/{write_key}/settings", headers={"Origin": SHOP})
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"
    document = response.json()
    segment = document["integrations"]["Segment.io"]
    host = api.url.removeprefix("http://")
    assert (segment["apiKey"], segment["apiHost"], segment["protocol"]) == (write_key, f"{host}/v1", "http")
    assert list(document["integrations"]) == ["Segment.io"]  # nothing sent anywhere else
    assert document["metrics"]["sampleRate"] == 0
    assert document["remotePlugins"] == []

    # Behind a proxy, the public URL of the settings is the one the SDK must use.
    api.app.state.settings = api.settings.model_copy(
        update={"console_public_url": "https://cx.example.fr/parcours"}
    )
    behind = api.client.get(f"/v1/projects/{write_key}/settings").json()["integrations"]["Segment.io"]
    assert (behind["apiHost"], behind["protocol"]) == ("cx.example.fr/parcours/v1", "https")


def test_the_settings_of_an_unknown_key_are_refused_and_keys_stay_out_of_the_log(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    write_key = api.source("Boutique en ligne", "web")
    with caplog.at_level(logging.INFO, logger="parcours.http"):
        unknown = api.client.get("/v1/projects/wk_not-a-key/settings")
        known = api.client.get(f"/v1/projects/{write_key}/settings")
    assert unknown.status_code == 401, unknown.text
    assert unknown.json()["error"]["message"] == "unknown or disabled write key"
    assert known.status_code == 200
    logged = [record.__dict__.get("path") for record in caplog.records if record.getMessage() == "request"]
    assert logged == ["/v1/projects/{write_key}/settings"] * 2
    assert write_key not in caplog.text


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("https://shop.example.fr/vestes", "is not a web origin"),
        ("shop.example.fr", "is not a web origin"),
        ("https://shop.example.fr:port", "is not a web origin"),
        ("*, https://shop.example.fr", "cannot be listed beside other origins"),
        (" , ", "at least one origin"),
    ],
)
def test_allowed_origins_are_checked_when_the_server_starts(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Settings(tracking_allowed_origins=value)


def test_allowed_origins_are_written_as_browsers_send_them() -> None:
    settings = Settings(tracking_allowed_origins=" HTTPS://Shop.Example.fr/ ,http://127.0.0.1:8080")
    assert settings.tracking_origins == ("https://shop.example.fr", "http://127.0.0.1:8080")
    assert Settings().tracking_origins == ("*",)
