"""Stock, reservations, orders and returns: no overselling under concurrency, expiry with a controlled
clock, click & collect with transfer, relay pickup, endless aisle, returns anywhere."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, inspect, select, text, update
from sqlalchemy.exc import IntegrityError

from parcours.commerce import orders, reservations, stock
from parcours.db.engine import Database
from parcours.errors import Conflict, InsufficientStock, InvalidInput
from parcours.models import Event, Price, Product, Reservation, Return, StockLevel, StockMovement, Variant
from tests.concurrency_helpers import at_once

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SKU = "ARA-031"
SKU2 = "ARA-030"  # sorts first: reserved before SKU in a reservation of both


def world(db: Database, units: int = 10) -> None:
    """A warehouse, two stores (Paris, Lyon), a relay point; one SKU priced 54.00 EUR, ``units`` in Paris."""
    with db.write() as session:
        session.add(Product(id="p-moulin", name="Moulin manuel", category="accessoires", description="",
                            created_at=T0))  # fmt: skip
        session.flush()
        session.add(
            Variant(sku=SKU, product_id="p-moulin", ean=None, name="Moulin", attributes={}, active=True)
        )
        session.flush()
        session.add(Price(sku=SKU, currency="EUR", amount=Decimal("54.00"), channel=None, reason=None))
        session.flush()
        stock.add_location(session, location_id="WH", kind="warehouse", name="Entrepôt Orléans", street="1 rue",
                           postal_code="45000", city="Orléans", latitude=47.90, longitude=1.90)  # fmt: skip
        stock.add_location(session, location_id="PAR", kind="store", name="Paris Rivoli", street="2 rue",
                           postal_code="75001", city="Paris", latitude=48.86, longitude=2.35,
                           services=["click_collect", "returns", "endless_aisle"])  # fmt: skip
        stock.add_location(session, location_id="LYS", kind="store", name="Lyon République", street="3 rue",
                           postal_code="69002", city="Lyon", latitude=45.76, longitude=4.83,
                           services=["click_collect", "returns"])  # fmt: skip
        stock.add_location(session, location_id="RLY", kind="relay", name="Relais Tabac Bastille",
                           street="4 rue", postal_code="75011", city="Paris", latitude=48.85, longitude=2.37,
                           services=["relay_pickup"])  # fmt: skip
        stock.receive(session, SKU, "PAR", units, now=T0)


def level(db: Database, location: str, sku: str = SKU) -> tuple[int, int]:
    with db.read() as session:
        row = session.execute(select(StockLevel.on_hand, StockLevel.reserved).where(
            StockLevel.sku == sku, StockLevel.location_id == location)).one()  # fmt: skip
        return int(row.on_hand), int(row.reserved)


def test_fifty_concurrent_clients_never_oversell_the_last_ten_units(db: Database) -> None:
    world(db, units=10)

    def client(n: int) -> str:
        try:
            with db.write() as session:
                if n % 2:
                    reservations.reserve(session, location_id="PAR", lines=[{"sku": SKU, "quantity": 1}],
                                         channel="app", request_id=f"r{n}", profile_id=None, now=T0)  # fmt: skip
                else:
                    orders.place(session, channel="store", request_id=f"o{n}", lines=[{"sku": SKU, "quantity": 1}],
                                 fulfilment="ship_from_store", source_location_id="PAR", profile_id=None, now=T0)  # fmt: skip
            return "ok"
        except InsufficientStock as error:
            assert "insufficient stock" in error.message
            return "refused"

    outcomes = at_once(50, client)
    assert outcomes.count("ok") == 10 and outcomes.count("refused") == 40
    on_hand, reserved = level(db, "PAR")
    assert on_hand - reserved == 0 and on_hand >= 0 and reserved >= 0


def test_copies_of_one_request_sent_at_once_make_one_reservation(db: Database) -> None:
    """A till or an app retrying while the first try is still in flight: the request id is claimed in
    the insert itself, so every copy answers with the one reservation and the stock moves once."""
    world(db, units=10)

    def client(_: int) -> tuple[str, bool]:
        with db.write() as session:
            reservation, created = reservations.reserve(
                session, location_id="PAR", lines=[{"sku": SKU, "quantity": 2}], channel="app",
                request_id="same", profile_id=None, now=T0)  # fmt: skip
            return reservation.id, created

    answers = at_once(8, client)
    assert len({reservation_id for reservation_id, _ in answers}) == 1
    assert [created for _, created in answers].count(True) == 1
    assert level(db, "PAR") == (10, 2)


def test_the_database_refuses_negative_stock_whoever_writes(db: Database) -> None:
    world(db, units=2)
    with pytest.raises(IntegrityError), db.write() as session:
        session.execute(text("UPDATE stock_levels SET reserved = 3 WHERE location_id = 'PAR'"))
    with pytest.raises(IntegrityError), db.write() as session:
        session.execute(text("UPDATE stock_levels SET on_hand = -1 WHERE location_id = 'PAR'"))


def test_a_refused_reservation_leaves_nothing_and_its_request_id_free(db: Database) -> None:
    """All lines or none, without a savepoint: the unit of work that met InsufficientStock rolls back,
    request id, movement and every line with it."""
    world(db, units=2)
    with db.write() as session:
        session.add(
            Variant(sku=SKU2, product_id="p-moulin", ean=None, name="Meules", attributes={}, active=True)
        )
        session.flush()
        stock.receive(session, SKU2, "PAR", 5, now=T0)
    lines = [{"sku": SKU, "quantity": 3}, {"sku": SKU2, "quantity": 1}]
    with pytest.raises(InsufficientStock, match=f"{SKU} at PAR: 2 available, 3 asked"), db.write() as session:
        reservations.reserve(session, location_id="PAR", lines=lines, channel="app", request_id="big",
                             profile_id=None, now=T0)  # fmt: skip
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Reservation)) == 0
        assert session.scalar(select(func.count()).select_from(StockMovement).where(
            StockMovement.reason == "reserve")) == 0  # fmt: skip
    assert level(db, "PAR") == (2, 0) and level(db, "PAR", SKU2) == (5, 0)
    with db.write() as session:  # the goods arrive: the same request now succeeds
        stock.receive(session, SKU, "PAR", 1, now=T0)
        _, created = reservations.reserve(session, location_id="PAR", lines=lines, channel="app",
                                          request_id="big", profile_id=None, now=T0)  # fmt: skip
    assert created and level(db, "PAR") == (3, 3) and level(db, "PAR", SKU2) == (5, 1)


def test_a_request_id_is_one_reservation_even_after_the_store_stops_taking_them(db: Database) -> None:
    world(db, units=3)
    one = [{"sku": SKU, "quantity": 1}]
    with db.write() as session:
        held, _ = reservations.reserve(session, location_id="PAR", lines=one, channel="app", request_id="r1",
                                       profile_id=None, now=T0)  # fmt: skip
        assert inspect(held).persistent  # in the session as stored: flushing writes it no second time
        session.flush()
    with pytest.raises(Conflict, match="already used for another reservation"), db.write() as session:
        reservations.reserve(session, location_id="PAR", lines=[{"sku": SKU, "quantity": 2}], channel="app",
                             request_id="r1", profile_id=None, now=T0)  # fmt: skip
    with db.write() as session:
        session.execute(text("UPDATE locations SET services = '[]' WHERE id = 'PAR'"))
    stock.forget_places()
    with db.write() as session:
        again, created = reservations.reserve(session, location_id="PAR", lines=one, channel="app",
                                              request_id="r1", profile_id=None, now=T0)  # fmt: skip
        assert not created and again.id == held.id
        with pytest.raises(InvalidInput, match="not a store taking reservations"):
            reservations.reserve(session, location_id="PAR", lines=one, channel="app", request_id="r2",
                                 profile_id=None, now=T0)  # fmt: skip
    assert level(db, "PAR") == (3, 1)


def test_reservations_expire_and_release_the_stock(db: Database) -> None:
    world(db, units=3)
    with db.write() as session:
        held, created = reservations.reserve(session, location_id="PAR", lines=[{"sku": SKU, "quantity": 2}],
                                             channel="app", request_id="r1", profile_id=None, now=T0,
                                             hold_hours=24)  # fmt: skip
        again, created_again = reservations.reserve(session, location_id="PAR",
                                                    lines=[{"sku": SKU, "quantity": 2}], channel="app",
                                                    request_id="r1", profile_id=None, now=T0)  # fmt: skip
    assert created and not created_again and again.id == held.id and level(db, "PAR") == (3, 2)
    with db.write() as session:
        assert reservations.expire_due(session, T0 + timedelta(hours=23)) == []
    with db.write() as session:
        assert reservations.expire_due(session, T0 + timedelta(hours=24)) == [held.id]
    assert level(db, "PAR") == (3, 0)
    with pytest.raises(Conflict, match="expired"), db.write() as session:
        reservations.cancel(session, held.id, T0 + timedelta(hours=25))
    with pytest.raises(InvalidInput, match="quantity"), db.write() as session:
        reservations.reserve(session, location_id="PAR", lines=[{"sku": SKU, "quantity": 0}], channel="app",
                             request_id="r2", profile_id=None, now=T0)  # fmt: skip


def test_click_and_collect_relay_endless_aisle_and_returns_anywhere(db: Database) -> None:
    world(db, units=1)
    with db.write() as session:
        stock.receive(session, SKU, "WH", 5, now=T0)
        # Lyon has none: collected in Lyon after a transfer (later pickup date).
        transferred, _ = orders.place(session, channel="web", request_id="cc1", lines=[{"sku": SKU, "quantity": 2}],
                                      fulfilment="click_collect", pickup_location_id="LYS", profile_id=None,
                                      now=T0)  # fmt: skip
        assert transferred.source_location_id == "WH"
        assert transferred.ready_on == T0 + timedelta(days=stock.TRANSFER_DAYS)
        # Paris has one on the shelf: ready in two hours.
        local, _ = orders.place(session, channel="app", request_id="cc2", lines=[{"sku": SKU, "quantity": 1}],
                                fulfilment="click_collect", pickup_location_id="PAR", profile_id=None, now=T0)  # fmt: skip
        assert local.source_location_id == "PAR" and local.ready_on == T0 + timedelta(hours=2)
        relay, _ = orders.place(session, channel="instagram", request_id="rl1", lines=[{"sku": SKU, "quantity": 1}],
                                fulfilment="relay", pickup_location_id="RLY", profile_id=None, now=T0)  # fmt: skip
        assert relay.source_location_id == "WH" and relay.ready_on == T0 + timedelta(days=stock.RELAY_DAYS)
        # Endless aisle: Paris (now empty) orders for the customer, delivered home from the warehouse.
        aisle, _ = orders.place(session, channel="store", request_id="ea1", lines=[{"sku": SKU, "quantity": 1}],
                                fulfilment="ship_from_warehouse", ordering_location_id="PAR", profile_id=None,
                                now=T0)  # fmt: skip
        assert aisle.ordering_location_id == "PAR" and aisle.source_location_id == "WH"
        with pytest.raises(InvalidInput, match="pickup_location_id"):
            orders.place(session, channel="web", request_id="bad", lines=[{"sku": SKU, "quantity": 1}],
                         fulfilment="relay", pickup_location_id="PAR", profile_id=None, now=T0)  # fmt: skip
    assert level(db, "WH") == (1, 0) and level(db, "PAR") == (0, 0)
    # A web order returned in the Lyon store: restocked in Lyon, refund of the price paid.
    with db.write() as session:
        back, _ = orders.return_items(session, transferred.id, location_id="LYS", lines=[{"sku": SKU, "quantity": 1}],
                                      channel="store", request_id="ret1", reason="trop grand",
                                      now=T0 + timedelta(days=5))  # fmt: skip
        assert back.refund_amount == Decimal("54.00")
        with pytest.raises(Conflict, match="can still be returned"):
            orders.return_items(session, transferred.id, location_id="LYS", lines=[{"sku": SKU, "quantity": 2}],
                                channel="store", request_id="ret2", reason="x", now=T0 + timedelta(days=5))  # fmt: skip
        with pytest.raises(Conflict, match="return period"):
            orders.return_items(session, local.id, location_id="PAR", lines=[{"sku": SKU, "quantity": 1}],
                                channel="store", request_id="ret3", reason="x", now=T0 + timedelta(days=31))  # fmt: skip
    assert level(db, "LYS") == (1, 0)


def test_availability_lists_nearest_first_with_pickup_dates(db: Database) -> None:
    world(db, units=2)
    with db.write() as session:
        stock.receive(session, SKU, "WH", 5, now=T0)
    with db.read() as session:
        places: list[dict[str, Any]] = stock.availability(session, SKU, near=(48.857, 2.36), now=T0)
    assert [p["location_id"] for p in places] == ["PAR", "RLY", "LYS"]
    assert (
        places[0]["available_here"] == 2 and places[0]["pickup_from"] == (T0 + timedelta(hours=2)).isoformat()
    )
    assert places[2]["pickup_from"] == (T0 + timedelta(days=2)).isoformat()  # Lyon: after a transfer
    assert places[1]["kind"] == "relay" and places[1]["pickup_from"] == (T0 + timedelta(days=3)).isoformat()


coordinates = st.tuples(st.floats(-90, 90), st.floats(-180, 180))


@given(origin=coordinates, places=st.lists(coordinates, min_size=2, max_size=30))
def test_nearest_first_by_chord_is_nearest_first_by_great_circle(
    origin: tuple[float, float], places: list[tuple[float, float]]
) -> None:
    """Availability orders places by the straight-line distance through the Earth (cheaper): the same
    order as the great-circle distance it reports."""
    x, y, z = stock._on_unit_sphere(*origin)
    chords = [
        (x - px) ** 2 + (y - py) ** 2 + (z - pz) ** 2
        for px, py, pz in (stock._on_unit_sphere(*place) for place in places)
    ]
    by_chord = [places[i] for i in sorted(range(len(places)), key=chords.__getitem__)]
    kilometres = [stock.distance_km(*origin, *place) for place in by_chord]
    assert all(near <= far + 1e-6 for near, far in pairwise(kilometres))


def test_an_expiry_pass_never_releases_a_reservation_being_cancelled(db: Database) -> None:
    """The background pass and a request at the same moment: the units of the reservation go back to
    the shelf once, and it stays cancelled."""
    world(db, units=5)
    one = [{"sku": SKU, "quantity": 1}]
    with db.write() as session:
        ending, _ = reservations.reserve(session, location_id="PAR", lines=one, channel="app", request_id="a",
                                         profile_id=None, now=T0, hold_hours=1)  # fmt: skip
        reservations.reserve(session, location_id="PAR", lines=[{"sku": SKU, "quantity": 2}], channel="app",
                             request_id="b", profile_id=None, now=T0, hold_hours=48)  # fmt: skip
    expired: list[list[str]] = []

    def background_pass() -> None:
        with db.write() as session:
            expired.append(reservations.expire_due(session, T0 + timedelta(hours=2)))

    with db.write() as session:  # the customer cancels; the pass starts before the cancel commits
        reservations.cancel(session, ending.id, T0 + timedelta(hours=2))
        other = threading.Thread(target=background_pass)
        other.start()
        time.sleep(0.5)
    other.join()
    assert expired == [[]]
    assert level(db, "PAR") == (5, 2)
    with db.read() as session:
        assert reservations.get(session, ending.id).status == "cancelled"


def test_notifications_are_events_on_the_timeline(db: Database, settings: Any) -> None:
    from tests.helpers import ingest, make_source, profile_of

    web = make_source(db, "web", "web")
    ingest(db, settings, web, [{"type": "identify", "messageId": "s", "userId": "u-1",
                                "traits": {"email": "a@example.fr"}}])  # fmt: skip
    profile = profile_of(db, settings, "user_id", "u-1")
    world(db, units=1)
    with db.write() as session:
        reservations.reserve(session, location_id="PAR", lines=[{"sku": SKU, "quantity": 1}], channel="app",
                                       request_id="n1", profile_id=profile, now=T0, hold_hours=1)  # fmt: skip
    with db.write() as session:
        reservations.expire_due(session, T0 + timedelta(hours=2))
    with db.read() as session:
        names = list(
            session.scalars(select(Event.name).where(Event.profile_id == profile).order_by(Event.timestamp))
        )
    assert [n for n in names if n and n.startswith("Reservation")] == [
        "Reservation Held",
        "Reservation Expired",
    ]


def test_a_click_and_collect_order_is_handed_over_at_its_pickup_store_once_ready(
    db: Database, settings: Any
) -> None:
    from parcours.models import LoyaltyEntry
    from tests.helpers import ingest, make_source, profile_of

    web = make_source(db, "web", "web")
    ingest(db, settings, web, [{"type": "identify", "messageId": "h", "userId": "u-2",
                                "traits": {"email": "b@example.fr"}}])  # fmt: skip
    profile = profile_of(db, settings, "user_id", "u-2")
    world(db, units=1)
    with db.write() as session:
        stock.receive(session, SKU, "WH", 2, now=T0)
        local, _ = orders.place(session, channel="web", request_id="h1", lines=[{"sku": SKU, "quantity": 1}],
                                fulfilment="click_collect", pickup_location_id="PAR", profile_id=profile, now=T0)  # fmt: skip
        moved, _ = orders.place(session, channel="web", request_id="h2", lines=[{"sku": SKU, "quantity": 1}],
                                fulfilment="click_collect", pickup_location_id="LYS", profile_id=profile, now=T0)  # fmt: skip
        home, _ = orders.place(session, channel="web", request_id="h3", lines=[{"sku": SKU, "quantity": 1}],
                               fulfilment="ship_from_warehouse", profile_id=profile, now=T0)  # fmt: skip
    later = T0 + timedelta(minutes=10)  # Paris had it on the shelf: no need to wait for the promised time
    with db.write() as session:
        with pytest.raises(Conflict, match="picked up at PAR, not here"):
            orders.hand_over(session, local.id, location_id="LYS", now=later)
        with pytest.raises(Conflict, match="not ready before"):
            orders.hand_over(session, moved.id, location_id="LYS", now=later)  # the transfer is on its way
        with pytest.raises(Conflict, match="delivered"):
            orders.hand_over(session, home.id, location_id="PAR", now=later)
        collected = orders.hand_over(session, local.id, location_id="PAR", now=later)
        assert collected.status == "collected"
    with db.write() as session, pytest.raises(Conflict, match="is collected"):
        orders.hand_over(session, local.id, location_id="PAR", now=later)
    with db.read() as session:
        points = session.scalars(select(LoyaltyEntry.points).where(LoyaltyEntry.order_id == local.id)).all()
        names = session.scalars(select(Event.name).where(Event.profile_id == profile)).all()
    assert points == [54] and "Order Collected" in names


def test_two_returns_at_once_cannot_both_take_back_the_last_unit(db: Database) -> None:
    """The same item brought back in two stores at the same moment: one refund, one restock."""
    world(db, units=3)
    with db.write() as session:
        order, _ = orders.place(session, channel="web", request_id="w1", lines=[{"sku": SKU, "quantity": 1}],
                                fulfilment="ship_from_store", source_location_id="PAR", profile_id=None, now=T0)  # fmt: skip

    def store(n: int) -> str:
        try:
            with db.write() as session:
                orders.return_items(session, order.number, location_id="LYS", lines=[{"sku": SKU, "quantity": 1}],
                                    channel="store", request_id=f"ret-{n}", reason="", now=T0 + timedelta(days=1))  # fmt: skip
            return "refunded"
        except Conflict as error:
            assert "can still be returned" in error.message
            return "refused"

    assert sorted(at_once(6, store)) == ["refunded"] + ["refused"] * 5
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Return)) == 1
    assert level(db, "LYS") == (1, 0)


def test_a_return_follows_the_policy_of_the_channel_the_order_was_bought_on(db: Database) -> None:
    from parcours.commerce import catalogue

    world(db, units=3)
    with db.write() as session:
        catalogue.set_return_policy(session, days=30, conditions="Unused", refund_methods=["card"])
        catalogue.set_return_policy(
            session, days=14, conditions="Unused", refund_methods=["card"], channel="instagram"
        )
        social, _ = orders.place(session, channel="instagram", request_id="i1", lines=[{"sku": SKU, "quantity": 1}],
                                 fulfilment="click_collect", pickup_location_id="PAR", profile_id=None, now=T0)  # fmt: skip
        web, _ = orders.place(session, channel="web", request_id="w1", lines=[{"sku": SKU, "quantity": 1}],
                              fulfilment="click_collect", pickup_location_id="PAR", profile_id=None, now=T0)  # fmt: skip
    day_20 = T0 + timedelta(days=20)
    with db.write() as session, pytest.raises(Conflict, match="return period of 14 days"):
        orders.return_items(session, social.id, location_id="LYS", lines=[{"sku": SKU, "quantity": 1}],
                            channel="store", request_id="r1", reason="x", now=day_20)  # fmt: skip
    with db.write() as session:
        back, _ = orders.return_items(session, web.id, location_id="LYS", lines=[{"sku": SKU, "quantity": 1}],
                                      channel="store", request_id="r2", reason="x", now=day_20)  # fmt: skip
        assert back.refund_amount == Decimal("54.00")


# ------------------------------------------------------------------------ reservations stored together
def _second_sku(db: Database, units_paris: int, units_lyon: int = 0) -> None:
    with db.write() as session:
        session.add(
            Variant(sku=SKU2, product_id="p-moulin", ean=None, name="Meules", attributes={}, active=True)
        )
        session.flush()
        stock.receive(session, SKU2, "PAR", units_paris, now=T0)
        if units_lyon:
            stock.receive(session, SKU2, "LYS", units_lyon, now=T0)


def _request(
    request_id: str, *lines: tuple[str, int], location: str = "PAR"
) -> reservations.ReservationRequest:
    return reservations.ReservationRequest(
        location_id=location, lines=[{"sku": sku, "quantity": q} for sku, q in lines], channel="app",
        request_id=request_id)  # fmt: skip


def _codes(outcomes: list[reservations.Outcome]) -> list[str]:
    return [o.code if isinstance(o, Exception) else ("created" if o[1] else "again") for o in outcomes]


@pytest.mark.parametrize("lock_chunk", [stock.LOCK_CHUNK, 1])
def test_a_batch_of_reservations_is_served_in_arrival_order_each_all_or_nothing(
    db: Database, lock_chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stock, "LOCK_CHUNK", lock_chunk)  # 1: the levels read in one statement each
    world(db, units=3)
    _second_sku(db, units_paris=1)
    batch = [
        _request("a", (SKU, 2)),
        _request("b", (SKU, 1), (SKU2, 2)),  # SKU2 short: nothing of b, its unit of SKU stays free
        _request("c", (SKU, 1)),  # gets the unit b did not take
        _request("d", (SKU, 1)),  # nothing left
        _request("e", (SKU2, 1)),
        reservations.ReservationRequest(location_id="PAR", lines=[], channel="app", request_id="f"),
        _request("g", (SKU, 1), location="RLY"),  # a relay point takes no reservations
    ]
    with db.write() as session:
        outcomes = reservations.reserve_batch(session, batch, now=T0)
    assert _codes(outcomes) == [
        "created", "insufficient_stock", "created", "insufficient_stock", "created", "invalid_input", "invalid_input"
    ]  # fmt: skip
    shortage = outcomes[1]
    assert isinstance(shortage, InsufficientStock)
    assert shortage.details == {"sku": SKU2, "location_id": "PAR", "available": 1, "asked": 2}
    assert level(db, "PAR") == (3, 3) and level(db, "PAR", SKU2) == (1, 1)
    with db.read() as session:
        assert sorted(session.scalars(select(Reservation.request_id))) == ["a", "c", "e"]
        moves = session.execute(select(StockMovement.sku, StockMovement.reserved_change).where(
            StockMovement.reason == "reserve").order_by(StockMovement.id)).all()  # fmt: skip
        assert [tuple(m) for m in moves] == [(SKU, 2), (SKU, 1), (SKU2, 1)]


def test_a_request_sent_twice_in_one_batch_answers_as_a_retry(db: Database) -> None:
    world(db, units=2)
    batch = [_request("r", (SKU, 1)), _request("r", (SKU, 1)), _request("r", (SKU, 2)),
             _request("big", (SKU, 5)), _request("big", (SKU, 1))]  # fmt: skip
    with db.write() as session:
        outcomes = reservations.reserve_batch(session, batch, now=T0)
    # r: made once, found again, other lines refused; big: refused, then its copy asking less succeeds
    assert _codes(outcomes) == ["created", "again", "conflict", "insufficient_stock", "created"]
    first, again = outcomes[0], outcomes[1]
    assert not isinstance(first, Exception) and not isinstance(again, Exception)
    assert first[0].id == again[0].id
    assert level(db, "PAR") == (2, 2)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    units=st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4)),
    wanted=st.lists(
        st.tuples(
            st.sampled_from(["PAR", "LYS"]),
            st.lists(st.tuples(st.sampled_from([SKU, SKU2]), st.integers(1, 3)), min_size=1, max_size=2),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_reserving_together_decides_as_reserving_one_after_another(
    db: Database, units: tuple[int, int, int], wanted: list[tuple[str, list[tuple[str, int]]]]
) -> None:
    """Property: a batch gives each request the outcome it gets when the requests come one by one, in
    the same order, each in its own transaction; and it leaves the same levels and reservations."""
    if not level_exists(db):
        world(db, units=1)  # the levels the examples set
        _second_sku(db, units_paris=1, units_lyon=1)
    requests = [_request(f"q{n}", *lines, location=place) for n, (place, lines) in enumerate(wanted)]

    def reset() -> None:
        with db.write() as session:
            session.execute(delete(Reservation))
            session.execute(delete(StockMovement).where(StockMovement.reason == "reserve"))
            for (sku, place), on_hand in zip(
                [(SKU, "PAR"), (SKU2, "PAR"), (SKU2, "LYS")], units, strict=True
            ):
                session.execute(update(StockLevel).where(StockLevel.sku == sku, StockLevel.location_id == place)
                                .values(on_hand=on_hand, reserved=0))  # fmt: skip

    def state() -> tuple[list[tuple[str, int, int]], list[tuple[str, Any]]]:
        with db.read() as session:
            levels = session.execute(select(StockLevel.sku + "@" + StockLevel.location_id, StockLevel.on_hand,
                                            StockLevel.reserved).order_by(StockLevel.sku, StockLevel.location_id))  # fmt: skip
            held = session.execute(
                select(Reservation.request_id, Reservation.lines).order_by(Reservation.request_id)
            )
            return [tuple(row) for row in levels], [tuple(row) for row in held]  # type: ignore[misc]

    reset()
    with db.write() as session:
        together = _codes(reservations.reserve_batch(session, requests, now=T0))
    after_batch = state()
    reset()
    one_by_one = []
    for request in requests:
        try:
            with db.write() as session:
                made = reservations.reserve_batch(session, [request], now=T0)[0]
                if isinstance(made, Exception):
                    raise made
                one_by_one.append("created" if made[1] else "again")
        except InsufficientStock:
            one_by_one.append("insufficient_stock")
    assert together == one_by_one
    assert after_batch == state()


def level_exists(db: Database) -> bool:
    with db.read() as session:
        levels = session.scalar(select(func.count()).select_from(StockLevel))
        assert levels is not None
        return levels > 0


def test_fifty_concurrent_api_reservations_and_orders_never_oversell(db: Database, settings: Any) -> None:
    """Through the reservation writer (group commit), with orders placed beside it on their own path."""
    from parcours.commerce.reservation_writer import ReservationWriter

    world(db, units=10)
    writer = ReservationWriter(lambda: (db, settings))

    def client(n: int) -> str:
        if n % 2:
            outcome = writer.submit(_request(f"r{n}", (SKU, 1)))
            return outcome.code if isinstance(outcome, Exception) else "ok"
        try:
            with db.write() as session:
                orders.place(session, channel="store", request_id=f"o{n}", lines=[{"sku": SKU, "quantity": 1}],
                             fulfilment="ship_from_store", source_location_id="PAR", profile_id=None, now=T0)  # fmt: skip
            return "ok"
        except InsufficientStock:
            return "insufficient_stock"

    outcomes = at_once(50, client)
    assert outcomes.count("ok") == 10 and outcomes.count("insufficient_stock") == 40
    on_hand, reserved = level(db, "PAR")
    assert on_hand - reserved == 0 and on_hand >= 0 and reserved >= 0
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Reservation)) == outcomes[1::2].count("ok")
