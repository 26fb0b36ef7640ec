"""Reading rows by many key values at once: ``IN`` lists split to the drivers' limits, and rows by a
unique two-column key with a plan that does not depend on the table's statistics."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Column, ColumnElement, Select, bindparam, or_, select, text
from sqlalchemy.orm import Session

# SQLite's statements by (table, columns, first, second) names: built once per shape.
_IN_LISTS: dict[tuple[str, ...], Select[Any]] = {}


def _in_list(columns: Sequence[Column[Any]], first: Column[Any], second: Column[Any]) -> Select[Any]:
    """``SELECT columns WHERE first = :first AND second IN (:wanted)``."""
    key = (first.table.name, first.name, second.name, *(column.name for column in columns))
    statement = _IN_LISTS.get(key)
    if statement is None:
        statement = select(*columns).where(
            first == bindparam("first"), second.in_(bindparam("wanted", expanding=True))
        )
        _IN_LISTS[key] = statement
    return statement


def probe_unique(
    session: Session, columns: Sequence[Column[Any]], first: Column[Any], value: Any, second: Column[Any],
    wanted: Sequence[str],
) -> Iterable[Any]:  # fmt: skip
    """``columns`` of the rows where ``first = value`` and ``second`` is one of ``wanted``, read through the
    unique index on (first, second).

    On PostgreSQL, "first = value AND second IN (…)" is planned from the table's statistics; a table that
    grew since its last ANALYZE (a new installation's first minutes, a bulk import) is taken to hold few
    rows of ``value``, and the plan reads every one of them to filter on ``second`` (25 ms instead of
    1.4 for 500 values among 100,000 events). One index probe per wanted value, behind an OFFSET 0 the
    planner cannot flatten, costs the same whatever the statistics say."""
    if session.get_bind().dialect.name != "postgresql":
        return session.connection().execute(
            _in_list(columns, first, second), {"first": value, "wanted": list(wanted)}
        )
    table = first.table.name
    probe = text(
        f"SELECT {', '.join(f'hit.{c.name}' for c in columns)} "
        f"FROM unnest(CAST(:wanted AS varchar[])) AS wanted(probe) CROSS JOIN LATERAL "
        f"(SELECT {', '.join(f'{table}.{c.name}' for c in columns)} FROM {table} "
        f"WHERE {table}.{first.name} = :first AND {table}.{second.name} = wanted.probe OFFSET 0) AS hit"
    ).columns(*columns)
    return session.execute(probe, {"wanted": list(wanted), "first": value})


def in_chunks(column: Any, values: Iterable[Any], size: int = 500) -> ColumnElement[bool]:
    """``column IN (...)`` split in parts of ``size`` (SQLite's and drivers' limits on parameters)."""
    items = sorted(set(values))
    parts = [column.in_(items[start : start + size]) for start in range(0, len(items), size)]
    condition: ColumnElement[bool] = (
        or_(*parts) if len(parts) > 1 else (parts[0] if parts else column.in_([]))
    )
    return condition
