"""The hottest reads (the unified profile view) run their prebuilt statements straight on the driver's
cursor: SQLAlchemy's execution path costs more per statement than SQLite takes to answer them (the view's
five statements: about 115 µs in SQLite, 300-500 µs in all through ``Connection.execute``). On
PostgreSQL these statements are prepared on each connection, and ``rows_together`` sends a read's
statements to the server at once: one round trip instead of one each.

Rows come back as the driver gives them, so the caller converts values with ``stored_moment``,
``stored_document`` and ``bool`` as the column types would have (``parcours.db.types``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement


class DriverQuery:
    """One statement, compiled once per dialect, run on the session's connection with its parameters
    by name (the values written in the statement itself, as ``id == 1``, are bound as compiled)."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}

    def _sql(self, dialect: Any) -> tuple[str, tuple[str, ...] | None, dict[str, Any]]:
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            order = tuple(compiled.positiontup or ()) if dialect.positional else None
            written = {name: bind.value for bind, name in compiled.bind_names.items() if not bind.required}
            found = self._compiled[dialect.name] = (str(compiled), order, written)
        return found

    def rows(self, session: Session, **params: Any) -> list[tuple[Any, ...]]:
        """The rows a SELECT returns."""
        cursor = self._executed(session, params)
        try:
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def run(self, session: Session, **params: Any) -> None:
        """A statement that returns no rows (an UPDATE)."""
        self._executed(session, params).close()

    def _executed(self, session: Session, params: dict[str, Any]) -> Any:
        connection = session.connection()  # in the session's transaction, like any other statement
        cursor = connection.connection.cursor()
        try:
            self._execute_on(cursor, connection.dialect, params)
        except BaseException:
            cursor.close()
            raise
        return cursor

    def _execute_on(self, cursor: Any, dialect: Any, params: dict[str, Any]) -> None:
        sql, order, written = self._sql(dialect)
        values = {**written, **params} if written else params
        arguments = tuple(values[name] for name in order) if order is not None else values
        if dialect.name == "postgresql":
            # Prepared on each connection at first use: PostgreSQL then skips parsing and planning it
            # (a third of its CPU for the profile view). These statements look rows up by key, so the
            # generic plan PostgreSQL may settle on is the custom one (unlike ``IN (500 values)``,
            # which is why the engine prepares nothing by itself).
            cursor.execute(sql, arguments, prepare=True)
        else:
            cursor.execute(sql, arguments)


def rows_together(
    session: Session, queries: Sequence[tuple[DriverQuery, dict[str, Any]]]
) -> list[list[tuple[Any, ...]]]:
    """The rows of several SELECTs, in order. On PostgreSQL they go to the server together and come
    back in one round trip (psycopg's pipeline mode) instead of one round trip each; SQLite, in the
    process, runs them one after the other."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return [query.rows(session, **params) for query, params in queries]
    driver_connection: Any = connection.connection.driver_connection  # a psycopg connection
    cursors = [driver_connection.cursor() for _ in queries]
    try:
        with driver_connection.pipeline():
            for cursor, (query, params) in zip(cursors, queries, strict=True):
                query._execute_on(cursor, connection.dialect, params)
        return [[tuple(row) for row in cursor.fetchall()] for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()
