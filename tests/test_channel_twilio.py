"""The Twilio adapter over real HTTP: signed webhooks into the inbox (SMS and WhatsApp), refused when
unsigned, forged or malformed, replays ignored; agents' replies through a fake Twilio on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select

from parcours.app import create_app
from parcours.channels import twilio
from parcours.channels.twilio import TwilioSender, twilio_signature, whatsapp_provider
from parcours.config import Settings
from parcours.db.engine import Database
from parcours.inbox.outbound import DeliveryFailed, Outgoing
from parcours.models import Conversation, Event, Message
from tests.conftest import Api, free_port
from tests.fake_providers import FakeTwilio
from tests.helpers import profile_of
from tests.test_inbox import agent_token, known_customer

PATH = "/v1/channels/twilio/messages"
SID = "AC" + "1" * 32
TOKEN = "twilio-auth-token-for-tests"
SMS_FROM = "+33757000001"
WHATSAPP_FROM = "+14155238886"
ANA = "+33612345678"  # the mobile on Ana's profile (tests.test_inbox.known_customer)


def configure(api: Api, **changes: Any) -> Settings:
    """The live server's settings for this test: Twilio configured (the app reads them per request)."""
    settings = api.settings.model_copy(
        update={"twilio_account_sid": SID, "twilio_auth_token": TOKEN, **changes}
    )
    api.app.state.settings = settings
    return settings


def message(sender: str, sid: str, body: str = "Bonjour, ma commande ?", **extra: str) -> dict[str, str]:
    """The form Twilio posts for an incoming message."""
    return {
        "ToCountry": "FR",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "To": f"whatsapp:{WHATSAPP_FROM}" if sender.startswith("whatsapp:") else SMS_FROM,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": SID,
        "From": sender,
        "ApiVersion": "2010-04-01",
        **extra,
    }


def post(
    api: Api,
    form: dict[str, str],
    *,
    token: str | None = TOKEN,
    url: str | None = None,
    body: str | None = None,
    signature: str | None = None,
    content_type: str = "application/x-www-form-urlencoded",
) -> httpx.Response:
    """POST the form as Twilio would, signed with ``token`` for ``url`` (default: the URL called)."""
    params = list(form.items())
    headers = {"Content-Type": content_type}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    elif token is not None:
        headers["X-Twilio-Signature"] = twilio_signature(token, url or api.url + PATH, params)
    return api.client.post(PATH, content=body if body is not None else urlencode(params), headers=headers)


def counts(db: Database) -> tuple[int, int, int]:
    with db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(Message)) or 0,
            session.scalar(select(func.count()).select_from(Event)) or 0,
            session.scalar(select(func.count()).select_from(Conversation)) or 0,
        )


def stored(db: Database, sid: str) -> Message:
    with db.read() as session:
        found = session.scalar(select(Message).where(Message.provider_message_id == sid))
    assert found is not None
    return found


def conversation_profile(db: Database, conversation_id: str) -> str:
    with db.read() as session:
        profile_id = session.scalar(select(Conversation.profile_id).where(Conversation.id == conversation_id))
    assert profile_id is not None
    return profile_id


# ------------------------------------------------------------------------------------------- signature
def test_signature_matches_twilios_documented_example() -> None:
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert twilio_signature("12345", url, list(reversed(params))) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


# --------------------------------------------------------------------------------------------- inbound
def test_a_whatsapp_message_lands_on_the_profile_with_that_mobile(api: Api) -> None:
    configure(api)
    known_customer(api.db, api.settings)
    ana = profile_of(api.db, api.settings, "phone", ANA)
    form = message(
        f"whatsapp:{ANA}",
        "SM" + "a" * 32,
        ProfileName="Ana",
        WaId=ANA.lstrip("+"),
        NumMedia="1",
        MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
        MediaContentType0="image/jpeg",
    )
    response = post(api, form)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text.endswith("<Response/>")

    received = stored(api.db, "SM" + "a" * 32)
    assert received.channel == "whatsapp" and received.provider == "twilio"
    assert received.direction == "inbound" and received.body == "Bonjour, ma commande ?"
    assert received.customer_address == ANA
    assert received.attachments == [{"url": form["MediaUrl0"], "content_type": "image/jpeg"}]
    assert conversation_profile(api.db, received.conversation_id) == ana
    # The WhatsApp number is on Ana's profile now, beside the phone it came from.
    assert profile_of(api.db, api.settings, "whatsapp", ANA) == ana


def test_an_sms_from_an_unknown_number_starts_a_profile_and_a_conversation(api: Api) -> None:
    configure(api)
    response = post(api, message("+33698765432", "SM" + "b" * 32, body="Vous êtes ouverts dimanche ?"))
    assert response.status_code == 200, response.text
    received = stored(api.db, "SM" + "b" * 32)
    assert received.channel == "sms" and received.customer_address == "+33698765432"
    assert received.body == "Vous êtes ouverts dimanche ?" and received.attachments == []
    profile = profile_of(api.db, api.settings, "phone", "+33698765432")
    assert conversation_profile(api.db, received.conversation_id) == profile
    with api.db.read() as session:
        conversation = session.get(Conversation, received.conversation_id)
        assert conversation is not None and conversation.last_inbound_channel == "sms"


def test_a_nul_character_in_a_text_is_dropped_and_the_message_kept(api: Api) -> None:
    """PostgreSQL cannot store NUL: the message used to fail with a 500, which Twilio retries, for ever."""
    configure(api)
    response = post(api, message("+33698765432", "SM" + "e" * 32, body="Vous êtes\u0000 ouverts ?"))
    assert response.status_code == 200, response.text
    assert stored(api.db, "SM" + "e" * 32).body == "Vous êtes ouverts ?"


def test_a_replayed_request_changes_nothing(api: Api) -> None:
    """Twilio signs no timestamp: a captured request replayed later has a valid signature, and is
    recognised by its MessageSid."""
    configure(api)
    form = message("+33698765432", "SM" + "c" * 32)
    assert post(api, form).status_code == 200
    before = counts(api.db)
    assert before == (1, 1, 1)
    replay = post(api, form)
    assert replay.status_code == 200 and replay.text.endswith("<Response/>")
    assert counts(api.db) == before


@pytest.mark.parametrize("sender", ["+33698765432", f"whatsapp:{ANA}"], ids=["sms", "whatsapp"])
def test_missing_forged_and_misdirected_signatures_are_refused(api: Api, sender: str) -> None:
    configure(api)
    form = message(sender, "SM" + "d" * 32)
    missing = post(api, form, token=None)
    assert missing.status_code == 401 and "X-Twilio-Signature" in missing.json()["error"]["message"]
    forged = post(api, form, token="not-the-auth-token")
    assert forged.status_code == 403 and "does not match" in forged.json()["error"]["message"]
    garbage = post(api, form, signature="c2lnbmF0dXJl")
    assert garbage.status_code == 403
    # A genuine signature of another request: the body was altered on the way.
    genuine = twilio_signature(TOKEN, api.url + PATH, list(form.items()))
    altered = post(api, {**form, "Body": "Remboursez-moi"}, signature=genuine)
    assert altered.status_code == 403
    # Signed for another URL (another server's webhook, replayed here).
    elsewhere = post(api, form, url="https://other.example.com" + PATH)
    assert elsewhere.status_code == 403
    assert counts(api.db) == (0, 0, 0)


def test_without_an_auth_token_every_request_is_refused(api: Api) -> None:
    configure(api, twilio_auth_token="")
    form = message("+33698765432", "SM" + "e" * 32)
    response = post(api, form, token="anything")
    assert response.status_code == 403
    assert "not configured" in response.json()["error"]["message"]
    assert "PARCOURS_TWILIO_AUTH_TOKEN" in response.json()["error"]["message"]
    assert counts(api.db) == (0, 0, 0)


def test_signatures_are_checked_against_the_public_url_behind_a_proxy(api: Api) -> None:
    configure(api, twilio_webhook_base_url="https://parcours.example.com/")
    public = "https://parcours.example.com" + PATH
    local = post(api, message("+33698765432", "SM" + "f" * 32))  # signed for the URL called
    assert local.status_code == 403
    assert post(api, message("+33698765432", "SM" + "f" * 32), url=public).status_code == 200
    # Twilio's validators accept the URL with the scheme's default port written out too.
    with_port = "https://parcours.example.com:443" + PATH
    assert post(api, message("+33698765432", "SM" + "9" * 32), url=with_port).status_code == 200
    assert counts(api.db)[0] == 2


def test_another_account_is_refused(api: Api) -> None:
    configure(api)
    response = post(api, message("+33698765432", "SM" + "1" * 32, AccountSid="AC" + "2" * 32))
    assert response.status_code == 403 and "AccountSid" in response.json()["error"]["message"]
    assert counts(api.db) == (0, 0, 0)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"MessageSid": "", "SmsMessageSid": ""}, "MessageSid: missing"),
        ({"From": ""}, "From: missing"),
        ({"From": "messenger:1234"}, "From: 'messenger' addresses are not handled"),
        ({"NumMedia": "lots"}, "NumMedia: must be a whole number"),
        ({"NumMedia": "1"}, "MediaUrl0: missing"),
    ],
)
def test_malformed_messages_are_refused_with_the_field_named(
    api: Api, change: dict[str, str], expected: str
) -> None:
    configure(api)
    response = post(api, {**message("+33698765432", "SM" + "2" * 32), **change})
    assert response.status_code == 400, response.text
    assert expected in response.json()["error"]["message"]
    assert counts(api.db) == (0, 0, 0)


def test_a_message_from_a_number_the_identity_rules_cannot_use_is_kept(api: Api) -> None:
    """A short code or an odd number is not refused (Twilio would not resend it): the inbox keeps the
    message on a profile of its own."""
    configure(api)
    response = post(api, message("36179", "SM" + "6" * 32, body="STOP"))
    assert response.status_code == 200, response.text
    kept = stored(api.db, "SM" + "6" * 32)
    assert kept.channel == "sms" and kept.body == "STOP" and kept.customer_address == "36179"


def test_bodies_that_are_not_twilio_forms_are_refused(api: Api) -> None:
    configure(api)
    form = message("+33698765432", "SM" + "3" * 32)
    as_json = post(api, form, content_type="application/json", body='{"From": "+33698765432"}')
    assert as_json.status_code == 400 and "Content-Type" in as_json.json()["error"]["message"]
    bad_bytes = api.client.post(
        PATH,
        content=b"Body=%ff%fe&From=%2B33698765432",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"},
    )
    assert bad_bytes.status_code == 400 and "form data" in bad_bytes.json()["error"]["message"]
    assert counts(api.db) == (0, 0, 0)


# -------------------------------------------------------------------------------------------- outbound
@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio(SID, TOKEN).running() as fake:
        assert isinstance(fake, FakeTwilio)
        yield fake


def reply(api: Api, conversation_id: str, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    """An agent's reply through the agent API, once its delivery is settled (sent or failed)."""
    response = api.client.post(
        f"/v1/inbox/conversations/{conversation_id}/messages", json=body, headers=headers
    )
    assert response.status_code == 201, response.text
    view: dict[str, Any] = response.json()
    deadline = time.monotonic() + 10
    while view["delivery"] == "queued" and time.monotonic() < deadline:  # delivered in the background
        time.sleep(0.05)
        thread = api.client.get(f"/v1/inbox/conversations/{conversation_id}", headers=headers).json()
        view = next(m for m in thread["messages"] if m["id"] == view["id"])
    return view


def test_agents_replies_go_out_through_twilio(api: Api, fake_twilio: FakeTwilio) -> None:
    settings = configure(
        api,
        twilio_api_base_url=fake_twilio.url,
        twilio_sms_from=SMS_FROM,
        twilio_whatsapp_from=f"whatsapp:{WHATSAPP_FROM}",
    )
    assert sorted(twilio.register_senders(api.app.state.outbox, settings)) == ["sms", "whatsapp"]
    known_customer(api.db, api.settings)
    assert post(api, message(f"whatsapp:{ANA}", "SM" + "4" * 32)).status_code == 200
    conversation_id = stored(api.db, "SM" + "4" * 32).conversation_id
    _, headers = agent_token(api)

    on_whatsapp = reply(api, conversation_id, headers, body="Elle part demain.")
    assert on_whatsapp["channel"] == "whatsapp" and on_whatsapp["delivery"] == "sent", on_whatsapp
    on_sms = reply(api, conversation_id, headers, body="Code de retrait : 4821", channel="sms")
    assert on_sms["delivery"] == "sent", on_sms

    assert fake_twilio.problems == []
    first, second = fake_twilio.sent
    assert first["To"] == f"whatsapp:{ANA}" and first["From"] == f"whatsapp:{WHATSAPP_FROM}"
    assert first["Body"] == "Elle part demain."
    assert second["To"] == ANA and second["From"] == SMS_FROM and second["Body"] == "Code de retrait : 4821"
    assert all(r.basic_auth() == (SID, TOKEN) for r in fake_twilio.requests)
    assert {r.path for r in fake_twilio.requests} == {f"/2010-04-01/Accounts/{SID}/Messages.json"}
    assert on_whatsapp["details"]["provider_id"] == first["sid"]


def test_a_provider_error_marks_the_reply_failed_and_a_retry_sends_it(
    api: Api, fake_twilio: FakeTwilio
) -> None:
    settings = configure(api, twilio_api_base_url=fake_twilio.url, twilio_sms_from=SMS_FROM)
    twilio.register_senders(api.app.state.outbox, settings)
    assert post(api, message("+33698765432", "SM" + "5" * 32)).status_code == 200
    conversation_id = stored(api.db, "SM" + "5" * 32).conversation_id
    _, headers = agent_token(api)

    fake_twilio.fail_with(429, {"code": 20429, "message": "Too Many Requests", "status": 429})
    failed = reply(api, conversation_id, headers, body="Oui, de 10 h à 13 h.")
    assert failed["delivery"] == "failed"
    assert failed["error"] == "Twilio answered 429 (error 20429: Too Many Requests)"
    assert TOKEN not in failed["error"]

    fake_twilio.recover()
    retried = api.client.post(f"/v1/inbox/messages/{failed['id']}/retry", headers=headers).json()
    assert retried["delivery"] == "sent"
    assert [m["Body"] for m in fake_twilio.sent] == ["Oui, de 10 h à 13 h."]


def test_sender_failures_say_why_without_secrets() -> None:
    outgoing = Outgoing(message_id="msg_1", conversation_id="cnv_1", channel="sms", to=ANA, body="Bonjour")
    closed = Settings(
        twilio_account_sid=SID,
        twilio_auth_token=TOKEN,
        twilio_sms_from=SMS_FROM,
        twilio_api_base_url=f"http://127.0.0.1:{free_port()}",
        twilio_timeout_seconds=2,
    )
    with pytest.raises(DeliveryFailed, match=r"^Twilio could not be reached \(ConnectError\)$"):
        TwilioSender(closed, "sms").send(outgoing)
    with FakeTwilio(SID, "another-token").running() as fake:
        wrong = closed.model_copy(update={"twilio_api_base_url": fake.url})
        with pytest.raises(DeliveryFailed) as error:
            TwilioSender(wrong, "sms").send(outgoing)
    assert str(error.value) == "Twilio answered 401 (error 20003: Authenticate)"
    too_long = Outgoing(message_id="m", conversation_id="c", channel="sms", to=ANA, body="x" * 1601)
    with pytest.raises(DeliveryFailed, match="1600-character limit"):
        TwilioSender(closed, "sms").send(too_long)


def test_messaging_service_sid_as_the_sms_sender() -> None:
    settings = Settings(twilio_account_sid=SID, twilio_auth_token=TOKEN, twilio_sms_from="MG" + "0" * 32)
    with FakeTwilio(SID, TOKEN).running() as fake:
        sender = TwilioSender(settings.model_copy(update={"twilio_api_base_url": fake.url}), "sms")
        sid = sender.send(Outgoing(message_id="m", conversation_id="c", channel="sms", to=ANA, body="Hi"))
    assert isinstance(fake, FakeTwilio) and fake.problems == []
    assert fake.sent[0]["MessagingServiceSid"] == "MG" + "0" * 32 and "From" not in fake.sent[0]
    assert sid == fake.sent[0]["sid"]


# ------------------------------------------------------------------------------------- who sends what
def test_which_adapter_sends_whatsapp() -> None:
    twilio_ready: dict[str, Any] = {
        "twilio_account_sid": SID,
        "twilio_auth_token": TOKEN,
        "twilio_whatsapp_from": WHATSAPP_FROM,
    }
    meta_ready: dict[str, Any] = {
        "meta_whatsapp_phone_number_id": "1234567890",
        "meta_whatsapp_access_token": "EAAG",
    }
    assert whatsapp_provider(Settings()) is None
    assert whatsapp_provider(Settings(**twilio_ready)) == "twilio"
    assert whatsapp_provider(Settings(**meta_ready)) == "meta"
    assert whatsapp_provider(Settings(**twilio_ready, **meta_ready)) == "twilio"  # auto: Twilio first
    assert whatsapp_provider(Settings(**twilio_ready, **meta_ready, whatsapp_provider="meta")) == "meta"
    assert whatsapp_provider(Settings(**meta_ready, whatsapp_provider="twilio")) is None  # not configured

    app = create_app(
        Settings(database_url="sqlite://", twilio_sms_from=SMS_FROM, **twilio_ready, **meta_ready),
        Database("sqlite://"),
    )
    outbox = app.state.outbox
    assert isinstance(outbox.sender("whatsapp"), TwilioSender) and isinstance(
        outbox.sender("sms"), TwilioSender
    )
    bare = create_app(Settings(database_url="sqlite://"), Database("sqlite://"))
    assert {"sms", "whatsapp"}.isdisjoint(bare.state.outbox.channels())  # nothing configured, nothing sent
