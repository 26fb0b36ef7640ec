"""Identity conflicts: events whose identifiers pointed at several profiles that a merge rule kept apart
(or that their profile could not all hold), recorded for review. A reviewer settles each one:
``dismissed`` when the rule was right, or ``merged`` when a person merged its profiles
(``service.merge_conflict``, or any hand merge or accepted review that makes them one customer)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, select, tuple_
from sqlalchemy.orm import Session

from parcours.cursors import encode_cursor, read_cursor
from parcours.db.probes import in_chunks
from parcours.db.types import utcnow
from parcours.errors import Conflict, InvalidInput, NotFound
from parcours.inputs import iso_z
from parcours.models import IdentityConflict, IdentityConflictProfile

CONFLICT_STATUSES = ("open", "dismissed", "merged")
# What a reviewer sets directly; ``merged`` comes only from a merge.
REVIEW_STATUSES = ("open", "dismissed")
MAX_DECIDED_BY = 200


def conflict_view(conflict: IdentityConflict) -> dict[str, Any]:
    return {
        "id": conflict.id,
        "event_id": conflict.event_id,
        "attached_profile_id": conflict.attached_profile_id,
        "other_profile_ids": conflict.other_profile_ids,
        "identifiers": conflict.identifiers,
        "rule": conflict.rule,
        "reason": conflict.reason,
        "status": conflict.status,
        "created_at": iso_z(conflict.created_at),
        "decided_at": iso_z(conflict.decided_at),
        "decided_by": conflict.decided_by,
        "merge_id": conflict.merge_id,
    }


def check_status(status: str, allowed: tuple[str, ...] = CONFLICT_STATUSES) -> str:
    if status not in allowed:
        raise InvalidInput(f"status: {status[:40]!r} must be one of {', '.join(allowed)}")
    return status


MAX_CONFLICTS_PAGE = 1000


def list_conflicts(
    session: Session,
    *,
    status: str | None = "open",
    limit: int = 100,
    cursor: str | None = None,
    involving: Collection[str] | None = None,
) -> dict[str, Any]:
    """Newest first, ``limit`` a page, ``next_cursor`` for the next; ``status`` None lists every status;
    ``involving``: only the conflicts naming one of these profile ids (``conflicts_involving``)."""
    if not 1 <= limit <= MAX_CONFLICTS_PAGE:
        raise InvalidInput(f"limit: must be between 1 and {MAX_CONFLICTS_PAGE}")
    query = select(IdentityConflict)
    if involving is not None:
        query = query.where(naming(involving))
    if status is not None:
        query = query.where(IdentityConflict.status == check_status(status))
    if cursor:
        moment, conflict_id, tag = read_cursor(cursor)
        if tag != "desc":
            raise InvalidInput("cursor: not a position this API gave")
        query = query.where(
            tuple_(IdentityConflict.created_at, IdentityConflict.id) < tuple_(moment, conflict_id)
        )
    found = list(
        session.scalars(
            query.order_by(IdentityConflict.created_at.desc(), IdentityConflict.id.desc()).limit(limit + 1)
        )
    )
    page = found[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id, "desc") if len(found) > limit else None
    return {"data": [conflict_view(c) for c in page], "next_cursor": next_cursor}


def get_conflict(session: Session, conflict_id: str) -> IdentityConflict:
    conflict = session.get(IdentityConflict, conflict_id[:60])
    if conflict is None:
        raise NotFound(f"identity conflict {conflict_id[:60]} not found")
    return conflict


def review_conflict(session: Session, conflict_id: str, *, status: str, actor: str) -> dict[str, Any]:
    """Dismiss a conflict (the rule was right) or open a dismissed one again. A conflict settled by a
    merge stays settled: undoing it is an unmerge."""
    check_status(status, REVIEW_STATUSES)
    conflict = get_conflict(session, conflict_id)
    if conflict.status == "merged":
        raise Conflict(
            f"identity conflict {conflict.id} was settled by merge {conflict.merge_id or '(none needed)'}: "
            "to keep the profiles apart, unmerge them (POST /v1/profiles/{id}/unmerge)"
        )
    if status != conflict.status:
        conflict.status = status
        dismissed = status == "dismissed"
        conflict.decided_at = utcnow() if dismissed else None
        conflict.decided_by = _who(actor) if dismissed else None
    session.flush()
    return conflict_view(conflict)


def settle_conflicts(
    session: Session, customer: Collection[str], *, merge_id: str | None, decided_by: str
) -> list[str]:
    """Mark ``merged`` every open conflict whose profiles are now all the one customer whose profile ids
    (the active one and every id merged into it) are ``customer``; return their ids. A conflict that
    named no other profile (identifiers left out by a limit) is not settled by a merge."""
    ids = set(customer)
    settled = []
    query = select(IdentityConflict).where(
        IdentityConflict.status == "open", in_chunks(IdentityConflict.attached_profile_id, ids)
    )
    now = utcnow()
    for conflict in session.scalars(query):
        others = set(conflict.other_profile_ids)
        if others and others <= ids:
            conflict.status, conflict.merge_id = "merged", merge_id
            conflict.decided_at, conflict.decided_by = now, _who(decided_by)
            settled.append(conflict.id)
    session.flush()
    return settled


def reopen_split_conflicts(session: Session, side: Collection[str], other_side: Collection[str]) -> list[str]:
    """After an unmerge split one customer into the profiles ``side`` and ``other_side``: open again every
    conflict a merge had settled whose profiles are no longer one customer (the reviewer's "same person"
    was undone, so the question is back in the queue); return their ids."""
    first, second = set(side), set(other_side)
    reopened = []
    for conflict in conflicts_involving(session, first | second, status="merged"):
        named = set(conflict.named_profile_ids)
        if named & first and named & second:
            conflict.status, conflict.merge_id = "open", None
            conflict.decided_at = conflict.decided_by = None
            reopened.append(conflict.id)
    session.flush()
    return reopened


def naming(profile_ids: Collection[str]) -> ColumnElement[bool]:
    """The condition "this conflict names one of these profiles", as the profile its event went to or as
    one kept apart, found by index (``identity_conflict_profiles``)."""
    return IdentityConflict.id.in_(
        select(IdentityConflictProfile.conflict_id).where(
            in_chunks(IdentityConflictProfile.profile_id, profile_ids)
        )
    )


def conflicts_involving(
    session: Session, profile_ids: Collection[str], *, status: str | None = None
) -> list[IdentityConflict]:
    """Every conflict (of one ``status``, or any) naming one of these profiles, oldest first: what an
    export shows and an erasure deletes."""
    if not profile_ids:
        return []
    query = select(IdentityConflict).where(naming(profile_ids)).order_by(IdentityConflict.created_at)
    if status is not None:
        query = query.where(IdentityConflict.status == status)
    return list(session.scalars(query))


def conflict_profile_rows(conflicts: Collection[dict[str, Any]]) -> list[dict[str, str]]:
    """The ``identity_conflict_profiles`` rows of conflicts about to be written (as the writer's dicts)."""
    return [
        {"profile_id": profile_id, "conflict_id": conflict["id"]}
        for conflict in conflicts
        for profile_id in dict.fromkeys([conflict["attached_profile_id"], *conflict["other_profile_ids"]])
    ]


def _who(actor: str) -> str:
    return " ".join(actor.split())[:MAX_DECIDED_BY]
