"""Reference data kept across transactions (``parcours.db.reference``): used again while no tracked table
changed, read again after any change — committed by this process, another connection or plain SQL — and
never kept from a load that raced a change or from a transaction that rolled back."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from parcours.auth.service import create_source, disable_source, source_for_write_key
from parcours.db.engine import Database
from parcours.db.reference import TRACKED, reference
from parcours.errors import NotAuthenticated
from parcours.identity.service import load_registry, update_kind
from parcours.inbox import automation, sla


def email_priority(session: Session) -> int:
    return int(
        session.execute(text("SELECT priority FROM identifier_kinds WHERE name = 'email'")).scalar_one()
    )


class Loads:
    """A loader that counts its calls and returns what it reads now."""

    def __init__(self, read: Callable[[Session], object]) -> None:
        self.read = read
        self.calls = 0

    def __call__(self, session: Session) -> object:
        def load() -> object:
            self.calls += 1
            return self.read(session)

        return reference(session, "test:email_priority", load)


@pytest.fixture
def loads() -> Loads:
    return Loads(email_priority)


def test_kept_across_transactions_while_nothing_changes(db: Database, loads: Loads) -> None:
    with db.read() as session:
        first = loads(session)
    for _ in range(3):
        with db.write() as session:
            assert loads(session) == first
        with db.read() as session:
            assert loads(session) == first
    assert loads.calls == 1


def test_a_committed_change_from_another_connection_is_seen(db: Database, loads: Loads) -> None:
    with db.read() as session:
        before = loads(session)
    with db.engine.begin() as conn:  # plain SQL, as an operator or another process would
        conn.execute(text("UPDATE identifier_kinds SET priority = priority + 100 WHERE name = 'email'"))
    with db.read() as session:
        assert loads(session) == before + 100  # type: ignore[operator]
    assert loads.calls == 2


def test_a_rolled_back_change_is_never_served(db: Database, loads: Loads) -> None:
    with db.read() as session:
        before = loads(session)
    with pytest.raises(RuntimeError), db.write() as session:
        session.execute(text("UPDATE identifier_kinds SET priority = priority + 100 WHERE name = 'email'"))
        assert loads(session) == before + 100  # type: ignore[operator]  # its own write, read afresh
        raise RuntimeError("roll back")
    for _ in range(2):
        with db.read() as session:
            assert loads(session) == before


def test_a_load_that_races_a_commit_is_not_kept(db: Database) -> None:
    """The value read before another writer committed is used by its own transaction only."""
    raced = {"done": False}

    def read_then_change(session: Session) -> object:
        value = email_priority(session)
        if not raced["done"]:
            raced["done"] = True
            with db.engine.begin() as conn:
                conn.execute(
                    text("UPDATE identifier_kinds SET priority = priority + 100 WHERE name = 'email'")
                )
        return value

    loads = Loads(read_then_change)
    with db.read() as session:
        first = loads(session)
    with db.read() as session:
        assert loads(session) == first + 100  # type: ignore[operator]
    assert loads.calls == 2


def test_without_the_token_row_nothing_is_kept(db: Database, loads: Loads) -> None:
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM reference_version"))
    for _ in range(2):
        with db.read() as session:
            loads(session)
    assert loads.calls == 2


def test_every_tracked_table_has_its_triggers(db: Database) -> None:
    """A migration that rebuilds a table on SQLite drops its triggers: this catches it."""
    assert set(TRACKED) <= set(inspect(db.engine).get_table_names())
    with db.engine.connect() as conn:
        if db.dialect == "postgresql":
            rows = conn.execute(
                text(
                    "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "WHERE t.tgname LIKE '%_reference_changed'"
                )
            )
            assert {row[0] for row in rows} == set(TRACKED)
        else:
            rows = conn.execute(text("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'"))
            found = {(table, name) for table, name in rows}
            for table in TRACKED:
                for verb in ("insert", "update", "delete"):
                    assert (table, f"{table}_reference_{verb}") in found


@pytest.mark.parametrize("verb", ["insert", "update", "delete"])
def test_each_kind_of_write_renews_the_token(db: Database, verb: str) -> None:
    statements = {
        "insert": "INSERT INTO instance_settings (key, value) VALUES ('test.token', 'x')",
        "update": "UPDATE instance_settings SET value = value WHERE key = 'secret'",
        "delete": "DELETE FROM instance_settings WHERE key = 'test.token'",
    }
    with db.engine.begin() as conn:
        if verb == "delete":
            conn.execute(text(statements["insert"]))
        before = conn.execute(text("SELECT token FROM reference_version")).scalar_one()
        conn.execute(text(statements[verb]))
        assert conn.execute(text("SELECT token FROM reference_version")).scalar_one() != before


def test_a_kind_changed_in_a_transaction_is_seen_by_it_and_the_next(db: Database) -> None:
    with db.write() as session:
        assert load_registry(session, "FR").rules["email"].max_per_profile == 5
        update_kind(session, "email", max_per_profile=7)
        assert load_registry(session, "FR").rules["email"].max_per_profile == 7
    with db.read() as session:
        assert load_registry(session, "FR").rules["email"].max_per_profile == 7


def test_a_disabled_write_key_stops_working_at_once(db: Database) -> None:
    with db.write() as session:
        source, key = create_source(session, "Web shop", "web")
    with db.read() as session:
        assert source_for_write_key(session, key).id == source.id
    with db.write() as session:
        disable_source(session, "Web shop")
    with db.read() as session, pytest.raises(NotAuthenticated):
        source_for_write_key(session, key)


def test_inbox_rules_and_sla_policies_follow_their_changes(db: Database) -> None:
    with db.read() as session:
        assert automation._rules(session) == {}
        assert "urgent" not in sla.policy_minutes(session)
    with db.write() as session:
        automation.create_rule(session, "tag refunds", "message_received", {}, {"add_tags": ["refund"]})
        sla.set_policy(
            session, "urgent", first_response_minutes=15, next_response_minutes=30, resolution_minutes=240
        )
    with db.read() as session:
        assert [rule.name for rule in automation._rules(session)["message_received"]] == ["tag refunds"]
        assert sla.policy_minutes(session)["urgent"][:3] == (15, 30, 240)
    with db.write() as session:
        assert sla.policy_minutes(session)["urgent"][0] == 15
        sla.set_policy(
            session, "urgent", first_response_minutes=20, next_response_minutes=30, resolution_minutes=240
        )
        session.flush()
        assert sla.policy_minutes(session)["urgent"][0] == 20  # its own change
    with db.read() as session:
        assert sla.policy_minutes(session)["urgent"][0] == 20


def test_a_round_robin_assignment_renews_nothing_but_a_membership_change_does(db: Database) -> None:
    from parcours.inbox.agents import add_member, create_agent, create_team

    with db.write() as session:
        team = create_team(session, "Service", assignment="round_robin")
        agent, _token = create_agent(session, "Ana", languages=["fr"])
        add_member(session, team.id, agent.id)

    def token() -> str:
        with db.engine.connect() as conn:
            return str(conn.execute(text("SELECT token FROM reference_version")).scalar_one())

    before = token()
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE team_members SET last_assigned_at = CURRENT_TIMESTAMP"))
    assert token() == before
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE team_members SET team_id = team_id"))
    assert token() != before
