"""Replays and freshness: old signed callbacks are refused, opt changes apply in event-time order.

Each attack from issue 15 is replayed as it was made: requests signed exactly as SendGrid,
Twilio and a monitoring tool sign them, posted to the app.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

from broadcaster.domain.subscribers import SubscriberStore
from broadcaster.infra.metrics import COUNTERS_KEY
from channels.webhook import SIGNATURE_HEADER, sign
from tests.fakes import FakeTwilio
from tests.helpers import announce, drain
from tests.test_inbound import ANNOUNCEMENT, URL
from tests.test_receipts import new_key

SECRET = "generic-hook-secret-123"
Y2001 = 978_307_200  # 2001-01-01T00:00:00Z


def signed_batch(private: ec.EllipticCurvePrivateKey, events: list[dict], at: int) -> dict:
    """Body and headers of an event batch signed as SendGrid signs it, at Unix time ``at``."""
    payload = json.dumps(events)
    signature = private.sign(f"{at}{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    return {
        "data": payload,
        "headers": {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": str(at),
            "Content-Type": "application/json",
        },
    }


def unsubscribe(subscriber_id: str, at: float, event_id: str | None = None) -> dict[str, Any]:
    event = {
        "email": "pia@example.com",
        "event": "unsubscribe",
        "timestamp": int(at),
        "announcement_id": "a1",
        "subscriber_id": subscriber_id,
    }
    return {**event, "sg_event_id": event_id} if event_id else event


@pytest.fixture
def sendgrid_app(make_app: Any) -> tuple[Any, ec.EllipticCurvePrivateKey]:
    private, public = new_key()
    return make_app(SENDGRID_WEBHOOK_PUBLIC_KEY=public), private


def person(client: Any, tokens: dict, **contact: str) -> str:
    row = {**contact, "audiences": ["consumers"]}
    report = client.post("/api/v1/subscribers", json=[row], headers=tokens["admin"]).get_json()
    assert report["created"] == 1, report
    return client.get("/api/v1/subscribers", headers=tokens["admin"]).get_json()["items"][-1]["id"]


def opt_outs(client: Any, tokens: dict, subscriber_id: str) -> list[str]:
    got = client.get(f"/api/v1/subscribers/{subscriber_id}", headers=tokens["admin"])
    return got.get_json()["opt_outs"]


# --- SendGrid ------------------------------------------------------------------------------


def test_attack_a_batch_signed_in_2001_is_refused(sendgrid_app, tokens):
    app, private = sendgrid_app
    client = app.test_client()
    sid = person(client, tokens, email="pia@example.com")
    batch = signed_batch(private, [unsubscribe(sid, Y2001, "ev-2001")], Y2001)
    response = client.post("/hooks/sendgrid/events", **batch)
    assert response.status_code == 403
    assert "timestamp is more than 600 s from now" in response.get_json()["message"]
    assert opt_outs(client, tokens, sid) == [], "nothing in the batch was applied"
    redis = app.extensions["broadcaster"].redis
    assert redis.hget(COUNTERS_KEY, "hook_replays|sendgrid|stale") == b"1"


def test_the_freshness_window_is_configurable_and_runs_both_ways(make_app, tokens):
    private, public = new_key()
    client = make_app(SENDGRID_WEBHOOK_PUBLIC_KEY=public, SENDGRID_EVENT_MAX_AGE=60).test_client()
    now = int(time.time())
    for at, status in ((now - 120, 403), (now + 120, 403), (now - 30, 200)):
        response = client.post("/hooks/sendgrid/events", **signed_batch(private, [], at))
        assert response.status_code == status, at - now


def test_attack_a_replayed_unsubscribe_does_not_undo_a_newer_opt_in(sendgrid_app, tokens):
    app, private = sendgrid_app
    client = app.test_client()
    sid = person(client, tokens, email="pia@example.com")
    clicked = time.time() - 300  # they unsubscribed five minutes ago
    first = signed_batch(private, [unsubscribe(sid, clicked, "ev-1")], int(time.time()))
    assert client.post("/hooks/sendgrid/events", **first).get_json()["opted_out"] == 1
    assert opt_outs(client, tokens, sid) == ["email"]

    back = client.post(
        f"/api/v1/subscribers/{sid}/opt-in", json={"channels": ["email"]}, headers=tokens["admin"]
    )
    assert back.status_code == 200 and back.get_json()["opt_outs"] == []

    # The same event again, freshly signed (SendGrid re-sending it, or under another id):
    # it happened before the opt-in, so the opt-in stands.
    for event_id in ("ev-1-again", None):
        again = signed_batch(private, [unsubscribe(sid, clicked, event_id)], int(time.time()))
        assert client.post("/hooks/sendgrid/events", **again).get_json() == {
            "events": 1,
            "stale": 1,
        }
    assert opt_outs(client, tokens, sid) == []
    # A genuinely newer unsubscribe still works.
    newer = signed_batch(private, [unsubscribe(sid, time.time(), "ev-2")], int(time.time()))
    assert client.post("/hooks/sendgrid/events", **newer).get_json()["opted_out"] == 1
    assert opt_outs(client, tokens, sid) == ["email"]


def test_an_event_dated_in_the_future_cannot_shield_itself_from_a_later_opt_in(
    sendgrid_app, tokens
):
    app, private = sendgrid_app
    client = app.test_client()
    sid = person(client, tokens, email="pia@example.com")
    future = signed_batch(
        private, [unsubscribe(sid, time.time() + 10**8, "ev-f")], int(time.time())
    )
    assert client.post("/hooks/sendgrid/events", **future).get_json()["opted_out"] == 1
    client.post(f"/api/v1/subscribers/{sid}/opt-in", json={}, headers=tokens["admin"])
    assert opt_outs(client, tokens, sid) == []


def test_opt_changes_apply_in_event_time_order_per_channel(r):
    store = SubscriberStore(r)
    sid, _ = store.upsert(
        {"phone": "+31612345620", "email": "ola@example.com", "locale": "en", "audiences": ["a"]}
    )
    store.set_opt_outs(sid, ["email", "sms"], opted_out=True, at=100)
    store.set_opt_outs(sid, ["email"], opted_out=False, at=200)
    person, stale = store.changed_opt_outs(sid, ["email", "sms"], opted_out=True, at=150)
    assert stale == ["email"], "older than the opt-in of email; newer than sms's last change"
    assert person["opt_outs"] == ["sms"]
    # A re-import keeps both the opt-outs and the times of their last change.
    store.upsert({"email": "ola@example.com", "locale": "en", "audiences": ["a"]})
    assert store.changed_opt_outs(sid, ["email"], opted_out=True, at=199)[1] == ["email"]
    with pytest.raises(KeyError):
        store.set_opt_outs("nobody", ["sms"], opted_out=True)


# --- Twilio inbound ------------------------------------------------------------------------


def twilio_sms(client: Any, form: dict[str, str]) -> Any:
    signature = RequestValidator(FakeTwilio.AUTH_TOKEN).compute_signature(URL, form)
    return client.post(
        "/hooks/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature}
    )


def no_sid(phone: str, body: str) -> dict[str, str]:
    """A signed-looking inbound SMS without a MessageSid (as in the attack)."""
    return {
        "AccountSid": FakeTwilio.ACCOUNT_SID,
        "From": phone,
        "To": "+3197010000000",
        "Body": body,
    }


def test_attack_a_reply_without_message_sid_is_stored_once(app, client, tokens):
    phone = "+31612345621"
    person(client, tokens, phone=phone)
    ann = announce(client, tokens["admin"], ANNOUNCEMENT, title="Storm damage")
    drain(app)
    for _ in range(3):
        assert twilio_sms(client, no_sid(phone, "Is the water safe?")).status_code == 200
    twilio_sms(client, no_sid(phone, "And the gas?"))  # different text: a new message
    incident = client.get(
        f"/api/v1/incidents/{ann['incident_id']}", headers=tokens["helpdesk"]
    ).get_json()
    assert [reply["body"] for reply in incident["replies"]] == [
        "Is the water safe?",
        "And the gas?",
    ]
    redis = app.extensions["broadcaster"].redis
    assert redis.hget(COUNTERS_KEY, "hook_replays|twilio_inbound|repeated") == b"2"


def test_a_replayed_stop_without_sid_does_not_undo_start(client, tokens):
    phone = "+31612345622"
    sid = person(client, tokens, phone=phone)
    twilio_sms(client, no_sid(phone, "STOP"))
    assert opt_outs(client, tokens, sid) == ["sms"]
    twilio_sms(client, no_sid(phone, "START"))
    twilio_sms(client, no_sid(phone, "STOP"))  # the captured request, sent again
    assert opt_outs(client, tokens, sid) == []


def test_the_inbound_window_is_configurable(make_app, tokens):
    client = make_app(INBOUND_DEDUPE_WINDOW=1).test_client()
    phone = "+31612345623"
    sid = person(client, tokens, phone=phone)
    twilio_sms(client, no_sid(phone, "STOP"))
    twilio_sms(client, no_sid(phone, "START"))
    time.sleep(1.1)  # past the window: the same words are a new message
    twilio_sms(client, no_sid(phone, "STOP"))
    assert opt_outs(client, tokens, sid) == ["sms"]


# --- the generic monitoring hook's HMAC ----------------------------------------------------


def test_attack_a_replayed_signed_monitoring_request_is_refused(make_app, r, providers):
    client = make_app(HOOKS_SECRET=SECRET).test_client()
    body = json.dumps(
        {"key": "db-primary", "status": "firing", "title": "Payments DB down"}
    ).encode()
    now = int(time.time())
    header = sign(SECRET, body, now)
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: header}
    assert client.post("/hooks/generic", data=body, headers=headers).status_code == 200
    for replayed in (header, f"{header},v1=00ff", f" {header.replace(',', ', ')}"):
        again = client.post(
            "/hooks/generic",
            data=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: replayed},
        )
        assert again.status_code == 409, replayed
        assert "already received" in again.get_json()["message"]
    assert r.llen("bc:hooks:events") == 1, "a replay leaves no second event"
    # The tool sending the same alert again signs it anew: that is not a replay.
    fresh = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(SECRET, body, now + 1)}
    assert client.post("/hooks/generic", data=body, headers=fresh).status_code == 200
