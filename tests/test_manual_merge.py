"""Merging two profiles by hand (API and console): recorded, bound by the merge rules, reversible; and
unmerging any merge no event caused (by hand, accepted from review, probabilistic) sends the events
that came after it to the side their identifiers belong to."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select

from parcours.config import Settings
from parcours.db.engine import Database
from parcours.db.migrate import downgrade, upgrade
from parcours.errors import Conflict
from parcours.identity import service as identity
from parcours.matching.review import list_reviews
from parcours.models import Event, MatchKey, Merge, MergeBlock
from tests.conftest import Api, reset_database
from tests.helpers import active_profiles, graph_state, ingest, make_source, profile_of, set_kind
from tests.test_unmerge import _run, batches_of, events, undo_every_merge


def track(message_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Seen", "messageId": message_id, **fields}


def by_hand(db: Database, settings: Settings, first: str, second: str, reason: str = "") -> dict[str, Any]:
    with db.write() as session:
        registry = identity.load_registry(session, settings.default_phone_region)
        return identity.merge_customers(session, registry, first, second, actor="Ana", reason=reason)


def two_customers(db: Database, settings: Settings) -> tuple[str, str]:
    """A web browser known by e-mail, and a store customer known by loyalty card and phone."""
    web, store = make_source(db, "web", "web"), make_source(db, "tills", "store")
    ingest(db, settings, web, [{"type": "identify", "messageId": "w1", "anonymousId": "dev-1",
                                "traits": {"email": "lea@example.fr", "firstName": "Léa", "city": "Lyon"}}])  # fmt: skip
    ingest(db, settings, store, [{"type": "identify", "messageId": "s1", "userId": "till-7",
                                  "traits": {"loyalty_card": "29012345", "phone": "06 12 34 56 78", "city": "Paris"}}])  # fmt: skip
    return profile_of(db, settings, "email", "lea@example.fr"), profile_of(
        db, settings, "loyalty_card", "29012345"
    )


def test_a_hand_merge_is_recorded_and_undone_exactly(db: Database, settings: Settings) -> None:
    web_id, store_id = two_customers(db, settings)
    before = graph_state(db)
    done = by_hand(db, settings, store_id, web_id, reason="  same  person,\n seen at the till ")
    assert done["rule"] == "merged by hand by Ana: same person, seen at the till"
    survivor = done["survivor"]
    assert survivor["id"] == web_id and done["merged_id"] == store_id  # the older profile survives
    kinds = {(i["kind"], i["value"]) for i in survivor["identifiers"]}
    assert {("email", "lea@example.fr"), ("loyalty_card", "29012345"), ("phone", "+33612345678")} <= kinds
    assert {c["channel"] for c in survivor["channels"]} == {"web", "store"}
    assert survivor["traits"]["city"] == "Paris"  # last write wins by event time across both
    with db.read() as session:
        merge = session.get(Merge, done["merge_id"])
        assert merge is not None and merge.event_id is None and merge.replay_after_seq is not None
        assert identity.resolve_profile_id(session, store_id) == web_id  # the old id keeps answering
        # Matching keys: the survivor's from the combined traits, none left for the merged-away profile.
        holders = set(session.scalars(select(MatchKey.profile_id)))
    assert store_id not in holders and web_id in holders
    with db.write() as session:
        identity.unmerge(session, store_id)
    assert graph_state(db) == before


def test_events_after_a_hand_merge_go_back_to_their_side(db: Database, settings: Settings) -> None:
    web_id, store_id = two_customers(db, settings)
    store = make_source(db, "tills-2", "store")
    by_hand(db, settings, web_id, store_id)
    # After the merge: a purchase with the card (store side) that brings a new e-mail, and a web visit.
    ingest(db, settings, store, [{"type": "identify", "messageId": "s2", "userId": "till-7",
                                  "traits": {"email": "lea.pro@example.fr"}}])  # fmt: skip
    ingest(db, settings, store, [track("w2", anonymousId="dev-1")])
    with db.write() as session:
        identity.unmerge(session, store_id)
    state = {events: identifiers for events, identifiers, _ in graph_state(db)}
    assert state[frozenset({"s1", "s2"})] == frozenset(
        {"user_id:till-7", "loyalty_card:29012345", "phone:+33612345678", "email:lea.pro@example.fr"}
    )
    assert state[frozenset({"w1", "w2"})] == frozenset({"anonymous_id:dev-1", "email:lea@example.fr"})


def test_the_merge_rules_still_hold(db: Database, settings: Settings) -> None:
    web = make_source(db, "web", "web")
    ingest(db, settings, web, [track("a", userId="u-1"), track("b", userId="u-2")])
    first, second = profile_of(db, settings, "user_id", "u-1"), profile_of(db, settings, "user_id", "u-2")
    with pytest.raises(Conflict, match="different user_id identifiers"):
        by_hand(db, settings, first, second)
    set_kind(db, "email", max_per_profile=2)
    ingest(db, settings, web, [
        track("c", anonymousId="d-1", context={"traits": {"email": ["x@example.fr", "z@example.fr"]}}),
        track("d", anonymousId="d-2", context={"traits": {"email": "y@example.fr"}}),
    ])  # fmt: skip
    third, fourth = (
        profile_of(db, settings, "anonymous_id", "d-1"),
        profile_of(db, settings, "anonymous_id", "d-2"),
    )
    with pytest.raises(Conflict, match="3 email identifiers, over the limit of 2"):
        by_hand(db, settings, third, fourth)
    with pytest.raises(Conflict, match="already one customer"):
        by_hand(db, settings, third, third)
    assert len(active_profiles(db)) == 4
    with db.read() as session:
        assert session.scalars(select(Merge)).all() == []


def test_a_hand_merge_overrules_an_earlier_unmerge(db: Database, settings: Settings) -> None:
    web = make_source(db, "web", "web")
    ingest(db, settings, web, [track("a", anonymousId="d-1"), track("b", userId="u-1"),
                               track("c", anonymousId="d-1", userId="u-1")])  # fmt: skip
    merged = profile_of(db, settings, "anonymous_id", "d-1")
    with db.write() as session:
        undone = identity.unmerge(session, merged)
    with db.read() as session:
        assert session.scalars(select(MergeBlock)).all() != []
    # Events no longer merge the pair; a person merging it by hand does, and lifts the block.
    ingest(db, settings, web, [track("d", anonymousId="d-1", userId="u-1")])
    assert len(active_profiles(db)) == 2
    done = by_hand(db, settings, undone.survivor_id, undone.merged_id)
    assert len(active_profiles(db)) == 1
    with db.read() as session:
        assert session.scalars(select(MergeBlock)).all() == []
    with db.write() as session:  # and it can be undone again, which keeps them apart again
        identity.unmerge(session, done["merged_id"])
    ingest(db, settings, web, [track("e", anonymousId="d-1", userId="u-1")])
    assert len(active_profiles(db)) == 2


def test_merge_api(api: Api) -> None:
    web, store = api.source("web", "web"), api.source("tills", "store")
    api.send(web, "/v1/identify", {"anonymousId": "dev-1", "traits": {"email": "lea@example.fr"}})
    api.send(store, "/v1/identify", {"userId": "till-7", "traits": {"phone": "06 12 34 56 78"}})
    target = api.get("/v1/profiles", identifier="email:lea@example.fr").json()["id"]
    other = api.get("/v1/profiles", identifier="phone:+33612345678").json()["id"]

    def post(profile_id: str, body: Any) -> Any:
        return api.client.post(f"/v1/profiles/{profile_id}/merge", json=body, headers=api.bearer)

    # Bad requests name what is wrong and merge nothing.
    cases = [
        ({}, 400, "give the other profile: profile_id or identifier"),
        ({"profile_id": other, "identifier": "phone:0612345678"}, 400, "not both"),
        ({"identifier": "phone"}, 400, "expected KIND:VALUE"),
        ({"identifier": "phone:0699999999"}, 404, "no profile"),
        ({"profile_id": "prf_nope"}, 404, "profile prf_nope not found"),
        ({"profile_id": other, "reason": "x" * 121}, 400, "reason"),
        ({"profile_id": other, "force": True}, 400, "force"),
        ({"profile_id": target}, 409, "already one customer"),
    ]
    for body, status, text in cases:
        response = post(target, body)
        assert response.status_code == status, (body, response.text)
        assert text in response.json()["error"]["message"] or text in response.text, (body, response.text)
    assert post("prf_nope", {"profile_id": other}).status_code == 404
    assert api.client.post(f"/v1/profiles/{target}/merge", json={"profile_id": other},
                           headers=api.basic(web)).status_code == 403  # fmt: skip
    assert len(active_profiles(api.db)) == 2

    # By identifier, in any reasonable form; the token's name is in the record.
    response = post(target, {"identifier": "phone:06 12 34 56 78", "reason": "called from the store"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rule"] == "merged by hand by API token tests: called from the store"
    assert body["survivor"]["id"] == target and body["merged_id"] == other
    assert api.get(f"/v1/profiles/{other}").json()["id"] == target
    undone = api.client.post(f"/v1/profiles/{target}/unmerge", json={"merge_id": body["merge_id"]},
                             headers=api.bearer)  # fmt: skip
    assert undone.status_code == 200, undone.text
    assert len(active_profiles(api.db)) == 2


def test_hand_merges_then_unmerges_equal_never_merged(db: Database, settings: Settings) -> None:
    """Random event sequences with hand merges of random pairs between batches: undoing every merge,
    latest first, gives exactly the world where nothing was ever merged."""

    @hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        events,
        st.lists(
            st.tuples(st.integers(0, 15), st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=3
        ),
    )
    def check(sequence: list[Any], hand: list[tuple[int, int, int]]) -> None:
        batches = batches_of(sequence)
        hand_merges: list[str] = []

        def world(allow_merges: bool) -> None:
            reset_database(db)
            source = make_source(db, "web", "web")
            for kind in ("email", "phone", "anonymous_id", "user_id"):
                set_kind(db, kind, max_per_profile=50)
            for position, batch in enumerate(batches):
                _run(db, settings, source, [batch], allow_merges=allow_merges)
                for after, a, b in hand:  # after the batch it names (any number names one), two others
                    profiles = sorted(active_profiles(db))
                    if allow_merges and after % len(batches) == position and len(profiles) > 1:
                        first = profiles[a % len(profiles)]
                        second = profiles[(a + 1 + b % (len(profiles) - 1)) % len(profiles)]
                        hand_merges.append(by_hand(db, settings, first, second)["merge_id"])

        world(allow_merges=False)
        never_merged = graph_state(db)
        world(allow_merges=True)
        event(
            "hand merges: " + ("none" if not hand_merges else "one" if len(hand_merges) == 1 else "several")
        )
        undo_every_merge(db)
        assert graph_state(db) == never_merged

    check()


def test_the_migration_marks_the_merges_an_earlier_release_made_without_an_event(
    db: Database, settings: Settings
) -> None:
    web_id, store_id = two_customers(db, settings)
    by_hand(db, settings, web_id, store_id)
    store = make_source(db, "tills-2", "store")
    ingest(db, settings, store, [{"type": "identify", "messageId": "s2", "userId": "till-7",
                                  "traits": {"email": "lea.pro@example.fr"}}])  # fmt: skip
    with db.read() as session:
        before_merge = session.scalar(select(Event.seq).where(Event.message_id == "s1"))
    downgrade(db.engine, "0015")  # as an earlier release left it: no mark on the merge
    upgrade(db.engine)
    with db.read() as session:
        (merge,) = session.scalars(select(Merge))
        assert merge.replay_after_seq == before_merge  # the last event received before the merge
    with db.write() as session:
        identity.unmerge(session, store_id)
    sides = {events: identifiers for events, identifiers, _ in graph_state(db)}
    assert "email:lea.pro@example.fr" in sides[frozenset({"s1", "s2"})]


def test_a_hand_merge_decides_the_pair_waiting_in_the_review_queue(db: Database, settings: Settings) -> None:
    web = make_source(db, "web", "web")
    likely = {"firstName": "Helene", "lastName": "Dupont", "birthday": "1984-03-07"}
    ingest(db, settings, web, [{"type": "identify", "messageId": "w1", "anonymousId": "d-1",
                                "traits": {**likely, "email": "a@example.fr"}}])  # fmt: skip
    ingest(db, settings, web, [{"type": "identify", "messageId": "w2", "userId": "u-9", "traits": likely}])
    with db.read() as session:
        (item,) = list_reviews(session, status="pending", limit=10)
    first, second = item["profile_ids"]
    done = by_hand(db, settings, first, second, reason="checked by phone")
    with db.read() as session:
        (decided,) = list_reviews(session, status=None, limit=10)
    assert decided["status"] == "accepted" and decided["merge_id"] == done["merge_id"]


def test_other_systems_follow_merges_and_unmerges(api: Api) -> None:
    web = api.source("web", "web")
    api.send(web, "/v1/batch", {"batch": [track("a", anonymousId="d-1"), track("b", userId="u-1"),
                                          track("c", anonymousId="d-1", userId="u-1"), track("d", userId="u-2")]})  # fmt: skip
    survivor = api.get("/v1/profiles", identifier="user_id:u-1").json()["id"]
    other = api.get("/v1/profiles", identifier="user_id:u-2").json()["id"]
    feed = api.get("/v1/identity/merges").json()
    assert feed["next_cursor"] is None
    (first_change,) = feed["data"]
    linking_event = [
        e for e in api.get(f"/v1/profiles/{survivor}/timeline").json()["data"] if e["message_id"] == "c"
    ]
    assert first_change["change"] == "merged" and first_change["rule"] == "shared identifier"
    assert first_change["survivor_id"] == survivor and first_change["event_id"] == linking_event[0]["id"]
    assert [first_change["merged_id"]] == api.get(f"/v1/profiles/{survivor}").json()["merged_from"]
    set_kind(api.db, "user_id", max_per_profile=2)
    by_hand_response = api.client.post(f"/v1/profiles/{other}/merge", json={"profile_id": survivor},
                                       headers=api.bearer)  # fmt: skip
    assert by_hand_response.status_code == 200, by_hand_response.text
    hand_id = by_hand_response.json()["merge_id"]
    assert api.client.post(f"/v1/profiles/{survivor}/unmerge", json={"merge_id": hand_id},
                           headers=api.bearer).status_code == 200  # fmt: skip

    # Page by page, oldest first: merged, merged (by hand), unmerged.
    seen: list[tuple[str, str]] = []
    page = api.get("/v1/identity/merges", limit=1).json()
    while True:
        seen += [(change["change"], change["merge_id"]) for change in page["data"]]
        if not page["next_cursor"]:
            break
        page = api.get("/v1/identity/merges", limit=1, cursor=page["next_cursor"]).json()
    assert seen == [("merged", first_change["merge_id"]), ("merged", hand_id), ("unmerged", hand_id)]
    later = api.get("/v1/identity/merges", since=first_change["at"]).json()["data"]
    assert [c["change"] for c in later] == ["merged", "merged", "unmerged"]  # since is inclusive
    assert api.get("/v1/identity/merges", since="2999-01-01T00:00:00Z").json()["data"] == []
    for params, text in (({"limit": 0}, "limit: must be between 1 and 1000"), ({"cursor": "nope"}, "cursor:"),
                         ({"since": "tomorrow"}, "since: 'tomorrow' is not an ISO-8601 date-time")):  # fmt: skip
        response = api.get("/v1/identity/merges", **params)
        assert response.status_code == 400 and text in response.json()["error"]["message"], response.text
