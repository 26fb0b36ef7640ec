"""The hottest reads (the unified profile view) run their prebuilt statements straight on the driver's
cursor: SQLAlchemy's execution path costs more per statement than SQLite takes to answer them (the view's
five statements: about 115 µs in SQLite, 300-500 µs in all through ``Connection.execute``).

Rows come back as the driver gives them, so the caller converts values with ``stored_moment``,
``stored_document`` and ``bool`` as the column types would have (``parcours.db.types``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement


class DriverQuery:
    """One statement, compiled once per dialect, run on the session's connection with its parameters
    by name."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None]] = {}

    def _sql(self, dialect: Any) -> tuple[str, tuple[str, ...] | None]:
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            order = tuple(compiled.positiontup or ()) if dialect.positional else None
            found = self._compiled[dialect.name] = (str(compiled), order)
        return found

    def rows(self, session: Session, **params: Any) -> list[tuple[Any, ...]]:
        connection = session.connection()  # in the session's transaction, like any other statement
        sql, order = self._sql(connection.dialect)
        cursor = connection.connection.cursor()
        try:
            cursor.execute(sql, tuple(params[name] for name in order) if order is not None else params)
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()
