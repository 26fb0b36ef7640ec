"""source_activity (what each source sent, per UTC day) and source_rejections (its latest refused
events and why), so that whoever wires an SDK sees whether its events arrive and what it gets wrong.
The days before are filled in from the events stored.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 22:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import parcours.db.types

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_activity",
        sa.Column("source_id", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("recorded", sa.BigInteger(), nullable=False),
        sa.Column("duplicates", sa.BigInteger(), nullable=False),
        sa.Column("erased", sa.BigInteger(), nullable=False),
        sa.Column("invalid", sa.BigInteger(), nullable=False),
        sa.Column("refused_requests", sa.BigInteger(), nullable=False),
        sa.Column("last_received_at", parcours.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_source_activity_source_id_sources")
        ),
        sa.PrimaryKeyConstraint("source_id", "day", name=op.f("pk_source_activity")),
    )
    op.create_table(
        "source_rejections",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("source_id", sa.String(length=40), nullable=False),
        sa.Column("received_at", parcours.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("endpoint", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.String(length=100), nullable=True),
        sa.Column("type", sa.String(length=16), nullable=True),
        sa.Column("error", sa.String(length=400), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_source_rejections_source_id_sources")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_rejections")),
    )
    with op.batch_alter_table("source_rejections") as batch_op:
        batch_op.create_index("ix_source_rejections_source", ["source_id", "id"], unique=False)
    # What the tracking API stored before: each source's events per UTC day, as received and recorded
    # (nothing is known of the duplicates and refused events of those days). Parcours's own sources are
    # not counted. SQLite keeps times as "YYYY-MM-DD HH:MM:SS.ffffff" text in UTC.
    day = (
        "(events.received_at AT TIME ZONE 'UTC')::date"
        if op.get_bind().dialect.name == "postgresql"
        else "substr(events.received_at, 1, 10)"
    )
    op.execute(
        "INSERT INTO source_activity (source_id, day, received, recorded, duplicates, erased, invalid, "
        "refused_requests, last_received_at) "
        f"SELECT events.source_id, {day}, count(*), count(*), 0, 0, 0, 0, max(events.received_at) "
        "FROM events JOIN sources ON sources.id = events.source_id "
        f"WHERE NOT sources.internal GROUP BY events.source_id, {day}"
    )


def downgrade() -> None:
    with op.batch_alter_table("source_rejections") as batch_op:
        batch_op.drop_index("ix_source_rejections_source")
    op.drop_table("source_rejections")
    op.drop_table("source_activity")
