"""A crisis with two audiences and overlapping subscribers, through real workers and fakes."""

from __future__ import annotations

from collections import Counter

import pytest

from broadcaster.domain import unsubscribe_links as unsubscribe
from channels import PERSONAL

ANNOUNCEMENT = {
    "title": "Power outage",
    "body": "Parts of Amsterdam have no power since 14:05. Next update at 15:00.",
    "severity": "minor",
    "status": "identified",
    "audiences": ["consumers", "business"],
    "channels": ["email", "sms"],
    "translations": {
        "nl": {
            "title": "Stroomstoring",
            "body": "Delen van Amsterdam zijn sinds 14:05 zonder stroom.",
        },
        "sv": {"title": "Strömavbrott", "body": "Delar av Amsterdam saknar ström sedan 14:05."},
    },
}

PEOPLE = [
    {
        "external_id": "anna",
        "email": "anna@example.com",
        "phone": "+31612345001",
        "locale": "nl",
        "audiences": ["consumers"],
    },
    {
        "external_id": "bo",
        "email": "bo@example.com",
        "phone": "+46701234567",
        "locale": "sv",
        "audiences": ["consumers", "business"],
    },
    {"external_id": "dag", "email": "dag@example.com", "locale": "da", "audiences": ["business"]},
    {"external_id": "eve", "phone": "+31612345004", "audiences": ["business"]},
    {"external_id": "staff", "email": "staff@example.com", "audiences": ["staff"]},
]


@pytest.fixture
def crisis(client, tokens, run_jobs, providers):
    report = client.post("/api/v1/subscribers", json=PEOPLE, headers=tokens["admin"]).get_json()
    assert report["created"] == 5
    response = client.post("/api/v1/announcements", json=ANNOUNCEMENT, headers=tokens["admin"])
    assert response.status_code == 202
    run_jobs()
    people = client.get("/api/v1/subscribers", headers=tokens["admin"]).get_json()["items"]
    return response.get_json()["id"], {p["external_id"]: p["id"] for p in people}


def test_who_got_what_in_which_language_with_which_routes(crisis, providers):
    sendgrid, twilio = providers
    emails = {address: payload for address, payload in sendgrid.accepted()}
    # Staff get the agent brief first (the plan's [staff]), not the customers' message.
    assert Counter(a for a, _ in sendgrid.accepted()) == {
        "staff@example.com": 1,
        "anna@example.com": 1,
        "bo@example.com": 1,
        "dag@example.com": 1,
    }
    assert sendgrid.accepted()[0][1]["subject"] == "Staff brief: Power outage"
    texts = {form["To"]: form["Body"] for form in twilio.accepted()}
    assert Counter(f["To"] for f in twilio.accepted()) == {
        "+31612345001": 1,
        "+46701234567": 1,
        "+31612345004": 1,
    }

    anna = emails["anna@example.com"]  # nl, consumers only
    assert anna["subject"] == "Acme Energy: Stroomstoring"
    assert "Delen van Amsterdam" in anna["content"][0]["value"]
    assert "Technisch probleem" in anna["content"][1]["value"]
    assert "Account manager" not in anna["content"][1]["value"]
    bo = emails["bo@example.com"]  # sv, consumers + business: routes of both, merged
    assert bo["subject"] == "Acme Energy: Strömavbrott"
    # The plan's texts in Swedish too: need, channel and hours.
    assert "Kundansvarig: Telefon" in bo["content"][0]["value"]
    assert "mån-fre 08:00-18:00" in bo["content"][0]["value"]
    assert bo["content"][0]["value"].count("Livechatt") == 1
    assert "Account manager" not in bo["content"][0]["value"]
    dag = emails["dag@example.com"]  # da, no Danish translation: English text
    assert dag["subject"] == "Acme Energy: Power outage"
    assert "Account manager" in dag["content"][0]["value"]

    assert texts["+31612345001"].startswith(
        "Acme Energy: Oorzaak gevonden: Stroomstoring. Delen van Amsterdam"
    )
    assert "Technisch probleem: https://acme.example/chat" in texts["+31612345001"]
    assert texts["+46701234567"].startswith("Acme Energy: Orsak identifierad: Strömavbrott.")
    assert texts["+31612345004"].startswith("Acme Energy: Identified: Power outage.")
    assert "Account manager: +31 20 765 4321" in texts["+31612345004"]
    assert all(body.endswith(" http://127.0.0.1:8000/status") for body in texts.values())


def test_every_email_has_its_own_signed_unsubscribe_link(crisis, providers, app):
    sendgrid, _ = providers
    secret = app.config["SECRET_KEY"]
    _, ids = crisis
    for address, payload in sendgrid.accepted():
        [person] = [
            p
            for req in sendgrid.requests
            for p in req["json"]["personalizations"]
            if p["to"][0]["email"] == address
        ]
        url = person["substitutions"]["-unsubscribe_url-"]
        token = url.rsplit("/", 1)[1]
        data = unsubscribe.read(secret, token)
        assert data["c"] == "email" and data["s"] == ids[address.split("@")[0]]
        assert person["headers"] == {
            "List-Unsubscribe": f"<{url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
        assert "-unsubscribe_url-" in payload["content"][0]["value"]


def test_unsubscribe_link_opts_out_and_next_announcement_skips(
    crisis, client, tokens, run_jobs, providers, app
):
    sendgrid, _ = providers
    _, ids = crisis
    link = unsubscribe.link(app.config["SECRET_KEY"], "http://x", ids["anna"])
    path = "/unsubscribe/" + link.rsplit("/", 1)[1]
    page = client.get(path)  # mail scanners follow links: GET only asks, in her language
    assert page.status_code == 200
    assert "Afmelding bevestigen" in page.get_data(as_text=True)
    assert (
        client.get(f"/api/v1/subscribers/{ids['anna']}", headers=tokens["admin"]).get_json()[
            "opt_outs"
        ]
        == []
    )
    done = client.post(path)
    assert done.status_code == 200 and "U bent afgemeld" in done.get_data(as_text=True)
    assert client.get(f"/api/v1/subscribers/{ids['anna']}", headers=tokens["admin"]).get_json()[
        "opt_outs"
    ] == ["email"]
    # One-click (RFC 8058) from a mail client, for Bo.
    bo_link = unsubscribe.link(app.config["SECRET_KEY"], "http://x", ids["bo"])
    one_click = client.post(
        "/unsubscribe/" + bo_link.rsplit("/", 1)[1], data={"List-Unsubscribe": "One-Click"}
    )
    assert one_click.status_code == 204

    sendgrid.reset()
    ann = client.post(
        "/api/v1/announcements", json={**ANNOUNCEMENT, "title": "Update"}, headers=tokens["admin"]
    ).get_json()["id"]
    run_jobs()
    assert [a for a, _ in sendgrid.accepted()] == ["staff@example.com", "dag@example.com"]
    counts = client.get(f"/api/v1/announcements/{ann}", headers=tokens["admin"]).get_json()[
        "deliveries"
    ]
    assert counts["email"]["skipped"] == 2 and counts["email"]["sent"] == 1
    assert counts["sms"]["sent"] == 3, "email opt-out leaves SMS alone"
    records = client.get(
        f"/api/v1/announcements/{ann}/deliveries", headers=tokens["admin"]
    ).get_json()["items"]
    skipped = [r for r in records if r["state"] == "skipped"]
    assert {r["subscriber_id"] for r in skipped} == {ids["anna"], ids["bo"]}
    assert all(r["error"] == "opted out" for r in skipped)


def test_forged_or_expired_unsubscribe_links_are_refused(client, app, tokens):
    forged = unsubscribe.link("not-the-secret", "http://x", "someone").rsplit("/", 1)[1]
    assert client.get("/unsubscribe/" + forged).status_code == 400
    assert client.post("/unsubscribe/" + forged).status_code == 400
    assert (
        unsubscribe.read(
            app.config["SECRET_KEY"],
            unsubscribe.link(app.config["SECRET_KEY"], "http://x", "s").rsplit("/", 1)[1],
            max_age=-1,
        )
        is None
    )


def test_links_mailed_in_the_old_format_still_work_and_tampering_fails(app):
    secret = app.config["SECRET_KEY"]
    old = unsubscribe._serializer(secret).dumps({"s": "abc123", "c": "email"})
    assert unsubscribe.read(secret, old) == {"s": "abc123", "c": "email"}
    token = unsubscribe.link(secret, "http://x", "abc123", "sms").rsplit("/", 1)[1]
    assert unsubscribe.read(secret, token) == {"s": "abc123", "c": "sms"}
    someone_else = token.replace("abc123", "abc124", 1)
    assert unsubscribe.read(secret, someone_else) is None
    other_channel = token.replace(".sms.", ".email.", 1)
    assert unsubscribe.read(secret, other_channel) is None


def test_opt_out_api_and_opt_in(crisis, client, tokens, run_jobs, providers):
    _, twilio = providers
    _, ids = crisis
    out = client.post(
        f"/api/v1/subscribers/{ids['eve']}/opt-out",
        json={"channels": ["sms"]},
        headers=tokens["helpdesk"],
    )
    assert out.status_code == 200 and out.get_json()["opt_outs"] == ["sms"]
    bad = client.post(
        f"/api/v1/subscribers/{ids['eve']}/opt-out",
        json={"channels": ["fax"]},
        headers=tokens["helpdesk"],
    )
    assert bad.status_code == 422
    assert (
        client.post(
            "/api/v1/subscribers/nobody/opt-out", json={}, headers=tokens["admin"]
        ).status_code
        == 404
    )
    twilio.reset()
    client.post("/api/v1/announcements", json=ANNOUNCEMENT, headers=tokens["admin"])
    run_jobs()
    assert "+31612345004" not in [f["To"] for f in twilio.accepted()]
    back = client.post(
        f"/api/v1/subscribers/{ids['eve']}/opt-in", json={}, headers=tokens["helpdesk"]
    )
    assert back.get_json()["opt_outs"] == []
    # Re-importing the person does not undo an opt-out (only opt-in does).
    client.post(f"/api/v1/subscribers/{ids['eve']}/opt-out", json={}, headers=tokens["helpdesk"])
    client.post("/api/v1/subscribers", json=[PEOPLE[3]], headers=tokens["admin"])
    assert client.get(f"/api/v1/subscribers/{ids['eve']}", headers=tokens["admin"]).get_json()[
        "opt_outs"
    ] == sorted(PERSONAL)  # no channels named: every personal channel


def test_erase_removes_contact_data_and_keeps_anonymous_deliveries(crisis, client, tokens, r):
    ann, ids = crisis
    assert (
        client.delete(f"/api/v1/subscribers/{ids['anna']}", headers=tokens["admin"]).status_code
        == 204
    )
    assert (
        client.get(f"/api/v1/subscribers/{ids['anna']}", headers=tokens["admin"]).status_code == 404
    )
    assert (
        client.delete(f"/api/v1/subscribers/{ids['anna']}", headers=tokens["admin"]).status_code
        == 404
    )
    listed = client.get("/api/v1/subscribers?per_page=100", headers=tokens["admin"]).get_json()
    assert ids["anna"] not in {p["id"] for p in listed["items"]} and listed["total"] == 4
    # Nothing in Redis still holds her address or number in clear.
    for key in r.scan_iter("*"):
        kind = r.type(key).decode()
        blob = (
            r.get(key)
            if kind == "string"
            else b"".join(k + v for k, v in r.hgetall(key).items())
            if kind == "hash"
            else b"".join(r.zrange(key, 0, -1))
            if kind == "zset"
            else b""
        )
        assert b"anna@example.com" not in blob and b"+31612345001" not in blob, key
    records = client.get(
        f"/api/v1/announcements/{ann}/deliveries?per_page=100", headers=tokens["admin"]
    ).get_json()["items"]
    hers = [d for d in records if d["subscriber_id"] == ids["anna"]]
    assert len(hers) == 2 and all(d["state"] == "sent" for d in hers)
    # The same person imported again is a new subscriber.
    again = client.post("/api/v1/subscribers", json=[PEOPLE[0]], headers=tokens["admin"]).get_json()
    assert again["created"] == 1
