"""Fast fake SendGrid, Twilio and Mastodon servers (aiohttp), one process each.

Each answers like the real provider, can add latency, rate-limit with 429 (a token bucket)
and fail a share of requests with 5xx, and appends one JSON line per request to a ledger:
``{"t": arrival, "s": status, "to": [recipients], "tag": marker}``. ``/_bench/*`` endpoints
let the runner read counters, flush the ledger and start a new one between runs.

Run: ``python -m bench.fakes sendgrid --port 9001 --ledger /tmp/sg.jsonl [--latency 0.02]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import random
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

# The runner puts this marker in every announcement's title, so a request can be traced
# back to its announcement whatever the channel's format.
TAG = re.compile(r"BM-([0-9a-z]+)")
SENDGRID_KEY = "SG.bench-key"
TWILIO_SID = "AC" + "b" * 32
TWILIO_TOKEN = "bench-auth-token"
MASTODON_TOKEN = "bench-mastodon-token"

Answer = tuple[int, dict[str, str], Any, list[str], str | None]


class TokenBucket:
    """``rate`` requests a second with bursts up to ``burst``; how real providers limit."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Fake:
    """The shared machinery: limits, counters and the ledger; subclasses parse requests."""

    kind = "fake"

    def __init__(self, ledger: Path, latency: float, rate: float, error_ratio: float) -> None:
        self.ledger_path = ledger
        self.latency = latency
        self.bucket = TokenBucket(rate, rate) if rate > 0 else None
        self.error_ratio = error_ratio
        self.ids = itertools.count(1)
        self._open(ledger)

    def _open(self, ledger: Path) -> None:
        self.ledger_path = ledger
        self.ledger = ledger.open("a", buffering=1 << 20)
        self.statuses: dict[int, int] = {}
        self.accepted = 0  # recipients in 2xx answers
        self.first: float | None = None
        self.last_accepted: float | None = None
        self.first_by_tag: dict[str, float] = {}
        self.violations = 0

    def parse(self, request: web.Request, raw: bytes) -> tuple[list[str], str | None, list[str]]:
        """(recipients, tag, wire-format problems) of one request."""
        raise NotImplementedError

    def ok(self, request: web.Request, recipients: list[str]) -> tuple[int, dict, Any]:
        """The provider's success answer."""
        raise NotImplementedError

    async def handle(self, request: web.Request) -> web.Response:
        arrived = time.time()
        raw = await request.read()
        recipients, tag, problems = self.parse(request, raw)
        if self.first is None:
            self.first = arrived
        if tag and tag not in self.first_by_tag:
            self.first_by_tag[tag] = arrived
        if self.latency:
            await asyncio.sleep(self.latency)
        headers: dict[str, str] = {}
        if problems:
            self.violations += 1
            status, body = 400, {"errors": [{"message": p} for p in problems]}
        elif self.bucket is not None and not self.bucket.take():
            status, body, headers = 429, {"message": "Too Many Requests"}, {"Retry-After": "1"}
        elif self.error_ratio and random.random() < self.error_ratio:
            status, body = 503, {"message": "fake outage"}
        else:
            status, headers, body = self.ok(request, recipients)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if 200 <= status < 300:
            self.accepted += len(recipients)
            self.last_accepted = time.time()
        line = {"t": arrived, "s": status, "to": recipients, "tag": tag}
        self.ledger.write(json.dumps(line, separators=(",", ":")) + "\n")
        return web.json_response(body, status=status, headers=headers)

    async def stats(self, request: web.Request) -> web.Response:
        tag = request.query.get("tag")
        return web.json_response(
            {
                "kind": self.kind,
                "accepted": self.accepted,
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "first": self.first,
                "last_accepted": self.last_accepted,
                "violations": self.violations,
                "tag_first": self.first_by_tag.get(tag) if tag else None,
            }
        )

    async def flush(self, request: web.Request) -> web.Response:
        self.ledger.flush()
        return web.json_response({"ledger": str(self.ledger_path)})

    async def rotate(self, request: web.Request) -> web.Response:
        """Start a new ledger (one per run) with fresh counters."""
        self.ledger.close()
        self._open(Path((await request.json())["ledger"]))
        return web.json_response({"ledger": str(self.ledger_path)})


class FakeSendGrid(Fake):
    """``POST /v3/mail/send``: 202 with ``X-Message-Id``, up to 1,000 personalizations."""

    kind = "sendgrid"

    def parse(self, request: web.Request, raw: bytes) -> tuple[list[str], str | None, list[str]]:
        problems = []
        if request.headers.get("Authorization") != f"Bearer {SENDGRID_KEY}":
            problems.append("wrong Authorization")
        try:
            data = json.loads(raw)
        except ValueError:
            return [], None, ["body is not JSON"]
        personalizations = data.get("personalizations") or []
        if not 1 <= len(personalizations) <= 1000:
            problems.append(f"{len(personalizations)} personalizations (must be 1..1000)")
        recipients = [p["to"][0]["email"] for p in personalizations if p.get("to")]
        if len(recipients) != len(personalizations):
            problems.append("a personalization without 'to'")
        found = TAG.search(str(data.get("subject") or ""))
        return recipients, found.group(1) if found else None, problems

    def ok(self, request: web.Request, recipients: list[str]) -> tuple[int, dict, Any]:
        return 202, {"X-Message-Id": f"bench-{next(self.ids)}"}, None


class FakeTwilio(Fake):
    """``POST /2010-04-01/Accounts/{sid}/Messages.json``: 201 with a message resource."""

    kind = "twilio"
    auth = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()

    def parse(self, request: web.Request, raw: bytes) -> tuple[list[str], str | None, list[str]]:
        problems = []
        if request.headers.get("Authorization") != self.auth:
            problems.append("wrong basic auth")
        form = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
        to = form.get("To", "")
        if not to.startswith("+") or not form.get("Body"):
            problems.append("To not E.164 or Body missing")
        found = TAG.search(form.get("Body", ""))
        return [to], found.group(1) if found else None, problems

    def ok(self, request: web.Request, recipients: list[str]) -> tuple[int, dict, Any]:
        sid = f"SM{next(self.ids):032d}"
        return 201, {}, {"sid": sid, "status": "queued", "to": recipients[0], "num_segments": "1"}


class FakeMastodon(Fake):
    """``POST /api/v1/statuses``: a status; a repeated Idempotency-Key gets the same one."""

    kind = "mastodon"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.by_key: dict[str, dict[str, Any]] = {}

    def parse(self, request: web.Request, raw: bytes) -> tuple[list[str], str | None, list[str]]:
        problems = []
        if request.headers.get("Authorization") != f"Bearer {MASTODON_TOKEN}":
            problems.append("wrong bearer token")
        if request.content_type == "application/json":
            form = json.loads(raw or b"{}")
        else:
            form = {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
        text = str(form.get("status") or "")
        key = request.headers.get("Idempotency-Key")
        if not key:
            problems.append("no Idempotency-Key")
        found = TAG.search(text)
        # A replayed key is no new post: it must not count as a second delivery.
        recipient = [] if key in self.by_key else [f"post:{key}"]
        return recipient, found.group(1) if found else None, problems

    def ok(self, request: web.Request, recipients: list[str]) -> tuple[int, dict, Any]:
        key = request.headers.get("Idempotency-Key")
        if key is not None and key in self.by_key:
            return 200, {}, self.by_key[key]
        status_id = str(next(self.ids))
        status = {
            "id": status_id,
            "created_at": "2026-01-01T00:00:00.000Z",
            "url": f"http://127.0.0.1/@bench/{status_id}",
            "uri": f"http://127.0.0.1/users/bench/statuses/{status_id}",
            "content": "",
            "visibility": "public",
            "account": {"id": "1", "username": "bench", "acct": "bench"},
        }
        if key is not None:
            self.by_key[key] = status
        return 200, {}, status


FAKES: dict[str, type[Fake]] = {
    "sendgrid": FakeSendGrid,
    "twilio": FakeTwilio,
    "mastodon": FakeMastodon,
}


def build_app(fake: Fake) -> web.Application:
    """The aiohttp app: provider endpoints plus the runner's ``/_bench`` controls."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    handler: Callable[[web.Request], Awaitable[web.Response]] = fake.handle
    app.router.add_get("/_bench/stats", fake.stats)
    app.router.add_post("/_bench/flush", fake.flush)
    app.router.add_post("/_bench/rotate", fake.rotate)
    app.router.add_post("/{tail:.*}", handler)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fakes")
    parser.add_argument("kind", choices=sorted(FAKES))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ledger", type=Path, required=True)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s (0: unlimited)")
    parser.add_argument("--error-ratio", type=float, default=0.0, help="share answered 503")
    args = parser.parse_args(argv)
    fake = FAKES[args.kind](args.ledger, args.latency, args.rate, args.error_ratio)
    web.run_app(
        build_app(fake),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        backlog=1024,
        handle_signals=True,
    )


if __name__ == "__main__":
    main()
