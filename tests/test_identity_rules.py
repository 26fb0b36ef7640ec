"""Identity resolution rules: create, attach, merge, limits, priority, blocked values, kinds, traits."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from parcours.config import Settings
from parcours.db.engine import Database
from parcours.errors import NotFound
from parcours.identity import service as identity
from parcours.models import Event, Identifier, IdentityConflict, Merge
from tests.helpers import active_profiles, ingest, make_source, profile_of, set_kind, view


def msg(message_id: str, kind: str = "track", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": kind, "messageId": message_id}
    if kind == "track":
        body["event"] = fields.pop("event", "Product Viewed")
    body.update(fields)
    return body


@pytest.fixture
def web(db: Database) -> Any:
    return make_source(db, "web shop", "web")


@pytest.fixture
def store(db: Database) -> Any:
    return make_source(db, "tills", "store")


def conflicts(db: Database) -> list[IdentityConflict]:
    with db.read() as session:
        return list(session.scalars(select(IdentityConflict).order_by(IdentityConflict.created_at)))


def test_unknown_identifiers_create_a_profile_known_ones_attach(
    db: Database, settings: Settings, web: Any
) -> None:
    ingest(db, settings, web, [msg("m1", anonymousId="a1")])
    ingest(db, settings, web, [msg("m2", anonymousId="a1", context={"traits": {"email": "x@shop.fr"}})])
    ingest(db, settings, web, [msg("m3", anonymousId="a2")])
    profiles = active_profiles(db)
    assert len(profiles) == 2
    first = profile_of(db, settings, "email", "X@Shop.fr")
    assert first == profile_of(db, settings, "anonymous_id", "a1")
    assert view(db, first)["channels"][0]["events"] == 2


def test_an_event_linking_two_profiles_merges_them_and_records_why(
    db: Database, settings: Settings, web: Any, store: Any
) -> None:
    ingest(db, settings, web, [msg("m1", "identify", anonymousId="a1", traits={"email": "ana@shop.fr"})])
    ingest(db, settings, store, [msg("m2", anonymousId="till", context={"traits": {"loyalty_card": "LC 1"}})])
    assert len(active_profiles(db)) == 2
    web_profile = profile_of(db, settings, "email", "ana@shop.fr")
    store_profile = profile_of(db, settings, "loyalty_card", "LC1")
    ingest(
        db,
        settings,
        store,
        [msg("m3", anonymousId="till2", context={"traits": {"loyalty_card": "LC1", "email": "ana@shop.fr"}})],
    )
    assert active_profiles(db) == [web_profile]
    with db.read() as session:
        merge = session.scalars(select(Merge)).one()
        event_id = session.scalar(select(Event.id).where(Event.message_id == "m3"))
    assert (merge.survivor_id, merge.merged_id) == (web_profile, store_profile)
    assert merge.event_id == event_id
    assert set(merge.linking_identifiers) == {"loyalty_card:LC1", "email:ana@shop.fr"}
    assert merge.rule == "shared identifier"
    # The merged-away id keeps resolving to its survivor.
    assert view(db, store_profile)["id"] == web_profile
    assert view(db, store_profile)["requested_id"] == store_profile
    # ...and its view is the survivor's (the parts read for the id asked are read again for the survivor).
    survivor_view = view(db, web_profile)
    assert survivor_view["merged_from"] == [store_profile]
    assert {
        key: value for key, value in view(db, store_profile).items() if key != "requested_id"
    } == survivor_view
    assert {c["channel"] for c in view(db, web_profile)["channels"]} == {"web", "store"}


def test_user_id_limit_keeps_two_accounts_apart(db: Database, settings: Settings, web: Any) -> None:
    ingest(db, settings, web, [msg("m1", "identify", userId="u1", traits={"email": "family@shop.fr"})])
    ingest(db, settings, web, [msg("m2", "identify", userId="u2", traits={"phone": "0612345678"})])
    u1, u2 = profile_of(db, settings, "user_id", "u1"), profile_of(db, settings, "user_id", "u2")
    # One event names u2 and u1's email: merging would give a profile two user_ids.
    ingest(db, settings, web, [msg("m3", userId="u2", context={"traits": {"email": "family@shop.fr"}})])
    assert sorted(active_profiles(db)) == sorted([u1, u2])
    with db.read() as session:
        attached = session.scalar(select(Event.profile_id).where(Event.message_id == "m3"))
    assert attached == u2  # user_id outranks email
    [conflict] = conflicts(db)
    assert conflict.rule == "limit user_id: 1 per profile"
    assert conflict.attached_profile_id == u2 and conflict.other_profile_ids == [u1]


def test_a_new_user_id_on_a_shared_device_starts_its_own_profile(
    db: Database, settings: Settings, web: Any
) -> None:
    ingest(db, settings, web, [msg("m1", "identify", userId="alice", anonymousId="family-ipad")])
    ingest(db, settings, web, [msg("m2", "identify", userId="bob", anonymousId="family-ipad")])
    alice, bob = profile_of(db, settings, "user_id", "alice"), profile_of(db, settings, "user_id", "bob")
    assert alice != bob
    assert profile_of(db, settings, "anonymous_id", "family-ipad") == alice
    [conflict] = conflicts(db)
    assert conflict.attached_profile_id == bob and alice in conflict.other_profile_ids


def test_pos_customer_id_limit(db: Database, settings: Settings, store: Any) -> None:
    ingest(
        db,
        settings,
        store,
        [msg("m1", anonymousId="t1", context={"traits": {"pos_customer_id": "P1", "email": "a@b.fr"}})],
    )
    ingest(db, settings, store, [msg("m2", anonymousId="t2", context={"traits": {"pos_customer_id": "P2"}})])
    ingest(
        db,
        settings,
        store,
        [msg("m3", anonymousId="t3", context={"traits": {"pos_customer_id": "P2", "email": "a@b.fr"}})],
    )
    assert profile_of(db, settings, "pos_customer_id", "P1") != profile_of(
        db, settings, "pos_customer_id", "P2"
    )
    assert conflicts(db)[0].rule == "limit pos_customer_id: 1 per profile"


def test_email_limit_stops_a_sixth_email(db: Database, settings: Settings, web: Any) -> None:
    for n in range(6):
        ingest(db, settings, web, [msg(f"m{n}", userId="u1", context={"traits": {"email": f"e{n}@shop.fr"}})])
    profile = profile_of(db, settings, "user_id", "u1")
    emails = [i for i in view(db, profile)["identifiers"] if i["kind"] == "email"]
    assert len(emails) == 5
    with pytest.raises(NotFound):
        profile_of(db, settings, "email", "e5@shop.fr")
    [conflict] = conflicts(db)
    assert "email:e5@shop.fr" in conflict.reason


def test_anonymous_id_limit_is_twenty(db: Database, settings: Settings, web: Any) -> None:
    messages = [msg(f"m{n}", userId="u1", anonymousId=f"device-{n}") for n in range(22)]
    ingest(db, settings, web, messages)
    profile = profile_of(db, settings, "user_id", "u1")
    assert sum(i["kind"] == "anonymous_id" for i in view(db, profile)["identifiers"]) == 20


def test_limits_are_configurable(db: Database, settings: Settings, web: Any) -> None:
    set_kind(db, "user_id", max_per_profile=2)
    ingest(db, settings, web, [msg("m1", "identify", userId="u1", traits={"email": "a@b.fr"})])
    ingest(db, settings, web, [msg("m2", "identify", userId="u2", traits={"email": "a@b.fr"})])
    assert profile_of(db, settings, "user_id", "u1") == profile_of(db, settings, "user_id", "u2")


def test_priority_decides_where_a_conflicting_event_goes(db: Database, settings: Settings, web: Any) -> None:
    set_kind(db, "email", max_per_profile=1)
    ingest(db, settings, web, [msg("m1", "identify", anonymousId="a1", traits={"email": "one@shop.fr"})])
    ingest(db, settings, web, [msg("m2", "identify", anonymousId="a2", traits={"email": "two@shop.fr"})])
    # a2 belongs to the "two" profile, one@ to the "one" profile; email outranks anonymous_id.
    ingest(db, settings, web, [msg("m3", anonymousId="a2", context={"traits": {"email": "one@shop.fr"}})])
    set_kind(db, "anonymous_id", priority=5)
    ingest(db, settings, web, [msg("m4", anonymousId="a2", context={"traits": {"email": "one@shop.fr"}})])
    with db.read() as session:
        placed = {m: p for m, p in session.execute(select(Event.message_id, Event.profile_id))}
    one, two = (
        profile_of(db, settings, "email", "one@shop.fr"),
        profile_of(db, settings, "email", "two@shop.fr"),
    )
    assert placed["m3"] == one
    assert placed["m4"] == two
    assert len(conflicts(db)) == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("userId", "null"),
        ("userId", "undefined"),
        ("userId", "0"),
        ("userId", "000-000"),
        ("anonymousId", "None"),
    ],
)
def test_placeholder_values_never_link_people(
    db: Database, settings: Settings, web: Any, field: str, value: str
) -> None:
    ingest(db, settings, web, [msg("m1", **{field: value}, context={"traits": {"email": "a@shop.fr"}})])
    ingest(db, settings, web, [msg("m2", **{field: value}, context={"traits": {"email": "b@shop.fr"}})])
    assert len(active_profiles(db)) == 2
    with db.read() as session:
        assert (
            session.scalar(select(func.count()).select_from(Identifier).where(Identifier.value == value)) == 0
        )


def test_blocked_email_and_configured_shared_device(db: Database, settings: Settings, store: Any) -> None:
    set_kind(db, "anonymous_id", blocked_values=["tablet-lyon-1"], blocked_patterns=[r"^kiosk-"])
    for n, device in enumerate(["tablet-lyon-1", "tablet-lyon-1", "kiosk-7", "kiosk-7"]):
        ingest(
            db,
            settings,
            store,
            [msg(f"m{n}", anonymousId=device, context={"traits": {"email": f"p{n}@shop.fr"}})],
        )
    ingest(db, settings, store, [msg("m9", userId="u9", context={"traits": {"email": "test@example.com"}})])
    ingest(db, settings, store, [msg("m10", userId="u10", context={"traits": {"email": "TEST@example.com"}})])
    assert len(active_profiles(db)) == 6


def test_custom_identifier_kind(db: Database, settings: Settings, web: Any, store: Any) -> None:
    with db.write() as session:
        identity.add_kind(session, name="crm_id", priority=15, max_per_profile=1, normalizer="compact")
    ingest(db, settings, web, [msg("m1", "identify", userId="u1", traits={"crmId": "crm-00 17"})])
    ingest(
        db,
        settings,
        store,
        [msg("m2", anonymousId="t", context={"externalIds": [{"id": "CRM0017", "type": "crm_id"}]})],
    )
    assert active_profiles(db) == [profile_of(db, settings, "crm_id", "CRM-0017")]


def test_traits_last_write_wins_by_event_time_not_arrival(db: Database, settings: Settings, web: Any) -> None:
    newer = msg(
        "m1",
        "identify",
        userId="u1",
        timestamp="2026-03-02T10:00:00Z",
        traits={"city": "Lyon", "tier": "gold"},
    )
    older = msg(
        "m2",
        "identify",
        userId="u1",
        timestamp="2026-03-01T10:00:00Z",
        traits={"city": "Paris", "lang": "fr"},
    )
    ingest(db, settings, web, [newer])
    ingest(db, settings, web, [older])
    traits = view(db, profile_of(db, settings, "user_id", "u1"))["traits"]
    assert traits == {"city": "Lyon", "tier": "gold", "lang": "fr"}


def test_merge_combines_traits_by_event_time(db: Database, settings: Settings, web: Any) -> None:
    ingest(
        db,
        settings,
        web,
        [msg("m1", "identify", anonymousId="a", timestamp="2026-01-02T00:00:00Z", traits={"city": "Nantes"})],
    )
    ingest(
        db,
        settings,
        web,
        [
            msg(
                "m2",
                "identify",
                userId="u",
                timestamp="2026-01-01T00:00:00Z",
                traits={"city": "Brest", "name": "Lou"},
            )
        ],
    )
    ingest(db, settings, web, [msg("m3", userId="u", anonymousId="a", timestamp="2026-01-03T00:00:00Z")])
    [profile] = active_profiles(db)
    assert view(db, profile)["traits"] == {"city": "Nantes", "name": "Lou"}


def test_replaying_a_batch_changes_nothing(db: Database, settings: Settings, web: Any) -> None:
    batch = [
        msg("m1", "identify", userId="u1", traits={"email": "a@shop.fr"}),
        msg("m2", anonymousId="a9", context={"traits": {"email": "a@shop.fr"}}),
        msg("m3", anonymousId="b9"),
    ]
    first = ingest(db, settings, web, batch)
    before = view(db, profile_of(db, settings, "user_id", "u1"))
    again = ingest(db, settings, web, batch)
    assert (first.recorded, first.duplicates) == (3, 0)
    assert (again.recorded, again.duplicates) == (0, 3)
    assert view(db, profile_of(db, settings, "user_id", "u1")) == before
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 3
    # A duplicate inside one batch is recorded once.
    twice = ingest(db, settings, web, [msg("m4", anonymousId="c"), msg("m4", anonymousId="c")])
    assert (twice.recorded, twice.duplicates) == (1, 1)


def test_same_message_id_from_two_sources_is_two_events(
    db: Database, settings: Settings, web: Any, store: Any
) -> None:
    ingest(db, settings, web, [msg("same", anonymousId="a")])
    result = ingest(db, settings, store, [msg("same", anonymousId="a")])
    assert result.recorded == 1


def test_one_batch_can_create_link_and_merge(db: Database, settings: Settings, web: Any) -> None:
    ingest(
        db,
        settings,
        web,
        [
            msg("m1", anonymousId="a1"),
            msg("m2", anonymousId="a2", context={"traits": {"email": "z@shop.fr"}}),
            msg("m3", anonymousId="a1", context={"traits": {"email": "z@shop.fr"}}),
            msg("m4", anonymousId="a1"),
        ],
    )
    [profile] = active_profiles(db)
    assert view(db, profile)["channels"][0]["events"] == 4
    assert {i["value"] for i in view(db, profile)["identifiers"]} == {"a1", "a2", "z@shop.fr"}


def test_an_event_can_name_its_channel(db: Database, settings: Settings, store: Any) -> None:
    ingest(
        db,
        settings,
        store,
        [msg("m1", anonymousId="a", context={"channel": "kiosk"}), msg("m2", anonymousId="a")],
    )
    channels = {
        c["channel"]: c["events"] for c in view(db, profile_of(db, settings, "anonymous_id", "a"))["channels"]
    }
    assert channels == {"kiosk": 1, "store": 1}


def test_alias_links_the_previous_id(db: Database, settings: Settings, web: Any) -> None:
    ingest(db, settings, web, [msg("m1", "page", anonymousId="cookie-1", name="Home")])
    ingest(db, settings, web, [msg("m2", "identify", userId="acct-9", traits={"email": "z@shop.fr"})])
    ingest(
        db,
        settings,
        web,
        [{"type": "alias", "messageId": "m3", "userId": "acct-9", "previousId": "cookie-1"}],
    )
    [profile] = active_profiles(db)
    assert {(i["kind"], i["value"]) for i in view(db, profile)["identifiers"]} == {
        ("anonymous_id", "cookie-1"),
        ("user_id", "acct-9"),
        ("email", "z@shop.fr"),
    }


def test_group_and_screen_calls_are_kept_on_the_timeline(db: Database, settings: Settings, web: Any) -> None:
    ingest(
        db,
        settings,
        web,
        [
            {
                "type": "group",
                "messageId": "g1",
                "userId": "u1",
                "groupId": "acme",
                "traits": {"plan": "pro"},
            },
            {"type": "screen", "messageId": "s1", "userId": "u1", "name": "Basket"},
        ],
    )
    profile = profile_of(db, settings, "user_id", "u1")
    with db.read() as session:
        events = identity.timeline(session, profile)["data"]
    assert [(e["type"], e["name"]) for e in events] == [("group", "acme"), ("screen", "Basket")]
    assert events[0]["properties"] == {"group_id": "acme", "traits": {"plan": "pro"}}
    assert view(db, profile)["traits"] == {}  # group traits describe the group, not the person


def test_identifier_first_and_last_seen_follow_event_time_in_any_arrival_order(
    db: Database, settings: Settings, web: Any
) -> None:
    for n, day in enumerate(["2026-03-10", "2026-03-20", "2026-03-01", "2026-03-15"]):
        ingest(db, settings, web, [msg(f"m{n}", anonymousId="a", timestamp=f"{day}T12:00:00Z")])
    ingest(
        db,
        settings,
        web,
        [
            msg("m8", anonymousId="a", timestamp="2026-02-01T00:00:00Z"),
            msg("m9", anonymousId="a", timestamp="2026-04-01T00:00:00Z"),
        ],
    )
    [identifier] = view(db, profile_of(db, settings, "anonymous_id", "a"))["identifiers"]
    assert (identifier["first_seen_at"], identifier["last_seen_at"]) == (
        "2026-02-01T00:00:00Z",
        "2026-04-01T00:00:00Z",
    )
