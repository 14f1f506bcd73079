"""``/metrics``: counters written by workers, read by any web process through Redis."""

from __future__ import annotations

import importlib.util
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from broadcaster.domain.announcements import ANNOUNCEMENTS_KEY
from broadcaster.web.metrics_view import SETTLE_SECONDS
from tests.helpers import drain

ANNOUNCEMENT = {
    "title": "Heating outage",
    "body": "District heating is off in Noord.",
    "severity": "minor",
    "audiences": ["consumers"],
    "channels": ["email", "sms"],
}


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    """Every sample as {(name, sorted labels): value}."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def subscribe(client, tokens, n: int) -> None:
    rows = [
        {"email": f"p{i}@example.com", "phone": f"+3161234{i:04d}", "audiences": ["consumers"]}
        for i in range(n)
    ]
    client.post("/api/v1/subscribers", json=rows, headers=tokens["admin"])


def test_provider_calls_retries_and_deliveries_are_counted(make_app, tokens, providers):
    _, twilio = providers
    worker_app, web_app = make_app(), make_app()  # two processes' worth of registries
    client = worker_app.test_client()
    subscribe(client, tokens, 3)
    twilio.fail_next(429, times=2, headers={"Retry-After": "0"})
    response = client.post("/api/v1/announcements", json=ANNOUNCEMENT, headers=tokens["admin"])
    ann = response.get_json()["id"]
    pending = client.post(  # helpdesk may not publish: this one waits for approval
        "/api/v1/announcements", json=ANNOUNCEMENT, headers=tokens["helpdesk"]
    )
    assert pending.get_json()["state"] == "pending_approval"

    before = scrape(web_app.test_client())
    assert before[("broadcaster_queue_depth", (("queue", "plan"),))] == 1
    drain(worker_app)

    after = scrape(web_app.test_client())
    assert after[("broadcaster_queue_depth", (("queue", "plan"),))] == 0
    assert after[("broadcaster_provider_throttled_total", (("provider", "twilio"),))] == 2
    assert after[("broadcaster_retries_total", (("channel", "sms"),))] == 2
    twilio_calls = len(twilio.requests)
    assert twilio_calls == 5  # 3 messages + 2 throttled attempts
    count = after[("broadcaster_provider_latency_seconds_count", (("provider", "twilio"),))]
    assert count == twilio_calls
    inf = after[
        ("broadcaster_provider_latency_seconds_bucket", (("le", "+Inf"), ("provider", "twilio")))
    ]
    assert inf == twilio_calls
    assert after[("broadcaster_provider_latency_seconds_sum", (("provider", "twilio"),))] > 0
    assert after[("broadcaster_provider_latency_seconds_count", (("provider", "sendgrid"),))] == 1
    assert after[("broadcaster_deliveries", (("channel", "sms"), ("state", "sent")))] == 3
    assert after[("broadcaster_deliveries", (("channel", "email"), ("state", "sent")))] == 3
    assert after[("broadcaster_deliveries", (("channel", "sms"), ("state", "queued")))] == 0
    assert after[("broadcaster_announcements", (("state", "published"),))] == 1
    assert after[("broadcaster_announcements", (("state", "pending_approval"),))] == 1

    # Announcements older than a week are folded into running totals exactly once.
    r = worker_app.extensions["broadcaster"].redis
    r.zadd(ANNOUNCEMENTS_KEY, {ann: time.time() - SETTLE_SECONDS - 60})
    for _ in range(2):
        folded = scrape(web_app.test_client())
        assert folded[("broadcaster_deliveries", (("channel", "sms"), ("state", "sent")))] == 3
        assert folded[("broadcaster_announcements", (("state", "published"),))] == 1


def test_metrics_token_is_required_when_set(make_app):
    client = make_app(METRICS_TOKEN="scrape-secret-123").test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.get_json()["code"] == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    samples = scrape(client, Authorization="Bearer scrape-secret-123")
    assert ("broadcaster_queue_depth", (("queue", "sms"),)) in samples


@pytest.mark.skipif(
    importlib.util.find_spec("broadcaster.delivery.breaker") is None,
    reason="broadcaster/breaker.py (circuit breakers) is not in this version",
)
def test_breaker_state_is_exposed(client, r):
    from broadcaster.delivery.breaker import Breaker

    twilio = Breaker(r, "twilio", threshold=2)
    sendgrid = Breaker(r, "sendgrid", threshold=2)
    twilio.failure()
    twilio.failure()  # two in a row: open
    sendgrid.failure()  # one: still closed
    samples = scrape(client)
    expected = {("twilio", "open"): 1, ("twilio", "closed"): 0, ("sendgrid", "closed"): 1}
    for (provider, state), value in expected.items():
        key = ("broadcaster_breaker_state", (("provider", provider), ("state", state)))
        assert samples[key] == value


def test_social_networks_are_timed_too(make_app, tokens, providers, mastodon, bluesky):
    app = make_app(
        MASTODON_BASE_URL=mastodon.url,
        MASTODON_ACCESS_TOKEN=mastodon.TOKEN,
        BLUESKY_BASE_URL=bluesky.url,
        BLUESKY_HANDLE=bluesky.HANDLE,
        BLUESKY_APP_PASSWORD=bluesky.APP_PASSWORD,
    )
    client = app.test_client()
    body = {**ANNOUNCEMENT, "channels": ["social"]}
    answer = client.post("/api/v1/announcements", json=body, headers=tokens["admin"])
    assert answer.status_code == 202
    bluesky.fail_next(
        429,
        headers={"ratelimit-remaining": "0", "ratelimit-reset": str(int(time.time()))},
        body={"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        endpoint="/xrpc/com.atproto.repo.createRecord",
    )
    drain(app)
    after = scrape(client)
    assert len(bluesky.posts) == 1 and len(mastodon.posts) == 1
    # Two Bluesky posts were tried (one throttled), each timed once; one throttle counted.
    assert after[("broadcaster_provider_latency_seconds_count", (("provider", "bluesky"),))] == 2
    assert after[("broadcaster_provider_throttled_total", (("provider", "bluesky"),))] == 1
    assert after[("broadcaster_provider_latency_seconds_count", (("provider", "mastodon"),))] >= 1
