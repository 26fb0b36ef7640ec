"""Real-time identity resolution: every touchpoint lands on one profile, merging when rules allow.

Rules, applied to each touchpoint in arrival order:

* no known identifier -> a new profile;
* known identifiers all on one profile -> attach to it;
* known identifiers on several profiles -> merge them into the oldest, unless a rule forbids it
  (per-kind limit, or a pair that was unmerged before); then the event attaches to the profile of its
  highest-priority known identifier and a conflict is recorded for review.

New identifiers then join the chosen profile while their kind's limit allows. When the event's
highest-priority identifier is new and its kind is already full on that profile (a second ``user_id``
on a shared device's anonymous profile), the event starts a new profile instead.

Writers are serialised per database (SQLite's write lock; an advisory lock on PostgreSQL) so the
graph is never decided on stale reads; the unique ``(kind, value)`` constraint backs it up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import combinations
from typing import Any

import numpy as np
from sqlalchemy import BindParameter, bindparam, delete, func, literal, or_, select, text, update
from sqlalchemy.orm import Session

from parcours.db.base import table_of
from parcours.db.bulk import BulkWriter
from parcours.db.driver import DriverQuery
from parcours.db.probes import probe_unique
from parcours.db.types import utcnow
from parcours.errors import Conflict
from parcours.identity.conflicts import conflict_profile_rows
from parcours.identity.kinds import KindRegistry, identifier_hash
from parcours.identity.touchpoints import RecordOutcome, Touchpoint, iso_key
from parcours.ids import new_id
from parcours.matching.realtime import (
    BlockingIndex,
    MatchPolicy,
    PairScores,
    find_candidates,
    keys_of,
    record_from_traits,
    store_keys,
)
from parcours.matching.records import PersonRecord
from parcours.models import (
    Consent,
    Event,
    Identifier,
    IdentityConflict,
    IdentityConflictProfile,
    IdentityGraphVersion,
    InstanceSetting,
    MatchReview,
    Merge,
    MergeBlock,
    Profile,
    Tombstone,
)

EVENT_COLUMNS = (
    "id",
    "source_id",
    "message_id",
    "type",
    "name",
    "channel",
    "profile_id",
    "origin_profile_id",
    "timestamp",
    "received_at",
    "user_id",
    "anonymous_id",
    "identifiers",
    "traits",
    "properties",
    "context",
)
EVENT_PROFILE = EVENT_COLUMNS.index("profile_id")
PROFILE_COLUMNS = ("id", "created_at", "updated_at", "merged_into_id", "traits", "trait_times")
IDENTIFIER_COLUMNS = ("kind", "value", "profile_id", "source_event_id", "first_seen_at", "last_seen_at")

IDENTITY_LOCK_KEY = 0x50617263  # "Parc": the PostgreSQL advisory lock that serialises graph writers
CHUNK = 500

Key = tuple[str, str]


@dataclass(frozen=True)
class GraphLock:
    previous_token: str  # the token the graph's last writer left
    token: str  # the token this transaction leaves, if it commits


# Every write transaction of the graph runs these: on the driver's cursor (``parcours.db.driver``).
_GRAPH_ADVISORY_LOCK = DriverQuery(text("SELECT pg_advisory_xact_lock(:key)"))
_READ_GRAPH_TOKEN = DriverQuery(select(IdentityGraphVersion.token).where(IdentityGraphVersion.id == 1))
_WRITE_GRAPH_TOKEN = DriverQuery(
    update(IdentityGraphVersion).where(IdentityGraphVersion.id == 1).values(token=bindparam("token"))
)


def lock_identity_graph(session: Session) -> GraphLock:
    """Serialise writers of the identity graph for the rest of this transaction, and mark the graph as
    changed by this transaction (see ``GraphCache``). Every writer of profiles, identifiers, consents or
    merge blocks calls this first."""
    if session.get_bind().dialect.name == "postgresql":
        _GRAPH_ADVISORY_LOCK.rows(session, key=IDENTITY_LOCK_KEY)
    # SQLite: the writer session began with BEGIN IMMEDIATE and already holds the database write lock.
    found = _READ_GRAPH_TOKEN.rows(session)
    if not found or found[0][0] is None:
        raise RuntimeError("identity graph version row missing: run `parcours db upgrade`")
    token = new_id("gv")
    _WRITE_GRAPH_TOKEN.run(session, token=token)
    return GraphLock(str(found[0][0]), token)


def people(session: Session, profile_id: str) -> list[str]:
    """A profile and every profile merged into it, directly or not (for an active profile: the whole
    customer): the profile first, then the others nearest first, in one recursive query (merge chains
    are bounded as in ``service._active_profile_row``)."""
    tree = (
        select(Profile.id, literal(0).label("depth"))
        .where(Profile.id == profile_id)
        .cte("tree", recursive=True)
    )
    tree = tree.union_all(
        select(Profile.id, tree.c.depth + 1).where(Profile.merged_into_id == tree.c.id, tree.c.depth < 1000)
    )
    found = list(session.scalars(select(tree.c.id).order_by(tree.c.depth, tree.c.id)))
    return found or [profile_id]


class GraphCache:
    """The part of the identity graph this process has read or written, kept between write transactions
    so that a warm stream of events does not read back what the previous batch just wrote.

    It is trusted only while no one else has written the graph: every writer leaves a new random token
    in ``identity_graph_version`` (``lock_identity_graph``), and a batch that finds a token other than
    the one this cache's last batch left starts from an empty cache. A batch that rolls back leaves the
    old token in the database, which then matches no cache, so its in-memory changes are dropped too.
    Used by one writer at a time (writers hold the graph lock); ``max_identifiers`` bounds its size:
    past it, the next batch starts empty."""

    def __init__(self, max_identifiers: int = 200_000, max_blocking_entries: int = 1_000_000) -> None:
        self.max_identifiers = max_identifiers
        self.max_blocking_entries = max_blocking_entries
        self.token: str | None = None
        self.idents: dict[Key, _IdentState] = {}
        self.profiles: dict[str, _ProfileState] = {}
        # Merged-away profile id -> the profile it was merged into (follow the chain to the survivor).
        self.redirects: dict[str, str] = {}
        self.blocks: set[frozenset[str]] = set()
        self.blocks_loaded: set[str] = set()
        # Real-time matching's blocking keys: who holds each key read so far.
        self.blocking = BlockingIndex()
        # No one has been erased (erasure takes the graph lock, so a new token resets this).
        self.no_tombstones = False

    def begin(self, lock: GraphLock) -> None:
        if (
            self.token != lock.previous_token
            or len(self.idents) > self.max_identifiers
            or self.blocking.size > self.max_blocking_entries
        ):
            self.idents, self.profiles, self.redirects = {}, {}, {}
            self.blocks, self.blocks_loaded = set(), set()
            self.blocking = BlockingIndex()
            self.no_tombstones = False
        self.token = lock.token

    def forget(self) -> None:
        """Distrust everything held (after a failed batch)."""
        self.token = None


def instance_secret(session: Session) -> str:
    secret = session.get(InstanceSetting, "secret")
    if secret is None:
        raise RuntimeError("instance secret missing: run `parcours db upgrade`")
    return secret.value


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def apply_traits(
    traits: dict[str, Any], trait_times: dict[str, Any], new: dict[str, Any], version: list[str]
) -> bool:
    """Last write wins per trait, by (event timestamp, event id). Returns whether anything changed."""
    changed = False
    for name, value in new.items():
        current = trait_times.get(name)
        if current is None or version >= current:
            if traits.get(name) != value or current != version:
                changed = True
            traits[name] = value
            trait_times[name] = version
    return changed


def combine_traits(
    into_traits: dict[str, Any],
    into_times: dict[str, Any],
    other_traits: dict[str, Any],
    other_times: dict[str, Any],
) -> None:
    for name, version in other_times.items():
        current = into_times.get(name)
        if current is None or version > current:
            into_traits[name] = other_traits.get(name)
            into_times[name] = version


@dataclass
class _ProfileState:
    id: str
    created_at: datetime
    traits: dict[str, Any]
    trait_times: dict[str, Any]
    persisted: bool
    # API-recorded consent rows (no event) of profiles merged into this one in this batch; its own are
    # read only when it is merged away (``consents_loaded``).
    api_consents: list[int] = field(default_factory=list)
    consents_loaded: bool = False
    # The matching record it was last matched (or loaded) with: matched again only when it changes.
    matched_record: PersonRecord | None = None
    # Every identifier the profile holds: kind -> values.
    by_kind: dict[str, set[str]] = field(default_factory=dict)

    @property
    def keys(self) -> list[Key]:
        return [(kind, value) for kind, values in self.by_kind.items() for value in values]

    def add_key(self, key: Key) -> None:
        self.by_kind.setdefault(key[0], set()).add(key[1])

    def absorb(self, other: _ProfileState) -> None:
        """Take every identifier of ``other`` (merged into this one)."""
        for kind, values in other.by_kind.items():
            self.by_kind.setdefault(kind, set()).update(values)

    def count(self, kind: str) -> int:
        return len(self.by_kind.get(kind, ()))


@dataclass
class _IdentState:
    profile_id: str
    first_seen: datetime
    last_seen: datetime
    source_event_id: str | None
    persisted: bool


@dataclass
class _Decision:
    target: str
    merged: list[str] = field(default_factory=list)
    conflict_with: list[str] = field(default_factory=list)
    rule: str = ""
    reason: str = ""


# The look-ups of a batch, built once ("IN" lists built per call cost more Python than the queries).
_PROFILES_IN: BindParameter[list[str]] = bindparam("profiles", expanding=True)
_API_CONSENTS = select(Consent.profile_id, Consent.id).where(
    Consent.profile_id.in_(_PROFILES_IN), Consent.event_id.is_(None)
)
_PROFILES = select(Profile.id, Profile.created_at, Profile.traits, Profile.trait_times).where(
    Profile.id.in_(_PROFILES_IN)
)
_IDENTIFIERS_OF = select(Identifier.profile_id, Identifier.kind, Identifier.value).where(
    Identifier.profile_id.in_(_PROFILES_IN)
)
_LAST_EVENT_SEQ = select(func.coalesce(func.max(Event.seq), 0))
_BLOCKS = select(MergeBlock.profile_a, MergeBlock.profile_b).where(
    or_(MergeBlock.profile_a.in_(_PROFILES_IN), MergeBlock.profile_b.in_(_PROFILES_IN))
)


class IdentityBatch:
    """Resolves a batch of touchpoints against the graph, then writes everything in bulk.

    What it reads of the graph, and what it decides, goes into ``graph`` (a ``GraphCache`` that
    ``begin`` has checked against the database)."""

    def __init__(
        self,
        session: Session,
        registry: KindRegistry,
        graph: GraphCache,
        *,
        allow_merges: bool = True,
        matching: MatchPolicy | None = None,
    ) -> None:
        self.session = session
        self.registry = registry
        self.allow_merges = allow_merges
        self.now = utcnow()
        self.graph = graph
        self.idents = graph.idents
        self.profiles = graph.profiles
        self.redirects = graph.redirects
        self.connection = session.connection()
        self.writer = BulkWriter(self.connection)
        self.moments: dict[datetime, Any] = {}
        # What this batch changes, written by ``_flush``.
        self.new_profiles: list[str] = []
        self.changed_profiles: set[str] = set()  # traits or identifiers changed (stored profiles)
        self.new_keys: list[Key] = []
        self.seen_keys: set[Key] = set()  # stored identifiers whose first or last seen moved
        self.merged_now: list[str] = []
        self.created_then_merged: dict[str, _ProfileState] = {}
        self.matching = matching
        self.match_keys: dict[str, list[str]] = {}  # profiles whose stored blocking keys change
        self.reviews: list[dict[str, Any]] = []
        self.events: list[list[Any]] = []
        self.consents: list[dict[str, Any]] = []
        self.conflicts: list[dict[str, Any]] = []
        self.merges: list[dict[str, Any]] = []

    # ----------------------------------------------------------------- loading
    def _load(self, keys: set[Key]) -> None:
        """Read the stored identifiers among ``keys`` that the cache does not hold."""
        by_kind: dict[str, list[str]] = {}
        for kind, value in keys:
            if (kind, value) not in self.idents:
                by_kind.setdefault(kind, []).append(value)
        stored = table_of(Identifier).c
        for kind, values in by_kind.items():
            for part in chunks(values):
                rows = probe_unique(
                    self.session,
                    (stored.value, stored.profile_id, stored.first_seen_at, stored.last_seen_at),
                    stored.kind, kind, stored.value, part,
                )  # fmt: skip
                for value, profile_id, first_seen, last_seen in rows:
                    # source_event_id only matters for identifiers this batch inserts.
                    self.idents[(kind, value)] = _IdentState(
                        profile_id, first_seen, last_seen, None, persisted=True
                    )

    def _preload_profiles(self, touchpoints: Sequence[Touchpoint], status: list[str]) -> None:
        """Load, in a few queries, the profiles whose state the batch will need: those an event adds
        identifiers or traits to, or links to another. Events that only attach to a known profile
        (most of a warm stream) need none; anything missed is loaded on demand by ``_state``."""
        needed: set[str] = set()
        may_merge: set[str] = set()
        for index, tp in enumerate(touchpoints):
            if status[index] != "recorded":
                continue
            owners = {
                self._final(self.idents[key].profile_id) for key in tp.identifiers if key in self.idents
            }
            if len(owners) > 1:
                may_merge |= owners
            if (
                tp.traits
                or tp.previous_id is not None
                or len(owners) > 1
                or len(owners) < len(tp.identifiers)
            ):
                needed |= owners
        self._load_profiles(sorted(needed))
        # Profiles an event links to another: their merge blocks and API consents, in two queries.
        candidates = sorted(may_merge)
        self._load_blocks(candidates)
        for part in chunks(candidates):
            for profile_id, consent_id in self.connection.execute(_API_CONSENTS, {"profiles": part}):
                self.profiles[profile_id].api_consents.append(consent_id)
        for profile_id in candidates:
            self.profiles[profile_id].consents_loaded = True

    def _final(self, profile_id: str) -> str:
        """Where a profile id points after this batch's merges so far (itself if not merged)."""
        while profile_id in self.redirects:
            profile_id = self.redirects[profile_id]
        return profile_id

    def _state(self, profile_id: str) -> _ProfileState:
        if profile_id not in self.profiles:
            self._load_profiles([profile_id])
        return self.profiles[profile_id]

    def _load_profiles(self, profile_ids: Sequence[str]) -> None:
        missing = [pid for pid in profile_ids if pid not in self.profiles]
        for part in chunks(missing):
            for row in self.connection.execute(_PROFILES, {"profiles": part}):
                self.profiles[row.id] = _ProfileState(
                    row.id,
                    row.created_at,
                    dict(row.traits),
                    dict(row.trait_times),
                    persisted=True,
                    # Only real-time matching compares it: no work on the ingestion path without it.
                    matched_record=record_from_traits(row.id, row.traits) if self.matching else None,
                )
            for profile_id, kind, value in self.connection.execute(_IDENTIFIERS_OF, {"profiles": part}):
                self.profiles[profile_id].add_key((kind, value))

    def _load_blocks(self, profile_ids: Sequence[str]) -> None:
        """Pairs kept apart by an unmerge; read only for profiles an event would merge."""
        missing = [pid for pid in profile_ids if pid not in self.graph.blocks_loaded]
        for part in chunks(missing):
            for a, b in self.connection.execute(_BLOCKS, {"profiles": part}):
                self.graph.blocks.add(frozenset((a, b)))
        self.graph.blocks_loaded.update(missing)

    def _api_consents(self, state: _ProfileState) -> list[int]:
        if state.persisted and not state.consents_loaded:
            state.api_consents += self.session.scalars(
                select(Consent.id).where(Consent.profile_id == state.id, Consent.event_id.is_(None))
            )
        state.consents_loaded = True
        return state.api_consents

    # -------------------------------------------------------------- entry point
    def record(self, touchpoints: Sequence[Touchpoint]) -> RecordOutcome:
        status = ["recorded"] * len(touchpoints)
        event_ids: list[str | None] = [None] * len(touchpoints)
        profile_ids: list[str | None] = [None] * len(touchpoints)

        self._mark_duplicates(touchpoints, status)
        self._mark_erased(touchpoints, status)

        keys: set[Key] = set()
        for index, tp in enumerate(touchpoints):
            if status[index] != "recorded":
                continue
            keys.update(tp.identifiers)
            if tp.previous_id is not None:
                keys.add(("user_id", tp.previous_id))
                keys.add(("anonymous_id", tp.previous_id))
        self._load(keys)
        self._preload_profiles(touchpoints, status)

        for index, tp in enumerate(touchpoints):
            if status[index] != "recorded":
                continue
            event_ids[index], profile_ids[index] = self._resolve(tp)
        if self.matching is not None and self.allow_merges:
            self._match_changed_profiles(self.matching)
        self._flush()
        final_ids = [self._final(pid) if pid is not None else None for pid in profile_ids]
        return RecordOutcome(status, event_ids, final_ids)

    def _mark_duplicates(self, touchpoints: Sequence[Touchpoint], status: list[str]) -> None:
        seen: set[tuple[str, str]] = set()
        by_source: dict[str, list[str]] = {}
        for tp in touchpoints:
            by_source.setdefault(tp.source_id, []).append(tp.message_id)
        events = table_of(Event).c
        for source_id, message_ids in by_source.items():
            for part in chunks(message_ids):
                for (message_id,) in probe_unique(
                    self.session, (events.message_id,), events.source_id, source_id, events.message_id, part
                ):
                    seen.add((source_id, message_id))
        for index, tp in enumerate(touchpoints):
            key = (tp.source_id, tp.message_id)
            if key in seen:
                status[index] = "duplicate"
            seen.add(key)

    def _mark_erased(self, touchpoints: Sequence[Touchpoint], status: list[str]) -> None:
        """Drop replayed events of erased people: an erased identifier on an event from before erasure."""
        if self.graph.no_tombstones:
            return
        if self.session.execute(select(Tombstone.id).limit(1)).first() is None:
            self.graph.no_tombstones = True
            return
        secret = instance_secret(self.session)
        hashes: dict[str, list[int]] = {}
        for index, tp in enumerate(touchpoints):
            if status[index] != "recorded":
                continue
            keys = list(tp.identifiers)
            if tp.previous_id is not None:
                keys += [("user_id", tp.previous_id), ("anonymous_id", tp.previous_id)]
            for kind, value in keys:
                for spelling in self.registry.spellings(kind, value):
                    hashes.setdefault(identifier_hash(secret, kind, spelling), []).append(index)
        erased_at: dict[int, datetime] = {}
        for part in chunks(list(hashes)):
            for digest, moment in self.session.execute(
                select(Tombstone.identifier_hash, Tombstone.erased_at).where(
                    Tombstone.identifier_hash.in_(part)
                )
            ):
                for index in hashes[digest]:
                    erased_at[index] = max(moment, erased_at.get(index, moment))
        for index, moment in erased_at.items():
            if touchpoints[index].timestamp <= moment:
                status[index] = "erased"

    # ------------------------------------------------------------- resolution
    def _priority_order(self, identifiers: list[Key]) -> list[Key]:
        return sorted(identifiers, key=lambda key: self.registry.priority(key[0]))

    def _resolve(self, tp: Touchpoint) -> tuple[str, str]:
        event_id = new_id("evt")
        identifiers = list(tp.identifiers)
        if tp.previous_id is not None:
            previous: Key = ("user_id", tp.previous_id)
            if previous not in self.idents:
                previous = ("anonymous_id", tp.previous_id)
            if previous not in identifiers:
                identifiers = self._priority_order([*identifiers, previous])

        known = [key for key in identifiers if key in self.idents]
        new = [key for key in identifiers if key not in self.idents]
        matched: list[str] = []
        for key in known:
            owner = self._final(self.idents[key].profile_id)
            if owner not in matched:
                matched.append(owner)

        if not identifiers:
            raise ValueError("a touchpoint must carry at least one usable identifier")
        decision = self._decide(matched, identifiers)
        if not decision.target:
            decision.target = self._new_profile()
        for merged in decision.merged:
            self._merge(decision.target, merged, event_id, identifiers, decision.rule)
        target = decision.target

        # A new identifier that outranks every known one but cannot join (its kind is full there):
        # this is someone else on a shared identifier, so the event starts its own profile.
        skipped: list[Key] = []
        if new and known:
            top = new[0]
            rule = self.registry.rules[top[0]]
            outranks = rule.priority < min(self.registry.priority(k[0]) for k in known)
            if outranks and self._state(target).count(top[0]) >= rule.max_per_profile:
                conflict_with = [target, *decision.conflict_with]
                target = self._new_profile()
                decision = _Decision(
                    target,
                    conflict_with=conflict_with,
                    rule=f"limit {top[0]}: {rule.max_per_profile} per profile",
                    reason=f"the profile holding this event's other identifiers already has "
                    f"{rule.max_per_profile} {top[0]}; a new profile was started",
                )

        for key in new:
            profile = self._state(target)
            rule = self.registry.rules[key[0]]
            if profile.count(key[0]) >= rule.max_per_profile:
                skipped.append(key)
                continue
            profile.add_key(key)
            self.idents[key] = _IdentState(target, tp.timestamp, tp.timestamp, event_id, persisted=False)
            self.new_keys.append(key)
        for key in known:
            state = self.idents[key]
            if tp.timestamp < state.first_seen:
                state.first_seen = tp.timestamp
                self.seen_keys.add(key)
            if tp.timestamp > state.last_seen:
                state.last_seen = tp.timestamp
                self.seen_keys.add(key)

        if skipped and not decision.rule:
            kinds = sorted({k for k, _ in skipped})
            decision.rule = "limit " + ", ".join(
                f"{k}: {self.registry.rules[k].max_per_profile}" for k in kinds
            )
            decision.reason = "identifiers not attached because the profile already holds its limit of " + (
                ", ".join(kinds)
            )
        if decision.conflict_with or skipped:
            self.conflicts.append(
                {
                    "id": new_id("cfl"),
                    "event_id": event_id,
                    "attached_profile_id": target,
                    "other_profile_ids": [p for p in decision.conflict_with if p != target],
                    "identifiers": [f"{k}:{v}" for k, v in identifiers],
                    "rule": decision.rule,
                    "reason": decision.reason
                    + (f"; not attached: {', '.join(f'{k}:{v}' for k, v in skipped)}" if skipped else ""),
                    "status": "open",
                    "created_at": self.now,
                }
            )

        if tp.traits:
            profile = self._state(target)
            if apply_traits(
                profile.traits, profile.trait_times, tp.traits, [iso_key(tp.timestamp), event_id]
            ):
                self.changed_profiles.add(profile.id)
        moment, document = self._moment, self.writer.document
        self.events.append(
            [  # EVENT_COLUMNS
                event_id,
                tp.source_id,
                tp.message_id,
                tp.type,
                tp.name,
                tp.channel,
                target,  # EVENT_PROFILE: moved to the final survivor when the batch is written
                target,
                moment(tp.timestamp),
                moment(tp.received_at),
                tp.user_id,
                tp.anonymous_id,
                document([f"{k}:{v}" for k, v in identifiers]),
                document(tp.traits),
                document(tp.properties),
                document(tp.context),
            ]
        )
        for change in tp.consents:
            self.consents.append(
                {
                    "profile_id": target,
                    "channel": change.channel,
                    "purpose": change.purpose,
                    "granted": change.granted,
                    "source": f"event from source {tp.source_id}",
                    "event_id": event_id,
                    "recorded_at": tp.timestamp,
                }
            )
        return event_id, target

    def _decide(self, matched: list[str], identifiers: list[Key]) -> _Decision:
        if not matched:
            return _Decision("")
        if len(matched) == 1:
            return _Decision(matched[0])
        first = matched[0]
        if not self.allow_merges:
            return _Decision(
                first, conflict_with=matched, rule="merges disabled", reason="merging is turned off"
            )
        self._load_blocks(matched)
        for i, a in enumerate(matched):
            for b in matched[i + 1 :]:
                if frozenset((a, b)) in self.graph.blocks:
                    return _Decision(
                        first,
                        conflict_with=matched,
                        rule="unmerged pair",
                        reason=f"profiles {a} and {b} were unmerged and are kept apart",
                    )
        for kind, count in sorted(self._kind_totals(matched).items()):
            limit = self.registry.rules[kind].max_per_profile
            if count > limit:
                return _Decision(
                    first,
                    conflict_with=matched,
                    rule=f"limit {kind}: {limit} per profile",
                    reason=f"merging would give one profile {count} {kind} (limit {limit})",
                )
        survivor = min(matched, key=lambda pid: (self._state(pid).created_at, pid))
        return _Decision(
            survivor,
            merged=[pid for pid in matched if pid != survivor],
            rule="shared identifier",
        )

    def _new_profile(self) -> str:
        profile_id = new_id("prf")
        self.profiles[profile_id] = _ProfileState(profile_id, self.now, {}, {}, persisted=False)
        self.new_profiles.append(profile_id)
        return profile_id

    def _merge(
        self, survivor: str, merged: str, event_id: str | None, identifiers: list[Key], rule: str
    ) -> None:
        """Merge ``merged`` into ``survivor``, recording what is needed to undo it exactly.

        Decided in memory; stored rows are moved when the batch is written."""
        keep, gone = self._state(survivor), self._state(merged)
        del self.profiles[merged]
        if not gone.persisted:
            self.created_then_merged[merged] = gone
        self.merges.append(
            {
                "id": new_id("mrg"),
                "survivor_id": survivor,
                "merged_id": merged,
                "event_id": event_id,
                "linking_identifiers": [f"{k}:{v}" for k, v in identifiers if (k, v) in self.idents],
                "rule": rule,
                "survivor_identifiers": sorted(f"{k}:{v}" for k, v in keep.keys),
                "merged_identifiers": sorted(f"{k}:{v}" for k, v in gone.keys),
                "merged_consent_ids": sorted(self._api_consents(gone)),
                "replay_after_seq": None,
                "created_at": self.now,
                "undone_at": None,
            }
        )
        keep.absorb(gone)
        keep.api_consents += gone.api_consents
        combine_traits(keep.traits, keep.trait_times, gone.traits, gone.trait_times)
        self.changed_profiles.add(survivor)
        renamed = (frozenset(survivor if p == merged else p for p in pair) for pair in self.graph.blocks)
        self.graph.blocks = {pair for pair in renamed if len(pair) == 2}
        self.redirects[merged] = survivor
        self.merged_now.append(merged)
        if self.matching is not None:
            self._keys_decided(merged, [])  # a merged-away profile is no one's candidate

    # --------------------------------------------------------- probabilistic matching
    def _match_changed_profiles(self, policy: MatchPolicy) -> None:
        """Profiles whose matching traits changed in this batch are scored against their candidates, all
        pairs at once: merged above the auto threshold (when the merge rules allow), queued for review
        above the review threshold, most likely pairs first."""
        changed: dict[str, list[str]] = {}
        for profile_id in sorted({self._final(pid) for pid in [*self.new_profiles, *self.changed_profiles]}):
            state = self.profiles.get(profile_id)
            if state is None:
                continue
            record = record_from_traits(profile_id, state.traits)
            if record == state.matched_record and state.persisted:
                continue
            state.matched_record = record
            self.match_keys[profile_id] = changed[profile_id] = keys_of(record) if record else []
        wanted = {pid: keys for pid, keys in changed.items() if keys}
        if not wanted:
            return
        candidates = find_candidates(self.session, wanted, self.graph.blocking, self._keys_to_store())
        others = sorted({self._final(o) for found in candidates.values() for o in found} - set(self.profiles))
        self._load_profiles(others)
        records: dict[str, PersonRecord] = {}
        pairs: set[tuple[str, str]] = set()
        for profile_id, found in candidates.items():
            mine = self.profiles[profile_id]
            for candidate in found:
                other = self._final(candidate)
                state = self.profiles.get(other)
                if state is None or state.matched_record is None or other == profile_id:
                    continue
                if self._hard_conflict(mine, state):
                    continue  # two different accounts: never one person, not worth scoring
                records[other] = state.matched_record
                pairs.add((profile_id, other) if profile_id < other else (other, profile_id))
            records[profile_id] = self.profiles[profile_id].matched_record  # type: ignore[assignment]
        if not pairs:
            return
        scores = PairScores(policy.model, records, sorted(pairs))
        likely = [k for k in np.argsort(-scores.probability, kind="stable")
                  if scores.probability[k] >= policy.review_threshold]  # fmt: skip
        decided = self._decided_pairs([scores.pairs[k] for k in likely])
        for k in likely:
            first, second = (self._final(pid) for pid in scores.pairs[k])
            pair = (min(first, second), max(first, second))
            if first == second or pair in decided or scores.pairs[k] in decided:
                continue
            decided.add(pair)
            if self._hard_conflict(self._state(first), self._state(second)):
                continue  # two different accounts (or other one-per-profile identifiers): never one person
            self._load_blocks([first, second])
            if frozenset((first, second)) in self.graph.blocks:
                continue  # a person unmerged them: that decision stands
            probability = float(scores.probability[k])
            if probability >= policy.auto_threshold and not self._merge_refused([first, second]):
                survivor = min((first, second), key=lambda pid: (self._state(pid).created_at, pid))
                self._merge(
                    survivor, second if survivor == first else first, None, [],
                    f"probabilistic match ({probability:.3f})",
                )  # fmt: skip
                kept = self.profiles[survivor]
                kept.matched_record = record_from_traits(survivor, kept.traits)
                self._keys_decided(survivor, keys_of(kept.matched_record) if kept.matched_record else [])
                continue
            self.reviews.append(
                {
                    "id": new_id("mrv"),
                    "profile_a": pair[0],
                    "profile_b": pair[1],
                    "probability": probability,
                    "evidence": scores.evidence(int(k)),
                    "status": "pending",
                    "created_at": self.now,
                    "decided_at": None,
                    "merge_id": None,
                }
            )

    def _keys_decided(self, profile_id: str, keys: list[str]) -> None:
        """Blocking keys a merge decided: stored at the flush, and known at once to the writer's index (a
        merge may follow the candidate search, which lays the batch's other keys over the index)."""
        self.match_keys[profile_id] = keys
        self.graph.blocking.set_keys(profile_id, keys)

    def _keys_to_store(self) -> dict[str, list[str]]:
        """The blocking keys this batch changes, by profile (a merged-away profile holds none)."""
        return {pid: [] if pid in self.redirects else keys for pid, keys in self.match_keys.items()}

    def _decided_pairs(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those of ``pairs`` already in the review queue (pending, accepted or rejected): never
        proposed twice."""
        wanted = set(pairs)
        found: set[tuple[str, str]] = set()
        firsts = sorted({a for a, _ in pairs})
        for part in chunks(firsts):
            for a, b in self.session.execute(
                select(MatchReview.profile_a, MatchReview.profile_b).where(MatchReview.profile_a.in_(part))
            ):
                if (a, b) in wanted:
                    found.add((a, b))
        return found

    def _hard_conflict(self, a: _ProfileState, b: _ProfileState) -> bool:
        """Both hold a different identifier of a kind allowed once per profile (e.g. two user_ids)."""
        return self._clashing_kind(a, b) is not None

    def _clashing_kind(self, a: _ProfileState, b: _ProfileState) -> str | None:
        """The first kind allowed once per profile of which both hold a different identifier, or None."""
        for kind in self.registry.once_only_kinds:
            mine, theirs = a.by_kind.get(kind), b.by_kind.get(kind)
            if mine and theirs and mine != theirs:
                return kind
        return None

    def _merge_refused(self, profile_ids: list[str]) -> bool:
        """The core merge rules: a pair kept apart by an unmerge, or a per-kind limit exceeded."""
        self._load_blocks(profile_ids)
        if frozenset(profile_ids) in self.graph.blocks:
            return True
        return self._limit_exceeded(profile_ids) is not None

    def _limit_exceeded(self, profile_ids: Sequence[str]) -> tuple[str, int, int] | None:
        """(kind, count, limit) of the first kind these profiles together hold more of than a profile may."""
        for kind, count in sorted(self._kind_totals(profile_ids).items()):
            limit = self.registry.rules[kind].max_per_profile
            if count > limit:
                return kind, count, limit
        return None

    def _kind_totals(self, profile_ids: Sequence[str]) -> Counter[str]:
        """How many identifiers of each kind these profiles hold together."""
        total: Counter[str] = Counter()
        for profile_id in profile_ids:
            total.update({kind: len(values) for kind, values in self._state(profile_id).by_kind.items()})
        return total

    # ----------------------------------------------------------------- writing
    def _moment(self, value: datetime) -> Any:
        """A timestamp in the driver's form, converted once per batch (an event's timestamp is also its
        identifiers' first and last seen; every event of a request shares its arrival time)."""
        converted = self.moments.get(value)
        if converted is None:
            converted = self.moments[value] = self.writer.moment(value)
        return converted

    def _flush(self) -> None:
        """Write the batch, each table in one executemany statement (merges first move stored rows).

        The high-volume rows (events, identifiers, profiles) go through the driver-level ``BulkWriter``."""
        conn, writer, now = self.session.connection(), self.writer, self._moment(self.now)
        moment, document = self._moment, writer.document
        profiles_t, identifiers_t = table_of(Profile), table_of(Identifier)
        # Profiles created in this batch, merged away or not (their ids stay valid: stored too).
        new_profiles = [self.profiles.get(pid) or self.created_then_merged[pid] for pid in self.new_profiles]
        writer.insert(
            profiles_t,
            PROFILE_COLUMNS,
            [
                (p.id, moment(p.created_at), now, None, document(p.traits), document(p.trait_times))
                for p in new_profiles
            ],
        )
        if self.merged_now:
            # Rows stored before this batch under a merged-away id move to its final survivor.
            moves = [{"old": merged, "new": self._final(merged)} for merged in self.merged_now]
            for table in (identifiers_t, table_of(Event), table_of(Consent)):
                conn.execute(
                    table.update()
                    .where(table.c.profile_id == bindparam("old"))
                    .values(profile_id=bindparam("new")),
                    moves,
                )
            for row in self.events:
                row[EVENT_PROFILE] = self._final(row[EVENT_PROFILE])
            for consent in self.consents:
                consent["profile_id"] = self._final(consent["profile_id"])
            for conflict in self.conflicts:
                conflict["attached_profile_id"] = self._final(conflict["attached_profile_id"])
            # A pending review of a merged-away profile is superseded: its survivor is matched afresh.
            reviews_t = table_of(MatchReview)
            for part in chunks(self.merged_now):
                conn.execute(
                    reviews_t.update()
                    .where(
                        reviews_t.c.status == "pending",
                        or_(reviews_t.c.profile_a.in_(part), reviews_t.c.profile_b.in_(part)),
                    )
                    .values(status="superseded", decided_at=self.now)
                )
            writer.update(
                profiles_t,
                ("merged_into_id", "updated_at"),
                ("id",),
                [(self.redirects[merged], now, merged) for merged in self.merged_now],
            )
        changed = [
            self.profiles[pid]
            for pid in sorted(self.changed_profiles)
            if pid in self.profiles and self.profiles[pid].persisted
        ]
        writer.update(
            profiles_t,
            ("traits", "trait_times", "updated_at"),
            ("id",),
            [(document(p.traits), document(p.trait_times), now, p.id) for p in changed],
        )
        new_idents = [(key, self.idents[key]) for key in self.new_keys]
        writer.insert(
            identifiers_t,
            IDENTIFIER_COLUMNS,
            [
                (
                    kind,
                    value,
                    self._final(s.profile_id),
                    s.source_event_id,
                    moment(s.first_seen),
                    moment(s.last_seen),
                )
                for (kind, value), s in new_idents
            ],
        )
        seen = [(key, self.idents[key]) for key in sorted(self.seen_keys) if self.idents[key].persisted]
        writer.update(
            identifiers_t,
            ("first_seen_at", "last_seen_at"),
            ("kind", "value"),
            [(moment(s.first_seen), moment(s.last_seen), kind, value) for (kind, value), s in seen],
        )
        writer.insert(table_of(Event), EVENT_COLUMNS, [tuple(row) for row in self.events])
        if self.consents:
            conn.execute(table_of(Consent).insert(), self.consents)
        if self.conflicts:
            conn.execute(table_of(IdentityConflict).insert(), self.conflicts)
            conn.execute(table_of(IdentityConflictProfile).insert(), conflict_profile_rows(self.conflicts))
        if self.merges:
            if any(merge["event_id"] is None for merge in self.merges):
                # Written after this batch's events: an unmerge replays only the events stored since.
                last_seq = conn.execute(_LAST_EVENT_SEQ).scalar_one()
                for merge in self.merges:
                    merge["replay_after_seq"] = last_seq if merge["event_id"] is None else None
            conn.execute(table_of(Merge).insert(), self.merges)
        if self.match_keys:  # a merged-away profile is no one's candidate any more
            store_keys(self.session, self._keys_to_store(), new=frozenset(self.new_profiles))
        if self.reviews:
            # Merges later in the batch may have made two items one pair, or one profile.
            by_pair: dict[tuple[str, str], dict[str, Any]] = {}
            for review in self.reviews:
                a, b = sorted((self._final(review["profile_a"]), self._final(review["profile_b"])))
                review["profile_a"], review["profile_b"] = a, b
                if a != b and (
                    (a, b) not in by_pair or review["probability"] > by_pair[(a, b)]["probability"]
                ):
                    by_pair[(a, b)] = review
            known = self._decided_pairs(list(by_pair))
            reviews = [review for pair, review in by_pair.items() if pair not in known]
            if reviews:
                conn.execute(table_of(MatchReview).insert(), reviews)
        # What was written is now stored (the cache carries it into the next batch).
        for p in new_profiles:
            p.persisted = True
        for _, s in new_idents:
            s.persisted = True


def record_touchpoints(
    session: Session,
    registry: KindRegistry,
    touchpoints: Sequence[Touchpoint],
    *,
    allow_merges: bool = True,
    cache: GraphCache | None = None,
    matching: MatchPolicy | None = None,
) -> RecordOutcome:
    """Resolve and store touchpoints; the caller owns the transaction (and commits it).

    ``cache``: this process's ``GraphCache`` (the server keeps one); without it the batch reads what it
    needs from the database."""
    graph = cache or GraphCache()
    graph.begin(lock_identity_graph(session))
    try:
        batch = IdentityBatch(session, registry, graph, allow_merges=allow_merges, matching=matching)
        return batch.record(touchpoints)
    except BaseException:
        graph.forget()
        raise


def merge_profiles(
    session: Session,
    registry: KindRegistry,
    first: str,
    second: str,
    *,
    rule: str,
    overrule_unmerge: bool = False,
) -> str:
    """Merge two active profiles through the core merge (recorded, reversible with unmerge) and return
    the merge id. Refused (``Conflict``, naming the rule) when the merge rules forbid it: two different
    identifiers of a kind allowed once per profile, a per-kind limit, or a pair kept apart by an unmerge
    (unless ``overrule_unmerge``: a person merging the pair by hand lifts that block).

    The survivor is the older profile, as for merges decided by events; its blocking keys for
    probabilistic matching are recomputed from the combined traits, and the merged-away profile's
    dropped."""
    graph = GraphCache()
    graph.begin(lock_identity_graph(session))
    batch = IdentityBatch(session, registry, graph, matching=None)
    refusal = _merge_refusal(batch, [first, second], overrule_unmerge=overrule_unmerge)
    if refusal is not None:
        raise Conflict(refusal)
    pair = frozenset((first, second))
    if pair in graph.blocks:  # overruled: a person merging the pair lifts the block
        a, b = sorted(pair)
        session.execute(delete(MergeBlock).where(MergeBlock.profile_a == a, MergeBlock.profile_b == b))
        graph.blocks.discard(pair)
    survivor = min((first, second), key=lambda pid: (batch._state(pid).created_at, pid))
    merged = second if survivor == first else first
    batch._merge(survivor, merged, None, [], rule)
    batch._flush()
    record = record_from_traits(survivor, batch._state(survivor).traits)
    store_keys(session, {survivor: keys_of(record) if record else [], merged: []})
    return str(batch.merges[-1]["id"])


def merge_refusals(
    session: Session,
    registry: KindRegistry,
    groups: Sequence[Sequence[str]],
    *,
    overrule_unmerge: bool = False,
) -> list[str | None]:
    """For each group of active profiles: why merging them into one (``merge_profiles``, a pair at a time,
    in any order) would be refused now, or None; for a page that offers the merge only where it can be
    made. Reads only, the profiles and blocks of every group in a few statements (a decision still takes
    the lock)."""
    graph = GraphCache()
    graph.begin(GraphLock("", "read only"))
    batch = IdentityBatch(session, registry, graph, matching=None)
    everyone = list(dict.fromkeys(pid for group in groups for pid in group))
    batch._load_profiles(everyone)
    batch._load_blocks(everyone)
    return [_merge_refusal(batch, group, overrule_unmerge=overrule_unmerge) for group in groups]


def _merge_refusal(batch: IdentityBatch, profile_ids: Sequence[str], *, overrule_unmerge: bool) -> str | None:
    """The merge rules for a merge a person or the matcher asks for, as the refusal's message. For more
    than two profiles, what holds for their union holds for every pair merged on the way there."""
    ids = list(dict.fromkeys(profile_ids))
    if len(ids) < 2:
        return "the two profiles are already one"
    pairs = list(combinations(ids, 2))
    for first, second in pairs:
        kind = batch._clashing_kind(batch._state(first), batch._state(second))
        if kind is not None:
            return (
                f"the profiles hold different {kind} identifiers, and a profile holds at most one "
                f"(the {kind} limit): they are two different customers"
            )
    exceeded = batch._limit_exceeded(ids)
    if exceeded is not None:
        kind, count, limit = exceeded
        return (
            f"merging would give one profile {count} {kind} identifiers, over the limit of {limit} "
            f"(PATCH /v1/identity/kinds/{kind} changes it)"
        )
    batch._load_blocks(ids)
    if not overrule_unmerge and any(frozenset(pair) in batch.graph.blocks for pair in pairs):
        return "the profiles were kept apart by an unmerge"
    return None
