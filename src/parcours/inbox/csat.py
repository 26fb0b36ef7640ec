"""Customer satisfaction: asked on the conversation's channel once it is resolved, answered by a reply
from 1 to 5 (and optional words), stored on the survey, the customer's timeline and profile."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.config import Settings
from parcours.identity.resolution import GraphCache
from parcours.identity.service import resolve_profile_id
from parcours.ids import new_id
from parcours.inbox import feed
from parcours.inbox.automation import SYSTEM
from parcours.models import Conversation, CsatSurvey, Profile

ANSWER_DAYS = 7
_SCORE = re.compile(r"^\s*([1-5])(?:\s*/\s*5)?\b[\s,.;:!-]*(.*)$", re.DOTALL)
QUESTIONS = {
    "fr": "Votre demande est résolue. Comment évaluez-vous notre aide ? Répondez par une note de 1 "
    "(pas satisfait) à 5 (très satisfait), et un commentaire si vous le souhaitez.",
    "en": "Your request is resolved. How would you rate our help? Reply with a score from 1 (not "
    "satisfied) to 5 (very satisfied), and a comment if you like.",
}


def ask(
    session: Session,
    settings: Settings,
    conversation: Conversation,
    now: datetime,
    *,
    cache: GraphCache | None = None,
) -> str | None:
    """Send the question on the conversation's channel (queued; the caller delivers after commit).
    Returns the message id, or None when it cannot be asked (already asked, no address, or a logged
    channel such as a phone call). ``cache``: the server's identity graph cache (see ``write_reply``)."""
    from parcours.errors import Conflict
    from parcours.inbox.outbound import LOGGED_CHANNELS, write_reply

    if not settings.inbox_csat or conversation.last_inbound_channel in LOGGED_CHANNELS:
        return None
    if session.scalar(select(CsatSurvey.id).where(CsatSurvey.conversation_id == conversation.id)):
        return None
    profile_id = resolve_profile_id(session, conversation.profile_id)  # its survivor, after a merge
    traits = session.scalar(select(Profile.traits).where(Profile.id == profile_id)) or {}
    language = "en" if str(traits.get("language") or "fr")[:2].lower() == "en" else "fr"
    status = conversation.status
    try:
        message = write_reply(
            session, settings, None, conversation.id, SYSTEM, QUESTIONS[language], now=now, cache=cache
        )
    except Conflict:
        return None
    conversation.status = status  # asking does not make the conversation pending again
    session.add(
        CsatSurvey(
            id=new_id("csat"),
            conversation_id=conversation.id,
            profile_id=conversation.profile_id,
            channel=conversation.last_inbound_channel,
            agent_id=conversation.assignee_id,
            sent_at=now,
            score=None,
            comment=None,
            answered_at=None,
        )
    )
    session.flush()
    return message.id


def answer(
    session: Session, conversation: Conversation, body: str, sent_at: datetime, now: datetime
) -> CsatSurvey | None:
    """If the customer's message (``body``, sent at ``sent_at``) answers the conversation's open survey
    with a score, record it and return the survey (the conversation stays resolved); otherwise None."""
    survey = session.scalar(
        select(CsatSurvey).where(
            CsatSurvey.conversation_id == conversation.id, CsatSurvey.answered_at.is_(None)
        )
    )
    if survey is None or sent_at - survey.sent_at > timedelta(days=ANSWER_DAYS):
        return None
    match = _SCORE.match(body)
    if match is None:
        return None
    survey.score = int(match.group(1))
    survey.comment = match.group(2).strip()[:2000] or None
    survey.answered_at = now
    feed.record(session, conversation.id, "csat_answered", now, agent_id=survey.agent_id,
                data={"score": survey.score})  # fmt: skip
    session.flush()
    return survey
