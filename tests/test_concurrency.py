"""Concurrent writers: many clients sending overlapping identifiers at once lose nothing and create
exactly one profile per person (PostgreSQL and SQLite, through the live HTTP server)."""

from __future__ import annotations

import random
import threading
from typing import Any

import httpx
from sqlalchemy import func, select

from parcours.models import Event, Identifier, Profile
from tests.conftest import Api

CLIENTS = 8
PEOPLE = 30


def _batches(client: int) -> list[list[dict[str, Any]]]:
    """Each client first sees every person anonymously, then links its device id to their email."""
    rng = random.Random(client)
    first, second = [], []
    for person in rng.sample(range(PEOPLE), PEOPLE):
        device = f"c{client}-p{person}"
        first.append({"type": "page", "name": "Home", "anonymousId": device, "messageId": f"{device}-page"})
        second.append(
            {
                "type": "identify",
                "anonymousId": device,
                "messageId": f"{device}-identify",
                "traits": {"email": f"person{person}@shop.fr", "name": f"Person {person}"},
            }
        )
    events = first + second
    return [events[i : i + 7] for i in range(0, len(events), 7)]


def test_eight_clients_with_overlapping_identifiers(api: Api) -> None:
    key = api.source("web", "web")
    barrier = threading.Barrier(CLIENTS)
    failures: list[str] = []

    def run(client: int) -> None:
        with httpx.Client(base_url=api.url, timeout=60, headers=api.basic(key)) as http:
            barrier.wait()
            for batch in _batches(client):
                response = http.post("/v1/batch", json={"batch": batch})
                if response.status_code != 200 or response.json()["recorded"] != len(batch):
                    failures.append(f"client {client}: {response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=run, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []

    with api.db.read() as session:
        active = session.scalar(
            select(func.count()).select_from(Profile).where(Profile.merged_into_id.is_(None))
        )
        events = session.scalar(select(func.count()).select_from(Event))
        per_profile = session.execute(
            select(Identifier.profile_id, func.count())
            .where(Identifier.kind == "email")
            .group_by(Identifier.profile_id)
        ).all()
        orphans = session.scalar(
            select(func.count())
            .select_from(Event)
            .join(Profile, Profile.id == Event.profile_id)
            .where(Profile.merged_into_id.is_not(None))
        )
    assert active == PEOPLE
    assert events == CLIENTS * PEOPLE * 2
    assert len(per_profile) == PEOPLE and all(count == 1 for _, count in per_profile)
    assert orphans == 0
    for person in range(PEOPLE):
        profile = api.get("/v1/profiles", identifier=f"email:person{person}@shop.fr").json()
        devices = {i["value"] for i in profile["identifiers"] if i["kind"] == "anonymous_id"}
        assert devices == {f"c{c}-p{person}" for c in range(CLIENTS)}
        assert profile["channels"] == [{**profile["channels"][0], "channel": "web", "events": CLIENTS * 2}]
