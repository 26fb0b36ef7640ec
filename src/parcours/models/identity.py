from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from parcours.db.base import Base
from parcours.db.types import BigIntKey


class IdentifierKind(Base):
    """The registry of identifier kinds and their merge rules."""

    __tablename__ = "identifier_kinds"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    # Lower number = higher priority when an event's identifiers point at different profiles.
    priority: Mapped[int] = mapped_column(Integer)
    max_per_profile: Mapped[int] = mapped_column(Integer)
    # How values are normalised: email, phone, text (trimmed, case kept), lower (trimmed, lower case).
    normalizer: Mapped[str] = mapped_column(String(16))
    blocked_values: Mapped[list[str]]
    blocked_patterns: Mapped[list[str]]
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(Text, default="")


class Profile(Base):
    """The unified customer. A merged-away profile keeps its row and points at its survivor."""

    __tablename__ = "profiles"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    merged_into_id: Mapped[str | None] = mapped_column(ForeignKey("profiles.id"), index=True)
    traits: Mapped[dict[str, Any]]
    # For each trait: [event timestamp ISO, event id] of the write that set it (last write wins).
    trait_times: Mapped[dict[str, Any]]


class Identifier(Base):
    """An identifier value of a kind. Unique: one identifier belongs to at most one profile."""

    __tablename__ = "identifiers"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(ForeignKey("identifier_kinds.name"))
    value: Mapped[str] = mapped_column(String(320))
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    # The event that first brought this identifier (None when added through the API).
    source_event_id: Mapped[str | None] = mapped_column(String(40))
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class Merge(Base):
    """A recorded merge of ``merged_id`` into ``survivor_id``, with what is needed to undo it."""

    __tablename__ = "merges"
    __table_args__ = (Index("ix_merges_survivor", "survivor_id", "undone_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    survivor_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"))
    merged_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    event_id: Mapped[str | None] = mapped_column(String(40))
    # The identifiers of the event that linked the two profiles ("kind:value").
    linking_identifiers: Mapped[list[str]]
    rule: Mapped[str] = mapped_column(String(200))
    # The identifiers ("kind:value") each side held at merge time, and the merged side's API consent rows.
    survivor_identifiers: Mapped[list[str]]
    merged_identifiers: Mapped[list[str]]
    merged_consent_ids: Mapped[list[Any]]
    # A merge no event caused (probabilistic, accepted from review, by hand): the last event ``seq``
    # stored when it was made. Unmerge sends the events that came after it to the side their identifiers
    # belong to, as it does for the events since a merge's own event.
    replay_after_seq: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    undone_at: Mapped[datetime | None]


class MergeBlock(Base):
    """Two profiles that must never be merged again (written by unmerge)."""

    __tablename__ = "merge_blocks"
    __table_args__ = (UniqueConstraint("profile_a", "profile_b"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    profile_a: Mapped[str] = mapped_column(String(40), index=True)
    profile_b: Mapped[str] = mapped_column(String(40), index=True)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class IdentityConflict(Base):
    """An event whose identifiers pointed at several profiles that a rule kept apart, or that it could not
    attach all of; for review: dismissed (the rule was right) or merged by a person."""

    __tablename__ = "identity_conflicts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), index=True)
    attached_profile_id: Mapped[str] = mapped_column(String(40), index=True)
    other_profile_ids: Mapped[list[str]]
    identifiers: Mapped[list[str]]
    rule: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open, dismissed or merged
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(200))
    merge_id: Mapped[str | None] = mapped_column(String(40))  # the merge that made its profiles one

    @property
    def named_profile_ids(self) -> list[str]:
        """The profiles it names: the one its event went to, then those kept apart, each once."""
        return list(dict.fromkeys([self.attached_profile_id, *self.other_profile_ids]))


class IdentityConflictProfile(Base):
    """One profile a conflict names (the one its event went to, or one kept apart): finds a customer's
    conflicts by index, which the conflict's JSON list of profiles cannot on both backends. Written with
    the conflict, deleted with it."""

    __tablename__ = "identity_conflict_profiles"

    profile_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    conflict_id: Mapped[str] = mapped_column(
        ForeignKey("identity_conflicts.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Consent(Base):
    """One consent decision for a channel and purpose. The newest by ``recorded_at`` is in force."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_profile", "profile_id", "channel", "purpose"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"))
    channel: Mapped[str] = mapped_column(String(40))  # "*" means every channel
    purpose: Mapped[str] = mapped_column(String(60))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(160))
    event_id: Mapped[str | None] = mapped_column(String(40), index=True)
    recorded_at: Mapped[datetime]


class Tombstone(Base):
    """A keyed hash of an erased identifier: replayed old events for it are dropped."""

    __tablename__ = "tombstones"
    __table_args__ = (UniqueConstraint("identifier_hash"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    identifier_hash: Mapped[str] = mapped_column(String(64))
    erased_at: Mapped[datetime]


class IdentityGraphVersion(Base):
    """One row that every writer of the identity graph sets to a new random token, under the graph lock.

    A process that keeps part of the graph in memory between transactions (``GraphCache``) trusts it
    only while the row still holds the token its own last write left there."""

    __tablename__ = "identity_graph_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(40))
