"""Internal audiences stay internal (issue 15): an announcement only for our own people never
reaches a public surface, and internal routes are never listed publicly.

Through the real app, real RQ workers, the real SDKs against the fake Mastodon, Bluesky and
SendGrid, and a webhook receiver on 127.0.0.1 that checks signatures.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient

from broadcaster.domain.plan import PlanError, load_plan, parse_plan
from tests.helpers import announce, deliveries, drain, subscribe
from tests.test_webhook import SECRET, Receiver

PLAN = """
[organisation]
name = "Acme Energy"
locales = ["en", "nl"]

[policy]
approval_required = []

[channels_by_severity]
info = ["banner", "social", "webhook", "email"]
minor = ["banner", "social", "webhook", "email"]
major = ["banner", "social", "webhook", "email"]
critical = ["banner", "social", "webhook", "email"]

[audiences.consumers]
channels = ["email", "banner", "social", "webhook"]
[[audiences.consumers.routes]]
need = "Emergency"
channel = "Phone"
contact = "+31 20 123 4567"

[audiences.staff]
internal = {internal}
channels = ["email", "webhook"]
[[audiences.staff.routes]]
need = "Incident room"
channel = "Chat"
contact = "https://acme.example/incident-room"

[[webhooks]]
name = "staff-hook"
url = "{url}/staff"
secret = "{secret}"
allow_private = true  # the receiver listens on 127.0.0.1
audiences = ["staff"]

[[webhooks]]
name = "helpdesk"
url = "{url}/public"
secret = "{secret}"
allow_private = true
"""

INTERNAL_ROUTE = "Incident room"
INTERNAL_CONTACT = "acme.example/incident-room"

STAFF_ONLY = {
    "title": "Database failover tonight",
    "body": "Staff: the primary fails over at 23:00. Join the incident room.",
    "severity": "major",
    "audiences": ["staff"],
}
FOR_EVERYONE = {
    "title": "Payments down",
    "body": "Card payments fail since 09:10. We are working on it.",
    "severity": "major",
    "audiences": ["consumers", "staff"],
}


def plan_file(tmp_path: Path, receiver: Receiver, internal: bool = True) -> str:
    path = tmp_path / ("plan.toml" if internal else "plan-public.toml")
    path.write_text(
        PLAN.format(url=receiver.url, secret=SECRET, internal=str(internal).lower()),
        encoding="utf-8",
    )
    return str(path)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def social(mastodon, bluesky) -> dict[str, Any]:
    return {
        "MASTODON_BASE_URL": mastodon.url,
        "MASTODON_ACCESS_TOKEN": mastodon.TOKEN,
        "BLUESKY_BASE_URL": bluesky.url,
        "BLUESKY_HANDLE": bluesky.HANDLE,
        "BLUESKY_APP_PASSWORD": bluesky.APP_PASSWORD,
    }


@pytest.fixture
def app(make_app, tmp_path, receiver, social) -> Flask:
    return make_app(PLAN=plan_file(tmp_path, receiver), **social)


@pytest.fixture
def client(app: Flask, tokens) -> FlaskClient:
    client = app.test_client()
    subscribe(
        client,
        tokens["admin"],
        [
            {"external_id": "c", "email": "c@example.com", "audiences": ["consumers"]},
            {"external_id": "s", "email": "s@example.com", "audiences": ["staff"]},
        ],
    )
    return client


def public_surfaces(client: FlaskClient) -> dict[str, str]:
    """Everything a stranger can read, as text."""
    return {
        "/status": client.get("/status").get_data(as_text=True),
        "/status?lang=nl": client.get("/status?lang=nl").get_data(as_text=True),
        "/status.json": client.get("/status.json").get_data(as_text=True),
        "/status.atom": client.get("/status.atom").get_data(as_text=True),
        "/banner.json": client.get("/banner.json").get_data(as_text=True),
        "/banner.json?audience=consumers": client.get("/banner.json?audience=consumers").get_data(
            as_text=True
        ),
    }


def events(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    return [json.loads(r["raw"]) for r in receiver.requests if r["path"] == path]


def test_a_staff_only_announcement_reaches_staff_and_no_public_surface(
    app, client, tokens, receiver, mastodon, bluesky, providers
):
    created = announce(client, tokens["admin"], STAFF_ONLY)
    drain(app)

    # The staff audience's own channels: its webhook and its people's email.
    [staff_event] = events(receiver, "/staff")
    assert staff_event["announcement"]["id"] == created["id"]
    assert all(r["verified"] for r in receiver.requests)
    assert [to for to, _ in providers[0].accepted()] == ["s@example.com"]
    # Nothing public: no post, no public webhook.
    assert events(receiver, "/public") == [], "the public webhook target was called"
    assert mastodon.posts == [] and bluesky.posts == []
    records = deliveries(client, tokens["admin"], created["id"])
    assert sorted(r["channel"] for r in records) == ["email", "webhook"]
    assert "staff-hook" in {r["subscriber_id"] for r in records}

    pages = public_surfaces(client)
    for where, text in pages.items():
        assert STAFF_ONLY["title"] not in text, where
        assert created["incident_id"] not in text, where
        assert INTERNAL_ROUTE not in text and INTERNAL_CONTACT not in text, where
    data = json.loads(pages["/status.json"])
    assert data["open"] == [] and data["resolved"] == []
    assert [g["audience"] for g in data["routes"]] == ["consumers"]
    assert feedparser.parse(pages["/status.atom"]).entries == []
    assert json.loads(pages["/banner.json"])["banners"] == []
    assert "No current incidents." in pages["/status"]
    # The internal audience has no public banner, and is not named in the refusal.
    refused = client.get("/banner.json?audience=staff")
    assert refused.status_code == 404
    assert "staff" not in refused.get_json()["message"].replace("'staff'", "")


def test_a_mixed_announcement_is_public_without_the_internal_routes(
    app, client, tokens, receiver, mastodon, bluesky, providers
):
    created = announce(client, tokens["admin"], FOR_EVERYONE)
    drain(app)

    pages = public_surfaces(client)
    for where, text in pages.items():
        assert INTERNAL_ROUTE not in text and INTERNAL_CONTACT not in text, where
    data = json.loads(pages["/status.json"])
    [incident] = data["open"]
    assert incident["id"] == created["incident_id"] and incident["title"] == "Payments down"
    assert incident["audiences"] == ["consumers"], "internal audiences are not named"
    [banner] = json.loads(pages["/banner.json"])["banners"]
    assert banner["title"] == "Payments down"
    assert [r["need"] for r in banner["routes"]] == ["Emergency"]
    assert [e.title for e in feedparser.parse(pages["/status.atom"]).entries] == ["Payments down"]
    assert "+31 20 123 4567" in pages["/status"], "the public routes are listed"

    assert len(mastodon.posts) == 1 and len(bluesky.posts) == 1
    [public_event] = events(receiver, "/public")
    [staff_event] = events(receiver, "/staff")
    assert public_event["announcement"]["audiences"] == ["consumers"]
    assert staff_event["announcement"]["audiences"] == ["consumers", "staff"]
    assert sorted(to for to, _ in providers[0].accepted()) == ["c@example.com", "s@example.com"]


def test_an_internal_follow_up_of_a_public_incident_stays_internal(
    app, client, tokens, receiver, mastodon, bluesky
):
    first = announce(client, tokens["admin"], FOR_EVERYONE, audiences=["consumers"])
    drain(app)
    follow_up = announce(
        client,
        tokens["admin"],
        STAFF_ONLY,
        incident_id=first["incident_id"],
        title="Root cause: expired certificate",
        body="Internal: the payment gateway certificate expired; the fix ships at 11:00.",
        status="resolved",
        severity="critical",
    )
    drain(app)

    pages = public_surfaces(client)
    for where, text in pages.items():
        assert "expired certificate" not in text and "certificate expired" not in text, where
        assert follow_up["id"] not in text, where
    data = json.loads(pages["/status.json"])
    [incident] = data["open"]
    assert incident["id"] == first["incident_id"]
    assert incident["status"] == "investigating", "the internal 'resolved' changed nothing"
    assert incident["severity"] == "major"
    assert [u["id"] for u in incident["updates"]] == [first["id"]]
    assert data["resolved"] == []
    [banner] = json.loads(pages["/banner.json"])["banners"]
    assert banner["announcement_id"] == first["id"] and not banner["all_clear"]
    assert len(feedparser.parse(pages["/status.atom"]).entries) == 1
    # Still one post per network and one public event: the follow-up went only inside.
    assert len(mastodon.posts) == 1 and len(bluesky.posts) == 1
    assert [e["announcement"]["id"] for e in events(receiver, "/public")] == [first["id"]]
    assert [e["announcement"]["id"] for e in events(receiver, "/staff")] == [follow_up["id"]]


def test_an_incident_of_only_internal_announcements_is_not_public(app, client, tokens):
    first = announce(client, tokens["admin"], STAFF_ONLY)
    announce(client, tokens["admin"], STAFF_ONLY, incident_id=first["incident_id"], title="Done")
    announce(
        client,
        tokens["admin"],
        STAFF_ONLY,
        incident_id=first["incident_id"],
        title="All clear",
        status="resolved",
    )
    drain(app)
    for where, text in public_surfaces(client).items():
        assert first["incident_id"] not in text, where
    # The incident itself is there for those signed in.
    found = client.get(f"/api/v1/incidents/{first['incident_id']}", headers=tokens["admin"])
    assert found.status_code == 200


def test_marking_an_audience_internal_takes_its_announcements_off_the_pages(
    make_app, tmp_path, receiver, social, tokens
):
    """The attack as found: before the plan said ``internal``, a staff announcement was the
    current incident on every public surface. The next start with the new plan hides it."""
    before = make_app(PLAN=plan_file(tmp_path, receiver, internal=False), **social)
    client = before.test_client()
    created = announce(client, tokens["admin"], STAFF_ONLY)
    text = json.dumps(public_surfaces(client))
    assert STAFF_ONLY["title"] in text and INTERNAL_ROUTE in text, "the attack, reproduced"

    after = make_app(PLAN=plan_file(tmp_path, receiver), **social).test_client()
    for where, page in public_surfaces(after).items():
        assert STAFF_ONLY["title"] not in page, where
        assert created["incident_id"] not in page, where
        assert INTERNAL_ROUTE not in page, where


# --- preview and compose ----------------------------------------------------------------------


def reach(preview: dict[str, Any]) -> dict[str, bool]:
    return {s["surface"]: s["reaches"] for s in preview["surfaces"]}


def test_the_preview_says_which_surfaces_a_draft_reaches(client, tokens):
    answer = client.post("/api/v1/preview", json=STAFF_ONLY, headers=tokens["helpdesk"])
    assert answer.status_code == 200
    internal = answer.get_json()
    assert internal["visibility"] == "internal"
    assert reach(internal) == {
        "status": False,
        "banner": False,
        "social:mastodon": False,
        "social:bluesky": False,
        "webhook:staff-hook": True,
        "webhook:helpdesk": False,
    }
    assert internal["public"] == [], "no public rendering of an internal announcement"
    assert any("internal audiences only" in w for w in internal["warnings"])
    by_surface = {s["surface"]: s for s in internal["surfaces"]}
    assert by_surface["webhook:staff-hook"]["public"] is False
    assert by_surface["status"]["why"] == "every audience is internal"
    # The staff's own rendering still shows its route.
    assert any(INTERNAL_ROUTE in r["content"]["text"] for r in internal["renderings"])

    mixed = client.post("/api/v1/preview", json=FOR_EVERYONE, headers=tokens["helpdesk"])
    mixed = mixed.get_json()
    assert mixed["visibility"] == "public"
    assert all(reach(mixed).values()), mixed["surfaces"]
    assert mixed["public"] and INTERNAL_ROUTE not in json.dumps(mixed["public"])

    email_only = client.post(
        "/api/v1/preview", json={**FOR_EVERYONE, "channels": ["email"]}, headers=tokens["admin"]
    ).get_json()
    assert reach(email_only) == {
        "status": True,
        "banner": False,
        "social:mastodon": False,
        "social:bluesky": False,
        "webhook:staff-hook": False,
        "webhook:helpdesk": False,
    }


def test_a_stored_announcements_preview_says_it_too(app, client, tokens):
    created = announce(client, tokens["admin"], STAFF_ONLY)
    answer = client.get(f"/api/v1/announcements/{created['id']}/preview", headers=tokens["admin"])
    assert answer.get_json()["visibility"] == "internal"
    assert reach(answer.get_json())["status"] is False


def test_the_compose_page_names_the_internal_audiences(client, people, signed_in):
    signed_in(client, people["helpdesk"].email)
    html = client.get("/admin/compose").get_data(as_text=True)
    assert "staff (internal: never public)" in html
    assert "consumers (internal" not in html
    assert 'id="internal-hint"' in html and "An announcement only for staff stays internal" in html
    assert 'id="preview-surfaces"' in html


# --- the plan ---------------------------------------------------------------------------------


def test_internal_is_false_unless_the_plan_says_so(tmp_path, receiver):
    plan = load_plan(plan_file(tmp_path, receiver))
    assert plan.audiences["staff"].internal is True
    assert plan.audiences["consumers"].internal is False
    targets = {t.name: t for t in plan.webhooks}
    assert targets["staff-hook"].internal is True, "only internal audiences: an internal target"
    assert targets["helpdesk"].internal is False, "every announcement: a public target"
    assert load_plan(None).audiences["staff"].internal is True, "the example plan"


def plan_data(tmp_path: Path, receiver: Receiver) -> dict[str, Any]:
    import tomllib

    return copy.deepcopy(tomllib.loads(Path(plan_file(tmp_path, receiver)).read_text()))


@pytest.mark.parametrize("value", ["yes", 1, 0, "true", [], {}])
def test_a_non_boolean_internal_is_a_plan_error(tmp_path, receiver, value):
    data = plan_data(tmp_path, receiver)
    data["audiences"]["staff"]["internal"] = value
    data["webhooks"][1]["internal"] = value
    with pytest.raises(PlanError) as caught:
        parse_plan(data, "plan.toml")
    lines = str(caught.value).splitlines()[1:]
    assert [line.strip() for line in lines] == [
        f"plan.toml: audiences.staff.internal: must be true or false, not {value!r}",
        f"plan.toml: webhooks[1].internal: must be true or false, not {value!r}",
    ]


def test_a_webhook_target_can_be_marked_internal_or_public(tmp_path, receiver):
    data = plan_data(tmp_path, receiver)
    data["webhooks"][0]["internal"] = False  # staff-only, but a public place
    data["webhooks"][1]["internal"] = True  # every announcement, our own tool
    targets = {t.name: t for t in parse_plan(data, "plan.toml").webhooks}
    assert targets["staff-hook"].internal is False and targets["helpdesk"].internal is True


def test_an_internal_target_without_audiences_gets_internal_announcements(
    make_app, tmp_path, receiver, tokens
):
    path = Path(plan_file(tmp_path, receiver))
    text = path.read_text().replace('url = "' + receiver.url + '/public"', 'url = "{u}"')
    path.write_text(text.replace("{u}", receiver.url + "/public") + "internal = true\n")
    app = make_app(PLAN=str(path))
    client = app.test_client()
    announce(client, tokens["admin"], STAFF_ONLY)
    drain(app)
    assert sorted(r["path"] for r in receiver.requests) == ["/public", "/staff"]
