"""The circuit breaker: on real Redis, and through a real fan-out to the fake Twilio."""

from __future__ import annotations

import time

from broadcaster.delivery.breaker import Breaker, status
from tests.helpers import PAYMENTS_DOWN, announce, deliveries, drain, subscribe, work


def test_consecutive_failures_open_it_one_probe_then_closes_it(r):
    breaker = Breaker(r, "twilio", threshold=3, cooloff=0.5)
    breaker.failure()
    breaker.failure()
    breaker.success()  # an answer in between: failures must be consecutive
    breaker.failure()
    breaker.failure()
    assert breaker.allow() == 0 and status(r)["twilio"]["state"] == "closed"

    assert breaker.failure() == "open"
    assert 0 < breaker.allow() <= 0.5
    shown = status(r)["twilio"]
    assert shown["state"] == "open" and shown["until"] > time.time()

    time.sleep(0.55)
    assert breaker.allow() == 0, "after the cool-off one request probes"
    assert breaker.allow() > 0, "the others wait for the probe's answer"
    assert status(r)["twilio"]["state"] == "half_open"
    assert breaker.failure() == "open", "a failed probe opens it again"
    assert breaker.allow() > 0

    time.sleep(0.55)
    assert breaker.allow() == 0
    breaker.success()
    assert breaker.allow() == 0 and breaker.allow() == 0
    assert status(r)["twilio"] == {"state": "closed", "failures": 0, "until": None}


def test_batches_wait_out_an_open_breaker_without_spending_attempts(make_app, tokens, providers):
    app = make_app(
        BREAKER_THRESHOLD=3,
        BREAKER_COOLOFF=2,
        SMS_CONCURRENCY=1,  # one request at a time: the breaker opens after exactly three
        PROVIDER_WAIT_INLINE=0,  # reschedule at once instead of waiting in the worker
    )
    client = app.test_client()
    _, twilio = providers
    twilio.fail_next(503, times=3)
    phones = [f"+3161234{i:04d}" for i in range(8)]
    subscribe(client, tokens["admin"], [{"phone": p, "audiences": ["consumers"]} for p in phones])
    ann = announce(client, tokens["admin"], PAYMENTS_DOWN, channels=["sms"])["id"]
    work(app, max_jobs=2)  # the plan and the SMS batch
    assert [req["status"] for req in twilio.requests] == [503, 503, 503], "kept calling"
    shown = client.get("/readyz").get_json()["checks"]["providers"]["twilio"]
    assert shown["state"] == "open" and shown["failures"] == 3

    drain(app)
    statuses = [req["status"] for req in twilio.requests]
    assert statuses == [503] * 3 + [201] * 8
    cooled = twilio.requests[3]["arrived"] - twilio.requests[2]["arrived"]
    assert cooled >= 1.9, f"called again {cooled:.2f}s after it opened (cool-off 2s)"
    attempts = {r["to"]: r["attempts"] for r in deliveries(client, tokens["admin"], ann)}
    assert all(r["state"] == "sent" for r in deliveries(client, tokens["admin"], ann))
    # The three that failed were tried twice; the five that waited spent no attempt.
    assert sorted(attempts.values()) == [1] * 5 + [2] * 3
    assert client.get("/readyz").get_json()["checks"]["providers"]["twilio"]["state"] == "closed"


def test_the_admin_start_page_shows_a_provider_marked_down(client, r, people, signed_in):
    signed_in(client, "hanna@acme.example")  # the helpdesk person of the `people` fixture
    assert "Providers marked down" not in client.get("/admin/").get_data(as_text=True)
    breaker = Breaker(r, "twilio", threshold=2, cooloff=60)
    breaker.failure()
    breaker.failure()
    page = " ".join(client.get("/admin/").get_data(as_text=True).split())
    assert "Providers marked down" in page
    assert "<strong>twilio</strong> · open · 2 failures in a row · cool-off until" in page
