"""A fake Slack Web API on 127.0.0.1 for the real Slack SDK: ``chat.postMessage`` as Slack
documents it (bearer token, JSON body with ``channel``, ``text``, optional ``thread_ts``),
answering ``{"ok": true, "ts": …}`` or a scripted 429/5xx/error."""

from __future__ import annotations

import itertools
import json
from typing import Any

from tests.fakes import FakeProvider

SLACK_TOKEN = "xoxb-test-token"
SLACK_CHANNEL = "C0STAFF01"


class FakeSlack(FakeProvider):
    def __init__(self) -> None:
        super().__init__()
        self._ts = itertools.count(1)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict, Any]:
        generation = self.generation
        problems = []
        if path != "/api/chat.postMessage":
            problems.append(f"unexpected path {path}")
        if headers.get("Authorization") != f"Bearer {SLACK_TOKEN}":
            problems.append("missing or wrong bearer token")
        if not headers.get("Content-Type", "").startswith("application/json"):
            problems.append(f"content type {headers.get('Content-Type')}")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
            problems.append("body is not JSON")
        if body.get("channel") != SLACK_CHANNEL:
            problems.append(f"channel {body.get('channel')!r}")
        if not isinstance(body.get("text"), str) or not body["text"]:
            problems.append("no text")
        if "thread_ts" in body and not isinstance(body["thread_ts"], str):
            problems.append("thread_ts must be a string")
        scripted = self._scripted()
        record = {"path": path, "body": body, "headers": headers}
        if scripted and scripted.status:
            self._log(generation, {**record, "answered": scripted.status}, problems)
            return scripted.status, scripted.headers, scripted.body
        ts = f"1764680000.{next(self._ts):06d}"
        self._log(generation, {**record, "answered": 200, "ts": ts}, problems)
        return 200, {}, {"ok": True, "channel": SLACK_CHANNEL, "ts": ts, "message": {}}

    def posts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["answered"] == 200]
