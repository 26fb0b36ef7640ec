"""Real-time matching of one profile against the base: its traits become a ``PersonRecord``, its
blocking keys find candidates (stored in ``match_keys``), and each candidate pair is scored by the
stored model. Identity resolution (``IdentityBatch``) decides what to do with the scores."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import orjson
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from parcours.config import Settings
from parcours.db.base import table_of
from parcours.db.bulk import BulkWriter
from parcours.db.engine import forget_memo
from parcours.db.reference import reference
from parcours.matching.blocking import MAX_BLOCK, blocking_keys
from parcours.matching.compare import COMPARISONS, Columns, compare
from parcours.matching.model import MatchModel
from parcours.matching.normalize import prepare
from parcours.matching.records import PersonRecord
from parcours.models import InstanceSetting, MatchKey, Profile
from parcours.models.instance import write_setting

MODEL_SETTING = "match_model"
MAX_CANDIDATES = 200  # candidates scored for one profile (the most keys shared first)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value).strip()
    return text or None


def record_from_traits(profile_id: str, traits: dict[str, Any]) -> PersonRecord | None:
    """The matching fields of a profile's traits (Segment's reserved trait names, and common
    variants); ``None`` when there is no name to match on."""
    address = traits.get("address") if isinstance(traits.get("address"), dict) else {}
    assert isinstance(address, dict)
    given = _text(traits.get("firstName") or traits.get("first_name"))
    surname = _text(traits.get("lastName") or traits.get("last_name"))
    if given is None and surname is None:
        full = _text(traits.get("name"))
        if full and " " in full:
            given, surname = full.split(" ", 1)
    if given is None and surname is None:
        return None
    return PersonRecord(
        id=profile_id,
        given_name=given,
        surname=surname,
        birth_date=_text(traits.get("birthday") or traits.get("birth_date")),
        street=_text(address.get("street")),
        locality=_text(address.get("city")),
        postcode=_text(address.get("postalCode") or address.get("postal_code")),
        phone=_text(traits.get("phone")),
        email=_text(traits.get("email")),
    )


_parsed: dict[str, MatchModel] = {}


def load_model(session: Session) -> MatchModel:
    """The trained model (``parcours identity dedupe --profiles`` trains it), else the defaults."""
    stored = session.get(InstanceSetting, MODEL_SETTING)
    if stored is None:
        return MatchModel.default()
    model = _parsed.get(stored.value)
    if model is None:
        _parsed.clear()
        model = _parsed[stored.value] = MatchModel.from_json(orjson.loads(stored.value))
    return model


def load_policy(session: Session, settings: Settings) -> MatchPolicy | None:
    if not settings.match_realtime:
        return None
    model = reference(session, MODEL_SETTING, lambda: load_model(session))
    return MatchPolicy(model, settings.match_auto_threshold, settings.match_review_threshold)


def save_model(session: Session, model: MatchModel) -> None:
    write_setting(session, MODEL_SETTING, orjson.dumps(model.as_json()).decode())
    forget_memo(session, MODEL_SETTING)


@dataclass(frozen=True)
class MatchPolicy:
    """How real-time matching acts on a score (see ``Settings.match_*``)."""

    model: MatchModel
    auto_threshold: float  # at or above: merge (when the merge rules allow it)
    review_threshold: float  # at or above (and below auto): a review item


@dataclass
class Scored:
    first: str
    second: str
    probability: float
    evidence: list[dict[str, Any]]  # per comparison: field, level, weight


def keys_of(record: PersonRecord) -> list[str]:
    return blocking_keys(prepare(record))


def store_keys(
    session: Session, profile_keys: dict[str, list[str]], *, new: frozenset[str] = frozenset()
) -> None:
    """Replace the stored blocking keys of these profiles (``new``: profiles that have none yet)."""
    if not profile_keys:
        return
    ids = sorted(pid for pid in profile_keys if pid not in new)
    for start in range(0, len(ids), 500):
        session.execute(delete(MatchKey).where(MatchKey.profile_id.in_(ids[start : start + 500])))
    BulkWriter(session.connection()).insert(
        table_of(MatchKey),
        ("profile_id", "key"),
        [(pid, key) for pid, keys in profile_keys.items() for key in keys],
    )


def _chunks(items: list[str], size: int = 500) -> list[list[str]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


class BlockingIndex:
    """Which profiles hold each blocking key (``match_keys``), for the keys read so far, kept current
    with the keys this process decides, so that a warm stream of changed profiles finds its candidates
    in memory instead of reading every holder of every key again.

    ``load`` reads the keys it does not hold yet, as stored: it must run before ``set_keys`` records
    this transaction's (not yet stored) changes, which it then overlays. A key held by more than
    ``MAX_BLOCK`` profiles tells no one apart: it is kept as too common, holders not tracked (it stays
    so while this index lives). A profile whose keys this index set is counted by those keys only, so
    keys it lost (or a merge that emptied them) never make it a candidate; a stored holder that was
    merged away is dropped when its key is read. Owned by one writer at a time (the identity graph
    lock), inside a ``GraphCache`` that discards it whenever anyone else wrote the graph."""

    def __init__(self) -> None:
        self.holders: dict[str, set[str] | None] = {}  # None: too common
        self.keys_of: dict[str, frozenset[str]] = {}
        self.size = 0  # holder entries held, to bound memory

    def load(self, session: Session, keys: set[str]) -> None:
        missing = sorted(key for key in keys if key not in self.holders)
        too_common: set[str] = set()
        for part in _chunks(missing):
            for key, count in session.execute(
                select(MatchKey.key, func.count()).where(MatchKey.key.in_(part)).group_by(MatchKey.key)
            ):
                if count > MAX_BLOCK:
                    too_common.add(key)
        loaded: dict[str, set[str]] = {key: set() for key in missing if key not in too_common}
        for part in _chunks(list(loaded)):
            # (no join with profiles here: planners then walk every active profile)
            for key, holder in session.execute(
                select(MatchKey.key, MatchKey.profile_id).where(MatchKey.key.in_(part))
            ):
                loaded[key].add(holder)
        unknown = sorted({h for hs in loaded.values() for h in hs if h not in self.keys_of})
        # Merged-away profiles are no one's candidates (their keys are normally gone).
        merged: set[str] = set()
        for part in _chunks(unknown):
            merged.update(
                session.scalars(
                    select(Profile.id).where(Profile.id.in_(part), Profile.merged_into_id.is_not(None))
                )
            )
        for key in too_common:
            self.holders[key] = None
        for key, found in loaded.items():
            found -= merged
            self.holders[key] = found
            self.size += len(found)

    def set_keys(self, profile_id: str, keys: Sequence[str]) -> None:
        """The keys ``profile_id`` holds from now on (none: it is no one's candidate)."""
        self.keys_of[profile_id] = frozenset(keys)
        for key in keys:
            found = self.holders.get(key)
            if found is not None and profile_id not in found:
                found.add(profile_id)
                self.size += 1
                if len(found) > MAX_BLOCK:
                    self.holders[key] = None

    def candidates(self, profile_id: str, keys: Sequence[str]) -> list[str]:
        """The holders of ``keys`` (loaded) other than ``profile_id``, most keys shared first, at most
        ``MAX_CANDIDATES``."""
        usable = [found for key in keys if (found := self.holders.get(key))]
        # Counted in C (Counter over the chained holders): this runs over every holder of every key.
        shared = Counter(chain.from_iterable(usable))
        shared.pop(profile_id, None)
        wanted = frozenset(keys)
        for holder in [h for h in shared if h in self.keys_of]:
            count = len(self.keys_of[holder] & wanted)  # what it holds now, not what was read
            if count:
                shared[holder] = count
            else:
                del shared[holder]
        best = heapq.nsmallest(MAX_CANDIDATES, shared.items(), key=lambda item: (-item[1], item[0]))
        return [pid for pid, _count in best]


def find_candidates(
    session: Session,
    wanted: dict[str, list[str]],
    index: BlockingIndex | None = None,
    pending: dict[str, list[str]] | None = None,
) -> dict[str, list[str]]:
    """For each profile of ``wanted`` (profile -> its blocking keys), the profiles sharing a key with it,
    most keys shared first. ``index``: what this writer already knows (a fresh one reads everything
    from the database); ``pending``: profile -> the keys this transaction is about to store, which
    replace its stored ones."""
    index = index or BlockingIndex()
    index.load(session, {key for keys in wanted.values() for key in keys})
    for profile_id, keys in (pending or {}).items():
        index.set_keys(profile_id, keys)
    return {profile_id: index.candidates(profile_id, keys) for profile_id, keys in wanted.items()}


class PairScores:
    """Match probabilities of many pairs of records at once; the evidence of a pair on demand."""

    def __init__(
        self, model: MatchModel, records: dict[str, PersonRecord], pairs: Sequence[tuple[str, str]]
    ) -> None:
        self.pairs = list(pairs)
        ids = sorted({pid for pair in self.pairs for pid in pair})
        position = {pid: index for index, pid in enumerate(ids)}
        columns = Columns([prepare(records[pid]) for pid in ids])
        left = np.fromiter((position[a] for a, _ in self.pairs), dtype=np.int64, count=len(self.pairs))
        right = np.fromiter((position[b] for _, b in self.pairs), dtype=np.int64, count=len(self.pairs))
        self.levels = compare(columns, left, right)
        self.weights = model.weights(self.levels, columns, left)
        self.probability = model.probability(self.weights.sum(axis=1))

    def evidence(self, k: int) -> list[dict[str, Any]]:
        return [
            {
                "field": comparison.name,
                "level": comparison.levels[self.levels[k, index] - 1] if self.levels[k, index] else "unknown",
                "weight": round(float(self.weights[k, index]), 2),
            }
            for index, comparison in enumerate(COMPARISONS)
        ]

    def results(self) -> list[Scored]:
        return [
            Scored(a, b, float(self.probability[k]), self.evidence(k)) for k, (a, b) in enumerate(self.pairs)
        ]


def score(model: MatchModel, record: PersonRecord, others: Sequence[PersonRecord]) -> list[Scored]:
    """Score ``record`` against each of ``others``, with the evidence of each pair."""
    if not others:
        return []
    records = {record.id: record} | {other.id: other for other in others}
    return PairScores(model, records, [(record.id, other.id) for other in others]).results()


def match_stored(session: Session, model: MatchModel, record: PersonRecord) -> list[Scored]:
    """Score a record against the stored base: candidates through the stored blocking keys, their
    traits read from the database (the path of a profile nothing in memory knows yet)."""
    others = find_candidates(session, {record.id: keys_of(record)})[record.id]
    if not others:
        return []
    records = []
    for profile_id, traits in session.execute(
        select(Profile.id, Profile.traits).where(Profile.id.in_(others))
    ):
        other = record_from_traits(profile_id, traits)
        if other is not None:
            records.append(other)
    return score(model, record, records)
