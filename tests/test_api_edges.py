"""The edges every request crosses: a NUL character in a URL, a JSON body or a console form (which
PostgreSQL cannot store or compare, and which used to answer 500 there), an unknown address, a method an
address does not take, an unreadable body. Each gets a 4xx in the API's one error shape, naming what is
wrong, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from parcours.models import IdentifierKind, Location, Source
from tests.conftest import Api
from tests.console_helpers import signed_in
from tests.test_inbox import agent_token

NUL = "contains a NUL character (\\u0000), which cannot be stored"


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert body["success"] is False, body
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("/v1/profiles/prf%00x", "path"),
        ("/v1/profiles/prf_x/timeline?cursor=%00", "query"),
        ("/v1/identity/conflicts?status=open%00", "query"),
        ("/v1/availability/SKU%00", "path"),
        ("/v1/help/articles?language=fr%00", "query"),
        ("/console/customers/prf%00x", "path"),
    ],
)
def test_a_nul_character_in_a_url_gets_400_before_any_route(api: Api, url: str, where: str) -> None:
    response = api.client.get(url, headers=api.bearer)
    assert response.status_code == 400, response.text
    assert error_of(response) == {
        "code": "invalid_input",
        "message": f"URL {where}: contains a NUL character (%00)",
    }


def counts(api: Api) -> tuple[int, int]:
    with api.db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(Location)) or 0,
            session.scalar(select(func.count()).select_from(IdentifierKind)) or 0,
        )


STORE = {"kind": "store", "name": "Lyon", "latitude": 45.76, "longitude": 4.86}


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/locations", {**STORE, "name": "Lyon\u0000"}, "name"),
        ("POST", "/v1/locations", {**STORE, "services": ["click_collect", "x\u0000"]}, "services[1]"),
        ("POST", "/v1/locations", {**STORE, "a\u0000": 1}, "body: key 'a\\x00'"),
        (
            "POST",
            "/v1/identity/kinds",
            {"name": "crm_id", "priority": 5, "max_per_profile": 1, "description": "x\u0000"},
            "description",
        ),
        ("PATCH", "/v1/identity/kinds/email", {"blocked_values": ["a", "b\u0000"]}, "blocked_values[1]"),
    ],
)
def test_a_nul_character_in_a_json_body_gets_400_naming_the_field_and_writes_nothing(
    api: Api, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    before = counts(api)
    response = api.client.request(method, path, json=body, headers=api.bearer)
    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["message"] == f"{field}: {NUL}"
    assert error["details"] == [{"field": field, "error": NUL}]
    assert counts(api) == before


def test_a_nul_character_in_a_console_form_gets_400_and_writes_nothing(api: Api) -> None:
    browser, csrf = signed_in(api, "admin")
    with api.db.read() as session:
        sources = session.scalar(select(func.count()).select_from(Source))
    made = browser.post(
        "/console/admin/sources", data={"csrf_token": csrf, "name": "Sh\u0000op", "channel": "web"}
    )
    assert made.status_code == 400, made.text
    assert "name: contains a NUL character" in made.text
    with api.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Source)) == sources


def test_an_unknown_address_and_a_wrong_method_answer_in_the_error_shape(api: Api) -> None:
    missing = api.client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert error_of(missing) == {"code": "not_found", "message": "nothing here: GET /v1/nothing-here"}

    wrong = api.client.delete("/v1/identify")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    assert error_of(wrong) == {
        "code": "method_not_allowed",
        "message": "DELETE is not allowed here; allowed: POST",
    }

    page = api.client.get("/console/nothing-here")  # the console answers with a page, not JSON
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")


def test_an_unreadable_json_body_gets_400_in_the_error_shape(api: Api) -> None:
    headers = {**api.bearer, "Content-Type": "application/json"}
    truncated = api.client.post("/v1/identity/kinds", content=b'{"name": ', headers=headers)
    assert truncated.status_code == 400
    assert error_of(truncated)["message"].startswith("body: malformed JSON (")

    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    nested = api.client.post("/v1/identity/kinds", content=deep, headers=headers)
    assert nested.status_code == 400
    assert error_of(nested) == {
        "code": "invalid_input",
        "message": "body: could not be read as JSON (malformed, or nested too deeply)",
    }


@pytest.mark.parametrize("identifier", ["", ":", "loyalty_card:"])
def test_the_store_customer_search_refuses_an_empty_identifier(api: Api, identifier: str) -> None:
    """An empty identifier named nobody and tripped an assertion: 500 (found by schemathesis)."""
    _, headers = agent_token(api)
    response = api.client.get("/v1/store/customers", params={"identifier": identifier}, headers=headers)
    assert response.status_code == 400, response.text
    assert error_of(response)["message"].startswith("identifier: expected KIND:VALUE")


def test_help_articles_refuse_a_language_they_are_not_written_in(api: Api) -> None:
    """An unknown language used to answer an empty list, as if the help centre were empty."""
    response = api.client.get("/v1/help/articles", params={"language": "de"})
    assert response.status_code == 400
    assert error_of(response)["message"] == "language: 'de' must be one of fr, en"
    assert api.client.get("/v1/help/articles", params={"language": "fr"}).status_code == 200
