"""Console users: argon2-hashed passwords, roles and what each role may do, signed-in sessions with their
CSRF tokens. The cookie carries a random token; only its SHA-256 digest is stored."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from parcours.auth.service import digest
from parcours.db.types import utcnow
from parcours.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound
from parcours.ids import new_id
from parcours.models import Agent, ConsoleSession, Location, User

ROLES = ("agent", "supervisor", "store_associate", "marketer", "admin")
LOCALES = ("en", "fr")

# What each role may do. "inbox": work conversations; "inbox.all": every team's conversations, assign
# anyone; "customers": see customer views; "identity": merge, unmerge, decide matching reviews; "store": the
# store view (stock, reservations, orders, pickups, returns); "admin": sources, channels, teams, users,
# merge rules, knowledge base.
PERMISSIONS: dict[str, frozenset[str]] = {
    "agent": frozenset({"inbox", "customers"}),
    "supervisor": frozenset({"inbox", "inbox.all", "customers", "identity"}),
    "store_associate": frozenset({"store", "customers"}),
    "marketer": frozenset({"customers"}),
    "admin": frozenset({"inbox", "inbox.all", "customers", "identity", "store", "admin"}),
}
# Roles that answer customers get an inbox agent of the same name and role.
INBOX_ROLES = frozenset({"agent", "supervisor", "admin"})

MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 200
_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so that a wrong e-mail takes as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class UserInfo:
    id: str
    email: str
    name: str
    role: str
    locale: str
    agent_id: str | None
    location_id: str | None

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS[self.role]

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise Forbidden("Your role does not allow this.")


@dataclass(frozen=True)
class SignedIn:
    user: UserInfo
    csrf_token: str


def _info(user: User) -> UserInfo:
    return UserInfo(user.id, user.email, user.name, user.role, user.locale, user.agent_id, user.location_id)


def check_email(value: str) -> str:
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise InvalidInput(f"email: {error}") from None


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(f"password: at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidInput(f"password: at most {MAX_PASSWORD_CHARS} characters")
    return password


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role: must be one of {', '.join(ROLES)}")
    return role


def check_locale(locale: str) -> str:
    if locale not in LOCALES:
        raise InvalidInput(f"locale: must be one of {', '.join(LOCALES)}")
    return locale


def _check_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > 120:
        raise InvalidInput("name: 1 to 120 characters")
    return cleaned


def _check_location(session: Session, role: str, location_id: str | None) -> str | None:
    if location_id is None:
        if role == "store_associate":
            raise InvalidInput("location: a store associate works in a store; give its location id")
        return None
    location = session.get(Location, location_id)
    if location is None or location.kind != "store":
        raise InvalidInput(f"location: no store with id {location_id!r}")
    return location_id


def _inbox_agent(session: Session, name: str, email: str, role: str, locale: str) -> str:
    """The inbox agent answering as this user: the agent of that name when it is this person (same
    e-mail, or no e-mail and no user yet), else a new one (named with the e-mail when another person's
    agent has the name)."""
    existing = session.scalar(select(Agent).where(Agent.name == name))
    if existing is not None:
        taken = session.scalar(select(User.id).where(User.agent_id == existing.id)) is not None
        if not taken and (existing.email is None or existing.email.lower() == email):
            existing.role = role
            existing.email = email
            return existing.id
        name = f"{name} ({email})"[:120]
    from parcours.inbox.agents import create_agent  # the inbox owns its agents

    agent, _token = create_agent(session, name, role=role, email=email, languages=[locale])
    return agent.id


def create_user(
    session: Session,
    email: str,
    password: str,
    *,
    name: str,
    role: str,
    locale: str = "en",
    location_id: str | None = None,
) -> UserInfo:
    """A new console user. Agents, supervisors and admins are linked to an inbox agent of their name."""
    email = check_email(email)
    password = check_password(password)
    role = check_role(role)
    locale = check_locale(locale)
    name = _check_name(name)
    location_id = _check_location(session, role, location_id)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"a user with e-mail {email} already exists")
    now = utcnow()
    user = User(
        id=new_id("usr"),
        email=email,
        name=name,
        role=role,
        locale=locale,
        password_hash=_hasher.hash(password),
        agent_id=_inbox_agent(session, name, email, role, locale) if role in INBOX_ROLES else None,
        location_id=location_id,
        created_at=now,
        password_changed_at=now,
        disabled_at=None,
    )
    session.add(user)
    session.flush()
    return _info(user)


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.disabled_at.is_not(None), User.name)))


def update_user(
    session: Session,
    user_id: str,
    *,
    role: str | None = None,
    locale: str | None = None,
    location_id: str | None = None,
    disabled: bool | None = None,
) -> UserInfo:
    """Change a user's role, language, store or whether they may sign in. Disabling ends their sessions.
    The last enabled admin cannot be demoted nor disabled."""
    user = get_user(session, user_id)
    new_role = check_role(role) if role is not None else user.role
    losing_admin = user.role == "admin" and (new_role != "admin" or disabled)
    if losing_admin and user.disabled_at is None:
        admins = session.scalar(
            select(func.count()).select_from(User).where(User.role == "admin", User.disabled_at.is_(None))
        )
        if (admins or 0) <= 1:
            raise Conflict("this is the last admin: make another admin first")
    if locale is not None:
        user.locale = check_locale(locale)
    if role is not None or location_id is not None:
        user.location_id = _check_location(
            session, new_role, location_id if location_id is not None else user.location_id
        )
        if new_role in INBOX_ROLES and user.agent_id is None:
            user.agent_id = _inbox_agent(session, user.name, user.email, new_role, user.locale)
        elif new_role in INBOX_ROLES and user.agent_id is not None:
            agent = session.get(Agent, user.agent_id)
            if agent is not None:
                agent.role = new_role  # the inbox's roles are the console's answering roles
        user.role = new_role
    if disabled is not None:
        user.disabled_at = utcnow() if disabled else None
        if disabled:
            session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
    session.flush()
    return _info(user)


def set_password(session: Session, user_id: str, password: str) -> None:
    """A new password; every session of the user ends (sign in again everywhere)."""
    user = get_user(session, user_id)
    user.password_hash = _hasher.hash(check_password(password))
    user.password_changed_at = utcnow()
    session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
    session.flush()


def password_matches(session: Session, user_id: str, password: str) -> bool:
    user = get_user(session, user_id)
    try:
        return _hasher.verify(user.password_hash, password[:MAX_PASSWORD_CHARS])
    except (VerificationError, InvalidHashError):
        return False


def sign_in(
    session: Session, email: str, password: str, *, hours: int, now: datetime | None = None
) -> tuple[str, SignedIn]:
    """A new session for the right e-mail and password: (cookie token, who and their CSRF token).
    Any mistake is the same NotAuthenticated, whichever part was wrong."""
    now = now or utcnow()
    wrong = NotAuthenticated("wrong e-mail or password")
    try:
        email = check_email(email)
    except InvalidInput:
        email = ""
    user = session.scalar(select(User).where(User.email == email)) if email else None
    try:
        _hasher.verify(user.password_hash if user is not None else _DUMMY_HASH, password[:MAX_PASSWORD_CHARS])
    except (VerificationError, InvalidHashError):
        raise wrong from None
    if user is None or user.disabled_at is not None:
        raise wrong
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    token = secrets.token_urlsafe(32)
    row = ConsoleSession(
        id=digest(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=hours),
    )
    session.add(row)
    # Old expired sessions of this user go when they sign in again.
    session.execute(
        delete(ConsoleSession).where(ConsoleSession.user_id == user.id, ConsoleSession.expires_at < now)
    )
    session.flush()
    return token, SignedIn(_info(user), row.csrf_token)


def session_user(session: Session, token: str, *, now: datetime | None = None) -> tuple[SignedIn, bool]:
    """Who holds this session token, and whether its expiry is due to slide forward (``touch_session``;
    written at most once a minute, so that reading pages does not write on every request)."""
    now = now or utcnow()
    row = session.execute(
        select(ConsoleSession, User)
        .join(User, User.id == ConsoleSession.user_id)
        .where(ConsoleSession.id == digest(token))
    ).first()
    if row is None:
        raise NotAuthenticated("not signed in")
    console_session, user = row
    if console_session.expires_at <= now or user.disabled_at is not None:
        raise NotAuthenticated("your session has ended; sign in again")
    stale = now - console_session.last_seen_at > timedelta(minutes=1)
    return SignedIn(_info(user), console_session.csrf_token), stale


def touch_session(session: Session, token: str, *, hours: int, now: datetime | None = None) -> None:
    now = now or utcnow()
    console_session = session.get(ConsoleSession, digest(token))
    if console_session is not None and console_session.expires_at > now:
        console_session.last_seen_at = now
        console_session.expires_at = now + timedelta(hours=hours)


def sign_out(session: Session, token: str) -> None:
    session.execute(delete(ConsoleSession).where(ConsoleSession.id == digest(token)))


def csrf_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
