"""Public endpoints: banner JSON, status page data, Atom feed, agent brief."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from zoneinfo import ZoneInfo

import feedparser

from tests.helpers import publish

BASE = {
    "title": "Power outage",
    "body": "Parts of Amsterdam have no power since 14:05.",
    "severity": "minor",
    "status": "investigating",
    "audiences": ["consumers"],
    "channels": ["banner"],
    "translations": {
        "nl": {"title": "Stroomstoring", "body": "Delen van Amsterdam zonder stroom."}
    },
}


def test_no_incident_no_banner(client):
    response = client.get("/banner.json")
    assert response.status_code == 200
    assert response.get_json()["banners"] == []
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_banner_appears_at_once_with_facts_routes_and_cache_headers(client, tokens):
    created = publish(client, tokens, BASE)
    response = client.get("/banner.json?audience=consumers&lang=nl")  # no worker has run
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=15"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    body = response.get_json()
    assert body["poll"] == 30 and body["locale"] == "nl"
    [banner] = body["banners"]
    assert banner["incident_id"] == created["incident_id"]
    assert banner["key"] == f"{created['incident_id']}:{created['id']}"
    assert banner["severity"] == "minor" and banner["all_clear"] is False
    assert banner["title"] == "Stroomstoring"
    assert banner["text"] == (
        "Wordt onderzocht: Stroomstoring. Delen van Amsterdam zonder stroom. "
        "Technisch probleem: https://acme.example/chat"
    )
    assert banner["link"] == f"http://127.0.0.1:8000/status?lang=nl#{created['incident_id']}"
    assert banner["routes"][0] == {
        "need": "Technisch probleem",
        "channel": "Livechat",
        "contact": "https://acme.example/chat",
        "hours": "24/7",
    }
    # Another audience does not see it; a business customer's banner stays empty.
    assert client.get("/banner.json?audience=business").get_json()["banners"] == []
    # Accept-Language picks the language when ?lang= is absent.
    da = client.get("/banner.json", headers={"Accept-Language": "sv;q=0.5, nl;q=0.9"})
    assert da.get_json()["locale"] == "nl"


def test_etag_gives_304_until_the_next_update(client, tokens):
    created = publish(client, tokens, BASE)
    first = client.get("/banner.json?audience=consumers")
    etag = first.headers["ETag"]
    again = client.get("/banner.json?audience=consumers", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    publish(
        client,
        tokens,
        BASE,
        incident_id=created["incident_id"],
        status="identified",
        body="The cause is a broken cable.",
    )
    changed = client.get("/banner.json?audience=consumers", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    [banner] = changed.get_json()["banners"]
    assert banner["status"] == "identified" and "broken cable" in banner["text"]
    assert banner["key"] != f"{created['incident_id']}:{created['id']}", "a new key re-shows it"


def test_most_severe_first_and_only_banner_announcements(client, tokens):
    publish(client, tokens, BASE, title="Slow portal", severity="info")
    publish(client, tokens, BASE, title="Gas leak", severity="critical")
    publish(client, tokens, BASE, title="Email only", channels=["email"])
    [banner] = client.get("/banner.json").get_json()["banners"]  # one banner per site
    assert banner["title"] == "Gas leak"
    assert banner["more"]["count"] == 1  # "Slow portal"; "Email only" is not on the banner


def test_a_storm_of_incidents_shows_the_most_pressing_and_counts_the_rest(client, tokens):
    for n in range(6):
        publish(client, tokens, BASE, title=f"Minor {n}", severity="minor")
    publish(client, tokens, BASE, title="Gas leak", severity="critical")
    [banner] = client.get("/banner.json").get_json()["banners"]
    # Most severe first; the status page lists the rest, and the banner says how many.
    assert banner["title"] == "Gas leak"
    assert banner["more"]["count"] == 6 and banner["more"]["label"] == "+6 more"


def test_concurrent_publishes_all_reach_the_banner(app, tokens, r):
    """Refreshes are single-flight: a publish during another's refresh is not lost."""
    from concurrent.futures import ThreadPoolExecutor

    def post(n: int) -> None:
        body = {**BASE, "title": f"Outage {n}"}
        if n == 11:  # the one that must lead the banner, whenever its refresh ran
            body.update(severity="critical", bypass_reason="test: no second person here")
        answer = app.test_client().post("/api/v1/announcements", json=body, headers=tokens["admin"])
        assert answer.status_code == 202

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(post, range(12)))
    [banner] = app.test_client().get("/banner.json").get_json()["banners"]
    assert banner["title"] == "Outage 11" and banner["more"]["count"] == 11
    assert not r.exists("bc:banner:dirty") and not r.exists("bc:banner:refreshing")


def test_resolved_incident_shows_all_clear_then_disappears(make_app, tokens):
    client = make_app(BANNER_ALL_CLEAR_SECONDS=2).test_client()
    created = publish(client, tokens, BASE)
    publish(
        client,
        tokens,
        BASE,
        incident_id=created["incident_id"],
        status="resolved",
        body="Power is back everywhere.",
    )
    [banner] = client.get("/banner.json").get_json()["banners"]
    assert banner["all_clear"] is True and banner["status"] == "resolved"
    assert banner["expires_at"]
    time.sleep(2.5)
    assert client.get("/banner.json").get_json()["banners"] == []


def test_unknown_audience_is_a_json_404(client):
    response = client.get("/banner.json?audience=martians")
    assert response.status_code == 404
    assert "martians" in response.get_json()["message"]


def test_banner_js_is_served_cacheable(client):
    response = client.get("/banner.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert "banner.json" in response.get_data(as_text=True)


def test_status_json_timeline_order_corrections_and_recent_resolved(client, tokens, r):
    first = publish(client, tokens, BASE)
    correction = publish(
        client, tokens, BASE, corrects=first["id"], body="Correction: Amsterdam-Oost."
    )
    update = publish(client, tokens, BASE, incident_id=first["incident_id"], status="identified")
    pending = client.post(
        "/api/v1/announcements", json={**BASE, "title": "Draft"}, headers=tokens["helpdesk"]
    ).get_json()
    old = publish(client, tokens, BASE, title="Old outage")
    publish(
        client, tokens, BASE, incident_id=old["incident_id"], status="resolved", title="Old fixed"
    )
    # Pretend the old incident was resolved 15 days ago, and drop the precomputed status
    # documents so the next read builds them from that (a publish renders only its own
    # incident again; test_status_document_ages_without_a_publish shows the window moving
    # with no publish at all).
    key = f"bc:inc:{old['incident_id']}"
    incident = json.loads(r.get(key))
    incident["resolved_at"] -= 15 * 86400
    r.set(key, json.dumps(incident))
    for stored in r.keys("bc:status:doc:*"):  # built anew, from the edited incident
        r.delete(stored)
    recent = publish(client, tokens, BASE, title="Recent outage")
    publish(client, tokens, BASE, incident_id=recent["incident_id"], status="resolved")

    data = client.get("/status.json").get_json()
    assert [i["id"] for i in data["open"]] == [first["incident_id"]]
    updates = data["open"][0]["updates"]
    assert [u["id"] for u in updates] == [update["id"], correction["id"], first["id"]]
    assert updates[1]["corrects"] == first["id"]
    assert pending["id"] not in json.dumps(data), "unapproved announcements are not public"
    assert [i["id"] for i in data["resolved"]] == [recent["incident_id"]]
    # staff is internal in the example plan: its routes are not for the public.
    assert {g["audience"] for g in data["routes"]} == {"consumers", "business"}
    page = client.get("/status?lang=nl")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and '<html lang="nl">' in html
    assert "Actuele storingen" in html and "Stroomstoring" in html and "Correctie" in html


def test_status_page_escapes_announcement_text(client, tokens):
    publish(client, tokens, BASE, title="<script>alert(1)</script>", translations={})
    html = client.get("/status").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_atom_feed_has_one_entry_per_published_announcement(client, tokens):
    first = publish(client, tokens, BASE)
    publish(
        client, tokens, BASE, incident_id=first["incident_id"], status="resolved", title="Fixed"
    )
    client.post(
        "/api/v1/announcements", json={**BASE, "title": "Draft"}, headers=tokens["helpdesk"]
    )
    response = client.get("/status.atom")
    assert response.mimetype == "application/atom+xml"
    feed = feedparser.parse(response.data)
    assert not feed.bozo, feed.bozo_exception
    assert [e.title for e in feed.entries] == ["Fixed", "Power outage"]
    assert all(e.link.startswith("http://127.0.0.1:8000/status") for e in feed.entries)


def test_agent_brief_in_every_language(client, tokens):
    # 15:00 in the plan's time zone, two days ahead (a promise must lie in the next 30 days).
    day = datetime.now(UTC).date() + timedelta(days=2)
    promise = datetime.combine(day, dt_time(15, 0), ZoneInfo("Europe/Amsterdam"))
    created = publish(client, tokens, BASE, next_update_at=promise.isoformat())
    brief = client.get(
        f"/api/v1/incidents/{created['incident_id']}/brief", headers=tokens["helpdesk"]
    ).get_json()
    assert brief["facts"] == BASE["body"] and brief["status"] == "investigating"
    assert brief["next_update_at"] == promise.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    replies = {x["locale"]: x for x in brief["replies"]}
    assert set(replies) == {"en", "nl", "da", "sv"}
    assert replies["nl"]["language"] == "nl"
    assert replies["nl"]["text"].startswith(
        "Bedankt voor uw bericht.\nWe zijn op de hoogte van dit probleem: Stroomstoring."
    )
    assert "15:00" in replies["nl"]["text"], "next update in the plan's time zone"
    assert (
        replies["da"]["language"] == "en"
        and "Thank you for contacting us." in replies["da"]["text"]
    )
    assert brief["routes"][0]["audience"] == "consumers"
    pending = client.post(
        "/api/v1/announcements", json={**BASE, "severity": "major"}, headers=tokens["admin"]
    ).get_json()
    assert (
        client.get(
            f"/api/v1/incidents/{pending['incident_id']}/brief", headers=tokens["admin"]
        ).status_code
        == 409
    )
    assert (
        client.get("/api/v1/incidents/inc_nope/brief", headers=tokens["admin"]).status_code == 404
    )


def test_publishes_off_the_banner_skip_the_refresh_but_follow_ups_do_not(client, tokens, r):
    r.set("bc:banner::en", "[]")
    r.set("bc:banner:dirty", "")  # nothing pending
    email_only = publish(client, tokens, BASE, title="Invoices late", channels=["email"])
    assert r.get("bc:banner::en") == b"[]", "an email-only publish left the banner alone"
    on_banner = publish(client, tokens, BASE, title="Power outage")
    assert [b["title"] for b in client.get("/banner.json").get_json()["banners"]] == [
        "Power outage"
    ]
    # A resolution sent by email only still turns the banner into an all-clear.
    publish(
        client,
        tokens,
        BASE,
        incident_id=on_banner["incident_id"],
        status="resolved",
        channels=["email"],
        title="Power is back",
    )
    [banner] = client.get("/banner.json").get_json()["banners"]
    assert banner["all_clear"] is True
    assert email_only["incident_id"] != on_banner["incident_id"]


def test_each_web_process_keeps_the_banner_a_moment(make_app, tokens, r):
    app = make_app(BANNER_PROCESS_CACHE=30)
    client = app.test_client()
    publish(client, tokens, BASE, title="Power outage")
    first = client.get("/banner.json").get_json()["banners"]
    # Another process refreshed Redis: this one keeps its copy for BANNER_PROCESS_CACHE…
    r.set("bc:banner::en", "[]")
    assert client.get("/banner.json").get_json()["banners"] == first
    # …but its own publish makes it recompute and drop the copy at once.
    publish(client, tokens, BASE, title="Gas leak", severity="minor")
    [banner] = client.get("/banner.json").get_json()["banners"]
    assert banner["title"] == "Gas leak" and banner["more"]["count"] == 1


def test_public_pages_served_by_gunicorn_carry_one_date_header(redis_server, tmp_path):
    # Two Date headers (werkzeug's and gunicorn's) are a protocol error proxies may refuse;
    # checked on a miss, on a microcache hit and on a 304, through the real server.
    import signal
    from http.client import HTTPConnection

    from broadcaster.infra.redis_server import free_port
    from tests.processes import clean_env, http, start, wait_for, web_command

    port = free_port()
    env = clean_env(
        BROADCASTER_DATA_DIR=str(tmp_path / "var"), BROADCASTER_REDIS_URL=redis_server.url
    )
    web = start(web_command(port, "--workers", "1"), env, tmp_path, tmp_path / "web.log")
    try:
        wait_for(lambda: http("GET", f"http://127.0.0.1:{port}/healthz")[0] == 200, what="web up")
        connection = HTTPConnection("127.0.0.1", port, timeout=10)
        answers = []
        for path, headers in (
            ("/banner.json", {}),
            ("/banner.json", {}),  # within the second: from the microcache
            ("/status", {}),
            ("/banner.json", {"Authorization": "Bearer x"}),  # past the microcache: Flask's own
        ):
            connection.request("GET", path, headers=headers)
            answer = connection.getresponse()
            answer.read()
            answers.append(answer)
        etag = answers[0].getheader("ETag")
        connection.request("GET", "/banner.json", headers={"If-None-Match": etag})
        answer = connection.getresponse()
        answer.read()
        answers.append(answer)
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(30)
    assert [a.status for a in answers] == [200, 200, 200, 200, 304]
    assert [len(a.headers.get_all("Date") or []) for a in answers] == [1, 1, 1, 1, 1]
