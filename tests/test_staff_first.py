"""Staff first (issue 16): every customer-facing announcement reaches staff, as the agent
brief, before the customers' fan-out starts.

Through the real app, real RQ workers, the real SendGrid and Twilio SDKs against the fake
providers, and a webhook receiver on 127.0.0.1. Order is read from when the fakes received
each request (one clock: this process's monotonic clock), never from how long things took.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from twilio.request_validator import RequestValidator

from broadcaster.delivery.queues import PLAN_QUEUE, queue
from broadcaster.domain.plan import PlanError, load_plan, parse_plan
from tests.fakes import FakeTwilio
from tests.helpers import announce, counts, deliveries, drain, subscribe, work
from tests.test_webhook import SECRET, Receiver

PLAN = """
[organisation]
name = "Acme Energy"
default_locale = "en"
locales = ["en", "nl"]

[policy]
approval_required = []

[channels_by_severity]
info = ["email", "sms", "webhook"]
minor = ["email", "sms", "webhook"]
major = ["email", "sms", "webhook"]
critical = ["email", "sms", "webhook"]

[audiences.consumers]
description = "Private customers"
channels = ["email", "sms", "webhook"]
[[audiences.consumers.routes]]
need = { en = "Technical problem", nl = "Technisch probleem" }
channel = "Live chat"
contact = "https://acme.example/chat"
hours = "24/7"

[audiences.staff]
description = "Our own people"
internal = true
channels = ["email", "sms", "webhook"]
[[audiences.staff.routes]]
need = "Incident room"
channel = "Chat"
contact = "https://acme.example/incident-room"

[staff]
audiences = ["staff"]
lead_seconds = {lead}
do_not_promise = [
  "Compensation",
  { en = "A time of repair", nl = "Een hersteltijd" },
]

[[webhooks]]
name = "staff-chat"
url = "{url}/staff"
secret = "{secret}"
format = "slack"
audiences = ["staff"]
allow_private = true  # the receiver listens on 127.0.0.1

[[webhooks]]
name = "staff-tool"
url = "{url}/staff-json"
secret = "{secret}"
audiences = ["staff"]
allow_private = true

[[webhooks]]
name = "helpdesk"
url = "{url}/public"
secret = "{secret}"
allow_private = true

[[monitoring.rules]]
match = { service = "payments" }
audiences = ["consumers"]
holding_statement = "payments-outage"

[holding_statements.payments-outage]
en = { title = "Problems with payments", body = "Payments may fail. We are investigating." }
nl = { title = "Storing bij betalingen", body = "Betalingen kunnen mislukken. We onderzoeken het." }
"""

STAFF = {
    "external_id": "sam",
    "email": "sam@acme.example",
    "phone": "+31612345009",
    "locale": "nl",
    "audiences": ["staff"],
}
CUSTOMER = {
    "external_id": "cleo",
    "email": "cleo@example.com",
    "phone": "+31612345001",
    "audiences": ["consumers"],
}
OUTAGE = {
    "title": "Payments down",
    "body": "Card payments fail since 09:10. We are working on it.",
    "severity": "major",
    "audiences": ["consumers"],
    "translations": {"nl": {"title": "Betalingen storing", "body": "Kaartbetalingen mislukken."}},
}


class Stamped(list):
    """The receiver's request list, each request stamped with when it arrived."""

    def append(self, item: dict[str, Any]) -> None:
        super().append({**item, "at": time.monotonic()})


@pytest.fixture
def receiver():
    server = Receiver()
    server.requests = Stamped()
    yield server
    server.stop()


def plan_text(receiver: Receiver, lead: int) -> str:
    return (
        PLAN.replace("{lead}", str(lead)).replace("{url}", receiver.url).replace("{secret}", SECRET)
    )


def staff_app(make_app: Any, tmp_path: Path, receiver: Receiver, lead: int) -> Flask:
    path = tmp_path / f"plan-{lead}.toml"
    path.write_text(plan_text(receiver, lead), encoding="utf-8")
    return make_app(PLAN=str(path), STAFF_LEAD_MAX=60)


def with_people(app: Flask, tokens: dict[str, dict[str, str]]) -> FlaskClient:
    client = app.test_client()
    subscribe(client, tokens["admin"], [STAFF, CUSTOMER])
    return client


def arrivals(providers: Any, receiver: Receiver) -> dict[str, list[float]]:
    """When each side's deliveries reached the fakes: staff and customers, every channel."""
    sendgrid, twilio = providers
    out: dict[str, list[float]] = {"staff": [], "customers": []}
    for req in sendgrid.requests:
        for p in req["json"]["personalizations"]:
            side = "staff" if p["to"][0]["email"] == STAFF["email"] else "customers"
            out[side].append(req["at"])
    for req in twilio.requests:
        out["staff" if req["form"]["To"] == STAFF["phone"] else "customers"].append(req["at"])
    for req in receiver.requests:
        out["staff" if req["path"].startswith("/staff") else "customers"].append(req["at"])
    return out


def scheduled(app: Flask) -> list[str]:
    r = app.extensions["broadcaster"].redis
    q = queue(r, PLAN_QUEUE)
    return ScheduledJobRegistry(queue=q, serializer=JSONSerializer).get_job_ids()


def test_staff_get_the_brief_before_the_first_customer_delivery(
    make_app, tmp_path, receiver, tokens, providers
):
    app = staff_app(make_app, tmp_path, receiver, lead=1)
    client = with_people(app, tokens)
    ann = announce(client, tokens["admin"], OUTAGE)["id"]
    drain(app)

    seen = arrivals(providers, receiver)
    # Email, SMS, the staff chat and tool for staff; email, SMS and the helpdesk for the
    # customer.
    assert len(seen["staff"]) == 4 and len(seen["customers"]) == 3
    assert max(seen["staff"]) < min(seen["customers"])
    assert [r["path"] for r in receiver.requests] == ["/staff", "/staff-json", "/public"]

    # The brief is not a customer delivery: it has its own counts and records.
    body = client.get(f"/api/v1/announcements/{ann}", headers=tokens["admin"]).get_json()
    assert {ch: c["sent"] for ch, c in body["deliveries"].items()} == {
        "email": 1,
        "sms": 1,
        "webhook": 1,
    }
    staff = body["staff"]
    assert {ch: c["sent"] for ch, c in staff["deliveries"].items()} == {
        "email": 1,
        "sms": 1,
        "webhook": 2,
    }
    assert staff["lead_seconds"] == 1
    assert staff["customers_at"] == pytest.approx(staff["briefed_at"] + 1)
    records = client.get(
        f"/api/v1/announcements/{ann}/deliveries?staff=true", headers=tokens["admin"]
    ).get_json()["items"]
    assert sorted((r["channel"], r["subscriber_id"]) for r in records)[0][0] == "email"
    assert {r["to"] for r in records} >= {"staff-chat", "staff-tool"}
    customer_records = deliveries(client, tokens["admin"], ann)
    assert "staff-chat" not in {r["subscriber_id"] for r in customer_records}


def test_customers_wait_for_the_lead_after_the_brief(
    make_app, tmp_path, receiver, tokens, providers
):
    sendgrid, twilio = providers
    app = staff_app(make_app, tmp_path, receiver, lead=60)
    client = with_people(app, tokens)
    ann = announce(client, tokens["admin"], OUTAGE)["id"]
    work(app)  # one burst worker without RQ's scheduler: only what is due now runs

    assert [to for to, _ in sendgrid.accepted()] == [STAFF["email"]]
    assert [f["To"] for f in twilio.accepted()] == [STAFF["phone"]]
    assert [r["path"] for r in receiver.requests] == ["/staff", "/staff-json"]
    # The customers' fan-out waits in RQ's schedule, a lead after the brief.
    assert scheduled(app) == [f"customers-{ann}"]
    body = client.get(f"/api/v1/announcements/{ann}", headers=tokens["admin"]).get_json()
    assert body["staff"]["customers_at"] == pytest.approx(body["staff"]["briefed_at"] + 60)
    assert all(c["queued"] + c["sent"] == 0 for c in body["deliveries"].values())


def test_a_holding_statement_does_not_wait_for_the_lead(
    make_app, tmp_path, receiver, tokens, providers
):
    app = staff_app(make_app, tmp_path, receiver, lead=60)
    client = with_people(app, tokens)
    answer = client.post(
        "/hooks/generic",
        json={
            "key": "pay-1",
            "status": "firing",
            "title": "Payments",
            "labels": {"service": "payments"},
        },
        headers=tokens["monitor"],
    )
    assert answer.status_code == 200, answer.get_json()
    ann = answer.get_json()["announcement_id"]
    work(app)  # no scheduler: a customer fan-out put off by the lead would not run here

    assert scheduled(app) == []
    seen = arrivals(providers, receiver)
    assert seen["customers"], "the customers were not told at once"
    assert max(seen["staff"]) < min(seen["customers"])  # staff are still first
    body = client.get(f"/api/v1/announcements/{ann}", headers=tokens["admin"]).get_json()
    assert body["preapproved"] is True and body["staff"]["lead_seconds"] == 0
    assert body["deliveries"]["sms"]["sent"] == 1


def test_the_brief_has_the_facts_routes_a_reply_per_language_and_what_not_to_promise(
    make_app, tmp_path, receiver, tokens, providers
):
    sendgrid, twilio = providers
    app = staff_app(make_app, tmp_path, receiver, lead=1)
    client = with_people(app, tokens)
    ann = announce(client, tokens["admin"], OUTAGE)
    drain(app)

    [brief] = [p for to, p in sendgrid.accepted() if to == STAFF["email"]]
    text, html = brief["content"][0]["value"], brief["content"][1]["value"]
    assert brief["subject"].endswith("Betalingen storing")  # Sam reads Dutch
    for part in (text, html):
        assert "Kaartbetalingen mislukken." in part  # the facts, in Sam's language
        assert "Technisch probleem" in part and "https://acme.example/chat" in part  # routes
        assert "Incident room" not in part  # the customers' routes, not staff's own
        assert "Compensation" in part and "Een hersteltijd" in part  # what not to promise
        assert "Thank you for contacting us." in part  # the English reply …
        assert "Card payments fail since 09:10." in part
        assert "Kaartbetalingen mislukken." in part  # … and the Dutch one
        assert f"/admin/incidents/{ann['incident_id']}#brief" in part
    assert "Customers hear this 1 seconds after staff." not in text  # translated for Sam

    [sms] = [f for f in twilio.accepted() if f["To"] == STAFF["phone"]]
    assert "Een hersteltijd" in sms["Body"] and "#brief" in sms["Body"]
    # Its receipt moves the staff delivery, never the customers'.
    url = sms["StatusCallback"]
    assert f"a={ann['id']}~staff&" in unquote(url)
    form = {"MessageStatus": "delivered", "MessageSid": "SM1"}
    signature = RequestValidator(FakeTwilio.AUTH_TOKEN).compute_signature(url, form)
    answer = client.post(
        url.removeprefix(app.config["PUBLIC_URL"]),
        data=form,
        headers={"X-Twilio-Signature": signature},
    )
    assert answer.status_code == 204
    body = client.get(f"/api/v1/announcements/{ann['id']}", headers=tokens["admin"]).get_json()
    assert body["staff"]["deliveries"]["sms"]["delivered"] == 1
    assert body["deliveries"]["sms"]["delivered"] == 0 and body["deliveries"]["sms"]["sent"] == 1

    [slack] = [json.loads(r["raw"]) for r in receiver.requests if r["path"] == "/staff"]
    assert set(slack) == {"text"}
    assert slack["text"].startswith("*Staff brief: Payments down*")
    for words in (
        "Card payments fail since 09:10.",
        "Live chat",
        "Compensation",
        "Kaartbetalingen",
    ):
        assert words in slack["text"]
    assert "unsubscribe" not in slack["text"].lower()  # no one's personal link in a chat
    [event] = [json.loads(r["raw"]) for r in receiver.requests if r["path"] == "/staff-json"]
    assert event["type"] == "staff.brief" and event["id"] == f"{ann['id']}:staff:staff-tool"
    brief_event = event["announcement"]["brief"]
    assert brief_event["do_not_promise"] == ["Compensation", "A time of repair"]
    assert [r["language"] for r in brief_event["replies"]] == ["en", "nl"]
    assert brief_event["routes"][0]["audience"] == "consumers"
    assert event["text"].startswith("Staff brief: Payments down")
    assert all(r["verified"] for r in receiver.requests)

    # The incident brief (API) says what not to promise too.
    api = client.get(f"/api/v1/incidents/{ann['incident_id']}/brief", headers=tokens["admin"])
    assert api.get_json()["do_not_promise"] == ["Compensation", "A time of repair"]


def test_an_announcement_for_staff_and_customers_gives_staff_only_the_brief(
    make_app, tmp_path, receiver, tokens, providers
):
    sendgrid, _ = providers
    app = staff_app(make_app, tmp_path, receiver, lead=1)
    client = with_people(app, tokens)
    announce(client, tokens["admin"], OUTAGE, audiences=["consumers", "staff"])
    drain(app)
    subjects = {to: p["subject"] for to, p in sendgrid.accepted()}
    assert list(subjects) == [STAFF["email"], CUSTOMER["email"]]
    # The brief (in Sam's Dutch), not the customers' message as well.
    assert subjects[STAFF["email"]] == "Briefing voor medewerkers: Betalingen storing"
    assert [r["path"] for r in receiver.requests] == ["/staff", "/staff-json", "/public"]


def test_an_internal_announcement_goes_to_staff_as_before(
    make_app, tmp_path, receiver, tokens, providers
):
    sendgrid, _ = providers
    app = staff_app(make_app, tmp_path, receiver, lead=60)
    client = with_people(app, tokens)
    failover = {"title": "Failover at 23:00", "translations": {}, "audiences": ["staff"]}
    ann = announce(client, tokens["admin"], OUTAGE, **failover)["id"]
    work(app)
    assert scheduled(app) == []
    [(to, message)] = sendgrid.accepted()
    assert to == STAFF["email"] and message["subject"] == "Acme Energy: Failover at 23:00"
    body = client.get(f"/api/v1/announcements/{ann}", headers=tokens["admin"]).get_json()
    assert body["staff"] is None and body["deliveries"]["email"]["sent"] == 1


def test_a_failing_brief_never_holds_the_customers_back(
    make_app, tmp_path, receiver, tokens, providers
):
    sendgrid, twilio = providers
    app = staff_app(make_app, tmp_path, receiver, lead=1)
    client = with_people(app, tokens)
    sendgrid.fail_next(400, body={"errors": [{"message": "rejected"}]})
    twilio.invalid_numbers.add(STAFF["phone"])
    ann = announce(client, tokens["admin"], OUTAGE)["id"]
    drain(app)
    assert [to for to, _ in sendgrid.accepted()] == [CUSTOMER["email"]]
    assert [f["To"] for f in twilio.accepted()] == [CUSTOMER["phone"]]
    customers = counts(client, tokens["admin"], ann)
    assert customers["email"]["sent"] == 1 and customers["sms"]["sent"] == 1
    body = client.get(f"/api/v1/announcements/{ann}", headers=tokens["admin"]).get_json()
    staff = body["staff"]["deliveries"]
    assert staff["email"]["failed"] == 1 and staff["sms"]["failed"] == 1
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'broadcaster_staff_briefs_total{outcome="sent"} 1' in metrics


def test_without_a_staff_section_nobody_is_briefed_and_customers_go_at_once(
    make_app, tokens, providers
):
    # The bench plan, like any plan without [staff]: no brief, no lead.
    root = Path(__file__).resolve().parent.parent
    assert load_plan(root / "bench" / "plan.toml").staff is None
    app = make_app(PLAN=str(root / "bench" / "plan.toml"), STAFF_LEAD_MAX=60)
    client = app.test_client()
    subscribe(client, tokens["admin"], [{"email": "e@example.com", "audiences": ["everyone"]}])
    ann = announce(
        client,
        tokens["admin"],
        OUTAGE,
        audiences=["everyone"],
        channels=["email"],
        translations={},
    )
    work(app)
    assert [to for to, _ in providers[0].accepted()] == ["e@example.com"]
    body = client.get(f"/api/v1/announcements/{ann['id']}", headers=tokens["admin"]).get_json()
    assert body["staff"] is None


def test_the_example_plan_briefs_staff_first():
    plan = load_plan(None)
    assert plan.staff is not None and plan.staff.audiences == ("staff",)
    assert plan.staff.lead_seconds == 30 and plan.staff.do_not_promise
    assert all(set(line) == set(plan.locales) for line in plan.staff.do_not_promise)


def plan_data(**staff: Any) -> dict[str, Any]:
    import tomllib

    data = tomllib.loads(PLAN.replace("{lead}", "30").replace("{url}", "https://x.example"))
    data["webhooks"] = []
    data["audiences"]["press"] = {"channels": ["email"]}
    data["staff"] = staff
    return data


@pytest.mark.parametrize(
    ("staff", "message"),
    [
        ({}, "staff.audiences: missing"),
        ({"audiences": []}, "staff.audiences: must be a non-empty list"),
        ({"audiences": "staff"}, "staff.audiences: must be a non-empty list"),
        ({"audiences": ["nobody"]}, "staff.audiences: unknown audience 'nobody'"),
        ({"audiences": ["press"]}, "staff.audiences: audience 'press' is not internal"),
        ({"audiences": ["staff"], "lead_seconds": 61}, "staff.lead_seconds: must be a whole"),
        ({"audiences": ["staff"], "lead_seconds": -1}, "staff.lead_seconds: must be a whole"),
        ({"audiences": ["staff"], "lead_seconds": "30"}, "staff.lead_seconds: must be a whole"),
        ({"audiences": ["staff"], "lead_seconds": True}, "staff.lead_seconds: must be a whole"),
        ({"audiences": ["staff"], "lead_seconds": 1.5}, "staff.lead_seconds: must be a whole"),
        ({"audiences": ["staff"], "channels": ["social"]}, "staff.channels: must be a non-empty"),
        ({"audiences": ["staff"], "channels": []}, "staff.channels: must be a non-empty"),
        ({"audiences": ["staff"], "do_not_promise": "x"}, "staff.do_not_promise: must be a list"),
        ({"audiences": ["staff"], "do_not_promise": [3]}, "staff.do_not_promise[0]: must be"),
        ({"audiences": ["staff"], "do_not_promise": [""]}, "staff.do_not_promise[0]: must be"),
        (
            {"audiences": ["staff"], "do_not_promise": [{"nl": "x"}]},
            "staff.do_not_promise[0]: needs a text for the default locale 'en'",
        ),
        (
            {"audiences": ["staff"], "do_not_promise": [{"en": "x", "fr": "y"}]},
            "staff.do_not_promise[0]: unknown locale 'fr'",
        ),
        (
            {"audiences": ["staff"], "do_not_promise": ["a\nb"]},
            "staff.do_not_promise[0]:",
        ),
        (
            {"audiences": ["staff"], "do_not_promise": ["x"] * 21},
            "staff.do_not_promise: at most 20 lines",
        ),
        ({"audiences": ["staff"], "lead": 3}, "staff.lead: unknown key"),
    ],
)
def test_plan_errors_name_the_staff_key_and_the_reason(staff, message):
    with pytest.raises(PlanError) as caught:
        parse_plan(plan_data(**staff), "plan.toml")
    assert f"plan.toml: {message}" in str(caught.value)


def test_staff_must_be_a_table():
    data = plan_data(audiences=["staff"])
    data["staff"] = ["staff"]
    with pytest.raises(PlanError, match="plan.toml: staff: must be a table"):
        parse_plan(data, "plan.toml")


def test_the_staff_defaults():
    staff = parse_plan(plan_data(audiences=["staff", "staff"]), "plan.toml").staff
    assert staff is not None
    assert staff.audiences == ("staff",) and staff.lead_seconds == 30
    assert staff.channels == ("email", "sms", "webhook") and staff.do_not_promise == ()
    assert staff.lead_for(preapproved=True) == 0 and staff.lead_for(False, cap=5) == 5


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), st.dictionaries(st.text(max_size=5), st.text(max_size=50))))
def test_any_do_not_promise_line_loads_or_is_a_plan_error_naming_it(line):
    try:
        staff = parse_plan(plan_data(audiences=["staff"], do_not_promise=[line]), "plan.toml").staff
    except PlanError as exc:
        assert "plan.toml: staff.do_not_promise[0]" in str(exc)
    else:
        assert staff is not None and len(staff.do_not_promise) == 1
        assert all(text.strip() for text in staff.do_not_promise[0].values())


def test_the_admin_incident_page_shows_what_not_to_promise(
    make_app, tmp_path, receiver, tokens, providers, people, signed_in
):
    app = staff_app(make_app, tmp_path, receiver, lead=1)
    client = with_people(app, tokens)
    incident = announce(client, tokens["admin"], OUTAGE)["incident_id"]
    signed_in(client, people["admin"].email)
    html = client.get(f"/admin/incidents/{incident}").get_data(as_text=True)
    brief = html.split('id="brief"', 1)[1].split("</section>", 1)[0]
    assert "<li>Compensation</li>" in brief and "<li>A time of repair</li>" in brief
