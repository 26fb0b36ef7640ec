"""The Meta adapter over real HTTP: the subscription handshake, signed webhooks into the inbox (WhatsApp
Cloud, Messenger, Instagram), refused when unsigned, forged or malformed (nothing written), replays
ignored; agents' replies through a fake Graph API on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from parcours.channels import meta
from parcours.channels.meta import MetaSender, meta_signature
from parcours.config import Settings
from parcours.inbox.outbound import DeliveryFailed, Outgoing
from parcours.models import Message
from tests.conftest import Api
from tests.fake_providers import FakeGraph
from tests.helpers import profile_of, view
from tests.test_channel_twilio import conversation_profile, counts, reply, stored
from tests.test_inbox import agent_token, known_customer

PATH = "/v1/channels/meta/webhook"
SECRET = "meta-app-secret-for-tests"
VERIFY = "verify-token-for-tests"
VERSION = "v21.0"
PHONE_NUMBER_ID = "106540352242922"
WA_TOKEN = "EAAG-whatsapp-token"
PAGE_TOKEN = "EAAG-page-token"
ANA = "+33612345678"
T = 1_772_442_000  # 2026-03-02 09:00 UTC, in seconds


def configure(api: Api, **changes: Any) -> Settings:
    settings = api.settings.model_copy(
        update={"meta_app_secret": SECRET, "meta_verify_token": VERIFY, **changes}
    )
    api.app.state.settings = settings
    return settings


# ------------------------------------------------------------------------------------ payloads as Meta
def whatsapp(*messages: dict[str, Any], name: str = "Ana M.", statuses: int = 0) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
    }
    if messages:
        value["contacts"] = [{"profile": {"name": name}, "wa_id": m["from"]} for m in messages]
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = [
            {"id": f"wamid.S{i}", "status": "delivered", "timestamp": str(T), "recipient_id": "33612345678"}
            for i in range(statuses)
        ]
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }


def wa_text(
    mid: str, body: str = "Bonjour, où en est ma commande ?", sender: str = "33612345678"
) -> dict[str, Any]:
    return {"from": sender, "id": mid, "timestamp": str(T), "type": "text", "text": {"body": body}}


def messaging(kind: str, *events: dict[str, Any]) -> dict[str, Any]:
    """A Messenger (``page``) or Instagram delivery."""
    return {"object": kind, "entry": [{"id": "1234567890", "time": T * 1000, "messaging": list(events)}]}


def sent_by(psid: str, mid: str, text: object = "Vous avez la taille 38 ?", **extra: Any) -> dict[str, Any]:
    return {
        "sender": {"id": psid},
        "recipient": {"id": "1234567890"},
        "timestamp": T * 1000,
        "message": {"mid": mid, "text": text, **extra},
    }


def post(
    api: Api,
    payload: Any,
    *,
    secret: str | None = SECRET,
    raw: bytes | None = None,
    signature: str | None = None,
) -> httpx.Response:
    """POST as Meta does: the raw body signed with the app secret (X-Hub-Signature-256)."""
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    elif secret is not None:
        headers["X-Hub-Signature-256"] = meta_signature(secret, body)
    return api.client.post(PATH, content=body, headers=headers)


CHANNELS = {
    "whatsapp": lambda mid: whatsapp(wa_text(mid)),
    "messenger": lambda mid: messaging("page", sent_by("6254137091234567", mid)),
    "instagram": lambda mid: messaging("instagram", sent_by("17841405822304914", mid)),
}


# ------------------------------------------------------------------------------------------ handshake
def test_the_subscription_handshake_echoes_the_challenge_for_the_right_token(api: Api) -> None:
    configure(api)
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
    answered = api.client.get(PATH, params=query)
    assert answered.status_code == 200 and answered.text == "1158201444"
    assert answered.headers["content-type"].startswith("text/plain")
    wrong = api.client.get(PATH, params={**query, "hub.verify_token": "guess"})
    assert wrong.status_code == 403 and "hub.verify_token" in wrong.json()["error"]["message"]
    assert api.client.get(PATH, params={**query, "hub.verify_token": ""}).status_code == 403
    mode = api.client.get(PATH, params={**query, "hub.mode": "unsubscribe"})
    assert mode.status_code == 400 and "hub.mode" in mode.json()["error"]["message"]
    script = api.client.get(PATH, params={**query, "hub.challenge": "<script>alert(1)</script>"})
    assert script.status_code == 400 and "hub.challenge" in script.json()["error"]["message"]

    configure(api, meta_verify_token="")
    closed = api.client.get(PATH, params={**query, "hub.verify_token": ""})
    assert closed.status_code == 403 and "PARCOURS_META_VERIFY_TOKEN" in closed.json()["error"]["message"]


# -------------------------------------------------------------------------------------------- inbound
def test_a_whatsapp_message_lands_on_the_profile_with_that_mobile(api: Api) -> None:
    configure(api)
    known_customer(api.db, api.settings)
    ana = profile_of(api.db, api.settings, "phone", ANA)
    image = {
        "from": "33612345678",
        "id": "wamid.IMG1",
        "timestamp": str(T + 60),
        "type": "image",
        "image": {"id": "1479537139650973", "mime_type": "image/jpeg", "caption": "le colis abîmé"},
    }
    response = post(api, whatsapp(wa_text("wamid.TXT1"), image, statuses=2))
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 2, "duplicates": 0, "skipped": 2}

    text = stored(api.db, "wamid.TXT1")
    assert text.channel == "whatsapp" and text.provider == "meta" and text.customer_address == ANA
    assert text.body == "Bonjour, où en est ma commande ?"
    assert text.sent_at.timestamp() == T
    assert conversation_profile(api.db, text.conversation_id) == ana
    photo = stored(api.db, "wamid.IMG1")
    assert photo.body == "le colis abîmé" and photo.conversation_id == text.conversation_id
    assert photo.attachments == [
        {"type": "image", "media_id": "1479537139650973", "content_type": "image/jpeg"}
    ]
    assert profile_of(api.db, api.settings, "whatsapp", ANA) == ana


def test_a_nul_character_in_a_text_is_dropped_and_the_message_kept(api: Api) -> None:
    """PostgreSQL cannot store NUL: the delivery used to fail with a 500, which Meta retries for days."""
    configure(api)
    response = post(api, whatsapp(wa_text("wamid.NUL1", body="Bonjour\u0000 !")))
    assert response.status_code == 200, response.text
    assert stored(api.db, "wamid.NUL1").body == "Bonjour !"


@pytest.mark.parametrize(("kind", "channel"), [("page", "messenger"), ("instagram", "instagram")])
def test_messenger_and_instagram_messages_land_on_the_scoped_id(api: Api, kind: str, channel: str) -> None:
    configure(api)
    delivery = {
        "sender": {"id": "6254137091234567"},
        "recipient": {"id": "1234567890"},
        "timestamp": T * 1000,
    }
    payload = messaging(
        kind,
        sent_by("6254137091234567", "m_1"),
        sent_by("1234567890", "m_echo", text="Oui !", is_echo=True, app_id=1517776481860111),
        {**delivery, "delivery": {"mids": ["m_echo"], "watermark": T * 1000}},
        {**delivery, "read": {"watermark": T * 1000}},
        sent_by(
            "6254137091234567",
            "m_2",
            text="",
            attachments=[{"type": "image", "payload": {"url": "https://scontent.xx.fbcdn.net/v/1.jpg"}}],
        ),
    )
    response = post(api, payload)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 2, "duplicates": 0, "skipped": 3}
    first, second = stored(api.db, "m_1"), stored(api.db, "m_2")
    assert first.channel == channel and first.body == "Vous avez la taille 38 ?"
    assert first.customer_address == "6254137091234567" and first.sent_at.timestamp() == T
    assert second.attachments == [{"type": "image", "url": "https://scontent.xx.fbcdn.net/v/1.jpg"}]
    assert second.conversation_id == first.conversation_id
    profile = profile_of(api.db, api.settings, channel, "6254137091234567")
    assert conversation_profile(api.db, first.conversation_id) == profile
    assert {i["kind"] for i in view(api.db, profile)["identifiers"]} == {channel}
    with api.db.read() as session:  # the echo (the page's own message) is not stored
        assert session.scalar(select(Message).where(Message.provider_message_id == "m_echo")) is None


@pytest.mark.parametrize("channel", list(CHANNELS))
def test_missing_forged_and_replayed_signatures(api: Api, channel: str) -> None:
    configure(api)
    payload = CHANNELS[channel]("mid.SIG1")
    body = json.dumps(payload).encode()
    missing = post(api, payload, secret=None)
    assert missing.status_code == 401 and "X-Hub-Signature-256" in missing.json()["error"]["message"]
    forged = post(api, payload, secret="another-app-secret")
    assert forged.status_code == 403 and "does not match" in forged.json()["error"]["message"]
    # The genuine signature of the body, on a body altered after signing (same JSON, other bytes too).
    genuine = meta_signature(SECRET, body)
    altered = body.replace(b"mid.SIG1", b"mid.SIG2")
    assert post(api, None, raw=altered, signature=genuine).status_code == 403
    reformatted = json.dumps(payload, indent=2).encode()
    assert post(api, None, raw=reformatted, signature=genuine).status_code == 403
    assert post(api, None, raw=body, signature=genuine.removeprefix("sha256=")).status_code == 403
    assert post(api, None, raw=body, signature="sha1=" + genuine[7:47]).status_code == 403
    assert counts(api.db) == (0, 0, 0)

    # A genuine delivery, then the same bytes replayed (Meta retries; an attacker may too).
    assert post(api, None, raw=body, signature=genuine).json()["received"] == 1
    before = counts(api.db)
    replay = post(api, None, raw=body, signature=genuine)
    assert replay.status_code == 200 and replay.json() == {"received": 0, "duplicates": 1, "skipped": 0}
    assert counts(api.db) == before == (1, 1, 1)


def test_without_an_app_secret_every_delivery_is_refused(api: Api) -> None:
    configure(api, meta_app_secret="")
    response = post(api, CHANNELS["whatsapp"]("wamid.X"), secret="")
    assert response.status_code == 403 and "PARCOURS_META_APP_SECRET" in response.json()["error"]["message"]
    assert counts(api.db) == (0, 0, 0)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ([1, 2], "body: must be a JSON object"),
        ({"object": "user", "entry": []}, "object: 'user' is not handled"),
        ({"object": "page"}, "entry: missing or not a list"),
        ({"object": "page", "entry": [{"messaging": {"sender": {}}}]}, "entry[0].messaging: must be a list"),
        (whatsapp(wa_text("wamid.A", sender="+33612345678")), "entry[0].changes[0].value.messages[0].from"),
        (whatsapp({**wa_text("wamid.A"), "text": {}}), "messages[0].text.body: missing"),
        (whatsapp({**wa_text("wamid.A"), "timestamp": "yesterday"}), "messages[0].timestamp: must be a Unix"),
        (whatsapp({**wa_text("wamid.A"), "id": ""}), "messages[0].id: must be 1 to 300"),
        (messaging("page", {**sent_by("6254137091234567", "m_1"), "sender": {}}), "messaging[0].sender.id"),
        (messaging("instagram", sent_by("6254137091234567", "")), "messaging[0].message.mid"),
        (messaging("page", sent_by("@someone", "m_1")), "sender.id: must be a numeric messenger scoped id"),
        (messaging("page", sent_by("6254137091234567", "m_1", text=42)), "message.text: must be a string"),
    ],
)
def test_malformed_deliveries_are_refused_with_what_is_wrong(api: Api, payload: Any, expected: str) -> None:
    configure(api)
    response = post(api, payload)
    assert response.status_code == 400, response.text
    assert expected in response.json()["error"]["message"]
    assert counts(api.db) == (0, 0, 0)


def test_a_delivery_is_stored_whole_or_not_at_all(api: Api) -> None:
    configure(api)
    bad_json = post(api, None, raw=b'{"object": "page", "entry": [')
    assert bad_json.status_code == 400 and bad_json.json()["error"]["message"] == "body: malformed JSON"
    # The second message is malformed: the first, valid, is not stored either, and Meta's retry (of the
    # whole delivery) will find nothing half-written.
    late = {**wa_text("wamid.BAD"), "timestamp": "soon"}
    mixed = post(api, whatsapp(wa_text("wamid.OK1"), late))
    assert mixed.status_code == 400
    assert mixed.json()["error"]["message"].startswith("entry[0].changes[0].value.messages[1].timestamp")
    assert counts(api.db) == (0, 0, 0)


def test_duplicates_within_and_across_deliveries_are_ignored(api: Api) -> None:
    configure(api)
    first = post(api, whatsapp(wa_text("wamid.D1"), wa_text("wamid.D1")))
    assert first.json() == {"received": 1, "duplicates": 1, "skipped": 0}
    second = post(api, whatsapp(wa_text("wamid.D1"), wa_text("wamid.D2", body="Et aussi…")))
    assert second.json() == {"received": 1, "duplicates": 1, "skipped": 0}
    assert counts(api.db)[0] == 2


# ------------------------------------------------------------------------------------------- outbound
@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph(
        version=VERSION, phone_number_id=PHONE_NUMBER_ID, whatsapp_token=WA_TOKEN, page_token=PAGE_TOKEN
    )
    with fake.running():
        yield fake


def senders(api: Api, graph: FakeGraph, **changes: Any) -> Settings:
    configured = {
        "meta_graph_base_url": graph.url,
        "meta_graph_api_version": VERSION,
        "meta_whatsapp_phone_number_id": PHONE_NUMBER_ID,
        "meta_whatsapp_access_token": WA_TOKEN,
        "meta_page_access_token": PAGE_TOKEN,
    }
    settings = configure(api, **{**configured, **changes})
    assert sorted(meta.register_senders(api.app.state.outbox, settings)) == [
        "instagram",
        "messenger",
        "whatsapp",
    ]
    return settings


def test_agents_replies_go_out_through_the_graph_api(api: Api, graph: FakeGraph) -> None:
    senders(api, graph)
    known_customer(api.db, api.settings)
    assert post(api, CHANNELS["whatsapp"]("wamid.IN1")).status_code == 200
    conversation_id = stored(api.db, "wamid.IN1").conversation_id
    _, headers = agent_token(api)
    on_whatsapp = reply(api, conversation_id, headers, body="Elle arrive jeudi.")
    assert on_whatsapp["channel"] == "whatsapp" and on_whatsapp["delivery"] == "sent", on_whatsapp

    assert post(api, CHANNELS["messenger"]("m_IN2")).status_code == 200
    assert post(api, CHANNELS["instagram"]("m_IN3")).status_code == 200
    messenger_conversation = stored(api.db, "m_IN2").conversation_id
    instagram_conversation = stored(api.db, "m_IN3").conversation_id
    on_messenger = reply(api, messenger_conversation, headers, body="Oui, en magasin.")
    on_instagram = reply(api, instagram_conversation, headers, body="Oui, en ligne.")
    assert on_messenger["channel"] == "messenger" and on_messenger["delivery"] == "sent", on_messenger
    assert on_instagram["channel"] == "instagram" and on_instagram["delivery"] == "sent", on_instagram

    assert graph.problems == []
    wa, page, insta = graph.sent
    assert wa["to"] == "33612345678" and wa["text"]["body"] == "Elle arrive jeudi." and wa["type"] == "text"
    assert on_whatsapp["details"]["provider_id"] == wa["id"]
    assert page["recipient"] == {"id": "6254137091234567"} and page["message"] == {"text": "Oui, en magasin."}
    assert insta["recipient"] == {"id": "17841405822304914"} and insta["messaging_type"] == "RESPONSE"
    assert on_instagram["details"]["provider_id"] == insta["message_id"]
    paths = [r.path for r in graph.requests]
    assert paths == [
        f"/{VERSION}/{PHONE_NUMBER_ID}/messages",
        f"/{VERSION}/me/messages",
        f"/{VERSION}/me/messages",
    ]
    assert [r.bearer() for r in graph.requests] == [WA_TOKEN, PAGE_TOKEN, PAGE_TOKEN]


def test_a_graph_error_marks_the_reply_failed(api: Api, graph: FakeGraph) -> None:
    senders(api, graph, meta_page_access_token="EAAG-expired-token")
    assert post(api, CHANNELS["messenger"]("m_IN4")).status_code == 200
    conversation_id = stored(api.db, "m_IN4").conversation_id
    _, headers = agent_token(api)
    failed = reply(api, conversation_id, headers, body="Bonjour !")
    assert failed["delivery"] == "failed"
    assert (
        failed["error"]
        == "Meta answered 401 (error 190: Invalid OAuth access token - Cannot parse access token)"
    )
    assert "EAAG" not in failed["error"]
    graph.fail_with(
        400, {"error": {"message": "(#10) This message is sent outside of allowed window.", "code": 10}}
    )
    assert post(api, CHANNELS["whatsapp"]("wamid.IN5")).status_code == 200
    late = reply(api, stored(api.db, "wamid.IN5").conversation_id, headers, body="Toujours là ?")
    assert late["delivery"] == "failed" and "error 10: (#10) This message is sent outside" in late["error"]


def test_sender_limits_and_addresses() -> None:
    settings = Settings(meta_page_access_token=PAGE_TOKEN)
    long_instagram = Outgoing(
        message_id="m", conversation_id="c", channel="instagram", to="1", body="é" * 501
    )
    with pytest.raises(DeliveryFailed, match="1000-byte limit"):
        MetaSender(settings, "instagram").send(long_instagram)
    long_messenger = Outgoing(
        message_id="m", conversation_id="c", channel="messenger", to="1", body="x" * 2001
    )
    with pytest.raises(DeliveryFailed, match="2000-character limit"):
        MetaSender(settings, "messenger").send(long_messenger)
    with pytest.raises(ValueError, match="not 'sms'"):
        MetaSender(settings, "sms")


def test_whatsapp_goes_through_meta_only_when_chosen_or_alone(api: Api) -> None:
    twilio_too = {
        "twilio_account_sid": "AC" + "1" * 32,
        "twilio_auth_token": "token",
        "twilio_whatsapp_from": "+14155238886",
    }
    settings = configure(
        api, meta_whatsapp_phone_number_id=PHONE_NUMBER_ID, meta_whatsapp_access_token=WA_TOKEN, **twilio_too
    )
    assert "whatsapp" not in meta.register_senders(api.app.state.outbox, settings)
    chosen = settings.model_copy(update={"whatsapp_provider": "meta"})
    assert "whatsapp" in meta.register_senders(api.app.state.outbox, chosen)
    assert isinstance(api.app.state.outbox.sender("whatsapp"), MetaSender)
