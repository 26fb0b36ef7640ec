"""What several areas of the console show the same way: the words for channels, identifier kinds,
order, reservation and conversation statuses, fulfilment and loyalty tiers; a customer's name from their
traits, the active profile a (possibly merged) profile id stands for now, a stored moment; the page
number of a list and a whole number typed in a form; an ``IN`` split in parts.

An area that words something differently keeps only that difference (``{**CHANNEL_LABELS, ...}``)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.console.i18n import N_
from parcours.console.web import Page
from parcours.db.probes import in_chunks
from parcours.errors import InvalidInput
from parcours.models import Profile

# How channels are shown (English source strings, translated when shown).
CHANNEL_LABELS = {
    "web": N_("Web"),
    "app": N_("App"),
    "store": N_("Store"),
    "phone": N_("Phone"),
    "email": N_("E-mail"),
    "sms": N_("SMS"),
    "chat": N_("Web chat"),
    "whatsapp": N_("WhatsApp"),
    "messenger": N_("Messenger"),
    "instagram": N_("Instagram"),
    "social": N_("Social networks"),
    "kiosk": N_("Kiosk"),
    "marketplace": N_("Marketplace"),
    "mail": N_("Postal mail"),
    "other": N_("Other"),
}
IDENTIFIER_LABELS = {
    "user_id": N_("Account id"),
    "pos_customer_id": N_("Till customer id"),
    "loyalty_card": N_("Loyalty card"),
    "email": N_("E-mail"),
    "phone": N_("Phone"),
    "whatsapp": N_("WhatsApp"),
    "messenger": N_("Messenger"),
    "instagram": N_("Instagram"),
    "anonymous_id": N_("Device or browser id"),
}
ORDER_STATUS_LABELS = {
    "placed": N_("Placed"),
    "ready": N_("Ready"),
    "shipped": N_("Shipped"),
    "collected": N_("Collected"),
    "cancelled": N_("Cancelled"),
}
RESERVATION_STATUS_LABELS = {
    "held": N_("Held"),
    "collected": N_("Collected"),
    "cancelled": N_("Cancelled"),
    "expired": N_("Expired"),
}
CONVERSATION_STATUS_LABELS = {
    "open": N_("Open"),
    "pending": N_("Pending"),
    "snoozed": N_("Snoozed"),
    "resolved": N_("Resolved"),
}
FULFILMENT_LABELS = {
    "ship_from_warehouse": N_("Home delivery"),
    "ship_from_store": N_("Delivery from a store"),
    "click_collect": N_("Click & collect"),
    "relay": N_("Relay point"),
}
TIER_LABELS = {"bronze": N_("Bronze"), "silver": N_("Silver"), "gold": N_("Gold")}


def display_name(traits: dict[str, Any] | None) -> str:
    """First and last name (as the customer gave them), else the name a channel knew them by ("" when
    the traits give none)."""
    traits = traits or {}
    first = str(traits.get("firstName") or traits.get("first_name") or "").strip()
    last = str(traits.get("lastName") or traits.get("last_name") or "").strip()
    return " ".join(part for part in (first, last) if part) or str(traits.get("name") or "").strip()


def parse_moment(value: str | datetime | None) -> datetime | None:
    """A moment a service returns as ISO 8601 text (or already parsed), as a datetime; None for none."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def page_number(page: Page, name: str = "page", maximum: int = 10_000) -> int:
    """The page of a list the query string asks for (``?page=3``; none or blank: the first)."""
    raw = page.request.query_params.get(name, "1").strip() or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise InvalidInput(f"{name}: a whole number from 1 to {maximum:,}")
    return int(raw)


def whole_number(page: Page, name: str, low: int, high: int, *, label: str | None = None) -> int:
    """The form field ``name``, a whole number from ``low`` to ``high``; else InvalidInput naming the
    field (``label``: the name the person reads beside it, when not the field's own)."""
    text = page.field(name, max_chars=12)
    if not re.fullmatch(r"-?[0-9]+", text) or not low <= int(text) <= high:
        raise InvalidInput(page.t.gettext("{field}: a whole number from {low} to {high}", field=label or name,
                                          low=page.t.number(low), high=page.t.number(high)))  # fmt: skip
    return int(text)


def active_profiles(session: Session, ids: Iterable[str]) -> dict[str, tuple[str, dict[str, Any]] | None]:
    """For each id: (the active profile it stands for now, its traits), following merges in a few
    statements whatever the number of ids; None when the profile was erased."""
    wanted = set(ids)
    rows: dict[str, Any] = {}
    frontier = set(wanted)
    for _ in range(50):  # merge chains are short; this bounds a broken one
        if not frontier:
            break
        found = session.execute(
            select(Profile.id, Profile.merged_into_id, Profile.traits).where(in_chunks(Profile.id, frontier))
        ).all()
        rows.update({r.id: r for r in found})
        frontier = {r.merged_into_id for r in found if r.merged_into_id and r.merged_into_id not in rows}
    result: dict[str, tuple[str, dict[str, Any]] | None] = {}
    for pid in wanted:
        row, hops = rows.get(pid), 0
        while row is not None and row.merged_into_id is not None and hops < 1000:
            row, hops = rows.get(row.merged_into_id), hops + 1
        result[pid] = (row.id, row.traits or {}) if row is not None and row.merged_into_id is None else None
    return result
