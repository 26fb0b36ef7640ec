"""Offers: what the source of truth says about a SKU on a channel — its price, the promotions that apply
and the best one, delivery by zone and the return policy — and the price of a basket.

Every channel sees the common offer. A channel sees something else only where a channel-specific row was
set explicitly (a price override with its reason, a promotion for that channel, a delivery option of the
same method and zone for that channel, a return policy for that channel); every such rule that shaped the
answer is listed in ``channel_rules``, which is empty when the channel sees exactly the common offer.

Rules of the arithmetic (all ``Decimal``, rounded half-up to the currency's minor unit):
- promotions do not stack: each line takes the single promotion that gives the largest discount (ties go
  to the smallest promotion id);
- percentage: the unit discount is ``price * value / 100`` rounded, times the quantity;
- amount: ``value`` off each unit (never below 0), in ``catalogue.BASE_CURRENCY`` prices only;
- buy-X-get-Y: for every X + Y units of the line, Y are free (buy 2 get 1: 3 units pay 2);
- delivery: per method, the option whose zone is the longest prefix of the postcode ("*" otherwise); a
  channel's option replaces the common option of the same method and zone; the cost is 0 when the amount
  reaches ``free_from``. Delivery costs are in ``BASE_CURRENCY``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.commerce.catalogue import (
    BASE_CURRENCY,
    DELIVERY_METHODS,
    check_channel_field,
    check_currency,
    check_sku,
    normalize_postcode,
    quantum,
)
from parcours.errors import InvalidInput, NotFound
from parcours.models import DeliveryOption, Price, Product, Promotion, ReturnPolicy, Variant

MAX_BASKET_LINES = 500
MAX_QUANTITY = 10_000


@dataclass(frozen=True)
class _Item:
    sku: str
    product_id: str
    name: str
    ean: str | None
    category: str
    active: bool


@dataclass(frozen=True)
class _Promo:
    id: str
    name: str
    kind: str
    value: Decimal
    buy_quantity: int | None
    skus: frozenset[str]
    categories: frozenset[str]
    members_only: bool
    starts_at: datetime
    ends_at: datetime
    channel: str | None

    def targets(self, item: _Item) -> bool:
        if not self.skus and not self.categories:
            return True
        return item.sku in self.skus or item.category in self.categories

    def describe(self) -> str:
        if self.kind == "percentage":
            return f"{_plain(self.value)}% off"
        if self.kind == "amount":
            return f"{_plain(self.value)} {BASE_CURRENCY} off each unit"
        return f"buy {self.buy_quantity} get {_plain(self.value)} free"

    def line_discount(self, price: Decimal, quantity: int, currency: str) -> Decimal:
        """The discount this promotion gives on ``quantity`` units at ``price``."""
        if self.kind == "percentage":
            unit = (price * self.value / 100).quantize(quantum(currency), rounding=ROUND_HALF_UP)
            return unit * quantity
        if self.kind == "amount":
            return min(self.value, price) * quantity
        group = (self.buy_quantity or 1) + int(self.value)
        return price * ((quantity // group) * int(self.value))


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


@dataclass
class LineDetail:
    """One priced basket line. ``total = subtotal - discount``; ``unit_price`` is the price before
    promotion; ``promotion`` is the id of the promotion applied (or None)."""

    sku: str
    quantity: int
    unit_price: Decimal
    subtotal: Decimal
    discount: Decimal
    total: Decimal
    promotion: str | None
    promotion_description: str | None
    channel_rules: list[dict[str, Any]] = field(default_factory=list)


class OfferBook:
    """A snapshot of the source of truth at ``now``, loaded once (all of it, or only ``skus``), from
    which any number of offers are computed without more queries (the audit prices a whole feed)."""

    def __init__(self, session: Session, *, now: datetime, skus: Iterable[str] | None = None) -> None:
        if now.utcoffset() is None:
            raise InvalidInput("now: must be timezone-aware")
        self.now = now
        wanted = sorted(set(skus)) if skus is not None else None
        query = select(Variant, Product.category).join(Product, Product.id == Variant.product_id)
        prices = select(Price)
        if wanted is not None:
            query = query.where(Variant.sku.in_(wanted))
            prices = prices.where(Price.sku.in_(wanted))
        self.items: dict[str, _Item] = {
            variant.sku: _Item(
                variant.sku, variant.product_id, variant.name, variant.ean, category, variant.active
            )
            for variant, category in session.execute(query)
        }
        self.prices: dict[tuple[str, str, str | None], Price] = {
            (price.sku, price.currency, price.channel): price for price in session.scalars(prices)
        }
        self.promotions = [
            _Promo(
                p.id,
                p.name,
                p.kind,
                p.value,
                p.buy_quantity,
                frozenset(p.skus),
                frozenset(p.categories),
                p.members_only,
                p.starts_at,
                p.ends_at,
                p.channel,
            )
            for p in session.scalars(
                select(Promotion)
                .where(Promotion.starts_at <= now, Promotion.ends_at > now)
                .order_by(Promotion.id)
            )
        ]
        self.delivery = list(session.scalars(select(DeliveryOption).order_by(DeliveryOption.id)))
        self.returns: dict[str | None, ReturnPolicy] = {
            policy.channel: policy for policy in session.scalars(select(ReturnPolicy))
        }

    # -------------------------------------------------------------------------------- the pieces
    def item(self, sku: str) -> _Item:
        item = self.items.get(sku)
        if item is None:
            raise NotFound(f"SKU {sku!r} not found")
        if not item.active:
            raise NotFound(f"SKU {sku!r} is not on sale (inactive)")
        return item

    def price(self, sku: str, currency: str, channel: str | None) -> tuple[Decimal, dict[str, Any] | None]:
        """The price and, when a channel override gave it, the rule."""
        common = self.prices.get((sku, currency, None))
        override = self.prices.get((sku, currency, channel)) if channel is not None else None
        if override is not None:
            rule = {
                "rule": "price",
                "channel": channel,
                "amount": override.amount,
                "common_amount": common.amount if common is not None else None,
                "reason": override.reason,
            }
            return override.amount, rule
        if common is None:
            raise NotFound(f"SKU {sku!r} has no price in {currency}")
        return common.amount, None

    def has_price(self, sku: str, currency: str, channel: str | None) -> bool:
        return (sku, currency, None) in self.prices or (
            channel is not None and (sku, currency, channel) in self.prices
        )

    def applicable(self, item: _Item, *, channel: str | None, currency: str, member: bool) -> list[_Promo]:
        return [
            promo
            for promo in self.promotions
            if (promo.channel is None or promo.channel == channel)
            and (member or not promo.members_only)
            and (promo.kind != "amount" or currency == BASE_CURRENCY)
            and promo.targets(item)
        ]

    def delivery_options(
        self, *, channel: str | None, postcode: str | None, amount: Decimal | None, currency: str
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The options for the postcode's zone, one per method, and the channel rules that shaped them."""
        return _delivery_options(
            self.delivery, channel=channel, postcode=postcode, amount=amount, currency=currency
        )

    def return_policy(self, channel: str | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        override = self.returns.get(channel) if channel is not None else None
        policy = override or self.returns.get(None)
        if policy is None:
            return None, None
        view = {
            "days": policy.days,
            "conditions": policy.conditions,
            "refund_methods": list(policy.refund_methods),
            "channel": policy.channel,
        }
        if override is None:
            return view, None
        common = self.returns.get(None)
        return view, {
            "rule": "returns",
            "channel": channel,
            "days": override.days,
            "common_days": common.days if common is not None else None,
        }

    # -------------------------------------------------------------------------------- the offer
    def offer(
        self,
        sku: str,
        *,
        channel: str | None,
        currency: str,
        member: bool = False,
        postcode: str | None = None,
    ) -> dict[str, Any]:
        """The offer (arguments already checked: canonical SKU, channel, currency and postcode)."""
        item = self.item(sku)
        price, price_rule = self.price(sku, currency, channel)
        rules: list[dict[str, Any]] = [price_rule] if price_rule else []
        promotions = []
        best: tuple[Decimal, _Promo] | None = None
        for promo in self.applicable(item, channel=channel, currency=currency, member=member):
            unit_discount = promo.line_discount(price, 1, currency)
            promotions.append(
                {
                    "id": promo.id,
                    "name": promo.name,
                    "kind": promo.kind,
                    "value": promo.value,
                    "buy_quantity": promo.buy_quantity,
                    "members_only": promo.members_only,
                    "starts_at": promo.starts_at,
                    "ends_at": promo.ends_at,
                    "channel": promo.channel,
                    "description": promo.describe(),
                    "unit_discount": unit_discount,
                }
            )
            if promo.channel is not None:
                rules.append(
                    {"rule": "promotion", "channel": promo.channel, "id": promo.id, "name": promo.name}
                )
            if unit_discount > 0 and (best is None or unit_discount > best[0]):
                best = (unit_discount, promo)
        unit_price = price - best[0] if best else price
        delivery, delivery_rules = self.delivery_options(
            channel=channel, postcode=postcode, amount=unit_price, currency=currency
        )
        returns, returns_rule = self.return_policy(channel)
        rules += delivery_rules + ([returns_rule] if returns_rule else [])
        return {
            "sku": item.sku,
            "product_id": item.product_id,
            "name": item.name,
            "ean": item.ean,
            "category": item.category,
            "channel": channel,
            "currency": currency,
            "member": member,
            "postcode": postcode,
            "price": price,
            "promotions": promotions,
            "best_promotion": best[1].id if best else None,
            "unit_price": unit_price,
            "multi_buy": [p["description"] for p in promotions if p["kind"] == "buy_x_get_y"],
            "delivery": delivery,
            "returns": returns,
            "channel_rules": rules,
        }

    def price_line(
        self, sku: str, quantity: int, *, channel: str | None, currency: str, member: bool
    ) -> LineDetail:
        item = self.item(sku)
        price, price_rule = self.price(sku, currency, channel)
        subtotal = price * quantity
        best: tuple[Decimal, _Promo] | None = None
        for promo in self.applicable(item, channel=channel, currency=currency, member=member):
            discount = promo.line_discount(price, quantity, currency)
            if discount > 0 and (best is None or discount > best[0]):
                best = (discount, promo)
        discount = min(best[0], subtotal) if best else Decimal("0.00")
        rules = [price_rule] if price_rule else []
        if best and best[1].channel is not None:
            rules.append(
                {"rule": "promotion", "channel": best[1].channel, "id": best[1].id, "name": best[1].name}
            )
        return LineDetail(
            sku=sku,
            quantity=quantity,
            unit_price=price,
            subtotal=subtotal,
            discount=discount,
            total=subtotal - discount,
            promotion=best[1].id if best else None,
            promotion_description=best[1].describe() if best else None,
            channel_rules=rules,
        )


def _delivery_options(
    all_options: Sequence[DeliveryOption],
    *,
    channel: str | None,
    postcode: str | None,
    amount: Decimal | None,
    currency: str,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The options for the postcode's zone, one per method, and the channel rules that shaped them."""
    grid: dict[tuple[str, str], DeliveryOption] = {}
    common: dict[tuple[str, str], DeliveryOption] = {}
    for option in all_options:
        if option.channel is None:
            common[(option.method, option.zone)] = option
            grid.setdefault((option.method, option.zone), option)
    for option in all_options:
        if channel is not None and option.channel == channel:
            grid[(option.method, option.zone)] = option
    chosen: dict[str, DeliveryOption] = {}
    for (method, zone), option in grid.items():
        if zone != "*" and (postcode is None or not postcode.startswith(zone)):
            continue
        best = chosen.get(method)
        if best is None or _zone_rank(zone) > _zone_rank(best.zone):
            chosen[method] = option
    options: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    for method in DELIVERY_METHODS:
        if method not in chosen:
            continue
        option = chosen[method]
        free = (
            option.free_from is not None
            and amount is not None
            and currency == BASE_CURRENCY
            and amount >= option.free_from
        )
        options.append(
            {
                "method": option.method,
                "zone": option.zone,
                "cost": Decimal("0.00") if free else option.cost,
                "standard_cost": option.cost,
                "free_from": option.free_from,
                "free": free,
                "currency": BASE_CURRENCY,
                "lead_days": option.lead_days,
                "channel": option.channel,
            }
        )
        if option.channel is not None:
            base = common.get((option.method, option.zone))
            rules.append(
                {
                    "rule": "delivery",
                    "channel": option.channel,
                    "method": option.method,
                    "zone": option.zone,
                    "cost": option.cost,
                    "lead_days": option.lead_days,
                    "free_from": option.free_from,
                    "common": None
                    if base is None
                    else {"cost": base.cost, "lead_days": base.lead_days, "free_from": base.free_from},
                }
            )
    return options, rules


def _zone_rank(zone: str) -> int:
    return 0 if zone == "*" else len(zone)


def _check_common(channel: str | None, currency: str) -> tuple[str | None, str]:
    return check_channel_field(channel), check_currency(currency)


# ------------------------------------------------------------------------------------ public interface
def offer(
    session: Session,
    sku: str,
    *,
    channel: str | None,
    currency: str = BASE_CURRENCY,
    member: bool = False,
    postcode: str | None = None,
    now: datetime,
) -> dict[str, Any]:
    """The offer of ``sku`` on ``channel`` (None: the common offer) at ``now``.

    Returns a dict: ``price`` (Decimal, before promotion), ``promotions`` (those that apply, member-only
    ones only when ``member``; each with its ``unit_discount`` and a ``description``), ``best_promotion``
    and ``unit_price`` (one unit after the best promotion), ``multi_buy`` (buy-X-get-Y descriptions),
    ``delivery`` (one option per method for the postcode's zone, free_from applied to ``unit_price``),
    ``returns`` and ``channel_rules`` (every channel-specific rule that applied; empty when the channel sees
    exactly the common offer). NotFound for an unknown or inactive SKU or one without a price in
    ``currency``."""
    where, code = _check_common(channel, currency)
    canonical = check_sku(sku)
    book = OfferBook(session, now=now, skus=[canonical])
    return book.offer(
        canonical, channel=where, currency=code, member=member, postcode=normalize_postcode(postcode)
    )


def price_lines(
    session: Session,
    lines: Sequence[Mapping[str, Any] | tuple[str, int]],
    *,
    channel: str | None,
    currency: str,
    member: bool,
    now: datetime,
) -> tuple[Decimal, Decimal, list[LineDetail]]:
    """Price a basket: ``price_lines(session, lines, *, channel, currency, member, now)
    -> (subtotal, discount, details)``.

    ``lines``: ``[{"sku": "TSHIRT-M", "quantity": 3}, ...]`` or ``[("TSHIRT-M", 3), ...]``; each SKU once
    (give one line with the total quantity, so buy-X-get-Y sees every unit), quantities 1 to 10 000, at
    most 500 lines. ``subtotal`` is the sum of ``unit_price * quantity`` before promotions, ``discount``
    the sum of the line discounts (one promotion per line, the best; see the module's rules); the amount
    to pay for the goods is ``subtotal - discount``. ``details`` are ``LineDetail`` in the order given.
    Raises InvalidInput (bad line, naming ``lines[i].field``) or NotFound (unknown, inactive or unpriced
    SKU). Delivery is priced separately with ``delivery_quote``."""
    where, code = _check_common(channel, currency)
    if not lines:
        raise InvalidInput("lines: at least one line")
    if len(lines) > MAX_BASKET_LINES:
        raise InvalidInput(f"lines: at most {MAX_BASKET_LINES} lines")
    parsed: list[tuple[str, int]] = []
    for index, line in enumerate(lines):
        raw_sku: Any
        raw_quantity: Any
        if isinstance(line, tuple):
            raw_sku, raw_quantity = line
        elif isinstance(line, Mapping):
            raw_sku, raw_quantity = line.get("sku"), line.get("quantity")
        else:
            raise InvalidInput(f"lines[{index}]: expected an object with sku and quantity")
        sku = check_sku(raw_sku, f"lines[{index}].sku")
        if isinstance(raw_quantity, bool) or not isinstance(raw_quantity, int):
            raise InvalidInput(f"lines[{index}].quantity: expected a whole number")
        if not 1 <= raw_quantity <= MAX_QUANTITY:
            raise InvalidInput(f"lines[{index}].quantity: must be between 1 and {MAX_QUANTITY}")
        if any(sku == seen for seen, _ in parsed):
            raise InvalidInput(
                f"lines[{index}].sku: {sku} appears twice; give one line with the total quantity"
            )
        parsed.append((sku, raw_quantity))
    book = OfferBook(session, now=now, skus=[sku for sku, _ in parsed])
    details = [
        book.price_line(sku, quantity, channel=where, currency=code, member=member)
        for sku, quantity in parsed
    ]
    subtotal = sum((d.subtotal for d in details), Decimal("0.00"))
    discount = sum((d.discount for d in details), Decimal("0.00"))
    return subtotal, discount, details


def delivery_quote(
    session: Session,
    *,
    channel: str | None,
    postcode: str | None,
    amount: Decimal | None,
    currency: str = BASE_CURRENCY,
    method: str | None = None,
) -> list[dict[str, Any]]:
    """The delivery options (one per method, or only ``method``) for the postcode's zone on ``channel``,
    ``cost`` being 0 when ``amount`` (the goods, after discounts) reaches ``free_from``."""
    where, code = _check_common(channel, currency)
    if method is not None and method not in DELIVERY_METHODS:
        raise InvalidInput(f"method: must be one of {', '.join(DELIVERY_METHODS)}")
    options, _ = _delivery_options(
        list(session.scalars(select(DeliveryOption).order_by(DeliveryOption.id))),
        channel=where,
        postcode=normalize_postcode(postcode),
        amount=amount,
        currency=code,
    )
    return [option for option in options if method is None or option["method"] == method]


def jsonable(value: Any) -> Any:
    """``value`` with every Decimal written as a string (money never travels as a binary float)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, LineDetail):
        return jsonable(value.__dict__)
    return value
