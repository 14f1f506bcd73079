"""Fan-out through real RQ workers to the real SDKs, talking to fake SendGrid and Twilio."""

from __future__ import annotations

import time
from collections import Counter

from broadcaster.delivery import queues
from broadcaster.domain.ledger import STATES
from tests.conftest import TWILIO_FROM
from tests.helpers import PAYMENTS_DOWN, announce, counts, deliveries, drain, subscribe, work


def test_email_and_sms_reach_everyone_once(client, tokens, run_jobs, providers):
    sendgrid, twilio = providers
    subscribe(
        client,
        tokens["admin"],
        [
            {
                "external_id": "a",
                "email": "a@example.com",
                "phone": "+31612345001",
                "audiences": ["consumers"],
            },
            # In both audiences: still one message per channel.
            {
                "external_id": "b",
                "email": "b@example.com",
                "phone": "+31612345002",
                "audiences": ["consumers", "business"],
            },
            {
                "external_id": "c",
                "phone": "+31612345003",
                "audiences": ["business"],
            },  # phone only: no email
            {
                "external_id": "d",
                "email": "d@example.com",
                "audiences": ["business"],
                "channels": ["email"],
            },
            {
                "external_id": "e",
                "email": "e@example.com",
                "phone": "+31612345005",
                "audiences": ["business"],
                "channels": ["sms"],
            },  # prefers SMS only
            # Not addressed: gets the agent brief first (the plan's [staff]), nothing else.
            {"external_id": "s", "email": "s@example.com", "audiences": ["staff"]},
        ],
    )
    both = ["consumers", "business"]
    ann = announce(client, tokens["admin"], PAYMENTS_DOWN, audiences=both)["id"]
    run_jobs()

    [(first, brief)] = sendgrid.accepted()[:1]
    assert first == "s@example.com" and brief["subject"] == "Staff brief: Payments down"
    emails = Counter(address for address, _ in sendgrid.accepted()[1:])
    assert emails == Counter({"a@example.com": 1, "b@example.com": 1, "d@example.com": 1})
    texts = Counter(form["To"] for form in twilio.accepted())
    assert texts == Counter(
        {"+31612345001": 1, "+31612345002": 1, "+31612345003": 1, "+31612345005": 1}
    )

    # Wire format: one personalization per recipient; one request per distinct rendering
    # (each audience set has its own routes block). Twilio: To/From/Body.
    by_address = dict(sendgrid.accepted()[1:])
    for payload in by_address.values():
        assert payload["subject"] == "Acme Energy: Payments down"
        assert payload["from"] == {"email": "alerts@acme.example"}
        assert "Card payments fail" in payload["content"][0]["value"]
    html = {address: payload["content"][1]["value"] for address, payload in by_address.items()}
    assert "Live chat" in html["a@example.com"] and "Account manager" not in html["a@example.com"]
    assert "Live chat" in html["b@example.com"] and "Account manager" in html["b@example.com"]
    assert "Account manager" in html["d@example.com"] and "Live chat" not in html["d@example.com"]
    for form in twilio.accepted():
        assert form["From"] == TWILIO_FROM
        assert form["Body"].startswith("Acme Energy: Investigating: Payments down.")
        assert form["Body"].endswith("/status")

    assert counts(client, tokens["admin"], ann) == {
        "email": {**dict.fromkeys(STATES, 0), "sent": 3},
        "sms": {**dict.fromkeys(STATES, 0), "sent": 4},
    }
    records = deliveries(client, tokens["admin"], ann)
    assert len(records) == 7
    assert all(r["provider_id"] and r["attempts"] == 1 and r["state"] == "sent" for r in records)
    sms_ids = {r["provider_id"] for r in records if r["channel"] == "sms"}
    assert all(sid.startswith("SM") for sid in sms_ids) and len(sms_ids) == 4


def test_rerun_of_a_batch_and_of_the_plan_sends_nothing_more(
    app, client, tokens, run_jobs, providers
):
    sendgrid, twilio = providers
    subscribe(
        client,
        tokens["admin"],
        [
            {
                "email": f"p{i}@example.com",
                "phone": f"+316123450{i:02d}",
                "audiences": ["consumers"],
            }
            for i in range(10)
        ],
    )
    ann = announce(client, tokens["admin"], PAYMENTS_DOWN)["id"]
    run_jobs()
    assert len(sendgrid.accepted()) == 10 and len(twilio.accepted()) == 10
    people = [
        s["id"]
        for s in client.get("/api/v1/subscribers", headers=tokens["admin"]).get_json()["items"]
    ]
    redis = app.extensions["broadcaster"].redis
    # The same batches again, as a crashed-and-retried job would run them, and the plan again.
    queues.enqueue_batch(redis, ann, "email", people)
    queues.enqueue_batch(redis, ann, "sms", people)
    queues.enqueue_plan(redis, ann)
    run_jobs()
    assert len(sendgrid.accepted()) == 10 and len(twilio.accepted()) == 10


def test_email_batches_hold_at_most_1000_personalizations(client, tokens, run_jobs, providers):
    sendgrid, _ = providers
    rows = [{"email": f"user{i}@example.com", "audiences": ["consumers"]} for i in range(2300)]
    subscribe(client, tokens["admin"], rows)
    ann = announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["email"])["id"]
    run_jobs(60)
    sizes = sorted(len(req["json"]["personalizations"]) for req in sendgrid.requests)
    assert sizes == [300, 1000, 1000]
    assert len(set(address for address, _ in sendgrid.accepted())) == 2300
    assert counts(client, tokens["admin"], ann)["email"]["sent"] == 2300


def test_job_count_grows_with_batches_not_recipients(make_app, tokens, providers):
    app = make_app(SMS_BATCH_SIZE=40)
    client = app.test_client()
    subscribe(
        client,
        tokens["admin"],
        [{"phone": f"+3161234{i:04d}", "audiences": ["consumers"]} for i in range(100)],
    )
    announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["sms"])
    redis = app.extensions["broadcaster"].redis
    work(app, max_jobs=1)  # only the plan job
    assert queues.queue(redis, "sms").count == 3  # 40 + 40 + 20
    drain(app)
    assert len(providers[1].accepted()) == 100


def test_429_with_retry_after_is_honoured(client, tokens, run_jobs, providers):
    _, twilio = providers
    subscribe(client, tokens["admin"], [{"phone": "+31612345001", "audiences": ["consumers"]}])
    twilio.fail_next(
        429, headers={"Retry-After": "2"}, body={"code": 20429, "message": "Too Many Requests"}
    )
    ann = announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["sms"])["id"]
    run_jobs()
    statuses = [req["status"] for req in twilio.requests]
    assert statuses == [429, 201]
    waited = twilio.requests[1]["at"] - twilio.requests[0]["at"]
    assert waited >= 1.9, f"retried after {waited:.2f}s despite Retry-After: 2"
    [record] = deliveries(client, tokens["admin"], ann)
    assert record["state"] == "sent" and record["attempts"] == 2


def test_sendgrid_429_honours_retry_after(client, tokens, run_jobs, providers):
    sendgrid, _ = providers
    subscribe(client, tokens["admin"], [{"email": "a@example.com", "audiences": ["consumers"]}])
    sendgrid.fail_next(
        429, headers={"Retry-After": "1"}, body={"errors": [{"message": "too many"}]}
    )
    ann = announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["email"])["id"]
    run_jobs()
    assert [req["status"] for req in sendgrid.requests] == [429, 202]
    assert sendgrid.requests[1]["at"] - sendgrid.requests[0]["at"] >= 0.95
    [record] = deliveries(client, tokens["admin"], ann)
    assert record["state"] == "sent" and record["attempts"] == 2


def test_sendgrid_429_honours_x_ratelimit_reset(client, tokens, run_jobs, providers):
    """SendGrid's 429 says when its window resets (epoch seconds): wait until then."""
    sendgrid, _ = providers
    subscribe(client, tokens["admin"], [{"email": "a@example.com", "audiences": ["consumers"]}])
    reset = int(time.time()) + 2
    sendgrid.fail_next(
        429,
        headers={"X-RateLimit-Reset": str(reset), "X-RateLimit-Limit": "600"},
        body={"errors": [{"message": "too many requests"}]},
    )
    ann = announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["email"])["id"]
    run_jobs()
    assert [req["status"] for req in sendgrid.requests] == [429, 202]
    assert sendgrid.requests[1]["wall"] >= reset, "retried before the limit reset"
    [record] = deliveries(client, tokens["admin"], ann)
    assert record["state"] == "sent" and record["attempts"] == 2


def test_provider_timeout_is_retried(make_app, tokens, providers):
    app = make_app(PROVIDER_TIMEOUT=0.5)
    client = app.test_client()
    _, twilio = providers
    subscribe(client, tokens["admin"], [{"phone": "+31612345001", "audiences": ["consumers"]}])
    twilio.stall_next(1.5)
    ann = announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["sms"])["id"]
    drain(app)
    [record] = deliveries(client, tokens["admin"], ann)
    assert record["state"] == "sent" and record["attempts"] == 2


def test_5xx_is_retried_until_sent(client, tokens, run_jobs, providers):
    sendgrid, _ = providers
    subscribe(client, tokens["admin"], [{"email": "a@example.com", "audiences": ["consumers"]}])
    sendgrid.fail_next(500, times=2)
    ann = announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["email"])["id"]
    run_jobs()
    assert [req["status"] for req in sendgrid.requests] == [500, 500, 202]
    [record] = deliveries(client, tokens["admin"], ann)
    assert record["state"] == "sent" and record["attempts"] == 3


def test_transient_failures_give_up_after_max_attempts(make_app, tokens, providers):
    app = make_app(MAX_ATTEMPTS=3)
    client = app.test_client()
    _, twilio = providers
    subscribe(client, tokens["admin"], [{"phone": "+31612345001", "audiences": ["consumers"]}])
    twilio.fail_next(503, times=10)
    ann = announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["sms"])["id"]
    drain(app)
    assert len(twilio.requests) == 3
    [record] = deliveries(client, tokens["admin"], ann)
    assert record["state"] == "failed" and "503" in record["error"]


def test_invalid_number_fails_at_once_with_providers_reason(client, tokens, run_jobs, providers):
    _, twilio = providers
    twilio.invalid_numbers.add("+31612345002")
    subscribe(
        client,
        tokens["admin"],
        [
            {"external_id": "ok", "phone": "+31612345001", "audiences": ["consumers"]},
            {"external_id": "bad", "phone": "+31612345002", "audiences": ["consumers"]},
        ],
    )
    ann = announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["sms"])["id"]
    run_jobs()
    assert Counter(req["form"]["To"] for req in twilio.requests) == {
        "+31612345001": 1,
        "+31612345002": 1,
    }
    # The ledger shows contacts masked: enough to recognise, not to use.
    by_to = {r["to"]: r for r in deliveries(client, tokens["admin"], ann)}
    assert set(by_to) == {"+316…001", "+316…002"}
    assert by_to["+316…002"]["state"] == "failed"
    assert "21211" in by_to["+316…002"]["error"]
    assert "not a valid phone number" in by_to["+316…002"]["error"]
    assert by_to["+316…001"]["state"] == "sent"


def test_rejected_address_fails_and_the_rest_is_sent(client, tokens, run_jobs, providers):
    sendgrid, _ = providers
    sendgrid.rejected_addresses.add("bounce@example.com")
    subscribe(
        client,
        tokens["admin"],
        [
            {"email": "ok1@example.com", "audiences": ["consumers"]},
            {"email": "bounce@example.com", "audiences": ["consumers"]},
            {"email": "ok2@example.com", "audiences": ["consumers"]},
        ],
    )
    ann = announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["email"])["id"]
    run_jobs()
    assert [req["status"] for req in sendgrid.requests] == [400, 202]
    assert sorted(a for a, _ in sendgrid.accepted()) == ["ok1@example.com", "ok2@example.com"]
    by_to = {r["to"]: r for r in deliveries(client, tokens["admin"], ann)}
    assert by_to["b…@example.com"]["state"] == "failed"
    assert "valid address" in by_to["b…@example.com"]["error"]
    assert counts(client, tokens["admin"], ann)["email"]["sent"] == 2


def test_messaging_service_sid_is_used_when_set(make_app, tokens, providers):
    app = make_app(TWILIO_FROM=None, TWILIO_MESSAGING_SERVICE_SID="MG" + "1" * 32)
    client = app.test_client()
    subscribe(client, tokens["admin"], [{"phone": "+31612345001", "audiences": ["consumers"]}])
    announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["sms"])
    drain(app)
    [form] = providers[1].accepted()
    assert form["MessagingServiceSid"] == "MG" + "1" * 32 and "From" not in form


def test_sms_batch_is_sent_concurrently(make_app, tokens, providers):
    app = make_app(SMS_CONCURRENCY=8)
    client = app.test_client()
    _, twilio = providers
    twilio.delay = 0.3
    subscribe(
        client,
        tokens["admin"],
        [{"phone": f"+3161234{i:04d}", "audiences": ["consumers"]} for i in range(16)],
    )
    announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["sms"])
    started = time.monotonic()
    drain(app)
    elapsed = time.monotonic() - started
    assert len(twilio.accepted()) == 16
    # 16 × 0.3 s one at a time would be 4.8 s; 8 at once is about 0.6 s.
    assert elapsed < 16 * 0.3 * 0.6, f"took {elapsed:.2f}s: not concurrent"


def test_pending_announcement_sends_nothing_until_approved(client, tokens, run_jobs, providers):
    sendgrid, _ = providers
    subscribe(client, tokens["admin"], [{"email": "a@example.com", "audiences": ["consumers"]}])
    ann = announce(client, tokens["helpdesk"], PAYMENTS_DOWN, channels=["email"])["id"]
    run_jobs()
    assert sendgrid.requests == []
    client.post(f"/api/v1/announcements/{ann}/approve", headers=tokens["approver"])
    run_jobs()
    assert [a for a, _ in sendgrid.accepted()] == ["a@example.com"]


def test_channels_default_from_plan_severity(client, tokens, run_jobs, providers):
    sendgrid, twilio = providers
    subscribe(
        client,
        tokens["admin"],
        [{"email": "a@example.com", "phone": "+31612345001", "audiences": ["consumers"]}],
    )
    body = {k: v for k, v in PAYMENTS_DOWN.items() if k != "channels"}
    response = client.post(
        "/api/v1/announcements", json={**body, "severity": "info"}, headers=tokens["admin"]
    )
    run_jobs()
    assert response.status_code == 202
    # The example plan shows `info` on the website banner only: nobody is messaged.
    assert sendgrid.requests == [] and twilio.requests == []
    assert [b["title"] for b in client.get("/banner.json").get_json()["banners"]] == [
        PAYMENTS_DOWN["title"]
    ]
    # `major` adds email (not SMS), after a second person approves.
    major = client.post(
        "/api/v1/announcements", json={**body, "severity": "major"}, headers=tokens["admin"]
    ).get_json()
    client.post(f"/api/v1/announcements/{major['id']}/approve", headers=tokens["approver"])
    run_jobs()
    assert len(sendgrid.accepted()) == 1 and twilio.requests == []
