"""Staff in Slack, a thread per incident, through the real Slack SDK (issue 19 point 4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broadcaster.app import create_app
from channels.base import ChannelConfigError, PermanentDeliveryError, TransientDeliveryError
from channels.slack_threads import SlackThreads
from tests.fakes_chat import SLACK_CHANNEL, SLACK_TOKEN, FakeSlack
from tests.helpers import announce, drain, subscribe
from tests.test_staff_first import OUTAGE, STAFF, plan_text
from tests.test_webhook import Receiver


@pytest.fixture(scope="module")
def slack_server() -> Iterator[FakeSlack]:
    server = FakeSlack()
    yield server
    server.stop()


@pytest.fixture
def slack(slack_server: FakeSlack) -> Iterator[FakeSlack]:
    slack_server.reset()
    yield slack_server
    assert slack_server.violations == []


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


def slack_settings(slack: FakeSlack) -> dict[str, Any]:
    return {
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_CHANNEL": SLACK_CHANNEL,
        "SLACK_BASE_URL": slack.api_url,
    }


@pytest.fixture
def app(make_app, tmp_path: Path, receiver: Receiver, slack: FakeSlack):
    plan = tmp_path / "plan.toml"
    plan.write_text(plan_text(receiver, 0), encoding="utf-8")
    return make_app(PLAN=str(plan), **slack_settings(slack))


def test_one_thread_per_incident(app, tokens, slack):
    client = app.test_client()
    subscribe(client, tokens["admin"], [STAFF])
    first = announce(client, tokens["admin"], OUTAGE)
    drain(app)
    announce(
        client,
        tokens["admin"],
        OUTAGE,
        incident_id=first["incident_id"],
        title="Payments: cause found",
        status="identified",
    )
    drain(app)
    other = announce(client, tokens["admin"], OUTAGE, title="Portal slow")
    drain(app)
    posts = slack.posts()
    assert len(posts) == 3
    root, update, second_root = (p["body"] for p in posts)
    assert "thread_ts" not in root and "Payments down" in root["text"]
    # The update is a reply in the incident's thread; another incident starts its own.
    assert update["thread_ts"] == posts[0]["ts"] and "cause found" in update["text"]
    assert "thread_ts" not in second_root and "Portal slow" in second_root["text"]
    assert other["incident_id"] != first["incident_id"]
    assert all(p["unfurl_links"] is False for p in (root, update))


def test_an_approval_waiting_goes_in_the_thread(app, tokens, slack):
    client = app.test_client()
    subscribe(client, tokens["admin"], [STAFF])
    first = announce(client, tokens["admin"], OUTAGE)
    drain(app)
    waiting = announce(
        client, tokens["helpdesk"], OUTAGE, incident_id=first["incident_id"], title="Update"
    )
    assert waiting["state"] == "pending_approval"
    drain(app)
    root, notice = (p["body"] for p in slack.posts())
    assert notice["thread_ts"] == slack.posts()[0]["ts"]
    assert "Waiting for approval" in notice["text"] and "/admin/approvals#" in notice["text"]
    assert root["text"].count("&lt;") == 0  # nothing of ours needed escaping


def test_a_429_is_retried_later_and_posts_once(app, tokens, slack):
    client = app.test_client()
    subscribe(client, tokens["admin"], [STAFF])
    slack.fail_next(429, headers={"Retry-After": "0"}, body={"ok": False, "error": "ratelimited"})
    ann = announce(client, tokens["admin"], OUTAGE)
    drain(app)
    assert [r["answered"] for r in slack.requests] == [429, 200]
    staff = client.get(f"/api/v1/announcements/{ann['id']}", headers=tokens["admin"]).get_json()
    assert staff["staff"]["deliveries"]["webhook"]["sent"] == 3  # two targets and the thread


def test_without_a_bot_nothing_is_posted(make_app, tmp_path, receiver, tokens, slack):
    plan = tmp_path / "plan.toml"
    plan.write_text(plan_text(receiver, 0), encoding="utf-8")
    app = make_app(PLAN=str(plan))
    client = app.test_client()
    subscribe(client, tokens["admin"], [STAFF])
    announce(client, tokens["admin"], OUTAGE)
    drain(app)
    assert slack.requests == []


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (429, {"ok": False, "error": "ratelimited"}, TransientDeliveryError),
        (503, {"ok": False, "error": "service_unavailable"}, TransientDeliveryError),
        (200, {"ok": False, "error": "channel_not_found"}, PermanentDeliveryError),
        (200, {"ok": False, "error": "invalid_auth"}, PermanentDeliveryError),
        (200, {"ok": False, "error": "some_new_error"}, TransientDeliveryError),
    ],
)
def test_slack_errors_say_whether_to_retry(slack, status, body, error):
    threads = SlackThreads(slack_settings(slack))
    slack.fail_next(status, headers={"Retry-After": "7"}, body=body)
    with pytest.raises(error) as caught:
        threads.post("hello")
    assert body["error"] in caught.value.reason
    if status == 429:
        assert caught.value.retry_after == 7


@pytest.mark.parametrize(
    "settings",
    [{"SLACK_BOT_TOKEN": SLACK_TOKEN}, {"SLACK_CHANNEL": SLACK_CHANNEL}],
)
def test_half_a_slack_configuration_stops_start_up(settings, redis_server, tmp_path):
    with pytest.raises(ChannelConfigError, match="slack: BROADCASTER_SLACK_"):
        create_app({"REDIS_URL": redis_server.url, "DATA_DIR": str(tmp_path), **settings})
