"""Group commit for inbound messages: channel adapters hand their messages to one writer thread
(``parcours.db.group_commit``), which resolves their senders in one identity-resolution pass, stores them
in one transaction and commits once. The writer keeps the identity graph it touches in memory between
batches (``GraphCache``, the one the ingestion writer keeps too)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from parcours.config import Settings
from parcours.db.engine import Database
from parcours.db.group_commit import MAX_BATCH, GroupCommit
from parcours.identity.resolution import GraphCache
from parcours.inbox import feed
from parcours.inbox.service import Inbound, Received, receive_batch


class InboxWriter(GroupCommit[Inbound, Received]):
    """``submit`` (or ``submit_async``) blocks until the message is committed (or refused) and returns
    what ``receive`` gave."""

    thread_name = "parcours-inbox-writer"

    def __init__(
        self,
        context: Callable[[], tuple[Database, Settings]],
        *,
        cache: GraphCache | None,
        max_batch: int = MAX_BATCH,
    ) -> None:
        super().__init__(context, max_batch=max_batch)
        self.cache = cache

    def store_batch(self, session: Session, settings: Settings, items: list[Inbound]) -> list[Received]:
        return receive_batch(session, settings, items, cache=self.cache)

    def mark(self, session: Session) -> Any:
        return feed.mark(session)

    def undo(self, session: Session, mark: Any) -> None:
        feed.discard_since(session, mark)
        super().undo(session, mark)
