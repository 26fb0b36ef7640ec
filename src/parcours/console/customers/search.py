"""Finding a customer: by any identifier typed any way, or by name (the matcher's stored blocking keys,
never the profiles' JSON traits); without a query, the customers seen most recently."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from parcours.console.common import display_name, page_number
from parcours.console.customers.common import (
    CHANNEL_LABELS,
    KIND_LABELS,
    MAIN_KINDS,
    PAGE_SIZE,
)
from parcours.console.web import Page, page_for
from parcours.db.probes import in_chunks
from parcours.errors import InvalidInput
from parcours.identity import service as identity
from parcours.identity.kinds import InvalidIdentifier, KindRegistry
from parcours.matching.blocking import BLOCKING_RULES
from parcours.matching.normalize import ascii_text, canonical_given_name, phonetic
from parcours.models import Event, Identifier, MatchKey, Profile

router = APIRouter(include_in_schema=False)

MAX_NAME_CANDIDATES = 500  # profiles a name search ranks; past this the page asks for a longer name

# The name keys that ``matching.blocking`` stores for every named profile (``match_keys``, indexed).
_RULE_NUMBER = {name: number for number, (name, _rule) in enumerate(BLOCKING_RULES)}
BOTH_NAMES = _RULE_NUMBER["both names, either order"]  # "{n}:{a}|{b}", the two names sorted
GIVEN_AND_SURNAME = _RULE_NUMBER["given name + surname"]  # "{n}:{canonical given}|{surname}"
SURNAME_AND_POSTCODE = _RULE_NUMBER["surname + postcode"]  # "{n}:{surname}|{postcode}"
SURNAME_SOUND_AND_YEAR = _RULE_NUMBER["surname sound + birth year"]  # "{n}:{NYSIIS}|{year}"


@dataclass
class CustomerRow:
    """One customer in a results list."""

    id: str
    name: str
    identifiers: list[tuple[str, str]] = field(default_factory=list)  # (kind, value), main ones first
    more_identifiers: int = 0
    channels: list[str] = field(default_factory=list)  # most recently used first
    last_seen: datetime | None = None


def customer_rows(session: Session, profile_ids: Sequence[str]) -> list[CustomerRow]:
    """The results-list rows of these (active) profiles, in this order: three statements in all."""
    if not profile_ids:
        return []
    ids = list(dict.fromkeys(profile_ids))
    traits: dict[str, dict[str, Any]] = dict(
        session.execute(select(Profile.id, Profile.traits).where(in_chunks(Profile.id, ids))).all()
    )
    idents: dict[str, list[tuple[str, str, datetime]]] = defaultdict(list)
    for pid, kind, value, last_seen in session.execute(
        select(Identifier.profile_id, Identifier.kind, Identifier.value, Identifier.last_seen_at).where(
            in_chunks(Identifier.profile_id, ids)
        )
    ):
        idents[pid].append((kind, value, last_seen))
    channels: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for pid, channel, last in session.execute(
        select(Event.profile_id, Event.channel, func.max(Event.timestamp))
        .where(in_chunks(Event.profile_id, ids))
        .group_by(Event.profile_id, Event.channel)
    ):
        channels[pid].append((last, channel))
    rank = {kind: position for position, kind in enumerate(MAIN_KINDS)}
    rows = []
    for pid in ids:
        if pid not in traits:
            continue
        own = sorted(idents.get(pid, []), key=lambda i: (rank.get(i[0], len(rank)), i[0], i[1]))
        main = [(kind, value) for kind, value, _ in own if kind in rank][:3]
        seen = [moment for _, _, moment in own] + [moment for moment, _ in channels.get(pid, [])]
        rows.append(
            CustomerRow(
                id=pid,
                name=display_name(traits[pid]),
                identifiers=main or [(kind, value) for kind, value, _ in own[:1]],
                more_identifiers=max(0, len(own) - max(1, len(main))),
                channels=[c for _, c in sorted(channels.get(pid, []), reverse=True)],
                last_seen=max(seen, default=None),
            )
        )
    return rows


# ------------------------------------------------------------------------------------------- search
def identifier_matches(session: Session, registry: KindRegistry, text: str) -> tuple[list[str], str | None]:
    """Profiles holding an identifier typed any way: ``KIND:VALUE``, or a bare value tried as every kind
    whose normaliser accepts it (an e-mail, ``06 12 34 56 78``, ``2901 2345 6789 0``, a till id...).
    Returns (profile ids, a message when an explicit ``KIND:VALUE`` cannot be one)."""
    kind, sep, value = text.partition(":")
    pairs: list[tuple[str, str]] = []
    if sep and kind.strip().lower() in registry:
        kind = kind.strip().lower()
        try:
            pairs.append((kind, registry.normalize(kind, value)))
        except InvalidIdentifier as error:
            return [], f"{kind} {error}"
    else:
        for candidate in registry.rules:
            try:
                pairs.append((candidate, registry.normalize(candidate, text)))
            except InvalidIdentifier:
                continue
    if not pairs:
        return [], None
    # One statement, each (kind, value) an equality on the unique (kind, value) index.
    found = session.execute(
        select(Identifier.profile_id, Identifier.kind).where(
            or_(*(and_(Identifier.kind == k, Identifier.value == v) for k, v in pairs))
        )
    ).all()
    priority = {name: rule.priority for name, rule in registry.rules.items()}
    ordered = sorted(found, key=lambda row: priority.get(row[1], 1000))
    return list(dict.fromkeys(pid for pid, _ in ordered)), None


# Collations that order text by code point, where a range ``[prefix, prefix + U+FFFF)`` is exactly "starts
# with prefix" and a plain index serves it (SQLite's BINARY; PostgreSQL's C, POSIX and C.UTF-8).
BYTEWISE_COLLATIONS = frozenset({"c", "posix", "c.utf-8", "c.utf8"})
_bytewise_databases: dict[str, bool] = {}


def keys_sort_bytewise(session: Session) -> bool:
    """Whether this database compares ``match_keys.key`` by code point (asked once per database)."""
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":
        return True
    url = bind.engine.url.render_as_string(hide_password=True)
    if url not in _bytewise_databases:
        collation = None
        if bind.dialect.name == "postgresql":
            collation = session.scalar(
                sql_text("SELECT datcollate FROM pg_database WHERE datname = current_database()")
            )
        _bytewise_databases[url] = str(collation or "").lower() in BYTEWISE_COLLATIONS
    return _bytewise_databases[url]


def _key_prefix(session: Session, prefix: str) -> ColumnElement[bool]:
    """``match_keys.key`` starting with ``prefix``: a range, which the key index answers, where keys sort
    by code point; otherwise LIKE (always right; under a linguistic collation such as en_US a range
    would not be, and PostgreSQL then reads the whole table: keep ``match_keys`` under C for big bases).
    Keys and prefixes hold only ``[a-z0-9 |:]`` and NYSIIS capitals: no LIKE wildcard to escape."""
    if keys_sort_bytewise(session):
        return and_(MatchKey.key >= prefix, MatchKey.key < prefix + "\uffff")
    return MatchKey.key.like(prefix + "%")


def name_matches(session: Session, text: str) -> tuple[list[str], bool]:
    """Active profiles whose name matches ``text``, best first; and whether there were too many.

    The query reads the matcher's stored blocking keys (``match_keys``, indexed on ``key``; see
    ``matching/blocking.py``), never the profiles' JSON traits (which no index covers):

    - two words or more ("Léa Martin", "martin lea", "Bob Smith"): the exact "both names, either order"
      key for every split of the words into given name and surname, and the "given name (nicknames
      folded) + surname" key as a prefix (the last word may be half typed);
    - one word: key prefixes of the given name, of the alphabetically first name, of the surname with a
      postcode, and the surname's sound with a birth year.

    The keys are stored for every named profile while real-time matching is on (the default;
    ``parcours identity dedupe --profiles`` rebuilds them). A one-word surname of a profile with neither
    postcode nor birth date, that sorts after its given name, has no key to find it by: type both names.
    """
    words = ascii_text(text).split()
    if not words or len("".join(words)) < 2:
        return [], False
    exact: list[str] = []
    prefixes: list[str] = []
    if len(words) == 1:
        word = words[0]
        prefixes += [
            f"{GIVEN_AND_SURNAME}:{word}",
            f"{GIVEN_AND_SURNAME}:{canonical_given_name(word)}|",
            f"{BOTH_NAMES}:{word}",
            f"{SURNAME_AND_POSTCODE}:{word}",
        ]
        if phonetic(word):
            prefixes.append(f"{SURNAME_SOUND_AND_YEAR}:{phonetic(word)}|")
    else:
        for cut in range(1, len(words)):
            given, surname = " ".join(words[:cut]), " ".join(words[cut:])
            exact.append(f"{BOTH_NAMES}:" + "|".join(sorted((given, surname))))
            prefixes.append(f"{GIVEN_AND_SURNAME}:{canonical_given_name(given)}|{surname}")
            prefixes.append(f"{GIVEN_AND_SURNAME}:{canonical_given_name(surname)}|{given}")
    conditions = [_key_prefix(session, prefix) for prefix in dict.fromkeys(prefixes)]
    if exact:
        conditions.append(MatchKey.key.in_(exact))
    candidates = list(
        dict.fromkeys(
            session.scalars(
                select(MatchKey.profile_id).where(or_(*conditions)).limit(MAX_NAME_CANDIDATES * 8)
            )
        )
    )
    too_many = len(candidates) > MAX_NAME_CANDIDATES
    candidates = candidates[:MAX_NAME_CANDIDATES]
    ranked: list[tuple[int, str, str]] = []
    for pid, traits in session.execute(
        select(Profile.id, Profile.traits).where(
            in_chunks(Profile.id, candidates), Profile.merged_into_id.is_(None)
        )
    ):
        name = ascii_text(display_name(traits))
        parts = name.split()
        if sorted(parts) == sorted(words):
            score = 0  # the full name
        elif all(word in parts for word in words):
            score = 1  # each word is one of the names
        elif all(any(part.startswith(word) for part in parts) for word in words):
            score = 2  # each word begins one of the names
        else:
            score = 3  # nicknames, sound-alikes
        ranked.append((score, name, pid))
    return [pid for _, _, pid in sorted(ranked)], too_many


def recently_seen(session: Session, offset: int, limit: int) -> list[str]:
    """Active profiles, the most recently seen first (the newest ``last_seen_at`` of their identifiers:
    identifiers move to the survivor of a merge, so every row belongs to an active profile)."""
    last = func.max(Identifier.last_seen_at)
    return list(
        session.scalars(
            select(Identifier.profile_id)
            .group_by(Identifier.profile_id)
            .order_by(last.desc(), Identifier.profile_id)
            .offset(offset)
            .limit(limit)
        )
    )


@router.get("/console/customers")
def customers(page: Page = Depends(page_for("customers"))) -> Response:
    query = page.request.query_params.get("q", "").strip()
    if len(query) > 320:
        raise InvalidInput("q: at most 320 characters")
    number = page_number(page)
    offset = (number - 1) * PAGE_SIZE
    message: str | None = None
    too_many = False
    with page.db.read() as session:
        if query:
            registry = identity.load_registry(session, page.settings.default_phone_region)
            found, message = identifier_matches(session, registry, query)
            kind, colon, _value = query.partition(":")
            explicit = bool(colon) and kind.strip().lower() in registry  # KIND:VALUE: no name to look for
            if not explicit and "@" not in query and sum(ch.isalpha() for ch in query) >= 2:
                by_name, too_many = name_matches(session, query)
                found += [pid for pid in by_name if pid not in found]
            total = len(found)
            rows = customer_rows(session, found[offset : offset + PAGE_SIZE])
            has_next = offset + PAGE_SIZE < total
        else:
            ids = recently_seen(session, offset, PAGE_SIZE + 1)
            has_next = len(ids) > PAGE_SIZE
            total = None
            rows = customer_rows(session, ids[:PAGE_SIZE])
    return page.render(
        "customers/search.html",
        query=query,
        rows=rows,
        total=total,
        page_number=number,
        has_next=has_next,
        message=message,
        too_many=too_many,
        kind_labels=KIND_LABELS,
        channel_labels=CHANNEL_LABELS,
    )
