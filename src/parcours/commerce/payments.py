"""Payment records of orders, visible on every channel: method, provider and its reference, the last four
digits of a card, amount, status, refunds.

**Card numbers are never stored.** Every text given (method, provider, reference, last four digits,
status, currency, note) is searched for something that looks like a card number — 13 to 19 digits,
possibly split by spaces or dashes, that pass the Luhn check — and the whole record is refused
(``InvalidInput``, the value never echoed) before anything is written. A purely numeric provider
reference of 13 to 19 digits that happens to pass the Luhn check (one in ten do) is refused too: the check
cannot tell it from a card number, and refusing is the safe side. A run of more than 19 digits is not a
card number.

* **Kinds and statuses.** A ``payment`` is ``authorised``, ``captured``, ``failed`` or ``cancelled``; a
  ``refund`` is ``pending``, ``refunded`` or ``failed``.
* **Idempotent.** ``(provider, provider_reference)`` is unique: sending the same record again returns it
  (nothing written); the same reference with other content is a Conflict naming what differs — except a
  status moving forward (an authorisation captured, failed or cancelled; a pending refund refunded or
  failed), which updates the record.
* **Refund limit.** What is refunded (pending and refunded refunds) never exceeds what was captured for
  the order, in the order's currency. Payments and refunds of an order are serialised (the order row is
  locked on PostgreSQL; SQLite serialises writers), so two refunds at once cannot both pass the limit.
* The optional ``note`` is free text for the customer's timeline (a "Payment Recorded" / "Refund Recorded"
  event when the order has a profile); the payment record itself has no note.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from parcours.commerce import orders
from parcours.commerce.catalogue import check_currency, check_money
from parcours.commerce.events import timeline_event
from parcours.commerce.offers import jsonable
from parcours.errors import Conflict, InvalidInput, NotFound
from parcours.ids import new_id
from parcours.models import Order, Payment

KINDS = ("payment", "refund")
STATUSES: dict[str, tuple[str, ...]] = {
    "payment": ("authorised", "captured", "failed", "cancelled"),
    "refund": ("pending", "refunded", "failed"),
}
# A status may move forward on the same provider reference (and nothing else may change).
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "authorised": ("captured", "failed", "cancelled"),
    "pending": ("refunded", "failed"),
}
REFUND_COUNTED = ("pending", "refunded")  # what counts as refunded against the captured amount
METHOD_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,19}")
MAX_NOTE = 1000
PAN_REFUSAL = (
    "looks like a card number; card numbers are never stored (give only the last four digits in last4)"
)

# Digits, possibly split by spaces, tabs, no-break spaces or dashes (one to three of them at a time).
_DIGIT_RUN = re.compile(r"[0-9]+(?:[ \t\u00a0\u2010-\u2015\-]{1,3}[0-9]+)*")
_DIGITS = re.compile(r"[0-9]+")


# ------------------------------------------------------------------------------------------ card numbers
def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of a string of ASCII digits."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def looks_like_card_number(text: str) -> bool:
    """True if ``text`` holds 13 to 19 digits in a row (spaces or dashes allowed between them) that pass
    the Luhn check — a primary account number, however it is written (full-width digits included)."""
    normalized = unicodedata.normalize("NFKC", text)
    for run in _DIGIT_RUN.finditer(normalized):
        groups = _DIGITS.findall(run.group())
        for start in range(len(groups)):
            digits = ""
            for group in groups[start:]:
                digits += group
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and luhn_valid(digits):
                    return True
    return False


def refuse_card_numbers(fields: Iterable[tuple[str, Any]]) -> None:
    """InvalidInput naming the first field whose value looks like a card number (the value is not
    repeated: it must not end up in a log either)."""
    for name, value in fields:
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | str) and looks_like_card_number(str(value)):
            raise InvalidInput(f"{name}: {PAN_REFUSAL}", details={"field": name})


# --------------------------------------------------------------------------------------------- checks
def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name}: required, 1 to {limit} characters")
    cleaned = value.strip()
    if len(cleaned) > limit or not cleaned.isprintable():
        raise InvalidInput(f"{name}: at most {limit} printable characters")
    return cleaned


def _check_last4(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}", value.strip()):
        raise InvalidInput("last4: exactly 4 digits (the last four of the card), e.g. '4242'")
    return value.strip()


def _order(session: Session, order_id: str, *, lock: bool) -> Order:
    """The order by id (or by number, as printed on receipts), locked for update when ``lock``."""
    try:
        return orders.get(session, order_id, lock=lock)
    except NotFound:
        # An existing order's id may hold a run of digits that passes the card check; an unknown one
        # that looks like a card number is refused without being repeated.
        refuse_card_numbers([("order_id", order_id)])
        raise


def _totals(session: Session, order_id: str) -> tuple[Decimal, Decimal]:
    """(captured, refunded) of an order."""
    captured = Decimal("0.00")
    refunded = Decimal("0.00")
    for kind, status, amount in session.execute(
        select(Payment.kind, Payment.status, Payment.amount).where(Payment.order_id == order_id)
    ):
        if kind == "payment" and status == "captured":
            captured += amount
        elif kind == "refund" and status in REFUND_COUNTED:
            refunded += amount
    return captured, refunded


def _show(value: Any) -> str:
    return str(value) if isinstance(value, Decimal) else repr(value)


def _differences(payment: Payment, content: dict[str, Any]) -> list[str]:
    return [
        f"{name}: {_show(getattr(payment, name))} then {_show(value)}"
        for name, value in content.items()
        if getattr(payment, name) != value
    ]


# --------------------------------------------------------------------------------------------- record
def record_payment(
    session: Session,
    order_id: str,
    *,
    kind: str,
    method: str,
    provider: str,
    provider_reference: str,
    amount: Decimal,
    currency: str,
    status: str,
    last4: str | None = None,
    note: str | None = None,
    now: datetime,
) -> tuple[Payment, bool]:
    """Record a payment or a refund of an order; ``(payment, created)``. See the module for the rules."""
    refuse_card_numbers(
        [("method", method), ("provider", provider),
         ("provider_reference", provider_reference), ("last4", last4), ("status", status),
         ("currency", currency), ("note", note)]
    )  # fmt: skip
    if kind not in KINDS:
        raise InvalidInput(f"kind: expected payment or refund, got {kind!r}")
    if not isinstance(method, str) or not METHOD_PATTERN.fullmatch(method.strip().lower()):
        raise InvalidInput(
            "method: a word of 1 to 20 lower-case letters, digits or _ (card, cash, gift_card…)"
        )
    method = method.strip().lower()
    provider = _text(provider, "provider", 40)
    reference = _text(provider_reference, "provider_reference", 120)
    last4 = _check_last4(last4)
    if status not in STATUSES[kind]:
        raise InvalidInput(f"status: a {kind} is one of {', '.join(STATUSES[kind])}, got {status!r}")
    currency = check_currency(currency)
    amount = check_money(amount, "amount", currency=currency, positive=True)
    if note is not None:
        note = _text(note, "note", MAX_NOTE)
    if now.utcoffset() is None:
        raise InvalidInput("now: give a timezone-aware moment")
    order = _order(session, order_id, lock=True)
    if currency != order.currency:
        raise InvalidInput(f"currency: the order is in {order.currency}, got {currency}")
    content: dict[str, Any] = {"order_id": order.id, "kind": kind, "method": method, "last4": last4,
                               "amount": amount, "currency": currency}  # fmt: skip
    by_reference = select(Payment).where(
        Payment.provider == provider, Payment.provider_reference == reference
    )
    existing = session.scalar(by_reference)
    if existing is not None:
        return _replay(session, existing, content, status, note, now), False
    if kind == "refund" and status in REFUND_COUNTED:
        captured, refunded = _totals(session, order.id)
        if amount > captured - refunded:
            raise Conflict(
                f"amount: a refund of {amount} {currency} exceeds what can be refunded, "
                f"{captured - refunded} {currency} (captured {captured}, already refunded {refunded})",
                details={"captured": str(captured), "refunded": str(refunded),
                         "refundable": str(captured - refunded)},
            )  # fmt: skip
    payment = Payment(id=new_id("pay" if kind == "payment" else "rfd"), provider=provider,
                      provider_reference=reference, status=status, created_at=now, **content)  # fmt: skip
    try:
        with session.begin_nested():
            session.add(payment)
            session.flush()
    except IntegrityError:  # the same reference recorded at once by another request, which won
        existing = session.scalar(by_reference)
        if existing is None:
            raise
        return _replay(session, existing, content, status, note, now), False
    _on_timeline(session, order, payment, note, now)
    return payment, True


def _replay(
    session: Session, existing: Payment, content: dict[str, Any], status: str, note: str | None, now: datetime
) -> Payment:
    differences = _differences(existing, content)
    if not differences and existing.status == status:
        return existing
    if not differences and status in TRANSITIONS.get(existing.status, ()):
        existing.status = status
        session.flush()
        order = session.get(Order, existing.order_id)
        if order is not None:
            _on_timeline(session, order, existing, note, now)
        return existing
    if existing.status != status:
        differences.append(f"status: {existing.status!r} then {status!r}")
    raise Conflict(
        f"provider_reference {existing.provider_reference!r} of {existing.provider} is already recorded "
        f"with other content ({'; '.join(differences)})",
        details={"payment": jsonable(payment_view(existing)), "differences": differences},
    )


def _on_timeline(session: Session, order: Order, payment: Payment, note: str | None, now: datetime) -> None:
    name = "Payment Recorded" if payment.kind == "payment" else "Refund Recorded"
    properties: dict[str, Any] = {"order_id": order.number, "payment_id": payment.id, "method": payment.method,
                                  "amount": str(payment.amount), "currency": payment.currency,
                                  "status": payment.status, "last4": payment.last4}  # fmt: skip
    if note:
        properties["note"] = note
    timeline_event(session, order.profile_id, name, order.channel, properties, now)


# --------------------------------------------------------------------------------------------- views
def payment_view(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.id,
        "order_id": payment.order_id,
        "kind": payment.kind,
        "method": payment.method,
        "provider": payment.provider,
        "provider_reference": payment.provider_reference,
        "last4": payment.last4,
        "amount": payment.amount,
        "currency": payment.currency,
        "status": payment.status,
        "created_at": payment.created_at.isoformat().replace("+00:00", "Z"),
    }


def payments_view(session: Session, order_id: str) -> dict[str, Any]:
    """The payments and refunds of an order (oldest first) with what was captured, refunded and can
    still be refunded. Amounts are Decimal."""
    order = _order(session, order_id, lock=False)
    captured, refunded = _totals(session, order.id)
    payments = session.scalars(
        select(Payment).where(Payment.order_id == order.id).order_by(Payment.created_at, Payment.id)
    )
    return {
        "order_id": order.id,
        "number": order.number,
        "currency": order.currency,
        "total": order.total,
        "captured": captured,
        "refunded": refunded,
        "refundable": captured - refunded,
        "payments": [payment_view(payment) for payment in payments],
    }
