"""A shared device found out late: its id is blocked after it joined several customers into one. The
merge rules' page and API list the blocked values still held and the merges they made, and undo them."""

from __future__ import annotations

from typing import Any

from parcours.config import Settings
from parcours.db.engine import Database
from parcours.identity import service as identity
from tests.conftest import Api
from tests.console_helpers import signed_in
from tests.helpers import active_profiles, ingest, make_source, profile_of, set_kind

TABLET = "tablet-lyon-1"


def three_customers_on_one_tablet(db: Database, settings: Settings) -> None:
    """Three web-shop customers sign in on the store's tablet, one after the other."""
    web, kiosk = make_source(db, "Web", "web"), make_source(db, "Borne Lyon", "kiosk")
    for n, email in enumerate(["ana@example.fr", "bruno@example.fr", "chloe@example.fr"]):
        ingest(db, settings, web, [{"type": "identify", "messageId": f"w{n}", "anonymousId": f"browser-{n}",
                                    "traits": {"email": email}}])  # fmt: skip
    for n, email in enumerate(["ana@example.fr", "bruno@example.fr", "chloe@example.fr"]):
        ingest(db, settings, kiosk, [{"type": "identify", "messageId": f"k{n}", "anonymousId": TABLET,
                                      "traits": {"email": email}}])  # fmt: skip


def report(db: Database, settings: Settings) -> list[dict[str, Any]]:
    with db.read() as session:
        registry = identity.load_registry(session, settings.default_phone_region)
        return identity.blocked_values_in_use(session, registry, "anonymous_id")


def test_the_merges_a_shared_device_made_are_listed_and_undone(db: Database, settings: Settings) -> None:
    three_customers_on_one_tablet(db, settings)
    assert len(active_profiles(db)) == 1  # the tablet glued them together
    assert report(db, settings) == []  # nothing blocked yet
    set_kind(db, "anonymous_id", blocked_values=[TABLET.upper()])  # typed in another case: still found

    (held,) = report(db, settings)
    survivor = profile_of(db, settings, "email", "ana@example.fr")
    assert held["value"] == TABLET and held["profile_id"] == survivor
    assert len(held["merges"]) == 2
    with db.write() as session:
        registry = identity.load_registry(session, settings.default_phone_region)
        done = identity.undo_blocked_merges(session, registry, "anonymous_id")
    assert sorted(done["undone"]) == sorted(m["id"] for m in held["merges"]) and done["refused"] == []
    people = {
        profile_of(db, settings, "email", e)
        for e in ["ana@example.fr", "bruno@example.fr", "chloe@example.fr"]
    }
    assert len(people) == 3 and len(active_profiles(db)) == 3
    assert report(db, settings)[0]["merges"] == []  # still held by one of them, joining no one
    # The tablet joins no one any more.
    kiosk = make_source(db, "Borne Lyon 2", "kiosk")
    ingest(db, settings, kiosk, [{"type": "identify", "messageId": "k9", "anonymousId": TABLET,
                                  "traits": {"email": "bruno@example.fr"}}])  # fmt: skip
    assert len(active_profiles(db)) == 3


def test_api_and_console(api: Api) -> None:
    three_customers_on_one_tablet(api.db, api.settings)
    set_kind(api.db, "anonymous_id", blocked_values=[TABLET])
    listed = api.get("/v1/identity/kinds/anonymous_id/blocked-in-use")
    assert listed.status_code == 200 and len(listed.json()["data"][0]["merges"]) == 2
    assert api.get("/v1/identity/kinds/fax/blocked-in-use").status_code == 404
    write_key = api.source("web", "web")
    assert api.client.get("/v1/identity/kinds/anonymous_id/blocked-in-use",
                          headers=api.basic(write_key)).status_code == 403  # fmt: skip

    admin, csrf = signed_in(api, "admin")
    page = admin.get("/console/admin/identity/kinds/anonymous_id")
    assert page.status_code == 200
    assert "Blocked values still held" in page.text and "Undo the 2 merges these values made" in page.text
    supervisor, supervisor_csrf = signed_in(api, "supervisor")
    assert supervisor.post("/console/admin/identity/kinds/anonymous_id/unmerge-blocked",
                           data={"csrf_token": supervisor_csrf}).status_code == 403  # fmt: skip
    done = admin.post("/console/admin/identity/kinds/anonymous_id/unmerge-blocked", data={"csrf_token": csrf})
    assert done.status_code == 303
    assert "2 merges undone." in admin.get(done.headers["location"]).text
    assert len(active_profiles(api.db)) == 3
    again = api.client.post("/v1/identity/kinds/anonymous_id/blocked-in-use/unmerge", headers=api.bearer)
    assert again.status_code == 200 and again.json() == {"undone": [], "refused": []}
