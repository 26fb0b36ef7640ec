"""The declarative base every model derives from."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import MetaData, Table
from sqlalchemy.orm import DeclarativeBase

from parcours.db.types import JSONDoc, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012
        datetime: UTCDateTime(),
        dict[str, Any]: JSONDoc,
        list[Any]: JSONDoc,
        list[str]: JSONDoc,
    }


def table_of(model: type[Base]) -> Table:
    """A model's table, as the Core ``Table`` it is (``__table__`` is typed as any ``FromClause``)."""
    return cast(Table, model.__table__)
