"""The server's in-memory identity graph (``GraphCache``) never changes an outcome.

Property: any sequence of ingestion batches, unmerges, API consents, erasures and rolled-back batches
leaves the database exactly as the same sequence does without a cache (profiles up to their ids,
identifiers with first and last seen, events, traits, consents)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select

from parcours.app import create_app
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.errors import NotFound
from parcours.identity import service as identity
from parcours.identity.resolution import GraphCache
from parcours.inbox.automation import SYSTEM
from parcours.inbox.outbound import write_reply
from parcours.inbox.service import Inbound
from parcours.ingest.service import ingest_messages, parse_messages
from parcours.ingest.writer import IngestItem
from parcours.models import Consent, Event, Identifier, Merge, Profile
from tests.conftest import reset_database
from tests.helpers import make_source

BASE = datetime(2026, 1, 1, tzinfo=UTC)
IDENTIFIERS = [
    ("email", "p0@shop.fr"),
    ("email", "p1@shop.fr"),
    ("phone", "+33612345670"),
    ("phone", "+33612345671"),
    ("anonymousId", "device-0"),
    ("anonymousId", "device-1"),
    ("anonymousId", "device-2"),
    ("userId", "user-0"),
    ("userId", "user-1"),
]


class Abort(Exception):
    """Raised inside a write transaction to roll it back."""


def message(n: int, identifiers: list[tuple[str, str]], day: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "identify",
        "messageId": f"m{n}",
        "timestamp": (BASE + timedelta(days=day)).isoformat(),
        "traits": {"seen": n, "city": ["Lyon", "Paris", "Lille"][n % 3]},
    }
    for field, value in identifiers:
        if field in ("userId", "anonymousId"):
            body[field] = value
        else:
            body["traits"][field] = value
    return body


identifier_sets = st.lists(
    st.sampled_from(IDENTIFIERS), min_size=1, max_size=3, unique_by=lambda pair: pair[0]
)
batch = st.lists(st.tuples(identifier_sets, st.integers(0, 9)), min_size=1, max_size=6)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("batch"), batch),
        st.tuples(st.just("batch"), batch),
        st.tuples(st.just("rolled back batch"), batch),
        st.tuples(st.just("unmerge"), st.none()),
        st.tuples(st.just("consent"), st.sampled_from(IDENTIFIERS)),
        st.tuples(st.just("erase"), st.sampled_from(IDENTIFIERS)),
    ),
    min_size=2,
    max_size=10,
)


def run(db: Database, settings: Settings, ops: list[tuple[str, Any]], cache: GraphCache | None) -> list[Any]:
    """Apply the operations; return what each one gave (to compare the two runs step by step too)."""
    reset_database(db)
    source = make_source(db, "web", "web")
    outcomes: list[Any] = []
    counter = 0
    for op, arg in ops:
        if op in ("batch", "rolled back batch"):
            messages = []
            for identifiers, day in arg:
                messages.append(message(counter, identifiers, day))
                counter += 1
            try:
                with db.write() as session:
                    result = ingest_messages(
                        session, settings, source, messages, expected_type=None, cache=cache
                    )
                    if op == "rolled back batch":
                        raise Abort
                outcomes.append((result.recorded, result.duplicates, result.erased))
            except Abort:
                outcomes.append("rolled back")
        elif op == "unmerge":
            with db.read() as session:
                merge = session.scalars(
                    select(Merge)
                    .where(Merge.undone_at.is_(None))
                    .order_by(Merge.created_at.desc(), Merge.id.desc())
                ).first()
            if merge is None:
                outcomes.append("no merge")
                continue
            with db.write() as session:
                identity.unmerge(session, merge.merged_id, merge.id)
            outcomes.append("unmerged")
        else:
            field, value = arg
            kind = {"userId": "user_id", "anonymousId": "anonymous_id"}.get(field, field)
            try:
                with db.write() as session:
                    registry = identity.load_registry(session, settings.default_phone_region)
                    profile_id = identity.find_profile_id(session, registry, kind, value)
                    if op == "consent":
                        identity.set_consent(
                            session,
                            profile_id,
                            channel="email",
                            purpose="marketing",
                            granted=True,
                            source="t",
                        )
                    else:
                        identity.erase_profile(session, profile_id)
                outcomes.append(op)
            except NotFound:
                outcomes.append("no profile")
    return outcomes


def full_state(db: Database) -> set[Any]:
    """Every active profile up to its id: events, identifiers with first/last seen, traits, consents."""
    with db.read() as session:
        events: dict[str, set[str]] = {}
        for profile_id, message_id in session.execute(select(Event.profile_id, Event.message_id)):
            events.setdefault(profile_id, set()).add(message_id)
        identifiers: dict[str, set[str]] = {}
        for row in session.execute(
            select(
                Identifier.profile_id,
                Identifier.kind,
                Identifier.value,
                Identifier.first_seen_at,
                Identifier.last_seen_at,
            )
        ):
            identifiers.setdefault(row.profile_id, set()).add(
                f"{row.kind}:{row.value} {row.first_seen_at.isoformat()} {row.last_seen_at.isoformat()}"
            )
        consents: dict[str, int] = {}
        for (profile_id,) in session.execute(select(Consent.profile_id)):
            consents[profile_id] = consents.get(profile_id, 0) + 1
        state = set()
        for profile in session.scalars(select(Profile).where(Profile.merged_into_id.is_(None))):
            state.add(
                (
                    frozenset(events.get(profile.id, ())),
                    frozenset(identifiers.get(profile.id, ())),
                    orjson.dumps(profile.traits, option=orjson.OPT_SORT_KEYS).decode(),
                    consents.get(profile.id, 0),
                )
            )
        return state


def test_a_cache_never_changes_an_outcome(db: Database, settings: Settings) -> None:
    @hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(operations)
    def check(ops: list[tuple[str, Any]]) -> None:
        without = run(db, settings, ops, None)
        expected = full_state(db)
        with_cache = run(db, settings, ops, GraphCache())
        event("unmerges: " + str(without.count("unmerged")))
        assert with_cache == without
        assert full_state(db) == expected

    check()


@pytest.mark.parametrize(("limit", "held"), [(3, [4, 4, 4]), (200_000, [4, 8, 12])])
def test_a_full_cache_starts_over(db: Database, settings: Settings, limit: int, held: list[int]) -> None:
    cache = GraphCache(max_identifiers=limit)
    source = make_source(db, "web", "web")
    sizes = []
    for n in range(3):
        messages = [message(10 * n + i, [("email", f"c{n}.{i}@shop.fr")], 1) for i in range(4)]
        with db.write() as session:
            ingest_messages(session, settings, source, messages, expected_type=None, cache=cache)
        sizes.append(len(cache.idents))
    assert sizes == held


def test_another_writer_makes_the_cache_start_over(db: Database, settings: Settings) -> None:
    cache = GraphCache()
    source = make_source(db, "web", "web")

    def send(n: int, email: str, cache: GraphCache | None) -> None:
        with db.write() as session:
            ingest_messages(
                session,
                settings,
                source,
                [message(n, [("email", email)], 1)],
                expected_type=None,
                cache=cache,
            )

    send(0, "a@shop.fr", cache)
    send(1, "b@shop.fr", cache)
    assert set(cache.idents) == {("email", "a@shop.fr"), ("email", "b@shop.fr")}
    send(2, "c@shop.fr", None)  # a writer without this cache (another process, the API)
    send(3, "d@shop.fr", cache)
    assert set(cache.idents) == {("email", "d@shop.fr")}


def test_the_inbox_and_ingestion_share_the_servers_cache(db: Database, settings: Settings) -> None:
    """A message stored by the inbox leaves ingestion's cache warm (and right), and the reverse: the
    server's two writers keep one GraphCache, so neither makes the other start over."""
    app = create_app(settings, db)
    ingest_writer, inbox_writer = app.state.ingest_writer, app.state.inbox_writer
    cache = ingest_writer.cache
    assert cache is not None and inbox_writer.cache is cache
    source = make_source(db, "web", "web")
    with db.read() as session:
        registry = identity.load_registry(session, "FR")

    def track(n: int, identifiers: list[tuple[str, str]]) -> str:
        touchpoints, result = parse_messages(
            registry, settings, source, [message(n, identifiers, 1)], expected_type=None
        )
        assert not result.errors
        (profile_id,) = ingest_writer.submit(IngestItem(registry, touchpoints)).profile_ids
        return str(profile_id)

    ana = track(0, [("email", "ana@shop.fr")])
    received = inbox_writer.submit(
        Inbound("sms", "twilio", "SM-1", [("phone", "+33612345678")], "Bonjour", sent_at=BASE)
    )
    assert {("email", "ana@shop.fr"), ("phone", "+33612345678")} <= set(cache.idents)  # nothing dropped
    # The inbox's sender is known to ingestion at once: the phone joins the e-mail's profile by merging.
    merged = track(1, [("email", "ana@shop.fr"), ("phone", "+33612345678")])
    with db.read() as session:
        assert identity.resolve_profile_id(session, received.profile_id) == merged
        assert identity.resolve_profile_id(session, ana) == merged
    assert ("email", "ana@shop.fr") in cache.idents
    # A reply records its event through the same cache (as the reply endpoint and the console pass it).
    with db.write() as session:
        write_reply(session, settings, None, received.conversation_id, SYSTEM, "Bonjour Ana", cache=cache)
    assert ("email", "ana@shop.fr") in cache.idents
    track(2, [("email", "ana@shop.fr")])
    assert ("phone", "+33612345678") in cache.idents  # still warm: nobody else wrote the graph
    again = inbox_writer.submit(
        Inbound("sms", "twilio", "SM-2", [("phone", "+33612345678")], "Merci", sent_at=BASE)
    )
    assert again.profile_id == merged and again.conversation_id == received.conversation_id
