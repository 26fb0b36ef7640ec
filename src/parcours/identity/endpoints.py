"""The unified-profile API (API tokens only): view, timeline, lookup, unmerge, consent, GDPR."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query
from sqlalchemy.orm import Session

from parcours.auth.endpoints import require_api_token
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.deps import JsonResponse, database, settings
from parcours.errors import InvalidInput
from parcours.identity import service
from parcours.identity.schemas import (
    ConflictMerge,
    ConflictReview,
    ConsentIn,
    KindIn,
    KindUpdate,
    MergeIn,
    UnmergeIn,
)
from parcours.matching import review

router = APIRouter(tags=["profiles"], dependencies=[Depends(require_api_token)])


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@router.get("/v1/profiles")
async def find_profile(
    identifier: str = Query(description="KIND:VALUE, e.g. phone:06 12 34 56 78"),
    db: Database = Depends(database),
    config: Settings = Depends(settings),
) -> JsonResponse:
    def view(session: Session) -> dict[str, Any]:
        profile_id = service.find_profile_by(session, config.default_phone_region, identifier)
        return service.profile_view(session, profile_id)

    return JsonResponse(await db.short_read(view))


@router.get("/v1/profiles/{profile_id}")
async def get_profile(profile_id: str, db: Database = Depends(database)) -> JsonResponse:
    return JsonResponse(await db.short_read(lambda session: service.profile_view(session, profile_id)))


@router.get("/v1/profiles/{profile_id}/timeline")
async def get_timeline(
    profile_id: str,
    limit: int = Query(default=50),
    cursor: str | None = None,
    channel: list[str] | None = Query(default=None, description="channel name(s), repeat or comma-separate"),
    type: list[str] | None = Query(default=None, description="event type(s): identify, track, page, …"),
    order: str | None = Query(default=None, description="asc (oldest first, the default) or desc"),
    since: str | None = Query(default=None, description="ISO-8601: events at or after this time"),
    until: str | None = Query(default=None, description="ISO-8601: events before this time"),
    db: Database = Depends(database),
) -> JsonResponse:
    channels, types = _split(channel), _split(type)

    def page(session: Session) -> dict[str, Any]:
        return service.timeline(
            session,
            profile_id,
            limit=limit,
            cursor=cursor,
            channels=channels,
            types=types,
            order=order,
            since=since,
            until=until,
        )

    return JsonResponse(await db.short_read(page))


@router.post("/v1/profiles/{profile_id}/merge")
def merge_profile(
    profile_id: str,
    body: MergeIn,
    token: str = Depends(require_api_token),
    db: Database = Depends(database),
    config: Settings = Depends(settings),
) -> JsonResponse:
    """The same customer: merge the other profile (by id or identifier) with this one, recorded and
    reversible with unmerge. The older profile survives; both ids keep answering."""
    with db.write() as session:
        other = service.named_profile(
            session, config.default_phone_region, profile_id=body.profile_id, identifier=body.identifier
        )
        if other is None:
            raise InvalidInput("give the other profile: profile_id or identifier")
        registry = service.load_registry(session, config.default_phone_region)
        return JsonResponse(
            service.merge_customers(
                session, registry, profile_id, other, actor=f"API token {token}", reason=body.reason
            )
        )


@router.post("/v1/profiles/{profile_id}/unmerge")
def unmerge_profile(
    profile_id: str, body: UnmergeIn | None = Body(default=None), db: Database = Depends(database)
) -> JsonResponse:
    with db.write() as session:
        merge = service.unmerge(session, profile_id, body.merge_id if body else None)
        result: dict[str, Any] = {
            "merge_id": merge.id,
            "survivor": service.profile_view(session, merge.survivor_id),
            "restored": service.profile_view(session, merge.merged_id),
        }
    return JsonResponse(result)


@router.put("/v1/profiles/{profile_id}/consent")
def put_consent(profile_id: str, body: ConsentIn, db: Database = Depends(database)) -> JsonResponse:
    with db.write() as session:
        return JsonResponse(
            service.set_consent(
                session,
                profile_id,
                channel=body.channel,
                purpose=body.purpose,
                granted=body.granted,
                source=body.source,
            )
        )


@router.get("/v1/profiles/{profile_id}/export")
def export_profile(profile_id: str, db: Database = Depends(database)) -> JsonResponse:
    with db.read() as session:
        return JsonResponse(service.export_profile(session, profile_id))


@router.delete("/v1/profiles/{profile_id}")
def delete_profile(profile_id: str, db: Database = Depends(database)) -> JsonResponse:
    with db.write() as session:
        return JsonResponse(service.erase_profile(session, profile_id))


@router.get("/v1/identity/merges")
def get_merge_changes(
    since: str | None = Query(default=None, description="ISO-8601: changes at or after this time"),
    cursor: str | None = None,
    limit: int = Query(default=100),
    db: Database = Depends(database),
) -> JsonResponse:
    """Every merge and unmerge, oldest first: how a system that stores profile ids follows them."""
    with db.read() as session:
        return JsonResponse(service.merge_changes(session, since=since, cursor=cursor, limit=limit))


@router.get("/v1/identity/conflicts")
def get_conflicts(
    status: str | None = Query(default="open"),
    limit: int = Query(default=100),
    cursor: str | None = None,
    profile_id: str | None = None,
    db: Database = Depends(database),
) -> JsonResponse:
    """Identity conflicts, newest first, a page at a time (``next_cursor``); ``profile_id``: only those
    naming that customer (any of their profile ids)."""
    with db.read() as session:
        customer = (
            service.people(session, service.resolve_profile_id(session, profile_id[:60]))
            if profile_id
            else None
        )
        return JsonResponse(
            service.list_conflicts(
                session, status=status or None, limit=limit, cursor=cursor, involving=customer
            )
        )


@router.patch("/v1/identity/conflicts/{conflict_id}")
def patch_conflict(
    conflict_id: str,
    body: ConflictReview,
    token: str = Depends(require_api_token),
    db: Database = Depends(database),
) -> JsonResponse:
    """Dismiss a conflict once reviewed (the rule was right), or open a dismissed one again."""
    with db.write() as session:
        return JsonResponse(
            service.review_conflict(session, conflict_id, status=body.status, actor=f"API token {token}")
        )


@router.post("/v1/identity/conflicts/{conflict_id}/merge")
def merge_conflict(
    conflict_id: str,
    body: ConflictMerge | None = Body(default=None),
    token: str = Depends(require_api_token),
    db: Database = Depends(database),
    config: Settings = Depends(settings),
) -> JsonResponse:
    """The profiles the conflict kept apart are one customer: merge them by hand (recorded, reversible
    with unmerge; the merge rules still hold) and mark the conflict merged."""
    with db.write() as session:
        registry = service.load_registry(session, config.default_phone_region)
        return JsonResponse(
            service.merge_conflict(
                session,
                registry,
                conflict_id,
                actor=f"API token {token}",
                reason=body.reason if body is not None else None,
            )
        )


@router.get("/v1/identity/kinds")
def get_kinds(db: Database = Depends(database)) -> JsonResponse:
    with db.read() as session:
        return JsonResponse({"data": service.list_kinds(session)})


@router.post("/v1/identity/kinds", status_code=201)
def post_kind(body: KindIn, db: Database = Depends(database)) -> JsonResponse:
    with db.write() as session:
        return JsonResponse(service.add_kind(session, **body.model_dump()), status_code=201)


@router.patch("/v1/identity/kinds/{name}")
def patch_kind(name: str, body: KindUpdate, db: Database = Depends(database)) -> JsonResponse:
    with db.write() as session:
        return JsonResponse(service.update_kind(session, name, **body.model_dump(exclude_none=True)))


@router.get("/v1/identity/kinds/{name}/blocked-in-use")
def get_blocked_in_use(
    name: str, db: Database = Depends(database), config: Settings = Depends(settings)
) -> JsonResponse:
    """Blocked values of the kind that profiles still hold, with the merges in force they linked."""
    with db.read() as session:
        registry = service.load_registry(session, config.default_phone_region)
        return JsonResponse({"data": service.blocked_values_in_use(session, registry, name)})


@router.post("/v1/identity/kinds/{name}/blocked-in-use/unmerge")
def unmerge_blocked_in_use(
    name: str, db: Database = Depends(database), config: Settings = Depends(settings)
) -> JsonResponse:
    """Undo every merge in force that a blocked value of the kind linked (each an exact unmerge)."""
    with db.write() as session:
        registry = service.load_registry(session, config.default_phone_region)
        return JsonResponse(service.undo_blocked_merges(session, registry, name))


@router.get("/v1/identity/matches")
def get_matches(
    status: str | None = Query(default="pending", description="pending, accepted or rejected ('' for all)"),
    limit: int = Query(default=100, ge=1, le=1000),
    db: Database = Depends(database),
) -> JsonResponse:
    """Pairs of profiles the matcher found likely to be one person, with the evidence, most likely first."""
    with db.read() as session:
        return JsonResponse({"data": review.list_reviews(session, status=status or None, limit=limit)})


@router.post("/v1/identity/matches/{review_id}/accept")
def accept_match(
    review_id: str, db: Database = Depends(database), config: Settings = Depends(settings)
) -> JsonResponse:
    """Same person: merge the pair (recorded and reversible with unmerge)."""
    with db.write() as session:
        registry = service.load_registry(session, config.default_phone_region)
        return JsonResponse(review.accept_review(session, registry, review_id))


@router.post("/v1/identity/matches/{review_id}/reject")
def reject_match(review_id: str, db: Database = Depends(database)) -> JsonResponse:
    """Not the same person: the pair is never proposed again."""
    with db.write() as session:
        return JsonResponse(review.reject_review(session, review_id))
