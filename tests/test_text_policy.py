"""One text policy at the one way in; a stored item that fails to render costs only itself.

Each case listed in issue 14 has its regression test here: what was accepted and then broke
the product is now refused with a 422 naming the field (and nothing is stored), or, for
monitoring, cleaned so the alert still produces a statement.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broadcaster.domain import text_policy
from broadcaster.domain.plan import PlanError, load_plan
from broadcaster.domain.text_policy import BLOCK, LINE
from tests.test_hostile import QUICK

ANNOUNCEMENT = {
    "title": "Power outage in Amsterdam",
    "body": "We are investigating a power outage in Amsterdam-Noord.",
    "severity": "minor",
    "audiences": ["consumers"],
    "channels": ["banner"],
}
FORBIDDEN_IN_BODIES = ["\u0000", "\u000b", "\u001b", "\u007f", "\u0085", "\u202e", "\u2066"]


def post_raw(client, headers, text: str):
    """POST a JSON text as is: escapes such as \\ud800 reach the server unchanged."""
    return client.post(
        "/api/v1/announcements",
        data=text,
        headers={**headers, "Content-Type": "application/json"},
    )


def incidents(client, tokens) -> int:
    return client.get("/api/v1/incidents", headers=tokens["admin"]).get_json()["total"]


def refused(response, field: str) -> dict:
    assert response.status_code == 422, response.get_json()
    error = response.get_json()
    assert error["code"] == 422 and field in error["errors"], error
    assert field in error["message"]
    return error


# --- The policy itself ---------------------------------------------------------------------


@pytest.mark.parametrize("ch", ["\ud800", "\udfff", *FORBIDDEN_IN_BODIES])
def test_bodies_refuse_surrogates_controls_and_bidi(ch):
    problem = text_policy.problem(f"before{ch}after", BLOCK)
    assert problem and f"U+{ord(ch):04X}" in problem


@pytest.mark.parametrize("ch", ["\n", "\r", "\t", "\u2028", "\u2029", "\u0000", "\u202a"])
def test_titles_are_one_line(ch):
    assert "one line" in (text_policy.problem(f"a{ch}b", LINE) or "")


def test_bodies_keep_line_breaks_and_tabs():
    assert text_policy.problem("line one\n\tline two", BLOCK) is None
    assert text_policy.normalise("one\r\ntwo\rthree") == "one\ntwo\nthree"


def test_text_is_stored_in_nfc():
    assert text_policy.normalise("Cafe\u0301") == "Café"


@given(st.text(max_size=300))
@QUICK
def test_cleaned_text_always_passes_and_fits(text):
    line = text_policy.clean(text, LINE, max_chars=50)
    block = text_policy.clean(text, BLOCK, max_bytes=100)
    assert len(line) <= 50 and len(block.encode()) <= 100
    assert line == "" or text_policy.problem(line, LINE) is None
    assert block == "" or text_policy.problem(block, BLOCK) is None


# --- The API refuses and stores nothing ----------------------------------------------------


def test_a_lone_surrogate_in_a_title_is_refused(client, tokens):
    text = json.dumps(ANNOUNCEMENT).replace("Power outage", "surr\\ud800title")
    assert "\\ud800" in text
    refused(post_raw(client, tokens["admin"], text), "title")
    assert incidents(client, tokens) == 0
    assert client.get("/status").status_code == 200


def test_a_lone_surrogate_in_a_translation_is_refused(client, tokens):
    body = {**ANNOUNCEMENT, "translations": {"nl": {"title": "Storing", "body": "x\\udc00y"}}}
    text = json.dumps(body).replace("\\\\udc00", "\\udc00")
    refused(post_raw(client, tokens["admin"], text), "translations.nl.body")
    assert incidents(client, tokens) == 0


@pytest.mark.parametrize("ch", FORBIDDEN_IN_BODIES)
def test_control_and_bidi_characters_in_a_body_are_refused(client, tokens, ch):
    body = {**ANNOUNCEMENT, "body": f"Outage{ch}in Noord"}
    response = client.post("/api/v1/announcements", json=body, headers=tokens["admin"])
    error = refused(response, "body")
    assert f"U+{ord(ch):04X}" in error["errors"]["body"][0]
    assert incidents(client, tokens) == 0


def test_a_blank_title_is_refused(client, tokens):
    body = {**ANNOUNCEMENT, "title": "   "}
    refused(client.post("/api/v1/announcements", json=body, headers=tokens["admin"]), "title")


def test_text_is_stored_normalised(client, tokens):
    body = {**ANNOUNCEMENT, "title": "Cafe\u0301 closed", "body": "Line one.\r\nLine two."}
    created = client.post("/api/v1/announcements", json=body, headers=tokens["admin"])
    assert created.status_code == 202
    stored = client.get(created.get_json()["links"]["self"], headers=tokens["admin"]).get_json()
    assert (stored["title"], stored["body"]) == ("Café closed", "Line one.\nLine two.")


@pytest.mark.parametrize(
    "when",
    [
        "9999-12-31T00:00:00Z",
        (datetime.now(UTC) + timedelta(days=31)).isoformat(),
        (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
    ],
    # Ids that do not change with the clock: parallel test processes must collect alike.
    ids=["year-9999", "in-31-days", "2-hours-ago"],
)
def test_a_promised_update_outside_the_next_30_days_is_refused(client, tokens, when):
    body = {**ANNOUNCEMENT, "next_update_at": when}
    response = client.post("/api/v1/announcements", json=body, headers=tokens["admin"])
    refused(response, "next_update_at")
    assert incidents(client, tokens) == 0


def test_a_year_9999_promise_no_longer_freezes_the_banner(client, tokens):
    body = {**ANNOUNCEMENT, "next_update_at": "9999-12-31T00:00:00Z"}
    first = client.post("/api/v1/announcements", json=body, headers=tokens["admin"])
    assert first.status_code == 422
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = {**ANNOUNCEMENT, "title": "Gas leak", "next_update_at": soon}
    second = client.post("/api/v1/announcements", json=later, headers=tokens["admin"])
    assert second.status_code == 202
    titles = [b["title"] for b in client.get("/banner.json").get_json()["banners"]]
    assert "Gas leak" in titles


def test_a_reject_reason_passes_the_policy_too(client, tokens):
    pending = client.post(
        "/api/v1/announcements", json={**ANNOUNCEMENT, "severity": "major"}, headers=tokens["admin"]
    ).get_json()
    assert pending["state"] == "pending_approval"
    reject = f"/api/v1/announcements/{pending['id']}/reject"
    answer = client.post(reject, json={"reason": "wrong\u0000area"}, headers=tokens["approver"])
    refused(answer, "reason")
    state = client.get(pending["links"]["self"], headers=tokens["admin"]).get_json()["state"]
    assert state == "pending_approval"


# --- The plan ------------------------------------------------------------------------------


def test_a_route_with_a_bidi_override_stops_the_plan_at_start_up(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(
        '[organisation]\nname = "Acme"\n\n[policy]\napproval_required = []\n\n'
        "[channels_by_severity]\ninfo = []\nminor = []\nmajor = []\ncritical = []\n\n"
        "[audiences.consumers]\n[[audiences.consumers.routes]]\n"
        'need = "Billing"\nchannel = "Portal"\ncontact = "https://acme.example/\u202egnp.exe"\n'
    )
    with pytest.raises(PlanError) as caught:
        load_plan(str(plan))
    assert "audiences.consumers.routes[0].contact" in str(caught.value)
    assert "U+202E" in str(caught.value)


# --- Monitoring text is cleaned, not refused -----------------------------------------------


def alert(summary: str, key: str = "db") -> dict:
    return {
        "key": key,
        "status": "firing",
        "title": "Database",
        "summary": summary,
        "severity": "major",
        "labels": {"service": "database"},
    }


def draft_of(client, tokens, answer) -> dict:
    assert answer.status_code == 200, answer.get_json()
    incident = answer.get_json()["incident_id"]
    timeline = client.get(f"/api/v1/incidents/{incident}", headers=tokens["admin"]).get_json()
    return timeline["timeline"][-1]


def test_an_injected_alert_summary_is_cleaned_into_the_title(client, tokens):
    summary = "Sum\r\nX-Injected: 1\u0000\u202egnp.exe"
    answer = client.post("/hooks/generic", json=alert(summary), headers=tokens["monitor"])
    draft = draft_of(client, tokens, answer)
    assert draft["title"] == "Sum X-Injected: 1 gnp.exe"
    for text in (draft["title"], draft["body"]):
        assert not any(ch in text for ch in "\r\u0000\u202e")
    events = client.get("/api/v1/hooks/events", headers=tokens["admin"]).get_json()["items"]
    assert events, "the event is still recorded"


def test_a_200_kb_alert_summary_becomes_a_draft_within_the_limits(client, tokens, app):
    summary = "disk full " * 20_000
    answer = client.post("/hooks/generic", json=alert(summary), headers=tokens["monitor"])
    draft = draft_of(client, tokens, answer)
    assert len(draft["title"]) <= 200 and draft["title"].endswith("…")
    assert len(draft["body"].encode()) <= int(app.config["MAX_BODY_BYTES"])


# --- One bad stored item costs only itself --------------------------------------------------


def metric(client, name: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_an_item_that_fails_to_render_is_skipped_and_counted(client, tokens, r):
    def publish(title: str, severity: str = "minor") -> dict:
        body = {**ANNOUNCEMENT, "title": title, "severity": severity}
        answer = client.post("/api/v1/announcements", json=body, headers=tokens["admin"])
        assert answer.status_code == 202
        return answer.get_json()

    publish("Water outage", "minor")
    broken = publish("Gas leak")
    # A value no code path writes today (a bug we have not found yet): stored as is.
    key = f"bc:ann:{broken['id']}"
    record = json.loads(r.get(key))
    r.set(key, json.dumps({**record, "published_at": "not a time"}))
    before = metric(client, 'broadcaster_render_failures_total{surface="banner"}')

    fresh = publish("Power outage")  # the refresh after this publish meets the broken item
    assert fresh["state"] == "published"
    doc = client.get("/banner.json").get_json()
    titles = [b["title"] for b in doc["banners"]]
    # One banner per site: the newest of equal severity, with the other open one as "+1 more".
    assert titles == ["Power outage"]
    assert doc["banners"][0]["more"]["count"] == 1, doc
    after = metric(client, 'broadcaster_render_failures_total{surface="banner"}')
    assert after > before


def test_a_publish_whose_page_refresh_fails_still_answers_what_happened(client, tokens, r):
    """Committed is published: a failing refresh is logged and counted, never a 500 that
    would make the client retry and send a second blast."""
    first = client.post("/api/v1/announcements", json=ANNOUNCEMENT, headers=tokens["admin"])
    r.set(f"bc:inc:{first.get_json()['incident_id']}", "{not json")  # breaks every refresh
    before = metric(client, 'broadcaster_render_failures_total{surface="after_publish"}')
    again = {**ANNOUNCEMENT, "title": "Second outage"}
    answer = client.post("/api/v1/announcements", json=again, headers=tokens["admin"])
    assert answer.status_code == 202 and answer.get_json()["state"] == "published"
    assert metric(client, 'broadcaster_render_failures_total{surface="after_publish"}') > before
    stored = client.get(answer.get_json()["links"]["self"], headers=tokens["admin"])
    assert stored.get_json()["state"] == "published"


def test_the_status_pages_skip_an_item_that_fails_and_show_the_rest(client, tokens, r):
    def publish(title: str) -> dict:
        body = {**ANNOUNCEMENT, "title": title}
        answer = client.post("/api/v1/announcements", json=body, headers=tokens["admin"])
        assert answer.status_code == 202
        return answer.get_json()

    publish("Water outage")
    broken = publish("Gas leak")
    key = f"bc:ann:{broken['id']}"
    r.set(key, json.dumps({**json.loads(r.get(key)), "published_at": "not a time"}))
    before = metric(client, 'broadcaster_render_failures_total{surface="status"}')
    publish("Power outage")
    # A follow-up renders the broken incident's entry again: it fails, and is left out.
    follow_up = {**ANNOUNCEMENT, "title": "Gas leak: update", "incident_id": broken["incident_id"]}
    answer = client.post("/api/v1/announcements", json=follow_up, headers=tokens["admin"])
    assert answer.status_code == 202

    page = client.get("/status")
    assert page.status_code == 200
    assert "Power outage" in page.get_data(as_text=True)
    assert "Gas leak" not in page.get_data(as_text=True)
    titles = [i["title"] for i in client.get("/status.json").get_json()["open"]]
    assert "Water outage" in titles and "Power outage" in titles and "Gas leak" not in titles
    assert metric(client, 'broadcaster_render_failures_total{surface="status"}') > before


def test_the_feed_skips_an_entry_that_fails_and_keeps_the_rest(client, tokens, r):
    for title in ("Water outage", "Power outage"):
        body = {**ANNOUNCEMENT, "title": title}
        answer = client.post("/api/v1/announcements", json=body, headers=tokens["admin"])
        assert answer.status_code == 202
    assert client.get("/status.atom").status_code == 200  # builds the English document
    # A stored document with a value the feed cannot use (a bug we have not found yet).
    doc = json.loads(r.get("bc:status:doc:en"))
    doc["open"][0]["updates"][0]["published_at"] = "garbage"
    r.set("bc:status:doc:en", json.dumps(doc))
    before = metric(client, 'broadcaster_render_failures_total{surface="status.atom"}')
    feed = client.get("/status.atom?lang=en")
    assert feed.status_code == 200
    entries = ElementTree.fromstring(feed.data).findall("{http://www.w3.org/2005/Atom}entry")
    assert len(entries) == 1
    assert metric(client, 'broadcaster_render_failures_total{surface="status.atom"}') > before


def test_admin_pages_skip_an_item_that_fails_and_show_the_rest(app, client, tokens, r, people):
    from tests.conftest import sign_in

    good = client.post("/api/v1/announcements", json=ANNOUNCEMENT, headers=tokens["admin"])
    incident = good.get_json()["incident_id"]
    follow_up = {**ANNOUNCEMENT, "title": "Second update", "incident_id": incident}
    second = client.post("/api/v1/announcements", json=follow_up, headers=tokens["admin"])
    pending = {**ANNOUNCEMENT, "title": "Waiting one", "severity": "major"}
    waiting = client.post("/api/v1/announcements", json=pending, headers=tokens["admin"])
    pending_other = {**pending, "title": "Waiting two"}
    client.post("/api/v1/announcements", json=pending_other, headers=tokens["admin"])
    # Stored as no code path writes today (a bug we have not found yet): a lone surrogate.
    for answer in (second, waiting):
        key = f"bc:ann:{answer.get_json()['id']}"
        raw = r.get(key).decode().replace('"title": "', '"title": "\\ud800', 1)
        r.set(key, raw)
    before = metric(client, 'broadcaster_render_failures_total{surface="admin.incident"}')

    browser = app.test_client()
    sign_in(browser, people["approver2"].email)
    page = browser.get(f"/admin/incidents/{incident}")
    assert page.status_code == 200
    assert "Power outage in Amsterdam" in page.get_data(as_text=True)
    # Its timeline entry is left out; elsewhere (the brief) its title is sent escaped.
    assert f'<li id="{second.get_json()["id"]}"' not in page.get_data(as_text=True)
    assert "\\ud800Second update" in page.get_data(as_text=True)
    assert metric(client, 'broadcaster_render_failures_total{surface="admin.incident"}') > before
    assert browser.get("/admin/").status_code == 200
    approvals = browser.get("/admin/approvals")
    assert approvals.status_code == 200
    assert "Waiting two" in approvals.get_data(as_text=True)
    assert "Waiting one" not in approvals.get_data(as_text=True)
