"""The unified view over HTTP: lookup, timeline, consent, export and erasure."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select

from parcours.db import engine
from parcours.db.base import Base
from parcours.errors import NotFound
from parcours.identity import service
from tests.conftest import Api

T = TypeVar("T")


def _journey(api: Api) -> tuple[str, str]:
    web, store, phone = api.source("web", "web"), api.source("tills", "store"), api.source("calls", "phone")
    batch: list[dict[str, Any]] = [
        {
            "type": "identify",
            "messageId": "w1",
            "userId": "u-1",
            "timestamp": "2026-02-01T09:00:00Z",
            "traits": {"email": "ines@shop.fr", "phone": "+33 6 98 76 54 32", "firstName": "Inès"},
            "context": {"consent": {"categoryPreferences": {"marketing": True, "analytics": False}}},
        },
    ]
    batch += [
        {
            "type": "page",
            "messageId": f"w-page-{n}",
            "userId": "u-1",
            "name": f"Page {n}",
            "timestamp": f"2026-02-01T09:{10 + n:02d}:00Z",
        }
        for n in range(6)
    ]
    assert api.send(web, "/v1/batch", {"batch": batch}).status_code == 200
    api.send(
        store,
        "/v1/track",
        {
            "messageId": "s0",
            "anonymousId": "till-1",
            "event": "Store Visited",
            "timestamp": "2026-02-03T14:00:00Z",
        },
    )
    api.send(
        store,
        "/v1/track",
        {
            "messageId": "s1",
            "anonymousId": "till-1",
            "event": "Order Completed",
            "timestamp": "2026-02-03T15:00:00Z",
            "context": {
                "traits": {"email": "ines@shop.fr"},
                "consent": {"channels": {"sms": {"marketing": False}}},
            },
        },
    )
    api.send(
        phone,
        "/v1/track",
        {
            "messageId": "p1",
            "anonymousId": "call-1",
            "event": "Call Logged",
            "timestamp": "2026-02-02T11:00:00Z",
            "context": {"externalIds": [{"id": "0698765432", "type": "phone"}]},
        },
    )
    profile = api.get("/v1/profiles", identifier="user_id:u-1").json()
    return profile["id"], web


@pytest.mark.parametrize(
    "typed",
    [
        "phone:06 98 76 54 32",
        "phone:+33698765432",
        "phone:0033 698-765-432",
        "email:INES@shop.fr",
        "email: ines@shop.fr ",
    ],
)
def test_lookup_by_any_reasonable_form(api: Api, typed: str) -> None:
    profile_id, _ = _journey(api)
    response = api.get("/v1/profiles", identifier=typed)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == profile_id


def test_lookup_errors(api: Api) -> None:
    _journey(api)
    assert api.get("/v1/profiles", identifier="phone:12").status_code == 400
    assert "unknown kind" in api.get("/v1/profiles", identifier="shoe_size:42").json()["error"]["message"]
    assert api.get("/v1/profiles", identifier="nocolon").status_code == 400
    assert api.get("/v1/profiles", identifier="email:nobody@shop.fr").status_code == 404
    assert api.get("/v1/profiles/prf_unknown").status_code == 404
    assert api.client.get("/v1/profiles/prf_unknown").status_code == 401
    assert api.client.get("/v1/profiles/x", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_view_has_channels_with_first_last_seen_and_counts(api: Api) -> None:
    profile_id, _ = _journey(api)
    view = api.get(f"/v1/profiles/{profile_id}").json()
    assert view["channels"] == [
        {
            "channel": "web",
            "first_seen_at": "2026-02-01T09:00:00Z",
            "last_seen_at": "2026-02-01T09:15:00Z",
            "events": 7,
        },
        {
            "channel": "phone",
            "first_seen_at": "2026-02-02T11:00:00Z",
            "last_seen_at": "2026-02-02T11:00:00Z",
            "events": 1,
        },
        {
            "channel": "store",
            "first_seen_at": "2026-02-03T14:00:00Z",
            "last_seen_at": "2026-02-03T15:00:00Z",
            "events": 2,
        },
    ]
    consent = {(c["channel"], c["purpose"]): c["granted"] for c in view["consent"]}
    assert consent == {("*", "marketing"): True, ("*", "analytics"): False, ("sms", "marketing"): False}


def test_timeline_is_ordered_paginated_and_filterable(api: Api) -> None:
    profile_id, _ = _journey(api)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        page = api.get(f"/v1/profiles/{profile_id}/timeline", **params).json()
        seen += [e["message_id"] for e in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["w1", *[f"w-page-{n}" for n in range(6)], "p1", "s0", "s1"]
    only = api.get(f"/v1/profiles/{profile_id}/timeline", channel="store,phone").json()["data"]
    assert [e["channel"] for e in only] == ["phone", "store", "store"]
    pages = api.get(f"/v1/profiles/{profile_id}/timeline", type="page").json()["data"]
    assert len(pages) == 6
    assert api.get(f"/v1/profiles/{profile_id}/timeline", channel="fax").status_code == 400
    assert api.get(f"/v1/profiles/{profile_id}/timeline", limit=0).status_code == 400
    assert api.get(f"/v1/profiles/{profile_id}/timeline", cursor="garbage!").status_code == 400


def _pages(api: Api, profile_id: str, **params: Any) -> list[str]:
    """Every message id of the timeline, page by page (4 a page), following next_cursor alone."""
    seen: list[str] = []
    page = api.get(f"/v1/profiles/{profile_id}/timeline", limit=4, **params).json()
    while True:
        seen += [e["message_id"] for e in page["data"]]
        if not page["next_cursor"]:
            return seen
        page = api.get(f"/v1/profiles/{profile_id}/timeline", limit=4, cursor=page["next_cursor"]).json()


def test_timeline_newest_first_and_between_two_times(api: Api) -> None:
    profile_id, _ = _journey(api)
    oldest_first = ["w1", *[f"w-page-{n}" for n in range(6)], "p1", "s0", "s1"]
    assert _pages(api, profile_id, order="desc") == oldest_first[::-1]  # the cursor keeps the order
    assert _pages(api, profile_id, order="asc") == oldest_first
    first = api.get(f"/v1/profiles/{profile_id}/timeline", order="desc", limit=1).json()
    assert first["order"] == "desc" and [e["message_id"] for e in first["data"]] == ["s1"]
    # since is inclusive, until exclusive; an offset is honoured, no offset means UTC.
    window = {"since": "2026-02-01T09:12:00Z", "until": "2026-02-01T10:15:00+01:00"}
    assert _pages(api, profile_id, **window) == ["w-page-2", "w-page-3", "w-page-4"]
    assert _pages(api, profile_id, order="desc", since="2026-02-03T14:00:00") == ["s1", "s0"]
    assert _pages(api, profile_id, until="2026-02-01T09:00:00Z") == []

    def refused(**params: Any) -> str:
        response = api.get(f"/v1/profiles/{profile_id}/timeline", **params)
        assert response.status_code == 400, response.text
        return str(response.json()["error"]["message"])

    assert refused(order="newest") == "order: 'newest' is not asc (oldest first) or desc (newest first)"
    assert refused(since="yesterday") == "since: 'yesterday' is not an ISO-8601 date-time"
    assert (
        refused(since="2026-02-02T00:00:00Z", until="2026-02-01T00:00:00Z")
        == "until: must be later than since"
    )
    desc_cursor = api.get(f"/v1/profiles/{profile_id}/timeline", order="desc", limit=2).json()["next_cursor"]
    assert (
        refused(cursor=desc_cursor, order="asc")
        == "cursor: it pages the timeline in the other order than order=asc"
    )


def test_consent_by_api(api: Api) -> None:
    profile_id, _ = _journey(api)
    url = f"/v1/profiles/{profile_id}/consent"
    response = api.client.put(
        url,
        headers=api.bearer,
        json={"channel": "email", "purpose": "marketing", "granted": False, "source": "store associate"},
    )
    assert response.status_code == 200, response.text
    consent = {(c["channel"], c["purpose"]): c for c in response.json()["consent"]}
    assert consent[("email", "marketing")]["granted"] is False
    assert consent[("email", "marketing")]["source"] == "store associate"
    bad = api.client.put(
        url, headers=api.bearer, json={"channel": "pigeon", "purpose": "marketing", "granted": True}
    )
    assert bad.status_code == 400 and "channel" in bad.json()["error"]["message"]
    bad = api.client.put(
        url, headers=api.bearer, json={"channel": "email", "purpose": "Mark eting!", "granted": "yes"}
    )
    assert bad.status_code == 400
    assert api.client.put(url, headers=api.basic("wk"), json={}).status_code == 403


def test_an_event_reads_back_whole_in_the_timeline_and_the_export(api: Api) -> None:
    web = api.source("web", "web")
    event = {
        "type": "track",
        "event": "Order Completed",
        "messageId": "full-1",
        "userId": "u-full",
        "anonymousId": "d-full",
        "timestamp": "2026-03-02T09:15:00.250Z",
        "properties": {"total": 59.9, "items": [{"sku": "A-1", "quantity": 2}]},
        "context": {"channel": "app", "traits": {"email": "full@example.fr"}, "locale": "fr-FR"},
    }
    assert api.send(web, "/v1/track", event).status_code == 200
    profile_id = api.get("/v1/profiles", identifier="user_id:u-full").json()["id"]
    (shown,) = api.get(f"/v1/profiles/{profile_id}/timeline").json()["data"]
    assert shown["id"].startswith("evt_") and shown["source_id"].startswith("src_")
    assert shown["received_at"].endswith("Z")
    assert {key: value for key, value in shown.items() if key not in ("id", "source_id", "received_at")} == {
        "type": "track",
        "name": "Order Completed",
        "channel": "app",
        "timestamp": "2026-03-02T09:15:00.250000Z",
        "message_id": "full-1",
        "user_id": "u-full",
        "anonymous_id": "d-full",
        "identifiers": ["user_id:u-full", "email:full@example.fr", "anonymous_id:d-full"],
        "traits": {"email": "full@example.fr"},
        "properties": {"total": 59.9, "items": [{"sku": "A-1", "quantity": 2}]},
        "context": {"channel": "app", "traits": {"email": "full@example.fr"}, "locale": "fr-FR"},
    }
    assert api.get(f"/v1/profiles/{profile_id}/export").json()["events"] == [shown]


def test_export_holds_everything(api: Api) -> None:
    profile_id, _ = _journey(api)
    export = api.get(f"/v1/profiles/{profile_id}/export").json()
    assert export["profile"]["id"] == profile_id
    assert {e["message_id"] for e in export["events"]} == {
        "w1",
        "p1",
        "s0",
        "s1",
        *[f"w-page-{n}" for n in range(6)],
    }
    assert len(export["consent_history"]) == 3
    [merge] = export["merges"]  # the store visit's profile was merged in by the order's email
    assert merge["survivor_id"] == profile_id and merge["linking_identifiers"] == [
        "email:ines@shop.fr",
        "anonymous_id:till-1",
    ]
    assert export["profile_ids"] == [profile_id, merge["merged_id"]]


def _rows_mentioning(api: Api, needles: list[str]) -> list[str]:
    """Tables whose rows still contain any of the needles (as text)."""
    found = []
    with api.db.read() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(table.select()):
                text = str(tuple(row))
                if any(needle in text for needle in needles):
                    found.append(table.name)
    return found


def test_erasure_removes_the_person_everywhere_and_replays_do_not_bring_them_back(api: Api) -> None:
    profile_id, web = _journey(api)
    export = api.get(f"/v1/profiles/{profile_id}/export").json()
    all_ids = export["profile_ids"]
    response = api.client.delete(f"/v1/profiles/{profile_id}", headers=api.bearer)
    assert response.status_code == 200, response.text
    assert response.json()["events"] == 10
    assert _rows_mentioning(api, ["ines@shop.fr", "+33698765432", "u-1", "Inès", *all_ids]) == []
    for pid in all_ids:
        assert api.get(f"/v1/profiles/{pid}").status_code == 404

    # A replay of an old event is dropped; nothing comes back.
    replay = {
        "type": "identify",
        "messageId": "w1",
        "userId": "u-1",
        "timestamp": "2026-02-01T09:00:00Z",
        "traits": {"email": "ines@shop.fr"},
    }
    body = api.send(web, "/v1/identify", replay).json()
    assert body["dropped_erased"] == 1
    assert api.get("/v1/profiles", identifier="email:ines@shop.fr").status_code == 404
    with api.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Base.metadata.tables["profiles"])) == 0

    # The person coming back later (a new event) is a new customer.
    fresh = {"type": "identify", "messageId": "w-new", "userId": "u-1", "traits": {"email": "ines@shop.fr"}}
    assert api.send(web, "/v1/identify", fresh).json()["recorded"] == 1
    assert api.get("/v1/profiles", identifier="email:ines@shop.fr").status_code == 200


def test_view_says_when_the_customer_was_first_and_last_seen(api: Api) -> None:
    profile_id, _ = _journey(api)
    view = api.get(f"/v1/profiles/{profile_id}").json()
    assert (view["first_seen_at"], view["last_seen_at"]) == ("2026-02-01T09:00:00Z", "2026-02-03T15:00:00Z")


def test_conflicts_are_listed_and_can_be_dismissed(api: Api) -> None:
    key = api.source("web", "web")
    batch = [
        {"type": "identify", "messageId": "c1", "userId": "u1", "traits": {"email": "shared@shop.fr"}},
        {"type": "identify", "messageId": "c2", "userId": "u2", "traits": {"phone": "0611111111"}},
        {
            "type": "track",
            "messageId": "c3",
            "event": "x",
            "userId": "u2",
            "context": {"traits": {"email": "shared@shop.fr"}},
        },
    ]
    assert api.send(key, "/v1/batch", {"batch": batch}).status_code == 200
    [conflict] = api.get("/v1/identity/conflicts").json()["data"]
    assert conflict["rule"] == "limit user_id: 1 per profile" and conflict["status"] == "open"
    url = f"/v1/identity/conflicts/{conflict['id']}"
    done = api.client.patch(url, headers=api.bearer, json={"status": "dismissed"})
    assert done.status_code == 200 and done.json()["status"] == "dismissed"
    assert api.get("/v1/identity/conflicts").json()["data"] == []
    assert len(api.get("/v1/identity/conflicts", status="dismissed").json()["data"]) == 1
    assert api.client.patch(url, headers=api.bearer, json={"status": "merged"}).status_code == 400
    unknown = api.get("/v1/identity/conflicts", status="closed")  # a typo used to list nothing, silently
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == "status: 'closed' must be one of open, dismissed, merged"
    assert len(api.get("/v1/identity/conflicts", status="").json()["data"]) == 1  # empty: every status
    assert (
        api.client.patch(
            "/v1/identity/conflicts/cfl_x", headers=api.bearer, json={"status": "open"}
        ).status_code
        == 404
    )


def test_short_reads_run_on_the_event_loop_on_sqlite_and_in_a_worker_thread_on_postgresql(api: Api) -> None:
    """``Database.short_read`` (the profile view, the timeline, look-ups): on SQLite the statements take
    less time than a hop to a worker thread and back, so they run on the loop; on PostgreSQL each one
    waits for a round trip, which must not stall the loop."""
    profile_id, _ = _journey(api)

    async def read() -> tuple[int, int, str]:
        def work(session: Any) -> tuple[int, str]:
            profiles = Base.metadata.tables["profiles"]
            return threading.get_ident(), session.scalar(
                select(profiles.c.id).where(profiles.c.id == profile_id)
            )

        ident, found = await api.db.short_read(work)
        return threading.get_ident(), ident, found

    loop_thread, read_thread, found = on_a_fresh_loop(read())
    assert found == profile_id
    assert (read_thread == loop_thread) == (api.db.dialect == "sqlite"), api.db.dialect

    # An error inside the read reaches the caller as itself, on both backends.
    async def failing() -> None:
        await api.db.short_read(lambda session: service.profile_view(session, "prf_nobody"))

    with pytest.raises(NotFound, match="prf_nobody"):
        on_a_fresh_loop(failing())


def test_a_short_read_that_turns_out_long_is_done_again_in_a_worker_thread(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a short read runs on the event loop only while it stays short: past the budget of SQLite
    instructions its statement is interrupted and the read done again in the thread pool, so that a
    profile of 50,000 events does not stall every other request. Its result is the same."""
    web = api.source("web", "web")
    batch = [
        {"type": "track", "event": "Seen", "messageId": f"m{n}", "anonymousId": "busy"} for n in range(300)
    ]
    assert api.send(web, "/v1/batch", {"batch": batch}).status_code == 200
    busy = api.get("/v1/profiles", identifier="anonymous_id:busy").json()
    assert busy["channels"][0]["events"] == 300
    monkeypatch.setattr(engine, "LOOP_READ_BUDGET", 3_000)  # the 300 events' summary takes more

    async def read(profile_id: str) -> tuple[int, list[int], dict[str, Any]]:
        threads: list[int] = []

        def work(session: Any) -> dict[str, Any]:
            threads.append(threading.get_ident())
            return service.profile_view(session, profile_id)

        found = await api.db.short_read(work)
        return threading.get_ident(), threads, found

    loop_thread, threads, found = on_a_fresh_loop(read(busy["id"]))
    assert found == busy
    if api.db.dialect == "sqlite":
        assert threads[0] == loop_thread and len(threads) == 2 and threads[1] != loop_thread
    else:
        assert len(threads) == 1 and threads[0] != loop_thread
    # A read within the budget stays on the loop, and nothing is left set on the connections: a long
    # read outside ``short_read`` runs to its end.
    monkeypatch.setattr(engine, "LOOP_READ_BUDGET", 100_000)
    loop_thread, threads, found = on_a_fresh_loop(read(busy["id"]))
    assert found == busy and (threads == [loop_thread]) == (api.db.dialect == "sqlite")
    monkeypatch.setattr(engine, "LOOP_READ_BUDGET", 3_000)
    for _ in range(3):
        with api.db.read() as session:
            assert service.profile_view(session, busy["id"]) == busy


def on_a_fresh_loop(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` on an event loop of its own, in a thread of its own (this thread may already run one:
    Playwright's sync API leaves one behind)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()
