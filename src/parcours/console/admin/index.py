"""The admin area's index: each section with a line on its state (sources and tokens, channels
configured, teams and agents, users, identifier kinds and thresholds, knowledge-base articles)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from sqlalchemy import func, select

from parcours.console.admin.channels import channel_adapters
from parcours.console.admin.common import ADMIN, count_rows, render
from parcours.console.web import Page, page_for
from parcours.models import Agent, ApiToken, IdentifierKind, KnowledgeArticle, Source, Team, User

router = APIRouter(include_in_schema=False)


@router.get("/console/admin")
def admin_home(page: Page = Depends(page_for(ADMIN))) -> Response:
    t = page.t
    with page.db.read() as session:
        sources = count_rows(session, select(Source.id).where(Source.disabled_at.is_(None)))
        tokens = count_rows(session, select(ApiToken.id).where(ApiToken.revoked_at.is_(None)))
        teams = count_rows(session, select(Team.id))
        agents = count_rows(session, select(Agent.id).where(Agent.disabled_at.is_(None)))
        online = count_rows(
            session, select(Agent.id).where(Agent.disabled_at.is_(None), Agent.available.is_(True))
        )
        active_users = count_rows(session, select(User.id).where(User.disabled_at.is_(None)))
        admins = count_rows(session, select(User.id).where(User.disabled_at.is_(None), User.role == "admin"))
        kinds = count_rows(session, select(IdentifierKind.name))
        per_language = dict(
            session.execute(
                select(KnowledgeArticle.language, func.count()).group_by(KnowledgeArticle.language)
            ).all()
        )
    adapters = channel_adapters(page)
    ready = [t.gettext(a.title) for a in adapters if a.state == "ok"]
    partly = [t.gettext(a.title) for a in adapters if a.state == "partial"]
    off = [t.gettext(a.title) for a in adapters if a.state == "off"]
    channel_parts = []
    if ready:
        channel_parts.append(t.gettext("Configured: {names}", names=", ".join(ready)))
    if partly:
        channel_parts.append(t.gettext("Partly configured: {names}", names=", ".join(partly)))
    if off:
        channel_parts.append(t.gettext("Not configured: {names}", names=", ".join(off)))
    articles = sum(int(n) for n in per_language.values())
    states = {
        "sources": ", ".join([t.ngettext("{count} source", "{count} sources", sources),
                              t.ngettext("{count} API token", "{count} API tokens", tokens)]),
        "channels": "; ".join(channel_parts),
        "teams": ", ".join([t.ngettext("{count} team", "{count} teams", teams),
                            t.ngettext("{count} agent", "{count} agents", agents),
                            t.ngettext("{count} available now", "{count} available now", online)]),
        "users": ", ".join([t.ngettext("{count} active user", "{count} active users", active_users),
                            t.ngettext("{count} administrator", "{count} administrators", admins)]),
        "identity": "; ".join([t.ngettext("{count} identifier kind", "{count} identifier kinds", kinds),
                               t.gettext("merge at {auto}, review from {review}",
                                         auto=t.number(page.settings.match_auto_threshold),
                                         review=t.number(page.settings.match_review_threshold))]),
        "knowledge": t.ngettext("{count} article", "{count} articles", articles)
        + (" (" + ", ".join(f"{lang} {t.number(int(n))}" for lang, n in sorted(per_language.items())) + ")"
           if per_language else ""),
    }  # fmt: skip
    return render(page, "admin/index.html", states=states)
