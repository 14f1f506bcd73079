"""Public places through real workers: webhook targets from the plan (signed, retried)."""

from __future__ import annotations

import json

import pytest

from broadcaster.domain.plan import PlanError, load_plan
from channels.webhook import SIGNATURE_HEADER, verify
from tests.helpers import announce, drain, work
from tests.test_webhook import SECRET, Answer, Receiver

PLAN = """
[organisation]
name = "Acme Energy"
locales = ["en", "nl"]

[channels_by_severity]
info = ["webhook"]
minor = ["webhook"]
major = ["webhook"]
critical = ["webhook", "email"]

[audiences.consumers]
channels = ["email", "webhook", "banner", "social"]
[[audiences.consumers.routes]]
need = "Emergency"
channel = "Phone"
contact = "+31 20 123 4567"

[audiences.staff]

[[webhooks]]
name = "staff-slack"
url = "{url}/slack"
secret = "{secret}"
allow_private = true
audiences = ["staff"]
format = "slack"

[[webhooks]]
name = "helpdesk"
url = "{url}/events"
secret = "{secret}"
allow_private = true
"""


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def hooked(make_app, tmp_path, receiver):
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN.format(url=receiver.url, secret=SECRET))
    return make_app(PLAN=str(plan))


# No channels: the plan's channels_by_severity picks them.
ANNOUNCEMENT = {
    "title": "Payments down",
    "body": "Card payments <b>fail</b>.",
    "severity": "minor",
    "audiences": ["consumers"],
}


def test_targets_get_one_signed_event_each_by_audience(hooked, tokens, receiver):
    client = hooked.test_client()
    ann = announce(client, tokens["admin"], ANNOUNCEMENT)["id"]
    drain(hooked)
    assert [r["path"] for r in receiver.requests] == ["/events"], "staff-slack is for staff only"
    [request] = receiver.requests
    assert request["verified"], "signed with the target's secret"
    assert verify(SECRET, request["headers"][SIGNATURE_HEADER], request["raw"])
    event = json.loads(request["raw"])
    assert event["type"] == "announcement.published"
    assert event["announcement"]["id"] == ann and event["announcement"]["title"] == "Payments down"
    assert event["announcement"]["reply"].startswith("Thank you for contacting us.")
    assert request["headers"]["X-Broadcaster-Delivery"] == f"{ann}:helpdesk"
    counts = client.get(f"/api/v1/announcements/{ann}", headers=tokens["admin"]).get_json()
    assert counts["deliveries"]["webhook"]["sent"] == 1

    receiver.requests.clear()
    staff = announce(client, tokens["admin"], ANNOUNCEMENT, audiences=["consumers", "staff"])["id"]
    drain(hooked)
    assert sorted(r["path"] for r in receiver.requests) == ["/events", "/slack"]
    slack = json.loads(next(r["raw"] for r in receiver.requests if r["path"] == "/slack"))
    assert set(slack) == {"text"} and "&lt;b&gt;fail&lt;/b&gt;" in slack["text"]
    assert staff in json.dumps(
        [json.loads(r["raw"]) for r in receiver.requests if r["path"] == "/events"]
    )


def test_failing_target_is_retried_and_a_rerun_sends_nothing_more(hooked, tokens, receiver):
    client = hooked.test_client()
    receiver.answer_next(Answer(500), Answer(503, {"Retry-After": "1"}))
    ann = announce(client, tokens["admin"], ANNOUNCEMENT)["id"]
    drain(hooked)
    assert [r["path"] for r in receiver.requests] == ["/events"] * 3
    deliveries = client.get(f"/api/v1/announcements/{ann}/deliveries", headers=tokens["admin"])
    [record] = deliveries.get_json()["items"]
    assert record["channel"] == "webhook" and record["state"] == "sent" and record["attempts"] == 3
    from broadcaster.delivery import queues

    queues.enqueue_public(hooked.extensions["broadcaster"].redis, ann, "webhook", "helpdesk")
    drain(hooked)
    assert len(receiver.requests) == 3, "already sent: a re-run posts nothing"


def test_permanent_refusal_is_recorded(hooked, tokens, receiver):
    client = hooked.test_client()
    receiver.answer_next(Answer(410, {}, b"gone for good"))
    ann = announce(client, tokens["admin"], ANNOUNCEMENT)["id"]
    drain(hooked)
    [record] = client.get(
        f"/api/v1/announcements/{ann}/deliveries", headers=tokens["admin"]
    ).get_json()["items"]
    assert record["state"] == "failed" and "410" in record["error"]
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ('secret = "{secret}"', 'secret = "short"'),
        ('url = "{url}/events"', 'url = "ftp://example.com/events"'),
        ('format = "slack"', 'format = "xml"'),
    ],
)
def test_bad_webhook_targets_stop_start_up(make_app, tmp_path, change, expected):
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN.replace(change, expected).format(url="http://127.0.0.1:9", secret=SECRET))
    with pytest.raises(PlanError) as caught:
        make_app(PLAN=str(plan))
    assert "plan.toml: webhooks[" in str(caught.value)


# --- social networks through the public queue ----------------------------------------------


@pytest.fixture
def social_app(make_app, mastodon, bluesky):
    return make_app(
        MASTODON_BASE_URL=mastodon.url,
        MASTODON_ACCESS_TOKEN=mastodon.TOKEN,
        BLUESKY_BASE_URL=bluesky.url,
        BLUESKY_HANDLE=bluesky.HANDLE,
        BLUESKY_APP_PASSWORD=bluesky.APP_PASSWORD,
    )


def test_an_incident_is_one_thread_on_each_network(
    social_app, tokens, mastodon, bluesky, providers
):
    client = social_app.test_client()
    client.post(
        "/api/v1/subscribers",
        headers=tokens["admin"],
        json=[{"email": "a@example.com", "audiences": ["consumers"]}],
    )
    body = {
        "title": "Payments down",
        "body": "Card payments fail.",
        "severity": "minor",
        "audiences": ["consumers"],
        "channels": ["social", "email"],
    }
    first = client.post("/api/v1/announcements", json=body, headers=tokens["admin"]).get_json()
    drain(social_app)
    for status in ("identified", "resolved"):
        client.post(
            "/api/v1/announcements",
            headers=tokens["admin"],
            json={**body, "status": status, "incident_id": first["incident_id"]},
        )
        drain(social_app)
    # An unrelated incident starts its own thread.
    client.post("/api/v1/announcements", json={**body, "title": "Other"}, headers=tokens["admin"])
    drain(social_app)

    toots = mastodon.posts
    assert len(toots) == 4
    assert toots[0]["in_reply_to_id"] is None
    assert toots[1]["in_reply_to_id"] == toots[0]["id"]
    assert toots[2]["in_reply_to_id"] == toots[1]["id"]
    assert toots[3]["in_reply_to_id"] is None
    assert all(t["url"] for t in toots)

    skeets = bluesky.posts
    assert len(skeets) == 4
    assert "reply" not in skeets[0]["value"]
    assert skeets[1]["value"]["reply"]["parent"]["uri"] == skeets[0]["uri"]
    assert skeets[2]["value"]["reply"]["parent"]["uri"] == skeets[1]["uri"]
    assert skeets[2]["value"]["reply"]["root"]["uri"] == skeets[0]["uri"]
    assert "reply" not in skeets[3]["value"]

    records = client.get(
        f"/api/v1/announcements/{first['id']}/deliveries", headers=tokens["admin"]
    ).get_json()["items"]
    social = {r["subscriber_id"]: r for r in records if r["channel"] == "social"}
    assert set(social) == {"mastodon", "bluesky"} and all(
        r["state"] == "sent" for r in social.values()
    )
    assert len(providers[0].accepted()) == 4, "email went out alongside"


def test_rate_limited_network_retries_later_without_holding_up_email(
    social_app, tokens, mastodon, bluesky, providers
):
    import time as clock
    from datetime import UTC, datetime

    client = social_app.test_client()
    client.post(
        "/api/v1/subscribers",
        headers=tokens["admin"],
        json=[{"email": "a@example.com", "audiences": ["consumers"]}],
    )
    reset = clock.time() + 2
    mastodon.fail_next(
        429,
        headers={  # Mastodon sends the reset as ISO 8601
            "X-RateLimit-Reset": datetime.fromtimestamp(reset, UTC).isoformat(),
        },
        body={"error": "Too many requests"},
        endpoint="/api/v1/statuses",
    )
    body = {
        "title": "Payments down",
        "body": "Card payments fail.",
        "severity": "minor",
        "audiences": ["consumers"],
        "channels": ["social", "email"],
    }
    ann = client.post("/api/v1/announcements", json=body, headers=tokens["admin"]).get_json()["id"]
    work(social_app, with_scheduler=True)
    # First pass: email and Bluesky are done while Mastodon waits for its reset.
    assert len(providers[0].accepted()) == 1 and len(bluesky.posts) == 1 and mastodon.posts == []
    drain(social_app)
    assert len(mastodon.posts) == 1
    [record] = [
        r
        for r in client.get(
            f"/api/v1/announcements/{ann}/deliveries", headers=tokens["admin"]
        ).get_json()["items"]
        if r["subscriber_id"] == "mastodon"
    ]
    assert record["state"] == "sent" and record["attempts"] == 2


def test_social_posts_keep_to_the_networks_shared_rate(make_app, tokens, mastodon, bluesky):
    """Mastodon at 2 posts/s: four incidents posted at once leave at least 0.5 s apart."""
    app = make_app(
        MASTODON_BASE_URL=mastodon.url,
        MASTODON_ACCESS_TOKEN=mastodon.TOKEN,
        MASTODON_RATE=2,
    )
    client = app.test_client()
    for n in range(4):
        body = {
            "title": f"Outage {n}",
            "body": "Card payments fail.",
            "severity": "minor",
            "audiences": ["consumers"],
            "channels": ["social"],
        }
        answer = client.post("/api/v1/announcements", json=body, headers=tokens["admin"])
        assert answer.status_code == 202
    drain(app)
    posted = [
        req["at"]
        for req in mastodon.requests
        if req["path"] == "/api/v1/statuses" and req["status"] == 200
    ]
    assert len(posted) == 4 and len(mastodon.posts) == 4
    gaps = [later - earlier for earlier, later in zip(posted, posted[1:], strict=False)]
    assert min(gaps) >= 0.45, f"posts {gaps} apart at a limit of 2/s"


def test_a_teams_target_is_accepted_and_other_formats_are_named(tmp_path):
    plan = tmp_path / "plan.toml"
    source = PLAN.format(url="http://127.0.0.1:9", secret=SECRET)
    plan.write_text(source.replace('format = "slack"', 'format = "teams"'))
    assert {t.name: t.format for t in load_plan(plan).webhooks} == {
        "staff-slack": "teams",
        "helpdesk": "json",
    }
    plan.write_text(source.replace('format = "slack"', 'format = "discord"'))
    with pytest.raises(PlanError, match=r"\.format: must be 'json', 'slack' or 'teams'"):
        load_plan(plan)
