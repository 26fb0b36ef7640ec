"""identity_conflicts.decided_at, decided_by and merge_id: who settled a conflict and when, and for a
conflict whose profiles a person merged, the merge that did it (status ``merged``). Conflicts dismissed
before this migration keep an unknown decision time and author.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 22:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import parcours.db.types

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identity_conflicts") as batch_op:
        batch_op.add_column(
            sa.Column("decided_at", parcours.db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("decided_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("merge_id", sa.String(length=40), nullable=True))


def downgrade() -> None:
    # The code before knows no "merged" status: such a conflict was reviewed, as a dismissed one was.
    op.execute("UPDATE identity_conflicts SET status = 'dismissed' WHERE status = 'merged'")
    with op.batch_alter_table("identity_conflicts") as batch_op:
        batch_op.drop_column("merge_id")
        batch_op.drop_column("decided_by")
        batch_op.drop_column("decided_at")
