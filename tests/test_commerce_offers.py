"""One source of truth for offers: the same offer on every channel unless a channel rule is set explicitly
(and then reported), promotions, delivery by zone, returns, and the consistency audit of channel feeds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypedDict

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from typer.testing import CliRunner

from parcours.cli import app
from parcours.commerce import audit, catalogue, offers
from parcours.config import get_settings
from parcours.db.engine import Database
from parcours.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from parcours.models import Product
from parcours.vocabulary import CHANNELS
from tests.conftest import Api

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


class Window(TypedDict):
    starts_at: str
    ends_at: str


JUNE: Window = {"starts_at": "2026-06-01T00:00:00Z", "ends_at": "2026-07-01T00:00:00Z"}


def seed(db: Database) -> None:
    with db.write() as s:
        catalogue.create_product(s, product_id="TEE", name="T-shirt", category="Apparel")
        catalogue.create_product(s, product_id="MUG", name="Mug", category="home")
        catalogue.create_product(s, product_id="BAG", name="Tote bag", category="bags")
        catalogue.create_variant(s, sku="tee-s", product_id="TEE", name="T-shirt S", ean="4006381333931")
        catalogue.create_variant(s, sku="TEE-M", product_id="TEE", name="T-shirt M", attributes={"size": "M"})
        catalogue.create_variant(s, sku="CAP-1", product_id="TEE", name="Cap", active=False)
        catalogue.create_variant(s, sku="MUG-1", product_id="MUG", name="Mug blue", ean="96385074")
        catalogue.create_variant(s, sku="MUG-2", product_id="MUG", name="Mug red")
        catalogue.create_variant(s, sku="BAG-1", product_id="BAG", name="Tote bag")
        for sku, amount in (("TEE-S", "20.00"), ("TEE-M", "20"), ("CAP-1", "9"), ("MUG-1", "12.50")):
            catalogue.set_price(s, sku=sku, currency="EUR", amount=amount)
        catalogue.set_price(s, sku="MUG-2", currency="eur", amount=Decimal("12.5"))
        catalogue.set_price(s, sku="BAG-1", currency="EUR", amount="30.00")
        catalogue.set_price(s, sku="TEE-S", currency="USD", amount="22.00")
        catalogue.create_promotion(
            s,
            promotion_id="SUMMER",
            name="Summer sale",
            kind="percentage",
            value="15",
            categories=["apparel"],
            **JUNE,
        )
        catalogue.create_promotion(
            s, promotion_id="MUGDEAL", name="Mug deal", kind="amount", value="2.50", skus=["MUG-1"], **JUNE
        )
        catalogue.create_promotion(
            s,
            promotion_id="3FOR2",
            name="3 for 2",
            kind="buy_x_get_y",
            value=1,
            buy_quantity=2,
            skus=["MUG-1"],
            **JUNE,
        )
        catalogue.create_promotion(
            s,
            promotion_id="CLUB",
            name="Club",
            kind="percentage",
            value="25",
            skus=["TEE-S"],
            members_only=True,
            **JUNE,
        )
        catalogue.create_promotion(
            s,
            promotion_id="JULY",
            name="July",
            kind="percentage",
            value="50",
            skus=["TEE-M"],
            starts_at="2026-07-01T00:00:00Z",
            ends_at="2026-08-01T00:00:00Z",
        )
        catalogue.set_delivery_option(s, method="home", zone="*", cost="4.90", lead_days=3, free_from="50")
        catalogue.set_delivery_option(s, method="home", zone="75", cost="2.90", lead_days=1)
        catalogue.set_delivery_option(s, method="home", zone="750", cost="1.90", lead_days=1)
        catalogue.set_delivery_option(s, method="click_collect", zone="*", cost="0", lead_days=0)
        catalogue.set_delivery_option(s, method="relay", zone="*", cost="3.50", lead_days=4, free_from="15")
        catalogue.set_delivery_option(s, method="ship_from_store", zone="*", cost="5.90", lead_days=2)
        catalogue.set_return_policy(
            s,
            days=30,
            conditions="Unworn, with the receipt",
            refund_methods=["original_payment", "store_credit"],
        )


def get_offer(db: Database, sku: str, **kw: Any) -> dict[str, Any]:
    kw.setdefault("channel", None)
    kw.setdefault("now", NOW)
    with db.read() as s:
        return offers.offer(s, sku, **kw)


def strip_channel(offer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in offer.items() if k != "channel"}


def channel_rules(db: Database) -> None:
    with db.write() as s:
        catalogue.set_price(
            s,
            sku="TEE-S",
            currency="EUR",
            amount="21.00",
            channel="marketplace",
            reason="marketplace commission",
        )
        catalogue.set_delivery_option(
            s, method="home", zone="*", cost="5.90", lead_days=2, channel="marketplace"
        )
        catalogue.create_promotion(
            s,
            promotion_id="INSTA",
            name="Insta 20",
            kind="percentage",
            value="20",
            skus=["TEE-M"],
            channel="instagram",
            **JUNE,
        )
        catalogue.set_return_policy(
            s, days=14, conditions="Sealed", refund_methods=["gift_card"], channel="mail"
        )


# ------------------------------------------------------------------------------------------ offers
def test_offer_is_the_same_on_every_channel(db: Database) -> None:
    seed(db)
    common = get_offer(db, "TEE-S")
    assert common["price"] == Decimal("20.00")
    assert common["unit_price"] == Decimal("17.00")
    assert common["best_promotion"] == "SUMMER"
    assert common["returns"]["days"] == 30
    assert common["channel_rules"] == []
    for channel in CHANNELS:
        offer = get_offer(db, "tee-s", channel=channel)
        assert offer["channel"] == channel
        assert offer["channel_rules"] == []
        assert strip_channel(offer) == strip_channel(common)


def test_channel_rules_change_only_their_channel_and_say_so(db: Database) -> None:
    seed(db)
    common = {sku: get_offer(db, sku) for sku in ("TEE-S", "TEE-M", "MUG-1")}
    channel_rules(db)
    for channel in CHANNELS:
        if channel in ("marketplace", "instagram", "mail"):
            continue
        for sku, offer in common.items():
            assert strip_channel(get_offer(db, sku, channel=channel)) == strip_channel(offer)

    market = get_offer(db, "TEE-S", channel="marketplace")
    assert market["price"] == Decimal("21.00")
    assert market["unit_price"] == Decimal("17.85")  # 15 % of 21.00 = 3.15
    rules = {rule["rule"]: rule for rule in market["channel_rules"]}
    assert set(rules) == {"price", "delivery"}
    assert rules["price"]["reason"] == "marketplace commission"
    assert rules["price"]["common_amount"] == Decimal("20.00")
    assert rules["delivery"]["common"] == {
        "cost": Decimal("4.90"),
        "lead_days": 3,
        "free_from": Decimal("50.00"),
    }
    home = next(o for o in market["delivery"] if o["method"] == "home")
    assert (home["cost"], home["lead_days"], home["channel"]) == (Decimal("5.90"), 2, "marketplace")
    # a more specific common zone still wins over the channel's "*" row
    paris = get_offer(db, "TEE-S", channel="marketplace", postcode="75011")
    assert next(o for o in paris["delivery"] if o["method"] == "home")["cost"] == Decimal("1.90")
    assert [r["rule"] for r in paris["channel_rules"]] == ["price"]

    insta = get_offer(db, "TEE-M", channel="instagram")
    assert insta["best_promotion"] == "INSTA"
    assert insta["unit_price"] == Decimal("16.00")
    assert insta["channel_rules"] == [
        {"rule": "promotion", "channel": "instagram", "id": "INSTA", "name": "Insta 20"}
    ]
    assert get_offer(db, "TEE-M", channel="web")["unit_price"] == Decimal("17.00")

    mail = get_offer(db, "MUG-1", channel="mail")
    assert mail["returns"] == {
        "days": 14,
        "conditions": "Sealed",
        "refund_methods": ["gift_card"],
        "channel": "mail",
    }
    assert mail["channel_rules"] == [{"rule": "returns", "channel": "mail", "days": 14, "common_days": 30}]

    # removing the override brings the channel back to the common offer
    with db.write() as s:
        catalogue.remove_price(s, sku="TEE-S", currency="EUR", channel="marketplace")
    assert get_offer(db, "TEE-S", channel="marketplace")["price"] == Decimal("20.00")


def test_channel_price_needs_a_reason_and_a_known_channel(db: Database) -> None:
    seed(db)
    with db.write() as s, pytest.raises(InvalidInput, match="reason"):
        catalogue.set_price(s, sku="TEE-S", currency="EUR", amount="21", channel="marketplace")
    with db.write() as s, pytest.raises(InvalidInput, match="channel"):
        catalogue.set_price(s, sku="TEE-S", currency="EUR", amount="21", channel="teletext", reason="x")
    with db.write() as s, pytest.raises(InvalidInput, match="reason"):
        catalogue.set_price(s, sku="TEE-S", currency="EUR", amount="21", reason="no channel")


def test_promotion_kinds_members_and_dates(db: Database) -> None:
    seed(db)
    mug = get_offer(db, "MUG-1")
    assert mug["unit_price"] == Decimal("10.00")
    assert mug["best_promotion"] == "MUGDEAL"
    assert {p["id"]: p["description"] for p in mug["promotions"]} == {
        "MUGDEAL": "2.5 EUR off each unit",
        "3FOR2": "buy 2 get 1 free",
    }
    assert mug["multi_buy"] == ["buy 2 get 1 free"]
    # member-only promotions only for members, and the best one wins (no stacking)
    assert "CLUB" not in {p["id"] for p in get_offer(db, "TEE-S")["promotions"]}
    member = get_offer(db, "TEE-S", member=True)
    assert member["best_promotion"] == "CLUB"
    assert member["unit_price"] == Decimal("15.00")
    # dates: start included, end excluded
    july = datetime(2026, 7, 1, tzinfo=UTC)
    assert get_offer(db, "TEE-M", now=july)["best_promotion"] == "JULY"
    assert get_offer(db, "TEE-M", now=july)["unit_price"] == Decimal("10.00")
    assert get_offer(db, "TEE-M", now=july - timedelta(microseconds=1))["best_promotion"] == "SUMMER"
    assert get_offer(db, "TEE-M", now=datetime(2026, 5, 31, tzinfo=UTC))["promotions"] == []
    # amount promotions are in EUR: not applied to a USD price
    with db.write() as s:
        catalogue.set_price(s, sku="MUG-1", currency="USD", amount="14.00")
    assert get_offer(db, "MUG-1", currency="USD")["best_promotion"] is None
    assert get_offer(db, "TEE-S", currency="usd")["unit_price"] == Decimal("18.70")


def test_basket_pricing(db: Database) -> None:
    seed(db)
    with db.read() as s:
        subtotal, discount, lines = offers.price_lines(
            s,
            [{"sku": "MUG-1", "quantity": 6}, ("tee-s", 3), {"sku": "BAG-1", "quantity": 1}],
            channel="web",
            currency="EUR",
            member=False,
            now=NOW,
        )
    assert subtotal == Decimal("75.00") + Decimal("60.00") + Decimal("30.00")
    mug, tee, bag = lines
    # 6 mugs: 3 for 2 gives 2 free (25.00) > 2.50 off each (15.00)
    assert (mug.promotion, mug.discount, mug.total) == ("3FOR2", Decimal("25.00"), Decimal("50.00"))
    assert (tee.promotion, tee.discount) == ("SUMMER", Decimal("9.00"))
    assert (bag.promotion, bag.discount, bag.total) == (None, Decimal("0.00"), Decimal("30.00"))
    assert discount == Decimal("34.00")
    with db.read() as s:
        _, _, two = offers.price_lines(s, [("MUG-1", 2)], channel=None, currency="EUR", member=False, now=NOW)
        assert two[0].promotion == "MUGDEAL"  # 2 mugs: no free one yet
        with pytest.raises(InvalidInput, match=r"lines\[1\].sku"):
            offers.price_lines(
                s, [("MUG-1", 1), ("mug-1", 2)], channel=None, currency="EUR", member=False, now=NOW
            )
        with pytest.raises(InvalidInput, match=r"lines\[0\].quantity"):
            offers.price_lines(s, [("MUG-1", 0)], channel=None, currency="EUR", member=False, now=NOW)
        with pytest.raises(NotFound, match="CAP-1"):
            offers.price_lines(s, [("CAP-1", 1)], channel=None, currency="EUR", member=False, now=NOW)
        quote = offers.delivery_quote(
            s, channel="web", postcode="69001", amount=Decimal("50.00"), method="home"
        )
        assert quote[0]["cost"] == Decimal("0.00") and quote[0]["free"] is True


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"kind": "percentage", "value": "0"}, "value"),
        ({"kind": "percentage", "value": "100.01"}, "value"),
        ({"kind": "percentage", "value": "12.345"}, "value"),
        ({"kind": "amount", "value": "0"}, "value"),
        ({"kind": "amount", "value": "-1"}, "value"),
        ({"kind": "amount", "value": 1.5}, "value"),
        ({"kind": "buy_x_get_y", "value": 1, "buy_quantity": 0}, "buy_quantity"),
        ({"kind": "buy_x_get_y", "value": 0, "buy_quantity": 2}, "value"),
        ({"kind": "buy_x_get_y", "value": "1.5", "buy_quantity": 2}, "value"),
        ({"kind": "buy_x_get_y", "value": 1}, "buy_quantity"),
        ({"kind": "percentage", "value": "10", "buy_quantity": 2}, "buy_quantity"),
        ({"kind": "bogof", "value": "1"}, "kind"),
        ({"kind": "percentage", "value": "10", "ends_at": "2026-05-01T00:00:00Z"}, "ends_at"),
        ({"kind": "percentage", "value": "10", "starts_at": "2026-06-01T00:00:00"}, "starts_at"),
        ({"kind": "percentage", "value": "10", "skus": ["NOPE"]}, "skus"),
        ({"kind": "percentage", "value": "10", "channel": "fax"}, "channel"),
        ({"kind": "percentage", "value": "10", "name": " "}, "name"),
    ],
)
def test_promotion_validation(db: Database, changes: dict[str, Any], field: str) -> None:
    seed(db)
    fields: dict[str, Any] = {"name": "Promo", **JUNE, **changes}
    with db.write() as s, pytest.raises(InvalidInput, match=f"^{field}:"):
        catalogue.create_promotion(s, **fields)


def test_promotion_update_validates_again(db: Database) -> None:
    seed(db)
    with db.write() as s:
        updated = catalogue.update_promotion(s, "SUMMER", value="30")
        assert updated["value"] == Decimal("30.00")
        with pytest.raises(InvalidInput, match=r"^value:"):
            catalogue.update_promotion(s, "SUMMER", value="130")
        with pytest.raises(InvalidInput, match=r"^buy_quantity:"):
            catalogue.update_promotion(s, "SUMMER", kind="buy_x_get_y", value=1)
    assert get_offer(db, "TEE-S")["unit_price"] == Decimal("14.00")


def test_delivery_by_zone(db: Database) -> None:
    seed(db)

    def home(postcode: str | None, sku: str = "TEE-S") -> tuple[str, Decimal, int]:
        option = next(o for o in get_offer(db, sku, postcode=postcode)["delivery"] if o["method"] == "home")
        return option["zone"], option["cost"], option["lead_days"]

    assert home(None) == ("*", Decimal("4.90"), 3)
    assert home("69001") == ("*", Decimal("4.90"), 3)
    assert home("75120") == ("75", Decimal("2.90"), 1)
    assert home("75 002") == ("750", Decimal("1.90"), 1)
    offer = get_offer(db, "TEE-S")
    assert [o["method"] for o in offer["delivery"]] == ["home", "click_collect", "relay", "ship_from_store"]
    relay = next(o for o in offer["delivery"] if o["method"] == "relay")
    assert (relay["cost"], relay["standard_cost"], relay["free"]) == (Decimal("0.00"), Decimal("3.50"), True)
    mug2 = get_offer(db, "MUG-2")  # 12.50 < 15: relay not free
    assert next(o for o in mug2["delivery"] if o["method"] == "relay")["cost"] == Decimal("3.50")
    # setting the same method and zone again replaces it
    with db.write() as s:
        catalogue.set_delivery_option(s, method="home", zone="75", cost="3.10", lead_days=2)
    assert home("75120") == ("75", Decimal("3.10"), 2)
    with db.write() as s:
        invalid: tuple[tuple[dict[str, Any], str], ...] = (
            ({"method": "drone", "zone": "*", "cost": "1", "lead_days": 1}, "method"),
            ({"method": "home", "zone": "7-5", "cost": "1", "lead_days": 1}, "zone"),
            ({"method": "home", "zone": "*", "cost": "-1", "lead_days": 1}, "cost"),
            ({"method": "home", "zone": "*", "cost": "1", "lead_days": -1}, "lead_days"),
            ({"method": "home", "zone": "*", "cost": "1", "lead_days": 1, "free_from": "x"}, "free_from"),
        )
        for kwargs, field in invalid:
            with pytest.raises(InvalidInput, match=f"^{field}:"):
                catalogue.set_delivery_option(s, **kwargs)


def test_return_policy(db: Database) -> None:
    seed(db)
    with db.write() as s:
        catalogue.set_return_policy(s, days=60, conditions="Any", refund_methods=["card"])
        with pytest.raises(InvalidInput, match=r"^refund_methods\[0\]:"):
            catalogue.set_return_policy(s, days=30, conditions="x", refund_methods=["bitcoin"])
        with pytest.raises(InvalidInput, match=r"^refund_methods:"):
            catalogue.set_return_policy(s, days=30, conditions="x", refund_methods=[])
        with pytest.raises(InvalidInput, match=r"^days:"):
            catalogue.set_return_policy(s, days=-1, conditions="x", refund_methods=["card"])
        with pytest.raises(NotFound):
            catalogue.remove_return_policy(s, channel="web")
    assert get_offer(db, "TEE-S", channel="store")["returns"]["days"] == 60


def test_ean_sku_and_currency_rules(db: Database) -> None:
    seed(db)
    assert catalogue.check_ean("4006381333931") == "4006381333931"
    assert catalogue.check_ean("9638 5074") == "96385074"
    assert catalogue.check_ean("") is None
    with pytest.raises(InvalidInput, match="check digit"):
        catalogue.check_ean("4006381333932")
    with pytest.raises(InvalidInput, match="check digit"):
        catalogue.check_ean("96385075")
    for bad in ("123", "400638133393A", "40063813339310"):
        with pytest.raises(InvalidInput, match=r"^ean:"):
            catalogue.check_ean(bad)
    with db.write() as s, pytest.raises(Conflict, match="TEE-S"):
        catalogue.create_variant(s, sku="TEE-L", product_id="TEE", name="L", ean="4006381333931")
    with db.write() as s, pytest.raises(InvalidInput, match=r"^ean:"):
        catalogue.create_variant(s, sku="TEE-L", product_id="TEE", name="L", ean="4006381333930")
    with db.write() as s, pytest.raises(InvalidInput, match=r"^sku:"):
        catalogue.create_variant(s, sku="TEE L", product_id="TEE", name="L")
    with db.write() as s, pytest.raises(NotFound, match="product"):
        catalogue.create_variant(s, sku="SOCK-1", product_id="SOCK", name="Sock")
    with db.write() as s, pytest.raises(Conflict):
        catalogue.create_variant(s, sku="tee-m", product_id="TEE", name="again")
    with db.write() as s:
        assert catalogue.update_variant(s, "TEE-S", ean=None)["ean"] is None
        assert catalogue.update_variant(s, "TEE-S", name="S")["ean"] is None
    for code in ("EU", "EURO", "XYZ", "€", 978):
        with pytest.raises(InvalidInput, match=r"^currency:"):
            catalogue.check_currency(code)
    assert catalogue.check_currency(" chf ") == "CHF"
    with db.write() as s:
        for amount, currency in (
            ("19.999", "EUR"),
            ("1500.5", "JPY"),
            ("-1", "EUR"),
            ("nan", "EUR"),
            (19.9, "EUR"),
        ):
            with pytest.raises(InvalidInput, match=r"^amount:"):
                catalogue.set_price(s, sku="TEE-S", currency=currency, amount=amount)
        assert catalogue.set_price(s, sku="TEE-S", currency="JPY", amount="2500")["amount"] == Decimal(
            "2500.00"
        )
    yen = get_offer(db, "TEE-S", currency="JPY")
    assert yen["unit_price"] == Decimal("2125.00")  # 15 % of 2500 = 375 yen


def test_unknown_and_inactive_skus(db: Database) -> None:
    seed(db)
    with pytest.raises(NotFound, match="not found"):
        get_offer(db, "NOPE")
    with pytest.raises(NotFound, match="inactive"):
        get_offer(db, "CAP-1")
    with pytest.raises(NotFound, match="GBP"):
        get_offer(db, "TEE-S", currency="GBP")
    with pytest.raises(InvalidInput, match=r"^channel:"):
        get_offer(db, "TEE-S", channel="pigeon")


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cents=st.integers(min_value=1, max_value=10_000_000),
    percent=st.integers(min_value=1, max_value=10_000),
    quantity=st.integers(min_value=1, max_value=50),
)
def test_money_is_exact(db: Database, cents: int, percent: int, quantity: int) -> None:
    price = Decimal(cents).scaleb(-2)
    value = Decimal(percent).scaleb(-2)
    with db.write() as s:
        if s.get(Product, "P") is None:
            catalogue.create_product(s, product_id="P", name="P", category="c")
            catalogue.create_variant(s, sku="P-1", product_id="P", name="P")
            catalogue.create_promotion(
                s, promotion_id="PCT", name="pct", kind="percentage", value="1", **JUNE
            )
        catalogue.set_price(s, sku="P-1", currency="EUR", amount=str(price))
        catalogue.update_promotion(s, "PCT", value=value)
    offer = get_offer(db, "P-1")
    unit_discount = offer["promotions"][0]["unit_discount"]
    assert offer["price"] == price
    assert offer["price"] - unit_discount == offer["unit_price"]
    assert 0 <= offer["unit_price"] <= price
    assert abs(unit_discount - price * value / 100) <= Decimal("0.005")
    assert offer["unit_price"].as_tuple().exponent == -2
    with db.read() as s:
        subtotal, discount, (line,) = offers.price_lines(
            s, [("P-1", quantity)], channel="web", currency="EUR", member=False, now=NOW
        )
    assert subtotal == price * quantity
    if unit_discount:
        assert discount == unit_discount * quantity
        assert line.total == offer["unit_price"] * quantity


# ------------------------------------------------------------------------------------------ audit
MARKETPLACE_CSV = """sku;price;currency;sale_price;promotion;delivery_cost;delivery_days;return_days
TEE-S;21,00;EUR;17,85;Summer sale;5,90;2;30
TEE-M;19.00;EUR;17.00;summer sale;5.90 EUR;2;30
MUG-1;12.50;EUR;;Mug deal;4.90;3;14
GHOST-1;5.00;EUR;;;;;
CAP-1;9.00;EUR;;;;;

mug-2;12.50;USD;;;;;
TEE-S;21.00;EUR;17.85;Summer sale;5.90;2;30
"""


def test_audit_csv_finds_every_planted_divergence(db: Database) -> None:
    seed(db)
    channel_rules(db)
    with db.read() as s:
        report = audit.audit_feed(s, MARKETPLACE_CSV.encode(), channel="marketplace", now=NOW)
    found = {(d["kind"], d["sku"]) for d in report["divergences"]}
    assert found == {
        ("price", "TEE-M"),
        ("sale_price", "MUG-1"),
        ("promotion", "MUG-1"),
        ("delivery_cost", "MUG-1"),
        ("delivery_days", "MUG-1"),
        ("return_days", "MUG-1"),
        ("unknown_sku", "GHOST-1"),
        ("inactive_sku", "CAP-1"),
        ("currency", "MUG-2"),
        ("duplicate_sku", "TEE-S"),
        ("missing_sku", "BAG-1"),
    }
    assert report["rows"] == 7
    by_kind = {d["kind"]: d for d in report["divergences"]}
    assert (by_kind["price"]["expected"], by_kind["price"]["found"], by_kind["price"]["where"]) == (
        Decimal("20.00"),
        Decimal("19.00"),
        "line 3",
    )
    assert (by_kind["sale_price"]["expected"], by_kind["sale_price"]["found"]) == (Decimal("10.00"), None)
    assert by_kind["promotion"]["expected"] == ["3 for 2", "Mug deal"]
    assert (by_kind["delivery_cost"]["expected"], by_kind["delivery_cost"]["found"]) == (
        Decimal("5.90"),
        Decimal("4.90"),
    )
    assert (by_kind["delivery_days"]["expected"], by_kind["delivery_days"]["found"]) == (2, 3)
    assert (by_kind["return_days"]["expected"], by_kind["return_days"]["found"]) == (30, 14)
    assert by_kind["currency"]["expected"] == ["EUR"]
    assert by_kind["duplicate_sku"]["where"] == "line 9"
    assert by_kind["missing_sku"]["where"] is None
    assert report["summary"]["price"] == 1

    # the same feed on the web (no channel rules): the marketplace's own price now diverges
    with db.read() as s:
        web = audit.audit_feed(s, MARKETPLACE_CSV, channel="web", now=NOW, check_missing=False)
    kinds = {(d["kind"], d["sku"]) for d in web["divergences"]}
    assert {("price", "TEE-S"), ("sale_price", "TEE-S"), ("delivery_cost", "TEE-S")} <= kinds
    assert ("missing_sku", "BAG-1") not in kinds


def test_audit_of_a_consistent_feed_finds_nothing(db: Database) -> None:
    seed(db)
    channel_rules(db)
    feed = "\n".join(
        [
            "sku,price,sale_price,promotion,delivery_cost,delivery_days,return_days",
            "TEE-S,21.00,17.85,Summer sale,5.90,2,30",
            "TEE-M,20.00,17.00,Summer sale,5.90,2,30",
            'MUG-1,12.5,10,"3 for 2; Mug deal",5.90,2,30',
            "MUG-2,12.50,12.50,,5.90,2,30",
            "BAG-1,30,,,,,",
        ]
    )
    with db.read() as s:
        report = audit.audit_feed(s, feed, channel="marketplace", now=NOW)
    assert report["divergences"] == [], report["divergences"]
    # a printed catalogue delivered in Paris: the 750 zone applies
    paris = feed.replace("5.90,2", "1.90,1").replace("21.00,17.85", "20.00,17.00")
    with db.read() as s:
        assert audit.audit_feed(s, paris, channel="mail", postcode="75002", now=NOW)["divergences"] == [
            {
                "kind": "return_days",
                "sku": sku,
                "where": f"line {line}",
                "expected": 14,
                "found": 30,
                "message": f"{sku}: 30 return days instead of 14",
            }
            for sku, line in (("TEE-S", 2), ("TEE-M", 3), ("MUG-1", 4), ("MUG-2", 5))
        ]


def test_audit_json_with_a_mapping_and_exact_decimals(db: Database) -> None:
    seed(db)
    channel_rules(db)
    feed = """{"items": [
        {"id": "tee-s", "prix": 20.00, "prix_promo": 17.00, "retours_jours": 30},
        {"id": "TEE-M", "prix": {"value": "20.00", "currency": "EUR"}, "prix_promo": 17.00},
        {"id": "MUG-1", "prix": 12.5, "prix_promo": 10, "retours_jours": 30, "promotions": ["Mug deal", "3 for 2"]},
        {"id": "MUG-2", "prix": 12.499999999999999999}
    ]}"""
    mapping = {"sku": "id", "price": "prix", "sale_price": "prix_promo", "return_days": "retours_jours"}
    with db.read() as s:
        report = audit.audit_feed(s, feed, channel="instagram", mapping=mapping, now=NOW, check_missing=False)
    assert {(d["kind"], d["sku"]) for d in report["divergences"]} == {
        ("sale_price", "TEE-M"),
        ("price", "MUG-2"),
    }
    mug2 = next(d for d in report["divergences"] if d["sku"] == "MUG-2")
    assert mug2["found"] == Decimal("12.499999999999999999")
    assert mug2["where"] == "item 4"
    tee = next(d for d in report["divergences"] if d["sku"] == "TEE-M")
    assert (tee["expected"], tee["found"]) == (Decimal("16.00"), Decimal("17.00"))


@pytest.mark.parametrize(
    ("feed", "fmt", "mapping", "message"),
    [
        ("sku,price\nTEE-S,abc\n", "csv", None, r"line 2: price: 'abc' is not an amount"),
        ("sku,price\nTEE-S,1.234,56\n", "csv", None, "line 2: 3 fields, the header has 2"),
        ("sku,price\nTEE-S,\n", "csv", None, "line 2: price: empty"),
        ("sku,price\nTEE-S,20\n,5\n", "csv", None, "line 3: sku: empty"),
        ("sku,price,currency\nTEE-S,20,EURO\n", "csv", None, "line 2: currency:"),
        ("sku,price\nTEE-S,20 USD\n", "json", None, "line 1 column 1: invalid JSON"),
        ("sku,price,delivery_days\nTEE-S,20,two\n", "csv", None, "line 2: delivery_days:"),
        ("ref,price\nTEE-S,20\n", "csv", None, "line 1: no sku column"),
        ("sku,price,Price\nTEE-S,20,20\n", "csv", None, "appears twice"),
        ('sku,price\n"TEE-S,20\n', "csv", None, "line 2: malformed CSV"),
        ("sku,price\nTEE-S,20\n", "csv", {"price": "prix"}, "map: column 'prix'"),
        ("sku,price\nTEE-S,20\n", "csv", {"cost": "price"}, "map: 'cost' is not a feed field"),
        ('[{"sku": "TEE-S", "price": 20},\n {"sku": "TEE-M", "price": "x"}]', "json", None, "item 2: price:"),
        ('[{"sku": "TEE-S", "price": 20},\n {"sku": "TEE-M", "price": 20,}]', "json", None, "line 2 column"),
        ('[{"sku": "TEE-S"}, 3]', "json", None, "item 2: expected an object"),
        ('{"sku": "TEE-S"}', "json", None, "expected a JSON list"),
        ('[{"price": 20}]', "json", None, "item 1: no sku"),
        ('[{"sku": "TEE-S", "price": true}]', "json", None, "item 1: price:"),
        ("", "csv", None, "line 1: expected a header"),
    ],
)
def test_malformed_feeds_are_refused_clearly(
    db: Database, feed: str, fmt: str, mapping: dict[str, str] | None, message: str
) -> None:
    seed(db)
    with db.read() as s, pytest.raises(InvalidInput, match=message):
        audit.audit_feed(s, feed, channel="marketplace", format=fmt, mapping=mapping, now=NOW)


def test_feed_size_and_encoding_are_bounded() -> None:
    with pytest.raises(InvalidInput, match="line 2: not UTF-8"):
        audit.parse_feed(b"sku,price\n\xff\xfe,1\n", format="csv")
    with pytest.raises(PayloadTooLarge):
        audit.parse_feed(b"sku\n" + b"A\n" * (audit.MAX_FEED_BYTES // 2), format="csv")
    many = "sku\n" + "".join(f"S{n}\n" for n in range(audit.MAX_FEED_ROWS + 1))
    with pytest.raises(PayloadTooLarge, match="rows"):
        audit.parse_feed(many)
    bad = "sku,price\n" + "".join(f"S{n},x\n" for n in range(200))
    with pytest.raises(InvalidInput) as error:
        audit.parse_feed(bad)
    assert "200 problems" in error.value.message and "line 2" in error.value.message
    assert len(error.value.details) == audit.MAX_REPORTED_ERRORS


# ------------------------------------------------------------------------------------------ HTTP
def test_offers_api_end_to_end(api: Api) -> None:
    c, h = api.client, api.bearer
    assert c.get("/v1/offers/TEE-S").status_code == 401
    assert (
        c.post(
            "/v1/catalogue/products", json={"id": "TEE", "name": "T", "category": "apparel"}, headers=h
        ).status_code
        == 201
    )
    created = c.post(
        "/v1/catalogue/variants",
        json={"sku": "tee-s", "product_id": "TEE", "name": "T-shirt S", "ean": "4006381333931"},
        headers=h,
    )
    assert created.status_code == 201 and created.json()["sku"] == "TEE-S"
    bad_ean = c.post(
        "/v1/catalogue/variants",
        json={"sku": "TEE-M", "product_id": "TEE", "name": "M", "ean": "4006381333932"},
        headers=h,
    )
    assert bad_ean.status_code == 400 and bad_ean.json()["error"]["message"].startswith("ean:")
    # exact decimals: a JSON number with 18 decimals is refused, not rounded through a float
    inexact = c.put(
        "/v1/catalogue/prices",
        content=b'{"sku": "TEE-S", "currency": "EUR", "amount": 19.999999999999999999}',
        headers={**h, "Content-Type": "application/json"},
    )
    assert inexact.status_code == 400 and "amount" in inexact.json()["error"]["message"]
    assert (
        c.put(
            "/v1/catalogue/prices", json={"sku": "TEE-S", "currency": "EUR", "amount": "20.00"}, headers=h
        ).status_code
        == 200
    )
    no_reason = c.put(
        "/v1/catalogue/prices",
        json={"sku": "TEE-S", "currency": "EUR", "amount": "21", "channel": "marketplace"},
        headers=h,
    )
    assert no_reason.status_code == 400 and no_reason.json()["error"]["message"].startswith("reason:")
    assert (
        c.put(
            "/v1/catalogue/prices",
            json={
                "sku": "TEE-S",
                "currency": "EUR",
                "amount": "21",
                "channel": "marketplace",
                "reason": "fees",
            },
            headers=h,
        ).status_code
        == 200
    )
    promo = c.post(
        "/v1/catalogue/promotions",
        json={
            "id": "SUMMER",
            "name": "Summer",
            "kind": "percentage",
            "value": 10,
            "categories": ["apparel"],
            **JUNE,
        },
        headers=h,
    )
    assert promo.status_code == 201 and promo.json()["value"] == "10.00"
    bad_promo = c.post(
        "/v1/catalogue/promotions",
        json={"name": "Bad", "kind": "percentage", "value": 110, **JUNE},
        headers=h,
    )
    assert bad_promo.status_code == 400 and bad_promo.json()["error"]["message"].startswith("value:")
    unknown_field = c.post("/v1/catalogue/promotions", json={"name": "x", "colour": "red"}, headers=h)
    assert unknown_field.status_code == 400 and "colour" in unknown_field.json()["error"]["message"]
    assert (
        c.put("/v1/catalogue/promotions/SUMMER", json={"value": "20"}, headers=h).json()["value"] == "20.00"
    )
    option = c.put(
        "/v1/catalogue/delivery-options",
        json={"method": "home", "zone": "*", "cost": "4.90", "lead_days": 3},
        headers=h,
    )
    assert option.status_code == 200
    assert (
        c.put(
            "/v1/catalogue/return-policy",
            json={"days": 30, "conditions": "Unworn", "refund_methods": ["card"]},
            headers=h,
        ).status_code
        == 200
    )
    assert (
        c.put(
            "/v1/catalogue/return-policy",
            json={"days": 14, "conditions": "Sealed", "refund_methods": ["card"], "channel": "mail"},
            headers=h,
        ).status_code
        == 200
    )

    at = "2026-06-10T12:00:00Z"
    web = api.get("/v1/offers/tee-s", channel="web", at=at).json()
    assert (web["price"], web["unit_price"], web["channel_rules"]) == ("20.00", "16.00", [])
    assert web["delivery"][0]["cost"] == "4.90" and web["returns"]["days"] == 30
    store = api.get("/v1/offers/TEE-S", channel="store", at=at).json()
    assert {k: v for k, v in store.items() if k != "channel"} == {
        k: v for k, v in web.items() if k != "channel"
    }
    market = api.get("/v1/offers/TEE-S", channel="marketplace", at=at).json()
    assert market["price"] == "21.00" and market["unit_price"] == "16.80"
    assert market["channel_rules"][0]["rule"] == "price" and market["channel_rules"][0]["reason"] == "fees"
    assert [
        r["rule"] for r in api.get("/v1/offers/TEE-S", channel="mail", at=at).json()["channel_rules"]
    ] == ["returns"]
    assert api.get("/v1/offers/NOPE").status_code == 404
    assert api.get("/v1/offers/TEE-S", currency="EURO").status_code == 400
    assert api.get("/v1/offers/TEE-S", channel="pigeon").json()["error"]["message"].startswith("channel:")

    quote = c.post(
        "/v1/offers/quote",
        json={"lines": [{"sku": "TEE-S", "quantity": 3}], "channel": "web", "at": at},
        headers=h,
    ).json()
    assert (quote["subtotal"], quote["discount"], quote["total"]) == ("60.00", "12.00", "48.00")
    assert quote["lines"][0]["promotion"] == "SUMMER"

    feed = "ref;prix;sale_price;return_days\nTEE-S;21,00;16,80;30\nGHOST;1;;\n"
    report = c.post(
        "/v1/offers/audit",
        params={"channel": "marketplace", "map": ["sku=ref", "price=prix"], "at": at},
        content=feed.encode(),
        headers={**h, "Content-Type": "text/csv"},
    )
    assert report.status_code == 200, report.text
    assert [(d["kind"], d["sku"]) for d in report.json()["divergences"]] == [("unknown_sku", "GHOST")]
    as_json = c.post(
        "/v1/offers/audit",
        params={"channel": "web", "at": at},
        content=json.dumps([{"sku": "TEE-S", "price": "21.00", "return_days": 30}]).encode(),
        headers={**h, "Content-Type": "application/json"},
    ).json()
    assert as_json["divergences"] == [
        {
            "kind": "price",
            "sku": "TEE-S",
            "where": "item 1",
            "expected": "20.00",
            "found": "21.00",
            "message": "TEE-S: price 21.00 instead of 20.00",
        }
    ]
    malformed = c.post(
        "/v1/offers/audit",
        params={"channel": "web"},
        content=b"sku,price\nTEE-S,abc\n",
        headers={**h, "Content-Type": "text/csv"},
    )
    assert malformed.status_code == 400
    assert malformed.json()["error"]["details"] == [
        "line 2: price: 'abc' is not an amount (e.g. 19.90 or 19,90 EUR)"
    ]
    assert (
        c.post(
            "/v1/offers/audit", params={"channel": "web", "map": "price"}, content=b"sku\n", headers=h
        ).status_code
        == 400
    )
    assert c.post("/v1/offers/audit", content=b"sku\n", headers=h).status_code == 400  # channel is required


# ------------------------------------------------------------------------------------------ CLI
def test_catalogue_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PARCOURS_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
        database = Database(url)
        seed(database)
        database.dispose()
        shown = runner.invoke(app, ["catalogue", "offer", "tee-s", "--channel", "store"])
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.output)["price"] == "20.00"
        assert runner.invoke(app, ["catalogue", "offer", "NOPE"]).exit_code == 2
        feed = tmp_path / "feed.csv"
        feed.write_text("ref;prix\nTEE-S;20,00\nTEE-M;19\n", encoding="utf-8")
        args = [
            "catalogue",
            "audit",
            str(feed),
            "--channel",
            "marketplace",
            "--map",
            "sku=ref",
            "--map",
            "price=prix",
        ]
        result = runner.invoke(app, [*args, "--no-check-missing"])
        assert result.exit_code == 1, result.output
        assert [(d["kind"], d["sku"]) for d in json.loads(result.output)["divergences"]] == [
            ("price", "TEE-M")
        ]
        feed.write_text("ref;prix\nTEE-S;abc\n", encoding="utf-8")
        bad = runner.invoke(app, args)
        assert bad.exit_code == 2 and "line 2: price" in bad.output
    finally:
        get_settings.cache_clear()
