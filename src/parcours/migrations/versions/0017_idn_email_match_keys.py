"""real-time matching's e-mail blocking keys written before the matcher normalised internationalised
domains ("12:jean@xn--caf-dma.fr") are rewritten in the Unicode form it now computes ("12:jean@café.fr"),
so that a profile stored then and one stored now with the same address are candidates for each other

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 21:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from email_validator import EmailNotValidError, validate_email

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# The number of the "email" blocking rule in parcours.matching.blocking.BLOCKING_RULES at this revision.
EMAIL_RULE = "12:"

match_keys = sa.table("match_keys", sa.column("id", sa.BigInteger), sa.column("key", sa.String))


def unicode_form(address: str) -> str | None:
    """The address as the matcher now prepares it, or None if it is not a valid address."""
    try:
        return validate_email(address, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(match_keys.c.id, match_keys.c.key).where(
            match_keys.c.key.like(f"{EMAIL_RULE}%"), match_keys.c.key.like("%xn--%")
        )
    ).all()
    for key_id, key in rows:
        address = unicode_form(key[len(EMAIL_RULE) :])
        if address is not None and EMAIL_RULE + address != key:
            connection.execute(
                match_keys.update().where(match_keys.c.id == key_id).values(key=EMAIL_RULE + address)
            )


def downgrade() -> None:
    """Nothing to undo: the Unicode form is what the matcher computes for either spelling."""
