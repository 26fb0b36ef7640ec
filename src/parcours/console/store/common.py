"""What the store area's pages share: the store a page works for (``StoreContext``: an associate's own
store, or the one an admin picks), rendering with it, the request id that makes a double tap act once,
and the names the pages show (customers, products, locations) each read in one statement."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.console import common
from parcours.console.common import ORDER_STATUS_LABELS, TIER_LABELS, display_name
from parcours.console.i18n import N_
from parcours.console.web import Page
from parcours.errors import Forbidden, InvalidInput, NotFound
from parcours.models import Location, Profile, Variant

PAGE_SIZE = 50
MAX_MATCHES = 20  # customers or products listed for a search
CHANNEL = "store"
REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")

FULFILMENT_LABELS = {**common.FULFILMENT_LABELS, "ship_from_store": N_("Shipped from a store")}
CHANNEL_LABELS = {**common.CHANNEL_LABELS, "chat": N_("Chat"), "social": N_("Social"), "mail": N_("Mail")}


def request_id_of(page: Page) -> str:
    raw = page.field("request_id", max_chars=64)
    if not REQUEST_ID.match(raw):
        raise InvalidInput("request_id: reload the page and try again")
    return f"console:{raw}"


# ------------------------------------------------------------------------------------------ the store
@dataclass(frozen=True)
class Here:
    """The store the page works for."""

    id: str
    name: str
    city: str
    latitude: float
    longitude: float


@dataclass
class StoreContext:
    here: Here | None
    chosen: str | None  # the admin's store in the query string, carried by every link and form
    stores: list[Location]  # every store, for an admin's choice

    def link(self, path: str, **params: Any) -> str:
        values = {key: value for key, value in params.items() if value not in (None, "")}
        if self.chosen:
            values["store"] = self.chosen
        return path + ("?" + urlencode(values) if values else "")


def store_context(page: Page, session: Session, given: str | None) -> StoreContext:
    """An associate works in their own store (another one is refused); an admin picks any store."""
    user = page.user
    given = (given or "").strip() or None
    if user.role == "admin":
        wanted, chosen = given or user.location_id, given
    else:
        if given is not None and given != user.location_id:
            raise Forbidden(page.t.gettext("You work for your own store only."))
        wanted, chosen = user.location_id, None
    here = None
    if wanted is not None:
        location = session.get(Location, wanted)
        if location is not None and location.kind == "store" and location.active:
            here = Here(location.id, location.name, location.city, location.latitude, location.longitude)
        elif user.role == "admin":
            raise NotFound(page.t.gettext("Store {store} not found.", store=wanted))
        # An associate whose store closed works for no store until an admin gives them another.
    stores: list[Location] = []
    if user.role == "admin":
        stores = list(
            session.scalars(
                select(Location)
                .where(Location.kind == "store", Location.active.is_(True))
                .order_by(Location.name)
            )
        )
    return StoreContext(here, chosen, stores)


def require_here(page: Page, context: StoreContext) -> Here:
    if context.here is None:
        raise InvalidInput(page.t.gettext("store: choose a store first."))
    return context.here


def render(page: Page, template: str, context: StoreContext, *, status: int = 200, **values: Any) -> Response:
    return page.render(
        template,
        status=status,
        here=context.here,
        chosen_store=context.chosen,
        stores=context.stores,
        link=context.link,
        new_request_id=lambda: str(uuid.uuid4()),
        fulfilment_labels=FULFILMENT_LABELS,
        order_status_labels=ORDER_STATUS_LABELS,
        channel_labels=CHANNEL_LABELS,
        tier_labels=TIER_LABELS,
        **values,
    )


# ------------------------------------------------------------------------------------------- queries
def names_of(session: Session, ids: Iterable[str | None]) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    rows = session.execute(select(Profile.id, Profile.traits).where(Profile.id.in_(wanted)))
    return {profile_id: display_name(traits) for profile_id, traits in rows}


def variant_names(session: Session, skus: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(skus))
    if not wanted:
        return {}
    return {
        sku: name
        for sku, name in session.execute(select(Variant.sku, Variant.name).where(Variant.sku.in_(wanted)))
    }


def sku_names(items: Iterable[Iterable[dict[str, Any]]]) -> set[str]:
    return {line["sku"] for lines in items for line in lines}


def form_context(page: Page) -> tuple[StoreContext, Here]:
    """The store a form acts for (checked before anything else in the form), which must be chosen."""
    with page.db.read() as session:
        context = store_context(page, session, page.field("store", "", max_chars=40) or None)
    return context, require_here(page, context)
