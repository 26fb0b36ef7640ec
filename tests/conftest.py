"""Test fixtures: every database test runs on SQLite and on PostgreSQL, with the real migrations,
and HTTP tests talk to a real uvicorn server on a loopback port."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from parcours.app import create_app
from parcours.auth.service import create_source, create_token
from parcours.config import Settings
from parcours.console.web import SignInThrottle
from parcours.db.base import Base
from parcours.db.engine import Database
from parcours.db.migrate import upgrade
from parcours.identity import service as identity
from parcours.identity.kinds import KindRegistry
from parcours.inbox.outbound import Outbox

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_ADMIN_URL = os.environ.get(
    "PARCOURS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SEEDED_TABLES = ("identifier_kinds", "instance_settings", "identity_graph_version", "reference_version")


def _postgres_available() -> str | None:
    """None if PostgreSQL answers, else why not."""
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as error:
        return f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {type(error).__name__}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    database = Database(f"sqlite:///{path}")
    upgrade(database.engine)
    with database.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    database.dispose()
    return path


@pytest.fixture(scope="session")
def registry(sqlite_template: Path) -> KindRegistry:
    """The identifier kinds the migrations install, read as ingestion reads them (FR phone region)."""
    database = Database(f"sqlite:///{sqlite_template}")
    with database.read() as session:
        loaded = identity.load_registry(session, "FR")
    database.dispose()
    return loaded


@dataclass
class PostgresDatabase:
    url: str
    seed: dict[str, list[dict[str, Any]]]
    tables: list[str]


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[PostgresDatabase]:
    """A database of its own on the PostgreSQL server, migrated once, dropped at the end."""
    reason = _postgres_available()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI=true requires PostgreSQL: {reason}")
        pytest.skip(reason)
    name = f"parcours_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    upgrade(database.engine)
    with database.engine.connect() as conn:
        seed = {
            table: [dict(row._mapping) for row in conn.execute(Base.metadata.tables[table].select())]
            for table in SEEDED_TABLES
        }
    tables = [t for t in inspect(database.engine).get_table_names() if t != "alembic_version"]
    database.dispose()
    try:
        yield PostgresDatabase(url, seed, tables)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _reset_postgres(database: Database, pg: PostgresDatabase) -> None:
    with database.engine.begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(pg.tables) + " RESTART IDENTITY CASCADE"))
        for table, rows in pg.seed.items():
            if rows:
                conn.execute(Base.metadata.tables[table].insert(), rows)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database on the backend under test."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "parcours.db"
        shutil.copyfile(template, path)
        database = Database(f"sqlite:///{path}")
    else:
        pg: PostgresDatabase = request.getfixturevalue("postgres_database")
        database = Database(pg.url, pool_size=12)
        _reset_postgres(database, pg)
    with database.engine.connect() as conn:
        database.seed = {  # type: ignore[attr-defined]
            table: [dict(row._mapping) for row in conn.execute(Base.metadata.tables[table].select())]
            for table in SEEDED_TABLES
        }
    try:
        yield database
    finally:
        database.dispose()


def reset_database(database: Database) -> None:
    """Empty every table and put the migrations' seed rows back (for tests that need many fresh worlds)."""
    with database.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
        for table, rows in database.seed.items():  # type: ignore[attr-defined]
            if rows:
                conn.execute(Base.metadata.tables[table].insert(), rows)


@pytest.fixture
def settings(db: Database) -> Settings:
    return Settings(database_url=db.url)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """uvicorn in a thread on a loopback port; each test points its app at that test's database."""

    def __init__(self) -> None:
        self.app = create_app(Settings(database_url="sqlite://"), Database("sqlite://"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    server = LiveServer()
    server.start()
    yield server
    server.stop()


@dataclass
class Api:
    """An HTTP client on the live server plus credentials made in the test's database."""

    url: str
    db: Database
    settings: Settings
    client: httpx.Client
    token: str
    app: FastAPI

    def source(self, name: str, channel: str) -> str:
        with self.db.write() as session:
            _, write_key = create_source(session, name, channel)
        return write_key

    @staticmethod
    def basic(write_key: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def send(self, write_key: str, path: str, body: Any) -> httpx.Response:
        return self.client.post(path, json=body, headers=self.basic(write_key))

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params or None, headers=self.bearer)


@pytest.fixture
def api(live_server: LiveServer, db: Database, settings: Settings) -> Iterator[Api]:
    live_server.app.state.database = db
    live_server.app.state.settings = settings
    live_server.app.state.outbox = Outbox()  # each test registers the senders it needs
    live_server.app.state.sign_in_throttle = SignInThrottle()  # failed sign-ins of other tests forgotten
    with db.write() as session:
        token = create_token(session, "tests")
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        yield Api(live_server.url, db, settings, client, token, live_server.app)
