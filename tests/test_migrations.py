"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import parcours.models  # noqa: F401  (registers every table)
from parcours.db.base import Base
from parcours.db.engine import Database


def test_the_migrated_schema_matches_the_models(db: Database) -> None:
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == [], differences
