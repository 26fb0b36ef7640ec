"""Driver-level bulk statements for the ingestion hot path.

SQLAlchemy's executemany passes every parameter of every row through its type processors in Python,
which costs about as much as SQLite's own insert. Here the caller builds each row as a tuple in the
statement's column order, with values already in the driver's form (``BulkWriter.moment`` and
``BulkWriter.document``), and the rows go to the driver at once: on SQLite one executemany; on
PostgreSQL inserts are one ``COPY … FROM STDIN`` (an executemany there is one INSERT per row, each
parsed, planned and executed: COPY takes 2.3-2.8x as many event rows a second, at 40 % of the server's
CPU); updates are an executemany on both. Everything runs on the session's connection, inside its
transaction.

Only for tables and columns named in code: the names are written into the SQL text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import JSON, Table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from parcours.db.types import UTCDateTime, sqlite_moment

Row = Sequence[Any]
# SQL text by (dialect, verb, table, columns, key columns): built once per process.
_STATEMENTS: dict[tuple[str, str, str, tuple[str, ...], tuple[str, ...]], str] = {}


def _postgres_moment(value: datetime | None) -> datetime | None:
    if value is not None and value.utcoffset() is None:
        raise ValueError("naive datetime given; Parcours stores timezone-aware UTC only")
    return value


def _document(value: Any) -> str | None:
    """JSON text: SQLite stores it as is; PostgreSQL casts the untyped parameter to jsonb."""
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


class BulkWriter:
    """Executemany of plain tuples on one connection, statements built once per table and columns."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name
        self.mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
        self.moment = sqlite_moment if self.dialect == "sqlite" else _postgres_moment
        self.document = _document

    def rows(
        self, table: Table, columns: Sequence[str], values: Iterable[Mapping[str, Any]]
    ) -> list[tuple[Any, ...]]:
        """Rows of ``columns`` in the driver's form, from values by column name: the table's moments
        (``UTCDateTime``) and documents (JSON columns) converted, the rest as they are."""
        convert = [self._converter(table.c[name].type) for name in columns]
        return [
            tuple(
                row[name] if to is None else to(row[name]) for name, to in zip(columns, convert, strict=True)
            )
            for row in values
        ]

    def _converter(self, kind: Any) -> Callable[[Any], Any] | None:
        if isinstance(kind, UTCDateTime):
            return self.moment
        if isinstance(kind, JSON):
            return self.document
        return None

    def insert(self, table: Table, columns: Sequence[str], rows: Sequence[Row]) -> None:
        """``INSERT INTO table (columns) VALUES (...)`` once per row (COPY on PostgreSQL: the same
        rows, constraints and defaults; it fires no ORM or cursor events)."""
        if not rows:
            return
        if self.dialect == "postgresql":
            self._copy(table, tuple(columns), rows)
        else:
            self._run("insert", table, tuple(columns), (), rows)

    def update(self, table: Table, columns: Sequence[str], where: Sequence[str], rows: Sequence[Row]) -> None:
        """``UPDATE table SET columns = ... WHERE where = ...`` for each row; each row gives the new
        values, then the key values. A key given twice ends with its last row's values.

        Not one ``UPDATE … FROM unnest(arrays)`` on PostgreSQL: measured, it took 12 % off the database's
        CPU per ingested event but added more to this process's (building and dumping the arrays), and
        this process is what bounds ingestion."""
        if rows:
            self._run("update", table, tuple(columns), tuple(where), rows)

    def _copy(self, table: Table, columns: tuple[str, ...], rows: Sequence[Row]) -> None:
        sql = self._statement("copy", table, columns, ())
        with self._cursor(sql) as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)

    def _run(
        self, verb: str, table: Table, columns: tuple[str, ...], where: tuple[str, ...], rows: Sequence[Row]
    ) -> None:
        sql = self._statement(verb, table, columns, where)
        with self._cursor(sql) as cursor:
            cursor.executemany(sql, rows)

    @contextmanager
    def _cursor(self, sql: str) -> Iterator[Any]:
        """A cursor of the driver's connection, in the session's transaction: the rows are already in
        the driver's form, and going through SQLAlchemy's statement execution cost as much again as the
        driver's own work on SQLite. The driver's errors are raised as SQLAlchemy raises them elsewhere
        (``IntegrityError`` …)."""
        cursor = self.connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        driver_error = self.connection.dialect.loaded_dbapi.Error
        try:
            yield cursor
        except driver_error as error:
            raise DBAPIError.instance(sql, None, error, driver_error) from error
        finally:
            cursor.close()

    def _statement(self, verb: str, table: Table, columns: tuple[str, ...], where: tuple[str, ...]) -> str:
        """The SQL text of ``verb`` ("insert", "update" or "copy"), built once per process."""
        key = (self.dialect, verb, table.name, columns, where)
        sql = _STATEMENTS.get(key)
        if sql is None:
            for name in (*columns, *where):
                if name not in table.c:
                    raise ValueError(f"table {table.name} has no column {name}")
            if verb == "copy":
                sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
            elif verb == "insert":
                marks = ", ".join([self.mark] * len(columns))
                sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})"
            else:
                assignments = ", ".join(f"{name} = {self.mark}" for name in columns)
                condition = " AND ".join(f"{name} = {self.mark}" for name in where)
                sql = f"UPDATE {table.name} SET {assignments} WHERE {condition}"
            _STATEMENTS[key] = sql
        return sql
