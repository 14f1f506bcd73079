"""Confirmation and escalation: people asked to confirm, escalated, unreachable, helped.

Real RQ workers run the fan-out, the batches and the escalation steps (scheduled with RQ's
``enqueue_at`` and moved by the worker's scheduler when due); email goes through the
SendGrid SDK and SMS through the Twilio SDK to the fakes; replies arrive as signed Twilio
inbound requests and as POSTs of the confirm link the email carried. A "minute" of the
plan is CONFIRM_MINUTE_SECONDS (2 s here), so the timings are real and short.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from rq.serializers import JSONSerializer
from twilio.request_validator import RequestValidator

from broadcaster.delivery.queues import PROMISE_QUEUE, QUEUE_NAMES, enqueue_escalation, queue
from broadcaster.services import services
from broadcaster.web.confirmation_view import incident_confirmations
from tests.fakes import FakeTwilio
from tests.helpers import announce, deliveries, work
from tests.test_webhook import SECRET, Receiver

# The confirm page's button, per language.
RECEIVED = {
    "en": "I received it",
    "nl": "Ik heb het ontvangen",
    "da": "Jeg har modtaget den",
    "sv": "Jag har fått det",
}
MINUTE = 2.0  # seconds in one of the plan's minutes (CONFIRM_MINUTE_SECONDS)
INBOUND = "http://127.0.0.1:8000/hooks/twilio/inbound"
_sids = itertools.count(1)

PLAN = """
[organisation]
name = "Acme Energy"
default_locale = "en"
locales = ["en", "nl", "da", "sv"]

[channels_by_severity]
info = []
minor = ["email", "sms"]
major = ["email", "sms"]
critical = ["email", "sms"]

[audiences.medical]
description = "Customers on medical equipment"
channels = ["email", "sms"]
confirm = { within_minutes = 1, escalate = ["sms"] }

[[audiences.medical.routes]]
need = "Emergency"
channel = "Phone"
contact = "+31 20 123 4567"

[audiences.consumers]
channels = ["email", "sms"]

[audiences.staff]
internal = true
channels = ["email", "webhook"]

[[webhooks]]
name = "staff-chat"
url = "{url}/staff-chat"
secret = "{secret}"
format = "slack"
audiences = ["staff"]
allow_private = true
"""

OUTAGE = {
    "title": "Power outage in Utrecht",
    "body": "Power is out in Utrecht since 09:10. Crews are on site.",
    "severity": "major",
    "status": "investigating",
    "audiences": ["medical"],
    "channels": ["email"],
}


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.release.set()
    server.stop()


@pytest.fixture
def app(make_app, tmp_path: Path, receiver: Receiver) -> Flask:
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN.replace("{url}", receiver.url).replace("{secret}", SECRET), "utf-8")
    return make_app(PLAN=str(plan), CONFIRM_MINUTE_SECONDS=MINUTE)


def medical(client, tokens, n: int, start: int = 0, **extra: Any) -> list[dict[str, Any]]:
    rows = [
        {
            "external_id": f"med-{start + i}",
            "email": f"med{start + i}@example.com",
            "phone": f"+316123450{start + i:02d}",
            "locale": ("en", "nl", "da", "sv")[i % 4],
            "audiences": ["medical"],
            **extra,
        }
        for i in range(n)
    ]
    report = client.post("/api/v1/subscribers", json=rows, headers=tokens["admin"]).get_json()
    assert not report["rejected"], report
    listed = client.get("/api/v1/subscribers?per_page=100", headers=tokens["admin"]).get_json()
    by_ext = {p["external_id"]: p for p in listed["items"]}
    return [by_ext[row["external_id"]] for row in rows]


def run(app: Flask) -> None:
    """One burst worker with the scheduler: what is queued or due runs, nothing waits."""
    work(app, with_scheduler=True)
    r = app.extensions["broadcaster"].redis
    for name in QUEUE_NAMES:
        failed = FailedJobRegistry(queue=queue(r, name), serializer=JSONSerializer)
        jobs = [queue(r, name).fetch_job(i) for i in failed.get_job_ids()]
        assert not jobs, [(j.func_name, j.latest_result().exc_string) for j in jobs if j]


def due_at(app: Flask, job_id: str) -> float:
    """When RQ's scheduler will move a scheduled job to its queue (epoch seconds)."""
    r = app.extensions["broadcaster"].redis
    registry = ScheduledJobRegistry(queue=queue(r, PROMISE_QUEUE), serializer=JSONSerializer)
    score = r.zscore(registry.key, job_id)
    assert score is not None, f"{job_id} is not scheduled"
    return float(score)


def run_when_due(app: Flask, job_id: str) -> float:
    """Wait for a scheduled escalation step, then run it (and the batches it queues)."""
    due = due_at(app, job_id)
    time.sleep(max(0.0, due - time.time()) + 0.05)
    run(app)
    return due


def sms_reply(client, phone: str, body: str):
    form = {
        "MessageSid": f"SMin{next(_sids):030d}",
        "AccountSid": FakeTwilio.ACCOUNT_SID,
        "From": phone,
        "To": "+3197010000000",
        "Body": body,
        "NumMedia": "0",
    }
    signature = RequestValidator(FakeTwilio.AUTH_TOKEN).compute_signature(INBOUND, form)
    response = client.post(
        "/hooks/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 200
    return response


def confirm_links(sendgrid) -> dict[str, str]:
    """Address → the confirm link path its email carried (a SendGrid substitution)."""
    links = {}
    for request in sendgrid.requests:
        for p in request["json"]["personalizations"]:
            url = (p.get("substitutions") or {}).get("-answer_url-")
            if url:
                links[p["to"][0]["email"]] = urllib.parse.urlsplit(url).path
    return links


def confirmations(client, tokens, incident_id: str) -> dict[str, Any]:
    body = client.get(f"/api/v1/incidents/{incident_id}", headers=tokens["helpdesk"]).get_json()
    [found] = body["confirmations"]
    return found


def test_a_third_confirm_by_sms_a_third_by_the_email_link_a_third_never(
    app, client, tokens, sendgrid, twilio, receiver
):
    group = medical(client, tokens, 9)
    by_link, by_sms, never = group[:3], group[3:6], group[6:]
    started, clock = time.time(), time.monotonic()
    created = announce(client, tokens["admin"], OUTAGE)
    run(app)

    # First wave: email only (the announcement's channel), each asking to confirm.
    emails = [address for address, _ in sendgrid.accepted()]
    assert sorted(emails) == sorted(p["email"] for p in group)
    assert twilio.accepted() == []
    links = confirm_links(sendgrid)
    assert set(links) == set(emails)
    text = sendgrid.requests[0]["json"]["content"][0]["value"]
    assert "-answer_url-" in text  # filled per person by SendGrid's substitution
    counts = confirmations(client, tokens, created["incident_id"])["counts"]
    assert counts == {
        "asked": 9,
        "waiting": 9,
        "confirmed": 0,
        "help": 0,
        "unreachable": 0,
        "escalated": 0,
    }

    # A mail scanner that follows the link confirms nobody; the person's POST does.
    for person in by_link:
        page = client.get(links[person["email"]])
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert 'name="answer" value="confirm"' in html and 'value="help"' in html
        assert f'<html lang="{person["locale"]}">' in html  # in the person's language
        assert RECEIVED[person["locale"]] in html
        assert page.headers["Cache-Control"] == "no-store"
    assert confirmations(client, tokens, created["incident_id"])["counts"]["confirmed"] == 0
    for person in by_link:
        done = client.post(links[person["email"]], data={"answer": "confirm"})
        assert done.status_code == 200
        assert 'role="status"' in done.get_data(as_text=True)

    # Step 1, one plan minute after the fan-out: SMS to the six who did not confirm.
    step1 = run_when_due(app, f"confirm-{created['id']}-1")
    assert started + MINUTE <= step1 <= time.time()
    texted = [m["To"] for m in twilio.accepted()]
    assert sorted(texted) == sorted(p["phone"] for p in by_sms + never)
    first_sms = twilio.accepted()[0]["Body"]
    assert "Reply 1 or OK to confirm, 2 or HELP if you need us." in first_sms
    # Never early: no SMS reached Twilio before a plan minute had passed.
    assert min(request["at"] for request in twilio.requests) >= clock + MINUTE
    counts = confirmations(client, tokens, created["incident_id"])["counts"]
    assert counts["escalated"] == 6 and counts["confirmed"] == 3 and counts["waiting"] == 6
    records = deliveries(client, tokens["helpdesk"], created["id"])
    assert {(d["channel"], d["escalation"]) for d in records} == {("email", None), ("sms", 1)}

    # Three answer the SMS, in three languages' words; the reply is no ordinary reply.
    for person, body in zip(by_sms, ("1", "ok", "Ja!"), strict=True):
        sms_reply(client, person["phone"], body)
    incident = client.get(
        f"/api/v1/incidents/{created['incident_id']}", headers=tokens["helpdesk"]
    ).get_json()
    assert incident["replies"] == []

    # Step 2, a plan minute after step 1: nothing left to try for the three: unreachable.
    step2 = run_when_due(app, f"confirm-{created['id']}-2")
    assert step2 >= step1 + MINUTE - 1  # RQ schedules to the whole second
    found = confirmations(client, tokens, created["incident_id"])
    assert found["counts"] == {
        "asked": 9,
        "waiting": 0,
        "confirmed": 6,
        "help": 0,
        "unreachable": 3,
        "escalated": 6,
    }
    assert found["finished"] == "done"
    unreachable = {p["external_id"]: p for p in found["unreachable"]}
    assert set(unreachable) == {p["external_id"] for p in never}
    for person in never:
        listed = unreachable[person["external_id"]]
        assert listed["phone"] == person["phone"]  # the helpdesk may see contacts
        assert {t["channel"] for t in listed["tried"]} == {"email", "sms"}
    with app.app_context():  # a reader without the subscribers permission sees them masked
        [masked] = incident_confirmations(services(), created["incident_id"], False)
    assert {p["phone"] for p in masked["unreachable"]} == {
        p["phone"][:4] + "…" + p["phone"][-3:] for p in never
    }
    assert all("…@example.com" in p["email"] for p in masked["unreachable"])

    # Nobody was contacted twice on one channel.
    assert max(Counter(a for a, _ in sendgrid.accepted()).values()) == 1
    assert max(Counter(m["To"] for m in twilio.accepted()).values()) == 1

    # A re-run of a step (a crash after its work) sends nothing again.
    r = app.extensions["broadcaster"].redis
    enqueue_escalation(r, created["id"], 1, time.time())
    run(app)
    assert len(twilio.accepted()) == 6 and len(sendgrid.accepted()) == 9


def test_help_flags_the_person_and_reaches_staff_at_once(
    app, client, tokens, sendgrid, twilio, receiver, people, signed_in
):
    [helped, other] = medical(client, tokens, 2, 20)
    dutch = {"nl": {"title": "Stroomstoring in Utrecht", "body": "De stroom is uitgevallen."}}
    created = announce(
        client, tokens["admin"], OUTAGE, channels=["email", "sms"], translations=dutch
    )
    run(app)
    assert len(twilio.accepted()) == 2  # nobody chose an order: every channel at once
    texts = {m["To"]: m["Body"] for m in twilio.accepted()}
    assert "Reply 1 or OK to confirm, 2 or HELP if you need us." in texts[helped["phone"]]
    assert "Antwoord 1 of OK om te bevestigen, 2 of HULP" in texts[other["phone"]]  # nl
    sms_reply(client, helped["phone"], "HJÆLP")
    run(app)  # the staff notice job, at the front of its queue
    posts = [json.loads(req["raw"]) for req in receiver.requests if req["path"] == "/staff-chat"]
    assert len(posts) == 1 and receiver.requests[0]["verified"]
    assert "asked for help" in json.dumps(posts[0])
    assert helped["phone"] not in json.dumps(posts[0])  # masked in chat
    # A later "1" does not undo the help: a person must call.
    sms_reply(client, helped["phone"], "1")
    found = confirmations(client, tokens, created["incident_id"])
    assert found["counts"]["help"] == 1 and found["counts"]["confirmed"] == 0
    assert [p["external_id"] for p in found["help"]] == [helped["external_id"]]
    assert found["help"][0]["answered_by"] == "sms"
    # Anything else is an ordinary reply, kept on the incident.
    sms_reply(client, other["phone"], "OK but when is power back?")
    incident = client.get(
        f"/api/v1/incidents/{created['incident_id']}", headers=tokens["helpdesk"]
    ).get_json()
    assert [reply["body"] for reply in incident["replies"]] == ["OK but when is power back?"]
    # The incident page shows the list to call, contacts included for the helpdesk.
    signed_in(client, people["helpdesk"].email)
    page = client.get(f"/admin/incidents/{created['incident_id']}").get_data(as_text=True)
    assert "Asked for help: call them back" in page
    assert helped["phone"] in page and 'data-count="help">1<' in page


def test_escalation_follows_the_persons_own_order(app, client, tokens, sendgrid, twilio):
    [texted_first] = medical(client, tokens, 1, 30, channels=["sms", "email"])
    [mailed_first] = medical(client, tokens, 1, 31, channels=["email", "sms"])
    created = announce(client, tokens["admin"], OUTAGE, channels=["email", "sms"])
    run(app)
    # Their first channel only, though the announcement uses both.
    assert [m["To"] for m in twilio.accepted()] == [texted_first["phone"]]
    assert [a for a, _ in sendgrid.accepted()] == [mailed_first["email"]]
    run_when_due(app, f"confirm-{created['id']}-1")
    assert sorted(m["To"] for m in twilio.accepted()) == sorted(
        [texted_first["phone"], mailed_first["phone"]]
    )
    assert sorted(a for a, _ in sendgrid.accepted()) == sorted(
        [texted_first["email"], mailed_first["email"]]
    )


def test_a_resolved_incident_stops_escalating(app, client, tokens, sendgrid, twilio):
    medical(client, tokens, 2, 40)
    created = announce(client, tokens["admin"], OUTAGE)
    run(app)
    announce(
        client,
        tokens["admin"],
        OUTAGE,
        incident_id=created["incident_id"],
        status="resolved",
        title="Power is back",
        body="Power is back in Utrecht.",
    )
    run(app)
    sent_before = len(twilio.accepted())
    run_when_due(app, f"confirm-{created['id']}-1")
    assert len(twilio.accepted()) == sent_before == 0
    found = confirmations(client, tokens, created["incident_id"])
    assert found["finished"] == "resolved"
    assert found["counts"]["escalated"] == 0


def test_a_forged_or_foreign_confirm_link_confirms_nobody(app, client, tokens, sendgrid):
    [person] = medical(client, tokens, 1, 50)
    created = announce(client, tokens["admin"], OUTAGE)
    run(app)
    path = confirm_links(sendgrid)[person["email"]]
    forged = path[:-3] + ("aaa" if not path.endswith("aaa") else "bbb")
    assert client.post(forged, data={"answer": "confirm"}).status_code == 400
    assert client.post(path, data={"answer": "delete everything"}).status_code == 422
    assert client.get("/confirm/not-a-token").status_code == 400
    counts = confirmations(client, tokens, created["incident_id"])["counts"]
    assert counts["confirmed"] == 0 and counts["waiting"] == 1
    # The real link, asking for help: flagged like an SMS "2".
    assert client.post(path, data={"answer": "help"}).status_code == 200
    assert confirmations(client, tokens, created["incident_id"])["counts"]["help"] == 1


def test_an_audience_without_confirm_is_asked_nothing(app, client, tokens, sendgrid, twilio):
    client.post(
        "/api/v1/subscribers",
        json=[{"email": "c@example.com", "phone": "+31612345099", "audiences": ["consumers"]}],
        headers=tokens["admin"],
    )
    created = announce(client, tokens["admin"], OUTAGE, audiences=["consumers"])
    run(app)
    [(_, payload)] = sendgrid.accepted()
    assert "-answer_url-" not in payload["content"][0]["value"]
    body = client.get(
        f"/api/v1/incidents/{created['incident_id']}", headers=tokens["helpdesk"]
    ).get_json()
    assert body["confirmations"] == []
    sms_reply(client, "+31612345099", "1")  # no announcement texted them: not an answer


def test_escalation_respects_contacts_and_opt_outs(app, client, tokens, sendgrid, twilio):
    report = client.post(
        "/api/v1/subscribers",
        json=[{"external_id": "med-80", "email": "med80@example.com", "audiences": ["medical"]}],
        headers=tokens["admin"],
    ).get_json()
    assert report["created"] == 1
    [opted] = medical(client, tokens, 1, 81)
    created = announce(client, tokens["admin"], OUTAGE)
    run(app)
    sms_reply(client, opted["phone"], "STOP")  # no SMS from us yet: still an opt-out
    run_when_due(app, f"confirm-{created['id']}-1")
    found = confirmations(client, tokens, created["incident_id"])
    # Neither has a channel left: unreachable at the first step, and nobody texted.
    assert twilio.accepted() == []
    assert found["counts"]["unreachable"] == 2 and found["counts"]["escalated"] == 0
    assert found["finished"] == "done"
    assert {p["external_id"] for p in found["unreachable"]} == {"med-80", "med-81"}
    assert len(sendgrid.accepted()) == 2  # the first message went to both, by email


def test_a_step_re_run_after_a_crash_finishes_its_work_once(app, client, tokens, twilio):
    """A step that died after choosing channels and queueing some: its re-run sends each
    person one message, on the channel chosen the first time."""
    from broadcaster.domain.confirmations import Confirmations
    from broadcaster.domain.ledger import Ledger

    group = medical(client, tokens, 4, 91)
    created = announce(client, tokens["admin"], OUTAGE)
    run(app)
    r = app.extensions["broadcaster"].redis
    # What the first run left behind: everyone's channel chosen, one SMS queued, no batch.
    Confirmations(r, created["id"]).choose(1, {p["id"]: "sms" for p in group})
    Ledger(r, created["id"]).enqueue("sms", [group[0]["id"]])
    run_when_due(app, f"confirm-{created['id']}-1")
    assert sorted(m["To"] for m in twilio.accepted()) == sorted(p["phone"] for p in group)
    found = confirmations(client, tokens, created["incident_id"])
    assert found["counts"]["escalated"] == 4 and found["counts"]["waiting"] == 4


def test_nobody_is_escalated_past_a_message_that_has_not_left(app, client, tokens, twilio):
    """Twilio pauses us (429, Retry-After a minute): the escalation SMS waits queued, and
    the next step waits for it instead of calling those people unreachable."""
    group = medical(client, tokens, 2, 95)
    created = announce(client, tokens["admin"], OUTAGE)
    run(app)
    twilio.fail_next(
        429, times=2, headers={"Retry-After": "60"}, body={"code": 20429, "message": "Slow down"}
    )
    run_when_due(app, f"confirm-{created['id']}-1")
    assert twilio.accepted() == []  # asked, refused for now: nothing left
    run_when_due(app, f"confirm-{created['id']}-2")
    found = confirmations(client, tokens, created["incident_id"])
    assert found["counts"]["unreachable"] == 0 and found["counts"]["waiting"] == len(group)
    assert found["finished"] is None
    assert due_at(app, f"confirm-{created['id']}-3") > time.time()  # it tries again later
