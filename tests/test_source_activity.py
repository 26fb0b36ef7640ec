"""What each source sends: per UTC day the events received and what became of them, when the last one
came, and the latest refused events with the reason, through the API and the admin console; refused
events are kept only for a while and a hundred per source."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from parcours.db.migrate import downgrade, upgrade
from parcours.db.types import utcnow
from parcours.ingest.activity import KEEP_REJECTIONS, RequestActivity, record_activity
from parcours.inputs import iso_z
from parcours.models import Event, Source, SourceRejection
from tests.conftest import Api
from tests.console_helpers import signed_in


def track(message_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Seen", "messageId": message_id, "anonymousId": "d-1", **fields}


def source_id(api: Api, name: str) -> str:
    with api.db.read() as session:
        found = session.scalar(select(Source.id).where(Source.name == name))
    assert found is not None
    return found


def activity(api: Api, source: str, **params: Any) -> Any:
    response = api.get(f"/v1/sources/{source}/activity", **params)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_sources_days_count_what_became_of_its_events_and_keep_the_refused(api: Api) -> None:
    key = api.source("web shop", "web")
    quiet = source_id(api, "web shop")
    api.source("tills", "store")
    batch = [
        track("a"),
        {"type": "track", "messageId": "no-event", "anonymousId": "d-1"},  # no event name
        track("b"),
        {"type": "identify", "messageId": "no-id", "traits": {"name": "Ana"}},  # nobody to attach it to
        track("c"),
    ]
    assert api.send(key, "/v1/batch", {"batch": batch}).json()["recorded"] == 3
    assert api.send(key, "/v1/batch", {"batch": batch}).json()["duplicates"] == 3  # an SDK retrying
    refused = api.send(
        key, "/v1/track", {"event": "Seen", "anonymousId": "d-1", "timestamp": "3000-01-01T00:00:00Z"}
    )
    assert refused.status_code == 400  # the only event refused: the request is too, and still counted

    found = activity(api, quiet)
    assert found["source"] == {"id": quiet, "name": "web shop", "channel": "web"}
    assert found["last_received_at"] is not None
    today, *earlier = found["days"]
    assert len(earlier) == 13 and all(day["received"] == 0 for day in earlier)
    assert today["day"] == utcnow().date().isoformat()
    assert {k: today[k] for k in ("received", "recorded", "duplicates", "erased", "invalid")} == {
        "received": 11, "recorded": 3, "duplicates": 3, "erased": 0, "invalid": 5,
    }  # fmt: skip
    latest, *rest = found["rejections"]
    assert latest["endpoint"] == "track" and latest["position"] == 0 and latest["message_id"] is None
    assert "timestamp: 3000-01-01" in latest["error"] and "in the future" in latest["error"]
    assert [(r["endpoint"], r["position"], r["message_id"], r["type"]) for r in rest] == [
        ("batch", 3, "no-id", "identify"), ("batch", 1, "no-event", "track"),
        ("batch", 3, "no-id", "identify"), ("batch", 1, "no-event", "track"),
    ]  # fmt: skip
    assert rest[1]["error"] == "event: is required"
    assert len(activity(api, quiet, days=1)["days"]) == 1

    listed = {s["name"]: s for s in api.get("/v1/sources").json()["data"]}
    assert listed["web shop"]["recorded_since_yesterday"] == 3
    assert listed["web shop"]["invalid_since_yesterday"] == 5
    assert listed["tills"]["last_received_at"] is None and listed["tills"]["recorded_since_yesterday"] == 0


def test_events_of_an_erased_person_are_counted_as_dropped(api: Api) -> None:
    key = api.source("web", "web")
    event = {
        "messageId": "m1",
        "userId": "u-1",
        "timestamp": "2026-01-01T10:00:00Z",
        "traits": {"email": "ines@shop.fr"},
    }
    api.send(key, "/v1/identify", event)
    profile = api.get("/v1/profiles", identifier="email:ines@shop.fr").json()["id"]
    assert api.client.delete(f"/v1/profiles/{profile}", headers=api.bearer).status_code == 200
    assert api.send(key, "/v1/identify", event).json()["dropped_erased"] == 1  # replayed: not brought back
    (today, *_) = activity(api, source_id(api, "web"))["days"]
    assert (today["received"], today["recorded"], today["erased"]) == (2, 1, 1)


def test_bad_requests_for_activity_name_what_is_wrong(api: Api) -> None:
    key = api.source("web", "web")
    source = source_id(api, "web")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"days": 0}, "days: must be between 1 and 90"), ({"days": 91}, "days: must be between"), ({"days": "x"}, "days"),
    ]  # fmt: skip
    for params, text in cases:
        response = api.get(f"/v1/sources/{source}/activity", **params)
        assert response.status_code == 400 and text in response.text, (params, response.text)
    assert api.get("/v1/sources/src_nope/activity").status_code == 404
    assert api.client.get(f"/v1/sources/{source}/activity", headers=api.basic(key)).status_code == 403
    assert api.client.get("/v1/sources").status_code == 401


def test_refused_events_are_kept_a_hundred_a_source_and_a_week(api: Api) -> None:
    api.source("web", "web")
    api.source("app", "app")
    web, app = source_id(api, "web"), source_id(api, "app")
    now = utcnow()

    def refuse(source: str, count: int, at: Any) -> None:
        rejections = [{"position": n, "message_id": f"m{n}", "type": "track", "error": "event: is required"}
                      for n in range(count)]  # fmt: skip
        with api.db.write() as session:
            record_activity(
                session, [RequestActivity(source, "batch", at, received=count, rejections=rejections)]
            )

    with api.db.write() as session:  # kept from a week ago: dropped when the app next has one refused
        session.add_all(
            SourceRejection(source_id=app, received_at=now - timedelta(days=8), endpoint="track", position=0,
                            message_id=None, type="track", error="event: is required")
            for _ in range(3)
        )  # fmt: skip
    refuse(web, 60, now)
    refuse(web, 60, now)
    with api.db.read() as session:
        kept = dict(
            session.execute(
                select(SourceRejection.source_id, func.count()).group_by(SourceRejection.source_id)
            ).all()
        )
    assert kept == {web: KEEP_REJECTIONS, app: 3}  # the latest hundred; the app's not pruned yet
    assert activity(api, app)["rejections"] == []  # but no longer shown
    refuse(app, 1, now)
    with api.db.read() as session:
        count = session.scalar(
            select(func.count()).select_from(SourceRejection).where(SourceRejection.source_id == app)
        )
    assert count == 1
    shown = activity(api, web)["rejections"]
    assert len(shown) == KEEP_REJECTIONS and shown[0]["position"] == 59  # newest first
    (today, *_) = activity(api, web)["days"]
    assert (today["received"], today["invalid"]) == (120, 120)


def test_the_admin_sees_each_sources_activity_and_its_refused_events(api: Api) -> None:
    key = api.source("Site web", "web")
    api.source("Caisses", "store")
    api.send(
        key, "/v1/batch", {"batch": [track("a"), {"type": "track", "messageId": "bad", "anonymousId": "d-1"}]}
    )
    web = source_id(api, "Site web")
    supervisor, _ = signed_in(api, "supervisor")
    assert supervisor.get(f"/console/admin/sources/{web}").status_code == 403
    admin, _ = signed_in(api, "admin")
    listing = admin.get("/console/admin/sources").text
    assert f'href="/console/admin/sources/{web}"' in listing
    assert "1 recorded" in listing and "1 refused" in listing and "never" in listing  # Caisses: nothing yet
    page = admin.get(f"/console/admin/sources/{web}")
    assert page.status_code == 200
    assert "Source Site web" in page.text and "event: is required" in page.text and "bad" in page.text
    assert "event 2 of the batch" in page.text
    assert admin.get("/console/admin/sources/src_nope").status_code == 404


def test_requests_refused_whole_are_counted_when_their_write_key_names_a_source(api: Api) -> None:
    key = api.source("web", "web")
    web = source_id(api, "web")
    basic = {**api.basic(key), "Content-Type": "application/json"}
    malformed = api.client.post("/v1/batch", content=b'{"batch": [', headers=basic)
    assert malformed.status_code == 400
    too_large = api.client.post("/v1/track", content=b'{"event": "' + b"x" * 40_000 + b'"}', headers=basic)
    assert too_large.status_code == 413
    not_a_batch = api.client.post("/v1/batch", json={"writeKey": key, "batch": {"type": "track"}})
    assert not_a_batch.status_code == 400  # the key in the body (analytics.js) names the source too
    # No source to count these on: an unknown key, or none at all.
    stranger = {**api.basic("wk_unknown"), "Content-Type": "application/json"}
    assert api.client.post("/v1/batch", content=b"{", headers=stranger).status_code == 400
    assert api.client.post("/v1/batch", content=b"{").status_code == 400

    found = activity(api, web)
    (today, *_) = found["days"]
    assert (today["received"], today["invalid"], today["refused_requests"]) == (0, 0, 3)
    assert [(r["endpoint"], r["position"]) for r in found["rejections"]] == [
        ("batch", None), ("track", None), ("batch", None),
    ]  # fmt: skip
    reasons = [r["error"] for r in found["rejections"]]
    assert reasons[0] == "batch: must be a list of events"
    assert reasons[1].startswith("request body is") and "32 KB" in reasons[1]
    assert reasons[2].startswith("body: malformed JSON")
    with api.db.read() as session:
        assert session.scalar(select(func.count()).select_from(SourceRejection)) == 3
    (listed,) = [s for s in api.get("/v1/sources").json()["data"] if s["id"] == web]
    assert listed["invalid_since_yesterday"] == 3


def test_the_migration_fills_in_the_days_before_from_the_events_stored(api: Api) -> None:
    key = api.source("web", "web")
    web = source_id(api, "web")
    api.send(key, "/v1/batch", {"batch": [track("a"), track("b"), track("c")]})
    api.send(key, "/v1/batch", {"batch": [track("a")]})  # a duplicate: not an event stored
    with api.db.read() as session:
        last_stored = session.scalar(select(func.max(Event.received_at)))
    downgrade(api.db.engine, "0018")
    upgrade(api.db.engine)
    after = activity(api, web)
    (today, *_) = after["days"]
    assert (today["received"], today["recorded"], today["duplicates"], today["invalid"]) == (3, 3, 0, 0)
    assert after["last_received_at"] == iso_z(last_stored)  # the last event stored (not the duplicate's)
