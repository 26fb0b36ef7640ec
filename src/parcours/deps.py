"""What every endpoint needs from the running app: the database, the settings, the JSON response, the
request body read within a limit."""

from __future__ import annotations

import json
import zlib
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

import orjson
from fastapi import Request, Response
from pydantic import BaseModel, ValidationError

from parcours.config import Settings
from parcours.db.engine import Database
from parcours.errors import InvalidInput, PayloadTooLarge
from parcours.inputs import field_problems, problems_message


# The dependencies below are ``async`` on purpose: FastAPI runs a plain ``def`` dependency in the thread
# pool, a thread hop (and a wait for the GIL) per request for reading one attribute.
async def database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


async def settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


class JsonResponse(Response):
    """JSON rendered with orjson (datetimes, non-str keys), the API's one response class."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


async def read_body(request: Request, limit: int, *, gzip: bool = False) -> bytes:
    """The request body, refusing anything over ``limit`` bytes (before and after decompression).
    ``gzip``: a gzip ``Content-Encoding`` is decompressed; otherwise (signed webhooks, whose signature
    covers the bytes as sent) the body is returned as it came."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {int(declared)} bytes; the limit is {limit // 1024} KB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"request body is over the {limit // 1024} KB limit")
    if not gzip:
        return bytes(body)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(bytes(body), limit + 1)
        except zlib.error:
            raise InvalidInput("body: Content-Encoding is gzip but the body is not valid gzip") from None
        if len(data) > limit or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"decompressed body is over the {limit // 1024} KB limit")
        if not inflater.eof:
            raise InvalidInput("body: Content-Encoding is gzip but the gzip stream is truncated")
        if inflater.unused_data:
            raise InvalidInput("body: unexpected bytes after the end of the gzip stream")
        return data
    if encoding not in ("", "identity"):
        raise InvalidInput(f"Content-Encoding: {encoding!r} is not supported; send gzip or uncompressed JSON")
    return bytes(body)


M = TypeVar("M", bound=BaseModel)


def json_body(
    model: type[M], *, limit: int, check: Callable[[Any], None] | None = None
) -> Callable[[Request], Awaitable[M]]:
    """A dependency reading the body (at most ``limit`` bytes) as JSON with exact decimals, handing the
    document to ``check`` (which may refuse it) and validating it with ``model``; every problem is an
    InvalidInput naming its field."""

    async def parse(request: Request) -> M:
        raw = await read_body(request, limit)
        try:
            data = json.loads(raw, parse_float=Decimal)
        except (ValueError, RecursionError):
            raise InvalidInput("body: not valid JSON") from None
        if check is not None:
            check(data)
        try:
            return model.model_validate(data)
        except ValidationError as error:
            problems = field_problems(error.errors(), root="body")
            message = problems_message(problems)
            raise InvalidInput(message, details=problems) from None

    return parse


def public_base_url(request: Request, config: Settings) -> str:
    """This server's base URL as the world reaches it (providers' webhooks, analytics.js): the configured
    ``console_public_url`` when set (behind a proxy), otherwise the URL this request came to."""
    return (config.console_public_url or str(request.base_url)).rstrip("/")
