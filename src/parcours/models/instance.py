from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from parcours.db.base import Base


class InstanceSetting(Base):
    """Per-installation values created by the migrations (e.g. the secret that keys tombstone hashes)."""

    __tablename__ = "instance_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Counter(Base):
    """A number handed out in order (order numbers): kept apart from the settings, which are reference
    data every transaction may keep, while a counter changes with every use."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class ReferenceVersion(Base):
    """One row: a random token that triggers replace whenever reference data changes
    (``parcours.db.reference``)."""

    __tablename__ = "reference_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(32))


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
