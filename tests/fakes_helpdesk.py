"""Fake Zendesk and Freshdesk REST APIs on 127.0.0.1: the documented paths and bodies for
macros / canned responses, basic auth as each vendor documents it, and 429 with
``Retry-After`` on demand. Each keeps what it holds, like the real one would."""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ZENDESK_EMAIL = "support@acme.example"
ZENDESK_TOKEN = "zd-api-token"
FRESHDESK_KEY = "fd-api-key"


class FakeDesk:
    """Base: a threaded server calling ``handle(method, path, body)``; records everything."""

    expected_auth = ""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.failures: list[tuple[int, dict[str, str]]] = []  # next answers to force
        self.stalls: list[float] = []  # seconds to hold the next answers (after acting)
        self.ids = itertools.count(1001)
        desk = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, headers, body = desk.dispatch(
                    self.command, self.path, dict(self.headers), raw
                )
                with desk.lock:
                    stall = desk.stalls.pop(0) if desk.stalls else 0.0
                # Done, but the answer comes late: a client that gave up never hears it.
                time.sleep(stall)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _any  # noqa: N815 - http.server's naming

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail_next(self, status: int, retry_after: str | None = None) -> None:
        with self.lock:
            self.failures.append((status, {"Retry-After": retry_after} if retry_after else {}))

    def stall_next(self, seconds: float) -> None:
        """Act on the next request, then wait ``seconds`` before answering it."""
        with self.lock:
            self.stalls.append(seconds)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def dispatch(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], Any]:
        problems = []
        if headers.get("Authorization") != self.expected_auth:
            with self.lock:  # as the vendors answer a wrong or revoked credential
                self.requests.append({"method": method, "path": path, "body": None})
            return 401, {}, {"error": "Couldn't authenticate you"}
        body = None
        if raw:
            if not headers.get("Content-Type", "").startswith("application/json"):
                problems.append(f"{method} {path}: not JSON")
            body = json.loads(raw)
        with self.lock:
            forced = self.failures.pop(0) if self.failures else None
            self.requests.append({"method": method, "path": path, "body": body})
            self.violations.extend(problems)
        if forced:
            return forced[0], forced[1], {"error": "forced"}
        with self.lock:
            return self.handle(method, urllib.parse.urlsplit(path), body)

    def handle(self, method: str, url: urllib.parse.SplitResult, body: Any) -> tuple:
        raise NotImplementedError

    def writes(self) -> list[tuple[str, str]]:
        return [(r["method"], r["path"]) for r in self.requests if r["method"] != "GET"]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class FakeZendesk(FakeDesk):
    """``/api/v2/macros.json``, ``/api/v2/macros/{id}.json``, ``/api/v2/macros/search.json``."""

    expected_auth = _basic(f"{ZENDESK_EMAIL}/token", ZENDESK_TOKEN)

    def __init__(self) -> None:
        super().__init__()
        self.macros: dict[str, dict[str, Any]] = {}
        self.tickets: dict[str, dict[str, Any]] = {}

    def _check(self, macro: Any, partial: bool = False) -> list[str]:
        problems = []
        if not isinstance(macro, dict):
            return ["body must be {'macro': {...}}"]
        if not partial or "actions" in macro:
            actions = macro.get("actions")
            if not (
                isinstance(actions, list)
                and actions
                and all({"field", "value"} <= set(a) for a in actions)
            ):
                problems.append("macro.actions must be [{field, value}]")
        if not partial and not macro.get("title"):
            problems.append("macro.title is required")
        return problems

    def handle(self, method: str, url: urllib.parse.SplitResult, body: Any) -> tuple:
        path = url.path
        if method == "GET" and path == "/api/v2/macros/search.json":
            query = urllib.parse.parse_qs(url.query).get("query", [""])[0]
            found = [m for m in self.macros.values() if query in m["title"]]
            return 200, {}, {"macros": found, "count": len(found)}
        if method == "POST" and path == "/api/v2/macros.json":
            macro = (body or {}).get("macro")
            problems = self._check(macro)
            if problems:
                self.violations.extend(problems)
                return 422, {}, {"error": "RecordInvalid", "details": problems}
            macro_id = next(self.ids)
            self.macros[str(macro_id)] = {**macro, "id": macro_id}
            return 201, {}, {"macro": self.macros[str(macro_id)]}
        if method == "PUT" and path.startswith("/api/v2/macros/") and path.endswith(".json"):
            macro_id = path.removeprefix("/api/v2/macros/").removesuffix(".json")
            if macro_id not in self.macros:
                return 404, {}, {"error": "RecordNotFound"}
            macro = (body or {}).get("macro")
            problems = self._check(macro, partial=True)
            if problems:
                self.violations.extend(problems)
                return 422, {}, {"error": "RecordInvalid"}
            self.macros[macro_id].update(macro)
            return 200, {}, {"macro": self.macros[macro_id]}
        if method == "POST" and path == "/api/v2/tickets.json":
            ticket = (body or {}).get("ticket") or {}
            comment, requester = ticket.get("comment") or {}, ticket.get("requester") or {}
            problems = []
            if not comment.get("body"):
                problems.append("ticket.comment.body is required")
            if not requester.get("name"):
                problems.append("ticket.requester.name is required")
            if not isinstance(ticket.get("tags"), list):
                problems.append("ticket.tags must be a list")
            if problems:
                self.violations.extend(problems)
                return 422, {}, {"error": "RecordInvalid", "details": problems}
            ticket_id = next(self.ids)
            self.tickets[str(ticket_id)] = {**ticket, "id": ticket_id, "comments": [comment]}
            return 201, {}, {"ticket": {"id": ticket_id}}
        if method == "PUT" and path.startswith("/api/v2/tickets/") and path.endswith(".json"):
            ticket_id = path.removeprefix("/api/v2/tickets/").removesuffix(".json")
            comment = ((body or {}).get("ticket") or {}).get("comment") or {}
            if ticket_id not in self.tickets:
                return 404, {}, {"error": "RecordNotFound"}
            if not comment.get("body"):
                self.violations.append("ticket.comment.body is required")
                return 422, {}, {"error": "RecordInvalid"}
            self.tickets[ticket_id]["comments"].append(comment)
            return 200, {}, {"ticket": {"id": int(ticket_id)}}
        self.violations.append(f"unexpected {method} {path}")
        return 404, {}, {"error": "InvalidEndpoint"}


class FakeFreshdesk(FakeDesk):
    """``/api/v2/canned_response_folders`` (+ ``/{id}/responses``), ``/api/v2/canned_responses``."""

    expected_auth = _basic(FRESHDESK_KEY, "X")

    def __init__(self) -> None:
        super().__init__()
        self.folders: dict[str, dict[str, Any]] = {}
        self.responses: dict[str, dict[str, Any]] = {}
        self.tickets: dict[str, dict[str, Any]] = {}

    def handle(self, method: str, url: urllib.parse.SplitResult, body: Any) -> tuple:
        path = url.path
        if path == "/api/v2/canned_response_folders":
            if method == "GET":
                return 200, {}, list(self.folders.values())
            if method == "POST":
                if not (body or {}).get("name"):
                    self.violations.append("folder name required")
                    return 400, {}, {"description": "Validation failed"}
                folder_id = next(self.ids)
                self.folders[str(folder_id)] = {"id": folder_id, "name": body["name"]}
                return 201, {}, self.folders[str(folder_id)]
        if method == "GET" and path.startswith("/api/v2/canned_response_folders/"):
            folder_id = path.split("/")[4]
            found = [r for r in self.responses.values() if str(r["folder_id"]) == folder_id]
            return 200, {}, found
        if method == "POST" and path == "/api/v2/canned_responses":
            problems = [
                f"{key} required"
                for key in ("title", "content_html", "folder_id")
                if not body.get(key)
            ]
            if str(body.get("folder_id")) not in self.folders:
                problems.append("folder_id unknown")
            if problems:
                self.violations.extend(problems)
                return 400, {}, {"description": "Validation failed", "errors": problems}
            response_id = next(self.ids)
            self.responses[str(response_id)] = {**body, "id": response_id}
            return 201, {}, self.responses[str(response_id)]
        if method == "PUT" and path.startswith("/api/v2/canned_responses/"):
            response_id = path.rsplit("/", 1)[1]
            if response_id not in self.responses:
                return 404, {}, {"description": "not found"}
            self.responses[response_id].update(body or {})
            return 200, {}, self.responses[response_id]
        if method == "POST" and path == "/api/v2/tickets":
            body = body or {}
            problems = [f"{k} required" for k in ("subject", "description") if not body.get(k)]
            if not (body.get("email") or body.get("phone")):
                problems.append("email or phone required")
            if body.get("phone") and not body.get("email") and not body.get("name"):
                problems.append("name is required with phone")
            if body.get("status") not in (2, 3, 4, 5) or body.get("priority") not in (1, 2, 3, 4):
                problems.append("status and priority must be Freshdesk's numbers")
            if problems:
                self.violations.extend(problems)
                return 400, {}, {"description": "Validation failed", "errors": problems}
            ticket_id = next(self.ids)
            self.tickets[str(ticket_id)] = {**body, "id": ticket_id, "notes": []}
            return 201, {}, self.tickets[str(ticket_id)]
        if method == "POST" and path.startswith("/api/v2/tickets/") and path.endswith("/notes"):
            ticket_id = path.split("/")[4]
            if ticket_id not in self.tickets:
                return 404, {}, {"description": "not found"}
            if not (body or {}).get("body"):
                self.violations.append("note body required")
                return 400, {}, {"description": "Validation failed"}
            self.tickets[ticket_id]["notes"].append(body)
            return 201, {}, {"id": next(self.ids), **body}
        self.violations.append(f"unexpected {method} {path}")
        return 404, {}, {"description": "not found"}
