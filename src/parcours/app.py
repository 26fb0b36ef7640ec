"""The FastAPI application factory. Domain errors become HTTP responses here, and only here."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parcours import __version__
from parcours.auth.endpoints import TokenCache
from parcours.channels import install as install_channels
from parcours.commerce import install as install_commerce
from parcours.commerce.reservation_writer import ReservationWriter
from parcours.config import Settings, get_settings
from parcours.console import install as install_console
from parcours.console.web import error_page as console_error_page
from parcours.db.engine import Database
from parcours.deps import JsonResponse
from parcours.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    MethodNotAllowed,
    NotAuthenticated,
    NotFound,
    ParcoursError,
    PayloadTooLarge,
    TooManyRequests,
)
from parcours.identity.endpoints import router as identity_router
from parcours.identity.resolution import GraphCache
from parcours.inbox import worker as inbox_worker
from parcours.inbox.endpoints import router as inbox_router
from parcours.inbox.outbound import Outbox
from parcours.inbox.writer import InboxWriter
from parcours.ingest.browser_sdk import TrackingCors
from parcours.ingest.browser_sdk import router as browser_sdk_router
from parcours.ingest.endpoints import router as ingest_router
from parcours.ingest.endpoints import sources_router
from parcours.ingest.writer import IngestWriter
from parcours.inputs import field_problems, problems_message
from parcours.routing import add_routes, order_routes

STATUS_BY_ERROR: dict[type[ParcoursError], int] = {
    InvalidInput: 400,
    NotAuthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    MethodNotAllowed: 405,
    Conflict: 409,
    PayloadTooLarge: 413,
    TooManyRequests: 429,
}

log = logging.getLogger("parcours.http")


def error_body(code: str, message: str, details: object = None) -> dict[str, object]:
    error: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"success": False, "error": error}


def is_console(request: Request) -> bool:
    """Console pages get their errors as pages; the API gets JSON."""
    path = request.url.path
    return (path == "/console" or path.startswith("/console/")) and not path.startswith("/console/static/")


def tune_garbage_collector() -> None:
    """A batch allocates hundreds of thousands of short-lived objects: with the default thresholds the
    cyclic collector runs (and rescans everything loaded at start) thousands of times a second. Fewer
    young collections and a frozen start-up heap give about 13% more events/s."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        tune_garbage_collector()
        worker = asyncio.create_task(
            inbox_worker.run_forever(app.state.database, app.state.outbox, settings.inbox_worker_seconds)
        )
        try:
            yield
        finally:
            worker.cancel()

    app = FastAPI(
        lifespan=lifespan,
        title="Parcours",
        version=__version__,
        description="Omnichannel customer-experience platform: one customer, one history, every channel.",
        default_response_class=JsonResponse,
        # Off, FastAPI skips its per-request look for configured OpenTelemetry providers (it read the
        # environment three times a request: 4 % of the event loop's work under the inbox benchmark).
        telemetry=None if settings.opentelemetry else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.database = database or Database(settings.sqlalchemy_url)
    app.state.token_cache = TokenCache()
    app.state.outbox = Outbox()  # channel adapters register their senders here
    # The identity graph the writers below keep in memory between their transactions: one for all, so
    # that a message stored by the inbox does not make ingestion's next batch start from nothing (and
    # the reverse). Each writer uses it only under the graph lock; see GraphCache.
    size = settings.identity_cache_size
    graph_cache = GraphCache(size) if size else None
    app.state.graph_cache = graph_cache  # for the endpoints that resolve identities outside the writers
    # Channel adapters store inbound messages through it (group commit).
    app.state.inbox_writer = InboxWriter(lambda: (app.state.database, app.state.settings), cache=graph_cache)
    # Reservations through the API are reserved together too (group commit).
    app.state.reservation_writer = ReservationWriter(lambda: (app.state.database, app.state.settings))
    # Tracking events through the API are stored together too (group commit).
    app.state.ingest_writer = IngestWriter(
        lambda: (app.state.database, app.state.settings), cache=graph_cache
    )

    @app.exception_handler(ParcoursError)
    async def domain_error(request: Request, error: ParcoursError) -> Response:
        status = next((code for cls, code in STATUS_BY_ERROR.items() if isinstance(error, cls)), 400)
        if is_console(request):
            return await console_error_page(request, error, status)
        headers = {"WWW-Authenticate": 'Basic realm="parcours", Bearer'} if status == 401 else None
        return JsonResponse(error_body(error.code, error.message, error.details), status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def routing_error(request: Request, error: StarletteHTTPException) -> Response:
        """Starlette's own refusals (no such address, a method the address does not take, a body that
        cannot be parsed) in the same shape, or on the same console page, as every other error."""
        translated: ParcoursError
        if error.status_code == 404:
            translated = NotFound(f"nothing here: {request.method} {request.url.path}")
        elif error.status_code == 405:
            allowed = (error.headers or {}).get("Allow", "")
            translated = MethodNotAllowed(f"{request.method} is not allowed here; allowed: {allowed}")
        elif error.status_code == 400 and "json" in request.headers.get("content-type", ""):
            translated = InvalidInput("body: could not be read as JSON (malformed, or nested too deeply)")
        elif error.status_code == 400:  # a form Starlette could not parse (multipart limits, …)
            translated = InvalidInput(f"body: {error.detail}")
        else:
            body = error_body("http_error", str(error.detail))
            return JsonResponse(body, error.status_code, headers=error.headers)
        response = await domain_error(request, translated)
        response.headers.update(error.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def request_error(request: Request, error: RequestValidationError) -> Response:
        problems = field_problems(error.errors(), root="body")
        message = problems_message(problems)
        if is_console(request):
            return await console_error_page(request, InvalidInput(message), 400)
        return JsonResponse(error_body("invalid_input", message, problems), 400)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    # FastAPI tries the routes in the order they were added: the busiest first (events, inbound messages,
    # the profile view, stock and reservations), the console last; ``order_routes`` then puts the
    # providers' webhooks first and the documentation pages last.
    add_routes(app, ingest_router)
    add_routes(app, browser_sdk_router)
    install_channels(app, settings)
    add_routes(app, identity_router)
    add_routes(app, sources_router)
    install_commerce(app)
    add_routes(app, inbox_router)
    install_console(app)
    order_routes(app)
    app.add_middleware(RefuseNulInUrl)
    app.add_middleware(TrackingCors)  # outside the URL guard: a page can read its refusals too
    app.add_middleware(AccessLog)
    return app


class RefuseNulInUrl:
    """400 for a URL holding a NUL character (``%00``) in its path or query, before any route sees it:
    PostgreSQL cannot compare text with one, so every id, filter or search would otherwise fail there."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        where = None
        if scope["type"] == "http":
            query = scope["query_string"]
            if "\x00" in scope["path"]:
                where = "path"
            elif b"%00" in query or b"\x00" in query:
                where = "query"
        if where is None:
            await self.app(scope, receive, send)
            return
        message = f"URL {where}: contains a NUL character (%00)"
        await JsonResponse(error_body("invalid_input", message), 400)(scope, receive, send)


# Path parameters that are credentials: the access log writes the route's template instead of the path.
SECRET_PATH_PARAMETERS = ("{write_key}",)


def _loggable_path(scope: Scope) -> str:
    route_path = getattr(scope.get("route"), "path", "")
    if any(parameter in route_path for parameter in SECRET_PATH_PARAMETERS):
        return str(route_path)
    return str(scope["path"])


class AccessLog:
    """One structured log line per request: method, path, status, duration. Never bodies or queries."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": _loggable_path(scope),
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
