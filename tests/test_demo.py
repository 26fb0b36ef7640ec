"""The demo population: realistic journeys that the real pipeline links into unified profiles."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from parcours.auth import users
from parcours.cli import app
from parcours.commerce import loyalty
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.demo.catalogue import SOURCES
from parcours.demo.console_users import DEMO_LOGINS, DEMO_PASSWORD, login_for
from parcours.demo.generator import HISTORY_DAYS, PRODUCTS, STORES, populate
from parcours.demo.people import Registry, make_customer
from parcours.demo.service_desk import AGENTS
from parcours.identity import service as identity
from parcours.identity.unmerge import unmerge
from parcours.models import (
    Agent,
    Conversation,
    CsatSurvey,
    Event,
    Identifier,
    IdentityConflict,
    Location,
    LoyaltyEntry,
    MatchReview,
    Merge,
    Message,
    Order,
    Payment,
    Profile,
    Reservation,
    Return,
    SlaClock,
    Source,
    SourceActivity,
    StockLevel,
    User,
)

NOW = datetime(2025, 6, 15, 14, 30, tzinfo=UTC)
INBOX_CHANNELS = {"email", "sms", "whatsapp", "messenger", "instagram", "chat", "phone"}


def test_population_links_channels_and_is_deterministic(
    db: Database, settings: Settings, sqlite_template: Path, tmp_path: Path
) -> None:
    info = populate(db, settings, customers=150, seed=3, now=NOW)

    assert info.customers == 150
    assert len([channel for channel, count in info.events_by_channel.items() if count]) >= 6
    assert info.events == sum(info.events_by_channel.values()) > 150 * 5
    assert (
        0 < info.conflicts <= 8
    )  # only the households sharing a till (see test_demo_fills_every_console_screen)
    assert info.merges > 0
    assert info.profiles_created - info.merges == info.profiles  # every merge folds one profile away
    with db.read() as session:
        distinct_identifiers = session.scalar(select(func.count()).select_from(Identifier)) or 0
        first, last = session.execute(select(func.min(Event.timestamp), func.max(Event.timestamp))).one()
        web_and_store = list(
            session.scalars(
                select(Event.profile_id)
                .where(Event.channel.in_(("web", "store")))
                .group_by(Event.profile_id)
                .having(func.count(func.distinct(Event.channel)) == 2)
            )
        )
        generated = select(Source.id).where(Source.name.in_([name for _, name, _ in SOURCES]))
        orders = list(  # the history's orders, as the channels sent them (not the orders table's own events)
            session.scalars(
                select(Event.properties).where(
                    Event.name == "Order Completed", Event.source_id.in_(generated)
                )
            )
        )
        assert web_and_store, "no profile spans the web shop and a store"
        views = [identity.profile_view(session, profile_id) for profile_id in web_and_store]
        registry = identity.load_registry(session, settings.default_phone_region)
        assert info.example is not None
        by_phone = identity.find_profile_id(session, registry, "phone", info.example.phone)
        # The sources' activity counts what the demo's channels sent, as the tracking API would.
        counted = session.scalar(
            select(func.sum(SourceActivity.recorded)).where(SourceActivity.source_id.in_(generated))
        )
        stored = session.scalar(select(func.count()).select_from(Event).where(Event.source_id.in_(generated)))
    assert counted == stored and (stored or 0) > 0
    assert info.profiles < distinct_identifiers
    assert first >= NOW - timedelta(days=HISTORY_DAYS + 1) and last <= NOW

    # Research online, purchase offline: the browser's anonymous id and the till's loyalty card on one profile.
    kinds = [{i["kind"] for i in view["identifiers"]} for view in views]
    assert any({"anonymous_id", "loyalty_card", "email"} <= found for found in kinds)
    assert all({"web", "store"} <= {c["channel"] for c in view["channels"]} for view in views)
    assert by_phone == info.example.profile_id and "phone" in info.example.channels

    # Money is exact: strings with two decimals that add up.
    assert orders
    for order in orders:
        assert order["currency"] == "EUR"
        lines = sum(Decimal(p["price"]) * p["quantity"] for p in order["products"])
        expected = lines - Decimal(order["discount"]) + Decimal(order["shipping"])
        assert Decimal(order["total"]) == expected and order["total"] == f"{expected:.2f}"

    # The same seed gives the same population, on another database (and backend) too.
    path = tmp_path / "again.db"
    shutil.copyfile(sqlite_template, path)
    again = Database(f"sqlite:///{path}")
    try:
        second = populate(again, Settings(database_url=again.url), customers=150, seed=3, now=NOW)
    finally:
        again.dispose()
    assert second.counts() == info.counts()
    assert second.api_token != info.api_token  # secrets are never derived from the seed


def test_no_customer_has_the_same_first_and_last_name() -> None:
    rng, unique = random.Random(11), Registry()
    customers = [make_customer(index, rng, unique, 2026) for index in range(4000)]
    assert all(c.first_name != c.last_name for c in customers)
    assert any(c.last_name == "Olivier" for c in customers)  # a name that is also a first name stays


def test_demo_fills_every_console_screen(db: Database, settings: Settings) -> None:
    info = populate(db, settings, customers=150, seed=5, now=NOW)
    with db.write() as session:
        # A sign-in for every role, with the printed password; inbox roles answer as the inbox's agents.
        by_email = {user.email: user for user in session.scalars(select(User))}
        assert {login.role for login in info.logins} == set(users.ROLES)
        assert [(login.role, login.email) for login in info.logins] == [
            (d.role, d.email) for d in DEMO_LOGINS
        ]
        for login in info.logins:
            user = by_email[login.email]
            assert (user.role, user.name, user.locale) == (login.role, login.name, login.locale)
            _token, signed = users.sign_in(session, login.email, DEMO_PASSWORD, hours=1, now=NOW)
            assert signed.user.id == user.id
            agent = session.get(Agent, user.agent_id) if user.agent_id else None
            assert (agent.name if agent else None) == (
                login.name if login.role in users.INBOX_ROLES else None
            )
            location = session.get(Location, user.location_id) if user.location_id else None
            assert (location.kind if location else None) == (
                "store" if login.role == "store_associate" else None
            )
        # the same people as the inbox's agents: no second agent of the same name
        assert session.scalar(select(func.count()).select_from(Agent)) == len(AGENTS)
        stores = {
            by_email[login.email].location_id for login in info.logins if login.role == "store_associate"
        }
        assert len(stores) == 2
        demo_agent = by_email[login_for("agent").email].agent_id

        # The inbox: every channel; the agent's own, unassigned, snoozed, rated; service levels missed and due.
        inbound = set(
            session.scalars(select(Message.channel).where(Message.direction == "inbound").distinct())
        )
        assert inbound >= INBOX_CHANNELS
        assert set(info.conversations_by_channel) == INBOX_CHANNELS
        conversations = list(session.scalars(select(Conversation)))
        assert len(conversations) == info.conversations
        assert any(c.assignee_id == demo_agent and c.status in ("open", "pending") for c in conversations)
        unassigned = [c for c in conversations if c.assignee_id is None and c.status == "open"]
        assert unassigned and len(unassigned) <= info.unassigned
        snoozed = [c for c in conversations if c.status == "snoozed"]
        assert len(snoozed) == info.snoozed > 0 and all(
            c.snoozed_until and c.snoozed_until > NOW for c in snoozed
        )
        resolved = {c.id for c in conversations if c.status == "resolved"}
        scores = session.execute(select(CsatSurvey.conversation_id, CsatSurvey.score).where(CsatSurvey.score.is_not(None))).all()  # fmt: skip
        assert len(scores) == info.rated > 0
        assert all(
            conversation in resolved and score is not None and 1 <= score <= 5
            for conversation, score in scores
        )
        clocks = list(session.scalars(select(SlaClock).where(SlaClock.met_at.is_(None))))
        assert any(clock.state == "breached" and clock.due_at <= NOW for clock in clocks)
        assert any(clock.state in ("running", "warned") and clock.due_at > NOW for clock in clocks)
        continued = session.scalars(
            select(Message.conversation_id)
            .where(Message.direction == "inbound")
            .group_by(Message.conversation_id)
            .having(func.count(func.distinct(Message.channel)) > 1)
        ).all()
        assert continued, "no conversation continued on a second channel"

        # The shop: orders on several channels, endless aisle, payments, returns; pickups and stock in the
        # associates' stores; loyalty members with points.
        counted = session.execute(select(Order.channel, func.count()).group_by(Order.channel))
        by_channel = {channel: int(number) for channel, number in counted}
        assert set(by_channel) >= {"web", "app", "store", "phone", "instagram"}
        assert sum(by_channel.values()) >= info.orders > 100
        assert session.scalar(
            select(func.count()).select_from(Order).where(Order.ordering_location_id.is_not(None))
        )
        assert session.scalar(select(func.count()).select_from(Payment).where(Payment.kind == "refund"))
        assert session.scalar(select(func.count()).select_from(Return)) == info.returns > 0
        for store in stores:
            held = list(session.scalars(select(Reservation).where(Reservation.location_id == store,
                                                                  Reservation.status == "held")))  # fmt: skip
            assert held and all(reservation.expires_at > NOW for reservation in held)
            pickups = list(session.scalars(select(Order).where(Order.pickup_location_id == store,
                                                               Order.fulfilment == "click_collect",
                                                               Order.status == "placed")))  # fmt: skip
            assert any(order.ready_on and order.ready_on <= NOW for order in pickups), store
            on_shelf = select(func.count()).where(StockLevel.location_id == store, StockLevel.on_hand > StockLevel.reserved)  # fmt: skip
            assert (session.scalar(on_shelf) or 0) > 10
        member = session.scalar(select(LoyaltyEntry.profile_id).where(LoyaltyEntry.kind == "earn").limit(1))
        assert member is not None and loyalty.balance(session, member, NOW) > 0

        # Identity: pairs the matcher was unsure about, households' conflicts, merges that can be undone.
        pending = list(session.scalars(select(MatchReview).where(MatchReview.status == "pending")))
        assert len(pending) == info.match_reviews > 0
        for review in pending:
            pair = [session.get(Profile, review.profile_a), session.get(Profile, review.profile_b)]
            assert all(profile is not None and profile.merged_into_id is None for profile in pair)
            assert review.evidence
            assert settings.match_review_threshold <= review.probability < settings.match_auto_threshold
        conflicts = list(session.scalars(select(IdentityConflict).where(IdentityConflict.status == "open")))
        assert len(conflicts) == info.conflicts
        assert any(conflict.rule.startswith("limit user_id") for conflict in conflicts)
        merge = session.scalars(
            select(Merge)
            .join(Profile, Profile.id == Merge.survivor_id)
            .where(
                Merge.undone_at.is_(None), Merge.rule == "shared identifier", Profile.merged_into_id.is_(None)
            )
        ).first()
        assert merge is not None
        assert unmerge(session, merge.merged_id, merge.id).undone_at is not None


def test_demo_command_prints_credentials_and_examples(tmp_path: Path) -> None:
    database_file = tmp_path / "demo.db"
    result = CliRunner().invoke(
        app, ["demo", "--no-serve", "--customers", "50", "--database-file", str(database_file)]
    )
    assert result.exit_code == 0, result.output
    assert database_file.exists()
    out = result.output
    assert "Web shop write key  wk_" in out
    assert "API token           pat_" in out
    assert "curl -u wk_" in out and "/v1/identify" in out
    assert "http://127.0.0.1:8000/docs" in out
    assert f"{len(STORES)} stores, {len(PRODUCTS)} products" in out
    assert (
        f"Console             http://127.0.0.1:8000/console/   (every login's password: {DEMO_PASSWORD})"
        in out
    )
    for login in DEMO_LOGINS:
        assert f"{login.role:<16} {login.email}" in out
