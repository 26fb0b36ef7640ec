from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from parcours.db.base import Base
from parcours.db.types import BigIntKey


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


class SourceActivity(Base):
    """What a source sent on one UTC day: the events received, and of them those recorded, those already
    recorded (a replayed ``messageId``), those dropped (an erased person's) and those refused as invalid;
    and the requests refused as a whole (unreadable, too large), whose events could not be counted."""

    __tablename__ = "source_activity"

    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    received: Mapped[int] = mapped_column(BigInteger)
    recorded: Mapped[int] = mapped_column(BigInteger)
    duplicates: Mapped[int] = mapped_column(BigInteger)
    erased: Mapped[int] = mapped_column(BigInteger)
    invalid: Mapped[int] = mapped_column(BigInteger)
    refused_requests: Mapped[int] = mapped_column(BigInteger)
    last_received_at: Mapped[datetime]


class SourceRejection(Base):
    """An event a source sent that was refused, and why: the latest of each source, for a while, so that
    whoever wires an SDK to it sees what it gets wrong (SDKs do not show the API's answers). The event
    itself is not kept."""

    __tablename__ = "source_rejections"
    __table_args__ = (Index("ix_source_rejections_source", "source_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"))
    received_at: Mapped[datetime]
    endpoint: Mapped[str] = mapped_column(String(16))  # batch, identify, track, …
    position: Mapped[int | None] = mapped_column(Integer)  # the event's index; None: the whole request
    message_id: Mapped[str | None] = mapped_column(String(100))
    type: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(String(400))
