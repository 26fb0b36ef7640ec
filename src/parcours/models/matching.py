from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from parcours.db.base import Base
from parcours.db.types import BigIntKey


class MatchKey(Base):
    """A blocking key of a profile's matching traits: profiles sharing a key are match candidates."""

    __tablename__ = "match_keys"
    __table_args__ = (Index("ix_match_keys_key", "key"), Index("ix_match_keys_profile", "profile_id"))

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    profile_id: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(400))


class MatchReview(Base):
    """A pair of profiles the matcher found likely but not certain to be one person, for a person to
    decide. ``profile_a`` < ``profile_b``; a rejected pair is never proposed again."""

    __tablename__ = "match_reviews"
    __table_args__ = (UniqueConstraint("profile_a", "profile_b"), Index("ix_match_reviews_status", "status"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    profile_a: Mapped[str] = mapped_column(String(40))
    profile_b: Mapped[str] = mapped_column(String(40))
    probability: Mapped[float] = mapped_column(Float)
    # Per comparison: {"field", "level", "weight"} (weight: log2 Bayes factor).
    evidence: Mapped[list[Any]]
    status: Mapped[str] = mapped_column(String(16))  # pending, accepted, rejected, superseded
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    merge_id: Mapped[str | None] = mapped_column(String(40))
