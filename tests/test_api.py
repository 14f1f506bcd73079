"""The announcements and incidents API: auth, validation, idempotency, approval."""

from __future__ import annotations

import pytest

ANNOUNCEMENT = {
    "title": "Power outage in Amsterdam",
    "body": "We are investigating a power outage in Amsterdam-Noord.",
    "severity": "minor",
    "audiences": ["consumers"],
}


def post(client, headers, body=ANNOUNCEMENT, **extra_headers):
    return client.post("/api/v1/announcements", json=body, headers={**headers, **extra_headers})


def assert_error_shape(response, code):
    assert response.status_code == code
    body = response.get_json()
    assert body["code"] == code
    assert isinstance(body["status"], str) and body["status"]
    assert isinstance(body["message"], str) and body["message"]
    return body


def test_no_token_is_401_json(client):
    assert_error_shape(client.post("/api/v1/announcements", json=ANNOUNCEMENT), 401)
    assert_error_shape(client.get("/api/v1/incidents"), 401)


def test_unknown_token_is_401(client):
    response = post(client, {"Authorization": "Bearer bct_nope"})
    assert "unknown" in assert_error_shape(response, 401)["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/v1/announcements"),
        ("get", "/api/v1/incidents"),
        ("get", "/api/v1/subscribers"),
    ],
)
def test_monitor_role_is_403(client, tokens, method, path):
    response = getattr(client, method)(path, json=ANNOUNCEMENT, headers=tokens["monitor"])
    assert "monitor" in assert_error_shape(response, 403)["message"]


def test_accepts_and_opens_incident(client, tokens):
    response = post(client, tokens["approver"])
    assert response.status_code == 202
    body = response.get_json()
    assert body["state"] == "published"
    assert body["id"].startswith("ann_") and body["incident_id"].startswith("inc_")
    incident = client.get(body["links"]["incident"], headers=tokens["helpdesk"]).get_json()
    assert incident["title"] == ANNOUNCEMENT["title"]
    assert incident["status"] == "investigating"
    assert [a["id"] for a in incident["timeline"]] == [body["id"]]
    listed = client.get("/api/v1/incidents", headers=tokens["helpdesk"]).get_json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == body["incident_id"]


def test_follow_up_appends_to_timeline(client, tokens):
    first = post(client, tokens["approver"]).get_json()
    update = {
        **ANNOUNCEMENT,
        "title": "Fixed",
        "body": "Power is back.",
        "status": "resolved",
        "incident_id": first["incident_id"],
    }
    second = post(client, tokens["approver"], update).get_json()
    assert second["incident_id"] == first["incident_id"]
    incident = client.get(
        f"/api/v1/incidents/{first['incident_id']}", headers=tokens["admin"]
    ).get_json()
    assert [a["id"] for a in incident["timeline"]] == [first["id"], second["id"]]
    assert incident["status"] == "resolved" and incident["resolved_at"] is not None
    # The first announcement is untouched: the timeline is append-only.
    assert incident["timeline"][0]["title"] == ANNOUNCEMENT["title"]


def test_correction_joins_the_corrected_incident(client, tokens):
    first = post(client, tokens["approver"]).get_json()
    fix = {**ANNOUNCEMENT, "body": "Correction: it is Amsterdam-Oost.", "corrects": first["id"]}
    second = post(client, tokens["approver"], fix).get_json()
    assert second["incident_id"] == first["incident_id"]
    got = client.get(f"/api/v1/announcements/{second['id']}", headers=tokens["admin"]).get_json()
    assert got["corrects"] == first["id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": None}, "title"),
        ({"body": ""}, "body"),
        ({"severity": "apocalyptic"}, "severity"),
        ({"status": "panicking"}, "status"),
        ({"audiences": ["martians"]}, "audiences"),
        ({"audiences": []}, "audiences"),
        ({"channels": ["pigeon"]}, "channels"),
        ({"body": "x" * 10_001}, "body"),
        ({"translations": {"xx": {"title": "t", "body": "b"}}}, "translations"),
        ({"translations": {"nl": {"title": "t"}}}, "translations"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_announcement_names_the_field(client, tokens, r, change, field):
    body = {**ANNOUNCEMENT, **change}
    body = {k: v for k, v in body.items() if v is not None}
    if change.get("title", "") is None:
        body.pop("title", None)
    error = assert_error_shape(post(client, tokens["admin"], body), 422)
    assert field in error["errors"]
    assert field in error["message"]
    assert not r.keys("bc:ann:*"), "a rejected announcement must not be stored"


def test_missing_body_field(client, tokens):
    body = {k: v for k, v in ANNOUNCEMENT.items() if k != "body"}
    error = assert_error_shape(post(client, tokens["admin"], body), 422)
    assert error["errors"]["body"] == ["Missing data for required field."]


def test_malformed_json_is_400(client, tokens):
    response = client.post(
        "/api/v1/announcements",
        data="{not json",
        headers={**tokens["admin"], "Content-Type": "application/json"},
    )
    assert "JSON" in assert_error_shape(response, 400)["message"]


def test_unknown_incident_is_422(client, tokens):
    error = assert_error_shape(
        post(client, tokens["admin"], {**ANNOUNCEMENT, "incident_id": "inc_nope"}), 422
    )
    assert "incident_id" in error["errors"]


def test_unknown_announcement_is_404(client, tokens):
    assert_error_shape(client.get("/api/v1/announcements/ann_nope", headers=tokens["admin"]), 404)
    assert_error_shape(client.get("/api/v1/incidents/inc_nope", headers=tokens["admin"]), 404)
    assert_error_shape(
        client.get("/api/v1/announcements/ann_nope/deliveries", headers=tokens["admin"]), 404
    )


def test_oversized_request_is_413(make_app, tokens):
    client = make_app(MAX_CONTENT_LENGTH=2000).test_client()
    response = post(client, tokens["admin"], {**ANNOUNCEMENT, "body": "y" * 5000})
    assert_error_shape(response, 413)


def test_idempotency_key_returns_same_answer_and_one_broadcast(client, tokens, r):
    first = post(client, tokens["approver"], **{"Idempotency-Key": "helpdesk-ticket-42"})
    second = post(client, tokens["approver"], **{"Idempotency-Key": "helpdesk-ticket-42"})
    assert first.status_code == second.status_code == 202
    assert first.get_json() == second.get_json()
    assert len(r.keys("bc:ann:*")) == 1
    assert r.llen("rq:queue:plan") == 1, "the fan-out must be enqueued exactly once"
    other = post(client, tokens["approver"], **{"Idempotency-Key": "another"})
    assert other.get_json()["id"] != first.get_json()["id"]


def test_idempotency_key_reused_for_another_request_is_422(client, tokens, r):
    post(client, tokens["approver"], **{"Idempotency-Key": "k1"})
    response = post(
        client, tokens["approver"], {**ANNOUNCEMENT, "title": "Other"}, **{"Idempotency-Key": "k1"}
    )
    # The IETF Idempotency-Key draft: the same key for another payload is 422, not 409.
    assert "different request" in assert_error_shape(response, 422)["message"]
    assert len(r.keys("bc:ann:*")) == 1


def test_failed_request_frees_its_idempotency_key(client, tokens):
    bad = {**ANNOUNCEMENT, "incident_id": "inc_missing"}
    assert post(client, tokens["approver"], bad, **{"Idempotency-Key": "k2"}).status_code == 422
    # The same key with the same (still bad) body is refused the same way, not stuck "in progress".
    assert post(client, tokens["approver"], bad, **{"Idempotency-Key": "k2"}).status_code == 422


def test_helpdesk_drafts_need_a_second_person(client, tokens, r):
    body = post(client, tokens["helpdesk"]).get_json()
    assert body["state"] == "pending_approval"
    assert r.llen("rq:queue:plan") == 0, "nothing goes out before approval"
    path = f"/api/v1/announcements/{body['id']}"
    assert_error_shape(client.post(path + "/approve", headers=tokens["helpdesk"]), 403)
    approved = client.post(path + "/approve", headers=tokens["approver"]).get_json()
    assert approved["state"] == "published" and approved["approved_by"] == "arne"
    assert r.llen("rq:queue:plan") == 1
    assert_error_shape(client.post(path + "/approve", headers=tokens["approver2"]), 409)


def test_plan_requires_approval_for_major_and_author_cannot_approve(client, tokens):
    body = post(client, tokens["approver"], {**ANNOUNCEMENT, "severity": "major"}).get_json()
    assert body["state"] == "pending_approval"
    path = f"/api/v1/announcements/{body['id']}"
    error = assert_error_shape(client.post(path + "/approve", headers=tokens["approver"]), 403)
    assert "author" in error["message"]
    assert_error_shape(client.post(path + "/reject", json={}, headers=tokens["approver2"]), 422)
    rejected = client.post(
        path + "/reject", json={"reason": "wrong area"}, headers=tokens["approver2"]
    )
    assert rejected.get_json()["state"] == "rejected"
    assert rejected.get_json()["reason"] == "wrong area"


def test_openapi_document(client):
    spec = client.get("/api/openapi.json").get_json()
    assert "/api/v1/announcements" in spec["paths"]
    assert "/api/v1/announcements/{announcement_id}/deliveries" in spec["paths"]
    assert "/api/v1/subscribers" in spec["paths"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_unknown_route_is_json_404(client):
    assert_error_shape(client.get("/api/v1/nothing-here"), 404)
    assert_error_shape(client.put("/api/v1/announcements"), 405)
