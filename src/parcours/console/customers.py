"""Console pages: the customers area — find a customer by any identifier or by name, the customer's
unified view (profile, identifiers, channels, consent, the timeline on every channel, orders,
reservations, loyalty, satisfaction, conversations), the identity graph with unmerge, and the matching
review queue.

Everything here reads through the domains' services, plus a few read-only queries of its own (written to
use the tables' indexes and to load a page's rows in a handful of statements, never one per row)."""

from __future__ import annotations

import base64
import binascii
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from babel.numbers import format_percent
from fastapi import APIRouter, Depends, Response
from sqlalchemy import ColumnElement, and_, func, or_, select, tuple_
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from parcours.commerce import loyalty
from parcours.console.i18n import N_, Translator
from parcours.console.web import Page, form_for, page_for
from parcours.db.types import utcnow
from parcours.errors import InvalidInput, NotFound
from parcours.identity import service as identity
from parcours.identity.kinds import InvalidIdentifier, KindRegistry
from parcours.identity.unmerge import unmerge
from parcours.matching import review as reviews
from parcours.matching.blocking import BLOCKING_RULES
from parcours.matching.compare import COMPARISONS
from parcours.matching.normalize import ascii_text, canonical_given_name, phonetic
from parcours.matching.realtime import record_from_traits
from parcours.models import (
    Conversation,
    CsatSurvey,
    Event,
    Identifier,
    IdentityConflict,
    Location,
    MatchKey,
    MatchReview,
    Merge,
    MergeBlock,
    Message,
    Order,
    OrderLine,
    Profile,
    Reservation,
    Source,
)
from parcours.vocabulary import CHANNELS

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
TIMELINE_PAGE = 50
MAX_NAME_CANDIDATES = 500  # profiles a name search ranks; past this the page asks for a longer name
MAX_PAGE_NUMBER = 10_000
EVENT_TYPES = ("identify", "track", "page", "screen", "alias", "group")
CONSENT_PURPOSE_CHARS = 60

# How identifier kinds, channels and statuses are shown (English source strings, translated when shown).
KIND_LABELS = {
    "user_id": N_("Account id"),
    "pos_customer_id": N_("Till customer id"),
    "loyalty_card": N_("Loyalty card"),
    "email": N_("E-mail"),
    "phone": N_("Phone"),
    "whatsapp": N_("WhatsApp"),
    "messenger": N_("Messenger"),
    "instagram": N_("Instagram"),
    "anonymous_id": N_("Device or browser id"),
}
# The identifiers a results list shows first (device ids say nothing to a person; shown last).
MAIN_KINDS = ("email", "phone", "loyalty_card", "whatsapp", "user_id", "pos_customer_id", "instagram")
CHANNEL_LABELS = {
    "web": N_("Web"),
    "app": N_("App"),
    "store": N_("Store"),
    "phone": N_("Phone"),
    "email": N_("E-mail"),
    "sms": N_("SMS"),
    "chat": N_("Chat"),
    "whatsapp": N_("WhatsApp"),
    "messenger": N_("Messenger"),
    "instagram": N_("Instagram"),
    "social": N_("Social networks"),
    "kiosk": N_("Kiosk"),
    "marketplace": N_("Marketplace"),
    "mail": N_("Postal mail"),
    "other": N_("Other"),
    "*": N_("Every channel"),
}
EVENT_TYPE_LABELS = {
    "identify": N_("Identified"),
    "track": N_("Action"),
    "page": N_("Page viewed"),
    "screen": N_("Screen viewed"),
    "alias": N_("Alias"),
    "group": N_("Group"),
}
STATUS_LABELS = {
    # orders
    "placed": N_("Placed"),
    "ready": N_("Ready"),
    "shipped": N_("Shipped"),
    "collected": N_("Collected"),
    "cancelled": N_("Cancelled"),
    "returned": N_("Returned"),
    # reservations
    "held": N_("Held"),
    "expired": N_("Expired"),
    # conversations
    "open": N_("Open"),
    "pending": N_("Pending"),
    "snoozed": N_("Snoozed"),
    "resolved": N_("Resolved"),
    # reviews and conflicts
    "accepted": N_("Accepted (merged)"),
    "rejected": N_("Rejected"),
    "superseded": N_("Superseded"),
    "dismissed": N_("Dismissed"),
}
FULFILMENT_LABELS = {
    "ship_from_warehouse": N_("Home delivery"),
    "ship_from_store": N_("Delivery from a store"),
    "click_collect": N_("Click & collect"),
    "relay": N_("Relay point"),
}
LOYALTY_LABELS = {
    "earn": N_("Earned"),
    "redeem": N_("Redeemed"),
    "adjust": N_("Adjustment"),
    "expire": N_("Expired"),
    "bronze": N_("Bronze"),
    "silver": N_("Silver"),
    "gold": N_("Gold"),
}
TRAIT_LABELS = {
    "firstName": N_("First name"),
    "lastName": N_("Last name"),
    "name": N_("Name"),
    "email": N_("E-mail"),
    "phone": N_("Phone"),
    "birthday": N_("Birth date"),
    "gender": N_("Gender"),
    "address": N_("Address"),
    "language": N_("Language"),
    "preferredStore": N_("Preferred store"),
    "loyaltyCard": N_("Loyalty card"),
    "loyaltyProgram": N_("Loyalty programme"),
    "createdAt": N_("Account created"),
    "loyalty_card": N_("Loyalty card"),
    "posCustomerId": N_("Till customer id"),
    "postalCode": N_("Postcode"),
    "city": N_("Town"),
    "csatScore": N_("Last satisfaction score"),
    "csatAnsweredAt": N_("Last satisfaction answer"),
}
# The matcher's fields and its comparison levels (matching/compare.py), as a reviewer reads them.
MATCH_FIELD_LABELS = {
    "given_name": N_("Given name"),
    "surname": N_("Surname"),
    "birth_date": N_("Birth date"),
    "street": N_("Street"),
    "locality": N_("Town"),
    "postcode": N_("Postcode"),
    "phone": N_("Phone"),
    "email": N_("E-mail"),
    "national_id": N_("National id"),
}
MATCH_LEVEL_LABELS = {
    "unknown": N_("unknown on one side"),
    "exact": N_("exact"),
    "same name or nickname": N_("same name or nickname"),
    "sounds alike": N_("sounds alike"),
    "Jaro-Winkler >= 0.92": N_("very similar (Jaro-Winkler ≥ 0.92)"),
    "Jaro-Winkler >= 0.90": N_("very similar (Jaro-Winkler ≥ 0.90)"),
    "Jaro-Winkler >= 0.80": N_("similar (Jaro-Winkler ≥ 0.80)"),
    "day and month swapped": N_("day and month swapped"),
    "one digit off": N_("one digit off"),
    "two of year, month and day": N_("two of year, month and day"),
    "two digits off": N_("two digits off"),
    "token set >= 90 %": N_("nearly the same words (≥ 90 %)"),
    "token set >= 70 %": N_("similar words (≥ 70 %)"),
    "one character off": N_("one character off"),
    "same last 6 digits": N_("same last 6 digits"),
    "different": N_("different"),
}
REVIEW_FILTERS = {"pending": ("pending",), "decided": ("accepted", "rejected", "superseded")}

# The name keys that ``matching.blocking`` stores for every named profile (``match_keys``, indexed).
_RULE_NUMBER = {name: number for number, (name, _rule) in enumerate(BLOCKING_RULES)}
BOTH_NAMES = _RULE_NUMBER["both names, either order"]  # "{n}:{a}|{b}", the two names sorted
GIVEN_AND_SURNAME = _RULE_NUMBER["given name + surname"]  # "{n}:{canonical given}|{surname}"
SURNAME_AND_POSTCODE = _RULE_NUMBER["surname + postcode"]  # "{n}:{surname}|{postcode}"
SURNAME_SOUND_AND_YEAR = _RULE_NUMBER["surname sound + birth year"]  # "{n}:{NYSIIS}|{year}"


# ------------------------------------------------------------------------------------------ helpers
def render(page: Page, template: str, **values: Any) -> Response:
    return page.render(template, **values)


def _moment(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _page_number(page: Page, name: str = "page") -> int:
    raw = page.request.query_params.get(name, "1").strip() or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_NUMBER:
        raise InvalidInput(f"{name}: a whole number from 1 to {MAX_PAGE_NUMBER:,}")
    return int(raw)


def percent(t: Translator, value: float) -> str:
    """A probability as a percentage with one decimal (0.987 -> "98.7%", "98,7 %")."""
    return format_percent(value, "#,##0.0%", locale=t.locale)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def display_name(traits: dict[str, Any] | None) -> str:
    """The person's name as the traits give it ("" when none does)."""
    traits = traits or {}
    first = _text(traits.get("firstName") or traits.get("first_name"))
    last = _text(traits.get("lastName") or traits.get("last_name"))
    full = f"{first} {last}".strip()
    return full or _text(traits.get("name"))


_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def trait_display(t: Translator, value: Any) -> str:
    """A trait for a person: dates in the user's language, the rest as ``trait_text``."""
    if isinstance(value, str):
        try:
            if _ISO_DAY.match(value):
                return t.date(date.fromisoformat(value), "long")
            if _ISO_MOMENT.match(value):
                moment = datetime.fromisoformat(value)
                if moment.tzinfo is not None:
                    return t.datetime(moment, "medium")
        except ValueError:
            pass
    return trait_text(value)


def trait_text(value: Any) -> str:
    """A trait as one line: an address dict as "street, postcode city", a list joined."""
    if isinstance(value, dict):
        street = _text(value.get("street"))
        town = " ".join(
            part
            for part in (_text(value.get("postalCode") or value.get("postal_code")), _text(value.get("city")))
            if part
        )
        known = [part for part in (street, town, _text(value.get("country"))) if part]
        rest = [f"{k}: {trait_text(v)}" for k, v in value.items() if k not in _ADDRESS_KEYS]
        return ", ".join(known + rest)
    if isinstance(value, list):
        return ", ".join(trait_text(v) for v in value)
    if isinstance(value, bool):
        return "✓" if value else "✗"
    return _text(value)


_SOURCE_ID = re.compile(r"\bsrc_[0-9a-f]{8,40}\b")
_ADDRESS_KEYS = {"street", "postalCode", "postal_code", "city", "country"}


def _in_chunks(column: Any, values: Iterable[Any], size: int = 500) -> ColumnElement[bool]:
    """``column IN (...)`` split in parts of ``size`` (SQLite's and drivers' limits on parameters)."""
    items = sorted(set(values))
    parts = [column.in_(items[start : start + size]) for start in range(0, len(items), size)]
    condition: ColumnElement[bool] = (
        or_(*parts) if len(parts) > 1 else (parts[0] if parts else column.in_([]))
    )
    return condition


def best_identifier(keys: Iterable[str]) -> str:
    """The value of the most telling of these ``kind:value`` identifiers (an e-mail before a device id)."""
    rank = {kind: position for position, kind in enumerate(MAIN_KINDS)}
    pairs = sorted(
        (rank.get(kind, len(rank)), kind, value) for kind, _, value in (k.partition(":") for k in keys)
    )
    return pairs[0][2] if pairs else ""


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
        session.execute(select(Profile.id, Profile.traits).where(_in_chunks(Profile.id, ids))).all()
    )
    idents: dict[str, list[tuple[str, str, datetime]]] = defaultdict(list)
    for pid, kind, value, last_seen in session.execute(
        select(Identifier.profile_id, Identifier.kind, Identifier.value, Identifier.last_seen_at).where(
            _in_chunks(Identifier.profile_id, ids)
        )
    ):
        idents[pid].append((kind, value, last_seen))
    channels: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for pid, channel, last in session.execute(
        select(Event.profile_id, Event.channel, func.max(Event.timestamp))
        .where(_in_chunks(Event.profile_id, ids))
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
            _in_chunks(Profile.id, candidates), Profile.merged_into_id.is_(None)
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
    number = _page_number(page)
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
    return render(
        page,
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


# ------------------------------------------------------------------------------------- the customer
def _encode_cursor(moment: datetime, event_id: str) -> str:
    return base64.urlsafe_b64encode(f"{moment.isoformat()}|{event_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, event_id = raw.split("|", 1)
        parsed = datetime.fromisoformat(moment)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("before: not a position this page gave") from None
    if parsed.tzinfo is None:
        raise InvalidInput("before: not a position this page gave")
    return parsed, event_id


@dataclass
class TimelineEvent:
    id: str
    type: str
    name: str | None
    channel: str
    timestamp: datetime
    source: str
    summary: list[str]
    details: list[tuple[str, str]]


# Properties worth a glance in the timeline, in this order (the rest are under "Details").
SUMMARY_PROPERTIES = (
    "order_id", "name", "text", "summary", "email_subject", "store_name", "query", "campaign_name", "reason",
)  # fmt: skip


def _event_summary(page: Page, properties: dict[str, Any]) -> list[str]:
    summary = [_text(properties[key]) for key in SUMMARY_PROPERTIES if _text(properties.get(key))][:3]
    total = properties.get("total") or properties.get("revenue")
    if total is not None and isinstance(properties.get("currency"), str):
        try:
            summary.append(page.t.money(str(total), properties["currency"]))
        except (ArithmeticError, ValueError, KeyError, TypeError):
            summary.append(_text(total))
    return summary


def _excerpt(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def timeline_page(
    page: Page,
    session: Session,
    profile_id: str,
    *,
    before: str | None,
    channels: list[str],
    types: list[str],
) -> tuple[list[TimelineEvent], str | None]:
    """One page of the customer's events on every channel, newest first (the index on (profile_id,
    timestamp, id) read backwards), and the cursor of the older page. The domain's ``timeline`` reads
    oldest first; a person reading a customer wants the latest first, with "older" to go back."""
    query = select(
        Event.id, Event.type, Event.name, Event.channel, Event.timestamp, Event.source_id, Event.properties
    ).where(Event.profile_id == profile_id)
    if channels:
        query = query.where(Event.channel.in_(channels))
    if types:
        query = query.where(Event.type.in_(types))
    if before:
        moment, event_id = _decode_cursor(before)
        query = query.where(tuple_(Event.timestamp, Event.id) < tuple_(moment, event_id))
    rows = session.execute(
        query.order_by(Event.timestamp.desc(), Event.id.desc()).limit(TIMELINE_PAGE + 1)
    ).all()
    older = (
        _encode_cursor(rows[TIMELINE_PAGE - 1].timestamp, rows[TIMELINE_PAGE - 1].id)
        if len(rows) > TIMELINE_PAGE
        else None
    )
    rows = rows[:TIMELINE_PAGE]
    sources = dict(
        session.execute(
            select(Source.id, Source.name).where(_in_chunks(Source.id, {r.source_id for r in rows}))
        ).all()
    )
    # A message's event shows its words (one statement for the page's messages).
    message_ids = {
        str(r.properties["inbox_message_id"])
        for r in rows
        if isinstance(r.properties, dict) and r.properties.get("inbox_message_id")
    }
    bodies = dict(
        session.execute(select(Message.id, Message.body).where(_in_chunks(Message.id, message_ids))).all()
    )
    events = []
    for row in rows:
        properties = row.properties if isinstance(row.properties, dict) else {}
        body = bodies.get(str(properties.get("inbox_message_id")))
        events.append(
            TimelineEvent(
                id=row.id,
                type=row.type,
                name=row.name,
                channel=row.channel,
                timestamp=row.timestamp,
                source=sources.get(row.source_id, row.source_id),
                summary=([_excerpt(body)] if body else []) + _event_summary(page, properties),
                details=[(key, trait_text(value)) for key, value in properties.items()][:40],
            )
        )
    return events, older


def _orders(session: Session, ids: list[str]) -> list[dict[str, Any]]:
    """The customer's latest orders from every channel (two statements; ``orders.orders_of`` reads each
    order's lines one order at a time)."""
    found = list(
        session.scalars(
            select(Order).where(_in_chunks(Order.profile_id, ids)).order_by(Order.created_at.desc()).limit(20)
        )
    )
    items = dict(
        session.execute(
            select(OrderLine.order_id, func.sum(OrderLine.quantity))
            .where(_in_chunks(OrderLine.order_id, [o.id for o in found]))
            .group_by(OrderLine.order_id)
        ).all()
    )
    return [
        {
            "number": o.number,
            "channel": o.channel,
            "fulfilment": o.fulfilment,
            "status": o.status,
            "total": o.total,
            "currency": o.currency,
            "item_count": int(items.get(o.id) or 0),
            "created_at": o.created_at,
            "ready_on": o.ready_on,
        }
        for o in found
    ]


def _reservations(session: Session, ids: list[str]) -> list[dict[str, Any]]:
    found = list(
        session.scalars(
            select(Reservation)
            .where(_in_chunks(Reservation.profile_id, ids))
            .order_by(Reservation.created_at.desc())
            .limit(20)
        )
    )
    stores = dict(
        session.execute(
            select(Location.id, Location.name).where(_in_chunks(Location.id, {r.location_id for r in found}))
        ).all()
    )
    return [
        {
            "store": stores.get(r.location_id, r.location_id),
            "status": r.status,
            "channel": r.channel,
            "units": sum(int(line.get("quantity", 0)) for line in r.lines if isinstance(line, dict)),
            "created_at": r.created_at,
            "expires_at": r.expires_at,
            "closed_at": r.closed_at,
        }
        for r in found
    ]


def _satisfaction(session: Session, ids: list[str]) -> list[CsatSurvey]:
    return list(
        session.scalars(
            select(CsatSurvey)
            .where(_in_chunks(CsatSurvey.profile_id, ids), CsatSurvey.answered_at.is_not(None))
            .order_by(CsatSurvey.answered_at.desc())
            .limit(20)
        )
    )


def _conversations(session: Session, ids: list[str]) -> list[Conversation]:
    return list(
        session.scalars(
            select(Conversation)
            .where(_in_chunks(Conversation.profile_id, ids))
            .order_by(Conversation.last_message_at.desc())
            .limit(20)
        )
    )


def _filters(page: Page) -> tuple[list[str], list[str]]:
    channels = [c.strip() for c in page.request.query_params.getlist("channel") if c.strip()]
    types = [t.strip() for t in page.request.query_params.getlist("type") if t.strip()]
    for channel in channels:
        if channel not in CHANNELS:
            raise InvalidInput(
                f"channel: unknown channel {channel[:40]!r}; expected one of {', '.join(CHANNELS)}"
            )
    for kind in types:
        if kind not in EVENT_TYPES:
            raise InvalidInput(
                f"type: unknown event type {kind[:40]!r}; expected one of {', '.join(EVENT_TYPES)}"
            )
    return channels, types


@router.get("/console/customers/{profile_id}")
def customer(profile_id: str, page: Page = Depends(page_for("customers"))) -> Response:
    channels, types = _filters(page)
    before = page.request.query_params.get("before") or None
    if before is not None and len(before) > 400:
        raise InvalidInput("before: not a position this page gave")
    with page.db.read() as session:
        active = identity.resolve_profile_id(session, profile_id[:60])
        if active != profile_id:
            query = page.request.url.query
            return page.redirect(f"/console/customers/{active}" + (f"?{query}" if query else ""))
        view = identity.profile_view(session, active)
        ids = identity.people(session, active)
        events, older = timeline_page(page, session, active, before=before, channels=channels, types=types)
        member = loyalty.member_view(session, active, utcnow())
        source_names = dict(session.execute(select(Source.id, Source.name)).all())  # a few rows
        context: dict[str, Any] = {
            "orders": _orders(session, ids),
            "reservations": _reservations(session, ids),
            "surveys": _satisfaction(session, ids),
            "conversations": _conversations(session, ids),
        }
    rank = {kind: position for position, kind in enumerate(MAIN_KINDS)}
    view["identifiers"].sort(key=lambda i: (rank.get(i["kind"], len(rank)), i["kind"], i["value"]))
    for consent in view["consent"]:  # "event from source src_…": the source's name
        consent["source"] = _SOURCE_ID.sub(
            lambda found: source_names.get(found.group(0), found.group(0)), consent["source"]
        )
    for item in view["identifiers"] + view["channels"] + view["consent"]:
        for key in ("first_seen_at", "last_seen_at", "recorded_at"):
            if key in item:
                item[key] = _moment(item[key])
    for entry in member["entries"]:
        entry["created_at"] = _moment(entry["created_at"])
    if member["next_expiry"]:
        member["next_expiry"]["at"] = _moment(member["next_expiry"]["at"])
    return render(
        page,
        "customers/customer.html",
        customer=view,
        name=display_name(view["traits"]),
        traits=[
            (TRAIT_LABELS.get(k), k, trait_display(page.t, v))
            for k, v in view["traits"].items()
            if trait_text(v)
        ],
        first_seen=_moment(view["first_seen_at"]),
        last_seen=_moment(view["last_seen_at"]),
        events=events,
        older=older,
        newest=bool(before),
        filter_query=urlencode([("channel", c) for c in channels] + [("type", k) for k in types]),
        filter_channels=channels,
        filter_types=types,
        used_channels=[c["channel"] for c in view["channels"]],
        member=member,
        consent_channels=("*", *CHANNELS),
        kind_labels=KIND_LABELS,
        channel_labels=CHANNEL_LABELS,
        event_type_labels=EVENT_TYPE_LABELS,
        event_types=EVENT_TYPES,
        status_labels=STATUS_LABELS,
        fulfilment_labels=FULFILMENT_LABELS,
        loyalty_labels=LOYALTY_LABELS,
        **context,
    )


@router.post("/console/customers/{profile_id}/consent")
def change_consent(profile_id: str, page: Page = Depends(form_for("identity"))) -> Response:
    channel = page.field("channel", max_chars=40)
    purpose = page.field("purpose", max_chars=CONSENT_PURPOSE_CHARS).lower()
    granted = page.field("granted", max_chars=5)
    if granted not in ("yes", "no"):
        raise InvalidInput("granted: yes or no")
    if not all(ch.isalnum() or ch in "_-." for ch in purpose):
        raise InvalidInput("purpose: letters, digits, '_', '-' or '.' only (e.g. marketing)")
    with page.db.write() as session:
        result = identity.set_consent(
            session, profile_id[:60], channel=channel, purpose=purpose, granted=granted == "yes",
            source=f"console: {page.user.email}"[:160],
        )  # fmt: skip
    channel_name = page.t.gettext(CHANNEL_LABELS.get(channel, channel))
    message = (
        page.t.gettext(
            "Consent recorded: {purpose} on {channel} granted.", purpose=purpose, channel=channel_name
        )
        if granted == "yes"
        else page.t.gettext(
            "Consent recorded: {purpose} on {channel} withdrawn.", purpose=purpose, channel=channel_name
        )
    )
    return page.redirect(f"/console/customers/{result['profile_id']}#consent", flash=message)


# ----------------------------------------------------------------------------------- identity graph
@dataclass
class GraphNode:
    id: str
    name: str
    created_at: datetime
    merge: dict[str, Any] | None  # the active merge that brought it into its parent
    label: str = ""  # the name, else the most telling identifier
    identifiers: list[dict[str, Any]] = field(default_factory=list)
    children: list[GraphNode] = field(default_factory=list)


def _event_rows(session: Session, event_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = {e for e in event_ids if e}
    if not wanted:
        return {}
    rows = session.execute(
        select(Event.id, Event.type, Event.name, Event.channel, Event.timestamp, Event.source_id).where(
            _in_chunks(Event.id, wanted)
        )
    ).all()
    sources = dict(
        session.execute(
            select(Source.id, Source.name).where(_in_chunks(Source.id, {r.source_id for r in rows}))
        ).all()
    )
    return {
        r.id: {
            "id": r.id,
            "type": r.type,
            "name": r.name,
            "channel": r.channel,
            "timestamp": r.timestamp,
            "source": sources.get(r.source_id, r.source_id),
        }
        for r in rows
    }


def identity_graph(session: Session, requested_id: str) -> dict[str, Any]:
    """The customer's identity graph: the profiles merged into one (a tree, each merge with its event,
    identifiers and rule), every identifier with the profile and event it came from, the merge history
    (undone merges too), the identity conflicts recorded on it and the profiles kept apart from it."""
    active = identity.resolve_profile_id(session, requested_id)
    ids = identity.people(session, active)
    merges = list(
        session.scalars(
            select(Merge)
            .where(or_(_in_chunks(Merge.survivor_id, ids), _in_chunks(Merge.merged_id, ids)))
            .order_by(Merge.created_at, Merge.id)
        )
    )
    conflicts = list(
        session.scalars(
            select(IdentityConflict)
            .where(_in_chunks(IdentityConflict.attached_profile_id, ids))
            .order_by(IdentityConflict.created_at.desc())
            .limit(50)
        )
    )
    blocks = list(
        session.scalars(
            select(MergeBlock).where(
                or_(_in_chunks(MergeBlock.profile_a, ids), _in_chunks(MergeBlock.profile_b, ids))
            )
        )
    )
    others = {m.survivor_id for m in merges} | {m.merged_id for m in merges}
    others |= {b.profile_a for b in blocks} | {b.profile_b for b in blocks}
    others |= {pid for c in conflicts for pid in c.other_profile_ids}
    profiles = {
        row.id: row
        for row in session.execute(
            select(Profile.id, Profile.traits, Profile.created_at, Profile.merged_into_id).where(
                _in_chunks(Profile.id, set(ids) | others)
            )
        )
    }
    identifiers = session.execute(
        select(
            Identifier.kind,
            Identifier.value,
            Identifier.source_event_id,
            Identifier.first_seen_at,
            Identifier.last_seen_at,
        )
        .where(Identifier.profile_id == active)
        .order_by(Identifier.kind, Identifier.value)
    ).all()
    events = _event_rows(
        session,
        [i.source_event_id for i in identifiers if i.source_event_id]
        + [m.event_id for m in merges if m.event_id]
        + [c.event_id for c in conflicts],
    )
    origins = dict(
        session.execute(
            select(Event.id, Event.origin_profile_id).where(
                _in_chunks(Event.id, {i.source_event_id for i in identifiers if i.source_event_id})
            )
        ).all()
    )

    def name_of(pid: str) -> str:
        row = profiles.get(pid)
        return display_name(row.traits) if row is not None else ""

    # Who brought each identifier: the profile of the event that first carried it, else the merged
    # profile whose merge record lists it (innermost merge wins), else the surviving profile.
    active_merges = [m for m in merges if m.undone_at is None and m.merged_id in ids]
    brought_by: dict[str, str] = {}
    for merge in sorted(active_merges, key=lambda m: (m.created_at, m.id), reverse=True):
        for key in merge.merged_identifiers:
            brought_by[key] = merge.merged_id
    idents = []
    for row in identifiers:
        key = f"{row.kind}:{row.value}"
        origin = origins.get(row.source_event_id or "")
        owner = origin if origin in ids else brought_by.get(key, active)
        idents.append(
            {
                "kind": row.kind,
                "value": row.value,
                "owner": owner,
                "event": events.get(row.source_event_id or ""),
                "first_seen_at": row.first_seen_at,
                "last_seen_at": row.last_seen_at,
            }
        )

    def merge_view(merge: Merge) -> dict[str, Any]:
        survivor = profiles.get(merge.survivor_id)
        return {
            "id": merge.id,
            "survivor_id": merge.survivor_id,
            "merged_id": merge.merged_id,
            "event": events.get(merge.event_id or ""),
            "event_id": merge.event_id,
            "linking_identifiers": list(merge.linking_identifiers),
            "rule": merge.rule,
            "created_at": merge.created_at,
            "undone_at": merge.undone_at,
            # unmerge undoes a merge whose survivor is not itself merged away (the outer one first)
            "can_undo": merge.undone_at is None
            and survivor is not None
            and survivor.merged_into_id is None
            and merge.survivor_id in ids,
        }

    history = [merge_view(m) for m in merges]
    by_merged = {m["merged_id"]: m for m in history if m["undone_at"] is None and m["merged_id"] in ids}
    nodes = {
        pid: GraphNode(
            id=pid,
            name=name_of(pid),
            created_at=profiles[pid].created_at,
            merge=by_merged.get(pid),
        )
        for pid in ids
        if pid in profiles
    }
    for ident in idents:
        nodes[ident["owner"] if ident["owner"] in nodes else active].identifiers.append(ident)
    for pid, node in nodes.items():
        parent = profiles[pid].merged_into_id
        if pid != active and parent in nodes:
            nodes[parent].children.append(node)
    for node in nodes.values():
        node.children.sort(key=lambda n: (n.merge["created_at"] if n.merge else n.created_at, n.id))

    held: dict[str, list[str]] = {
        pid: [f"{i['kind']}:{i['value']}" for i in n.identifiers] for pid, n in nodes.items()
    }
    for merge in merges:  # profiles outside the tree (unmerged since) as their merge record knew them
        held.setdefault(merge.merged_id, list(merge.merged_identifiers))
        held.setdefault(merge.survivor_id, list(merge.survivor_identifiers))

    def label_of(pid: str) -> str:
        """The person's name, else the most telling identifier the profile holds (never blank)."""
        return name_of(pid) or best_identifier(held.get(pid, [])) or pid

    for node in nodes.values():
        node.label = label_of(node.id)
    for item in history:
        item["survivor_name"], item["merged_name"] = (
            label_of(item["survivor_id"]),
            label_of(item["merged_id"]),
        )
    return {
        "id": active,
        "name": name_of(active),
        "root": nodes[active],
        "profiles": len(nodes),
        "identifiers": idents,
        "merges": list(reversed(history)),
        "conflicts": [
            {
                "rule": c.rule,
                "reason": c.reason,
                "status": c.status,
                "identifiers": list(c.identifiers),
                "others": [(pid, label_of(pid)) for pid in c.other_profile_ids],
                "event": events.get(c.event_id),
                "created_at": c.created_at,
            }
            for c in conflicts
        ],
        "kept_apart": [
            {
                "other": other,
                "other_name": label_of(other),
                "reason": b.reason,
                "created_at": b.created_at,
            }
            for b in blocks
            for other in [b.profile_b if b.profile_a in ids else b.profile_a]
        ],
    }


@dataclass(frozen=True)
class SvgBox:
    x: int
    y: int
    node: GraphNode
    edge: str | None  # SVG path from the parent's box, None for the root


SVG_BOX_WIDTH, SVG_BOX_HEIGHT, SVG_INDENT, SVG_GAP = 240, 46, 36, 14


def graph_drawing(root: GraphNode) -> tuple[list[SvgBox], int, int]:
    """Boxes of a small drawing of the tree, one row per profile, each merged profile indented under
    the one it was merged into (grows downwards, stays narrow however many merges), with the elbow
    path joining it to its parent."""
    boxes: list[SvgBox] = []

    def place(node: GraphNode, depth: int, parent: tuple[int, int] | None) -> None:
        x, y = depth * SVG_INDENT, len(boxes) * (SVG_BOX_HEIGHT + SVG_GAP)
        edge = None
        if parent is not None:
            middle = y + SVG_BOX_HEIGHT // 2
            edge = f"M {parent[0] + SVG_INDENT // 2} {parent[1] + SVG_BOX_HEIGHT} V {middle} H {x}"
        boxes.append(SvgBox(x, y, node, edge))
        for child in node.children:
            place(child, depth + 1, (x, y))

    place(root, 0, None)
    width = max(b.x for b in boxes) + SVG_BOX_WIDTH
    height = max(b.y for b in boxes) + SVG_BOX_HEIGHT
    return boxes, width, height


@router.get("/console/customers/{profile_id}/graph")
def graph(profile_id: str, page: Page = Depends(page_for("customers"))) -> Response:
    with page.db.read() as session:
        active = identity.resolve_profile_id(session, profile_id[:60])
        if active != profile_id:
            return page.redirect(f"/console/customers/{active}/graph")
        data = identity_graph(session, active)
    boxes, width, height = graph_drawing(data["root"])
    return render(
        page,
        "customers/graph.html",
        graph=data,
        boxes=boxes,
        svg_width=width,
        svg_height=height,
        box_width=SVG_BOX_WIDTH,
        box_height=SVG_BOX_HEIGHT,
        kind_labels=KIND_LABELS,
        channel_labels=CHANNEL_LABELS,
        event_type_labels=EVENT_TYPE_LABELS,
        status_labels=STATUS_LABELS,
    )


@router.post("/console/customers/{profile_id}/unmerge")
def unmerge_profile(profile_id: str, page: Page = Depends(form_for("identity"))) -> Response:
    merge_id = page.field("merge_id", max_chars=60)
    with page.db.write() as session:
        active = identity.resolve_profile_id(session, profile_id[:60])
        merge = session.get(Merge, merge_id)
        if merge is None or merge.survivor_id not in identity.people(session, active):
            raise NotFound(f"merge {merge_id} not found for this customer")
        done = unmerge(session, merge.merged_id, merge.id)
        traits = session.scalar(select(Profile.traits).where(Profile.id == done.merged_id))
        keys = session.execute(
            select(Identifier.kind, Identifier.value).where(Identifier.profile_id == done.merged_id)
        ).all()
        restored_name = display_name(traits) or best_identifier(f"{k}:{v}" for k, v in keys) or done.merged_id
    return page.redirect(
        f"/console/customers/{active}/graph",
        flash=page.t.gettext(
            "Merge undone: {name} ({id}) is a customer of their own again.",
            name=restored_name,
            id=done.merged_id,
        ),
    )


# ------------------------------------------------------------------------------------- review queue
def _current_profiles(session: Session, ids: Iterable[str]) -> dict[str, tuple[str, dict[str, Any]] | None]:
    """For each id: (the active profile it stands for now, its traits), following merges in a few
    statements for the whole page; None when the profile was erased."""
    wanted = set(ids)
    rows: dict[str, Any] = {}
    frontier = set(wanted)
    for _ in range(50):
        if not frontier:
            break
        found = session.execute(
            select(Profile.id, Profile.merged_into_id, Profile.traits).where(_in_chunks(Profile.id, frontier))
        ).all()
        rows.update({r.id: r for r in found})
        frontier = {r.merged_into_id for r in found if r.merged_into_id and r.merged_into_id not in rows}
    result: dict[str, tuple[str, dict[str, Any]] | None] = {}
    for pid in wanted:
        row, hops = rows.get(pid), 0
        while row is not None and row.merged_into_id is not None and hops < 1000:
            row, hops = rows.get(row.merged_into_id), hops + 1
        result[pid] = (row.id, row.traits) if row is not None and row.merged_into_id is None else None
    return result


def review_pair(review: MatchReview, current: dict[str, tuple[str, dict[str, Any]] | None]) -> dict[str, Any]:
    """A review item as the reviewer sees it: the two profiles now, their matching fields as the matcher
    reads them, and the stored per-field evidence."""
    sides = []
    for pid in (review.profile_a, review.profile_b):
        now = current.get(pid)
        record = record_from_traits(now[0], now[1]) if now is not None else None
        sides.append(
            {
                "requested_id": pid,
                "id": now[0] if now is not None else None,
                "name": display_name(now[1]) if now is not None else "",
                "record": record,
            }
        )
    evidence = {item["field"]: item for item in review.evidence if isinstance(item, dict)}
    rows = []
    for comparison in COMPARISONS:
        item = evidence.get(comparison.name, {})
        values = [
            getattr(side["record"], comparison.name, None) if side["record"] else None for side in sides
        ]
        if not any(values) and item.get("level", "unknown") == "unknown":
            continue
        rows.append(
            {
                "field": comparison.name,
                "values": values,
                "level": item.get("level", "unknown"),
                "weight": float(item.get("weight", 0.0)),
            }
        )
    return {
        "id": review.id,
        "status": review.status,
        "probability": review.probability,
        "created_at": review.created_at,
        "decided_at": review.decided_at,
        "sides": sides,
        "rows": rows,
        "same_now": sides[0]["id"] is not None and sides[0]["id"] == sides[1]["id"],
    }


@router.get("/console/review")
def review_queue(page: Page = Depends(page_for("identity"))) -> Response:
    status = page.request.query_params.get("status", "pending").strip() or "pending"
    if status not in REVIEW_FILTERS:
        raise InvalidInput("status: pending or decided")
    number = _page_number(page)
    statuses = REVIEW_FILTERS[status]
    with page.db.read() as session:
        where = MatchReview.status.in_(statuses)
        total = session.scalar(select(func.count()).select_from(MatchReview).where(where)) or 0
        order = (
            (MatchReview.probability.desc(), MatchReview.id)
            if status == "pending"
            else (MatchReview.decided_at.desc(), MatchReview.id)
        )
        found = list(
            session.scalars(
                select(MatchReview)
                .where(where)
                .order_by(*order)
                .offset((number - 1) * PAGE_SIZE)
                .limit(PAGE_SIZE)
            )
        )
        current = _current_profiles(session, [pid for r in found for pid in (r.profile_a, r.profile_b)])
        pairs = [review_pair(r, current) for r in found]
        pending = session.scalar(
            select(func.count()).select_from(MatchReview).where(MatchReview.status == "pending")
        )
    return render(
        page,
        "customers/review.html",
        pairs=pairs,
        review_status=status,
        total=total,
        pending=pending or 0,
        page_number=number,
        has_next=number * PAGE_SIZE < total,
        field_labels=MATCH_FIELD_LABELS,
        level_labels=MATCH_LEVEL_LABELS,
        percent=percent,
        status_labels=STATUS_LABELS,
    )


def _review_names(session: Session, result: dict[str, Any]) -> list[str]:
    current = _current_profiles(session, result["profile_ids"])
    return [display_name(now[1]) if (now := current.get(pid)) else "" for pid in result["profile_ids"]]


@router.post("/console/review/{review_id}/accept")
def accept(review_id: str, page: Page = Depends(form_for("identity"))) -> Response:
    with page.db.write() as session:
        registry = identity.load_registry(session, page.settings.default_phone_region)
        result = reviews.accept_review(session, registry, review_id[:60])
        survivor = result["current_profile_ids"][0]
        traits = session.scalar(select(Profile.traits).where(Profile.id == survivor)) or {}
    name = display_name(traits) or page.t.gettext("Unnamed customer")
    return page.redirect(
        "/console/review",
        flash=page.t.gettext(
            "Merged: the two profiles are now one customer, {name} ({id}).", name=name, id=survivor
        ),
    )


@router.post("/console/review/{review_id}/reject")
def reject(review_id: str, page: Page = Depends(form_for("identity"))) -> Response:
    with page.db.write() as session:
        result = reviews.reject_review(session, review_id[:60])
        names = [n or page.t.gettext("Unnamed customer") for n in _review_names(session, result)]
    return page.redirect(
        "/console/review",
        flash=page.t.gettext(
            "Rejected: {first} and {second} stay two customers and will not be proposed again.",
            first=names[0] if names else "",
            second=names[-1] if names else "",
        ),
    )
