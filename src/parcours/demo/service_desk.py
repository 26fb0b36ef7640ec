"""The demo's customer service: agents and two teams, SLA policies and business hours, the knowledge base
(delivery, returns, loyalty, every store's opening hours), macros and rules, and the recent requests of
some customers on every messaging channel (e-mail, SMS, WhatsApp, Messenger, Instagram, web chat, phone
calls) so the inbox opens with a realistic day's work: answered and resolved (some rated), waiting for the
customer, snoozed until the carrier answers, continued on another channel, and today's new requests
whose service-level targets are running — or already missed. Replies are history: marked sent as if a
provider had taken them.

Audrey Leroy, who answers the social networks, is off today: her conversations went to her colleagues,
and the Instagram and Messenger messages wait unassigned in the social team's queue."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from parcours.config import Settings
from parcours.db.engine import Database
from parcours.demo.catalogue import STORES
from parcours.demo.console_users import staff_email
from parcours.demo.helpers import weighted
from parcours.demo.people import DemoCustomer
from parcours.inbox import automation, bot, csat, routing, sla
from parcours.inbox.agents import AgentInfo, add_member, create_agent, create_team
from parcours.inbox.outbound import write_reply
from parcours.inbox.service import Inbound, receive, set_status
from parcours.models import Conversation, Message, SlaClock

AGENTS: tuple[tuple[str, str, list[str], list[str]], ...] = (  # name, role, languages, skills
    ("Sonia Martin", "supervisor", ["fr", "en"], ["machines"]),
    ("Karim Benali", "agent", ["fr"], ["machines"]),
    ("Audrey Leroy", "agent", ["fr", "en"], []),
    ("Thibault Moreau", "admin", ["fr", "en"], []),
)
SOCIAL_AGENT = "Audrey Leroy"  # answers Instagram and Messenger; off today
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
    ("Le coffret découverte est-il disponible en boutique à {city} ?",
     "Bonjour {first}, oui, il en reste en boutique : voulez-vous que nous le réservions à votre nom ?"),
    ("Je voudrais changer l'adresse de livraison de ma commande.",
     "Bonjour {first}, c'est fait : la nouvelle adresse est enregistrée sur votre commande."),
)  # fmt: skip
FOLLOW_UPS = (  # the customer writes again, on another channel, about the same request
    "Je vous écris ici, c'est plus simple : avez-vous du nouveau ?",
    "Merci ! Et je peux passer le récupérer en boutique à la place ?",
    "Toujours rien reçu de mon côté, pouvez-vous me rappeler ?",
)
NOTES = (  # private notes agents leave for each other
    "Client fidèle depuis longtemps : geste commercial possible si besoin.",
    "Vérifié avec l'entrepôt : le colis est parti hier soir.",
    "Attention, deux comptes pour cette personne ? À signaler à l'équipe identité.",
)
SNOOZE_REASONS = (
    "En attente de la réponse du transporteur.",
    "Le SAV machines revient vers nous sous 48 h.",
)
# How customers reach the service client; the weights decide each request's channel.
CHANNELS: tuple[tuple[str, int], ...] = (
    ("email", 24), ("whatsapp", 18), ("chat", 16), ("phone", 12), ("sms", 10), ("instagram", 10),
    ("messenger", 10),
)  # fmt: skip
# Where a customer continues the same request: a channel that knows them by the same e-mail or number
# (a WhatsApp conversation continued by phone stays one conversation).
FOLLOW_ON = {
    "email": ("chat", "messenger"), "chat": ("email",), "messenger": ("email", "chat"),
    "whatsapp": ("phone", "sms"), "sms": ("whatsapp", "phone"),
}  # fmt: skip
CALL_OUTCOMES = (("resolved", 5), ("answered", 2), ("callback_requested", 3))
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
HISTORY_REQUESTS = 170  # over the last nine days
TODAY_REQUESTS = 26  # in the last hours: nobody has answered yet


@dataclass
class ServiceDesk:
    agent_token: str  # the supervisor's
    conversations: int
    waiting: int  # open, never answered
    by_channel: dict[str, int]  # conversations by the channel they started on
    snoozed: int
    unassigned: int  # open or pending, nobody assigned
    sla_breached: int  # conversations with a missed target still unanswered or unresolved
    sla_running: int  # conversations with a target running (due later)
    rated: int  # satisfaction answers


@dataclass
class Contact:
    """How one customer writes on one channel: the identifiers the channel brings, the address replies
    go to, the provider, and what the provider adds (a call's details)."""

    channel: str
    provider: str
    identifiers: list[tuple[str, str]]
    address: str
    details: dict[str, Any]


def _store_hours() -> tuple[str, str]:
    french = "\n".join(f"{s.name} ({s.street}, {s.city}) : {s.opening_hours}." for s in STORES)
    return french, "\n".join(f"{s.name} ({s.street}, {s.city}): {s.opening_hours}." for s in STORES)


def _contact(customer: DemoCustomer, channel: str, rng: random.Random) -> Contact:
    """The customer on ``channel`` (e-mail when the channel does not know them: no Instagram account)."""
    if channel == "whatsapp":
        return Contact(channel, "meta", [("whatsapp", customer.mobile), ("phone", customer.mobile)],
                       customer.mobile, {})  # fmt: skip
    if channel == "sms":
        return Contact(channel, "twilio", [("phone", customer.mobile)], customer.mobile, {})
    if channel == "instagram" and customer.instagram:
        return Contact(channel, "meta", [("instagram", customer.instagram)], customer.instagram, {})
    if channel == "messenger":
        # Started from the web shop's "Send to Messenger" button by a signed-in customer: Meta passes
        # the shop's reference, so the page-scoped id arrives with the account's e-mail.
        psid = str(rng.randrange(10**15, 10**16))
        return Contact(channel, "meta", [("messenger", psid), ("email", customer.email)], psid, {})
    if channel == "chat":
        anonymous = f"web-{rng.getrandbits(64):016x}"
        identifiers = [("anonymous_id", anonymous), ("email", customer.email)]
        if customer.user_id:  # signed in on the web shop: the widget's identity is verified
            identifiers.insert(1, ("user_id", customer.user_id))
        return Contact(channel, "widget", identifiers, customer.user_id or anonymous, {})
    if channel == "phone":
        return Contact(channel, "telephony", [("phone", customer.mobile)], customer.mobile, {
            "direction": "inbound", "duration_seconds": int(rng.triangular(40, 900, 180)),
            "outcome": weighted(rng, CALL_OUTCOMES), "recording_url": None, "agent_name": None,
        })  # fmt: skip
    return Contact("email", "smtp", [("email", customer.email)], customer.email, {})


def _cast(
    channels: list[str], population: list[DemoCustomer], rng: random.Random
) -> list[tuple[str, DemoCustomer]]:
    """A different customer for each request: Instagram requests from customers with an account there."""
    social = [c for c in population if c.instagram]
    social = rng.sample(social, min(channels.count("instagram"), len(social)))
    taken = {c.index for c in social}
    rest = [c for c in population if c.index not in taken]
    rest = rng.sample(rest, min(len(channels) - len(social), len(rest)))
    cast = []
    for channel in channels:
        pool = social if channel == "instagram" and social else rest
        if pool:
            cast.append((channel, pool.pop()))
    return cast


def _body(contact: Contact, words: str) -> str:
    if contact.channel != "phone":
        return words
    details = contact.details
    return f"Appel entrant ({details['outcome']}, {details['duration_seconds']} s)\nLe client : « {words} »"


def _inbound(contact: Contact, key: str, body: str, at: datetime, subject: str | None = None) -> Inbound:
    return Inbound(contact.channel, contact.provider, key, contact.identifiers, body, sent_at=at,
                   customer_address=contact.address, subject=subject, details=dict(contact.details))  # fmt: skip


def _setup(session: Session, end: datetime) -> tuple[list[AgentInfo], str]:
    """Agents, teams, calendar, SLA policies, knowledge base, macros and rules; the supervisor's token."""
    team = create_team(session, "Service client", assignment="least_busy")
    social = create_team(session, "Réseaux sociaux", assignment="round_robin")
    agents: list[AgentInfo] = []
    token = ""
    for name, role, languages, skills in AGENTS:
        agent, secret = create_agent(session, name, role=role, languages=languages, skills=skills,
                                     email=staff_email(name))  # fmt: skip
        add_member(session, team.id, agent.id)
        if name == SOCIAL_AGENT:
            add_member(session, social.id, agent.id)
        agents.append(AgentInfo(agent.id, agent.name, agent.role))
        if role == "supervisor":
            token = secret
    sla.set_calendar(session, {
        "timezone": "Europe/Paris",
        "hours": {day: ["09:00", "19:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat")},
        "holidays": [f"{year}-{day}" for year in (end.year, end.year + 1) for day in HOLIDAYS],
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
    automation.create_macro(session, "Retour en magasin",
                            "Bonjour {{customer.first_name}}, vous pouvez rapporter l'article dans n'importe "
                            "quelle boutique sous 30 jours avec votre commande. {{agent.name}}",
                            {"add_tags": ["retour"], "set_status": "resolved"})  # fmt: skip
    automation.create_rule(session, "Tout au service client", "conversation_created", {},
                           {"assign_team": team.id})  # fmt: skip
    automation.create_rule(session, "Réseaux sociaux", "conversation_created",
                           {"channel": ["instagram", "messenger"]}, {"assign_team": social.id})  # fmt: skip
    automation.create_rule(session, "Urgences", "message_received",
                           {"body_contains": ["urgent", "deux fois", "débité"]},
                           {"set_priority": "urgent", "add_tags": ["paiement"]})  # fmt: skip
    automation.create_rule(session, "Machines", "conversation_created", {"body_contains": ["machine"]},
                           {"add_tags": ["machines"]})  # fmt: skip
    return agents, token


def seed_service_desk(
    database: Database,
    settings: Settings,
    population: list[DemoCustomer],
    end: datetime,
    seed: int,
    now: datetime | None = None,
) -> ServiceDesk:
    """The inbox as an agent finds it at ``now`` (default ``end``): nine days of history before ``end``
    (midnight), then the requests of the last hours."""
    now = now or end
    rng = random.Random(f"parcours-demo-service:{seed}")
    with database.write() as session:
        agents, token = _setup(session, end)
    by_id = {agent.id: agent for agent in agents}
    social_agent = next(agent for agent in agents if agent.name == SOCIAL_AGENT)

    requests = _cast(
        [weighted(rng, CHANNELS) for _ in range(HISTORY_REQUESTS + TODAY_REQUESTS)], population, rng
    )
    history, today = requests[:HISTORY_REQUESTS], requests[HISTORY_REQUESTS:]
    started_on: dict[str, int] = {}
    snoozed = rated = 0

    for number, (channel, customer) in enumerate(history):
        words, answer = rng.choice(REQUESTS)
        words, answer = words.format(city=customer.store.city), answer.format(first=customer.first_name)
        contact = _contact(customer, channel, rng)
        started_on[contact.channel] = started_on.get(contact.channel, 0) + 1
        at = end - timedelta(days=rng.uniform(0.2, 9), minutes=rng.randint(0, 600))
        key = f"demo-{seed}-{number}"
        subject = "Ma demande" if contact.channel == "email" else None
        fate = rng.random()
        with database.write() as session:
            received = receive(
                session, settings, _inbound(contact, key, _body(contact, words), at, subject), now=at
            )
            conversation_id = received.conversation_id
            if fate < 0.12:  # still waiting for a first answer: its target was missed
                continue
            conversation = session.get(Conversation, conversation_id)
            assert conversation is not None
            responder = by_id.get(conversation.assignee_id or "") or rng.choice(agents[:3])
            reply_at = at + timedelta(minutes=rng.randint(5, 300))
            if rng.random() < 0.15:
                write_reply(session, settings, None, conversation_id, responder, rng.choice(NOTES), private=True,
                            now=reply_at - timedelta(minutes=2))  # fmt: skip
            if contact.channel == "phone":  # what the agent said, on the call or calling back: logged
                called_back = contact.details["outcome"] == "callback_requested"
                answer = f"{'Rappel' if called_back else 'Au téléphone'} : {answer}"
                reply_at = (
                    reply_at if called_back else at + timedelta(seconds=contact.details["duration_seconds"])
                )
            message = write_reply(session, settings, None, conversation_id, responder, answer, now=reply_at)
            if message.delivery == "queued":  # a provider took it (calls are logged, not sent)
                session.execute(update(Message).where(Message.id == message.id).values(delivery="sent"))
            if fate < 0.62 or contact.details.get("outcome") == "resolved":
                set_status(session, conversation_id, "resolved", snoozed_until=None,
                           now=reply_at + timedelta(minutes=30))  # fmt: skip
            elif fate < 0.72:  # waiting on someone else: back in the inbox in a day or three
                write_reply(session, settings, None, conversation_id, responder, rng.choice(SNOOZE_REASONS),
                            private=True, now=reply_at + timedelta(minutes=1))  # fmt: skip
                set_status(session, conversation_id, "snoozed", now=reply_at + timedelta(minutes=1),
                           snoozed_until=now + timedelta(hours=rng.randint(20, 72)))  # fmt: skip
                snoozed += 1
        if 0.12 <= fate < 0.4 and contact.channel != "phone":  # some rate the help on the same channel
            score = rng.choice((5, 5, 4, 4, 3, 2))
            with database.write() as session:
                resolved = session.get(Conversation, conversation_id)
                assert resolved is not None
                csat.ask(session, settings, resolved, reply_at + timedelta(minutes=31))
            answered_at = reply_at + timedelta(hours=2)
            with database.write() as session:
                receive(session, settings, _inbound(contact, f"{key}-csat", f"{score} merci", answered_at),
                        now=answered_at)  # fmt: skip
            rated += 1
        elif 0.72 <= fate < 0.85:  # the customer continues on another channel: one conversation, two channels
            follow_on = FOLLOW_ON.get(contact.channel)
            if follow_on:
                other = _contact(customer, rng.choice(follow_on), rng)
                if other.channel == "phone":
                    other.details["outcome"] = "answered"
                later = reply_at + timedelta(hours=rng.uniform(1, 20))
                body = _body(other, rng.choice(FOLLOW_UPS))
                with database.write() as session:
                    receive(session, settings, _inbound(other, f"{key}-again", body, later), now=later)

    with database.write() as session:  # the questions went out (history)
        session.execute(update(Message).where(Message.delivery == "queued").values(delivery="sent"))
        # Audrey is off today: her conversations go to her colleagues; the social queue waits.
        routing.set_availability(session, social_agent.id, False, end)

    for number, (channel, customer) in enumerate(today):
        words, _answer = rng.choice(REQUESTS)
        contact = _contact(customer, channel, rng)
        if contact.channel == "phone":
            contact.details["outcome"] = "callback_requested"
        started_on[contact.channel] = started_on.get(contact.channel, 0) + 1
        at = now - timedelta(minutes=rng.uniform(3, 300))
        body = _body(contact, words.format(city=customer.store.city))
        subject = "Question" if contact.channel == "email" else None
        with database.write() as session:
            receive(
                session, settings, _inbound(contact, f"demo-{seed}-today-{number}", body, at, subject), now=at
            )

    with database.write() as session:  # the service-level clocks as the server's worker would leave them
        sla.check(session, now)
        return _desk(session, token, started_on, snoozed, rated)


def _desk(session: Session, token: str, started_on: dict[str, int], snoozed: int, rated: int) -> ServiceDesk:
    def count(*where: Any) -> int:
        return int(session.scalar(select(func.count()).select_from(Conversation).where(*where)) or 0)

    def with_clock(*states: str) -> int:
        return int(
            session.scalar(
                select(func.count(func.distinct(SlaClock.conversation_id))).where(
                    SlaClock.state.in_(states), SlaClock.met_at.is_(None)
                )
            )
            or 0
        )

    return ServiceDesk(
        agent_token=token,
        conversations=count(),
        waiting=count(Conversation.status == "open", Conversation.first_response_at.is_(None)),
        by_channel=dict(sorted(started_on.items())),
        snoozed=snoozed,
        unassigned=count(Conversation.status.in_(("open", "pending")), Conversation.assignee_id.is_(None)),
        sla_breached=with_clock("breached"),
        sla_running=with_clock("running", "warned"),
        rated=rated,
    )
