"""The loyalty and payments API for channels' back ends (API tokens): a member's points, tier and ledger
(by profile id or by any identifier, e.g. the loyalty card scanned at the till), idempotent postings,
the expiry run, and the payment records of an order.

Every JSON body is searched for card numbers before anything else (any field, known or not): a value
that looks like one is refused with a 400 that names the field and never repeats the value. Bodies are
read with exact decimals; amounts go out as strings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from parcours import deps
from parcours.auth.endpoints import require_api_token
from parcours.commerce import loyalty, payments
from parcours.commerce.offers import jsonable
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.db.types import utcnow
from parcours.deps import JsonResponse, database, settings
from parcours.identity import service as identity
from parcours.inputs import InputModel

router = APIRouter(tags=["loyalty", "payments"], dependencies=[Depends(require_api_token)])

M = TypeVar("M", bound=BaseModel)
MAX_JSON_BYTES = 32 * 1024


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every key, string and integer of a JSON document, with where it is."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            yield where, key
            yield from _leaves(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}.{index}" if path else str(index))
    elif isinstance(value, str | int):
        yield path or "body", value


def _refuse_card_numbers(document: Any) -> None:
    payments.refuse_card_numbers(_leaves(document, ""))


def json_body(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency reading the body as JSON (exact decimals), refusing card numbers anywhere in it,
    then validated by ``model``."""
    return deps.json_body(model, limit=MAX_JSON_BYTES, check=_refuse_card_numbers)


class _Body(InputModel):
    model_config = ConfigDict(extra="forbid")


class PostingIn(_Body):
    kind: Literal["earn", "redeem", "adjust"]
    points: int = Field(strict=True, description="positive; for adjust, signed (negative: a debit)")
    channel: str = Field(max_length=40)
    idempotency_key: str = Field(min_length=1, max_length=loyalty.MAX_KEY_LENGTH)
    order_id: str | None = Field(default=None, max_length=40)
    expires_at: datetime | None = None


class PaymentIn(_Body):
    kind: Literal["payment", "refund"] = "payment"
    method: str = Field(max_length=20)
    provider: str = Field(max_length=40)
    provider_reference: str = Field(max_length=120)
    amount: Decimal
    currency: str = Field(max_length=3)
    status: str = Field(max_length=16)
    last4: str | None = Field(default=None, max_length=4)
    note: str | None = Field(default=None, max_length=payments.MAX_NOTE)


# ------------------------------------------------------------------------------------------ loyalty
@router.get("/v1/loyalty")
def find_member(
    identifier: str = Query(description="KIND:VALUE, e.g. loyalty_card:2901234567890"),
    db: Database = Depends(database),
    config: Settings = Depends(settings),
) -> JsonResponse:
    """The member view of whoever holds ``identifier`` (the card scanned at the till, an e-mail…)."""
    with db.read() as session:
        profile_id = identity.find_profile_by(session, config.default_phone_region, identifier)
        return JsonResponse(loyalty.member_view(session, profile_id, utcnow()))


@router.get("/v1/loyalty/{profile_id}")
def get_member(profile_id: str, db: Database = Depends(database)) -> JsonResponse:
    """Balance, tier, next tier and the points to reach it, next expiry, recent postings."""
    with db.read() as session:
        return JsonResponse(loyalty.member_view(session, profile_id, utcnow()))


@router.post("/v1/loyalty/{profile_id}/postings", status_code=201)
def post_points(
    profile_id: str,
    body: PostingIn = Depends(json_body(PostingIn)),
    db: Database = Depends(database),
    config: Settings = Depends(settings),
) -> JsonResponse:
    """Earn, redeem or adjust points. 201 when posted; 200 with the entry already posted when the same
    ``idempotency_key`` comes again; 409 when that key was used for another posting or the balance is
    too low."""
    now = utcnow()
    with db.write() as session:
        entry, created = loyalty.post(session, profile_id, kind=body.kind, points=body.points,
                                      channel=body.channel, idempotency_key=body.idempotency_key,
                                      order_id=body.order_id, now=now, expires_at=body.expires_at,
                                      expiry_months=config.loyalty_expiry_months)  # fmt: skip
        result = {
            "created": created,
            "entry": loyalty.entry_view(entry),
            "balance": loyalty.balance(session, entry.profile_id, now),
        }
    return JsonResponse(result, status_code=201 if created else 200)


@router.post("/v1/loyalty/expire")
def run_expiry(db: Database = Depends(database)) -> JsonResponse:
    """Post the expiry of every lot of points due (idempotent; for a scheduler)."""
    with db.write() as session:
        posted = loyalty.expire_due(session, utcnow())
        result = {"posted": len(posted), "entries": [loyalty.entry_view(entry) for entry in posted]}
    return JsonResponse(result)


# ------------------------------------------------------------------------------------------ payments
@router.post("/v1/orders/{order_id}/payments", status_code=201)
def post_payment(
    order_id: str, body: PaymentIn = Depends(json_body(PaymentIn)), db: Database = Depends(database)
) -> JsonResponse:
    """Record a payment or a refund (``order_id``: the order's id or number). 201 when recorded, 200
    when the same record came again (or its status moved forward), 409 on a conflicting reference or a
    refund over what can be refunded."""
    with db.write() as session:
        payment, created = payments.record_payment(session, order_id, now=utcnow(), **body.model_dump())
        view = payments.payments_view(session, payment.order_id)
        result = {
            "created": created,
            "payment": payments.payment_view(payment),
            **{key: view[key] for key in ("captured", "refunded", "refundable")},
        }
    return JsonResponse(jsonable(result), status_code=201 if created else 200)


@router.get("/v1/orders/{order_id}/payments")
def get_payments(order_id: str, db: Database = Depends(database)) -> JsonResponse:
    """The payments and refunds of an order, with what was captured, refunded and can be refunded."""
    with db.read() as session:
        return JsonResponse(jsonable(payments.payments_view(session, order_id)))
