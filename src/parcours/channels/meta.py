"""Meta: WhatsApp Cloud API, Messenger and Instagram messaging.

Inbound: one webhook, ``/v1/channels/meta/webhook``. ``GET`` answers Meta's subscription handshake
(``hub.mode=subscribe``, ``hub.verify_token``, ``hub.challenge``). ``POST`` is accepted only with a valid
``X-Hub-Signature-256`` (``sha256=`` + hex HMAC-SHA256 of the raw body with the app secret); its
entries become inbox messages: ``whatsapp_business_account`` (channel whatsapp), ``page`` (Messenger)
and ``instagram``. Echoes of the page's own messages, delivery and read receipts, status updates and
other events are skipped. The whole payload is checked before anything is written: a malformed one is
refused (400) and nothing is stored. A replayed delivery carries message ids already stored: ignored.

Outbound: ``MetaSender`` posts to the Graph API, ``/{phone_number_id}/messages`` for WhatsApp and
``/me/messages`` for Messenger and Instagram, with a bearer token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from fastapi import APIRouter, FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from parcours.channels.twilio import provider_error, whatsapp_provider
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.deps import JsonResponse, read_body
from parcours.errors import Forbidden, InvalidInput, NotAuthenticated
from parcours.identity.resolution import GraphCache
from parcours.inbox.outbound import DeliveryFailed, Outbox, Outgoing
from parcours.inbox.service import Inbound, Received, receive
from parcours.routing import add_webhooks

log = logging.getLogger("parcours.channels.meta")
router = APIRouter(tags=["channels"])

WEBHOOK_PATH = "/v1/channels/meta/webhook"
OBJECTS = {"whatsapp_business_account": "whatsapp", "page": "messenger", "instagram": "instagram"}
CHALLENGE = re.compile(r"^[A-Za-z0-9._~-]{1,256}$")
WA_ID = re.compile(r"^[1-9]\d{5,14}$")  # E.164 without the +
SCOPED_ID = re.compile(r"^\d{1,40}$")  # page- and Instagram-scoped ids are numeric
MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
# The longest text each channel accepts in one message (Instagram counts bytes).
TEXT_LIMITS = {"whatsapp": 4096, "messenger": 2000}
INSTAGRAM_MAX_BYTES = 1000


# ------------------------------------------------------------------------------------ subscription
@router.get(WEBHOOK_PATH, response_class=Response, summary="Meta webhook subscription handshake")
def meta_handshake(request: Request) -> Response:
    """Meta checks the callback URL: the verify token must match; the challenge is echoed back."""
    settings: Settings = request.app.state.settings  # read per request: tests and reloads change it
    if not settings.meta_verify_token:
        raise Forbidden("Meta webhooks are not configured on this server (PARCOURS_META_VERIFY_TOKEN)")
    query = request.query_params
    token = query.get("hub.verify_token", "")
    if not hmac.compare_digest(token.encode(), settings.meta_verify_token.encode()):
        raise Forbidden("hub.verify_token: does not match the verify token configured on this server")
    if query.get("hub.mode") != "subscribe":
        raise InvalidInput("hub.mode: must be 'subscribe'")
    challenge = query.get("hub.challenge", "")
    if not CHALLENGE.match(challenge):
        raise InvalidInput("hub.challenge: missing, or not 1 to 256 letters, digits, '.', '_', '~', '-'")
    return Response(content=challenge, media_type="text/plain", headers={"X-Content-Type-Options": "nosniff"})


# ------------------------------------------------------------------------------------------ signature
def meta_signature(app_secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 of a body: ``sha256=`` + hex HMAC-SHA256 with the app secret."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def check_signature(header: str, app_secret: str, body: bytes) -> None:
    expected = meta_signature(app_secret, body)
    if not hmac.compare_digest(header.strip().encode(), expected.encode()):
        raise Forbidden("X-Hub-Signature-256: does not match the body (another app secret, or altered)")


# --------------------------------------------------------------------------------------- the payload
@dataclass
class Parsed:
    messages: list[Inbound] = field(default_factory=list)
    skipped: int = 0  # echoes, receipts, statuses, other events


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{path}: must be a JSON object")
    return value


def _list(value: Any, path: str) -> list[Any]:
    """An optional list: absent is empty, anything but a list is refused."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"{path}: must be a list")
    return value


def _text(value: Any, path: str, *, limit: int = 300) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput(f"{path}: missing or not a string")
    text = str(value).strip()
    if not text or len(text) > limit:
        raise InvalidInput(f"{path}: must be 1 to {limit} characters")
    return text


def _time(value: Any, path: str, *, milliseconds: bool) -> datetime:
    raw = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not raw.isdigit():
        unit = "milliseconds" if milliseconds else "seconds"
        raise InvalidInput(f"{path}: must be a Unix time in {unit}")
    seconds = int(raw) / 1000 if milliseconds else int(raw)
    if not 0 < seconds < 32_503_680_000:  # before the year 3000
        raise InvalidInput(f"{path}: out of range")
    return datetime.fromtimestamp(seconds, UTC)


def _whatsapp_content(message: dict[str, Any], path: str) -> tuple[str, list[dict[str, Any]], str]:
    """The body, attachments and type of a WhatsApp Cloud message."""
    kind = message.get("type", "text")
    if not isinstance(kind, str):
        raise InvalidInput(f"{path}.type: must be a string")
    if kind == "text":
        text = _object(message.get("text"), f"{path}.text").get("body")
        if not isinstance(text, str):
            raise InvalidInput(f"{path}.text.body: missing or not a string")
        return text, [], kind
    if kind in MEDIA_TYPES:
        media = _object(message.get(kind), f"{path}.{kind}")
        attachment = {
            "type": kind,
            "media_id": _text(media.get("id"), f"{path}.{kind}.id"),
            "content_type": media.get("mime_type") if isinstance(media.get("mime_type"), str) else None,
        }
        if isinstance(media.get("filename"), str):
            attachment["filename"] = media["filename"][:300]
        caption = media.get("caption")
        return caption if isinstance(caption, str) else "", [attachment], kind
    if kind == "button":
        text = _object(message.get("button"), f"{path}.button").get("text")
        return text if isinstance(text, str) else "", [], kind
    if kind == "interactive":
        interactive = _object(message.get("interactive"), f"{path}.interactive")
        for reply in ("button_reply", "list_reply"):
            if isinstance(interactive.get(reply), dict):
                title = interactive[reply].get("title")
                return title if isinstance(title, str) else "", [], kind
        return "", [], kind
    return "", [], kind  # location, contacts, reaction, unsupported…: the type is kept in the details


def _parse_whatsapp(entries: list[Any], parsed: Parsed) -> None:
    for i, raw_entry in enumerate(entries):
        entry = _object(raw_entry, f"entry[{i}]")
        for j, raw_change in enumerate(_list(entry.get("changes"), f"entry[{i}].changes")):
            path = f"entry[{i}].changes[{j}]"
            change = _object(raw_change, path)
            if change.get("field") != "messages":
                parsed.skipped += 1  # template, quality, account updates…
                continue
            value = _object(change.get("value"), f"{path}.value")
            metadata: dict[str, Any] = value["metadata"] if isinstance(value.get("metadata"), dict) else {}
            names: dict[str, str] = {}
            for k, raw_contact in enumerate(_list(value.get("contacts"), f"{path}.value.contacts")):
                contact = _object(raw_contact, f"{path}.value.contacts[{k}]")
                profile = contact.get("profile")
                if isinstance(profile, dict) and isinstance(profile.get("name"), str):
                    names[str(contact.get("wa_id", ""))] = profile["name"].strip()[:200]
            parsed.skipped += len(_list(value.get("statuses"), f"{path}.value.statuses"))
            for k, raw_message in enumerate(_list(value.get("messages"), f"{path}.value.messages")):
                mpath = f"{path}.value.messages[{k}]"
                message = _object(raw_message, mpath)
                sender = _text(message.get("from"), f"{mpath}.from", limit=20)
                if not WA_ID.match(sender):
                    raise InvalidInput(f"{mpath}.from: must be the sender's number, digits with country code")
                number = f"+{sender}"
                body, attachments, kind = _whatsapp_content(message, mpath)
                details: dict[str, Any] = {"type": kind}
                if isinstance(metadata.get("phone_number_id"), str):
                    details["phone_number_id"] = metadata["phone_number_id"][:40]
                name = names.get(sender)
                parsed.messages.append(
                    Inbound(
                        channel="whatsapp",
                        provider="meta",
                        provider_message_id=_text(message.get("id"), f"{mpath}.id"),
                        identifiers=[("whatsapp", number), ("phone", number)],
                        body=body,
                        sent_at=_time(message.get("timestamp"), f"{mpath}.timestamp", milliseconds=False),
                        customer_address=number,
                        attachments=attachments,
                        details=details,
                        traits={"name": name} if name else {},
                    )
                )


def _parse_messaging(entries: list[Any], channel: str, parsed: Parsed) -> None:
    """Messenger (``page``) and Instagram: the same ``entry[].messaging[]`` shape."""
    for i, raw_entry in enumerate(entries):
        entry = _object(raw_entry, f"entry[{i}]")
        parsed.skipped += len(_list(entry.get("standby"), f"entry[{i}].standby"))
        parsed.skipped += len(_list(entry.get("changes"), f"entry[{i}].changes"))
        for j, raw_event in enumerate(_list(entry.get("messaging"), f"entry[{i}].messaging")):
            path = f"entry[{i}].messaging[{j}]"
            event = _object(raw_event, path)
            if event.get("message") is None:
                parsed.skipped += 1  # delivery, read, postback, reaction, referral, opt-in…
                continue
            message = _object(event["message"], f"{path}.message")
            if message.get("is_echo") or message.get("is_deleted"):
                parsed.skipped += 1  # the page's own message, or one the customer deleted
                continue
            sender = _text(_object(event.get("sender"), f"{path}.sender").get("id"), f"{path}.sender.id")
            if not SCOPED_ID.match(sender):
                raise InvalidInput(f"{path}.sender.id: must be a numeric {channel} scoped id")
            text = message.get("text", "")
            if not isinstance(text, str):
                raise InvalidInput(f"{path}.message.text: must be a string")
            attachments = []
            for k, raw_attachment in enumerate(
                _list(message.get("attachments"), f"{path}.message.attachments")
            ):
                attachment = _object(raw_attachment, f"{path}.message.attachments[{k}]")
                payload: dict[str, Any] = (
                    attachment["payload"] if isinstance(attachment.get("payload"), dict) else {}
                )
                url = payload.get("url")
                attachments.append(
                    {
                        "type": str(attachment.get("type", ""))[:40] or None,
                        "url": url[:2000] if isinstance(url, str) else None,
                    }
                )
            parsed.messages.append(
                Inbound(
                    channel=channel,
                    provider="meta",
                    provider_message_id=_text(message.get("mid"), f"{path}.message.mid"),
                    identifiers=[(channel, sender)],
                    body=text,
                    sent_at=_time(event.get("timestamp"), f"{path}.timestamp", milliseconds=True),
                    customer_address=sender,
                    attachments=attachments,
                    details={"type": "text" if text else "attachment"},
                )
            )


def parse_payload(payload: Any) -> Parsed:
    """Every customer message of a webhook delivery, or InvalidInput naming what is wrong (the
    JSON path) before anything is written."""
    body = _object(payload, "body")
    kind = body.get("object")
    if kind not in OBJECTS:
        raise InvalidInput(f"object: {str(kind)[:60]!r} is not handled; expected one of {', '.join(OBJECTS)}")
    if not isinstance(body.get("entry"), list):
        raise InvalidInput("entry: missing or not a list")
    parsed = Parsed()
    if kind == "whatsapp_business_account":
        _parse_whatsapp(body["entry"], parsed)
    else:
        _parse_messaging(body["entry"], OBJECTS[kind], parsed)
    return parsed


def _store(
    db: Database, settings: Settings, messages: list[Inbound], cache: GraphCache | None
) -> list[Received]:
    with db.write() as session:  # all or nothing: a refused message leaves the delivery unwritten
        return [receive(session, settings, inbound, cache=cache) for inbound in messages]


@router.post(WEBHOOK_PATH, summary="Meta webhook (WhatsApp Cloud, Messenger, Instagram)")
async def meta_event(request: Request) -> JsonResponse:
    """Customer messages as Meta posts them, checked against the app secret on the raw body."""
    settings: Settings = request.app.state.settings
    if not settings.meta_app_secret:
        raise Forbidden("Meta webhooks are not configured on this server (PARCOURS_META_APP_SECRET)")
    header = request.headers.get("x-hub-signature-256", "").strip()
    if not header:
        raise NotAuthenticated("X-Hub-Signature-256: missing; only requests signed by Meta are accepted")
    raw = await read_body(request, settings.max_batch_bytes)
    check_signature(header, settings.meta_app_secret, raw)
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidInput("body: malformed JSON") from None
    parsed = parse_payload(payload)
    received: list[Received] = []
    if parsed.messages:
        database: Database = request.app.state.database
        received = await run_in_threadpool(
            _store, database, settings, parsed.messages, request.app.state.graph_cache
        )
    duplicates = sum(1 for r in received if r.duplicate)
    log.info(
        "webhook received",
        extra={
            "object": payload["object"],
            "messages": len(received) - duplicates,
            "duplicates": duplicates,
            "skipped": parsed.skipped,
        },
    )
    return JsonResponse(
        {"received": len(received) - duplicates, "duplicates": duplicates, "skipped": parsed.skipped}
    )


# ------------------------------------------------------------------------------------------ outbound
class MetaSender:
    """Sends agents' replies through the Graph API: ``whatsapp`` (Cloud API), ``messenger`` or
    ``instagram`` (Send API, answering within Meta's messaging window)."""

    def __init__(self, settings: Settings, channel: str) -> None:
        base = f"{settings.meta_graph_base_url.rstrip('/')}/{settings.meta_graph_api_version}"
        self.channel = channel
        self.timeout = settings.meta_timeout_seconds
        if channel == "whatsapp":
            self.url = f"{base}/{settings.meta_whatsapp_phone_number_id}/messages"
            self.token = settings.meta_whatsapp_access_token
        elif channel == "messenger":
            self.url, self.token = f"{base}/me/messages", settings.meta_page_access_token
        elif channel == "instagram":
            self.url = f"{base}/me/messages"
            self.token = settings.meta_instagram_access_token or settings.meta_page_access_token
        else:
            raise ValueError(f"Meta sends whatsapp, messenger and instagram, not {channel!r}")

    def _check_length(self, body: str) -> None:
        if self.channel == "instagram":
            if len(body.encode()) > INSTAGRAM_MAX_BYTES:
                raise DeliveryFailed(f"the message is over Instagram's {INSTAGRAM_MAX_BYTES}-byte limit")
        elif len(body) > TEXT_LIMITS[self.channel]:
            raise DeliveryFailed(f"the message is over the {TEXT_LIMITS[self.channel]}-character limit")

    def send(self, outgoing: Outgoing) -> str:
        self._check_length(outgoing.body)
        if not outgoing.to:
            raise DeliveryFailed("no customer address to send to")
        if self.channel == "whatsapp":
            payload: dict[str, Any] = {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": outgoing.to.removeprefix("whatsapp:").lstrip("+"),
                "type": "text",
                "text": {"body": outgoing.body, "preview_url": False},
            }
        else:
            payload = {
                "recipient": {"id": outgoing.to},
                "message": {"text": outgoing.body},
                "messaging_type": "RESPONSE",
            }
        try:
            with httpx.Client(timeout=self.timeout) as client:
                response = client.post(
                    self.url, json=payload, headers={"Authorization": f"Bearer {self.token}"}
                )
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"Meta could not be reached ({type(error).__name__})") from None
        if not response.is_success:
            raise DeliveryFailed(provider_error("Meta", response))
        try:
            answer = response.json()
        except ValueError:
            answer = None
        message_id: Any = None
        if isinstance(answer, dict):
            if self.channel == "whatsapp":
                messages = answer.get("messages")
                if isinstance(messages, list) and messages and isinstance(messages[0], dict):
                    message_id = messages[0].get("id")
            else:
                message_id = answer.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            raise DeliveryFailed(f"Meta answered {response.status_code} without a message id")
        return message_id


def register_senders(outbox: Outbox, settings: Settings) -> list[str]:
    """Register Meta's senders for the channels it is configured for; returns those channels."""
    channels = []
    if whatsapp_provider(settings) == "meta":
        outbox.register("whatsapp", MetaSender(settings, "whatsapp"))
        channels.append("whatsapp")
    if settings.meta_page_access_token:
        outbox.register("messenger", MetaSender(settings, "messenger"))
        channels.append("messenger")
    if settings.meta_instagram_access_token or settings.meta_page_access_token:
        outbox.register("instagram", MetaSender(settings, "instagram"))
        channels.append("instagram")
    return channels


def install(app: FastAPI, settings: Settings) -> None:
    """The webhook routes (always: without an app secret and verify token they refuse every request)
    and the senders."""
    add_webhooks(app, router)
    outbox: Outbox = app.state.outbox
    register_senders(outbox, settings)
