"""A promise kept (issue 16): "Next update by" from Compose, in every channel, counted down on
the Now page, a reminder to the team when it passes with no update, and gone once resolved.

Through the real app, real RQ workers running RQ's scheduler (``drain`` waits for reminders
that fall due while it runs), the SendGrid SDK against the fake SendGrid, and a webhook
receiver on 127.0.0.1 for the staff channel.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from broadcaster.delivery.queues import PROMISE_QUEUE, queue
from broadcaster.domain.audit import AUDIT_KEY
from broadcaster.domain.plan import PlanError, parse_plan
from broadcaster.domain.tokens import create_token
from broadcaster.rendering.clock import format_time, iso
from broadcaster.rendering.countdown import remaining
from broadcaster.rendering.i18n import gettext_for
from broadcaster.web.admin import promise_input
from tests.helpers import announce, drain, publish, subscribe
from tests.test_webhook import SECRET, Answer, Receiver

TZ = "Europe/Amsterdam"
AMS = ZoneInfo(TZ)
LOCALES = ("en", "nl", "da", "sv")

PLAN = """
[organisation]
name = "Acme Energy"
locales = ["en", "nl", "da", "sv"]
timezone = "Europe/Amsterdam"

[policy]
approval_required = ["major", "critical"]
next_update_minutes = 45

[channels_by_severity]
info = ["banner"]
minor = ["banner", "email"]
major = ["banner", "email"]
critical = ["banner", "email"]

[audiences.consumers]
channels = ["email", "banner"]

[audiences.staff]
internal = true
channels = ["email", "webhook"]

[[webhooks]]
name = "staff-hook"
url = "{url}/staff"
secret = "{secret}"
allow_private = true  # the receiver listens on 127.0.0.1
audiences = ["staff"]
"""

TRANSLATIONS = {
    "nl": {"title": "Stroomstoring", "body": "Geen stroom in Noord."},
    "da": {"title": "Strømsvigt", "body": "Ingen strøm i Noord."},
    "sv": {"title": "Strömavbrott", "body": "Ingen ström i Noord."},
}
OUTAGE = {
    "title": "Power outage",
    "body": "No power in Noord.",
    "severity": "minor",
    "status": "investigating",
    "audiences": ["consumers"],
    "channels": ["email", "banner"],
    "translations": TRANSLATIONS,
}
OVERDUE = "Overdue: the update promised by"


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def app(make_app: Callable[..., Flask], tmp_path: Path, receiver: Receiver) -> Flask:
    path = tmp_path / "plan.toml"
    path.write_text(PLAN.format(url=receiver.url, secret=SECRET), encoding="utf-8")
    return make_app(PLAN=str(path))


def in_seconds(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def two_days_at_three() -> datetime:
    """15:00 in the plan's zone two days ahead."""
    return datetime.combine(datetime.now(AMS).date() + timedelta(days=2), dt_time(15, 0), AMS)


def reminders(sendgrid: Any) -> dict[str, dict[str, Any]]:
    """Reminder emails accepted by the fake SendGrid, by recipient."""
    return {to: payload for to, payload in sendgrid.accepted() if OVERDUE in payload["subject"]}


def audited(r: Any, action: str) -> list[dict[str, Any]]:
    entries = [{k.decode(): v.decode() for k, v in f.items()} for _, f in r.xrange(AUDIT_KEY)]
    return [dict(e, details=json.loads(e["details"])) for e in entries if e["action"] == action]


def wait_until(ts: float) -> None:
    """Wait for a moment in time to pass (the event the test is about), not for a duration."""
    while time.time() <= ts:
        time.sleep(0.05)


def user_tokens(r: Any, people: dict[str, Any]) -> dict[str, dict[str, str]]:
    """API tokens held by people with accounts (so the reminder can find their email)."""
    return {
        key: {
            "Authorization": f"Bearer {create_token(r, f'{key}-token', user.role, user=user.email)}"
        }
        for key, user in people.items()
    }


# --- Compose: the field, its default and its round trip ------------------------------------


def test_compose_proposes_the_plans_next_update_in_the_plans_zone(
    client: FlaskClient, people: dict[str, Any], signed_in: Callable[..., str]
) -> None:
    signed_in(client, people["admin"].email)
    before = time.time()
    html = client.get("/admin/compose").get_data(as_text=True)
    field = re.search(r'<input[^>]*name="next_update_at"[^>]*>', html)
    assert field, "no Next update by field"
    assert 'type="datetime-local"' in field.group(0)
    value = re.search(r'value="([^"]+)"', field.group(0)).group(1)
    proposed = datetime.fromisoformat(value).replace(tzinfo=AMS).timestamp()
    # policy.next_update_minutes = 45, on a whole five minutes.
    assert before + 45 * 60 <= proposed <= time.time() + 50 * 60
    assert datetime.fromtimestamp(proposed, AMS).minute % 5 == 0
    assert "Central European Time" in html  # the zone the field means, named


def test_compose_stores_the_promise_it_was_given(
    client: FlaskClient,
    tokens: dict[str, dict[str, str]],
    people: dict[str, Any],
    signed_in: Callable[..., str],
) -> None:
    token = signed_in(client, people["admin"].email)
    when = two_days_at_three()
    answer = client.post(
        "/admin/compose",
        data={
            "csrf_token": token,
            "title": "Power outage",
            "body": "No power in Noord.",
            "severity": "minor",
            "status": "investigating",
            "audiences": ["consumers"],
            "channels": ["banner"],
            "next_update_at": when.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)
    incident_id = answer.headers["Location"].rsplit("/", 1)[-1]
    incident = client.get(f"/api/v1/incidents/{incident_id}", headers=tokens["admin"]).get_json()
    announcement_id = incident["timeline"][0]["id"]
    stored = client.get(f"/api/v1/announcements/{announcement_id}", headers=tokens["admin"])
    # 15:00 in Amsterdam, whatever zone the test machine is in.
    assert stored.get_json()["next_update_at"] == when.timestamp()


@pytest.mark.parametrize(
    ("value", "status", "says"),
    [
        ("tomorrow at ten", "investigating", "Enter a date and time"),
        ("2026-02-30T10:00", "investigating", "is not a date and time that exists"),
        ("2020-01-01T10:00", "investigating", "Pick a time between now and 30 days ahead."),
        # The clocks jump from 02:00 to 03:00 in Amsterdam that night.
        ("2027-03-28T02:30", "investigating", "does not exist in Europe/Amsterdam"),
        (None, "resolved", "a resolution promises no next update"),
    ],
)
def test_compose_refuses_a_bad_promise_next_to_the_field(
    client: FlaskClient,
    people: dict[str, Any],
    signed_in: Callable[..., str],
    value: str | None,
    status: str,
    says: str,
) -> None:
    token = signed_in(client, people["admin"].email)
    promised = value or two_days_at_three().strftime("%Y-%m-%dT%H:%M")
    answer = client.post(
        "/admin/compose",
        data={
            "csrf_token": token,
            "title": "Power outage",
            "body": "No power in Noord.",
            "severity": "minor",
            "status": status,
            "audiences": ["consumers"],
            "channels": ["banner"],
            "next_update_at": promised,
        },
    )
    assert answer.status_code == 422
    html = answer.get_data(as_text=True)
    assert re.search(r'id="next_update_at-error">[^<]*' + re.escape(says), html), html[-3000:]
    assert f'value="{promised}"' in html  # what was typed stays, to be corrected


def test_the_api_refuses_a_promise_on_a_resolution(
    client: FlaskClient, tokens: dict[str, dict[str, str]]
) -> None:
    answer = client.post(
        "/api/v1/announcements",
        json={**OUTAGE, "status": "resolved", "next_update_at": in_seconds(3600)},
        headers=tokens["admin"],
    )
    assert answer.status_code == 422
    assert "resolution promises no next update" in answer.get_json()["errors"]["next_update_at"][0]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_typed_promise_is_a_zoned_time_or_a_plain_refusal(value: str) -> None:
    try:
        when = promise_input.parse(value, TZ)
    except ValueError as exc:
        assert str(exc)
    else:
        assert when.tzinfo is not None
        assert when.strftime("%Y-%m-%dT%H:%M") == value.strip()[:16]


def test_a_plan_names_a_bad_next_update_default() -> None:
    data = {
        "organisation": {"name": "Acme"},
        "policy": {"next_update_minutes": -5},
        "audiences": {"consumers": {}},
    }
    with pytest.raises(PlanError, match=r"plan\.toml: policy\.next_update_minutes: must be"):
        parse_plan(data, "plan.toml")


# --- Every channel: email, status page, brief ----------------------------------------------


def test_the_promise_is_in_email_status_page_and_brief_in_every_language(
    app: Flask, client: FlaskClient, tokens: dict[str, dict[str, str]], providers: Any
) -> None:
    sendgrid, _ = providers
    subscribe(
        client,
        tokens["admin"],
        [
            {
                "external_id": loc,
                "email": f"{loc}@example.com",
                "locale": loc,
                "audiences": ["consumers"],
            }
            for loc in LOCALES
        ],
    )
    when = two_days_at_three()
    created = publish(client, tokens, OUTAGE, next_update_at=when.isoformat())
    drain(app)
    mails = {to.split("@")[0]: payload for to, payload in sendgrid.accepted()}
    brief = client.get(
        f"/api/v1/incidents/{created['incident_id']}/brief", headers=tokens["helpdesk"]
    ).get_json()
    assert brief["next_update_at"] == iso(when.timestamp())
    replies = {reply["locale"]: reply["text"] for reply in brief["replies"]}
    for locale in LOCALES:
        _ = gettext_for(locale)
        promised = format_time(when.timestamp(), locale, TZ)
        parts = {c["type"]: c["value"] for c in mails[locale]["content"]}
        for text in parts.values():
            assert f"{_('Next update by')}: {promised}" in text, (locale, text)
        html = client.get(f"/status?lang={locale}").get_data(as_text=True)
        assert _("Next update by") in html
        assert f'<time datetime="{iso(when.timestamp())}">{promised}</time>' in html, locale
        assert promised in replies[locale], (locale, replies[locale])
    status = client.get("/status.json").get_json()
    assert status["open"][0]["next_update_at"] == iso(when.timestamp())


# --- The reminder --------------------------------------------------------------------------


def test_an_overdue_promise_reminds_its_author_and_approver_once(
    app: Flask,
    client: FlaskClient,
    r: Any,
    people: dict[str, Any],
    providers: Any,
    receiver: Receiver,
) -> None:
    sendgrid, _ = providers
    held = user_tokens(r, people)
    # major: written by the helpdesk, approved by a second person.
    created = announce(
        client, held["helpdesk"], OUTAGE, severity="major", next_update_at=in_seconds(2)
    )
    approved = client.post(
        f"/api/v1/announcements/{created['id']}/approve", headers=held["approver"]
    )
    assert approved.status_code == 200, approved.get_json()
    drain(app)  # runs the reminder when it falls due
    sent = reminders(sendgrid)
    assert set(sent) == {people["helpdesk"].email, people["approver"].email}
    text = next(c["value"] for c in sent[people["approver"].email]["content"])
    assert "Power outage" in text and f"incident_id={created['incident_id']}" in text
    assert receiver.requests == []  # everyone had an address: the staff hook stays quiet
    (entry,) = audited(r, "promise.overdue")
    assert entry["announcement_id"] == created["id"]
    assert sorted(entry["details"]["reminded"]) == sorted(sent)
    drain(app)  # nothing left to run: no second reminder
    assert len(sendgrid.accepted()) == 2


def test_a_promise_by_a_token_without_a_person_reminds_the_staff_webhook(
    app: Flask, client: FlaskClient, tokens: dict[str, dict[str, str]], receiver: Receiver
) -> None:
    created = publish(client, tokens, OUTAGE, next_update_at=in_seconds(2))
    drain(app)
    staff = [req for req in receiver.requests if req["path"] == "/staff"]
    assert len(staff) == 1, receiver.requests
    assert staff[0]["verified"]
    body = json.loads(staff[0]["raw"])
    assert body["type"] == "promise.overdue"
    assert body["announcement"]["announcement_id"] == created["id"]
    assert body["link"].endswith(f"/admin/compose?incident_id={created['incident_id']}")


def test_a_running_worker_started_after_the_promise_still_reminds(
    app: Flask,
    client: FlaskClient,
    r: Any,
    redis_server: Any,
    people: dict[str, Any],
    providers: Any,
    tmp_path: Path,
) -> None:
    """The reminder waits in Redis, not in a process: a ``python worker.py`` started later
    (its RQ scheduler in its own process, as in production) sends it when it falls due."""
    from tests.processes import wait_for
    from tests.workers import Workers, worker_env

    sendgrid, twilio = providers
    held = user_tokens(r, people)
    created = announce(client, held["admin"], OUTAGE, next_update_at=in_seconds(2))
    env = worker_env(
        redis_server.url, sendgrid, twilio, tmp_path / "data", BROADCASTER_PLAN=app.config["PLAN"]
    )
    workers = Workers(env, tmp_path).start(r, 1)
    try:
        sent = wait_for(lambda: reminders(sendgrid), timeout=60, what="the overdue reminder")
    finally:
        workers.stop()
    assert list(sent) == [people["admin"].email], workers.logs()
    (entry,) = audited(r, "promise.overdue")
    assert entry["announcement_id"] == created["id"]


def test_a_reminder_the_staff_hook_refuses_is_audited_with_the_reason(
    app: Flask, client: FlaskClient, tokens: dict[str, dict[str, str]], receiver: Receiver, r: Any
) -> None:
    receiver.answers.append(Answer(404, {}, b"no such hook"))
    created = publish(client, tokens, OUTAGE, next_update_at=in_seconds(2))
    drain(app)  # a permanent refusal: recorded, not retried
    (entry,) = audited(r, "promise.overdue")
    assert entry["announcement_id"] == created["id"]
    assert entry["details"]["reminded"] == []
    assert "staff-hook" in entry["details"]["failed"][0]
    assert "404" in entry["details"]["failed"][0]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'broadcaster_promises_overdue_total{outcome="nobody"} 1' in metrics


def test_the_reminder_is_scheduled_with_the_publication_and_only_then(
    app: Flask, client: FlaskClient, tokens: dict[str, dict[str, str]], r: Any
) -> None:
    """Stored in Redis with the announcement (one transaction), for the promised second."""
    scheduled = ScheduledJobRegistry(queue=queue(r, PROMISE_QUEUE), serializer=JSONSerializer)
    when = two_days_at_three()
    # major, by the helpdesk: waits for approval, promises nothing to anyone yet.
    created = announce(
        client, tokens["helpdesk"], OUTAGE, severity="major", next_update_at=when.isoformat()
    )
    assert scheduled.get_job_ids() == []
    approved = client.post(
        f"/api/v1/announcements/{created['id']}/approve", headers=tokens["approver"]
    )
    assert approved.status_code == 200, approved.get_json()
    assert scheduled.get_job_ids() == [f"promise-{created['id']}"]
    assert r.zscore(scheduled.key, f"promise-{created['id']}") == when.timestamp()
    refused = client.post(
        "/api/v1/announcements",
        json={**OUTAGE, "next_update_at": "2020-01-01T00:00:00Z"},
        headers=tokens["admin"],
    )
    assert refused.status_code == 422
    assert len(scheduled.get_job_ids()) == 1


def test_no_reminder_when_an_update_came_first(
    app: Flask, client: FlaskClient, tokens: dict[str, dict[str, str]], receiver: Receiver, r: Any
) -> None:
    due = time.time() + 2
    created = publish(client, tokens, OUTAGE, next_update_at=in_seconds(2))
    publish(
        client,
        tokens,
        OUTAGE,
        incident_id=created["incident_id"],
        body="Power is back in half of Noord.",
        next_update_at=in_seconds(3600),
    )
    wait_until(due)
    drain(app)
    assert receiver.requests == []
    assert audited(r, "promise.overdue") == []


def test_no_reminder_and_no_promise_anywhere_once_resolved(
    app: Flask,
    client: FlaskClient,
    tokens: dict[str, dict[str, str]],
    receiver: Receiver,
    r: Any,
    people: dict[str, Any],
    signed_in: Callable[..., str],
) -> None:
    due = time.time() + 2
    created = publish(client, tokens, OUTAGE, next_update_at=in_seconds(2))
    incident_id = created["incident_id"]
    publish(
        client, tokens, OUTAGE, incident_id=incident_id, status="resolved", body="Power is back."
    )
    wait_until(due)
    drain(app)
    assert receiver.requests == []
    assert audited(r, "promise.overdue") == []
    brief = client.get(f"/api/v1/incidents/{incident_id}/brief", headers=tokens["helpdesk"])
    assert brief.get_json()["next_update_at"] is None
    for locale in LOCALES:
        _ = gettext_for(locale)
        assert _("Next update by") not in client.get(f"/status?lang={locale}").get_data(
            as_text=True
        )
    assert all(
        i["next_update_at"] is None for i in client.get("/status.json").get_json()["resolved"]
    )
    for banner in client.get("/banner.json").get_json()["banners"]:  # the all-clear
        assert not banner.get("next_update_at"), banner
    signed_in(client, people["admin"].email)
    page = client.get(f"/admin/incidents/{incident_id}").get_data(as_text=True)
    assert "promised by" not in page and "countdown" not in page
    assert "countdown" not in client.get("/admin/").get_data(as_text=True)


# --- The Now page --------------------------------------------------------------------------


def test_the_now_page_counts_down_then_shows_the_promise_overdue(
    app: Flask,
    client: FlaskClient,
    tokens: dict[str, dict[str, str]],
    people: dict[str, Any],
    signed_in: Callable[..., str],
) -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    publish(client, tokens, OUTAGE, next_update_at=later.isoformat())
    due = time.time() + 1
    soon = publish(client, tokens, {**OUTAGE, "title": "Gas leak"}, next_update_at=in_seconds(1))
    signed_in(client, people["helpdesk"].email)
    html = client.get("/admin/").get_data(as_text=True)
    assert 'src="/admin/static/countdown.js' in html and "<script>" not in html
    counting = re.search(
        rf'<time class="countdown" datetime="{iso(later.timestamp())}">'
        r"in (1 h 5\d|2 h 0) min</time>",
        html,
    )
    assert counting, html
    wait_until(due)
    html = client.get("/admin/").get_data(as_text=True)
    overdue = re.search(
        rf'<span class="promise overdue" data-incident="{soon["incident_id"]}">.*?'
        r'<time class="countdown overdue" datetime="[^"]+">(overdue|\d+ min overdue)</time>',
        html,
        re.S,
    )
    assert overdue, html
    assert html.count("promise overdue") == 1  # the other promise still counts down
    page = client.get(f"/admin/incidents/{soon['incident_id']}").get_data(as_text=True)
    assert re.search(r'class="meta promise overdue">.*?countdown overdue', page, re.S), page
    assert 'src="/admin/static/countdown.js' in page


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (30, "in less than a minute"),
        (60, "in 1 min"),
        (61, "in 2 min"),
        (3600 + 5 * 60, "in 1 h 5 min"),
        (0, "overdue"),
        (-59, "overdue"),
        (-60, "1 min overdue"),
        (-(2 * 3600 + 60), "2 h 1 min overdue"),
    ],
)
def test_countdown_words(seconds: float, words: str) -> None:
    assert remaining(1_000_000 + seconds, now=1_000_000) == words


def test_the_countdown_script_writes_the_same_words_as_the_server() -> None:
    """countdown.js's ``remaining`` run in Chromium, against rendering/countdown.py's."""
    from tests.browser import launch, skip_without_chromium

    skip_without_chromium()
    script = (Path(__file__).parent.parent / "broadcaster/static/admin/countdown.js").read_text()
    function = re.search(r"  function remaining\(deadline, now\) \{.*?\n  \}", script, re.S)
    assert function, "countdown.js has no remaining(deadline, now)"
    offsets = [s for s in range(-7300, 7300, 7)] + [0, 1, 59, 60, 61, -59, -60, -61, 3600]
    now = 1_796_000_000
    with contextmanager(launch)() as browser:
        page = browser.new_page()
        words = page.evaluate(
            f"(args) => {{ {function.group(0)}; "
            "return args.offsets.map(function (s) { return remaining((args.now + s) * 1000, "
            "args.now * 1000); }); }",
            {"offsets": offsets, "now": now},
        )
    assert words == [remaining(now + s, now=now) for s in offsets]


def test_a_holding_statement_promises_the_time_its_text_names(
    make_app: Callable[..., Flask], tokens: dict[str, dict[str, str]]
) -> None:
    from tests.test_clock import alert

    client = make_app().test_client()  # the example plan: "will update you by {next_update}"
    before = time.time()
    started = datetime.now(UTC) - timedelta(minutes=5)
    answer = client.post("/hooks/alertmanager", json=alert(started), headers=tokens["monitor"])
    created = answer.get_json()
    assert created["state"] == "published", created
    stored = client.get(
        f"/api/v1/announcements/{created['announcement_id']}", headers=tokens["admin"]
    ).get_json()
    promised = stored["next_update_at"]
    assert before + 30 * 60 <= promised <= time.time() + 30 * 60  # update_interval_minutes
    assert f"update you by {format_time(promised, 'en', TZ)}" in stored["body"]
    for locale, words in stored["translations"].items():
        assert format_time(promised, locale, TZ) in words["body"], locale


# --- In the browser: the countdown ticks over to overdue; a resolution empties the field ---


@pytest.fixture
def live(make_app: Callable[..., Flask], tmp_path: Path, receiver: Receiver):
    """The app over real HTTP (threaded) for a headless Chromium."""
    from tests.browser import serve, skip_without_chromium, stop

    skip_without_chromium()
    path = tmp_path / "plan.toml"
    path.write_text(PLAN.format(url=receiver.url, secret=SECRET), encoding="utf-8")
    holder: dict[str, Flask] = {}
    server, thread = serve(lambda e, s: holder["app"](e, s))
    url = f"http://127.0.0.1:{server.port}"
    holder["app"] = make_app(PUBLIC_URL=url, PLAN=str(path))
    yield url, holder["app"]
    stop(server, thread)


def test_in_the_browser_the_countdown_turns_overdue_and_resolved_empties_the_promise(
    live: tuple[str, Flask], people: dict[str, Any], tokens: dict[str, dict[str, str]]
) -> None:
    from playwright.sync_api import expect

    from tests.browser import launch
    from tests.conftest import PASSWORD

    url, app = live
    client = app.test_client()
    publish(client, tokens, OUTAGE, next_update_at=in_seconds(2))
    with contextmanager(launch)() as browser:
        page = browser.new_context(locale="en-US").new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "console", lambda m: errors.append(m.text) if "Content Security" in m.text else None
        )
        page.goto(f"{url}/admin/signin")
        page.get_by_label("Email").fill(people["helpdesk"].email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        countdown = page.locator("time.countdown")
        expect(countdown).to_have_text(re.compile(r"in less than a minute|overdue"))
        # No reload: countdown.js notices the time passing.
        expect(countdown).to_have_text("overdue", timeout=15_000)
        expect(page.locator(".promise")).to_have_class(re.compile(r"\boverdue\b"))
        expect(page.locator(".promise .overdue-label")).to_be_visible()

        page.goto(f"{url}/admin/compose")
        field = page.get_by_label("Next update by")
        proposed = field.input_value()
        assert proposed
        # The live preview shows the promise as customers will read it.
        page.get_by_label("Title", exact=True).fill("Power outage")
        page.get_by_label("Message", exact=True).fill("No power in Noord.")
        page.locator("input[name=audiences][value=consumers]").check()
        shown = format_time(
            datetime.fromisoformat(proposed).replace(tzinfo=AMS).timestamp(), "en", TZ
        )
        renderings = page.locator("#preview-renderings")
        expect(renderings).to_contain_text(f"Next update by: {shown}")
        page.get_by_label("Status").select_option("resolved")
        expect(field).to_have_value("")
        expect(field).to_be_disabled()
        expect(renderings).not_to_contain_text("Next update by")
        page.get_by_label("Status").select_option("monitoring")
        expect(field).to_have_value(proposed)
        expect(renderings).to_contain_text(f"Next update by: {shown}")
        assert errors == [], errors
