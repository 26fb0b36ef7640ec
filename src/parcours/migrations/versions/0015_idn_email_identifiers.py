"""e-mail identifiers with an internationalised domain stored in its ASCII form ("jean@xn--caf-dma.fr") are
rewritten in the Unicode form ("jean@café.fr") that an address written that way now normalises to, so that
both spellings of one address are one identifier; the events, merges and identity conflicts that name them
follow

An address held in both forms by the same profile keeps one row (the earliest first sight, the latest last
sight). One held in both forms by two different profiles is left as it is and counted in the log: that is
two people or one, which a person decides (the review queue, or a merge through the API).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 07:30:00
"""

from __future__ import annotations

import logging
import secrets

import sqlalchemy as sa
from alembic import op
from email_validator import EmailNotValidError, validate_email

from parcours.db.types import JSONDoc, UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

log = logging.getLogger("parcours.migrations")

kinds = sa.table("identifier_kinds", sa.column("name", sa.String), sa.column("normalizer", sa.String))
identifiers = sa.table(
    "identifiers",
    sa.column("id", sa.BigInteger),
    sa.column("kind", sa.String),
    sa.column("value", sa.String),
    sa.column("profile_id", sa.String),
    sa.column("first_seen_at", UTCDateTime()),
    sa.column("last_seen_at", UTCDateTime()),
)
merges = sa.table(
    "merges",
    sa.column("id", sa.String),
    sa.column("linking_identifiers", JSONDoc),
    sa.column("survivor_identifiers", JSONDoc),
    sa.column("merged_identifiers", JSONDoc),
)
conflicts = sa.table("identity_conflicts", sa.column("id", sa.String), sa.column("identifiers", JSONDoc))
events = sa.table("events", sa.column("id", sa.String), sa.column("identifiers", JSONDoc))
graph_version = sa.table("identity_graph_version", sa.column("id", sa.Integer), sa.column("token", sa.String))


def unicode_form(address: str) -> str | None:
    """The address as identity resolution now normalises it, or None if it is not one it would accept."""
    try:
        return validate_email(address, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def upgrade() -> None:
    connection = op.get_bind()
    email_kinds = list(connection.scalars(sa.select(kinds.c.name).where(kinds.c.normalizer == "email")))
    if not email_kinds:
        return
    rows = connection.execute(
        sa.select(identifiers).where(identifiers.c.kind.in_(email_kinds), identifiers.c.value.like("%xn--%"))
    ).all()
    renamed: dict[str, str] = {}  # "kind:old" -> "kind:new"
    left_apart = 0
    for row in rows:
        new_value = unicode_form(row.value)
        if new_value is None or new_value == row.value:
            continue
        holder = connection.execute(
            sa.select(identifiers).where(identifiers.c.kind == row.kind, identifiers.c.value == new_value)
        ).first()
        if holder is None:
            connection.execute(identifiers.update().where(identifiers.c.id == row.id).values(value=new_value))
        elif holder.profile_id == row.profile_id:
            connection.execute(
                identifiers.update()
                .where(identifiers.c.id == holder.id)
                .values(
                    first_seen_at=min(holder.first_seen_at, row.first_seen_at),
                    last_seen_at=max(holder.last_seen_at, row.last_seen_at),
                )
            )
            connection.execute(identifiers.delete().where(identifiers.c.id == row.id))
        else:
            left_apart += 1
            continue
        renamed[f"{row.kind}:{row.value}"] = f"{row.kind}:{new_value}"
    if left_apart:
        log.warning(
            "e-mail identifiers left in their ASCII form",
            extra={"count": left_apart, "reason": "the Unicode form is held by another profile"},
        )
    if not renamed:
        return
    # A process keeping the identity graph in memory must read it again.
    connection.execute(
        graph_version.update().where(graph_version.c.id == 1).values(token=secrets.token_hex(16))
    )

    def rewrite(keys: list[str]) -> list[str]:
        return list(dict.fromkeys(renamed.get(key, key) for key in keys))

    lists = ("linking_identifiers", "survivor_identifiers", "merged_identifiers")
    naming_ascii = sa.or_(*(sa.cast(merges.c[name], sa.Text).like("%xn--%") for name in lists))
    for merge in connection.execute(sa.select(merges).where(naming_ascii)).all():
        changed = {name: rewrite(getattr(merge, name)) for name in lists}
        if any(changed[name] != getattr(merge, name) for name in lists):
            connection.execute(merges.update().where(merges.c.id == merge.id).values(**changed))
    # Events and conflicts name the identifiers they carried; unmerge replays events by them.
    for table in (conflicts, events):
        naming_ascii = sa.cast(table.c.identifiers, sa.Text).like("%xn--%")
        for row in connection.execute(sa.select(table).where(naming_ascii)).all():
            keys = rewrite(row.identifiers)
            if keys != row.identifiers:
                connection.execute(table.update().where(table.c.id == row.id).values(identifiers=keys))


def downgrade() -> None:
    """Nothing to undo: the Unicode form is an address earlier releases also stored, and looked up."""
