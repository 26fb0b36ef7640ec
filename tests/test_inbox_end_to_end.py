"""The issue's end-to-end case over real transports on loopback: Ana writes an e-mail (smtplib to the
SMTP port), then a WhatsApp message from the mobile on her profile (a Twilio-signed webhook), then chats
on the web widget once logged in (WebSocket, signed identity) -> one conversation, three channels, in
order; the agent's answer to the last message goes out on the channel the agent chooses."""

from __future__ import annotations

import json
import smtplib
import time
import uuid
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlencode

from pydantic import SecretStr
from websockets.sync.client import connect

from parcours.channels import twilio
from parcours.channels.email import InboundMail, SmtpServer
from parcours.channels.twilio import twilio_signature
from parcours.channels.widget import ChatSender, identity_signature
from parcours.inbox.agents import create_agent
from tests.conftest import Api, free_port
from tests.fake_providers import FakeTwilio
from tests.helpers import ingest, make_source, profile_of

SID, TOKEN, SECRET = "AC" + "7" * 32, "e2e-twilio-token", "e2e-widget-secret"
WHATSAPP_FROM = "+14155238886"


def test_one_conversation_across_email_whatsapp_and_chat(api: Api, tmp_path: Any) -> None:
    with FakeTwilio(SID, TOKEN).running() as fake:
        settings = api.settings.model_copy(update={
            "twilio_account_sid": SID, "twilio_auth_token": TOKEN, "twilio_api_base_url": fake.url,
            "twilio_whatsapp_from": f"whatsapp:{WHATSAPP_FROM}", "widget_identity_secret": SecretStr(SECRET),
            "email_inbox_domains": "support.maison-arabica.fr", "email_attachments_dir": str(tmp_path),
        })  # fmt: skip
        api.app.state.settings = api.settings = settings
        twilio.register_senders(api.app.state.outbox, settings)
        api.app.state.outbox.register("chat", ChatSender(api.app))

        # Ana signed up on the web shop: account, e-mail and mobile on one profile.
        web = make_source(api.db, "web", "web")
        ingest(api.db, settings, web, [{"type": "identify", "messageId": "signup", "userId": "u-ana",
                                        "traits": {"email": "ana@example.fr", "phone": "06 12 34 56 78",
                                                   "firstName": "Ana"}}])  # fmt: skip
        ana = profile_of(api.db, settings, "user_id", "u-ana")

        # 1. An e-mail, through the SMTP server.
        port = free_port()
        smtp = SmtpServer(InboundMail(api.db, settings), settings, host="127.0.0.1", port=port)
        smtp.start()
        try:
            mail = EmailMessage()
            mail["From"], mail["To"] = "Ana <ana@example.fr>", "service@support.maison-arabica.fr"
            mail["Subject"], mail["Message-ID"] = "Commande CMD-100231", "<e2e-1@example.fr>"
            mail.set_content("Bonjour, ma commande CMD-100231 n'est pas arrivée.")
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.send_message(mail)
        finally:
            smtp.stop()

        # 2. A WhatsApp message from her mobile, signed by Twilio.
        form = [("AccountSid", SID), ("MessageSid", "SM" + "e" * 32), ("From", "whatsapp:+33612345678"),
                ("To", f"whatsapp:{WHATSAPP_FROM}"), ("Body", "Je vous écris aussi ici"), ("NumMedia", "0")]  # fmt: skip
        signature = twilio_signature(TOKEN, api.url + "/v1/channels/twilio/messages", form)
        answer = api.client.post("/v1/channels/twilio/messages", content=urlencode(form), headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})  # fmt: skip
        assert answer.status_code == 200, answer.text

        # 3. The web chat, logged in (identity signed by the web shop's back end), over a WebSocket.
        hello = {"type": "hello", "anonymous_id": str(uuid.uuid4()),
                 "identity": {"user_id": "u-ana", "signature": identity_signature(SECRET, "u-ana", None)}}  # fmt: skip
        with connect(api.url.replace("http://", "ws://") + "/v1/chat/ws", proxy=None) as socket:
            socket.send(json.dumps(hello))
            assert json.loads(socket.recv(timeout=10))["type"] == "history"
            socket.send(json.dumps({"type": "message", "client_id": "c1", "body": "Toujours rien reçu ?"}))
            assert json.loads(socket.recv(timeout=10))["type"] == "ack"

            # The agent: one conversation, three channels, in order, on Ana's profile.
            with api.db.write() as session:
                _, token = create_agent(session, "Sonia")
            headers = {"Authorization": f"Bearer {token}"}
            inbox = api.client.get("/v1/inbox/conversations", params={"profile_id": ana}, headers=headers)
            (conversation,) = inbox.json()["data"]
            thread = api.client.get(f"/v1/inbox/conversations/{conversation['id']}", headers=headers).json()
            inbound = [m for m in thread["messages"] if m["direction"] == "inbound"]
            assert [m["channel"] for m in inbound] == ["email", "whatsapp", "chat"]
            assert thread["customer"]["id"] == ana and thread["reply_channel"] == "chat"

            # The answer to the chat message goes out on WhatsApp, the channel the agent chose.
            sent = api.client.post(f"/v1/inbox/conversations/{conversation['id']}/messages",
                                   json={"body": "Votre colis part ce soir.", "channel": "whatsapp"},
                                   headers=headers).json()  # fmt: skip
            assert sent["channel"] == "whatsapp" and sent["delivery"] == "sent", sent
            assert fake.sent[-1]["To"] == "whatsapp:+33612345678" and fake.problems == []
            # ...and a line on the chat she is still on arrives live.
            live = api.client.post(f"/v1/inbox/conversations/{conversation['id']}/messages",
                                   json={"body": "Je vous ai répondu sur WhatsApp."}, headers=headers).json()  # fmt: skip
            assert live["channel"] == "chat" and live["delivery"] == "sent"
            deadline = time.monotonic() + 10
            frame: dict[str, Any] = {}
            while time.monotonic() < deadline and frame.get("body") != "Je vous ai répondu sur WhatsApp.":
                frame = json.loads(socket.recv(timeout=10))
            assert frame["body"] == "Je vous ai répondu sur WhatsApp."
