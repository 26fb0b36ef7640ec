"""The review queue: pairs the matcher found likely but not certain; a person accepts (merge) or
rejects (remembered: the pair is never proposed again, nor merged automatically)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.db.types import utcnow
from parcours.errors import Conflict, InvalidInput, NotFound
from parcours.identity.conflicts import settle_conflicts
from parcours.identity.kinds import KindRegistry
from parcours.identity.resolution import lock_identity_graph, merge_profiles
from parcours.identity.service import people, resolve_profile_id
from parcours.models import MatchReview

# superseded: one of the profiles was merged into another since (its survivor is matched afresh).
STATUSES = ("pending", "accepted", "rejected", "superseded")


def _current(session: Session, profile_id: str) -> str | None:
    """The active profile an id stands for now (merges followed), or None if erased."""
    try:
        return resolve_profile_id(session, profile_id)
    except NotFound:
        return None


def review_view(session: Session, review: MatchReview) -> dict[str, Any]:
    return {
        "id": review.id,
        "profile_ids": [review.profile_a, review.profile_b],
        "current_profile_ids": [_current(session, review.profile_a), _current(session, review.profile_b)],
        "probability": round(review.probability, 4),
        "evidence": review.evidence,
        "status": review.status,
        "created_at": review.created_at.isoformat(),
        "decided_at": review.decided_at.isoformat() if review.decided_at else None,
        "merge_id": review.merge_id,
    }


def list_reviews(session: Session, *, status: str | None, limit: int) -> list[dict[str, Any]]:
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status: must be one of {', '.join(STATUSES)}")
    query = select(MatchReview).order_by(MatchReview.probability.desc(), MatchReview.id).limit(limit)
    if status is not None:
        query = query.where(MatchReview.status == status)
    return [review_view(session, review) for review in session.scalars(query)]


def _pending(session: Session, review_id: str) -> MatchReview:
    review = session.get(MatchReview, review_id)
    if review is None:
        raise NotFound(f"match review {review_id} not found")
    if review.status != "pending":
        raise Conflict(f"match review {review_id} was already {review.status}")
    return review


def accept_review(session: Session, registry: KindRegistry, review_id: str) -> dict[str, Any]:
    """Merge the pair through the core merge (recorded, reversible with unmerge)."""
    lock_identity_graph(session)
    review = _pending(session, review_id)
    first, second = _current(session, review.profile_a), _current(session, review.profile_b)
    if first is None or second is None:
        raise Conflict("one of the profiles was erased")
    if first == second:
        raise Conflict("the two profiles were merged since")
    review.merge_id = merge_profiles(
        session, registry, first, second, rule=f"match review {review.id} ({review.probability:.3f})"
    )
    review.status, review.decided_at = "accepted", utcnow()
    survivor = resolve_profile_id(session, first)
    settle_conflicts(
        session, people(session, survivor), merge_id=review.merge_id, decided_by=f"match review {review.id}"
    )
    session.flush()
    return review_view(session, review)


def reject_review(session: Session, review_id: str) -> dict[str, Any]:
    """Not the same person: remembered, the pair is never proposed or merged automatically again."""
    review = _pending(session, review_id)
    review.status, review.decided_at = "rejected", utcnow()
    session.flush()
    return review_view(session, review)
