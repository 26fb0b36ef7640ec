"""What every endpoint needs from the running app: the database and the settings."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request, Response

from parcours.config import Settings
from parcours.db.engine import Database


def database(request: Request) -> Database:
    db: Database = request.app.state.database
    return db


def settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


class JsonResponse(Response):
    """JSON rendered with orjson (datetimes, non-str keys), the API's one response class."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
