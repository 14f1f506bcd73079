"""The post-incident report (issue 17): metrics from a scripted timeline with known times,
the Markdown with every section, the API, the printable admin page with its SVG pictures,
and the team's append-only review.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broadcaster.domain import report_metrics as rm
from broadcaster.rendering import report_svg
from broadcaster.rendering.report import markdown, seconds
from tests.helpers import drain, publish, subscribe

# A scripted incident: the alert at t=990, opened at 1000.
T0 = 1_000.0
INCIDENT = {"id": "inc_1", "opened_at": T0, "resolved_at": T0 + 1560}
ALERTS = [{"at": T0 - 10, "status": "firing", "source": "alertmanager", "title": "Payments"}]


def ann(ident: str, created: float, published: float | None, **more: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "created_at": created,
        "published_at": published,
        "approved_by": None,
        "next_update_at": None,
        "customer_facing": True,
        "title": ident,
        **more,
    }


ANNOUNCEMENTS = [
    # The holding statement: out at once (40 s after the alert), promising 10 minutes.
    ann("a1", T0, T0 + 30, next_update_at=T0 + 630, status="investigating"),
    # An approved update before the promise fell due (kept), promising another by T0+1400.
    ann("a2", T0 + 500, T0 + 620, approved_by="ann", next_update_at=T0 + 1400),
    # Staff only: keeps no customer promise and is no customer update.
    ann("a3", T0 + 700, T0 + 700, customer_facing=False, next_update_at=T0 + 800),
    # The resolution, late for the second promise (missed), approved after 60 s.
    ann("a4", T0 + 1500, T0 + 1560, approved_by="bob", status="resolved"),
    # Rejected: never published, no approval time.
    ann("a5", T0 + 900, None, state="rejected"),
]
DELIVERIES = [
    {"channel": "sms", "subscriber_id": "p1", "state": "sent", "at": T0 + 35},
    {"channel": "sms", "subscriber_id": "p2", "state": "failed", "at": T0 + 31},
    {"channel": "email", "subscriber_id": "p2", "state": "delivered", "at": T0 + 40},
    {"channel": "email", "subscriber_id": "p1", "state": "bounced", "at": T0 + 95},
    {"channel": "email", "subscriber_id": "p3", "state": "skipped", "error": "opted out"},
    {"channel": "email", "subscriber_id": "p4", "state": "sent", "at": T0 + 61, "fallback": None},
    {
        "channel": "sms",
        "subscriber_id": "p4",
        "state": "failed",
        "at": T0 + 60,
        "fallback": "email",
    },
]


def test_metrics_from_a_scripted_timeline():
    m = rm.metrics(
        INCIDENT, ANNOUNCEMENTS, ALERTS, DELIVERIES, now=T0 + 5000, staff_briefed_at=T0 + 5
    )
    assert m["started_at"] == T0 - 10
    assert m["time_to_first_statement_s"] == 40
    assert m["time_to_first_delivery_s"] == 45  # the first to leave us; the failed one never did
    assert m["time_to_approval_s"] == {"median": 90, "max": 120, "count": 2}
    assert m["time_to_staff_brief_s"] == 15
    assert m["promises"] == {"made": 2, "kept": 1, "missed": 1}
    # Customer updates at 30, 620 and 1560: gaps 590 and 940.
    assert m["updates"] == {"count": 3, "median_gap_s": 765}
    assert m["duration_s"] == 1570


def test_a_promise_not_yet_due_is_open_and_one_past_due_without_an_update_missed():
    one = [ann("a1", T0, T0, next_update_at=T0 + 600)]
    assert rm.promises(one, now=T0 + 599)[0]["outcome"] == "open"
    assert rm.promises(one, now=T0 + 600)[0]["outcome"] == "missed"


def test_an_incident_without_statements_has_no_times():
    m = rm.metrics({"opened_at": T0}, [ann("a", T0, None)], [], [], now=T0 + 10)
    assert m["time_to_first_statement_s"] is None and m["time_to_first_delivery_s"] is None
    assert m["time_to_approval_s"] == {"median": None, "max": None, "count": 0}
    assert m["promises"] == {"made": 0, "kept": 0, "missed": 0}


def test_deliveries_per_channel_reach_and_per_minute():
    rows = rm.per_channel(DELIVERIES)
    assert rows["email"] == {
        "sent": 3,
        "delivered": 1,
        "failed": 0,
        "bounced": 1,
        "fell_back": 0,
        "opted_out": 1,
    }
    assert rows["sms"] == {
        "sent": 1,
        "delivered": 0,
        "failed": 2,
        "bounced": 0,
        "fell_back": 1,
        "opted_out": 0,
    }
    # p1, p2 and p4 were reached (p3 opted out) of an audience of 4.
    assert rm.reach(DELIVERIES, 4) == 75.0
    assert rm.reach(DELIVERIES, 0) is None
    assert rm.per_minute(DELIVERIES, T0) == {"sms": {0: 1}, "email": {0: 1, 1: 2}}


AUDIT = [
    {
        "at": T0,
        "action": "announcement.created",
        "actor": "monitoring:alertmanager",
        "announcement_id": "a1",
        "details": {"title": "Problems"},
    },
    {
        "at": T0 + 30,
        "action": "announcement.published",
        "actor": "monitoring:alertmanager",
        "announcement_id": "a1",
        "details": {},
    },
    {
        "at": T0 + 620,
        "action": "announcement.approved",
        "actor": "tok",
        "announcement_id": "a2",
        "details": {"person": "ann@acme.example"},
    },
    {
        "at": T0 + 650,
        "action": "announcement.bypassed",
        "actor": "admin",
        "announcement_id": "c1",
        "details": {"reason": "the CEO is on a plane"},
    },
    {
        "at": T0 + 651,
        "action": "announcement.published",
        "actor": "admin",
        "announcement_id": "c1",
        "details": {},
    },
    {
        "at": T0 + 900,
        "action": "announcement.rejected",
        "actor": "bob",
        "announcement_id": "a5",
        "details": {"reason": "wrong town"},
    },
    {
        "at": T0 + 1000,
        "action": "promise.overdue",
        "actor": "system",
        "announcement_id": "a2",
        "details": {},
    },
    {
        "at": T0 + 1100,
        "action": "announcement.withdrawn",
        "actor": "admin",
        "announcement_id": "c1",
        "details": {"reason": "said too much"},
    },
    {
        "at": T0 + 1560,
        "action": "announcement.published",
        "actor": "bob",
        "announcement_id": "a4",
        "details": {},
    },
    {
        "at": T0 + 1,
        "action": "signin.succeeded",
        "actor": "ann",
        "announcement_id": None,
        "details": {},
    },
]


def test_the_timeline_names_every_step_with_who_and_when():
    by_id = {a["id"]: a for a in ANNOUNCEMENTS} | {"c1": {"id": "c1", "corrects": "a1"}}
    items = rm.timeline(AUDIT, by_id, ALERTS)
    assert [i["kind"] for i in items] == [
        "alert firing",
        "drafted",
        "announcement",
        "approval",
        "bypass",
        "correction",
        "rejection",
        "reminder",
        "withdrawal",
        "resolution",
    ]
    assert items[3]["who"] == "ann@acme.example"
    assert items[4]["detail"] == "the CEO is on a plane"
    assert items[6]["detail"] == "wrong town"
    assert [i["at"] for i in items] == sorted(i["at"] for i in items)


def report_data(exercise: bool = True) -> dict[str, Any]:
    m = rm.metrics(INCIDENT, ANNOUNCEMENTS, ALERTS, DELIVERIES, now=T0 + 5000)
    return {
        "incident": {
            **INCIDENT,
            "title": "Pay[ments](http://evil.example) <b>down</b>",
            "severity": "critical",
            "status": "resolved",
        },
        "exercise": exercise,
        "drill_id": "drl_1" if exercise else None,
        "generated_at": T0 + 5000,
        "timeline": rm.timeline(AUDIT, {a["id"]: a for a in ANNOUNCEMENTS}, ALERTS),
        "metrics": m,
        "promises": rm.promises(ANNOUNCEMENTS, T0 + 5000),
        "announcements": ANNOUNCEMENTS,
        "deliveries": {
            "channels": rm.per_channel(DELIVERIES),
            "reach_percent": 75.0,
            "audiences": ["consumers"],
            "per_minute": {
                c: {str(k): v for k, v in rows.items()}
                for c, rows in rm.per_minute(DELIVERIES, T0).items()
            },
        },
        "replies": {
            "count": 2,
            "stops": 1,
            "first": [{"at": T0 + 50, "from": "+316…001", "body": "is it # fixed?"}],
        },
        "review": {
            "versions": 2,
            "latest": {
                "version": 2,
                "at": T0 + 6000,
                "by": "ann@acme.example",
                "went_well": "Holding statement in 40 s.",
                "went_badly": "Second promise missed.",
                "actions": [{"action": "Pre-approve the all-clear", "owner": "Bob"}],
            },
        },
    }


def test_the_markdown_renders_every_section():
    text = markdown(report_data())
    for heading in (
        "# Post-incident report",
        "## Timeline",
        "## Metrics",
        "## Deliveries",
        "## Replies",
        "## Review",
        "### What went well",
        "### What did not",
        "### Actions",
    ):
        assert heading in text, heading
    assert "**EXERCISE**" in text and "- Exercise: yes" in text
    assert "- Time to first statement: 40s" in text
    assert "- Time to approval: median 1m 30s, max 2m 0s (2 approved)" in text
    assert "- Promises (next update by): 2 made, 1 kept, 1 missed" in text
    assert "| email | 3 | 1 | 0 | 1 | 0 | 1 |" in text
    assert "Reach: 75.0% of the subscribers of consumers." in text
    assert "- STOPs: 1" in text and "is it \\# fixed?" in text
    assert "Pre\\-approve the all\\-clear (owner: Bob)" in text
    assert "| rejection | bob | a5 — wrong town |" in text
    # A title cannot become a link or HTML.
    assert "[ments](http" not in text and "<b>" not in text
    plain = markdown({**report_data(False), "review": {"versions": 0, "latest": None}})
    assert "EXERCISE" not in plain and "No review written yet." in plain


@given(st.floats(min_value=0, max_value=10**7, allow_nan=False))
def test_seconds_reads_back(value):
    parts = dict((unit, int(n)) for n, unit in re.findall(r"(\d+)([hms])", seconds(value)))
    total = parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)
    assert total == int(round(value))


def test_the_pictures_are_svg_without_style_or_script():
    data = report_data()
    pictures = [
        report_svg.deliveries_per_minute(data["deliveries"]["per_minute"]),
        report_svg.announcements_and_promises(
            T0 - 10, T0 + 1560, data["announcements"], data["promises"]
        ),
        report_svg.trend(
            [
                {"metrics": {"time_to_first_statement_s": 40, "time_to_approval_s": 90}},
                {"metrics": {"time_to_first_statement_s": 25, "time_to_approval_s": None}},
            ]
        ),
        report_svg.deliveries_per_minute({}),
        report_svg.trend([]),
    ]
    for svg in pictures:
        assert svg.startswith("<svg") and svg.endswith("</svg>")
        assert "style" not in svg and "<script" not in svg and "http://evil" not in svg
    promises = str(pictures[1])
    assert promises.count(f'stroke="{report_svg.KEPT}"') == 1
    assert promises.count(f'stroke="{report_svg.MISSED}"') == 1
    assert "sms" in pictures[0] and "email" in pictures[0]


STAFF_ROW = {
    "external_id": "s1",
    "email": "s1@acme.example",
    "locale": "nl",
    "audiences": ["staff"],
}


def test_the_report_api_and_page_for_a_drill(app, client, tokens, people, signed_in):
    subscribe(client, tokens["admin"], [STAFF_ROW])
    started = client.post(
        "/api/v1/drills", json={"scenario": "payments"}, headers=tokens["approver"]
    ).get_json()
    incident_id = started["incident_id"]
    # Ending it also takes its scheduled resolve (resolve_after_minutes) off the schedule.
    client.post(f"/api/v1/drills/{started['id']}/end", headers=tokens["admin"])
    drain(app, timeout=60)

    report = client.get(f"/api/v1/incidents/{incident_id}/report", headers=tokens["helpdesk"])
    assert report.status_code == 200
    body = report.get_json()
    assert body["exercise"] is True and body["drill_id"] == started["id"]
    kinds = [i["kind"] for i in body["timeline"]]
    # (Monitoring notes its alerts to the second: the drill may start within that second.)
    assert kinds[0] in ("drill started", "alert firing") and "alert firing" in kinds[:3]
    assert kinds.index("drill started") < kinds.index("announcement") < kinds.index("drill ended")
    assert body["metrics"]["time_to_first_statement_s"] is not None
    assert body["metrics"]["time_to_staff_brief_s"] is not None
    assert body["deliveries"]["audiences"] == ["staff"]
    assert body["deliveries"]["reach_percent"] == 100.0
    md = client.get(f"/api/v1/incidents/{incident_id}/report?format=md", headers=tokens["admin"])
    assert md.status_code == 200 and md.mimetype == "text/markdown"
    assert "## Deliveries" in md.get_data(as_text=True)
    bad = client.get(f"/api/v1/incidents/{incident_id}/report?format=pdf", headers=tokens["admin"])
    assert bad.status_code == 422
    assert client.get(f"/api/v1/incidents/{incident_id}/report").status_code == 401
    missing = client.get("/api/v1/incidents/inc_nope/report", headers=tokens["admin"])
    assert missing.status_code == 404

    # The printable page: the strip, the pictures, no inline style; then two review versions.
    lead = app.test_client()
    token = signed_in(lead, people["approver"].email)
    page = lead.get(f"/admin/incidents/{incident_id}/report").get_data(as_text=True)
    assert 'class="exercise-strip"' in page and page.count("<svg") == 2
    assert " style=" not in page and "<script" not in page
    path = f"/admin/incidents/{incident_id}/review"
    refused = lead.post(path, data={"csrf_token": token, "went_well": "ok", "actions": "Fix it"})
    assert refused.status_code == 422 and "every action needs an owner" in refused.get_data(
        as_text=True
    )
    for well in ("Fast statement.", "Fast statement, brief first."):
        saved = lead.post(
            path,
            data={
                "csrf_token": token,
                "went_well": well,
                "went_badly": "Late all-clear.",
                "actions": "Pre-approve the all-clear | Bob",
            },
        )
        assert saved.status_code == 303
    body = client.get(f"/api/v1/incidents/{incident_id}/report", headers=tokens["admin"]).get_json()
    assert body["review"]["versions"] == 2
    assert body["review"]["latest"]["went_well"] == "Fast statement, brief first."
    assert body["review"]["latest"]["actions"] == [
        {"action": "Pre-approve the all-clear", "owner": "Bob"}
    ]
    assert "review" in [i["kind"] for i in body["timeline"]]
    audit = client.get("/api/v1/audit?action=review.written", headers=tokens["admin"]).get_json()
    assert len(audit["items"]) == 2

    # The drills page lists it with its metrics and the trend, and the incident page the strip.
    drills = lead.get("/admin/drills").get_data(as_text=True)
    assert 'id="drill-history"' in drills and "<svg" in drills and " style=" not in drills
    incident = lead.get(f"/admin/incidents/{incident_id}").get_data(as_text=True)
    assert 'class="exercise-strip"' in incident


def test_the_start_drill_button(app, client, tokens, people, signed_in):
    lead = app.test_client()
    token = signed_in(lead, people["approver"].email)
    page = lead.get("/admin/drills").get_data(as_text=True)
    assert "Start drill" in page and 'value="payments"' in page
    started = lead.post("/admin/drills", data={"csrf_token": token, "scenario": "payments"})
    assert started.status_code == 303 and "/admin/incidents/inc_" in started.location
    incident = lead.get(started.location).get_data(as_text=True)
    assert 'class="exercise-strip"' in incident and "End drill" in incident
    end = re.search(r'action="(/admin/drills/drl_\w+/end)"', incident)
    assert end, "no End drill button on the drill's incident page"
    ended = lead.post(end.group(1), data={"csrf_token": token})
    assert ended.status_code == 303 and ended.location.endswith("/report")
    assert "Drill ended" in lead.get(started.location).get_data(as_text=True)
    stale = lead.post("/admin/drills", data={"scenario": "payments"})
    assert stale.status_code == 400
    unknown = lead.post("/admin/drills", data={"csrf_token": token, "scenario": "storm"})
    assert unknown.status_code == 422 and "unknown scenario" in unknown.get_data(as_text=True)
    helpdesk = app.test_client()
    helpdesk_token = signed_in(helpdesk, people["helpdesk"].email)
    assert "Start drill" not in helpdesk.get("/admin/drills").get_data(as_text=True)
    refused = helpdesk.post(
        "/admin/drills", data={"csrf_token": helpdesk_token, "scenario": "payments"}
    )
    assert refused.status_code == 403


@pytest.mark.parametrize("field", ["went_well", "went_badly"])
def test_a_review_refuses_control_characters(app, client, people, signed_in, tokens, field):
    created = publish(
        client,
        tokens,
        {"title": "Gas", "body": "Gas leak.", "severity": "minor", "audiences": ["consumers"]},
    )
    lead = app.test_client()
    token = signed_in(lead, people["approver"].email)
    answer = lead.post(
        f"/admin/incidents/{created['incident_id']}/review",
        data={"csrf_token": token, field: "bad \x1b[31m text"},
    )
    assert answer.status_code == 422
    assert time.time()  # the page answered; nothing was saved:
    body = client.get(
        f"/api/v1/incidents/{created['incident_id']}/report", headers=tokens["admin"]
    ).get_json()
    assert body["review"] == {"versions": 0, "latest": None}
    assert body["exercise"] is False
