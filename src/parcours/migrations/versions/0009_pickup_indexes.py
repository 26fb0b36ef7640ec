"""indexes for a store's pickups: reservations and orders by location and status

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 15:25:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_reservations_location_status", "reservations", ["location_id", "status"])
    op.create_index("ix_orders_pickup_status", "orders", ["pickup_location_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_orders_pickup_status", table_name="orders")
    op.drop_index("ix_reservations_location_status", table_name="reservations")
