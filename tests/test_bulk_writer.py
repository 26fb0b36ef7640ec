"""The driver-level bulk writer of the ingestion path (inserts by COPY on PostgreSQL, executemany
otherwise): the same rows and the same outcome on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, select, text
from sqlalchemy.exc import IntegrityError

from parcours.db.bulk import BulkWriter
from parcours.db.engine import Database
from parcours.models import Profile

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PROFILES: Table = Profile.__table__  # type: ignore[assignment]
COLUMNS = ("id", "created_at", "updated_at", "merged_into_id", "traits", "trait_times")


def _profiles(db: Database) -> dict[str, dict[str, Any]]:
    with db.read() as session:
        rows = session.execute(select(PROFILES)).mappings()
        return {row["id"]: dict(row) for row in rows}


def _insert(db: Database, rows: list[tuple[Any, ...]]) -> None:
    with db.write() as session:
        writer = BulkWriter(session.connection())
        writer.insert(PROFILES, COLUMNS, [
            (pid, writer.moment(created), writer.moment(created), merged, writer.document(traits),
             writer.document({}))
            for pid, created, merged, traits in rows])  # fmt: skip


def test_inserted_rows_read_back_as_written(db: Database) -> None:
    traits = {"firstName": "Zoé", "address": {"city": "Lyon"}, "tags": ["a", "b"], "quote": 'it\'s "x"\\n\t'}
    _insert(db, [("prf_a", T0, None, traits), ("prf_b", T0 + timedelta(seconds=1), "prf_a", {})])
    stored = _profiles(db)
    assert stored["prf_a"]["traits"] == traits
    assert stored["prf_a"]["created_at"] == T0 and stored["prf_a"]["merged_into_id"] is None
    assert stored["prf_b"]["merged_into_id"] == "prf_a"
    assert stored["prf_b"]["created_at"] == T0 + timedelta(seconds=1)


def test_rows_by_column_name_are_converted_by_the_tables_column_types(db: Database) -> None:
    """``rows`` turns values by name into the driver's form from the table's types (moments, documents),
    so rows built from dicts read back as the same values."""
    traits = {"firstName": "Zoé", "tags": ["a"]}
    values = [{"id": "prf_r", "created_at": T0, "updated_at": T0 + timedelta(seconds=2), "merged_into_id": None,
               "traits": traits, "trait_times": {}, "ignored": object()}]  # fmt: skip
    with db.write() as session:
        writer = BulkWriter(session.connection())
        writer.insert(PROFILES, COLUMNS, writer.rows(PROFILES, COLUMNS, values))
    stored = _profiles(db)["prf_r"]
    assert (stored["created_at"], stored["updated_at"]) == (T0, T0 + timedelta(seconds=2))
    assert stored["traits"] == traits and stored["trait_times"] == {} and stored["merged_into_id"] is None


def test_an_insert_breaking_a_constraint_writes_nothing(db: Database) -> None:
    _insert(db, [("prf_a", T0, None, {})])
    with pytest.raises(IntegrityError):
        _insert(db, [("prf_b", T0, None, {}), ("prf_a", T0, None, {})])
    assert set(_profiles(db)) == {"prf_a"}


def test_updates_set_each_key_and_a_repeated_key_ends_with_its_last_row(db: Database) -> None:
    _insert(db, [(f"prf_{n}", T0, None, {"n": n}) for n in range(4)])
    later = T0 + timedelta(hours=1)
    with db.write() as session:
        writer = BulkWriter(session.connection())
        writer.update(PROFILES, ("traits", "updated_at"), ("id",), [
            (writer.document({"n": 10}), writer.moment(later), "prf_0"),
            (writer.document(None), writer.moment(later), "prf_missing"),  # no such row: nothing
            (writer.document({"n": 11}), writer.moment(later), "prf_1"),
            (writer.document({"n": 12}), writer.moment(later + timedelta(minutes=5)), "prf_1"),
        ])  # fmt: skip
    stored = _profiles(db)
    assert set(stored) == {"prf_0", "prf_1", "prf_2", "prf_3"}
    assert stored["prf_0"]["traits"] == {"n": 10} and stored["prf_0"]["updated_at"] == later
    assert stored["prf_1"]["traits"] == {"n": 12}
    assert stored["prf_1"]["updated_at"] == later + timedelta(minutes=5)
    assert stored["prf_2"]["traits"] == {"n": 2} and stored["prf_2"]["updated_at"] == T0


def test_a_column_the_table_does_not_have_is_refused(db: Database) -> None:
    with db.write() as session:
        writer = BulkWriter(session.connection())
        with pytest.raises(ValueError, match="no column nickname"):
            writer.insert(PROFILES, ("id", "nickname"), [("prf_x", "x")])
        with pytest.raises(ValueError, match="no column nickname"):
            writer.update(PROFILES, ("nickname",), ("id",), [("x", "prf_x")])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    updates=st.lists(
        st.tuples(st.sampled_from(["prf_0", "prf_1", "prf_2", "prf_zz"]), st.integers(-5, 5)), max_size=12
    )
)
def test_updates_end_as_one_update_per_row_in_order_would(
    db: Database, updates: list[tuple[str, int]]
) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM profiles"))
    _insert(db, [(f"prf_{n}", T0, None, {"v": None}) for n in range(3)])
    with db.write() as session:
        writer = BulkWriter(session.connection())
        writer.update(
            PROFILES, ("traits",), ("id",), [(writer.document({"v": v}), pid) for pid, v in updates]
        )
    expected: dict[str, dict[str, int | None]] = {f"prf_{n}": {"v": None} for n in range(3)}
    for pid, value in updates:  # what one UPDATE per row, in order, leaves
        if pid in expected:
            expected[pid] = {"v": value}
    assert {pid: row["traits"] for pid, row in _profiles(db).items()} == expected
