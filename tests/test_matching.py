"""Probabilistic matching: the model on hard cases, batch linkage, real-time merge and the review queue."""

from __future__ import annotations

from typing import Any

import pytest

from parcours.config import Settings
from parcours.db.engine import Database
from parcours.identity import service as identity
from parcours.identity.resolution import GraphCache
from parcours.ingest.service import ingest_messages
from parcours.matching import MatchModel, PersonRecord, link_records
from parcours.matching.blocking import MAX_BLOCK
from parcours.matching.normalize import prepare
from parcours.matching.realtime import BlockingIndex, score, store_keys
from parcours.matching.review import accept_review, list_reviews, reject_review
from tests.conftest import Api
from tests.helpers import active_profiles, graph_state, ingest, make_source, profile_of

HELENE = PersonRecord("a", "Hélène", "Dupont", "1984-03-07", "12 rue des Lilas", "Lyon", "69003")


def probability(a: PersonRecord, b: PersonRecord) -> float:
    return score(MatchModel.default(), a, [b])[0].probability


@pytest.mark.parametrize(
    "other",
    [
        PersonRecord(
            "b", "Helene", "DUPONT", "07/03/1984", "12 rue des lilas", "LYON", "69003"
        ),  # accents, case
        PersonRecord(
            "b", "Helene", "Dupont", "1984-07-03", "12, rue des Lilas", "Lyon", "69003"
        ),  # day/month
        PersonRecord("b", "Hélène", "Dupond", "1984-03-07", "12 rue Lilas", "Lyon", "69003"),  # typo
        PersonRecord("b", "Dupont", "Hélène", "1984-03-07", "12 rue des Lilas", "Lyon", "69003"),  # swapped
    ],
)
def test_the_same_person_written_differently_matches(other: PersonRecord) -> None:
    assert probability(HELENE, other) >= 0.99


def test_nicknames_match() -> None:
    bob = PersonRecord("a", "Bob", "Smith", "19700102", "3 High Street", "Leeds", "LS1 4AP")
    robert = PersonRecord("b", "Robert", "Smith", "1970-01-02", "3 High St", "Leeds", "LS14AP")
    assert probability(bob, robert) >= 0.99


def test_an_email_domain_in_either_spelling_is_one_email() -> None:
    """As identity resolution has it: "café.fr" and its ASCII form "xn--caf-dma.fr" are one domain."""
    unicode_form = PersonRecord("a", "Jean", "Martin", email="Jean@Café.fr")
    ascii_form = PersonRecord("b", "Jean", "Martin", email="jean@XN--CAF-DMA.fr")
    assert prepare(unicode_form).email == prepare(ascii_form).email == "jean@café.fr"
    assert prepare(PersonRecord("c", email="not@xn--")).email == "not@xn--"  # not an address: as written


def test_different_people_do_not_match() -> None:
    other = PersonRecord("b", "Marc", "Durand", "1990-11-21", "4 avenue Foch", "Paris", "75016")
    assert probability(HELENE, other) < 0.01
    sister = PersonRecord("b", "Claire", "Dupont", "1987-05-30", "12 rue des Lilas", "Lyon", "69003")
    # A sister at the same address: at most a review item (0.8-0.99), never merged automatically.
    assert probability(HELENE, sister) < 0.99


def test_batch_linkage_clusters_the_same_people() -> None:
    records = [
        HELENE,
        PersonRecord("b", "Helene", "Dupont", "07/03/1984", "12 rue des lilas", "Lyon", "69003"),
        PersonRecord("c", "Bob", "Smith", "19700102", "3 High Street", "Leeds", "LS1 4AP"),
        PersonRecord("d", "Robert", "Smith", "1970-01-02", "3 High St", "Leeds", "LS14AP"),
        PersonRecord("e", "Marc", "Durand", "1990-11-21", "4 avenue Foch", "Paris", "75016"),
    ]
    linkage = link_records(records, train=False, threshold=0.9)
    assert linkage.clusters == {"a": "a", "b": "a", "c": "c", "d": "c", "e": "e"}
    with pytest.raises(ValueError, match="unique"):
        link_records([HELENE, HELENE])


# ------------------------------------------------------------------------------- real time
def person(message_id: str, identifiers: dict[str, Any], **traits: Any) -> dict[str, Any]:
    base = {"firstName": "Hélène", "lastName": "Dupont", "birthday": "1984-03-07",
            "address": {"street": "12 rue des Lilas", "city": "Lyon", "postalCode": "69003"}}  # fmt: skip
    body: dict[str, Any] = {"type": "identify", "messageId": message_id, "traits": {**base, **traits}}
    for field, value in identifiers.items():
        if field in ("userId", "anonymousId"):
            body[field] = value
        else:
            body["traits"][field] = value
    return body


def test_a_real_time_match_merges_and_can_be_undone(db: Database, settings: Settings) -> None:
    web, phone = make_source(db, "web", "web"), make_source(db, "calls", "phone")
    ingest(db, settings, web, [person("w1", {"email": "helene@example.fr"})])
    ingest(db, settings, phone, [person("p1", {"phone": "06 12 34 56 78"}, firstName="Helene")])
    assert len(active_profiles(db)) == 1
    merged = profile_of(db, settings, "phone", "+33612345678")
    assert merged == profile_of(db, settings, "email", "helene@example.fr")
    with db.write() as session:
        identity.unmerge(session, merged)
    assert len(active_profiles(db)) == 2
    # Kept apart from now on: a new event of either side does not merge them again.
    ingest(db, settings, phone, [person("p2", {"phone": "06 12 34 56 78"}, firstName="Hélène")])
    assert len(active_profiles(db)) == 2
    # Both sides are candidates again for anyone else: a third record of her is merged with one of them.
    ingest(db, settings, phone, [person("p3", {"loyalty_card": "CARD-77"})])
    assert len(active_profiles(db)) == 2


def test_two_different_user_ids_are_never_merged(db: Database, settings: Settings) -> None:
    web = make_source(db, "web", "web")
    ingest(db, settings, web, [person("w1", {"userId": "u-1"}), person("w2", {"userId": "u-2"})])
    assert len(active_profiles(db)) == 2
    with db.read() as session:
        assert list_reviews(session, status=None, limit=10) == []


def test_a_rejected_pair_is_never_proposed_again(db: Database, settings: Settings) -> None:
    web = make_source(db, "web", "web")
    # Same name and birth date, nothing else known on one side: likely, not certain -> a review item.
    ingest(db, settings, web, [person("w1", {"email": "a@example.fr"})])
    ingest(db, settings, web, [{"type": "identify", "messageId": "w2", "userId": "u-9",
                                "traits": {"firstName": "Helene", "lastName": "Dupont", "birthday": "1984-03-07"}}])  # fmt: skip
    with db.read() as session:
        pending = list_reviews(session, status="pending", limit=10)
    assert len(pending) == 1 and 0.8 <= pending[0]["probability"] < 0.99
    fields = {item["field"]: item["level"] for item in pending[0]["evidence"]}
    assert fields["given_name"] == "same name or nickname" or fields["given_name"] == "exact"
    assert fields["birth_date"] == "exact" and fields["street"] == "unknown"
    with db.write() as session:
        reject_review(session, pending[0]["id"])
    # The second profile's name changes and back: scored again, the pair is not proposed again.
    ingest(db, settings, web, [{"type": "identify", "messageId": "w3", "userId": "u-9",
                                "traits": {"firstName": "Hélène", "lastName": "Dupont", "birthday": "1984-03-07"}}])  # fmt: skip
    with db.read() as session:
        assert list_reviews(session, status="pending", limit=10) == []
        assert len(list_reviews(session, status="rejected", limit=10)) == 1
    assert len(active_profiles(db)) == 2


def test_accepting_a_review_merges_through_the_core(db: Database, settings: Settings) -> None:
    web = make_source(db, "web", "web")
    ingest(db, settings, web, [person("w1", {"email": "a@example.fr"})])
    ingest(db, settings, web, [{"type": "identify", "messageId": "w2", "userId": "u-9",
                                "traits": {"firstName": "Helene", "lastName": "Dupont", "birthday": "1984-03-07"}}])  # fmt: skip
    with db.read() as session:
        (item,) = list_reviews(session, status="pending", limit=10)
    with db.write() as session:
        registry = identity.load_registry(session, settings.default_phone_region)
        accepted = accept_review(session, registry, item["id"])
    assert accepted["status"] == "accepted" and accepted["merge_id"]
    assert len(active_profiles(db)) == 1
    with db.write() as session:
        identity.unmerge(session, profile_of(db, settings, "user_id", "u-9"))
    assert len(active_profiles(db)) == 2


def test_review_queue_api(api: Api) -> None:
    web = api.source("web", "web")
    likely = {"firstName": "Helene", "lastName": "Dupont", "birthday": "1984-03-07"}
    batch = [
        person("w1", {"email": "a@example.fr"}),
        {"type": "identify", "messageId": "w2", "userId": "u-9", "traits": likely},
        person("w3", {"email": "c@example.fr"}, firstName="Claire", lastName="Martin", birthday="1990-01-02"),
        {"type": "identify", "messageId": "w4", "userId": "u-10",
         "traits": {"firstName": "Claire", "lastName": "Martin", "birthday": "1990-01-02"}},
    ]  # fmt: skip
    assert api.send(web, "/v1/batch", {"batch": batch}).status_code == 200
    response = api.get("/v1/identity/matches")
    assert response.status_code == 200
    items = response.json()["data"]
    assert len(items) == 2 and all(0.8 <= item["probability"] < 0.99 for item in items)
    assert {e["field"] for e in items[0]["evidence"]} >= {"given_name", "surname", "birth_date"}
    # Write keys cannot read the queue; unknown ids and second decisions are refused clearly.
    assert api.client.get("/v1/identity/matches", headers=api.basic(web)).status_code == 403
    assert api.client.post("/v1/identity/matches/mrv_nope/accept", headers=api.bearer).status_code == 404
    assert api.get("/v1/identity/matches", status="maybe").status_code == 400

    accepted = api.client.post(f"/v1/identity/matches/{items[0]['id']}/accept", headers=api.bearer)
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    rejected = api.client.post(f"/v1/identity/matches/{items[1]['id']}/reject", headers=api.bearer)
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    again = api.client.post(f"/v1/identity/matches/{items[1]['id']}/accept", headers=api.bearer)
    assert again.status_code == 409 and "already rejected" in again.json()["error"]["message"]
    assert api.get("/v1/identity/matches").json()["data"] == []
    assert len(active_profiles(api.db)) == 3
    merged = api.get("/v1/profiles", identifier="user_id:u-9").json()
    assert {i["kind"] for i in merged["identifiers"]} >= {"email", "user_id"}


def test_a_review_of_a_profile_merged_away_is_superseded(db: Database, settings: Settings) -> None:
    web = make_source(db, "web", "web")
    ingest(db, settings, web, [person("w1", {"email": "a@example.fr"})])
    ingest(db, settings, web, [{"type": "identify", "messageId": "w2", "anonymousId": "device-9",
                                "traits": {"firstName": "Helene", "lastName": "Dupont", "birthday": "1984-03-07"}}])  # fmt: skip
    with db.read() as session:
        assert len(list_reviews(session, status="pending", limit=10)) == 1
    # The device signs in with the e-mail: the identifiers merge the pair; the review has nothing left to ask.
    ingest(db, settings, web, [{"type": "identify", "messageId": "w3", "anonymousId": "device-9",
                                "traits": {"email": "a@example.fr"}}])  # fmt: skip
    assert len(active_profiles(db)) == 1
    with db.read() as session:
        assert list_reviews(session, status="pending", limit=10) == []
        (item,) = list_reviews(session, status="superseded", limit=10)
    assert item["current_profile_ids"][0] == item["current_profile_ids"][1]


def test_the_blocking_index_overlays_what_its_writer_decided(db: Database) -> None:
    with db.write() as session:
        crowd = {f"c{n}": ["common"] for n in range(MAX_BLOCK + 1)}
        store_keys(session, {"p1": ["k1", "k2"], "p2": ["k1"], **crowd})
        index = BlockingIndex()
        index.load(session, {"k1", "k2", "common"})
    assert index.candidates("x", ["k1", "k2"]) == ["p1", "p2"]  # most keys shared first
    assert index.candidates("x", ["common"]) == []  # held by too many to tell anyone apart
    index.set_keys("p1", ["k3"])  # p1's traits changed: it no longer holds k1 or k2
    index.set_keys("p3", ["k1", "k2"])
    index.set_keys("p2", [])  # merged away
    assert index.candidates("x", ["k1", "k2"]) == ["p3"]
    assert index.candidates("p3", ["k1", "k2"]) == []  # never its own candidate


def test_a_warm_writer_proposes_what_a_cold_one_would(db: Database, settings: Settings) -> None:
    """One graph cache across batches (as the server keeps it): the blocking keys it holds in memory,
    with a profile's keys changed twice in between, find the pair that reading them from the database
    finds."""
    web = make_source(db, "web", "web")
    cache = GraphCache()

    def send(message: dict[str, Any]) -> None:
        with db.write() as session:
            result = ingest_messages(session, settings, web, [message], expected_type=None, cache=cache)
        assert not result.errors

    paul, helene = {"firstName": "Paul", "lastName": "Martin"}, {"firstName": "Helene", "lastName": "Dupont"}
    send({"type": "identify", "messageId": "w0", "userId": "u-5", "traits": paul})
    send(person("w1", {"email": "a@example.fr"}))  # Hélène Dupont, born 1984-03-07, in Lyon
    # u-5 was Paul Martin: now he says his name is Hélène Dupont, then goes back to his own name.
    send({"type": "identify", "messageId": "w2", "userId": "u-5", "traits": helene})
    send({"type": "identify", "messageId": "w3", "userId": "u-5", "traits": paul})
    send({"type": "identify", "messageId": "w4", "userId": "u-9",
          "traits": {"firstName": "Helene", "lastName": "Dupont", "birthday": "1984-03-07"}})  # fmt: skip
    with db.read() as session:
        pending = list_reviews(session, status="pending", limit=10)
        u9 = identity.find_profile_id(session, identity.load_registry(session, "FR"), "user_id", "u-9")
    # Only u-9 and the first Hélène make a likely pair; u-5 (Paul Martin again) is no candidate of u-9.
    assert [sorted(item["current_profile_ids"]) for item in pending if u9 in item["current_profile_ids"]] == [
        sorted([u9, profile_of(db, settings, "email", "a@example.fr")])
    ]


def test_events_after_a_probabilistic_merge_go_back_to_their_side(db: Database, settings: Settings) -> None:
    """A merge no event caused: unmerge still sends what came after it to the side it belongs to."""
    web, phone = make_source(db, "web", "web"), make_source(db, "calls", "phone")
    ingest(db, settings, web, [person("w1", {"email": "helene@example.fr"})])
    ingest(db, settings, phone, [person("p1", {"phone": "06 12 34 56 78"}, firstName="Helene")])
    assert len(active_profiles(db)) == 1
    later = {"type": "track", "event": "Called", "messageId": "p2",
             "context": {"traits": {"phone": "0612345678", "loyalty_card": "44556677"}}}  # fmt: skip
    ingest(db, settings, phone, [later])
    with db.write() as session:
        identity.unmerge(session, profile_of(db, settings, "phone", "+33612345678"))
    sides = {events: identifiers for events, identifiers, _ in graph_state(db)}
    assert sides[frozenset({"p1", "p2"})] == frozenset({"phone:+33612345678", "loyalty_card:44556677"})
    assert sides[frozenset({"w1"})] == frozenset({"email:helene@example.fr"})
