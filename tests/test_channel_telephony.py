"""Calls (telephony webhook, signed; or logged by the agent) and store visits in the conversation."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from pydantic import SecretStr

from tests.conftest import Api
from tests.test_inbox import agent_token, known_customer

SECRET = "telephony-secret"
CALL = {"call_id": "call-1", "phone": "06 12 34 56 78", "direction": "inbound",
        "started_at": "2026-03-02T09:00:00+00:00", "duration_seconds": 312, "outcome": "resolved",
        "notes": "Colis bloqué au dépôt, relance transporteur", "recording_url": "https://pbx.example.fr/r/1"}  # fmt: skip


def post(api: Api, payload: Any, *, secret: str | None = SECRET, signature: str | None = None) -> Any:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Parcours-Signature"] = signature
    elif secret is not None:
        headers["X-Parcours-Signature"] = (
            "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        )
    return api.client.post("/v1/channels/telephony/calls", content=body, headers=headers)


def configure(api: Api, secret: str = SECRET) -> None:
    api.app.state.settings = api.settings = api.settings.model_copy(
        update={"telephony_webhook_secret": SecretStr(secret)}
    )


def test_a_signed_call_lands_in_the_customers_conversation(api: Api) -> None:
    configure(api)
    known_customer(api.db, api.settings)
    answer = post(api, CALL)
    assert answer.status_code == 200, answer.text
    _, headers = agent_token(api)
    thread = api.client.get(
        f"/v1/inbox/conversations/{answer.json()['conversation_id']}", headers=headers
    ).json()
    (call,) = thread["messages"]
    assert call["channel"] == "phone" and call["details"]["duration_seconds"] == 312
    assert call["details"]["recording_url"] == "https://pbx.example.fr/r/1" and "Colis bloqué" in call["body"]
    assert {i["kind"] for i in thread["customer"]["identifiers"]} >= {"email", "user_id"}  # Ana's profile
    assert post(api, CALL).json()["duplicate"] is True  # a replay changes nothing


def test_forged_missing_or_unconfigured_signatures_are_refused(api: Api) -> None:
    configure(api)
    assert post(api, CALL, secret=None).status_code == 401
    assert post(api, CALL, secret="wrong").status_code == 403
    assert post(api, CALL, signature="sha256=" + "0" * 64).status_code == 403
    configure(api, "")
    assert post(api, CALL).status_code == 403
    configure(api)
    bad = post(api, {**CALL, "duration_seconds": -5})
    assert bad.status_code == 400 and "duration_seconds" in bad.text
    bad = post(api, {**CALL, "outcome": "lost"})
    assert bad.status_code == 400 and "outcome" in bad.text
    _, headers = agent_token(api)
    assert api.client.get("/v1/inbox/conversations", headers=headers).json()["data"] == []


def test_agents_log_calls_and_associates_log_visits(api: Api) -> None:
    known_customer(api.db, api.settings)
    _, headers = agent_token(api)
    call = api.client.post("/v1/inbox/calls", json={**CALL, "call_id": "out-1", "direction": "outbound",
                                                   "outcome": "callback_requested"}, headers=headers)  # fmt: skip
    assert call.status_code == 201, call.text
    visit = api.client.post("/v1/inbox/visits", headers=headers, json={
        "visit_id": "v-1", "store_id": "PAR-RIV", "identifier": "email:ana@example.fr",
        "at": "2026-03-03T15:00:00+00:00", "request": "Veut échanger son moulin (taille)"})  # fmt: skip
    assert visit.status_code == 201 and visit.json()["conversation_id"] == call.json()["conversation_id"]
    thread = api.client.get(
        f"/v1/inbox/conversations/{call.json()['conversation_id']}", headers=headers
    ).json()
    assert [(m["channel"], m["direction"]) for m in thread["messages"]] == [
        ("phone", "outbound"),
        ("store", "inbound"),
    ]
    assert thread["messages"][0]["details"]["agent_name"] == "Sonia"
    bad = api.client.post("/v1/inbox/visits", headers=headers, json={
        "visit_id": "v-2", "store_id": "PAR-RIV", "identifier": "nothing", "at": "2026-03-03T15:00:00+00:00",
        "request": "?"})  # fmt: skip
    assert bad.status_code == 400 and "KIND:VALUE" in bad.text
