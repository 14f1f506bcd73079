"""Delivery receipts from Twilio (StatusCallback) and SendGrid (signed Event Webhook).

Messages go out through real RQ workers and the real SDKs to the fake providers; the
callbacks are signed exactly as the providers sign them (Twilio's RequestValidator, an
ECDSA key pair for SendGrid) and posted to the app.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

from broadcaster.config import ConfigError
from broadcaster.domain.ledger import STATES
from tests.fakes import FakeTwilio
from tests.helpers import announce, drain

ANNOUNCEMENT = {
    "title": "Water supply interrupted",
    "body": "Tap water is off in Zuid until 18:00.",
    "severity": "minor",
    "audiences": ["consumers"],
}


def new_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A key pair; the public half base64 DER, as SendGrid shows the verification key."""
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(der).decode()


def sendgrid_headers(private: ec.EllipticCurvePrivateKey, payload: str) -> dict[str, str]:
    """Sign as SendGrid does: ECDSA/SHA-256 over timestamp + payload, base64 DER signature."""
    timestamp = str(int(time.time()))
    signature = private.sign((timestamp + payload).encode(), ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def twilio_post(client, url: str, form: dict[str, str], token: str = FakeTwilio.AUTH_TOKEN):
    """POST ``form`` to the app at ``url``'s path and query, signed for ``url`` with ``token``."""
    signature = RequestValidator(token).compute_signature(url, form)
    parts = urllib.parse.urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def announce_to(client, tokens, channels: list[str], people: list[dict]) -> str:
    """Subscribe ``people`` (all new) as consumers, then announce to them on ``channels``."""
    rows = [{**p, "audiences": ["consumers"]} for p in people]
    report = client.post("/api/v1/subscribers", json=rows, headers=tokens["admin"]).get_json()
    assert report["created"] == len(people), report
    return announce(client, tokens["admin"], ANNOUNCEMENT, channels=channels)["id"]


def records(client, tokens, ann: str) -> dict[str, dict]:
    """Delivery records by subscriber id."""
    page = client.get(f"/api/v1/announcements/{ann}/deliveries", headers=tokens["admin"])
    return {r["subscriber_id"]: r for r in page.get_json()["items"]}


def counts(client, tokens, ann: str, channel: str) -> dict[str, int]:
    body = client.get(f"/api/v1/announcements/{ann}", headers=tokens["admin"]).get_json()
    return body["deliveries"][channel]


def assert_error(response, code: int, words: str) -> None:
    assert response.status_code == code
    body = response.get_json()
    assert body["code"] == code and words in body["message"], body


def test_twilio_status_callbacks_move_deliveries_forward_only(app, client, tokens, providers):
    _, twilio = providers
    ann = announce_to(
        client, tokens, ["sms"], [{"phone": "+31612345601"}, {"phone": "+31612345602"}]
    )
    drain(app)
    callbacks = {form["To"]: form["StatusCallback"] for form in twilio.accepted()}
    assert len(callbacks) == 2
    for url in callbacks.values():  # Twilio is told where to report, naming the delivery
        assert url.startswith("http://127.0.0.1:8000/hooks/twilio/status?")
        assert urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["a"] == [ann]
    first, second = callbacks["+31612345601"], callbacks["+31612345602"]

    delivered = {"MessageSid": "SM1", "MessageStatus": "delivered", "To": "+31612345601"}
    assert twilio_post(client, first, delivered).status_code == 204
    # Out of order and repeated: a late "sent" or "undelivered" never undoes "delivered".
    for status in ("sent", "undelivered", "delivered"):
        late = {**delivered, "MessageStatus": status}
        assert twilio_post(client, first, late).status_code == 204
    failed = {
        "MessageSid": "SM2",
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
        "To": "+31612345602",
    }
    assert twilio_post(client, second, failed).status_code == 204

    by_state = {r["state"]: r for r in records(client, tokens, ann).values()}
    assert set(by_state) == {"delivered", "undelivered"}
    assert by_state["undelivered"]["error"] == "twilio 30003: undelivered"
    assert counts(client, tokens, ann, "sms") == {
        **dict.fromkeys(STATES, 0),
        "delivered": 1,
        "undelivered": 1,
    }


def test_forged_twilio_callbacks_are_refused(app, client, tokens, providers):
    _, twilio = providers
    ann = announce_to(client, tokens, ["sms"], [{"phone": "+31612345603"}])
    drain(app)
    url = twilio.accepted()[0]["StatusCallback"]
    form = {"MessageSid": "SM3", "MessageStatus": "undelivered", "To": "+31612345603"}

    assert_error(twilio_post(client, url, form, token="not-the-auth-token"), 401, "Signature")
    assert_error(client.post(urllib.parse.urlsplit(url).path, data=form), 401, "Signature")
    # A valid signature for one delivery cannot be replayed against another.
    signature = RequestValidator(FakeTwilio.AUTH_TOKEN).compute_signature(url, form)
    other = url.replace("s=", "s=x")
    tampered = client.post(
        other.removeprefix("http://127.0.0.1:8000"),
        data=form,
        headers={"X-Twilio-Signature": signature},
    )
    assert_error(tampered, 401, "Signature")
    assert [r["state"] for r in records(client, tokens, ann).values()] == ["sent"]


def test_twilio_callbacks_without_an_auth_token_are_refused(make_app):
    app = make_app(TWILIO_ACCOUNT_SID=None, TWILIO_AUTH_TOKEN=None)
    response = app.test_client().post("/hooks/twilio/status", data={"MessageStatus": "sent"})
    assert_error(response, 503, "BROADCASTER_TWILIO_AUTH_TOKEN")


@pytest.fixture
def signing_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    return new_key()


def test_sendgrid_events_move_deliveries_and_skip_seen_ids(
    make_app, tokens, providers, signing_key
):
    private, public = signing_key
    app = make_app(SENDGRID_WEBHOOK_PUBLIC_KEY=public)
    client = app.test_client()
    sendgrid, _ = providers
    people = [{"email": f"{n}@example.com"} for n in ("ann", "bob", "cas", "dee")]
    ann = announce_to(client, tokens, ["email"], people)
    drain(app)
    request = sendgrid.requests[0]["json"]
    assert request["custom_args"] == {"announcement_id": ann}
    ids = {
        p["to"][0]["email"]: p["custom_args"]["subscriber_id"] for p in request["personalizations"]
    }

    def event(email: str, kind: str, n: int, **extra) -> dict:
        # SendGrid merges the message's and the personalization's custom_args into events.
        return {
            "email": email,
            "event": kind,
            "sg_event_id": f"ev-{n}",
            "sg_message_id": "sg-1.filter",
            "timestamp": int(time.time()),
            "announcement_id": ann,
            "subscriber_id": ids[email],
            **extra,
        }

    events = [
        event("ann@example.com", "delivered", 1),
        event("ann@example.com", "processed", 2),  # late: must not undo "delivered"
        event("bob@example.com", "bounce", 3, reason="550 5.1.1 user unknown", type="bounce"),
        event("cas@example.com", "dropped", 4, reason="Bounced Address"),
        event("dee@example.com", "open", 5),  # an open proves delivery
        event("dee@example.com", "spamreport", 6),  # and a spam report opts them out
        {"event": "delivered", "sg_event_id": "ev-7", "email": "x@elsewhere.example"},
    ]
    payload = json.dumps(events)
    response = client.post(
        "/hooks/sendgrid/events", data=payload, headers=sendgrid_headers(private, payload)
    )
    assert response.status_code == 200
    assert response.get_json() == {
        "events": 7,
        "applied": 4,
        "ignored": 1,
        "opted_out": 1,
        "unmatched": 1,
    }
    # SendGrid retries a batch it thinks failed: every event is then a duplicate.
    again = client.post(
        "/hooks/sendgrid/events", data=payload, headers=sendgrid_headers(private, payload)
    )
    assert again.get_json() == {"events": 7, "duplicate": 7}

    state = {email: records(client, tokens, ann)[sid]["state"] for email, sid in ids.items()}
    assert state == {
        "ann@example.com": "delivered",
        "bob@example.com": "bounced",
        "cas@example.com": "dropped",
        "dee@example.com": "delivered",
    }
    bob = records(client, tokens, ann)[ids["bob@example.com"]]
    assert bob["error"] == "sendgrid bounce: 550 5.1.1 user unknown"
    assert counts(client, tokens, ann, "email") == {
        **dict.fromkeys(STATES, 0),
        "delivered": 2,
        "bounced": 1,
        "dropped": 1,
    }
    dee = client.get(
        f"/api/v1/subscribers/{ids['dee@example.com']}", headers=tokens["admin"]
    ).get_json()
    assert dee["opt_outs"] == ["email"]


def test_forged_sendgrid_events_are_refused(make_app, tokens, providers, signing_key):
    private, public = signing_key
    app = make_app(SENDGRID_WEBHOOK_PUBLIC_KEY=public)
    client = app.test_client()
    ann = announce_to(client, tokens, ["email"], [{"email": "eve@example.com"}])
    drain(app)
    sid = next(iter(records(client, tokens, ann)))
    payload = json.dumps(
        [{"event": "bounce", "sg_event_id": "f1", "announcement_id": ann, "subscriber_id": sid}]
    )
    other, _ = new_key()
    tampered = payload.replace("bounce", "dropped")
    attempts = [
        sendgrid_headers(other, payload),  # signed with someone else's key
        sendgrid_headers(private, payload) | {"X-Twilio-Email-Event-Webhook-Timestamp": "1"},
        sendgrid_headers(private, tampered),  # signature of another body
        {"X-Twilio-Email-Event-Webhook-Signature": "not base64!", "Content-Type": "x"},
        {},
    ]
    for headers in attempts:
        response = client.post("/hooks/sendgrid/events", data=payload, headers=headers)
        assert_error(response, 401, "signature")
    assert [r["state"] for r in records(client, tokens, ann).values()] == ["sent"]


def test_sendgrid_events_without_a_key_are_refused_not_accepted(client):
    response = client.post("/hooks/sendgrid/events", json=[{"event": "delivered"}])
    assert_error(response, 503, "BROADCASTER_SENDGRID_WEBHOOK_PUBLIC_KEY")


def test_a_malformed_sendgrid_key_fails_at_start_up(make_app):
    with pytest.raises(ConfigError, match="BROADCASTER_SENDGRID_WEBHOOK_PUBLIC_KEY"):
        make_app(SENDGRID_WEBHOOK_PUBLIC_KEY="bm90IGEga2V5")


def test_signed_but_malformed_sendgrid_body_is_400(make_app, signing_key):
    private, public = signing_key
    client = make_app(SENDGRID_WEBHOOK_PUBLIC_KEY=public).test_client()
    payload = json.dumps({"event": "delivered"})
    response = client.post(
        "/hooks/sendgrid/events", data=payload, headers=sendgrid_headers(private, payload)
    )
    assert_error(response, 400, "list of events")
