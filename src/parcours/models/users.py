from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from parcours.db.base import Base


class User(Base):
    """A person who signs in to the console. ``role``: agent, supervisor, store_associate, marketer,
    admin. Agents, supervisors and admins answer customers through their linked inbox ``agent``; a store
    associate works in one store (``location_id``)."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(20))
    locale: Mapped[str] = mapped_column(String(8))  # "en" or "fr"
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id, salted
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id"))
    location_id: Mapped[str | None] = mapped_column(ForeignKey("locations.id"))
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class ConsoleSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 digest is stored, beside the
    session's CSRF token (sent back in every form)."""

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_user_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie's token
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
