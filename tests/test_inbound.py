"""Inbound SMS (``/hooks/twilio/inbound``): opt-out words in every plan language, replies.

Requests are signed with Twilio's own RequestValidator against the public URL, as Twilio
signs them; the texts that trigger them went out through real RQ workers and the SDK.
"""

from __future__ import annotations

import itertools

import pytest
from twilio.request_validator import RequestValidator

from broadcaster.web.hooks.inbound import keyword
from tests.fakes import FakeTwilio
from tests.helpers import announce, drain

URL = "http://127.0.0.1:8000/hooks/twilio/inbound"  # the default BROADCASTER_PUBLIC_URL
PLAN_LOCALES = ("en", "nl", "da", "sv")
_sids = itertools.count(1)


def sms(client, phone: str, body: str, sid: str | None = None, token=FakeTwilio.AUTH_TOKEN):
    form = {
        "MessageSid": sid or f"SMin{next(_sids):030d}",
        "AccountSid": FakeTwilio.ACCOUNT_SID,
        "From": phone,
        "To": "+3197010000000",
        "Body": body,
        "NumMedia": "0",
    }
    signature = RequestValidator(token).compute_signature(URL, form)
    return client.post(
        "/hooks/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature}
    )


def subscribe(client, tokens, phone: str, locale: str) -> str:
    row = {"phone": phone, "email": f"{phone[1:]}@example.com", "locale": locale}
    client.post(
        "/api/v1/subscribers", json=[{**row, "audiences": ["consumers"]}], headers=tokens["admin"]
    )
    people = client.get("/api/v1/subscribers", headers=tokens["admin"]).get_json()["items"]
    return next(p["id"] for p in people if p["phone"] == phone)


ANNOUNCEMENT = {
    "body": "Details follow.",
    "severity": "minor",
    "audiences": ["consumers"],
    "channels": ["sms", "email"],
    "incident_id": None,
}


@pytest.mark.parametrize(
    ("locale", "body"),
    [("da", "AFMELD"), ("da", "stop tak"), ("nl", "Afmelden"), ("nl", "STOP."), ("sv", "stopp")],
)
def test_opt_out_words_in_danish_and_dutch_stop_sms(app, client, tokens, locale, body):
    phone = "+31612345610"
    sid = subscribe(client, tokens, phone, locale)
    response = sms(client, phone, body)
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert "<Response" in response.get_data(as_text=True)  # empty TwiML: no auto-reply
    person = client.get(f"/api/v1/subscribers/{sid}", headers=tokens["admin"]).get_json()
    assert person["opt_outs"] == ["sms"]  # email untouched
    # And the next announcement really does not text them.
    ann = announce(client, tokens["admin"], ANNOUNCEMENT, title="Gas outage")
    drain(app)
    items = client.get(
        f"/api/v1/announcements/{ann['id']}/deliveries", headers=tokens["admin"]
    ).get_json()["items"]
    states = {item["channel"]: (item["state"], item["error"]) for item in items}
    assert states == {"sms": ("skipped", "opted out"), "email": ("sent", None)}


def test_start_opts_back_in(client, tokens):
    phone = "+31612345611"
    sid = subscribe(client, tokens, phone, "en")
    sms(client, phone, "STOP")
    sms(client, phone, "start")
    person = client.get(f"/api/v1/subscribers/{sid}", headers=tokens["admin"]).get_json()
    assert person["opt_outs"] == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", "opt_out"),
        ("  Stop!  ", "opt_out"),
        ("stop sending me these", "opt_out"),
        ("AFMELD", "opt_out"),  # da
        ("uitschrijven", "opt_out"),  # nl
        ("Avsluta", "opt_out"),  # sv
        ("end", "opt_out"),
        ("End of the outage when?", None),  # everyday words count only on their own
        ("Cancel my order?", None),
        ("Is the water safe to drink?", None),
        ("STOPPING by the office later", None),
        ("", None),
        ("UNSTOP", "opt_in"),
    ],
)
def test_keyword_matching(body, expected):
    assert keyword(body, PLAN_LOCALES) == expected


def test_only_the_plans_languages_count():
    assert keyword("LOPETA", ("en", "fi")) == "opt_out"
    assert keyword("LOPETA", PLAN_LOCALES) is None  # Finnish is not in this plan


def test_replies_are_kept_on_the_incident_of_the_latest_text(app, client, tokens):
    phone = "+31612345612"
    subscribe(client, tokens, phone, "nl")
    first = announce(client, tokens["admin"], ANNOUNCEMENT, title="Storm damage")
    drain(app)
    # A newer incident...
    other = announce(client, tokens["admin"], ANNOUNCEMENT, title="Unrelated outage")
    drain(app)
    follow_up = announce(
        client, tokens["admin"], ANNOUNCEMENT, title="Update", incident_id=first["incident_id"]
    )
    drain(app)  # ...but the latest text to this number belongs to the first incident

    assert sms(client, phone, "Is the water safe to drink?", sid="SMreply1").status_code == 200
    assert sms(client, phone, "Is the water safe to drink?", sid="SMreply1").status_code == 200
    sms(client, phone, "End of the outage when?")

    incident = client.get(
        f"/api/v1/incidents/{first['incident_id']}", headers=tokens["helpdesk"]
    ).get_json()
    replies = incident["replies"]
    assert [r["body"] for r in replies] == [  # the retried delivery is stored once
        "Is the water safe to drink?",
        "End of the outage when?",
    ]
    assert all(r["announcement_id"] == follow_up["id"] for r in replies)
    assert replies[0]["from"] == "+316…612" and phone not in str(incident)
    assert replies[0]["provider_id"] == "SMreply1"
    unrelated = client.get(
        f"/api/v1/incidents/{other['incident_id']}", headers=tokens["helpdesk"]
    ).get_json()
    assert unrelated["replies"] == []


def test_a_reply_from_a_stranger_is_not_stored(app, client, tokens):
    ann = announce(client, tokens["admin"], ANNOUNCEMENT, title="Storm damage")
    drain(app)
    assert sms(client, "+31612345699", "Who is this?").status_code == 200
    incident = client.get(
        f"/api/v1/incidents/{ann['incident_id']}", headers=tokens["admin"]
    ).get_json()
    assert incident["replies"] == []


def test_forged_inbound_sms_is_refused(client, tokens):
    phone = "+31612345613"
    sid = subscribe(client, tokens, phone, "da")
    response = sms(client, phone, "STOP", token="forged-token")
    assert response.status_code == 401
    assert response.get_json()["code"] == 401
    person = client.get(f"/api/v1/subscribers/{sid}", headers=tokens["admin"]).get_json()
    assert person["opt_outs"] == []


def test_the_report_counts_replies_and_the_stops_an_incident_got(app, client, tokens):
    phone, other = "+31612345613", "+31612345614"
    subscribe(client, tokens, phone, "en")
    subscribe(client, tokens, other, "nl")
    sent = announce(client, tokens["admin"], ANNOUNCEMENT, title="Storm damage")
    drain(app)
    sms(client, phone, "When is the power back? Call me on +31612345699")
    sms(client, other, "Afmelden")
    sms(client, other, "Afmelden")  # a second STOP from an opted-out number: not a reply
    sms(client, phone, "STOP")
    report = client.get(
        f"/api/v1/incidents/{sent['incident_id']}/report", headers=tokens["helpdesk"]
    ).get_json()["replies"]
    assert report["count"] == 1 and report["stops"] == 2
    [reply] = report["first"]
    assert reply["from"] == "+316…613" and phone not in str(report)
