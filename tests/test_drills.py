"""Drills (issue 17): a scenario's alert rehearses the real plan, but reaches only the drill
team, marked as an exercise in each reader's language, and never a public surface.

Through the real app, real RQ workers, the real SendGrid, Twilio, Mastodon and Bluesky SDKs
against the fake providers, and a webhook receiver on 127.0.0.1 that checks signatures.
"""

from __future__ import annotations

import json
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from broadcaster.delivery.drill_guard import DrillLedger, ledger_for
from broadcaster.delivery.queues import PLAN_QUEUE, queue
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.plan import PlanError, parse_plan
from broadcaster.rendering.segments import sms_cost
from broadcaster.web.hooks import drill_runner
from tests.helpers import announce, deliveries, drain, subscribe
from tests.test_webhook import SECRET, Receiver

PLAN = """
[organisation]
name = "Acme Energy"
default_locale = "en"
locales = ["en", "nl", "da", "sv"]

[policy]
approval_required = ["critical"]

[channels_by_severity]
info = ["banner", "social", "webhook", "email", "sms"]
minor = ["banner", "social", "webhook", "email", "sms"]
major = ["banner", "social", "webhook", "email", "sms"]
critical = ["banner", "social", "webhook", "email", "sms"]

[audiences.consumers]
channels = ["email", "sms", "banner", "social", "webhook"]
[[audiences.consumers.routes]]
need = "Emergency"
channel = "Phone"
contact = "+31 20 123 4567"

[audiences.business]
channels = ["email", "sms", "banner", "social", "webhook"]
[[audiences.business.routes]]
need = "Account manager"
channel = "Phone"
contact = "+31 20 765 4321"

[audiences.staff]
internal = true
channels = ["email", "sms", "webhook"]
[[audiences.staff.routes]]
need = "Incident room"
channel = "Chat"
contact = "https://acme.example/incident-room"

[staff]
audiences = ["staff"]
lead_seconds = 0

[[webhooks]]
name = "staff-hook"
url = "{url}/staff"
secret = "{secret}"
allow_private = true  # the receiver listens on 127.0.0.1
audiences = ["staff"]

[[webhooks]]
name = "helpdesk"
url = "{url}/public"
secret = "{secret}"
allow_private = true

[components.payments]
name = "Payments"

[[monitoring.rules]]
match = { service = "payments" }
audiences = ["consumers", "business"]
holding_statement = "payments-outage"
components = { payments = "major_outage" }

[holding_statements.payments-outage]
en = { title = "Problems with payments", body = "Payments may fail. We are investigating." }
nl = { title = "Storing bij betalingen", body = "Betalingen kunnen mislukken." }

[drills]
audiences = ["staff"]
[drills.scenarios.payments]
description = "Card payments fail at peak time"
alert.key = "drill-payments"
alert.title = "Payments failing"
alert.severity = "critical"
alert.labels = { service = "payments" }

[drills.scenarios.timed]
description = "Payments fail, and recover by themselves"
alert = { key = "drill-timed", title = "Payments failing", severity = "minor", labels = { \
service = "payments" } }
resolve_after_minutes = 20
"""

WORDS = {"en": "EXERCISE", "nl": "OEFENING", "da": "ØVELSE", "sv": "ÖVNING"}
STAFF = [
    {"external_id": "s-en", "email": "s-en@acme.example", "locale": "en", "audiences": ["staff"]},
    {
        "external_id": "s-nl",
        "email": "s-nl@acme.example",
        "phone": "+31612345101",
        "locale": "nl",
        "audiences": ["staff"],
    },
    {"external_id": "s-da", "email": "s-da@acme.example", "locale": "da", "audiences": ["staff"]},
    {
        "external_id": "s-sv",
        "email": "s-sv@acme.example",
        "phone": "+31612345103",
        "locale": "sv",
        "audiences": ["staff"],
    },
]
CUSTOMERS = [
    {
        "external_id": "c1",
        "email": "c1@example.com",
        "phone": "+31612345001",
        "audiences": ["consumers"],
    },
    {"external_id": "b1", "email": "b1@example.com", "locale": "nl", "audiences": ["business"]},
]
TEAM = {p["email"] for p in STAFF} | {p["phone"] for p in STAFF if "phone" in p}
LOCALE_OF = {p["email"]: p["locale"] for p in STAFF} | {
    p["phone"]: p["locale"] for p in STAFF if "phone" in p
}
REAL = {
    "title": "Power cut in Utrecht",
    "body": "Power is out in Utrecht since 09:10. We are working on it.",
    "severity": "major",
    "audiences": ["consumers"],
}


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


def plan_file(tmp_path: Path, receiver: Receiver, text: str = PLAN) -> str:
    path = tmp_path / "plan.toml"
    path.write_text(text.replace("{url}", receiver.url).replace("{secret}", SECRET), "utf-8")
    return str(path)


@pytest.fixture
def app(make_app, tmp_path, receiver, mastodon, bluesky) -> Flask:
    return make_app(
        PLAN=plan_file(tmp_path, receiver),
        MASTODON_BASE_URL=mastodon.url,
        MASTODON_ACCESS_TOKEN=mastodon.TOKEN,
        BLUESKY_BASE_URL=bluesky.url,
        BLUESKY_HANDLE=bluesky.HANDLE,
        BLUESKY_APP_PASSWORD=bluesky.APP_PASSWORD,
    )


@pytest.fixture
def client(app: Flask, tokens) -> FlaskClient:
    client = app.test_client()
    subscribe(client, tokens["admin"], STAFF + CUSTOMERS)
    return client


def public_surfaces(client: FlaskClient) -> dict[str, str]:
    """Everything a stranger can read, as text."""
    paths = (
        "/status",
        "/status?lang=nl",
        "/status.json",
        "/status.atom",
        "/banner.json",
        "/api/v2/summary.json",
        "/api/v2/incidents/unresolved.json",
    )
    return {path: client.get(path).get_data(as_text=True) for path in paths}


HTML: dict[str, str] = {}  # the latest HTML part each address got


def received(providers: Any) -> list[tuple[str, str, str]]:
    """(recipient, subject or "", text) of every email and SMS the fakes accepted."""
    sendgrid, twilio = providers
    out = []
    for to, payload in sendgrid.accepted():
        text, html = (c["value"] for c in payload["content"])
        out.append((to, payload["subject"], text))
        HTML[to] = html
    out += [(form["To"], "", form["Body"]) for form in twilio.accepted()]
    return out


def start(client: FlaskClient, headers: dict[str, str], scenario: str = "payments") -> dict:
    response = client.post("/api/v1/drills", json={"scenario": scenario}, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_drill_reaches_only_the_drill_team_marked_as_an_exercise(
    app, client, tokens, receiver, providers, mastodon, bluesky
):
    before = public_surfaces(client)
    drill = start(client, tokens["approver"])
    assert drill["incident_id"] and drill["scenario"] == "payments"
    incident = client.get(f"/api/v1/incidents/{drill['incident_id']}", headers=tokens["admin"])
    body = incident.get_json()
    assert body["exercise"] is True and body["drill_id"] == drill["id"]
    # The real plan ran: the rule's holding statement was published at once.
    [statement] = body["timeline"]
    assert statement["state"] == "published" and statement["exercise"] is True
    assert statement["title"] == "Problems with payments"
    drain(app)

    got = received(providers)
    assert got, "the drill team heard nothing"
    # Only the drill team, on email and SMS: the brief and the customers' message both.
    assert {to for to, _, _ in got} == TEAM
    for to, subject, text in got:
        word = WORDS[LOCALE_OF[to]]
        assert text.startswith(word), (to, text[:40])
        if subject:
            assert subject.startswith(word), (to, subject)
            assert f"<strong>{word}</strong>" in HTML[to]
        else:  # the word is part of the SMS as composed: still within the plan's cap
            assert sms_cost(text).segments <= 2, text
    # No social post, no public webhook; the team's own chat was told it is an exercise.
    assert mastodon.posts == [] and bluesky.posts == []
    assert [r["path"] for r in receiver.requests if r["path"] == "/public"] == []
    staff_events = [json.loads(r["raw"]) for r in receiver.requests if r["path"] == "/staff"]
    assert staff_events and all(r["verified"] for r in receiver.requests)
    assert all("EXERCISE" in json.dumps(e) for e in staff_events)

    after = public_surfaces(client)
    for where, text in after.items():
        assert "Problems with payments" not in text and drill["incident_id"] not in text, where
    assert json.loads(after["/status.json"])["open"] == []
    assert json.loads(after["/banner.json"])["banners"] == []
    assert feedparser.parse(after["/status.atom"]).entries == []
    assert after["/status.json"] == before["/status.json"]
    # The rule's component state is rehearsed, not the service's: Statuspage readers see none.
    summary = json.loads(after["/api/v2/summary.json"])
    assert [c["status"] for c in summary["components"]] == ["operational"]
    assert summary["incidents"] == [] and summary["status"]["indicator"] == "none"
    assert json.loads(after["/api/v2/incidents/unresolved.json"])["incidents"] == []
    assert after["/banner.json"] == before["/banner.json"]

    # Ending it resolves the incident (monitoring's resolution draft, approved by the one
    # who ends it: monitoring wrote it), and the all-clear stays with the team too.
    providers[0].reset()
    providers[1].reset()
    ended = client.post(f"/api/v1/drills/{drill['id']}/end", headers=tokens["admin"])
    assert ended.status_code == 200, ended.get_json()
    assert ended.get_json()["ended_at"] is not None
    assert ended.get_json()["outcome"] == "resolved; resolution approved"
    drain(app)
    incident = client.get(f"/api/v1/incidents/{drill['incident_id']}", headers=tokens["admin"])
    assert incident.get_json()["status"] == "resolved"
    got = received(providers)
    assert got and {to for to, _, _ in got} <= TEAM
    assert all(text.startswith(WORDS[LOCALE_OF[to]]) for to, _, text in got)
    assert public_surfaces(client)["/status.json"] == before["/status.json"]
    assert mastodon.posts == [] and bluesky.posts == []

    again = client.post(f"/api/v1/drills/{drill['id']}/end", headers=tokens["admin"])
    assert again.status_code == 409 and "already ended" in again.get_json()["message"]


def test_a_real_incident_during_a_drill_still_reaches_customers(
    app, client, tokens, receiver, providers, mastodon, bluesky
):
    drill = start(client, tokens["admin"])
    real = announce(client, tokens["admin"], REAL)
    assert real["incident_id"] != drill["incident_id"]
    drain(app)

    got = received(providers)
    customer = [(to, s, t) for to, s, t in got if to in ("c1@example.com", "+31612345001")]
    # The customer got the real one (email and SMS), unmarked, and nothing of the drill.
    assert len(customer) == 2
    assert all("Power" in t and not t.startswith("EXERCISE") for _, _, t in customer)
    assert all("payments" not in t.lower() for _, _, t in customer)
    assert "b1@example.com" not in {to for to, _, _ in got}
    # The team got the drill marked, and the real one (staff first) unmarked.
    team = [(to, t) for to, _, t in got if to in TEAM]
    assert any(t.startswith(WORDS[LOCALE_OF[to]]) for to, t in team)
    assert any("Power" in t and not t.startswith(WORDS[LOCALE_OF[to]]) for to, t in team)

    status = json.loads(client.get("/status.json").get_data(as_text=True))
    assert [i["title"] for i in status["open"]] == ["Power cut in Utrecht"]
    summary = json.loads(client.get("/api/v2/summary.json").get_data(as_text=True))
    assert [i["name"] for i in summary["incidents"]] == ["Power cut in Utrecht"]
    assert [c["status"] for c in summary["components"]] == ["operational"]
    assert len(mastodon.posts) == 1 and "Power" in json.dumps(mastodon.posts)
    public = [json.loads(r["raw"]) for r in receiver.requests if r["path"] == "/public"]
    assert len(public) == 1 and "Power" in json.dumps(public)

    # A follow-up in the drill incident stays an exercise, whoever writes it and whatever
    # audiences it names.
    follow = announce(
        client,
        tokens["admin"],
        {**REAL, "title": "Update", "audiences": ["consumers", "business", "staff"]},
        incident_id=drill["incident_id"],
        bypass_reason="drill",
    )
    drain(app)
    records = deliveries(client, tokens["admin"], follow["id"])
    assert records and all(r["channel"] in ("email", "sms", "webhook") for r in records), records
    svc = app.extensions["broadcaster"]
    team = {svc.subscribers.find_by_contact("email", p["email"]) for p in STAFF}
    people = {r["subscriber_id"] for r in records if r["channel"] != "webhook"}
    assert people and people <= team
    assert {r["subscriber_id"] for r in records if r["channel"] == "webhook"} <= {"staff-hook"}


def test_drill_errors_are_clear(app, client, tokens):
    unknown = client.post("/api/v1/drills", json={"scenario": "flood"}, headers=tokens["admin"])
    assert unknown.status_code == 422
    assert "unknown scenario 'flood'" in unknown.get_json()["message"]
    assert "payments" in unknown.get_json()["message"]
    missing = client.post("/api/v1/drills", json={}, headers=tokens["admin"])
    assert missing.status_code == 422 and "scenario" in json.dumps(missing.get_json()["errors"])
    wrong = client.post("/api/v1/drills", json={"scenario": 3}, headers=tokens["admin"])
    assert wrong.status_code == 422
    helpdesk = client.post(
        "/api/v1/drills", json={"scenario": "payments"}, headers=tokens["helpdesk"]
    )
    assert helpdesk.status_code == 403
    assert client.post("/api/v1/drills", json={"scenario": "payments"}).status_code == 401
    nothing = client.post("/api/v1/drills/drl_nope/end", headers=tokens["admin"])
    assert nothing.status_code == 404


def test_resolve_after_minutes_schedules_the_alert_resolving_by_itself(app, client, tokens):
    drill = start(client, tokens["admin"], "timed")
    r = app.extensions["broadcaster"].redis
    registry = ScheduledJobRegistry(queue=queue(r, PLAN_QUEUE), serializer=JSONSerializer)
    assert f"drill-resolve-{drill['id']}" in registry.get_job_ids()
    with app.app_context():
        outcome = drill_runner.resolve_job(drill["id"])
    assert outcome == "resolved"
    timeline = client.get(
        f"/api/v1/incidents/{drill['incident_id']}", headers=tokens["admin"]
    ).get_json()["timeline"]
    # No all-clear in the plan for this rule: a resolution draft waits for the team.
    assert timeline[-1]["status"] == "resolved" and timeline[-1]["exercise"] is True
    too_many = client.get("/api/v1/drills?per_page=500", headers=tokens["helpdesk"])
    assert too_many.status_code == 422 and "per_page" in json.dumps(too_many.get_json())
    listed = client.get("/api/v1/drills", headers=tokens["helpdesk"]).get_json()
    assert [d["id"] for d in listed["items"]] == [drill["id"]]
    assert "time_to_first_statement_s" in listed["items"][0]["metrics"]
    # Ending it later approves the resolution that waited, and takes nothing off a schedule.
    ended = client.post(f"/api/v1/drills/{drill['id']}/end", headers=tokens["approver"])
    assert ended.status_code == 200
    assert ended.get_json()["announcement_id"] == timeline[-1]["id"]
    incident = client.get(f"/api/v1/incidents/{drill['incident_id']}", headers=tokens["admin"])
    assert incident.get_json()["status"] == "resolved"
    assert f"drill-resolve-{drill['id']}" not in registry.get_job_ids()


def test_two_drills_of_one_scenario_open_two_incidents(app, client, tokens):
    first, second = start(client, tokens["admin"]), start(client, tokens["admin"])
    assert first["incident_id"] != second["incident_id"]
    # Both are listed with the monitoring events, each under its own alert key.
    events = client.get("/api/v1/hooks/events", headers=tokens["admin"]).get_json()["items"]
    drills = [e for e in events if e["source"] == "drill"]
    assert len(drills) == 2 and all(e["outcome"] == "opened" for e in drills)
    keys = {json.loads(e["raw"])["key"] for e in drills}
    assert keys == {f"drill:{d['id']}:drill-payments" for d in (first, second)}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ('audiences = ["staff"]', None),
        ('audiences = ["nobody"]', "drills.audiences: unknown audience 'nobody'"),
        ("audiences = []", "drills.audiences: must be a non-empty list"),
        ('audiences = ["staff"]\ncolour = "red"', "drills.colour: unknown key"),
        (
            'audiences = ["staff"]\n[drills.scenarios.x]\ndescription = "x"\n'
            'alert = { key = "k", title = "t", severity = "huge" }',
            "drills.scenarios.x.alert.severity: must be one of",
        ),
        (
            'audiences = ["staff"]\n[drills.scenarios.x]\ndescription = "x"\n'
            'alert = { key = "k", title = "t", severity = "minor", labels = { service = "gas" } }',
            "drills.scenarios.x.alert: matches no [[monitoring.rules]]",
        ),
        (
            'audiences = ["staff"]\n[drills.scenarios.x]\ndescription = "x"\n'
            'alert = { key = "k", title = "t", severity = "minor", '
            'labels = { service = "payments" } }\n'
            "resolve_after_minutes = 0",
            "drills.scenarios.x.resolve_after_minutes: must be a whole number",
        ),
        (
            'audiences = ["staff"]\n[drills.scenarios.x]\ndescription = "x"',
            "drills.scenarios.x.alert: missing",
        ),
    ],
)
def test_the_drills_table_is_checked_at_plan_load(change, problem):
    head = (
        PLAN.split("[drills]")[0].replace("{url}", "http://127.0.0.1:9").replace("{secret}", SECRET)
    )
    data = tomllib.loads(head + "[drills]\n" + change + "\n")
    if problem is None:
        plan = parse_plan(data, "plan.toml")
        assert plan.drills is not None and plan.drills.audiences == ("staff",)
        return
    with pytest.raises(PlanError) as caught:
        parse_plan(data, "plan.toml")
    assert f"plan.toml: {problem}" in str(caught.value)


AUDIENCES = ("consumers", "business", "staff")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chosen=st.lists(st.sampled_from(AUDIENCES), min_size=1, unique=True),
    people=st.lists(
        st.lists(st.sampled_from(AUDIENCES), min_size=1, unique=True), min_size=1, max_size=8
    ),
    channel=st.sampled_from(("email", "sms", "webhook", "social", "banner")),
)
def test_no_audiences_make_a_drill_delivery_outside_the_drill_team(
    app, client, tokens, chosen, people, channel
):
    """Whatever audiences a drill announcement names, and whoever asks the ledger to record
    a delivery, only people of the drill audiences (and internal targets) get one."""
    svc = app.extensions["broadcaster"]
    rows = [
        {
            "external_id": f"h{i}",
            "email": f"h{i}@example.com",
            "phone": f"+3161234{5200 + i}",
            "audiences": audiences,
        }
        for i, audiences in enumerate(people)
    ]
    subscribe(client, tokens["admin"], rows)
    ids = {
        row["external_id"]: svc.subscribers.find_by_contact("email", row["email"]) for row in rows
    }
    announcement = Announcement(
        id=f"ann_hyp{len(people)}{channel}",
        incident_id="inc_hyp",
        title="t",
        body="b",
        severity="major",
        status="investigating",
        audiences=chosen,
        channels=[channel],
        author="a",
        state="published",
        created_at=0.0,
        exercise=True,
    )
    ledger = ledger_for(svc.redis, announcement.id, announcement, svc.plan, svc.subscribers)
    assert isinstance(ledger, DrillLedger)
    asked = list(ids.values()) + ["staff-hook", "helpdesk", "mastodon"]
    recorded = ledger.enqueue(channel, asked)
    allowed = {ids[row["external_id"]] for row in rows if "staff" in row["audiences"]}
    if channel in ("email", "sms"):
        assert set(recorded) <= allowed
    elif channel == "webhook":
        assert set(recorded) <= {"staff-hook"}
    else:
        assert recorded == []
    svc.redis.delete(*svc.redis.keys(f"bc:dl*:{announcement.id}*") or ["none"])


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chosen=st.lists(st.sampled_from(AUDIENCES), min_size=1, unique=True),
    channels=st.lists(
        st.sampled_from(("email", "sms", "webhook", "social", "banner")), min_size=1, unique=True
    ),
)
def test_no_follow_up_in_a_drill_reaches_anyone_outside_the_team(
    app, client, tokens, mastodon, bluesky, chosen, channels
):
    """Through the real fan-out: whatever audiences and channels a drill's follow-up names,
    its deliveries (customers' and staff brief's) are the team's, and nothing is posted."""
    drill = start(client, tokens["admin"])
    follow = announce(
        client,
        tokens["admin"],
        {**REAL, "severity": "minor", "audiences": chosen, "channels": channels},
        incident_id=drill["incident_id"],
    )
    drain(app)
    svc = app.extensions["broadcaster"]
    team = {svc.subscribers.find_by_contact("email", p["email"]) for p in STAFF}
    for staff in (False, True):
        records = client.get(
            f"/api/v1/announcements/{follow['id']}/deliveries?per_page=1000&staff={staff}",
            headers=tokens["admin"],
        ).get_json()["items"]
        for record in records:
            if record["channel"] == "webhook":
                assert record["subscriber_id"] == "staff-hook", record
            else:
                assert record["channel"] in ("email", "sms") and record["subscriber_id"] in team
    assert mastodon.posts == [] and bluesky.posts == []
    assert json.loads(client.get("/status.json").get_data(as_text=True))["open"] == []


def test_a_drill_draft_tells_the_approvers_it_is_an_exercise(
    make_app, tmp_path, receiver, tokens, people, providers
):
    text = PLAN.replace('holding_statement = "payments-outage"', "draft = true")
    app = make_app(PLAN=plan_file(tmp_path, receiver, text))
    client = app.test_client()
    subscribe(client, tokens["admin"], STAFF + CUSTOMERS)
    drill = start(client, tokens["admin"])
    [draft] = client.get(
        f"/api/v1/incidents/{drill['incident_id']}", headers=tokens["admin"]
    ).get_json()["timeline"]
    assert draft["state"] == "pending_approval" and draft["exercise"] is True
    drain(app)
    notices = [(to, p) for to, p in providers[0].accepted() if to not in TEAM]
    assert notices, "no approver was told"
    assert all(p["subject"].startswith("EXERCISE: ") for _, p in notices)
    # Nobody outside the team heard of it otherwise.
    assert not [f for f in providers[1].accepted() if f["To"] not in TEAM]


def test_a_drills_overdue_promise_reminds_the_team_marked_as_an_exercise(
    app, client, tokens, receiver
):
    drill = start(client, tokens["admin"])
    announce(
        client,
        tokens["admin"],
        {**REAL, "severity": "minor", "audiences": ["staff"]},
        incident_id=drill["incident_id"],
        next_update_at=datetime.fromtimestamp(time.time() + 3, UTC).isoformat(),
    )
    drain(app)  # runs the reminder when it falls due
    events = [json.loads(r["raw"]) for r in receiver.requests if r["path"] == "/staff"]
    reminders = [e for e in events if e.get("type") == "promise.overdue"]
    assert len(reminders) == 1
    assert reminders[0]["announcement"]["title"].startswith("EXERCISE: ")
