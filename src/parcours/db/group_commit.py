"""Group commit: callers hand their items to one writer thread, which stores whatever is waiting in one
write transaction and commits once for all of them, then answers every caller. Under load one commit
(and one batch of statements) serves many requests; a lone item waits for nothing.

A subclass says how to store a batch (``store_batch``: all of it, or raise). When a batch raises, its
transaction is rolled back and the items are stored one by one, each in a savepoint of a new
transaction, so that a bad item fails alone. Callers wait in a thread (``submit``) or on an event loop
(``submit_async``: no worker thread held, so many requests can wait together and share one commit).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

from parcours.config import Settings
from parcours.db.engine import Database, forget_memo

log = logging.getLogger("parcours.db")
Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_BATCH = 200
# Under load (the last batch held more than one item), the writer waits up to this long for more items
# before storing a batch: the callers just answered send their next request meanwhile, so batches hold
# about as many items as there are callers instead of alternating between halves (the commit_delay of
# databases). It stops waiting once the callers it just answered are back; a lone item, after a lone
# item, waits for nothing.
LINGER = 0.002


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    result: Result | None = None
    error: BaseException | None = None
    submitted: float = field(default_factory=time.monotonic)
    # A caller waiting in a thread: set once the item is done.
    done: threading.Event | None = None
    # A caller waiting on an event loop: ``finish`` is run on that loop once the item is done.
    loop: asyncio.AbstractEventLoop | None = None
    finish: Callable[[], None] | None = None


class GroupCommit(Generic[Item, Result]):
    """``submit`` blocks until the item is committed (or refused) and returns what ``store_batch`` gave
    for it; an exception raised for the item is raised to its caller."""

    thread_name = "parcours-group-commit"

    def __init__(
        self,
        context: Callable[[], tuple[Database, Settings]],
        *,
        max_batch: int = MAX_BATCH,
        linger: float = LINGER,
    ) -> None:
        self.context = context  # read per batch: the app's database and settings may be replaced (tests)
        self.max_batch = max_batch
        self.linger = linger
        self._queue: queue.Queue[_Pending[Item, Result]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------ what subclasses say
    def store_batch(self, session: Session, settings: Settings, items: list[Item]) -> list[Result]:
        """Store the items in the caller's transaction and return one result per item, in order; raise
        when any of them cannot be stored (the writer then stores them one by one)."""
        raise NotImplementedError

    def mark(self, session: Session) -> Any:
        """What to remember before a savepoint, for ``undo`` (nothing by default)."""
        return None

    def undo(self, session: Session, mark: Any) -> None:
        """Forget what the session kept about a savepoint that was rolled back."""
        forget_memo(session)

    # ------------------------------------------------------------------------------------------ callers
    def submit(self, item: Item, *, timeout: float = 60.0) -> Result:
        self._start()
        done = threading.Event()
        pending: _Pending[Item, Result] = _Pending(item, done=done)
        self._queue.put(pending)
        if not done.wait(timeout):
            raise TimeoutError(f"{self.thread_name}: the item was not stored in time")
        return self._answer(pending)

    async def submit_async(self, item: Item, *, timeout: float = 60.0) -> Result:
        self._start()
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()

        def finish() -> None:
            if not finished.done():
                finished.set_result(None)

        pending: _Pending[Item, Result] = _Pending(item, loop=loop, finish=finish)
        self._queue.put(pending)
        try:
            async with asyncio.timeout(timeout):  # lighter than wait_for, which wraps the future in a task
                await finished
        except TimeoutError:
            raise TimeoutError(f"{self.thread_name}: the item was not stored in time") from None
        return self._answer(pending)

    @staticmethod
    def _answer(pending: _Pending[Item, Result]) -> Result:
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    # ------------------------------------------------------------------------------------------- writer
    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        answered, answered_at = 0, 0.0  # how many callers the last batch answered, and when
        while True:
            batch = self._waiting([self._queue.get()])
            if answered > 1:
                # Under load, wait (up to ``linger``) for the callers just answered, who send their next
                # items meanwhile, on top of the items that were already waiting when they were answered
                # (callers that came during the last batch): two groups of callers become one batch
                # instead of taking turns.
                earlier = sum(1 for pending in batch if pending.submitted < answered_at)
                wanted = min(answered + earlier, self.max_batch)
                deadline = time.monotonic() + self.linger
                while len(batch) < wanted:
                    try:
                        batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                    except queue.Empty:
                        break
                batch = self._waiting(batch)
            answered_at = self._store(batch)
            answered = len(batch)

    def _waiting(self, batch: list[_Pending[Item, Result]]) -> list[_Pending[Item, Result]]:
        """The batch with the items waiting now added (up to ``max_batch``)."""
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _store(self, batch: list[_Pending[Item, Result]]) -> float:
        """Store the batch and answer its callers; returns when they were answered."""
        try:
            if not self._together(batch):
                self._one_by_one(batch)
        finally:
            answered_at = time.monotonic()
            # Callers on an event loop are answered by one wake-up of their loop for the whole batch.
            by_loop: dict[asyncio.AbstractEventLoop, list[Callable[[], None]]] = {}
            for pending in batch:
                if pending.done is not None:
                    pending.done.set()
                if pending.loop is not None and pending.finish is not None:
                    by_loop.setdefault(pending.loop, []).append(pending.finish)
            for loop, callbacks in by_loop.items():
                with suppress(RuntimeError):  # a closed loop: nobody waits there any more
                    loop.call_soon_threadsafe(_run_all, callbacks)
        return answered_at

    def _together(self, batch: list[_Pending[Item, Result]]) -> bool:
        """The whole batch in one transaction, no savepoint (two round trips fewer); False when it raised
        and there is more than one item to try alone (nothing of it was committed)."""
        database, settings = self.context()
        try:
            with database.write() as session:
                results = self.store_batch(session, settings, [pending.item for pending in batch])
        except Exception as error:
            if len(batch) > 1:
                return False
            batch[0].error, batch[0].result = error, None
            return True
        for pending, result in zip(batch, results, strict=True):
            pending.result = result
        return True

    def _one_by_one(self, batch: list[_Pending[Item, Result]]) -> None:
        """Each item in a savepoint of one transaction: a bad item fails alone."""
        database, settings = self.context()
        try:
            with database.write() as session:
                for pending in batch:
                    self._attempt(session, settings, pending)
        except Exception as error:  # the whole transaction failed: nothing of the batch was stored
            log.exception("%s: batch failed", self.thread_name)
            for pending in batch:
                if pending.error is None:
                    pending.error, pending.result = error, None

    def _attempt(self, session: Session, settings: Settings, pending: _Pending[Item, Result]) -> None:
        position = self.mark(session)
        try:
            with session.begin_nested():
                (pending.result,) = self.store_batch(session, settings, [pending.item])
        except Exception as error:
            self.undo(session, position)
            pending.error, pending.result = error, None


def _run_all(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        callback()
