"""The web chat channel: a small JavaScript widget (``GET /widget.js``) that any page embeds with one
script tag, a WebSocket endpoint (``/v1/chat/ws``) that turns the visitor's messages into inbox messages,
and a sender that pushes agents' replies to the visitor's open sockets.

The protocol, one JSON object per text frame:

- visitor → server, first frame: ``{"type": "hello", "anonymous_id": "…", "site": "…"?,
  "identity": {"user_id", "email"?, "name"?, "signature"}?}``. A logged-in visitor is identified by an
  identity the site's back end signed with the shared secret ``PARCOURS_WIDGET_IDENTITY_SECRET``
  (:func:`identity_signature`); a bad signature, or any identity while no secret is configured, closes
  the socket (error frame, close code 1008) and nothing is written.
- server → visitor: ``{"type": "history", "identified", "messages": […]}`` (the chat's recent messages,
  so a reply that could not be pushed live is seen on the next visit).
- visitor → server: ``{"type": "message", "client_id", "body"}``; stored through the inbox writer, ``receive()`` (provider
  ``widget``, provider message id ``<anonymous id>:<client id>``: a resent frame is a duplicate), answered
  by ``{"type": "ack", "client_id", "id", "duplicate", "sent_at"}``.
- server → visitor: ``{"type": "message", "direction": "outbound" | "inbound", "id", "body", "sent_at"}``
  (an agent's reply, or the visitor's own message typed in another tab), and
  ``{"type": "error", "code", "message", "client_id"?}``.

Sockets live in a :class:`ChatHub` (one per app, ``app.state.chat_hub``), in this process only: with
several server processes a reply reaches the visitor live only if its socket is on the process that
delivers it; otherwise the reply is ``failed`` and shown in the history frame on the next connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import orjson
from fastapi import APIRouter, FastAPI, Request, Response, WebSocket
from starlette.websockets import WebSocketState

from parcours.config import Settings
from parcours.db.engine import Database
from parcours.db.types import utcnow
from parcours.errors import Conflict, InvalidInput, NotFound, ParcoursError
from parcours.identity import service as identity
from parcours.identity.kinds import InvalidIdentifier
from parcours.ids import new_id
from parcours.inbox import service as inbox
from parcours.inbox.outbound import ADDRESS_KINDS, DeliveryFailed, Outgoing
from parcours.inbox.service import Inbound
from parcours.inbox.writer import InboxWriter
from parcours.inputs import NUL_MESSAGE
from parcours.routing import add_routes

log = logging.getLogger("parcours.channels.widget")

CLOSE_POLICY_VIOLATION = 1008  # the widget does not reconnect after it
CLOSE_INTERNAL_ERROR = 1011  # it does after this one, with backoff
HELLO_TIMEOUT_SECONDS = 10.0
SEND_TIMEOUT_SECONDS = 5.0
MAX_SOCKETS_PER_VISITOR = 20
RATE_BURST = 10  # frames a connection may send at once beyond its steady pace
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")

ANONYMOUS_ID = re.compile(r"[A-Za-z0-9_-]{8,100}")  # crypto.randomUUID() fits; no ':' (see provider id)
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
SITE = re.compile(r"[A-Za-z0-9._-]{1,100}")
SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
HELLO_FIELDS = frozenset({"type", "anonymous_id", "identity", "site"})
IDENTITY_FIELDS = frozenset({"user_id", "email", "name", "signature"})
MESSAGE_FIELDS = frozenset({"type", "client_id", "body"})

Address = tuple[str, str]  # (identifier kind, value): how the hub files a visitor's sockets


# ------------------------------------------------------------------------------------------- errors
class FrameError(ParcoursError):
    """A frame the server cannot take; ``fatal`` ones end the connection (policy violation)."""

    def __init__(self, code: str, message: str, *, client_id: str | None = None, fatal: bool = False):
        super().__init__(message)
        self.code = code
        self.client_id = client_id
        self.fatal = fatal

    def frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.client_id is not None:
            frame["client_id"] = self.client_id
        return frame


# ---------------------------------------------------------------------------------- identity signing
def identity_signature(secret: str, user_id: str, email: str | None = None) -> str:
    """What a site's back end computes for a logged-in visitor: the hex HMAC-SHA256, keyed with the
    shared secret, of the user id, or of ``user_id + "\\n" + email`` when the identity carries an e-mail
    address (the address is vouched for too: otherwise any logged-in visitor could claim anyone's)."""
    payload = user_id if email is None else f"{user_id}\n{email}"
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Visitor:
    anonymous_id: str
    user_id: str | None = None
    email: str | None = None
    name: str | None = None
    site: str | None = None

    @property
    def identified(self) -> bool:
        return self.user_id is not None

    @property
    def address(self) -> Address:
        """Where replies find this visitor: the verified user id, else the browser's anonymous id (the
        order of ``ADDRESS_KINDS["chat"]``, which picks the reply's address)."""
        if self.user_id is not None:
            return ("user_id", self.user_id)
        return ("anonymous_id", self.anonymous_id)

    @property
    def addresses(self) -> list[Address]:
        """Where the hub files the visitor's sockets: a signed-in visitor's browser is hers, so replies
        to its anonymous id (a conversation from before she logged in) reach her too."""
        return [self.address] + ([("anonymous_id", self.anonymous_id)] if self.identified else [])

    def identifiers(self) -> list[tuple[str, str]]:
        found = [("anonymous_id", self.anonymous_id)]
        if self.user_id is not None:
            found.append(("user_id", self.user_id))
        if self.email is not None:
            found.append(("email", self.email))
        return found


def _text(value: object, field: str, *, max_length: int) -> str:
    if not isinstance(value, str):
        raise FrameError("invalid_hello", f"{field}: must be a string", fatal=True)
    # Checked as sent, never trimmed: the signature covers these exact characters.
    if not value or len(value) > max_length or value != value.strip() or any(ord(c) < 32 for c in value):
        raise FrameError(
            "invalid_hello",
            f"{field}: 1 to {max_length} characters, no control characters or surrounding spaces",
            fatal=True,
        )
    return value


def parse_hello(frame: dict[str, Any], settings: Settings) -> Visitor:
    """The visitor a hello frame describes, its identity verified; raises a fatal FrameError."""
    if frame.get("type") != "hello":
        raise FrameError("hello_expected", 'the first frame must be {"type": "hello", …}', fatal=True)
    unknown = sorted(set(frame) - HELLO_FIELDS)
    if unknown:
        raise FrameError("invalid_hello", f"{unknown[0]}: unknown field", fatal=True)
    anonymous_id = frame.get("anonymous_id")
    if not isinstance(anonymous_id, str) or not ANONYMOUS_ID.fullmatch(anonymous_id):
        raise FrameError(
            "invalid_hello", "anonymous_id: 8 to 100 letters, digits, '-' or '_' (a UUID)", fatal=True
        )
    site = frame.get("site")
    if site is not None and (not isinstance(site, str) or not SITE.fullmatch(site)):
        raise FrameError("invalid_hello", "site: 1 to 100 letters, digits, '.', '-' or '_'", fatal=True)
    claimed = frame.get("identity")
    if claimed is None:
        return Visitor(anonymous_id, site=site)
    if not isinstance(claimed, dict):
        raise FrameError("invalid_identity", "identity: must be an object", fatal=True)
    unknown = sorted(set(claimed) - IDENTITY_FIELDS)
    if unknown:
        raise FrameError("invalid_identity", f"identity.{unknown[0]}: unknown field", fatal=True)
    secret = settings.widget_identity_secret.get_secret_value()
    if not secret:
        raise FrameError(
            "identity_not_configured",
            "identity: signed identities are not accepted by this server (no identity secret is "
            "configured); chat anonymously or ask the site to configure identity verification",
            fatal=True,
        )
    user_id = _text(claimed.get("user_id"), "identity.user_id", max_length=200)
    email = claimed.get("email")
    if email is not None:
        email = _text(email, "identity.email", max_length=200)
    name = claimed.get("name")
    if name is not None:
        name = _text(name, "identity.name", max_length=200)
    signature = claimed.get("signature")
    if not isinstance(signature, str) or not SIGNATURE.fullmatch(signature):
        raise FrameError(
            "invalid_identity", "identity.signature: missing, or not a hex HMAC-SHA256", fatal=True
        )
    expected = identity_signature(secret, user_id, email)
    if not hmac.compare_digest(expected, signature.lower()):
        raise FrameError(
            "invalid_identity",
            "identity.signature: does not match the identity (forged or stale)",
            fatal=True,
        )
    return Visitor(anonymous_id, user_id=user_id, email=email, name=name, site=site)


# ------------------------------------------------------------------------------------------- frames
def decode_frame(message: Mapping[str, Any], max_bytes: int) -> dict[str, Any]:
    """A received WebSocket message as a JSON object, or a FrameError saying what is wrong."""
    if message.get("bytes") is not None:
        raise FrameError("invalid_frame", "binary frames are not accepted: send JSON text")
    text = message.get("text")
    if not isinstance(text, str):
        raise FrameError("invalid_frame", "empty frame")
    if len(text) > max_bytes or len(text.encode()) > max_bytes:
        raise FrameError("frame_too_large", f"a frame is at most {max_bytes} bytes")
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FrameError("invalid_json", "the frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise FrameError("invalid_frame", "a frame is a JSON object with a 'type'")
    return frame


def parse_message(frame: dict[str, Any], max_chars: int) -> tuple[str, str]:
    """A message frame's client id and body."""
    client_id = frame.get("client_id")
    if not isinstance(client_id, str) or not CLIENT_ID.fullmatch(client_id):
        raise FrameError("invalid_message", "client_id: 1 to 100 letters, digits, '-' or '_'")
    unknown = sorted(set(frame) - MESSAGE_FIELDS)
    if unknown:
        raise FrameError("invalid_message", f"{unknown[0]}: unknown field", client_id=client_id)
    body = frame.get("body")
    if not isinstance(body, str):
        raise FrameError("invalid_message", "body: must be a string", client_id=client_id)
    body = body.strip()
    if not body:
        raise FrameError("invalid_message", "body: must not be empty", client_id=client_id)
    if len(body) > max_chars:
        raise FrameError("invalid_message", f"body: at most {max_chars} characters", client_id=client_id)
    if "\x00" in body:
        raise FrameError("invalid_message", f"body: {NUL_MESSAGE}", client_id=client_id)
    return client_id, body


class RateLimit:
    """A token bucket per connection: ``per_minute`` frames a minute, bursts of ``burst``."""

    def __init__(self, per_minute: int, burst: int = RATE_BURST) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def origin_allowed(origin: str | None, host: str | None, settings: Settings) -> bool:
    """Browsers name the page that opens a socket: the server's own host, localhost and the configured
    origins may. A client without an Origin header is not a browser (and could claim any origin)."""
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if parts.hostname in LOCAL_HOSTS or (host is not None and parts.netloc == host.strip().lower()):
        return True
    allowed = {o.strip().rstrip("/").lower() for o in settings.widget_allowed_origins.split(",") if o.strip()}
    return "*" in allowed or origin in allowed


# ----------------------------------------------------------------------------------------------- hub
class Connection:
    """One visitor socket; sends are serialised (replies come from other tasks) and time-limited."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self._lock = asyncio.Lock()
        self.alive = True

    async def send(self, frame: dict[str, Any]) -> bool:
        if not self.alive:
            return False
        async with self._lock:
            try:
                with anyio.fail_after(SEND_TIMEOUT_SECONDS):
                    await self.websocket.send_text(orjson.dumps(frame).decode())
                return True
            except Exception:  # a closed, broken or stalled socket: the visitor is gone from it
                self.alive = False
                return False

    async def close(self, code: int, reason: str = "") -> None:
        self.alive = False
        if self.websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):  # the visitor already left
                await self.websocket.close(code, reason[:120])


class ChatHub:
    """The open sockets of each visitor, filed by address. Touched only on the event loop; the
    outbound sender (a worker thread) reaches it through :meth:`push_from_thread`."""

    def __init__(self) -> None:
        self._sockets: dict[Address, set[Connection]] = {}
        self._token: anyio.lowlevel.EventLoopToken | None = None

    def add(self, address: Address, connection: Connection) -> bool:
        self._token = anyio.lowlevel.current_token()  # the loop serving the sockets (the latest one)
        sockets = self._sockets.setdefault(address, set())
        if len(sockets) >= MAX_SOCKETS_PER_VISITOR:
            return False
        sockets.add(connection)
        return True

    def remove(self, address: Address, connection: Connection) -> None:
        sockets = self._sockets.get(address)
        if sockets is not None:
            sockets.discard(connection)
            if not sockets:
                del self._sockets[address]

    def connected(self, address: Address) -> int:
        return len(self._sockets.get(address, ()))

    async def push(self, address: Address, frame: dict[str, Any], exclude: Connection | None = None) -> int:
        """Send a frame to every open socket of a visitor; returns how many took it."""
        targets = [c for c in self._sockets.get(address, ()) if c is not exclude and c.alive]
        delivered = 0

        async def one(connection: Connection) -> None:
            nonlocal delivered
            if await connection.send(frame):
                delivered += 1

        async with anyio.create_task_group() as group:
            for connection in targets:
                group.start_soon(one, connection)
        return delivered

    def push_from_thread(self, address: Address, frame: dict[str, Any]) -> int:
        """:meth:`push`, called from a worker thread: runs on the hub's event loop and waits for it."""
        if self._token is None:
            return 0  # no socket was ever opened in this process
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:  # blocking here would stall the very loop that must do the sending
            raise DeliveryFailed("chat replies must be delivered from a worker thread, not the event loop")
        try:
            return anyio.from_thread.run(self.push, address, frame, token=self._token)
        except anyio.RunFinishedError:
            return 0  # the server is stopping: the sockets are gone


# -------------------------------------------------------------------------------------------- sender
class ChatSender:
    """Delivers agents' replies on the chat channel to the visitor's open sockets (``Sender``)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def send(self, outgoing: Outgoing) -> str:
        hub: ChatHub = self.app.state.chat_hub
        database: Database = self.app.state.database
        address = (self._address_kind(database, outgoing), outgoing.to)
        frame = {
            "type": "message",
            "direction": "outbound",
            "id": outgoing.message_id,
            "body": outgoing.body,
            "sent_at": utcnow().isoformat(),
        }
        if hub.push_from_thread(address, frame) == 0:
            raise DeliveryFailed("the visitor is not connected")
        return new_id("chat")

    @staticmethod
    def _address_kind(database: Database, outgoing: Outgoing) -> str:
        """Whether the reply's address is the customer's user id or an anonymous id: a visitor may
        choose any anonymous id, so one equal to someone's user id must never receive that user's
        replies (nor the other way round)."""
        try:
            with database.read() as session:
                conversation = inbox.get_conversation(session, outgoing.conversation_id)
                held = {
                    (item["kind"], item["value"])
                    for item in identity.profile_view(session, conversation.profile_id)["identifiers"]
                }
        except ParcoursError as error:
            raise DeliveryFailed(f"the conversation's customer cannot be read: {error.message}") from None
        for kind in ADDRESS_KINDS["chat"]:
            if (kind, outgoing.to) in held:
                return kind
        raise DeliveryFailed("the chat address is no longer the customer's")


# -------------------------------------------------------------------------------------- the socket
def _prepare(database: Database, settings: Settings, visitor: Visitor) -> list[dict[str, Any]]:
    """Check the visitor's identifiers (a bad e-mail address in a signed identity is refused now, not
    on every message) and read the chat's recent messages."""
    with database.read() as session:
        registry = identity.load_registry(session, settings.default_phone_region)
        for kind, value in visitor.identifiers():
            try:
                registry.normalize(kind, value)
            except InvalidIdentifier as error:
                raise FrameError("invalid_identity", f"identity {kind}: {error}", fatal=True) from None
        if settings.widget_history_limit == 0:
            return []
        kind, value = visitor.address
        try:
            profile_id = identity.find_profile_id(session, registry, kind, value)
        except NotFound:
            return []  # a new visitor
        latest = inbox.list_conversations(
            session, status=None, assignee_id=None, channel=None, profile_id=profile_id, limit=1
        )
        if not latest:
            return []
        thread = inbox.read_conversation(session, latest[0]["id"])
    if not visitor.identified and any(i["kind"] == "user_id" for i in thread["customer"]["identifiers"]):
        return []  # a known customer's chat is shown only to her verified identity (a shared computer)
    chat = [
        m for m in thread["messages"] if m["channel"] == "chat" and m["direction"] in ("inbound", "outbound")
    ]
    return [_message_frame(m) for m in chat[-settings.widget_history_limit :]]


def _message_frame(message: dict[str, Any]) -> dict[str, Any]:
    frame = {
        "id": message["id"],
        "direction": message["direction"],
        "body": message["body"],
        "sent_at": message["sent_at"],
    }
    client_id = (message.get("details") or {}).get("client_id")
    if message["provider"] == "widget" and isinstance(client_id, str):
        frame["client_id"] = client_id
    return frame


def _error_name() -> str:
    error = sys.exc_info()[1]
    return type(error).__name__ if error is not None else "unknown"


async def chat_socket(websocket: WebSocket) -> None:
    app = websocket.app
    settings: Settings = app.state.settings
    database: Database = app.state.database
    hub: ChatHub = app.state.chat_hub
    writer: InboxWriter = app.state.inbox_writer
    await websocket.accept()
    connection = Connection(websocket)

    async def refuse(error: FrameError) -> None:
        log.info("chat connection refused", extra={"code": error.code})
        await connection.send(error.frame())
        await connection.close(CLOSE_POLICY_VIOLATION, error.code)

    if not origin_allowed(websocket.headers.get("origin"), websocket.headers.get("host"), settings):
        await refuse(FrameError("origin_not_allowed", "this page's origin may not open the chat", fatal=True))
        return
    try:
        with anyio.fail_after(HELLO_TIMEOUT_SECONDS):
            first = await websocket.receive()
        if first["type"] == "websocket.disconnect":
            return
        visitor = parse_hello(decode_frame(first, settings.widget_max_frame_bytes), settings)
    except TimeoutError:
        await refuse(FrameError("hello_expected", "no hello frame in time", fatal=True))
        return
    except FrameError as error:
        await refuse(error)
        return
    addresses = visitor.addresses
    if not all([hub.add(address, connection) for address in addresses]):
        for address in addresses:
            hub.remove(address, connection)
        await refuse(FrameError("too_many_connections", "too many open chats for this visitor", fatal=True))
        return
    try:
        # Filed in the hub before the history is read: a reply delivered meanwhile is in the history,
        # or pushed, or both (the widget drops a message id it already shows), never lost.
        try:
            history = await anyio.to_thread.run_sync(_prepare, database, settings, visitor)
        except FrameError as error:
            await refuse(error)
            return
        except Exception:
            log.error("chat history not read", extra={"error": _error_name()})
            await connection.send(
                FrameError("unavailable", "the chat is unavailable for a moment; reconnecting").frame()
            )
            await connection.close(CLOSE_INTERNAL_ERROR, "unavailable")
            return
        await connection.send({"type": "history", "identified": visitor.identified, "messages": history})
        limit = RateLimit(settings.widget_messages_per_minute)
        while connection.alive:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            try:
                frame = decode_frame(message, settings.widget_max_frame_bytes)
                client_id = frame.get("client_id") if isinstance(frame.get("client_id"), str) else None
                if not limit.take():
                    raise FrameError(
                        "rate_limited", "too many frames: wait a little, then send again", client_id=client_id
                    )
                if frame.get("type") != "message":
                    raise FrameError(
                        "invalid_frame", "type: a visitor sends only 'message' frames after hello"
                    )
                await _handle_message(writer, settings, hub, connection, visitor, frame)
            except FrameError as error:
                await connection.send(error.frame())
    finally:
        for address in addresses:
            hub.remove(address, connection)


async def _handle_message(
    writer: InboxWriter,
    settings: Settings,
    hub: ChatHub,
    connection: Connection,
    visitor: Visitor,
    frame: dict[str, Any],
) -> None:
    client_id, body = parse_message(frame, settings.widget_max_body_chars)
    inbound = Inbound(
        channel="chat",
        provider="widget",
        provider_message_id=f"{visitor.anonymous_id}:{client_id}",
        identifiers=visitor.identifiers(),
        body=body,
        customer_address=visitor.address[1],
        details={"client_id": client_id, **({"site": visitor.site} if visitor.site else {})},
        traits={"name": visitor.name} if visitor.name else {},
    )
    try:
        received = await writer.submit_async(inbound)  # group commit with other channels' messages
    except (InvalidInput, Conflict) as error:
        raise FrameError(error.code, error.message, client_id=client_id) from None
    except Exception:
        # Not the exception's text: a database error quotes its parameters (the message body).
        log.error("chat message not stored", extra={"client_id": client_id, "error": _error_name()})
        raise FrameError(
            "unavailable", "the message could not be stored now; send it again later", client_id=client_id
        ) from None
    sent_at = utcnow().isoformat()
    await connection.send(
        {
            "type": "ack",
            "client_id": client_id,
            "id": received.message_id,
            "duplicate": received.duplicate,
            "sent_at": sent_at,
        }
    )
    if not received.duplicate:  # the visitor's other tabs show it too
        echo = {"type": "message", "direction": "inbound", "id": received.message_id, "body": body}
        await hub.push(visitor.address, {**echo, "sent_at": sent_at, "client_id": client_id}, connection)


# -------------------------------------------------------------------------------------- the script
@lru_cache(maxsize=1)
def widget_script() -> tuple[bytes, str]:
    """The widget's source and its ETag."""
    source = resources.files("parcours.channels").joinpath("static/widget.js").read_bytes()
    return source, '"' + hashlib.sha256(source).hexdigest()[:32] + '"'


def serve_widget(request: Request) -> Response:
    source, etag = widget_script()
    headers = {
        "ETag": etag,
        "Cache-Control": "public, max-age=300",
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(source, media_type="text/javascript; charset=utf-8", headers=headers)


def install(app: FastAPI, settings: Settings) -> None:
    """The widget's script and socket routes, the hub, and the chat sender on the app's outbox."""
    app.state.chat_hub = ChatHub()
    router = APIRouter(tags=["chat"])
    router.add_api_route("/widget.js", serve_widget, methods=["GET"], include_in_schema=False)
    router.add_api_websocket_route("/v1/chat/ws", chat_socket)
    add_routes(app, router)
    app.state.outbox.register("chat", ChatSender(app))
