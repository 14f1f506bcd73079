"""The admin pages through the real sign-in form: roles, CSRF, four eyes, bypass, escaping."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from broadcaster.domain import audit
from broadcaster.domain.tokens import Principal
from broadcaster.domain.users import authenticate
from broadcaster.services import services
from tests.conftest import PASSWORD

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
CSV = (
    "external_id,email,phone,locale,audiences,channels\n"
    "c-1,ann@example.com,+31612345678,nl,consumers,\n"
    "c-2,bob@example.com,,en,consumers;business,email\n"
    "c-3,not-an-email,,en,consumers,\n"
)


def compose_data(token: str, **overrides: Any) -> dict[str, Any]:
    """A valid compose form post (minor: no approval needed for approvers and admins)."""
    return {
        "csrf_token": token,
        "title": "Payments down",
        "body": "Card payments fail since 09:10. Next update by 10:30.",
        "severity": "minor",
        "status": "investigating",
        "audiences": ["consumers"],
        "channels": ["banner", "email"],
        **overrides,
    }


def create(app: Flask, author: str, role: str, **overrides: Any) -> dict[str, Any]:
    """An announcement stored as ``author`` would (the store is what the pages call)."""
    data = {
        "title": "Power outage",
        "body": "No power in Noord.",
        "severity": "major",
        "status": "investigating",
        "audiences": ["consumers"],
        "channels": ["banner"],
        **overrides,
    }
    with app.app_context():
        return services().announcements.create(data, Principal(author, role)).to_dict()


def store(app: Flask):  # type: ignore[no-untyped-def]
    with app.app_context():
        return services().announcements


# ---------------------------------------------------------------------------- role matrix

ROLES = ("signed_out", "helpdesk", "approver", "admin")
# (method, path, expected status per ROLES); {incident} and {pending} are filled in.
MATRIX = [
    ("GET", "/admin/", (302, 200, 200, 200)),
    ("GET", "/admin/compose", (302, 200, 200, 200)),
    ("GET", "/admin/incidents", (302, 200, 200, 200)),
    ("GET", "/admin/incidents/{incident}", (302, 200, 200, 200)),
    ("GET", "/admin/approvals", (302, 200, 200, 200)),
    ("GET", "/admin/subscribers", (302, 200, 200, 200)),
    ("GET", "/admin/monitoring", (302, 200, 200, 200)),
    ("GET", "/admin/audit", (302, 403, 403, 200)),
    ("GET", "/admin/users", (302, 403, 403, 200)),
    ("POST", "/admin/compose", (302, 303, 303, 303)),
    ("POST", "/admin/approvals/{pending}/approve", (302, 403, 303, 303)),
    ("POST", "/admin/approvals/{pending}/reject", (302, 403, 303, 303)),
    # Admins only; a pending one is not withdrawn but the page says so (303).
    ("POST", "/admin/announcements/{pending}/withdraw", (302, 403, 403, 303)),
    ("POST", "/admin/subscribers", (302, 200, 200, 200)),
    ("POST", "/admin/users", (302, 403, 403, 303)),
    ("GET", "/admin/drills", (302, 200, 200, 200)),
    # Approvers and admins start and end drills; no such drill is a page saying so (404).
    ("POST", "/admin/drills", (302, 403, 303, 303)),
    ("POST", "/admin/drills/{pending}/end", (302, 403, 404, 404)),
    ("GET", "/admin/incidents/{incident}/report", (302, 200, 200, 200)),
    ("POST", "/admin/incidents/{incident}/review", (302, 303, 303, 303)),
]


def post_body(path: str, token: str) -> dict[str, Any]:
    if path.endswith("/compose"):
        return compose_data(token)
    if path.endswith(("/reject", "/withdraw")):
        return {"csrf_token": token, "reason": "The area is wrong."}
    if path.endswith("/subscribers"):
        return {"csrf_token": token, "file": (io.BytesIO(CSV.encode()), "people.csv")}
    if path.endswith("/admin/drills"):
        return {"csrf_token": token, "scenario": "payments"}
    if path.endswith("/review"):
        return {"csrf_token": token, "went_well": "Fast.", "actions": "Drill monthly | Ann"}
    if path.endswith("/users"):
        return {
            "csrf_token": token,
            "email": "new@acme.example",
            "name": "New",
            "role": "helpdesk",
            "password": PASSWORD,
        }
    return {"csrf_token": token}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "template", "expected"), MATRIX)
def test_role_matrix(
    app: Flask,
    client: FlaskClient,
    people: dict[str, Any],
    signed_in: Callable[..., str],
    role: str,
    method: str,
    template: str,
    expected: tuple[int, ...],
) -> None:
    published = create(app, "writer@acme.example", "admin", severity="minor")
    pending = create(app, "writer@acme.example", "approver")
    path = template.format(incident=published["incident_id"], pending=pending["id"])
    token = ""
    if role != "signed_out":
        token = signed_in(client, people[role].email)
    if method == "GET":
        answer = client.get(path)
    else:
        answer = client.post(path, data=post_body(path, token))
    want = expected[ROLES.index(role)]
    assert answer.status_code == want, answer.get_data(as_text=True)[:2000]
    if want == 302:
        assert answer.headers["Location"].startswith("/admin/signin?next=")
    if want == 403:
        assert "may not" in answer.get_data(as_text=True)  # a page that says why, not JSON
    if method == "POST" and "/approvals/" in path:
        state = store(app).get(pending["id"]).state
        done = "published" if path.endswith("approve") else "rejected"
        assert state == (done if want == 303 else "pending_approval")


def test_every_admin_page_is_in_the_matrix(app: Flask) -> None:
    covered = {(m, re.sub(r"\{\w+\}", "<x>", p)) for m, p, _ in MATRIX}
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin.") or rule.endpoint in (
            "admin.static",
            "admin.signin",
            "admin.signout",
        ):
            continue
        path = re.sub(r"<[^>]+>", "<x>", rule.rule)
        routes |= {(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == covered


def test_navigation_shows_only_what_the_role_may_open(
    client: FlaskClient, people: dict[str, Any], signed_in: Callable[..., str]
) -> None:
    signed_in(client, people["helpdesk"].email)
    nav = re.search(r"<nav>(.*?)</nav>", client.get("/admin/").get_data(as_text=True), re.S)
    labels = re.findall(r">([A-Z]\w+)</a>", nav.group(1))
    assert labels == [
        "Now",
        "Compose",
        "Incidents",
        "Approvals",
        "Subscribers",
        "Monitoring",
        "Drills",
    ]


# ---------------------------------------------------------------------------------- CSRF


@pytest.mark.parametrize(
    "path", ["/admin/compose", "/admin/approvals/{pending}/approve", "/admin/users"]
)
def test_a_form_post_without_the_csrf_token_is_refused(
    app: Flask,
    client: FlaskClient,
    r: redis.Redis,
    people: dict[str, Any],
    signed_in: Callable[..., str],
    path: str,
) -> None:
    pending = create(app, "writer@acme.example", "approver")
    path = path.format(pending=pending["id"])
    signed_in(client, people["admin"].email)
    before = r.xlen(audit.AUDIT_KEY)
    body = post_body(path, "")
    del body["csrf_token"]
    answer = client.post(path, data=body)
    assert answer.status_code == 400
    assert "CSRF token is missing" in answer.get_data(as_text=True) or "security token" in (
        answer.get_data(as_text=True)
    )
    assert r.xlen(audit.AUDIT_KEY) == before, "nothing happened"
    assert store(app).get(pending["id"]).state == "pending_approval"
    assert store(app).incidents(0, 10)[0] == 1  # only the one made above
    # A forged token is no better than none.
    answer = client.post(path, data=post_body(path, "forged"))
    assert answer.status_code == 400
    assert r.xlen(audit.AUDIT_KEY) == before


def test_the_preview_api_takes_the_session_with_the_csrf_header(
    client: FlaskClient, people: dict[str, Any], signed_in: Callable[..., str]
) -> None:
    token = signed_in(client, people["helpdesk"].email)
    body = {k: v for k, v in compose_data("").items() if k != "csrf_token"}
    assert client.post("/api/v1/preview", json=body).status_code == 403
    answer = client.post("/api/v1/preview", json=body, headers={"X-CSRFToken": token})
    assert answer.status_code == 200
    assert answer.get_json()["recipients"]["email"] == {"recipients": 0, "skipped": 0}


# ----------------------------------------------------------------------- four-eyes, bypass


def test_compose_in_two_languages_then_only_a_second_person_may_approve(
    app: Flask,
    make_app: Callable[..., Flask],
    r: redis.Redis,
    people: dict[str, Any],
    signed_in: Callable[..., str],
) -> None:
    arne, bo = app.test_client(), app.test_client()
    token = signed_in(arne, people["approver"].email)
    answer = arne.post(
        "/admin/compose",
        data=compose_data(
            token,
            severity="major",
            channels=["banner", "email", "sms"],
            tr_nl_title="Betalingen liggen eruit",
            tr_nl_body="Pinbetalingen mislukken sinds 09:10.",
        ),
    )
    assert answer.status_code == 303
    (pending,) = [a.to_dict() for a in store(app).pending()]
    assert answer.headers["Location"] == f"/admin/incidents/{pending['incident_id']}"
    assert pending["author"] == "arne@acme.example"
    assert pending["channels"] == ["banner", "email", "sms"]
    assert pending["translations"] == {
        "nl": {"title": "Betalingen liggen eruit", "body": "Pinbetalingen mislukken sinds 09:10."}
    }
    assert "waiting for approval" in arne.get(answer.headers["Location"]).get_data(as_text=True)

    # The author sees their own without buttons, and a post anyway is refused.
    page = arne.get("/admin/approvals").get_data(as_text=True)
    assert "You wrote this one" in page
    assert f"/admin/approvals/{pending['id']}/approve" not in page
    own = arne.post(f"/admin/approvals/{pending['id']}/approve", data={"csrf_token": token})
    assert own.status_code == 403
    assert "cannot approve" in own.get_data(as_text=True)
    refused = arne.post(
        f"/admin/approvals/{pending['id']}/reject", data={"csrf_token": token, "reason": "meh"}
    )
    assert refused.status_code == 403
    assert store(app).get(pending["id"]).state == "pending_approval"

    other = signed_in(bo, people["approver2"].email)
    page = bo.get("/admin/approvals").get_data(as_text=True)
    assert f'action="/admin/approvals/{pending["id"]}/approve"' in page
    answer = bo.post(f"/admin/approvals/{pending['id']}/approve", data={"csrf_token": other})
    assert answer.status_code == 303
    approved = store(app).get(pending["id"]).to_dict()
    assert (approved["state"], approved["approved_by"]) == ("published", "bo@acme.example")
    incident = bo.get(answer.headers["Location"]).get_data(as_text=True)
    assert "approved by bo@acme.example" in incident
    assert "data-live-counts=" in incident  # published: the counts follow the sending
    actions = [
        (e["actor"], e["action"]) for e in audit.entries(r, incident_id=pending["incident_id"])
    ]
    assert ("bo@acme.example", "announcement.approved") in actions
    assert ("arne@acme.example", "announcement.created") in actions
    # Once decided, a second decision is news, not an error and not a change.
    again = bo.post(
        f"/admin/approvals/{pending['id']}/reject", data={"csrf_token": other, "reason": "x"}
    )
    assert again.status_code == 303
    assert "Not changed" in bo.get("/admin/approvals").get_data(as_text=True)
    assert store(app).get(pending["id"]).state == "published"


def test_rejecting_needs_a_reason_which_stays_on_the_announcement(
    app: Flask, client: FlaskClient, people: dict[str, Any], signed_in: Callable[..., str]
) -> None:
    pending = create(app, "hanna@acme.example", "helpdesk")
    token = signed_in(client, people["approver"].email)
    path = f"/admin/approvals/{pending['id']}/reject"
    answer = client.post(path, data={"csrf_token": token, "reason": "   "})
    assert answer.status_code == 422
    assert "Say why" in answer.get_data(as_text=True)
    assert store(app).get(pending["id"]).state == "pending_approval"

    answer = client.post(path, data={"csrf_token": token, "reason": "Noord is wrong: it is Oost."})
    assert answer.status_code == 303
    rejected = store(app).get(pending["id"]).to_dict()
    assert (rejected["state"], rejected["reason"]) == ("rejected", "Noord is wrong: it is Oost.")
    page = client.get(f"/admin/incidents/{pending['incident_id']}").get_data(as_text=True)
    assert "Rejected</strong> by arne@acme.example" in page
    assert "Noord is wrong: it is Oost." in page
    assert store(app).pending() == []


def test_an_admin_bypass_needs_a_reason_and_is_shown(
    app: Flask, client: FlaskClient, r: redis.Redis, people: dict[str, Any], signed_in
) -> None:
    token = signed_in(client, people["admin"].email)
    assert "Emergency bypass" in client.get("/admin/compose").get_data(as_text=True)
    major = compose_data(token, severity="major", bypass="y")
    answer = client.post("/admin/compose", data={**major, "bypass_reason": " "})
    assert answer.status_code == 422
    assert 'id="bypass_reason-error"' in answer.get_data(as_text=True)
    assert store(app).incidents(0, 10)[0] == 0

    reason = "Nobody else reachable at 03:00; outage confirmed by the NOC."
    answer = client.post("/admin/compose", data={**major, "bypass_reason": reason})
    assert answer.status_code == 303
    _, (incident,) = store(app).incidents(0, 10)
    (announcement,) = [a.to_dict() for a in store(app).timeline(incident["id"])]
    assert (announcement["state"], announcement["bypass_reason"]) == ("published", reason)
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Emergency bypass</strong> — published without a second person" in page
    assert reason in page
    (entry,) = audit.entries(r, action="announcement.bypassed")
    assert (entry["actor"], entry["details"]["reason"]) == ("ada@acme.example", reason)
    # A reason without ticking the box is no bypass: it waits like any major announcement.
    client.post(
        "/admin/compose", data={**compose_data(token, severity="major"), "bypass_reason": reason}
    )
    assert [a.bypass_reason for a in store(app).pending()] == [None]


@pytest.mark.parametrize("role", ["helpdesk", "approver"])
def test_only_admins_see_or_use_the_bypass(
    app: Flask, client: FlaskClient, r: redis.Redis, people: dict[str, Any], signed_in, role: str
) -> None:
    token = signed_in(client, people[role].email)
    assert "Emergency bypass" not in client.get("/admin/compose").get_data(as_text=True)
    before = r.xlen(audit.AUDIT_KEY)
    forged = compose_data(token, severity="major", bypass="y", bypass_reason="I am in a hurry.")
    answer = client.post("/admin/compose", data=forged)
    assert answer.status_code == 403
    assert "may not publish without approval" in answer.get_data(as_text=True)
    assert store(app).incidents(0, 10)[0] == 0
    assert r.xlen(audit.AUDIT_KEY) == before


# ------------------------------------------------------------------------ compose details


def test_invalid_input_is_kept_and_each_field_says_what_is_wrong(
    client: FlaskClient, people: dict[str, Any], signed_in: Callable[..., str], app: Flask
) -> None:
    token = signed_in(client, people["helpdesk"].email)
    answer = client.post(
        "/admin/compose",
        data={
            "csrf_token": token,
            "title": "Storm <b>warning</b>",
            "body": "",
            "severity": "apocalyptic",
            "status": "investigating",
            "tr_nl_title": "Stormwaarschuwing",
        },
    )
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert 'value="Storm &lt;b&gt;warning&lt;/b&gt;"' in html  # kept, and escaped
    assert 'value="Stormwaarschuwing"' in html
    for field in ("body", "severity", "audiences", "channels", "tr_nl_body"):
        assert f'id="{field}-error"' in html, field
    assert "Must be one of: info, minor, major, critical." in html
    assert store(app).incidents(0, 10)[0] == 0


def test_channels_are_prefilled_from_the_plan(
    client: FlaskClient, people: dict[str, Any], signed_in: Callable[..., str]
) -> None:
    signed_in(client, people["helpdesk"].email)
    html = client.get("/admin/compose").get_data(as_text=True)
    checked = re.findall(
        r'<input checked id="channels-\d" name="channels" type="checkbox" value="(\w+)"', html
    )
    assert checked == ["banner", "social"]  # the example plan's minor channels
    defaults = re.search(r'data-channel-defaults="([^"]+)"', html).group(1)
    assert (
        "&#34;critical&#34;: [&#34;banner&#34;, &#34;social&#34;, &#34;email&#34;, &#34;sms&#34;"
        in defaults
    )


def test_follow_up_and_correction_of_an_open_incident(
    app: Flask, client: FlaskClient, people: dict[str, Any], signed_in: Callable[..., str]
) -> None:
    first = create(app, "ada@acme.example", "admin", severity="minor", title="Slow website")
    waiting = create(app, "ada@acme.example", "helpdesk", incident_id=first["incident_id"])
    token = signed_in(client, people["approver"].email)
    html = client.get(f"/admin/compose?incident_id={first['incident_id']}").get_data(as_text=True)
    assert f'<option selected value="{first["incident_id"]}">Slow website' in html
    assert f'<option value="{first["id"]}">Slow website › Slow website</option>' in html
    assert waiting["id"] not in html  # only published announcements can be corrected

    follow = compose_data(token, title="Cause found", incident_id=first["incident_id"])
    assert client.post("/admin/compose", data=follow).status_code == 303
    fix = compose_data(token, title="Correction", corrects=first["id"])
    assert client.post("/admin/compose", data=fix).status_code == 303
    timeline = [a.to_dict() for a in store(app).timeline(first["incident_id"])]
    assert [(a["title"], a["corrects"]) for a in timeline] == [
        ("Slow website", None),
        ("Power outage", None),
        ("Cause found", None),
        ("Correction", first["id"]),
    ]
    # Correcting what was never published is a conflict the form explains.
    answer = client.post("/admin/compose", data=compose_data(token, corrects=waiting["id"]))
    assert answer.status_code == 409
    assert "is not published; edit it instead" in answer.get_data(as_text=True)
    answer = client.post("/admin/compose", data=compose_data(token, incident_id="inc_nope"))
    assert answer.status_code == 422
    assert "no incident &#39;inc_nope&#39;" in answer.get_data(as_text=True)
    page = client.get(f"/admin/incidents/{first['incident_id']}").get_data(as_text=True)
    assert f"Corrects “Slow website” ({first['id']})" in page


def test_announcement_text_is_escaped_on_every_page(
    app: Flask, client: FlaskClient, people: dict[str, Any], signed_in: Callable[..., str]
) -> None:
    published = create(
        app,
        "ada@acme.example",
        "admin",
        severity="minor",
        title=HOSTILE,
        body=HOSTILE,
        translations={"nl": {"title": HOSTILE, "body": HOSTILE}},
    )
    create(app, "ada@acme.example", "admin", title=HOSTILE, incident_id=published["incident_id"])
    signed_in(client, people["approver"].email)
    pages = [
        "/admin/",
        "/admin/incidents",
        f"/admin/incidents/{published['incident_id']}",
        "/admin/approvals",
        "/admin/compose",
    ]
    for path in pages:
        html = client.get(path).get_data(as_text=True)
        assert HOSTILE not in html, path
        assert ESCAPED in html, path


# ------------------------------------------------------------------ incident, people, logs


def test_incident_page_shows_deliveries_failures_and_the_brief(
    app: Flask,
    client: FlaskClient,
    people: dict[str, Any],
    signed_in: Callable[..., str],
    providers: Any,
    run_jobs: Callable[..., None],
) -> None:
    _, twilio = providers
    twilio.invalid_numbers.add("+31612345679")
    with app.app_context():
        from broadcaster.domain.subscriber_import import import_rows

        svc = services()
        rows = [
            {
                "email": "ann@example.com",
                "phone": "+31612345678",
                "locale": "nl",
                "audiences": ["consumers"],
            },
            {"phone": "+31612345679", "audiences": ["consumers"]},
        ]
        import_rows(enumerate(rows), svc.plan, svc.subscribers)
    ann = create(
        app,
        "ada@acme.example",
        "admin",
        severity="minor",
        channels=["email", "sms"],
        translations={"nl": {"title": "Stroomstoring", "body": "Geen stroom in Noord."}},
    )
    run_jobs()
    signed_in(client, people["helpdesk"].email)
    html = client.get(f"/admin/incidents/{ann['incident_id']}").get_data(as_text=True)
    row = lambda channel: re.search(  # noqa: E731
        rf'<tr data-channel="{channel}">(.*?)</tr>', html, re.S
    ).group(1)
    cell = lambda channel, state: re.search(  # noqa: E731
        rf'data-state="{state}">(\d+)<', row(channel)
    ).group(1)
    assert (cell("email", "sent"), cell("sms", "sent"), cell("sms", "failed")) == ("1", "1", "1")
    failed = re.search(r'<table class="failed">(.*?)</table>', html, re.S).group(1)
    assert "21211" in failed or "invalid" in failed.lower()
    brief = html.split('id="brief"', 1)[1].split("</section>", 1)[0]
    assert "Thank you for contacting us." in brief
    nl_reply = re.search(r'<pre class="message" lang="nl">(.*?)</pre>', brief, re.S).group(1)
    assert "Geen stroom in Noord." in nl_reply  # agents answer Dutch callers in Dutch


def test_subscribers_page_imports_a_csv_and_reports_each_rejected_line(
    client: FlaskClient, r: redis.Redis, people: dict[str, Any], signed_in: Callable[..., str]
) -> None:
    token = signed_in(client, people["helpdesk"].email)
    answer = client.post(
        "/admin/subscribers",
        data={"csrf_token": token, "file": (io.BytesIO(CSV.encode()), "people.csv")},
    )
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert "<strong data-created>2</strong> created" in html
    rejected = re.search(r'<table class="rejected">(.*?)</table>', html, re.S).group(1)
    assert re.search(r'<td class="num">4</td><td>c-3</td><td>email: ', rejected)
    assert re.search(r'<tr data-audience="consumers">.*?<td class="num">2</td>', html)
    assert re.search(r'<tr data-audience="business">.*?<td class="num">1</td>', html)
    (entry,) = audit.entries(r, action="subscribers.imported")
    assert entry["actor"] == "hanna@acme.example"
    assert (entry["details"]["created"], entry["details"]["rejected"]) == (2, 1)

    bad = client.post(
        "/admin/subscribers",
        data={"csrf_token": token, "file": (io.BytesIO(b"name,mail\nx,y\n"), "x.csv")},
    )
    assert bad.status_code == 422
    assert "must name an &#39;audiences&#39; column" in bad.get_data(as_text=True)
    empty = client.post("/admin/subscribers", data={"csrf_token": token})
    assert empty.status_code == 422 and "Choose a CSV file" in empty.get_data(as_text=True)


def test_admins_add_people_who_can_then_sign_in(
    client: FlaskClient, r: redis.Redis, people: dict[str, Any], signed_in: Callable[..., str]
) -> None:
    token = signed_in(client, people["admin"].email)
    person = {"csrf_token": token, "email": "Nina@Acme.example", "name": "Nina", "role": "approver"}
    short = client.post("/admin/users", data={**person, "password": "too short"})
    assert short.status_code == 422 and "At least 12 characters." in short.get_data(as_text=True)
    answer = client.post("/admin/users", data={**person, "password": PASSWORD})
    assert answer.status_code == 303
    assert '<tr data-email="nina@acme.example"><td>Nina</td>' in client.get(
        "/admin/users"
    ).get_data(as_text=True)
    assert authenticate(r, "nina@acme.example", PASSWORD).role == "approver"
    (made,) = audit.entries(r, action="user.created", actor="ada@acme.example")
    assert made["details"] == {"email": "nina@acme.example", "role": "approver"}
    again = client.post("/admin/users", data={**person, "password": PASSWORD})
    assert again.status_code == 422
    assert "already exists" in again.get_data(as_text=True)


def test_monitoring_page_shows_events_and_the_rule_they_matched(
    client: FlaskClient,
    people: dict[str, Any],
    signed_in: Callable[..., str],
    tokens: dict[str, dict[str, str]],
) -> None:
    alert = {
        "key": "payments-eu",
        "status": "firing",
        "title": "Payments down",
        "severity": "critical",
        "labels": {"service": "payments"},
    }
    assert client.post("/hooks/generic", json=alert, headers=tokens["monitor"]).status_code == 200
    quiet = {**alert, "key": "disk", "severity": "info", "labels": {"service": "disk"}}
    assert client.post("/hooks/generic", json=quiet, headers=tokens["monitor"]).status_code == 200
    signed_in(client, people["helpdesk"].email)
    html = client.get("/admin/monitoring").get_data(as_text=True)
    rows = re.findall(r'<tr id="evt_\w+">(.*?)</tr>', html, re.S)
    assert len(rows) == 2
    newest, oldest = rows
    assert "<code>disk</code>" in newest and "<td>none</td>" in newest
    assert "<code>payments-eu</code>" in oldest
    assert "rule 1: severity=critical service=payments" in oldest
    assert "holding statement payments-outage" in oldest and "opened" in oldest


def test_audit_page_filters_by_incident_and_person_and_pages_back(
    app: Flask, client: FlaskClient, r: redis.Redis, people: dict[str, Any], signed_in
) -> None:
    one = create(app, "arne@acme.example", "approver", severity="minor")
    two = create(app, "bo@acme.example", "approver", severity="minor")
    for n in range(60):
        audit.record(r, "cli:root", "token.created", name=f"t{n}", role="helpdesk")
    signed_in(client, people["admin"].email)
    html = client.get(f"/admin/audit?incident_id={one['incident_id']}").get_data(as_text=True)
    assert set(re.findall(r'<tr data-action="([\w.]+)">', html)) == {
        "announcement.created",
        "announcement.published",
    }
    assert two["incident_id"] not in html.split("<table", 1)[1]
    html = client.get("/admin/audit?actor=bo@acme.example").get_data(as_text=True)
    assert re.findall(r"<td><a [^>]+>([^<]+)</a></td>", html) == ["bo@acme.example"] * 2
    first = client.get("/admin/audit").get_data(as_text=True)
    assert len(re.findall(r"<tr data-action=", first)) == 50
    older = re.search(r'href="(/admin/audit\?before=[^"]+)">Older', first).group(1)
    rest = client.get(older.replace("&amp;", "&")).get_data(as_text=True)
    shown = len(re.findall(r"<tr data-action=", rest))
    assert shown == r.xlen(audit.AUDIT_KEY) - 50
    assert "Older" not in rest and "Newest" in rest


def test_pages_stay_csp_friendly(
    app: Flask, client: FlaskClient, people: dict[str, Any], signed_in: Callable[..., str]
) -> None:
    """No inline script or event handler anywhere; page scripts never parse text as HTML."""
    published = create(app, "arne@acme.example", "approver", severity="minor")
    signed_in(client, people["admin"].email)
    paths = [p for m, p, _ in MATRIX if m == "GET" and "{pending}" not in p]
    for path in paths:
        html = client.get(path.format(incident=published["incident_id"])).get_data(as_text=True)
        assert '<meta name="viewport" content="width=device-width' in html, path
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == [], path
        assert re.findall(r"\son[a-z]+=", html) == [], path
        assert "//cdn" not in html and "https://" not in html.split("<main>")[0], path
    static = Path(__file__).resolve().parent.parent / "broadcaster" / "static" / "admin"
    for script in static.glob("*.js"):
        source = script.read_text()
        for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert banned not in source, (script.name, banned)
