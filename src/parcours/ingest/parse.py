"""Validate one Segment-spec message and turn it into a touchpoint, or say exactly what is wrong.

Accepted as in the Segment tracking spec: ``identify``, ``track``, ``page``, ``screen``, ``alias`` and
``group`` with ``userId``/``anonymousId`` (strings or numbers), ``messageId``, ``timestamp`` /
``originalTimestamp`` / ``sentAt``, ``context`` (``channel``, ``traits``, ``externalIds``, ``consent``),
``traits``, ``properties``, ``event``, ``name``, ``previousId``, ``groupId``, ``integrations``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson

from parcours.identity.kinds import InvalidIdentifier, KindRegistry
from parcours.identity.touchpoints import ConsentChange, Touchpoint
from parcours.inputs import NUL_MESSAGE, child_path, nul_path, utc_moment
from parcours.vocabulary import CHANNELS, EVENT_TYPES

MAX_ID_LENGTH = 200
MAX_NAME_LENGTH = 200
# Objects and lists may nest this deep in an event, the event itself being the first level. Real events
# nest a few levels; the limit keeps a hostile one from failing the JSON encoder (orjson stops at 255
# levels), which would otherwise cost the whole batch, and leaves room for the levels API answers add.
MAX_NESTING = 64
PURPOSE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,59}$")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


class InvalidEvent(ValueError):
    """The message breaks the spec; the text names the field and the problem."""


@dataclass(frozen=True)
class ParseLimits:
    max_event_bytes: int
    earliest: datetime
    max_future: timedelta


@lru_cache(maxsize=4096)
def snake(name: str) -> str:
    """``loyaltyCard`` -> ``loyalty_card`` (trait names repeat endlessly: cached)."""
    return _CAMEL.sub("_", name).lower()


def _object(message: Mapping[str, Any], field: str, where: str | None = None) -> dict[str, Any] | None:
    value = message.get(field)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidEvent(f"{where or field}: must be an object, not {type(value).__name__}")
    return value


def _string(
    message: Mapping[str, Any], field: str, *, required: bool = False, limit: int = MAX_NAME_LENGTH
) -> str | None:
    value = message.get(field)
    if value is None:
        if required:
            raise InvalidEvent(f"{field}: is required")
        return None
    if not isinstance(value, str):
        raise InvalidEvent(f"{field}: must be a string, not {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise InvalidEvent(f"{field}: must not be empty")
    if len(value) > limit:
        raise InvalidEvent(f"{field}: longer than {limit} characters")
    return value or None


def _id(message: Mapping[str, Any], field: str) -> str | None:
    """userId, anonymousId, previousId, groupId: strings or numbers, as the spec allows."""
    value = message.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidEvent(f"{field}: must be a string or a number, not {type(value).__name__}")
    if isinstance(value, float):
        value = int(value) if value.is_integer() else value
    text = str(value).strip()
    if len(text) > MAX_ID_LENGTH:
        raise InvalidEvent(f"{field}: longer than {MAX_ID_LENGTH} characters")
    return text or None


def _too_deep(value: Any, depth: int) -> bool:
    """Whether objects and lists nest more than MAX_NESTING levels in ``value`` (at level ``depth``)."""
    if depth > MAX_NESTING:
        return True
    if isinstance(value, dict):
        return any(_too_deep(item, depth + 1) for item in value.values())
    if isinstance(value, list):
        return any(_too_deep(item, depth + 1) for item in value)
    return False


def _nesting_problem(message: dict[str, Any]) -> str | None:
    """``field: nested more than … levels deep`` for the first top-level field nested too deep, or None."""
    for field, value in message.items():
        if _too_deep(value, 2):
            return f"{child_path('', field, 'event')}: nested more than {MAX_NESTING} levels deep"
    return None


def parse_time(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidEvent(f"{field}: must be an ISO-8601 date-time string, not {type(value).__name__}")
    try:
        return utc_moment(value)
    except ValueError as error:
        raise InvalidEvent(f"{field}: {error}") from None


def event_time(
    message: Mapping[str, Any], received_at: datetime, batch_sent_at: datetime | None, limits: ParseLimits
) -> datetime:
    """``timestamp`` if given; else ``originalTimestamp`` corrected for the client's clock skew."""
    timestamp = parse_time(message.get("timestamp"), "timestamp")
    message_sent_at = parse_time(message.get("sentAt"), "sentAt")
    field = "timestamp"
    if timestamp is None:
        original = parse_time(message.get("originalTimestamp"), "originalTimestamp")
        sent_at = message_sent_at or batch_sent_at
        field = "originalTimestamp"
        if original is None:
            timestamp = received_at
        elif sent_at is not None:
            try:
                timestamp = received_at - (sent_at - original)
            except OverflowError:  # absurd sentAt/originalTimestamp pairs (year 1 vs year 9999)
                corrected = f"{original.isoformat()} corrected by sentAt {sent_at.isoformat()}"
                raise InvalidEvent(f"{field}: {corrected} is out of range") from None
        else:
            timestamp = original
    if timestamp < limits.earliest:
        raise InvalidEvent(f"{field}: {timestamp.isoformat()} is before {limits.earliest.date().isoformat()}")
    if timestamp > received_at + limits.max_future:
        hours = int(limits.max_future.total_seconds() // 3600)
        raise InvalidEvent(f"{field}: {timestamp.isoformat()} is more than {hours} hours in the future")
    return timestamp


class IdentifierCollector:
    """Gathers an event's identifiers from every place the spec puts them."""

    def __init__(self, registry: KindRegistry) -> None:
        self.registry = registry
        self.usable: dict[tuple[str, str], None] = {}
        self.blocked: list[str] = []

    def add(self, kind: str, raw: Any, where: str) -> None:
        try:
            value = self.registry.normalize(kind, raw)
        except InvalidIdentifier as error:
            raise InvalidEvent(f"{where}: {error}") from None
        reason = self.registry.blocked_reason(kind, value)
        if reason is not None:
            self.blocked.append(f"{where} {reason}")
            return
        self.usable[(kind, value)] = None

    def add_traits(self, traits: Mapping[str, Any], where: str) -> None:
        for name, raw in traits.items():
            kind = snake(name)
            if kind not in self.registry or raw is None:
                continue
            values = raw if isinstance(raw, list) else [raw]
            for position, value in enumerate(values):
                suffix = f"[{position}]" if isinstance(raw, list) else ""
                self.add(kind, value, f"{where}.{name}{suffix}")

    def add_external_ids(self, external_ids: Any) -> None:
        if not isinstance(external_ids, list):
            raise InvalidEvent("context.externalIds: must be a list")
        for position, item in enumerate(external_ids):
            where = f"context.externalIds[{position}]"
            if not isinstance(item, dict):
                raise InvalidEvent(f"{where}: must be an object with id and type")
            kind = item.get("type")
            if not isinstance(kind, str) or snake(kind) not in self.registry:
                raise InvalidEvent(
                    f"{where}.type: {kind!r} is not a known identifier kind "
                    f"({', '.join(sorted(self.registry.rules))})"
                )
            if item.get("id") is None:
                raise InvalidEvent(f"{where}.id: is required")
            self.add(snake(kind), item["id"], f"{where}.id")

    def sorted_usable(self) -> list[tuple[str, str]]:
        return sorted(self.usable, key=lambda key: self.registry.priority(key[0]))


def _consents(context: Mapping[str, Any]) -> list[ConsentChange]:
    consent = context.get("consent")
    if consent is None:
        return []
    if not isinstance(consent, dict):
        raise InvalidEvent("context.consent: must be an object")
    changes: list[ConsentChange] = []

    def purposes(channel: str, preferences: Any, where: str) -> None:
        if not isinstance(preferences, dict):
            raise InvalidEvent(f"{where}: must be an object of purpose: true/false")
        for purpose, granted in preferences.items():
            key = str(purpose).strip().lower().replace(" ", "_")
            if not PURPOSE.match(key):
                raise InvalidEvent(f"{where}.{purpose}: a purpose is 1-60 letters, digits, _ or -")
            if not isinstance(granted, bool):
                raise InvalidEvent(f"{where}.{purpose}: must be true or false")
            changes.append(ConsentChange(channel, key, granted))

    if "categoryPreferences" in consent:
        purposes("*", consent["categoryPreferences"], "context.consent.categoryPreferences")
    channels = consent.get("channels")
    if channels is not None:
        if not isinstance(channels, dict):
            raise InvalidEvent("context.consent.channels: must be an object of channel: {purpose: bool}")
        for channel, preferences in channels.items():
            if channel not in CHANNELS and channel != "*":
                raise InvalidEvent(f"context.consent.channels.{channel}: unknown channel")
            purposes(channel, preferences, f"context.consent.channels.{channel}")
    return changes


def parse_message(
    message: Any,
    *,
    expected_type: str | None,
    source_id: str,
    default_channel: str,
    registry: KindRegistry,
    received_at: datetime,
    batch_sent_at: datetime | None,
    limits: ParseLimits,
) -> Touchpoint:
    """One Segment message -> a touchpoint, or InvalidEvent naming the first problem found."""
    if not isinstance(message, dict):
        raise InvalidEvent(f"event: must be a JSON object, not {type(message).__name__}")
    try:
        encoded = orjson.dumps(message)
    except orjson.JSONEncodeError:  # nested past the encoder's own limit
        encoded = b""
    # An event cannot nest deeper than it has opening brackets: the walk runs only for the rare event
    # with that many (or one the encoder refused).
    if not encoded or encoded.count(b"{") + encoded.count(b"[") > MAX_NESTING:
        problem = _nesting_problem(message)
        if problem is not None:
            raise InvalidEvent(problem)
        if not encoded:
            raise InvalidEvent("event: cannot be encoded as JSON")
    size = len(encoded)
    if size > limits.max_event_bytes:
        raise InvalidEvent(f"event: {size} bytes is over the {limits.max_event_bytes // 1024} KB limit")
    # PostgreSQL cannot store U+0000 in text or JSONB; refuse it here rather than fail the whole batch.
    if b"\\u0000" in encoded:
        where = nul_path(message, "event")
        if where is not None:
            raise InvalidEvent(f"{where}: {NUL_MESSAGE}")

    kind = message.get("type", expected_type)
    if expected_type is not None and kind != expected_type:
        raise InvalidEvent(f"type: {kind!r} sent to the /v1/{expected_type} endpoint")
    if kind is None:
        raise InvalidEvent(f"type: is required ({', '.join(EVENT_TYPES)})")
    if kind not in EVENT_TYPES:
        raise InvalidEvent(f"type: {kind!r} is not one of {', '.join(EVENT_TYPES)}")

    message_id = _string(message, "messageId", limit=MAX_ID_LENGTH) or f"parcours-{uuid.uuid4()}"
    user_id = _id(message, "userId")
    anonymous_id = _id(message, "anonymousId")
    context = _object(message, "context") or {}
    traits = _object(message, "traits") if kind in ("identify", "group") else None
    properties = _object(message, "properties") if kind in ("track", "page", "screen") else None
    _object(message, "integrations")
    context_traits = _object(context, "traits", "context.traits")
    if context_traits is not None and not isinstance(context_traits, dict):
        raise InvalidEvent("context.traits: must be an object")

    channel = default_channel
    if context.get("channel") is not None:
        raw_channel = context["channel"]
        if not isinstance(raw_channel, str) or raw_channel.strip().lower() not in CHANNELS:
            raise InvalidEvent(f"context.channel: {raw_channel!r} is not one of {', '.join(CHANNELS)}")
        channel = raw_channel.strip().lower()

    name: str | None = None
    previous_id: str | None = None
    if kind == "track":
        name = _string(message, "event", required=True)
    elif kind in ("page", "screen"):
        name = _string(message, "name")
    elif kind == "alias":
        previous_id = _id(message, "previousId")
        if previous_id is None:
            raise InvalidEvent("previousId: is required for alias")
        if user_id is None:
            raise InvalidEvent("userId: is required for alias")
    elif kind == "group":
        name = _id(message, "groupId")
        if name is None:
            raise InvalidEvent("groupId: is required for group")

    collector = IdentifierCollector(registry)
    if user_id is not None:
        collector.add("user_id", user_id, "userId")
    if anonymous_id is not None:
        collector.add("anonymous_id", anonymous_id, "anonymousId")
    if kind == "identify" and traits:
        collector.add_traits(traits, "traits")
    if context_traits:
        collector.add_traits(context_traits, "context.traits")
    if context.get("externalIds") is not None:
        collector.add_external_ids(context["externalIds"])
    if previous_id is not None:
        for previous_kind in ("user_id", "anonymous_id"):
            reason = registry.blocked_reason(previous_kind, previous_id)
            if reason is not None:
                raise InvalidEvent(f"previousId: {reason}")
        # An alias exists to link userId to previousId: with a blocked userId it would link nothing.
        reason = registry.blocked_reason("user_id", user_id) if user_id is not None else None
        if reason is not None:
            raise InvalidEvent(f"userId: {reason}; an alias needs a usable userId")
    identifiers = collector.sorted_usable()
    if not identifiers and previous_id is None:
        if collector.blocked:
            raise InvalidEvent("no usable identifier: " + "; ".join(collector.blocked))
        raise InvalidEvent(
            "userId or anonymousId is required (or another identifier in traits or context.externalIds)"
        )

    timestamp = event_time(message, received_at, batch_sent_at, limits)
    event_traits = traits if kind == "identify" else context_traits
    if kind == "group":
        properties = {"group_id": name, "traits": traits or {}}
    return Touchpoint(
        source_id=source_id,
        message_id=message_id,
        type=kind,
        channel=channel,
        timestamp=timestamp,
        received_at=received_at,
        identifiers=identifiers,
        name=name,
        user_id=user_id,
        anonymous_id=anonymous_id,
        previous_id=previous_id,
        traits=event_traits or None,
        properties=properties,
        context=context or None,
        consents=_consents(context),
    )
