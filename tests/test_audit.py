"""Four-eyes approval with an audited emergency bypass, and the append-only audit log."""

from __future__ import annotations

import pytest

from broadcaster import create_app
from broadcaster.domain import audit
from broadcaster.domain.tokens import create_token

MAJOR = {
    "title": "Power outage in the north",
    "body": "Crews are on their way. Next update at 10:30.",
    "severity": "major",
    "audiences": ["consumers"],
}


def actions(r, **filters):
    return [(e["actor"], e["action"]) for e in reversed(audit.entries(r, limit=500, **filters))]


def test_approval_and_rejection_are_audited_with_who_what_and_where(client, tokens, r):
    pending = client.post("/api/v1/announcements", json=MAJOR, headers=tokens["helpdesk"])
    ann = pending.get_json()
    assert ann["state"] == "pending_approval"
    other = client.post("/api/v1/announcements", json=MAJOR, headers=tokens["helpdesk"]).get_json()
    path = f"/api/v1/announcements/{ann['id']}"
    assert client.post(path + "/approve", headers=tokens["approver"]).status_code == 200
    reject = f"/api/v1/announcements/{other['id']}/reject"
    assert (
        client.post(reject, json={"reason": "   "}, headers=tokens["approver"]).status_code == 422
    )
    assert (
        client.post(reject, json={"reason": "wrong region"}, headers=tokens["approver"]).status_code
        == 200
    )

    assert actions(r, incident_id=ann["incident_id"]) == [
        ("helen", "announcement.created"),
        ("arne", "announcement.published"),
        ("arne", "announcement.approved"),
    ]
    rejected = audit.entries(r, action="announcement.rejected")
    assert len(rejected) == 1 and rejected[0]["details"]["reason"] == "wrong region"
    assert rejected[0]["ip"] == "127.0.0.1" and rejected[0]["announcement_id"] == other["id"]
    shown = client.get(f"/api/v1/announcements/{other['id']}", headers=tokens["admin"]).get_json()
    assert shown["state"] == "rejected" and shown["reason"] == "wrong region"


def test_admin_bypass_publishes_at_once_with_the_reason_on_record(client, tokens, r):
    body = {**MAJOR, "bypass_reason": "Approver unreachable; substation fire"}
    answer = client.post("/api/v1/announcements", json=body, headers=tokens["admin"])
    assert answer.status_code == 202 and answer.get_json()["state"] == "published"
    ann = client.get(answer.get_json()["links"]["self"], headers=tokens["admin"]).get_json()
    assert ann["bypass_reason"] == "Approver unreachable; substation fire"
    assert ann["approved_by"] is None
    bypassed = audit.entries(r, action="announcement.bypassed")
    assert [(e["actor"], e["details"]["reason"]) for e in bypassed] == [
        ("ada", "Approver unreachable; substation fire")
    ]
    assert r.llen("rq:queue:plan") == 1, "the fan-out is on its way"


def test_admin_without_a_reason_still_needs_a_second_person(client, tokens, r):
    answer = client.post("/api/v1/announcements", json=MAJOR, headers=tokens["admin"]).get_json()
    assert answer["state"] == "pending_approval"
    blank = client.post(
        "/api/v1/announcements", json={**MAJOR, "bypass_reason": "    "}, headers=tokens["admin"]
    )
    assert blank.status_code == 422 and "bypass_reason" in blank.get_json()["errors"]
    assert r.llen("rq:queue:plan") == 0


@pytest.mark.parametrize("role", ["helpdesk", "approver"])
def test_only_admins_may_bypass(client, tokens, r, role):
    body = {**MAJOR, "bypass_reason": "I am in a hurry"}
    answer = client.post("/api/v1/announcements", json=body, headers=tokens[role])
    assert answer.status_code == 403
    assert "without approval" in answer.get_json()["message"]
    assert r.zcard("bc:anns") == 0, "nothing stored"
    assert audit.entries(r, action="announcement.created") == []


def test_audit_api_is_for_admins_filterable_and_paged(client, tokens, r):
    first = client.post("/api/v1/announcements", json=MAJOR, headers=tokens["helpdesk"]).get_json()
    client.post("/api/v1/announcements", json=MAJOR, headers=tokens["approver"])
    assert client.get("/api/v1/audit", headers=tokens["approver"]).status_code == 403
    assert client.get("/api/v1/audit").status_code == 401

    by_incident = client.get(
        f"/api/v1/audit?incident_id={first['incident_id']}", headers=tokens["admin"]
    ).get_json()
    assert [(e["actor"], e["action"]) for e in by_incident["items"]] == [
        ("helen", "announcement.created")
    ]
    by_person = client.get("/api/v1/audit?actor=arne", headers=tokens["admin"]).get_json()
    assert {e["action"] for e in by_person["items"]} == {"announcement.created"}

    everything = [e["id"] for e in audit.entries(r, limit=500)]
    assert len(everything) >= 5  # token creations, plan, two announcements
    page1 = client.get("/api/v1/audit?limit=2", headers=tokens["admin"]).get_json()
    page2 = client.get(
        f"/api/v1/audit?limit=2&before={page1['next_before']}", headers=tokens["admin"]
    ).get_json()
    assert [e["id"] for e in page1["items"] + page2["items"]] == everything[:4]

    bad = client.get("/api/v1/audit?before=yesterday", headers=tokens["admin"])
    assert bad.status_code == 422 and "before" in bad.get_json()["errors"]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_audit_entries_cannot_be_changed_through_the_api(client, tokens, r, method):
    before = audit.entries(r, limit=500)
    response = client.open("/api/v1/audit", method=method, headers=tokens["admin"], json={})
    assert response.status_code == 405
    assert audit.entries(r, limit=500) == before


def test_token_creation_subscriber_import_and_erase_are_audited(client, tokens, r):
    create_token(r, "grafana", "monitor", created_by="ada", ip="10.0.0.7")
    made = audit.entries(r, action="token.created")[0]
    assert (made["actor"], made["ip"], made["details"]) == (
        "ada",
        "10.0.0.7",
        {"name": "grafana", "role": "monitor"},
    )
    rows = "external_id,email,audiences\nc-1,c1@example.org,consumers\nc-2,not-an-email,consumers\n"
    client.post(
        "/api/v1/subscribers/import", data=rows, content_type="text/csv", headers=tokens["helpdesk"]
    )
    imported = audit.entries(r, action="subscribers.imported")[0]
    assert imported["actor"] == "helen"
    assert imported["details"] == {"source": "csv", "created": 1, "updated": 0, "rejected": 1}
    person = client.get("/api/v1/subscribers", headers=tokens["helpdesk"]).get_json()["items"][0]
    client.delete(f"/api/v1/subscribers/{person['id']}", headers=tokens["helpdesk"])
    erased = audit.entries(r, action="subscriber.erased")[0]
    assert erased["details"] == {"subscriber_id": person["id"]}
    assert "c1@example.org" not in str(audit.entries(r, limit=500)), "no contact data in the log"


def test_plan_load_is_audited_once_per_distinct_plan(app, r, redis_server, tmp_path):
    assert len(audit.entries(r, action="plan.loaded")) == 1
    create_app({"REDIS_URL": redis_server.url, "DATA_DIR": str(tmp_path), "PLAN": None})
    assert len(audit.entries(r, action="plan.loaded")) == 1, "same plan: no second entry"
    plan = tmp_path / "plan.toml"
    plan.write_text(
        '[organisation]\nname = "Other"\ndefault_locale = "en"\nlocales = ["en"]\n'
        '[channels_by_severity]\ninfo = ["banner"]\nminor = ["banner"]\nmajor = ["email"]\n'
        'critical = ["email"]\n'
        '[audiences.all]\ndescription = "Everyone"\nchannels = ["email"]\n'
    )
    create_app({"REDIS_URL": redis_server.url, "DATA_DIR": str(tmp_path), "PLAN": str(plan)})
    loads = audit.entries(r, action="plan.loaded")
    assert len(loads) == 2 and loads[0]["details"]["source"] == str(plan)
