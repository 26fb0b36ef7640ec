"""Group commit for inbound messages: channel adapters hand their messages to one writer thread, which
stores whatever is waiting in one transaction (a savepoint per message, so a bad message fails alone),
commits once and answers every adapter. Under load one commit serves many messages (the writer lingers
up to ``LINGER`` for more); a lone message waits for nothing. The writer keeps the identity graph it
touches in memory between batches (``GraphCache``), as ingestion does."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from parcours.config import Settings
from parcours.db.engine import Database, forget_memo
from parcours.identity.resolution import GraphCache
from parcours.inbox import feed
from parcours.inbox.service import Inbound, Received, receive, receive_batch

log = logging.getLogger("parcours.inbox")
MAX_BATCH = 200
# Under load (the last batch held more than one message), the writer waits up to this long for more
# messages before storing a batch: the requests being answered send their next message meanwhile, so
# batches hold about as many messages as there are senders instead of alternating between halves
# (the commit_delay of databases). A lone message, after a lone message, waits for nothing.
LINGER = 0.002


@dataclass
class _Pending:
    inbound: Inbound
    done: threading.Event = field(default_factory=threading.Event)
    result: Received | None = None
    error: BaseException | None = None
    # Called (from the writer thread) once done: wakes an asyncio caller.
    notify: Callable[[], None] | None = None


class InboxWriter:
    """``submit`` blocks until the message is committed (or refused) and returns what ``receive`` gave."""

    def __init__(
        self, context: Callable[[], tuple[Database, Settings]], *, max_batch: int = MAX_BATCH
    ) -> None:
        self.context = context  # read per batch: the app's database and settings may be replaced (tests)
        self.max_batch = max_batch
        self.cache = GraphCache()
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, inbound: Inbound, *, timeout: float = 60.0) -> Received:
        self._start()
        pending = _Pending(inbound)
        self._queue.put(pending)
        if not pending.done.wait(timeout):
            raise TimeoutError("the inbox writer did not store the message in time")
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    async def submit_async(self, inbound: Inbound, *, timeout: float = 60.0) -> Received:
        """``submit`` for an event loop: waits without holding a worker thread, so many webhook requests
        can wait together and share one commit."""
        self._start()
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()

        def finish() -> None:
            if not finished.done():
                finished.set_result(None)

        def wake() -> None:
            loop.call_soon_threadsafe(finish)

        pending = _Pending(inbound, notify=wake)
        self._queue.put(pending)
        await asyncio.wait_for(finished, timeout)
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="parcours-inbox-writer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        company = False  # whether the last batch held more than one message
        while True:
            batch = [self._queue.get()]
            deadline = time.monotonic() + (LINGER if company else 0.0)
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            company = len(batch) > 1
            self._store(batch)

    def _store(self, batch: list[_Pending]) -> None:
        try:
            database, settings = self.context()
            with database.write() as session:
                if len(batch) > 1 and self._store_together(session, settings, batch):
                    return
                for pending in batch:
                    position = feed.mark(session)
                    try:
                        with session.begin_nested():
                            pending.result = receive(session, settings, pending.inbound, cache=self.cache)
                    except Exception as error:  # this message alone is refused; the others go on
                        pending.error, pending.result = error, None
                        feed.discard_since(session, position)
                        forget_memo(session)
        except Exception as error:  # the whole transaction failed: nothing of the batch was stored
            log.exception("inbox batch failed")
            for pending in batch:
                if pending.error is None:
                    pending.error, pending.result = error, None
        finally:
            for pending in batch:
                pending.done.set()
                if pending.notify is not None:
                    pending.notify()

    def _store_together(self, session: Session, settings: Settings, batch: list[_Pending]) -> bool:
        """The fast way: the whole batch in one identity-resolution pass. False (and nothing written)
        when any message is refused: the caller then stores them one by one."""
        position = feed.mark(session)
        try:
            with session.begin_nested():
                results = receive_batch(session, settings, [p.inbound for p in batch], cache=self.cache)
        except Exception:
            feed.discard_since(session, position)
            forget_memo(session)
            return False
        for pending, result in zip(batch, results, strict=True):
            pending.result = result
        return True
