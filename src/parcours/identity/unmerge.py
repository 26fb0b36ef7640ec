"""Undo a merge exactly: the merged profile comes back with its identifiers, events, consents and
traits, and what arrived after the merge is sorted to the side it would have gone to had the merge
never happened (the same rule as a refused merge: the owner of the event's highest-priority identifier).
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from parcours.db.types import utcnow
from parcours.errors import Conflict, NotFound
from parcours.identity.conflicts import reopen_split_conflicts
from parcours.identity.resolution import apply_traits, chunks, lock_identity_graph, people
from parcours.identity.touchpoints import iso_key
from parcours.matching.realtime import keys_of, record_from_traits, store_keys
from parcours.models import Consent, Event, Identifier, Merge, MergeBlock, Profile


def _active_merges_into(session: Session, survivor_id: str) -> list[Merge]:
    return list(
        session.scalars(
            select(Merge)
            .where(Merge.survivor_id == survivor_id, Merge.undone_at.is_(None))
            .order_by(Merge.created_at, Merge.id)
        )
    )


def find_merge_to_undo(session: Session, profile_id: str, merge_id: str | None) -> Merge:
    profile = session.get(Profile, profile_id)
    if profile is None:
        raise NotFound(f"profile {profile_id} not found")
    if merge_id is not None:
        merge = session.get(Merge, merge_id)
        if merge is None or profile_id not in (merge.survivor_id, merge.merged_id):
            raise NotFound(f"merge {merge_id} not found for profile {profile_id}")
        if merge.undone_at is not None:
            raise Conflict(f"merge {merge_id} was already undone")
        return merge
    if profile.merged_into_id is not None:
        merge = session.scalars(
            select(Merge)
            .where(Merge.merged_id == profile_id, Merge.undone_at.is_(None))
            .order_by(Merge.created_at.desc(), Merge.id.desc())
        ).first()
        if merge is None:
            raise Conflict(f"profile {profile_id} is merged but its merge record is missing")
        return merge
    merges = _active_merges_into(session, profile_id)
    if not merges:
        raise Conflict(f"profile {profile_id} has no merge to undo")
    return merges[-1]


def recompute_traits(session: Session, profile_id: str) -> tuple[dict[str, object], dict[str, object]]:
    """Traits as the last-write-wins fold of the profile's events (the same rule as live ingestion)."""
    traits: dict[str, object] = {}
    times: dict[str, object] = {}
    rows = session.execute(
        select(Event.id, Event.timestamp, Event.traits)
        .where(Event.profile_id == profile_id, Event.traits.is_not(None))
        .order_by(Event.timestamp, Event.id)
    )
    for event_id, moment, event_traits in rows:
        if event_traits:
            apply_traits(traits, times, event_traits, [iso_key(moment), event_id])
    return traits, times


def unmerge(session: Session, profile_id: str, merge_id: str | None = None) -> Merge:
    """Undo one merge involving ``profile_id``; returns the merge record, now marked undone."""
    lock_identity_graph(session)
    merge = find_merge_to_undo(session, profile_id, merge_id)
    survivor_id, merged_id = merge.survivor_id, merge.merged_id
    survivor = session.get(Profile, survivor_id)
    if survivor is None:
        raise NotFound(f"profile {survivor_id} not found")
    if survivor.merged_into_id is not None:
        raise Conflict(
            f"profile {survivor_id} was since merged into {survivor.merged_into_id}; undo that merge first"
        )
    now = utcnow()
    merged_side = set(people(session, merged_id))  # it and every profile merged into it

    # Identifiers on the survivor, and which side each belonged to when the merge happened.
    other_merges: set[str] = set()
    for other in _active_merges_into(session, survivor_id):
        if other.id != merge.id:  # other merges into the survivor stay as they are
            other_merges.update(other.merged_identifiers)
    back_to_merged = set(merge.merged_identifiers)
    stays = set(merge.survivor_identifiers) | other_merges
    owner: dict[str, str] = {}
    to_merged_idents: list[int] = []
    introduced_by: dict[str, list[tuple[int, str]]] = {}
    for ident_id, kind, value, source_event_id in session.execute(
        select(Identifier.id, Identifier.kind, Identifier.value, Identifier.source_event_id).where(
            Identifier.profile_id == survivor_id
        )
    ):
        key = f"{kind}:{value}"
        if key in back_to_merged:
            owner[key] = merged_id
            to_merged_idents.append(ident_id)
        elif key in stays or source_event_id is None:
            owner[key] = survivor_id
        else:
            introduced_by.setdefault(source_event_id, []).append((ident_id, key))

    # Replay what the survivor received directly since the merge, in arrival order.
    if merge.event_id is not None:
        merge_seq = session.scalar(select(Event.seq).where(Event.id == merge.event_id))
    else:  # a merge no event caused: the events stored after it
        merge_seq = None if merge.replay_after_seq is None else merge.replay_after_seq + 1
    to_merged_events: list[str] = []
    if merge_seq is not None:
        replay = session.execute(
            select(Event.id, Event.identifiers)
            .where(
                Event.profile_id == survivor_id,
                Event.origin_profile_id == survivor_id,
                Event.seq >= merge_seq,
            )
            .order_by(Event.seq)
        )
        for event_id, identifiers in replay:
            side = next((owner[key] for key in identifiers if key in owner), survivor_id)
            for ident_id, key in introduced_by.pop(event_id, []):
                owner[key] = side
                if side == merged_id:
                    to_merged_idents.append(ident_id)
            if side == merged_id:
                to_merged_events.append(event_id)

    # Move everything back.
    for part in chunks(sorted(to_merged_idents)):
        session.execute(
            update(Identifier)
            .where(Identifier.id.in_(part), Identifier.profile_id == survivor_id)
            .values(profile_id=merged_id)
        )
    session.execute(
        update(Event)
        .where(Event.profile_id == survivor_id, Event.origin_profile_id.in_(sorted(merged_side)))
        .values(profile_id=merged_id)
    )
    for part in chunks(to_merged_events):
        session.execute(
            update(Event).where(Event.id.in_(part)).values(profile_id=merged_id, origin_profile_id=merged_id)
        )
    for part in chunks(list(merge.merged_consent_ids)):
        session.execute(
            update(Consent)
            .where(Consent.id.in_(part), Consent.profile_id == survivor_id)
            .values(profile_id=merged_id)
        )
    session.execute(
        update(Consent)
        .where(
            Consent.profile_id == survivor_id,
            Consent.event_id.in_(select(Event.id).where(Event.profile_id == merged_id)),
        )
        .values(profile_id=merged_id)
    )
    match_keys: dict[str, list[str]] = {}
    for pid in (survivor_id, merged_id):
        traits, times = recompute_traits(session, pid)
        session.execute(
            update(Profile)
            .where(Profile.id == pid)
            .values(traits=traits, trait_times=times, updated_at=now, merged_into_id=None)
        )
        record = record_from_traits(pid, traits)
        match_keys[pid] = keys_of(record) if record else []
    store_keys(session, match_keys)  # both sides are match candidates again (the pair stays blocked)
    merge.undone_at = now
    a, b = sorted((survivor_id, merged_id))
    if (
        session.scalar(select(MergeBlock.id).where(MergeBlock.profile_a == a, MergeBlock.profile_b == b))
        is None
    ):
        session.add(MergeBlock(profile_a=a, profile_b=b, reason=f"unmerge of {merge.id}", created_at=now))
    session.flush()
    reopen_split_conflicts(session, people(session, survivor_id), merged_side)
    return merge
