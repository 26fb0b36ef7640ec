"""merges.replay_after_seq: for a merge no event caused (probabilistic, accepted from review, by hand),
the last event stored when it was made, so that unmerge sends the events that came after it to the side
their identifiers belong to. Existing such merges get the last event received before the merge.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 20:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("merges") as batch_op:
        batch_op.add_column(sa.Column("replay_after_seq", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE merges SET replay_after_seq = "
        "(SELECT coalesce(max(events.seq), 0) FROM events WHERE events.received_at <= merges.created_at) "
        "WHERE event_id IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("merges") as batch_op:
        batch_op.drop_column("replay_after_seq")
