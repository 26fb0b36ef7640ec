"""The Segment-compatible tracking API: /v1/identify, track, page, screen, alias, group, batch, and the
short paths analytics.js posts to (/v1/i, /v1/t, … /v1/b)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from parcours.auth import service as auth
from parcours.auth.endpoints import require_api_token, write_key_from
from parcours.auth.service import SourceInfo
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.db.types import utcnow
from parcours.deps import JsonResponse, database, read_body, settings
from parcours.errors import InvalidInput, NotAuthenticated, ParcoursError, PayloadTooLarge
from parcours.identity import service as identity
from parcours.identity.kinds import KindRegistry
from parcours.ingest.activity import (
    RequestActivity,
    recent_activity,
    refused_request,
    rejections_of,
    source_activity,
)
from parcours.ingest.parse import InvalidEvent, parse_time
from parcours.ingest.service import IngestResult, parse_messages
from parcours.ingest.writer import IngestItem, IngestWriter
from parcours.inputs import iso_z
from parcours.vocabulary import EVENT_TYPES

router = APIRouter(tags=["tracking"])
log = logging.getLogger("parcours.ingest")


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise InvalidInput("body: empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"body: malformed JSON ({error})") from None


async def _validate(
    db: Database,
    config: Settings,
    write_key: str,
    messages: list[Any],
    expected_type: str | None,
    sent_at: Any,
    batch_context: dict[str, Any] | None,
) -> tuple[IngestItem, IngestResult]:
    """Authenticate and validate outside the write transaction: the writer holds the database's write
    lock only for identity resolution and the inserts. A batch (up to 500 KB of events to parse) is
    parsed in the thread pool; one event (up to 32 KB) costs less to parse right here than the hand-off
    to a thread and back."""
    if expected_type is None:
        return await run_in_threadpool(
            _validate_batch, db, config, write_key, messages, sent_at, batch_context
        )
    source, registry = await db.short_read(lambda session: _sender(session, config, write_key))
    return _parse(config, source, registry, messages, expected_type, sent_at, batch_context)


def _sender(session: Session, config: Settings, write_key: str) -> tuple[SourceInfo, KindRegistry]:
    source = auth.source_for_write_key(session, write_key)
    return source, identity.load_registry(session, config.default_phone_region)


def _validate_batch(
    db: Database,
    config: Settings,
    write_key: str,
    messages: list[Any],
    sent_at: Any,
    batch_context: dict[str, Any] | None,
) -> tuple[IngestItem, IngestResult]:
    with db.read() as session:
        source, registry = _sender(session, config, write_key)
    return _parse(config, source, registry, messages, None, sent_at, batch_context)


def _parse(
    config: Settings,
    source: SourceInfo,
    registry: KindRegistry,
    messages: list[Any],
    expected_type: str | None,
    sent_at: Any,
    batch_context: dict[str, Any] | None,
) -> tuple[IngestItem, IngestResult]:
    received_at = utcnow()
    touchpoints, result = parse_messages(
        registry,
        config,
        source,
        messages,
        expected_type=expected_type,
        sent_at=sent_at,
        batch_context=batch_context,
        received_at=received_at,
    )
    activity = RequestActivity(
        source.id,
        expected_type or "batch",
        received_at,
        received=len(messages),
        rejections=rejections_of(messages, result.errors),
    )
    return IngestItem(registry, touchpoints, activity), result


async def _handle(
    request: Request, db: Database, config: Settings, expected_type: str | None
) -> JsonResponse:
    write_key = write_key_from(request)
    try:
        limit = config.max_batch_bytes if expected_type is None else config.max_event_bytes
        payload = parse_json(await read_body(request, limit, gzip=True))
        if not isinstance(payload, dict):
            raise InvalidInput(f"body: must be a JSON object, not {type(payload).__name__}")
        if write_key is None and isinstance(payload.get("writeKey"), str):
            write_key = payload["writeKey"]
        if not write_key:
            raise NotAuthenticated("a write key is required (HTTP Basic, the key as user name)")
        if expected_type is None:
            messages = payload.get("batch")
            if not isinstance(messages, list):
                raise InvalidInput("batch: must be a list of events")
            if not messages:
                raise InvalidInput("batch: must contain at least one event")
            try:  # the batch's sentAt corrects every event's clock skew: a bad one is refused, not ignored
                parse_time(payload.get("sentAt"), "sentAt")
            except InvalidEvent as error:
                raise InvalidInput(str(error)) from None
            batch_context = payload.get("context")  # applies to every event (Segment's HTTP API)
            if batch_context is not None and not isinstance(batch_context, dict):
                raise InvalidInput(f"context: must be an object, not {type(batch_context).__name__}")
        else:
            messages = [payload]
            batch_context = None
    except (InvalidInput, PayloadTooLarge) as error:
        if write_key:  # a source's own request, refused as a whole: counted on its activity
            await _count_refused_request(
                request, db, config, write_key, expected_type or "batch", error.message
            )
        raise
    item, result = await _validate(
        db, config, write_key, messages, expected_type, payload.get("sentAt"), batch_context
    )
    writer: IngestWriter = request.app.state.ingest_writer
    outcome = await writer.submit_async(item)  # refused events too: the source's activity counts them
    if item.touchpoints:
        result.count(outcome)
    log.info(
        "ingested",
        extra={
            "endpoint": expected_type or "batch",
            "received": result.received,
            "recorded": result.recorded,
            "duplicates": result.duplicates,
            "invalid": len(result.errors),
        },
    )
    if result.errors and len(result.errors) == result.received:
        first = result.errors[0]["error"]
        raise InvalidInput(
            f"no valid event: {first}"
            if result.received == 1
            else f"no valid event ({result.received} invalid)",
            details=result.errors,
        )
    return JsonResponse(result.as_response())


async def _count_refused_request(
    request: Request, db: Database, config: Settings, write_key: str, endpoint: str, reason: str
) -> None:
    """Count a request refused as a whole on the activity of the source its write key names, if any."""
    try:
        source, registry = await db.short_read(lambda session: _sender(session, config, write_key))
    except ParcoursError:  # an unknown or refused write key: no source to count it on
        return
    writer: IngestWriter = request.app.state.ingest_writer
    try:
        await writer.submit_async(IngestItem(registry, [], refused_request(source.id, endpoint, reason)))
    except Exception:  # counting must never stand in the way of the refusal's own answer
        log.warning("a refused request could not be counted", exc_info=True)


def _endpoint(expected_type: str | None) -> Any:
    async def endpoint(
        request: Request, db: Database = Depends(database), config: Settings = Depends(settings)
    ) -> JsonResponse:
        return await _handle(request, db, config, expected_type)

    endpoint.__name__ = f"ingest_{expected_type or 'batch'}"
    return endpoint


# analytics.js, Segment's browser SDK, posts each call to the first letter of its type (/v1/t for a
# track) and its batches to /v1/b (as the mobile SDKs do), the write key in the body, as text/plain.
for _type in EVENT_TYPES:
    router.add_api_route(f"/v1/{_type}", _endpoint(_type), methods=["POST"], summary=f"Segment {_type} call")
    router.add_api_route(
        f"/v1/{_type[0]}",
        _endpoint(_type),
        methods=["POST"],
        summary=f"Segment {_type} call (analytics.js path)",
    )
for _path, _summary in (
    ("/v1/batch", "Segment batch of calls"),
    ("/v1/import", "Segment import (same as batch)"),
    ("/v1/b", "Segment batch of calls (analytics.js and mobile path)"),
):
    router.add_api_route(_path, _endpoint(None), methods=["POST"], summary=_summary)
# Every path the tracking API answers on: the ones a web page may call from the browser (see browser_sdk).
TRACKING_PATHS = frozenset(route.path for route in router.routes if isinstance(route, APIRoute))

# Each source's activity, for whoever wires an SDK to it or watches it (API tokens only).
sources_router = APIRouter(tags=["sources"], dependencies=[Depends(require_api_token)])


@sources_router.get("/v1/sources")
def get_sources(db: Database = Depends(database)) -> JsonResponse:
    """Every source (disabled ones last), with when its last event came and the events it had recorded
    and refused today and yesterday (UTC)."""
    with db.read() as session:
        sources = auth.list_sources(session, include_disabled=True)
        recent = recent_activity(session, [s.id for s in sources])
    data = []
    for source in sources:
        last, recorded, invalid = recent.get(source.id, (None, 0, 0))
        data.append(
            {
                "id": source.id,
                "name": source.name,
                "channel": source.channel,
                "internal": source.internal,
                "created_at": iso_z(source.created_at),
                "disabled_at": iso_z(source.disabled_at),
                "last_received_at": iso_z(last),
                "recorded_since_yesterday": recorded,
                "invalid_since_yesterday": invalid,
            }
        )
    return JsonResponse({"data": data})


@sources_router.get("/v1/sources/{source_id}/activity")
def get_source_activity(
    source_id: str, days: int = Query(default=14), db: Database = Depends(database)
) -> JsonResponse:
    """The source's events per UTC day (received, recorded, duplicates, erased, invalid) and its latest
    refused events with the reason."""
    with db.read() as session:
        return JsonResponse(source_activity(session, source_id, days=days))
