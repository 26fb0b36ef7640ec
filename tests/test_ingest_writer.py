"""The ingestion writer (group commit): the events of several requests are resolved and stored in one
transaction, and each request learns what happened to its own events; a request that cannot be stored
fails alone. On SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from sqlalchemy import func, select

from parcours.auth.service import SourceInfo, create_source
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.db.group_commit import _Pending
from parcours.identity import service as identity
from parcours.identity.kinds import KindRegistry
from parcours.identity.resolution import GraphCache
from parcours.identity.touchpoints import RecordOutcome
from parcours.ingest.service import parse_messages
from parcours.ingest.writer import IngestItem, IngestWriter
from parcours.models import Event, Profile


def source_and_registry(db: Database) -> tuple[SourceInfo, KindRegistry]:
    with db.write() as session:
        source, _ = create_source(session, "web shop", "web")
        registry = identity.load_registry(session, "FR")
    return source, registry


def request(
    settings: Settings, source: SourceInfo, registry: KindRegistry, *messages: dict[str, Any]
) -> IngestItem:
    touchpoints, result = parse_messages(registry, settings, source, list(messages), expected_type=None)
    assert not result.errors, result.errors
    return IngestItem(registry, touchpoints)


def track(message_id: str, user_id: str, **traits: str) -> dict[str, Any]:
    context = {"traits": traits} if traits else {}
    return {
        "type": "track",
        "event": "Viewed",
        "messageId": message_id,
        "userId": user_id,
        "context": context,
    }


def store_together(writer: IngestWriter, *items: IngestItem) -> list[_Pending[IngestItem, RecordOutcome]]:
    batch: list[_Pending[IngestItem, RecordOutcome]] = [
        _Pending(item, done=threading.Event()) for item in items
    ]
    writer._store(batch)
    return batch


def event_count(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(Event)) or 0


def test_requests_stored_together_each_get_their_own_outcome(db: Database, settings: Settings) -> None:
    source, registry = source_and_registry(db)
    writer = IngestWriter(lambda: (db, settings), cache=GraphCache(1000))
    first = request(settings, source, registry, track("m1", "u1"), track("m2", "u2"))
    second = request(settings, source, registry, track("m1", "u1"), track("m3", "u3"))  # m1 sent again
    third = request(settings, source, registry, track("m4", "u2", email="deux@example.fr"))

    batch = store_together(writer, first, second, third)

    outcomes = [pending.result for pending in batch]
    assert all(pending.error is None for pending in batch)
    assert [o.status for o in outcomes if o is not None] == [
        ["recorded", "recorded"],
        ["duplicate", "recorded"],
        ["recorded"],
    ]
    first_outcome, _, third_outcome = outcomes
    assert first_outcome is not None and third_outcome is not None
    assert third_outcome.profile_ids == [first_outcome.profile_ids[1]]  # u2's profile, in the same pass
    assert event_count(db) == 4


def test_a_request_that_cannot_be_stored_fails_alone(db: Database, settings: Settings) -> None:
    source, registry = source_and_registry(db)
    writer = IngestWriter(lambda: (db, settings), cache=GraphCache(1000))
    good = request(settings, source, registry, track("g1", "u1"))
    unknown_source = dataclasses.replace(source, id="src_does_not_exist")  # no such row: a foreign key fails
    bad = request(settings, unknown_source, registry, track("b1", "u9"))
    later = request(settings, source, registry, track("g2", "u2"))

    batch = store_together(writer, good, bad, later)

    assert batch[0].error is None and batch[2].error is None
    assert batch[1].error is not None and batch[1].result is None
    assert event_count(db) == 2
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Profile)) == 2
    # The writer goes on, its identity graph in memory still right: u1 comes back to its profile.
    (again,) = store_together(writer, request(settings, source, registry, track("g3", "u1")))
    assert again.result is not None and batch[0].result is not None
    assert again.result.profile_ids == batch[0].result.profile_ids


def test_requests_validated_against_different_registries_are_stored_together(
    db: Database, settings: Settings
) -> None:
    source, registry = source_and_registry(db)
    with db.write() as session:
        identity.add_kind(session, name="crm_id", priority=15, max_per_profile=1)
    with db.read() as session:
        newer = identity.load_registry(session, "FR")
    assert newer is not registry and "crm_id" in newer
    writer = IngestWriter(lambda: (db, settings), cache=None)
    before = request(settings, source, registry, track("r1", "u1"))
    after = request(settings, source, newer, {**track("r2", "u2"), "context": {"traits": {"crm_id": "C-7"}}})

    batch = store_together(writer, before, after)

    assert [p.result.status for p in batch if p.result is not None] == [["recorded"], ["recorded"]]
    second = batch[1].result
    assert second is not None
    with db.read() as session:
        assert identity.find_profile_by(session, "FR", "crm_id:C-7") == second.profile_ids[0]
