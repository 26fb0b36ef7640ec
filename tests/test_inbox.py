"""The inbox core: one conversation per customer across channels, replies on the chosen channel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from parcours.config import Settings
from parcours.db.engine import Database
from parcours.errors import InvalidInput
from parcours.identity.resolution import GraphCache
from parcours.inbox.agents import create_agent
from parcours.inbox.outbound import DeliveryFailed, Outgoing
from parcours.inbox.service import Inbound, read_conversation, receive, receive_batch
from tests.conftest import Api
from tests.helpers import ingest, make_source

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def known_customer(db: Database, settings: Settings) -> None:
    """Ana signed up on the web: user id, e-mail and mobile on one profile."""
    web = make_source(db, "web", "web")
    ingest(db, settings, web, [{"type": "identify", "messageId": "signup", "userId": "u-ana",
                                "timestamp": (T0 - timedelta(days=30)).isoformat(),
                                "traits": {"email": "ana@example.fr", "phone": "06 12 34 56 78",
                                           "firstName": "Ana"}}])  # fmt: skip


def inbound(channel: str, provider: str, pid: str, identifiers: list[tuple[str, str]], at: datetime,
            body: str = "Bonjour", **extra: Any) -> Inbound:  # fmt: skip
    return Inbound(channel, provider, pid, identifiers, body, sent_at=at, **extra)


def test_one_conversation_across_channels(db: Database, settings: Settings) -> None:
    known_customer(db, settings)
    with db.write() as session:
        first = receive(session, settings, inbound("email", "smtp", "<m1@mail.fr>", [("email", "Ana@Example.fr")],
                                                   T0, subject="Ma commande", email_message_id="<m1@mail.fr>"))  # fmt: skip
    with db.write() as session:
        second = receive(session, settings, inbound(
            "whatsapp", "twilio", "SM1", [("whatsapp", "whatsapp:+33612345678"), ("phone", "+33612345678")],
            T0 + timedelta(hours=1)))  # fmt: skip
    with db.write() as session:
        third = receive(session, settings, inbound("chat", "widget", "w-1", [("user_id", "u-ana")],
                                                   T0 + timedelta(hours=2)))  # fmt: skip
    assert first.new_conversation and not second.new_conversation and not third.new_conversation
    assert first.conversation_id == second.conversation_id == third.conversation_id
    assert first.profile_id == second.profile_id == third.profile_id
    with db.read() as session:
        thread = read_conversation(session, first.conversation_id)
    assert [m["channel"] for m in thread["messages"]] == ["email", "whatsapp", "chat"]
    assert thread["reply_channel"] == "chat"
    assert {i["kind"] for i in thread["customer"]["identifiers"]} >= {"email", "phone", "whatsapp", "user_id"}
    # The messages are on the customer's timeline too.
    assert {"email", "whatsapp", "chat"} <= {c["channel"] for c in thread["customer"]["channels"]}


def test_messages_written_together_keep_the_order_they_came_in(db: Database, settings: Settings) -> None:
    """A batch's messages go out in one multi-row INSERT: a thread sorts by time, then by that insert's
    order, so messages stamped at the same second still read in the order they arrived."""
    bodies = ["un", "deux", "trois", "quatre", "cinq", "six"]
    with db.write() as session:
        received = receive_batch(session, settings, [
            inbound("sms", "twilio", f"SM-order-{n}", [("phone", "+33612345678")], T0, body=body)
            for n, body in enumerate(bodies)])  # fmt: skip
    assert len({r.conversation_id for r in received}) == 1
    with db.read() as session:
        thread = read_conversation(session, received[0].conversation_id)
    assert [m["body"] for m in thread["messages"]] == bodies
    assert [m["id"] for m in thread["messages"]] == [r.message_id for r in received]


def test_a_replayed_provider_message_changes_nothing(db: Database, settings: Settings) -> None:
    with db.write() as session:
        first = receive(session, settings, inbound("sms", "twilio", "SM9", [("phone", "+33612345678")], T0))
    with db.write() as session:
        again = receive(session, settings, inbound("sms", "twilio", "SM9", [("phone", "+33612345678")], T0))
    assert again.duplicate and again.message_id == first.message_id
    with db.read() as session:
        assert len(read_conversation(session, first.conversation_id)["messages"]) == 1


def test_resolved_conversations_reopen_within_the_window_only(db: Database, settings: Settings) -> None:
    settings = settings.model_copy(update={"inbox_continuity_hours": 24})
    email = [("email", "bob@example.fr")]
    with db.write() as session:
        first = receive(session, settings, inbound("email", "smtp", "a", email, T0))
    from parcours.inbox.service import set_status

    with db.write() as session:
        set_status(session, first.conversation_id, "resolved", snoozed_until=None, now=T0)
    with db.write() as session:
        reopened = receive(session, settings, inbound("email", "smtp", "b", email, T0 + timedelta(hours=3)))
    assert reopened.conversation_id == first.conversation_id
    with db.read() as session:
        assert read_conversation(session, first.conversation_id)["status"] == "open"
    with db.write() as session:
        set_status(session, first.conversation_id, "resolved", snoozed_until=None, now=T0)
    with db.write() as session:
        later = receive(session, settings, inbound("email", "smtp", "c", email, T0 + timedelta(days=3)))
    assert later.new_conversation and later.conversation_id != first.conversation_id


def test_email_replies_thread_by_message_id(db: Database, settings: Settings) -> None:
    with db.write() as session:
        first = receive(session, settings, inbound("email", "smtp", "<a@x>", [("email", "c@example.fr")], T0,
                                                   email_message_id="<a@x>"))  # fmt: skip
    with db.write() as session:  # another sender answers in the same thread (a colleague in copy)
        reply = receive(session, settings, inbound("email", "smtp", "<b@x>", [("email", "d@example.fr")],
                                                   T0 + timedelta(days=10), in_reply_to=["<a@x>"]))  # fmt: skip
    assert reply.conversation_id == first.conversation_id


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"channel": "fax"}, "unknown channel"),
        ({"identifiers": []}, "no identifier"),
        ({"identifiers": [("fax", "123")]}, "unknown identifier kind 'fax'"),
        ({"provider_message_id": ""}, "provider message id"),
    ],
)
def test_bad_inbound_messages_are_refused(
    db: Database, settings: Settings, change: dict[str, Any], message: str
) -> None:
    base = inbound("email", "smtp", "x", [("email", "e@example.fr")], T0)
    for key, value in change.items():
        setattr(base, key, value)
    with pytest.raises(InvalidInput, match=message), db.write() as session:
        receive(session, settings, base)


# ------------------------------------------------------------------------------------------- agent API
class FakeSender:
    def __init__(self) -> None:
        self.sent: list[Outgoing] = []
        self.fail = False

    def send(self, outgoing: Outgoing) -> str:
        if self.fail:
            raise DeliveryFailed("provider answered 503")
        self.sent.append(outgoing)
        return f"prov-{len(self.sent)}"


@pytest.fixture
def fake_senders(api: Api) -> dict[str, FakeSender]:
    senders = {channel: FakeSender() for channel in ("email", "whatsapp", "sms")}
    for channel, sender in senders.items():
        api.app.state.outbox.register(channel, sender)
    return senders


def agent_token(api: Api, role: str = "agent", name: str = "Sonia") -> tuple[str, dict[str, str]]:
    with api.db.write() as session:
        agent, token = create_agent(session, name, role=role)
        return agent.id, {"Authorization": f"Bearer {token}"}


def test_agents_answer_on_the_channel_they_choose(api: Api, fake_senders: dict[str, FakeSender]) -> None:
    known_customer(api.db, api.settings)
    with api.db.write() as session:
        received = receive(session, api.settings, inbound(
            "whatsapp", "twilio", "SM1", [("whatsapp", "+33612345678"), ("phone", "+33612345678")], T0))  # fmt: skip
    _, headers = agent_token(api)
    assert api.client.get("/v1/inbox/conversations").status_code == 401
    assert api.client.get("/v1/inbox/conversations", headers=api.bearer).status_code == 401
    inbox = api.client.get("/v1/inbox/conversations", params={"status": "open"}, headers=headers).json()[
        "data"
    ]
    assert [c["id"] for c in inbox] == [received.conversation_id]

    url = f"/v1/inbox/conversations/{received.conversation_id}/messages"
    sent = api.client.post(url, json={"body": "Je regarde", "channel": "email"}, headers=headers)
    assert sent.status_code == 201 and sent.json()["delivery"] == "sent", sent.text
    (outgoing,) = fake_senders["email"].sent
    assert outgoing.to == "ana@example.fr" and outgoing.body == "Je regarde" and outgoing.email_message_id
    default = api.client.post(url, json={"body": "Et ici"}, headers=headers).json()
    assert default["channel"] == "whatsapp" and fake_senders["whatsapp"].sent[0].to == "+33612345678"
    note = api.client.post(url, json={"body": "client fidèle", "private": True}, headers=headers).json()
    assert note["direction"] == "note" and note["delivery"] == "note"

    fake_senders["sms"].fail = True
    failed = api.client.post(url, json={"body": "SMS", "channel": "sms"}, headers=headers).json()
    assert failed["delivery"] == "failed" and "503" in failed["error"]
    fake_senders["sms"].fail = False
    retried = api.client.post(f"/v1/inbox/messages/{failed['id']}/retry", headers=headers).json()
    assert retried["delivery"] == "sent"
    refused = api.client.post(url, json={"body": "?", "channel": "messenger"}, headers=headers)
    assert refused.status_code == 409 and "no address on messenger" in refused.json()["error"]["message"]

    thread = api.client.get(f"/v1/inbox/conversations/{received.conversation_id}", headers=headers).json()
    assert [m["channel"] for m in thread["messages"]] == ["whatsapp", "email", "whatsapp", "whatsapp", "sms"]
    assert thread["first_response_at"] and thread["status"] == "pending"
    assert thread["customer"]["id"] == received.profile_id


def test_assignment_and_status_follow_roles(api: Api) -> None:
    with api.db.write() as session:
        received = receive(
            session, api.settings, inbound("sms", "twilio", "S1", [("phone", "+33612345679")], T0)
        )
    agent_id, agent = agent_token(api, "agent", "Karim")
    boss_id, boss = agent_token(api, "supervisor", "Audrey")
    url = f"/v1/inbox/conversations/{received.conversation_id}"
    assert (
        api.client.patch(url, json={"assignee_id": agent_id}, headers=agent).json()["assignee_id"] == agent_id
    )
    assert api.client.patch(url, json={"assignee_id": boss_id}, headers=agent).status_code == 403
    assert api.client.patch(url, json={"assignee_id": boss_id}, headers=boss).json()["assignee_id"] == boss_id
    snooze = api.client.patch(url, json={"status": "snoozed"}, headers=agent)
    assert snooze.status_code == 400 and "snoozed_until" in snooze.text
    until = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    snoozed = api.client.patch(url, json={"status": "snoozed", "snoozed_until": until}, headers=agent).json()
    assert snoozed["status"] == "snoozed"
    bad = api.client.patch(url, json={"priority": "critical"}, headers=agent)
    assert bad.status_code == 400 and "priority" in bad.text
    assert api.client.patch(
        url, json={"priority": "high", "tags": ["Retour", "retour"]}, headers=agent
    ).json()["tags"] == ["retour"]


def test_a_message_from_an_address_the_rules_cannot_use_is_kept(db: Database, settings: Settings) -> None:
    with db.write() as session:
        received = receive(session, settings, inbound("sms", "twilio", "S-odd", [("phone", "+3369")], T0))
    with db.read() as session:
        thread = read_conversation(session, received.conversation_id)
    assert thread["messages"][0]["body"] == "Bonjour"
    assert [i["value"] for i in thread["customer"]["identifiers"]] == ["sms:phone:+3369"]


def test_the_writer_stores_concurrent_messages_in_batches_and_a_bad_one_fails_alone(
    db: Database, settings: Settings
) -> None:
    import threading

    from parcours.inbox.feed import FEED
    from parcours.inbox.writer import InboxWriter

    writer = InboxWriter(lambda: (db, settings), cache=GraphCache())
    seen: list[dict[str, Any]] = []
    token = FEED.subscribe(seen.append)
    results: dict[int, Any] = {}

    def send(n: int) -> None:
        identifiers = [("fax", "1")] if n == 7 else [("phone", f"+3361234{n:04d}")]
        try:
            results[n] = writer.submit(inbound("sms", "twilio", f"W{n}", identifiers, T0))
        except Exception as error:
            results[n] = error

    try:
        threads = [threading.Thread(target=send, args=(n,)) for n in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        FEED.unsubscribe(token)
    assert isinstance(results[7], InvalidInput)
    stored = {n: r for n, r in results.items() if n != 7}
    assert (
        all(not r.duplicate for r in stored.values())
        and len({r.conversation_id for r in stored.values()}) == 29
    )
    with db.read() as session:
        for r in stored.values():
            assert read_conversation(session, r.conversation_id)["messages"][0]["body"] == "Bonjour"
    received = [e for e in seen if e["type"] == "message_received"]
    assert len(received) == 29  # the refused message published nothing
    again = writer.submit(inbound("sms", "twilio", "W3", [("phone", "+33612340003")], T0))
    assert again.duplicate and again.message_id == stored[3].message_id
