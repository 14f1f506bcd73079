"""The API's role matrix: every route × every role (and no credentials) → the expected status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broadcaster.domain.tokens import PERMISSIONS
from tests.test_auth_first import PUBLIC_API

ANNOUNCEMENT = {
    "title": "Payments delayed",
    "body": "Card payments are delayed. We are on it.",
    "severity": "minor",
    "audiences": ["consumers"],
}
WHEN = datetime.now(UTC)
MAINTENANCE = {
    "title": "Portal upgrade",
    "body": "The portal gets new servers.",
    "starts_at": (WHEN + timedelta(days=1)).isoformat(),
    "ends_at": (WHEN + timedelta(days=1, hours=2)).isoformat(),
    "audiences": ["consumers"],
}
SUBSCRIBER = {"external_id": "c-1", "email": "c1@example.org", "audiences": ["consumers"]}

# (method, path template, permission, body or None); {ann}, {inc}, {sub}, {mnt} are filled
# per test.
ROUTES = [
    ("POST", "/api/v1/announcements", "draft", ANNOUNCEMENT),
    ("GET", "/api/v1/announcements/{ann}", "read", None),
    ("GET", "/api/v1/announcements/{ann}/deliveries", "read", None),
    ("GET", "/api/v1/announcements/{ann}/preview", "preview", None),
    ("POST", "/api/v1/announcements/{ann}/approve", "approve", None),
    ("POST", "/api/v1/announcements/{ann}/reject", "approve", {"reason": "not yet"}),
    ("POST", "/api/v1/announcements/{ann}/withdraw", "withdraw", {"reason": "by mistake"}),
    ("GET", "/api/v1/announcements/pending", "read", None),
    ("POST", "/api/v1/preview", "preview", ANNOUNCEMENT),
    ("GET", "/api/v1/incidents", "read", None),
    ("GET", "/api/v1/incidents/{inc}", "read", None),
    ("GET", "/api/v1/incidents/{inc}/brief", "read", None),
    ("GET", "/api/v1/incidents/current/brief", "read", None),
    ("GET", "/api/v1/hooks/events", "read", None),
    ("GET", "/api/v1/audiences", "read", None),
    ("POST", "/api/v1/maintenances", "draft", MAINTENANCE),
    ("GET", "/api/v1/maintenances", "read", None),
    ("GET", "/api/v1/maintenances/{mnt}", "read", None),
    (
        "POST",
        "/api/v1/maintenances/{mnt}/extend",
        "publish",
        {"ends_at": (WHEN + timedelta(days=1, hours=3)).isoformat()},
    ),
    ("POST", "/api/v1/maintenances/{mnt}/complete", "publish", None),
    ("POST", "/api/v1/maintenances/{mnt}/cancel", "publish", {"reason": "postponed"}),
    ("GET", "/api/v1/audit", "audit", None),
    ("POST", "/api/v1/subscribers", "subscribers", [SUBSCRIBER]),
    ("GET", "/api/v1/subscribers", "subscribers", None),
    (
        "POST",
        "/api/v1/subscribers/import",
        "subscribers",
        "external_id,email,audiences\nc-2,c2@example.org,consumers\n",
    ),
    ("GET", "/api/v1/subscribers/{sub}", "subscribers", None),
    ("POST", "/api/v1/subscribers/{sub}/opt-out", "subscribers", {"channels": ["sms"]}),
    ("POST", "/api/v1/subscribers/{sub}/opt-in", "subscribers", {"channels": ["sms"]}),
    ("DELETE", "/api/v1/subscribers/{sub}", "subscribers", None),
    ("GET", "/api/v1/incidents/{inc}/report", "read", None),
    ("POST", "/api/v1/drills", "approve", {"scenario": "payments"}),
    ("GET", "/api/v1/drills", "read", None),
    ("POST", "/api/v1/drills/{drill}/end", "approve", None),
]
ROLES = ["none", "helpdesk", "approver", "monitor", "admin"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "template", "permission", "body"), ROUTES)
def test_role_matrix(client, tokens, role, method, template, permission, body):
    # A major announcement by a person outside ROLES waits for approval, so approve and
    # reject are open to every role that has the permission.
    seed = client.post(
        "/api/v1/announcements",
        json={**ANNOUNCEMENT, "severity": "major"},
        headers=tokens["approver2"],
    ).get_json()
    people = client.post("/api/v1/subscribers", json=[SUBSCRIBER], headers=tokens["admin"])
    sub = client.get("/api/v1/subscribers", headers=tokens["admin"]).get_json()["items"][0]["id"]
    assert people.status_code == 200
    drill = client.post(
        "/api/v1/drills", json={"scenario": "payments"}, headers=tokens["admin"]
    ).get_json()["id"]
    # Something published, so an incident is current (its brief answers 200).
    current = client.post("/api/v1/announcements", json=ANNOUNCEMENT, headers=tokens["approver2"])
    assert current.get_json()["state"] == "published"
    planned = client.post("/api/v1/maintenances", json=MAINTENANCE, headers=tokens["approver2"])
    assert planned.status_code == 202
    mnt = planned.get_json()["id"]
    path = template.format(ann=seed["id"], inc=seed["incident_id"], sub=sub, mnt=mnt, drill=drill)
    headers = {} if role == "none" else tokens[role]
    if isinstance(body, str):  # the CSV import
        response = client.open(
            path, method=method, data=body, content_type="text/csv", headers=headers
        )
    else:
        response = client.open(path, method=method, json=body, headers=headers)
    status = response.status_code
    if role == "none":
        assert status == 401, (method, path, response.get_json())
    elif permission in PERMISSIONS[role]:
        # Allowed: whatever the state says (e.g. 409 for a brief of an unpublished incident),
        # never an authorization refusal, a missing route or a crash.
        assert status not in (401, 403, 404, 405) and status < 500, (role, method, path, status)
    else:
        assert status == 403, (role, method, path, response.get_json())
    if status >= 400:
        assert response.get_json()["code"] == response.status_code  # the one error shape


def test_every_api_route_is_in_the_matrix(app):
    """A new route must be added to the matrix above, so its roles are decided on purpose."""
    covered = {
        (
            m,
            t.replace("{ann}", "x")
            .replace("{inc}", "x")
            .replace("{sub}", "x")
            .replace("{mnt}", "x")
            .replace("{drill}", "x"),
        )
        for m, t, _, _ in ROUTES
    }
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        if {(rule.rule, m) for m in rule.methods} & PUBLIC_API:
            continue  # open to anyone on purpose (tests/test_auth_first.py): no role decides
        path = rule.rule
        for arg in rule.arguments:
            path = path.replace(f"<{arg}>", "x")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (method, path) in covered, f"{method} {rule.rule} is not in the role matrix"
