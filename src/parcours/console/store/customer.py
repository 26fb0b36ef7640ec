"""A customer as the store sees them: their cards, phones and e-mails, loyalty, the reservations they
hold and their recent orders on every channel."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.commerce import loyalty as loyalty_service
from parcours.commerce import orders
from parcours.console.common import display_name
from parcours.console.store.common import (
    render,
    sku_names,
    store_context,
    variant_names,
)
from parcours.console.web import Page, page_for
from parcours.db.types import utcnow
from parcours.identity import service as identity
from parcours.models import Identifier, Location, Profile, Reservation

router = APIRouter(include_in_schema=False)

RECENT_ORDERS = 20


def location_names(session: Session, ids: Iterable[str | None]) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    query = select(Location.id, Location.name).where(Location.id.in_(wanted))
    return {location_id: name for location_id, name in session.execute(query)}


@router.get("/console/store/customers/{profile_id}")
def store_customer(
    profile_id: str, page: Page = Depends(page_for("store")), store: str | None = None
) -> Response:
    now = utcnow()
    with page.db.read() as session:
        context = store_context(page, session, store)
        active = identity.resolve_profile_id(session, profile_id[:60])
        if active != profile_id:
            return page.redirect(context.link(f"/console/store/customers/{active}"))
        traits = session.scalar(select(Profile.traits).where(Profile.id == active)) or {}
        ids = identity.people(session, active)
        identifiers = session.execute(
            select(Identifier.kind, Identifier.value)
            .where(Identifier.profile_id == active, Identifier.kind.in_(("loyalty_card", "phone", "email")))
            .order_by(Identifier.kind, Identifier.value)
        ).all()
        member = loyalty_service.member_view(session, active, now)
        held = list(
            session.scalars(
                select(Reservation)
                .where(
                    Reservation.profile_id.in_(ids),
                    Reservation.status == "held",
                    Reservation.expires_at > now,
                )
                .order_by(Reservation.created_at)
            )
        )
        recent = orders.recent(session, ids, RECENT_ORDERS)
        lines = orders.lines_of(session, [o.id for o in recent])
        skus = variant_names(
            session, sku_names([r.lines for r in held]) | {line.sku for ls in lines.values() for line in ls}
        )
        places = location_names(
            session, [r.location_id for r in held] + [o.pickup_location_id for o in recent]
        )
    return render(
        page, "store/customer.html", context, profile_id=active, name=display_name(traits), traits=traits,
        cards=[v for k, v in identifiers if k == "loyalty_card"], phones=[v for k, v in identifiers if k == "phone"],
        emails=[v for k, v in identifiers if k == "email"], member=member, held=held, orders=recent, lines=lines,
        skus=skus, places=places, now=now,
    )  # fmt: skip
