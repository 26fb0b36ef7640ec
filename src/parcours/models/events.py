from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from parcours.db.base import Base
from parcours.db.types import BigIntKey


class Event(Base):
    """One touchpoint on one channel, attributed to the profile it resolved to."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("source_id", "message_id"),
        Index("ix_events_profile_time", "profile_id", "timestamp", "id"),
    )

    seq: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id"))
    message_id: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(40))
    # The profile the event belongs to now (moves with merges and unmerges) ...
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"))
    # ... and the profile it was attributed to before any merge moved it (drives unmerge).
    origin_profile_id: Mapped[str] = mapped_column(String(40))
    timestamp: Mapped[datetime]
    received_at: Mapped[datetime]
    user_id: Mapped[str | None] = mapped_column(String(200))
    anonymous_id: Mapped[str | None] = mapped_column(String(200))
    # Normalised usable identifiers the event carried, as "kind:value", in priority order.
    identifiers: Mapped[list[str]]
    traits: Mapped[dict[str, Any] | None]
    properties: Mapped[dict[str, Any] | None]
    context: Mapped[dict[str, Any] | None]
