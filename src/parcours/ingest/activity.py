"""What each source sends through the tracking API: per UTC day, the events received and what became of
them (recorded, duplicates, an erased person's, invalid), when the last one came, and the latest refused
events with the reason. SDKs do not show the API's answers, so this is how whoever wires one to a source
sees that its events arrive, and what it gets wrong, without reading the server's logs (Segment's
debugger). Written by the ingestion writer in the transaction that stores the events: one statement per
source and day, plus the refused events, per batch."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from parcours.db.base import table_of
from parcours.db.types import utcnow
from parcours.errors import InvalidInput, NotFound
from parcours.inputs import iso_z
from parcours.models import Source, SourceActivity, SourceRejection

# The refused events kept per source (the latest), and for how long.
KEEP_REJECTIONS = 100
KEEP_REJECTIONS_FOR = timedelta(days=7)
MAX_DAYS = 90
# A source's counts of a day, as stored and as answered.
COUNTS = ("received", "recorded", "duplicates", "erased", "invalid", "refused_requests")
MESSAGE_ID_CHARS = 100
ERROR_CHARS = 400


@dataclass
class RequestActivity:
    """One request's share of a source's day: its events and what became of them."""

    source_id: str
    endpoint: str
    received_at: datetime
    received: int
    rejections: list[dict[str, Any]] = field(default_factory=list)
    refused_whole: bool = False  # the request itself was refused: ``rejections`` says why
    recorded: int = 0
    duplicates: int = 0
    erased: int = 0


def rejections_of(messages: list[Any], errors: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The refused events of a request (``errors``: index and reason, as the API answers them), with the
    ``messageId`` and ``type`` each named, when they are short strings."""

    def short(message: Any, key: str, limit: int) -> str | None:
        value = message.get(key) if isinstance(message, dict) else None
        return value if isinstance(value, str) and 0 < len(value) <= limit else None

    return [
        {
            "position": error["index"],
            "message_id": short(messages[error["index"]], "messageId", MESSAGE_ID_CHARS),
            "type": short(messages[error["index"]], "type", 16),
            "error": str(error["error"])[:ERROR_CHARS],
        }
        for error in errors
    ]


@cache
def _add_to_day(dialect: str) -> Any:
    """``INSERT … ON CONFLICT (source_id, day) DO UPDATE``: counts added to the day's row."""
    table = table_of(SourceActivity)
    insert: Any = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    added = {name: table.c[name] + insert.excluded[name] for name in COUNTS}
    return insert.on_conflict_do_update(
        index_elements=["source_id", "day"],
        set_={
            **added,
            "last_received_at": func.max(table.c.last_received_at, insert.excluded.last_received_at)
            if dialect == "sqlite"
            else func.greatest(table.c.last_received_at, insert.excluded.last_received_at),
        },
    )


def record_activity(session: Session, requests: list[RequestActivity]) -> None:
    """Add the requests' events to their sources' days, and keep their refused events."""
    days: dict[tuple[str, date], dict[str, Any]] = {}
    for request in requests:
        key = (request.source_id, request.received_at.date())
        row = days.setdefault(
            key,
            {
                "source_id": key[0],
                "day": key[1],
                **dict.fromkeys(COUNTS, 0),
                "last_received_at": request.received_at,
            },
        )
        row["received"] += request.received
        row["recorded"] += request.recorded
        row["duplicates"] += request.duplicates
        row["erased"] += request.erased
        if request.refused_whole:
            row["refused_requests"] += 1
        else:
            row["invalid"] += len(request.rejections)
        row["last_received_at"] = max(row["last_received_at"], request.received_at)
    if not days:
        return
    connection = session.connection()
    # In key order: two writers adding to the same days lock their rows in the same order (no deadlock).
    connection.execute(_add_to_day(connection.dialect.name), [days[key] for key in sorted(days)])
    refused = [
        {"source_id": r.source_id, "received_at": r.received_at, "endpoint": r.endpoint, **rejection}
        for r in requests
        for rejection in r.rejections
    ]
    if refused:
        connection.execute(table_of(SourceRejection).insert(), refused)
        for source_id in {row["source_id"] for row in refused}:
            _prune(session, source_id)


def _prune(session: Session, source_id: str) -> None:
    """Only the latest ``KEEP_REJECTIONS`` of a source, none older than ``KEEP_REJECTIONS_FOR``."""
    oldest_kept = session.scalar(
        select(SourceRejection.id)
        .where(SourceRejection.source_id == source_id)
        .order_by(SourceRejection.id.desc())
        .offset(KEEP_REJECTIONS - 1)
        .limit(1)
    )
    too_old = SourceRejection.received_at < utcnow() - KEEP_REJECTIONS_FOR
    stale = too_old if oldest_kept is None else too_old | (SourceRejection.id < oldest_kept)
    session.execute(delete(SourceRejection).where(SourceRejection.source_id == source_id, stale))


def refused_request(source_id: str, endpoint: str, reason: str) -> RequestActivity:
    """A request of the source refused as a whole (unreadable, too large, not a batch): counted, and kept
    with the reason like a refused event."""
    rejection = {"position": None, "message_id": None, "type": None, "error": reason[:ERROR_CHARS]}
    return RequestActivity(source_id, endpoint, utcnow(), 0, [rejection], refused_whole=True)


def source_activity(session: Session, source_id: str, *, days: int = 14) -> dict[str, Any]:
    """A source's last ``days`` UTC days (today included, newest first; a day with nothing is zeros),
    when its last request came (refused or not), and its latest refused events (newest first)."""
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days: must be between 1 and {MAX_DAYS}")
    source = session.get(Source, source_id[:60])
    if source is None:
        raise NotFound(f"source {source_id[:60]} not found")
    today = utcnow().date()
    first = today - timedelta(days=days - 1)
    stored = {
        row.day: row
        for row in session.scalars(
            select(SourceActivity).where(SourceActivity.source_id == source.id, SourceActivity.day >= first)
        )
    }
    last = session.scalar(
        select(func.max(SourceActivity.last_received_at)).where(SourceActivity.source_id == source.id)
    )
    rejections = session.scalars(
        select(SourceRejection)
        .where(
            SourceRejection.source_id == source.id,
            SourceRejection.received_at >= utcnow() - KEEP_REJECTIONS_FOR,
        )
        .order_by(SourceRejection.id.desc())
        .limit(KEEP_REJECTIONS)
    )
    return {
        "source": {"id": source.id, "name": source.name, "channel": source.channel},
        "last_received_at": iso_z(last),
        "days": [
            {
                "day": day.isoformat(),
                **{name: getattr(stored[day], name) if day in stored else 0 for name in COUNTS},
            }
            for day in (today - timedelta(days=n) for n in range(days))
        ],
        "rejections": [
            {
                "received_at": iso_z(r.received_at),
                "endpoint": r.endpoint,
                "position": r.position,
                "message_id": r.message_id,
                "type": r.type,
                "error": r.error,
            }
            for r in rejections
        ],
    }


def recent_activity(
    session: Session, source_ids: Iterable[str]
) -> dict[str, tuple[datetime | None, int, int]]:
    """For each source that sent anything: when its last request came, and the events it had recorded and
    refused (requests refused as a whole count as one) today and yesterday (UTC days)."""
    wanted = list(source_ids)
    if not wanted:
        return {}
    since = utcnow().date() - timedelta(days=1)
    found: dict[str, tuple[datetime | None, int, int]] = {}
    for source_id, last, recent_recorded, recent_invalid in session.execute(
        select(
            SourceActivity.source_id,
            func.max(SourceActivity.last_received_at),
            func.sum(SourceActivity.recorded).filter(SourceActivity.day >= since),
            func.sum(SourceActivity.invalid + SourceActivity.refused_requests).filter(
                SourceActivity.day >= since
            ),
        )
        .where(SourceActivity.source_id.in_(wanted))
        .group_by(SourceActivity.source_id)
    ):
        found[source_id] = (last, int(recent_recorded or 0), int(recent_invalid or 0))
    return found
