"""sources: Parcours's own sources are marked internal

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch_op:
        batch_op.add_column(sa.Column("internal", sa.Boolean(), server_default=sa.false(), nullable=False))
    # The sources Parcours made for itself before this column: the inbox's channels and commerce.
    op.execute("UPDATE sources SET internal = TRUE WHERE name = 'Commerce' OR name LIKE 'Inbox · %'")


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch_op:
        batch_op.drop_column("internal")
