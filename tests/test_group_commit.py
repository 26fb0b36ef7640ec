"""Group commit (``parcours.db.group_commit``): a batch in one transaction; when it raises, each item
alone, so that a bad item fails by itself and the others are stored; callers from threads and event
loops get their own item's result or error."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from parcours.config import Settings
from parcours.db.engine import Database
from parcours.db.group_commit import GroupCommit, _Pending
from tests.concurrency_helpers import at_once


class NameWriter(GroupCommit[str, str]):
    """Stores names in a table with a unique key; a name stored before fails (IntegrityError)."""

    def __init__(self, db: Database, *, linger: float = 0.002) -> None:
        super().__init__(lambda: (db, Settings(database_url=db.url)), linger=linger)
        self.batches: list[list[str]] = []

    def store_batch(self, session: Session, settings: Settings, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        for name in items:
            session.execute(text("INSERT INTO group_commit_names (name) VALUES (:name)"), {"name": name})
        return [name.upper() for name in items]


@pytest.fixture
def names(db: Database) -> Iterator[Database]:
    with db.write() as session:
        session.execute(text("CREATE TABLE group_commit_names (name VARCHAR(40) PRIMARY KEY)"))
        session.execute(text("INSERT INTO group_commit_names (name) VALUES ('taken')"))
    yield db
    with db.write() as session:
        session.execute(text("DROP TABLE group_commit_names"))


def stored(db: Database) -> list[str]:
    with db.read() as session:
        return sorted(session.scalars(text("SELECT name FROM group_commit_names")))


def test_a_batch_is_one_transaction_and_each_caller_gets_its_result(names: Database) -> None:
    writer = NameWriter(names)
    batch: list[_Pending[str, str]] = [
        _Pending(name, done=threading.Event()) for name in ("ana", "bruno", "chloé")
    ]
    writer._store(batch)
    assert [p.result for p in batch] == ["ANA", "BRUNO", "CHLOÉ"]
    assert all(p.done is not None and p.done.is_set() for p in batch)
    assert writer.batches == [["ana", "bruno", "chloé"]]
    assert stored(names) == ["ana", "bruno", "chloé", "taken"]


def test_a_bad_item_fails_alone_and_the_others_are_stored(names: Database) -> None:
    writer = NameWriter(names)
    batch: list[_Pending[str, str]] = [_Pending(name) for name in ("ana", "taken", "chloé")]
    writer._store(batch)
    assert writer.batches == [["ana", "taken", "chloé"], ["ana"], ["taken"], ["chloé"]]
    assert [p.result for p in batch] == ["ANA", None, "CHLOÉ"]
    assert isinstance(batch[1].error, IntegrityError)
    assert stored(names) == ["ana", "chloé", "taken"]


def test_callers_from_threads_and_from_an_event_loop(names: Database) -> None:
    writer = NameWriter(names)
    answers = at_once(12, lambda n: writer.submit(f"n{n}"))
    assert answers == [f"N{n}" for n in range(12)]
    with pytest.raises(IntegrityError):
        writer.submit("taken")

    async def from_a_loop() -> list[str]:
        return list(await asyncio.gather(*(writer.submit_async(f"a{n}") for n in range(5))))

    # On a loop of its own thread: the suite may leave one running in this thread (browser tests).
    answered: list[str] = []
    loop_thread = threading.Thread(target=lambda: answered.extend(asyncio.run(from_a_loop())))
    loop_thread.start()
    loop_thread.join()
    assert answered == [f"A{n}" for n in range(5)]
    assert len(stored(names)) == 1 + 12 + 5


def test_a_caller_that_waits_too_long_gets_a_timeout_and_the_writer_goes_on(names: Database) -> None:
    """A caller gives up after its timeout (in a thread or on a loop); the item is still stored once the
    writer gets to it, and the writer serves the next callers."""
    release = threading.Event()

    class SlowWriter(NameWriter):
        def store_batch(self, session: Session, settings: Settings, items: list[str]) -> list[str]:
            release.wait(10)
            return super().store_batch(session, settings, items)

    writer = SlowWriter(names)
    with pytest.raises(TimeoutError, match="not stored in time"):
        writer.submit("slow-thread", timeout=0.05)

    async def from_a_loop() -> None:
        await writer.submit_async("slow-loop", timeout=0.05)

    errors: list[BaseException] = []

    def run_loop() -> None:
        try:
            asyncio.run(from_a_loop())
        except BaseException as error:
            errors.append(error)

    loop_thread = threading.Thread(target=run_loop)
    loop_thread.start()
    loop_thread.join()
    assert len(errors) == 1 and isinstance(errors[0], TimeoutError), errors
    assert "not stored in time" in str(errors[0])
    release.set()
    assert writer.submit("after") == "AFTER"
    assert stored(names) == ["after", "slow-loop", "slow-thread", "taken"]


def test_under_load_the_writer_waits_for_as_many_items_as_it_last_answered_and_no_longer(
    names: Database,
) -> None:
    """After a batch of three, the writer waits for three items (the callers it answered come back), up to
    its linger, then stores them at once: it does not sit out the linger for items nobody will send."""
    writer = NameWriter(names, linger=30.0)
    first: list[_Pending[str, str]] = [_Pending(name, done=threading.Event()) for name in ("a1", "a2", "a3")]
    for pending in first:
        writer._queue.put(pending)  # all waiting before the writer starts: one batch of three
    writer._start()
    assert all(pending.done is not None and pending.done.wait(10) for pending in first)
    answers = at_once(3, lambda n: writer.submit(f"b{n}", timeout=10))  # a 30 s linger would time out
    assert answers == ["B0", "B1", "B2"]
    assert writer.batches[0] == ["a1", "a2", "a3"]
    assert sorted(name for batch in writer.batches[1:] for name in batch) == ["b0", "b1", "b2"]
    assert len(writer.batches) == 2, writer.batches  # the three came back and went in one batch


def test_callers_that_came_during_a_batch_wait_for_the_ones_it_answered(names: Database) -> None:
    """Two groups of callers: one being stored, the other arriving meanwhile. When the first is answered,
    the second waits (up to the linger) for the first to come back, and both go in one batch rather than
    taking turns in half-size batches."""
    gate = threading.Event()

    class GatedWriter(NameWriter):
        def store_batch(self, session: Session, settings: Settings, items: list[str]) -> list[str]:
            if items[0].startswith("a"):
                gate.wait(10)  # the first group is being stored while the second arrives
            return super().store_batch(session, settings, items)

    writer = GatedWriter(names, linger=30.0)
    first: list[_Pending[str, str]] = [_Pending(f"a{n}", done=threading.Event()) for n in range(3)]
    for pending in first:
        writer._queue.put(pending)
    writer._start()
    second: list[_Pending[str, str]] = [_Pending(f"b{n}", done=threading.Event()) for n in range(3)]
    while writer._queue.qsize():  # the writer has taken the first group
        time.sleep(0.01)
    for pending in second:
        writer._queue.put(pending)
    gate.set()
    assert all(pending.done is not None and pending.done.wait(10) for pending in first)
    answers = at_once(3, lambda n: writer.submit(f"a{n + 3}", timeout=10))  # the first group comes back
    assert answers == ["A3", "A4", "A5"]
    assert all(pending.done is not None and pending.done.wait(10) for pending in second)
    assert writer.batches[0] == ["a0", "a1", "a2"]
    assert len(writer.batches) == 2, writer.batches
    assert sorted(writer.batches[1]) == ["a3", "a4", "a5", "b0", "b1", "b2"]
