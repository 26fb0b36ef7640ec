"""The identity conflicts queue: events whose identifiers pointed at customers that a merge rule kept
apart (or identifiers their customer could not hold), each with its event, identifiers and customers as
they are now, to dismiss (the rule was right) or merge by hand (the rules still hold; unmerge undoes it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import func, select

from parcours.console.common import active_profiles, display_name, page_number
from parcours.console.customers.common import (
    CHANNEL_LABELS,
    EVENT_TYPE_LABELS,
    KIND_LABELS,
    PAGE_SIZE,
    STATUS_LABELS,
)
from parcours.console.customers.graph import event_rows
from parcours.console.customers.rules import reason_text, refusal_text, rule_text
from parcours.console.web import Page, form_for, page_for
from parcours.errors import InvalidInput
from parcours.identity import service as identity
from parcours.identity.service import MAX_MERGE_REASON
from parcours.models import IdentityConflict

router = APIRouter(include_in_schema=False)

CONFLICT_FILTERS = {"open": ("open",), "decided": ("dismissed", "merged")}
QUEUE = "/console/review/conflicts"


def _actor(page: Page) -> str:
    return page.user.name or page.user.email


@router.get(QUEUE)
def conflicts_queue(page: Page = Depends(page_for("identity"))) -> Response:
    status = page.request.query_params.get("status", "open").strip() or "open"
    if status not in CONFLICT_FILTERS:
        raise InvalidInput("status: open or decided")
    number = page_number(page)
    with page.db.read() as session:
        where = IdentityConflict.status.in_(CONFLICT_FILTERS[status])
        total = session.scalar(select(func.count()).select_from(IdentityConflict).where(where)) or 0
        newest = (
            (IdentityConflict.created_at.desc(), IdentityConflict.id.desc())
            if status == "open"
            else (
                func.coalesce(IdentityConflict.decided_at, IdentityConflict.created_at).desc(),
                IdentityConflict.id.desc(),
            )
        )
        found = list(
            session.scalars(
                select(IdentityConflict)
                .where(where)
                .order_by(*newest)
                .offset((number - 1) * PAGE_SIZE)
                .limit(PAGE_SIZE)
            )
        )
        current = active_profiles(session, [pid for c in found for pid in c.named_profile_ids])
        events = event_rows(session, [c.event_id for c in found])
        open_count = session.scalar(
            select(func.count()).select_from(IdentityConflict).where(IdentityConflict.status == "open")
        )
        items = [_item(conflict, current, events) for conflict in found]
        # Offer the merge only where the rules allow it now; say why not elsewhere.
        mergeable: dict[int, list[str]] = {}
        for position, item in enumerate(items):
            customers = {side["id"] for side in (item["attached"], *item["others"])} - {None}
            if item["status"] == "open" and item["others"] and len(customers) > 1:
                mergeable[position] = sorted(customers)
        if mergeable:
            registry = identity.load_registry(session, page.settings.default_phone_region)
            refusals = identity.merge_refusals(
                session, registry, list(mergeable.values()), overrule_unmerge=True
            )
            for position, refusal in zip(mergeable, refusals, strict=True):
                items[position]["refusal"] = refusal and refusal_text(page.t, refusal)
    for item in items:
        item["rule"], item["reason"] = rule_text(page.t, item["rule"]), reason_text(page.t, item["reason"])
    return page.render(
        "customers/conflicts.html",
        conflicts=items,
        conflict_status=status,
        open_count=open_count or 0,
        page_number=number,
        has_next=number * PAGE_SIZE < total,
        kind_labels=KIND_LABELS,
        channel_labels=CHANNEL_LABELS,
        event_type_labels=EVENT_TYPE_LABELS,
        status_labels=STATUS_LABELS,
        max_reason=MAX_MERGE_REASON,
    )


def _item(
    conflict: IdentityConflict,
    current: dict[str, tuple[str, dict[str, Any]] | None],
    events: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """A conflict as the reviewer reads it: each profile it named, as the customer it is part of now."""

    def customer(pid: str) -> dict[str, Any]:
        now = current.get(pid)
        return {
            "requested_id": pid,
            "id": now[0] if now is not None else None,
            "name": display_name(now[1]) if now is not None else "",
        }

    attached = customer(conflict.attached_profile_id)
    others = [customer(pid) for pid in conflict.other_profile_ids]
    ids = {side["id"] for side in (attached, *others)}
    return {
        "id": conflict.id,
        "rule": conflict.rule,
        "reason": conflict.reason,
        "status": conflict.status,
        "identifiers": list(conflict.identifiers),
        "event": events.get(conflict.event_id),
        "created_at": conflict.created_at,
        "decided_at": conflict.decided_at,
        "decided_by": conflict.decided_by,
        "merge_id": conflict.merge_id,
        "attached": attached,
        "others": others,
        "one_customer_now": bool(others) and len(ids) == 1 and None not in ids,
        "refusal": None,  # why the merge rules would refuse merging them now
    }


@router.post(QUEUE + "/{conflict_id}/merge")
def merge(conflict_id: str, page: Page = Depends(form_for("identity"))) -> Response:
    reason = page.field("reason", required=False, max_chars=MAX_MERGE_REASON)
    with page.db.write() as session:
        registry = identity.load_registry(session, page.settings.default_phone_region)
        done = identity.merge_conflict(
            session, registry, conflict_id, actor=_actor(page), reason=reason or None
        )
    survivor = done["survivor"]
    name = display_name(survivor["traits"]) or page.t.gettext("Unnamed customer")
    return page.redirect(
        QUEUE,
        flash=page.t.gettext(
            "Merged: the conflict's customers are now one, {name} ({id}). Unmerge on the identity graph "
            "undoes it.",
            name=name,
            id=survivor["id"],
        ),
    )


@router.post(QUEUE + "/{conflict_id}/dismiss")
def dismiss(conflict_id: str, page: Page = Depends(form_for("identity"))) -> Response:
    with page.db.write() as session:
        identity.review_conflict(session, conflict_id, status="dismissed", actor=_actor(page))
    return page.redirect(
        QUEUE, flash=page.t.gettext("Dismissed: the rule was right, the customers stay as they are.")
    )


@router.post(QUEUE + "/{conflict_id}/reopen")
def reopen(conflict_id: str, page: Page = Depends(form_for("identity"))) -> Response:
    with page.db.write() as session:
        identity.review_conflict(session, conflict_id, status="open", actor=_actor(page))
    return page.redirect(QUEUE, flash=page.t.gettext("The conflict is open again."))
