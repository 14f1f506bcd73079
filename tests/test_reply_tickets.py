"""Customers' SMS and email replies become helpdesk tickets (issue 19 point 3)."""

from __future__ import annotations

import base64

import pytest

from tests.fakes_helpdesk import FRESHDESK_KEY, ZENDESK_EMAIL, ZENDESK_TOKEN
from tests.helpers import announce, drain, work
from tests.test_inbound import sms, subscribe

SECRET = "inbound-email-secret-123"
ANNOUNCEMENT = {
    "title": "Power outage in Noord",
    "body": "Parts of Amsterdam-Noord have no power since 14:05.",
    "severity": "minor",
    "audiences": ["consumers"],
    "channels": ["sms", "email"],
}


@pytest.fixture
def app(make_app, zendesk, freshdesk):
    return make_app(
        ZENDESK_URL=zendesk.url,
        ZENDESK_EMAIL=ZENDESK_EMAIL,
        ZENDESK_API_TOKEN=ZENDESK_TOKEN,
        FRESHDESK_URL=freshdesk.url,
        FRESHDESK_API_KEY=FRESHDESK_KEY,
        INBOUND_EMAIL_SECRET=SECRET,
    )


def email_reply(client, sender: str, text: str, message_id: str, secret: str = SECRET, **auth):
    form = {
        "from": f"Dag Jansen <{sender}>",
        "to": "replies@acme.example",
        "subject": "Re: Acme Energy: Power outage in Noord",
        "text": text,
        "headers": f"Message-ID: <{message_id}@mail.example>\nFrom: {sender}\n",
        "envelope": '{"to":["replies@acme.example"],"from":"' + sender + '"}',
        "charsets": '{"text":"utf-8"}',
        "SPF": "pass",
    }
    query = f"?secret={secret}" if secret else ""
    return client.post(f"/hooks/sendgrid/inbound{query}", data=form, **auth)


def test_a_dutch_sms_reply_is_a_ticket_and_the_next_a_comment(
    app,
    client,
    tokens,
    zendesk,
    freshdesk,
):
    subscribe(client, tokens, "+31612345001", "nl")
    sent = announce(client, tokens["approver"], ANNOUNCEMENT)
    drain(app)
    assert sms(client, "+31612345001", "Wanneer is het opgelost?").status_code == 200
    drain(app)
    [ticket] = zendesk.tickets.values()
    assert f"incident-{sent['incident_id']}" in ticket["tags"]
    assert ticket["requester"] == {"name": "+31612345001"}
    first = ticket["comments"][0]["body"]
    assert first.startswith("Wanneer is het opgelost?")
    assert "(language: nl)" in first and sent["id"] in first
    [fresh] = freshdesk.tickets.values()
    assert fresh["phone"] == fresh["name"] == "+31612345001" and fresh["status"] == 2
    # The same person again, within the incident: a comment on their ticket.
    sms(client, "+31612345001", "Nog steeds geen stroom.")
    drain(app)
    assert len(zendesk.tickets) == 1 and len(freshdesk.tickets) == 1
    assert ticket["comments"][-1]["body"].startswith("Nog steeds geen stroom.")
    assert fresh["notes"][-1]["body"].startswith("Nog steeds geen stroom.")
    # STOP is an opt-out, never a ticket.
    sms(client, "+31612345001", "STOP")
    drain(app)
    assert len(ticket["comments"]) == 2


def test_an_english_email_reply_is_a_ticket_without_the_quoted_message(
    app,
    client,
    tokens,
    zendesk,
):
    subscribe(client, tokens, "+31612345004", "en")
    sent = announce(client, tokens["approver"], ANNOUNCEMENT)
    drain(app)
    text = (
        "Is the hospital on Kometensingel affected?\n\n"
        "On Tue, 2 Dec 2026 at 14:07, Acme Energy <alerts@acme.example> wrote:\n"
        "> Parts of Amsterdam-Noord have no power since 14:05.\n"
    )
    answer = email_reply(client, "31612345004@example.com", text, "m1")
    assert answer.status_code == 200 and answer.get_json()["outcome"] == "reply"
    drain(app)
    [ticket] = zendesk.tickets.values()
    assert ticket["requester"] == {
        "name": "31612345004@example.com",
        "email": "31612345004@example.com",
    }
    assert ticket["subject"] == "Re: Acme Energy: Power outage in Noord"
    body = ticket["comments"][0]["body"]
    assert body.startswith("Is the hospital on Kometensingel affected?\n\n— EMAIL reply")
    assert "wrote:" not in body and f"incident-{sent['incident_id']}" in ticket["tags"]
    incident = client.get(
        f"/api/v1/incidents/{sent['incident_id']}", headers=tokens["admin"]
    ).get_json()
    assert incident["replies"][-1]["body"] == "Is the hospital on Kometensingel affected?"
    # SendGrid retries what it thinks failed: the same Message-ID counts once.
    email_reply(client, "31612345004@example.com", text, "m1")
    email_reply(client, "31612345004@example.com", "Thanks, power is back.", "m2")
    drain(app)
    assert len(zendesk.tickets) == 1 and len(ticket["comments"]) == 2


def test_email_from_someone_we_never_emailed_is_counted_not_kept(app, client, zendesk):
    answer = email_reply(client, "stranger@example.com", "Hello?", "m9")
    assert answer.status_code == 200 and answer.get_json()["outcome"] == "unmatched"
    assert zendesk.tickets == {}


def test_the_inbound_email_hook_needs_its_secret(app, client):
    assert email_reply(client, "a@example.com", "x", "m1", secret="").status_code == 401
    assert email_reply(client, "a@example.com", "x", "m2", secret="wrong").status_code == 401
    basic = base64.b64encode(f"sendgrid:{SECRET}".encode()).decode()
    answer = email_reply(
        client, "a@example.com", "x", "m3", secret="", headers={"Authorization": f"Basic {basic}"}
    )
    assert answer.status_code == 200


def test_a_429_from_the_helpdesk_is_retried_without_a_second_ticket(
    app,
    client,
    tokens,
    zendesk,
):
    subscribe(client, tokens, "+31612345001", "nl")
    announce(client, tokens["approver"], ANNOUNCEMENT)
    drain(app)
    zendesk.fail_next(429, retry_after="1")
    sms(client, "+31612345001", "Hoe lang nog?")
    drain(app)
    assert len(zendesk.tickets) == 1


def test_a_reply_to_a_drill_is_no_ticket(app, client, tokens, zendesk):
    staff = {"phone": "+31612345009", "audiences": ["staff"], "locale": "nl"}
    client.post("/api/v1/subscribers", json=[staff], headers=tokens["admin"])
    drill = client.post("/api/v1/drills", json={"scenario": "payments"}, headers=tokens["approver"])
    assert drill.status_code == 201
    work(app)  # not drain: the drill's own resolution is scheduled 20 minutes ahead
    assert sms(client, "+31612345009", "Ontvangen, ik ben onderweg.").status_code == 200
    work(app)
    assert zendesk.tickets == {}
    incident = client.get(
        f"/api/v1/incidents/{drill.get_json()['incident_id']}", headers=tokens["admin"]
    ).get_json()
    # The reply is kept with the drill (its report counts it), only no customer ticket.
    assert [r["body"] for r in incident["replies"]] == ["Ontvangen, ik ben onderweg."]
