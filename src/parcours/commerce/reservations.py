"""Reserve online, pay and pick up in store: units set aside at one location for a time, then collected
(an order, paid in store), cancelled, or expired automatically (the units go back on the shelf).
Notifications are events on the customer's timeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, make_transient_to_detached

from parcours.commerce import stock
from parcours.commerce.events import timeline_event
from parcours.db.claims import claim_statement
from parcours.errors import Conflict, InvalidInput, NotFound, ParcoursError
from parcours.identity.service import named_profile
from parcours.ids import new_id
from parcours.models import Reservation
from parcours.vocabulary import CHANNELS

DEFAULT_HOLD_HOURS = 48
MAX_LINES = 50


def check_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """[{"sku", "quantity"}]: validated, one line per SKU (quantities of repeated SKUs added)."""
    if not lines or len(lines) > MAX_LINES:
        raise InvalidInput(f"lines: 1 to {MAX_LINES} lines")
    merged: dict[str, int] = {}
    for position, line in enumerate(lines):
        sku, quantity = line.get("sku"), line.get("quantity")
        if not isinstance(sku, str) or not sku:
            raise InvalidInput(f"lines[{position}].sku: required")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 1000:
            raise InvalidInput(f"lines[{position}].quantity: a whole number from 1 to 1,000")
        merged[sku] = merged.get(sku, 0) + quantity
    return [{"sku": sku, "quantity": quantity} for sku, quantity in sorted(merged.items())]


def view(reservation: Reservation) -> dict[str, Any]:
    return {
        "id": reservation.id,
        "profile_id": reservation.profile_id,
        "location_id": reservation.location_id,
        "channel": reservation.channel,
        "status": reservation.status,
        "lines": reservation.lines,
        "created_at": reservation.created_at.isoformat(),
        "expires_at": reservation.expires_at.isoformat(),
        "closed_at": reservation.closed_at.isoformat() if reservation.closed_at else None,
        "order_id": reservation.order_id,
    }


@dataclass(frozen=True)
class ReservationRequest:
    """One request to reserve: where, what, from which channel, under the caller's request id, for whom
    (a profile id, or an identifier in KIND:VALUE form, or nobody)."""

    location_id: str
    lines: list[dict[str, Any]]
    channel: str
    request_id: str
    profile_id: str | None = None
    identifier: str | None = None
    hold_hours: float = DEFAULT_HOLD_HOURS


# What a request gets: the reservation and whether this request made it (False: a retry found it), or
# the error that refused it (nothing written for it).
Outcome = tuple[Reservation, bool] | ParcoursError


def reserve(
    session: Session,
    *,
    location_id: str,
    lines: list[dict[str, Any]],
    channel: str,
    request_id: str,
    profile_id: str | None,
    now: datetime,
    hold_hours: float = DEFAULT_HOLD_HOURS,
    identifier: str | None = None,
    phone_region: str = "FR",
) -> tuple[Reservation, bool]:
    """Set the lines aside at a store until ``now + hold_hours``. All lines or none: InsufficientStock
    names the line that is short. Idempotent on (channel, request_id): a retry returns the same
    reservation (created False)."""
    request = ReservationRequest(location_id, lines, channel, request_id, profile_id, identifier, hold_hours)
    outcome = reserve_batch(session, [request], now=now, phone_region=phone_region)[0]
    if isinstance(outcome, ParcoursError):
        raise outcome
    return outcome


def reserve_batch(
    session: Session, requests: list[ReservationRequest], *, now: datetime, phone_region: str = "FR"
) -> list[Outcome]:
    """``reserve`` for several requests in the caller's transaction, in a few statements whatever their
    number: the request ids claimed in one INSERT, the stock decided in arrival order under the levels'
    locks (``stock.reserve_many``). Each request gets its outcome; a refused one writes nothing. The same
    request twice in one batch answers as a retry after the first."""
    outcomes: list[Outcome | None] = [None] * len(requests)
    rows: dict[int, dict[str, Any]] = {}  # request index -> its reservation row, for the valid ones
    first: dict[tuple[str, str], int] = {}
    for index, request in enumerate(requests):
        if (request.channel, request.request_id) in first:
            continue
        first[(request.channel, request.request_id)] = index
        try:
            row = _row(session, request, now, phone_region)
        except ParcoursError as error:
            outcomes[index] = error
            continue
        if isinstance(row, Reservation):  # a retry of one made before the store stopped taking them
            outcomes[index] = (row, False)
        else:
            rows[index] = row
    claimed: set[str] = set()
    if rows:
        connection = session.connection()
        claim = claim_statement(connection.dialect.name, Reservation, ("channel", "request_id"), "id")
        claimed = set(connection.execute(claim, list(rows.values())).scalars())
    made = [index for index, row in rows.items() if row["id"] in claimed]
    for index in rows.keys() - set(made):  # the request id was taken: a retry
        request = requests[index]
        try:
            earlier = _earlier(session, request.channel, request.request_id, rows[index]["lines"],
                               request.location_id)  # fmt: skip
            if earlier is None:  # the claim saw the id taken, yet no reservation holds it: refuse
                raise Conflict(f"request_id {request.request_id!r} was already used")
            outcomes[index] = (earlier, False)
        except ParcoursError as error:
            outcomes[index] = error
    # The stock last, the levels locked (PostgreSQL) only until the commit.
    shortages = stock.reserve_many(
        session, [(rows[i]["id"], rows[i]["location_id"], rows[i]["lines"]) for i in made], now=now
    )
    refused = []
    for index, shortage in zip(made, shortages, strict=True):
        if shortage is not None:
            outcomes[index] = shortage
            refused.append(rows[index]["id"])
            continue
        reservation = Reservation(**rows[index])
        make_transient_to_detached(reservation)  # the row is written: the object joins the session as it
        session.add(reservation)
        outcomes[index] = (reservation, True)
        timeline_event(session, reservation.profile_id, "Reservation Held", reservation.channel,
                       {"reservation_id": reservation.id, "location_id": reservation.location_id,
                        "lines": reservation.lines, "expires_at": reservation.expires_at.isoformat()},
                       now)  # fmt: skip
    if refused:  # their claims go: nothing stays of a refused request
        session.connection().execute(delete(Reservation).where(Reservation.id.in_(refused)))
    # A request sent again within the batch goes after the others, as a retry would: it finds the
    # reservation its first copy made, or (that copy refused) tries for itself.
    again = [
        index
        for index, request in enumerate(requests)
        if first[(request.channel, request.request_id)] != index
    ]
    if again:
        retried = reserve_batch(session, [requests[i] for i in again], now=now, phone_region=phone_region)
        for index, outcome in zip(again, retried, strict=True):
            outcomes[index] = outcome
    return [outcome for outcome in outcomes if outcome is not None]


def _row(
    session: Session, request: ReservationRequest, now: datetime, phone_region: str
) -> dict[str, Any] | Reservation:
    """The request checked: its reservation row to write, or the reservation an earlier try made."""
    if request.channel not in CHANNELS:
        raise InvalidInput(f"channel: unknown channel {request.channel!r}")
    if not request.request_id or len(request.request_id) > 100:
        raise InvalidInput("request_id: 1 to 100 characters")
    if not 0 < request.hold_hours <= 24 * 30:
        raise InvalidInput("hold_hours: more than 0 and at most 30 days")
    lines = check_lines(request.lines)
    if not stock.takes_reservations(session, request.location_id):
        earlier = _earlier(session, request.channel, request.request_id, lines, request.location_id)
        if earlier is not None:
            return earlier
        raise InvalidInput(f"location_id: {request.location_id!r} is not a store taking reservations")
    profile_id = named_profile(
        session, phone_region, profile_id=request.profile_id, identifier=request.identifier
    )
    return {
        "id": new_id("rsv"),
        "profile_id": profile_id,
        "location_id": request.location_id,
        "channel": request.channel,
        "request_id": request.request_id,
        "status": "held",
        "lines": lines,
        "created_at": now,
        "expires_at": now + timedelta(hours=request.hold_hours),
        "closed_at": None,
        "order_id": None,
    }


def _earlier(
    session: Session, channel: str, request_id: str, lines: list[dict[str, Any]], location_id: str
) -> Reservation | None:
    """The reservation this request already made, if any; Conflict if the request id made another."""
    earlier = session.scalar(
        select(Reservation).where(Reservation.channel == channel, Reservation.request_id == request_id)
    )
    if earlier is not None and (earlier.lines != lines or earlier.location_id != location_id):
        raise Conflict(f"request_id {request_id!r} was already used for another reservation")
    return earlier


def get(session: Session, reservation_id: str, *, lock: bool = False) -> Reservation:
    """The reservation; ``lock``: its row locked until the transaction ends (PostgreSQL; SQLite writers
    are serialised already), read afresh, so that two hand-overs or cancels at once cannot both pass."""
    if lock:
        reservation = session.scalar(
            select(Reservation)
            .where(Reservation.id == reservation_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    else:
        reservation = session.get(Reservation, reservation_id)
    if reservation is None:
        raise NotFound(f"reservation {reservation_id} not found")
    return reservation


def _close(session: Session, reservation: Reservation, status: str, now: datetime) -> None:
    if reservation.status != "held":
        raise Conflict(f"reservation {reservation.id} is {reservation.status}")
    for line in reservation.lines:
        stock.release(session, line["sku"], reservation.location_id, line["quantity"], reference=reservation.id,
                      reason=status, now=now)  # fmt: skip
    reservation.status, reservation.closed_at = status, now
    timeline_event(session, reservation.profile_id, f"Reservation {status.capitalize()}", reservation.channel,
                   {"reservation_id": reservation.id, "location_id": reservation.location_id}, now)  # fmt: skip
    session.flush()


def cancel(session: Session, reservation_id: str, now: datetime) -> Reservation:
    reservation = get(session, reservation_id, lock=True)
    _close(session, reservation, "cancelled", now)
    return reservation


def expire_due(session: Session, now: datetime) -> list[str]:
    """Release every reservation whose hold has run out; returns their ids. On PostgreSQL each one is
    locked first, and one being collected or cancelled at that moment (locked by that request) is left
    to the next pass, which finds it no longer held: its units are never released twice. (SQLite
    writers are serialised already.)"""
    due = list(
        session.scalars(
            select(Reservation)
            .where(Reservation.status == "held", Reservation.expires_at <= now)
            .limit(500)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
    )
    for reservation in due:
        _close(session, reservation, "expired", now)
    return [r.id for r in due]


def mark_collected(session: Session, reservation: Reservation, order_id: str, now: datetime) -> None:
    """The customer took the goods (the order of the collection took them from the reserved units)."""
    if reservation.status != "held":
        raise Conflict(f"reservation {reservation.id} is {reservation.status}")
    if reservation.expires_at <= now:
        raise Conflict(f"reservation {reservation.id} expired at {reservation.expires_at.isoformat()}")
    reservation.status, reservation.closed_at, reservation.order_id = "collected", now, order_id
    timeline_event(session, reservation.profile_id, "Reservation Collected", "store",
                   {"reservation_id": reservation.id, "order_id": order_id}, now)  # fmt: skip
    session.flush()
