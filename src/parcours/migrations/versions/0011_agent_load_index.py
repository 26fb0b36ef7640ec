"""index for routing: each agent's active conversations, by channel, read from the index alone

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 16:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_conversations_agent_load", "conversations", ["assignee_id", "status", "last_inbound_channel"]
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_agent_load", table_name="conversations")
