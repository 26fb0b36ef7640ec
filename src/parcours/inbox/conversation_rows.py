"""The conversations a ``receive_batch`` call works on, read and written as table rows rather than through
the ORM session.

Each customer message finds, opens, reopens or assigns a conversation; loading those through the session
and flushing their changes was the largest part of the inbox writer's work (``bench/inbox.py``). Here a
conversation read from its row becomes a ``Conversation`` object the session does not track (``hold``),
and ``write`` stores what changed with plain statements: new conversations inserted, changed ones updated
(only the columns that changed, as the ORM would; the triggers keeping agents' loads fire the same way).

While they are held, every part of the inbox sees the same object for a conversation:
``service.get_conversation`` returns it (replies written by the bot or a rule change it), routing counts it
where it is now (``held_with_stored``), and any flush of the session writes the held conversations first
(rows the session writes, such as service-level clocks, refer to them). ``forget`` ends the holding once
they are written (or their transaction failed): afterwards the session reads the rows as usual. A
conversation the session already has (loaded and perhaps changed by the caller) is used as it is, and the
session writes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, RowMapping, event
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.orm.attributes import manager_of_class

from parcours.db.base import table_of
from parcours.db.bulk import BulkWriter
from parcours.models import Conversation

_HELD = "parcours_inbox_held_conversations"
TABLE = table_of(Conversation)
COLUMNS = tuple(column.name for column in TABLE.columns)
_KEY = ("id",)
_DOCUMENTS = frozenset(column.name for column in TABLE.columns if isinstance(column.type, JSON))
_CLASS = manager_of_class(Conversation)


@dataclass
class _Held:
    conversation: Conversation
    written: dict[str, Any] | None  # the row as stored, by column; None: not stored yet


def _held(session: Session) -> dict[str, _Held]:
    held: dict[str, _Held] = session.info.setdefault(_HELD, {})
    return held


def _values(conversation: Conversation) -> dict[str, Any]:
    return _copied({name: getattr(conversation, name) for name in COLUMNS})


def _copied(values: dict[str, Any]) -> dict[str, Any]:
    """The values with their documents copied: a list changed in place must differ from what was written."""
    for name in _DOCUMENTS:
        if isinstance(values[name], list | dict):
            values[name] = type(values[name])(values[name])
    return values


def _build(values: dict[str, Any]) -> Conversation:
    """A ``Conversation`` holding ``values`` (every column), made as the ORM makes the objects it loads:
    its attributes set without the change tracking of the constructor (1.3 µs instead of 20)."""
    conversation: Conversation = _CLASS.new_instance()
    conversation.__dict__.update(values)
    return conversation


def hold(session: Session, row: RowMapping) -> Conversation:
    """The conversation of a row read from the table (every column): the one already held or in the
    session, else a new untracked object, held until ``forget``."""
    held = _held(session)
    found = held.get(row["id"])
    if found is not None:
        return found.conversation
    tracked = session.identity_map.get(session.identity_key(Conversation, (row["id"],)))
    if isinstance(tracked, Conversation):
        return tracked
    values = {name: row[name] for name in COLUMNS}
    conversation = _build(values)
    held[conversation.id] = _Held(conversation, _copied(dict(values)))
    return conversation


def hold_new(session: Session, values: dict[str, Any]) -> Conversation:
    """A conversation this transaction opens (every column), held: ``write`` inserts it."""
    missing = set(COLUMNS) - set(values)
    if missing:
        raise ValueError(f"a new conversation needs every column; missing: {', '.join(sorted(missing))}")
    conversation = _build({name: values[name] for name in COLUMNS})
    _held(session)[conversation.id] = _Held(conversation, None)
    return conversation


def held(session: Session, conversation_id: str) -> Conversation | None:
    found = session.info.get(_HELD, {}).get(conversation_id)
    return None if found is None else found.conversation


def held_with_stored(session: Session) -> Iterator[tuple[Conversation, dict[str, Any] | None]]:
    """Each held conversation, with its row as stored, by column (None: not stored yet)."""
    for entry in session.info.get(_HELD, {}).values():
        yield entry.conversation, entry.written


def write(session: Session) -> None:
    """Store the held conversations' changes since they were read or last written."""
    held = session.info.get(_HELD)
    if not held:
        return
    inserts: list[dict[str, Any]] = []
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for entry in held.values():
        values = _values(entry.conversation)
        if entry.written is None:
            inserts.append(values)
        else:
            changed = tuple(name for name in COLUMNS if values[name] != entry.written[name])
            if changed:
                updates.setdefault(changed, []).append(values)
        entry.written = values
    if not inserts and not updates:
        return
    bulk = BulkWriter(session.connection())
    if inserts:
        bulk.insert(TABLE, COLUMNS, bulk.rows(TABLE, COLUMNS, inserts))
    for changed, rows in updates.items():
        bulk.update(TABLE, changed, _KEY, bulk.rows(TABLE, changed + _KEY, rows))


def forget(session: Session) -> None:
    """Stop holding the conversations, written or not: once they are written, or when their transaction
    failed (nothing is written then)."""
    session.info.pop(_HELD, None)


@event.listens_for(Session, "before_flush")
def _write_before_the_session(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    """The session's rows may refer to held conversations (a new one's service-level clocks)."""
    if session.info.get(_HELD):
        write(session)
