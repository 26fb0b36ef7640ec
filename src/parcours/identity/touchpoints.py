"""What the identity domain is handed to record: one validated touchpoint per incoming event."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class ConsentChange:
    channel: str  # "*" = every channel
    purpose: str
    granted: bool


@dataclass
class Touchpoint:
    """A validated event: who sent it, on which channel, when, and the identifiers it carries."""

    source_id: str
    message_id: str
    type: str
    channel: str
    timestamp: datetime
    received_at: datetime
    # Normalised usable identifiers, sorted by kind priority (highest first), no duplicates.
    identifiers: list[tuple[str, str]]
    name: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    # alias(): the id the person was known by before (a user id or an anonymous id).
    previous_id: str | None = None
    traits: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    consents: list[ConsentChange] = field(default_factory=list)


@dataclass
class RecordOutcome:
    """What happened to each touchpoint handed to ``record_touchpoints``, in the same order."""

    status: list[str]  # "recorded", "duplicate" or "erased"
    event_ids: list[str | None]
    profile_ids: list[str | None]

    @property
    def recorded(self) -> int:
        return self.status.count("recorded")

    @property
    def duplicates(self) -> int:
        return self.status.count("duplicate")

    @property
    def erased(self) -> int:
        return self.status.count("erased")


def iso_key(moment: datetime) -> str:
    """A UTC timestamp as a fixed-width string that sorts in time order."""
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")[:26] + "Z"  # as strftime("%Y-%m-%dT%H:%M:%S.%fZ")
