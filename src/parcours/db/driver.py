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
        sql, order, written = self._sql(connection.dialect)
        values = {**written, **params} if written else params
        cursor = connection.connection.cursor()
        try:
            cursor.execute(sql, tuple(values[name] for name in order) if order is not None else values)
        except BaseException:
            cursor.close()
            raise
        return cursor
