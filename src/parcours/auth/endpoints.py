"""HTTP credentials: write keys (HTTP Basic, key as user name) and API tokens (Bearer)."""

from __future__ import annotations

import base64
import binascii
import threading
import time

from fastapi import Request

from parcours.auth import service
from parcours.db.engine import Database
from parcours.errors import Forbidden, NotAuthenticated

TOKEN_CACHE_SECONDS = 10.0


def write_key_from(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic" or not credentials:
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise NotAuthenticated("malformed HTTP Basic credentials") from None
    user, _, _password = decoded.partition(":")
    return user or None


class TokenCache:
    """Valid tokens seen in the last few seconds (by digest), so reads do not pay a query each."""

    def __init__(self, seconds: float = TOKEN_CACHE_SECONDS) -> None:
        self.seconds = seconds
        self._seen: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> str | None:
        key = service.digest(token)
        with self._lock:
            entry = self._seen.get(key)
        if entry is None or time.monotonic() - entry[1] > self.seconds:
            return None
        return entry[0]

    def put(self, token: str, name: str) -> None:
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[service.digest(token)] = (name, time.monotonic())


async def require_api_token(request: Request) -> str:
    """The calling token's name. Write keys are refused here: they can send events, never read."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() == "basic":
        raise Forbidden("write keys can only send events; use an API token (Authorization: Bearer …)")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated("an API token is required (Authorization: Bearer …)")
    cache: TokenCache = request.app.state.token_cache
    name = cache.get(token)
    if name is None:
        database: Database = request.app.state.database
        name = await database.short_read(lambda session: service.check_token(session, token))
        cache.put(token, name)
    return name
