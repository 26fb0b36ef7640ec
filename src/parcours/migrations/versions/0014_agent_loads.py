"""agent_loads: each agent's active conversations per channel, kept by triggers on conversations, so
that routing reads 20 counters instead of counting every active conversation of the team (the count
grew with the inbox); the index that count read is dropped

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 11:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# A conversation counts for (assignee, channel of its latest inbound message) while it is assigned and
# open or pending (parcours.inbox.routing.ACTIVE).
COUNTED = "{row}.assignee_id IS NOT NULL AND {row}.status IN ('open', 'pending')"
SAME_PLACE = "OLD.assignee_id = NEW.assignee_id AND OLD.last_inbound_channel = NEW.last_inbound_channel"

SQLITE_ADD = (
    "INSERT INTO agent_loads (agent_id, channel, active) SELECT NEW.assignee_id, NEW.last_inbound_channel, 1 "
    f"WHERE {COUNTED.format(row='NEW')} ON CONFLICT (agent_id, channel) DO UPDATE SET active = active + 1;"
)
SQLITE_REMOVE = (
    "UPDATE agent_loads SET active = active - 1 WHERE agent_id = OLD.assignee_id "
    f"AND channel = OLD.last_inbound_channel AND {COUNTED.format(row='OLD')};"
)
SQLITE_TRIGGERS = {
    "conversations_load_insert": ("AFTER INSERT ON conversations", SQLITE_ADD),
    "conversations_load_delete": ("AFTER DELETE ON conversations", SQLITE_REMOVE),
    # An update that moves a counted conversation (to another agent or channel, or out of the active
    # statuses) takes it off its old counter; one that leaves it counted somewhere adds it there.
    "conversations_load_update": (
        "AFTER UPDATE OF assignee_id, status, last_inbound_channel ON conversations WHEN NOT "
        f"({COUNTED.format(row='OLD')} AND {COUNTED.format(row='NEW')} AND {SAME_PLACE})",
        SQLITE_REMOVE + " " + SQLITE_ADD,
    ),
}

POSTGRES_FUNCTION = f"""
CREATE OR REPLACE FUNCTION parcours_agent_load() RETURNS trigger AS $$
DECLARE
    was_counted boolean := TG_OP <> 'INSERT' AND {COUNTED.format(row="OLD")};
    is_counted boolean := TG_OP <> 'DELETE' AND {COUNTED.format(row="NEW")};
BEGIN
    IF TG_OP = 'UPDATE' AND was_counted AND is_counted AND {SAME_PLACE} THEN
        RETURN NULL;
    END IF;
    -- Counter rows are locked in agent order whatever the move, so two transactions moving
    -- conversations between the same two agents in opposite directions do not deadlock.
    IF is_counted AND (NOT was_counted OR NEW.assignee_id < OLD.assignee_id) THEN
        INSERT INTO agent_loads (agent_id, channel, active) VALUES (NEW.assignee_id, NEW.last_inbound_channel, 1)
        ON CONFLICT (agent_id, channel) DO UPDATE SET active = agent_loads.active + 1;
        is_counted := false;
    END IF;
    IF was_counted THEN
        UPDATE agent_loads SET active = active - 1
        WHERE agent_id = OLD.assignee_id AND channel = OLD.last_inbound_channel;
    END IF;
    IF is_counted THEN
        INSERT INTO agent_loads (agent_id, channel, active) VALUES (NEW.assignee_id, NEW.last_inbound_channel, 1)
        ON CONFLICT (agent_id, channel) DO UPDATE SET active = agent_loads.active + 1;
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "agent_loads",
        sa.Column("agent_id", sa.String(40), primary_key=True),
        sa.Column("channel", sa.String(40), primary_key=True),
        sa.Column("active", sa.Integer(), nullable=False),
    )
    op.execute(
        "INSERT INTO agent_loads (agent_id, channel, active) "
        "SELECT assignee_id, last_inbound_channel, count(*) FROM conversations "
        f"WHERE {COUNTED.format(row='conversations')} GROUP BY assignee_id, last_inbound_channel"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        op.execute(
            "CREATE TRIGGER conversations_agent_load AFTER INSERT OR DELETE OR "
            "UPDATE OF assignee_id, status, last_inbound_channel ON conversations "
            "FOR EACH ROW EXECUTE FUNCTION parcours_agent_load()"
        )
    else:
        for name, (when, body) in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {body} END")
    op.drop_index("ix_conversations_agent_load", table_name="conversations")


def downgrade() -> None:
    op.create_index(
        "ix_conversations_agent_load", "conversations", ["assignee_id", "status", "last_inbound_channel"]
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS conversations_agent_load ON conversations")
        op.execute("DROP FUNCTION IF EXISTS parcours_agent_load()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("agent_loads")
