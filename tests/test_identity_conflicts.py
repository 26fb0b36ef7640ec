"""Reviewing identity conflicts: dismissed (the rule was right) or merged by a person (the merge rules
still hold, unmerge undoes it), through the API and the console's queue; any merge that makes a
conflict's customers one settles it; the migration that records decisions."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select, update

from parcours.db.migrate import downgrade, upgrade
from parcours.identity import service as identity
from parcours.matching.review import accept_review, list_reviews
from parcours.models import IdentityConflict, IdentityConflictProfile
from tests.conftest import Api
from tests.console_helpers import signed_in
from tests.helpers import active_profiles, profile_of, set_kind


def track(message_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Seen", "messageId": message_id, **fields}


def kept_apart_by_an_unmerge(api: Api) -> tuple[str, str, dict[str, Any]]:
    """A browser and a signed-in account merged by an event, unmerged by a supervisor; a later event
    carrying both again is attached to one and recorded as a conflict ("unmerged pair")."""
    web = api.source("web", "web")
    batch = [
        track("a", anonymousId="d-1"),
        track("b", userId="u-1"),
        track("c", anonymousId="d-1", userId="u-1"),
    ]
    assert api.send(web, "/v1/batch", {"batch": batch}).status_code == 200
    merged = api.get("/v1/profiles", identifier="anonymous_id:d-1").json()["id"]
    undone = api.client.post(f"/v1/profiles/{merged}/unmerge", headers=api.bearer)
    assert undone.status_code == 200, undone.text
    assert (
        api.send(web, "/v1/batch", {"batch": [track("d", anonymousId="d-1", userId="u-1")]}).status_code
        == 200
    )
    browser = profile_of(api.db, api.settings, "anonymous_id", "d-1")
    account = profile_of(api.db, api.settings, "user_id", "u-1")
    assert browser != account
    (conflict,) = api.get("/v1/identity/conflicts").json()["data"]
    assert conflict["rule"] == "unmerged pair" and conflict["status"] == "open"
    assert conflict["decided_at"] is None and conflict["decided_by"] is None and conflict["merge_id"] is None
    return browser, account, conflict


def merge_conflict(api: Api, conflict_id: str, body: Any = None) -> Any:
    return api.client.post(f"/v1/identity/conflicts/{conflict_id}/merge", json=body, headers=api.bearer)


def test_a_reviewer_merges_the_customers_a_conflict_kept_apart(api: Api) -> None:
    browser, account, conflict = kept_apart_by_an_unmerge(api)
    url = f"/v1/identity/conflicts/{conflict['id']}"

    # Bad requests name what is wrong and change nothing.
    for body, status, text in [
        ({"reason": "x" * 121}, 400, "reason"),
        ({"force": True}, 400, "force"),
        ([], 400, "body"),
    ]:
        response = merge_conflict(api, conflict["id"], body)
        assert response.status_code == status, (body, response.text)
        assert text in response.text, (body, response.text)
    assert merge_conflict(api, "cfl_nope").status_code == 404
    write_key = api.source("tills", "store")
    assert api.client.post(f"{url}/merge", headers=api.basic(write_key)).status_code == 403
    assert len(active_profiles(api.db)) == 2

    response = merge_conflict(api, conflict["id"], {"reason": "same browser, checked"})
    assert response.status_code == 200, response.text
    done = response.json()
    survivor = done["survivor"]["id"]
    assert {survivor} == {api.get(f"/v1/profiles/{pid}").json()["id"] for pid in (browser, account)}
    settled = done["conflict"]
    assert settled["status"] == "merged" and settled["merge_id"] == done["merge_ids"][0]
    assert settled["decided_by"] == "API token tests" and settled["decided_at"] is not None
    (merge,) = [
        m for m in api.get(f"/v1/profiles/{survivor}/export").json()["merges"] if m["undone_at"] is None
    ]
    assert merge["rule"] == "merged by hand by API token tests: same browser, checked"

    # Settled: not open any more, cannot be merged twice nor reopened (undoing it is an unmerge).
    assert api.get("/v1/identity/conflicts").json()["data"] == []
    assert [c["id"] for c in api.get("/v1/identity/conflicts", status="merged").json()["data"]] == [
        conflict["id"]
    ]
    again = merge_conflict(api, conflict["id"])
    assert again.status_code == 409 and "is merged, not open" in again.text
    reopen = api.client.patch(url, headers=api.bearer, json={"status": "open"})
    assert reopen.status_code == 409 and "unmerge" in reopen.json()["error"]["message"]
    undone = api.client.post(f"/v1/profiles/{survivor}/unmerge", json={"merge_id": settled["merge_id"]},
                             headers=api.bearer)  # fmt: skip
    assert undone.status_code == 200 and len(active_profiles(api.db)) == 2

    # The reviewer's "same person" was undone: the conflict is back in the queue, undecided, and a
    # reviewer may merge it again (a person's newer decision lifts the unmerge's block once more).
    (reopened,) = api.get("/v1/identity/conflicts").json()["data"]
    assert reopened["id"] == conflict["id"] and reopened["status"] == "open"
    assert reopened["merge_id"] is None and reopened["decided_at"] is None and reopened["decided_by"] is None
    assert api.get("/v1/identity/conflicts", status="merged").json()["data"] == []
    again = merge_conflict(api, conflict["id"])
    assert again.status_code == 200, again.text
    assert again.json()["conflict"]["status"] == "merged" and len(active_profiles(api.db)) == 1


def test_the_merge_rules_still_hold_for_a_conflict(api: Api) -> None:
    web = api.source("web", "web")
    batch = [
        {"type": "identify", "messageId": "c1", "userId": "u1", "traits": {"email": "shared@shop.fr"}},
        {"type": "identify", "messageId": "c2", "userId": "u2", "traits": {"phone": "0611111111"}},
        track("c3", userId="u2", context={"traits": {"email": "shared@shop.fr"}}),
    ]
    assert api.send(web, "/v1/batch", {"batch": batch}).status_code == 200
    (conflict,) = api.get("/v1/identity/conflicts").json()["data"]
    refused = merge_conflict(api, conflict["id"])
    assert refused.status_code == 409
    assert "different user_id identifiers" in refused.json()["error"]["message"]
    assert api.get("/v1/identity/conflicts").json()["data"][0]["status"] == "open"  # nothing changed
    assert len(active_profiles(api.db)) == 2


def test_a_conflict_naming_no_other_customer_cannot_be_merged(api: Api) -> None:
    set_kind(api.db, "email", max_per_profile=1)
    web = api.source("web", "web")
    batch = [
        {"type": "identify", "messageId": "e1", "userId": "u1", "traits": {"email": "one@shop.fr"}},
        {"type": "identify", "messageId": "e2", "userId": "u1", "traits": {"email": "two@shop.fr"}},
    ]
    assert api.send(web, "/v1/batch", {"batch": batch}).status_code == 200
    (conflict,) = api.get("/v1/identity/conflicts").json()["data"]
    assert conflict["other_profile_ids"] == [] and conflict["rule"] == "limit email: 1"
    refused = merge_conflict(api, conflict["id"])
    assert refused.status_code == 409
    assert "names no other profile" in refused.json()["error"]["message"]


def test_dismissing_records_who_and_when_and_reopening_clears_it(api: Api) -> None:
    _, _, conflict = kept_apart_by_an_unmerge(api)
    url = f"/v1/identity/conflicts/{conflict['id']}"
    dismissed = api.client.patch(url, headers=api.bearer, json={"status": "dismissed"}).json()
    assert (dismissed["status"], dismissed["decided_by"]) == ("dismissed", "API token tests")
    assert dismissed["decided_at"] is not None
    refused = merge_conflict(api, conflict["id"])
    assert refused.status_code == 409 and "is dismissed, not open" in refused.text
    reopened = api.client.patch(url, headers=api.bearer, json={"status": "open"}).json()
    assert (reopened["status"], reopened["decided_at"], reopened["decided_by"]) == ("open", None, None)
    bad = api.client.patch(url, headers=api.bearer, json={"status": "merged"})
    assert bad.status_code == 400 and "must be one of open, dismissed" in bad.text


def test_any_hand_merge_of_the_customers_settles_their_conflict(api: Api) -> None:
    browser, account, conflict = kept_apart_by_an_unmerge(api)
    response = api.client.post(
        f"/v1/profiles/{browser}/merge", json={"profile_id": account}, headers=api.bearer
    )
    assert response.status_code == 200, response.text
    (settled,) = api.get("/v1/identity/conflicts", status="merged").json()["data"]
    assert settled["id"] == conflict["id"] and settled["merge_id"] == response.json()["merge_id"]


def test_a_conflict_whose_customers_were_merged_since_is_settled_without_a_new_merge(api: Api) -> None:
    browser, account, conflict = kept_apart_by_an_unmerge(api)
    with api.db.write() as session:  # as if merged by a path that does not settle conflicts
        registry = identity.load_registry(session, api.settings.default_phone_region)
        identity.merge_customers(session, registry, browser, account, actor="Ana")
        session.execute(update(IdentityConflict).values(status="open", merge_id=None, decided_at=None))
    response = merge_conflict(api, conflict["id"])
    assert response.status_code == 200, response.text
    assert response.json()["merge_ids"] == [] and response.json()["conflict"]["status"] == "merged"
    assert response.json()["conflict"]["merge_id"] is None


def test_accepting_a_review_settles_the_conflict_between_the_pair(api: Api) -> None:
    """Two anonymous ids at most per profile: a signed-in customer's third browser cannot join, the
    conflict names the limit; the matcher also proposes the pair from their names. Once an admin raises
    the limit, accepting the review merges them, which settles the conflict."""
    set_kind(api.db, "anonymous_id", max_per_profile=2)
    web = api.source("web", "web")
    likely = {"firstName": "Helene", "lastName": "Dupont", "birthday": "1984-03-07"}
    batch = [
        {"type": "identify", "messageId": "w1", "anonymousId": "d-1", "userId": "u-9", "traits": likely},
        track("w2", anonymousId="d-2", userId="u-9"),
        {
            "type": "identify",
            "messageId": "w3",
            "anonymousId": "d-3",
            "traits": {**likely, "email": "h@example.fr"},
        },
        track("w4", anonymousId="d-4", context={"traits": {"email": "h@example.fr"}}),
        track("w5", anonymousId="d-4", userId="u-9"),
    ]
    assert api.send(web, "/v1/batch", {"batch": batch}).status_code == 200
    (conflict,) = api.get("/v1/identity/conflicts").json()["data"]
    assert conflict["rule"].startswith("limit anonymous_id") and conflict["other_profile_ids"]
    with api.db.read() as session:
        (item,) = list_reviews(session, status="pending", limit=10)
    set_kind(api.db, "anonymous_id", max_per_profile=20)
    with api.db.write() as session:
        registry = identity.load_registry(session, api.settings.default_phone_region)
        accepted = accept_review(session, registry, item["id"])
    (settled,) = api.get("/v1/identity/conflicts", status="merged").json()["data"]
    assert settled["id"] == conflict["id"] and settled["merge_id"] == accepted["merge_id"]
    assert settled["decided_by"] == f"match review {item['id']}"


def test_the_migration_adds_the_decision_and_keeps_merged_ones_reviewed_on_the_way_back(api: Api) -> None:
    db = api.db
    _, _, conflict = kept_apart_by_an_unmerge(api)
    assert merge_conflict(api, conflict["id"]).status_code == 200
    downgrade(db.engine, "0017")
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT status FROM identity_conflicts").scalar() == "dismissed"
    upgrade(db.engine)
    with db.read() as session:
        (row,) = session.scalars(select(IdentityConflict))
        assert row.status == "dismissed" and row.decided_at is None and row.merge_id is None


def actions_of(html: str) -> list[str]:
    return re.findall(r'action="(/console/review/conflicts/[^"]+)"', html)


def test_the_console_queue_merges_dismisses_and_reopens(api: Api) -> None:
    browser, account, conflict = kept_apart_by_an_unmerge(api)
    web = api.source("web 2", "web")
    batch = [
        {"type": "identify", "messageId": "x1", "userId": "v1", "traits": {"email": "paul@shop.fr", "firstName": "Paul"}},
        {"type": "identify", "messageId": "x2", "userId": "v2", "traits": {"phone": "0622222222"}},
        track("x3", userId="v2", context={"traits": {"email": "paul@shop.fr"}}),
    ]  # fmt: skip
    assert api.send(web, "/v1/batch", {"batch": batch}).status_code == 200
    limit_conflict = next(
        c for c in api.get("/v1/identity/conflicts").json()["data"] if c["id"] != conflict["id"]
    )

    agent, _ = signed_in(api, "agent")
    assert agent.get("/console/review/conflicts").status_code == 403
    supervisor, csrf = signed_in(api, "supervisor")
    page = supervisor.get("/console/review/conflicts")
    assert page.status_code == 200
    # The rules and reasons in the console's words (the API keeps the resolver's).
    assert "Kept apart by an unmerge" in page.text and "Limit of Account id: 1 per customer" in page.text
    pair = re.search(r"Customers (prf_\w+) and (prf_\w+) were unmerged and are kept apart\.", page.text)
    assert pair is not None and {pair[1], pair[2]} == {browser, account}
    assert f'href="/console/customers/{browser}/graph"' in page.text
    assert f'href="/console/customers/{account}/graph"' in page.text
    assert "Paul" in page.text  # the customers by name
    # The merge is offered only where the rules allow it; elsewhere the page says which rule refuses.
    assert sorted(actions_of(page.text)) == sorted(
        [
            f"/console/review/conflicts/{conflict['id']}/merge",
            f"/console/review/conflicts/{conflict['id']}/dismiss",
            f"/console/review/conflicts/{limit_conflict['id']}/dismiss",
        ]
    )
    assert (
        "The merge rules refuse to merge them: they hold different identifiers of kind Account id, and a "
        "customer holds at most one: they are two different people." in page.text
    )
    assert "/console/review/conflicts" in supervisor.get("/console/review").text  # the two queues link

    merge_url = f"/console/review/conflicts/{conflict['id']}/merge"
    assert supervisor.post(merge_url, data={"reason": "checked"}).status_code == 403  # no CSRF token
    refused = supervisor.post(
        f"/console/review/conflicts/{limit_conflict['id']}/merge", data={"csrf_token": csrf}
    )
    assert refused.status_code == 409 and "different user_id identifiers" in refused.text
    merged = supervisor.post(merge_url, data={"csrf_token": csrf, "reason": "checked"})
    assert merged.status_code == 303 and merged.headers["location"] == "/console/review/conflicts"
    assert len({api.get(f"/v1/profiles/{pid}").json()["id"] for pid in (browser, account)}) == 1
    dismissed = supervisor.post(
        f"/console/review/conflicts/{limit_conflict['id']}/dismiss", data={"csrf_token": csrf}
    )
    assert dismissed.status_code == 303
    assert actions_of(supervisor.get("/console/review/conflicts").text) == []

    decided = supervisor.get("/console/review/conflicts", params={"status": "decided"}).text
    assert decided.count("by Supervisor") == 2 and "Merged" in decided and "Dismissed" in decided
    assert actions_of(decided) == [f"/console/review/conflicts/{limit_conflict['id']}/reopen"]
    reopened = supervisor.post(
        f"/console/review/conflicts/{limit_conflict['id']}/reopen", data={"csrf_token": csrf}
    )
    assert reopened.status_code == 303
    assert api.get("/v1/identity/conflicts").json()["data"][0]["id"] == limit_conflict["id"]
    assert supervisor.get("/console/review/conflicts", params={"status": "closed"}).status_code == 400
    assert (
        supervisor.post("/console/review/conflicts/cfl_nope/dismiss", data={"csrf_token": csrf}).status_code
        == 404
    )


def test_conflicts_are_paged_newest_first_and_show_in_both_customers_exports(api: Api) -> None:
    web = api.source("web", "web")
    family = "famille.girard@example.fr"
    batch = [
        {"type": "identify", "messageId": "p1", "userId": "u-paul", "traits": {"email": family}},
        *(
            {"type": "identify", "messageId": f"m{n}", "userId": f"u-{n}", "timestamp": f"2026-03-0{n}T10:00:00Z",
             "traits": {"email": family}}
            for n in (1, 2, 3)
        ),
    ]  # fmt: skip
    assert api.send(web, "/v1/batch", {"batch": batch}).status_code == 200
    everything = api.get("/v1/identity/conflicts").json()
    assert len(everything["data"]) == 3 and everything["next_cursor"] is None
    seen, cursor = [], None
    while True:
        page = api.get("/v1/identity/conflicts", limit=2, **({"cursor": cursor} if cursor else {})).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [c["id"] for c in everything["data"]]  # the same order, each once
    created = [c["created_at"] for c in everything["data"]]
    assert created == sorted(created, reverse=True)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"cursor": "nope"}, "cursor: not a position this API gave"),
        ({"limit": 0}, "limit: must be between 1 and 1000"),
        ({"limit": "x"}, "limit"),
    ]
    for params, text in cases:
        response = api.get("/v1/identity/conflicts", **params)
        assert response.status_code == 400 and text in response.text, (params, response.text)

    # Paul's e-mail is in each of these events: his export shows them, though they went to others.
    paul = profile_of(api.db, api.settings, "user_id", "u-paul")
    exported = api.get(f"/v1/profiles/{paul}/export").json()["identity_conflicts"]
    assert sorted(c["id"] for c in exported) == sorted(seen)
    other = profile_of(api.db, api.settings, "user_id", "u-2")
    assert len(api.get(f"/v1/profiles/{other}/export").json()["identity_conflicts"]) == 1
    # The same conflicts, asked of the API for one customer.
    assert [c["id"] for c in api.get("/v1/identity/conflicts", profile_id=paul).json()["data"]] == seen
    (only,) = api.get("/v1/identity/conflicts", profile_id=other).json()["data"]
    assert only["attached_profile_id"] == other
    assert api.get("/v1/identity/conflicts", profile_id="prf_nope").status_code == 404


def test_a_conflict_naming_several_customers_is_merged_whole_once_the_rules_allow_it(api: Api) -> None:
    """One browser gives three e-mails, each already a customer's, while a profile may hold two e-mails:
    a conflict naming the two others. The console names the limit instead of offering the merge; once
    an admin raises it, the merge makes the three one customer in two merges."""
    set_kind(api.db, "email", max_per_profile=2)
    web = api.source("web", "web")
    people = [("d-a", "ana@shop.fr"), ("d-b", "bea@shop.fr"), ("d-c", "cleo@shop.fr")]
    batch = [{"type": "identify", "messageId": f"i{n}", "anonymousId": device, "traits": {"email": email}}
             for n, (device, email) in enumerate(people)]  # fmt: skip
    batch.append(
        track("all", anonymousId="d-x", context={"traits": {"email": [email for _, email in people]}})
    )
    assert api.send(web, "/v1/batch", {"batch": batch}).status_code == 200
    (conflict,) = api.get("/v1/identity/conflicts").json()["data"]
    assert len(conflict["other_profile_ids"]) == 2 and conflict["rule"] == "limit email: 2 per profile"

    supervisor, _ = signed_in(api, "supervisor")
    page = supervisor.get("/console/review/conflicts").text
    assert "merging would give one customer 3 identifiers of kind E-mail, over the limit of 2" in page
    french, _ = signed_in(api, "supervisor", email="superviseure@example.org", locale="fr")
    page = french.get("/console/review/conflicts").text
    assert "Limite E-mail : 2 par client" in page
    assert "La fusion donnerait à un client 3 identifiants de type E-mail (la limite est de 2)." in page
    assert (
        "la fusion donnerait à un client 3 identifiants de type E-mail, au-delà de la limite de 2 (un "
        "administrateur peut la relever sur la page des types d\u2019identifiants)" in page
    )
    assert f"/console/review/conflicts/{conflict['id']}/merge" not in page

    set_kind(api.db, "email", max_per_profile=5)
    assert (
        f"/console/review/conflicts/{conflict['id']}/merge"
        in supervisor.get("/console/review/conflicts").text
    )
    response = merge_conflict(api, conflict["id"])
    assert response.status_code == 200, response.text
    done = response.json()
    assert len(done["merge_ids"]) == 2 and done["conflict"]["merge_id"] == done["merge_ids"][-1]
    emails = {i["value"] for i in done["survivor"]["identifiers"] if i["kind"] == "email"}
    assert emails == {email for _, email in people}
    assert len(active_profiles(api.db)) == 1

    # Undoing either merge splits the conflict's customers again: it is open again, whichever merge
    # settled it. Merging it again needs only the merge that was undone.
    first, second = done["merge_ids"]
    survivor = done["survivor"]["id"]
    undone = api.client.post(f"/v1/profiles/{survivor}/unmerge", json={"merge_id": first}, headers=api.bearer)
    assert undone.status_code == 200, undone.text
    (reopened,) = api.get("/v1/identity/conflicts").json()["data"]
    assert reopened["id"] == conflict["id"] and reopened["merge_id"] is None
    response = merge_conflict(api, conflict["id"])
    assert response.status_code == 200, response.text
    assert len(response.json()["merge_ids"]) == 1 and len(active_profiles(api.db)) == 1
    assert second not in response.json()["merge_ids"]


def test_undoing_a_merge_that_leaves_a_conflicts_customers_together_keeps_it_settled(api: Api) -> None:
    """A settled conflict stays settled when an unmerge splits off a profile it does not name."""
    browser, account, conflict = kept_apart_by_an_unmerge(api)
    assert merge_conflict(api, conflict["id"]).status_code == 200
    web = api.source("shop", "web")
    identify = {"type": "identify", "messageId": "e", "userId": "u-1", "traits": {"email": "ana@shop.fr"}}
    assert api.send(web, "/v1/batch", {"batch": [
        {"type": "identify", "messageId": "f", "anonymousId": "d-9", "traits": {"email": "ana@shop.fr"}},
        identify,
    ]}).status_code == 200  # fmt: skip
    survivor = api.get(f"/v1/profiles/{browser}").json()["id"]
    stranger = [
        m for m in api.get(f"/v1/profiles/{survivor}/export").json()["merges"]
        if m["undone_at"] is None and m["merged_id"] not in (browser, account)
    ]  # fmt: skip
    assert len(stranger) == 1, stranger
    undone = api.client.post(
        f"/v1/profiles/{survivor}/unmerge", json={"merge_id": stranger[0]["id"]}, headers=api.bearer
    )
    assert undone.status_code == 200, undone.text
    assert api.get("/v1/identity/conflicts").json()["data"] == []
    (settled,) = api.get("/v1/identity/conflicts", status="merged").json()["data"]
    assert settled["id"] == conflict["id"]


def test_the_profiles_a_conflict_names_are_indexed_kept_by_the_migration_and_erased_with_it(api: Api) -> None:
    web = api.source("web", "web")
    batch = [
        {"type": "identify", "messageId": "p", "userId": "u-paul", "traits": {"email": "girard@example.fr"}},
        *({"type": "identify", "messageId": f"g{n}", "userId": f"u-g{n}", "traits": {"email": "girard@example.fr"}}
          for n in (1, 2)),
        {"type": "identify", "messageId": "m1", "userId": "u-m1", "traits": {"email": "martin@example.fr"}},
        {"type": "identify", "messageId": "m2", "userId": "u-m2", "traits": {"email": "martin@example.fr"}},
    ]  # fmt: skip
    assert api.send(web, "/v1/batch", {"batch": batch}).status_code == 200

    def links() -> set[tuple[str, str]]:
        with api.db.read() as session:
            return {
                (row.profile_id, row.conflict_id) for row in session.scalars(select(IdentityConflictProfile))
            }

    def named() -> set[tuple[str, str]]:
        with api.db.read() as session:
            return {
                (pid, c.id)
                for c in session.scalars(select(IdentityConflict))
                for pid in (c.attached_profile_id, *c.other_profile_ids)
            }

    assert len(named()) == 6 and links() == named()  # three conflicts, two profiles each
    paul = profile_of(api.db, api.settings, "user_id", "u-paul")
    assert len(api.get(f"/v1/profiles/{paul}/export").json()["identity_conflicts"]) == 2

    # The migration fills the index in from the conflicts stored before it.
    downgrade(api.db.engine, "0019")
    upgrade(api.db.engine)
    assert links() == named()
    assert len(api.get(f"/v1/profiles/{paul}/export").json()["identity_conflicts"]) == 2

    # Erasing Paul deletes the conflicts naming him, and their index rows with them (the other side's
    # too); the Martins' conflict stays, indexed.
    assert api.client.delete(f"/v1/profiles/{paul}", headers=api.bearer).status_code == 200
    assert len(named()) == 2 and links() == named()
    martin = profile_of(api.db, api.settings, "user_id", "u-m2")
    assert len(api.get(f"/v1/profiles/{martin}/export").json()["identity_conflicts"]) == 1
