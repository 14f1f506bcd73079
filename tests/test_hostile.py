"""Hostile input: property tests of the measures and renderers, XSS, header injection, 413."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError

from broadcaster.domain import text_policy
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.text_policy import BLOCK, LINE
from broadcaster.rendering import segments
from broadcaster.rendering.messages import Renderer

GSM_BASIC = sorted(segments.GSM7_BASIC)
GSM_EXTENSION = sorted(segments.GSM7_EXTENSION)
PAYLOADS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    '"><img src=x onerror=alert(1)>',
    "<svg/onload=alert(1)>",
    "javascript:alert(1)",
    "</title><script>alert(2)</script>",
    "{{ 7*7 }}{% for x in range(3) %}x{% endfor %}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "'; DROP TABLE x; --",
    "\u202eevil\u202c",
]
gsm_text = st.text(alphabet=st.sampled_from(GSM_BASIC + GSM_EXTENSION), max_size=500)
any_text = st.text(max_size=400)
sms_text = st.one_of(
    gsm_text, any_text, st.lists(st.sampled_from(["a", "€", "é", "😀"])).map("".join)
)
hostile = st.builds(
    lambda a, p, b: a + p + b, st.text(max_size=30), st.sampled_from(PAYLOADS), st.text(max_size=30)
)
title_text = st.one_of(hostile, st.text(min_size=1, max_size=200))
body_text = st.one_of(hostile, st.text(min_size=1, max_size=2000))
# No example database: nothing is written into the work tree; failures print their example.
QUICK = settings(database=None, deadline=None)
FIXTURES = settings(QUICK, suppress_health_check=[HealthCheck.function_scoped_fixture])

# --- SMS measures ---------------------------------------------------------------------------


def brute_segments(text: str) -> tuple[str, int]:
    """Encode for real and cut into parts, never splitting an escape or surrogate pair."""
    if all(ch in segments.GSM7_BASIC or ch in segments.GSM7_EXTENSION for ch in text):
        encoding, single, multi = "GSM-7", 160, 153
        units = [2 if ch in segments.GSM7_EXTENSION else 1 for ch in text]  # ESC + char
    else:
        encoding, single, multi = "UCS-2", 70, 67
        units = [len(ch.encode("utf-16-be")) // 2 for ch in text]
    total = sum(units)
    if total <= single:
        return encoding, 1 if total else 0
    parts, room = 0, 0
    for size in units:
        if size > room:
            parts, room = parts + 1, multi
        room -= size
    return encoding, parts


@given(sms_text)
@settings(QUICK, max_examples=300)
def test_segment_count_agrees_with_brute_force(text):
    cost = segments.sms_cost(text)
    assert (cost.encoding, cost.segments) == brute_segments(text)


@given(
    head=st.text(max_size=80),
    body=sms_text,
    tail=st.one_of(st.just(" https://status.acme.example/status"), st.text(max_size=80)),
    budget=st.integers(min_value=1, max_value=4),
)
@settings(QUICK, max_examples=300)
def test_fit_sms_stays_within_the_budget_and_keeps_the_link(head, body, tail, budget):
    text, cost, _ = segments.fit_sms(head, body, tail, budget)
    assert text.endswith(tail)
    assert cost == segments.sms_cost(text)
    if segments.sms_cost(tail).segments <= budget:  # else only the link is sent, whole
        assert cost.segments <= budget


# --- Renderers --------------------------------------------------------------------------------


class Tags(HTMLParser):
    """Every start tag and attribute in a document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def assert_inert(html: str) -> None:
    """No script, no event handler, no javascript: URL: announcement text stayed text."""
    parser = Tags()
    parser.feed(html)
    for tag, attrs in parser.tags:
        assert tag not in ("script", "img", "svg", "iframe"), (tag, attrs)
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert not any("javascript:" in (v or "").lower() for v in attrs.values()), attrs
    assert "<script" not in html.lower()


@pytest.fixture
def renderer(app) -> Renderer:
    return app.extensions["broadcaster"].renderer


@given(title=title_text, body=body_text, locale=st.sampled_from(["en", "nl", "da", "sv"]))
@settings(FIXTURES, max_examples=60)
def test_renderers_never_raise_and_never_emit_markup(renderer, title, body, locale):
    announcement = Announcement(
        id="ann_1",
        incident_id="inc_1",
        title=title,
        body=body,
        severity="critical",
        status="investigating",
        audiences=["consumers"],
        channels=["email", "sms"],
        translations={"nl": {"title": body[:200] or "x", "body": title}},
        author="lead",
        state="published",
        created_at=1.7e9,
    )
    for channel in ("email", "sms", "mastodon", "bluesky", "banner"):
        rendering = renderer.render(channel, announcement, ["consumers"], locale)
        assert rendering.content
    email = renderer.render("email", announcement, ["consumers"], locale).content
    assert_inert(email["html"])
    # One line whatever the title: no header can be injected through the subject.
    assert not re.search(r"[\x00-\x1f\x7f\x85\u2028\u2029]", email["subject"])
    sms = renderer.render("sms", announcement, ["consumers"], locale)
    assert sms.measures["segments"] <= 2 or not sms.measures["cut"]


def test_templates_render_in_a_sandbox(renderer):
    with pytest.raises(SecurityError):
        renderer.env.from_string("{{ ''.__class__.__mro__[1].__subclasses__() }}").render()
    assert renderer.env.autoescape("email/announcement.html") is True
    announcement = Announcement(
        id="ann_1",
        incident_id="inc_1",
        title="{{ 7*7 }}",
        body="{% raw %}x",
        severity="major",
        status="identified",
        audiences=["consumers"],
        channels=["email"],
        author="lead",
        state="published",
        created_at=1.7e9,
    )
    email = renderer.render("email", announcement, ["consumers"], "en").content
    assert "{{ 7*7 }}" in email["text"] and "49" not in email["subject"]  # text, not template


# --- Real pages -------------------------------------------------------------------------------


@given(title=hostile, body=hostile)
@settings(FIXTURES, max_examples=15)
def test_hostile_text_never_becomes_markup_on_public_pages(client, tokens, title, body):
    announcement = {
        # The API refuses what the text policy forbids (test_text_policy.py): control
        # characters, bidi overrides, lone surrogates. Everything else goes.
        "title": text_policy.clean(title, LINE, max_chars=200),
        "body": text_policy.clean(body, BLOCK),
        "severity": "minor",
        "audiences": ["consumers"],
        "channels": ["banner"],
    }
    created = client.post("/api/v1/announcements", json=announcement, headers=tokens["admin"])
    assert created.status_code == 202, created.get_json()
    status = client.get("/status")
    assert status.status_code == 200
    assert_inert(status.get_data(as_text=True))
    banner = client.get("/banner.json?lang=en")
    raw = banner.get_data(as_text=True)
    assert "<" not in raw and ">" not in raw  # escaped as \u003c: safe even if inlined
    texts = [b["title"] for b in banner.get_json()["banners"]]
    assert " ".join(announcement["title"].split()) in texts  # and the same text once parsed
    status_json = client.get("/status.json").get_data(as_text=True)
    assert "<" not in status_json


# --- Header injection and sizes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        {"title": "Outage\r\nBcc: everyone@example.com"},
        {"title": "Outage\nSubject: win a prize"},
        {"translations": {"nl": {"title": "Storing\r\nBcc: x@example.com", "body": "b"}}},
    ],
)
def test_line_breaks_in_titles_are_refused(client, tokens, field):
    body = {"title": "Outage", "body": "b", "severity": "minor", "audiences": ["consumers"]}
    response = client.post("/api/v1/announcements", json={**body, **field}, headers=tokens["admin"])
    assert response.status_code == 422
    error = response.get_json()
    assert error["code"] == 422 and "one line" in error["message"]
    assert "U+000" in json.dumps(error["errors"])


# Hooks whose callers prove themselves with a provider signature, not an API token.
SIGNED_HOOKS = (
    "receipts.twilio_status",
    "receipts.twilio_whatsapp_status",
    "inbound.twilio_inbound",
    "whatsapp_inbound.twilio_whatsapp_inbound",
    "receipts.sendgrid_events",
    "email_inbound.sendgrid_inbound",
    "voice_hooks.status",
    "voice_hooks.machine_detection",
    "voice_hooks.gather",
)


def test_every_post_route_refuses_oversized_bodies_with_413(make_app, tokens):
    app = make_app(MAX_CONTENT_LENGTH=4096, MAX_IMPORT_BYTES=8192)
    client = app.test_client()
    routes = [rule for rule in app.url_map.iter_rules() if "POST" in (rule.methods or ())]
    assert len(routes) >= 15
    for rule in routes:
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", "x", rule.rule)
        limit = 8192 if rule.endpoint == "subscribers.SubscriberImport" else 4096
        response = client.post(
            path,
            data=b"[" + b" " * limit + b"]",
            headers={**tokens["admin"], "Content-Type": "application/json"},
        )
        if rule.endpoint in SIGNED_HOOKS:
            # Authenticate first: without the provider's signature nothing is read, not
            # even the body's size (tests/test_auth_first.py: signed, it is 413). SendGrid
            # has no verification key here: 503, events refused.
            # Inbound email without its secret configured: 503 too, nothing read.
            off = ("receipts.sendgrid_events", "email_inbound.sendgrid_inbound")
            want = 503 if rule.endpoint in off else 401
            assert response.status_code == want, (rule.rule, response.status_code)
            continue
        assert response.status_code == 413, (rule.rule, response.status_code)
        if rule.rule.startswith("/admin/"):  # pages for people: an HTML error page
            assert response.mimetype == "text/html", rule.rule
            continue
        error = response.get_json()
        assert error["code"] == 413 and f"at most {limit}" in error["message"], rule.rule
    # Just under the limit is read as usual (here: 422, an empty list of subscribers).
    small = client.post("/api/v1/subscribers", json=[], headers=tokens["admin"])
    assert small.status_code == 422
