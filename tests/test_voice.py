"""The voice channel: Twilio calls with inline TwiML and their callbacks.

Calls go out through real RQ workers and the real Twilio SDK to a fake Calls API
(tests/fakes_voice.py) that checks the documented request shape. The app is served over
HTTP on 127.0.0.1 so the fake can play Twilio's side of the call: signed status callbacks,
the answering-machine verdict and key presses, POSTed to the URLs the call named.
"""

from __future__ import annotations

import socket
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from werkzeug.serving import make_server

from broadcaster.rendering import voice_text
from channels import ChannelConfigError
from tests.fakes_voice import FakeTwilioVoice
from tests.helpers import announce, deliveries, drain, subscribe
from tests.voice_plan import EMERGENCY, PLAN, SPELLED

VOICE_FROM = "+3197010000099"
OUTAGE = {
    "title": "Power outage in Utrecht",
    "body": "Since 09:10 there is no power in Utrecht. See https://acme.example/outage for "
    "the map. <b>Medical equipment</b> on batteries: call us.",
    "severity": "minor",
    "audiences": ["medical"],
    "channels": ["voice"],
    "translations": {
        "nl": {"title": "Stroomstoring in Utrecht", "body": "Sinds 09:10 geen stroom."},
        "da": {"title": "Strømsvigt i Utrecht", "body": "Ingen strøm siden 09:10."},
        "sv": {"title": "Strömavbrott i Utrecht", "body": "Ingen ström sedan 09:10."},
    },
}
# Per locale: Say language, voice, the translated title, the prompt's first sentence.
SPOKEN = {
    "en": ("en-GB", "Polly.Amy", "Power outage in Utrecht", "Press 1 to confirm"),
    "nl": ("nl-NL", "Polly.Lotte", "Stroomstoring in Utrecht", "Druk op 1 om te bevestigen"),
    "da": ("da-DK", "Polly.Naja", "Strømsvigt i Utrecht", "Tryk 1 for at bekræfte"),
    "sv": ("sv-SE", "Polly.Astrid", "Strömavbrott i Utrecht", "Tryck 1 för att bekräfta"),
}
PHONES = {"en": "+31612340001", "nl": "+31612340002", "da": "+31612340003", "sv": "+31612340004"}


@pytest.fixture(scope="session")
def voice_server() -> Iterator[FakeTwilioVoice]:
    fake = FakeTwilioVoice()
    yield fake
    fake.stop()


@pytest.fixture
def voice(voice_server: FakeTwilioVoice) -> Iterator[FakeTwilioVoice]:
    voice_server.reset()
    voice_server.invalid_numbers.clear()
    yield voice_server
    # Whatever a test did, the SDK must have spoken the Calls API's documented shape.
    assert voice_server.violations == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve(
    make_app: Callable[..., Flask], voice: FakeTwilioVoice, tmp_path: Path
) -> Iterator[Callable[..., Flask]]:
    """``serve(**config)``: the app with the voice plan, served over HTTP on 127.0.0.1."""
    servers = []

    def start(**overrides: Any) -> Flask:
        port = _free_port()
        plan = tmp_path / "voice-plan.toml"
        plan.write_text(overrides.pop("PLAN_TEXT", PLAN), encoding="utf-8")
        settings = {
            "PLAN": str(plan),
            "TWILIO_BASE_URL": voice.url,
            "TWILIO_VOICE_FROM": VOICE_FROM,
            "PUBLIC_URL": f"http://127.0.0.1:{port}",
            "TWILIO_VOICE_RATE": 1000,  # pacing has its own test below
        }
        app = make_app(**{**settings, **overrides})
        server = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return app

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _people(client, tokens, locales=("en", "nl", "da", "sv")) -> dict[str, str]:
    """Subscribe one person per locale; phone → locale."""
    rows = [{"phone": PHONES[loc], "locale": loc, "audiences": ["medical"]} for loc in locales]
    subscribe(client, tokens["admin"], rows)
    return {PHONES[loc]: loc for loc in locales}


def _calls_by_locale(voice: FakeTwilioVoice, people: dict[str, str]) -> dict[str, dict]:
    return {people[call["To"]]: call for call in voice.calls()}


def _records(client, tokens, ann: str) -> dict[str, dict]:
    """The voice delivery records by the person's locale (the ledger keeps a masked phone)."""
    by_end = {phone[-3:]: locale for locale, phone in PHONES.items()}
    items = deliveries(client, tokens["admin"], ann)
    return {by_end[r["to"][-3:]]: r for r in items if r["channel"] == "voice"}


def _says(element: ET.Element) -> list[ET.Element]:
    return list(element.iter("Say"))


def test_a_call_per_language_reads_the_message_twice_and_asks_for_a_key(serve, voice, tokens):
    app = serve()
    client = app.test_client()
    people = _people(client, tokens)
    ann = announce(client, tokens["admin"], OUTAGE)["id"]
    drain(app)

    calls = _calls_by_locale(voice, people)
    assert set(calls) == {"en", "nl", "da", "sv"}
    public = app.config["PUBLIC_URL"]
    for locale, (language, voice_name, title, prompt) in SPOKEN.items():
        call = calls[locale]
        assert call["From"] == VOICE_FROM
        assert call["MachineDetection"] == "DetectMessageEnd" and call["AsyncAmd"] == "true"
        assert call["StatusCallbackEvent"] == ["completed"]
        assert call["StatusCallback"].startswith(f"{public}/hooks/twilio/voice/status?a={ann}")
        assert call["AsyncAmdStatusCallback"].startswith(f"{public}/hooks/twilio/voice/amd?")
        root = ET.fromstring(call["Twiml"])
        says = _says(root)
        assert {(s.get("language"), s.get("voice")) for s in says} == {(language, voice_name)}
        message = says[0].text or ""
        # Read twice: the same text in the first two <Say>s, before the <Gather>.
        assert [s.text for s in root.findall("Say")[:2]] == [message, message]
        assert title in message and SPELLED in message
        assert "http" not in message and "<" not in message and "acme.example" not in message
        gather = root.find("Gather")
        assert gather is not None and gather.get("numDigits") == "1"
        assert gather.get("action", "").startswith(f"{public}/hooks/twilio/voice/gather?a={ann}")
        prompt_text = _says(gather)[0].text or ""
        assert prompt_text.startswith(prompt) and "2" in prompt_text
    records = client.get(
        f"/api/v1/announcements/{ann}/deliveries?channel=voice", headers=tokens["admin"]
    ).get_json()["items"]
    assert len(records) == 4 and {r["state"] for r in records} == {"sent"}
    assert {r["channel"] for r in records} == {"voice"}


def test_status_callbacks_are_recorded_like_receipts(serve, voice, tokens):
    app = serve()
    client = app.test_client()
    people = _people(client, tokens)
    ann = announce(client, tokens["admin"], OUTAGE)["id"]
    drain(app)
    calls = _calls_by_locale(voice, people)

    assert voice.status(calls["en"], "completed", CallDuration="61").status == 204
    assert voice.status(calls["nl"], "busy").status == 204
    assert voice.status(calls["da"], "no-answer").status == 204
    assert voice.status(calls["sv"], "failed", ErrorCode="31005").status == 204
    assert voice.status(calls["en"], "ringing").status == 204  # late, not final: ignored

    states = _records(client, tokens, ann)
    assert states["en"]["state"] == "delivered" and states["en"]["duration"] == "61"
    assert states["nl"]["state"] == "undelivered" and states["nl"]["error"] == "call busy"
    assert states["da"]["state"] == "undelivered"
    assert states["sv"]["state"] == "failed" and "31005" in states["sv"]["error"]
    counts = client.get(f"/api/v1/announcements/{ann}", headers=tokens["admin"]).get_json()
    assert counts["deliveries"]["voice"]["delivered"] == 1
    scrape = client.get("/metrics").get_data(as_text=True)
    assert 'broadcaster_deliveries{channel="voice",state="delivered"} 1.0' in scrape
    assert 'broadcaster_receipts_total{event="busy",outcome="applied",provider="twilio"} 1.0' in (
        scrape
    )


def test_an_answering_machine_gets_the_short_message(serve, voice, tokens):
    app = serve()
    client = app.test_client()
    people = _people(client, tokens, ("nl", "en"))
    ann = announce(client, tokens["admin"], OUTAGE)["id"]
    drain(app)
    calls = _calls_by_locale(voice, people)

    assert voice.machine(calls["en"], "human").status == 204
    assert voice.updates() == [], "a person hears the whole call"
    assert voice.machine(calls["nl"], "machine_end_beep").status == 204
    [update] = voice.updates()
    assert update["sid"] == calls["nl"]["sid"]
    root = ET.fromstring(update["Twiml"])
    assert root.find("Gather") is None, "a machine cannot press a key"
    [say] = _says(root)
    assert (say.get("language"), say.get("voice")) == ("nl-NL", "Polly.Lotte")
    assert "Stroomstoring in Utrecht" in say.text and SPELLED in say.text
    assert root.find("Hangup") is not None
    record = _records(client, tokens, ann)["nl"]
    assert record["answered_by"] == "machine_end_beep" and record["left_message"] is True
    # The same verdict again (Twilio retried, or someone replays it): the call is not
    # updated a second time.
    assert voice.machine(calls["nl"], "machine_end_beep").status == 204
    assert len(voice.updates()) == 1


def test_key_1_thanks_key_2_dials_the_emergency_route_other_keys_repeat(serve, voice, tokens):
    app = serve()
    client = app.test_client()
    people = _people(client, tokens, ("da", "en"))
    ann = announce(client, tokens["admin"], OUTAGE)["id"]
    drain(app)
    calls = _calls_by_locale(voice, people)

    thanks = voice.press(calls["da"], "1")
    assert thanks.status == 200
    [say] = _says(thanks.twiml())
    assert say.get("language") == "da-DK" and say.text.startswith("Tak.")
    assert thanks.twiml().find("Hangup") is not None

    connect = voice.press(calls["en"], "2")
    dial = connect.twiml().find("Dial")
    assert dial is not None and dial.text == EMERGENCY

    again = voice.press(calls["en"], "7")
    gather = again.twiml().find("Gather")
    assert gather is not None and "again=1" in gather.get("action", "")
    assert _says(gather)[0].text.startswith("Press 1 to confirm")
    goodbye = voice.press(calls["en"], "#", action=gather.get("action"))
    assert goodbye.twiml().find("Gather") is None
    assert [s.text for s in _says(goodbye.twiml())] == ["Goodbye."]

    records = _records(client, tokens, ann)
    assert records["da"]["pressed"] == "1"
    assert records["en"]["pressed"] == "#"  # the latest key is kept
    scrape = client.get("/metrics").get_data(as_text=True)
    for event, n in (("key_1", 1), ("key_2", 1), ("other_key", 2)):
        assert f'broadcaster_voice_calls_total{{event="{event}"}} {n}.0' in scrape, event


def test_callbacks_with_a_bad_signature_are_refused(serve, voice, tokens):
    app = serve()
    client = app.test_client()
    people = _people(client, tokens, ("en",))
    ann = announce(client, tokens["admin"], OUTAGE)["id"]
    drain(app)
    [call] = voice.calls()
    params = {"CallSid": call["sid"], "CallStatus": "completed", "Digits": "1"}
    for url in (call["StatusCallback"], call["AsyncAmdStatusCallback"]):
        answer = voice.post(url, params, signature="bm90IGEgc2lnbmF0dXJl")
        assert answer.status == 401 and "X-Twilio-Signature" in answer.body
    action = ET.fromstring(call["Twiml"]).find("Gather").get("action")
    assert voice.post(action, params, signature="").status == 401  # unsigned
    # Signed for another delivery's URL: the signature covers the query that names it.
    other = action.replace(f"a={ann}", "a=somebody-else")
    signature = RequestValidator(voice.AUTH_TOKEN).compute_signature(other, params)
    assert voice.post(action, params, signature=signature).status == 401
    # Signed with another account's token.
    wrong = RequestValidator("not-our-token").compute_signature(action, params)
    assert voice.post(action, params, signature=wrong).status == 401
    [record] = deliveries(client, tokens["admin"], ann)
    assert record["state"] == "sent" and "pressed" not in record and "receipt" not in record
    assert list(people) == [call["To"]]


def test_429_is_retried_after_retry_after(serve, voice, tokens):
    app = serve()
    client = app.test_client()
    _people(client, tokens, ("en",))
    voice.fail_next(429, headers={"Retry-After": "1"}, body={"code": 20429, "message": "busy"})
    ann = announce(client, tokens["admin"], OUTAGE)["id"]
    drain(app)
    statuses = [req["status"] for req in voice.requests if req.get("kind") == "call"]
    assert statuses == [429, 201]
    calls = [req for req in voice.requests if req.get("kind") == "call"]
    assert calls[1]["at"] - calls[0]["at"] >= 0.95
    [record] = deliveries(client, tokens["admin"], ann)
    assert record["state"] == "sent" and record["attempts"] == 2


def test_400_fails_the_call_for_good_and_the_plan_falls_back_to_sms(serve, voice, tokens):
    app = serve()
    client = app.test_client()
    _people(client, tokens, ("nl",))
    voice.uncallable.add(PHONES["nl"])
    ann = announce(client, tokens["admin"], OUTAGE)["id"]
    drain(app)
    calls = [req for req in voice.requests if req.get("kind") == "call"]
    assert [c["status"] for c in calls] == [400], "a permanent error is not retried"
    records = {r["channel"]: r for r in deliveries(client, tokens["admin"], ann)}
    assert records["voice"]["state"] == "failed" and "21217" in records["voice"]["error"]
    assert records["sms"]["state"] == "sent" and records["sms"]["fallback_from"] == "voice"
    [sms] = [
        req["form"] for req in voice.requests if req["status"] == 201 and "Body" in req["form"]
    ]
    assert sms["To"] == PHONES["nl"] and "Stroomstoring" in sms["Body"]


def test_calls_are_paced_per_calling_number(serve, voice, tokens):
    app = serve(TWILIO_VOICE_RATE=4)
    client = app.test_client()
    _people(client, tokens)
    announce(client, tokens["admin"], OUTAGE)
    drain(app)
    arrivals = sorted(req["arrived"] for req in voice.requests if req.get("kind") == "call")
    assert len(arrivals) == 4
    # At 4 calls/s the first goes at once and each next one a quarter second later.
    assert arrivals[-1] - arrivals[0] >= 0.65, arrivals


def test_preview_shows_the_spoken_text_per_language(serve, voice, tokens):
    app = serve()
    client = app.test_client()
    response = client.post("/api/v1/preview", json=OUTAGE, headers=tokens["helpdesk"])
    assert response.status_code == 200, response.get_json()
    renderings = {
        r["locale"]: r for r in response.get_json()["renderings"] if r["channel"] == "voice"
    }
    assert set(renderings) == {"en", "nl", "da", "sv"}
    nl = renderings["nl"]
    assert nl["content"]["text"].startswith("Dit is een bericht van Acme Energy.")
    assert SPELLED in nl["content"]["text"] and nl["content"]["emergency"] == EMERGENCY
    assert nl["measures"]["limit"] == voice_text.SPOKEN_MAX and nl["measures"]["seconds"] > 0
    assert "https" not in renderings["en"]["content"]["text"]
    assert voice.calls() == [], "a preview places no call"


def test_without_twilio_credentials_calls_go_to_the_outbox(serve, voice, tokens):
    app = serve(TWILIO_ACCOUNT_SID=None, TWILIO_AUTH_TOKEN=None)
    client = app.test_client()
    _people(client, tokens, ("sv",))
    ann = announce(client, tokens["admin"], OUTAGE)["id"]
    drain(app)
    assert voice.requests == []
    [record] = deliveries(client, tokens["admin"], ann)
    assert record["state"] == "sent" and record["provider_id"].startswith("outbox-")
    assert record["message"]["text"].startswith("Det här är ett meddelande från Acme Energy.")
    assert client.get("/readyz").get_json()["checks"]["transports"]["voice"] == "outbox"


def test_the_voice_number_is_needed_only_where_the_plan_names_voice(serve, voice, tokens):
    sms_only = {"TWILIO_FROM": None, "TWILIO_VOICE_FROM": None}
    sms_only["TWILIO_MESSAGING_SERVICE_SID"] = "MG" + "1" * 32
    with pytest.raises(ChannelConfigError, match="BROADCASTER_TWILIO_VOICE_FROM"):
        serve(**sms_only)  # the plan calls people for minor incidents and up
    quiet = PLAN.replace('"banner", "voice"', '"banner"').replace("voice = ", "email = ")
    app = serve(PLAN_TEXT=quiet, **sms_only)
    client = app.test_client()
    _people(client, tokens, ("en",))
    ann = announce(client, tokens["admin"], OUTAGE)["id"]  # asks for voice all the same
    drain(app)
    assert voice.calls() == []
    [record] = deliveries(client, tokens["admin"], ann)
    assert record["state"] == "failed" and "BROADCASTER_TWILIO_VOICE_FROM" in record["error"]


def test_hostile_callback_fields_never_break_a_call(serve, voice, tokens):
    """Signed, but anything in the fields: a key press always gets well-formed TwiML."""
    app = serve()
    client = app.test_client()
    _people(client, tokens, ("sv",))
    ann = announce(client, tokens["admin"], OUTAGE)["id"]
    drain(app)
    [call] = voice.calls()
    action = ET.fromstring(call["Twiml"]).find("Gather").get("action")
    validator = RequestValidator(voice.AUTH_TOKEN)

    def signed_post(url: str, form: dict[str, str]):
        parts = urllib.parse.urlsplit(url)
        return client.post(
            f"{parts.path}?{parts.query}",
            data=form,
            headers={"X-Twilio-Signature": validator.compute_signature(url, form)},
        )

    @settings(max_examples=40, deadline=None)
    @given(value=st.text(max_size=60))
    def hostile(value: str) -> None:
        pressed = signed_post(action, {"CallSid": call["sid"], "Digits": value})
        assert pressed.status_code == 200
        root = ET.fromstring(pressed.get_data(as_text=True))
        assert root.tag == "Response"
        assert (root.find("Dial") is not None) == (value == "2")
        for url, field in (
            (call["StatusCallback"], "CallStatus"),
            (call["AsyncAmdStatusCallback"], "AnsweredBy"),
        ):
            assert signed_post(url, {"CallSid": call["sid"], field: value}).status_code == 204

    hostile()
    [record] = deliveries(client, tokens["admin"], ann)
    assert record["state"] in ("sent", "delivered", "undelivered", "failed")
