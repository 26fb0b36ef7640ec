"""An e-mail address with an internationalised domain is one identifier however its domain is written:
in Unicode ("café.fr") or in its ASCII form ("xn--caf-dma.fr"), as mail headers often carry it. Earlier
releases stored the ASCII form as written; migration 0015 rewrites it, and erasures made then still hold."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text, update

from parcours.config import Settings
from parcours.db.engine import Database
from parcours.db.migrate import downgrade, head_revision, upgrade
from parcours.db.types import utcnow
from parcours.identity import service as identity
from parcours.identity.kinds import identifier_hash, spellings
from parcours.identity.resolution import instance_secret
from parcours.identity.unmerge import unmerge
from parcours.ingest.service import ingest_messages
from parcours.models import Event, Identifier, IdentityConflict, MatchKey, Merge, Tombstone
from tests.helpers import active_profiles, ingest, make_source, profile_of, view

UNICODE = "jean@café.fr"
ASCII = "jean@xn--caf-dma.fr"


def identify(message_id: str, timestamp: str = "2026-03-01T10:00:00Z", **fields: Any) -> dict[str, Any]:
    return {"type": "identify", "messageId": message_id, "timestamp": timestamp, **fields}


@pytest.fixture
def web(db: Database) -> Any:
    return make_source(db, "web shop", "web")


def emails(db: Database) -> list[str]:
    with db.read() as session:
        return sorted(session.scalars(select(Identifier.value).where(Identifier.kind == "email")))


def test_both_spellings_of_a_domain_are_one_identifier(db: Database, settings: Settings, web: Any) -> None:
    assert spellings("email", UNICODE) == (UNICODE, ASCII)
    assert spellings("email", "jéan@café.fr") == ("jéan@café.fr",)  # no ASCII form of a UTF-8 local part
    assert spellings("phone", "+33612345678") == ("+33612345678",)
    ingest(db, settings, web, [identify("m1", anonymousId="a-1", traits={"email": "Jean@XN--CAF-DMA.fr"})])
    ingest(db, settings, web, [identify("m2", anonymousId="a-2", traits={"email": "JEAN@Café.FR"})])
    assert len(active_profiles(db)) == 1
    assert emails(db) == [UNICODE]
    for written in (UNICODE, ASCII, "Jean@CAFÉ.fr"):
        assert profile_of(db, settings, "email", written) == active_profiles(db)[0]


def test_an_erasure_under_either_spelling_keeps_old_events_out(
    db: Database, settings: Settings, web: Any
) -> None:
    # An erasure by an earlier release left the hash of the ASCII form only.
    with db.write() as session:
        session.add(
            Tombstone(
                identifier_hash=identifier_hash(instance_secret(session), "email", ASCII),
                erased_at=utcnow(),
            )
        )
    with db.write() as session:
        result = ingest_messages(
            session,
            settings,
            web,
            [identify("old", anonymousId="a-9", traits={"email": UNICODE})],
            expected_type=None,
        )
    assert (result.recorded, result.erased) == (0, 1)
    assert active_profiles(db) == []

    # An erasure now keeps both spellings' hashes.
    ingest(db, settings, web, [identify("m1", userId="u-2", traits={"email": "ana@straße.de"})])
    with db.write() as session:
        identity.erase_profile(session, profile_of(db, settings, "user_id", "u-2"))
    with db.read() as session:
        secret = instance_secret(session)
        held = set(session.scalars(select(Tombstone.identifier_hash)))
    assert {identifier_hash(secret, "email", v) for v in ("ana@straße.de", "ana@xn--strae-oqa.de")} <= held


def _as_an_earlier_release_stored_it(db: Database, unicode_form: str, ascii_form: str) -> None:
    """Rewrite one address, everywhere the identity graph names it, in the ASCII form."""
    new, old = f"email:{ascii_form}", f"email:{unicode_form}"
    with db.write() as session:
        session.execute(
            update(Identifier)
            .where(Identifier.kind == "email", Identifier.value == unicode_form)
            .values(value=ascii_form)
        )
        # Column by column: the models may hold columns later migrations add.
        for model, key, columns in (
            (Event, Event.seq, (Event.identifiers,)),
            (IdentityConflict, IdentityConflict.id, (IdentityConflict.identifiers,)),
            (
                Merge,
                Merge.id,
                (Merge.linking_identifiers, Merge.survivor_identifiers, Merge.merged_identifiers),
            ),
        ):
            for column in columns:
                for row_key, keys in session.execute(select(key, column)).all():
                    if old in keys:
                        rewritten = [new if item == old else item for item in keys]
                        session.execute(update(model).where(key == row_key).values({column: rewritten}))


def test_the_migration_rewrites_ascii_domains_and_keeps_merges_undoable(
    db: Database, settings: Settings, web: Any
) -> None:
    def two_days(name: str, first: str, second: str) -> list[dict[str, Any]]:
        return [
            identify(f"{name}-1", timestamp=first, userId=f"u-{name}", traits={"email": f"{name}@café.fr"}),
            identify(f"{name}-2", timestamp=second, userId=f"u-{name}"),
        ]

    # carl: held in the ASCII form alone; ana: in both forms, by the same profile; dora: in both forms, by
    # two profiles; mia: in the ASCII form, and the address that merged two profiles.
    ingest(db, settings, web, two_days("carl", "2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"))
    ingest(db, settings, web, two_days("ana", "2026-03-05T00:00:00Z", "2026-03-06T00:00:00Z"))
    ingest(db, settings, web, [identify("dora-1", userId="u-dora", traits={"email": "dora@café.fr"})])
    ingest(db, settings, web, [identify("dora-2", userId="u-dora2", traits={"email": "dora@copy.fr"})])
    ingest(db, settings, web, [identify("mia-1", anonymousId="a-mia", traits={"email": "mia@café.fr"})])
    ingest(db, settings, web, [identify("mia-2", traits={"loyalty_card": "LC-9"}, anonymousId="a-till")])
    ingest(
        db,
        settings,
        web,
        [identify("mia-3", anonymousId="a-till", traits={"loyalty_card": "LC-9", "email": "mia@café.fr"})],
    )
    mia = profile_of(db, settings, "email", "mia@café.fr")
    assert profile_of(db, settings, "loyalty_card", "LC-9") == mia  # merged

    downgrade(db.engine, "0014")
    for name in ("carl", "mia"):
        _as_an_earlier_release_stored_it(db, f"{name}@café.fr", f"{name}@xn--caf-dma.fr")
    ana = profile_of(db, settings, "user_id", "u-ana")
    dora_copy = profile_of(db, settings, "user_id", "u-dora2")
    with db.write() as session:
        now = utcnow()
        (ana_seen,) = session.execute(
            select(Identifier.first_seen_at).where(Identifier.value == "ana@café.fr")
        ).one()
        session.add_all(
            [
                Identifier(
                    kind="email",
                    value="ana@xn--caf-dma.fr",
                    profile_id=ana,
                    first_seen_at=ana_seen.replace(day=1),
                    last_seen_at=now,
                ),
                Identifier(
                    kind="email",
                    value="dora@xn--caf-dma.fr",
                    profile_id=dora_copy,
                    first_seen_at=now,
                    last_seen_at=now,
                ),
            ]
        )
    upgrade(db.engine)

    assert emails(db) == sorted(
        ["ana@café.fr", "carl@café.fr", "dora@café.fr", "dora@copy.fr", "dora@xn--caf-dma.fr", "mia@café.fr"]
    )
    with db.read() as session:
        assert session.scalar(text("SELECT version_num FROM alembic_version")) == head_revision()
        named = [key for keys in session.scalars(select(Event.identifiers)) for key in keys]
        for merge in session.scalars(select(Merge)):
            named += merge.linking_identifiers + merge.survivor_identifiers + merge.merged_identifiers
    assert "email:mia@café.fr" in named and "email:carl@café.fr" in named
    assert not [key for key in named if "xn--" in key]
    [ana_email] = [i for i in view(db, ana)["identifiers"] if i["kind"] == "email"]
    assert ana_email["first_seen_at"] == "2026-03-01T00:00:00Z"  # the earlier sight of the two rows
    assert profile_of(db, settings, "email", "carl@xn--caf-dma.fr") == profile_of(
        db, settings, "user_id", "u-carl"
    )
    # dora's two spellings stay apart: the Unicode form is the one found.
    assert profile_of(db, settings, "email", "dora@xn--caf-dma.fr") == profile_of(
        db, settings, "user_id", "u-dora"
    )

    with db.write() as session:
        unmerge(session, mia)
    assert profile_of(db, settings, "email", "mia@café.fr") != profile_of(
        db, settings, "loyalty_card", "LC-9"
    )
    assert profile_of(db, settings, "email", "mia@café.fr") == profile_of(
        db, settings, "anonymous_id", "a-mia"
    )

    # Ingestion after the migration goes on with the rewritten graph.
    ingest(
        db, settings, web, [identify("carl-3", anonymousId="a-carl", traits={"email": "CARL@xn--caf-dma.fr"})]
    )
    assert profile_of(db, settings, "anonymous_id", "a-carl") == profile_of(db, settings, "user_id", "u-carl")


def test_the_migration_rewrites_the_matchers_ascii_email_keys(
    db: Database, settings: Settings, web: Any
) -> None:
    ingest(
        db, settings, web, [identify("m-1", userId="u-jean", traits={"email": UNICODE, "firstName": "Jean"})]
    )
    with db.read() as session:
        (key,) = session.scalars(select(MatchKey.key).where(MatchKey.key.like(f"%{UNICODE}")))
    rule = key.removesuffix(UNICODE)
    downgrade(db.engine, "0016")
    with db.write() as session:  # as the matcher wrote it before it normalised domains
        session.execute(update(MatchKey).where(MatchKey.key == key).values(key=rule + ASCII))
        session.add(MatchKey(profile_id="prf_other", key=rule + "not-an-address@xn--"))
    upgrade(db.engine)
    with db.read() as session:
        keys = set(session.scalars(select(MatchKey.key)))
    assert key in keys and rule + ASCII not in keys
    assert rule + "not-an-address@xn--" in keys  # not an address: left as it was
