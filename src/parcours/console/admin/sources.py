"""Sources (who may send events, with their write keys) and API tokens: create, disable, revoke. A new
write key or token is shown once, to the session that created it, and never stored in clear."""

from __future__ import annotations

import secrets
import threading
import time
from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.auth import service as auth
from parcours.console.admin.common import ADMIN, attempt, choice_field, paged, public_base, render
from parcours.console.common import CHANNEL_LABELS
from parcours.console.web import SESSION_COOKIE, Page, form_for, page_for
from parcours.ingest.activity import (
    KEEP_REJECTIONS,
    KEEP_REJECTIONS_FOR,
    recent_activity,
    source_activity,
)
from parcours.inputs import utc_moment
from parcours.models import ApiToken
from parcours.vocabulary import CHANNELS

router = APIRouter(include_in_schema=False)

ACTIVITY_DAYS = 14  # the days a source's page shows


class OneTimeSecrets:
    """A write key or API token just created, kept until the next page shows it once: in this process's
    memory only (never in the database, a cookie or a log), for a few minutes, and only for the session
    that created it."""

    def __init__(self, ttl: float = 300.0, limit: int = 1000) -> None:
        self.ttl = ttl
        self.limit = limit
        self._items: dict[str, tuple[float, str, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def put(self, owner: str, value: dict[str, str]) -> str:
        ticket = secrets.token_urlsafe(18)
        now = time.monotonic()
        with self._lock:
            for key in [k for k, (at, _o, _v) in self._items.items() if at < now - self.ttl]:
                del self._items[key]
            while len(self._items) >= self.limit:
                del self._items[next(iter(self._items))]
            self._items[ticket] = (now, owner, value)
        return ticket

    def take(self, owner: str, ticket: str) -> dict[str, str] | None:
        with self._lock:
            item = self._items.get(ticket)
            if item is None or item[1] != owner:
                return None
            del self._items[ticket]
        at, _owner, value = item
        return value if at >= time.monotonic() - self.ttl else None


NEW_SECRETS = OneTimeSecrets()


def _owner(page: Page) -> str:
    return auth.digest("reveal:" + page.request.cookies.get(SESSION_COOKIE, ""))


def _sources_page(page: Page, *, status: int = 200, **values: Any) -> Response:
    with page.db.read() as session:
        sources = paged(
            session,
            lambda limit, offset: auth.list_sources(
                session, include_disabled=True, limit=limit, offset=offset
            ),
            page,
            "/console/admin/sources",
        )
        tokens = paged(
            session,
            select(ApiToken.name, ApiToken.created_at, ApiToken.revoked_at).order_by(
                ApiToken.revoked_at.is_not(None), ApiToken.name
            ),
            page,
            "/console/admin/sources",
            name="tokens_page",
        )
        recent = recent_activity(session, [source.id for source in sources.rows])
    ticket = page.request.query_params.get("shown")
    new_secret = (NEW_SECRETS.take(_owner(page), ticket[:100]) or {"kind": "gone"}) if ticket else None
    return render(
        page,
        "admin/sources.html",
        status=status,
        sources=sources,
        tokens=tokens,
        channels=CHANNELS,
        channel_labels=CHANNEL_LABELS,
        new_secret=new_secret,
        base_url=public_base(page),
        recent=recent,
        **values,
    )


@router.get("/console/admin/sources")
def sources_page(page: Page = Depends(page_for(ADMIN))) -> Response:
    return _sources_page(page)


@router.get("/console/admin/sources/{source_id}")
def source_page(source_id: str, page: Page = Depends(page_for(ADMIN))) -> Response:
    """What the source sent, day by day, and its latest refused events with the reason."""
    with page.db.read() as session:
        activity = source_activity(session, source_id, days=ACTIVITY_DAYS)
    return render(
        page,
        "admin/source.html",
        activity=activity,
        channel_labels=CHANNEL_LABELS,
        keep_rejections=KEEP_REJECTIONS,
        keep_days=KEEP_REJECTIONS_FOR.days,
        moment=utc_moment,
        day_of=date.fromisoformat,
    )


@router.post("/console/admin/sources")
def create_source(page: Page = Depends(form_for(ADMIN))) -> Response:
    def create(session: Session) -> tuple[auth.SourceInfo, str]:
        name = page.field("name", max_chars=120)
        channel = choice_field(page, "channel", CHANNELS)
        return auth.create_source(session, name, channel)

    made = attempt(page, create, _sources_page, "source")
    if isinstance(made, Response):
        return made
    source, write_key = made
    ticket = NEW_SECRETS.put(_owner(page), {"kind": "write_key", "name": source.name, "secret": write_key})
    return page.redirect(
        f"/console/admin/sources?shown={ticket}",
        flash=page.t.gettext("Source {name} created.", name=source.name),
    )


@router.post("/console/admin/sources/disable")
def disable_source(page: Page = Depends(form_for(ADMIN))) -> Response:
    name = page.field("name", max_chars=120)
    with page.db.write() as session:
        auth.disable_source(session, name)
    return page.redirect(
        "/console/admin/sources",
        flash=page.t.gettext("Source {name} disabled: its write key is refused from now on.", name=name),
    )


@router.post("/console/admin/tokens")
def create_token(page: Page = Depends(form_for(ADMIN))) -> Response:
    def create(session: Session) -> tuple[str, str]:
        name = page.field("token_name", max_chars=120)
        return name, auth.create_token(session, name)

    made = attempt(page, create, _sources_page, "token")
    if isinstance(made, Response):
        return made
    name, token = made
    ticket = NEW_SECRETS.put(_owner(page), {"kind": "token", "name": name, "secret": token})
    return page.redirect(
        f"/console/admin/sources?shown={ticket}", flash=page.t.gettext("API token {name} created.", name=name)
    )


@router.post("/console/admin/tokens/revoke")
def revoke_token(page: Page = Depends(form_for(ADMIN))) -> Response:
    name = page.field("token_name", max_chars=120)
    with page.db.write() as session:
        auth.revoke_token(session, name)
    return page.redirect(
        "/console/admin/sources", flash=page.t.gettext("API token {name} revoked.", name=name)
    )
