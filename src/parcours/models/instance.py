from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from parcours.db.base import Base


class InstanceSetting(Base):
    """Per-installation values created by the migrations (e.g. the secret that keys tombstone hashes)."""

    __tablename__ = "instance_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def read_setting(session: Session, key: str) -> str | None:
    stored = session.get(InstanceSetting, key)
    return stored.value if stored is not None else None


def write_setting(session: Session, key: str, value: str) -> None:
    """Create or replace an installation-wide value (a trained model, business hours...)."""
    stored = session.get(InstanceSetting, key)
    if stored is None:
        session.add(InstanceSetting(key=key, value=value))
    else:
        stored.value = value
    session.flush()
