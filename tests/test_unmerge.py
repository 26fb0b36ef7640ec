"""Unmerge restores the exact prior state; property: merging then unmerging = never merging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select

from parcours.config import Settings
from parcours.db.engine import Database
from parcours.identity import service as identity
from parcours.identity.resolution import record_touchpoints
from parcours.ingest.parse import parse_message
from parcours.ingest.service import limits_from
from parcours.models import Event, Merge, MergeBlock
from tests.conftest import Api, reset_database
from tests.helpers import active_profiles, graph_state, ingest, make_source, profile_of, view


def msg(message_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Seen", "messageId": message_id, **fields}


def test_unmerge_restores_profiles_identifiers_events_and_traits(db: Database, settings: Settings) -> None:
    web, store = make_source(db, "web", "web"), make_source(db, "tills", "store")
    ingest(
        db,
        settings,
        web,
        [
            {
                "type": "identify",
                "messageId": "w1",
                "anonymousId": "a1",
                "timestamp": "2026-05-01T10:00:00Z",
                "traits": {"email": "lea@shop.fr", "city": "Lille"},
            }
        ],
    )
    ingest(
        db,
        settings,
        store,
        [
            msg(
                "s1",
                anonymousId="till",
                timestamp="2026-05-02T10:00:00Z",
                context={"traits": {"loyalty_card": "L1", "city": "Arras"}},
            )
        ],
    )
    before = graph_state(db)
    web_profile, store_profile = (
        profile_of(db, settings, "email", "lea@shop.fr"),
        profile_of(db, settings, "loyalty_card", "L1"),
    )
    before_views = {p: view(db, p) for p in (web_profile, store_profile)}

    ingest(
        db,
        settings,
        store,
        [
            msg(
                "s2",
                anonymousId="till2",
                timestamp="2026-05-03T10:00:00Z",
                context={"traits": {"loyalty_card": "L1", "email": "lea@shop.fr"}},
            )
        ],
    )
    assert len(active_profiles(db)) == 1
    assert view(db, web_profile)["traits"]["city"] == "Arras"

    with db.write() as session:
        merge = identity.unmerge(session, store_profile)
    assert (merge.survivor_id, merge.merged_id) == (web_profile, store_profile)
    after = graph_state(db)
    # The linking event goes to the profile of its highest-priority identifier (loyalty_card outranks
    # email: the store one), exactly where it would have gone had the merge been refused; the new
    # identifier it brought (till2) goes with it. Everything else is exactly as before the merge.
    [linked] = [state for state in after if "s2" in state[0]]
    assert linked[1] == {"anonymous_id:till", "anonymous_id:till2", "loyalty_card:L1"}
    assert {state for state in after if "s2" not in state[0]} == {s for s in before if "w1" in s[0]}
    restored = view(db, store_profile)
    assert restored["id"] == store_profile and "requested_id" not in restored
    assert restored["traits"] == {**before_views[store_profile]["traits"], "email": "lea@shop.fr"}
    now_web, was_web = view(db, web_profile), before_views[web_profile]
    assert now_web["traits"] == was_web["traits"] and now_web["channels"] == was_web["channels"]
    assert [(i["kind"], i["value"]) for i in now_web["identifiers"]] == [
        (i["kind"], i["value"]) for i in was_web["identifiers"]
    ]
    with db.read() as session:
        assert session.scalars(select(Merge)).one().undone_at is not None
        assert session.scalars(select(MergeBlock)).one().reason.startswith("unmerge")

    # Later events go to the right side, and the pair is never merged again automatically.
    ingest(
        db,
        settings,
        store,
        [
            msg("s3", anonymousId="till"),
            msg("s4", context={"traits": {"loyalty_card": "L1", "email": "lea@shop.fr"}}, anonymousId="x"),
        ],
    )
    with db.read() as session:
        placed = {m: p for m, p in session.execute(select(Event.message_id, Event.profile_id))}
    assert placed["s3"] == store_profile
    assert placed["s4"] == store_profile
    assert len(active_profiles(db)) == 2


def test_unmerge_is_exact_when_nothing_happened_since(db: Database, settings: Settings) -> None:
    web = make_source(db, "web", "web")
    ingest(db, settings, web, [msg("m1", anonymousId="a", context={"traits": {"phone": "0611223344"}})])
    ingest(db, settings, web, [msg("m2", userId="u", context={"traits": {"email": "u@shop.fr"}})])
    before = graph_state(db)
    ingest(db, settings, web, [msg("m3", userId="u", anonymousId="a")])
    with db.write() as session:
        identity.unmerge(session, profile_of(db, settings, "user_id", "u"))
    after = graph_state(db)
    # m3 sits on the user_id profile (user_id outranks anonymous_id); all else is as before.
    assert {(e - {"m3"}, i, t) for e, i, t in after} == before


def test_unmerge_api(api: Api) -> None:
    key = api.source("web", "web")
    api.send(
        key,
        "/v1/batch",
        {
            "batch": [
                msg("m1", anonymousId="a"),
                msg("m2", userId="u"),
                msg("m3", userId="u", anonymousId="a"),
            ]
        },
    )
    survivor = api.get("/v1/profiles", identifier="anonymous_id:a").json()
    assert len(survivor["merged_from"]) == 1
    merged_id = survivor["merged_from"][0]
    response = api.client.post(f"/v1/profiles/{merged_id}/unmerge", headers=api.bearer)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["restored"]["id"] == merged_id
    sides = {tuple(i["value"] for i in body[side]["identifiers"]) for side in ("restored", "survivor")}
    assert sides == {("a",), ("u",)}
    again = api.client.post(f"/v1/profiles/{merged_id}/unmerge", headers=api.bearer)
    assert again.status_code == 409
    assert api.client.post("/v1/profiles/prf_nope/unmerge", headers=api.bearer).status_code == 404


# ----------------------------------------------------------------------- property-based
EMAILS = [f"p{n}@shop.fr" for n in range(2)]
PHONES = [f"+3361234567{n}" for n in range(2)]
ANONYMOUS = [f"device-{n}" for n in range(3)]
USERS = [f"user-{n}" for n in range(2)]
BASE = datetime(2026, 1, 1, tzinfo=UTC)

one_identifier = st.one_of(
    st.tuples(st.just("email"), st.sampled_from(EMAILS)),
    st.tuples(st.just("phone"), st.sampled_from(PHONES)),
    st.tuples(st.just("anonymousId"), st.sampled_from(ANONYMOUS)),
    st.tuples(st.just("userId"), st.sampled_from(USERS)),
)


@st.composite
def identifier_sets(draw: st.DrawFn) -> list[tuple[str, str]]:
    """One identifier (creates or attaches) or two to three (links, and so merges) - about half each."""
    size = draw(st.sampled_from([1, 1, 2, 2, 3]))
    return draw(st.lists(one_identifier, min_size=size, max_size=size, unique_by=lambda pair: pair[0]))


events = st.lists(
    st.tuples(
        identifier_sets(), st.integers(0, 5), st.sampled_from(["Lyon", "Paris", "Lille"]), st.booleans()
    ),
    min_size=5,
    max_size=16,
)


def _message(n: int, identifiers: list[tuple[str, str]], day: int, city: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "identify",
        "messageId": f"m{n}",
        "timestamp": (BASE + timedelta(days=day)).isoformat(),
        "traits": {"city": city, "seen": n},
    }
    for field, value in identifiers:
        if field in ("userId", "anonymousId"):
            body[field] = value
        else:
            body["traits"][field] = value
    return body


def batches_of(sequence: list[tuple[list[tuple[str, str]], int, str, bool]]) -> list[list[dict[str, Any]]]:
    """The drawn events as messages, cut into batches where the draw says so."""
    batches: list[list[dict[str, Any]]] = [[]]
    for n, (identifiers, day, city, cut) in enumerate(sequence):
        batches[-1].append(_message(n, identifiers, day, city))
        if cut:
            batches.append([])
    return [batch for batch in batches if batch]


def undo_every_merge(db: Database) -> int:
    """Unmerge every merge, latest first; returns how many there were."""
    with db.read() as session:
        merges = list(session.scalars(select(Merge).order_by(Merge.created_at.desc(), Merge.id.desc())))
    for merge in merges:
        with db.write() as session:
            identity.unmerge(session, merge.merged_id, merge.id)
    return len(merges)


def _run(
    db: Database, settings: Settings, source: Any, batches: list[list[dict[str, Any]]], allow_merges: bool
) -> None:
    limits = limits_from(settings)
    for batch in batches:
        with db.write() as session:
            registry = identity.load_registry(session, settings.default_phone_region)
            now = datetime.now(UTC)
            touchpoints = [
                parse_message(
                    m,
                    expected_type=None,
                    source_id=source.id,
                    default_channel="web",
                    registry=registry,
                    received_at=now,
                    batch_sent_at=None,
                    limits=limits,
                )
                for m in batch
            ]
            record_touchpoints(session, registry, touchpoints, allow_merges=allow_merges)


def _reset(db: Database) -> None:
    reset_database(db)


def test_merge_then_unmerge_equals_never_merged(db: Database, settings: Settings) -> None:
    @hsettings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(events)
    def check(sequence: list[tuple[list[tuple[str, str]], int, str, bool]]) -> None:
        batches = batches_of(sequence)
        _reset(db)
        source = make_source(db, "web", "web")
        for kind in ("email", "phone", "anonymous_id", "user_id"):
            with db.write() as session:
                identity.update_kind(session, kind, max_per_profile=50)
        _run(db, settings, source, batches, allow_merges=False)
        never_merged = graph_state(db)

        _reset(db)
        source = make_source(db, "web", "web")
        for kind in ("email", "phone", "anonymous_id", "user_id"):
            with db.write() as session:
                identity.update_kind(session, kind, max_per_profile=50)
        _run(db, settings, source, batches, allow_merges=True)
        merges = undo_every_merge(db)
        event("merges: " + ("none" if not merges else "one" if merges == 1 else "several"))
        assert graph_state(db) == never_merged

    check()


def test_consent_recorded_through_the_api_follows_its_profile_through_merge_and_unmerge(
    db: Database, settings: Settings
) -> None:
    web = make_source(db, "web", "web")
    ingest(db, settings, web, [msg("m1", anonymousId="a"), msg("m2", userId="u")])
    anonymous, user = profile_of(db, settings, "anonymous_id", "a"), profile_of(db, settings, "user_id", "u")
    with db.write() as session:
        identity.set_consent(
            session, anonymous, channel="sms", purpose="marketing", granted=False, source="till"
        )
    ingest(db, settings, web, [msg("m3", userId="u", anonymousId="a")])
    [survivor] = active_profiles(db)
    assert [c["channel"] for c in view(db, survivor)["consent"]] == ["sms"]
    with db.write() as session:
        merge = identity.unmerge(session, survivor)
    restored = merge.merged_id
    assert {anonymous, user} == {survivor, restored}
    assert [c["channel"] for c in view(db, anonymous)["consent"]] == ["sms"]
    assert view(db, user)["consent"] == []
