"""Console users: add one (with a role, a language, a store for an associate), change their role or
language, disable or enable them, set a new password."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.auth import users
from parcours.console.admin.common import ADMIN, LANGUAGE_LABELS, attempt, choice_field, paged, render
from parcours.console.web import ROLE_LABELS, Page, form_for, page_for
from parcours.errors import Conflict, InvalidInput
from parcours.models import Agent, Location, User

router = APIRouter(include_in_schema=False)


def _stores(session: Session) -> list[Any]:
    return list(
        session.execute(
            select(Location.id, Location.name, Location.city)
            .where(Location.kind == "store")
            .order_by(Location.name)
        )
    )


def _users_page(page: Page, *, status: int = 200, **values: Any) -> Response:
    with page.db.read() as session:
        listed = paged(
            session,
            select(User, Location.name)
            .outerjoin(Location, Location.id == User.location_id)
            .order_by(User.disabled_at.is_not(None), User.name, User.email),
            page,
            "/console/admin/users",
        )
        stores = _stores(session)
    return render(
        page,
        "admin/users.html",
        status=status,
        users=listed,
        stores=stores,
        roles=users.ROLES,
        locales=users.LOCALES,
        language_labels=LANGUAGE_LABELS,
        min_password=users.MIN_PASSWORD_CHARS,
        **values,
    )


@router.get("/console/admin/users")
def users_page(page: Page = Depends(page_for(ADMIN))) -> Response:
    return _users_page(page)


def _store_for(page: Page, role: str) -> str | None:
    location = page.field("location_id", required=False, max_chars=40) or None
    if role == "store_associate" and location is None:
        raise InvalidInput(page.t.gettext("location_id: a store associate works in a store; choose it"))
    return location if role == "store_associate" else None


@router.post("/console/admin/users")
def add_user(page: Page = Depends(form_for(ADMIN))) -> Response:
    def create(session: Session) -> users.UserInfo:
        role = choice_field(page, "role", users.ROLES)
        return users.create_user(
            session,
            page.field("email", max_chars=320),
            page.field("password", max_chars=users.MAX_PASSWORD_CHARS),
            name=page.field("name", max_chars=120),
            role=role,
            locale=choice_field(page, "locale", users.LOCALES),
            location_id=_store_for(page, role),
        )

    made = attempt(page, create, _users_page, "add")
    if isinstance(made, Response):
        return made
    return page.redirect(
        "/console/admin/users",
        flash=page.t.gettext("{name} ({email}) can now sign in.", name=made.name, email=made.email),
    )


def _user_page(page: Page, user_id: str, *, status: int = 200, **values: Any) -> Response:
    with page.db.read() as session:
        user = users.get_user(session, user_id)
        store = session.get(Location, user.location_id) if user.location_id else None
        agent = session.get(Agent, user.agent_id) if user.agent_id else None
        stores = _stores(session)
    return render(
        page,
        "admin/user.html",
        status=status,
        person=user,
        store=store,
        agent=agent,
        stores=stores,
        roles=users.ROLES,
        locales=users.LOCALES,
        language_labels=LANGUAGE_LABELS,
        min_password=users.MIN_PASSWORD_CHARS,
        myself=user.id == page.user.id,
        **values,
    )


@router.get("/console/admin/users/{user_id}")
def user_page(user_id: str, page: Page = Depends(page_for(ADMIN))) -> Response:
    return _user_page(page, user_id)


def _user_action(page: Page, user_id: str, form_id: str, action: Callable[[Session], str]) -> Response:
    with page.db.read() as session:
        users.get_user(session, user_id)  # NotFound before anything else
    made = attempt(page, action, lambda p, **v: _user_page(p, user_id, **v), form_id)
    if isinstance(made, Response):
        return made
    return page.redirect(f"/console/admin/users/{user_id}", flash=made)


@router.post("/console/admin/users/{user_id}/role")
def change_role(user_id: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    def change(session: Session) -> str:
        role = choice_field(page, "role", users.ROLES)
        info = users.update_user(session, user_id, role=role, location_id=_store_for(page, role))
        return page.t.gettext(
            "{name} is now: {role}.", name=info.name, role=page.t.gettext(_role_label(info.role))
        )

    response = _user_action(page, user_id, "role", change)
    if user_id == page.user.id and response.status_code == 303:
        with page.db.read() as session:
            still_admin = users.get_user(session, user_id).role == "admin"
        if not still_admin:  # the admin pages are closed to them now
            return page.redirect("/console/", flash=page.t.gettext("Your role changed."))
    return response


def _role_label(role: str) -> str:
    return ROLE_LABELS.get(role, role)


@router.post("/console/admin/users/{user_id}/locale")
def change_locale(user_id: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    def change(session: Session) -> str:
        info = users.update_user(session, user_id, locale=choice_field(page, "locale", users.LOCALES))
        return page.t.gettext("{name}'s console is now in {language}.", name=info.name,
                              language=LANGUAGE_LABELS[info.locale])  # fmt: skip

    return _user_action(page, user_id, "locale", change)


@router.post("/console/admin/users/{user_id}/disable")
def disable_user(user_id: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    def disable(session: Session) -> str:
        if user_id == page.user.id:
            raise Conflict(page.t.gettext("You cannot disable your own account; ask another administrator."))
        info = users.update_user(session, user_id, disabled=True)
        return page.t.gettext("{name} can no longer sign in; their sessions have ended.", name=info.name)

    return _user_action(page, user_id, "state", disable)


@router.post("/console/admin/users/{user_id}/enable")
def enable_user(user_id: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    def enable(session: Session) -> str:
        info = users.update_user(session, user_id, disabled=False)
        return page.t.gettext("{name} can sign in again.", name=info.name)

    return _user_action(page, user_id, "state", enable)


@router.post("/console/admin/users/{user_id}/password")
def reset_password(user_id: str, page: Page = Depends(form_for(ADMIN))) -> Response:
    def reset(session: Session) -> str:
        if user_id == page.user.id:
            raise Conflict(page.t.gettext("Change your own password in Preferences."))
        new = page.field("new_password", max_chars=users.MAX_PASSWORD_CHARS)
        if new != page.field("confirm_password", max_chars=users.MAX_PASSWORD_CHARS):
            raise InvalidInput(page.t.gettext("confirm_password: the two passwords differ"))
        users.set_password(session, user_id, new)
        name = users.get_user(session, user_id).name
        return page.t.gettext("New password set for {name}; their sessions have ended.", name=name)

    return _user_action(page, user_id, "password", reset)
