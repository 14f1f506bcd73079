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
import os
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import feedparser
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from broadcaster.domain import text_policy
from broadcaster.domain.text_policy import BLOCK, LINE
from tests.helpers import drain
from tests.test_hostile import PAYLOADS

POISON = settings(
    database=None,
    deadline=None,
    # POISON_EXAMPLES=500 for a long hunt; the default keeps the file near a minute.
    max_examples=int(os.environ.get("POISON_EXAMPLES", "30")),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- Hostile alphabets ----------------------------------------------------------------------

surrogates = st.integers(0xD800, 0xDFFF).map(chr)
c0 = st.integers(0x00, 0x1F).map(chr)
c1 = st.integers(0x7F, 0x9F).map(chr)
bidi = st.sampled_from([chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))])
combining = st.lists(st.integers(0x0300, 0x036F).map(chr), min_size=1, max_size=40).map(
    lambda marks: "e" + "".join(marks)  # stacked ("Zalgo") on one base letter
)
astral = st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF)
emoji = st.sampled_from(
    ["😀", "👩\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "🇳🇱", "👍🏽", "𝕏", "𠜎", "\U0001f9ff"]
)
zero_width = st.sampled_from(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"])
line_breaks = st.sampled_from(["\r\n", "\r", "\n", "\u2028", "\u2029", "\x85", "\n\r\n\r"])
long_word = st.builds(
    lambda n, ch: ch * n, st.integers(1000, 3000), st.sampled_from(["x", "é", "😀", "ж"])
)
payloads = st.sampled_from(
    [
        *PAYLOADS,
        "]]></title><entry>",
        "</script><script>alert(1)</script>",
        "\\u2028\\u2029",
        "${7*7}%s%n%x{0}",
        "&amp;&lt;&#0;&#xD800;",
    ]
)
chunk = st.one_of(
    st.text(max_size=20),
    surrogates,
    c0,
    c1,
    bidi,
    combining,
    astral,
    emoji,
    zero_width,
    line_breaks,
    st.just("\x00"),
    payloads,
)
hostile = st.lists(chunk, min_size=1, max_size=12).map("".join)
hostile_with_long = st.one_of(
    hostile, st.builds(lambda a, w, b: a + w + b, hostile, long_word, hostile)
)


def cleaned(kind: str, **limits: int) -> Any:
    """Hostile text cleaned to the policy: what the API must accept and render everywhere."""
    raw = hostile_with_long if kind == BLOCK else hostile
    return raw.map(lambda t: text_policy.clean(t, kind, **limits) or "x")


clean_titles = cleaned(LINE, max_chars=200)
clean_bodies = cleaned(BLOCK, max_bytes=20_000)
titles = st.one_of(hostile, clean_titles)
bodies = st.one_of(hostile_with_long, clean_bodies)

OFFSETS = [
    UTC,
    timezone(timedelta(hours=14)),
    timezone(-timedelta(hours=12)),
    timezone(timedelta(minutes=330)),
]
wide_dates = st.builds(
    lambda d, tz: d.replace(tzinfo=tz).isoformat(),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59)),
    st.sampled_from(OFFSETS),
)
soon = st.integers(0, 29 * 24 * 60).map(
    lambda minutes: (datetime.now(UTC) + timedelta(minutes=minutes + 5)).isoformat()
)
junk_dates = st.one_of(
    hostile,
    st.sampled_from(
        [
            "",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59-12:00",
            "0001-01-01T00:00:00+14:00",
            "2026-02-30T10:00:00Z",
            "2026-11-23T25:00:00Z",
            "2026-11-23",
            "2026-11-23T10:00:00",  # naive
            "1e308",
            "NaN",
            "-1",
            "T",
        ]
    ),
)
next_updates = st.one_of(st.none(), soon, wide_dates, junk_dates, st.integers(-(2**63), 2**63))

LOCALES = ["nl", "da", "sv"]
CHANNELS = ["banner", "email", "sms", "social", "webhook"]


@st.composite
def announcements(draw: st.DrawFn) -> dict[str, Any]:
    """Half the time clean enough to be accepted (the surfaces must render it), else poison."""
    accept = draw(st.booleans())
    title, body = (clean_titles, clean_bodies) if accept else (titles, bodies)
    locales = st.sampled_from(LOCALES)
    if not accept:
        locales = st.one_of(locales, st.sampled_from(["xx", "en-GB", ""]), hostile)
    announcement: dict[str, Any] = {
        "title": draw(title),
        "body": draw(body),
        "severity": draw(st.sampled_from(["info", "minor", "major", "critical"])),
        "status": draw(st.sampled_from(["investigating", "identified", "monitoring", "resolved"])),
        "audiences": draw(
            st.sampled_from([["consumers"], ["consumers", "business"], ["consumers", "staff"]])
        ),
        "channels": draw(st.lists(st.sampled_from(CHANNELS), min_size=1, unique=True)),
    }
    if draw(st.booleans()):
        words = st.fixed_dictionaries({"title": title, "body": body})
        announcement["translations"] = draw(st.dictionaries(locales, words, max_size=3))
    if not accept:  # made-up references: refused (422), never looked up as they come
        for field in ("incident_id", "corrects"):
            if draw(st.integers(0, 4)) == 0:
                announcement[field] = draw(st.one_of(hostile, hostile.map("inc_".__add__)))
    promise = draw(st.one_of(st.none(), soon) if accept else next_updates)
    if promise is not None:
        announcement["next_update_at"] = promise
    return announcement


def raw_json(payload: Any, wire: str) -> bytes:
    """The payload as the bytes a client would send.

    ``escaped``: ASCII JSON, so a lone surrogate travels as ``\\ud800``; ``utf8``: UTF-8 with
    surrogates written as the (invalid) three bytes they would take; ``escaped`` is the
    likelier one from real clients, ``utf8`` what a sloppy encoder sends.
    """
    if wire == "escaped":
        return json.dumps(payload).encode()
    return json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass")


wires = st.sampled_from(["escaped", "utf8"])

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


# --- The API ----------------------------------------------------------------------------------


@given(announcement=announcements(), wire=wires)
@POISON
def test_poisoned_announcements_render_everywhere_or_store_nothing(
    app, admin, tokens, providers, mastodon, bluesky, announcement, wire
):
    note(f"announcement={announcement!r}, wire={wire!r}")
    client = admin
    client.fresh()
    before = incidents(client, tokens)
    sent = Sent(providers, mastodon, bluesky)
    answer = client.post(
        "/api/v1/announcements",
        data=raw_json(announcement, wire),
        headers={**tokens["admin"], "Content-Type": "application/json"},
    )
    assert answer.status_code < 500, answer.get_data()[:2000]
    event(f"answer {answer.status_code}")
    if answer.status_code >= 400:
        assert_error_shape(answer)
        assert incidents(client, tokens) == before, "a refused announcement was stored"
        check_public(client)
        return
    assert answer.status_code == 202, answer.get_json()
    created = answer.get_json()
    assert incidents(client, tokens) == before + 1
    if created["state"] == "pending_approval":
        check_admin(client, created["incident_id"])  # waiting for approval: shown there too
        approved = client.post(
            f"/api/v1/announcements/{created['id']}/approve", headers=tokens["approver2"]
        )
        assert approved.status_code == 200, approved.get_data()[:2000]
    drain(app)
    check_public(client)
    check_admin(client, created["incident_id"])
    check_incident(client, tokens, created["incident_id"], created["id"])
    check_sent(client, tokens, created["id"], sent.new())


# --- Monitoring hooks -------------------------------------------------------------------------

labels = st.dictionaries(
    st.one_of(st.sampled_from(["service", "alertname", "job", "instance"]), hostile),
    st.one_of(titles, hostile),
    max_size=4,
)
# These labels meet the example plan's rules: a published holding statement (payments) or a
# draft for staff (any critical or major alert) that a person approves.
rule_labels = st.sampled_from(
    [
        {},
        {"severity": "critical", "service": "payments"},
        {"severity": "major"},
        {"severity": "critical"},
    ]
)


@st.composite
def generic_payloads(draw: st.DrawFn) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "key": draw(hostile),
        "status": "firing",
        "title": draw(st.one_of(titles, hostile)),
        "labels": {**draw(labels), **draw(rule_labels)},
    }
    if draw(st.booleans()):
        payload["summary"] = draw(st.one_of(bodies, hostile_with_long))
    severity = draw(st.sampled_from([None, "info", "minor", "major", "critical", "bogus"]))
    if severity:
        payload["severity"] = severity
    return payload


@st.composite
def alertmanager_payloads(draw: st.DrawFn) -> dict[str, Any]:
    common = {**draw(labels), **draw(rule_labels)}
    alert_labels = {**common, **draw(labels)}
    alert = {
        "status": "firing",
        "labels": alert_labels,
        "annotations": {"summary": draw(st.one_of(bodies, hostile)), "description": draw(hostile)},
        "startsAt": draw(st.one_of(wide_dates, junk_dates)),
        "endsAt": draw(st.one_of(st.just("0001-01-01T00:00:00Z"), wide_dates, junk_dates)),
        "generatorURL": draw(hostile),
        "fingerprint": draw(st.one_of(st.none(), hostile)),
    }
    if alert["fingerprint"] is None:
        del alert["fingerprint"]
    payload = {
        "version": "4",
        "groupKey": draw(hostile),
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": draw(hostile),
        "groupLabels": {k: v for k, v in common.items() if k == "alertname"},
        "commonLabels": common,
        "commonAnnotations": {"summary": draw(st.one_of(titles, hostile_with_long))},
        "externalURL": draw(hostile),
        "alerts": [alert],
    }
    if draw(st.booleans()):
        payload["title"] = draw(st.one_of(titles, hostile))
    return payload


def poison_hook(app, client, tokens, providers, mastodon, bluesky, source, payload, wire):
    note(f"payload={payload!r}, wire={wire!r}")
    client.fresh()
    before = incidents(client, tokens)
    sent = Sent(providers, mastodon, bluesky)
    answer = client.post(
        f"/hooks/{source}",
        data=raw_json(payload, wire),
        headers={**tokens["monitor"], "Content-Type": "application/json"},
    )
    assert answer.status_code < 500, answer.get_data()[:2000]
    event(f"answer {answer.status_code}")
    if answer.status_code >= 400:
        assert_error_shape(answer)
        assert incidents(client, tokens) == before, "a refused alert opened an incident"
        check_public(client)
        check_admin(client, None)  # the refused event is listed on the monitoring page
        return
    result = answer.get_json()
    event(f"{result.get('state')}")
    incident_id, announcement_id = result.get("incident_id"), result.get("announcement_id")
    if result.get("state") == "pending_approval":  # a draft: a person approves it as it is
        approved = client.post(
            f"/api/v1/announcements/{announcement_id}/approve", headers=tokens["approver2"]
        )
        assert approved.status_code == 200, approved.get_data()[:2000]
    drain(app)
    check_public(client)
    check_admin(client, incident_id)
    if incident_id and announcement_id:
        check_incident(client, tokens, incident_id, announcement_id)
        check_sent(client, tokens, announcement_id, sent.new())
        events = client.get("/api/v1/hooks/events", headers=tokens["admin"])
        assert ok(events, "hook events").status_code == 200


@given(payload=generic_payloads(), wire=wires)
@POISON
def test_poisoned_generic_alerts_become_clean_statements(
    app, admin, tokens, providers, mastodon, bluesky, payload, wire
):
    poison_hook(app, admin, tokens, providers, mastodon, bluesky, "generic", payload, wire)


@given(payload=alertmanager_payloads(), wire=wires)
@POISON
def test_poisoned_alertmanager_alerts_become_clean_statements(
    app, admin, tokens, providers, mastodon, bluesky, payload, wire
):
    poison_hook(app, admin, tokens, providers, mastodon, bluesky, "alertmanager", payload, wire)


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


@pytest.mark.parametrize("field", ["incident_id", "corrects"])
def test_a_lone_surrogate_in_a_reference_is_refused_not_a_500(admin, tokens, field):
    """Was a 500: the made-up id went into a Redis key (domain/announcements.py)."""
    announcement = {"title": "t", "body": "b", "severity": "minor", "audiences": ["consumers"]}
    answer = admin.post(
        "/api/v1/announcements",
        data=json.dumps({**announcement, field: "inc_\ud800"}),
        headers={**tokens["admin"], "Content-Type": "application/json"},
    )
    assert answer.status_code == 422, answer.get_data()
    assert field in answer.get_json()["errors"]
    assert incidents(admin, tokens) == 0


# --- Errors never echo a lone surrogate back ---------------------------------------------------
# Found here: marshmallow's field names came back as sent, a key "\ud800" as a lone-surrogate
# escape in "message" and as a key in "errors" (valid JSON grammar, but strict decoders refuse
# it). web/errors.py's error_body now makes what it echoes encodable.


def test_an_unknown_field_named_with_a_lone_surrogate_is_not_echoed(admin, tokens):
    announcement = {"title": "t", "body": "b", "severity": "minor", "audiences": ["consumers"]}
    answer = admin.post(
        "/api/v1/announcements",
        data=json.dumps({**announcement, "\ud800": 1}),
        headers={**tokens["admin"], "Content-Type": "application/json"},
    )
    assert_error_shape(answer)
    clean_text(answer.get_json(), "422 error body")


def test_a_refused_alert_does_not_echo_a_lone_surrogate(admin, tokens):
    payload = {"key": "k", "status": "firing", "title": "t", "labels": {"\ud800": 1}}
    answer = send(admin, tokens, "generic", payload)
    assert_error_shape(answer)
    clean_text(answer.get_json(), "400 error body")
