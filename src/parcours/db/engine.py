"""Engine and session factories for SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import orjson
from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

T = TypeVar("T")

# psycopg's prepare_threshold: runs of a statement before it is prepared unasked.
NEVER_BY_COUNT = 2**62


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine tuned for Parcours: WAL and immediate write transactions on SQLite."""
    if url.startswith("sqlite"):
        in_memory = make_url(url).database in (None, "", ":memory:")
        pool: dict[str, Any] = (
            {} if in_memory else {"pool_size": pool_size * 2, "max_overflow": pool_size * 2}
        )
        engine = create_engine(
            url,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            connect_args={"check_same_thread": False, "timeout": 30},
            **pool,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, decide when transactions begin.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA wal_autocheckpoint=10000")
            cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache per connection
            cursor.execute("PRAGMA mmap_size=268435456")
            cursor.execute("PRAGMA temp_store=MEMORY")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Writers take the write lock up front, so two writers never fail upgrading a read lock;
            # readers start a deferred transaction and never wait for writers (WAL).
            # On the driver's connection: SQLAlchemy's execution path costs more than SQLite takes (15 µs
            # of every unit of work). A failure (the write lock still busy after 30 s) is raised as
            # SQLAlchemy raises it elsewhere.
            begin = "BEGIN IMMEDIATE" if conn.get_execution_options().get("parcours_writer") else "BEGIN"
            try:
                conn.connection.driver_connection.execute(begin).close()
            except sqlite3.Error as error:
                raise DBAPIError.instance(begin, None, error, sqlite3.Error) from error

        return engine
    return create_engine(
        url,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        # psycopg prepares a statement after 5 runs by default and PostgreSQL may then pick a generic
        # plan; for "message_id IN (500 values)" that plan filters every event of the source (100x
        # slower). So nothing is prepared by count. What asks to be is prepared (None here would turn
        # that off too): the look-ups by key of ``parcours.db.driver``, and psycopg's executemany, whose
        # statements write one row by its key (ingestion's updates of identifiers and profiles): a
        # generic plan is the custom one for them, and PostgreSQL's CPU per ingested event fell by 28 %.
        connect_args={"prepare_threshold": NEVER_BY_COUNT},
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
    )


class Database:
    """One database: its engine and the two kinds of unit of work (write and read)."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.dialect = self.engine.dialect.name
        writer_bind = self.engine.execution_options(parcours_writer=True)
        self._writer = sessionmaker(bind=writer_bind, expire_on_commit=False, autoflush=False)
        # PostgreSQL reads run in autocommit: a transaction would add a BEGIN and a COMMIT round trip to
        # every read and give nothing, since under READ COMMITTED each statement takes its own snapshot
        # anyway. (SQLite readers keep their deferred transaction: one snapshot for the unit of work.)
        reader_bind = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.dialect == "postgresql"
            else self.engine
        )
        self._reader = sessionmaker(bind=reader_bind, expire_on_commit=False, autoflush=False)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work that writes: commit on success, roll back on any error."""
        with _unit_of_work(self._writer) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work; never blocks on writers."""
        with _unit_of_work(self._reader) as session:
            yield session

    async def short_read(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` in a read-only unit of work, for a request handler whose read is short and
        bounded (a profile's view, a page of its timeline). On SQLite it runs right here on the event
        loop: the statements take about a tenth of a millisecond, less than handing them to a worker
        thread and back costs (two thread wake-ups and GIL hand-overs: about 0.45 ms of CPU a request on
        2 cores). A read that turns out long (a profile of 50,000 events: its channels' summary takes
        40 ms) would stall every other request meanwhile: past ``LOOP_READ_BUDGET`` it is interrupted
        and done again in the thread pool. On PostgreSQL, whose every statement waits for a network
        round trip, it runs in the thread pool so that the loop serves other requests meanwhile."""
        if self.dialect == "sqlite":
            budget = _LoopBudget()
            try:
                return self._read_with(work, budget)
            except Exception:
                if not budget.spent:
                    raise
        return await run_in_threadpool(self._read_with, work)

    def _read_with(self, work: Callable[[Session], T], budget: _LoopBudget | None = None) -> T:
        with self.read() as session:
            if budget is None:
                return work(session)
            driver_connection = session.connection().connection.driver_connection
            assert driver_connection is not None
            driver_connection.set_progress_handler(budget.tick, _PROGRESS_STEP)
            try:
                return work(session)
            finally:
                driver_connection.set_progress_handler(None, _PROGRESS_STEP)

    def dispose(self) -> None:
        self.engine.dispose()


# SQLite virtual-machine instructions a short read may run on the event loop: about 2.5 ms of SQLite's
# work (it runs about 40 million a second here), 150 times a profile's view (300-700). Counted by
# SQLite's progress handler, called every ``_PROGRESS_STEP`` instructions.
LOOP_READ_BUDGET = 100_000
_PROGRESS_STEP = 1_000


class _LoopBudget:
    """The progress handler of a short read on the event loop: interrupts its statement (SQLite raises
    "interrupted") once the read has run ``LOOP_READ_BUDGET`` instructions, and says so."""

    def __init__(self) -> None:
        self.left = LOOP_READ_BUDGET // _PROGRESS_STEP
        self.spent = False

    def tick(self) -> int:
        self.left -= 1
        if self.left > 0:
            return 0
        self.spent = True
        return 1


@contextmanager
def _unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# The reference-data token this transaction read (``parcours.db.reference``): forgetting any value
# forgets it too, so data the transaction itself changed is read again, not taken from the process.
TOKEN_MEMO = "reference_token"


def memo(session: Session, key: str, load: Callable[[], T]) -> T:
    """``load()`` once per transaction: the value is kept on the session until it commits or rolls
    back. Reference data that rarely changes is kept across transactions: ``parcours.db.reference``."""
    cache: dict[str, Any] = session.info.setdefault("parcours_memo", {})
    if key not in cache:
        cache[key] = load()
    return cast(T, cache[key])


def forget_memo(session: Session, key: str | None = None) -> None:
    """Drop one remembered value (its data just changed in this transaction) with its variants
    (``key:…``), or all of them (after a savepoint rolled back: what was remembered inside it may be
    gone)."""
    if key is None:
        session.info.pop("parcours_memo", None)
    else:
        memos = session.info.get("parcours_memo", {})
        for name in [name for name in memos if name == key or name.startswith(key + ":")]:
            del memos[name]
        memos.pop(TOKEN_MEMO, None)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_memo(session: Session) -> None:
    if not session.in_nested_transaction():  # savepoints keep it: they only read reference data
        session.info.pop("parcours_memo", None)
