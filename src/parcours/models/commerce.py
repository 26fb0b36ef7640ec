"""Commerce: one source of truth for offers, locations with their own stock, reservations, orders from any
channel, payments, returns and one loyalty ledger. Money is Decimal, stored as NUMERIC(12, 2)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from parcours.db.base import Base
from parcours.db.types import BigIntKey

Money = Numeric(12, 2, asdecimal=True)


# ------------------------------------------------------------------------------------------ catalogue
class Product(Base):
    __tablename__ = "products"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class Variant(Base):
    """A sellable item: one SKU (and EAN), one price in the price book."""

    __tablename__ = "variants"

    sku: Mapped[str] = mapped_column(String(60), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    ean: Mapped[str | None] = mapped_column(String(14), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    attributes: Mapped[dict[str, Any]]
    active: Mapped[bool] = mapped_column(Boolean)


class Price(Base):
    """The price book: one price per SKU and currency (``channel`` set only by an explicit
    channel-specific rule, which offers then report)."""

    __tablename__ = "prices"
    __table_args__ = (
        UniqueConstraint("sku", "currency", "channel"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(ForeignKey("variants.sku"))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal] = mapped_column(Money)
    channel: Mapped[str | None] = mapped_column(String(40))  # None: every channel
    reason: Mapped[str | None] = mapped_column(String(300))  # why a channel differs


class Promotion(Base):
    """percentage, amount, buy_x_get_y; member-only; within dates; on SKUs or categories."""

    __tablename__ = "promotions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[Decimal] = mapped_column(Money)  # percent, amount, or Y of buy-X-get-Y
    buy_quantity: Mapped[int | None] = mapped_column(Integer)  # X of buy-X-get-Y
    skus: Mapped[list[str]]
    categories: Mapped[list[str]]
    members_only: Mapped[bool] = mapped_column(Boolean)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    channel: Mapped[str | None] = mapped_column(String(40))  # None: every channel


class DeliveryOption(Base):
    """home, click_collect, relay, ship_from_store: cost and lead time by zone (postcode prefix)."""

    __tablename__ = "delivery_options"
    __table_args__ = (UniqueConstraint("method", "zone", "channel"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    method: Mapped[str] = mapped_column(String(20))
    zone: Mapped[str] = mapped_column(String(20))  # postcode prefix, "*" for everywhere
    cost: Mapped[Decimal] = mapped_column(Money)
    free_from: Mapped[Decimal | None] = mapped_column(Money)
    lead_days: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str | None] = mapped_column(String(40))


class ReturnPolicy(Base):
    """The return policy (one row per channel override; ``channel`` None is the policy)."""

    __tablename__ = "return_policies"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    channel: Mapped[str | None] = mapped_column(String(40), unique=True)
    days: Mapped[int] = mapped_column(Integer)
    conditions: Mapped[str] = mapped_column(Text)
    refund_methods: Mapped[list[str]]


# ------------------------------------------------------------------------------------------ locations
class Location(Base):
    """A warehouse, a store (which has its own stock and may ship) or a relay point."""

    __tablename__ = "locations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # warehouse, store, relay
    name: Mapped[str] = mapped_column(String(200))
    street: Mapped[str] = mapped_column(String(200))
    postal_code: Mapped[str] = mapped_column(String(20))
    city: Mapped[str] = mapped_column(String(120))
    latitude: Mapped[float]
    longitude: Mapped[float]
    opening_hours: Mapped[str] = mapped_column(String(300))
    # e.g. click_collect, ship_from_store, returns, endless_aisle
    services: Mapped[list[str]]
    active: Mapped[bool] = mapped_column(Boolean)


class StockLevel(Base):
    """On hand and reserved of one SKU at one location. The database refuses a negative stock or more
    reserved than on hand, whatever the caller."""

    __tablename__ = "stock_levels"
    __table_args__ = (
        UniqueConstraint("sku", "location_id"),
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("reserved <= on_hand", name="reserved_within_on_hand"),
        Index("ix_stock_levels_location", "location_id", "sku"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(ForeignKey("variants.sku"))
    location_id: Mapped[str] = mapped_column(ForeignKey("locations.id"))
    on_hand: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class StockMovement(Base):
    """Every change of stock, with its reason (receipt, sale, reservation, return, transfer...)."""

    __tablename__ = "stock_movements"
    __table_args__ = (Index("ix_stock_movements_sku", "sku", "location_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(String(60))
    location_id: Mapped[str] = mapped_column(String(40))
    on_hand_change: Mapped[int] = mapped_column(Integer)
    reserved_change: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(40))
    reference: Mapped[str | None] = mapped_column(String(60))
    created_at: Mapped[datetime]


# ------------------------------------------------------------------------------------- reservations
class Reservation(Base):
    """Reserve online, pay and pick up in store: held until ``expires_at``, then released."""

    __tablename__ = "reservations"
    __table_args__ = (
        Index("ix_reservations_expiry", "status", "expires_at"),
        Index("ix_reservations_location_status", "location_id", "status"),  # a store's pickups
        UniqueConstraint("channel", "request_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    profile_id: Mapped[str | None] = mapped_column(String(40), index=True)
    location_id: Mapped[str] = mapped_column(ForeignKey("locations.id"))
    channel: Mapped[str] = mapped_column(String(40))
    request_id: Mapped[str] = mapped_column(String(100))  # the caller's id: a retry does not reserve twice
    status: Mapped[str] = mapped_column(String(16))  # held, collected, cancelled, expired
    lines: Mapped[list[Any]]  # [{"sku", "quantity"}]
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    order_id: Mapped[str | None] = mapped_column(String(40))


# ------------------------------------------------------------------------------------------- orders
class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("channel", "request_id"),
        Index("ix_orders_pickup_status", "pickup_location_id", "status"),  # a store's pickups
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    profile_id: Mapped[str | None] = mapped_column(String(40), index=True)
    channel: Mapped[str] = mapped_column(String(40))
    request_id: Mapped[str] = mapped_column(String(100))
    # ship_from_warehouse, ship_from_store, click_collect, relay
    fulfilment: Mapped[str] = mapped_column(String(24))
    source_location_id: Mapped[str] = mapped_column(String(40))  # where the goods leave from
    pickup_location_id: Mapped[str | None] = mapped_column(String(40))  # store or relay point
    ordering_location_id: Mapped[str | None] = mapped_column(String(40))  # endless aisle: the store
    status: Mapped[str] = mapped_column(String(20))  # placed, ready, shipped, collected, cancelled
    currency: Mapped[str] = mapped_column(String(3))
    subtotal: Mapped[Decimal] = mapped_column(Money)
    discount: Mapped[Decimal] = mapped_column(Money)
    delivery_cost: Mapped[Decimal] = mapped_column(Money)
    total: Mapped[Decimal] = mapped_column(Money)
    ready_on: Mapped[datetime | None]  # pickup or delivery date promised
    created_at: Mapped[datetime]


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("returned >= 0 AND returned <= quantity", name="returned_within_quantity"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    sku: Mapped[str] = mapped_column(String(60))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Money)
    discount: Mapped[Decimal] = mapped_column(Money)
    returned: Mapped[int] = mapped_column(Integer)


class Payment(Base):
    """A payment or refund record; card numbers are never stored, only the last four digits."""

    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("provider", "provider_reference"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # payment, refund
    method: Mapped[str] = mapped_column(String(20))  # card, cash, gift_card, paypal, transfer...
    provider: Mapped[str] = mapped_column(String(40))
    provider_reference: Mapped[str] = mapped_column(String(120))
    last4: Mapped[str | None] = mapped_column(String(4))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))  # authorised, captured, refunded, failed
    created_at: Mapped[datetime]


class Return(Base):
    """Goods brought back to any location: restocked there, refund recorded."""

    __tablename__ = "returns"
    __table_args__ = (UniqueConstraint("channel", "request_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    location_id: Mapped[str] = mapped_column(ForeignKey("locations.id"))
    channel: Mapped[str] = mapped_column(String(40))
    request_id: Mapped[str] = mapped_column(String(100))
    lines: Mapped[list[Any]]  # [{"sku", "quantity"}]
    refund_amount: Mapped[Decimal] = mapped_column(Money)
    reason: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime]


# ------------------------------------------------------------------------------------------ loyalty
class LoyaltyEntry(Base):
    """One posting of the append-only points ledger. ``idempotency_key`` is unique: a till re-sending
    the same sale after being offline never posts twice."""

    __tablename__ = "loyalty_entries"
    __table_args__ = (Index("ix_loyalty_member", "profile_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    profile_id: Mapped[str] = mapped_column(String(40))
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    kind: Mapped[str] = mapped_column(String(12))  # earn, redeem, expire, adjust
    points: Mapped[int] = mapped_column(Integer)  # signed
    channel: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[str | None] = mapped_column(String(40))
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
