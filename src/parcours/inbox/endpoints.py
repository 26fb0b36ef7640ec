"""The agent API: the inbox, a conversation with the customer's unified view beside it, replies, notes,
assignment and status. Authenticated per agent (``Authorization: Bearer agt_…``) with roles."""

from __future__ import annotations

import asyncio
from datetime import datetime
from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from pydantic import ConfigDict, Field

from parcours.config import Settings
from parcours.db.engine import Database
from parcours.db.types import as_utc, utcnow
from parcours.deps import JsonResponse, database, settings
from parcours.errors import InvalidInput, NotAuthenticated
from parcours.identity.service import split_identifier
from parcours.inbox import agents, automation, bot, feed, identify, metrics, routing, service, sla
from parcours.inbox.agents import AgentInfo, agent_for_token
from parcours.inbox.csat import ask as ask_csat
from parcours.inbox.outbound import Outbox, deliver, write_reply
from parcours.inputs import InputModel

router = APIRouter(tags=["inbox"])


async def _agent_from_header(db: Database, header: str) -> AgentInfo:
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith("agt_"):
        raise NotAuthenticated("an agent token is required (Authorization: Bearer agt_…)")
    return await db.short_read(lambda session: agent_for_token(session, token))


async def current_agent(request: Request, db: Database = Depends(database)) -> AgentInfo:
    return await _agent_from_header(db, request.headers.get("authorization", ""))


def _delivered(db: Database, senders: Outbox, view: dict[str, Any]) -> dict[str, Any]:
    """A reply stored as queued goes out now that its transaction committed; its view as it ended."""
    if view["delivery"] != "queued":
        return view
    return service.message_view(deliver(db, senders, view["id"]))


async def outbox(request: Request) -> Outbox:
    value: Outbox = request.app.state.outbox
    return value


class ReplyIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=100_000)
    channel: str | None = Field(
        default=None, description="Where to answer; default: the customer's last channel."
    )
    private: bool = Field(default=False, description="A note for colleagues, never sent.")


class IdentifierGiven(InputModel):
    model_config = ConfigDict(extra="forbid")

    identifier: str = Field(
        max_length=400,
        description="KIND:VALUE, as the customer gave it: email:lea@example.fr, phone:06 12 34 56 78",
    )


class ConversationUpdate(InputModel):
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
    request: Request,
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
            cache=request.app.state.graph_cache,
        )
        view = service.message_view(message)
    return JsonResponse(_delivered(db, senders, view), status_code=201)


@router.post("/v1/inbox/conversations/{conversation_id}/identifiers")
def add_identifier(
    conversation_id: str,
    body: IdentifierGiven,
    request: Request,
    agent: AgentInfo = Depends(current_agent),
    db: Database = Depends(database),
    config: Settings = Depends(settings),
) -> JsonResponse:
    """The customer gave another of their identifiers: it joins them, or merges them with the customer
    who holds it (by the merge rules; ``outcome``: added, merged or kept apart)."""
    kind, value = split_identifier(body.identifier)
    with db.write() as session:
        return JsonResponse(
            identify.add_identifier(
                session, config, conversation_id, kind, value, agent, cache=request.app.state.graph_cache
            )
        )


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
    request: Request,
    agent: AgentInfo = Depends(current_agent),
    db: Database = Depends(database),
    config: Settings = Depends(settings),
    senders: Outbox = Depends(outbox),
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
            by=agent.id,
        )
        survey_message = None
        if "status" in changes:
            until = changes.get("snoozed_until")
            was_resolved = conversation.status == "resolved"
            conversation = service.set_status(
                session,
                conversation_id,
                changes["status"],
                snoozed_until=as_utc(until) if until else None,
                now=utcnow(),
            )
            if conversation.status == "resolved" and not was_resolved:
                survey_message = ask_csat(
                    session, config, conversation, utcnow(), cache=request.app.state.graph_cache
                )
        elif "snoozed_until" in changes:
            raise InvalidInput("snoozed_until: goes with status 'snoozed'")
        view = service.conversation_view(conversation)
    if survey_message is not None and senders.sender(view["reply_channel"]) is not None:
        deliver(db, senders, survey_message)  # otherwise the outbox worker records why it cannot go
    return JsonResponse(view)


# ------------------------------------------------------------------------------- macros and automation
class MacroIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    body: str
    actions: dict[str, Any] = Field(default_factory=dict)


class RuleIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    event: str
    conditions: dict[str, Any] = Field(default_factory=dict)
    actions: dict[str, Any]


class ApplyMacroIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    macro_id: str
    channel: str | None = None


@router.post("/v1/inbox/macros", status_code=201)
def post_macro(
    body: MacroIn, agent: AgentInfo = Depends(current_agent), db: Database = Depends(database)
) -> JsonResponse:
    agent.require("supervisor")
    with db.write() as session:
        macro = automation.create_macro(session, body.name, body.body, body.actions)
        return JsonResponse(
            {"id": macro.id, "name": macro.name, "body": macro.body, "actions": macro.actions}, 201
        )


@router.post("/v1/inbox/conversations/{conversation_id}/macro", status_code=201)
def post_apply_macro(
    conversation_id: str,
    body: ApplyMacroIn,
    agent: AgentInfo = Depends(current_agent),
    db: Database = Depends(database),
    config: Settings = Depends(settings),
    senders: Outbox = Depends(outbox),
) -> JsonResponse:
    """Answer with a macro: its text with the customer's and the latest order's values, and its actions."""
    with db.write() as session:
        message = automation.apply_macro(
            session, config, senders, conversation_id, body.macro_id, agent, channel=body.channel
        )
        view = service.message_view(message)
    return JsonResponse(_delivered(db, senders, view), status_code=201)


@router.post("/v1/inbox/rules", status_code=201)
def post_rule(
    body: RuleIn, agent: AgentInfo = Depends(current_agent), db: Database = Depends(database)
) -> JsonResponse:
    agent.require("admin")
    with db.write() as session:
        rule = automation.create_rule(session, body.name, body.event, body.conditions, body.actions)
        return JsonResponse(
            {"id": rule.id, "name": rule.name, "event": rule.event, "conditions": rule.conditions,
             "actions": rule.actions, "position": rule.position}, 201,
        )  # fmt: skip


# ------------------------------------------------------------------------------- teams, agents, SLA
class TeamIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    assignment: str = "round_robin"
    members: list[str] = Field(default_factory=list)


class AvailabilityIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    available: bool


class SlaPolicyIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    priority: str
    first_response_minutes: int
    next_response_minutes: int
    resolution_minutes: int
    warn_at: float = 0.8


@router.post("/v1/inbox/teams", status_code=201)
def post_team(
    body: TeamIn, agent: AgentInfo = Depends(current_agent), db: Database = Depends(database)
) -> JsonResponse:
    agent.require("admin")
    with db.write() as session:
        team = agents.create_team(session, body.name, assignment=body.assignment)
        for member in body.members:
            agents.add_member(session, team.id, member)
        return JsonResponse({"id": team.id, "name": team.name, "assignment": team.assignment,
                             "members": body.members}, 201)  # fmt: skip


@router.put("/v1/inbox/agents/{agent_id}/availability")
def put_availability(
    agent_id: str,
    body: AvailabilityIn,
    agent: AgentInfo = Depends(current_agent),
    db: Database = Depends(database),
) -> JsonResponse:
    """An agent goes online or offline (agents for themselves, supervisors for anyone); going offline
    hands their active conversations to others."""
    if agent_id != agent.id:
        agent.require("supervisor")
    with db.write() as session:
        moved = routing.set_availability(session, agent_id, body.available, utcnow())
        return JsonResponse({"agent_id": agent_id, "available": body.available, "conversations_moved": moved})


@router.put("/v1/inbox/sla/policies")
def put_sla_policy(
    body: SlaPolicyIn, agent: AgentInfo = Depends(current_agent), db: Database = Depends(database)
) -> JsonResponse:
    agent.require("admin")
    with db.write() as session:
        policy = sla.set_policy(session, **body.model_dump())
        return JsonResponse({"priority": policy.priority, "first_response_minutes": policy.first_response_minutes,
                             "next_response_minutes": policy.next_response_minutes,
                             "resolution_minutes": policy.resolution_minutes, "warn_at": policy.warn_at})  # fmt: skip


@router.put("/v1/inbox/sla/business-hours")
def put_business_hours(
    body: dict[str, Any], agent: AgentInfo = Depends(current_agent), db: Database = Depends(database)
) -> JsonResponse:
    """{"timezone": "Europe/Paris", "hours": {"mon": ["09:00", "18:00"], …}, "holidays": ["2026-12-25"]}"""
    agent.require("admin")
    with db.write() as session:
        return JsonResponse(sla.set_calendar(session, body).as_json())


@router.get("/v1/inbox/metrics")
def get_metrics(
    since: datetime = Query(description="start of the period (ISO 8601)"),
    until: datetime | None = Query(default=None, description="end of the period; default now"),
    agent: AgentInfo = Depends(current_agent),
    db: Database = Depends(database),
) -> JsonResponse:
    """First response and resolution times, CSAT and volume, per channel and per agent."""
    agent.require("supervisor")
    with db.read() as session:
        return JsonResponse(
            metrics.inbox_metrics(session, as_utc(since), as_utc(until) if until else utcnow())
        )


# ------------------------------------------------------------------------------------ live feed
@router.websocket("/v1/inbox/live")
async def live_feed(websocket: WebSocket) -> None:
    """The agent's live feed: committed events of the conversations assigned to them (and, for
    supervisors and admins, of every conversation). Authenticate with the first frame
    {"token": "agt_…"} (browsers cannot set headers on WebSockets)."""
    await websocket.accept()
    db: Database = websocket.app.state.database
    try:
        hello = await asyncio.wait_for(websocket.receive_json(), timeout=10)
        token = str(hello.get("token", "")) if isinstance(hello, dict) else ""
        agent = await _agent_from_header(db, f"Bearer {token}")
    except (TimeoutError, ValueError, KeyError, NotAuthenticated, WebSocketDisconnect):
        await _close(websocket, 4401, 'an agent token is required as the first frame: {"token": "agt_…"}')
        return
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
    loop = asyncio.get_running_loop()
    everything = agent.role in ("supervisor", "admin")

    subscription = feed.FEED.subscribe(
        partial(_offer, queue), loop, agent_id=None if everything else agent.id
    )
    try:
        await websocket.send_json({"type": "ready", "agent_id": agent.id})
        while True:  # orjson: several times as fast as the json module send_json uses
            await websocket.send_text(orjson.dumps(await queue.get()).decode())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        feed.FEED.unsubscribe(subscription)


def _offer(queue: asyncio.Queue[dict[str, Any]], item: dict[str, Any]) -> None:
    if not queue.full():  # a feed that does not keep up loses old items, never blocks the server
        queue.put_nowait(item)


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    try:
        await websocket.send_json({"type": "error", "error": reason})
        await websocket.close(code=code)
    except (WebSocketDisconnect, RuntimeError):
        pass


# ------------------------------------------------------------------------------------ knowledge base
class ArticleIn(InputModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    body: str
    questions: list[str]


@router.put("/v1/inbox/kb/{slug}/{language}")
def put_article(
    slug: str,
    language: str,
    body: ArticleIn,
    agent: AgentInfo = Depends(current_agent),
    db: Database = Depends(database),
) -> JsonResponse:
    """Create or replace a knowledge-base article; the bot answers from it on every channel."""
    agent.require("supervisor")
    with db.write() as session:
        return JsonResponse(bot.article_view(bot.save_article(session, slug, language, body.title, body.body,
                                                              body.questions)))  # fmt: skip


@router.get("/v1/help/articles", tags=["help"])
def help_articles(
    language: str | None = Query(default=None), db: Database = Depends(database)
) -> JsonResponse:
    """The knowledge base, public: what the help pages, the app and the bot all show."""
    with db.read() as session:
        return JsonResponse({"data": bot.list_articles(session, language)})
