"""What happens to conversations, for the agents' live feed and the automation rules.

``record`` stores an ``InboxEvent`` in the caller's transaction and queues it on the session; once the
transaction commits, the events are published to this process's ``FEED`` (live subscribers: agents'
WebSocket feeds, tests). A rolled-back transaction publishes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from parcours.models import InboxEvent

Listener = Callable[[dict[str, Any]], None]
_PENDING = "parcours_inbox_feed"


class Feed:
    """Process-wide publish/subscribe of committed inbox events."""

    def __init__(self) -> None:
        self._listeners: dict[int, Listener] = {}
        self._next = 0
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> int:
        with self._lock:
            self._next += 1
            self._listeners[self._next] = listener
            return self._next

    def unsubscribe(self, token: int) -> None:
        with self._lock:
            self._listeners.pop(token, None)

    def publish(self, item: dict[str, Any]) -> None:
        with self._lock:
            listeners = list(self._listeners.values())
        for listener in listeners:
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
    session.add(
        InboxEvent(
            conversation_id=conversation_id, type=kind, agent_id=agent_id, data=data or {}, created_at=now
        )
    )
    session.info.setdefault(_PENDING, []).append(
        {
            "type": kind,
            "conversation_id": conversation_id,
            "agent_id": agent_id,
            "data": data or {},
            "at": now.isoformat(),
        }
    )


def mark(session: Session) -> int:
    """How many events are waiting on this session (see ``discard_since``)."""
    return len(session.info.get(_PENDING, []))


def discard_since(session: Session, position: int) -> None:
    """Forget the events recorded since ``mark`` gave ``position`` (their savepoint was rolled back)."""
    del session.info.get(_PENDING, [])[position:]


@event.listens_for(Session, "after_commit")
def _publish(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: the transaction has not committed yet
    for item in session.info.pop(_PENDING, []):
        FEED.publish(item)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    if not session.in_nested_transaction():  # a savepoint's events are discarded by its owner
        session.info.pop(_PENDING, None)
