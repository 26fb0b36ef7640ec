"""The FastAPI application factory. Domain errors become HTTP responses here, and only here."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError

from parcours import __version__
from parcours.auth.endpoints import require_api_token  # noqa: F401  (re-exported for tests)
from parcours.config import Settings, get_settings
from parcours.db.engine import Database
from parcours.deps import JsonResponse
from parcours.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    ParcoursError,
    PayloadTooLarge,
)
from parcours.identity.endpoints import router as identity_router
from parcours.ingest.endpoints import router as ingest_router

STATUS_BY_ERROR: dict[type[ParcoursError], int] = {
    InvalidInput: 400,
    NotAuthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
}

log = logging.getLogger("parcours.http")


def error_body(code: str, message: str, details: object = None) -> dict[str, object]:
    error: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"success": False, "error": error}


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Parcours",
        version=__version__,
        description="Omnichannel customer-experience platform: one customer, one history, every channel.",
        default_response_class=JsonResponse,
    )
    app.state.settings = settings
    app.state.database = database or Database(settings.sqlalchemy_url)

    @app.exception_handler(ParcoursError)
    async def domain_error(_request: Request, error: ParcoursError) -> JsonResponse:
        status = next((code for cls, code in STATUS_BY_ERROR.items() if isinstance(error, cls)), 400)
        headers = {"WWW-Authenticate": 'Basic realm="parcours", Bearer'} if status == 401 else None
        return JsonResponse(error_body(error.code, error.message, error.details), status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def request_error(_request: Request, error: RequestValidationError) -> JsonResponse:
        problems = [
            {"field": ".".join(str(p) for p in item.get("loc", ()) if p != "body"), "error": item.get("msg")}
            for item in error.errors()
        ]
        message = "; ".join(f"{p['field']}: {p['error']}" for p in problems)
        return JsonResponse(error_body("invalid_input", message, problems), 400)

    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.url.path,
                "status": response.status_code,
                "ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        return response

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.include_router(ingest_router)
    app.include_router(identity_router)
    return app
