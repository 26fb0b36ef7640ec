"""Service figures over a period: volume, first response time, resolution time and CSAT, per channel and
per agent (medians and 90th percentiles in minutes)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from statistics import median
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.errors import InvalidInput
from parcours.models import Conversation, CsatSurvey, Message


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def _summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p90": None}
    return {"median": round(median(values), 1), "p90": round(_p90(values), 1)}


def inbox_metrics(session: Session, since: datetime, until: datetime) -> dict[str, Any]:
    """Conversations created in [since, until): their figures per channel (of the first message) and per
    assigned agent; messages received in the period per channel."""
    if until <= since:
        raise InvalidInput("until: must be after since")
    conversations = list(
        session.scalars(
            select(Conversation).where(Conversation.created_at >= since, Conversation.created_at < until)
        )
    )
    first_channel: dict[str, str] = {}
    for conversation_id, channel in session.execute(
        select(Message.conversation_id, Message.channel)
        .where(Message.conversation_id.in_([c.id for c in conversations]), Message.direction == "inbound")
        .order_by(Message.sent_at.desc(), Message.seq.desc())
    ):
        first_channel[conversation_id] = channel  # the last written is the earliest
    scores: dict[str, int] = {
        conversation_id: score or 0
        for conversation_id, score in session.execute(
            select(CsatSurvey.conversation_id, CsatSurvey.score).where(
                CsatSurvey.conversation_id.in_([c.id for c in conversations]), CsatSurvey.score.is_not(None)
            )
        )
    }
    groups: dict[str, dict[str, list[Conversation]]] = {
        "channel": defaultdict(list),
        "agent": defaultdict(list),
    }
    for conversation in conversations:
        groups["channel"][first_channel.get(conversation.id, conversation.last_inbound_channel)].append(
            conversation
        )
        groups["agent"][conversation.assignee_id or "unassigned"].append(conversation)

    def figures(items: list[Conversation]) -> dict[str, Any]:
        first = [
            (c.first_response_at - c.created_at).total_seconds() / 60 for c in items if c.first_response_at
        ]
        resolution = [(c.resolved_at - c.created_at).total_seconds() / 60 for c in items if c.resolved_at]
        rated = [scores[c.id] for c in items if c.id in scores]
        return {
            "conversations": len(items),
            "resolved": len(resolution),
            "first_response_minutes": _summary(first),
            "resolution_minutes": _summary(resolution),
            "csat": {"answers": len(rated), "average": round(sum(rated) / len(rated), 2) if rated else None},
        }

    received: dict[str, int] = defaultdict(int)
    for (channel,) in session.execute(
        select(Message.channel).where(
            Message.direction == "inbound", Message.sent_at >= since, Message.sent_at < until
        )
    ):
        received[channel] += 1
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "all": figures(conversations),
        "by_channel": {name: figures(items) for name, items in sorted(groups["channel"].items())},
        "by_agent": {name: figures(items) for name, items in sorted(groups["agent"].items())},
        "messages_received": dict(sorted(received.items())),
    }
