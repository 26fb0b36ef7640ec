"""One loyalty ledger per member, the same on every channel.

The ledger (``LoyaltyEntry``) is append-only: every posting is a row, never updated or deleted.

* **Kinds.** ``earn`` (+points, they expire), ``redeem`` (-points), ``adjust`` (signed: a positive
  adjustment is a lot of points that expires like an earning, a negative one is spent like a redemption)
  and ``expire`` (-points, posted by :func:`expire_due`). Callers always give ``points`` as a positive
  count, except for ``adjust`` whose sign says which way it goes; the ledger stores them signed.
* **Idempotent.** Every posting carries an ``idempotency_key`` (unique in the database). Sending the same
  posting again — a till re-sending a sale after being offline, a retry after a timeout, eight requests at
  once — returns the entry already posted and posts nothing; the same key with other content is a
  Conflict naming what differs. Keys ``order:…`` and ``expire:…`` are the ones Parcours itself uses.
* **Balance.** Points are consumed first in, first out: a redemption uses the oldest points still valid.
  Points expire ``PARCOURS_LOYALTY_EXPIRY_MONTHS`` (default 24) months after they were earned, unless the
  posting gave its own ``expires_at``. The balance at ``now`` is what remains of the lots not yet expired;
  :func:`expire_due` posts an ``expire`` entry for what each expired lot still held (key
  ``expire:{entry id}``, dated when the lot expired), so that once it has run the sum of the ledger is the
  balance. A redemption (or a negative adjustment) larger than the balance is refused.
* **Tiers** (:data:`TIERS`): by points *earned* over the last 12 months — bronze from 0, silver from 500,
  gold from 1500.
* **Merges.** Postings are recorded on the active profile (a merged-away id is followed to its survivor)
  and a member's balance gathers the entries of every profile merged into it, so the points of two
  profiles found to be one person add up. After an unmerge, the entries posted before the merge under the
  restored profile's id go back with it; everything posted after the merge stays on the survivor's
  ledger (the ledger is never rewritten; a negative balance this may leave is paid by the next earnings).
* **Orders.** :func:`earn_for_order` gives 1 point per whole euro of an order's total (key
  ``order:{order id}``). Orders in another currency earn nothing (no exchange rate is applied).
"""

from __future__ import annotations

import calendar
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import String, cast, literal, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from parcours.config import get_settings
from parcours.errors import Conflict, InvalidInput, NotFound
from parcours.identity.service import resolve_profile_id
from parcours.inputs import iso_z
from parcours.models import LoyaltyEntry, Order, Profile
from parcours.vocabulary import check_channel

KINDS = ("earn", "redeem", "adjust", "expire")
#: (tier, points earned over the last 12 months from which it applies), lowest first.
TIERS: tuple[tuple[str, int], ...] = (("bronze", 0), ("silver", 500), ("gold", 1500))
TIER_WINDOW_MONTHS = 12
EARN_CURRENCY = "EUR"
MAX_POINTS = 100_000_000
MAX_KEY_LENGTH = 160
RECENT_ENTRIES = 20
EXPIRY_CHANNEL = "other"
_LOCK_NAMESPACE = 0x4C6F79  # "Loy": PostgreSQL advisory locks (namespace, member) serialising one member


# --------------------------------------------------------------------------------------------- time
def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` moved by ``months`` calendar months (the day clamped to the month's length)."""
    index = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _aware(value: datetime, field_name: str) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInput(f"{field_name}: give a timezone-aware moment (e.g. 2026-06-01T12:00:00Z)")
    return value


# ------------------------------------------------------------------------------------------ members
def member_ids(session: Session, profile_id: str) -> tuple[str, list[str]]:
    """The active profile for ``profile_id`` and every id whose entries are its ledger (itself and the
    profiles merged into it, directly or through other merges)."""
    member = resolve_profile_id(session, profile_id)
    ids = [member]
    frontier = [member]
    while frontier:
        found = list(session.scalars(select(Profile.id).where(Profile.merged_into_id.in_(frontier))))
        frontier = [pid for pid in found if pid not in ids]
        ids.extend(frontier)
    return member, ids


def _lock_member(session: Session, member: str) -> None:
    """Serialise the postings of one member (PostgreSQL; SQLite writers are serialised already), so
    two redemptions at once cannot both spend the same points."""
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(member.encode(), digest_size=4).digest()
    key = int.from_bytes(digest, "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": _LOCK_NAMESPACE, "key": key})


def _entries(session: Session, ids: list[str]) -> list[LoyaltyEntry]:
    return list(
        session.scalars(
            select(LoyaltyEntry)
            .where(LoyaltyEntry.profile_id.in_(ids))
            .order_by(LoyaltyEntry.created_at, LoyaltyEntry.id)
        )
    )


# ---------------------------------------------------------------------------------------- the ledger
@dataclass
class _Lot:
    entry: LoyaltyEntry
    remaining: int
    expired: int = 0


@dataclass
class _Ledger:
    lots: list[_Lot] = field(default_factory=list)
    debt: int = 0  # spent beyond the points available (only through back-dated postings or an unmerge)

    @property
    def balance(self) -> int:
        return sum(lot.remaining for lot in self.lots) - self.debt


def _replay(entries: list[LoyaltyEntry], now: datetime) -> _Ledger:
    """Replay the ledger first in, first out up to ``now``: each debit uses the oldest valid points, a
    lot's remainder expires at its ``expires_at``. ``expire`` entries are not replayed: they record
    what this replay finds expired."""
    events: list[tuple[datetime, int, int, LoyaltyEntry]] = []
    for entry in entries:
        if entry.kind == "expire":
            continue
        events.append((entry.created_at, 1, entry.id, entry))
        if entry.points > 0 and entry.expires_at is not None and entry.expires_at <= now:
            events.append((entry.expires_at, 0, entry.id, entry))  # a lot is no longer valid at expires_at
    events.sort(key=lambda item: (item[0], item[1], item[2]))
    ledger = _Ledger()
    lots: dict[int, _Lot] = {}
    for _, rank, _, entry in events:
        if rank == 0:
            lot = lots[entry.id]
            lot.expired, lot.remaining = lot.remaining, 0
        elif entry.points > 0:
            paid = min(ledger.debt, entry.points)
            ledger.debt -= paid
            lot = _Lot(entry, entry.points - paid)
            lots[entry.id] = lot
            ledger.lots.append(lot)
        else:
            need = -entry.points
            for lot in ledger.lots:
                if need == 0:
                    break
                used = min(lot.remaining, need)
                lot.remaining -= used
                need -= used
            ledger.debt += need
    return ledger


def balance(session: Session, profile_id: str, now: datetime) -> int:
    """The points a member can spend at ``now``: earned minus spent minus expired (FIFO)."""
    _, ids = member_ids(session, profile_id)
    return _replay(_entries(session, ids), _aware(now, "now")).balance


# ------------------------------------------------------------------------------------------- posting
def _check_kind(kind: Any) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    return str(kind)


def _signed_points(kind: str, points: Any) -> int:
    if isinstance(points, bool) or not isinstance(points, int):
        raise InvalidInput(f"points: expected a whole number of points, got {points!r}")
    if abs(points) > MAX_POINTS:
        raise InvalidInput(f"points: at most {MAX_POINTS} in one posting")
    if kind == "adjust":
        if points == 0:
            raise InvalidInput("points: an adjustment must be positive (credit) or negative (debit), not 0")
        return points
    if points < 0 or (points == 0 and kind != "expire"):
        raise InvalidInput(f"points: give a positive number of points for {kind}, got {points}")
    return points if kind == "earn" else -points


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key.strip():
        raise InvalidInput("idempotency_key: required (the same sale sent twice must carry the same key)")
    cleaned: str = key.strip()
    if len(cleaned) > MAX_KEY_LENGTH or not cleaned.isprintable():
        raise InvalidInput(f"idempotency_key: at most {MAX_KEY_LENGTH} printable characters")
    return cleaned


def _check_order_id(order_id: Any) -> str | None:
    if order_id is None:
        return None
    if not isinstance(order_id, str) or not order_id.strip() or len(order_id.strip()) > 40:
        raise InvalidInput("order_id: 1 to 40 characters")
    return order_id.strip()


def _differences(
    session: Session,
    entry: LoyaltyEntry,
    *,
    member: str,
    kind: str,
    points: int,
    channel: str,
    order_id: str | None,
    expires_at: datetime | None,
) -> list[str]:
    found: list[str] = []
    if entry.profile_id != member and resolve_profile_id(session, entry.profile_id) != member:
        found.append(f"member: {entry.profile_id} then {member}")
    for name, before, after in (
        ("kind", entry.kind, kind),
        ("points", entry.points, points),
        ("channel", entry.channel, channel),
        ("order_id", entry.order_id, order_id),
    ):
        if before != after:
            found.append(f"{name}: {before!r} then {after!r}")
    if expires_at is not None and entry.expires_at != expires_at:
        found.append(f"expires_at: {iso_z(entry.expires_at)} then {iso_z(expires_at)}")
    return found


def _same_or_conflict(session: Session, entry: LoyaltyEntry, key: str, **content: Any) -> LoyaltyEntry:
    differences = _differences(session, entry, **content)
    if differences:
        raise Conflict(
            f"idempotency_key {key!r} was already used for another posting ({'; '.join(differences)}); "
            "a new posting needs a new key",
            details={"entry": entry_view(entry), "differences": differences},
        )
    return entry


def post(
    session: Session,
    profile_id: str,
    *,
    kind: str,
    points: int,
    channel: str,
    idempotency_key: str,
    order_id: str | None = None,
    now: datetime,
    expires_at: datetime | None = None,
    expiry_months: int | None = None,
) -> tuple[LoyaltyEntry, bool]:
    """Post to the member's ledger; ``(entry, created)``. A replay of the same key returns the entry
    already posted (``created`` False) — also when many arrive at once — and never posts twice; the same
    key with other content is a Conflict. ``expiry_months`` overrides the setting (earnings only)."""
    kind = _check_kind(kind)
    signed = _signed_points(kind, points)
    try:
        channel = check_channel(str(channel))
    except ValueError as error:
        raise InvalidInput(f"channel: {error}") from None
    key = _check_key(idempotency_key)
    order_ref = _check_order_id(order_id)
    now = _aware(now, "now")
    if expires_at is not None:
        expires_at = _aware(expires_at, "expires_at")
        if signed <= 0:
            raise InvalidInput("expires_at: only points credited (earn, positive adjust) expire")
        if expires_at <= now:
            raise InvalidInput("expires_at: must be later than the posting")
    member = resolve_profile_id(session, profile_id)
    content: dict[str, Any] = {"member": member, "kind": kind, "points": signed, "channel": channel,
                               "order_id": order_ref, "expires_at": expires_at}  # fmt: skip
    by_key = select(LoyaltyEntry).where(LoyaltyEntry.idempotency_key == key)
    existing = session.scalar(by_key)
    if existing is None:
        _lock_member(session, member)
        existing = session.scalar(by_key)  # posted while this one waited for the lock
    if existing is not None:
        return _same_or_conflict(session, existing, key, **content), False
    if signed > 0 and expires_at is None:
        months = expiry_months if expiry_months is not None else get_settings().loyalty_expiry_months
        expires_at = add_months(now, months)
    if signed < 0 and kind != "expire":
        available = balance(session, member, now)
        if -signed > available:
            raise Conflict(
                f"points: {-signed} asked but the balance is {available}; nothing was posted",
                details={"balance": available, "asked": -signed},
            )
    entry = LoyaltyEntry(profile_id=member, idempotency_key=key, kind=kind, points=signed, channel=channel,
                         order_id=order_ref, expires_at=expires_at, created_at=now)  # fmt: skip
    try:
        with session.begin_nested():
            session.add(entry)
            session.flush()
    except IntegrityError:  # the same key posted at once by another transaction, which won
        existing = session.scalar(by_key)
        if existing is None:
            raise
        return _same_or_conflict(session, existing, key, **content), False
    return entry, True


def earn_for_order(session: Session, order: Order, now: datetime) -> LoyaltyEntry | None:
    """The points an order earns its customer: 1 per whole euro of ``order.total``, once per order (key
    ``order:{order.id}``; calling again returns the entry already posted, whatever the order became).
    None when the order has no profile, is not in euros (other currencies earn nothing) or is under 1 €."""
    if order.profile_id is None or order.currency != EARN_CURRENCY:
        return None
    key = f"order:{order.id}"
    existing = session.scalar(select(LoyaltyEntry).where(LoyaltyEntry.idempotency_key == key))
    if existing is not None:
        return existing
    points = int(Decimal(order.total).to_integral_value(rounding=ROUND_FLOOR))
    if points <= 0:
        return None
    entry, _ = post(session, order.profile_id, kind="earn", points=points, channel=order.channel,
                    idempotency_key=key, order_id=order.id, now=now)  # fmt: skip
    return entry


def expire_due(session: Session, now: datetime) -> list[LoyaltyEntry]:
    """Post an ``expire`` entry for every lot of points that expired by ``now`` and has none yet (key
    ``expire:{entry id}``, dated when the lot expired; 0 points when the lot had been used up, so that
    it is not looked at again). Idempotent: running it twice posts nothing more. Returns the entries
    posted."""
    now = _aware(now, "now")
    marker = aliased(LoyaltyEntry)
    due = (
        select(LoyaltyEntry.profile_id)
        .outerjoin(
            marker, marker.idempotency_key == literal("expire:", String) + cast(LoyaltyEntry.id, String)
        )
        .where(LoyaltyEntry.points > 0, LoyaltyEntry.expires_at <= now, marker.id.is_(None))
        .distinct()
    )
    members: set[str] = set()
    for pid in session.scalars(due):
        try:
            members.add(resolve_profile_id(session, pid))
        except NotFound:  # an erased profile (GDPR): no member left to post to
            continue
    posted: list[LoyaltyEntry] = []
    for member in sorted(members):
        _lock_member(session, member)
        _, ids = member_ids(session, member)
        entries = _entries(session, ids)
        done = {entry.idempotency_key for entry in entries if entry.kind == "expire"}
        for lot in _replay(entries, now).lots:
            expires_at = lot.entry.expires_at
            key = f"expire:{lot.entry.id}"
            if expires_at is None or expires_at > now or key in done:
                continue
            entry, created = post(session, member, kind="expire", points=lot.expired, channel=EXPIRY_CHANNEL,
                                  idempotency_key=key, now=expires_at)  # fmt: skip
            if created:
                posted.append(entry)
    return posted


# -------------------------------------------------------------------------------------------- views
def entry_view(entry: LoyaltyEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "profile_id": entry.profile_id,
        "kind": entry.kind,
        "points": entry.points,
        "channel": entry.channel,
        "order_id": entry.order_id,
        "idempotency_key": entry.idempotency_key,
        "created_at": iso_z(entry.created_at),
        "expires_at": iso_z(entry.expires_at),
    }


def tier_for(points: int) -> tuple[str, str | None, int | None]:
    """(tier, next tier or None, points still to earn for it or None)."""
    current = TIERS[0][0]
    for name, threshold in TIERS:
        if points < threshold:
            return current, name, threshold - points
        current = name
    return current, None, None


def member_view(session: Session, profile_id: str, now: datetime) -> dict[str, Any]:
    """What every channel shows of a member: balance, tier and the next one, the next points to expire,
    the recent postings (newest first)."""
    now = _aware(now, "now")
    member, ids = member_ids(session, profile_id)
    entries = _entries(session, ids)
    ledger = _replay(entries, now)
    since = add_months(now, -TIER_WINDOW_MONTHS)
    earned = sum(e.points for e in entries if e.kind == "earn" and since < e.created_at <= now)
    tier, next_tier, to_next = tier_for(earned)
    valid = [lot for lot in ledger.lots if lot.remaining > 0 and lot.entry.expires_at is not None]
    next_expiry: dict[str, Any] | None = None
    if valid:
        first = min(lot.entry.expires_at for lot in valid if lot.entry.expires_at is not None)
        next_expiry = {
            "at": iso_z(first),
            "points": sum(lot.remaining for lot in valid if lot.entry.expires_at == first),
        }
    recent = [entry for entry in reversed(entries) if entry.points != 0][:RECENT_ENTRIES]
    view: dict[str, Any] = {
        "profile_id": member,
        "balance": ledger.balance,
        "tier": tier,
        "points_earned_12_months": earned,
        "next_tier": next_tier,
        "points_to_next_tier": to_next,
        "next_expiry": next_expiry,
        "entries": [entry_view(entry) for entry in recent],
        "as_of": iso_z(now),
    }
    if profile_id != member:
        view["requested_id"] = profile_id
    return view
