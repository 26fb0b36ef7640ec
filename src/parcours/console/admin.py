"""Console pages: the admin area (sources and write keys, channels, teams, users, merge rules, knowledge
base)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from parcours.console.web import Page, page_for

router = APIRouter(include_in_schema=False)


@router.get("/console/admin")
def admin_home(page: Page = Depends(page_for("admin"))) -> Response:
    return page.render("admin/index.html")
