"""Bad input on the Segment-compatible tracking API: every refusal names what is wrong, writes nothing,
and never costs the valid events sent beside it. Each case runs against a live server on SQLite and
on PostgreSQL (PostgreSQL refuses a NUL character that SQLite would store, so both matter)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from parcours.models import Consent, Event, Identifier, IdentityConflict, Profile
from tests.conftest import Api

TABLES = (Event, Profile, Identifier, Consent, IdentityConflict)
BIG = "x" * (33 * 1024)  # one property that takes an event past the 32 KB limit


def nested(levels: int) -> dict[str, Any]:
    """``levels`` objects, one inside the other: ``nested(2) == {"a": {"a": 1}}``."""
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    result: dict[str, Any] = value
    return result


def counts(api: Api) -> dict[str, int]:
    """Rows in every table an event can write to."""
    with api.db.read() as session:
        return {
            str(model.__tablename__): session.scalar(select(func.count()).select_from(model)) or 0
            for model in TABLES
        }


def identifier_values(api: Api) -> set[str]:
    with api.db.read() as session:
        return {
            f"{kind}:{value}" for kind, value in session.execute(select(Identifier.kind, Identifier.value))
        }


def message_ids(api: Api) -> set[str]:
    with api.db.read() as session:
        return set(session.scalars(select(Event.message_id)))


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["success"] is False, body
    error: dict[str, Any] = body["error"]
    return error


def refused_single_event(api: Api, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Send one event from a new source; it must get 400 and write nothing. Returns the error."""
    key = api.source("web shop", "web")
    before = counts(api)
    response = api.send(key, path, body)
    assert response.status_code == 400, response.text
    assert counts(api) == before
    return error_of(response)


def post_raw(api: Api, key: str, path: str, content: bytes, **headers: str) -> httpx.Response:
    return api.client.post(
        path, content=content, headers={**api.basic(key), "Content-Type": "application/json", **headers}
    )


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------ the request body as a whole

BAD_BODIES = [
    pytest.param("/v1/identify", b'{"userId": "u1",', {}, "body: malformed JSON", id="malformed-json"),
    pytest.param("/v1/identify", b"[1, 2]", {}, "body: must be a JSON object, not list", id="array"),
    pytest.param("/v1/track", b'"hello"', {}, "body: must be a JSON object, not str", id="string"),
    pytest.param("/v1/batch", b"42", {}, "body: must be a JSON object, not int", id="number"),
    pytest.param("/v1/identify", b"", {}, "body: empty", id="empty"),
    pytest.param("/v1/identify", b"  \n ", {}, "body: empty", id="whitespace"),
    pytest.param("/v1/identify", b'{"userId": "\xff"}', {}, "not valid UTF-8", id="invalid-utf8"),
    pytest.param("/v1/batch", b'{"batch": {"a": 1}}', {}, "batch: must be a list", id="batch-not-list"),
    pytest.param(
        "/v1/batch", b'{"batch": []}', {}, "batch: must contain at least one event", id="batch-empty"
    ),
    pytest.param("/v1/batch", b'{"userId": "u1"}', {}, "batch: must be a list", id="batch-missing"),
    pytest.param(
        "/v1/batch",
        b'{"sentAt": "garbage", "batch": [{"type": "track", "userId": "u1", "event": "E"}]}',
        {},
        "sentAt: 'garbage' is not an ISO-8601 date-time",
        id="batch-sentAt-garbage",
    ),
    pytest.param(
        "/v1/batch",
        b'{"context": ["store"], "batch": [{"type": "track", "userId": "u1", "event": "E"}]}',
        {},
        "context: must be an object, not list",
        id="batch-context-not-object",
    ),
    pytest.param(
        "/v1/track",
        b"\x0b\x02\x80{}",
        {"Content-Encoding": "br"},
        "Content-Encoding: 'br' is not supported",
        id="unsupported-encoding",
    ),
    pytest.param(
        "/v1/track",
        b"not gzip at all",
        {"Content-Encoding": "gzip"},
        "body is not valid gzip",
        id="bad-gzip",
    ),
    pytest.param(
        "/v1/track",
        gzip.compress(b'{"userId": "u-gz", "event": "E"}')[:-8],
        {"Content-Encoding": "gzip"},
        "gzip stream is truncated",
        id="truncated-gzip",
    ),
    pytest.param(
        "/v1/track",
        gzip.compress(b'{"userId": "u-gz", "event": "E"}') + b"junk",
        {"Content-Encoding": "gzip"},
        "unexpected bytes after the end of the gzip stream",
        id="gzip-trailing-bytes",
    ),
]


@pytest.mark.parametrize(("path", "content", "headers", "fragment"), BAD_BODIES)
def test_a_bad_body_is_refused_with_400_naming_the_problem(
    api: Api, path: str, content: bytes, headers: dict[str, str], fragment: str
) -> None:
    key = api.source("web shop", "web")
    before = counts(api)
    response = post_raw(api, key, path, content, **headers)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == "invalid_input"
    assert fragment in error["message"]
    assert counts(api) == before


# ------------------------------------------------------------------ one event's fields

NOW = datetime.now(UTC)

BAD_EVENTS = [
    pytest.param(
        "/v1/identify", {"traits": {"name": "Ana"}}, "userId or anonymousId is required", id="no-ids"
    ),
    pytest.param("/v1/track", {"event": "E", "anonymousId": ""}, "userId or anonymousId", id="anon-empty"),
    pytest.param(
        "/v1/identify", {"userId": {"id": 1}}, "userId: must be a string or a number, not dict", id="uid-obj"
    ),
    pytest.param(
        "/v1/identify", {"userId": True}, "userId: must be a string or a number, not bool", id="uid-bool"
    ),
    pytest.param(
        "/v1/identify", {"userId": ["u1"]}, "userId: must be a string or a number, not list", id="uid-list"
    ),
    pytest.param("/v1/identify", {"userId": "u" * 201}, "userId: longer than 200 characters", id="uid-long"),
    pytest.param(
        "/v1/identify", {"anonymousId": 1.5e300}, "anonymousId: longer than 200", id="anon-huge-number"
    ),
    pytest.param(
        "/v1/identify", {"userId": "u1", "traits": ["a"]}, "traits: must be an object, not list", id="traits"
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "properties": "x"},
        "properties: must be an object, not str",
        id="properties-string",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "context": "web"},
        "context: must be an object",
        id="context-str",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "context": {"traits": [1]}},
        "context.traits: must be an object",
        id="context-traits-list",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "integrations": True},
        "integrations: must be an object",
        id="integrations-bool",
    ),
    pytest.param("/v1/track", {"userId": "u1"}, "event: is required", id="event-missing"),
    pytest.param(
        "/v1/track", {"userId": "u1", "event": 42}, "event: must be a string, not int", id="event-int"
    ),
    pytest.param("/v1/track", {"userId": "u1", "event": "  "}, "event: must not be empty", id="event-blank"),
    pytest.param(
        "/v1/track", {"userId": "u1", "event": "E" * 201}, "event: longer than 200", id="event-long"
    ),
    pytest.param(
        "/v1/page", {"userId": "u1", "name": {"a": 1}}, "name: must be a string, not dict", id="page-name"
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "messageId": 5},
        "messageId: must be a string",
        id="messageId-int",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "timestamp": 1700000000},
        "timestamp: must be an ISO-8601 date-time string, not int",
        id="timestamp-int",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "timestamp": "yesterday"},
        "timestamp: 'yesterday' is not an ISO-8601 date-time",
        id="timestamp-yesterday",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "timestamp": "1900-01-01T00:00:00Z"},
        "timestamp: 1900-01-01T00:00:00+00:00 is before 1990-01-01",
        id="timestamp-1900",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "timestamp": "3000-01-01T00:00:00Z"},
        "timestamp: 3000-01-01T00:00:00+00:00 is more than 24 hours in the future",
        id="timestamp-3000",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "timestamp": iso(NOW + timedelta(hours=25))},
        "is more than 24 hours in the future",
        id="timestamp-25h-ahead",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "timestamp": "9999-12-31T23:59:59-05:00"},
        "timestamp: '9999-12-31T23:59:59-05:00' is out of range",
        id="timestamp-past-9999-utc",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "originalTimestamp": "1900-06-01T00:00:00Z"},
        "originalTimestamp: 1900-06-01T00:00:00+00:00 is before 1990-01-01",
        id="originalTimestamp-1900",
    ),
    pytest.param(
        "/v1/track",
        {
            "userId": "u1",
            "event": "E",
            "originalTimestamp": "0001-01-01T00:00:00Z",
            "sentAt": "9999-12-31T00:00:00Z",
        },
        "originalTimestamp: 0001-01-01T00:00:00+00:00 corrected by sentAt",
        id="skew-correction-overflow",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "timestamp": iso(NOW), "sentAt": "soon"},
        "sentAt: 'soon' is not an ISO-8601 date-time",
        id="sentAt-garbage",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "context": {"channel": "fax"}},
        "context.channel: 'fax' is not one of web,",
        id="unknown-channel",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "context": {"channel": 3}},
        "context.channel: 3 is not one of",
        id="channel-int",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "context": {"externalIds": [{"id": "P1", "type": "passport"}]}},
        "context.externalIds[0].type: 'passport' is not a known identifier kind",
        id="unknown-externalId-type",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "context": {"externalIds": {"id": "1", "type": "email"}}},
        "context.externalIds: must be a list",
        id="externalIds-object",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "context": {"externalIds": [{"type": "email"}]}},
        "context.externalIds[0].id: is required",
        id="externalId-without-id",
    ),
    pytest.param(
        "/v1/identify",
        {"userId": "u1", "traits": {"email": "not-an-email"}},
        "traits.email: is not a valid email address",
        id="bad-email",
    ),
    pytest.param(
        "/v1/identify",
        {"userId": "u1", "traits": {"email": ["ana@example.fr", "nope"]}},
        "traits.email[1]: is not a valid email address",
        id="bad-email-in-list",
    ),
    pytest.param(
        "/v1/identify",
        {"userId": "u1", "traits": {"phone": "12"}},
        "traits.phone: is not a valid phone number",
        id="bad-phone",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "context": {"traits": {"email": {"a": 1}}}},
        "context.traits.email: must be a string, not dict",
        id="email-object",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "context": {"consent": {"categoryPreferences": {"ads": "yes"}}}},
        "context.consent.categoryPreferences.ads: must be true or false",
        id="consent-not-bool",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "context": {"consent": {"channels": {"fax": {"ads": True}}}}},
        "context.consent.channels.fax: unknown channel",
        id="consent-unknown-channel",
    ),
    pytest.param(
        "/v1/identify",
        {"type": "track", "userId": "u1", "event": "E"},
        "type: 'track' sent to the /v1/identify endpoint",
        id="type-mismatch",
    ),
    pytest.param(
        "/v1/alias", {"userId": "u1"}, "previousId: is required for alias", id="alias-no-previousId"
    ),
    pytest.param("/v1/alias", {"previousId": "a1"}, "userId: is required for alias", id="alias-no-userId"),
    pytest.param("/v1/group", {"userId": "u1"}, "groupId: is required for group", id="group-no-groupId"),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "properties": {"note": "a\u0000b"}},
        "properties.note: contains a NUL character",
        id="nul-in-property",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u\u00001", "event": "E"},
        "userId: contains a NUL character",
        id="nul-in-userId",
    ),
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "properties": {"a\u0000": 1}},
        "properties: key 'a\\x00': contains a NUL character",
        id="nul-in-key",
    ),
    pytest.param(  # 200 characters, 400 once upper-cased: PostgreSQL's VARCHAR(320) refused the batch
        "/v1/identify",
        {"userId": "u1", "traits": {"loyaltyCard": "ß" * 200}},
        "traits.loyaltyCard: is longer than 320 characters once normalised",
        id="identifier-lengthened-by-case-mapping",
    ),
    # The event is level 1, so properties may hold 63 levels of its own.
    pytest.param(
        "/v1/track",
        {"userId": "u1", "event": "E", "properties": nested(64)},
        "properties: nested more than 64 levels deep",
        id="nested-65-levels",
    ),
    pytest.param(  # past the JSON encoder's own limit (255 levels), which used to fail the whole request
        "/v1/track",
        {"userId": "u1", "event": "E", "properties": {"list": [nested(300)]}},
        "properties: nested more than 64 levels deep",
        id="nested-300-levels",
    ),
    pytest.param(
        "/v1/identify",
        {"userId": "u1", "context": {"traits": {"email": "a@example.fr", "x": nested(200)}}},
        "context: nested more than 64 levels deep",
        id="nested-context",
    ),
]


@pytest.mark.parametrize(("path", "body", "fragment"), BAD_EVENTS)
def test_an_invalid_event_gets_400_naming_the_field_and_writes_nothing(
    api: Api, path: str, body: dict[str, Any], fragment: str
) -> None:
    error = refused_single_event(api, path, body)
    assert error["code"] == "invalid_input"
    assert error["message"].startswith("no valid event: ")
    assert fragment in error["message"]
    assert error["details"] == [{"index": 0, "error": error["message"].removeprefix("no valid event: ")}]


def test_the_timestamp_window_accepts_its_edges(api: Api) -> None:
    key = api.source("web shop", "web")
    edges = {
        "earliest": "1990-01-01T00:00:00Z",
        "naive-is-utc": "2024-03-01T10:00:00",
        "offset": "2024-03-01T10:00:00+02:00",
        "23h-ahead": iso(datetime.now(UTC) + timedelta(hours=23)),
    }
    for name, timestamp in edges.items():
        body = {"userId": "u1", "event": "E", "timestamp": timestamp, "messageId": name}
        response = api.send(key, "/v1/track", body)
        assert response.status_code == 200, (name, response.text)
    with api.db.read() as session:
        stamps = {
            message_id: moment
            for message_id, moment in session.execute(select(Event.message_id, Event.timestamp))
        }
    assert stamps["naive-is-utc"] == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert stamps["offset"] == datetime(2024, 3, 1, 8, tzinfo=UTC)


# ------------------------------------------------------------------ blocked identifier values

BLOCKED = [
    pytest.param("/v1/identify", {"userId": "null"}, "userId 'null' is a placeholder value", id="null"),
    pytest.param(
        "/v1/identify", {"userId": "undefined"}, "userId 'undefined' is a placeholder", id="undefined"
    ),
    pytest.param("/v1/identify", {"userId": "0"}, "userId '0' is a placeholder value", id="zero"),
    pytest.param("/v1/identify", {"userId": 0}, "userId '0' is a placeholder value", id="zero-number"),
    pytest.param("/v1/identify", {"userId": "0000"}, "userId '0000' is a placeholder value", id="0000"),
    pytest.param(
        "/v1/track", {"anonymousId": "NULL", "event": "E"}, "anonymousId 'NULL' is a placeholder", id="NULL"
    ),
    pytest.param(
        "/v1/identify",
        {"traits": {"email": "test@example.com"}},
        "traits.email 'test@example.com' is a blocked email value",
        id="test-email",
    ),
    pytest.param(
        "/v1/identify",
        {"userId": "null", "anonymousId": "undefined"},
        "no usable identifier: userId 'null' is a placeholder value; anonymousId 'undefined'",
        id="both-placeholders",
    ),
    pytest.param(
        "/v1/alias",
        {"userId": "u1", "previousId": "null"},
        "previousId: 'null' is a placeholder",
        id="alias-prev",
    ),
    pytest.param(
        "/v1/alias",
        {"userId": "undefined", "previousId": "anon-1"},
        "userId: 'undefined' is a placeholder value; an alias needs a usable userId",
        id="alias-user",
    ),
]


@pytest.mark.parametrize(("path", "body", "fragment"), BLOCKED)
def test_an_event_with_only_blocked_identifiers_is_refused(
    api: Api, path: str, body: dict[str, Any], fragment: str
) -> None:
    assert fragment in refused_single_event(api, path, body)["message"]


def test_a_blocked_email_beside_a_usable_user_id_is_recorded_but_never_linked(api: Api) -> None:
    key = api.source("web shop", "web")
    body = {"userId": "u-42", "anonymousId": "null", "traits": {"email": "test@example.com"}}
    response = api.send(key, "/v1/identify", body)
    assert response.status_code == 200, response.text
    assert identifier_values(api) == {"user_id:u-42"}
    assert counts(api)["events"] == 1


def test_a_configured_blocked_anonymous_id_never_links_the_people_who_share_it(api: Api) -> None:
    configured = api.client.patch(
        "/v1/identity/kinds/anonymous_id", json={"blocked_values": ["tablet-store-12"]}, headers=api.bearer
    )
    assert configured.status_code == 200, configured.text
    assert configured.json()["blocked_values"] == ["tablet-store-12"]
    key = api.source("store tablets", "store")

    alone = api.send(key, "/v1/track", {"anonymousId": "tablet-store-12", "event": "Catalogue Browsed"})
    assert alone.status_code == 400, alone.text
    assert "anonymousId 'tablet-store-12' is a blocked anonymous_id value" in error_of(alone)["message"]
    assert counts(api)["events"] == 0

    for email in ("ana@example.fr", "bruno@example.fr"):
        body = {
            "anonymousId": "tablet-store-12",
            "event": "Signed Up",
            "context": {"traits": {"email": email}},
        }
        response = api.send(key, "/v1/track", body)
        assert response.status_code == 200, response.text
    ana = api.get("/v1/profiles", identifier="email:ana@example.fr").json()
    bruno = api.get("/v1/profiles", identifier="email:bruno@example.fr").json()
    assert ana["id"] != bruno["id"]
    assert [i["kind"] for i in ana["identifiers"]] == ["email"]
    assert not any(value.endswith("tablet-store-12") for value in identifier_values(api))
    missing = api.get("/v1/profiles", identifier="anonymous_id:tablet-store-12")
    assert missing.status_code == 404, missing.text


# ------------------------------------------------------------------ size limits and compression


def test_an_event_over_32_kb_on_a_single_endpoint_gets_413(api: Api) -> None:
    key = api.source("web shop", "web")
    response = api.send(key, "/v1/track", {"userId": "u1", "event": "E", "properties": {"blob": BIG}})
    assert response.status_code == 413, response.text
    error = error_of(response)
    assert error["code"] == "payload_too_large"
    assert "the limit is 32 KB" in error["message"]
    fits = api.send(key, "/v1/track", {"userId": "u1", "event": "E", "properties": {"blob": "x" * 30_000}})
    assert fits.status_code == 200, fits.text
    assert counts(api)["events"] == 1


def test_an_event_over_32_kb_once_inflated_gets_413(api: Api) -> None:
    key = api.source("web shop", "web")
    content = gzip.compress(orjson.dumps({"userId": "u1", "event": "E", "properties": {"blob": BIG}}))
    assert len(content) < 1024
    response = post_raw(api, key, "/v1/track", content, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413, response.text
    assert "decompressed body is over the 32 KB limit" in error_of(response)["message"]
    assert counts(api)["events"] == 0


def test_an_oversize_event_inside_a_batch_is_reported_by_index_and_the_others_kept(api: Api) -> None:
    key = api.source("web shop", "web")
    batch = [
        {"type": "track", "userId": "u1", "event": "A", "messageId": "a"},
        {"type": "track", "userId": "u2", "event": "B", "messageId": "b", "properties": {"blob": BIG}},
        {"type": "track", "userId": "u3", "event": "C", "messageId": "c"},
    ]
    response = api.send(key, "/v1/batch", {"batch": batch})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is False
    assert (body["received"], body["recorded"]) == (3, 2)
    [error] = body["errors"]
    assert error["index"] == 1
    assert error["error"].startswith("event: ") and "over the 32 KB limit" in error["error"]
    assert message_ids(api) == {"a", "c"}
    assert identifier_values(api) == {"user_id:u1", "user_id:u3"}


def test_a_deeply_nested_event_inside_a_batch_is_reported_by_index_and_the_others_kept(api: Api) -> None:
    key = api.source("web shop", "web")
    batch = [
        {"type": "track", "userId": "u1", "event": "A", "messageId": "a"},
        {"type": "track", "userId": "u2", "event": "B", "messageId": "b", "properties": nested(300)},
        {"type": "track", "userId": "u3", "event": "C", "messageId": "c"},
    ]
    response = api.send(key, "/v1/batch", {"batch": batch})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["received"], body["recorded"]) == (3, 2)
    assert body["errors"] == [{"index": 1, "error": "properties: nested more than 64 levels deep"}]
    assert message_ids(api) == {"a", "c"}
    assert identifier_values(api) == {"user_id:u1", "user_id:u3"}


def test_an_event_nested_64_levels_deep_is_kept_and_reads_back(api: Api) -> None:
    key = api.source("web shop", "web")
    deep = nested(63)
    response = api.send(key, "/v1/track", {"userId": "u1", "event": "Deep", "properties": deep})
    assert response.status_code == 200, response.text
    found = api.get("/v1/profiles", identifier="user_id:u1")
    assert found.status_code == 200, found.text
    profile_id = found.json()["id"]
    timeline = api.get(f"/v1/profiles/{profile_id}/timeline")
    assert timeline.status_code == 200, timeline.text
    [event] = timeline.json()["data"]
    assert event["properties"] == deep
    export = api.get(f"/v1/profiles/{profile_id}/export")
    assert export.status_code == 200, export.text


def test_a_batch_body_over_500_kb_gets_413_and_writes_nothing(api: Api) -> None:
    key = api.source("web shop", "web")
    batch = [
        {"type": "track", "userId": f"u{i}", "event": "E", "properties": {"blob": "y" * 20_000}}
        for i in range(30)
    ]
    response = api.send(key, "/v1/batch", {"batch": batch})
    assert response.status_code == 413, response.text
    assert "the limit is 500 KB" in error_of(response)["message"]
    inflated = gzip.compress(orjson.dumps({"batch": batch}))
    assert len(inflated) < 500 * 1024
    response = post_raw(api, key, "/v1/batch", inflated, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413, response.text
    assert "decompressed body is over the 500 KB limit" in error_of(response)["message"]
    assert counts(api)["events"] == 0


def test_gzip_bodies_are_accepted(api: Api) -> None:
    key = api.source("web shop", "web")
    single = gzip.compress(orjson.dumps({"userId": "u1", "event": "E", "messageId": "one"}))
    response = post_raw(api, key, "/v1/track", single, **{"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    batch = {"batch": [{"type": "page", "anonymousId": "a1", "name": "Home", "messageId": "two"}]}
    response = post_raw(
        api, key, "/v1/batch", gzip.compress(orjson.dumps(batch)), **{"Content-Encoding": "GZIP"}
    )
    assert response.status_code == 200, response.text
    assert message_ids(api) == {"one", "two"}


# ------------------------------------------------------------------ credentials


def test_ingestion_needs_a_known_write_key(api: Api) -> None:
    api.source("web shop", "web")
    body = {"userId": "u1", "event": "E"}
    attempts = {
        "unknown write key": (api.basic("wk_not-a-key"), "unknown or disabled write key"),
        "no credentials": ({}, "a write key is required"),
        "an API token": (api.bearer, "a write key is required"),
        "malformed Basic": ({"Authorization": "Basic !!!"}, "malformed HTTP Basic credentials"),
    }
    for name, (headers, fragment) in attempts.items():
        response = api.client.post("/v1/track", json=body, headers=headers)
        assert response.status_code == 401, (name, response.text)
        assert fragment in error_of(response)["message"], name
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    # An unknown key is refused before the events are looked at: a stranger learns nothing.
    response = api.send("wk_not-a-key", "/v1/batch", {"batch": [{"type": "track"}]})
    assert response.status_code == 401, response.text
    assert counts(api)["events"] == 0


def test_a_write_key_in_the_body_is_accepted_as_segment_allows(api: Api) -> None:
    key = api.source("web shop", "web")
    response = api.client.post("/v1/track", json={"writeKey": key, "userId": "u1", "event": "E"})
    assert response.status_code == 200, response.text
    assert counts(api)["events"] == 1


def test_a_batch_context_applies_to_every_event_and_an_event_context_wins(api: Api) -> None:
    """Segment's HTTP API: a batch's ``context`` applies to all its calls (a till sends its channel and
    its store once); a key an event's own context gives wins over the batch's."""
    key = api.source("caisses", "web")
    batch = {
        "context": {"channel": "store", "traits": {"loyalty_card": "FID-77"}, "location": "paris-rivoli"},
        "batch": [
            {"type": "track", "anonymousId": "till-1", "event": "Order Completed"},
            {"type": "track", "anonymousId": "till-2", "event": "Return", "context": {"channel": "phone"}},
            {"type": "track", "anonymousId": "till-3", "event": "Bad", "context": "store"},
        ],
    }
    response = api.client.post("/v1/batch", json=batch, headers=api.basic(key))
    assert response.status_code == 200, response.text
    assert response.json()["recorded"] == 2
    assert response.json()["errors"] == [{"index": 2, "error": "context: must be an object, not str"}]
    profile = api.get("/v1/profiles", identifier="loyalty_card:FID-77").json()
    events = api.get(f"/v1/profiles/{profile['id']}/timeline").json()["data"]
    assert [(e["name"], e["channel"], e["context"]["location"]) for e in events] == [
        ("Order Completed", "store", "paris-rivoli"),
        ("Return", "phone", "paris-rivoli"),
    ]


def test_a_write_key_cannot_read(api: Api) -> None:
    key = api.source("web shop", "web")
    assert api.send(key, "/v1/identify", {"userId": "u1"}).status_code == 200
    profile_id = api.get("/v1/profiles", identifier="user_id:u1").json()["id"]
    for path in (f"/v1/profiles/{profile_id}", f"/v1/profiles/{profile_id}/timeline"):
        response = api.client.get(path, headers=api.basic(key))
        assert response.status_code == 403, response.text
        assert "write keys can only send events" in error_of(response)["message"]


# ------------------------------------------------------------------ batches: keep the valid, report the rest


def mixed_batch() -> list[Any]:
    return [
        {"type": "identify", "userId": "mix-1", "traits": {"email": "mix1@example.fr"}, "messageId": "ok-1"},
        {
            "type": "identify",
            "userId": {"id": 7},
            "traits": {"email": "ghost1@example.fr"},
            "messageId": "bad-1",
        },
        {"type": "track", "userId": "mix-2", "event": "Order Completed", "messageId": "ok-2"},
        {"type": "track", "userId": "ghost-2", "messageId": "bad-2"},
        {
            "type": "track",
            "userId": "ghost-3",
            "event": "E",
            "timestamp": "3000-01-01T00:00:00Z",
            "messageId": "bad-3",
        },
        "not an event",
        {
            "type": "track",
            "userId": "ghost-4",
            "event": "E",
            "properties": {"n": "\u0000"},
            "messageId": "bad-5",
        },
        {"type": "fly", "userId": "ghost-5", "messageId": "bad-6"},
        {"userId": "ghost-6", "event": "E", "messageId": "bad-7"},
        {
            "type": "page",
            "anonymousId": "anon-9",
            "name": "Home",
            "messageId": "ok-3",
            "context": {"consent": {"categoryPreferences": {"analytics": True}}},
        },
        {
            "type": "track",
            "userId": "ghost-7",
            "event": "E",
            "context": {"traits": {"phone": "12"}, "consent": {"categoryPreferences": {"ads": True}}},
            "messageId": "bad-9",
        },
    ]


def test_a_mixed_batch_keeps_the_valid_events_and_reports_each_invalid_one_by_index(api: Api) -> None:
    key = api.source("web shop", "web")
    response = api.send(key, "/v1/batch", {"batch": mixed_batch()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is False
    assert (body["received"], body["accepted"], body["recorded"], body["duplicates"]) == (11, 3, 3, 0)
    reasons = {error["index"]: error["error"] for error in body["errors"]}
    assert sorted(reasons) == [1, 3, 4, 5, 6, 7, 8, 10]
    assert reasons[1].startswith("userId: must be a string or a number")
    assert reasons[3] == "event: is required"
    assert reasons[4].startswith("timestamp: 3000-01-01")
    assert reasons[5] == "event: must be a JSON object, not str"
    assert reasons[6].startswith("properties.n: contains a NUL character")
    assert reasons[7].startswith("type: 'fly' is not one of")
    assert reasons[8].startswith("type: is required")
    assert reasons[10].startswith("context.traits.phone: is not a valid phone number")

    assert message_ids(api) == {"ok-1", "ok-2", "ok-3"}
    assert identifier_values(api) == {
        "user_id:mix-1",
        "email:mix1@example.fr",
        "user_id:mix-2",
        "anonymous_id:anon-9",
    }
    after = counts(api)
    assert after == {"events": 3, "profiles": 3, "identifiers": 4, "consents": 1, "identity_conflicts": 0}

    replay = api.send(key, "/v1/batch", {"batch": mixed_batch()})
    assert replay.status_code == 200, replay.text
    again = replay.json()
    assert (again["accepted"], again["recorded"], again["duplicates"]) == (3, 0, 3)
    assert [e["index"] for e in again["errors"]] == sorted(reasons)
    assert counts(api) == after


def test_a_batch_where_every_event_is_invalid_gets_400_and_writes_nothing(api: Api) -> None:
    key = api.source("web shop", "web")
    batch = [
        {"type": "track", "userId": "g1", "messageId": "x1"},
        {"type": "identify", "traits": {"email": "g2@example.fr", "phone": "12"}, "messageId": "x2"},
        {"type": "identify", "userId": "null", "messageId": "x3"},
    ]
    response = api.send(key, "/v1/batch", {"batch": batch})
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["message"] == "no valid event (3 invalid)"
    assert error["details"] == [
        {"index": 0, "error": "event: is required"},
        {"index": 1, "error": "traits.phone: is not a valid phone number"},
        {"index": 2, "error": "no usable identifier: userId 'null' is a placeholder value"},
    ]
    assert counts(api) == {
        "events": 0,
        "profiles": 0,
        "identifiers": 0,
        "consents": 0,
        "identity_conflicts": 0,
    }


def test_a_replayed_single_event_is_a_duplicate(api: Api) -> None:
    key = api.source("web shop", "web")
    body = {"userId": "u1", "event": "E", "messageId": "same", "properties": {"n": 1}}
    first = api.send(key, "/v1/track", body)
    second = api.send(key, "/v1/track", {**body, "properties": {"n": 2}})
    assert first.status_code == second.status_code == 200, second.text
    assert (first.json()["recorded"], second.json()["duplicates"]) == (1, 1)
    with api.db.read() as session:
        assert session.scalars(select(Event.properties)).all() == [{"n": 1}]
