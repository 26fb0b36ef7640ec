"""Locations and their stock. Every change of a stock level is one conditional UPDATE that the database
applies atomically (``available >= quantity`` checked in the statement itself), backed by CHECK
constraints (never negative, never more reserved than on hand): no caller, and no two concurrent
callers, can oversell. Every change is also a ``StockMovement`` with its reason."""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import BindParameter

from parcours.db.base import table_of
from parcours.db.bulk import BulkWriter
from parcours.errors import InsufficientStock, InvalidInput, NotFound
from parcours.ids import new_id
from parcours.models import Location, StockLevel, StockMovement, Variant

KINDS = ("warehouse", "store", "relay")
SERVICES = ("click_collect", "ship_from_store", "returns", "endless_aisle", "relay_pickup")
# Days until goods are ready for pickup, when they are not on the shelf of the pickup location.
TRANSFER_DAYS = 2
RELAY_DAYS = 3
READY_HOURS = 2  # click & collect from the store's own shelf


def add_location(
    session: Session,
    *,
    kind: str,
    name: str,
    street: str,
    postal_code: str,
    city: str,
    latitude: float,
    longitude: float,
    opening_hours: str = "",
    services: list[str] | None = None,
    location_id: str | None = None,
) -> Location:
    if kind not in KINDS:
        raise InvalidInput(f"kind: must be one of {', '.join(KINDS)}")
    if not -90 <= latitude <= 90 or not -180 <= longitude <= 180:
        raise InvalidInput("latitude/longitude: out of range")
    unknown = sorted(set(services or []) - set(SERVICES))
    if unknown:
        raise InvalidInput(f"services: unknown {', '.join(unknown)}; known: {', '.join(SERVICES)}")
    if not name.strip():
        raise InvalidInput("name: required")
    location = Location(
        id=location_id or new_id("loc"),
        kind=kind,
        name=name.strip(),
        street=street,
        postal_code=postal_code,
        city=city,
        latitude=latitude,
        longitude=longitude,
        opening_hours=opening_hours,
        services=sorted(set(services or [])),
        active=True,
    )
    session.add(location)
    session.flush()
    forget_places()
    return location


def _variant(session: Session, sku: str) -> None:
    if session.scalar(select(Variant.sku).where(Variant.sku == sku)) is None:
        raise NotFound(f"SKU {sku!r} not found")


def _location(session: Session, location_id: str) -> Location:
    location = session.get(Location, location_id)
    if location is None or not location.active:
        raise NotFound(f"location {location_id!r} not found")
    return location


# Every stock change is one of a few statements, built once: building a statement costs more Python than
# running it. They run on the session's connection as plain Core (no ORM bulk-update bookkeeping).
_SKU: BindParameter[str] = bindparam("p_sku")
_LOCATION: BindParameter[str] = bindparam("p_location")
_QUANTITY: BindParameter[int] = bindparam("p_quantity")
_NOW: BindParameter[datetime] = bindparam("p_now")
_THIS_LEVEL = (StockLevel.sku == _SKU, StockLevel.location_id == _LOCATION)
_AVAILABLE_COVERS = StockLevel.on_hand - StockLevel.reserved >= _QUANTITY
_RESERVED_COVERS = StockLevel.reserved >= _QUANTITY
# (on hand change, reserved change, guard) per change, as multiples of the quantity
_CHANGES = {
    "reserve": (0, 1, _AVAILABLE_COVERS),
    "release": (0, -1, _RESERVED_COVERS),
    "take_reserved": (-1, -1, _RESERVED_COVERS),
    "take_from_shelf": (-1, 0, _AVAILABLE_COVERS),
}
_CHANGE_STATEMENTS = {
    change: update(StockLevel)
    .where(*_THIS_LEVEL, guard)
    .values(
        on_hand=StockLevel.on_hand + on_hand * _QUANTITY,
        reserved=StockLevel.reserved + reserved * _QUANTITY,
        updated_at=_NOW,
    )
    for change, (on_hand, reserved, guard) in _CHANGES.items()
}
_MOVE = insert(StockMovement)
_LEVEL = select(StockLevel.on_hand, StockLevel.reserved).where(*_THIS_LEVEL)


def _move(session: Session, sku: str, location_id: str, on_hand: int, reserved: int, reason: str,
          reference: str | None, now: datetime) -> None:  # fmt: skip
    session.connection().execute(_MOVE, {
        "sku": sku, "location_id": location_id, "on_hand_change": on_hand, "reserved_change": reserved,
        "reason": reason, "reference": reference, "created_at": now})  # fmt: skip


def _quantity(quantity: int) -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= 100_000:
        raise InvalidInput("quantity: a whole number from 1 to 100,000")
    return quantity


def receive(session: Session, sku: str, location_id: str, quantity: int, *, reason: str = "receipt",
            reference: str | None = None, now: datetime) -> None:  # fmt: skip
    """Goods arrive (a delivery, a return, a transfer in)."""
    _quantity(quantity)
    _variant(session, sku)
    location = _location(session, location_id)
    if location.kind == "relay":
        raise InvalidInput("a relay point holds no stock: goods for it are shipped to it")
    updated = session.execute(
        update(StockLevel)
        .where(StockLevel.sku == sku, StockLevel.location_id == location_id)
        .values(on_hand=StockLevel.on_hand + quantity, updated_at=now)
    )
    if updated.rowcount == 0:  # type: ignore[attr-defined]
        session.add(
            StockLevel(sku=sku, location_id=location_id, on_hand=quantity, reserved=0, updated_at=now)
        )
        session.flush()
    _move(session, sku, location_id, quantity, 0, reason, reference, now)


def _change(session: Session, change: str, sku: str, location_id: str, quantity: int, *, reason: str,
            reference: str | None, now: datetime) -> None:  # fmt: skip
    """One change of a level, recorded as a movement. The movement is written first and the level last,
    so that the level's row lock (PostgreSQL) is held for as little as possible; when the level cannot
    cover the change, InsufficientStock, and the caller's unit of work rolls back (the movement with it)."""
    on_hand, reserved, _ = _CHANGES[change]
    _move(session, sku, location_id, on_hand * quantity, reserved * quantity, reason, reference, now)
    changed = session.connection().execute(
        _CHANGE_STATEMENTS[change],
        {"p_sku": sku, "p_location": location_id, "p_quantity": quantity, "p_now": now},
    )
    if changed.rowcount != 1:
        raise _shortage(sku, location_id, available(session, sku, location_id), quantity)


def _shortage(sku: str, location_id: str, available: int, asked: int) -> InsufficientStock:
    return InsufficientStock(
        f"insufficient stock: {sku} at {location_id}: {available} available, {asked} asked",
        details={"sku": sku, "location_id": location_id, "available": available, "asked": asked},
    )


# The levels of several (sku, location) pairs are read locked until the transaction ends (PostgreSQL;
# SQLite writers hold the database's write lock already), in one order so that two such batches cannot
# deadlock. "(sku = ? AND location_id = ?) OR …", not "(sku, location_id) IN (…)": SQLite plans the row
# value list with this ORDER BY as a scan of the whole primary key. At most LOCK_CHUNK pairs a statement
# (SQLite limits an expression's depth).
LOCK_CHUNK = 128
_MOVEMENT_COLUMNS = (
    "sku",
    "location_id",
    "on_hand_change",
    "reserved_change",
    "reason",
    "reference",
    "created_at",
)


@cache
def _lock_statement(pairs: int) -> Select[str, str, int]:
    """The locking read of ``pairs`` levels (parameters s0, l0, s1, l1, …), built once per size."""
    wanted = or_(*(and_(StockLevel.sku == bindparam(f"s{n}"), StockLevel.location_id == bindparam(f"l{n}"))
                   for n in range(pairs)))  # fmt: skip
    return (
        select(StockLevel.sku, StockLevel.location_id, StockLevel.on_hand - StockLevel.reserved)
        .where(wanted)
        .order_by(StockLevel.sku, StockLevel.location_id)
        .with_for_update()
    )


def _locked_levels(session: Session, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Available units of each pair that has a level (``pairs`` sorted), the rows locked."""
    free: dict[tuple[str, str], int] = {}
    for start in range(0, len(pairs), LOCK_CHUNK):
        chunk = pairs[start : start + LOCK_CHUNK]
        # A few statement sizes only (powers of two; the last pair repeated to fill one): each size is
        # one entry of SQLAlchemy's compiled cache.
        size = 1 << (len(chunk) - 1).bit_length()
        chunk += [chunk[-1]] * (size - len(chunk))
        values = {
            f"{name}{n}": value
            for n, pair in enumerate(chunk)
            for name, value in zip("sl", pair, strict=True)
        }
        for row in session.connection().execute(_lock_statement(size), values):
            free[(row[0], row[1])] = row[2]
    return free


def reserve_many(session: Session, wanted: list[tuple[str, str, list[dict[str, Any]]]], *,
                 now: datetime) -> list[InsufficientStock | None]:  # fmt: skip
    """Set units aside for several holders at once, first come first served: ``wanted`` is (reference,
    location id, lines [{"sku", "quantity"}]) per holder, in arrival order. Each holder gets all of its
    lines or none (then its InsufficientStock, and nothing written for it). The levels are read locked,
    decided in memory, and written in one statement per level changed and one for the movements; the
    guarded UPDATE and the CHECK constraints still stand behind the decision."""
    free = _locked_levels(
        session, sorted({(line["sku"], location_id) for _, location_id, lines in wanted for line in lines})
    )
    bulk = BulkWriter(session.connection())
    moment = bulk.moment(now)
    taken: dict[tuple[str, str], int] = {}
    movements: list[tuple[Any, ...]] = []  # in _MOVEMENT_COLUMNS order
    outcomes: list[InsufficientStock | None] = []
    for reference, location_id, lines in wanted:
        short = next(
            (line for line in lines if free.get((line["sku"], location_id), 0) < line["quantity"]), None
        )
        if short is not None:
            outcomes.append(
                _shortage(
                    short["sku"], location_id, free.get((short["sku"], location_id), 0), short["quantity"]
                )
            )
            continue
        for line in lines:
            pair = (line["sku"], location_id)
            free[pair] -= line["quantity"]
            taken[pair] = taken.get(pair, 0) + line["quantity"]
            movements.append((line["sku"], location_id, 0, line["quantity"], "reserve", reference, moment))
        outcomes.append(None)
    if taken:
        changed = bulk.connection.execute(_CHANGE_STATEMENTS["reserve"], [
            {"p_sku": sku, "p_location": location_id, "p_quantity": quantity, "p_now": now}
            for (sku, location_id), quantity in taken.items()])  # fmt: skip
        if changed.rowcount != len(taken):  # cannot happen under the locks: refuse the whole batch
            raise RuntimeError(f"stock levels changed under their locks ({changed.rowcount} of {len(taken)})")
        bulk.insert(table_of(StockMovement), _MOVEMENT_COLUMNS, movements)
    return outcomes


def release(session: Session, sku: str, location_id: str, quantity: int, *, reference: str, reason: str,
            now: datetime) -> None:  # fmt: skip
    """Units set aside go back to the shelf (a reservation expired or was cancelled)."""
    _change(session, "release", sku, location_id, _quantity(quantity), reason=reason, reference=reference,
            now=now)  # fmt: skip


def take(session: Session, sku: str, location_id: str, quantity: int, *, reserved: bool, reference: str,
         reason: str, now: datetime) -> None:  # fmt: skip
    """Units leave (sold, shipped, collected, transferred out): from those set aside, or from the shelf."""
    _change(session, "take_reserved" if reserved else "take_from_shelf", sku, location_id, _quantity(quantity),
            reason=reason, reference=reference, now=now)  # fmt: skip


def available(session: Session, sku: str, location_id: str) -> int:
    level = session.connection().execute(_LEVEL, {"p_sku": sku, "p_location": location_id}).first()
    return (level.on_hand - level.reserved) if level else 0


# -------------------------------------------------------------------------------------- availability
EARTH_RADIUS_KM = 6371.0


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return EARTH_RADIUS_KM * 2 * math.asin(math.sqrt(a))


def _on_unit_sphere(latitude: float, longitude: float) -> tuple[float, float, float]:
    """The point in 3D on a sphere of radius 1: the squared straight-line (chord) distance between two
    such points orders places exactly as the great-circle distance does, for a few multiplications."""
    lat, lon = math.radians(latitude), math.radians(longitude)
    return math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)


@dataclass(frozen=True)
class _Place:
    id: str
    kind: str
    name: str
    city: str
    latitude: float
    longitude: float
    services: tuple[str, ...]
    point: tuple[float, float, float] = field(init=False)  # on the unit sphere

    def __post_init__(self) -> None:
        object.__setattr__(self, "point", _on_unit_sphere(self.latitude, self.longitude))


@dataclass(frozen=True)
class _Network:
    """The active locations, as every availability query needs them."""

    by_id: dict[str, _Place]
    pickup_points: list[_Place]  # stores and relay points, by id
    warehouse_ids: list[str]


# Locations change rarely and every availability query needs all of them: kept per database for a few
# seconds (a new or closed store shows within that time).
PLACES_SECONDS = 5.0
_places_cache: dict[str, tuple[float, _Network]] = {}


def _network(session: Session) -> _Network:
    key = str(session.get_bind().engine.url)
    cached = _places_cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < PLACES_SECONDS:
        return cached[1]
    rows = session.execute(
        select(Location.id, Location.kind, Location.name, Location.city, Location.latitude, Location.longitude,
               Location.services).where(Location.active.is_(True)).order_by(Location.id)
    ).all()  # fmt: skip
    places = [_Place(r.id, r.kind, r.name, r.city, r.latitude, r.longitude, tuple(r.services)) for r in rows]
    network = _Network(
        by_id={place.id: place for place in places},
        pickup_points=[place for place in places if place.kind != "warehouse"],
        warehouse_ids=[place.id for place in places if place.kind == "warehouse"],
    )
    _places_cache[key] = (time.monotonic(), network)
    return network


def takes_reservations(session: Session, location_id: str) -> bool:
    place = _network(session).by_id.get(location_id)
    return place is not None and place.kind == "store" and "click_collect" in place.services


def forget_places() -> None:
    """After locations change in this process: the next query reads them again."""
    _places_cache.clear()


_AVAILABLE_BY_LOCATION = select(StockLevel.location_id, StockLevel.on_hand - StockLevel.reserved).where(
    StockLevel.sku == _SKU
)


def availability(session: Session, sku: str, *, near: tuple[float, float] | None, now: datetime,
                 limit: int = 50) -> list[dict[str, Any]]:  # fmt: skip
    """Where the SKU can be picked up, nearest first: stores with their own available units (ready in a
    couple of hours), stores without (ready once transferred from a warehouse or another store that has
    it), relay points (shipped from a warehouse)."""
    found = session.connection().execute(_AVAILABLE_BY_LOCATION, {"p_sku": sku}).all()
    levels: dict[str, int] = dict(found)
    if not levels:  # never stocked anywhere, or no such SKU
        _variant(session, sku)
    network = _network(session)
    warehouse_stock = sum(max(0, levels.get(place_id, 0)) for place_id in network.warehouse_ids)
    anywhere = sum(max(0, v) for v in levels.values())
    candidates = network.pickup_points
    if near is not None:
        x, y, z = _on_unit_sphere(*near)
        by_distance = []
        for place in candidates:
            px, py, pz = place.point
            by_distance.append(((x - px) ** 2 + (y - py) ** 2 + (z - pz) ** 2, place.id, place))
        candidates = [p for _, _, p in heapq.nsmallest(limit, by_distance)]
    result = []
    pickup_here = (now + timedelta(hours=READY_HOURS)).isoformat()
    pickup_transferred = (now + timedelta(days=TRANSFER_DAYS)).isoformat() if anywhere > 0 else None
    pickup_relay = (now + timedelta(days=RELAY_DAYS)).isoformat() if warehouse_stock > 0 else None
    for place in candidates[:limit]:
        here = max(0, levels.get(place.id, 0)) if place.kind == "store" else 0
        if place.kind == "store":
            if here > 0:
                ready: str | None = pickup_here
            elif "click_collect" in place.services:
                ready = pickup_transferred
            else:
                ready = None
        else:
            ready = pickup_relay
        entry: dict[str, Any] = {
            "location_id": place.id,
            "kind": place.kind,
            "name": place.name,
            "city": place.city,
            "available_here": here,
            "pickup_from": ready,
        }
        if near is not None:
            entry["distance_km"] = round(distance_km(near[0], near[1], place.latitude, place.longitude), 1)
        result.append(entry)
    return result
