"""The web chat channel over a real WebSocket on the live server (loopback): anonymous and signed-in
visitors, refusals that write nothing, agents' replies pushed live or kept for the next visit, frame
validation, the widget's script."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from parcours.channels.widget import ChatSender, identity_signature, origin_allowed
from parcours.config import Settings
from parcours.inbox.agents import create_agent
from parcours.inbox.service import Inbound, list_conversations, read_conversation, receive
from parcours.models import Conversation, Event, Message, Profile
from tests.conftest import Api, LiveServer
from tests.helpers import ingest, make_source, profile_of, view

SECRET = "widget-test-secret"


@pytest.fixture
def chat(api: Api) -> Api:
    """The live server with the chat sender registered on this test's outbox (as ``install`` does)."""
    api.app.state.outbox.register("chat", ChatSender(api.app))
    return api


def configure(api: Api, **changes: Any) -> None:
    api.app.state.settings = api.settings = api.settings.model_copy(update=changes)


def ws_url(api: Api | LiveServer) -> str:
    return api.url.replace("http://", "ws://") + "/v1/chat/ws"


def recv(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return frame


@contextmanager
def open_socket(api: Api, origin: str | None = None) -> Iterator[ClientConnection]:
    with connect(ws_url(api), origin=origin, proxy=None, open_timeout=10) as ws:  # type: ignore[arg-type]
        yield ws


@contextmanager
def visitor(
    api: Api, anonymous_id: str | None = None, identity: dict[str, str] | None = None
) -> Iterator[tuple[ClientConnection, dict[str, Any]]]:
    """A visitor's socket after hello, and the history frame the server answered with."""
    hello: dict[str, Any] = {"type": "hello", "anonymous_id": anonymous_id or str(uuid.uuid4())}
    if identity is not None:
        hello["identity"] = identity
    with open_socket(api) as ws:
        ws.send(json.dumps(hello))
        history = recv(ws)
        assert history["type"] == "history", history
        yield ws, history


def say(ws: ClientConnection, body: str, client_id: str | None = None) -> dict[str, Any]:
    ws.send(json.dumps({"type": "message", "client_id": client_id or uuid.uuid4().hex, "body": body}))
    ack = recv(ws)
    assert ack["type"] == "ack", ack
    return ack


def refused(ws: ClientConnection) -> tuple[dict[str, Any], int | None]:
    """The error frame of a refused connection and the close code that follows it."""
    error = recv(ws)
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    return error, closed.value.rcvd.code if closed.value.rcvd else None


def counts(api: Api) -> tuple[int, ...]:
    with api.db.read() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Message, Conversation, Profile, Event)
        )


def agent_headers(api: Api) -> dict[str, str]:
    with api.db.write() as session:
        _, token = create_agent(session, "Sonia", role="agent")
    return {"Authorization": f"Bearer {token}"}


def known_customer(api: Api, user_id: str = "u-ana") -> str:
    """Ana signed up on the web (user id and e-mail on one profile); returns her profile id."""
    web = make_source(api.db, "web", "web")
    ingest(api.db, api.settings, web, [{"type": "identify", "messageId": f"signup-{user_id}",
                                        "userId": user_id, "traits": {"email": "ana@example.fr"}}])  # fmt: skip
    return profile_of(api.db, api.settings, "user_id", user_id)


def signed(user_id: str, email: str | None = None, name: str | None = None) -> dict[str, str]:
    identity = {"user_id": user_id, "signature": identity_signature(SECRET, user_id, email)}
    if email is not None:
        identity["email"] = email
    if name is not None:
        identity["name"] = name
    return identity


# ------------------------------------------------------------------------------------------ visitors
def test_an_anonymous_visitor_chats_into_the_inbox(chat: Api) -> None:
    anonymous_id = str(uuid.uuid4())
    with visitor(chat, anonymous_id) as (ws, history):
        assert history == {"type": "history", "identified": False, "messages": []}
        first = say(ws, "  Bonjour, ma commande n'est pas arrivée  ", client_id="c1")
        assert first["client_id"] == "c1" and first["id"].startswith("msg_") and not first["duplicate"]
        again = say(ws, "Bonjour, ma commande n'est pas arrivée", client_id="c1")  # a resent frame
        assert again["duplicate"] and again["id"] == first["id"]
    with chat.db.read() as session:
        (conversation,) = list_conversations(
            session, status="open", assignee_id=None, channel="chat", profile_id=None, limit=10
        )
        thread = read_conversation(session, conversation["id"])
    (message,) = thread["messages"]
    assert message["id"] == first["id"] and message["channel"] == "chat" and message["provider"] == "widget"
    assert message["body"] == "Bonjour, ma commande n'est pas arrivée" and message["direction"] == "inbound"
    assert message["customer_address"] == anonymous_id and message["details"]["client_id"] == "c1"
    assert {"kind": "anonymous_id", "value": anonymous_id} in [
        {"kind": i["kind"], "value": i["value"]} for i in thread["customer"]["identifiers"]
    ]
    assert "chat" in {c["channel"] for c in thread["customer"]["channels"]}  # on her timeline too


def test_a_signed_in_visitor_continues_her_conversation(chat: Api) -> None:
    configure(chat, widget_identity_secret=SecretStr(SECRET))
    profile_id = known_customer(chat)
    with chat.db.write() as session:  # she wrote by e-mail last week
        by_email = receive(session, chat.settings, Inbound("email", "smtp", "<m1@mail.fr>",
                                                           [("email", "ana@example.fr")], "Où est mon colis ?"))  # fmt: skip
    anonymous_id = str(uuid.uuid4())
    with visitor(chat, anonymous_id, signed("u-ana", "ana@example.fr", "Ana Martin")) as (ws, history):
        assert history["identified"] and history["messages"] == []  # her thread has no chat message yet
        ack = say(ws, "Je vous écris depuis le site")
    with chat.db.read() as session:
        thread = read_conversation(session, by_email.conversation_id)
    assert [m["id"] for m in thread["messages"]][-1] == ack["id"]
    assert [m["channel"] for m in thread["messages"]] == ["email", "chat"]
    assert thread["customer"]["id"] == profile_id and thread["reply_channel"] == "chat"
    held = {(i["kind"], i["value"]) for i in view(chat.db, profile_id)["identifiers"]}
    assert {("user_id", "u-ana"), ("email", "ana@example.fr"), ("anonymous_id", anonymous_id)} <= held
    # Back on the site later: her chat is there.
    with visitor(chat, anonymous_id, signed("u-ana")) as (_ws, history):
        assert [(m["id"], m["direction"]) for m in history["messages"]] == [(ack["id"], "inbound")]
    # The same browser, logged out, does not see a known customer's chat.
    with visitor(chat, anonymous_id) as (_ws, history):
        assert history["messages"] == [] and not history["identified"]


@pytest.mark.parametrize(
    ("identity", "code", "message"),
    [
        (lambda: {**signed("u-ana"), "signature": "0" * 64}, "invalid_identity", "does not match"),
        (lambda: {"user_id": "u-ana"}, "invalid_identity", "signature: missing"),
        (lambda: {**signed("u-ana"), "user_id": "u-bob"}, "invalid_identity", "does not match"),
        # The e-mail address is part of what is signed: nobody claims someone else's.
        (lambda: {**signed("u-ana"), "email": "boss@example.fr"}, "invalid_identity", "does not match"),
        (lambda: {**signed("u-ana"), "signature": "forged"}, "invalid_identity", "not a hex"),
        (lambda: {**signed("u-ana"), "role": "admin"}, "invalid_identity", "identity.role: unknown field"),
        (lambda: signed(" u-ana"), "invalid_hello", "surrounding spaces"),
        (lambda: signed("u-ana", "not an e-mail"), "invalid_identity", "identity email"),
    ],
)
def test_forged_or_missing_signatures_are_refused_and_nothing_is_written(
    chat: Api, identity: Any, code: str, message: str
) -> None:
    configure(chat, widget_identity_secret=SecretStr(SECRET))
    before = counts(chat)
    with open_socket(chat) as ws:
        ws.send(json.dumps({"type": "hello", "anonymous_id": str(uuid.uuid4()), "identity": identity()}))
        error, close_code = refused(ws)
    assert error["type"] == "error" and error["code"] == code and message in error["message"], error
    assert close_code == 1008
    assert counts(chat) == before


def test_without_a_secret_identities_are_refused_but_anonymous_chat_works(chat: Api) -> None:
    assert not chat.settings.widget_identity_secret.get_secret_value()
    with open_socket(chat) as ws:
        hello = {"type": "hello", "anonymous_id": str(uuid.uuid4()), "identity": signed("u-ana")}
        ws.send(json.dumps(hello))
        error, close_code = refused(ws)
    assert error["code"] == "identity_not_configured" and close_code == 1008
    assert counts(chat)[0] == 0
    with visitor(chat) as (ws, _):
        assert not say(ws, "Bonjour")["duplicate"]
    assert counts(chat)[0] == 1


# -------------------------------------------------------------------------------------------- replies
def test_an_agent_reply_reaches_the_visitor_live(chat: Api) -> None:
    headers = agent_headers(chat)
    anonymous_id = str(uuid.uuid4())
    with visitor(chat, anonymous_id) as (ws, _), visitor(chat, anonymous_id) as (other_tab, _):
        ack = say(ws, "Avez-vous la taille 38 ?")
        echo = recv(other_tab)  # her other tab shows what she wrote
        assert echo["type"] == "message" and echo["direction"] == "inbound" and echo["id"] == ack["id"]
        with chat.db.read() as session:
            conversation_id = session.scalar(select(Message.conversation_id).where(Message.id == ack["id"]))
        with visitor(chat) as (stranger, _):
            reply = chat.client.post(
                f"/v1/inbox/conversations/{conversation_id}/messages",
                json={"body": "Oui, en <b>bleu</b> & noir"},
                headers=headers,
            )
            assert reply.status_code == 201 and reply.json()["delivery"] == "sent", reply.text
            assert reply.json()["channel"] == "chat" and reply.json()["details"]["provider_id"]
            for socket in (ws, other_tab):
                pushed = recv(socket)
                assert pushed["type"] == "message" and pushed["direction"] == "outbound"
                assert pushed["id"] == reply.json()["id"] and pushed["body"] == "Oui, en <b>bleu</b> & noir"
                assert pushed["sent_at"]
            with pytest.raises(TimeoutError):
                stranger.recv(timeout=0.5)  # another visitor sees nothing


def test_after_logging_in_she_still_gets_replies_to_her_anonymous_chat(chat: Api) -> None:
    configure(chat, widget_identity_secret=SecretStr(SECRET))
    headers = agent_headers(chat)
    anonymous_id = str(uuid.uuid4())
    with visitor(chat, anonymous_id) as (ws, _):
        ack = say(ws, "Une question avant de créer mon compte")
    with chat.db.read() as session:
        conversation_id = session.scalar(select(Message.conversation_id).where(Message.id == ack["id"]))
    with visitor(chat, anonymous_id, signed("u-new")) as (ws, history):
        assert history["identified"] and history["messages"] == []  # u-new has no chat yet
        reply = chat.client.post(
            f"/v1/inbox/conversations/{conversation_id}/messages", json={"body": "Bien sûr"}, headers=headers
        ).json()
        assert reply["customer_address"] == anonymous_id and reply["delivery"] == "sent"
        assert recv(ws)["id"] == reply["id"]


def test_a_reply_to_a_user_id_never_reaches_an_anonymous_id_that_copies_it(chat: Api) -> None:
    """A visitor may choose any anonymous id, even someone's user id: replies follow the identifier
    kind the customer is reached by, not just its value."""
    configure(chat, widget_identity_secret=SecretStr(SECRET))
    known_customer(chat, "user-ana-0001")
    headers = agent_headers(chat)
    with visitor(chat, "user-ana-0001") as (impostor, _):
        with visitor(chat, identity=signed("user-ana-0001")) as (ana, _):
            ack = say(ana, "Bonjour")
        with chat.db.read() as session:
            conversation_id = session.scalar(select(Message.conversation_id).where(Message.id == ack["id"]))
        reply = chat.client.post(
            f"/v1/inbox/conversations/{conversation_id}/messages", json={"body": "Pour Ana"}, headers=headers
        ).json()
        assert reply["customer_address"] == "user-ana-0001"
        assert reply["delivery"] == "failed" and reply["error"] == "the visitor is not connected"
        with pytest.raises(TimeoutError):
            impostor.recv(timeout=0.5)


def test_a_reply_while_the_visitor_is_away_is_failed_then_in_her_history(chat: Api) -> None:
    headers = agent_headers(chat)
    anonymous_id = str(uuid.uuid4())
    with visitor(chat, anonymous_id) as (ws, _):
        ack = say(ws, "Je reviens plus tard", client_id="later-1")
    with chat.db.read() as session:
        conversation_id = session.scalar(select(Message.conversation_id).where(Message.id == ack["id"]))
    url = f"/v1/inbox/conversations/{conversation_id}/messages"
    reply = chat.client.post(url, json={"body": "Votre colis part demain"}, headers=headers).json()
    assert reply["delivery"] == "failed" and reply["error"] == "the visitor is not connected"
    chat.client.post(url, json={"body": "note interne", "private": True}, headers=headers)
    with visitor(chat, anonymous_id) as (ws, history):
        assert [(m["direction"], m["body"]) for m in history["messages"]] == [
            ("inbound", "Je reviens plus tard"),
            ("outbound", "Votre colis part demain"),
        ]
        assert history["messages"][0]["client_id"] == "later-1"
        assert history["messages"][1]["id"] == reply["id"]
        # Now she is here, the agent's retry goes out live.
        retried = chat.client.post(f"/v1/inbox/messages/{reply['id']}/retry", headers=headers).json()
        assert retried["delivery"] == "sent"
        assert recv(ws)["id"] == reply["id"]


# ----------------------------------------------------------------------------------------- validation
def test_invalid_frames_get_error_frames_and_the_chat_goes_on(chat: Api) -> None:
    configure(chat, widget_max_frame_bytes=2048, widget_max_body_chars=100)
    with visitor(chat) as (ws, _):
        cases: list[tuple[str | bytes, str, str]] = [
            ("{not json", "invalid_json", "not valid JSON"),
            ("[1, 2]", "invalid_frame", "JSON object"),
            (json.dumps({"type": "hello", "anonymous_id": "x" * 10}), "invalid_frame", "only 'message'"),
            (b"\x00\x01", "invalid_frame", "binary frames"),
            ("x" * 3000, "frame_too_large", "at most 2048 bytes"),
            (json.dumps({"type": "message", "body": "hi"}), "invalid_message", "client_id"),
            (json.dumps({"type": "message", "client_id": "a:b", "body": "hi"}), "invalid_message", "client_id"),
            (json.dumps({"type": "message", "client_id": "c", "body": "   "}), "invalid_message", "empty"),
            (json.dumps({"type": "message", "client_id": "c", "body": 5}), "invalid_message", "string"),
            (json.dumps({"type": "message", "client_id": "c", "body": "x" * 101}), "invalid_message", "100"),
            (json.dumps({"type": "message", "client_id": "c", "body": "x", "to": "y"}), "invalid_message", "to:"),
            (json.dumps({"type": "message", "client_id": "c", "body": "a\u0000b"}), "invalid_message", "NUL"),
        ]  # fmt: skip
        for frame, code, message in cases:
            ws.send(frame)
            error = recv(ws)
            assert error["type"] == "error" and error["code"] == code and message in error["message"], (
                frame,
                error,
            )
        assert say(ws, "Toujours là")["type"] == "ack"
    assert counts(chat)[0] == 1


@pytest.mark.parametrize(
    ("hello", "code"),
    [
        ('{"type": "message", "client_id": "c", "body": "hi"}', "hello_expected"),
        ("not json", "invalid_json"),
        ('{"type": "hello", "anonymous_id": "short"}', "invalid_hello"),
        ('{"type": "hello", "anonymous_id": "../../etc/passwd"}', "invalid_hello"),
        ('{"type": "hello", "anonymous_id": "abcdefgh-1234", "site": "<x>"}', "invalid_hello"),
        ('{"type": "hello", "anonymous_id": "abcdefgh-1234", "extra": 1}', "invalid_hello"),
    ],
)
def test_a_bad_hello_closes_the_socket(chat: Api, hello: str, code: str) -> None:
    with open_socket(chat) as ws:
        ws.send(hello)
        error, close_code = refused(ws)
    assert error["code"] == code and close_code == 1008


def test_frames_are_rate_limited_per_connection(chat: Api) -> None:
    configure(chat, widget_messages_per_minute=1)
    with visitor(chat) as (ws, _):
        codes = []
        for _ in range(12):
            ws.send(json.dumps({"type": "typing", "client_id": "t"}))
            codes.append(recv(ws)["code"])
    assert codes[:10] == ["invalid_frame"] * 10  # the burst
    assert codes[10:] == ["rate_limited"] * 2


def test_pages_of_other_origins_are_refused(chat: Api) -> None:
    with open_socket(chat, origin="https://evil.example") as ws:
        error, close_code = refused(ws)
    assert error["code"] == "origin_not_allowed" and close_code == 1008
    configure(chat, widget_allowed_origins="https://shop.example, https://www.shop.example")
    for origin in ("https://shop.example", "http://localhost:3000", chat.url):
        with open_socket(chat, origin=origin) as ws:
            ws.send(json.dumps({"type": "hello", "anonymous_id": str(uuid.uuid4())}))
            assert recv(ws)["type"] == "history", origin


def test_origin_rules() -> None:
    settings = Settings(widget_allowed_origins="https://shop.example")
    assert origin_allowed("https://parcours.example", "parcours.example", settings)  # same host
    assert origin_allowed("https://shop.example/", "parcours.example", settings)
    assert origin_allowed("http://127.0.0.1:8000", "parcours.example", settings)
    assert not origin_allowed("https://shop.example.evil.example", "parcours.example", settings)
    assert not origin_allowed("null", "parcours.example", settings)
    assert not origin_allowed("https://other.example", "parcours.example", settings)
    assert origin_allowed("https://other.example", "x", Settings(widget_allowed_origins="*"))


def test_identity_signature_is_a_hex_hmac_sha256() -> None:
    import hashlib
    import hmac

    assert identity_signature("s3cret", "u-1") == hmac.new(b"s3cret", b"u-1", hashlib.sha256).hexdigest()
    assert (
        identity_signature("s3cret", "u-1", "a@b.fr")
        == hmac.new(b"s3cret", b"u-1\na@b.fr", hashlib.sha256).hexdigest()
    )


# ----------------------------------------------------------------------------------------- the script
def test_the_widget_script_is_served_as_javascript(live_server: LiveServer) -> None:
    import httpx

    response = httpx.get(f"{live_server.url}/widget.js", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    source = response.text
    assert "/v1/chat/ws" in source and "crypto.randomUUID" in source and "localStorage" in source
    assert "innerHTML" not in source and "eval(" not in source
    assert len(response.content) < 16_000
    again = httpx.get(
        f"{live_server.url}/widget.js", headers={"If-None-Match": response.headers["etag"]}, timeout=10
    )
    assert again.status_code == 304


# --------------------------------------------------------------------- the script, run (Node, fake DOM)
FAKE_DOM = r"""
const server = process.argv[2];
class FakeNode {
  constructor(tag) {
    this.tag = tag; this.children = []; this.attrs = {}; this.listeners = {}; this.own = ""; this.hidden = false;
    this.value = ""; this.title = ""; this.scrollTop = 0; this.scrollHeight = 0;
    const classes = new Set();
    this.classList = {
      add: (...names) => names.forEach((n) => classes.add(n)),
      remove: (...names) => names.forEach((n) => classes.delete(n)),
      replace: (a, b) => { if (classes.delete(a)) classes.add(b); },
      contains: (n) => classes.has(n),
      toString: () => [...classes].join(" "),
    };
  }
  setAttribute(key, value) {
    this.attrs[key] = value;
    if (key === "hidden") this.hidden = true;
    if (key === "class") value.split(" ").forEach((c) => this.classList.add(c));
  }
  append(...nodes) { this.children.push(...nodes.map((n) => (typeof n === "string" ? { textContent: n } : n))); }
  replaceChildren(...nodes) { this.children = nodes; }
  set textContent(value) { this.own = String(value); this.children = []; }
  get textContent() { return this.own + this.children.map((c) => c.textContent).join(""); }
  addEventListener(type, listener) { (this.listeners[type] ||= []).push(listener); }
  dispatch(type, extra = {}) { for (const l of this.listeners[type] || []) l({ preventDefault() {}, ...extra }); }
  attachShadow() { this.shadow = new FakeNode("#shadow"); return this.shadow; }
  requestSubmit() { this.dispatch("submit"); }
  focus() {}
  all() { return [this, ...this.children.flatMap((c) => (c instanceof FakeNode ? c.all() : []))]; }
}
const store = new Map();
const body = new FakeNode("body");
Object.assign(globalThis, {
  window: globalThis,
  location: { href: server + "/page.html" },
  localStorage: { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, String(v)), removeItem: (k) => store.delete(k) },
  addEventListener() {},
  document: {
    body,
    createElement: (tag) => new FakeNode(tag),
    currentScript: { src: server + "/widget.js", dataset: { parcoursSite: "shop" } },
  },
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const until = async (test) => { for (let i = 0; i < 200; i++) { if (test()) return; await sleep(50); } throw new Error("timeout"); };
(async () => {
  const source = await (await fetch(server + "/widget.js")).text();
  new Function(source)();
  const root = body.children[0].shadow;
  const find = (tag) => root.all().find((n) => n.tag === tag);
  const bubbles = () => root.all().filter((n) => n.classList.contains("m"));
  ParcoursChat.open();
  find("textarea").value = "  Bonjour <b>ici</b>  ";
  find("form").dispatch("submit");
  await until(() => bubbles().length === 1 && !bubbles()[0].classList.contains("wait"));
  console.log(JSON.stringify({ step: "acked", anonymous_id: store.get("parcours.anonymous_id") }));
  await until(() => bubbles().length === 2);
  console.log(JSON.stringify({ step: "done", bubbles: bubbles().map((n) => [String(n.classList), n.textContent]) }));
  process.exit(0);
})().catch((e) => { console.log(JSON.stringify({ step: "error", error: String(e) })); process.exit(1); });
"""


def node_with_websocket() -> list[str] | None:
    """The command that runs Node with a global WebSocket (built in since Node 22, a flag in 20-21)."""
    node = shutil.which("node")
    if node is None:
        return None
    for command in ([node], [node, "--experimental-websocket"]):
        check = subprocess.run(
            [*command, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"],
            capture_output=True,
            timeout=30,
        )
        if check.returncode == 0:
            return command
    return None


def test_the_widget_script_chats_in_a_fake_page(chat: Api, tmp_path: Path) -> None:
    """The served script, run by Node against a minimal fake DOM: the visitor writes (shown as text,
    never markup), the server acknowledges, an agent's reply appears live. (A real browser is not
    available here: no Chromium package.)"""
    command = node_with_websocket()
    if command is None:
        pytest.skip("Node.js with a WebSocket client (Node 20+) is not installed")
    page = tmp_path / "page.js"
    page.write_text(FAKE_DOM)
    headers = agent_headers(chat)
    with subprocess.Popen(
        [*command, str(page), chat.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            acked = json.loads(process.stdout.readline() or '{"step": "no output"}')
            assert acked["step"] == "acked", (acked, process.stderr.read() if process.stderr else "")
            with chat.db.read() as session:
                message = session.scalars(select(Message).where(Message.provider == "widget")).one()
            assert message.body == "Bonjour <b>ici</b>" and message.customer_address == acked["anonymous_id"]
            assert message.details["site"] == "shop"
            reply = chat.client.post(
                f"/v1/inbox/conversations/{message.conversation_id}/messages",
                json={"body": "Réponse <script>alert(1)</script>"},
                headers=headers,
            ).json()
            assert reply["delivery"] == "sent"
            done = json.loads(process.stdout.readline() or '{"step": "no output"}')
            assert done == {
                "step": "done",
                "bubbles": [["m me", "Bonjour <b>ici</b>"], ["m them", "Réponse <script>alert(1)</script>"]],
            }
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
