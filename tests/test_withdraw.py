"""Withdraw, in the open; corrections name the update they correct (issue 16, point 6).

A withdrawn announcement leaves the banner and the status page's current view and stays in
the public history marked "withdrawn: reason"; nothing is deleted. Admins only, with a
reason, once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import feedparser
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape

from broadcaster.domain import audit
from broadcaster.rendering.clock import format_time
from broadcaster.services import services
from tests.helpers import publish

BASE: dict[str, Any] = {
    "title": "Power outage",
    "body": "Parts of Amsterdam have no power.",
    "severity": "minor",
    "status": "investigating",
    "audiences": ["consumers"],
    "channels": ["banner"],
    "translations": {
        "nl": {"title": "Stroomstoring", "body": "Delen van Amsterdam zonder stroom."}
    },
}
TEST_MESSAGE = {**BASE, "title": "TEST please ignore", "body": "Walk-through test message."}
REASON = "A test message from the walk-through, sent by mistake."


def withdraw(
    client: FlaskClient, headers: dict[str, str], announcement_id: str, reason: Any = REASON
) -> Any:
    body = {} if reason is None else {"reason": reason}
    return client.post(
        f"/api/v1/announcements/{announcement_id}/withdraw", json=body, headers=headers
    )


def section(html: str, name: str) -> str:
    """The HTML of ``<section id="name">`` on the status page ("" if absent)."""
    found = re.search(rf'<section id="{name}">(.*?)</section>', html, re.S)
    return found.group(1) if found else ""


def published_at(client: FlaskClient, tokens: dict, announcement_id: str) -> float:
    answer = client.get(f"/api/v1/announcements/{announcement_id}", headers=tokens["admin"])
    return answer.get_json()["published_at"]


# ---------------------------------------------------------------------------- the API


def test_a_withdrawn_test_message_leaves_the_banner_and_current_view_and_stays_in_history(
    client, tokens, r
):
    created = publish(client, tokens, TEST_MESSAGE)
    assert client.get("/banner.json").get_json()["banners"]
    answer = withdraw(client, tokens["admin"], created["id"])
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["withdrawn_reason"] == REASON and body["withdrawn_by"] == "ada"
    assert body["withdrawn_at"] and body["state"] == "published"

    # Gone from the banner, in every locale.
    for lang in ("en", "nl"):
        assert client.get(f"/banner.json?lang={lang}").get_json()["banners"] == []
    # Gone from the current view; in the history, marked, with the reason.
    data = client.get("/status.json").get_json()
    assert data["open"] == []
    [incident] = data["resolved"]
    assert incident["id"] == created["incident_id"]
    assert incident["withdrawn_at"] and incident["resolved_at"] is None
    [update] = incident["updates"]
    assert update["withdrawn"] == {"at": incident["withdrawn_at"], "reason": REASON}
    assert update["title"] == "TEST please ignore"  # nothing is deleted
    html = client.get("/status").get_data(as_text=True)
    assert created["incident_id"] not in section(html, "current")
    assert "No current incidents." in section(html, "current")
    history = section(html, "resolved")
    assert f'id="{created["id"]}"' in history and "withdrawn" in history
    assert "Withdrawn" in history and REASON in history
    dutch = client.get("/status?lang=nl").get_data(as_text=True)
    assert "Ingetrokken" in section(dutch, "resolved") and REASON in dutch

    # The feed keeps the entry and says so.
    feed = feedparser.parse(client.get("/status.atom").data)
    [entry] = feed.entries
    assert entry.title == "Withdrawn: TEST please ignore"
    assert entry.summary.startswith(f"Withdrawn: {REASON}")
    assert "withdrawn" in [t.term for t in entry.tags]

    # Audited, with the reason; the announcement itself is still there, as it was.
    [logged] = audit.entries(r, action="announcement.withdrawn")
    assert logged["actor"] == "ada" and logged["announcement_id"] == created["id"]
    assert logged["details"]["reason"] == REASON
    stored = client.get(f"/api/v1/announcements/{created['id']}", headers=tokens["admin"])
    assert stored.get_json()["body"] == "Walk-through test message."
    incident_api = client.get(
        f"/api/v1/incidents/{created['incident_id']}", headers=tokens["admin"]
    )
    assert incident_api.get_json()["withdrawn_at"]


def test_withdrawing_one_update_leaves_the_incident_on_what_still_stands(client, tokens):
    first = publish(client, tokens, BASE)
    wrong = publish(
        client,
        tokens,
        BASE,
        incident_id=first["incident_id"],
        severity="critical",
        status="resolved",
        body="Wrongly said: all fixed.",
        translations={"nl": {"title": "Opgelost", "body": "Ten onrechte: alles opgelost."}},
    )
    [banner] = client.get("/banner.json?lang=nl").get_json()["banners"]
    assert banner["all_clear"] is True
    assert withdraw(client, tokens["admin"], wrong["id"]).status_code == 200

    # The incident is open again with the facts of the first update.
    [banner] = client.get("/banner.json?lang=nl").get_json()["banners"]
    assert banner["announcement_id"] == first["id"] and banner["all_clear"] is False
    assert banner["severity"] == "minor" and banner["status"] == "investigating"
    data = client.get("/status.json").get_json()
    [incident] = data["open"]
    assert incident["status"] == "investigating" and incident["severity"] == "minor"
    assert incident["resolved_at"] is None
    assert [u["withdrawn"] is not None for u in incident["updates"]] == [True, False]
    html = client.get("/status").get_data(as_text=True)
    current = section(html, "current")
    # In the current view only the mark: when and why, not the withdrawn text.
    assert "Wrongly said" not in current and REASON in current
    assert f'id="{wrong["id"]}" class="withdrawn"' in current
    stored = client.get(f"/api/v1/incidents/{first['incident_id']}", headers=tokens["admin"])
    assert stored.get_json()["status"] == "investigating"
    # A follow-up carries on as usual.
    publish(client, tokens, BASE, incident_id=first["incident_id"], status="identified")
    [banner] = client.get("/banner.json").get_json()["banners"]
    assert banner["status"] == "identified"


def test_only_admins_may_withdraw(client, tokens):
    created = publish(client, tokens, BASE)
    for role in ("helpdesk", "approver", "monitor"):
        answer = withdraw(client, tokens[role], created["id"])
        assert answer.status_code == 403, role
        assert "may not withdraw" in answer.get_json()["message"]
    assert withdraw(client, {}, created["id"]).status_code == 401
    assert client.get("/banner.json").get_json()["banners"], "still shown"


def test_a_reason_is_required_with_a_clear_message(client, tokens):
    created = publish(client, tokens, BASE)
    missing = withdraw(client, tokens["admin"], created["id"], reason=None)
    assert missing.status_code == 422
    assert missing.get_json()["errors"]["reason"] == [
        "say why it is withdrawn: the public reads the reason"
    ]
    for bad in ("", "   ", 42, "x" * 2001):
        answer = withdraw(client, tokens["admin"], created["id"], reason=bad)
        assert answer.status_code == 422, bad
        assert "reason" in answer.get_json()["errors"]
    control = withdraw(client, tokens["admin"], created["id"], reason="bad\x1b[31m")
    assert control.status_code == 422
    assert "say why it is withdrawn" in control.get_json()["errors"]["reason"][0]
    assert client.get("/banner.json").get_json()["banners"], "nothing withdrawn"


def test_twice_is_a_conflict_unknown_is_404_pending_is_a_conflict(client, tokens, r):
    created = publish(client, tokens, BASE)
    assert withdraw(client, tokens["admin"], created["id"]).status_code == 200
    again = withdraw(client, tokens["admin"], created["id"], reason="Once more.")
    assert again.status_code == 409
    assert "already withdrawn by ada" in again.get_json()["message"]
    assert len(audit.entries(r, action="announcement.withdrawn")) == 1
    unknown = withdraw(client, tokens["admin"], "ann_nope")
    assert unknown.status_code == 404 and "ann_nope" in unknown.get_json()["message"]
    pending = client.post(
        "/api/v1/announcements", json={**BASE, "severity": "major"}, headers=tokens["approver"]
    ).get_json()
    assert pending["state"] == "pending_approval"
    refused = withdraw(client, tokens["admin"], pending["id"])
    assert refused.status_code == 409 and "pending_approval" in refused.get_json()["message"]


@given(reason=st.text(max_size=60))
@settings(
    max_examples=25,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_any_reason_is_stored_and_shown_escaped_or_refused(client, tokens, reason):
    created = publish(client, tokens, BASE)
    answer = withdraw(client, tokens["admin"], created["id"], reason=reason)
    assert answer.status_code in (200, 422), answer.get_data(as_text=True)
    if answer.status_code == 422:
        return
    stored = answer.get_json()["withdrawn_reason"]
    page = client.get("/status")
    assert page.status_code == 200
    assert str(escape(stored)) in section(page.get_data(as_text=True), "resolved")
    assert client.get("/status.atom").status_code == 200
    assert client.get("/status.json").status_code == 200


# ---------------------------------------------------------------------------- the admin page


def test_withdraw_from_the_incident_page(
    app: Flask, client: FlaskClient, tokens, people: dict[str, Any], signed_in: Callable[..., str]
) -> None:
    created = publish(client, tokens, TEST_MESSAGE)
    path = f"/admin/incidents/{created['incident_id']}"
    action = f'action="/admin/announcements/{created["id"]}/withdraw"'

    approver = app.test_client()
    token = signed_in(approver, people["approver"].email)
    assert action not in approver.get(path).get_data(as_text=True), "no button without the right"
    refused = approver.post(
        f"/admin/announcements/{created['id']}/withdraw", data={"csrf_token": token, "reason": "x"}
    )
    assert refused.status_code == 403

    admin = app.test_client()
    token = signed_in(admin, people["admin"].email)
    page = admin.get(path).get_data(as_text=True)
    assert action in page and 'name="reason"' in page
    # Without the form's token: refused before anything changes.
    stale = admin.post(f"/admin/announcements/{created['id']}/withdraw", data={"reason": REASON})
    assert stale.status_code == 400
    # Without a reason: the page again, the error next to the form.
    empty = admin.post(
        f"/admin/announcements/{created['id']}/withdraw", data={"csrf_token": token, "reason": ""}
    )
    assert empty.status_code == 422
    assert "Say why it is withdrawn" in empty.get_data(as_text=True)
    assert client.get("/banner.json").get_json()["banners"], "nothing withdrawn yet"

    done = admin.post(
        f"/admin/announcements/{created['id']}/withdraw",
        data={"csrf_token": token, "reason": REASON},
    )
    assert done.status_code == 303
    assert done.headers["Location"] == f"{path}#{created['id']}"
    after = admin.get(path).get_data(as_text=True)
    assert "Withdrew" in after and "Withdrawn</strong> by ada@acme.example" in after
    assert action not in after, "withdrawn once: no button any more"
    assert client.get("/banner.json").get_json()["banners"] == []
    [logged] = audit.entries(services_redis(app), action="announcement.withdrawn")
    assert logged["actor"] == "ada@acme.example" and logged["details"]["reason"] == REASON
    # A second post (another tab) is news, not an error.
    again = admin.post(
        f"/admin/announcements/{created['id']}/withdraw",
        data={"csrf_token": token, "reason": REASON},
    )
    assert again.status_code == 303
    assert "Not changed" in admin.get(path).get_data(as_text=True)
    missing = admin.post("/admin/announcements/ann_nope/withdraw", data={"csrf_token": token})
    assert missing.status_code == 404


def services_redis(app: Flask) -> Any:
    with app.app_context():
        return services().redis


# ---------------------------------------------------------------------------- corrections


def test_a_correction_names_the_update_it_corrects_with_its_time(app, client, tokens):
    wrong = publish(client, tokens, BASE, body="Power is back at 18:00.")
    fixed = publish(
        client,
        tokens,
        BASE,
        corrects=wrong["id"],
        body="Power is back at 20:00, not 18:00.",
        translations={"nl": {"title": "Stroomstoring", "body": "Stroom om 20:00 terug."}},
    )
    when = published_at(client, tokens, wrong["id"])
    stored = client.get(f"/api/v1/announcements/{fixed['id']}", headers=tokens["admin"]).get_json()
    assert stored["corrects"] == wrong["id"] and stored["corrects_published_at"] == when
    tz = "Europe/Amsterdam"
    en_time, nl_time = format_time(when, "en", tz), format_time(when, "nl", tz)

    # Status page and its data.
    data = client.get("/status.json").get_json()
    [update] = [u for u in data["open"][0]["updates"] if u["id"] == fixed["id"]]
    assert update["corrects"] == wrong["id"] and update["corrects_published_at"]
    html = client.get("/status").get_data(as_text=True)
    assert f"Corrects the update of {en_time}" in html
    assert f"Corrigeert de update van {nl_time}" in client.get("/status?lang=nl").get_data(
        as_text=True
    )
    # Banner.
    [banner] = client.get("/banner.json?lang=nl").get_json()["banners"]
    assert banner["announcement_id"] == fixed["id"]
    assert banner["correction"] == f"Corrigeert de update van {nl_time}"
    # Email, as the send loop renders it.
    with app.app_context():
        announcement = services().announcements.get(fixed["id"])
        email = services().renderer.render("email", announcement, ["consumers"], "en")
    assert f"Correction: Corrects the update of {en_time}" in email.content["text"]
    assert f"Corrects the update of {en_time}" in email.content["html"]
    # An ordinary update says nothing of the kind.
    [first] = [u for u in data["open"][0]["updates"] if u["id"] == wrong["id"]]
    assert first["corrects"] is None and first["corrects_published_at"] is None
