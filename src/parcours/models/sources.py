from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String, false
from sqlalchemy.orm import Mapped, mapped_column

from parcours.db.base import Base


class Source(Base):
    """A sender of events (web shop, app, store tills…) with its write key and default channel."""

    __tablename__ = "sources"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    channel: Mapped[str] = mapped_column(String(40))
    write_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]
    # Parcours's own sources (the inbox's channels, commerce): their write key is never handed out and
    # they cannot be disabled.
    internal: Mapped[bool] = mapped_column(Boolean, server_default=false())


class ApiToken(Base):
    """A bearer token for the read/management API. Only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
