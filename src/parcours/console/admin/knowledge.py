"""The knowledge base the bot answers from on every channel: articles per slug and language, created,
edited and deleted here."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.auth import users
from parcours.console.admin.common import (
    ADMIN,
    LANGUAGE_LABELS,
    attempt,
    choice_field,
    lines_field,
    paged,
    render,
)
from parcours.console.web import Page, form_for, page_for
from parcours.errors import Conflict, InvalidInput, NotFound
from parcours.inbox import bot
from parcours.models import KnowledgeArticle

router = APIRouter(include_in_schema=False)


def _language_filter(page: Page) -> str | None:
    language = page.request.query_params.get("language") or None
    if language is not None and language not in users.LOCALES:
        raise InvalidInput("language: fr or en")
    return language


def _knowledge_page(page: Page, *, status: int = 200, **values: Any) -> Response:
    language = _language_filter(page)
    query = select(
        KnowledgeArticle.slug,
        KnowledgeArticle.language,
        KnowledgeArticle.title,
        KnowledgeArticle.questions,
        KnowledgeArticle.updated_at,
    ).order_by(KnowledgeArticle.slug, KnowledgeArticle.language)
    if language:
        query = query.where(KnowledgeArticle.language == language)
    with page.db.read() as session:
        articles = paged(
            session,
            query,
            page,
            "/console/admin/knowledge",
            keep={"language": language} if language else None,
        )
    return render(
        page,
        "admin/knowledge.html",
        status=status,
        articles=articles,
        language=language,
        locales=users.LOCALES,
        language_labels=LANGUAGE_LABELS,
        **values,
    )


@router.get("/console/admin/knowledge")
def knowledge_page(page: Page = Depends(page_for(ADMIN))) -> Response:
    return _knowledge_page(page)


def _article_fields(page: Page) -> dict[str, Any]:
    return {
        "title": page.field("title", max_chars=200),
        "body": page.field("body", max_chars=20_000),
        "questions": lines_field(page, "questions", max_chars=50_000),
    }


def _article_page(
    page: Page, language: str | None = None, slug: str | None = None, *, status: int = 200, **values: Any
) -> Response:
    article = None
    if language is not None and slug is not None:
        with page.db.read() as session:
            article = _article(session, language, slug)
    return render(
        page,
        "admin/article.html",
        status=status,
        article=article,
        locales=users.LOCALES,
        language_labels=LANGUAGE_LABELS,
        **values,
    )


def _article(session: Session, language: str, slug: str) -> KnowledgeArticle:
    article = session.scalar(
        select(KnowledgeArticle).where(KnowledgeArticle.slug == slug, KnowledgeArticle.language == language)
    )
    if article is None:
        raise NotFound(f"no article {slug!r} in {language!r}")
    return article


@router.get("/console/admin/knowledge/new")
def new_article_page(page: Page = Depends(page_for(ADMIN))) -> Response:
    return _article_page(page)


@router.post("/console/admin/knowledge")
def create_article(page: Page = Depends(form_for(ADMIN))) -> Response:
    def create(session: Session) -> tuple[str, str, str]:
        slug = page.field("slug", max_chars=80)
        language = choice_field(page, "language", users.LOCALES)
        fields = _article_fields(page)
        exists = session.scalar(
            select(KnowledgeArticle.id).where(
                KnowledgeArticle.slug == slug, KnowledgeArticle.language == language
            )
        )
        if exists is not None:
            raise Conflict(page.t.gettext("slug: an article {slug} in this language already exists; edit it",
                                          slug=slug))  # fmt: skip
        article = bot.save_article(session, slug, language, **fields)
        return article.slug, article.language, article.title

    made = attempt(page, create, _article_page, "article")
    if isinstance(made, Response):
        return made
    slug, language, title = made
    return page.redirect(
        f"/console/admin/knowledge/{language}/{slug}",
        flash=page.t.gettext("Article {title} created.", title=title),
    )


@router.get("/console/admin/knowledge/{language}/{slug}")
def article_page(language: str, slug: str, page: Page = Depends(page_for(ADMIN))) -> Response:
    return _article_page(page, language, slug)


@router.post("/console/admin/knowledge/{language}/{slug}")
def save_article(language: str, slug: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    with page.db.read() as session:
        _article(session, language, slug)  # NotFound: editing never creates

    def save(session: Session) -> str:
        return bot.save_article(session, slug, language, **_article_fields(page)).title

    made = attempt(page, save, lambda p, **v: _article_page(p, language, slug, **v), "article")
    if isinstance(made, Response):
        return made
    return page.redirect(
        f"/console/admin/knowledge/{language}/{slug}",
        flash=page.t.gettext("Article {title} saved.", title=made),
    )


@router.post("/console/admin/knowledge/{language}/{slug}/delete")
def delete_article(language: str, slug: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    with page.db.write() as session:
        title = bot.delete_article(session, slug, language).title
    return page.redirect(
        "/console/admin/knowledge", flash=page.t.gettext("Article {title} deleted.", title=title)
    )
