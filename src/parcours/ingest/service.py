"""Validate a request's messages, then hand the valid ones to identity resolution in one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from parcours.auth.service import SourceInfo
from parcours.config import Settings
from parcours.db.types import utcnow
from parcours.identity import service as identity
from parcours.identity.kinds import KindRegistry
from parcours.identity.resolution import GraphCache
from parcours.identity.touchpoints import RecordOutcome, Touchpoint
from parcours.ingest.parse import InvalidEvent, ParseLimits, parse_message, parse_time
from parcours.matching.realtime import load_policy


@dataclass
class IngestResult:
    received: int
    recorded: int = 0
    duplicates: int = 0
    erased: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def count(self, outcome: RecordOutcome) -> None:
        """Take in what identity resolution did with the valid events."""
        self.recorded, self.duplicates, self.erased = outcome.recorded, outcome.duplicates, outcome.erased

    def as_response(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "success": not self.errors,
            "received": self.received,
            "accepted": self.recorded + self.duplicates + self.erased,
            "recorded": self.recorded,
            "duplicates": self.duplicates,
        }
        if self.erased:
            body["dropped_erased"] = self.erased
        if self.errors:
            body["errors"] = self.errors
        return body


def limits_from(settings: Settings) -> ParseLimits:
    return ParseLimits(
        max_event_bytes=settings.max_event_bytes,
        earliest=datetime(settings.earliest_event_year, 1, 1, tzinfo=utcnow().tzinfo),
        max_future=timedelta(hours=settings.max_future_skew_hours),
    )


def parse_messages(
    registry: KindRegistry,
    settings: Settings,
    source: SourceInfo,
    messages: list[Any],
    *,
    expected_type: str | None,
    sent_at: Any = None,
    batch_context: Mapping[str, Any] | None = None,
    received_at: datetime | None = None,
) -> tuple[list[Touchpoint], IngestResult]:
    """Validate every message (no database needed): the touchpoints, and a result listing the invalid.

    ``batch_context``: a batch's own ``context`` (Segment's HTTP API), which applies to every event of the
    batch; a key an event's own context gives wins."""
    received_at = received_at or utcnow()
    result = IngestResult(received=len(messages))
    try:
        batch_sent_at = parse_time(sent_at, "sentAt")
    except InvalidEvent:
        batch_sent_at = None
    limits = limits_from(settings)
    touchpoints: list[Touchpoint] = []
    for index, message in enumerate(messages):
        if batch_context and isinstance(message, dict):
            own = message.get("context")
            if own is None or isinstance(own, dict):  # any other value is refused by parse_message
                message = {**message, "context": {**batch_context, **(own or {})}}
        try:
            touchpoints.append(
                parse_message(
                    message,
                    expected_type=expected_type,
                    source_id=source.id,
                    default_channel=source.channel,
                    registry=registry,
                    received_at=received_at,
                    batch_sent_at=batch_sent_at,
                    limits=limits,
                )
            )
        except InvalidEvent as error:
            result.errors.append({"index": index, "error": str(error)})
    return touchpoints, result


def record_valid(
    session: Session,
    settings: Settings,
    registry: KindRegistry,
    touchpoints: list[Touchpoint],
    result: IngestResult,
    *,
    cache: GraphCache | None = None,
) -> IngestResult:
    """Resolve and store the valid touchpoints in the caller's (write) transaction."""
    if touchpoints:
        outcome = identity.record_touchpoints(
            session, registry, touchpoints, cache=cache, matching=load_policy(session, settings)
        )
        result.count(outcome)
    return result


def ingest_messages(
    session: Session,
    settings: Settings,
    source: SourceInfo,
    messages: list[Any],
    *,
    expected_type: str | None,
    sent_at: Any = None,
    received_at: datetime | None = None,
    cache: GraphCache | None = None,
) -> IngestResult:
    """Validate and record in one transaction. Each invalid message is reported by index and writes
    nothing; the valid ones are all kept."""
    registry = identity.load_registry(session, settings.default_phone_region)
    touchpoints, result = parse_messages(
        registry,
        settings,
        source,
        messages,
        expected_type=expected_type,
        sent_at=sent_at,
        received_at=received_at,
    )
    return record_valid(session, settings, registry, touchpoints, result, cache=cache)
