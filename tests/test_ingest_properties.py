"""The tracking API under arbitrary input, property-based. Whatever JSON a client sends as an event:
validation either accepts it or refuses it with a reason naming a field, never with another error; and
through HTTP, on SQLite and PostgreSQL, a batch never fails as a whole: each refused event writes
nothing, each accepted one is stored exactly once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select

from parcours.config import Settings
from parcours.identity.kinds import KindRegistry
from parcours.ingest.parse import InvalidEvent, parse_message
from parcours.ingest.service import limits_from
from parcours.models import Event
from parcours.vocabulary import CHANNELS
from tests.conftest import Api

# ------------------------------------------------------------------ what clients send

# What orjson can hand over after parsing a body: integers beyond 64 bits arrive as floats.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            "null",
            "0",
            "0000",
            "06 12 34 56 78",
            "+33612345678",
            "ana@example.com",
            "ANA@Example.COM",
            "test@example.com",
            "not-an-email",
            "2024-05-01T10:00:00Z",
            "2024-05-01T10:00:00",
            "9999-12-31T23:59:59-05:00",
            "0001-01-01T00:00:00+05:00",
            "whatsapp:+33612345678",
            "@ana.ig",
            "ß" * 200,
            "x" * 400,
            "a\u0000b",
        ]
    ),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


def _chain(levels: int) -> Any:
    value: Any = "bottom"
    for level in range(levels):
        value = [value] if level % 2 else {"k": value}
    return value


# Objects and lists nested around the limit (64) and past the JSON encoder's (255).
DEEP = st.integers(min_value=55, max_value=400).map(_chain)
VALUES = st.one_of(JSON, DEEP)
IDENTIFIER_TRAITS = ["email", "phone", "loyaltyCard", "loyalty_card", "whatsapp", "instagram"]
OTHER_TRAITS = ["posCustomerId", "firstName", "address", "birthday", "userId", "anonymous_id"]
TRAIT_NAMES = st.sampled_from([*IDENTIFIER_TRAITS, *OTHER_TRAITS])
TRAITS = st.one_of(VALUES, st.dictionaries(TRAIT_NAMES, VALUES, max_size=4))
EXTERNAL_IDS = st.one_of(
    VALUES,
    st.lists(
        st.one_of(
            VALUES,
            st.fixed_dictionaries(
                {"id": VALUES, "type": st.one_of(TRAIT_NAMES, st.text(max_size=6))},
                optional={"collection": st.just("users"), "encoding": st.just("none")},
            ),
        ),
        max_size=3,
    ),
)
CONSENT = st.one_of(
    VALUES,
    st.fixed_dictionaries(
        {},
        optional={
            "categoryPreferences": st.dictionaries(st.text(max_size=10), VALUES, max_size=3),
            "channels": st.dictionaries(
                st.sampled_from(["web", "sms", "email", "*", "fax"]),
                st.one_of(VALUES, st.dictionaries(st.text(max_size=10), st.booleans(), max_size=2)),
                max_size=3,
            ),
        },
    ),
)
CONTEXT = st.one_of(
    VALUES,
    st.fixed_dictionaries(
        {},
        optional={
            "channel": st.one_of(VALUES, st.sampled_from(["web", " Store ", "sms", "fax"])),
            "traits": TRAITS,
            "externalIds": EXTERNAL_IDS,
            "consent": CONSENT,
        },
    ),
)
MESSAGES = st.fixed_dictionaries(
    {},
    optional={
        "type": st.one_of(
            st.sampled_from(["identify", "track", "page", "screen", "alias", "group", "fly"]), VALUES
        ),
        "userId": st.one_of(st.sampled_from(["u1", "u2", "u3"]), VALUES),
        "anonymousId": st.one_of(st.sampled_from(["a1", "a2"]), VALUES),
        "messageId": VALUES,
        "timestamp": VALUES,
        "originalTimestamp": VALUES,
        "sentAt": VALUES,
        "context": CONTEXT,
        "traits": TRAITS,
        "properties": VALUES,
        "event": st.one_of(st.just("Order Completed"), VALUES),
        "name": VALUES,
        "previousId": st.one_of(st.just("a1"), VALUES),
        "groupId": VALUES,
        "integrations": VALUES,
    },
)
# Events a real client would send, with identifiers from small pools so that events attach and merge.
WELL_FORMED = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["identify", "track", "page"]),
        "event": st.sampled_from(["Order Completed", "Product Viewed"]),
        "userId": st.sampled_from(["u1", "u2", "u3"]),
    },
    optional={
        "anonymousId": st.sampled_from(["a1", "a2", "a3"]),
        "traits": st.fixed_dictionaries(
            {},
            optional={
                "email": st.sampled_from(["ana@example.fr", "BOB@example.fr", "test@example.com"]),
                "phone": st.sampled_from(["06 12 34 56 78", "+33698765432", "0000"]),
                "firstName": st.text(max_size=12),
            },
        ),
        "properties": st.dictionaries(st.text(max_size=8), JSON, max_size=3),
        "context": st.fixed_dictionaries(
            {}, optional={"channel": st.sampled_from(["web", "store", "phone"]), "consent": CONSENT}
        ),
    },
)
# Every refusal starts by naming where the problem is: a field followed by ".", "[", ":" or a space.
SPEC_FIELDS = frozenset(
    {"event", "type", "messageId", "userId", "anonymousId", "previousId", "groupId", "name"}
    | {"timestamp", "originalTimestamp", "sentAt", "context", "traits", "properties", "integrations"}
)


def names_a_field(reason: str, message: Any) -> bool:
    """Whether ``reason`` starts with a field of the spec, or a top-level field the message has."""
    if reason.startswith("no usable identifier: "):
        return True
    fields = SPEC_FIELDS | (set(message) - {""} if isinstance(message, dict) else set())
    return any(reason.startswith(field + separator) for field in fields for separator in ".[: ")


# ------------------------------------------------------------------ validation alone


@hsettings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=st.one_of(MESSAGES, VALUES), expected=st.sampled_from([None, "identify", "track"]))
@example(message={"": "\u0000"}, expected=None).via("a NUL under an empty key named no field")
def test_any_message_is_accepted_or_refused_naming_a_field(
    registry: KindRegistry, message: Any, expected: str | None
) -> None:
    limits = limits_from(Settings(database_url="sqlite://"))
    received_at = datetime.now(UTC)
    try:
        touchpoint = parse_message(
            message,
            expected_type=expected,
            source_id="src_1",
            default_channel="web",
            registry=registry,
            received_at=received_at,
            batch_sent_at=None,
            limits=limits,
        )
    except InvalidEvent as error:
        assert names_a_field(str(error), message), str(error)
        return
    assert touchpoint.identifiers or touchpoint.previous_id is not None
    assert touchpoint.channel in CHANNELS
    assert touchpoint.timestamp.tzinfo is not None
    assert limits.earliest <= touchpoint.timestamp <= received_at + limits.max_future
    assert 0 < len(touchpoint.message_id) <= 200
    assert len(orjson.dumps(message)) <= limits.max_event_bytes


# ------------------------------------------------------------------ through HTTP, on both databases


def stored_message_ids(api: Api, prefix: str) -> set[str]:
    with api.db.read() as session:
        return set(session.scalars(select(Event.message_id).where(Event.message_id.like(f"{prefix}%"))))


def event_count(api: Api) -> int:
    with api.db.read() as session:
        return session.scalar(select(func.count()).select_from(Event)) or 0


@pytest.fixture
def write_key(api: Api) -> str:
    return api.source("fuzzed shop", "web")


BATCH_NUMBER = iter(range(1_000_000))


@hsettings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(messages=st.lists(st.one_of(WELL_FORMED, MESSAGES, VALUES), min_size=1, max_size=6))
def test_a_batch_of_anything_keeps_exactly_the_valid_events(
    api: Api, write_key: str, messages: list[Any]
) -> None:
    prefix = f"b{next(BATCH_NUMBER)}-"
    messages = [  # a known messageId per event, to see which were stored
        {**message, "messageId": f"{prefix}{index}"} if isinstance(message, dict) else message
        for index, message in enumerate(messages)
    ]
    before = event_count(api)

    response = api.send(write_key, "/v1/batch", {"batch": messages})

    assert response.status_code in (200, 400, 413), response.text
    stored = stored_message_ids(api, prefix)
    if response.status_code != 200:  # every event refused, or the batch over 500 KB: nothing written
        assert stored == set()
        assert event_count(api) == before
        return
    body = response.json()
    event(f"{body['accepted']} of {len(messages)} accepted")
    refused = {error["index"] for error in body.get("errors", [])}
    for error in body.get("errors", []):
        assert names_a_field(error["error"], messages[error["index"]]), error
    assert body["received"] == len(messages)
    assert body["accepted"] + len(refused) == len(messages)
    assert stored == {f"{prefix}{index}" for index in range(len(messages)) if index not in refused}
    assert event_count(api) - before == body["recorded"] == len(stored)

    replay = api.send(write_key, "/v1/batch", {"batch": messages})  # the same batch again: no change
    assert replay.status_code == 200, replay.text
    assert (replay.json()["recorded"], replay.json()["duplicates"]) == (0, len(stored))
    assert event_count(api) - before == len(stored)
