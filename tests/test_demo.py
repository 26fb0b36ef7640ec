"""The demo population: realistic journeys that the real pipeline links into unified profiles."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from parcours.cli import app
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.demo.generator import HISTORY_DAYS, PRODUCTS, STORES, populate
from parcours.identity import service as identity
from parcours.models import Event, Identifier

NOW = datetime(2025, 6, 15, 14, 30, tzinfo=UTC)


def test_population_links_channels_and_is_deterministic(
    db: Database, settings: Settings, sqlite_template: Path, tmp_path: Path
) -> None:
    info = populate(db, settings, customers=150, seed=3, now=NOW)

    assert info.customers == 150
    assert len([channel for channel, count in info.events_by_channel.items() if count]) >= 6
    assert info.events == sum(info.events_by_channel.values()) > 150 * 5
    assert info.conflicts == 0
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
        orders = list(session.scalars(select(Event.properties).where(Event.name == "Order Completed")))
        assert web_and_store, "no profile spans the web shop and a store"
        views = [identity.profile_view(session, profile_id) for profile_id in web_and_store]
        registry = identity.load_registry(session, settings.default_phone_region)
        assert info.example is not None
        by_phone = identity.find_profile_id(session, registry, "phone", info.example.phone)
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
