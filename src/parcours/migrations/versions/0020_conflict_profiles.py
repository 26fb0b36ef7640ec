"""identity_conflict_profiles: the profiles each identity conflict names, by index, so that a customer's
conflicts (an export, an erasure, an unmerge reopening what its merge settled, the conflicts filter) are
found without reading every conflict. Filled in from the conflicts stored.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 04:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_conflict_profiles",
        sa.Column("profile_id", sa.String(length=40), nullable=False),
        sa.Column("conflict_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["conflict_id"],
            ["identity_conflicts.id"],
            name=op.f("fk_identity_conflict_profiles_conflict_id_identity_conflicts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("profile_id", "conflict_id", name=op.f("pk_identity_conflict_profiles")),
    )
    with op.batch_alter_table("identity_conflict_profiles") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_conflict_profiles_conflict_id"), ["conflict_id"], unique=False
        )
    others = (
        "jsonb_array_elements_text(conflicts.other_profile_ids) AS other(value)"
        if op.get_bind().dialect.name == "postgresql"
        else "json_each(conflicts.other_profile_ids) AS other"
    )
    op.execute(
        "INSERT INTO identity_conflict_profiles (profile_id, conflict_id) "
        "SELECT attached_profile_id, id FROM identity_conflicts "
        f"UNION SELECT other.value, conflicts.id FROM identity_conflicts AS conflicts, {others}"
    )


def downgrade() -> None:
    with op.batch_alter_table("identity_conflict_profiles") as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_conflict_profiles_conflict_id"))
    op.drop_table("identity_conflict_profiles")
