"""The first answer on every channel: common questions answered from the knowledge base (the same text
the help pages show), the order status from the customer's timeline, in French or English; a human
takes over when the bot is unsure or when the customer asks for one. The bot's exchange stays in the
thread, so the agent sees what was said."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rapidfuzz import fuzz, process
from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.config import Settings
from parcours.db.types import utcnow
from parcours.errors import InvalidInput, NotFound
from parcours.identity.resolution import GraphCache
from parcours.ids import new_id
from parcours.inbox import feed
from parcours.inbox.agents import AgentInfo
from parcours.matching.normalize import ascii_text
from parcours.models import Conversation, Event, KnowledgeArticle, Profile

BOT = AgentInfo("bot", "Assistant", "agent")
HANDOFF_TAG = "bot_handoff"
ARTICLE_LANGUAGES = ("fr", "en")  # the languages the bot and the help pages answer in
CONFIDENT = 72  # token-set similarity (0-100) needed to answer
ASK_HUMAN = {
    "fr": ("conseiller", "humain", "agent", "une personne", "quelqu un", "parler a", "service client"),
    "en": ("human", "agent", "a person", "someone", "talk to", "speak to", "representative"),
}
ORDER_WORDS = {
    "fr": ("ma commande", "mon colis", "suivi", "livree", "expediee", "ou en est"),
    "en": ("my order", "my parcel", "my package", "tracking", "shipped", "delivered", "where is"),
}
_FRENCH = {"le", "la", "les", "de", "des", "est", "je", "vous", "mon", "ma", "mes", "pour", "une", "un", "et",
           "bonjour", "merci", "quand", "combien", "ou", "quel", "quelle", "commande", "livraison"}  # fmt: skip
_ENGLISH = {"the", "is", "my", "you", "your", "for", "and", "hello", "hi", "thanks", "when", "how", "what",
            "where", "order", "delivery", "can", "do", "i"}  # fmt: skip
TEXTS = {
    "handoff": {
        "fr": "Je vous mets en relation avec un conseiller, qui vous répond au plus vite.",
        "en": "I am passing you to an advisor, who will answer you shortly.",
    },
    "no_order": {
        "fr": "Je ne trouve pas de commande à votre nom. Je vous mets en relation avec un conseiller.",
        "en": "I cannot find an order under your name. I am passing you to an advisor.",
    },
    "order": {
        "fr": "Votre commande {order_id} du {date} : {status}.",
        "en": "Your order {order_id} of {date}: {status}.",
    },
    "footer": {
        "fr": "\n\nCela répond-il à votre question ? Écrivez « conseiller » pour parler à quelqu'un.",
        "en": '\n\nDoes this answer your question? Write "agent" to talk to someone.',
    },
}
ORDER_STATUS = {  # Segment e-commerce events -> what to tell the customer
    "Order Completed": {
        "fr": "elle est confirmée et en préparation",
        "en": "it is confirmed and being prepared",
    },
    "Order Shipped": {"fr": "elle a été expédiée", "en": "it has been shipped"},
    "Order Delivered": {"fr": "elle a été livrée", "en": "it has been delivered"},
    "Order Ready For Pickup": {"fr": "elle vous attend en magasin", "en": "it is waiting for you in store"},
    "Order Cancelled": {"fr": "elle a été annulée", "en": "it was cancelled"},
}


@dataclass
class BotReply:
    text: str
    handoff: bool
    article: str | None = None  # the slug answered from


def language_of(session: Session, conversation: Conversation, text: str) -> str:
    traits = session.scalar(select(Profile.traits).where(Profile.id == conversation.profile_id)) or {}
    known = str(traits.get("language") or "")[:2].lower()
    if known in ("fr", "en"):
        return known
    words = set(ascii_text(text).split())
    return "en" if len(words & _ENGLISH) > len(words & _FRENCH) else "fr"


def _order_status(session: Session, profile_id: str, language: str) -> str | None:
    row = session.execute(
        select(Event.name, Event.timestamp, Event.properties)
        .where(Event.profile_id == profile_id, Event.name.in_(list(ORDER_STATUS)))
        .order_by(Event.timestamp.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    order_id = (row.properties or {}).get("order_id") or "?"
    day = row.timestamp.strftime("%d/%m/%Y" if language == "fr" else "%Y-%m-%d")
    return TEXTS["order"][language].format(
        order_id=order_id, date=day, status=ORDER_STATUS[row.name][language]
    )


def reply_to(session: Session, conversation: Conversation, text: str) -> BotReply:
    """What the bot says to ``text``: an answer, or a hand-off to a human."""
    language = language_of(session, conversation, text)
    plain = ascii_text(text)
    if any(re.search(rf"\b{re.escape(word)}\b", plain) for word in ASK_HUMAN[language]):
        return BotReply(TEXTS["handoff"][language], handoff=True)
    if any(word in plain for word in ORDER_WORDS[language]):
        status = _order_status(session, conversation.profile_id, language)
        if status is None:
            return BotReply(TEXTS["no_order"][language], handoff=True)
        return BotReply(status + TEXTS["footer"][language], handoff=False, article="order-status")
    articles = list(session.scalars(select(KnowledgeArticle).where(KnowledgeArticle.language == language)))
    choices = {(a.id, q): ascii_text(q) for a in articles for q in a.questions}
    best = process.extractOne(plain, choices, scorer=fuzz.token_set_ratio) if choices and plain else None
    if best is None or best[1] < CONFIDENT:
        return BotReply(TEXTS["handoff"][language], handoff=True)
    article = next(a for a in articles if a.id == best[2][0])
    return BotReply(article.body + TEXTS["footer"][language], handoff=False, article=article.slug)


def handle(
    session: Session,
    settings: Settings,
    conversation: Conversation,
    text: str,
    now: datetime,
    *,
    cache: GraphCache | None = None,
) -> bool:
    """Answer a customer message if the bot is in charge of the conversation (nobody assigned, not
    handed off yet). Returns True when the bot answered and no human is needed now."""
    from parcours.errors import Conflict
    from parcours.inbox.outbound import write_reply

    if not settings.inbox_bot or conversation.assignee_id is not None or HANDOFF_TAG in conversation.tags:
        return False
    reply = reply_to(session, conversation, text)
    try:
        write_reply(session, settings, None, conversation.id, BOT, reply.text, now=now, cache=cache)
    except Conflict:
        return False  # no address on the channel: a human will handle it
    if reply.handoff:
        conversation.tags = sorted({*conversation.tags, HANDOFF_TAG})
        conversation.status = "open"
        feed.record(session, conversation.id, "bot_handoff", now)
        return False
    feed.record(session, conversation.id, "bot_answered", now, data={"article": reply.article})
    return True


# ------------------------------------------------------------------------------- the knowledge base
def save_article(
    session: Session, slug: str, language: str, title: str, body: str, questions: list[str]
) -> KnowledgeArticle:
    """Create or replace an article (one per slug and language)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,79}", slug):
        raise InvalidInput("slug: lower-case letters, digits and dashes, at most 80")
    if language not in ARTICLE_LANGUAGES:
        raise InvalidInput("language: fr or en")
    if not title.strip() or len(title) > 200 or not body.strip() or len(body) > 20_000:
        raise InvalidInput("title and body: required (title at most 200, body at most 20,000 characters)")
    cleaned = [q.strip() for q in questions if q.strip()]
    if not cleaned or any(len(q) > 300 for q in cleaned):
        raise InvalidInput("questions: at least one, each at most 300 characters")
    article = session.scalar(
        select(KnowledgeArticle).where(KnowledgeArticle.slug == slug, KnowledgeArticle.language == language)
    )
    if article is None:
        article = KnowledgeArticle(id=new_id("kb"), slug=slug, language=language)
        session.add(article)
    article.title, article.body, article.questions, article.updated_at = (
        title.strip(),
        body.strip(),
        cleaned,
        utcnow(),
    )
    session.flush()
    return article


def delete_article(session: Session, slug: str, language: str) -> KnowledgeArticle:
    """Remove an article (the bot no longer answers from it); returns it as it was."""
    article = session.scalar(
        select(KnowledgeArticle).where(KnowledgeArticle.slug == slug, KnowledgeArticle.language == language)
    )
    if article is None:
        raise NotFound(f"no article {slug!r} in {language!r}")
    session.delete(article)
    session.flush()
    return article


def article_view(article: KnowledgeArticle) -> dict[str, Any]:
    return {
        "slug": article.slug,
        "language": article.language,
        "title": article.title,
        "body": article.body,
        "questions": article.questions,
        "updated_at": article.updated_at.isoformat(),
    }


def list_articles(session: Session, language: str | None) -> list[dict[str, Any]]:
    if language and language not in ARTICLE_LANGUAGES:
        raise InvalidInput(f"language: {language[:20]!r} must be one of {', '.join(ARTICLE_LANGUAGES)}")
    query = select(KnowledgeArticle).order_by(KnowledgeArticle.slug, KnowledgeArticle.language)
    if language:
        query = query.where(KnowledgeArticle.language == language)
    return [article_view(a) for a in session.scalars(query)]
