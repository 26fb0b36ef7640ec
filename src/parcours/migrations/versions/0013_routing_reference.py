"""reference data: agents, teams and team memberships (routing keeps each team's roster between
transactions); a member's last assignment time is not tracked

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 10:40:00
"""

from __future__ import annotations

from alembic import op

from parcours.db.reference import drop_trigger_statements, trigger_statements

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TRACKED = ("agents", "teams", "team_members")
COLUMNS: dict[str, tuple[str, ...]] = {"team_members": ("team_id", "agent_id")}


def upgrade() -> None:
    for statement in trigger_statements(op.get_bind().dialect.name, TRACKED, COLUMNS):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in drop_trigger_statements(dialect, TRACKED):
        op.execute(statement)
