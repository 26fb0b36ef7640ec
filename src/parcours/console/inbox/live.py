"""The inbox's live feed (Server-Sent Events): what happens to the conversations a user may work on,
brought into their open pages (the list, a conversation) without a reload."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from parcours.auth import users
from parcours.console.inbox.common import Reach, reach_of, visible_conversation
from parcours.console.web import SECURITY_HEADERS, SESSION_COOKIE, Page, page_for
from parcours.errors import InvalidInput, NotAuthenticated
from parcours.inbox import feed
from parcours.models import Conversation

router = APIRouter(include_in_schema=False)

LIVE_POLL_SECONDS = 0.5  # how often a stream looks whether the server is stopping
LIVE_HEARTBEAT_SECONDS = 15.0  # a comment line keeps proxies from closing an idle stream
LIVE_SESSION_CHECK_SECONDS = 60.0  # a signed-out or disabled user's stream ends within this
LIVE_QUEUE = 500


def server_stopping(request: Request) -> bool:
    """Whether uvicorn has begun a graceful shutdown: it then turns off keep-alive on the connections
    still answering (its only signal to a running response), and waits for them to finish."""
    cycle = getattr(request.receive, "__self__", None)
    return getattr(cycle, "keep_alive", True) is False


def _session_valid(page: Page, token: str) -> bool:
    try:
        with page.db.read() as session:
            users.session_user(session, token)
        return True
    except NotAuthenticated:
        return False


def _offer(queue: asyncio.Queue[dict[str, Any]], item: dict[str, Any]) -> None:
    if not queue.full():  # a page that does not keep up misses old items; the server never blocks
        queue.put_nowait(item)


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.get("/console/inbox/live")
async def live(page: Page = Depends(page_for("inbox")), conversation: str = "", view: str = "") -> Response:
    """Server-Sent Events: what happens to the conversations this user may work on (``view=mine``: only
    theirs), and always to ``conversation`` (the page open). Each event is ``inbox`` with JSON data
    {type, conversation_id, message_id}; the page fetches what changed as HTML. The stream ends when the
    browser goes away, when the session ends, and when the server stops."""
    request = page.request
    user = page.user
    token = request.cookies.get(SESSION_COOKIE, "")
    if view not in ("", "mine"):
        raise InvalidInput(page.t.gettext("{field}: not one of the choices offered", field="view"))

    def start() -> Reach:
        with page.db.read() as session:
            if conversation:
                visible_conversation(session, page, conversation)
            return reach_of(session, user)

    reach = await run_in_threadpool(start)

    def visible(conversation_id: str) -> bool:
        with page.db.read() as session:
            row = session.execute(
                select(Conversation.assignee_id, Conversation.team_id).where(
                    Conversation.id == conversation_id
                )
            ).first()
        return row is not None and reach.allows(row.assignee_id, row.team_id)

    async def wanted(item: dict[str, Any]) -> bool:
        conversation_id = str(item.get("conversation_id") or "")
        if conversation_id == conversation:
            return True
        if view == "mine":
            return user.agent_id is not None and item.get("agent_id") == user.agent_id
        if reach.everything or (user.agent_id is not None and item.get("agent_id") == user.agent_id):
            return True
        return await run_in_threadpool(visible, conversation_id)

    async def stream() -> AsyncIterator[str]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=LIVE_QUEUE)
        loop = asyncio.get_running_loop()

        subscription = feed.FEED.subscribe(partial(_offer, queue), loop)
        try:
            # Subscribed: the page may now fetch what it missed, nothing later will be lost.
            yield "retry: 3000\n" + _event("ready", {})
            beat = checked = time.monotonic()
            while True:
                try:
                    item: dict[str, Any] | None = await asyncio.wait_for(queue.get(), LIVE_POLL_SECONDS)
                except TimeoutError:
                    item = None
                if server_stopping(request):
                    return
                moment = time.monotonic()
                if moment - checked >= LIVE_SESSION_CHECK_SECONDS:
                    checked = moment
                    if not await run_in_threadpool(_session_valid, page, token):
                        yield _event("signed_out", {})
                        return
                if item is not None and await wanted(item):
                    data = item.get("data") or {}
                    beat = moment
                    yield _event("inbox", {"type": item.get("type"), "conversation_id": item.get("conversation_id"),
                                           "message_id": data.get("message_id")})  # fmt: skip
                elif moment - beat >= LIVE_HEARTBEAT_SECONDS:
                    beat = moment
                    yield ": keep-alive\n\n"
        finally:
            feed.FEED.unsubscribe(subscription)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={**SECURITY_HEADERS, "X-Accel-Buffering": "no"},
    )
