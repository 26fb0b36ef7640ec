"""Phone calls and store visits in the customer's conversation: calls logged by the telephony system (a
signed webhook) or by the agent, visits and in-store requests logged by store associates."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import ConfigDict, Field, ValidationError

from parcours.config import Settings
from parcours.db.engine import Database
from parcours.db.types import as_utc
from parcours.deps import JsonResponse, database, read_body
from parcours.errors import Forbidden, InvalidInput, NotAuthenticated
from parcours.identity.service import split_identifier
from parcours.inbox.agents import AgentInfo
from parcours.inbox.endpoints import current_agent
from parcours.inbox.service import Inbound, receive
from parcours.inbox.writer import InboxWriter
from parcours.inputs import InputModel, field_problems, problems_message
from parcours.routing import add_routes, add_webhooks

router = APIRouter(tags=["channels"])
webhooks = APIRouter(tags=["channels"])  # the telephony system's, served as plain routes
MAX_BODY = 64 * 1024
OUTCOMES = ("answered", "missed", "voicemail", "callback_requested", "resolved", "transferred")


class CallIn(InputModel):
    """A call, as the telephony system or the agent reports it."""

    model_config = ConfigDict(extra="forbid")

    call_id: str = Field(min_length=1, max_length=200, description="Unique per call (a replay is ignored).")
    phone: str = Field(min_length=3, max_length=40, description="The customer's number.")
    direction: str = Field(pattern=r"^(inbound|outbound)$")
    started_at: datetime
    duration_seconds: int = Field(ge=0, le=24 * 3600)
    outcome: str
    notes: str = Field(default="", max_length=20_000)
    recording_url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://")
    agent_name: str | None = Field(default=None, max_length=120)


class VisitIn(InputModel):
    """A store visit or an in-store request, as an associate records it."""

    model_config = ConfigDict(extra="forbid")

    visit_id: str = Field(min_length=1, max_length=200)
    store_id: str = Field(min_length=1, max_length=40)
    identifier: str = Field(description="How the customer is known: KIND:VALUE, e.g. loyalty_card:2901…")
    at: datetime
    request: str = Field(min_length=1, max_length=20_000, description="What the customer asked or did.")


def _call_inbound(call: CallIn, provider: str) -> Inbound:
    if call.outcome not in OUTCOMES:
        raise InvalidInput(f"outcome: must be one of {', '.join(OUTCOMES)}")
    summary = f"Appel {'entrant' if call.direction == 'inbound' else 'sortant'} ({call.outcome}, {call.duration_seconds} s)"
    return Inbound(
        channel="phone",
        provider=provider,
        provider_message_id=call.call_id,
        identifiers=[("phone", call.phone)],
        body=summary + (f"\n{call.notes}" if call.notes else ""),
        sent_at=as_utc(call.started_at),
        customer_address=call.phone,
        details={
            "direction": call.direction,
            "duration_seconds": call.duration_seconds,
            "outcome": call.outcome,
            "recording_url": call.recording_url,
            "agent_name": call.agent_name,
        },
        direction=call.direction,
    )


def _check_signature(settings: Settings, body: bytes, header: str) -> None:
    secret = settings.telephony_webhook_secret.get_secret_value()
    if not secret:
        raise Forbidden(
            "telephony webhooks are not configured on this server (PARCOURS_TELEPHONY_WEBHOOK_SECRET)"
        )
    if not header:
        raise NotAuthenticated("X-Parcours-Signature: missing (sha256=HMAC of the raw body)")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), header.strip().encode()):
        raise Forbidden("X-Parcours-Signature: does not match the body")


@webhooks.post("/v1/channels/telephony/calls", summary="Telephony webhook: a call ended")
async def telephony_call(request: Request) -> JsonResponse:
    """A call reported by the telephony system, signed with ``X-Parcours-Signature: sha256=<hex HMAC-SHA256
    of the raw body with PARCOURS_TELEPHONY_WEBHOOK_SECRET>``; stored in the customer's conversation."""
    settings: Settings = request.app.state.settings
    body = await read_body(request, MAX_BODY)
    _check_signature(settings, body, request.headers.get("x-parcours-signature", ""))
    try:
        call = CallIn.model_validate_json(body)
    except ValidationError as error:
        raise InvalidInput(problems_message(field_problems(error.errors()[:1], root="body"))) from None
    writer: InboxWriter = request.app.state.inbox_writer
    received = await writer.submit_async(_call_inbound(call, "telephony"))
    return JsonResponse({"conversation_id": received.conversation_id, "message_id": received.message_id,
                         "duplicate": received.duplicate})  # fmt: skip


def _log(request: Request, db: Database, inbound: Inbound) -> dict[str, Any]:
    with db.write() as session:
        received = receive(session, request.app.state.settings, inbound, cache=request.app.state.graph_cache)
        return {"conversation_id": received.conversation_id, "message_id": received.message_id,
                "duplicate": received.duplicate}  # fmt: skip


@router.post("/v1/inbox/calls", tags=["inbox"], status_code=201)
def log_call(
    call: CallIn,
    request: Request,
    agent: AgentInfo = Depends(current_agent),
    db: Database = Depends(database),
) -> JsonResponse:
    """An agent logs a call (outbound to the customer, or one the telephony system did not report)."""
    call = call.model_copy(update={"agent_name": call.agent_name or agent.name})
    return JsonResponse(_log(request, db, _call_inbound(call, "agent")), status_code=201)


@router.post("/v1/inbox/visits", tags=["inbox"], status_code=201)
def log_visit(
    visit: VisitIn,
    request: Request,
    agent: AgentInfo = Depends(current_agent),
    db: Database = Depends(database),
) -> JsonResponse:
    """A store associate records a visit or an in-store request in the customer's conversation."""
    kind, value = split_identifier(visit.identifier)
    inbound = Inbound(
        channel="store",
        provider="associate",
        provider_message_id=visit.visit_id,
        identifiers=[(kind, value.strip())],
        body=visit.request,
        sent_at=as_utc(visit.at),
        customer_address=None,
        details={"store_id": visit.store_id, "associate": agent.name},
    )
    return JsonResponse(_log(request, db, inbound), status_code=201)


def install(app: FastAPI, settings: Settings) -> None:
    add_webhooks(app, webhooks)
    add_routes(app, router)
