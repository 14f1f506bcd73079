"""A fake Twilio Programmable Voice API on 127.0.0.1, beside the fake Messages API.

``POST /2010-04-01/Accounts/{sid}/Calls.json`` checks the documented request shape (To,
From, one of Twiml / Url / ApplicationSid, StatusCallback with StatusCallbackEvent,
MachineDetection with asynchronous AMD and its callback, well-formed TwiML within 4,000
characters) and answers like Twilio, or with a scripted 429 / 5xx / 400.
``POST …/Calls/{CallSid}.json`` is the live call update (the answering machine's message).
Messages (``FakeTwilio``) are answered as before, so the SMS fallback reaches the same fake.

It plays Twilio's side of the call too: signed status callbacks, the answering-machine
verdict and key presses are POSTed over HTTP to the URLs the call named, signed with
``RequestValidator.compute_signature`` exactly as Twilio signs them.
"""

from __future__ import annotations

import base64
import itertools
import re
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from twilio.request_validator import RequestValidator

from tests.fakes import FakeTwilio

CALL_EVENTS = {"initiated", "ringing", "answered", "completed"}
MACHINE_DETECTION = {"Enable", "DetectMessageEnd"}
TWIML_MAX = 4000
_CALLS = re.compile(r"/2010-04-01/Accounts/(?P<account>[^/]+)/Calls\.json")
_CALL = re.compile(r"/2010-04-01/Accounts/(?P<account>[^/]+)/Calls/(?P<sid>CA[0-9a-f]{32})\.json")


@dataclass
class Answer:
    """What our app answered a callback: HTTP status and body (TwiML for a key press)."""

    status: int
    body: str

    def twiml(self) -> ET.Element:
        return ET.fromstring(self.body)


def _absolute(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


class FakeTwilioVoice(FakeTwilio):
    """Calls API + Messages API of one fake Twilio account."""

    def __init__(self) -> None:
        super().__init__()
        self._call_ids = itertools.count(1)
        # Numbers Twilio refuses to call (400, code 21217); ``invalid_numbers`` are the
        # Messages API's, so a test can refuse a call and still accept the SMS fallback.
        self.uncallable: set[str] = set()

    def reset(self) -> None:
        super().reset()
        self.uncallable.clear()

    def calls(self) -> list[dict[str, Any]]:
        """The form fields (and ``sid``) of every call Twilio accepted, in order."""
        return [
            {**req["form"], "sid": req["sid"]}
            for req in self.requests
            if req.get("kind") == "call" and req["status"] == 201
        ]

    def updates(self) -> list[dict[str, Any]]:
        """Every accepted live-call update: ``sid`` and its form."""
        return [
            {**req["form"], "sid": req["sid"]}
            for req in self.requests
            if req.get("kind") == "update" and req["status"] == 200
        ]

    def handle(
        self, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], Any]:
        if _CALLS.fullmatch(path):
            return self._create(path, headers, raw)
        if _CALL.fullmatch(path):
            return self._update(path, headers, raw)
        return super().handle(path, headers, raw)  # Messages

    def _common(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[dict, list[str]]:
        problems = []
        match = _CALLS.fullmatch(path) or _CALL.fullmatch(path)
        if not match or match["account"] != self.ACCOUNT_SID:
            problems.append(f"unexpected path {path}")
        expected = base64.b64encode(f"{self.ACCOUNT_SID}:{self.AUTH_TOKEN}".encode()).decode()
        if headers.get("Authorization") != f"Basic {expected}":
            problems.append("missing or wrong basic auth")
        if not headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            problems.append("body is not form-encoded")
        form = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True)
        return form, problems

    def _check_twiml(self, twiml: str, problems: list[str]) -> None:
        if len(twiml) > TWIML_MAX:
            problems.append(f"Twiml is {len(twiml)} characters (at most {TWIML_MAX})")
        try:
            root = ET.fromstring(twiml)
        except ET.ParseError as exc:
            problems.append(f"Twiml is not well-formed XML: {exc}")
            return
        if root.tag != "Response":
            problems.append(f"Twiml root is <{root.tag}>, not <Response>")

    def _create(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict, Any]:
        generation = self.generation
        multi, problems = self._common(path, headers, raw)
        form = {k: v[0] for k, v in multi.items()}
        if not re.fullmatch(r"\+[1-9][0-9]{6,14}", form.get("To", "")):
            problems.append(f"To is not E.164: {form.get('To')!r}")
        if not form.get("From"):
            problems.append("missing From")
        given = [k for k in ("Twiml", "Url", "ApplicationSid") if form.get(k)]
        if len(given) != 1:
            problems.append(f"exactly one of Twiml / Url / ApplicationSid is required: {given}")
        if form.get("Twiml"):
            self._check_twiml(form["Twiml"], problems)
        events = multi.get("StatusCallbackEvent", [])
        if events and not form.get("StatusCallback"):
            problems.append("StatusCallbackEvent without StatusCallback")
        if set(events) - CALL_EVENTS:
            problems.append(f"unknown StatusCallbackEvent {sorted(set(events) - CALL_EVENTS)}")
        if form.get("StatusCallback") and not _absolute(form["StatusCallback"]):
            problems.append("StatusCallback is not an absolute URL")
        detection = form.get("MachineDetection")
        if detection is not None and detection not in MACHINE_DETECTION:
            problems.append(f"MachineDetection must be Enable or DetectMessageEnd: {detection!r}")
        if form.get("AsyncAmd") not in (None, "true", "false"):
            problems.append(f"AsyncAmd must be true or false: {form['AsyncAmd']!r}")
        if form.get("AsyncAmd") == "true":
            if not detection:
                problems.append("AsyncAmd without MachineDetection")
            if not _absolute(form.get("AsyncAmdStatusCallback", "")):
                problems.append("AsyncAmd without an absolute AsyncAmdStatusCallback")
        form["StatusCallbackEvent"] = events  # type: ignore[assignment]
        arrived = time.monotonic()
        throttled = self._throttled()
        scripted = self._scripted()
        sid = ""
        if throttled:
            status, out_headers = 429, {"Retry-After": "1"}
            body: dict[str, Any] = {"code": 20429, "message": "Too Many Requests", "status": 429}
        elif scripted and scripted.status:
            status, out_headers, body = scripted.status, scripted.headers, scripted.body
        elif problems:
            status, out_headers = 400, {}
            body = {"code": 21205, "message": "; ".join(problems), "status": 400}
        elif form["To"] in self.uncallable:
            status, out_headers = 400, {}
            body = {
                "code": 21217,
                "message": f"Phone number {form['To']} does not appear to be valid",
                "more_info": "https://www.twilio.com/docs/errors/21217",
                "status": 400,
            }
        else:
            sid = f"CA{next(self._call_ids):032x}"
            status, out_headers = 201, {}
            body = {
                "sid": sid,
                "account_sid": self.ACCOUNT_SID,
                "to": form["To"],
                "from": form["From"],
                "status": "queued",
                "direction": "outbound-api",
                "answered_by": None,
            }
        record = {
            "kind": "call",
            "form": form,
            "sid": sid,
            "status": status,
            "at": time.monotonic(),
            "arrived": arrived,
        }
        self._log(generation, record, problems)
        return status, out_headers, body

    def _update(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict, Any]:
        generation = self.generation
        multi, problems = self._common(path, headers, raw)
        form = {k: v[0] for k, v in multi.items()}
        match = _CALL.fullmatch(path)
        sid = match["sid"] if match else ""
        if not any(c["sid"] == sid for c in self.calls()):
            status, body = 404, {"code": 20404, "message": f"no call {sid}", "status": 404}
        else:
            if len([k for k in ("Twiml", "Url") if form.get(k)]) != 1:
                problems.append("an update needs exactly one of Twiml / Url")
            if form.get("Twiml"):
                self._check_twiml(form["Twiml"], problems)
            status = 400 if problems else 200
            body = {"sid": sid, "status": "in-progress"}
        self._log(
            generation,
            {"kind": "update", "form": form, "sid": sid, "status": status, "at": time.monotonic()},
            problems,
        )
        return status, {}, body

    # Twilio's side of the call: callbacks to our app, signed as Twilio signs them.

    def post(self, url: str, params: dict[str, str], signature: str | None = None) -> Answer:
        """POST ``params`` to ``url`` over HTTP, signed with the account's auth token."""
        if signature is None:
            signature = RequestValidator(self.AUTH_TOKEN).compute_signature(url, params)
        assert urllib.parse.urlsplit(url).hostname == "127.0.0.1", url  # tests stay local
        request = urllib.request.Request(
            url,
            data=urllib.parse.urlencode(params).encode(),
            headers={
                "X-Twilio-Signature": signature,
                "Content-Type": "application/x-www-form-urlencoded",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return Answer(response.status, response.read().decode())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, exc.read().decode())

    def _call_params(self, call: dict[str, Any], **more: str) -> dict[str, str]:
        return {
            "AccountSid": self.ACCOUNT_SID,
            "CallSid": call["sid"],
            "From": call["From"],
            "To": call["To"],
            "Direction": "outbound-api",
            "ApiVersion": "2010-04-01",
            **more,
        }

    def status(self, call: dict[str, Any], call_status: str, **more: str) -> Answer:
        """The call ended with ``call_status`` (completed, busy, no-answer, failed…)."""
        params = self._call_params(call, CallStatus=call_status, **more)
        return self.post(call["StatusCallback"], params)

    def machine(self, call: dict[str, Any], answered_by: str) -> Answer:
        """The asynchronous answering-machine verdict (``AnsweredBy``)."""
        params = self._call_params(call, AnsweredBy=answered_by, MachineDetectionDuration="2400")
        return self.post(call["AsyncAmdStatusCallback"], params)

    def press(self, call: dict[str, Any], digits: str, action: str | None = None) -> Answer:
        """The person pressed ``digits`` at the call's ``<Gather>`` (or at ``action``)."""
        if action is None:
            gather = ET.fromstring(call["Twiml"]).find("Gather")
            assert gather is not None, "the call has no <Gather>"
            action = gather.get("action", "")
        params = self._call_params(call, CallStatus="in-progress", Digits=digits)
        return self.post(action, params)
