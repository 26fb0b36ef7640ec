"""How a module's routes join the app: ``add_routes(app, module.router)``, never ``include_router``.

FastAPI (0.16x) keeps an included router as one node and walks it on every request: each of its routes is
tried about twice, with scope bookkeeping, ~3 µs a route, so that a request for the inbox API spent 0.6 ms
of CPU just finding its route behind the routers added before it. Routes added one by one are each tried
once, by a regular expression. Nothing else changes: FastAPI copies a router's own settings (dependencies
such as ``require_api_token``, tags, responses) into each route when the route is declared, and Parcours
includes routers with no options of its own (no prefix, no extra dependencies)."""

from __future__ import annotations

import inspect

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route


def add_routes(target: FastAPI | APIRouter, router: APIRouter) -> None:
    """Append ``router``'s routes, in their order, to the app's (or an area router's) routes."""
    if router.on_startup or router.on_shutdown:
        raise ValueError("add_routes: the router has startup or shutdown handlers; give them to the app")
    into = target.router if isinstance(target, FastAPI) else target
    into.routes.extend(router.routes)


def add_webhooks(app: FastAPI, router: APIRouter) -> None:
    """Append a provider's webhooks (``router``'s routes) as plain Starlette routes.

    A webhook reads the raw request (its signature covers the bytes as sent) and answers a plain
    response: none of FastAPI's request machinery serves it (dependencies, body validation, response
    models), and skipping that machinery saves about 50 µs of CPU a request (the Twilio webhook,
    ``bench/inbox.py``). Errors still become responses through the app's handlers. The provider, not a
    user, calls them: they are documented in ``docs/channels.md``, not in the OpenAPI schema."""
    for route in router.routes:
        if not isinstance(route, APIRoute) or list(inspect.signature(route.endpoint).parameters) != [
            "request"
        ]:
            raise ValueError(f"add_webhooks: {route!r} must be an endpoint taking only the request")
        app.router.routes.append(
            WebhookRoute(route.path, route.endpoint, methods=sorted(route.methods or ()), name=route.name)
        )


class WebhookRoute(Route):
    """A provider's webhook (``add_webhooks``): a plain Starlette route, tried before the others."""


def order_routes(app: FastAPI) -> None:
    """Put the routes in the order a request tries them (Starlette matches them one by one, ~2 µs each):
    the providers' webhooks first (one request per customer message, where ingestion's batches carry up
    to 500 events a request), FastAPI's documentation pages last; the others keep their order. No path
    is served by two routes, so the order changes only how long a request looks for its route."""
    pages = (app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
    documentation = {page for page in pages if page}

    def rank(route: BaseRoute) -> int:
        if isinstance(route, WebhookRoute):
            return 0
        return 2 if getattr(route, "path", None) in documentation else 1

    app.router.routes.sort(key=rank)
