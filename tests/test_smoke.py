import asyncio
import threading

import httpx
import opentelemetry.trace
import pytest

from parcours.app import create_app
from parcours.config import Settings
from parcours.db.engine import Database
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


@pytest.mark.parametrize("turned_on", [False, True])
def test_opentelemetry_is_looked_for_only_when_turned_on(
    db: Database, turned_on: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PARCOURS_OPENTELEMETRY off (the default): FastAPI does not look for a configured tracer provider on
    every request; on: it does, and sends its spans there when one is configured."""
    looked: list[int] = []
    real = opentelemetry.trace.get_tracer_provider

    def counting() -> opentelemetry.trace.TracerProvider:
        looked.append(1)
        return real()

    monkeypatch.setattr(opentelemetry.trace, "get_tracer_provider", counting)
    app = create_app(Settings(database_url=db.url, opentelemetry=turned_on), database=db)

    async def health() -> int:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://parcours"
        ) as client:
            return (await client.get("/healthz")).status_code

    statuses: list[int] = []  # on a loop of its own thread: the suite may leave one running in this one
    thread = threading.Thread(target=lambda: statuses.append(asyncio.run(health())))
    thread.start()
    thread.join()
    assert statuses == [200]
    assert bool(looked) is turned_on
