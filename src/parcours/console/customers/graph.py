"""The customer's identity graph: the profiles merged into one (a tree, drawn), each identifier with the
profile and event it came from, the merge history with unmerge, identity conflicts and the profiles kept
apart."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from parcours.console.common import display_name
from parcours.console.customers.common import (
    CHANNEL_LABELS,
    EVENT_TYPE_LABELS,
    KIND_LABELS,
    STATUS_LABELS,
    best_identifier,
)
from parcours.console.customers.rules import reason_text, rule_text
from parcours.console.customers.search import identifier_matches
from parcours.console.web import Page, form_for, page_for
from parcours.db.probes import in_chunks
from parcours.errors import Conflict, InvalidInput, NotFound
from parcours.identity import service as identity
from parcours.identity.conflicts import naming
from parcours.identity.kinds import KindRegistry
from parcours.identity.service import MAX_MERGE_REASON
from parcours.identity.unmerge import unmerge
from parcours.models import Event, Identifier, IdentityConflict, Merge, MergeBlock, Profile, Source

router = APIRouter(include_in_schema=False)


# ----------------------------------------------------------------------------------- identity graph
@dataclass
class GraphNode:
    id: str
    name: str
    created_at: datetime
    merge: dict[str, Any] | None  # the active merge that brought it into its parent
    label: str = ""  # the name, else the most telling identifier
    identifiers: list[dict[str, Any]] = field(default_factory=list)
    children: list[GraphNode] = field(default_factory=list)


def event_rows(session: Session, event_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = {e for e in event_ids if e}
    if not wanted:
        return {}
    rows = session.execute(
        select(Event.id, Event.type, Event.name, Event.channel, Event.timestamp, Event.source_id).where(
            in_chunks(Event.id, wanted)
        )
    ).all()
    sources = dict(
        session.execute(
            select(Source.id, Source.name).where(in_chunks(Source.id, {r.source_id for r in rows}))
        ).all()
    )
    return {
        r.id: {
            "id": r.id,
            "type": r.type,
            "name": r.name,
            "channel": r.channel,
            "timestamp": r.timestamp,
            "source": sources.get(r.source_id, r.source_id),
        }
        for r in rows
    }


def identity_graph(session: Session, requested_id: str) -> dict[str, Any]:
    """The customer's identity graph: the profiles merged into one (a tree, each merge with its event,
    identifiers and rule), every identifier with the profile and event it came from, the merge history
    (undone merges too), the identity conflicts recorded on it and the profiles kept apart from it."""
    active = identity.resolve_profile_id(session, requested_id)
    ids = identity.people(session, active)
    merges = list(
        session.scalars(
            select(Merge)
            .where(or_(in_chunks(Merge.survivor_id, ids), in_chunks(Merge.merged_id, ids)))
            .order_by(Merge.created_at, Merge.id)
        )
    )
    conflicts = list(
        session.scalars(
            select(IdentityConflict).where(naming(ids)).order_by(IdentityConflict.created_at.desc()).limit(50)
        )
    )
    blocks = list(
        session.scalars(
            select(MergeBlock).where(
                or_(in_chunks(MergeBlock.profile_a, ids), in_chunks(MergeBlock.profile_b, ids))
            )
        )
    )
    others = {m.survivor_id for m in merges} | {m.merged_id for m in merges}
    others |= {b.profile_a for b in blocks} | {b.profile_b for b in blocks}
    # A conflict's other profiles: those it names besides this customer's (the event may have gone to
    # this customer, or to another one that this customer was kept apart from).
    own = set(ids)
    conflict_others = {c.id: [pid for pid in c.named_profile_ids if pid not in own] for c in conflicts}
    others |= {pid for named in conflict_others.values() for pid in named}
    profiles = {
        row.id: row
        for row in session.execute(
            select(Profile.id, Profile.traits, Profile.created_at, Profile.merged_into_id).where(
                in_chunks(Profile.id, set(ids) | others)
            )
        )
    }
    identifiers = session.execute(
        select(
            Identifier.kind,
            Identifier.value,
            Identifier.source_event_id,
            Identifier.first_seen_at,
            Identifier.last_seen_at,
        )
        .where(Identifier.profile_id == active)
        .order_by(Identifier.kind, Identifier.value)
    ).all()
    events = event_rows(
        session,
        [i.source_event_id for i in identifiers if i.source_event_id]
        + [m.event_id for m in merges if m.event_id]
        + [c.event_id for c in conflicts],
    )
    origins = dict(
        session.execute(
            select(Event.id, Event.origin_profile_id).where(
                in_chunks(Event.id, {i.source_event_id for i in identifiers if i.source_event_id})
            )
        ).all()
    )

    def name_of(pid: str) -> str:
        row = profiles.get(pid)
        return display_name(row.traits) if row is not None else ""

    # Who brought each identifier: the profile of the event that first carried it, else the merged
    # profile whose merge record lists it (innermost merge wins), else the surviving profile.
    active_merges = [m for m in merges if m.undone_at is None and m.merged_id in ids]
    brought_by: dict[str, str] = {}
    for merge in sorted(active_merges, key=lambda m: (m.created_at, m.id), reverse=True):
        for key in merge.merged_identifiers:
            brought_by[key] = merge.merged_id
    idents = []
    for row in identifiers:
        key = f"{row.kind}:{row.value}"
        origin = origins.get(row.source_event_id or "")
        owner = origin if origin in ids else brought_by.get(key, active)
        idents.append(
            {
                "kind": row.kind,
                "value": row.value,
                "owner": owner,
                "event": events.get(row.source_event_id or ""),
                "first_seen_at": row.first_seen_at,
                "last_seen_at": row.last_seen_at,
            }
        )

    def merge_view(merge: Merge) -> dict[str, Any]:
        survivor = profiles.get(merge.survivor_id)
        return {
            "id": merge.id,
            "survivor_id": merge.survivor_id,
            "merged_id": merge.merged_id,
            "event": events.get(merge.event_id or ""),
            "event_id": merge.event_id,
            "linking_identifiers": list(merge.linking_identifiers),
            "rule": merge.rule,
            "created_at": merge.created_at,
            "undone_at": merge.undone_at,
            # unmerge undoes a merge whose survivor is not itself merged away (the outer one first)
            "can_undo": merge.undone_at is None
            and survivor is not None
            and survivor.merged_into_id is None
            and merge.survivor_id in ids,
        }

    history = [merge_view(m) for m in merges]
    by_merged = {m["merged_id"]: m for m in history if m["undone_at"] is None and m["merged_id"] in ids}
    nodes = {
        pid: GraphNode(
            id=pid,
            name=name_of(pid),
            created_at=profiles[pid].created_at,
            merge=by_merged.get(pid),
        )
        for pid in ids
        if pid in profiles
    }
    for ident in idents:
        nodes[ident["owner"] if ident["owner"] in nodes else active].identifiers.append(ident)
    for pid, node in nodes.items():
        parent = profiles[pid].merged_into_id
        if pid != active and parent in nodes:
            nodes[parent].children.append(node)
    for node in nodes.values():
        node.children.sort(key=lambda n: (n.merge["created_at"] if n.merge else n.created_at, n.id))

    held: dict[str, list[str]] = {
        pid: [f"{i['kind']}:{i['value']}" for i in n.identifiers] for pid, n in nodes.items()
    }
    for merge in merges:  # profiles outside the tree (unmerged since) as their merge record knew them
        held.setdefault(merge.merged_id, list(merge.merged_identifiers))
        held.setdefault(merge.survivor_id, list(merge.survivor_identifiers))

    def label_of(pid: str) -> str:
        """The person's name, else the most telling identifier the profile holds (never blank)."""
        return name_of(pid) or best_identifier(held.get(pid, [])) or pid

    for node in nodes.values():
        node.label = label_of(node.id)
    for item in history:
        item["survivor_name"], item["merged_name"] = (
            label_of(item["survivor_id"]),
            label_of(item["merged_id"]),
        )
    return {
        "id": active,
        "name": name_of(active),
        "root": nodes[active],
        "profiles": len(nodes),
        "identifiers": idents,
        "merges": list(reversed(history)),
        "conflicts": [
            {
                "rule": c.rule,
                "reason": c.reason,
                "status": c.status,
                "identifiers": list(c.identifiers),
                "others": [(pid, label_of(pid)) for pid in conflict_others[c.id]],
                "event": events.get(c.event_id),
                "created_at": c.created_at,
            }
            for c in conflicts
        ],
        "kept_apart": [
            {
                "other": other,
                "other_name": label_of(other),
                "reason": b.reason,
                "created_at": b.created_at,
            }
            for b in blocks
            for other in [b.profile_b if b.profile_a in ids else b.profile_a]
        ],
    }


@dataclass(frozen=True)
class SvgBox:
    x: int
    y: int
    node: GraphNode
    edge: str | None  # SVG path from the parent's box, None for the root


SVG_BOX_WIDTH, SVG_BOX_HEIGHT, SVG_INDENT, SVG_GAP = 240, 46, 36, 14


def graph_drawing(root: GraphNode) -> tuple[list[SvgBox], int, int]:
    """Boxes of a small drawing of the tree, one row per profile, each merged profile indented under
    the one it was merged into (grows downwards, stays narrow however many merges), with the elbow
    path joining it to its parent."""
    boxes: list[SvgBox] = []

    def place(node: GraphNode, depth: int, parent: tuple[int, int] | None) -> None:
        x, y = depth * SVG_INDENT, len(boxes) * (SVG_BOX_HEIGHT + SVG_GAP)
        edge = None
        if parent is not None:
            middle = y + SVG_BOX_HEIGHT // 2
            edge = f"M {parent[0] + SVG_INDENT // 2} {parent[1] + SVG_BOX_HEIGHT} V {middle} H {x}"
        boxes.append(SvgBox(x, y, node, edge))
        for child in node.children:
            place(child, depth + 1, (x, y))

    place(root, 0, None)
    width = max(b.x for b in boxes) + SVG_BOX_WIDTH
    height = max(b.y for b in boxes) + SVG_BOX_HEIGHT
    return boxes, width, height


@router.get("/console/customers/{profile_id}/graph")
def graph(profile_id: str, page: Page = Depends(page_for("customers"))) -> Response:
    with page.db.read() as session:
        active = identity.resolve_profile_id(session, profile_id[:60])
        if active != profile_id:
            return page.redirect(f"/console/customers/{active}/graph")
        data = identity_graph(session, active)
    for merge in data["merges"]:
        merge["rule"] = rule_text(page.t, merge["rule"])
    for conflict in data["conflicts"]:
        conflict["rule"], conflict["reason"] = (
            rule_text(page.t, conflict["rule"]),
            reason_text(page.t, conflict["reason"]),
        )
    boxes, width, height = graph_drawing(data["root"])
    return page.render(
        "customers/graph.html",
        graph=data,
        boxes=boxes,
        svg_width=width,
        svg_height=height,
        box_width=SVG_BOX_WIDTH,
        box_height=SVG_BOX_HEIGHT,
        kind_labels=KIND_LABELS,
        channel_labels=CHANNEL_LABELS,
        event_type_labels=EVENT_TYPE_LABELS,
        status_labels=STATUS_LABELS,
    )


@router.post("/console/customers/{profile_id}/unmerge")
def unmerge_profile(profile_id: str, page: Page = Depends(form_for("identity"))) -> Response:
    merge_id = page.field("merge_id", max_chars=60)
    with page.db.write() as session:
        active = identity.resolve_profile_id(session, profile_id[:60])
        merge = session.get(Merge, merge_id)
        if merge is None or merge.survivor_id not in identity.people(session, active):
            raise NotFound(f"merge {merge_id} not found for this customer")
        done = unmerge(session, merge.merged_id, merge.id)
        restored_name = _label(session, done.merged_id)
    return page.redirect(
        f"/console/customers/{active}/graph",
        flash=page.t.gettext(
            "Merge undone: {name} ({id}) is a customer of their own again.",
            name=restored_name,
            id=done.merged_id,
        ),
    )


def other_customer(session: Session, registry: KindRegistry, active: str, text: str) -> str:
    """The customer a person typed to merge with ``active``: a customer id (``prf_…``), or any of their
    identifiers typed any way (``KIND:VALUE``, or a bare e-mail, phone or card number)."""
    if text.startswith("prf_"):
        return identity.resolve_profile_id(session, text)
    found, problem = identifier_matches(session, registry, text)
    if problem is not None:
        raise InvalidInput(problem)
    others = list(dict.fromkeys(found))  # holders of identifiers: active profiles already
    if not others:
        raise NotFound(f"no customer holds {text}")
    if others == [active]:
        raise Conflict(f"{text} is already one of this customer's identifiers")
    others = [pid for pid in others if pid != active]
    if len(others) > 1:
        raise Conflict(f"{len(others)} customers hold {text}; type it as KIND:VALUE (email:…, phone:…)")
    return others[0]


def _label(session: Session, profile_id: str) -> str:
    """A customer's name, else their most telling identifier, else their id."""
    traits = session.scalar(select(Profile.traits).where(Profile.id == profile_id))
    keys = session.execute(
        select(Identifier.kind, Identifier.value).where(Identifier.profile_id == profile_id)
    )
    return display_name(traits) or best_identifier(f"{k}:{v}" for k, v in keys) or profile_id


@router.post("/console/customers/{profile_id}/merge")
def merge_customer(profile_id: str, page: Page = Depends(form_for("identity"))) -> Response:
    """A person decided that another customer is this one: the core merge, recorded with their name and
    reason, undone from this page like any other."""
    text = page.field("other", max_chars=400)
    reason = page.field("reason", required=False, max_chars=MAX_MERGE_REASON)
    with page.db.write() as session:
        registry = identity.load_registry(session, page.settings.default_phone_region)
        active = identity.resolve_profile_id(session, profile_id[:60])
        other = other_customer(session, registry, active, text)
        names = {pid: _label(session, pid) for pid in (active, other)}  # before the merge moves them
        done = identity.merge_customers(
            session, registry, active, other, actor=page.user.name or page.user.email, reason=reason
        )
    return page.redirect(
        f"/console/customers/{done['survivor']['id']}/graph",
        flash=page.t.gettext(
            "Merged: {name} is now part of this customer. Unmerge undoes it.",
            name=names[done["merged_id"]],
        ),
    )
