"""What the admin area's pages share: its sections, paged lists, and the forms' way of working (validate
the whole form, write in one transaction; a refusal shows the form again with the domain's message beside
it and the values typed kept)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from parcours.console.common import page_number
from parcours.console.i18n import N_
from parcours.console.web import Page
from parcours.deps import public_base_url
from parcours.errors import Conflict, InvalidInput, NotFound, ParcoursError
from parcours.inputs import field_problems, problems_message

ADMIN = "admin"
PAGE_SIZE = 50
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Section:
    key: str
    title: str  # English source strings, translated where shown
    description: str


SECTIONS = (
    Section(
        "sources", N_("Sources and API tokens"), N_("Who may send events (write keys) and read the API.")
    ),
    Section("channels", N_("Channels"), N_("E-mail, SMS, WhatsApp, Messenger, Instagram, web chat, phone.")),
    Section(
        "teams", N_("Teams and agents"), N_("Who answers: teams, assignment, languages, skills, capacity.")
    ),
    Section("users", N_("Users"), N_("Who signs in to the console, with which role.")),
    Section("identity", N_("Merge rules"), N_("How identifiers join profiles, and the matching thresholds.")),
    Section("knowledge", N_("Knowledge base"), N_("The answers the bot gives on every channel.")),
)

LANGUAGE_LABELS = {"en": "English", "fr": "Français"}

# Fixed messages of the domains this area calls, so that the error shown beside a form is translated.
DOMAIN_MESSAGES = (
    N_("this is the last admin: make another admin first"),
    N_("name: a source name must be 1 to 120 characters"),
    N_("name: a token name must be 1 to 120 characters"),
    N_("name: a team name must be 1 to 120 characters"),
    N_("slug: lower-case letters, digits and dashes, at most 80"),
    N_("title and body: required (title at most 200, body at most 20,000 characters)"),
    N_("questions: at least one, each at most 300 characters"),
)


# ------------------------------------------------------------------------------------------- helpers
@dataclass
class Paged:
    """One page of a list: its rows and the links to the pages around it."""

    rows: list[Any]
    number: int
    previous_url: str | None = None
    next_url: str | None = None


def paged(
    session: Session,
    query: Select[*tuple[Any, ...]] | Callable[[int, int], Sequence[Any]],
    page: Page,
    path: str,
    *,
    name: str = "page",
    keep: dict[str, str] | None = None,
) -> Paged:
    """The ``name`` page (from the query) of ``query``'s rows, with links to the pages around it on the
    list at ``path`` (the page may be shown again by a form posted elsewhere). ``query`` is a statement,
    or a function of (limit, offset) that returns the rows (a domain's list)."""
    number = page_number(page, name, maximum=100_000)
    limit, offset = PAGE_SIZE + 1, (number - 1) * PAGE_SIZE
    if isinstance(query, Select):
        rows = list(session.execute(query.limit(limit).offset(offset)).all())
    else:
        rows = list(query(limit, offset))

    def url(n: int) -> str:
        params = {**(keep or {}), **({name: str(n)} if n > 1 else {})}
        return path + ("?" + urlencode(params) if params else "")

    return Paged(
        rows[:PAGE_SIZE],
        number,
        url(number - 1) if number > 1 else None,
        url(number + 1) if len(rows) > PAGE_SIZE else None,
    )


def render(page: Page, template: str, *, status: int = 200, **values: Any) -> Response:
    values.setdefault("errors", {})
    values.setdefault("form", {})
    return page.render(template, status=status, sections=SECTIONS, **values)


def _status(error: ParcoursError) -> int:
    return 409 if isinstance(error, Conflict) else 404 if isinstance(error, NotFound) else 400


def _typed(page: Page) -> dict[str, str]:
    """What the user typed in the form (never passwords nor the CSRF token), to fill it in again."""
    if page.form is None:
        return {}
    return {
        key: value
        for key, value in page.form.items()
        if isinstance(value, str) and "password" not in key and key != "csrf_token"
    }


def _refused(
    page: Page, error: ParcoursError, show: Callable[..., Response], form_id: str, **values: Any
) -> Response:
    """The page again, with the domain's message beside the form that was refused."""
    return show(
        page,
        errors={form_id: page.t.gettext(error.message)},
        form=_typed(page),
        status=_status(error),
        **values,
    )


def attempt(
    page: Page, action: Callable[[Session], T], show: Callable[..., Response], form_id: str, **values: Any
) -> T | Response:
    """Run ``action`` in one write transaction; a refusal (bad input, conflict) shows the form again."""
    try:
        with page.db.write() as session:
            return action(session)
    except (InvalidInput, Conflict) as error:
        return _refused(page, error, show, form_id, **values)


def lines_field(page: Page, name: str, *, max_chars: int = 100_000) -> list[str]:
    """A textarea of one value per line, blanks dropped."""
    text = page.field(name, required=False, max_chars=max_chars)
    return [line.strip() for line in text.splitlines() if line.strip()]


def words_field(page: Page, name: str) -> list[str]:
    """Comma- or space-separated words."""
    text = page.field(name, required=False, max_chars=2000)
    return [word for word in re.split(r"[\s,;]+", text) if word]


def choice_field(page: Page, name: str, choices: Iterable[str]) -> str:
    value = page.field(name, max_chars=40)
    allowed = list(choices)
    if value not in allowed:
        raise InvalidInput(f"{name}: must be one of {', '.join(allowed)}")
    return value


def validated(model: type[M], data: dict[str, Any]) -> M:
    """A domain request model built from a form; its first error as InvalidInput naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidInput(problems_message(field_problems(error.errors()[:1], root="form"))) from None


def count_rows(session: Session, query: Select[*tuple[Any, ...]]) -> int:
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def public_base(page: Page) -> str:
    """The base URL providers call: the configured public URL, else the one this browser used."""
    return public_base_url(page.request, page.settings)
