"""Scheduled maintenance (``/api/v1/maintenances``): announced, reminded, in progress and
completed by the workers' scheduler, extended, ended early or cancelled in the open.

Real app, real Redis, real RQ workers running RQ's scheduler (``drain`` in-process, and a
``python worker.py`` process for the whole course), the real SendGrid SDK against the fake.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from broadcaster.delivery.maintenances import transition_job
from broadcaster.delivery.queues import PROMISE_QUEUE, queue
from broadcaster.domain.audit import AUDIT_KEY
from tests.helpers import drain, subscribe

Headers = dict[str, str]


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def plan(starts_in: float, ends_in: float, **changes: Any) -> dict[str, Any]:
    return {
        "title": "Payments upgrade",
        "body": "We upgrade the payment servers; card payments may fail.",
        "starts_at": at(starts_in),
        "ends_at": at(ends_in),
        "audiences": ["consumers"],
        "channels": ["email"],
        "components": ["payments"],
        "translations": {
            "nl": {"title": "Upgrade betalingen", "body": "We werken de betaalservers bij."}
        },
        **changes,
    }


def create(client: FlaskClient, headers: Headers, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/v1/maintenances", json=body, headers=headers)
    assert response.status_code == 202, response.get_json()
    assert response.headers["Location"] == response.get_json()["links"]["self"]
    return response.get_json()


def read(client: FlaskClient, headers: Headers, maintenance_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/maintenances/{maintenance_id}", headers=headers)
    assert response.status_code == 200
    return response.get_json()


def timeline(client: FlaskClient, headers: Headers, incident_id: str) -> list[dict[str, Any]]:
    body = client.get(f"/api/v1/incidents/{incident_id}", headers=headers).get_json()
    return body["timeline"]


def component(client: FlaskClient, cid: str) -> str:
    found = client.get("/api/v2/components.json").get_json()["components"]
    return next(c["status"] for c in found if c["id"] == cid)


def maintenance_v2(client: FlaskClient, path: str = "") -> list[dict[str, Any]]:
    got = client.get(f"/api/v2/scheduled-maintenances{path}.json").get_json()
    return got["scheduled_maintenances"]


def scheduled_jobs(app: Flask) -> list[str]:
    r = app.extensions["broadcaster"].redis
    registry = ScheduledJobRegistry(queue=queue(r, PROMISE_QUEUE), serializer=JSONSerializer)
    return sorted(registry.get_job_ids())


def audited(app: Flask, action: str) -> list[dict[str, Any]]:
    r = app.extensions["broadcaster"].redis
    found = []
    for _, fields in r.xrange(AUDIT_KEY):
        if fields[b"action"].decode() == action:
            found.append(json.loads(fields[b"details"]))
    return found


# The whole course, driven by a real worker process and its scheduler ---------------------


def test_a_maintenance_runs_its_course_in_a_real_worker(
    app: Flask,
    client: FlaskClient,
    tokens: dict[str, Headers],
    r: Any,
    redis_server: Any,
    providers: Any,
    tmp_path: Path,
) -> None:
    """Announced at once; reminded; in progress at starts_at (component under maintenance,
    on the banner); completed at ends_at (operational again): every transition by email,
    in each reader's language, by a ``python worker.py`` whose RQ scheduler moves the jobs."""
    from tests.processes import wait_for
    from tests.workers import Workers, worker_env

    sendgrid, twilio = providers
    subscribe(
        client,
        tokens["admin"],
        [
            {"email": "eva@example.com", "audiences": ["consumers"], "locale": "en"},
            {"email": "noor@example.com", "audiences": ["consumers"], "locale": "nl"},
        ],
    )
    env = worker_env(
        redis_server.url,
        sendgrid,
        twilio,
        tmp_path / "data",
        BROADCASTER_PLAN=app.config["PLAN"] or "",
        BROADCASTER_STAFF_LEAD_MAX="0",
    )
    # The worker first: a start-up slowed by a busy machine must not eat into the window
    # (a reminder that falls due after the start is skipped, rightly).
    workers = Workers(env, tmp_path).start(r, 1)
    try:
        # A reminder 0.1 min (6 s) before a start 9 s ahead; 9 s of maintenance.
        created = create(client, tokens["admin"], plan(9, 18, reminders_minutes_before=[0.1]))
        assert created["state"] == "scheduled" and created["approval"] == "published"
        (upcoming,) = maintenance_v2(client, "/upcoming")
        assert upcoming["status"] == "scheduled" and upcoming["impact"] == "maintenance"
        assert upcoming["name"] == "Payments upgrade"
        assert [c["id"] for c in upcoming["components"]] == ["payments"]
        wait_for(
            lambda: read(client, tokens["admin"], created["id"])["state"] == "in_progress",
            timeout=40,
            what="the maintenance in progress",
        )
        assert component(client, "payments") == "under_maintenance"
        banner = client.get("/banner.json?audience=consumers&lang=en").get_json()["banners"]
        assert banner and banner[0]["title"] == "Maintenance in progress: Payments upgrade"
        (active,) = maintenance_v2(client, "/active")
        assert active["status"] == "in_progress"
        summary = client.get("/api/v2/summary.json").get_json()
        assert [m["id"] for m in summary["scheduled_maintenances"]] == [created["incident_id"]]
        assert summary["incidents"] == []  # a maintenance is not an incident
        wait_for(
            lambda: read(client, tokens["admin"], created["id"])["state"] == "completed",
            timeout=40,
            what="the maintenance completed",
        )
        wait_for(lambda: len(sendgrid.accepted()) >= 8, timeout=30, what="every email sent")
    finally:
        workers.stop()
    assert component(client, "payments") == "operational"
    subjects: dict[str, list[str]] = {}
    for address, payload in sendgrid.accepted():
        # The organisation first, as in every subject.
        subjects.setdefault(address, []).append(payload["subject"].removeprefix("Acme Energy: "))
    assert subjects["eva@example.com"] == [
        "Scheduled maintenance: Payments upgrade",
        "Scheduled maintenance: Payments upgrade",  # the reminder
        "Maintenance in progress: Payments upgrade",
        "Maintenance completed: Payments upgrade",
    ], workers.logs()
    assert subjects["noor@example.com"] == [
        "Gepland onderhoud: Upgrade betalingen",
        "Gepland onderhoud: Upgrade betalingen",
        "Onderhoud bezig: Upgrade betalingen",
        "Onderhoud voltooid: Upgrade betalingen",
    ]
    reminder = [p for a, p in sendgrid.accepted() if a == "noor@example.com"][1]
    text = next(c["value"] for c in reminder["content"] if c["type"] == "text/plain")
    assert "Herinnering: het onderhoud begint om" in text
    statuses = [a["status"] for a in timeline(client, tokens["admin"], created["incident_id"])]
    assert statuses == ["scheduled", "scheduled", "in_progress", "completed"]
    (done,) = maintenance_v2(client)
    assert done["status"] == "completed" and done["resolved_at"]
    assert maintenance_v2(client, "/active") == maintenance_v2(client, "/upcoming") == []
    incident = client.get(
        f"/api/v1/incidents/{created['incident_id']}", headers=tokens["admin"]
    ).get_json()
    assert incident["resolved_at"]


# Approval ---------------------------------------------------------------------------------


def test_the_announcement_waits_for_approval_like_any_and_nothing_runs_until_approved(
    app: Flask, client: FlaskClient, tokens: dict[str, Headers]
) -> None:
    created = create(client, tokens["helpdesk"], plan(3, 5))
    assert created["approval"] == "pending_approval"
    assert maintenance_v2(client) == []  # nothing public yet
    drain(app, timeout=20)  # start and end fall due, but nobody approved the plan
    held = read(client, tokens["admin"], created["id"])
    assert held["state"] == "scheduled"
    assert len(timeline(client, tokens["admin"], created["incident_id"])) == 1
    assert component(client, "payments") == "operational"


def test_approved_it_runs_on_its_own(
    app: Flask, client: FlaskClient, tokens: dict[str, Headers]
) -> None:
    created = create(client, tokens["helpdesk"], plan(3, 12))
    first = created["announcement_id"]
    approved = client.post(f"/api/v1/announcements/{first}/approve", headers=tokens["approver"])
    assert approved.status_code == 200
    drain(app, timeout=20)
    assert read(client, tokens["admin"], created["id"])["state"] == "completed"
    later = timeline(client, tokens["admin"], created["incident_id"])[1:]
    # Approved with the plan: the automatic transitions did not wait for anyone.
    assert [(a["status"], a["state"], a["preapproved"]) for a in later] == [
        ("in_progress", "published", True),
        ("completed", "published", True),
    ]


def test_a_rejected_plan_is_called_off_and_nothing_is_published(
    app: Flask, client: FlaskClient, tokens: dict[str, Headers]
) -> None:
    created = create(client, tokens["helpdesk"], plan(2, 4))
    rejected = client.post(
        f"/api/v1/announcements/{created['announcement_id']}/reject",
        json={"reason": "Not during the sale."},
        headers=tokens["approver"],
    )
    assert rejected.status_code == 200
    drain(app, timeout=20)
    called_off = read(client, tokens["admin"], created["id"])
    assert called_off["state"] == "cancelled" and called_off["reason"] == "Not during the sale."
    assert len(timeline(client, tokens["admin"], created["incident_id"])) == 1
    assert maintenance_v2(client) == []


# Extend, end early, cancel ----------------------------------------------------------------


def test_extended_then_ended_early_each_in_the_open(
    app: Flask, client: FlaskClient, tokens: dict[str, Headers]
) -> None:
    created = create(client, tokens["admin"], plan(2, 300))
    mid = created["id"]
    drain(app, timeout=10)  # the start falls due; the end lies beyond this drain
    assert read(client, tokens["admin"], mid)["state"] == "in_progress"
    assert component(client, "payments") == "under_maintenance"
    assert scheduled_jobs(app) == [f"maint-{mid}-v1-complete"]

    refused = client.post(
        f"/api/v1/maintenances/{mid}/extend", json={"ends_at": at(600)}, headers=tokens["helpdesk"]
    )
    assert refused.status_code == 403
    shorter = client.post(
        f"/api/v1/maintenances/{mid}/extend", json={"ends_at": at(100)}, headers=tokens["approver"]
    )
    assert shorter.status_code == 422 and "ends_at" in shorter.get_json()["errors"]
    extended = client.post(
        f"/api/v1/maintenances/{mid}/extend", json={"ends_at": at(600)}, headers=tokens["approver"]
    )
    assert extended.status_code == 200, extended.get_json()
    assert extended.get_json()["version"] == 2
    assert scheduled_jobs(app) == [f"maint-{mid}-v2-complete"]  # the old end is gone
    with app.app_context():  # and had it fired, it would have done nothing
        assert transition_job(mid, "complete", 1).startswith("stale")
    latest = timeline(client, tokens["admin"], created["incident_id"])[-1]
    assert latest["status"] == "in_progress"
    assert latest["title"] == "Maintenance in progress: Payments upgrade"
    assert latest["body"].startswith("The maintenance takes longer than planned")
    assert latest["author"] == "arne"
    assert latest["translations"]["nl"]["body"].startswith("Het onderhoud duurt langer")

    ended = client.post(f"/api/v1/maintenances/{mid}/complete", headers=tokens["approver"])
    assert ended.status_code == 200
    assert ended.get_json()["state"] == "completed"
    assert scheduled_jobs(app) == []
    latest = timeline(client, tokens["admin"], created["incident_id"])[-1]
    assert latest["status"] == "completed"
    assert latest["body"].startswith("The maintenance finished earlier than planned")
    assert component(client, "payments") == "operational"
    again = client.post(f"/api/v1/maintenances/{mid}/complete", headers=tokens["approver"])
    assert again.status_code == 409
    actions = [d["maintenance_id"] for d in audited(app, "maintenance.extended")]
    assert actions == [mid]
    assert [d["maintenance_id"] for d in audited(app, "maintenance.ended_early")] == [mid]


def test_cancelled_before_it_starts_with_the_reason_in_the_open(
    app: Flask, client: FlaskClient, tokens: dict[str, Headers]
) -> None:
    created = create(client, tokens["admin"], plan(300, 600, reminders_minutes_before=[1]))
    mid = created["id"]
    assert len(scheduled_jobs(app)) == 3  # the reminder, the start, the end
    early = client.post(f"/api/v1/maintenances/{mid}/complete", headers=tokens["approver"])
    assert early.status_code == 409  # not started: cancel it instead
    blank = client.post(
        f"/api/v1/maintenances/{mid}/cancel", json={"reason": "  "}, headers=tokens["approver"]
    )
    assert blank.status_code == 422 and "reason" in blank.get_json()["errors"]
    cancelled = client.post(
        f"/api/v1/maintenances/{mid}/cancel",
        json={"reason": "The supplier postponed the upgrade."},
        headers=tokens["approver"],
    )
    assert cancelled.status_code == 200
    assert cancelled.get_json()["state"] == "cancelled"
    assert scheduled_jobs(app) == []
    latest = timeline(client, tokens["admin"], created["incident_id"])[-1]
    assert latest["title"] == "Maintenance cancelled: Payments upgrade"
    assert latest["status"] == "cancelled"
    assert "The supplier postponed the upgrade." in latest["body"]
    assert latest["translations"]["nl"]["title"] == "Onderhoud geannuleerd: Upgrade betalingen"
    (shown,) = maintenance_v2(client)
    assert shown["status"] == "completed"  # Statuspage has no "cancelled"
    assert shown["incident_updates"][0]["status"] == "completed"
    assert maintenance_v2(client, "/upcoming") == []
    again = client.post(
        f"/api/v1/maintenances/{mid}/cancel", json={"reason": "Again."}, headers=tokens["approver"]
    )
    assert again.status_code == 409
    (entry,) = audited(app, "maintenance.cancelled")
    assert entry["reason"] == "The supplier postponed the upgrade."


def test_a_pending_plan_cannot_be_changed_until_decided(
    client: FlaskClient, tokens: dict[str, Headers]
) -> None:
    created = create(client, tokens["helpdesk"], plan(300, 600))
    response = client.post(
        f"/api/v1/maintenances/{created['id']}/cancel",
        json={"reason": "Changed our minds."},
        headers=tokens["approver"],
    )
    assert response.status_code == 409
    assert "approve or reject" in response.get_json()["message"]


def test_unknown_maintenance_is_a_404(client: FlaskClient, tokens: dict[str, Headers]) -> None:
    assert client.get("/api/v1/maintenances/mnt_nope", headers=tokens["admin"]).status_code == 404
    cancel = client.post(
        "/api/v1/maintenances/mnt_nope/cancel", json={"reason": "x"}, headers=tokens["admin"]
    )
    assert cancel.status_code == 404


def test_listed_latest_start_first(client: FlaskClient, tokens: dict[str, Headers]) -> None:
    later = create(client, tokens["admin"], plan(7200, 9000))
    sooner = create(client, tokens["admin"], plan(3600, 5400))
    body = client.get("/api/v1/maintenances", headers=tokens["helpdesk"]).get_json()
    assert [m["id"] for m in body["items"]] == [later["id"], sooner["id"]]
    assert body["total"] == 2
    first = client.get("/api/v1/maintenances?per_page=1", headers=tokens["helpdesk"])
    assert [m["id"] for m in first.get_json()["items"]] == [later["id"]]
    assert 'rel="next"' in first.headers["Link"]
    odd = client.get("/api/v1/maintenances?state=open", headers=tokens["helpdesk"])
    assert odd.status_code == 400  # a parameter it does not take


# Validation -------------------------------------------------------------------------------


def refused(client: FlaskClient, tokens: dict[str, Headers], **changes: Any) -> dict[str, Any]:
    response = client.post(
        "/api/v1/maintenances", json=plan(3600, 7200, **changes), headers=tokens["admin"]
    )
    assert response.status_code == 422, response.get_json()
    return response.get_json()["errors"]


def test_each_bad_field_is_named(client: FlaskClient, tokens: dict[str, Headers]) -> None:
    assert "starts_at" in refused(client, tokens, starts_at=at(-60))
    assert "ends_at" in refused(client, tokens, ends_at=at(1800))
    assert "ends_at" in refused(client, tokens, ends_at=at(3600 + 31 * 86400))
    assert "starts_at" in refused(client, tokens, starts_at="2026-12-24T10:00:00")  # no zone
    assert "reminders_minutes_before" in refused(client, tokens, reminders_minutes_before=[-5])
    past = refused(client, tokens, reminders_minutes_before=[120])  # 2 h before: already past
    assert "already past" in past["reminders_minutes_before"][0]
    assert "components" in refused(client, tokens, components=["dishwasher"])
    assert "audiences" in refused(client, tokens, audiences=["martians"])
    assert "channels" in refused(client, tokens, channels=["pigeon"])
    assert "severity" in refused(client, tokens, severity="apocalyptic")
    assert "title" in refused(client, tokens, title="x" * 190)  # no room for the prefix
    assert "translations" in refused(
        client, tokens, translations={"fr": {"title": "Mise à jour", "body": "On met à jour."}}
    )
    assert client.get("/api/v1/maintenances", headers=tokens["admin"]).get_json()["total"] == 0


def test_helpdesk_may_plan_monitor_may_not(client: FlaskClient, tokens: dict[str, Headers]) -> None:
    response = client.post("/api/v1/maintenances", json=plan(3600, 7200), headers=tokens["monitor"])
    assert response.status_code == 403
    assert client.post("/api/v1/maintenances", json=plan(3600, 7200)).status_code == 401


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)  # JSON has no NaN (a 400 before us)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    field=st.sampled_from(
        [
            "title",
            "body",
            "starts_at",
            "ends_at",
            "severity",
            "audiences",
            "channels",
            "components",
            "reminders_minutes_before",
            "translations",
        ]
    ),
    value=JSONISH,
)
def test_any_value_of_any_field_is_accepted_or_refused_never_a_500(
    app: Flask, tokens: dict[str, Headers], field: str, value: Any
) -> None:
    client = app.test_client()
    response = client.post(
        "/api/v1/maintenances", json={**plan(3600, 7200), field: value}, headers=tokens["admin"]
    )
    assert response.status_code in (202, 422), response.get_data(as_text=True)
    if response.status_code == 422:
        assert field in json.dumps(response.get_json()["errors"])


def test_when_no_worker_ran_until_after_the_end_it_is_announced_completed_only(
    app: Flask, client: FlaskClient, tokens: dict[str, Headers]
) -> None:
    created = create(client, tokens["admin"], plan(1.5, 2.5))
    time.sleep(3)  # the workers were down through the whole window
    drain(app, timeout=10)
    statuses = [a["status"] for a in timeline(client, tokens["admin"], created["incident_id"])]
    assert statuses == ["scheduled", "completed"]
    assert read(client, tokens["admin"], created["id"])["state"] == "completed"


def test_the_status_page_and_the_sms_name_the_status_once_in_each_language(
    app: Flask, client: FlaskClient, tokens: dict[str, Headers], twilio: Any
) -> None:
    subscribe(
        client,
        tokens["admin"],
        [{"phone": "+31612345678", "audiences": ["consumers"], "locale": "nl"}],
    )
    created = create(client, tokens["admin"], plan(2, 300, channels=["sms"]))
    drain(app, timeout=10)
    bodies = [form["Body"] for form in twilio.accepted()]
    assert len(bodies) == 2, bodies
    assert "Gepland onderhoud: Upgrade betalingen" in bodies[0]
    assert "Onderhoud bezig: Upgrade betalingen" in bodies[1]
    assert not any("Gepland: Gepland" in b or "Bezig: Onderhoud" in b for b in bodies)
    page = client.get("/status?lang=nl").get_data(as_text=True)
    assert "Onderhoud bezig: Upgrade betalingen" in page
    assert "Bezig" in page and "Gepland" in page  # the status words of both updates
    english = client.get("/status?lang=en").get_data(as_text=True)
    assert "In progress" in english and "Scheduled" in english
    assert created["incident_id"] in english


def test_the_helpdesk_current_brief_is_a_maintenance_only_while_it_runs(
    app: Flask, client: FlaskClient, tokens: dict[str, Headers]
) -> None:
    created = create(client, tokens["admin"], plan(2, 300))
    ahead = client.get("/api/v1/incidents/current/brief", headers=tokens["helpdesk"])
    assert ahead.status_code == 404  # announced, but not happening now
    drain(app, timeout=10)
    running = client.get("/api/v1/incidents/current/brief", headers=tokens["helpdesk"])
    assert running.status_code == 200
    assert running.get_json()["incident_id"] == created["incident_id"]
    assert running.get_json()["title"] == "Maintenance in progress: Payments upgrade"
