"""Merge rules: the identifier kinds (how each is normalised, its priority, how many a profile may hold,
values and patterns never used to join profiles) and the matching thresholds in force."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.console.admin.common import (
    ADMIN,
    attempt,
    choice_field,
    count_rows,
    lines_field,
    render,
    validated,
)
from parcours.console.common import whole_number
from parcours.console.i18n import N_
from parcours.console.web import Page, form_for, page_for
from parcours.errors import NotFound
from parcours.identity import service as identity
from parcours.identity.kinds import NORMALIZERS
from parcours.identity.schemas import KindIn, KindUpdate
from parcours.matching.realtime import MODEL_SETTING
from parcours.models import Identifier, IdentifierKind, InstanceSetting

router = APIRouter(include_in_schema=False)

NORMALIZER_LABELS = {
    "email": N_("E-mail address (lower case)"),
    "phone": N_("Phone number (E.164)"),
    "text": N_("Text as given (trimmed)"),
    "lower": N_("Lower case"),
    "compact": N_("Compact (no spaces, dashes or dots; upper case)"),
    "handle": N_("Handle (no @, lower case)"),
}


def _identity_page(page: Page, *, status: int = 200, **values: Any) -> Response:
    with page.db.read() as session:
        kinds = identity.list_kinds(session)
        trained = session.get(InstanceSetting, MODEL_SETTING) is not None
    s = page.settings
    return render(
        page,
        "admin/identity.html",
        status=status,
        kinds=kinds,
        normalizers=NORMALIZERS,
        normalizer_labels=NORMALIZER_LABELS,
        matching={
            "realtime": s.match_realtime,
            "auto": s.match_auto_threshold,
            "review": s.match_review_threshold,
            "trained": trained,
        },
        **values,
    )


@router.get("/console/admin/identity")
def identity_page(page: Page = Depends(page_for(ADMIN))) -> Response:
    return _identity_page(page)


@router.post("/console/admin/identity/kinds")
def add_kind(page: Page = Depends(form_for(ADMIN))) -> Response:
    def add(session: Session) -> str:
        kind = validated(
            KindIn,
            {
                "name": page.field("name", max_chars=40),
                "description": page.field("description", required=False, max_chars=500),
                "normalizer": choice_field(page, "normalizer", NORMALIZERS),
                "priority": whole_number(page, "priority", 0, 10_000),
                "max_per_profile": whole_number(page, "max_per_profile", 1, 10_000),
                "blocked_values": lines_field(page, "blocked_values"),
                "blocked_patterns": lines_field(page, "blocked_patterns"),
            },
        )
        return str(identity.add_kind(session, **kind.model_dump())["name"])

    made = attempt(page, add, _identity_page, "add")
    if isinstance(made, Response):
        return made
    return page.redirect(
        "/console/admin/identity", flash=page.t.gettext("Identifier kind {name} added.", name=made)
    )


def _kind_page(page: Page, name: str, *, status: int = 200, **values: Any) -> Response:
    with page.db.read() as session:
        kind = session.get(IdentifierKind, name)
        if kind is None:
            raise NotFound(f"identifier kind {name!r} not found")
        view = identity.kind_view(kind)
        holders = count_rows(session, select(Identifier.id).where(Identifier.kind == name))
        registry = identity.load_registry(session, page.settings.default_phone_region)
        in_use = identity.blocked_values_in_use(session, registry, name)
    return render(
        page,
        "admin/kind.html",
        status=status,
        kind=view,
        holders=holders,
        in_use=in_use,
        merges_in_use=sum(len(item["merges"]) for item in in_use),
        normalizer_labels=NORMALIZER_LABELS,
        **values,
    )


@router.get("/console/admin/identity/kinds/{name}")
def kind_page(name: str, page: Page = Depends(page_for(ADMIN))) -> Response:
    return _kind_page(page, name)


@router.post("/console/admin/identity/kinds/{name}")
def update_kind(name: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    def update(session: Session) -> str:
        changes = validated(
            KindUpdate,
            {
                "priority": whole_number(page, "priority", 0, 10_000),
                "max_per_profile": whole_number(page, "max_per_profile", 1, 10_000),
                "blocked_values": lines_field(page, "blocked_values"),
                "blocked_patterns": lines_field(page, "blocked_patterns"),
            },
        )
        return str(identity.update_kind(session, name, **changes.model_dump(exclude_none=True))["name"])

    with page.db.read() as session:
        if session.get(IdentifierKind, name) is None:
            raise NotFound(f"identifier kind {name!r} not found")
    made = attempt(page, update, lambda p, **v: _kind_page(p, name, **v), "kind")
    if isinstance(made, Response):
        return made
    return page.redirect(
        "/console/admin/identity", flash=page.t.gettext("Merge rules of {name} saved.", name=made)
    )


@router.post("/console/admin/identity/kinds/{name}/unmerge-blocked")
def unmerge_blocked(name: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    """Undo the merges that the kind's blocked values linked (a shared device found out late)."""
    with page.db.write() as session:
        registry = identity.load_registry(session, page.settings.default_phone_region)
        done = identity.undo_blocked_merges(session, registry, name)
    flash = page.t.ngettext("{count} merge undone.", "{count} merges undone.", len(done["undone"]))
    if done["refused"]:
        flash += " " + page.t.ngettext(
            "{count} could not be undone now: undo the later merge of its customer first.",
            "{count} could not be undone now: undo the later merge of their customers first.",
            len(done["refused"]),
        )
    return page.redirect(f"/console/admin/identity/kinds/{name}", flash=flash)
