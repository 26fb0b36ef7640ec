"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine


def sqlite_moment(value: datetime | None) -> str | None:
    """A timezone-aware datetime as SQLite stores it: fixed-width UTC ISO text (``2026-01-31 09:30:00.000000``)."""
    if value is None:
        return None
    offset = value.utcoffset()
    if offset is None:
        raise ValueError("naive datetime given; Parcours stores timezone-aware UTC only")
    if offset:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes.

    PostgreSQL stores ``timestamptz``. SQLite stores fixed-width ISO-8601 text in UTC
    (``2026-01-31 09:30:00.000000``), which sorts and compares in time order and converts with
    the C-implemented ``isoformat``/``fromisoformat`` (ingestion binds millions of these).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(26))
        return dialect.type_descriptor(DateTime(timezone=True))

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        return sqlite_moment  # the hot path of every insert on SQLite

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return sqlite_moment(value)
        if value is not None and value.utcoffset() is None:
            raise ValueError("naive datetime given; Parcours stores timezone-aware UTC only")
        return value.astimezone(UTC) if value is not None and value.utcoffset() else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return stored_moment(value)


def stored_moment(value: Any) -> datetime | None:
    """A ``UTCDateTime`` column's value as the driver returns it (SQLite's text, PostgreSQL's aware
    datetime) -> an aware UTC datetime."""
    if value is None:
        return None
    moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def stored_document(value: Any) -> Any:
    """A ``JSONDoc`` column's value as the driver returns it (SQLite's text, PostgreSQL's decoded JSONB)."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


# JSON documents: JSONB on PostgreSQL, JSON text on SQLite.
JSONDoc = JSON().with_variant(JSONB(), "postgresql")

# Autoincrementing 64-bit keys (SQLite only autoincrements INTEGER PRIMARY KEY).
BigIntKey = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError("expected a datetime")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
