"""HTTP credentials: write keys (HTTP Basic, key as user name) and API tokens (Bearer)."""

from __future__ import annotations

import base64
import binascii

from fastapi import Depends, Request

from parcours.auth import service
from parcours.db.engine import Database
from parcours.deps import database
from parcours.errors import Forbidden, NotAuthenticated


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


def require_api_token(request: Request, db: Database = Depends(database)) -> str:
    """The calling token's name. Write keys are refused here: they can send events, never read."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "basic":
        raise Forbidden("write keys can only send events; use an API token (Authorization: Bearer …)")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("an API token is required (Authorization: Bearer …)")
    with db.read() as session:
        return service.check_token(session, token.strip())
