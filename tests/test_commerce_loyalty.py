"""Loyalty and payments: idempotent postings (a till re-sending a sale, eight at once), conflicting
replays, redemptions over the balance, FIFO expiry with a controlled clock, tiers, the same balance on
every channel, points following a merge; payment records that refuse card numbers, refund limits,
idempotent payment records (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from parcours.commerce import loyalty, payments
from parcours.commerce.loyalty import add_months
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.errors import Conflict, InvalidInput, NotFound
from parcours.identity import service as identity
from parcours.models import Event, LoyaltyEntry, Order, Payment
from tests.concurrency_helpers import at_once
from tests.conftest import Api
from tests.helpers import active_profiles, ingest, make_source, profile_of

T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
CARD = "LC-2901-555"  # a loyalty card number (not a payment card)


# ------------------------------------------------------------------------------------------ helpers
def member(db: Database, settings: Settings, user: str = "u-ana", card: str | None = CARD) -> str:
    """A profile known by a user id (and a loyalty card)."""
    web = make_source(db, f"web-{user}", "web")
    traits: dict[str, Any] = {"email": f"{user}@example.fr"}
    if card:
        traits["loyalty_card"] = card
    ingest(
        db, settings, web, [{"type": "identify", "messageId": f"id-{user}", "userId": user, "traits": traits}]
    )
    return profile_of(db, settings, "user_id", user)


def post(db: Database, profile_id: str, kind: str, points: Any, key: str, *, now: datetime = T0,
         channel: str = "store", **extra: Any) -> tuple[LoyaltyEntry, bool]:  # fmt: skip
    with db.write() as session:
        return loyalty.post(session, profile_id, kind=kind, points=points, channel=channel, idempotency_key=key,
                            now=now, **extra)  # fmt: skip


def balance(db: Database, profile_id: str, now: datetime = T0) -> int:
    with db.read() as session:
        return loyalty.balance(session, profile_id, now)


def entries(db: Database) -> list[LoyaltyEntry]:
    with db.read() as session:
        return list(session.scalars(select(LoyaltyEntry).order_by(LoyaltyEntry.id)))


def make_order(db: Database, order_id: str = "ord-1", *, profile_id: str | None = None, total: str = "50.00",
               currency: str = "EUR") -> Order:  # fmt: skip
    """An order written directly with the model (the orders service is not under test here)."""
    amount = Decimal(total)
    order = Order(id=order_id, number=f"CMD-{order_id}", profile_id=profile_id, channel="web",
                  request_id=f"req-{order_id}", fulfilment="ship_from_warehouse", source_location_id="WH",
                  pickup_location_id=None, ordering_location_id=None, status="placed", currency=currency,
                  subtotal=amount, discount=Decimal("0.00"), delivery_cost=Decimal("0.00"), total=amount,
                  ready_on=None, created_at=T0)  # fmt: skip
    with db.write() as session:
        session.add(order)
    return order


def pay(db: Database, order_id: str = "ord-1", **fields: Any) -> tuple[Payment, bool]:
    record: dict[str, Any] = {"kind": "payment", "method": "card", "provider": "adyen",
                              "provider_reference": "PSP-0001", "amount": Decimal("50.00"), "currency": "EUR",
                              "status": "captured", "last4": "4242", "now": T0}  # fmt: skip
    record.update(fields)
    with db.write() as session:
        return payments.record_payment(session, order_id, **record)


def count(db: Database, model: Any) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


# ------------------------------------------------------------------------------------ idempotency
def test_the_same_till_sale_sent_twice_earns_once(db: Database, settings: Settings) -> None:
    ana = member(db, settings)
    first, created = post(db, ana, "earn", 120, "till-PAR-03:sale-1001", order_id="T-1001")
    # The till went offline, came back and sends its queue again, later.
    again, created_again = post(db, ana, "earn", 120, "till-PAR-03:sale-1001", order_id="T-1001",
                                now=T0 + timedelta(hours=5))  # fmt: skip
    assert created and not created_again
    assert again.id == first.id
    assert len(entries(db)) == 1
    assert balance(db, ana) == 120


def test_eight_requests_sending_the_same_posting_at_once_post_it_once(
    db: Database, settings: Settings
) -> None:
    ana = member(db, settings)

    def till(_: int) -> tuple[int, bool]:
        entry, created = post(db, ana, "earn", 75, "till-LYS-01:sale-77")
        return entry.id, created

    results = at_once(8, till)
    assert len({entry_id for entry_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(entries(db)) == 1
    assert balance(db, ana) == 75


def test_one_key_sent_at_once_for_two_members_posts_once(db: Database, settings: Settings) -> None:
    """Two members never share a lock: the unique key decides, the loser sees the winner's entry."""
    ana, bob = member(db, settings), member(db, settings, "u-bob", card="LC-77")

    def till(n: int) -> str:
        try:
            _, created = post(db, ana if n % 2 else bob, "earn", 10, "till-9:sale-1")
            return "created" if created else "replay"
        except Conflict as error:
            assert "member:" in error.message
            return "conflict"

    assert sorted(at_once(8, till)) == ["conflict"] * 4 + ["created"] + ["replay"] * 3
    assert len(entries(db)) == 1


def test_concurrent_redemptions_never_spend_the_same_points_twice(db: Database, settings: Settings) -> None:
    ana = member(db, settings)
    post(db, ana, "earn", 300, "earn-1")

    def redeem(n: int) -> str:
        try:
            post(db, ana, "redeem", 100, f"redeem-{n}", channel="web")
            return "ok"
        except Conflict:
            return "refused"

    assert sorted(at_once(8, redeem)) == ["ok"] * 3 + ["refused"] * 5
    assert balance(db, ana) == 0


def test_a_replay_with_other_content_is_refused_and_says_what_differs(
    db: Database, settings: Settings
) -> None:
    ana = member(db, settings)
    post(db, ana, "earn", 120, "till-PAR-03:sale-1002")
    with pytest.raises(Conflict) as refused:
        post(db, ana, "earn", 150, "till-PAR-03:sale-1002", channel="web")
    assert "points: 120 then 150" in refused.value.message
    assert "channel: 'store' then 'web'" in refused.value.message
    with pytest.raises(Conflict, match="kind: 'earn' then 'redeem'"):
        post(db, ana, "redeem", 120, "till-PAR-03:sale-1002")
    assert len(entries(db)) == 1


def test_postings_are_checked(db: Database, settings: Settings) -> None:
    ana = member(db, settings)
    for kind, points, key, channel, message in (
        ("earn", 0, "k", "store", "points: give a positive"),
        ("earn", -5, "k", "store", "points: give a positive"),
        ("redeem", 1.5, "k", "store", "points: expected a whole number"),
        ("adjust", 0, "k", "store", "points: an adjustment"),
        ("gift", 5, "k", "store", "kind: expected one of"),
        ("earn", 5, " ", "store", "idempotency_key: required"),
        ("earn", 5, "k" * 161, "store", "idempotency_key: at most 160"),
        ("earn", 5, "k", "carrier pigeon", "channel: unknown channel"),
    ):
        with pytest.raises(InvalidInput, match=message):
            post(db, ana, kind, points, key, channel=channel)
    with pytest.raises(NotFound):
        post(db, "prf_unknown", "earn", 5, "k")
    with pytest.raises(InvalidInput, match="expires_at: only points credited"):
        post(db, ana, "redeem", 5, "k", expires_at=T0 + timedelta(days=1))
    assert entries(db) == []


def test_a_redemption_over_the_balance_is_refused_with_the_balance(db: Database, settings: Settings) -> None:
    ana = member(db, settings)
    post(db, ana, "earn", 320, "earn-1")
    with pytest.raises(Conflict) as refused:
        post(db, ana, "redeem", 500, "redeem-1", channel="web")
    assert "500 asked but the balance is 320" in refused.value.message
    assert refused.value.details == {"balance": 320, "asked": 500}
    with pytest.raises(Conflict, match="balance is 320"):
        post(db, ana, "adjust", -321, "adjust-1")
    assert len(entries(db)) == 1
    entry, created = post(db, ana, "redeem", 320, "redeem-2", channel="web")
    assert created and entry.points == -320
    assert balance(db, ana) == 0


# ----------------------------------------------------------------------------------------- expiry
def test_points_expire_first_in_first_out_and_the_ledger_explains_the_balance(
    db: Database, settings: Settings
) -> None:
    ana = member(db, settings)
    first, _ = post(db, ana, "earn", 100, "earn-jan")  # expires T0 + 24 months
    assert first.expires_at == add_months(T0, 24)
    post(db, ana, "redeem", 30, "redeem-feb", now=T0 + timedelta(days=30))  # uses January's points
    second, _ = post(db, ana, "earn", 50, "earn-mar", now=add_months(T0, 2))
    assert balance(db, ana, add_months(T0, 24) - timedelta(seconds=1)) == 120
    # January's lot expires with the 70 points it still holds; March's 50 remain.
    assert balance(db, ana, add_months(T0, 24)) == 50
    # Redeeming before January's expiry uses January's points first.
    post(db, ana, "redeem", 80, "redeem-dec", now=add_months(T0, 23))
    assert balance(db, ana, add_months(T0, 23)) == 40
    assert balance(db, ana, add_months(T0, 24)) == 40  # January's lot was used up: nothing left to expire
    assert balance(db, ana, add_months(T0, 26)) == 0  # March's lot expires with its 40

    with db.write() as session:
        posted = loyalty.expire_due(session, add_months(T0, 24))
    assert [(e.kind, e.points, e.idempotency_key) for e in posted] == [("expire", 0, f"expire:{first.id}")]
    with db.write() as session:
        posted = loyalty.expire_due(session, add_months(T0, 26))
        assert loyalty.expire_due(session, add_months(T0, 26)) == []  # idempotent
    assert [(e.points, e.idempotency_key, e.created_at) for e in posted] == [
        (-40, f"expire:{second.id}", add_months(T0, 26))
    ]
    assert sum(e.points for e in entries(db)) == balance(db, ana, add_months(T0, 26)) == 0
    with db.read() as session:
        view = loyalty.member_view(session, ana, add_months(T0, 26))
    assert view["entries"][0]["kind"] == "expire" and view["entries"][0]["points"] == -40
    assert all(entry["points"] != 0 for entry in view["entries"])


def test_the_ledger_sums_to_the_balance_once_expiry_has_run(db: Database, settings: Settings) -> None:
    ana = member(db, settings)
    post(db, ana, "earn", 100, "e1")
    post(db, ana, "earn", 60, "e2", now=T0 + timedelta(days=10), expires_at=T0 + timedelta(days=40))
    post(db, ana, "redeem", 120, "r1", now=T0 + timedelta(days=20))  # 100 of e1, then 20 of e2
    moment = T0 + timedelta(days=41)
    assert balance(db, ana, moment) == 0  # e2's remaining 40 expired at day 40
    with db.write() as session:
        posted = loyalty.expire_due(session, moment)
    assert [e.points for e in posted] == [-40]
    assert sum(e.points for e in entries(db)) == balance(db, ana, moment) == 0
    post(db, ana, "earn", 10, "e3", now=moment)
    assert balance(db, ana, moment) == 10


def test_the_expiry_run_skips_erased_profiles(db: Database, settings: Settings) -> None:
    ana, bob = member(db, settings), member(db, settings, "u-bob", card="LC-77")
    post(db, ana, "earn", 10, "a")
    post(db, bob, "earn", 20, "b")
    with db.write() as session:
        identity.erase_profile(session, ana)
    with db.write() as session:
        posted = loyalty.expire_due(session, add_months(T0, 25))
    assert [(e.profile_id, e.points) for e in posted] == [(bob, -20)]


# ------------------------------------------------------------------------------------------ tiers
def test_tiers_follow_the_points_earned_over_twelve_months(db: Database, settings: Settings) -> None:
    ana = member(db, settings)
    post(db, ana, "earn", 2000, "old", now=add_months(T0, -13))  # too old to count for the tier
    now = T0
    with db.read() as session:
        view = loyalty.member_view(session, ana, now)
    assert (view["tier"], view["next_tier"], view["points_to_next_tier"]) == ("bronze", "silver", 500)
    post(db, ana, "earn", 400, "a", now=add_months(T0, -2))
    post(db, ana, "redeem", 1000, "spent")  # spending does not lower the tier
    with db.read() as session:
        view = loyalty.member_view(session, ana, now)
    assert (view["tier"], view["next_tier"], view["points_to_next_tier"]) == ("bronze", "silver", 100)
    post(db, ana, "earn", 200, "b")
    with db.read() as session:
        view = loyalty.member_view(session, ana, now)
    assert (view["tier"], view["next_tier"], view["points_to_next_tier"]) == ("silver", "gold", 900)
    assert view["points_earned_12_months"] == 600
    post(db, ana, "earn", 900, "c")
    with db.read() as session:
        view = loyalty.member_view(session, ana, now)
    assert (view["tier"], view["next_tier"], view["points_to_next_tier"]) == ("gold", None, None)
    assert view["balance"] == 2000 + 400 - 1000 + 200 + 900
    assert loyalty.tier_for(499) == ("bronze", "silver", 1) and loyalty.tier_for(1500) == ("gold", None, None)


# ----------------------------------------------------------------------------------------- orders
def test_an_order_earns_one_point_per_whole_euro_once(db: Database, settings: Settings) -> None:
    ana = member(db, settings)
    order = make_order(db, "ord-eur", profile_id=ana, total="79.80")
    others = [make_order(db, "ord-usd", profile_id=ana, currency="USD"), make_order(db, "ord-anon"),
              make_order(db, "ord-cheap", profile_id=ana, total="0.99")]  # fmt: skip
    with db.write() as session:
        entry = loyalty.earn_for_order(session, order, T0)
        assert entry is not None and (entry.points, entry.idempotency_key) == (79, "order:ord-eur")
        assert (entry.kind, entry.channel, entry.order_id) == ("earn", "web", "ord-eur")
    with db.write() as session:
        again = loyalty.earn_for_order(session, order, T0 + timedelta(days=1))
        assert again is not None and again.id == entry.id
        assert [loyalty.earn_for_order(session, other, T0) for other in others] == [None, None, None]
    assert balance(db, ana) == 79
    assert len(entries(db)) == 1


# ------------------------------------------------------------------------------- every channel, merges
def test_the_balance_is_the_same_by_profile_id_and_by_loyalty_card(api: Api) -> None:
    ana = member(api.db, api.settings)
    posted = api.client.post(f"/v1/loyalty/{ana}/postings", headers=api.bearer, json={
        "kind": "earn", "points": 250, "channel": "web", "idempotency_key": "web-order-9", "order_id": "W9"})  # fmt: skip
    assert posted.status_code == 201, posted.text
    assert posted.json()["balance"] == 250 and posted.json()["created"] is True
    replay = api.client.post(f"/v1/loyalty/{ana}/postings", headers=api.bearer, json={
        "kind": "earn", "points": 250, "channel": "web", "idempotency_key": "web-order-9", "order_id": "W9"})  # fmt: skip
    assert replay.status_code == 200 and replay.json()["created"] is False
    assert replay.json()["entry"] == posted.json()["entry"]
    spent = api.client.post(f"/v1/loyalty/{ana}/postings", headers=api.bearer, json={
        "kind": "redeem", "points": 50, "channel": "store", "idempotency_key": "till-PAR-03:sale-9"})  # fmt: skip
    assert spent.status_code == 201 and spent.json()["balance"] == 200

    by_id = api.get(f"/v1/loyalty/{ana}")
    by_card = api.get("/v1/loyalty", identifier="loyalty_card:lc 2901 555")
    assert by_id.status_code == by_card.status_code == 200, by_card.text
    first, second = by_id.json(), by_card.json()
    first.pop("as_of"), second.pop("as_of")
    assert first == second
    assert first["balance"] == 200 and first["profile_id"] == ana
    assert [e["points"] for e in first["entries"]] == [-50, 250]

    too_much = api.client.post(f"/v1/loyalty/{ana}/postings", headers=api.bearer, json={
        "kind": "redeem", "points": 201, "channel": "app", "idempotency_key": "app-1"})  # fmt: skip
    assert too_much.status_code == 409 and "balance is 200" in too_much.json()["error"]["message"]
    conflicting = api.client.post(f"/v1/loyalty/{ana}/postings", headers=api.bearer, json={
        "kind": "earn", "points": 260, "channel": "web", "idempotency_key": "web-order-9", "order_id": "W9"})  # fmt: skip
    assert conflicting.status_code == 409 and "points: 250 then 260" in conflicting.json()["error"]["message"]
    for body, field in (
        ({"kind": "earn", "points": "10", "channel": "web", "idempotency_key": "x"}, "points"),
        ({"kind": "earn", "points": 10.0, "channel": "web", "idempotency_key": "x"}, "points"),
        ({"kind": "expire", "points": 10, "channel": "web", "idempotency_key": "x"}, "kind"),
        ({"kind": "earn", "points": 10, "channel": "web", "idempotency_key": "x", "extra": 1}, "extra"),
        ({"kind": "earn", "points": 10, "channel": "web"}, "idempotency_key"),
    ):
        refused = api.client.post(f"/v1/loyalty/{ana}/postings", headers=api.bearer, json=body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["message"].startswith(field), refused.text
    assert api.get("/v1/loyalty", identifier="loyalty_card:nobody").status_code == 404
    assert api.get("/v1/loyalty", identifier="nonsense").status_code == 400
    assert api.client.get(f"/v1/loyalty/{ana}").status_code == 401
    assert api.get(f"/v1/loyalty/{ana}").json()["balance"] == 200


def test_points_follow_a_merge(db: Database, settings: Settings) -> None:
    web_profile = member(db, settings, "u-ana", card=None)
    store = make_source(db, "till", "store")
    ingest(db, settings, store, [{"type": "track", "event": "Sale", "messageId": "s1", "anonymousId": "till-1",
                                  "context": {"traits": {"loyalty_card": CARD}}}])  # fmt: skip
    store_profile = profile_of(db, settings, "loyalty_card", CARD)
    assert store_profile != web_profile
    post(db, web_profile, "earn", 100, "web-1", channel="web")
    post(db, store_profile, "earn", 40, "till-1")
    with pytest.raises(Conflict, match="balance is 40"):
        post(db, store_profile, "redeem", 120, "till-2")
    # The card is given on the web: one person.
    ingest(db, settings, store, [{"type": "identify", "messageId": "s2", "userId": "u-ana",
                                  "traits": {"loyalty_card": CARD}}])  # fmt: skip
    assert len(active_profiles(db)) == 1
    survivor = active_profiles(db)[0]
    merged_away = store_profile if survivor == web_profile else web_profile
    assert balance(db, web_profile) == balance(db, store_profile) == 140
    entry, created = post(db, merged_away, "redeem", 120, "till-2")  # the till still knows the old id
    assert created and entry.profile_id == survivor
    assert balance(db, store_profile) == balance(db, web_profile) == 20
    with db.read() as session:
        view = loyalty.member_view(session, merged_away, T0)
    assert view["profile_id"] == survivor and view["requested_id"] == merged_away
    # Unmerged: the restored profile takes back the entries posted under its id before the merge; what
    # was posted after the merge stays on the survivor's ledger.
    with db.write() as session:
        identity.unmerge(session, merged_away)
    restored_points = 40 if merged_away == store_profile else 100
    assert balance(db, merged_away) == restored_points
    assert balance(db, survivor) == 140 - restored_points - 120


# --------------------------------------------------------------------------------------- card numbers
VISA = "4111111111111111"
PANS = ("4111 1111 1111 1111", "4111-1111-1111-1111", "5500 0000 0000 0004", "3782 822463 10005",
        "6011-0009-9013-9424", "4012888888881881", "4111 - 1111 - 1111 - 1111")  # fmt: skip


def test_card_numbers_are_refused_in_any_field_and_nothing_is_written(
    db: Database, settings: Settings
) -> None:
    ana = member(db, settings)
    make_order(db, profile_id=ana)
    events_before = count(db, Event)
    for pan in PANS:
        for field, value in (
            ("provider_reference", f"ref {pan}"),
            ("note", f"customer paid with {pan}, exp 12/27"),
            ("provider", pan),
            ("method", pan),
            ("last4", pan),
        ):
            with pytest.raises(InvalidInput) as refused:
                pay(db, **{field: value})
            assert refused.value.message.startswith(f"{field}: looks like a card number")
            assert "never stored" in refused.value.message
            assert pan not in refused.value.message and pan.replace(" ", "") not in refused.value.message
    assert count(db, Payment) == 0
    assert count(db, Event) == events_before
    # 16 digits that fail the Luhn check are not a card number: a provider's reference may have them.
    payment, created = pay(db, provider_reference="4111111111111112", note="ticket 4111 1111 1111 1112")
    assert created and payment.provider_reference == "4111111111111112" and payment.last4 == "4242"


def test_an_order_id_with_a_card_like_run_of_digits_is_an_order_not_a_card(db: Database) -> None:
    # Internal ids are "ord_" + 32 hex characters: some hold 13 to 19 digits in a row that pass Luhn.
    odd = "ord_" + VISA + "abcdef0123456789"
    order = make_order(db, "ord-odd")
    with db.write() as session:
        session.execute(update(Order).where(Order.id == order.id).values(id=odd))
    payment, created = pay(db, odd)
    assert created and payment.order_id == odd
    with pytest.raises(InvalidInput, match="order_id: looks like a card number") as refused:
        pay(db, "4111 1111 1111 1111")  # no such order, and a card number: refused, not repeated
    assert "4111" not in refused.value.message


def test_last4_is_exactly_four_digits(db: Database) -> None:
    make_order(db)
    for value in ("123", "12345", "12a4", "", " 42", "\uff14\uff12\uff14\uff12"):
        with pytest.raises(InvalidInput, match="last4: exactly 4 digits"):
            pay(db, last4=value)
    assert count(db, Payment) == 0
    payment, _ = pay(db, last4="0042", method="cash", provider="till", provider_reference="T-1")
    assert payment.last4 == "0042"
    cash, _ = pay(db, last4=None, method="cash", provider="till", provider_reference="T-2")
    assert cash.last4 is None


@st.composite
def formatted_pans(draw: st.DrawFn) -> str:
    """A valid card number (13 to 19 digits, Luhn check digit) written with random separators, inside
    random text."""
    length = draw(st.integers(min_value=13, max_value=19))
    body = draw(st.text(alphabet="0123456789", min_size=length - 1, max_size=length - 1))
    for check in "0123456789":
        if payments.luhn_valid(body + check):
            break
    digits = body + check
    separators = draw(st.lists(st.sampled_from(["", "", "", " ", "-", "  ", " - ", "\u00a0"]),
                               min_size=length - 1, max_size=length - 1))  # fmt: skip
    written = digits[0] + "".join(sep + digit for sep, digit in zip(separators, digits[1:], strict=True))
    words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz :/#()", max_size=20)
    return draw(words) + written + draw(words)


@hsettings(max_examples=200, deadline=None)
@given(formatted_pans())
def test_every_valid_card_number_is_detected_however_written(text: str) -> None:
    assert payments.looks_like_card_number(text)


@hsettings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=13, max_value=19).flatmap(
        lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)
    )
)
def test_digits_failing_the_luhn_check_are_not_card_numbers(digits: str) -> None:
    if payments.luhn_valid(digits):
        digits = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    assert not payments.looks_like_card_number(f"ref {digits} ok")


def test_card_numbers_written_any_way_are_refused_by_the_service(db: Database) -> None:
    make_order(db)

    @hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(formatted_pans(), st.sampled_from(["provider_reference", "note", "provider"]))
    def check(text: str, field: str) -> None:
        with pytest.raises(InvalidInput, match="looks like a card number"):
            pay(db, **{field: text})

    check()
    assert count(db, Payment) == 0


def test_a_card_number_anywhere_in_a_body_is_refused_by_the_api(api: Api) -> None:
    make_order(api.db)
    body = {"kind": "payment", "method": "card", "provider": "adyen", "provider_reference": "PSP-1",
            "amount": "50.00", "currency": "EUR", "status": "captured", "last4": "1111"}  # fmt: skip
    for extra in (
        {"card_number": "4111 1111 1111 1111"},
        {"pan": 4111111111111111},
        {"note": "4111-1111-1111-1111"},
    ):
        refused = api.client.post("/v1/orders/ord-1/payments", headers=api.bearer, json=body | extra)
        assert refused.status_code == 400, refused.text
        assert "looks like a card number" in refused.text
        assert (
            "4111 1111" not in refused.text and "4111-1111" not in refused.text and VISA not in refused.text
        )
    refused = api.client.post(f"/v1/loyalty/{'x'}/postings", headers=api.bearer, json={
        "kind": "earn", "points": 1, "channel": "web", "idempotency_key": VISA})  # fmt: skip
    assert refused.status_code == 400 and "idempotency_key: looks like a card number" in refused.text
    assert count(api.db, Payment) == 0


# -------------------------------------------------------------------------------------------- refunds
def test_refunds_never_exceed_what_was_captured(db: Database) -> None:
    make_order(db)
    with pytest.raises(Conflict, match=r"exceeds what can be refunded, 0\.00 EUR"):
        pay(db, kind="refund", provider_reference="R-0", amount=Decimal("1.00"), status="refunded")
    pay(db, provider_reference="AUTH-1", status="authorised")  # authorised only: nothing to refund yet
    with pytest.raises(Conflict, match=r"0\.00 EUR"):
        pay(db, kind="refund", provider_reference="R-0", amount=Decimal("1.00"), status="refunded")
    pay(db, provider_reference="AUTH-1", status="captured")  # the authorisation is captured
    pay(db, kind="refund", provider_reference="R-1", amount=Decimal("30.00"), status="refunded")
    with pytest.raises(Conflict) as refused:
        pay(db, kind="refund", provider_reference="R-2", amount=Decimal("25.00"), status="pending")
    assert "20.00 EUR (captured 50.00, already refunded 30.00)" in refused.value.message
    pay(db, kind="refund", provider_reference="R-3", amount=Decimal("25.00"), status="failed")  # not counted
    pay(db, kind="refund", provider_reference="R-2", amount=Decimal("20.00"), status="pending")
    pay(db, kind="refund", provider_reference="R-2", amount=Decimal("20.00"), status="refunded")
    with db.read() as session:
        view = payments.payments_view(session, "CMD-ord-1")  # by number too
    assert (view["captured"], view["refunded"], view["refundable"]) == (
        Decimal("50.00"), Decimal("50.00"), Decimal("0.00"))  # fmt: skip
    assert [(p["kind"], p["status"]) for p in view["payments"]] == [
        ("payment", "captured"), ("refund", "refunded"), ("refund", "failed"), ("refund", "refunded")]  # fmt: skip
    for fields, message in (
        ({"amount": Decimal("0")}, "amount: must be greater than 0"),
        ({"amount": Decimal("1.001")}, "amount: 1.001 has more than 2 decimal places"),
        ({"currency": "USD"}, "currency: the order is in EUR"),
        ({"status": "refunded"}, "status: a payment is one of"),
        ({"kind": "chargeback"}, "kind: expected payment or refund"),
        ({"method": "Credit Card!"}, "method:"),
    ):
        with pytest.raises(InvalidInput, match=message):
            pay(db, provider_reference="P-9", **fields)
    with pytest.raises(NotFound):
        pay(db, "no-such-order")


def test_payment_records_are_idempotent(db: Database, settings: Settings) -> None:
    ana = member(db, settings)
    make_order(db, profile_id=ana)
    first, created = pay(db, note="paid at the till")
    again, created_again = pay(db, note="paid at the till", now=T0 + timedelta(minutes=3))
    assert created and not created_again and again.id == first.id
    assert count(db, Payment) == 1
    with pytest.raises(Conflict) as refused:
        pay(db, amount=Decimal("49.00"))
    assert "amount: 50.00 then 49.00" in refused.value.message
    with pytest.raises(Conflict, match="status: 'captured' then 'authorised'"):
        pay(db, status="authorised")  # a status never moves back
    make_order(db, "ord-2")
    with pytest.raises(Conflict, match="order_id: 'ord-1' then 'ord-2'"):
        pay(db, "ord-2")
    assert count(db, Payment) == 1
    with db.read() as session:
        recorded = session.scalars(select(Event).where(Event.name == "Payment Recorded")).all()
    assert len(recorded) == 1 and recorded[0].profile_id == ana
    assert recorded[0].properties is not None
    assert recorded[0].properties["note"] == "paid at the till" and recorded[0].properties["last4"] == "4242"


def test_payments_api(api: Api) -> None:
    make_order(api.db, total="79.80")
    body = {"kind": "payment", "method": "card", "provider": "stripe", "provider_reference": "pi_3Nf",
            "amount": "79.80", "currency": "EUR", "status": "captured", "last4": "4242"}  # fmt: skip
    created = api.client.post("/v1/orders/ord-1/payments", headers=api.bearer, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["payment"]["amount"] == "79.80" and created.json()["refundable"] == "79.80"
    assert api.client.post("/v1/orders/ord-1/payments", headers=api.bearer, json=body).status_code == 200
    refund = {"kind": "refund", "method": "card", "provider": "stripe", "provider_reference": "re_1",
              "amount": 20.5, "currency": "EUR", "status": "refunded"}  # fmt: skip
    done = api.client.post("/v1/orders/CMD-ord-1/payments", headers=api.bearer, json=refund)
    assert done.status_code == 201, done.text
    too_much = api.client.post("/v1/orders/ord-1/payments", headers=api.bearer,
                               json=refund | {"provider_reference": "re_2", "amount": "60.00"})  # fmt: skip
    assert too_much.status_code == 409 and "59.30 EUR" in too_much.json()["error"]["message"]
    listed = api.get("/v1/orders/ord-1/payments")
    assert listed.status_code == 200
    view = listed.json()
    assert (view["total"], view["captured"], view["refunded"], view["refundable"]) == (
        "79.80", "79.80", "20.50", "59.30")  # fmt: skip
    assert [p["provider_reference"] for p in view["payments"]] == ["pi_3Nf", "re_1"]
    bad = api.client.post("/v1/orders/ord-1/payments", headers=api.bearer, json=body | {"last4": "42"})
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("last4")
    assert api.get("/v1/orders/nope/payments").status_code == 404
