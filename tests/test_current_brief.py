"""``GET /api/v1/incidents/current/brief``: what a helpdesk sidebar shows (issue 19 point 5)."""

from __future__ import annotations

import time

import pytest

from tests.helpers import PAYMENTS_DOWN, publish

CURRENT = "/api/v1/incidents/current/brief"


def test_nothing_open_is_a_404_that_says_so(client, tokens):
    response = client.get(CURRENT, headers=tokens["helpdesk"])
    assert response.status_code == 404
    assert response.get_json()["message"] == "no incident is open: nothing to tell customers"


def test_the_most_severe_open_incident_is_current_then_the_latest(client, tokens):
    critical = publish(client, tokens, PAYMENTS_DOWN, severity="critical", title="Grid down")
    time.sleep(0.01)
    minor = publish(client, tokens, PAYMENTS_DOWN, title="Slow portal")
    brief = client.get(CURRENT, headers=tokens["helpdesk"]).get_json()
    assert brief["incident_id"] == critical["incident_id"] and brief["title"] == "Grid down"
    assert brief["other_open"] == [minor["incident_id"]]
    assert brief["replies"][0]["locale"] == "en"
    # Resolved: the next one needed is current.
    publish(
        client,
        tokens,
        PAYMENTS_DOWN,
        severity="critical",
        status="resolved",
        incident_id=critical["incident_id"],
        title="Grid back",
    )
    brief = client.get(CURRENT, headers=tokens["helpdesk"]).get_json()
    assert brief["incident_id"] == minor["incident_id"] and brief["other_open"] == []
    # Among equals, the latest updated.
    time.sleep(0.01)
    newer = publish(client, tokens, PAYMENTS_DOWN, title="Slow app")
    brief = client.get(CURRENT, headers=tokens["helpdesk"]).get_json()
    assert brief["incident_id"] == newer["incident_id"]
    assert brief["other_open"] == [minor["incident_id"]]


def test_a_withdrawn_incident_is_not_current(client, tokens):
    wrong = publish(client, tokens, PAYMENTS_DOWN, title="Test message")
    response = client.post(
        f"/api/v1/announcements/{wrong['id']}/withdraw",
        json={"reason": "sent by mistake"},
        headers=tokens["admin"],
    )
    assert response.status_code == 200, response.get_json()
    assert client.get(CURRENT, headers=tokens["helpdesk"]).status_code == 404


def test_the_agents_language_first(client, tokens):
    publish(
        client,
        tokens,
        PAYMENTS_DOWN,
        translations={"nl": {"title": "Betalingen werken niet", "body": "We werken eraan."}},
    )
    brief = client.get(f"{CURRENT}?locale=nl", headers=tokens["helpdesk"]).get_json()
    assert brief["locale"] == "nl"
    assert brief["replies"][0]["locale"] == "nl"
    assert "Betalingen werken niet" in brief["replies"][0]["text"]
    assert {r["locale"] for r in brief["replies"]} == {"en", "nl", "da", "sv"}
    [consumers] = brief["routes"]
    assert consumers["routes"][0]["channel"] == "Livechat"
    # The same for one incident's brief.
    by_id = client.get(
        f"/api/v1/incidents/{brief['incident_id']}/brief?locale=sv", headers=tokens["helpdesk"]
    ).get_json()
    assert (
        by_id["replies"][0]["locale"] == "sv"
        and by_id["routes"][0]["routes"][0]["channel"] == "Livechatt"
    )


@pytest.mark.parametrize(
    ("query", "code", "field"), [("?locale=fr", 422, "locale"), ("?lang=nl", 400, None)]
)
def test_a_bad_query_says_what_is_wrong(client, tokens, query, code, field):
    publish(client, tokens, PAYMENTS_DOWN)
    response = client.get(CURRENT + query, headers=tokens["helpdesk"])
    assert response.status_code == code
    if field:
        assert field in response.get_json()["errors"]


def test_only_those_who_may_read(client, tokens):
    assert client.get(CURRENT).status_code == 401
    assert client.get(CURRENT, headers=tokens["monitor"]).status_code == 403


def test_a_real_incident_is_current_before_a_more_severe_drill(client, tokens):
    real = publish(client, tokens, PAYMENTS_DOWN, title="Slow portal")  # minor
    drill = client.post("/api/v1/drills", json={"scenario": "payments"}, headers=tokens["approver"])
    assert drill.status_code == 201, drill.get_json()
    brief = client.get(CURRENT, headers=tokens["helpdesk"]).get_json()
    assert brief["incident_id"] == real["incident_id"]
    assert brief["other_open"] == [drill.get_json()["incident_id"]]
