"""Reference data kept across transactions: identifier kinds, sources, automation rules, SLA policies,
installation settings. Nearly every unit of work reads some of them and they change rarely, so a value
loaded once is kept by the process and used again while the database says nothing changed.

What says so is ``reference_version``, one row holding a random token. Triggers on each tracked table
(``TRACKED``, created by migration 0012) give it a new token whenever a row of that table is inserted,
updated or deleted, in the writer's own transaction: a change by another process, the CLI, or SQL typed
by hand is seen like one made here. A unit of work reads the token once (then ``memo`` keeps it), and a
value is used again only if it was loaded under that same token. A value is kept only when the token read
before its load and after it are equal, so a load that raced another writer's commit is used by its own
transaction and never kept. Tokens are random: a rolled-back change's token never comes back, so a value
kept under it is never served.

A transaction that writes reference data must ``forget_memo`` what it changed (as it did before this
cache): that also forgets the token, so its next read sees the change. Flushing ORM objects of a tracked
table forgets the token too, so the transaction's next look-up of any other key sees its own writes.

On SQLite, a migration that rebuilds a tracked table (``batch_alter_table``) drops its triggers: it must
run ``trigger_statements`` for it again (``tests/test_reference.py`` checks every tracked table has them).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from itertools import chain
from typing import Any, TypeVar, cast

from sqlalchemy import event, text
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.pool import Pool

from parcours.db.driver import DriverQuery
from parcours.db.engine import TOKEN_MEMO, memo

T = TypeVar("T")

# The tables whose rows are reference data. Not tombstones: erasure writes them while holding the
# identity graph's lock, and on PostgreSQL the token's row lock must always be taken before that one.
TRACKED = (
    "identifier_kinds",
    "instance_settings",
    "sources",
    "automation_rules",
    "sla_policies",
    "agents",
    "teams",
    "team_members",
)
# Tables of which only some columns are reference data: an update of the others renews nothing (a team
# member's last assignment changes with every round-robin assignment).
TRACKED_COLUMNS: dict[str, tuple[str, ...]] = {"team_members": ("team_id", "agent_id")}

_READ_TOKEN = DriverQuery(text("SELECT token FROM reference_version WHERE id = 1"))
# Per database (its connection pool, which the engine's reader and writer variants share): memo key ->
# (token it was loaded under, value).
_KEPT: weakref.WeakKeyDictionary[Pool, dict[str, tuple[str, Any]]] = weakref.WeakKeyDictionary()


def trigger_statements(
    dialect: str, tables: tuple[str, ...], columns: dict[str, tuple[str, ...]] | None = None
) -> list[str]:
    """The DDL that gives ``reference_version`` a new token on every change to one of ``tables`` (for a
    table in ``columns``, on an update only when one of those columns is set)."""
    columns = columns or {}

    def updated(table: str) -> str:
        return f"UPDATE OF {', '.join(columns[table])}" if table in columns else "UPDATE"

    if dialect == "postgresql":
        statements = [
            "CREATE OR REPLACE FUNCTION parcours_reference_changed() RETURNS trigger AS $$ BEGIN "
            "UPDATE reference_version SET token = md5(random()::text || clock_timestamp()::text) "
            "WHERE id = 1; RETURN NULL; END $$ LANGUAGE plpgsql"
        ]
        for table in tables:
            statements.append(f"DROP TRIGGER IF EXISTS {table}_reference_changed ON {table}")
            statements.append(
                f"CREATE TRIGGER {table}_reference_changed AFTER INSERT OR {updated(table)} OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION parcours_reference_changed()"
            )
        return statements
    statements = []
    for table in tables:
        for verb in ("INSERT", "UPDATE", "DELETE"):
            name = f"{table}_reference_{verb.lower()}"
            statements.append(f"DROP TRIGGER IF EXISTS {name}")
            event = updated(table) if verb == "UPDATE" else verb
            statements.append(
                f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN "
                "UPDATE reference_version SET token = lower(hex(randomblob(16))) WHERE id = 1; END"
            )
    return statements


def drop_trigger_statements(dialect: str, tables: tuple[str, ...]) -> list[str]:
    """The DDL that removes what ``trigger_statements`` made for ``tables`` (the PostgreSQL function stays:
    other tables' triggers may use it)."""
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {table}_reference_changed ON {table}" for table in tables]
    return [
        f"DROP TRIGGER IF EXISTS {table}_reference_{verb}"
        for table in tables
        for verb in ("insert", "update", "delete")
    ]


def _token(session: Session) -> str | None:
    """The token as this transaction sees it now (None if the row is missing: nothing is kept). Read on
    the driver's cursor: every unit of work reads it at least once."""
    rows = _READ_TOKEN.rows(session)
    return None if not rows or rows[0][0] is None else str(rows[0][0])


def reference(session: Session, key: str, load: Callable[[], T]) -> T:
    """``load()``'s value, read at most once per transaction and kept by the process for the next
    transactions while no tracked table changes. The value is shared between threads: never mutate it."""
    memos: dict[str, Any] = session.info.setdefault("parcours_memo", {})
    if key in memos:
        return cast(T, memos[key])
    token = memo(session, TOKEN_MEMO, lambda: _token(session))
    kept = _KEPT.setdefault(session.get_bind().engine.pool, {})
    found = kept.get(key)
    if token is not None and found is not None and found[0] == token:
        memos[key] = found[1]
        return cast(T, found[1])
    value = load()
    after = _token(session)
    memos[TOKEN_MEMO] = after
    if after is not None and after == token:
        kept[key] = (after, value)
    memos[key] = value
    return value


@event.listens_for(Session, "after_flush")
def _forget_token_after_tracked_writes(session: Session, _flush: UOWTransaction) -> None:
    """The triggers gave this transaction a new token: read it again at the next look-up."""
    for instance in chain(session.new, session.dirty, session.deleted):
        if getattr(instance, "__tablename__", None) in TRACKED:
            session.info.get("parcours_memo", {}).pop(TOKEN_MEMO, None)
            return
