"""Helpdesks: Zendesk macros and Freshdesk canned responses holding an incident's reply.

Plain ``requests`` against each vendor's documented REST API (Zendesk ``/api/v2/macros``;
Freshdesk ``/api/v2/canned_response_folders`` and ``/api/v2/canned_responses``). Each is
optional: configured by its URL and credentials, else absent. A 429 or 5xx is a
``TransientDeliveryError`` carrying the vendor's ``Retry-After``; anything else a person
must fix is permanent.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import requests

from channels.base import (
    ChannelConfigError,
    ChannelFacts,
    PermanentDeliveryError,
    TransientDeliveryError,
    parse_retry_after,
)


class Helpdesk(Protocol):
    """One helpdesk's saved replies (macros / canned responses)."""

    name: str

    def find(self, title: str) -> str | None: ...

    def create(self, title: str, text: str) -> str: ...

    def update(self, reply_id: str, title: str, text: str) -> None: ...

    def deactivate(self, reply_id: str, title: str) -> None: ...

    def create_ticket(self, ticket: Ticket) -> str: ...

    def add_comment(self, ticket_id: str, body: str) -> None: ...


@dataclass(frozen=True)
class Ticket:
    """A customer's reply to an announcement, as a helpdesk ticket."""

    subject: str
    body: str
    email: str | None
    phone: str | None
    tags: tuple[str, ...]
    language: str


class _Rest(ChannelFacts):
    """JSON over HTTPS with one session, the vendor's errors made ours."""

    name: ClassVar[str] = ""
    # Both allow a few hundred requests a minute per account by plan; stay well below.
    rate: ClassVar[float] = 2.0

    @classmethod
    def sender_id(cls, config: Mapping[str, Any]) -> str:
        return f"{cls.provider}:{config.get(cls.provider.upper() + '_URL')}"

    def __init__(self, base_url: str, auth: tuple[str, str], timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.auth = auth
        self.session.headers["User-Agent"] = "crisis-broadcaster"
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = self.session.request(
                method, self.base_url + path, json=body, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise TransientDeliveryError(f"{self.name} unreachable: {type(exc).__name__}") from exc
        status = response.status_code
        if status < 300:
            return response.json() if response.content else None
        reason = f"{self.name}: HTTP {status} {response.text[:200]}"
        if status == 429 or status >= 500:
            retry = parse_retry_after(response.headers.get("Retry-After"))
            raise TransientDeliveryError(reason, retry)
        raise PermanentDeliveryError(reason)


class Zendesk(_Rest):
    """Zendesk Support: one shared macro per incident and language."""

    name: ClassVar[str] = "zendesk"
    provider: ClassVar[str] = "zendesk"
    rate_setting: ClassVar[str] = "ZENDESK_RATE"

    def find(self, title: str) -> str | None:
        found = self.call("GET", f"/api/v2/macros/search.json?query={requests.utils.quote(title)}")
        for macro in (found or {}).get("macros", []):
            if macro.get("title") == title:
                return str(macro["id"])
        return None

    def _macro(self, title: str, text: str, active: bool = True) -> dict[str, Any]:
        return {
            "macro": {
                "title": title,
                "active": active,
                "actions": [{"field": "comment_value", "value": text}],
            }
        }

    def create(self, title: str, text: str) -> str:
        return str(
            self.call("POST", "/api/v2/macros.json", self._macro(title, text))["macro"]["id"]
        )

    def update(self, reply_id: str, title: str, text: str) -> None:
        self.call("PUT", f"/api/v2/macros/{reply_id}.json", self._macro(title, text))

    def deactivate(self, reply_id: str, title: str) -> None:
        self.call("PUT", f"/api/v2/macros/{reply_id}.json", {"macro": {"active": False}})

    def create_ticket(self, ticket: Ticket) -> str:
        requester: dict[str, str] = {"name": ticket.email or ticket.phone or "customer"}
        if ticket.email:
            requester["email"] = ticket.email
        body = {
            "ticket": {
                "subject": ticket.subject,
                "comment": {"body": ticket.body, "public": False},
                "requester": requester,
                "tags": list(ticket.tags),
            }
        }
        return str(self.call("POST", "/api/v2/tickets.json", body)["ticket"]["id"])

    def add_comment(self, ticket_id: str, body: str) -> None:
        comment = {"ticket": {"comment": {"body": body, "public": False}}}
        self.call("PUT", f"/api/v2/tickets/{ticket_id}.json", comment)


class Freshdesk(_Rest):
    """Freshdesk: canned responses in one folder of ours ("Incidents")."""

    name: ClassVar[str] = "freshdesk"
    provider: ClassVar[str] = "freshdesk"
    rate_setting: ClassVar[str] = "FRESHDESK_RATE"
    folder_name: ClassVar[str] = "Incidents"

    def __init__(self, base_url: str, auth: tuple[str, str], timeout: float) -> None:
        super().__init__(base_url, auth, timeout)
        self._folder: str | None = None

    def folder(self) -> str:
        """Our folder's id, made the first time it is needed."""
        if self._folder is None:
            for folder in self.call("GET", "/api/v2/canned_response_folders") or []:
                if folder.get("name") == self.folder_name:
                    self._folder = str(folder["id"])
                    break
            else:
                made = self.call(
                    "POST", "/api/v2/canned_response_folders", {"name": self.folder_name}
                )
                self._folder = str(made["id"])
        return self._folder

    def find(self, title: str) -> str | None:
        listed = self.call("GET", f"/api/v2/canned_response_folders/{self.folder()}/responses")
        for response in listed or []:
            if response.get("title") == title:
                return str(response["id"])
        return None

    @staticmethod
    def _html(text: str) -> str:
        return "<br>".join(html.escape(line) for line in text.split("\n"))

    def create(self, title: str, text: str) -> str:
        body = {
            "title": title,
            "content_html": self._html(text),
            "folder_id": int(self.folder()),
            "visibility": 0,  # all agents
        }
        return str(self.call("POST", "/api/v2/canned_responses", body)["id"])

    def update(self, reply_id: str, title: str, text: str) -> None:
        body = {"title": title, "content_html": self._html(text)}
        self.call("PUT", f"/api/v2/canned_responses/{reply_id}", body)

    def deactivate(self, reply_id: str, title: str) -> None:
        # Freshdesk has no "inactive" canned response: it stays, marked, for the record.
        self.call("PUT", f"/api/v2/canned_responses/{reply_id}", {"title": f"[ended] {title}"})

    def create_ticket(self, ticket: Ticket) -> str:
        body: dict[str, Any] = {
            "subject": ticket.subject,
            "description": self._html(ticket.body),
            "status": 2,  # open
            "priority": 2,  # medium
            "tags": list(ticket.tags),
        }
        if ticket.email:
            body["email"] = ticket.email
        else:  # a phone requester needs a name too
            body.update(phone=ticket.phone, name=ticket.phone)
        return str(self.call("POST", "/api/v2/tickets", body)["id"])

    def add_comment(self, ticket_id: str, body: str) -> None:
        note = {"body": self._html(body), "private": False}
        self.call("POST", f"/api/v2/tickets/{ticket_id}/notes", note)


def build_helpdesks(config: Mapping[str, Any]) -> dict[str, Helpdesk]:
    """The configured helpdesks by name; half a configuration fails here, at start-up."""
    timeout = float(config.get("PROVIDER_TIMEOUT", 15))
    found: dict[str, Helpdesk] = {}
    zendesk = [config.get(k) for k in ("ZENDESK_URL", "ZENDESK_EMAIL", "ZENDESK_API_TOKEN")]
    if any(zendesk):
        if not all(zendesk):
            raise ChannelConfigError(
                "zendesk: set BROADCASTER_ZENDESK_URL, _EMAIL and _API_TOKEN together"
            )
        url, email, token = (str(v) for v in zendesk)
        found["zendesk"] = Zendesk(url, (f"{email}/token", token), timeout)
    freshdesk = [config.get(k) for k in ("FRESHDESK_URL", "FRESHDESK_API_KEY")]
    if any(freshdesk):
        if not all(freshdesk):
            raise ChannelConfigError(
                "freshdesk: set BROADCASTER_FRESHDESK_URL and _API_KEY together"
            )
        url, key = (str(v) for v in freshdesk)
        found["freshdesk"] = Freshdesk(url, (key, "X"), timeout)
    return found
