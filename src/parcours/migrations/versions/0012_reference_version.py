"""reference_version: a token that triggers renew whenever reference data changes, so that processes can
keep identifier kinds, sources, rules, SLA policies and settings between transactions; counters: the
order number leaves the settings (it changes with every order)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 09:00:00
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

from parcours.db.reference import drop_trigger_statements, trigger_statements

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# The tracked tables as of this revision (parcours.db.reference.TRACKED may grow in later revisions).
TRACKED = ("identifier_kinds", "instance_settings", "sources", "automation_rules", "sla_policies")


def upgrade() -> None:
    table = op.create_table(
        "reference_version",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("token", sa.String(32), nullable=False),
    )
    op.bulk_insert(table, [{"id": 1, "token": secrets.token_hex(16)}])
    op.create_table(
        "counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.execute(
        "INSERT INTO counters (name, value) SELECT key, CAST(value AS BIGINT) FROM instance_settings "
        "WHERE key = 'order_number'"
    )
    op.execute("DELETE FROM instance_settings WHERE key = 'order_number'")
    for statement in trigger_statements(op.get_bind().dialect.name, TRACKED):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in drop_trigger_statements(dialect, TRACKED):
        op.execute(statement)
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS parcours_reference_changed()")
    op.execute(
        "INSERT INTO instance_settings (key, value) SELECT name, CAST(value AS VARCHAR(20)) FROM counters "
        "WHERE name = 'order_number'"
    )
    op.drop_table("counters")
    op.drop_table("reference_version")
