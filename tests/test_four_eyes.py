"""Four eyes means two people: not two tokens, not an account the author made, not an
account made after the fact. Bypass stays the one way to publish alone, on the record."""

from __future__ import annotations

import pytest

from broadcaster.domain import audit
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.tokens import create_token
from broadcaster.domain.users import create_user
from tests.conftest import PASSWORD
from tests.helpers import PAYMENTS_DOWN, announce

CRITICAL = {**PAYMENTS_DOWN, "severity": "critical"}
ADA = "ada@acme.example"  # the `people` fixture's admin


def bearer(r, name, **options):
    return {"Authorization": f"Bearer {create_token(r, name, None, **options)}"}


def decide(client, headers, announcement_id, action="approve"):
    path = f"/api/v1/announcements/{announcement_id}/{action}"
    body = {"reason": "not like this"} if action == "reject" else None
    return client.post(path, json=body, headers=headers)


def refusals(r):
    return [
        (e["actor"], e["details"]["person"], e["details"]["rule"], e["details"]["attempted"])
        for e in reversed(audit.entries(r, action="approval.refused", limit=500))
    ]


def state(client, headers, announcement_id):
    return client.get(f"/api/v1/announcements/{announcement_id}", headers=headers).get_json()


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_a_second_token_of_the_same_person_is_not_a_second_person(client, r, people, action):
    alice = bearer(r, "alice", user="arne@acme.example")
    laptop = bearer(r, "alice-laptop", user="arne@acme.example")
    created = announce(client, alice, CRITICAL)
    assert created["state"] == "pending_approval"

    refused = decide(client, laptop, created["id"], action)
    assert refused.status_code == 403
    assert "author cannot approve or reject" in refused.get_json()["message"]
    assert refusals(r) == [("alice-laptop", "arne@acme.example", "same_person", action)]
    entry = audit.entries(r, action="approval.refused")[0]
    assert entry["announcement_id"] == created["id"] and entry["ip"] == "127.0.0.1"
    shown = state(client, alice, created["id"])
    assert shown["state"] == "pending_approval"
    assert (shown["author"], shown["author_person"]) == ("alice", "arne@acme.example")


def test_an_account_the_author_made_is_not_a_second_person(app, client, r, people, signed_in):
    admin = app.test_client()
    csrf = signed_in(admin, ADA)
    # Ada makes herself a second account, and that one makes a third.
    sock = {"csrf_token": csrf, "email": "ada.two@acme.example", "role": "admin"}
    assert admin.post("/admin/users", data={**sock, "password": PASSWORD}).status_code == 303
    sock_browser = app.test_client()
    sock_csrf = signed_in(sock_browser, "ada.two@acme.example")
    third = {"csrf_token": sock_csrf, "email": "ada.three@acme.example", "role": "approver"}
    made = sock_browser.post("/admin/users", data={**third, "password": PASSWORD})
    assert made.status_code == 303

    created = announce(client, bearer(r, "ada-api", user=ADA), CRITICAL)
    assert created["state"] == "pending_approval"

    # Through the admin pages ...
    page = sock_browser.post(
        f"/admin/approvals/{created['id']}/approve", data={"csrf_token": sock_csrf}
    )
    assert page.status_code == 403
    assert "given access by the author" in page.get_data(as_text=True)
    # ... and through the API, from an account two steps away.
    api = decide(client, bearer(r, "three", user="ada.three@acme.example"), created["id"])
    assert api.status_code == 403
    assert refusals(r) == [
        ("ada.two@acme.example", "ada.two@acme.example", "made_by_author", "approve"),
        ("three", "ada.three@acme.example", "made_by_author", "approve"),
    ]
    assert r.llen("rq:queue:plan") == 0, "nothing went out"
    # Someone Ada did not make still approves it.
    approved = decide(client, bearer(r, "bo-api", user="bo@acme.example"), created["id"])
    assert approved.status_code == 200 and approved.get_json()["state"] == "published"


def test_a_person_newer_than_the_announcement_may_not_approve_it(client, r, people, tokens):
    created = announce(client, tokens["helpdesk"], CRITICAL)
    create_user(r, "nova@acme.example", "Nova", "approver", PASSWORD, created_by="cli:ops")
    nova = bearer(r, "nova", user="nova@acme.example")
    late_token = {"Authorization": f"Bearer {create_token(r, 'late', 'approver')}"}

    assert decide(client, nova, created["id"]).status_code == 403
    refused = decide(client, late_token, created["id"])
    assert refused.status_code == 403 and "after this announcement" in refused.get_json()["message"]
    assert refusals(r) == [
        ("nova", "nova@acme.example", "newer_than_announcement", "approve"),
        ("late", "late", "newer_than_announcement", "approve"),
    ]
    # Announcements submitted after Nova joined are hers to approve; a rejection publishes
    # nothing, so she may reject the older one.
    later = announce(client, tokens["helpdesk"], CRITICAL)
    assert decide(client, nova, later["id"]).status_code == 200
    assert decide(client, nova, created["id"], "reject").get_json()["state"] == "rejected"


def test_a_different_person_approves_and_the_record_names_both_people(client, r, people):
    created = announce(client, bearer(r, "ada-api", user=ADA), CRITICAL)
    answer = decide(client, bearer(r, "arne-phone", user="arne@acme.example"), created["id"])
    assert answer.status_code == 200
    shown = answer.get_json()
    assert shown["state"] == "published" and shown["approved_by"] == "arne-phone"
    assert (shown["author_person"], shown["decided_by_person"]) == (ADA, "arne@acme.example")
    approved = audit.entries(r, action="announcement.approved")[0]
    assert (approved["actor"], approved["details"]["person"]) == ("arne-phone", "arne@acme.example")
    assert refusals(r) == []


def test_bypass_is_still_the_way_to_publish_alone_and_it_is_recorded(client, r, people):
    body = {**CRITICAL, "bypass_reason": "No second approver reachable; gas leak"}
    created = announce(client, bearer(r, "ada-api", user=ADA), body)
    assert created["state"] == "published"
    (bypassed,) = audit.entries(r, action="announcement.bypassed")
    assert (bypassed["actor"], bypassed["details"]["reason"]) == ("ada-api", body["bypass_reason"])
    assert bypassed["announcement_id"] == created["id"]
    assert r.llen("rq:queue:plan") == 1


def test_a_token_of_a_person_acts_with_their_role_at_most(r, people):
    hanna = "hanna@acme.example"  # helpdesk
    assert create_token(r, "hanna-bot", None, user=hanna)
    with pytest.raises(ValueError, match="may not do more than its person"):
        create_token(r, "hanna-admin", "admin", user=hanna)
    with pytest.raises(ValueError, match="no user 'ghost@acme.example'"):
        create_token(r, "ghost", "helpdesk", user="ghost@acme.example")
    assert r.keys("bc:token:*") and len(r.keys("bc:token:*")) == 1


def test_records_from_before_people_count_their_author_as_the_person():
    stored = {
        "id": "ann_1",
        "incident_id": "inc_1",
        "title": "t",
        "body": "b",
        "severity": "major",
        "status": "investigating",
        "audiences": ["consumers"],
        "channels": ["banner"],
        "author": "alice",
        "state": "pending_approval",
        "created_at": 1.0,
    }
    old = Announcement.from_dict(stored)
    assert (old.author_person, old.decided_by_person) == ("alice", None)
    assert Announcement.from_json(old.to_json()) == old
