"""Sources with write keys, and API tokens. Only SHA-256 digests of secrets are stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.db.reference import reference
from parcours.db.types import utcnow
from parcours.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from parcours.ids import new_id
from parcours.models import ApiToken, Source
from parcours.vocabulary import check_channel


@dataclass(frozen=True)
class SourceInfo:
    id: str
    name: str
    channel: str
    # Filled by list_sources (not compared: the same source whoever read it).
    created_at: datetime | None = field(default=None, compare=False)
    disabled_at: datetime | None = field(default=None, compare=False)
    internal: bool = field(default=False, compare=False)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_name(name: str, what: str) -> str:
    cleaned = name.strip()
    if not cleaned or len(cleaned) > 120:
        raise InvalidInput(f"name: a {what} name must be 1 to 120 characters")
    return cleaned


def create_source(
    session: Session, name: str, channel: str, *, internal: bool = False
) -> tuple[SourceInfo, str]:
    """A new source and its write key (returned once; only its digest is kept)."""
    name = _check_name(name, "source")
    try:
        channel = check_channel(channel)
    except ValueError as error:
        raise InvalidInput(f"channel: {error}") from None
    if session.scalar(select(Source.id).where(Source.name == name)) is not None:
        raise Conflict(f"a source named {name!r} already exists")
    write_key = "wk_" + secrets.token_urlsafe(24)
    source = Source(
        id=new_id("src"),
        name=name,
        channel=channel,
        write_key_hash=digest(write_key),
        created_at=utcnow(),
        disabled_at=None,
        internal=internal,
    )
    session.add(source)
    session.flush()
    return SourceInfo(source.id, source.name, source.channel, internal=internal), write_key


def internal_source(session: Session, name: str, channel: str) -> SourceInfo:
    """A source Parcours itself records events under (the inbox's channels, commerce), made on first use.
    Its write key is never handed out. A source of the business that happens to bear the name is left
    alone: Parcours's own then takes the name with " (Parcours)". Kept across transactions until a source
    changes (``parcours.db.reference``): every message and order asks."""
    return reference(session, f"internal_source:{name}", lambda: _internal_source(session, name, channel))


def _internal_source(session: Session, name: str, channel: str) -> SourceInfo:
    for candidate in (name, f"{name} (Parcours)"):
        row = session.execute(
            select(Source.id, Source.name, Source.channel, Source.internal).where(Source.name == candidate)
        ).first()
        if row is None:
            source, _write_key = create_source(session, candidate, channel, internal=True)
            return source
        if row.internal:
            return SourceInfo(row.id, row.name, row.channel, internal=True)
    raise Conflict(f"sources named {name!r} and {name + ' (Parcours)'!r} belong to the business")


def list_sources(
    session: Session, *, include_disabled: bool = False, limit: int | None = None, offset: int = 0
) -> list[SourceInfo]:
    """The sources by name, with when each was created and disabled; the disabled ones (after the
    active ones) only with ``include_disabled``. ``limit`` and ``offset`` page through them."""
    query = select(
        Source.id, Source.name, Source.channel, Source.created_at, Source.disabled_at, Source.internal
    )
    if not include_disabled:
        query = query.where(Source.disabled_at.is_(None))
    query = query.order_by(Source.disabled_at.is_not(None), Source.name, Source.id).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return [
        SourceInfo(
            row.id,
            row.name,
            row.channel,
            created_at=row.created_at,
            disabled_at=row.disabled_at,
            internal=row.internal,
        )
        for row in session.execute(query)
    ]


def source_for_write_key(session: Session, write_key: str) -> SourceInfo:
    """The enabled source of a write key, or NotAuthenticated. Kept across transactions until a source
    changes (every ingestion request asks; the process keeps the key's digest, never the key)."""
    key_hash = digest(write_key)

    def load() -> SourceInfo:
        row = session.execute(
            select(Source.id, Source.name, Source.channel).where(
                Source.write_key_hash == key_hash, Source.disabled_at.is_(None)
            )
        ).first()
        if row is None:
            raise NotAuthenticated("unknown or disabled write key")
        return SourceInfo(row.id, row.name, row.channel)

    return reference(session, f"write_key:{key_hash}", load)


def create_token(session: Session, name: str) -> str:
    """A new API token (returned once; only its digest is kept)."""
    name = _check_name(name, "token")
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise Conflict(f"a token named {name!r} already exists")
    token = "pat_" + secrets.token_urlsafe(32)
    session.add(
        ApiToken(id=new_id("tok"), name=name, token_hash=digest(token), created_at=utcnow(), revoked_at=None)
    )
    session.flush()
    return token


def check_token(session: Session, token: str) -> str:
    """The token's name, or NotAuthenticated."""
    name = session.scalar(
        select(ApiToken.name).where(ApiToken.token_hash == digest(token), ApiToken.revoked_at.is_(None))
    )
    if name is None:
        raise NotAuthenticated("unknown or revoked API token")
    return name


def revoke_token(session: Session, name: str) -> None:
    """Stop a token working (within the servers' 10-second token cache)."""
    token = session.scalar(select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None)))
    if token is None:
        raise NotFound(f"no active API token named {name!r}")
    token.revoked_at = utcnow()
    session.flush()


def disable_source(session: Session, name: str) -> None:
    """Refuse a source's write key from now on; its events stay."""
    source = session.scalar(select(Source).where(Source.name == name, Source.disabled_at.is_(None)))
    if source is None:
        raise NotFound(f"no active source named {name!r}")
    if source.internal:
        raise Conflict(f"{name!r} is Parcours's own source (it has no write key to refuse)")
    source.disabled_at = utcnow()
    session.flush()
