"""Statements run on the driver's cursor (``parcours.db.driver``): several reads sent together give each
statement's own rows, in order, on both backends; a failing one raises and leaves the session usable."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Table, bindparam, select, text
from sqlalchemy.exc import OperationalError

from parcours.db.bulk import BulkWriter
from parcours.db.driver import DriverQuery, rows_together
from parcours.db.engine import Database
from parcours.models import Profile

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PROFILES: Table = Profile.__table__  # type: ignore[assignment]
_PROFILE = DriverQuery(select(Profile.id, Profile.merged_into_id).where(Profile.id == bindparam("pid")))
_MERGED_INTO = DriverQuery(
    select(Profile.id).where(Profile.merged_into_id == bindparam("pid")).order_by(Profile.id)
)
_COUNT = DriverQuery(select(text("count(*)")).select_from(Profile).where(Profile.id != "prf_none"))


def _profiles(db: Database) -> None:
    with db.write() as session:
        session.add(Profile(id="prf_a", created_at=T0, updated_at=T0, traits={}, trait_times={}))
        session.flush()
        for merged in ("prf_c", "prf_b"):
            session.add(
                Profile(
                    id=merged, created_at=T0, updated_at=T0, merged_into_id="prf_a", traits={}, trait_times={}
                )
            )


def test_reads_sent_together_give_each_statement_its_own_rows_in_order(db: Database) -> None:
    _profiles(db)
    with db.read() as session:
        together = rows_together(
            session,
            [
                (_PROFILE, {"pid": "prf_b"}),
                (_MERGED_INTO, {"pid": "prf_a"}),
                (_PROFILE, {"pid": "prf_nobody"}),
                (_COUNT, {}),
                (_MERGED_INTO, {"pid": "prf_b"}),
            ],
        )
        one_by_one = [
            _PROFILE.rows(session, pid="prf_b"),
            _MERGED_INTO.rows(session, pid="prf_a"),
            _PROFILE.rows(session, pid="prf_nobody"),
            _COUNT.rows(session),
            _MERGED_INTO.rows(session, pid="prf_b"),
        ]
        if db.dialect == "postgresql":
            # PostgreSQL parses and plans each of them once per connection: they are prepared.
            prepared = set(session.scalars(text("SELECT statement FROM pg_prepared_statements")))
            dialect = session.get_bind().dialect
            sent = {
                re.sub(r"%\(\w+\)s", "$1", query._sql(dialect)[0])
                for query in (_PROFILE, _MERGED_INTO, _COUNT)
            }
            assert sent <= prepared, (sent, prepared)
    assert together == one_by_one
    assert together == [[("prf_b", "prf_a")], [("prf_b",), ("prf_c",)], [], [(3,)], []]
    with db.read() as session:
        assert rows_together(session, []) == []


def test_a_failing_read_among_others_raises_and_leaves_the_session_usable(db: Database) -> None:
    _profiles(db)
    broken = DriverQuery(text("SELECT no_such_column FROM profiles"))
    with pytest.raises(Exception, match="no_such_column"), db.read() as session:
        rows_together(session, [(_PROFILE, {"pid": "prf_a"}), (broken, {}), (_COUNT, {})])
    with db.read() as session:
        assert rows_together(session, [(_PROFILE, {"pid": "prf_a"}), (_COUNT, {})]) == [
            [("prf_a", None)],
            [(3,)],
        ]


def test_a_sqlite_writer_that_cannot_take_the_write_lock_gets_sqlalchemys_error(tmp_path: Path) -> None:
    """SQLite's BEGIN runs on the driver's connection; its failure is raised as SQLAlchemy raises the
    driver's errors elsewhere, naming the statement."""
    database = Database(f"sqlite:///{tmp_path / 'locked.db'}")
    try:
        with database.write() as holder:
            holder.execute(text("CREATE TABLE t (x INTEGER)"))  # the write lock is held until commit
            with database.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA busy_timeout=50")
                connection.commit()
                writer = connection.execution_options(parcours_writer=True)
                with pytest.raises(OperationalError, match="BEGIN IMMEDIATE"):
                    writer.begin()
                connection.invalidate()  # back to the pool with its 30 s timeout: not this one
        with database.write() as session:  # the lock is free again
            session.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        database.dispose()


def test_keyed_row_writes_are_prepared_on_postgresql_and_an_in_list_never_is(db: Database) -> None:
    """psycopg prepares each executemany (a row written by its key: a generic plan is the custom one);
    a statement with an ``IN`` list, however often it runs, is never prepared (its generic plan would
    scan every row of the first key: see ``make_engine``)."""
    _profiles(db)
    wanted = ["prf_a", "prf_b", "prf_nobody"]
    with db.write() as session:
        writer = BulkWriter(session.connection())
        writer.update(
            PROFILES,
            ("traits",),
            ("id",),
            [(writer.document({"n": 1}), "prf_a"), (writer.document({"n": 2}), "prf_b")],
        )
        for _ in range(12):
            found = session.scalars(select(Profile.id).where(Profile.id.in_(wanted))).all()
        if db.dialect == "postgresql":
            prepared = list(session.scalars(text("SELECT statement FROM pg_prepared_statements")))
            assert "UPDATE profiles SET traits = $1 WHERE id = $2" in prepared, prepared
            assert not [statement for statement in prepared if " IN (" in statement], prepared
    assert sorted(found) == ["prf_a", "prf_b"]
    with db.read() as session:
        rows = session.execute(select(Profile.id, Profile.traits).where(Profile.id.in_(wanted))).all()
    traits = {profile_id: document for profile_id, document in rows}
    assert traits == {"prf_a": {"n": 1}, "prf_b": {"n": 2}}
