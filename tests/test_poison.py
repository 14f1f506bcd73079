"""Poison tests across every surface (issue 14, point 5).

Hypothesis writes announcements and monitoring payloads from hostile alphabets (lone
surrogates, C0/C1 controls, bidi controls, stacked combining marks, emoji and other 4-byte
characters, zero-width joiners, 1,000-character words, HTML/JS, CRLF, NUL), sends them as raw
JSON through the public API and the monitoring hooks, and then reads every surface: the
status page and its feeds, the banner, every admin page, the incident, the brief, the
preview, and after the jobs ran the email (HTML and text), SMS and social posts as the fake
providers received them.

Accepted input renders everywhere with no 5xx; refused input answers the one JSON error
shape and stores nothing. Each example starts from the same Redis (tokens, users, a session and
one subscriber), so the example Hypothesis prints is the whole story.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import feedparser
import pytest

# --- Checks -----------------------------------------------------------------------------------


def strings(value: Any) -> list[str]:
    """Every string inside a JSON-like value (keys included)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings(k) + strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings(v)]
    return []


def clean_text(value: Any, where: str) -> None:
    """What left us for a person: valid UTF-8, no lone surrogate, no NUL."""
    for text in strings(value):
        text.encode("utf-8")  # raises on a lone surrogate
        assert "\x00" not in text, (where, text[:200])


def incidents(client, tokens) -> int:
    answer = client.get("/api/v1/incidents?per_page=1", headers=tokens["admin"])
    assert answer.status_code == 200
    return answer.get_json()["total"]


def assert_error_shape(answer) -> None:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.get_data()[:500])
    error = answer.get_json()
    assert error["code"] == answer.status_code, error
    assert isinstance(error.get("message"), str) and error["message"], error
    assert isinstance(error.get("status"), str), error


def ok(answer, where: str) -> Any:
    assert answer.status_code < 500, (where, answer.status_code, answer.get_data()[:2000])
    return answer


def check_public(client) -> None:
    for lang in ("en", "nl", "da", "sv"):
        ok(client.get(f"/status?lang={lang}"), "/status")
        banner = ok(client.get(f"/banner.json?lang={lang}&audience=consumers"), "/banner.json")
        clean_text(json.loads(banner.get_data(as_text=True)), "/banner.json")
    status_json = ok(client.get("/status.json"), "/status.json")
    assert status_json.status_code == 200
    json.loads(status_json.get_data(as_text=True))
    atom = ok(client.get("/status.atom"), "/status.atom")
    assert atom.status_code == 200
    ET.fromstring(atom.get_data())  # strict XML: a control character would break it
    feed = feedparser.parse(atom.get_data())
    assert not feed.bozo, feed.bozo_exception
    banner_js = ok(client.get("/banner.js"), "/banner.js")
    assert banner_js.status_code == 200


ADMIN_PAGES = [
    "/admin/",
    "/admin/incidents",
    "/admin/approvals",
    "/admin/monitoring",
    "/admin/audit",
    "/admin/compose",
    "/admin/subscribers",
    "/admin/users",
]


def check_admin(client, incident_id: str | None) -> None:
    pages = [*ADMIN_PAGES, *([f"/admin/incidents/{incident_id}"] if incident_id else [])]
    for page in pages:
        answer = ok(client.get(page), page)
        assert answer.status_code == 200, (page, answer.status_code)


def check_incident(client, tokens, incident_id: str, announcement_id: str) -> None:
    headers = tokens["admin"]
    incident = ok(client.get(f"/api/v1/incidents/{incident_id}", headers=headers), "incident")
    assert incident.status_code == 200
    # The brief answers 409 while nothing of the incident is published: no 5xx is the point.
    ok(client.get(f"/api/v1/incidents/{incident_id}/brief", headers=headers), "brief")
    preview = ok(
        client.get(f"/api/v1/announcements/{announcement_id}/preview", headers=headers), "preview"
    )
    assert preview.status_code == 200
    clean_text(preview.get_json(), "preview")


def check_sent(client, tokens, announcement_id: str, sent: dict[str, list]) -> None:
    """What the providers received and what the ledger kept: UTF-8, no surrogate, no NUL."""
    for where, records in sent.items():
        clean_text(records, where)
    answer = ok(
        client.get(
            f"/api/v1/announcements/{announcement_id}/deliveries?per_page=1000",
            headers=tokens["admin"],
        ),
        "deliveries",
    )
    assert answer.status_code == 200
    clean_text(answer.get_json()["items"], "deliveries")


# --- Fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def app(make_app, mastodon, bluesky):
    """The app with the social networks pointed at the fakes (not the outbox)."""
    return make_app(
        MASTODON_BASE_URL=mastodon.url,
        MASTODON_ACCESS_TOKEN=mastodon.TOKEN,
        BLUESKY_BASE_URL=bluesky.url,
        BLUESKY_HANDLE=bluesky.HANDLE,
        BLUESKY_APP_PASSWORD=bluesky.APP_PASSWORD,
    )


@pytest.fixture
def admin(app, client, tokens, people, signed_in, r):
    """A client signed in to the admin pages, with one subscriber in every audience.

    Call ``admin.fresh()`` at the start of each example: Redis goes back to just this (tokens,
    users, the session, the subscriber), so a minimal example does not lean on the poison an
    earlier example stored.
    """
    signed_in(client, people["admin"].email)
    person = {
        "external_id": "poisoned",
        "email": "poison@example.com",
        "phone": "+31612345678",
        "locale": "nl",
        "audiences": ["consumers", "business", "staff"],
    }
    answer = client.post("/api/v1/subscribers", json=[person], headers=tokens["admin"])
    assert not answer.get_json()["rejected"]
    snapshot = {key: r.dump(key) for key in r.scan_iter()}

    def fresh() -> None:
        r.flushdb()
        for key, value in snapshot.items():
            r.restore(key, 0, value, replace=True)

    client.fresh = fresh
    return client


class Sent:
    """What the fake providers hold beyond what they held when made."""

    def __init__(self, providers, mastodon, bluesky) -> None:
        self.sendgrid, self.twilio = providers
        self.mastodon, self.bluesky = mastodon, bluesky
        self.marks = self._counts()

    def _counts(self) -> tuple[int, ...]:
        return (
            len(self.sendgrid.requests),
            len(self.twilio.requests),
            len(self.mastodon.posts),
            len(self.bluesky.posts),
        )

    def new(self) -> dict[str, list]:
        sg, tw, ma, bs = self.marks
        return {
            "email (SendGrid: subject, text and HTML)": [
                r["json"] for r in self.sendgrid.requests[sg:]
            ],
            "sms (Twilio)": [r.get("form") for r in self.twilio.requests[tw:]],
            "mastodon": self.mastodon.posts[ma:],
            "bluesky": [p["value"] for p in self.bluesky.posts[bs:]],
        }


# --- Regressions: each failure these tests found ------------------------------------------


def send(client, tokens, source: str, payload: dict[str, Any]):
    """POST as ASCII JSON: a lone surrogate travels as the escape ``\\ud800``."""
    return client.post(
        f"/hooks/{source}",
        data=json.dumps(payload),
        headers={**tokens["monitor"], "Content-Type": "application/json"},
    )


def alertmanager_payload(**alert: Any) -> dict[str, Any]:
    labels = {"alertname": "PaymentsDown", "severity": "critical", "service": "payments"}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="PaymentsDown"}',
        "status": "firing",
        "commonLabels": labels,
        "commonAnnotations": {"summary": "Payment API errors"},
        "alerts": [{"status": "firing", "labels": labels, "fingerprint": "c0ffee01", **alert}],
    }


def test_a_lone_surrogate_in_a_generic_key_opens_one_incident(admin, tokens):
    """Was a 500: the group key was hashed as UTF-8 (hooks/alerts.py, Processor.handle)."""
    payload = {"key": "\ud800", "status": "firing", "title": "0", "severity": "major"}
    first = send(admin, tokens, "generic", payload)
    assert first.status_code == 200, first.get_data()
    again = send(admin, tokens, "generic", payload).get_json()
    assert again["outcome"] == "repeat: nothing sent"
    other = send(admin, tokens, "generic", {**payload, "key": "\udc00"}).get_json()
    assert other["incident_id"] != again["incident_id"], "two keys stay two groups"
    check_admin(admin, first.get_json()["incident_id"])


def test_a_lone_surrogate_in_an_alert_fingerprint_is_kept_as_text(admin, tokens):
    """Was a 500: the fingerprints went into a Redis hash as they came."""
    answer = send(admin, tokens, "alertmanager", alertmanager_payload(fingerprint="\ud800"))
    assert answer.status_code == 200, answer.get_data()
    assert answer.get_json()["state"] == "published"
    incident = admin.get(
        f"/api/v1/incidents/{answer.get_json()['incident_id']}", headers=tokens["admin"]
    ).get_json()
    assert incident["monitoring"][0]["alerts"] == ["\\ud800"]
    check_admin(admin, incident["id"])


def test_a_refused_alert_naming_a_lone_surrogate_leaves_the_monitoring_page_up(admin, tokens):
    """Was a 500 on /admin/monitoring, for good: the refusal quoted the key into the log."""
    payload = {"key": "k", "status": "firing", "title": "t", "labels": {"\ud800": 1}}
    answer = send(admin, tokens, "generic", payload)
    assert answer.status_code == 400
    assert admin.get("/admin/monitoring").status_code == 200
    events = admin.get("/api/v1/hooks/events", headers=tokens["admin"])
    assert events.status_code == 200
    assert "\\\\ud800" in events.get_data(as_text=True)  # shown as text, not a surrogate
    clean_text(events.get_json(), "hook events")


@pytest.mark.parametrize(
    "starts_at", ["9999-12-31T23:59:00-12:00", "9999-12-31T23:59:59Z", "1000-01-01T00:00:00Z"]
)
def test_an_alert_start_out_of_range_counts_as_now(admin, tokens, starts_at):
    """Was a 500 (OverflowError in Babel): the holding statement printed the start time."""
    answer = send(admin, tokens, "alertmanager", alertmanager_payload(startsAt=starts_at))
    assert answer.status_code == 200, answer.get_data()
    assert answer.get_json()["state"] == "published"
    incident = admin.get(
        f"/api/v1/incidents/{answer.get_json()['incident_id']}", headers=tokens["admin"]
    ).get_json()
    assert starts_at[:4] not in incident["timeline"][0]["body"]
    check_public(admin)
