"""The catalogue: one source of truth for offers. Products and their variants (SKU, EAN), one price book
per currency, promotions, delivery options by zone and the return policy.

Every rule is common to all channels unless a channel-specific row is set *explicitly* (a price override
needs a reason); ``offers.offer`` reports each one that applies. Every input is validated here, with an
``InvalidInput`` naming the field; services never commit (the caller owns the transaction).

Money is ``Decimal``: amounts with more decimals than the currency has (or than the price book stores,
2) are refused, never rounded silently."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from parcours.db.types import utcnow
from parcours.errors import Conflict, InvalidInput, NotFound
from parcours.ids import new_id
from parcours.models import DeliveryOption, Price, Product, Promotion, ReturnPolicy, Variant
from parcours.vocabulary import check_channel

PROMOTION_KINDS = ("percentage", "amount", "buy_x_get_y")
DELIVERY_METHODS = ("home", "click_collect", "relay", "ship_from_store")
REFUND_METHODS = ("original_payment", "card", "cash", "gift_card", "store_credit", "exchange", "transfer")
# Amount promotions have no currency column: their value is in this currency and they apply to prices in
# it only (a ``currency`` column on ``promotions`` would lift the limit).
BASE_CURRENCY = "EUR"
MAX_AMOUNT = Decimal("9999999999.99")  # NUMERIC(12, 2)
MAX_LEAD_DAYS = 365
MAX_RETURN_DAYS = 3650

SKU_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9._\-]{0,59}")
PRODUCT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,39}")
PROMOTION_ID_PATTERN = PRODUCT_ID_PATTERN
ZONE_PATTERN = re.compile(r"[A-Z0-9]{1,20}")


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ISO 4217 active codes (funds and precious metals excluded).
CURRENCIES = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYU",
        "UZS",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XCG",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
    ]
)
ZERO_DECIMAL_CURRENCIES = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "ISK",
        "JPY",
        "KMF",
        "KRW",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)


# ------------------------------------------------------------------------------------------ checks
def check_currency(value: Any, field: str = "currency") -> str:
    """An ISO 4217 code in upper case, or InvalidInput naming ``field``."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z]{3}", value.strip()):
        raise InvalidInput(f"{field}: expected an ISO 4217 currency code of 3 letters, got {value!r}")
    code = value.strip().upper()
    if code not in CURRENCIES:
        raise InvalidInput(f"{field}: {code!r} is not an ISO 4217 currency code")
    return code


def currency_places(currency: str) -> int:
    """Decimal places amounts in ``currency`` carry here (the price book stores at most 2)."""
    return 0 if currency in ZERO_DECIMAL_CURRENCIES else 2


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-currency_places(currency))


def to_decimal(value: Any, field: str) -> Decimal:
    """A finite Decimal from a Decimal, an int or a string (never a float: binary floats are not money)."""
    if isinstance(value, bool | float):
        raise InvalidInput(f"{field}: give the amount as a string or a Decimal, not a binary float")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidInput(f"{field}: {value!r} is not a number") from None
    else:
        raise InvalidInput(f"{field}: expected a number, got {type(value).__name__}")
    if not result.is_finite():
        raise InvalidInput(f"{field}: must be a finite number")
    return result


def check_money(value: Any, field: str, *, currency: str = BASE_CURRENCY, positive: bool = False) -> Decimal:
    """A non-negative (or positive) amount with no more decimals than ``currency`` allows."""
    amount = to_decimal(value, field)
    if amount < 0 or (positive and amount == 0):
        raise InvalidInput(f"{field}: must be {'greater than 0' if positive else '0 or more'}, got {amount}")
    if amount > MAX_AMOUNT:
        raise InvalidInput(f"{field}: must be at most {MAX_AMOUNT}")
    places = currency_places(currency)
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise InvalidInput(f"{field}: {amount} has more than {places} decimal places for {currency}")
    return amount.quantize(Decimal(1).scaleb(-2))


def check_sku(value: Any, field: str = "sku") -> str:
    """SKU rules: 1 to 60 characters, letters, digits, '.', '_' and '-', starting with a letter or a
    digit; stored in upper case (a feed writing it in lower case still matches)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field}: required")
    sku = value.strip().upper()
    if not SKU_PATTERN.fullmatch(sku):
        raise InvalidInput(
            f"{field}: {value!r} is not a valid SKU (1 to 60 letters, digits, '.', '_' or '-', "
            "starting with a letter or a digit)"
        )
    return sku


def check_ean(value: Any, field: str = "ean") -> str | None:
    """An EAN-13 or EAN-8 whose check digit is right, or None for no EAN."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: expected a string of digits")
    ean = value.strip().replace(" ", "")
    if not ean.isdigit() or not ean.isascii() or len(ean) not in (8, 13):
        raise InvalidInput(f"{field}: {value!r} is not an EAN-13 or EAN-8 (13 or 8 digits)")
    if ean_check_digit(ean[:-1]) != int(ean[-1]):
        raise InvalidInput(
            f"{field}: {ean} has a wrong check digit (expected {ean_check_digit(ean[:-1])}, got {ean[-1]})"
        )
    return ean


def ean_check_digit(body: str) -> int:
    """The GS1 check digit of the digits before it (weights 3 and 1 from the right)."""
    total = sum(int(digit) * (3 if index % 2 == 0 else 1) for index, digit in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def check_channel_field(value: Any, field: str = "channel") -> str | None:
    """A known channel, or None for "every channel"."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: expected a channel name")
    try:
        return check_channel(value)
    except ValueError as error:
        raise InvalidInput(f"{field}: {error}") from None


def check_zone(value: Any, field: str = "zone") -> str:
    """A postcode prefix (letters and digits, spaces ignored) or "*" for everywhere."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field}: required (a postcode prefix, or '*' for everywhere)")
    if value.strip() == "*":
        return "*"
    zone = value.replace(" ", "").upper()
    if not ZONE_PATTERN.fullmatch(zone):
        raise InvalidInput(f"{field}: {value!r} is not a postcode prefix (letters and digits) or '*'")
    return zone


def normalize_postcode(value: str | None, field: str = "postcode") -> str | None:
    if value is None or not value.strip():
        return None
    postcode = value.replace(" ", "").upper()
    if not ZONE_PATTERN.fullmatch(postcode):
        raise InvalidInput(f"{field}: {value!r} is not a postcode (letters and digits)")
    return postcode


def _text(value: Any, field: str, *, limit: int, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: expected text")
    text = value.strip()
    if required and not text:
        raise InvalidInput(f"{field}: required")
    if len(text) > limit:
        raise InvalidInput(f"{field}: at most {limit} characters")
    return text


def _int(value: Any, field: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, Decimal) and value == value.to_integral_value():
            value = int(value)
        else:
            raise InvalidInput(f"{field}: expected a whole number, got {value!r}")
    number = int(value)
    if not low <= number <= high:
        raise InvalidInput(f"{field}: must be between {low} and {high}, got {number}")
    return number


def _moment(value: Any, field: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"{field}: {value!r} is not an ISO 8601 date-time") from None
    if not isinstance(value, datetime):
        raise InvalidInput(f"{field}: expected a date-time")
    if value.utcoffset() is None:
        raise InvalidInput(f"{field}: give a timezone (e.g. 2026-01-31T00:00:00Z)")
    return value.astimezone(UTC)


def _str_list(values: Any, field: str, check: Any = None, *, limit: int = 1000) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise InvalidInput(f"{field}: expected a list")
    result: list[str] = []
    for index, value in enumerate(values):
        item = check(value, f"{field}[{index}]") if check else _text(value, f"{field}[{index}]", limit=80)
        if item not in result:
            result.append(item)
    if len(result) > limit:
        raise InvalidInput(f"{field}: at most {limit} entries")
    return result


# ------------------------------------------------------------------------------------------ products
def _product_view(product: Product) -> dict[str, Any]:
    return {
        "id": product.id,
        "name": product.name,
        "category": product.category,
        "description": product.description,
        "created_at": product.created_at,
    }


def create_product(
    session: Session, *, product_id: str, name: str, category: str, description: str = ""
) -> dict[str, Any]:
    if not isinstance(product_id, str) or not PRODUCT_ID_PATTERN.fullmatch(product_id.strip()):
        raise InvalidInput(
            f"id: {product_id!r} is not a valid product id (1 to 40 letters, digits, '.', '_' or '-')"
        )
    product_id = product_id.strip()
    if session.get(Product, product_id) is not None:
        raise Conflict(f"product {product_id!r} already exists")
    product = Product(
        id=product_id,
        name=_text(name, "name", limit=200),
        category=_text(category, "category", limit=80).lower(),
        description=_text(description, "description", limit=20_000, required=False),
        created_at=utcnow(),
    )
    session.add(product)
    session.flush()
    return _product_view(product)


def update_product(
    session: Session,
    product_id: str,
    *,
    name: str | None = None,
    category: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    product = session.get(Product, product_id)
    if product is None:
        raise NotFound(f"product {product_id!r} not found")
    if name is not None:
        product.name = _text(name, "name", limit=200)
    if category is not None:
        product.category = _text(category, "category", limit=80).lower()
    if description is not None:
        product.description = _text(description, "description", limit=20_000, required=False)
    session.flush()
    return _product_view(product)


def _variant_view(variant: Variant) -> dict[str, Any]:
    return {
        "sku": variant.sku,
        "product_id": variant.product_id,
        "ean": variant.ean,
        "name": variant.name,
        "attributes": variant.attributes,
        "active": variant.active,
    }


def _attributes(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput("attributes: expected an object of names to values")
    if len(value) > 50:
        raise InvalidInput("attributes: at most 50 entries")
    result: dict[str, str] = {}
    for key, item in value.items():
        name = _text(key, "attributes", limit=60)
        if not isinstance(item, str | int) or isinstance(item, bool):
            raise InvalidInput(f"attributes.{name}: expected text or a whole number")
        result[name] = _text(str(item), f"attributes.{name}", limit=200)
    return result


def _ean_free(session: Session, ean: str | None, sku: str) -> None:
    if ean is None:
        return
    owner = session.scalar(select(Variant.sku).where(Variant.ean == ean))
    if owner is not None and owner != sku:
        raise Conflict(f"ean: {ean} already belongs to SKU {owner!r}")


def create_variant(
    session: Session,
    *,
    sku: str,
    product_id: str,
    name: str,
    ean: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    active: bool = True,
) -> dict[str, Any]:
    sku = check_sku(sku)
    if session.get(Product, product_id) is None:
        raise NotFound(f"product_id: product {product_id!r} not found")
    if session.get(Variant, sku) is not None:
        raise Conflict(f"SKU {sku!r} already exists")
    code = check_ean(ean)
    _ean_free(session, code, sku)
    variant = Variant(
        sku=sku,
        product_id=product_id,
        ean=code,
        name=_text(name, "name", limit=200),
        attributes=_attributes(attributes),
        active=bool(active),
    )
    session.add(variant)
    session.flush()
    return _variant_view(variant)


_KEEP: Any = object()


def update_variant(
    session: Session,
    sku: str,
    *,
    name: str | None = None,
    ean: Any = _KEEP,
    attributes: Mapping[str, Any] | None = None,
    active: bool | None = None,
) -> dict[str, Any]:
    """Change what is given; ``ean=None`` removes the EAN, leaving it out keeps it."""
    variant = session.get(Variant, check_sku(sku))
    if variant is None:
        raise NotFound(f"SKU {sku!r} not found")
    if name is not None:
        variant.name = _text(name, "name", limit=200)
    if ean is not _KEEP:
        code = check_ean(ean)
        _ean_free(session, code, variant.sku)
        variant.ean = code
    if attributes is not None:
        variant.attributes = _attributes(attributes)
    if active is not None:
        variant.active = bool(active)
    session.flush()
    return _variant_view(variant)


def get_variant(session: Session, sku: str) -> Variant:
    variant = session.get(Variant, check_sku(sku))
    if variant is None:
        raise NotFound(f"SKU {sku!r} not found")
    return variant


# ------------------------------------------------------------------------------------------ prices
def _price_view(price: Price) -> dict[str, Any]:
    return {
        "sku": price.sku,
        "currency": price.currency,
        "amount": price.amount,
        "channel": price.channel,
        "reason": price.reason,
    }


def set_price(
    session: Session,
    *,
    sku: str,
    currency: str,
    amount: Any,
    channel: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """The price of ``sku`` in ``currency`` for every channel, or (with ``channel`` and a mandatory
    ``reason``) an explicit override for that channel."""
    variant = get_variant(session, sku)
    code = check_currency(currency)
    value = check_money(amount, "amount", currency=code)
    where_channel = check_channel_field(channel)
    why = _text(reason, "reason", limit=300, required=False) or None
    if where_channel is not None and why is None:
        raise InvalidInput("reason: required for a channel-specific price (say why this channel differs)")
    if where_channel is None and why is not None:
        raise InvalidInput("reason: only for a channel-specific price; the common price needs none")
    price = session.scalar(
        select(Price).where(
            Price.sku == variant.sku,
            Price.currency == code,
            Price.channel.is_(None) if where_channel is None else Price.channel == where_channel,
        )
    )
    if price is None:
        price = Price(sku=variant.sku, currency=code, amount=value, channel=where_channel, reason=why)
        session.add(price)
    else:
        price.amount = value
        price.reason = why
    session.flush()
    return _price_view(price)


def remove_price(session: Session, *, sku: str, currency: str, channel: str | None) -> None:
    code = check_currency(currency)
    where_channel = check_channel_field(channel)
    result = session.execute(
        delete(Price).where(
            Price.sku == check_sku(sku),
            Price.currency == code,
            Price.channel.is_(None) if where_channel is None else Price.channel == where_channel,
        )
    )
    if not getattr(result, "rowcount", 0):
        raise NotFound(f"no price for {sku!r} in {code} on {where_channel or 'every channel'}")


# ------------------------------------------------------------------------------------------ promotions
def promotion_view(promotion: Promotion) -> dict[str, Any]:
    return {
        "id": promotion.id,
        "name": promotion.name,
        "kind": promotion.kind,
        "value": promotion.value,
        "buy_quantity": promotion.buy_quantity,
        "skus": promotion.skus,
        "categories": promotion.categories,
        "members_only": promotion.members_only,
        "starts_at": promotion.starts_at,
        "ends_at": promotion.ends_at,
        "channel": promotion.channel,
    }


def _check_promotion(fields: dict[str, Any]) -> dict[str, Any]:
    kind = fields["kind"]
    if kind not in PROMOTION_KINDS:
        raise InvalidInput(f"kind: must be one of {', '.join(PROMOTION_KINDS)}, got {kind!r}")
    value = to_decimal(fields["value"], "value")
    buy = fields.get("buy_quantity")
    if kind == "percentage":
        if not Decimal(0) < value <= Decimal(100):
            raise InvalidInput(f"value: a percentage must be more than 0 and at most 100, got {value}")
        value = check_money(value, "value")
        if buy is not None:
            raise InvalidInput("buy_quantity: only for buy_x_get_y promotions")
    elif kind == "amount":
        value = check_money(value, "value", currency=BASE_CURRENCY, positive=True)
        if buy is not None:
            raise InvalidInput("buy_quantity: only for buy_x_get_y promotions")
    else:
        if value != value.to_integral_value():
            raise InvalidInput(
                f"value: the Y of buy-X-get-Y (units free) must be a whole number, got {value}"
            )
        value = Decimal(_int(int(value), "value", low=1, high=1000)).quantize(Decimal("0.01"))
        if buy is None:
            raise InvalidInput("buy_quantity: required for buy_x_get_y (the X of buy-X-get-Y)")
        buy = _int(buy, "buy_quantity", low=1, high=1000)
    starts = _moment(fields["starts_at"], "starts_at")
    ends = _moment(fields["ends_at"], "ends_at")
    if ends <= starts:
        raise InvalidInput("ends_at: must be after starts_at")
    return {
        "name": _text(fields["name"], "name", limit=200),
        "kind": kind,
        "value": value,
        "buy_quantity": buy,
        "skus": _str_list(fields.get("skus"), "skus", check_sku),
        "categories": [c.lower() for c in _str_list(fields.get("categories"), "categories")],
        "members_only": bool(fields.get("members_only", False)),
        "starts_at": starts,
        "ends_at": ends,
        "channel": check_channel_field(fields.get("channel")),
    }


def create_promotion(
    session: Session,
    *,
    name: str,
    kind: str,
    value: Any,
    starts_at: datetime | str,
    ends_at: datetime | str,
    buy_quantity: int | None = None,
    skus: Iterable[str] | None = None,
    categories: Iterable[str] | None = None,
    members_only: bool = False,
    channel: str | None = None,
    promotion_id: str | None = None,
) -> dict[str, Any]:
    """A promotion on the listed SKUs and categories (both empty: the whole catalogue).

    ``percentage``: ``value`` percent off (0 < value <= 100); ``amount``: ``value`` off each unit, in
    ``BASE_CURRENCY``; ``buy_x_get_y``: for every ``buy_quantity`` (X) units bought, ``value`` (Y) more
    free. ``members_only``: loyalty members only. Active from ``starts_at`` (included) to ``ends_at``
    (excluded). ``channel``: an explicit channel-specific promotion, reported as such by offers."""
    checked = _check_promotion(
        {
            "name": name,
            "kind": kind,
            "value": value,
            "buy_quantity": buy_quantity,
            "skus": skus,
            "categories": categories,
            "members_only": members_only,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "channel": channel,
        }
    )
    if promotion_id is not None and not PROMOTION_ID_PATTERN.fullmatch(promotion_id):
        raise InvalidInput(f"id: {promotion_id!r} is not a valid id (1 to 40 letters, digits, '.', '_', '-')")
    if promotion_id is not None and session.get(Promotion, promotion_id) is not None:
        raise Conflict(f"promotion {promotion_id!r} already exists")
    _known_skus(session, checked["skus"])
    promotion = Promotion(id=promotion_id or new_id("promo"), **checked)
    session.add(promotion)
    session.flush()
    return promotion_view(promotion)


def update_promotion(session: Session, promotion_id: str, **changes: Any) -> dict[str, Any]:
    """Change some fields of a promotion; the whole promotion is validated again."""
    promotion = session.get(Promotion, promotion_id)
    if promotion is None:
        raise NotFound(f"promotion {promotion_id!r} not found")
    allowed = set(promotion_view(promotion)) - {"id"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise InvalidInput(f"{unknown[0]}: not a promotion field")
    fields = {**promotion_view(promotion), **changes}
    if changes.get("kind", promotion.kind) != "buy_x_get_y" and "buy_quantity" not in changes:
        fields["buy_quantity"] = None
    checked = _check_promotion(fields)
    _known_skus(session, checked["skus"])
    for key, item in checked.items():
        setattr(promotion, key, item)
    session.flush()
    return promotion_view(promotion)


def delete_promotion(session: Session, promotion_id: str) -> None:
    promotion = session.get(Promotion, promotion_id)
    if promotion is None:
        raise NotFound(f"promotion {promotion_id!r} not found")
    session.delete(promotion)
    session.flush()


def _known_skus(session: Session, skus: list[str]) -> None:
    if not skus:
        return
    known = set(session.scalars(select(Variant.sku).where(Variant.sku.in_(skus))))
    missing = [sku for sku in skus if sku not in known]
    if missing:
        raise InvalidInput(f"skus: unknown SKU {missing[0]!r}")


# ------------------------------------------------------------------------------------------ delivery
def delivery_view(option: DeliveryOption) -> dict[str, Any]:
    return {
        "id": option.id,
        "method": option.method,
        "zone": option.zone,
        "cost": option.cost,
        "free_from": option.free_from,
        "lead_days": option.lead_days,
        "channel": option.channel,
    }


def set_delivery_option(
    session: Session,
    *,
    method: str,
    zone: str,
    cost: Any,
    lead_days: int,
    free_from: Any = None,
    channel: str | None = None,
) -> dict[str, Any]:
    """The cost (in ``BASE_CURRENCY``) and lead time of a delivery method in a zone (postcode prefix or
    "*"), for every channel or, with ``channel``, an explicit override of the same method and zone on that
    channel. Setting it again for the same method, zone and channel replaces it."""
    if method not in DELIVERY_METHODS:
        raise InvalidInput(f"method: must be one of {', '.join(DELIVERY_METHODS)}, got {method!r}")
    where_zone = check_zone(zone)
    amount = check_money(cost, "cost")
    threshold = None if free_from is None or free_from == "" else check_money(free_from, "free_from")
    days = _int(lead_days, "lead_days", low=0, high=MAX_LEAD_DAYS)
    where_channel = check_channel_field(channel)
    option = session.scalar(
        select(DeliveryOption).where(
            DeliveryOption.method == method,
            DeliveryOption.zone == where_zone,
            DeliveryOption.channel.is_(None)
            if where_channel is None
            else DeliveryOption.channel == where_channel,
        )
    )
    if option is None:
        option = DeliveryOption(id=new_id("dlv"), method=method, zone=where_zone, channel=where_channel)
        session.add(option)
    option.cost = amount
    option.free_from = threshold
    option.lead_days = days
    session.flush()
    return delivery_view(option)


def remove_delivery_option(session: Session, option_id: str) -> None:
    option = session.get(DeliveryOption, option_id)
    if option is None:
        raise NotFound(f"delivery option {option_id!r} not found")
    session.delete(option)
    session.flush()


# ------------------------------------------------------------------------------------------ returns
def return_view(policy: ReturnPolicy) -> dict[str, Any]:
    return {
        "days": policy.days,
        "conditions": policy.conditions,
        "refund_methods": policy.refund_methods,
        "channel": policy.channel,
    }


def set_return_policy(
    session: Session,
    *,
    days: int,
    conditions: str,
    refund_methods: Iterable[str],
    channel: str | None = None,
) -> dict[str, Any]:
    """The return policy (``channel`` None), or an explicit override for one channel."""
    period = _int(days, "days", low=0, high=MAX_RETURN_DAYS)
    text = _text(conditions, "conditions", limit=5000)
    methods = _str_list(refund_methods, "refund_methods", _refund_method)
    if not methods:
        raise InvalidInput(f"refund_methods: at least one of {', '.join(REFUND_METHODS)}")
    where_channel = check_channel_field(channel)
    policy = session.scalar(
        select(ReturnPolicy).where(
            ReturnPolicy.channel.is_(None) if where_channel is None else ReturnPolicy.channel == where_channel
        )
    )
    if policy is None:
        policy = ReturnPolicy(id=new_id("ret"), channel=where_channel)
        session.add(policy)
    policy.days = period
    policy.conditions = text
    policy.refund_methods = methods
    session.flush()
    return return_view(policy)


def _refund_method(value: Any, field: str) -> str:
    if not isinstance(value, str) or value.strip().lower() not in REFUND_METHODS:
        raise InvalidInput(f"{field}: {value!r} is not one of {', '.join(REFUND_METHODS)}")
    return value.strip().lower()


def remove_return_policy(session: Session, *, channel: str) -> None:
    """Remove a channel's override (the common policy can be changed, not removed)."""
    where_channel = check_channel_field(channel)
    if where_channel is None:
        raise InvalidInput("channel: required (only a channel's override can be removed)")
    result = session.execute(delete(ReturnPolicy).where(ReturnPolicy.channel == where_channel))
    if not getattr(result, "rowcount", 0):
        raise NotFound(f"no return policy override for channel {where_channel!r}")
