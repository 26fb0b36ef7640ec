"""The offers API (API tokens only): the offer of a SKU on a channel, basket quotes, the consistency audit
of a channel's feed, and the catalogue's admin endpoints (products, variants, prices, promotions,
delivery options, return policy).

JSON bodies are read with every number as ``Decimal`` (a JSON ``19.999999999999999999`` is refused for
having too many decimals, never rounded through a binary float); amounts go out as strings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from parcours import deps
from parcours.auth.endpoints import require_api_token
from parcours.commerce import audit, catalogue, offers
from parcours.db.engine import Database
from parcours.db.types import utcnow
from parcours.deps import JsonResponse, database, read_body
from parcours.errors import InvalidInput
from parcours.inputs import InputModel

router = APIRouter(tags=["offers"], dependencies=[Depends(require_api_token)])

M = TypeVar("M", bound=BaseModel)
MAX_JSON_BYTES = 256 * 1024


def json_body(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency reading the body as JSON with exact decimals, validated by ``model``."""
    return deps.json_body(model, limit=MAX_JSON_BYTES)


async def feed_body(request: Request) -> bytes:
    return await read_body(request, audit.MAX_FEED_BYTES)


def _json(value: Any, status_code: int = 200) -> JsonResponse:
    return JsonResponse(offers.jsonable(value), status_code=status_code)


def _moment(at: datetime | None) -> datetime:
    if at is None:
        return utcnow()
    if at.utcoffset() is None:
        raise InvalidInput("at: give a timezone (e.g. 2026-06-01T12:00:00Z)")
    return at


# ------------------------------------------------------------------------------------------ bodies
class _Body(InputModel):
    model_config = ConfigDict(extra="forbid")


class ProductIn(_Body):
    id: str = Field(max_length=40)
    name: str = Field(max_length=200)
    category: str = Field(max_length=80)
    description: str = Field(default="", max_length=20_000)


class ProductUpdate(_Body):
    name: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=80)
    description: str | None = Field(default=None, max_length=20_000)


class VariantIn(_Body):
    sku: str = Field(max_length=60)
    product_id: str = Field(max_length=40)
    name: str = Field(max_length=200)
    ean: str | None = Field(default=None, max_length=20)
    attributes: dict[str, str | int] = Field(default_factory=dict)
    active: bool = True


class VariantUpdate(_Body):
    name: str | None = Field(default=None, max_length=200)
    ean: str | None = Field(default=None, max_length=20, description="null removes the EAN")
    attributes: dict[str, str | int] | None = None
    active: bool | None = None


class PriceIn(_Body):
    sku: str = Field(max_length=60)
    currency: str = Field(max_length=3)
    amount: Decimal
    channel: str | None = Field(default=None, max_length=40)
    reason: str | None = Field(default=None, max_length=300)


class PromotionIn(_Body):
    id: str | None = Field(default=None, max_length=40)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=20)
    value: Decimal
    buy_quantity: int | None = None
    skus: list[str] = Field(default_factory=list, max_length=1000)
    categories: list[str] = Field(default_factory=list, max_length=1000)
    members_only: bool = False
    starts_at: datetime
    ends_at: datetime
    channel: str | None = Field(default=None, max_length=40)


class PromotionUpdate(_Body):
    name: str | None = Field(default=None, max_length=200)
    kind: str | None = Field(default=None, max_length=20)
    value: Decimal | None = None
    buy_quantity: int | None = None
    skus: list[str] | None = Field(default=None, max_length=1000)
    categories: list[str] | None = Field(default=None, max_length=1000)
    members_only: bool | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    channel: str | None = Field(default=None, max_length=40)


class DeliveryIn(_Body):
    method: str = Field(max_length=20)
    zone: str = Field(max_length=20)
    cost: Decimal
    free_from: Decimal | None = None
    lead_days: int
    channel: str | None = Field(default=None, max_length=40)


class ReturnPolicyIn(_Body):
    days: int
    conditions: str = Field(max_length=5000)
    refund_methods: list[str] = Field(max_length=20)
    channel: str | None = Field(default=None, max_length=40)


class QuoteLine(_Body):
    sku: str = Field(max_length=60)
    quantity: int


class QuoteIn(_Body):
    lines: list[QuoteLine] = Field(max_length=offers.MAX_BASKET_LINES)
    channel: str | None = Field(default=None, max_length=40)
    currency: str = Field(default=catalogue.BASE_CURRENCY, max_length=3)
    member: bool = False
    postcode: str | None = Field(default=None, max_length=20)
    at: datetime | None = None


# ------------------------------------------------------------------------------------------ offers
@router.get("/v1/offers/{sku}")
def get_offer(
    sku: str,
    channel: str | None = Query(default=None, description="the channel asking; none: the common offer"),
    currency: str = Query(default=catalogue.BASE_CURRENCY, max_length=3),
    member: bool = Query(default=False, description="a loyalty member (member-only promotions apply)"),
    postcode: str | None = Query(default=None, max_length=20),
    at: datetime | None = Query(default=None, description="the offer at this moment (default: now)"),
    db: Database = Depends(database),
) -> JsonResponse:
    with db.read() as session:
        result = offers.offer(
            session,
            sku,
            channel=channel,
            currency=currency,
            member=member,
            postcode=postcode,
            now=_moment(at),
        )
    return _json(result)


@router.post("/v1/offers/quote")
def post_quote(body: QuoteIn = Depends(json_body(QuoteIn)), db: Database = Depends(database)) -> JsonResponse:
    """A basket priced as every channel prices it (the order engine uses the same function)."""
    now = _moment(body.at)
    with db.read() as session:
        subtotal, discount, lines = offers.price_lines(
            session,
            [(line.sku, line.quantity) for line in body.lines],
            channel=body.channel,
            currency=body.currency,
            member=body.member,
            now=now,
        )
        delivery = offers.delivery_quote(
            session,
            channel=body.channel,
            postcode=body.postcode,
            amount=subtotal - discount,
            currency=body.currency,
        )
    return _json(
        {
            "currency": catalogue.check_currency(body.currency),
            "subtotal": subtotal,
            "discount": discount,
            "total": subtotal - discount,
            "lines": lines,
            "delivery": delivery,
        }
    )


@router.post("/v1/offers/audit")
def post_audit(
    request: Request,
    channel: str = Query(description="the channel whose feed this is (marketplace, social, mail...)"),
    currency: str = Query(default=catalogue.BASE_CURRENCY, max_length=3),
    postcode: str | None = Query(default=None, max_length=20),
    delivery_method: str = Query(default="home", max_length=20),
    format: str | None = Query(default=None, description="csv or json (default: from Content-Type)"),
    map: list[str] | None = Query(default=None, description="FIELD=COLUMN, e.g. price=prix (repeatable)"),
    check_missing: bool = Query(default=True, description="list SKUs on sale but absent from the feed"),
    at: datetime | None = Query(default=None),
    body: bytes = Depends(feed_body),
    db: Database = Depends(database),
) -> JsonResponse:
    if format is None:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in ("text/csv", "application/csv"):
            format = "csv"
        elif content_type == "application/json" or content_type.endswith("+json"):
            format = "json"
    mapping: dict[str, str] = {}
    for item in map or []:
        name, sep, column = item.partition("=")
        if not sep or not name.strip() or not column.strip():
            raise InvalidInput(f"map: expected FIELD=COLUMN (e.g. price=prix), got {item!r}")
        mapping[name.strip().lower()] = column.strip()
    with db.read() as session:
        result = audit.audit_feed(
            session,
            body,
            channel=channel,
            now=_moment(at),
            format=format,
            mapping=mapping,
            currency=currency,
            postcode=postcode,
            delivery_method=delivery_method,
            check_missing=check_missing,
        )
    return _json(result)


# ------------------------------------------------------------------------------------------ catalogue
@router.post("/v1/catalogue/products")
def post_product(
    body: ProductIn = Depends(json_body(ProductIn)), db: Database = Depends(database)
) -> JsonResponse:
    with db.write() as session:
        result = catalogue.create_product(
            session, product_id=body.id, name=body.name, category=body.category, description=body.description
        )
    return _json(result, 201)


@router.put("/v1/catalogue/products/{product_id}")
def put_product(
    product_id: str, body: ProductUpdate = Depends(json_body(ProductUpdate)), db: Database = Depends(database)
) -> JsonResponse:
    with db.write() as session:
        result = catalogue.update_product(
            session, product_id, name=body.name, category=body.category, description=body.description
        )
    return _json(result)


@router.post("/v1/catalogue/variants")
def post_variant(
    body: VariantIn = Depends(json_body(VariantIn)), db: Database = Depends(database)
) -> JsonResponse:
    with db.write() as session:
        result = catalogue.create_variant(
            session,
            sku=body.sku,
            product_id=body.product_id,
            name=body.name,
            ean=body.ean,
            attributes=body.attributes,
            active=body.active,
        )
    return _json(result, 201)


@router.put("/v1/catalogue/variants/{sku}")
def put_variant(
    sku: str, body: VariantUpdate = Depends(json_body(VariantUpdate)), db: Database = Depends(database)
) -> JsonResponse:
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    with db.write() as session:
        result = catalogue.update_variant(session, sku, **changes)
    return _json(result)


@router.put("/v1/catalogue/prices")
def put_price(body: PriceIn = Depends(json_body(PriceIn)), db: Database = Depends(database)) -> JsonResponse:
    with db.write() as session:
        result = catalogue.set_price(
            session,
            sku=body.sku,
            currency=body.currency,
            amount=body.amount,
            channel=body.channel,
            reason=body.reason,
        )
    return _json(result)


@router.delete("/v1/catalogue/prices")
def delete_price(
    sku: str,
    currency: str = Query(max_length=3),
    channel: str | None = Query(default=None, max_length=40),
    db: Database = Depends(database),
) -> JsonResponse:
    with db.write() as session:
        catalogue.remove_price(session, sku=sku, currency=currency, channel=channel)
    return _json({"deleted": True})


@router.post("/v1/catalogue/promotions")
def post_promotion(
    body: PromotionIn = Depends(json_body(PromotionIn)), db: Database = Depends(database)
) -> JsonResponse:
    with db.write() as session:
        result = catalogue.create_promotion(
            session,
            promotion_id=body.id,
            name=body.name,
            kind=body.kind,
            value=body.value,
            buy_quantity=body.buy_quantity,
            skus=body.skus,
            categories=body.categories,
            members_only=body.members_only,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            channel=body.channel,
        )
    return _json(result, 201)


@router.put("/v1/catalogue/promotions/{promotion_id}")
def put_promotion(
    promotion_id: str,
    body: PromotionUpdate = Depends(json_body(PromotionUpdate)),
    db: Database = Depends(database),
) -> JsonResponse:
    with db.write() as session:
        result = catalogue.update_promotion(session, promotion_id, **body.model_dump(exclude_unset=True))
    return _json(result)


@router.delete("/v1/catalogue/promotions/{promotion_id}")
def delete_promotion(promotion_id: str, db: Database = Depends(database)) -> JsonResponse:
    with db.write() as session:
        catalogue.delete_promotion(session, promotion_id)
    return _json({"deleted": True})


@router.put("/v1/catalogue/delivery-options")
def put_delivery_option(
    body: DeliveryIn = Depends(json_body(DeliveryIn)), db: Database = Depends(database)
) -> JsonResponse:
    with db.write() as session:
        result = catalogue.set_delivery_option(
            session,
            method=body.method,
            zone=body.zone,
            cost=body.cost,
            free_from=body.free_from,
            lead_days=body.lead_days,
            channel=body.channel,
        )
    return _json(result)


@router.delete("/v1/catalogue/delivery-options/{option_id}")
def delete_delivery_option(option_id: str, db: Database = Depends(database)) -> JsonResponse:
    with db.write() as session:
        catalogue.remove_delivery_option(session, option_id)
    return _json({"deleted": True})


@router.put("/v1/catalogue/return-policy")
def put_return_policy(
    body: ReturnPolicyIn = Depends(json_body(ReturnPolicyIn)), db: Database = Depends(database)
) -> JsonResponse:
    with db.write() as session:
        result = catalogue.set_return_policy(
            session,
            days=body.days,
            conditions=body.conditions,
            refund_methods=body.refund_methods,
            channel=body.channel,
        )
    return _json(result)


@router.delete("/v1/catalogue/return-policy")
def delete_return_policy(
    channel: str = Query(max_length=40), db: Database = Depends(database)
) -> JsonResponse:
    with db.write() as session:
        catalogue.remove_return_policy(session, channel=channel)
    return _json({"deleted": True})
