"""Monitoring hooks: Alertmanager, Grafana and generic payloads → incidents, once."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from broadcaster.web.hooks.alerts import from_alertmanager
from channels.webhook import SIGNATURE_HEADER, sign
from tests.helpers import drain

PEOPLE = [
    {"external_id": "c1", "phone": "+31612345001", "locale": "nl", "audiences": ["consumers"]},
    {"external_id": "c2", "phone": "+31612345002", "audiences": ["consumers"]},
    {"external_id": "b1", "phone": "+31612345003", "audiences": ["business"]},
    {"external_id": "s1", "phone": "+31612345004", "audiences": ["staff"]},
]


def alertmanager(status="firing", group='{}:{alertname="PaymentsDown"}', **labels):
    labels = {"alertname": "PaymentsDown", "severity": "critical", "service": "payments", **labels}
    return {
        "version": "4",
        "groupKey": group,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "broadcaster",
        "groupLabels": {"alertname": labels["alertname"]},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "Payment API errors above 5%"},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {"summary": "Payment API errors"},
                "startsAt": "2026-11-23T09:10:00Z",
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-23T10:00:00Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": "c0ffee01",
            }
        ],
    }


@pytest.fixture
def people(client, tokens):
    assert (
        client.post("/api/v1/subscribers", json=PEOPLE, headers=tokens["admin"]).get_json()[
            "created"
        ]
        == 4
    )


def hook(client, tokens, payload, source="alertmanager"):
    return client.post(f"/hooks/{source}", json=payload, headers=tokens["monitor"])


STAFF_PHONE = "+31612345004"


def texts(twilio):
    """Texts to customers; staff get the agent brief of each announcement first (the plan's
    [staff]), counted apart."""
    return Counter(form["To"] for form in twilio.accepted() if form["To"] != STAFF_PHONE)


def test_firing_alert_publishes_the_holding_statement_at_once(
    app, client, tokens, people, providers
):
    _, twilio = providers
    response = hook(client, tokens, alertmanager())
    assert response.status_code == 200, response.get_json()
    result = response.get_json()
    assert result["outcome"] == "opened" and result["state"] == "published"
    drain(app)
    # consumers + business (the rule's audiences); critical → SMS. Staff had the brief first.
    assert texts(twilio) == {"+31612345001": 1, "+31612345002": 1, "+31612345003": 1}
    assert twilio.accepted()[0]["To"] == STAFF_PHONE
    assert twilio.accepted()[0]["Body"].startswith("Staff brief: Problems with payments.")
    by_to = {f["To"]: f["Body"] for f in twilio.accepted()}
    assert by_to["+31612345002"].startswith(
        "Acme Energy: Investigating: Problems with payments. Payments may fail since"
    )
    # The promise is a fact of the announcement too, so it survives any cut of the body; the
    # rule's need (Billing) picks the portal over the consumers' primary live chat.
    assert "will update you by" in by_to["+31612345002"]
    assert " Next update by: " in by_to["+31612345002"]
    assert "Billing: https://acme.example/portal" in by_to["+31612345002"]
    assert by_to["+31612345001"].startswith(
        "Acme Energy: Wordt onderzocht: Storing bij betalingen."
    )
    assert " Volgende update uiterlijk: " in by_to["+31612345001"]
    timeline = client.get(
        f"/api/v1/incidents/{result['incident_id']}", headers=tokens["admin"]
    ).get_json()["timeline"]
    assert timeline[0]["need"] == "Billing" and timeline[0]["next_update_at"]
    incident = client.get(
        f"/api/v1/incidents/{result['incident_id']}", headers=tokens["admin"]
    ).get_json()
    assert incident["timeline"][0]["author"] == "monitoring:alertmanager"
    assert [e["outcome"] for e in incident["monitoring"]] == ["opened"]
    assert client.get("/banner.json").get_json()["banners"][0]["title"] == "Problems with payments"


def test_twenty_concurrent_copies_open_one_incident_and_text_once(app, tokens, people, providers):
    _, twilio = providers
    payload = alertmanager()

    def deliver(_):
        return (
            app.test_client()
            .post("/hooks/alertmanager", json=payload, headers=tokens["monitor"])
            .get_json()
        )

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(deliver, range(20)))
    drain(app)
    assert Counter(r["outcome"] for r in results) == {"opened": 1, "repeat: nothing sent": 19}
    assert len({r["incident_id"] for r in results}) == 1
    client = app.test_client()
    assert client.get("/api/v1/incidents", headers=tokens["admin"]).get_json()["total"] == 1
    assert texts(twilio) == {"+31612345001": 1, "+31612345002": 1, "+31612345003": 1}


def test_new_alert_in_the_group_is_recorded_not_broadcast(app, client, tokens, people, providers):
    first = hook(client, tokens, alertmanager()).get_json()
    more = alertmanager()
    more["alerts"].append(
        {
            **more["alerts"][0],
            "fingerprint": "c0ffee02",
            "labels": {**more["alerts"][0]["labels"], "instance": "pay-2"},
        }
    )
    second = hook(client, tokens, more).get_json()
    assert second["outcome"] == "1 new alert(s) added to the incident"
    assert second["incident_id"] == first["incident_id"]
    drain(app)
    assert sum(texts(providers[1]).values()) == 3


def test_resolve_creates_a_draft_and_sends_nothing(app, client, tokens, people, providers):
    first = hook(client, tokens, alertmanager()).get_json()
    drain(app)
    resolved = hook(client, tokens, alertmanager(status="resolved")).get_json()
    assert resolved["outcome"] == "resolved" and resolved["state"] == "pending_approval"
    drain(app)
    assert sum(texts(providers[1]).values()) == 3
    incident = client.get(
        f"/api/v1/incidents/{first['incident_id']}", headers=tokens["admin"]
    ).get_json()
    draft = incident["timeline"][-1]
    assert draft["status"] == "resolved" and draft["state"] == "pending_approval"
    assert [e["outcome"] for e in incident["monitoring"]] == ["opened", "resolved"]
    again = hook(client, tokens, alertmanager(status="resolved")).get_json()
    assert again["outcome"] == "already resolved: nothing sent"


def test_flapping_reopens_the_same_incident_without_texting_again(
    app, client, tokens, people, providers
):
    _, twilio = providers
    first = hook(client, tokens, alertmanager()).get_json()
    drain(app)
    hook(client, tokens, alertmanager(status="resolved"))
    reopened = hook(client, tokens, alertmanager()).get_json()
    assert reopened["outcome"] == "reopened" and reopened["incident_id"] == first["incident_id"]
    assert "sms" not in reopened["channels"] and "email" not in reopened["channels"]
    assert "banner" in reopened["channels"], "the banner always shows the latest"
    drain(app)
    assert texts(twilio) == {"+31612345001": 1, "+31612345002": 1, "+31612345003": 1}
    incidents = client.get("/api/v1/incidents", headers=tokens["admin"]).get_json()
    assert incidents["total"] == 1 and incidents["items"][0]["status"] == "investigating"


def test_outside_the_reopen_window_a_new_incident_opens(make_app, tokens, tmp_path, providers):
    plan = tmp_path / "plan.toml"
    from broadcaster.domain.plan import BUNDLED_PLAN

    plan.write_text(
        BUNDLED_PLAN.read_text().replace("reopen_window_minutes = 30", "reopen_window_minutes = 0")
    )
    client = make_app(PLAN=str(plan)).test_client()
    first = hook(client, tokens, alertmanager()).get_json()
    hook(client, tokens, alertmanager(status="resolved"))
    time.sleep(0.01)
    second = hook(client, tokens, alertmanager()).get_json()
    assert second["outcome"] == "opened" and second["incident_id"] != first["incident_id"]


def test_all_clear_rule_publishes_the_resolution(make_app, tokens, tmp_path, providers):
    from broadcaster.domain.plan import BUNDLED_PLAN

    plan = tmp_path / "plan.toml"
    plan.write_text(
        BUNDLED_PLAN.read_text().replace('# all_clear = "payments-ok"', 'all_clear = "payments-ok"')
    )
    client = make_app(PLAN=str(plan)).test_client()
    hook(client, tokens, alertmanager())
    resolved = hook(client, tokens, alertmanager(status="resolved")).get_json()
    assert resolved["state"] == "published"
    [banner] = client.get("/banner.json").get_json()["banners"]
    assert banner["all_clear"] is True and banner["title"] == "Payments work again"


def test_grafana_payload(app, client, tokens, people, providers):
    payload = alertmanager(group='{}/{__grafana_autogenerated__="true"}:{alertname="PaymentsDown"}')
    payload.update(
        orgId=1, title="[FIRING:1] PaymentsDown", message="Payments failing", state="alerting"
    )
    payload["alerts"][0].update(
        values={"A": 7.5}, dashboardURL="http://grafana/d/x", silenceURL="http://grafana/silence"
    )
    result = hook(client, tokens, payload, "grafana").get_json()
    assert result["outcome"] == "opened"
    drain(app)
    assert sum(texts(providers[1]).values()) == 3
    # The event keeps which rule acted, as it was then (the plan may change later).
    [event] = client.get("/api/v1/hooks/events", headers=tokens["admin"]).get_json()["items"]
    assert event["rule"].startswith("rule 1: severity=critical service=payments")


def test_alerts_matching_no_rule_are_recorded_not_broadcast(client, tokens, providers):
    result = hook(client, tokens, alertmanager(severity="info", service="wiki")).get_json()
    assert result == {**result, "matched": False}
    assert client.get("/api/v1/incidents", headers=tokens["admin"]).get_json()["total"] == 0
    events = client.get("/api/v1/hooks/events", headers=tokens["helpdesk"]).get_json()
    assert events["total"] == 1 and "no rule matched" in events["items"][0]["outcome"]
    assert json.loads(events["items"][0]["raw"])["commonLabels"]["service"] == "wiki"


def test_auth_failures_record_nothing(client, tokens, r):
    payload = alertmanager()
    assert client.post("/hooks/alertmanager", json=payload).status_code == 401
    assert (
        client.post(
            "/hooks/alertmanager", json=payload, headers={"Authorization": "Bearer bct_forged"}
        ).status_code
        == 401
    )
    assert (
        client.post("/hooks/alertmanager", json=payload, headers=tokens["helpdesk"]).status_code
        == 401
    )
    assert r.llen("bc:hooks:events") == 0
    token = tokens["monitor"]["Authorization"].split()[1]
    basic = base64.b64encode(f"alertmanager:{token}".encode()).decode()
    ok = client.post("/hooks/grafana", json=payload, headers={"Authorization": f"Basic {basic}"})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "body is not JSON"),
        (json.dumps({"status": "firing", "alerts": []}), "groupKey"),
        (json.dumps({**alertmanager(), "status": "exploding"}), "status"),
    ],
)
def test_malformed_payloads_are_400_and_kept(client, tokens, body, reason):
    response = client.post(
        "/hooks/alertmanager",
        data=body,
        headers={**tokens["monitor"], "Content-Type": "application/json"},
    )
    assert response.status_code == 400 and reason in json.dumps(response.get_json())
    [event] = client.get("/api/v1/hooks/events", headers=tokens["admin"]).get_json()["items"]
    assert event["raw"] == body and event["outcome"].startswith("rejected")


def test_generic_hook_with_signature(make_app, tokens, r, providers):
    client = make_app(HOOKS_SECRET="generic-hook-secret-123").test_client()
    body = json.dumps(
        {
            "key": "db-primary",
            "status": "firing",
            "title": "Payments DB down",
            "summary": "Primary database unreachable",
            "severity": "critical",
            "labels": {"service": "payments"},
        }
    ).encode()
    good = sign("generic-hook-secret-123", body, int(time.time()))
    ok = client.post(
        "/hooks/generic",
        data=body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: good},
    )
    assert ok.status_code == 200 and ok.get_json()["outcome"] == "opened"
    forged = sign("wrong-secret", body, int(time.time()))
    bad = client.post(
        "/hooks/generic",
        data=body,
        headers={"Content-Type": "application/json", SIGNATURE_HEADER: forged},
    )
    assert bad.status_code == 401
    assert r.llen("bc:hooks:events") == 1, "the forged request left no trace"
    missing = client.post(
        "/hooks/generic", json={"key": "x", "status": "firing"}, headers=tokens["monitor"]
    )
    assert missing.status_code == 400 and "title" in missing.get_json()["errors"]


def grafana_group(*alerts: dict, common_annotations: dict | None = None) -> dict:
    """Grafana's documented webhook payload (contact point "webhook", version 1)."""
    return {
        "receiver": "broadcaster",
        "status": "firing",
        "orgId": 1,
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": annotations,
                "startsAt": "2026-11-23T09:10:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://grafana/alerting/grafana/x/view",
                "fingerprint": f"f{i}",
                "silenceURL": "http://grafana/alerting/silence/new",
                "dashboardURL": "",
                "panelURL": "",
                "values": {"B": 92.5},
                "valueString": "[ var='B' labels={} value=92.5 ]",
            }
            for i, (labels, annotations) in enumerate(alerts)
        ],
        "groupLabels": {"grafana_folder": "Infra"},
        "commonLabels": {"grafana_folder": "Infra", "severity": "major"},
        "commonAnnotations": common_annotations or {},
        "externalURL": "http://grafana/",
        "version": "1",
        "groupKey": '{}/{__grafana_autogenerated__="true"}:{grafana_folder="Infra"}',
        "truncatedAlerts": 0,
        "title": "[FIRING:2]  (Infra)",
        "state": "alerting",
        "message": "**Firing**\n\nValue: B=92.5\nLabels:\n - alertname = DiskFull\n",
    }


DISK = {"alertname": "DiskFull", "service": "db", "severity": "major", "grafana_folder": "Infra"}
LATENCY = {"alertname": "HighLatency", "service": "api", "severity": "major"}


def test_a_grafana_group_is_named_by_its_alerts_own_summaries(app, client, tokens):
    payload = grafana_group(
        (DISK, {"summary": "Disk almost full on db1"}),
        ({**LATENCY, "grafana_folder": "Infra"}, {"summary": "API latency above 2 s"}),
    )
    result = hook(client, tokens, payload, "grafana").get_json()
    assert result["outcome"] == "opened", result
    incident = client.get(
        f"/api/v1/incidents/{result['incident_id']}", headers=tokens["admin"]
    ).get_json()
    [draft] = incident["timeline"]
    # Not Grafana's "[FIRING:2]  (Infra)": the first alert's words and how many more.
    assert draft["title"] == "Disk almost full on db1 and 1 more"
    assert draft["body"] == "Monitoring reports: Disk almost full on db1 and 1 more."


@pytest.mark.parametrize(
    ("alerts", "common", "expected"),
    [
        ([(DISK, {"summary": "Disk full"})], {"summary": "Two things"}, "Two things"),
        ([(DISK, {}), (LATENCY, {"summary": "Slow API"})], {}, "Slow API and 1 more"),
        ([(DISK, {}), (LATENCY, {})], {}, "DiskFull (db) and 1 more"),
        ([({"severity": "major"}, {})], {}, "monitoring alert"),
        ([(DISK, {"summary": "  "})], {"summary": " "}, "DiskFull (db)"),
    ],
)
def test_group_summaries(alerts, common, expected):
    event = from_alertmanager(grafana_group(*alerts, common_annotations=common), "grafana")
    assert event.annotations["summary"] == expected and event.title == expected


def test_service_and_alertname_come_from_the_alerts_when_the_group_lacks_them():
    event = from_alertmanager(grafana_group((DISK, {}), (LATENCY, {})), "grafana")
    assert event.labels["service"] == "db" and event.labels["alertname"] == "DiskFull"
    # A label the group does have is the group's.
    payload = grafana_group((DISK, {}))
    payload["commonLabels"]["service"] = "storage"
    assert from_alertmanager(payload, "grafana").labels["service"] == "storage"


def test_a_title_someone_wrote_is_kept():
    payload = grafana_group((DISK, {"summary": "Disk almost full"}))
    payload["title"] = "Storage trouble in Amsterdam"
    assert from_alertmanager(payload, "grafana").title == "Storage trouble in Amsterdam"
