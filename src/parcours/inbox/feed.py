"""What happens to conversations, for the agents' live feed and the automation rules.

``record`` queues an event on the session; its ``InboxEvent`` row is written in the caller's
transaction just before it commits (``write``: one statement for all of them, with no ORM objects), and
once the transaction commits, the events are published to this process's ``FEED`` (live subscribers:
agents' WebSocket feeds, tests). A rolled-back transaction writes and publishes nothing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from parcours.db.base import table_of
from parcours.db.bulk import BulkWriter
from parcours.models import InboxEvent

Listener = Callable[[dict[str, Any]], None]
_PENDING = "parcours_inbox_feed"
_WRITTEN = "parcours_inbox_feed_written"  # how many of the pending events have their row written
_COLUMNS = ("conversation_id", "type", "agent_id", "data", "created_at")


class Feed:
    """Process-wide publish/subscribe of committed inbox events."""

    def __init__(self) -> None:
        self._listeners: dict[int, tuple[Listener, asyncio.AbstractEventLoop | None, str | None]] = {}
        self._next = 0
        self._lock = threading.Lock()

    def subscribe(
        self,
        listener: Listener,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        agent_id: str | None = None,
    ) -> int:
        """``listener`` gets each committed event, or with ``agent_id`` only the events of that agent's
        conversations (an agent's feed: the other agents' events are not even offered to it). With
        ``loop``, it is called on that loop's thread: a committed transaction wakes each loop once,
        whatever its number of events and of listeners there (every wake-up from another thread costs
        the loop a turn). Without, it is called in the committing thread and must be quick."""
        with self._lock:
            self._next += 1
            self._listeners[self._next] = (listener, loop, agent_id)
            return self._next

    def unsubscribe(self, token: int) -> None:
        with self._lock:
            self._listeners.pop(token, None)

    def publish(self, items: list[dict[str, Any]]) -> None:
        """The events of one committed transaction, in order, to their listeners."""
        if not items:
            return
        with self._lock:
            listeners = list(self._listeners.values())
        by_loop: dict[asyncio.AbstractEventLoop | None, _Listeners] = {}
        for listener, loop, agent_id in listeners:
            by_loop.setdefault(loop, _Listeners()).add(listener, agent_id)
        for loop, on_loop in by_loop.items():
            if loop is None:
                on_loop.deliver(items)
                continue
            with suppress(RuntimeError):  # a closed loop: its listeners are gone with it
                loop.call_soon_threadsafe(on_loop.deliver, items)


class _Listeners:
    """The listeners of one thread: those of every event, and those of each agent's."""

    def __init__(self) -> None:
        self.everything: list[Listener] = []
        self.by_agent: dict[str, list[Listener]] = {}

    def add(self, listener: Listener, agent_id: str | None) -> None:
        if agent_id is None:
            self.everything.append(listener)
        else:
            self.by_agent.setdefault(agent_id, []).append(listener)

    def deliver(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            for listener in self.everything:
                listener(item)
            for listener in self.by_agent.get(item.get("agent_id") or "", ()):
                listener(item)


FEED = Feed()


def record(
    session: Session,
    conversation_id: str,
    kind: str,
    now: datetime,
    *,
    agent_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Store an event of a conversation; it is published when the transaction commits."""
    session.info.setdefault(_PENDING, []).append(
        {
            "type": kind,
            "conversation_id": conversation_id,
            "agent_id": agent_id,
            "data": data or {},
            "at": now.isoformat(),
            "created_at": now,
        }
    )


def write(session: Session) -> None:
    """Write the rows of the events recorded since the last ``write`` (in the order recorded)."""
    pending = session.info.get(_PENDING, [])
    start = session.info.get(_WRITTEN, 0)
    if start >= len(pending):
        return
    bulk = BulkWriter(session.connection())
    table = table_of(InboxEvent)
    bulk.insert(table, _COLUMNS, bulk.rows(table, _COLUMNS, pending[start:]))
    session.info[_WRITTEN] = len(pending)


def mark(session: Session) -> int:
    """How many events are waiting on this session (see ``discard_since``)."""
    return len(session.info.get(_PENDING, []))


def discard_since(session: Session, position: int) -> None:
    """Forget the events recorded since ``mark`` gave ``position`` (their savepoint was rolled back,
    with any of their rows already written)."""
    del session.info.get(_PENDING, [])[position:]
    session.info[_WRITTEN] = min(session.info.get(_WRITTEN, 0), position)


@event.listens_for(Session, "before_commit")
def _write(session: Session) -> None:
    if not session.in_nested_transaction():
        write(session)


@event.listens_for(Session, "after_commit")
def _publish(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: the transaction has not committed yet
    session.info.pop(_WRITTEN, None)
    items = session.info.pop(_PENDING, [])
    for item in items:
        item.pop("created_at", None)  # the row's value; subscribers get "at"
    FEED.publish(items)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    if not session.in_nested_transaction():  # a savepoint's events are discarded by its owner
        session.info.pop(_PENDING, None)
        session.info.pop(_WRITTEN, None)
