from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from parcours.db.base import Base


class InstanceSetting(Base):
    """Per-installation values created by the migrations (e.g. the secret that keys tombstone hashes)."""

    __tablename__ = "instance_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
