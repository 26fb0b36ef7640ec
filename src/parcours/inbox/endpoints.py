"""The agent API: the inbox, a conversation with the customer's unified view beside it, replies, notes,
assignment and status. Authenticated per agent (``Authorization: Bearer agt_…``) with roles."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from parcours.config import Settings
from parcours.db.engine import Database
from parcours.db.types import as_utc, utcnow
from parcours.deps import JsonResponse, database, settings
from parcours.errors import InvalidInput, NotAuthenticated
from parcours.inbox import service
from parcours.inbox.agents import AgentInfo, agent_for_token
from parcours.inbox.outbound import Outbox, deliver, write_reply

router = APIRouter(tags=["inbox"])


def _agent_from_header(db: Database, header: str) -> AgentInfo:
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith("agt_"):
        raise NotAuthenticated("an agent token is required (Authorization: Bearer agt_…)")
    with db.read() as session:
        return agent_for_token(session, token)


async def current_agent(request: Request, db: Database = Depends(database)) -> AgentInfo:
    return await run_in_threadpool(_agent_from_header, db, request.headers.get("authorization", ""))


def outbox(request: Request) -> Outbox:
    value: Outbox = request.app.state.outbox
    return value


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=100_000)
    channel: str | None = Field(
        default=None, description="Where to answer; default: the customer's last channel."
    )
    private: bool = Field(default=False, description="A note for colleagues, never sent.")


class ConversationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str | None = None
    snoozed_until: datetime | None = None
    priority: str | None = None
    tags: list[str] | None = None
    assignee_id: str | None = Field(default=None, description="An agent id, or 'none' to unassign.")
    team_id: str | None = None


@router.get("/v1/inbox/conversations")
def list_conversations(
    status: str | None = Query(default=None),
    assignee: str | None = Query(default=None, description="an agent id, 'me' or 'none'"),
    channel: str | None = Query(default=None),
    profile_id: str | None = Query(default=None),
    limit: int = Query(default=50, ge=1, le=500),
    agent: AgentInfo = Depends(current_agent),
    db: Database = Depends(database),
) -> JsonResponse:
    with db.read() as session:
        data = service.list_conversations(
            session,
            status=status,
            assignee_id=agent.id if assignee == "me" else assignee,
            channel=channel,
            profile_id=profile_id,
            limit=limit,
        )
    return JsonResponse({"data": data})


@router.get("/v1/inbox/conversations/{conversation_id}")
def read_conversation(
    conversation_id: str, agent: AgentInfo = Depends(current_agent), db: Database = Depends(database)
) -> JsonResponse:
    with db.read() as session:
        return JsonResponse(service.read_conversation(session, conversation_id))


@router.post("/v1/inbox/conversations/{conversation_id}/messages", status_code=201)
def reply(
    conversation_id: str,
    body: ReplyIn,
    agent: AgentInfo = Depends(current_agent),
    db: Database = Depends(database),
    config: Settings = Depends(settings),
    senders: Outbox = Depends(outbox),
) -> JsonResponse:
    """Reply on a channel (delivered after the commit; the response says whether it went out) or
    write a private note."""
    with db.write() as session:
        message = write_reply(
            session,
            config,
            senders,
            conversation_id,
            agent,
            body.body,
            channel=body.channel,
            private=body.private,
        )
        message_id, delivery = message.id, message.delivery
        view = service.message_view(message)
    if delivery == "queued":
        view = service.message_view(deliver(db, senders, message_id))
    return JsonResponse(view, status_code=201)


@router.post("/v1/inbox/messages/{message_id}/retry")
def retry(
    message_id: str,
    agent: AgentInfo = Depends(current_agent),
    db: Database = Depends(database),
    senders: Outbox = Depends(outbox),
) -> JsonResponse:
    """Send a failed reply again."""
    return JsonResponse(service.message_view(deliver(db, senders, message_id)))


@router.patch("/v1/inbox/conversations/{conversation_id}")
def update_conversation(
    conversation_id: str,
    body: ConversationUpdate,
    agent: AgentInfo = Depends(current_agent),
    db: Database = Depends(database),
) -> JsonResponse:
    """Status (open, pending, snoozed with ``snoozed_until``, resolved), priority, tags, assignment.
    Agents assign to themselves; supervisors and admins to anyone."""
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    with db.write() as session:
        assignee = changes.get("assignee_id")
        if assignee not in (None, "none", agent.id) or "team_id" in changes:
            agent.require("supervisor")
        conversation = service.update_conversation(
            session,
            conversation_id,
            priority=changes.get("priority"),
            tags=changes.get("tags"),
            assignee_id=None if assignee == "none" else assignee,
            team_id=changes.get("team_id"),
            unassign=assignee == "none",
        )
        if "status" in changes:
            until = changes.get("snoozed_until")
            conversation = service.set_status(
                session,
                conversation_id,
                changes["status"],
                snoozed_until=as_utc(until) if until else None,
                now=utcnow(),
            )
        elif "snoozed_until" in changes:
            raise InvalidInput("snoozed_until: goes with status 'snoozed'")
        return JsonResponse(service.conversation_view(conversation))
