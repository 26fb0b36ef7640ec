"""The matching review queue: pairs of profiles the matcher finds possibly the same person, with the
per-field evidence, to merge (accept) or keep apart (reject)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from parcours.console.common import active_profiles, display_name, page_number
from parcours.console.customers.common import PAGE_SIZE, STATUS_LABELS
from parcours.console.i18n import N_
from parcours.console.web import Page, form_for, page_for
from parcours.errors import InvalidInput
from parcours.identity import service as identity
from parcours.matching import review as reviews
from parcours.matching.compare import COMPARISONS
from parcours.matching.realtime import record_from_traits
from parcours.models import MatchReview, Profile

router = APIRouter(include_in_schema=False)

# The matcher's fields and its comparison levels (matching/compare.py), as a reviewer reads them.
MATCH_FIELD_LABELS = {
    "given_name": N_("Given name"),
    "surname": N_("Surname"),
    "birth_date": N_("Birth date"),
    "street": N_("Street"),
    "locality": N_("Town"),
    "postcode": N_("Postcode"),
    "phone": N_("Phone"),
    "email": N_("E-mail"),
    "national_id": N_("National id"),
}
MATCH_LEVEL_LABELS = {
    "unknown": N_("unknown on one side"),
    "exact": N_("exact"),
    "same name or nickname": N_("same name or nickname"),
    "sounds alike": N_("sounds alike"),
    "Jaro-Winkler >= 0.92": N_("very similar (Jaro-Winkler ≥ 0.92)"),
    "Jaro-Winkler >= 0.90": N_("very similar (Jaro-Winkler ≥ 0.90)"),
    "Jaro-Winkler >= 0.80": N_("similar (Jaro-Winkler ≥ 0.80)"),
    "day and month swapped": N_("day and month swapped"),
    "one digit off": N_("one digit off"),
    "two of year, month and day": N_("two of year, month and day"),
    "two digits off": N_("two digits off"),
    "token set >= 90 %": N_("nearly the same words (≥ 90 %)"),
    "token set >= 70 %": N_("similar words (≥ 70 %)"),
    "one character off": N_("one character off"),
    "same last 6 digits": N_("same last 6 digits"),
    "different": N_("different"),
}
REVIEW_FILTERS = {"pending": ("pending",), "decided": ("accepted", "rejected", "superseded")}


# ------------------------------------------------------------------------------------- review queue
def review_pair(review: MatchReview, current: dict[str, tuple[str, dict[str, Any]] | None]) -> dict[str, Any]:
    """A review item as the reviewer sees it: the two profiles now, their matching fields as the matcher
    reads them, and the stored per-field evidence."""
    sides = []
    for pid in (review.profile_a, review.profile_b):
        now = current.get(pid)
        record = record_from_traits(now[0], now[1]) if now is not None else None
        sides.append(
            {
                "requested_id": pid,
                "id": now[0] if now is not None else None,
                "name": display_name(now[1]) if now is not None else "",
                "record": record,
            }
        )
    evidence = {item["field"]: item for item in review.evidence if isinstance(item, dict)}
    rows = []
    for comparison in COMPARISONS:
        item = evidence.get(comparison.name, {})
        values = [
            getattr(side["record"], comparison.name, None) if side["record"] else None for side in sides
        ]
        if not any(values) and item.get("level", "unknown") == "unknown":
            continue
        rows.append(
            {
                "field": comparison.name,
                "values": values,
                "level": item.get("level", "unknown"),
                "weight": float(item.get("weight", 0.0)),
            }
        )
    return {
        "id": review.id,
        "status": review.status,
        "probability": review.probability,
        "created_at": review.created_at,
        "decided_at": review.decided_at,
        "sides": sides,
        "rows": rows,
        "same_now": sides[0]["id"] is not None and sides[0]["id"] == sides[1]["id"],
    }


@router.get("/console/review")
def review_queue(page: Page = Depends(page_for("identity"))) -> Response:
    status = page.request.query_params.get("status", "pending").strip() or "pending"
    if status not in REVIEW_FILTERS:
        raise InvalidInput("status: pending or decided")
    number = page_number(page)
    statuses = REVIEW_FILTERS[status]
    with page.db.read() as session:
        where = MatchReview.status.in_(statuses)
        total = session.scalar(select(func.count()).select_from(MatchReview).where(where)) or 0
        order = (
            (MatchReview.probability.desc(), MatchReview.id)
            if status == "pending"
            else (MatchReview.decided_at.desc(), MatchReview.id)
        )
        found = list(
            session.scalars(
                select(MatchReview)
                .where(where)
                .order_by(*order)
                .offset((number - 1) * PAGE_SIZE)
                .limit(PAGE_SIZE)
            )
        )
        current = active_profiles(session, [pid for r in found for pid in (r.profile_a, r.profile_b)])
        pairs = [review_pair(r, current) for r in found]
        pending = session.scalar(
            select(func.count()).select_from(MatchReview).where(MatchReview.status == "pending")
        )
    return page.render(
        "customers/review.html",
        pairs=pairs,
        review_status=status,
        total=total,
        pending=pending or 0,
        page_number=number,
        has_next=number * PAGE_SIZE < total,
        field_labels=MATCH_FIELD_LABELS,
        level_labels=MATCH_LEVEL_LABELS,
        status_labels=STATUS_LABELS,
    )


def _review_names(session: Session, result: dict[str, Any]) -> list[str]:
    current = active_profiles(session, result["profile_ids"])
    return [display_name(now[1]) if (now := current.get(pid)) else "" for pid in result["profile_ids"]]


@router.post("/console/review/{review_id}/accept")
def accept(review_id: str, page: Page = Depends(form_for("identity"))) -> Response:
    with page.db.write() as session:
        registry = identity.load_registry(session, page.settings.default_phone_region)
        result = reviews.accept_review(session, registry, review_id[:60])
        survivor = result["current_profile_ids"][0]
        traits = session.scalar(select(Profile.traits).where(Profile.id == survivor)) or {}
    name = display_name(traits) or page.t.gettext("Unnamed customer")
    return page.redirect(
        "/console/review",
        flash=page.t.gettext(
            "Merged: the two profiles are now one customer, {name} ({id}).", name=name, id=survivor
        ),
    )


@router.post("/console/review/{review_id}/reject")
def reject(review_id: str, page: Page = Depends(form_for("identity"))) -> Response:
    with page.db.write() as session:
        result = reviews.reject_review(session, review_id[:60])
        names = [n or page.t.gettext("Unnamed customer") for n in _review_names(session, result)]
    return page.redirect(
        "/console/review",
        flash=page.t.gettext(
            "Rejected: {first} and {second} stay two customers and will not be proposed again.",
            first=names[0] if names else "",
            second=names[-1] if names else "",
        ),
    )
