"""Agents' loads: the ``agent_loads`` counters that triggers keep as conversations are written, and what
routing sees in a transaction that changed conversations without writing them yet."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text, update

from parcours.db.engine import Database
from parcours.inbox import routing
from parcours.inbox.agents import create_agent
from parcours.models import AgentLoad, Conversation
from tests.conftest import reset_database

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AGENTS = 3
CHANNELS = ("email", "sms", "chat")
STATUSES = ("open", "pending", "snoozed", "resolved")

assignees = st.one_of(st.none(), st.integers(0, AGENTS - 1))
operation = st.one_of(
    st.tuples(st.just("open"), assignees, st.sampled_from(STATUSES), st.sampled_from(CHANNELS)),
    st.tuples(st.just("assign"), st.integers(0, 50), assignees),
    st.tuples(st.just("status"), st.integers(0, 50), st.sampled_from(STATUSES)),
    st.tuples(st.just("channel"), st.integers(0, 50), st.sampled_from(CHANNELS)),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(st.just("sql_status"), st.integers(0, 50), st.sampled_from(STATUSES)),
    st.tuples(st.just("flush")),
    st.tuples(st.just("commit")),
)


def recount(session: Any) -> Counter[tuple[str, str]]:
    """The loads counted from the conversations themselves (what the counters must equal)."""
    rows = session.execute(
        select(Conversation.assignee_id, Conversation.last_inbound_channel).where(
            Conversation.assignee_id.is_not(None), Conversation.status.in_(routing.ACTIVE)
        )
    )
    return Counter((agent_id, channel) for agent_id, channel in rows)


def stored_counters(session: Any) -> Counter[tuple[str, str]]:
    rows = session.execute(select(AgentLoad.agent_id, AgentLoad.channel, AgentLoad.active))
    return Counter({(agent_id, channel): active for agent_id, channel, active in rows if active})


def expected_loads(
    places: dict[str, tuple[str | None, str, str]], agents: list[str], channel: str
) -> tuple[dict[str, int], dict[str, int]]:
    overall: Counter[str] = Counter()
    here: Counter[str] = Counter()
    for assignee, status, where in places.values():
        if assignee is not None and status in routing.ACTIVE:
            overall[assignee] += 1
            here[assignee] += where == channel
    return (
        {a: overall[a] for a in agents if overall[a]},
        {a: here[a] for a in agents if here[a]},
    )


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(operation, max_size=30))
def test_loads_follow_every_change_written_or_not(db: Database, operations: list[tuple[Any, ...]]) -> None:
    reset_database(db)
    with db.write() as session:
        agents = [create_agent(session, f"Agent {n}")[0].id for n in range(AGENTS)]
    # What each conversation is now, as the transactions see it: id -> (assignee, status, channel).
    places: dict[str, tuple[str | None, str, str]] = {}
    committed = dict(places)
    objects: dict[str, Conversation] = {}
    session = db._writer()
    try:
        for step, op in enumerate(operations):
            ids = sorted(places)
            kind = op[0]
            if kind == "open":
                _, who, status, channel = op
                conversation_id = f"cnv_{step:04d}"
                assignee = None if who is None else agents[who]
                objects[conversation_id] = Conversation(
                    id=conversation_id, profile_id="prf_x", status=status, snoozed_until=None,
                    assignee_id=assignee, team_id=None, priority="normal", tags=[], subject=None,
                    last_inbound_channel=channel, created_at=T0, last_message_at=T0, last_inbound_at=None,
                    first_response_at=None, resolved_at=None,
                )  # fmt: skip
                session.add(objects[conversation_id])
                places[conversation_id] = (assignee, status, channel)
            elif kind in ("assign", "status", "channel", "delete", "sql_status") and ids:
                conversation_id = ids[op[1] % len(ids)]
                assignee, status, channel = places[conversation_id]
                if kind == "sql_status":  # a writer that is not the ORM: flush first, as SQL would see it
                    session.flush()
                    session.execute(update(Conversation).where(Conversation.id == conversation_id)
                                    .values(status=op[2]).execution_options(synchronize_session="fetch"))  # fmt: skip
                    places[conversation_id] = (assignee, op[2], channel)
                    continue
                found = objects[conversation_id]
                if kind == "delete":
                    if found in session.new:
                        session.expunge(found)
                    else:
                        session.delete(found)
                    del places[conversation_id], objects[conversation_id]
                    continue
                if kind == "assign":
                    found.assignee_id = assignee = None if op[2] is None else agents[op[2]]
                elif kind == "status":
                    found.status = status = op[2]
                else:
                    found.last_inbound_channel = channel = op[2]
                places[conversation_id] = (assignee, status, channel)
            elif kind == "flush":
                session.flush()
            elif kind == "commit":
                session.commit()
                committed = dict(places)
            for channel in CHANNELS:
                assert routing._loads(session, agents, channel) == expected_loads(places, agents, channel), op
        session.rollback()  # what was not committed is undone, counters included
    finally:
        session.close()
    with db.read() as check:
        assert stored_counters(check) == recount(check)
        assert recount(check) == Counter(
            (assignee, channel)
            for assignee, status, channel in committed.values()
            if assignee is not None and status in routing.ACTIVE
        )


def test_counters_follow_plain_sql_and_start_from_the_conversations_already_there(db: Database) -> None:
    with db.write() as session:
        ana = create_agent(session, "Ana")[0].id
        bob = create_agent(session, "Bob")[0].id
    with db.engine.begin() as conn:
        rows = [(ana, "open", "sms"), (ana, "pending", "sms"), (ana, "resolved", "sms"), (bob, "open", "email"),
                (None, "open", "email")]  # fmt: skip
        for n, (assignee, status, channel) in enumerate(rows):
            conn.execute(
                text(
                    "INSERT INTO conversations (id, profile_id, status, assignee_id, priority, tags, "
                    "last_inbound_channel, created_at, last_message_at) VALUES (:id, 'prf_x', :status, "
                    ":assignee, 'normal', '[]', :channel, :at, :at)"
                ),
                {"id": f"cnv_{n}", "status": status, "assignee": assignee, "channel": channel, "at": T0},
            )
        conn.execute(text("UPDATE conversations SET assignee_id = :bob WHERE id = 'cnv_1'"), {"bob": bob})
        conn.execute(text("UPDATE conversations SET last_inbound_channel = 'chat' WHERE id = 'cnv_0'"))
        conn.execute(text("DELETE FROM conversations WHERE id = 'cnv_3'"))
    with db.read() as session:
        assert stored_counters(session) == Counter({(ana, "chat"): 1, (bob, "sms"): 1})
        assert stored_counters(session) == recount(session)
        assert routing.loads(session, [ana, bob]) == {ana: 1, bob: 1}
        assert routing.loads(session, [ana, bob], "sms") == {bob: 1}
