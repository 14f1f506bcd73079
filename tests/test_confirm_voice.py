"""The escalation run end to end: email, then SMS, then a voice call, then a person.

Twelve people of an audience that must confirm (``escalate = ["sms", "voice"]``): a quarter
confirm by the email's link, a quarter by an SMS reply, a quarter by pressing 1 on the
call, and a quarter never. The app is served over HTTP so the fake Twilio (tests/fakes_voice.py)
can play its side of the call — the key press is POSTed, signed, to the ``<Gather>`` action
the call named. Real RQ workers run the fan-out, the batches and each escalation step when
RQ's scheduler finds it due; a plan minute is MINUTE seconds.
"""

from __future__ import annotations

import itertools
from collections import Counter

from twilio.request_validator import RequestValidator

from tests.fakes import FakeTwilio
from tests.helpers import announce
from tests.test_confirm import MINUTE, confirm_links, confirmations, medical, run, run_when_due
from tests.test_voice import serve as serve  # the voice fixtures: the app over HTTP
from tests.test_voice import voice as voice  # the fake Calls and Messages API
from tests.test_voice import voice_server as voice_server
from tests.voice_plan import PLAN as VOICE_PLAN

PLAN = VOICE_PLAN.replace(
    'emergency_route = "Emergency"\n',
    'emergency_route = "Emergency"\n'
    'confirm = { within_minutes = 1, escalate = ["sms", "voice"] }\n',
)
OUTAGE = {
    "title": "Power outage in Utrecht",
    "body": "Power is out in Utrecht since 09:10. Crews are on site.",
    "severity": "minor",
    "audiences": ["medical"],
    "channels": ["email"],
}
_sids = itertools.count(1)


def texts(voice) -> list[dict[str, str]]:
    """The SMS the fake Twilio accepted (its calls are accepted there too)."""
    return [form for form in voice.accepted() if "Body" in form]


def sms_reply(client, public_url: str, phone: str, body: str) -> None:
    """An SMS to our number, signed as Twilio signs it for this app's public URL."""
    form = {
        "MessageSid": f"SMvc{next(_sids):030d}",
        "AccountSid": FakeTwilio.ACCOUNT_SID,
        "From": phone,
        "To": "+3197010000000",
        "Body": body,
    }
    url = f"{public_url}/hooks/twilio/inbound"
    signature = RequestValidator(FakeTwilio.AUTH_TOKEN).compute_signature(url, form)
    answer = client.post(
        "/hooks/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature}
    )
    assert answer.status_code == 200


def test_email_then_sms_then_a_call_then_the_unreachable_list(serve, voice, tokens, sendgrid):
    assert "confirm = { within_minutes = 1" in PLAN
    app = serve(PLAN_TEXT=PLAN, CONFIRM_MINUTE_SECONDS=MINUTE)
    client = app.test_client()
    public_url = app.config["PUBLIC_URL"]
    group = medical(client, tokens, 12)
    by_link, by_sms, by_call, never = group[:3], group[3:6], group[6:9], group[9:]
    created = announce(client, tokens["admin"], OUTAGE)
    run(app)
    links = confirm_links(sendgrid)
    assert sorted(links) == sorted(p["email"] for p in group)
    for person in by_link:
        assert client.post(links[person["email"]], data={"answer": "confirm"}).status_code == 200

    # Step 1: an SMS to the nine who did not confirm by email; three answer it.
    step1 = run_when_due(app, f"confirm-{created['id']}-1")
    texted = [m["To"] for m in texts(voice)]
    assert sorted(texted) == sorted(p["phone"] for p in by_sms + by_call + never)
    assert voice.calls() == []
    for person, body in zip(by_sms, ("1", "OK", "ja"), strict=True):
        sms_reply(client, public_url, person["phone"], body)

    # Step 2, a plan minute later: a call to the six left; three press 1.
    step2 = run_when_due(app, f"confirm-{created['id']}-2")
    assert step2 >= step1 + MINUTE - 1  # RQ schedules to the whole second
    calls = {call["To"]: call for call in voice.calls()}
    assert sorted(calls) == sorted(p["phone"] for p in by_call + never)
    for person in by_call:
        thanks = voice.press(calls[person["phone"]], "1")
        assert thanks.status == 200 and thanks.twiml().find("Hangup") is not None
    found = confirmations(client, tokens, created["incident_id"])
    assert found["counts"]["confirmed"] == 9 and found["counts"]["waiting"] == 3

    # Step 3: no channel left for the three who never answered: a person calls them.
    step3 = run_when_due(app, f"confirm-{created['id']}-3")
    assert step3 >= step2 + MINUTE - 1
    found = confirmations(client, tokens, created["incident_id"])
    assert found["counts"] == {
        "asked": 12,
        "waiting": 0,
        "confirmed": 9,
        "help": 0,
        "unreachable": 3,
        "escalated": 9,
    }
    assert found["finished"] == "done"
    assert {p["external_id"] for p in found["unreachable"]} == {p["external_id"] for p in never}
    tried = {p["external_id"]: {t["channel"] for t in p["tried"]} for p in found["unreachable"]}
    assert all(channels == {"email", "sms", "voice"} for channels in tried.values())
    assert found["help"] == []

    # Nobody was contacted twice on one channel.
    assert max(Counter(a for a, _ in sendgrid.accepted()).values()) == 1
    assert max(Counter(m["To"] for m in texts(voice)).values()) == 1
    assert max(Counter(c["To"] for c in voice.calls()).values()) == 1
    assert len(voice.calls()) == 6 and len(texts(voice)) == 9
