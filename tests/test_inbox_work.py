"""Routing, SLA with a controlled clock, macros, automation, CSAT, metrics and the agents' live feed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from websockets.sync.client import connect

from parcours.config import Settings
from parcours.db.engine import Database
from parcours.errors import InvalidInput, NotFound
from parcours.inbox import automation, routing, sla
from parcours.inbox.agents import (
    add_member,
    create_agent,
    create_team,
    get_agent,
    remove_member,
    set_assignment,
    update_agent,
)
from parcours.inbox.feed import FEED
from parcours.inbox.outbound import deliver_pending
from parcours.inbox.service import Inbound, read_conversation, receive
from parcours.models import Conversation
from tests.conftest import Api
from tests.helpers import ingest, make_source
from tests.test_inbox import FakeSender

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday


def message(pid: str, email: str, at: datetime, body: str = "Bonjour", channel: str = "email") -> Inbound:
    return Inbound(channel, "smtp", pid, [("email", email)], body, sent_at=at)


def customer(db: Database, settings: Settings, email: str, **traits: Any) -> None:
    web = make_source(db, f"web {email}", "web")
    ingest(db, settings, web, [{"type": "identify", "messageId": f"id-{email}", "userId": f"u-{email}",
                                "timestamp": (T0 - timedelta(days=5)).isoformat(),
                                "traits": {"email": email, **traits}}])  # fmt: skip


def agent(db: Database, name: str, **options: Any) -> str:
    with db.write() as session:
        made, _ = create_agent(session, name, **options)
        return made.id


def least_busy_team(db: Database, *agent_ids: str) -> None:
    """A least-busy team of these agents, which a rule gives every new conversation."""
    with db.write() as session:
        team = create_team(session, "Team", assignment="least_busy")
        for agent_id in agent_ids:
            add_member(session, team.id, agent_id)
        automation.create_rule(session, "team", "conversation_created", {}, {"assign_team": team.id})


def with_articles(
    db: Database, settings: Settings, *articles: tuple[str, str, str, str, list[str]]
) -> Settings:
    """The settings with the bot on, once these knowledge-base articles (slug, language, title, body,
    questions) are saved."""
    from parcours.inbox import bot

    with db.write() as session:
        for slug, language, title, body, questions in articles:
            bot.save_article(session, slug, language, title, body, questions)
    return settings.model_copy(update={"inbox_bot": True})


def conversation(db: Database, conversation_id: str) -> Conversation:
    with db.read() as session:
        found = session.get(Conversation, conversation_id)
        assert found is not None
        return found


# ------------------------------------------------------------------------------------------ routing
def test_routing_follows_language_skills_capacity_and_round_robin(db: Database, settings: Settings) -> None:
    customer(db, settings, "en@example.com", language="en-GB")
    sonia = agent(db, "Sonia", languages=["fr"], capacity={"*": 5})
    karim = agent(db, "Karim", languages=["fr", "en"], capacity={"*": 1})
    audrey = agent(db, "Audrey", languages=["fr", "en"], skills=["machines"], capacity={"*": 5})
    with db.write() as session:
        team = create_team(session, "Service client", assignment="round_robin")
        for member in (sonia, karim, audrey):
            add_member(session, team.id, member)
        automation.create_rule(
            session, "all to the team", "conversation_created", {}, {"assign_team": team.id}
        )
        automation.create_rule(session, "machines", "conversation_created", {"body_contains": ["machine"]},
                               {"add_tags": ["machines"]})  # fmt: skip
    with db.write() as session:  # English speaker: Karim or Audrey; round robin starts with either
        first = receive(session, settings, message("a", "en@example.com", T0))
    assert conversation(db, first.conversation_id).assignee_id in (karim, audrey)
    with db.write() as session:  # a machine question needs the skill: Audrey only
        machine = receive(session, settings, message("b", "fr@example.com", T0, "Ma machine fuit"))
    assert conversation(db, machine.conversation_id).assignee_id == audrey
    with db.write() as session:
        others = [receive(session, settings, message(f"c{i}", f"c{i}@example.com", T0)).conversation_id
                  for i in range(4)]  # fmt: skip
    assigned = [conversation(db, c).assignee_id for c in others]
    assert assigned.count(karim) <= 1  # his capacity is one conversation at a time
    assert set(assigned) <= {sonia, karim, audrey}
    # Sonia goes offline: her conversations go to the others.
    with db.write() as session:
        moved = routing.set_availability(session, sonia, False, T0)
    for conversation_id in moved:
        assert conversation(db, conversation_id).assignee_id != sonia


def test_least_busy_assignment(db: Database, settings: Settings) -> None:
    one, two = agent(db, "One"), agent(db, "Two")
    least_busy_team(db, one, two)
    with db.write() as session:
        for i in range(6):
            receive(session, settings, message(f"m{i}", f"p{i}@example.com", T0))
    with db.read() as session:
        assert [routing.load(session, a) for a in (one, two)] == [3, 3]


def test_teams_and_agents_are_changed_through_the_service_and_routing_follows(
    db: Database, settings: Settings
) -> None:
    one, two = agent(db, "One"), agent(db, "Two", languages=["fr"], skills=["machines"])
    with db.write() as session:
        team = create_team(session, "Team")
        add_member(session, team.id, one)
        add_member(session, team.id, two)
        automation.create_rule(session, "team", "conversation_created", {}, {"assign_team": team.id})
        assert set_assignment(session, team.id, "least_busy").assignment == "least_busy"
        with pytest.raises(InvalidInput, match="assignment"):
            set_assignment(session, team.id, "random")
        with pytest.raises(NotFound):
            set_assignment(session, "team_missing", "round_robin")
    with db.write() as session:  # only what is given changes; words are trimmed, lower-cased, sorted
        changed = update_agent(session, two, languages=[" FR", "en", "fr"], capacity={"*": 0, "phone": 1})
        assert (changed.languages, changed.skills, changed.capacity) == (
            ["en", "fr"],
            ["machines"],
            {"*": 0, "phone": 1},
        )
        assert update_agent(session, two, skills=[]).skills == []
        for bad, field in (
            ({"languages": []}, "languages"),
            ({"languages": ["x" * 41]}, "languages"),
            ({"capacity": {"fax": 1}}, "capacity"),
            ({"capacity": {"*": -1}}, "capacity"),
            ({"languages": ["de"], "skills": ["bikes"], "capacity": {"fax": 1}}, "capacity"),
        ):
            with pytest.raises(InvalidInput, match=field):
                update_agent(session, two, **bad)
        with pytest.raises(NotFound):
            update_agent(session, "agt_missing", skills=["x"])
    with db.read() as session:  # a refused change changed nothing, not even what it got right
        kept = get_agent(session, two)
        assert (kept.languages, kept.skills, kept.capacity) == (["en", "fr"], [], {"*": 0, "phone": 1})
    with db.write() as session:  # no capacity left: the team's conversations go to One
        for i in range(3):
            receive(session, settings, message(f"m{i}", f"p{i}@example.com", T0))
    with db.read() as session:
        assert [routing.load(session, a) for a in (one, two)] == [3, 0]
    with db.write() as session:
        update_agent(session, two, capacity={"*": 5})
        remove_member(session, team.id, one)
        with pytest.raises(NotFound, match="not a member"):
            remove_member(session, team.id, one)
    with db.write() as session:  # One left the team: the next ones go to Two
        for i in range(3, 5):
            receive(session, settings, message(f"m{i}", f"p{i}@example.com", T0))
    with db.read() as session:
        assert [routing.load(session, a) for a in (one, two)] == [3, 2]


# ----------------------------------------------------------------------------------------------- SLA
def test_sla_counts_business_hours_and_raises_warnings_then_breaches(
    db: Database, settings: Settings
) -> None:
    with db.write() as session:
        sla.set_calendar(session, {"timezone": "Europe/Paris", "hours": {d: ["09:00", "18:00"] for d in
                                   ("mon", "tue", "wed", "thu", "fri")}, "holidays": ["2026-03-03"]})  # fmt: skip
        sla.set_policy(session, "normal", first_response_minutes=120, next_response_minutes=60,
                       resolution_minutes=600, warn_at=0.5)  # fmt: skip
    friday_evening = datetime(2026, 3, 6, 16, 30, tzinfo=UTC)  # 17:30 in Paris: 30 minutes of business left
    with db.write() as session:
        received = receive(
            session, settings, message("s1", "sla@example.com", friday_evening), now=friday_evening
        )
    events: list[dict[str, Any]] = []
    token = FEED.subscribe(events.append)
    try:
        with db.write() as session:  # the weekend does not count
            assert sla.check(session, datetime(2026, 3, 8, 12, 0, tzinfo=UTC)) == []
        with db.write() as session:  # Monday 9:30 Paris: 60 of 120 minutes used -> warning
            raised = sla.check(session, datetime(2026, 3, 9, 8, 30, tzinfo=UTC))
        assert (received.conversation_id, "first_response", "sla_warning") in raised
        with db.write() as session:  # Monday 10:30 Paris: 120 minutes used -> breach
            raised = sla.check(session, datetime(2026, 3, 9, 9, 30, tzinfo=UTC))
        assert (received.conversation_id, "first_response", "sla_breached") in raised
    finally:
        FEED.unsubscribe(token)
    assert {"sla_warning", "sla_breached"} <= {e["type"] for e in events}
    calendar = sla.Calendar.from_json({"timezone": "Europe/Paris", "hours": {"mon": ["09:00", "18:00"]},
                                       "holidays": ["2026-03-09"]})  # fmt: skip
    # Monday 9 March is a holiday: two hours from Monday 2 March 17:00 end on Monday 16 March 10:00 Paris.
    assert calendar.add(datetime(2026, 3, 2, 16, 0, tzinfo=UTC), 120) == datetime(
        2026, 3, 16, 9, 0, tzinfo=UTC
    )
    invalid: list[tuple[dict[str, Any], str]] = [
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"hours": {"mon": ["18:00", "09:00"]}}, "closes before it opens"),
        ({"hours": {"xyz": ["09:00", "10:00"]}}, "unknown day"),
    ]
    for bad, error in invalid:
        with pytest.raises(InvalidInput, match=error):
            sla.Calendar.from_json(bad)


def test_an_answer_in_time_meets_the_target(db: Database, settings: Settings, api: Api) -> None:
    with api.db.write() as session:
        sla.set_policy(
            session, "normal", first_response_minutes=30, next_response_minutes=30, resolution_minutes=600
        )
    api.app.state.outbox.register("email", FakeSender())
    with api.db.write() as session:
        received = receive(session, api.settings, message("t1", "fast@example.com", datetime.now(UTC)))
    with api.db.write() as session:
        _, token = create_agent(session, "Quick")
    reply = api.client.post(f"/v1/inbox/conversations/{received.conversation_id}/messages",
                            json={"body": "Voilà"}, headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert reply.status_code == 201
    with api.db.write() as session:
        raised = sla.check(session, datetime.now(UTC) + timedelta(hours=2))
    assert (received.conversation_id, "first_response", "sla_breached") not in raised


# --------------------------------------------------------------------------------- macros, automation
def test_macros_fill_in_customer_and_order_and_apply_actions(api: Api) -> None:
    customer(api.db, api.settings, "ana@example.fr", firstName="Ana")
    web = make_source(api.db, "shop", "web")
    ingest(api.db, api.settings, web, [{"type": "track", "event": "Order Completed", "messageId": "o1",
                                        "userId": "u-ana@example.fr", "timestamp": T0.isoformat(),
                                        "properties": {"order_id": "CMD-100231", "total": 42.5,
                                                       "currency": "EUR"}}])  # fmt: skip
    sender = FakeSender()
    api.app.state.outbox.register("email", sender)
    with api.db.write() as session:
        received = receive(session, api.settings, message("q1", "ana@example.fr", T0, "Où est ma commande ?"))
        _, token = create_agent(session, "Sonia", role="supervisor")
    headers = {"Authorization": f"Bearer {token}"}
    bad = api.client.post(
        "/v1/inbox/macros", json={"name": "x", "body": "{{customer.shoe}}"}, headers=headers
    )
    assert bad.status_code == 400 and "unknown variable(s) customer.shoe" in bad.text
    macro = api.client.post("/v1/inbox/macros", headers=headers, json={
        "name": "suivi", "body": "Bonjour {{customer.first_name}}, votre commande {{last_order.order_id}} "
        "({{last_order.total}} {{last_order.currency}}) part demain. {{agent.name}}",
        "actions": {"add_tags": ["suivi"], "set_status": "resolved"}}).json()  # fmt: skip
    sent = api.client.post(f"/v1/inbox/conversations/{received.conversation_id}/macro",
                           json={"macro_id": macro["id"]}, headers=headers)  # fmt: skip
    assert sent.status_code == 201 and sent.json()["delivery"] == "sent"
    assert sender.sent[0].body == "Bonjour Ana, votre commande CMD-100231 (42.5 EUR) part demain. Sonia"
    with api.db.read() as session:
        thread = read_conversation(session, received.conversation_id)
    assert thread["tags"] == ["suivi"] and thread["status"] == "resolved"


def test_automation_rules_tag_prioritise_and_reply(db: Database, settings: Settings) -> None:
    with db.write() as session:
        macro = automation.create_macro(
            session, "accusé", "Bien reçu {{customer.first_name}}, nous revenons vers vous."
        )
        automation.create_rule(session, "urgent", "message_received", {"body_contains": ["urgent", "remboursement"]},
                               {"set_priority": "urgent", "add_tags": ["escalade"]})  # fmt: skip
        automation.create_rule(session, "accusé", "conversation_created", {"channel": ["email"]},
                               {"reply_macro": macro.id})  # fmt: skip
        with pytest.raises(InvalidInput, match="unknown condition"):
            automation.create_rule(
                session, "bad", "message_received", {"weather": ["sunny"]}, {"add_tags": ["x"]}
            )
        with pytest.raises(InvalidInput, match="event: must be one of"):
            automation.create_rule(session, "bad2", "order_shipped", {}, {"add_tags": ["x"]})
    customer(db, settings, "zoe@example.fr", firstName="Zoé")
    with db.write() as session:
        received = receive(session, settings, message("u1", "zoe@example.fr", T0, "C'est URGENT"))
    with db.read() as session:
        thread = read_conversation(session, received.conversation_id)
    assert thread["priority"] == "urgent" and thread["tags"] == ["escalade"]
    auto = [m for m in thread["messages"] if m["direction"] == "outbound"]
    assert (
        auto
        and auto[0]["body"] == "Bien reçu Zoé, nous revenons vers vous."
        and auto[0]["delivery"] == "queued"
    )
    from parcours.inbox.outbound import Outbox

    outbox, sender = Outbox(), FakeSender()
    outbox.register("email", sender)
    assert deliver_pending(db, outbox) == 1 and sender.sent[0].to == "zoe@example.fr"


# ---------------------------------------------------------------------------------------------- CSAT
def graph_token(db: Database) -> str:
    with db.read() as session:
        return str(session.scalar(text("SELECT token FROM identity_graph_version")))


def test_csat_is_asked_on_the_channel_and_stored_on_the_profile(api: Api) -> None:
    sender = FakeSender()
    api.app.state.outbox.register("sms", sender)
    with api.db.write() as session:
        received = receive(session, api.settings, Inbound("sms", "twilio", "S1", [("phone", "+33612345678")],
                                                          "Bonjour", sent_at=datetime.now(UTC)))  # fmt: skip
        _, token = create_agent(session, "Malik")
    headers = {"Authorization": f"Bearer {token}"}
    web = api.source("web", "web")
    assert api.send(web, "/v1/track", {"event": "Seen", "userId": "u-1"}).status_code == 200
    cache = api.app.state.graph_cache
    assert cache.token == graph_token(api.db)  # the server's writers keep the graph warm ...
    url = f"/v1/inbox/conversations/{received.conversation_id}"
    assert api.client.patch(url, json={"status": "resolved"}, headers=headers).json()["status"] == "resolved"
    assert "de 1 (pas satisfait) à 5" in sender.sent[-1].body and sender.sent[-1].to == "+33612345678"
    assert cache.token == graph_token(api.db)  # ... and so does the survey's event: nothing starts over
    with api.db.write() as session:
        receive(session, api.settings, Inbound("sms", "twilio", "S2", [("phone", "+33612345678")],
                                               "5 merci beaucoup !", sent_at=datetime.now(UTC)))  # fmt: skip
    thread = api.client.get(url, headers=headers).json()
    assert thread["status"] == "resolved"  # the score does not reopen it
    assert thread["customer"]["traits"]["csatScore"] == 5
    with api.db.write() as session:
        _, boss = create_agent(session, "Boss", role="supervisor")
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    figures = api.client.get("/v1/inbox/metrics", params={"since": since},
                             headers={"Authorization": f"Bearer {boss}"}).json()  # fmt: skip
    assert figures["by_channel"]["sms"]["csat"] == {"answers": 1, "average": 5.0}
    assert figures["all"]["resolved"] == 1
    assert api.client.get("/v1/inbox/metrics", params={"since": since}, headers=headers).status_code == 403


# ------------------------------------------------------------------------------------------ live feed
def test_the_assigned_agent_sees_new_messages_live(api: Api) -> None:
    with api.db.write() as session:
        made, token = create_agent(session, "Nadège")
    ws_url = api.url.replace("http", "ws") + "/v1/inbox/live"
    with connect(ws_url) as socket:
        socket.send(json.dumps({"token": "agt_wrong"}))
        assert json.loads(socket.recv(timeout=5))["type"] == "error"
    with connect(ws_url) as socket:
        socket.send(json.dumps({"token": token}))
        assert json.loads(socket.recv(timeout=5)) == {"type": "ready", "agent_id": made.id}
        with api.db.write() as session:
            received = receive(session, api.settings, message("live1", "live@example.fr", datetime.now(UTC)))
        item = json.loads(socket.recv(timeout=5))
        while item["type"] != "message_received":
            item = json.loads(socket.recv(timeout=5))
        assert item["conversation_id"] == received.conversation_id and item["agent_id"] == made.id


def test_an_agents_subscription_is_offered_only_that_agents_events() -> None:
    """The feed hands an agent's listener the events of that agent's conversations and nothing else;
    a listener of everything (a supervisor, the console) gets every event, in order."""
    mine: list[int] = []
    everything: list[int] = []
    agent_token = FEED.subscribe(lambda item: mine.append(item["n"]), agent_id="agt_feed_a")
    all_token = FEED.subscribe(lambda item: everything.append(item["n"]))
    try:
        FEED.publish([{"n": 1, "agent_id": "agt_feed_a"}, {"n": 2, "agent_id": "agt_feed_b"},
                      {"n": 3, "agent_id": None}, {"n": 4, "agent_id": "agt_feed_a"}])  # fmt: skip
    finally:
        FEED.unsubscribe(agent_token)
        FEED.unsubscribe(all_token)
    assert mine == [1, 4]
    assert everything == [1, 2, 3, 4]


# ----------------------------------------------------------------------------------------------- bot
def arrive(session: Any, settings: Settings, inbound: Inbound) -> Any:
    """Receive a message at the moment it was sent (the bot answers at that moment too)."""
    return receive(session, settings, inbound, now=inbound.sent_at)


def test_the_bot_answers_from_the_knowledge_base_and_hands_off(db: Database, settings: Settings) -> None:
    from parcours.inbox import bot

    settings = settings.model_copy(update={"inbox_bot": True})
    with db.write() as session:
        bot.save_article(session, "livraison", "fr", "Livraison", "La livraison est offerte dès 49 €, en 48 h.",
                         ["combien coûte la livraison", "délai de livraison", "frais de port"])  # fmt: skip
        bot.save_article(session, "delivery", "en", "Delivery", "Delivery is free from €49, within 48 hours.",
                         ["how much is delivery", "delivery time", "shipping cost"])  # fmt: skip
    human = agent(db, "Thibault")
    customer(db, settings, "fr@example.fr")
    with db.write() as session:
        first = arrive(
            session, settings, message("b1", "fr@example.fr", T0, "Bonjour, combien coûte la livraison ?")
        )
    with db.read() as session:
        thread = read_conversation(session, first.conversation_id)
    assert thread["messages"][-1]["body"].startswith("La livraison est offerte dès 49 €")
    assert thread["assignee_id"] is None and thread["first_response_at"] is None  # the bot is not an agent
    with db.write() as session:  # English, by its words
        english = arrive(
            session, settings, message("b2", "en@example.com", T0, "Hi, what is the delivery time?")
        )
    with db.read() as session:
        assert read_conversation(session, english.conversation_id)["messages"][-1]["body"].startswith(
            "Delivery is"
        )
    with db.write() as session:  # asked for a human: handed off, routed, the exchange stays in the thread
        arrive(session, settings, message("b3", "fr@example.fr", T0 + timedelta(minutes=2),
                                           "Je voudrais parler à un conseiller"))  # fmt: skip
    with db.read() as session:
        thread = read_conversation(session, first.conversation_id)
    assert "bot_handoff" in thread["tags"] and thread["assignee_id"] == human
    assert [m["direction"] for m in thread["messages"]] == ["inbound", "outbound", "inbound", "outbound"]
    assert "conseiller" in thread["messages"][-1]["body"]
    with db.write() as session:  # unsure: hands off too
        unsure = arrive(
            session, settings, message("b4", "q@example.fr", T0, "Ma machine fait un bruit bizarre")
        )
    with db.read() as session:
        assert "bot_handoff" in read_conversation(session, unsure.conversation_id)["tags"]


def test_a_deleted_article_is_no_longer_listed_nor_answered_from(db: Database, settings: Settings) -> None:
    from parcours.inbox import bot

    settings = with_articles(db, settings,
        ("livraison", "fr", "Livraison", "La livraison est offerte dès 49 €.", ["combien coûte la livraison"]),
        ("delivery", "en", "Delivery", "Delivery is free from €49.", ["how much is delivery"]),
    )  # fmt: skip
    with db.write() as session:
        assert bot.delete_article(session, "livraison", "fr").title == "Livraison"
        with pytest.raises(NotFound):
            bot.delete_article(session, "livraison", "fr")
        with pytest.raises(NotFound):  # the same slug in another language is another article
            bot.delete_article(session, "delivery", "fr")
    with db.read() as session:
        assert [(a["slug"], a["language"]) for a in bot.list_articles(session, None)] == [("delivery", "en")]
    agent(db, "Thibault")
    customer(db, settings, "fr@example.fr")
    with db.write() as session:
        asked = arrive(session, settings, message("d1", "fr@example.fr", T0, "Combien coûte la livraison ?"))
    with db.read() as session:
        thread = read_conversation(session, asked.conversation_id)
    assert "bot_handoff" in thread["tags"]  # nothing to answer from: a human takes over


def test_in_one_batch_each_bot_answer_follows_the_question_it_answers(
    db: Database, settings: Settings
) -> None:
    """The inbox writer stores several messages of one conversation in one transaction: the customer's
    messages are written together, and each bot reply must still come right after its question (same
    time: the order they were stored in decides)."""
    from parcours.inbox.service import receive_batch

    settings = with_articles(db, settings,
        ("livraison", "fr", "Livraison", "La livraison est offerte dès 49 €.", ["combien coûte la livraison"]),
        ("retours", "fr", "Retours", "Les retours sont gratuits sous 30 jours.", ["comment retourner un article"]),
    )  # fmt: skip
    customer(db, settings, "batch@example.fr")
    with db.write() as session:
        received = receive_batch(session, settings, [  # no sending time: both received now, as replies are
            Inbound("email", "smtp", "q1", [("email", "batch@example.fr")], "Combien coûte la livraison ?"),
            Inbound("email", "smtp", "q2", [("email", "batch@example.fr")], "Comment retourner un article ?"),
        ], now=T0)  # fmt: skip
    assert received[0].conversation_id == received[1].conversation_id
    with db.read() as session:
        thread = read_conversation(session, received[0].conversation_id)
    assert [(m["direction"], m["body"][:12]) for m in thread["messages"]] == [
        ("inbound", "Combien coût"), ("outbound", "La livraison"),
        ("inbound", "Comment reto"), ("outbound", "Les retours "),
    ]  # fmt: skip


def test_the_bot_tells_the_order_status_from_the_timeline(db: Database, settings: Settings) -> None:
    settings = settings.model_copy(update={"inbox_bot": True})
    customer(db, settings, "order@example.fr", language="fr")
    web = make_source(db, "shop", "web")
    ingest(db, settings, web, [
        {"type": "track", "event": "Order Completed", "messageId": "o1", "userId": "u-order@example.fr",
         "timestamp": T0.isoformat(), "properties": {"order_id": "CMD-7"}},
        {"type": "track", "event": "Order Shipped", "messageId": "o2", "userId": "u-order@example.fr",
         "timestamp": (T0 + timedelta(days=1)).isoformat(), "properties": {"order_id": "CMD-7"}},
    ])  # fmt: skip
    with db.write() as session:
        received = arrive(session, settings, message("o", "order@example.fr", T0 + timedelta(days=2),
                                                      "Où en est ma commande ?"))  # fmt: skip
    with db.read() as session:
        answer = read_conversation(session, received.conversation_id)["messages"][-1]["body"]
    assert answer.startswith("Votre commande CMD-7 du 03/03/2026 : elle a été expédiée.")


def test_replies_and_macros_reach_a_customer_whose_profile_was_merged_since(api: Api) -> None:
    """The conversation keeps the profile it was opened with; after that profile is merged into an older
    one, replies still find the customer's addresses and macros the customer's traits and orders."""
    from parcours.inbox.agents import AgentInfo
    from parcours.inbox.outbound import write_reply

    customer(api.db, api.settings, "lea@example.fr", firstName="Léa")  # the older profile (user_id + e-mail)
    with api.db.write() as session:  # a WhatsApp number not known yet: a profile of its own
        received = receive(session, api.settings, Inbound("whatsapp", "twilio", "W1",
                                                          [("whatsapp", "+33611223344")], "Bonjour", sent_at=T0))  # fmt: skip
        _, _token = create_agent(session, "Sonia")
    app = make_source(api.db, "app", "app")
    ingest(api.db, api.settings, app, [{"type": "identify", "messageId": "link", "userId": "u-lea@example.fr",
                                        "traits": {"whatsapp": "+33611223344"},
                                        "timestamp": (T0 + timedelta(minutes=1)).isoformat()}])  # fmt: skip
    with api.db.read() as session:
        opened_with = conversation(api.db, received.conversation_id).profile_id
        from parcours.identity.service import resolve_profile_id

        assert resolve_profile_id(session, opened_with) != opened_with  # merged away since
    agent = AgentInfo("agt_x", "Sonia", "agent")
    with api.db.write() as session:
        by_email = write_reply(session, api.settings, None, received.conversation_id, agent, "Bonjour",
                               channel="email", now=T0 + timedelta(minutes=2))  # fmt: skip
        values = automation.variables(session, conversation(api.db, received.conversation_id), agent)
    assert by_email.channel == "email" and values["customer.first_name"] == "Léa"


def test_a_change_of_assignee_is_an_event_on_the_live_feed(db: Database, settings: Settings) -> None:
    from sqlalchemy import select

    from parcours.inbox.service import update_conversation
    from parcours.models import InboxEvent

    customer(db, settings, "noe@example.fr")
    sonia = agent(db, "Sonia")
    with db.write() as session:
        received = receive(session, settings, message("n1", "noe@example.fr", T0))
    with db.write() as session:
        update_conversation(session, received.conversation_id, assignee_id=sonia, by=sonia, now=T0)
        update_conversation(
            session, received.conversation_id, assignee_id=sonia, now=T0
        )  # no change: no event
        update_conversation(session, received.conversation_id, unassign=True, now=T0)
    with db.read() as session:
        events = session.execute(
            select(InboxEvent.type, InboxEvent.agent_id)
            .where(InboxEvent.conversation_id == received.conversation_id, InboxEvent.type.like("%assigned"))
            .order_by(InboxEvent.seq)
        ).all()
    assert [tuple(e) for e in events] == [("assigned", sonia), ("unassigned", sonia)]


def test_least_busy_counts_the_conversations_assigned_earlier_in_the_same_batch(
    db: Database, settings: Settings
) -> None:
    """The inbox writer stores several messages in one transaction: routing must count the conversations
    it has just assigned there, written or not, or one agent gets them all."""
    from parcours.inbox.service import receive_batch

    one, two = agent(db, "One"), agent(db, "Two")
    least_busy_team(db, one, two)
    for index in range(6):
        customer(db, settings, f"batch{index}@example.fr")
    with db.write() as session:
        received = receive_batch(session, settings, [
            message(f"b{index}", f"batch{index}@example.fr", T0 + timedelta(seconds=index)) for index in range(6)
        ])  # fmt: skip
    assignees = [conversation(db, r.conversation_id).assignee_id for r in received]
    assert sorted(assignees.count(a) for a in (one, two)) == [3, 3], assignees


def test_in_a_batch_a_threaded_reply_reopens_its_conversation_and_routing_counts_it(
    db: Database, settings: Settings
) -> None:
    """The writer reads a batch's conversations as rows and writes them back at the end: an e-mail reply
    threads into its conversation and reopens it, and least-busy routing later in the same batch counts
    that conversation on its agent again (with ties going to the lower agent id, a miss would send the
    new customer to the same agent)."""
    from parcours.inbox.service import receive_batch, set_status

    first_agent, second_agent = sorted((agent(db, "One"), agent(db, "Two")))
    least_busy_team(db, first_agent, second_agent)
    with db.write() as session:
        original = receive(session, settings, Inbound("email", "smtp", "<a@x>", [("email", "c@example.fr")],
                                                      "Ma commande", sent_at=T0, email_message_id="<a@x>"))  # fmt: skip
    assert conversation(db, original.conversation_id).assignee_id == first_agent
    with db.write() as session:
        set_status(
            session, original.conversation_id, "resolved", snoozed_until=None, now=T0 + timedelta(minutes=5)
        )
    with db.read() as session:
        assert routing.load(session, first_agent) == 0
    reply_at = T0 + timedelta(days=3)  # past the continuity window: only threading finds the conversation
    with db.write() as session:
        reply, newcomer = receive_batch(session, settings, [
            Inbound("email", "smtp", "<b@x>", [("email", "colleague@example.fr")], "Toujours rien reçu",
                    sent_at=reply_at, in_reply_to=["<a@x>"]),
            message("<c@x>", "new@example.fr", reply_at + timedelta(seconds=1)),
        ])  # fmt: skip
    assert reply.conversation_id == original.conversation_id and not reply.new_conversation
    reopened = conversation(db, original.conversation_id)
    assert (reopened.status, reopened.resolved_at, reopened.last_message_at) == ("open", None, reply_at)
    assert reopened.assignee_id == first_agent
    assert newcomer.new_conversation
    assert conversation(db, newcomer.conversation_id).assignee_id == second_agent
    with db.read() as session:
        assert [routing.load(session, a) for a in (first_agent, second_agent)] == [1, 1]
        thread = read_conversation(session, original.conversation_id)
    assert [m["body"] for m in thread["messages"]] == ["Ma commande", "Toujours rien reçu"]
