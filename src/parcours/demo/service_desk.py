"""The demo's customer service: agents and a team, SLA policies and business hours, the knowledge base
(delivery, returns, loyalty, every store's opening hours), macros and rules, and the recent requests of
some customers on their channels — answered, resolved and rated or still waiting — so the inbox opens
with a realistic day's work. Replies are history: marked sent as if a provider had taken them."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update

from parcours.config import Settings
from parcours.db.engine import Database
from parcours.demo.catalogue import STORES
from parcours.demo.people import DemoCustomer
from parcours.inbox import automation, bot, csat, sla
from parcours.inbox.agents import AgentInfo, add_member, create_agent, create_team
from parcours.inbox.outbound import write_reply
from parcours.inbox.service import Inbound, receive, set_status
from parcours.models import Conversation, Message

AGENTS: tuple[tuple[str, str, list[str], list[str]], ...] = (  # name, role, languages, skills
    ("Sonia Martin", "supervisor", ["fr", "en"], ["machines"]),
    ("Karim Benali", "agent", ["fr"], ["machines"]),
    ("Audrey Leroy", "agent", ["fr", "en"], []),
    ("Thibault Moreau", "admin", ["fr", "en"], []),
)
HOLIDAYS = ("01-01", "04-06", "05-01", "05-08", "05-14", "05-25", "07-14", "08-15", "11-01", "11-11", "12-25")
REQUESTS = (  # (words, how an agent answers)
    ("Bonjour, ma commande n'est toujours pas arrivée, pouvez-vous vérifier ?",
     "Bonjour {first}, votre colis est chez le transporteur : livraison prévue demain."),
    ("Ma machine à café fuit par le bas depuis ce matin.",
     "Bonjour {first}, pouvez-vous nous envoyer une photo ? Nous organisons l'échange sous garantie."),
    ("Est-ce que je peux retourner un moulin acheté en magasin ?",
     "Bonjour {first}, oui : 30 jours, en magasin ou par colis avec l'étiquette de retour."),
    ("Mes points fidélité n'apparaissent pas sur ma carte.",
     "Bonjour {first}, c'est corrigé : vos points de mars sont crédités."),
    ("Quels sont vos horaires le dimanche ?",
     "Bonjour {first}, nos boutiques de centre-ville ouvrent le dimanche de 10 h à 13 h."),
    ("C'est urgent : j'ai été débité deux fois pour la même commande.",
     "Bonjour {first}, le double prélèvement est remboursé : vous le verrez sous 3 jours."),
)  # fmt: skip
KNOWLEDGE = (
    ("livraison", "fr", "Livraison", "La livraison est offerte dès 49 € d'achat ; en dessous, elle coûte 4,90 €. "
     "Colissimo livre en 48 h ouvrées, le retrait en magasin est gratuit et prêt en 2 h.",
     ["combien coûte la livraison", "délai de livraison", "frais de port", "quand serai-je livré"]),
    ("delivery", "en", "Delivery", "Delivery is free from €49; below that it costs €4.90. Colissimo delivers "
     "within 2 working days; click & collect in store is free and ready within 2 hours.",
     ["how much is delivery", "delivery time", "shipping cost", "when will I get my order"]),
    ("retours", "fr", "Retours", "Vous avez 30 jours pour retourner un article, en magasin ou par colis avec "
     "l'étiquette prépayée de votre espace client. Le remboursement arrive sous 5 jours.",
     ["comment retourner un article", "retour produit", "remboursement", "échanger un article"]),
    ("returns", "en", "Returns", "You have 30 days to return an item, in store or by post with the prepaid "
     "label from your account. The refund arrives within 5 days.",
     ["how do I return an item", "return policy", "refund", "exchange an item"]),
    ("fidelite", "fr", "Carte fidélité", "Chaque euro dépensé rapporte un point ; 100 points font un bon de "
     "5 €. La carte marche en magasin, sur le site et dans l'application.",
     ["carte fidélité", "mes points", "programme de fidélité", "bon d'achat fidélité"]),
)  # fmt: skip


@dataclass
class ServiceDesk:
    agent_token: str  # the supervisor's
    conversations: int
    waiting: int


def _store_hours() -> tuple[str, str]:
    french = "\n".join(f"{s.name} ({s.street}, {s.city}) : {s.opening_hours}." for s in STORES)
    return french, "\n".join(f"{s.name} ({s.street}, {s.city}): {s.opening_hours}." for s in STORES)


def seed_service_desk(
    database: Database, settings: Settings, population: list[DemoCustomer], end: datetime, seed: int
) -> ServiceDesk:
    rng = random.Random(f"parcours-demo-service:{seed}")
    with database.write() as session:
        team = create_team(session, "Service client", assignment="least_busy")
        agents: list[AgentInfo] = []
        token = ""
        for name, role, languages, skills in AGENTS:
            agent, secret = create_agent(session, name, role=role, languages=languages, skills=skills,
                                         email=f"{name.split()[0].lower()}@maison-arabica.fr")  # fmt: skip
            add_member(session, team.id, agent.id)
            agents.append(AgentInfo(agent.id, agent.name, agent.role))
            if role == "supervisor":
                token = secret
        sla.set_calendar(session, {
            "timezone": "Europe/Paris",
            "hours": {day: ["09:00", "19:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat")},
            "holidays": [f"{end.year}-{day}" for day in HOLIDAYS],
        })  # fmt: skip
        for priority, first, following, resolution in (("normal", 240, 480, 2880), ("high", 60, 120, 1440),
                                                       ("urgent", 30, 60, 480), ("low", 480, 960, 4320)):  # fmt: skip
            sla.set_policy(session, priority, first_response_minutes=first, next_response_minutes=following,
                           resolution_minutes=resolution)  # fmt: skip
        for slug, language, title, body, questions in KNOWLEDGE:
            bot.save_article(session, slug, language, title, body, questions)
        french_hours, english_hours = _store_hours()
        bot.save_article(session, "horaires", "fr", "Horaires des boutiques", french_hours,
                         ["horaires magasin", "heure d'ouverture", "êtes-vous ouverts le dimanche"])  # fmt: skip
        bot.save_article(session, "opening-hours", "en", "Store opening hours", english_hours,
                         ["store opening hours", "when are you open", "are you open on sunday"])  # fmt: skip
        automation.create_macro(session, "Suivi de commande",
                                "Bonjour {{customer.first_name}}, votre commande {{last_order.order_id}} est en "
                                "route. Bonne journée, {{agent.name}}", {"add_tags": ["suivi"]})  # fmt: skip
        automation.create_rule(session, "Tout au service client", "conversation_created", {},
                               {"assign_team": team.id})  # fmt: skip
        automation.create_rule(session, "Urgences", "message_received",
                               {"body_contains": ["urgent", "deux fois", "débité"]},
                               {"set_priority": "urgent", "add_tags": ["paiement"]})  # fmt: skip
        automation.create_rule(session, "Machines", "conversation_created", {"body_contains": ["machine"]},
                               {"add_tags": ["machines"]})  # fmt: skip

    chosen = rng.sample(population, min(len(population), 160))
    waiting = 0
    for number, customer in enumerate(chosen):
        words, answer = rng.choice(REQUESTS)
        channel, identifiers, address = rng.choice([
            ("email", [("email", customer.email)], customer.email),
            ("whatsapp", [("whatsapp", customer.mobile), ("phone", customer.mobile)], customer.mobile),
            ("sms", [("phone", customer.mobile)], customer.mobile),
        ])  # fmt: skip
        at = end - timedelta(days=rng.uniform(0.2, 9), minutes=rng.randint(0, 600))
        with database.write() as session:
            received = receive(session, settings, Inbound(
                channel, "demo", f"demo-{seed}-{number}", identifiers, words, sent_at=at, customer_address=address,
                subject="Ma demande" if channel == "email" else None), now=at)  # fmt: skip
            fate = rng.random()
            if fate < 0.2:  # still waiting for an answer
                waiting += 1
                continue
            responder = rng.choice(agents[:3])
            reply_at = at + timedelta(minutes=rng.randint(5, 300))
            message = write_reply(session, settings, None, received.conversation_id, responder,
                                  answer.format(first=customer.first_name), now=reply_at)  # fmt: skip
            session.execute(update(Message).where(Message.id == message.id).values(delivery="sent"))
            if fate < 0.75:
                set_status(session, received.conversation_id, "resolved", snoozed_until=None,
                           now=reply_at + timedelta(minutes=30))  # fmt: skip
        if 0.2 <= fate < 0.5:  # some rate the help on the same channel
            with database.write() as session:
                score = rng.choice((5, 5, 4, 4, 3, 2))
                conversation = session.get(Conversation, received.conversation_id)
                assert conversation is not None
                csat.ask(session, settings, conversation, reply_at + timedelta(minutes=31))
            with database.write() as session:
                receive(session, settings, Inbound(channel, "demo", f"demo-{seed}-{number}-csat", identifiers,
                                                   f"{score} merci", sent_at=reply_at + timedelta(hours=2),
                                                   customer_address=address),
                        now=reply_at + timedelta(hours=2))  # fmt: skip
    with database.write() as session:  # the questions went out (history)
        session.execute(update(Message).where(Message.delivery == "queued").values(delivery="sent"))
    return ServiceDesk(token, len(chosen), waiting)
