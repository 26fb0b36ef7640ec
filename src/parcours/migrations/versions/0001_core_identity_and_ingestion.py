"""core identity and ingestion

Revision ID: 0001
Revises:
Create Date: 2026-11-23 09:32:49.393281
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import parcours.db.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", parcours.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", parcours.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "identifier_kinds",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("max_per_profile", sa.Integer(), nullable=False),
        sa.Column("normalizer", sa.String(length=16), nullable=False),
        sa.Column(
            "blocked_values",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "blocked_patterns",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_identifier_kinds")),
    )
    op.create_table(
        "identity_conflicts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("attached_profile_id", sa.String(length=40), nullable=False),
        sa.Column(
            "other_profile_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "identifiers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", parcours.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_conflicts")),
    )
    with op.batch_alter_table("identity_conflicts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_conflicts_attached_profile_id"), ["attached_profile_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_identity_conflicts_event_id"), ["event_id"], unique=False)

    op.create_table(
        "instance_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_instance_settings")),
    )
    op.create_table(
        "merge_blocks",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("profile_a", sa.String(length=40), nullable=False),
        sa.Column("profile_b", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_at", parcours.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merge_blocks")),
        sa.UniqueConstraint("profile_a", "profile_b", name=op.f("uq_merge_blocks_profile_a_profile_b")),
    )
    with op.batch_alter_table("merge_blocks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_merge_blocks_profile_a"), ["profile_a"], unique=False)
        batch_op.create_index(batch_op.f("ix_merge_blocks_profile_b"), ["profile_b"], unique=False)

    op.create_table(
        "profiles",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", parcours.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", parcours.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("merged_into_id", sa.String(length=40), nullable=True),
        sa.Column(
            "traits",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "trait_times",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["merged_into_id"], ["profiles.id"], name=op.f("fk_profiles_merged_into_id_profiles")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profiles")),
    )
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_profiles_merged_into_id"), ["merged_into_id"], unique=False)

    op.create_table(
        "sources",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("write_key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", parcours.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", parcours.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_sources_name")),
        sa.UniqueConstraint("write_key_hash", name=op.f("uq_sources_write_key_hash")),
    )
    op.create_table(
        "tombstones",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("identifier_hash", sa.String(length=64), nullable=False),
        sa.Column("erased_at", parcours.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tombstones")),
        sa.UniqueConstraint("identifier_hash", name=op.f("uq_tombstones_identifier_hash")),
    )
    op.create_table(
        "consents",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("profile_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=60), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=160), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=True),
        sa.Column("recorded_at", parcours.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name=op.f("fk_consents_profile_id_profiles")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consents_event_id"), ["event_id"], unique=False)
        batch_op.create_index("ix_consents_profile", ["profile_id", "channel", "purpose"], unique=False)

    op.create_table(
        "events",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("profile_id", sa.String(length=40), nullable=False),
        sa.Column("origin_profile_id", sa.String(length=40), nullable=False),
        sa.Column("timestamp", parcours.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", parcours.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=True),
        sa.Column("anonymous_id", sa.String(length=200), nullable=True),
        sa.Column(
            "identifiers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "traits",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "properties",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "context",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(["profile_id"], ["profiles.id"], name=op.f("fk_events_profile_id_profiles")),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], name=op.f("fk_events_source_id_sources")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_events")),
        sa.UniqueConstraint("id", name=op.f("uq_events_id")),
        sa.UniqueConstraint("source_id", "message_id", name=op.f("uq_events_source_id_message_id")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_profile_time", ["profile_id", "timestamp", "id"], unique=False)

    op.create_table(
        "identifiers",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("profile_id", sa.String(length=40), nullable=False),
        sa.Column("source_event_id", sa.String(length=40), nullable=True),
        sa.Column("first_seen_at", parcours.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", parcours.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["kind"], ["identifier_kinds.name"], name=op.f("fk_identifiers_kind_identifier_kinds")
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name=op.f("fk_identifiers_profile_id_profiles")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identifiers")),
        sa.UniqueConstraint("kind", "value", name=op.f("uq_identifiers_kind_value")),
    )
    with op.batch_alter_table("identifiers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identifiers_profile_id"), ["profile_id"], unique=False)

    op.create_table(
        "merges",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("survivor_id", sa.String(length=40), nullable=False),
        sa.Column("merged_id", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=True),
        sa.Column(
            "linking_identifiers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column(
            "survivor_identifiers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "merged_identifiers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "merged_consent_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", parcours.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("undone_at", parcours.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["merged_id"], ["profiles.id"], name=op.f("fk_merges_merged_id_profiles")),
        sa.ForeignKeyConstraint(
            ["survivor_id"], ["profiles.id"], name=op.f("fk_merges_survivor_id_profiles")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merges")),
    )
    with op.batch_alter_table("merges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_merges_merged_id"), ["merged_id"], unique=False)
        batch_op.create_index("ix_merges_survivor", ["survivor_id", "undone_at"], unique=False)

    seed()


# The identifier kinds every installation starts with, and their merge rules. Later changes to the
# defaults belong in a new migration, so this list stays as it was when it was applied.
DEFAULT_KINDS = [
    # name, priority (lower wins), max per profile, normaliser, blocked values, description
    ("user_id", 10, 1, "text", [], "The business's own account id (Segment userId)."),
    ("pos_customer_id", 20, 1, "text", [], "The customer id a store till knows."),
    ("loyalty_card", 30, 2, "compact", [], "A loyalty card number."),
    ("email", 40, 5, "email", ["test@example.com"], "An email address."),
    ("phone", 50, 5, "phone", [], "A phone number, stored in E.164."),
    ("whatsapp", 60, 2, "phone", [], "A WhatsApp number, stored in E.164."),
    ("messenger", 70, 5, "text", [], "A Facebook Messenger page-scoped id."),
    ("instagram", 80, 5, "handle", [], "An Instagram handle or scoped id."),
    ("anonymous_id", 90, 20, "text", [], "A device or browser id (Segment anonymousId)."),
]


def seed() -> None:
    kinds = sa.table(
        "identifier_kinds",
        sa.column("name", sa.String),
        sa.column("priority", sa.Integer),
        sa.column("max_per_profile", sa.Integer),
        sa.column("normalizer", sa.String),
        sa.column("blocked_values", sa.JSON),
        sa.column("blocked_patterns", sa.JSON),
        sa.column("builtin", sa.Boolean),
        sa.column("description", sa.Text),
    )
    op.bulk_insert(
        kinds,
        [
            {
                "name": name,
                "priority": priority,
                "max_per_profile": limit,
                "normalizer": normalizer,
                "blocked_values": blocked,
                "blocked_patterns": [],
                "builtin": True,
                "description": description,
            }
            for name, priority, limit, normalizer, blocked, description in DEFAULT_KINDS
        ],
    )
    settings = sa.table("instance_settings", sa.column("key", sa.String), sa.column("value", sa.Text))
    op.bulk_insert(settings, [{"key": "secret", "value": secrets.token_hex(32)}])


def downgrade() -> None:

    with op.batch_alter_table("merges", schema=None) as batch_op:
        batch_op.drop_index("ix_merges_survivor")
        batch_op.drop_index(batch_op.f("ix_merges_merged_id"))

    op.drop_table("merges")
    with op.batch_alter_table("identifiers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identifiers_profile_id"))

    op.drop_table("identifiers")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_profile_time")

    op.drop_table("events")
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index("ix_consents_profile")
        batch_op.drop_index(batch_op.f("ix_consents_event_id"))

    op.drop_table("consents")
    op.drop_table("tombstones")
    op.drop_table("sources")
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profiles_merged_into_id"))

    op.drop_table("profiles")
    with op.batch_alter_table("merge_blocks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_merge_blocks_profile_b"))
        batch_op.drop_index(batch_op.f("ix_merge_blocks_profile_a"))

    op.drop_table("merge_blocks")
    op.drop_table("instance_settings")
    with op.batch_alter_table("identity_conflicts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_conflicts_event_id"))
        batch_op.drop_index(batch_op.f("ix_identity_conflicts_attached_profile_id"))

    op.drop_table("identity_conflicts")
    op.drop_table("identifier_kinds")
    op.drop_table("api_tokens")
