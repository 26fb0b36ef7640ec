"""The customer gives the agent another identifier: it joins them, or merges them with the customer who
holds it (by the merge rules, reversibly), or a rule keeps them apart and says so."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from parcours.identity import service as identity
from parcours.inbox.agents import create_agent
from parcours.inbox.service import Inbound, receive
from tests.conftest import Api
from tests.console_helpers import signed_in
from tests.helpers import active_profiles, ingest, make_source, profile_of, set_kind


def sms_from(api: Api, phone: str, provider_id: str = "S1") -> tuple[str, str]:
    """An SMS from an unknown number: (conversation id, its customer's profile id)."""
    with api.db.write() as session:
        received = receive(session, api.settings, Inbound("sms", "twilio", provider_id, [("phone", phone)],
                                                          "Bonjour, où en est ma commande ?", sent_at=datetime.now(UTC)))  # fmt: skip
    return received.conversation_id, received.profile_id


def web_customer(api: Api, user_id: str, email: str) -> str:
    web = make_source(api.db, f"web-{user_id}", "web")
    ingest(api.db, api.settings, web, [{"type": "identify", "messageId": f"id-{user_id}", "userId": user_id,
                                        "traits": {"email": email, "firstName": "Léa"}}])  # fmt: skip
    return profile_of(api.db, api.settings, "email", email)


def agent_headers(api: Api) -> dict[str, str]:
    with api.db.write() as session:
        _, token = create_agent(session, "Malik")
    return {"Authorization": f"Bearer {token}"}


def test_an_identifier_the_customer_gives_merges_them_with_its_holder(api: Api) -> None:
    lea = web_customer(api, "u-lea", "lea@example.fr")
    conversation_id, texter = sms_from(api, "+33612345678")
    headers = agent_headers(api)
    url = f"/v1/inbox/conversations/{conversation_id}/identifiers"

    response = api.client.post(url, json={"identifier": "email:Lea@Example.FR"}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["outcome"] == "merged" and body["value"] == "lea@example.fr"
    assert body["customer"]["id"] == lea  # the older profile survives
    kinds = {(i["kind"], i["value"]) for i in body["customer"]["identifiers"]}
    assert {("email", "lea@example.fr"), ("phone", "+33612345678"), ("user_id", "u-lea")} <= kinds
    thread = api.client.get(f"/v1/inbox/conversations/{conversation_id}", headers=headers).json()
    assert thread["customer"]["id"] == lea  # the conversation shows her whole story now
    timeline = api.get(f"/v1/profiles/{lea}/timeline", type="track").json()["data"]
    given = [e for e in timeline if e["name"] == "Identifier Given"]
    assert len(given) == 1 and given[0]["channel"] == "sms"
    assert (
        given[0]["properties"]["agent"] == "Malik"
        and given[0]["properties"]["conversation_id"] == conversation_id
    )

    # Recorded and reversible like any merge an event makes.
    with api.db.write() as session:
        identity.unmerge(session, texter)
    assert sorted(active_profiles(api.db)) == sorted([lea, texter])

    # A new address joins the customer without merging anyone.
    other_conversation, other = sms_from(api, "+33698765432", provider_id="S2")
    added = api.client.post(f"/v1/inbox/conversations/{other_conversation}/identifiers",
                            json={"identifier": "loyalty_card:2901 2345 6789 0"}, headers=headers)  # fmt: skip
    assert added.status_code == 200 and added.json()["outcome"] == "added"
    assert profile_of(api.db, api.settings, "loyalty_card", "2901234567890") == other


def test_a_rule_keeps_two_accounts_apart_and_bad_input_is_named(api: Api) -> None:
    web_customer(api, "u-lea", "lea@example.fr")
    paul = web_customer(api, "u-paul", "paul@example.fr")
    conversation_id, _ = sms_from(api, "+33612345678")
    headers = agent_headers(api)
    url = f"/v1/inbox/conversations/{conversation_id}/identifiers"

    def post(identifier: Any) -> httpx.Response:
        return api.client.post(url, json={"identifier": identifier}, headers=headers)

    assert post("email:paul@example.fr").json()["outcome"] == "merged"  # the texter is Paul
    kept = post("email:lea@example.fr")  # ... who now says he is Léa: two accounts, never one person
    assert kept.status_code == 200, kept.text
    body = kept.json()
    assert body["outcome"] == "kept apart" and body["rule"].startswith("limit user_id")
    assert body["customer"]["id"] == paul
    assert profile_of(api.db, api.settings, "email", "lea@example.fr") != paul
    with api.db.read() as session:
        assert identity.list_conflicts(session, status="open", limit=10)["data"][0]["rule"] == body["rule"]

    cases = [
        ("email:lea@example.fr", 409, "email lea@example.fr was already given in this conversation"),
        ("email:paul@example.fr", 409, "email paul@example.fr is already this customer's"),
        ("fax:0123", 400, "kind: 'fax' is not an identifier a customer can give; one of user_id"),
        ("anonymous_id:abc-123", 400, "kind: 'anonymous_id' is not an identifier a customer can give"),
        ("phone:12", 400, "value: "),
        ("email:test@example.com", 400, "value: "),
        ("lea@example.fr", 400, "identifier: expected KIND:VALUE"),
        (5, 400, "identifier: Input should be a valid string"),
    ]
    for identifier, status, text in cases:
        response = post(identifier)
        assert response.status_code == status, (identifier, response.text)
        assert text in response.json()["error"]["message"], (identifier, response.text)
    set_kind(api.db, "phone", max_per_profile=1)  # a second phone is one too many: not added, and said
    limited = post("phone:06 98 76 54 32").json()
    assert limited["outcome"] == "not added" and limited["rule"] == "limit phone: 1"
    missing = api.client.post("/v1/inbox/conversations/cnv_nope/identifiers",
                              json={"identifier": "email:x@example.fr"}, headers=headers)  # fmt: skip
    assert missing.status_code == 404
    assert api.client.post(url, json={"identifier": "email:x@example.fr"}).status_code == 401


def test_the_agent_adds_it_from_the_conversation_page(api: Api) -> None:
    lea = web_customer(api, "u-lea", "lea@example.fr")
    conversation_id, _ = sms_from(api, "+33612345678")
    agent, csrf = signed_in(api, "agent")
    page = agent.get(f"/console/conversations/{conversation_id}")
    assert page.status_code == 200 and "The customer gave another identifier" in page.text
    assert '<option value="email">' in page.text and '<option value="anonymous_id">' not in page.text
    done = agent.post(f"/console/conversations/{conversation_id}/identify",
                      data={"kind": "email", "value": " Lea@Example.fr ", "csrf_token": csrf})  # fmt: skip
    assert done.status_code == 303
    after = agent.get(done.headers["location"]).text
    assert "was another customer&#39;s: they are now one customer, with both histories." in after
    assert profile_of(api.db, api.settings, "phone", "+33612345678") == lea
    bad = agent.post(f"/console/conversations/{conversation_id}/identify",
                     data={"kind": "phone", "value": "12", "csrf_token": csrf})  # fmt: skip
    assert bad.status_code == 400
    no_token = agent.post(
        f"/console/conversations/{conversation_id}/identify", data={"kind": "email", "value": "x@y.fr"}
    )
    assert no_token.status_code == 403
