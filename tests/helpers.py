"""Service-level helpers for identity tests (no HTTP)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import select

from parcours.auth.service import SourceInfo, create_source
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.identity import service as identity
from parcours.ingest.service import IngestResult, ingest_messages
from parcours.models import Event, Identifier, Profile


def make_source(db: Database, name: str, channel: str) -> SourceInfo:
    with db.write() as session:
        source, _ = create_source(session, name, channel)
    return source


def ingest(
    db: Database, settings: Settings, source: SourceInfo, messages: list[dict[str, Any]]
) -> IngestResult:
    with db.write() as session:
        result = ingest_messages(session, settings, source, messages, expected_type=None)
    assert not result.errors, result.errors
    return result


def profile_of(db: Database, settings: Settings, kind: str, value: str) -> str:
    with db.read() as session:
        registry = identity.load_registry(session, settings.default_phone_region)
        return identity.find_profile_id(session, registry, kind, value)


def view(db: Database, profile_id: str) -> dict[str, Any]:
    with db.read() as session:
        return identity.profile_view(session, profile_id)


def set_kind(db: Database, name: str, **changes: Any) -> None:
    with db.write() as session:
        identity.update_kind(session, name, **changes)


def active_profiles(db: Database) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(Profile.id).where(Profile.merged_into_id.is_(None))))


def graph_state(db: Database) -> set[tuple[frozenset[str], frozenset[str], str]]:
    """The identity graph up to profile ids: for each active profile, its events (by message id),
    its identifiers and its traits. Two worlds with the same state partition people the same way."""
    with db.read() as session:
        events: dict[str, set[str]] = {}
        for profile_id, message_id in session.execute(select(Event.profile_id, Event.message_id)):
            events.setdefault(profile_id, set()).add(message_id)
        identifiers: dict[str, set[str]] = {}
        for profile_id, kind, value in session.execute(
            select(Identifier.profile_id, Identifier.kind, Identifier.value)
        ):
            identifiers.setdefault(profile_id, set()).add(f"{kind}:{value}")
        state = set()
        for profile in session.scalars(select(Profile).where(Profile.merged_into_id.is_(None))):
            state.add(
                (
                    frozenset(events.get(profile.id, ())),
                    frozenset(identifiers.get(profile.id, ())),
                    orjson.dumps(profile.traits, option=orjson.OPT_SORT_KEYS).decode(),
                )
            )
        return state
