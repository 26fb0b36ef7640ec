"""Local stand-ins for third-party APIs that cannot run here: real HTTP servers on a loopback port that
check what they receive (method, path, credentials, fields) and answer as the provider does.

``FakeProvider`` is the generic server: give it a handler per (method, path pattern). ``FakeTwilio`` and
``FakeGraph`` play Twilio's Messages API and Meta's Graph API send endpoints. Each records every request
(``requests``) and every rule a request broke (``problems``): a test asserts ``problems == []`` as well
as the outcome. ``fail_with(status, body)`` makes the next calls fail as the provider would.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body)

    def basic_auth(self) -> tuple[str, str] | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(value).decode().partition(":")
        return user, password

    def bearer(self) -> str | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        return value if scheme.lower() == "bearer" else None


@dataclass
class Answer:
    status: int
    body: Any = None  # dict/list as JSON, bytes as is
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Recorded, re.Match[str]], Answer]


class FakeProvider:
    """An HTTP server on 127.0.0.1 (a free port) in a thread; routes are (method, regex on the path)."""

    def __init__(self, name: str = "provider") -> None:
        self.name = name
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.requests: list[Recorded] = []
        self.problems: list[str] = []
        self._failure: Answer | None = None
        self._lock = threading.Lock()
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                parts = urlsplit(self.path)
                recorded = Recorded(
                    method=self.command,
                    path=parts.path,
                    query=parts.query,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                answer = fake._dispatch(recorded)
                payload = answer.body
                if payload is None:
                    data = b""
                elif isinstance(payload, bytes):
                    data = payload
                else:
                    data = json.dumps(payload).encode()
                self.send_response(answer.status)
                headers = {"Content-Type": "application/json", **answer.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(f"^{pattern}$"), handler))

    def problem(self, message: str) -> None:
        with self._lock:
            self.problems.append(message)

    def fail_with(self, status: int, body: Any = None) -> None:
        """Answer every following request with this (until ``recover``), after recording it."""
        self._failure = Answer(status, body)

    def recover(self) -> None:
        self._failure = None

    def _dispatch(self, recorded: Recorded) -> Answer:
        with self._lock:
            self.requests.append(recorded)
        for method, pattern, handler in self.routes:
            match = pattern.match(recorded.path)
            if match and method == recorded.method:
                if self._failure is not None:
                    return self._failure
                return handler(recorded, match)
        self.problem(f"unexpected {recorded.method} {recorded.path}")
        return Answer(404, {"message": f"{self.name}: no route {recorded.method} {recorded.path}"})

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    @contextmanager
    def running(self) -> Iterator[Self]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


# ------------------------------------------------------------------------------------------------ Twilio
E164 = re.compile(r"^\+[1-9]\d{4,14}$")


class FakeTwilio(FakeProvider):
    """Twilio's Messages API: ``POST /2010-04-01/Accounts/{sid}/Messages.json``, HTTP Basic (account
    SID, auth token), form fields To, From or MessagingServiceSid, Body; answers 201 with the message
    resource (``sid``), or Twilio's error shape (``code``, ``message``, ``status``)."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        super().__init__("twilio")
        self.account_sid, self.auth_token = account_sid, auth_token
        self.sent: list[dict[str, str]] = []
        self.route("POST", r"/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages\.json", self._create_message)

    @staticmethod
    def error(status: int, code: int, message: str) -> Answer:
        return Answer(status, {"code": code, "message": message, "status": status})

    def _create_message(self, request: Recorded, match: re.Match[str]) -> Answer:
        if request.basic_auth() != (self.account_sid, self.auth_token):
            self.problem("wrong or missing HTTP Basic credentials")
            return self.error(401, 20003, "Authenticate")
        if match["sid"] != self.account_sid:
            self.problem(f"account {match['sid']} in the path is not the authenticated one")
            return self.error(404, 20404, "The requested resource was not found")
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            self.problem("body is not form-encoded")
            return self.error(400, 21601, "Body must be form-encoded")
        form = request.form()
        to, sender, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        if not body:
            self.problem("no Body")
            return self.error(400, 21602, "Message body is required.")
        if not sender and not form.get("MessagingServiceSid", "").startswith("MG"):
            self.problem("neither From nor MessagingServiceSid")
            return self.error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required")
        whatsapp_to, whatsapp_from = to.startswith("whatsapp:"), sender.startswith("whatsapp:")
        if sender and whatsapp_to != whatsapp_from:
            self.problem("To and From are not on the same channel")
            return self.error(400, 63007, "Twilio could not find a Channel with the specified From address")
        if not E164.match(to.removeprefix("whatsapp:")):
            self.problem(f"To {to!r} is not E.164")
            return self.error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if len(body) > 1600:
            self.problem("Body over 1600 characters")
            return self.error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        sid = "SM" + uuid.uuid4().hex
        self.sent.append({**form, "sid": sid})
        return Answer(
            201,
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": to,
                "from": sender or None,
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "body": body,
                "status": "queued",
                "num_segments": "1",
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            },
        )


# ------------------------------------------------------------------------------------------------- Meta
class FakeGraph(FakeProvider):
    """Meta's Graph API send endpoints: ``POST /{version}/{phone_number_id}/messages`` (WhatsApp Cloud)
    and ``POST /{version}/me/messages`` (Messenger, Instagram), bearer tokens; answers as the Graph API
    does, or with its error shape (``{"error": {"message", "type", "code"}}``)."""

    def __init__(
        self,
        *,
        version: str,
        phone_number_id: str,
        whatsapp_token: str,
        page_token: str,
        instagram_token: str | None = None,
    ) -> None:
        super().__init__("graph")
        self.version, self.phone_number_id = version, phone_number_id
        self.whatsapp_token, self.page_token = whatsapp_token, page_token
        self.instagram_token = instagram_token or page_token
        self.sent: list[dict[str, Any]] = []
        self.route("POST", rf"/{re.escape(version)}/(?P<phone>\d+)/messages", self._whatsapp)
        self.route("POST", rf"/{re.escape(version)}/me/messages", self._send_api)

    @staticmethod
    def error(status: int, code: int, message: str, kind: str = "OAuthException") -> Answer:
        return Answer(
            status, {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "Afake"}}
        )

    def _json(self, request: Recorded) -> dict[str, Any] | None:
        if not request.headers.get("content-type", "").startswith("application/json"):
            self.problem("body is not JSON")
            return None
        try:
            payload = request.json()
        except ValueError:
            self.problem("malformed JSON body")
            return None
        return payload if isinstance(payload, dict) else None

    def _whatsapp(self, request: Recorded, match: re.Match[str]) -> Answer:
        if request.bearer() != self.whatsapp_token:
            self.problem("wrong or missing WhatsApp bearer token")
            return self.error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if match["phone"] != self.phone_number_id:
            self.problem(f"unknown phone number id {match['phone']}")
            return self.error(400, 100, "Unsupported post request.", "GraphMethodException")
        payload = self._json(request)
        if payload is None:
            return self.error(400, 100, "Invalid parameter", "OAuthException")
        to, text = payload.get("to"), payload.get("text")
        if (
            payload.get("messaging_product") != "whatsapp"
            or payload.get("type") != "text"
            or not isinstance(to, str)
            or not re.match(r"^\+?[1-9]\d{5,14}$", to)
            or not isinstance(text, dict)
            or not isinstance(text.get("body"), str)
            or not text["body"]
        ):
            self.problem(f"bad WhatsApp message fields: {sorted(payload)}")
            return self.error(400, 100, "(#100) Invalid parameter")
        wamid = "wamid." + uuid.uuid4().hex
        self.sent.append({**payload, "id": wamid, "channel": "whatsapp"})
        return Answer(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                "messages": [{"id": wamid}],
            },
        )

    def _send_api(self, request: Recorded, _match: re.Match[str]) -> Answer:
        token = request.bearer()
        if token not in (self.page_token, self.instagram_token):
            self.problem("wrong or missing page access token")
            return self.error(401, 190, "Invalid OAuth access token - Cannot parse access token")
        payload = self._json(request)
        if payload is None:
            return self.error(400, 100, "Invalid parameter")
        recipient, message = payload.get("recipient"), payload.get("message")
        if (
            not isinstance(recipient, dict)
            or not isinstance(recipient.get("id"), str)
            or not isinstance(message, dict)
            or not isinstance(message.get("text"), str)
            or not message["text"]
            or payload.get("messaging_type") != "RESPONSE"
        ):
            self.problem(f"bad Send API fields: {sorted(payload)}")
            return self.error(400, 100, "(#100) Invalid parameter")
        mid = "m_" + uuid.uuid4().hex
        channel = "instagram" if token == self.instagram_token != self.page_token else "page"
        self.sent.append({**payload, "message_id": mid, "via": channel})
        return Answer(200, {"recipient_id": recipient["id"], "message_id": mid})
