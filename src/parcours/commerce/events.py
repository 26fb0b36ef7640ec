"""Commerce notifications as events on the customer's timeline (reservation held, expired, collected;
order placed, ready; return received): every channel — and every system reading the timeline — sees them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from parcours.auth.service import internal_source
from parcours.ids import new_id
from parcours.models import Event

SOURCE_NAME = "Commerce"


def timeline_event(session: Session, profile_id: str | None, name: str, channel: str,
                   properties: dict[str, Any], now: datetime) -> str | None:  # fmt: skip
    """Record ``name`` on the profile's timeline (nothing without a profile); returns the event id."""
    if profile_id is None:
        return None
    event_id = new_id("evt")
    source = internal_source(session, SOURCE_NAME, "other")
    session.execute(insert(Event).values(
        id=event_id, source_id=source.id, message_id=event_id, type="track", name=name,
        channel=channel, profile_id=profile_id, origin_profile_id=profile_id, timestamp=now, received_at=now,
        user_id=None, anonymous_id=None, identifiers=[], traits=None, properties=properties, context=None))  # fmt: skip
    return event_id
