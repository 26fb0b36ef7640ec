"""The identity domain's public interface: record touchpoints, read the unified view, consent, GDPR."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, tuple_, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from parcours.cursors import encode_cursor, read_cursor
from parcours.db.driver import DriverQuery, rows_together
from parcours.db.engine import forget_memo
from parcours.db.reference import reference
from parcours.db.types import stored_document, stored_moment, utcnow
from parcours.errors import Conflict, InvalidInput, NotFound
from parcours.identity.conflicts import (
    conflict_view,
    conflicts_involving,
    get_conflict,
    list_conflicts,
    review_conflict,
    settle_conflicts,
)
from parcours.identity.kinds import (
    InvalidIdentifier,
    KindRegistry,
    check_kind_definition,
    identifier_hash,
    spellings,
)
from parcours.identity.resolution import (
    instance_secret,
    lock_identity_graph,
    merge_profiles,
    merge_refusals,
    people,
    record_touchpoints,
)
from parcours.identity.touchpoints import RecordOutcome, Touchpoint
from parcours.identity.unmerge import unmerge
from parcours.inputs import iso_z, utc_moment
from parcours.models import (
    Consent,
    Event,
    Identifier,
    IdentifierKind,
    MatchKey,
    MatchReview,
    Merge,
    MergeBlock,
    Profile,
    Tombstone,
)
from parcours.vocabulary import CHANNELS, EVENT_TYPES

__all__ = [
    "RecordOutcome",
    "Touchpoint",
    "add_kind",
    "erase_profile",
    "export_profile",
    "find_profile_by",
    "find_profile_id",
    "list_conflicts",
    "list_kinds",
    "load_registry",
    "merge_conflict",
    "merge_customers",
    "merge_refusals",
    "people",
    "profile_view",
    "record_touchpoints",
    "resolve_profile_id",
    "review_conflict",
    "set_consent",
    "split_identifier",
    "timeline",
    "unmerge",
    "update_kind",
]

MAX_TIMELINE_PAGE = 500


_REGISTRY = "identifier_kinds"


def load_registry(session: Session, phone_region: str) -> KindRegistry:
    """The identifier kinds' rules, kept across transactions until a kind changes (``add_kind`` and
    ``update_kind`` make the next call of their own transaction read them again)."""
    return reference(session, f"{_REGISTRY}:{phone_region}", lambda: KindRegistry.load(session, phone_region))


def resolve_profile_id(session: Session, profile_id: str) -> str:
    """The active profile for an id: itself, or the survivor it was merged into (ids stay stable)."""
    return str(_active_profile_row(session, profile_id)[0])


def named_profile(
    session: Session, phone_region: str, *, profile_id: str | None, identifier: str | None
) -> str | None:
    """The profile a request names: by id (a merged-away id gives its survivor) or by an identifier in
    ``KIND:VALUE`` form; None when it names nobody (an anonymous sale)."""
    if profile_id and identifier:
        raise InvalidInput("give profile_id or identifier, not both")
    if profile_id:
        return resolve_profile_id(session, profile_id)
    if identifier:
        return find_profile_by(session, phone_region, identifier)
    return None


def split_identifier(text: str) -> tuple[str, str]:
    """``KIND:VALUE`` (``loyalty_card:2901 2345 6789 0``) -> (kind, value), or InvalidInput."""
    kind, sep, value = text.partition(":")
    if not sep or not kind.strip() or not value.strip():
        raise InvalidInput(
            "identifier: expected KIND:VALUE, e.g. email:ana@example.com or loyalty_card:2901234567890"
        )
    return kind.strip(), value


def find_profile_by(session: Session, phone_region: str, identifier: str) -> str:
    """The profile holding an identifier given as ``KIND:VALUE``, the value in any reasonable form."""
    kind, value = split_identifier(identifier)
    return find_profile_id(session, load_registry(session, phone_region), kind, value)


_HOLDER = DriverQuery(
    select(Identifier.profile_id).where(
        Identifier.kind == bindparam("kind"), Identifier.value == bindparam("value")
    )
)


def find_profile_id(session: Session, registry: KindRegistry, kind: str, raw_value: str) -> str:
    """The profile holding an identifier, given in any reasonable form (``06 12 34 56 78``)."""
    if kind not in registry:
        raise InvalidInput(f"identifier: unknown kind {kind!r}; known: {', '.join(sorted(registry.rules))}")
    try:
        value = registry.normalize(kind, raw_value)
    except InvalidIdentifier as error:
        raise InvalidInput(f"identifier: {kind} {error}") from None
    profile_id = holder_of(session, kind, value)
    if profile_id is None:
        raise NotFound(f"no profile has the identifier {kind}:{value}")
    return profile_id


def holder_of(session: Session, kind: str, value: str) -> str | None:
    """The profile holding a normalised identifier, or None. Always an active profile: a merge moves
    the merged profile's identifiers to its survivor, an unmerge moves them back."""
    rows = _HOLDER.rows(session, kind=kind, value=value)
    return str(rows[0][0]) if rows else None


# The unified view is read far more often than anything else: its statements are built once and run on
# the driver's cursor (``DriverQuery``), their values converted here as the column types would.
_PID: BindParameter[str] = bindparam("pid")
_PROFILE_ROW = DriverQuery(
    select(Profile.id, Profile.merged_into_id, Profile.created_at, Profile.updated_at, Profile.traits).where(
        Profile.id == _PID
    )
)
_IDENTIFIERS = DriverQuery(
    select(Identifier.kind, Identifier.value, Identifier.first_seen_at, Identifier.last_seen_at)
    .where(Identifier.profile_id == _PID)
    .order_by(Identifier.kind, Identifier.value)
)
_CHANNELS = DriverQuery(
    select(Event.channel, func.min(Event.timestamp), func.max(Event.timestamp), func.count())
    .where(Event.profile_id == _PID)
    .group_by(Event.channel)
    .order_by(func.min(Event.timestamp), Event.channel)
)
_MERGED_FROM = DriverQuery(
    select(Profile.id).where(Profile.merged_into_id == _PID).order_by(Profile.created_at, Profile.id)
)
_CONSENTS = DriverQuery(
    select(Consent.channel, Consent.purpose, Consent.granted, Consent.source, Consent.recorded_at)
    .where(Consent.profile_id == _PID)
    .order_by(Consent.recorded_at, Consent.id)
)


def _stored_iso(value: Any) -> str | None:
    """A stored timestamp, as the driver returns it, in the API's form (``2026-02-01T09:00:00Z``)."""
    return iso_z(stored_moment(value))


def _current_consent(session: Session, profile_id: str) -> list[dict[str, Any]]:
    """The consent in force: the newest record for each (channel, purpose)."""
    return _consent_in_force(_CONSENTS.rows(session, pid=profile_id))


def _consent_in_force(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """The newest of the consent rows (oldest first, as ``_CONSENTS`` reads them) for each (channel,
    purpose)."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for channel, purpose, granted, source, recorded_at in rows:
        latest[(channel, purpose)] = {
            "channel": channel,
            "purpose": purpose,
            "granted": bool(granted),
            "source": source,
            "recorded_at": _stored_iso(recorded_at),
        }
    return [latest[key] for key in sorted(latest)]


def _active_profile_row(session: Session, requested_id: str) -> tuple[Any, ...]:
    """The (id, merged_into_id, created_at, updated_at, traits) row of the active profile for an id, as
    the driver returns it, following a merged-away id to its survivor."""
    return _survivor_row(session, requested_id, _PROFILE_ROW.rows(session, pid=requested_id))


def _survivor_row(session: Session, requested_id: str, rows: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """The active profile's row, from the rows ``_PROFILE_ROW`` read for ``requested_id``."""
    for _ in range(1000):
        if not rows:
            raise NotFound(f"profile {requested_id} not found")
        if rows[0][1] is None:
            return rows[0]
        rows = _PROFILE_ROW.rows(session, pid=rows[0][1])
    raise Conflict(f"profile {requested_id} has a merge chain that does not end")


_VIEW_PARTS = (_CHANNELS, _IDENTIFIERS, _CONSENTS, _MERGED_FROM)


def profile_view(session: Session, requested_id: str) -> dict[str, Any]:
    """The unified view: traits, identifiers, channels used (first/last seen, counts), consent.

    The profile's row and the four parts of its view are read together, for the id asked: on PostgreSQL
    that is one round trip (``rows_together``). An id merged away is rare; it costs a second read of the
    parts, for its survivor."""
    asked = {"pid": requested_id}
    profile, *parts = rows_together(
        session, [(_PROFILE_ROW, asked), *((part, asked) for part in _VIEW_PARTS)]
    )
    profile_id, _, created_at, updated_at, traits = _survivor_row(session, requested_id, profile)
    if profile_id != requested_id:
        survivor = {"pid": profile_id}
        parts = rows_together(session, [(part, survivor) for part in _VIEW_PARTS])
    channels, identifiers, consents, merged_from = parts
    channel_rows = [
        (channel, stored_moment(first), stored_moment(last), count)
        for channel, first, last, count in channels
    ]
    view: dict[str, Any] = {
        "id": profile_id,
        "created_at": _stored_iso(created_at),
        "updated_at": _stored_iso(updated_at),
        "traits": stored_document(traits),
        "identifiers": [
            {
                "kind": kind,
                "value": value,
                "first_seen_at": _stored_iso(first),
                "last_seen_at": _stored_iso(last),
            }
            for kind, value, first, last in identifiers
        ],
        "channels": [
            {"channel": channel, "first_seen_at": iso_z(first), "last_seen_at": iso_z(last), "events": count}
            for channel, first, last, count in channel_rows
        ],
        # When the customer was first and last seen on any channel (created_at: when Parcours learnt of them).
        "first_seen_at": iso_z(min((row[1] for row in channel_rows if row[1]), default=None)),
        "last_seen_at": iso_z(max((row[2] for row in channel_rows if row[2]), default=None)),
        "consent": _consent_in_force(consents),
        "merged_from": [merged for (merged,) in merged_from],
    }
    if requested_id != profile_id:
        view["requested_id"] = requested_id
    return view


# An event's columns as the API shows it. The timeline and the export read them as rows, not as ORM
# objects: a third less time for a page of 500 events.
_EVENT_COLUMNS = (
    Event.id,
    Event.type,
    Event.name,
    Event.channel,
    Event.timestamp,
    Event.received_at,
    Event.message_id,
    Event.source_id,
    Event.user_id,
    Event.anonymous_id,
    Event.identifiers,
    Event.traits,
    Event.properties,
    Event.context,
)


def event_view(event: Sequence[Any]) -> dict[str, Any]:
    """An event (a row of ``_EVENT_COLUMNS``) as the API shows it."""
    (
        event_id, kind, name, channel, timestamp, received_at, message_id, source_id, user_id, anonymous_id,
        identifiers, traits, properties, context,
    ) = event  # fmt: skip
    return {
        "id": event_id,
        "type": kind,
        "name": name,
        "channel": channel,
        "timestamp": iso_z(timestamp),
        "received_at": iso_z(received_at),
        "message_id": message_id,
        "source_id": source_id,
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "identifiers": identifiers,
        "traits": traits,
        "properties": properties,
        "context": context,
    }


TIMELINE_ORDERS = ("asc", "desc")


def _moment_param(value: str | None, field: str) -> datetime | None:
    """An ISO-8601 date-time query parameter (UTC when it names no offset), or InvalidInput naming it."""
    if value is None or not value.strip():
        return None
    try:
        return utc_moment(value)
    except ValueError as error:
        raise InvalidInput(f"{field}: {error}") from None


def timeline(
    session: Session,
    requested_id: str,
    *,
    limit: int = 50,
    cursor: str | None = None,
    channels: list[str] | None = None,
    types: list[str] | None = None,
    order: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> dict[str, Any]:
    """Every event of the profile across channels, cursor-paginated: oldest first (``order="asc"``, the
    default) or newest first (``"desc"``); ``since`` (inclusive) and ``until`` (exclusive) bound the
    events' timestamps. A cursor carries its order: ``order`` may be left out with it."""
    if not 1 <= limit <= MAX_TIMELINE_PAGE:
        raise InvalidInput(f"limit: must be between 1 and {MAX_TIMELINE_PAGE}")
    for channel in channels or []:
        if channel not in CHANNELS:
            raise InvalidInput(f"channel: unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")
    for kind in types or []:
        if kind not in EVENT_TYPES:
            raise InvalidInput(
                f"type: unknown event type {kind[:40]!r}; expected one of {', '.join(EVENT_TYPES)}"
            )
    if order is not None and order not in TIMELINE_ORDERS:
        raise InvalidInput(f"order: {order[:20]!r} is not asc (oldest first) or desc (newest first)")
    start, end = _moment_param(since, "since"), _moment_param(until, "until")
    if start is not None and end is not None and start >= end:
        raise InvalidInput("until: must be later than since")
    position: tuple[datetime, str] | None = None
    if cursor:  # a cursor carries its order: sent with the other one, it would skip or repeat events
        moment, event_id, tag = read_cursor(cursor)
        cursor_descending = tag == "desc"
        if order is not None and (order == "desc") != cursor_descending:
            raise InvalidInput(f"cursor: it pages the timeline in the other order than order={order}")
        position, order = (moment, event_id), "desc" if cursor_descending else "asc"
    descending = order == "desc"
    profile_id = resolve_profile_id(session, requested_id)
    query = select(*_EVENT_COLUMNS).where(Event.profile_id == profile_id)
    if channels:
        query = query.where(Event.channel.in_(channels))
    if types:
        query = query.where(Event.type.in_(types))
    if start is not None:
        query = query.where(Event.timestamp >= start)
    if end is not None:
        query = query.where(Event.timestamp < end)
    if position is not None:
        after = tuple_(Event.timestamp, Event.id)
        query = query.where(after < tuple_(*position) if descending else after > tuple_(*position))
    ordering = (Event.timestamp.desc(), Event.id.desc()) if descending else (Event.timestamp, Event.id)
    rows = list(session.connection().execute(query.order_by(*ordering).limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(
            rows[limit - 1].timestamp, rows[limit - 1].id, "desc" if descending else None
        )
    return {
        "profile_id": profile_id,
        "order": "desc" if descending else "asc",
        "data": [event_view(e) for e in rows[:limit]],
        "next_cursor": next_cursor,
    }


def set_consent(
    session: Session, requested_id: str, *, channel: str, purpose: str, granted: bool, source: str
) -> dict[str, Any]:
    if channel != "*" and channel not in CHANNELS:
        raise InvalidInput(f"channel: unknown channel {channel!r}; use '*' or one of {', '.join(CHANNELS)}")
    lock_identity_graph(session)  # a merge moves consents with the profile: never decide on a stale view
    profile_id = resolve_profile_id(session, requested_id)
    session.add(
        Consent(
            profile_id=profile_id,
            channel=channel,
            purpose=purpose,
            granted=granted,
            source=source,
            event_id=None,
            recorded_at=utcnow(),
        )
    )
    session.flush()
    return {"profile_id": profile_id, "consent": _current_consent(session, profile_id)}


MAX_MERGE_REASON = 120


def merge_customers(
    session: Session,
    registry: KindRegistry,
    profile_id: str,
    other: str,
    *,
    actor: str,
    reason: str | None = None,
) -> dict[str, Any]:
    """A person decided that two profiles are one customer: merge them through the core merge, recorded
    (who, and why) and reversible with unmerge. Both ids may be merged-away ids (their survivors are
    merged). The merge rules still hold (``Conflict`` naming the rule); an earlier unmerge of the pair
    does not, since this is a person's newer decision about the same pair."""
    merge = _merge_by_hand(session, registry, profile_id, other, actor=actor, reason=reason)
    return {
        "merge_id": merge.id,
        "rule": merge.rule,
        "merged_id": merge.merged_id,
        "survivor": profile_view(session, merge.survivor_id),
    }


def _merge_by_hand(
    session: Session, registry: KindRegistry, profile_id: str, other: str, *, actor: str, reason: str | None
) -> Merge:
    """``merge_customers`` without the survivor's view: the merge record."""
    lock_identity_graph(session)
    first, second = resolve_profile_id(session, profile_id), resolve_profile_id(session, other)
    if first == second:
        raise Conflict(f"the two profiles are already one customer ({first})")
    reason = " ".join((reason or "").split())
    if len(reason) > MAX_MERGE_REASON:
        raise InvalidInput(f"reason: at most {MAX_MERGE_REASON} characters")
    rule = f"merged by hand by {' '.join(actor.split())[:60]}" + (f": {reason}" if reason else "")
    pair = sorted((first, second))
    reviewed = list(  # the pair waiting in the review queue: this person's merge decides it
        session.scalars(
            select(MatchReview.id).where(
                MatchReview.profile_a == pair[0],
                MatchReview.profile_b == pair[1],
                MatchReview.status == "pending",
            )
        )
    )
    merge_id = merge_profiles(session, registry, first, second, rule=rule, overrule_unmerge=True)
    merge = session.get(Merge, merge_id)
    assert merge is not None
    if reviewed:
        session.execute(
            update(MatchReview)
            .where(MatchReview.id.in_(reviewed))
            .values(status="accepted", decided_at=merge.created_at, merge_id=merge_id)
        )
    settle_conflicts(session, people(session, merge.survivor_id), merge_id=merge_id, decided_by=actor)
    return merge


def merge_conflict(
    session: Session,
    registry: KindRegistry,
    conflict_id: str,
    *,
    actor: str,
    reason: str | None = None,
) -> dict[str, Any]:
    """A reviewer decided that the profiles an identity conflict kept apart are one customer: merge them
    by hand (``merge_customers``: the merge rules still hold, an unmerge's block is lifted), which marks
    the conflict ``merged``. A conflict that names no other profile cannot be settled by a merge."""
    lock_identity_graph(session)
    conflict = get_conflict(session, conflict_id)
    if conflict.status != "open":
        raise Conflict(f"identity conflict {conflict.id} is {conflict.status}, not open")
    if not conflict.other_profile_ids:
        raise Conflict(
            f"identity conflict {conflict.id} names no other profile: {conflict.rule} left identifiers "
            "out of the customer's profile, and no merge changes that (raise the kind's limit with "
            "PATCH /v1/identity/kinds/{name}, or dismiss the conflict)"
        )
    customers: list[str] = []
    for pid in conflict.named_profile_ids:
        current = resolve_profile_id(session, pid)
        if current not in customers:
            customers.append(current)
    reason = reason or f"identity conflict {conflict.id}"
    merge_ids = [
        _merge_by_hand(session, registry, customers[0], other, actor=actor, reason=reason).id
        for other in customers[1:]
    ]
    if conflict.status == "open":  # already one customer (merged meanwhile): nothing left to merge
        settle_conflicts(session, people(session, customers[0]), merge_id=None, decided_by=actor)
    return {
        "conflict": conflict_view(conflict),
        "merge_ids": merge_ids,
        "survivor": profile_view(session, customers[0]),
    }


def export_profile(session: Session, requested_id: str) -> dict[str, Any]:
    """Everything held about the person (GDPR access / portability)."""
    view = profile_view(session, requested_id)
    profile_id = view["id"]
    ids = people(session, profile_id)
    events = [
        event_view(e)
        for e in session.connection().execute(
            select(*_EVENT_COLUMNS).where(Event.profile_id == profile_id).order_by(Event.timestamp, Event.id)
        )
    ]
    consents = [
        {
            "channel": c.channel,
            "purpose": c.purpose,
            "granted": c.granted,
            "source": c.source,
            "event_id": c.event_id,
            "recorded_at": iso_z(c.recorded_at),
        }
        for c in session.scalars(
            select(Consent).where(Consent.profile_id == profile_id).order_by(Consent.recorded_at, Consent.id)
        )
    ]
    merges = [
        {
            "id": m.id,
            "survivor_id": m.survivor_id,
            "merged_id": m.merged_id,
            "event_id": m.event_id,
            "linking_identifiers": m.linking_identifiers,
            "rule": m.rule,
            "created_at": iso_z(m.created_at),
            "undone_at": iso_z(m.undone_at),
        }
        for m in session.scalars(
            select(Merge)
            .where(or_(Merge.survivor_id.in_(ids), Merge.merged_id.in_(ids)))
            .order_by(Merge.created_at, Merge.id)
        )
    ]
    conflicts = [conflict_view(c) for c in conflicts_involving(session, ids)]
    return {
        "exported_at": iso_z(utcnow()),
        "profile": view,
        "profile_ids": ids,
        "events": events,
        "consent_history": consents,
        "merges": merges,
        "identity_conflicts": conflicts,
    }


def erase_profile(session: Session, requested_id: str) -> dict[str, Any]:
    """Erase the person from every table; keep keyed hashes of their identifiers as tombstones."""
    lock_identity_graph(session)
    profile_id = resolve_profile_id(session, requested_id)
    ids = people(session, profile_id)
    secret = instance_secret(session)
    now = utcnow()
    identifiers = session.execute(
        select(Identifier.kind, Identifier.value, IdentifierKind.normalizer)
        .join(IdentifierKind, IdentifierKind.name == Identifier.kind)
        .where(Identifier.profile_id.in_(ids))
    ).all()
    hashes = {
        identifier_hash(secret, kind, spelling)
        for kind, value, normalizer in identifiers
        for spelling in spellings(normalizer, value)
    }
    existing = set(
        session.scalars(select(Tombstone.identifier_hash).where(Tombstone.identifier_hash.in_(hashes)))
    )
    session.add_all(Tombstone(identifier_hash=h, erased_at=now) for h in sorted(hashes - existing))
    session.execute(update(Tombstone).where(Tombstone.identifier_hash.in_(existing)).values(erased_at=now))
    event_count = (
        session.scalar(select(func.count()).select_from(Event).where(Event.profile_id.in_(ids))) or 0
    )
    session.execute(delete(Consent).where(Consent.profile_id.in_(ids)))
    session.execute(delete(Event).where(Event.profile_id.in_(ids)))
    session.execute(delete(Identifier).where(Identifier.profile_id.in_(ids)))
    for conflict in conflicts_involving(session, ids):
        session.delete(conflict)
    session.execute(delete(Merge).where(or_(Merge.survivor_id.in_(ids), Merge.merged_id.in_(ids))))
    session.execute(
        delete(MergeBlock).where(or_(MergeBlock.profile_a.in_(ids), MergeBlock.profile_b.in_(ids)))
    )
    session.execute(delete(MatchKey).where(MatchKey.profile_id.in_(ids)))
    _erase_service_and_commerce(session, ids)
    session.execute(
        delete(MatchReview).where(or_(MatchReview.profile_a.in_(ids), MatchReview.profile_b.in_(ids)))
    )
    session.flush()
    session.execute(update(Profile).where(Profile.id.in_(ids)).values(merged_into_id=None))
    session.execute(delete(Profile).where(Profile.id.in_(ids)))
    return {
        "erased_profile_id": profile_id,
        "profiles": len(ids),
        "events": event_count,
        "identifiers": len(identifiers),
    }


def _erase_service_and_commerce(session: Session, ids: list[str]) -> None:
    """The person's conversations (messages, events, SLA clocks, satisfaction answers) and loyalty ledger
    go; orders and reservations stay as the business's records, no longer linked to anyone."""
    from parcours.models import (
        Conversation,
        CsatSurvey,
        InboxEvent,
        LoyaltyEntry,
        Message,
        Order,
        Reservation,
        SlaClock,
    )

    conversations = select(Conversation.id).where(Conversation.profile_id.in_(ids))
    for model in (Message, InboxEvent, SlaClock, CsatSurvey):
        session.execute(delete(model).where(model.conversation_id.in_(conversations)))
    session.execute(delete(Conversation).where(Conversation.profile_id.in_(ids)))
    session.execute(delete(LoyaltyEntry).where(LoyaltyEntry.profile_id.in_(ids)))
    session.execute(update(Order).where(Order.profile_id.in_(ids)).values(profile_id=None))
    session.execute(update(Reservation).where(Reservation.profile_id.in_(ids)).values(profile_id=None))


MERGE_CHANGES = ("merged", "unmerged")
MAX_CHANGES_PAGE = 1000


def merge_changes(
    session: Session, *, since: str | None = None, cursor: str | None = None, limit: int = 100
) -> dict[str, Any]:
    """Every merge and unmerge of the identity graph, oldest first, cursor-paginated: what a system that
    stores profile ids needs to follow them (after ``merged``, ``merged_id`` answers as ``survivor_id``;
    after ``unmerged``, it is a customer of its own again). ``since``: changes at or after that time."""
    if not 1 <= limit <= MAX_CHANGES_PAGE:
        raise InvalidInput(f"limit: must be between 1 and {MAX_CHANGES_PAGE}")
    start = _moment_param(since, "since")
    position: tuple[datetime, str, int] | None = None
    if cursor:
        at, merge_id, change = read_cursor(cursor, tags=MERGE_CHANGES)
        if change is None:
            raise InvalidInput("cursor: not a position this API gave")
        position = (at, merge_id, MERGE_CHANGES.index(change))
    found: list[tuple[tuple[datetime, str, int], Merge]] = []
    for rank, column in enumerate((Merge.created_at, Merge.undone_at)):
        query = select(Merge).where(column.is_not(None))
        if start is not None:
            query = query.where(column >= start)
        if position is not None:  # from the cursor's (time, merge): the change kind is checked below
            query = query.where(tuple_(column, Merge.id) >= tuple_(position[0], position[1]))
        for merge in session.scalars(query.order_by(column, Merge.id).limit(limit + 2)):
            changed_at = merge.created_at if rank == 0 else merge.undone_at
            assert changed_at is not None
            found.append(((changed_at, merge.id, rank), merge))
    found.sort(key=lambda item: item[0])
    if position is not None:
        found = [item for item in found if item[0] > position]
    page = found[:limit]
    data = [
        {
            "change": MERGE_CHANGES[rank],
            "at": iso_z(at),
            "merge_id": merge.id,
            "survivor_id": merge.survivor_id,
            "merged_id": merge.merged_id,
            "rule": merge.rule,
            "event_id": merge.event_id,
        }
        for (at, _, rank), merge in page
    ]
    next_cursor = None
    if len(found) > limit:
        at, merge_id, rank = page[-1][0]
        next_cursor = encode_cursor(at, merge_id, MERGE_CHANGES[rank])
    return {"data": data, "next_cursor": next_cursor}


def kind_view(kind: IdentifierKind) -> dict[str, Any]:
    return {
        "name": kind.name,
        "priority": kind.priority,
        "max_per_profile": kind.max_per_profile,
        "normalizer": kind.normalizer,
        "blocked_values": kind.blocked_values,
        "blocked_patterns": kind.blocked_patterns,
        "builtin": kind.builtin,
        "description": kind.description,
    }


def list_kinds(session: Session) -> list[dict[str, Any]]:
    return [kind_view(k) for k in session.scalars(select(IdentifierKind).order_by(IdentifierKind.priority))]


def blocked_values_in_use(session: Session, registry: KindRegistry, kind_name: str) -> list[dict[str, Any]]:
    """The kind's blocked values that a profile still holds (stored before they were blocked: a shared
    in-store tablet's device id found out late), each with its customer and the merges in force that it
    linked, latest first: what ``undo_blocked_merges`` would undo."""
    kind = session.get(IdentifierKind, kind_name)
    if kind is None:
        raise NotFound(f"identifier kind {kind_name!r} not found")
    forms: set[str] = set()
    for blocked in kind.blocked_values:
        forms.update({blocked, blocked.strip(), blocked.strip().lower()})
        with contextlib.suppress(InvalidIdentifier):  # a blocked value need not be a valid one
            forms.add(registry.normalize(kind_name, blocked))
    if not forms:
        return []
    held = session.execute(
        select(Identifier.value, Identifier.profile_id)
        .where(Identifier.kind == kind_name, Identifier.value.in_(sorted(forms)))
        .order_by(Identifier.value)
    ).all()
    found = []
    for value, customer in held:  # an identifier's holder is an active profile (``holder_of``)
        key = f"{kind_name}:{value}"
        merges = session.scalars(
            select(Merge)
            .where(Merge.survivor_id.in_(people(session, customer)), Merge.undone_at.is_(None))
            .order_by(Merge.created_at.desc(), Merge.id.desc())
        )
        found.append(
            {
                "value": value,
                "profile_id": customer,
                "merges": [
                    {
                        "id": m.id,
                        "merged_id": m.merged_id,
                        "survivor_id": m.survivor_id,
                        "created_at": iso_z(m.created_at),
                    }
                    for m in merges
                    if key in m.linking_identifiers
                ],
            }
        )
    return found


def undo_blocked_merges(session: Session, registry: KindRegistry, kind_name: str) -> dict[str, Any]:
    """Undo every merge in force that a now-blocked value of the kind linked, latest first (each with
    unmerge: exact, and the pair is kept apart from then on). A merge that cannot be undone now (its
    survivor was since merged elsewhere) is listed with the reason, and the others still are."""
    undone: list[str] = []
    refused: list[dict[str, str]] = []
    for item in blocked_values_in_use(session, registry, kind_name):
        for merge in item["merges"]:
            try:
                with session.begin_nested():
                    unmerge(session, merge["merged_id"], merge["id"])
                undone.append(merge["id"])
            except Conflict as error:
                refused.append({"merge_id": merge["id"], "reason": error.message})
    return {"undone": undone, "refused": refused}


def add_kind(
    session: Session,
    *,
    name: str,
    priority: int,
    max_per_profile: int,
    normalizer: str = "text",
    blocked_values: list[str] | None = None,
    blocked_patterns: list[str] | None = None,
    description: str = "",
) -> dict[str, Any]:
    check_kind_definition(name, normalizer, max_per_profile, blocked_patterns or [])
    if session.get(IdentifierKind, name) is not None:
        raise Conflict(f"identifier kind {name!r} already exists")
    kind = IdentifierKind(
        name=name,
        priority=priority,
        max_per_profile=max_per_profile,
        normalizer=normalizer,
        blocked_values=list(blocked_values or []),
        blocked_patterns=list(blocked_patterns or []),
        builtin=False,
        description=description,
    )
    session.add(kind)
    session.flush()
    forget_memo(session, _REGISTRY)
    return kind_view(kind)


def update_kind(
    session: Session,
    name: str,
    *,
    priority: int | None = None,
    max_per_profile: int | None = None,
    blocked_values: list[str] | None = None,
    blocked_patterns: list[str] | None = None,
) -> dict[str, Any]:
    """Change a kind's merge rules (its normaliser is fixed: stored values depend on it)."""
    kind = session.get(IdentifierKind, name)
    if kind is None:
        raise NotFound(f"identifier kind {name!r} not found")
    check_kind_definition(
        name,
        kind.normalizer,
        max_per_profile if max_per_profile is not None else kind.max_per_profile,
        blocked_patterns if blocked_patterns is not None else kind.blocked_patterns,
    )
    if priority is not None:
        kind.priority = priority
    if max_per_profile is not None:
        kind.max_per_profile = max_per_profile
    if blocked_values is not None:
        kind.blocked_values = list(blocked_values)
    if blocked_patterns is not None:
        kind.blocked_patterns = list(blocked_patterns)
    session.flush()
    forget_memo(session, _REGISTRY)
    return kind_view(kind)
