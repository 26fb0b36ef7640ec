"""Twilio: SMS and WhatsApp.

Inbound: Twilio posts each message to ``POST /v1/channels/twilio/messages`` (form-encoded). The request
is accepted only with a valid ``X-Twilio-Signature`` (base64 HMAC-SHA1 with the auth token of the URL
Twilio called followed by every POST parameter, sorted, as name + value). Twilio signs no timestamp: a
replayed request carries a ``MessageSid`` already stored, and the inbox ignores it. The answer is an
empty TwiML document: replies are written by agents and sent through the REST API.

Outbound: ``TwilioSender`` posts to ``{api}/2010-04-01/Accounts/{sid}/Messages.json`` with HTTP Basic
(account SID, auth token). Which adapter sends WhatsApp when Meta is configured too is decided by
``whatsapp_provider`` (setting ``PARCOURS_WHATSAPP_PROVIDER``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
from fastapi import APIRouter, FastAPI, Request, Response

from parcours.config import Settings
from parcours.deps import read_body
from parcours.errors import Forbidden, InvalidInput, NotAuthenticated
from parcours.inbox.outbound import DeliveryFailed, Outbox, Outgoing
from parcours.inbox.service import Inbound
from parcours.inbox.writer import InboxWriter
from parcours.routing import add_webhooks

log = logging.getLogger("parcours.channels.twilio")
router = APIRouter(tags=["channels"])

WEBHOOK_PATH = "/v1/channels/twilio/messages"
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAX_MEDIA = 10  # Twilio attaches at most 10 media to a message
MAX_BODY = 1600  # Twilio's limit on an outgoing message's Body
FORM = "application/x-www-form-urlencoded"


# ------------------------------------------------------------------------------------------ signature
def twilio_signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """The X-Twilio-Signature of a form POST: base64(HMAC-SHA1(token, url + name1 + value1 + …)) with the
    parameters sorted by name (then value, for a repeated name)."""
    return _signature(auth_token.encode(), url, _signed_parameters(params)).decode()


def _signed_parameters(params: list[tuple[str, str]]) -> str:
    return "".join(name + value for name, value in sorted(params))


def _signature(key: bytes, url: str, parameters: str) -> bytes:
    return base64.b64encode(hmac.new(key, (url + parameters).encode(), hashlib.sha1).digest())


def _url_variants(url: str) -> list[str]:
    """The URL as given, and with the scheme's default port added or removed: Twilio's own validators
    accept both, as proxies and Twilio differ in writing it."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    variants = [url]
    if default is not None:
        try:
            port = parts.port
        except ValueError:
            return variants
        if port is None:
            variants.append(urlunsplit(parts._replace(netloc=f"{host}:{default}")))
        elif port == default:
            variants.append(urlunsplit(parts._replace(netloc=host)))
    return variants


def signed_url(request: Request, settings: Settings) -> str:
    """The URL Twilio signed: the configured public base URL + the path and query, or the request's
    own URL when no base URL is configured."""
    base = settings.twilio_webhook_base_url.rstrip("/")
    if not base:
        return str(request.url)
    query = request.url.query
    return base + request.url.path + (f"?{query}" if query else "")


def check_signature(request: Request, settings: Settings, params: list[tuple[str, str]]) -> None:
    signature = request.headers.get("x-twilio-signature", "").strip().encode()
    key, parameters = settings.twilio_auth_token.encode(), _signed_parameters(params)
    expected = [_signature(key, url, parameters) for url in _url_variants(signed_url(request, settings))]
    # compare_digest on every candidate (no early exit): constant time whichever matches.
    matches = [hmac.compare_digest(signature, candidate) for candidate in expected]
    if not any(matches):
        raise Forbidden(
            "X-Twilio-Signature: does not match this request (another auth token, or a URL other than "
            "the one Twilio called: set PARCOURS_TWILIO_WEBHOOK_BASE_URL to the public base URL)"
        )


# ------------------------------------------------------------------------------------------- inbound
def parse_form(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("body: form data is not valid UTF-8") from None
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("body: malformed form data (application/x-www-form-urlencoded)") from None


def parse_inbound(params: list[tuple[str, str]]) -> Inbound:
    """What Twilio posted, as an ``Inbound``; InvalidInput names the parameter that is wrong."""
    fields = dict(params)  # a repeated parameter: the last value (Twilio repeats none of these)
    sid = (fields.get("MessageSid") or fields.get("SmsMessageSid") or "").strip()
    if not sid:
        raise InvalidInput("MessageSid: missing (is this a Twilio message webhook?)")
    if len(sid) > 64:
        raise InvalidInput("MessageSid: longer than 64 characters")
    sender = fields.get("From", "").strip()
    if not sender:
        raise InvalidInput("From: missing")
    prefix, colon, address = sender.partition(":")
    if colon and prefix.lower() == "whatsapp":
        number = address.strip()
        channel, identifiers = "whatsapp", [("whatsapp", number), ("phone", number)]
    elif colon:
        raise InvalidInput(f"From: {prefix[:20]!r} addresses are not handled (SMS and WhatsApp only)")
    else:
        number = sender
        channel, identifiers = "sms", [("phone", number)]
    raw_count = fields.get("NumMedia", "0").strip() or "0"
    if not raw_count.isdigit() or int(raw_count) > MAX_MEDIA:
        raise InvalidInput(f"NumMedia: must be a whole number from 0 to {MAX_MEDIA}")
    attachments: list[dict[str, object]] = []
    for index in range(int(raw_count)):
        url = fields.get(f"MediaUrl{index}", "").strip()
        if not url.startswith(("https://", "http://")):
            raise InvalidInput(f"MediaUrl{index}: missing or not an http(s) URL (NumMedia is {raw_count})")
        attachments.append(
            {"url": url[:2000], "content_type": fields.get(f"MediaContentType{index}", "")[:200] or None}
        )
    details: dict[str, object] = {"to": fields.get("To", "")[:64]}
    if fields.get("NumSegments"):
        details["segments"] = fields["NumSegments"][:8]
    profile_name = fields.get("ProfileName", "").strip()[:200]
    return Inbound(
        channel=channel,
        provider="twilio",
        provider_message_id=sid,
        identifiers=identifiers,
        body=fields.get("Body", ""),
        customer_address=number,
        attachments=attachments,
        details=details,
        traits={"name": profile_name} if profile_name else {},
    )


@router.post(WEBHOOK_PATH, response_class=Response, summary="Twilio messaging webhook (SMS, WhatsApp)")
async def twilio_message(request: Request) -> Response:
    """A message from a customer, as Twilio posts it; answered with empty TwiML."""
    settings: Settings = request.app.state.settings  # read per request: tests and reloads change it
    if not settings.twilio_auth_token:
        raise Forbidden("Twilio webhooks are not configured on this server (PARCOURS_TWILIO_AUTH_TOKEN)")
    if not request.headers.get("x-twilio-signature", "").strip():
        raise NotAuthenticated("X-Twilio-Signature: missing; only requests signed by Twilio are accepted")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise InvalidInput(f"Content-Type: must be {FORM}, as Twilio posts messages")
    params = parse_form(await read_body(request, settings.max_batch_bytes))
    check_signature(request, settings, params)
    account = dict(params).get("AccountSid", "")
    if settings.twilio_account_sid and not hmac.compare_digest(
        account.encode(), settings.twilio_account_sid.encode()
    ):
        raise Forbidden("AccountSid: not the Twilio account configured on this server")
    inbound = parse_inbound(params)
    writer: InboxWriter = request.app.state.inbox_writer  # group commit with other channels' messages
    received = await writer.submit_async(inbound)
    log.info(
        "message received",
        extra={
            "channel": inbound.channel,
            "provider_message_id": inbound.provider_message_id,
            "message_id": received.message_id,
            "duplicate": received.duplicate,
        },
    )
    return Response(content=EMPTY_TWIML, media_type="text/xml")


# ------------------------------------------------------------------------------------------ outbound
def sms_ready(settings: Settings) -> bool:
    return bool(settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_sms_from)


def twilio_whatsapp_ready(settings: Settings) -> bool:
    return bool(settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_whatsapp_from)


def meta_whatsapp_ready(settings: Settings) -> bool:
    return bool(settings.meta_whatsapp_phone_number_id and settings.meta_whatsapp_access_token)


def whatsapp_provider(settings: Settings) -> str | None:
    """The adapter that sends WhatsApp replies: the one ``PARCOURS_WHATSAPP_PROVIDER`` names (if it is
    configured), or with ``auto`` Twilio when its WhatsApp sender is configured, else Meta; None when
    neither can send."""
    ready = {"twilio": twilio_whatsapp_ready(settings), "meta": meta_whatsapp_ready(settings)}
    if settings.whatsapp_provider in ready:
        return settings.whatsapp_provider if ready[settings.whatsapp_provider] else None
    return next((name for name in ("twilio", "meta") if ready[name]), None)


def provider_error(provider: str, response: httpx.Response) -> str:
    """A short reason for a refused send: the HTTP status and the provider's error code and message
    (never the request, which holds credentials)."""
    reason = f"{provider} answered {response.status_code}"
    try:
        payload = response.json()
    except ValueError:
        return reason
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):  # the Graph API's shape
        payload = payload["error"]
    if not isinstance(payload, dict):
        return reason
    code, message = payload.get("code"), payload.get("message")
    if code is not None:
        reason += f" (error {str(code)[:20]}"
        reason += f": {str(message)[:200]})" if message else ")"
    elif message:
        reason += f" ({str(message)[:200]})"
    return reason


class TwilioSender:
    """Sends agents' replies on ``sms`` or ``whatsapp`` through Twilio's Messages API."""

    def __init__(self, settings: Settings, channel: str) -> None:
        if channel not in ("sms", "whatsapp"):
            raise ValueError(f"Twilio sends sms and whatsapp, not {channel!r}")
        self.channel = channel
        self.account_sid = settings.twilio_account_sid
        self.auth_token = settings.twilio_auth_token
        self.url = (
            f"{settings.twilio_api_base_url.rstrip('/')}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        )
        self.timeout = settings.twilio_timeout_seconds
        if channel == "whatsapp":
            number = settings.twilio_whatsapp_from.removeprefix("whatsapp:")
            self.sender = {"From": f"whatsapp:{number}"}
        elif settings.twilio_sms_from.startswith("MG"):
            self.sender = {"MessagingServiceSid": settings.twilio_sms_from}
        else:
            self.sender = {"From": settings.twilio_sms_from}

    def send(self, outgoing: Outgoing) -> str:
        if len(outgoing.body) > MAX_BODY:
            raise DeliveryFailed(f"the message is over Twilio's {MAX_BODY}-character limit")
        number = outgoing.to.removeprefix("whatsapp:")
        if not number:
            raise DeliveryFailed("no customer number to send to")
        to = f"whatsapp:{number}" if self.channel == "whatsapp" else number
        try:
            with httpx.Client(timeout=self.timeout) as client:
                response = client.post(
                    self.url,
                    data={"To": to, **self.sender, "Body": outgoing.body},
                    auth=(self.account_sid, self.auth_token),
                    headers={"Accept": "application/json"},
                )
        except httpx.HTTPError as error:
            raise DeliveryFailed(f"Twilio could not be reached ({type(error).__name__})") from None
        if not response.is_success:
            raise DeliveryFailed(provider_error("Twilio", response))
        try:
            sid = response.json().get("sid")
        except (ValueError, AttributeError):
            sid = None
        if not isinstance(sid, str) or not sid:
            raise DeliveryFailed(f"Twilio answered {response.status_code} without a message sid")
        return sid


def register_senders(outbox: Outbox, settings: Settings) -> list[str]:
    """Register Twilio's senders for the channels it is configured for; returns those channels."""
    channels = []
    if sms_ready(settings):
        outbox.register("sms", TwilioSender(settings, "sms"))
        channels.append("sms")
    if whatsapp_provider(settings) == "twilio":
        outbox.register("whatsapp", TwilioSender(settings, "whatsapp"))
        channels.append("whatsapp")
    return channels


def install(app: FastAPI, settings: Settings) -> None:
    """The webhook route (always: without an auth token it refuses every request) and the senders."""
    add_webhooks(app, router)
    outbox: Outbox = app.state.outbox
    register_senders(outbox, settings)
