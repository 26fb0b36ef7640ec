from tests.conftest import Api


def test_health_and_identify(api: Api) -> None:
    assert api.client.get("/healthz").json()["status"] == "ok"
    key = api.source("web shop", "web")
    response = api.send(
        key, "/v1/identify", {"userId": "u1", "traits": {"email": "a@b.fr"}, "messageId": "m1"}
    )
    assert response.status_code == 200, response.text
    profile = api.get("/v1/profiles", identifier="email:A@B.fr").json()
    assert {i["kind"] for i in profile["identifiers"]} == {"user_id", "email"}
