"""The order in which requests try the app's routes (``parcours.routing.order_routes``)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from parcours.routing import WebhookRoute
from tests.conftest import Api


def _path(route: BaseRoute) -> str | None:
    return getattr(route, "path", None)


def test_webhooks_come_first_and_the_documentation_pages_last(api: Api) -> None:
    routes = api.app.router.routes
    webhooks = [route for route in routes if isinstance(route, WebhookRoute)]
    assert {_path(route) for route in webhooks} >= {
        "/v1/channels/twilio/messages", "/v1/channels/meta/webhook", "/v1/channels/telephony/calls"
    }  # fmt: skip
    assert routes[: len(webhooks)] == webhooks
    documentation = ["/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"]
    assert [_path(route) for route in routes[-len(documentation) :]] == documentation
    # The others keep the order the app added them in: the busiest API first, the console last.
    paths = [_path(route) for route in routes]
    assert paths.index("/healthz") < paths.index("/v1/batch") < paths.index("/v1/profiles")
    assert paths.index("/v1/inbox/conversations") < paths.index("/console/static")
    # Still served where they were.
    assert api.client.get("/openapi.json").json()["info"]["title"] == "Parcours"
    assert api.client.get("/docs").status_code == 200
    assert api.client.post("/v1/channels/twilio/messages").status_code in (401, 403)  # unsigned
