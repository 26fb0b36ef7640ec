"""``INSERT … ON CONFLICT DO NOTHING RETURNING``: a row that claims a unique key (a caller's request id,
a provider's message id) in one statement. The claim returns the new row's key when this insert made it,
nothing when the key was already taken; on PostgreSQL an insert racing another transaction's uncommitted
claim waits for it, so exactly one of them wins. No savepoint, no IntegrityError to recover from."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert


@cache
def claim_statement(dialect: str, model: Any, unique: tuple[str, ...], returning: str) -> Insert:
    """The statement for ``dialect`` (``sqlite`` or ``postgresql``), built once per process: run it with
    the row's values; it returns ``returning`` of the inserted row, or no row when ``unique`` (the
    columns of a unique constraint of ``model``) was taken."""
    if dialect == "postgresql":
        statement: Any = postgresql.insert(model)
    elif dialect == "sqlite":
        statement = sqlite.insert(model)
    else:
        raise ValueError(f"no claim statement for the {dialect} dialect")
    claim: Insert = statement.on_conflict_do_nothing(index_elements=list(unique)).returning(
        getattr(model, returning)
    )
    return claim
