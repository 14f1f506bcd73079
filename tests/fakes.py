"""Small fake SendGrid and Twilio servers on 127.0.0.1 for the real SDKs to talk to.

Each checks the wire format the real provider expects, records what it accepted, and can
be told to answer 429 / 5xx / 400 — for the next N requests, or for given recipients.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Scripted:
    """A canned answer for the next ``times`` requests."""

    status: int  # 0: no canned answer, only the stall below, then the normal one
    times: int = 1
    stall: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


class FakeProvider:
    """Base: a threaded HTTP server that records requests and replays scripted failures."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []  # every request, accepted or not
        self.violations: list[str] = []  # wire-format problems: tests assert this stays empty
        self.script: list[Scripted] = []
        self.delay = 0.0
        self.throttle_rate = 0.0  # requests/s beyond which the fake answers 429 (0: never)
        self.throttle_burst = 1.0
        self._tokens = 0.0
        self._refilled = 0.0
        self.generation = 0  # bumped by reset(): a request still in flight then is not recorded
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if len(raw) < length:
                    # The client died mid-request (a SIGKILLed worker): like a real provider,
                    # act on nothing and record nothing — it is not the SDK's wire format.
                    self.close_connection = True
                    return
                status, headers, body = provider.handle(self.path, dict(self.headers), raw)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail_next(
        self,
        status: int,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (and headers/body)."""
        with self.lock:
            self.script.append(
                Scripted(status, times, headers=headers or {}, body=body or {"message": "fake"})
            )

    def stall_next(self, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` requests for ``seconds`` before answering normally."""
        with self.lock:
            self.script.append(Scripted(0, times, stall=seconds))

    def throttle(self, rate: float, burst: float = 1.0) -> None:
        """Answer 429 (with Retry-After) beyond ``rate`` requests/s, as a provider's limiter.

        A token bucket of ``burst`` requests, full at the start, like the provider's own.
        """
        with self.lock:
            self.throttle_rate, self.throttle_burst = rate, burst
            self._tokens, self._refilled = burst, time.monotonic()

    def _throttled(self) -> bool:
        """Take a token; True when none is left (the request gets a 429)."""
        with self.lock:
            if not self.throttle_rate:
                return False
            now = time.monotonic()
            elapsed = now - self._refilled
            self._tokens = min(self.throttle_burst, self._tokens + elapsed * self.throttle_rate)
            self._refilled = now
            if self._tokens < 1:
                return True
            self._tokens -= 1
            return False

    def reset(self) -> None:
        with self.lock:
            self.generation += 1
            self.requests.clear()
            self.violations.clear()
            self.script.clear()
            self.throttle_rate = 0.0
        self.delay = 0.0

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _scripted(self) -> Scripted | None:
        with self.lock:
            if not self.script:
                return None
            current = self.script[0]
            current.times -= 1
            if current.times <= 0:
                self.script.pop(0)
            return current

    def handle(
        self, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], Any]:
        raise NotImplementedError

    def _log(self, generation: int, record: dict[str, Any], problems: list[str]) -> None:
        with self.lock:
            if generation == self.generation:
                self.requests.append(record)
                self.violations.extend(problems)


class FakeSendGrid(FakeProvider):
    """``POST /v3/mail/send`` as SendGrid answers it: 202 with ``X-Message-Id``."""

    API_KEY = "SG.test-key"
    MAX_PERSONALIZATIONS = 1000

    def __init__(self) -> None:
        super().__init__()
        self.rejected_addresses: set[str] = set()
        self._ids = itertools.count(1)

    def accepted(self) -> list[tuple[str, dict[str, Any]]]:
        """(recipient address, request payload) for every accepted personalization."""
        out = []
        for req in self.requests:
            if req["status"] == 202:
                for p in req["json"]["personalizations"]:
                    out.append((p["to"][0]["email"], req["json"]))
        return out

    def handle(
        self, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], Any]:
        generation = self.generation
        problems = []
        if path != "/v3/mail/send":
            problems.append(f"unexpected path {path}")
        if headers.get("Authorization") != f"Bearer {self.API_KEY}":
            problems.append("missing or wrong Authorization bearer key")
        try:
            data = json.loads(raw)
        except ValueError:
            data = {}
            problems.append("body is not JSON")
        personalizations = data.get("personalizations") or []
        if not 1 <= len(personalizations) <= self.MAX_PERSONALIZATIONS:
            problems.append(f"{len(personalizations)} personalizations (must be 1..1000)")
        placeholders = {
            token
            for token in ("-unsubscribe_url-", "-confirm_url-", "-answer_url-")
            if any(token in (c.get("value") or "") for c in data.get("content") or [])
        }
        for p in personalizations:
            if len(p.get("to") or []) != 1 or "@" not in p["to"][0].get("email", ""):
                problems.append(f"personalization without exactly one 'to' address: {p}")
            # SendGrid leaves an unmatched substitution tag in the mail as literal text.
            missing = placeholders - set(p.get("substitutions") or {})
            if missing:
                problems.append(f"content uses {sorted(missing)} but a personalization lacks it")
        if not (data.get("from") or {}).get("email"):
            problems.append("missing from.email")
        if not data.get("subject"):
            problems.append("missing subject")
        types = [c.get("type") for c in data.get("content") or []]
        if types != ["text/plain", "text/html"]:
            problems.append(f"content types {types} (want text/plain then text/html)")
        if self.delay:
            time.sleep(self.delay)
        scripted = self._scripted()
        if scripted and scripted.stall:
            time.sleep(scripted.stall)
        if scripted and scripted.status:
            status, out_headers, body = scripted.status, scripted.headers, scripted.body
        elif problems:
            status, out_headers, body = 400, {}, {"errors": [{"message": m} for m in problems]}
        else:
            bad = [
                {
                    "message": "Does not contain a valid address.",
                    "field": f"personalizations.{i}.to.0.email",
                }
                for i, p in enumerate(personalizations)
                if p["to"][0]["email"] in self.rejected_addresses
            ]
            if bad:
                status, out_headers, body = 400, {}, {"errors": bad}
            else:
                status, out_headers, body = 202, {"X-Message-Id": f"sg-{next(self._ids)}"}, {}
        self._log(
            generation,
            {"json": data, "status": status, "at": time.monotonic(), "wall": time.time()},
            problems,
        )
        return status, out_headers, body


class FakeTwilio(FakeProvider):
    """``POST /2010-04-01/Accounts/{sid}/Messages.json`` as Twilio answers it."""

    ACCOUNT_SID = "AC" + "0" * 32
    AUTH_TOKEN = "test-auth-token"

    def __init__(self) -> None:
        super().__init__()
        self.invalid_numbers: set[str] = set()
        # WhatsApp templates registered on the account: Content SID → its variable keys.
        self.content_templates: dict[str, set[str]] = {}
        self._ids = itertools.count(1)

    def accepted(self) -> list[dict[str, str]]:
        """The form fields of every accepted message."""
        return [req["form"] for req in self.requests if req["status"] == 201]

    def message_problems(self, form: dict[str, str]) -> list[str]:
        """What is wrong with a message's own fields, SMS or WhatsApp."""
        if not form.get("To", "").startswith("whatsapp:"):
            problems = []
            if not form.get("To", "").startswith("+"):
                problems.append(f"To is not E.164: {form.get('To')!r}")
            if not form.get("Body"):
                problems.append("missing Body")
            return problems
        return self.whatsapp_problems(form)

    def whatsapp_problems(self, form: dict[str, str]) -> list[str]:
        """Twilio's documented WhatsApp shapes: ``whatsapp:+E.164`` on both ends (or a
        messaging service), a template as ``ContentSid`` + ``ContentVariables`` (a JSON
        object of strings, at most 100) and no ``Body``, or free text in ``Body``."""
        problems = []
        if not form["To"].removeprefix("whatsapp:").startswith("+"):
            problems.append(f"To is not whatsapp:+E.164: {form['To']!r}")
        sender = form.get("From")
        if sender and not sender.startswith("whatsapp:+"):
            problems.append(f"From of a WhatsApp message is not whatsapp:+…: {sender!r}")
        sid, variables = form.get("ContentSid"), form.get("ContentVariables")
        if variables is not None and not sid:
            problems.append("ContentVariables without ContentSid (Twilio error 21654)")
        if not sid:
            if not form.get("Body"):
                problems.append("a WhatsApp message needs Body or ContentSid")
            return problems
        if form.get("Body") or form.get("MediaUrl"):
            problems.append("Body/MediaUrl beside ContentSid: send the template alone")
        if not (sid.startswith("HX") and len(sid) == 34):
            problems.append(f"ContentSid is not HX + 32 hex digits: {sid!r}")
        try:
            values = json.loads(variables or "{}")
        except ValueError:
            return [*problems, f"ContentVariables is not JSON: {variables!r}"]
        if not isinstance(values, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in values.items()
        ):
            return [*problems, "ContentVariables must be a JSON object of strings"]
        if len(values) > 100:
            problems.append("more than 100 ContentVariables")
        for key, value in values.items():
            # WhatsApp refuses such parameters (Twilio errors 63013, 63021).
            if not value.strip() or "\n" in value or "\t" in value or "     " in value:
                problems.append(f"variable {key} is empty or not one line: {value!r}")
        expected = self.content_templates.get(sid)
        if expected is not None and set(values) != expected:
            problems.append(f"{sid} takes variables {sorted(expected)}, got {sorted(values)}")
        return problems

    def handle(
        self, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], Any]:
        generation = self.generation
        problems = []
        if path != f"/2010-04-01/Accounts/{self.ACCOUNT_SID}/Messages.json":
            problems.append(f"unexpected path {path}")
        expected = base64.b64encode(f"{self.ACCOUNT_SID}:{self.AUTH_TOKEN}".encode()).decode()
        if headers.get("Authorization") != f"Basic {expected}":
            problems.append("missing or wrong basic auth")
        if not headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            problems.append("body is not form-encoded")
        form = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
        problems += self.message_problems(form)
        if bool(form.get("From")) == bool(form.get("MessagingServiceSid")):
            problems.append("exactly one of From / MessagingServiceSid is required")
        arrived = time.monotonic()
        throttled = self._throttled()
        if self.delay:
            time.sleep(self.delay)
        scripted = self._scripted()
        if scripted and scripted.stall:
            time.sleep(scripted.stall)
        if throttled:
            status, out_headers = 429, {"Retry-After": "1"}
            body = {"code": 20429, "message": "Too Many Requests", "status": 429}
        elif scripted and scripted.status:
            status, out_headers, body = scripted.status, scripted.headers, scripted.body
        elif problems:
            status, out_headers, body = (
                400,
                {},
                {"code": 21601, "message": "; ".join(problems), "status": 400},
            )
        elif form["To"] in self.invalid_numbers:
            status, out_headers = 400, {}
            body = {
                "code": 21211,
                "message": f"The 'To' number {form['To']} is not a valid phone number.",
                "more_info": "https://www.twilio.com/docs/errors/21211",
                "status": 400,
            }
        else:
            status, out_headers = 201, {}
            body = {
                "sid": f"SM{next(self._ids):032d}",
                "status": "queued",
                "to": form["To"],
                "from": form.get("From"),
                "body": form.get("Body", ""),
                "account_sid": self.ACCOUNT_SID,
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "num_segments": "1",
            }
        record = {"form": form, "status": status, "at": time.monotonic(), "arrived": arrived}
        self._log(generation, record, problems)
        return status, out_headers, body
