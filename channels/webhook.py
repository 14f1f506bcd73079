"""Webhooks: one signed JSON (or Slack-compatible) POST per announcement and target.

Every request carries ``X-Broadcaster-Signature: t=<unix time>,v1=<hex HMAC-SHA256>`` over
``f"{t}."`` + the exact body bytes, so a receiver can check who sent it and reject replays
(``verify`` below is the reference check). ``X-Broadcaster-Delivery`` / ``Idempotency-Key``
stay the same across retries, so a receiver can drop a delivery it has already seen.
Unless a target says ``allow_private``, requests go only to public addresses, checked when
connecting (``channels/egress.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from channels import teams
from channels.base import (
    DeliveryError,
    PermanentDeliveryError,
    PublicPost,
    PublishResult,
    TransientDeliveryError,
    parse_retry_after,
)
from channels.egress import BlockedAddressError, GuardedAdapter, vetted

SIGNATURE_HEADER = "X-Broadcaster-Signature"
_TIMESTAMP = re.compile(r"[0-9]{1,15}")  # int() alone would also take "+1", " 1" and "1_0"


def _version() -> str:
    try:
        return metadata.version("crisis-broadcaster")
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(
    secret: str, header: str, body: bytes, tolerance: int = 300, now: float | None = None
) -> bool:
    """True if ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds of now.

    Several ``v1=`` values are accepted (a sender signing with old and new secret while
    they rotate); unknown schemes are ignored. A malformed header is simply False.
    """
    if not isinstance(header, str) or not header:
        return False
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures.append(value)
    if len(timestamps) != 1 or not signatures or not _TIMESTAMP.fullmatch(timestamps[0]):
        return False
    timestamp = int(timestamps[0])
    current = time.time() if now is None else now
    # Both ways: a far-future timestamp would otherwise make a captured request replayable later.
    if abs(current - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).rpartition("v1=")[2].encode()
    # Compare every candidate, so the time taken does not say which one matched.
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate.encode())
    return matched


def _check_url(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in WebhookChannel.schemes or not parts.hostname:
        # The URL itself is left out: Slack-style URLs carry their secret in the path.
        raise PermanentDeliveryError(f"webhook {name}: the URL must be http(s)://host/…")


@dataclass(frozen=True)
class WebhookTarget:
    """One receiver from the plan; a bad URL, format or empty secret fails at construction."""

    name: str
    url: str  # http(s) URL
    secret: str  # HMAC key
    audiences: tuple[str, ...] = ()  # empty = every announcement
    format: str = "json"  # "json", "slack" or "teams"
    # Our own tool (staff chat): may get announcements meant for internal audiences only.
    internal: bool = False
    # Reaching loopback, link-local or private addresses is refused unless the plan says so.
    allow_private: bool = False

    def __post_init__(self) -> None:
        # A list from a parsed plan would make the frozen target unhashable.
        object.__setattr__(self, "audiences", tuple(self.audiences))
        _check_url(self.name, self.url)
        if self.format not in WebhookChannel.formats:
            raise PermanentDeliveryError(
                f"webhook {self.name}: format must be one of {', '.join(WebhookChannel.formats)}"
            )
        if not self.secret:
            # An empty key signs nothing: receivers could not tell us from anyone else.
            raise PermanentDeliveryError(f"webhook {self.name}: the secret is empty")

    def wants(self, audiences: Iterable[str]) -> bool:
        """Whether an announcement for ``audiences`` goes to this target."""
        return not self.audiences or not set(self.audiences).isdisjoint(audiences)


class WebhookChannel:
    """The ``webhook`` channel: POSTs each announcement to a target, signed, never redirected."""

    name: ClassVar[str] = "webhook"
    event_type: ClassVar[str] = "announcement.published"
    brief_type: ClassVar[str] = "staff.brief"  # the agent brief, sent to staff first
    formats: ClassVar[tuple[str, ...]] = ("json", "slack", "teams")
    schemes: ClassVar[tuple[str, ...]] = ("http", "https")
    default_timeout: ClassVar[float] = 15.0
    pool_size: ClassVar[int] = 16
    user_agent: ClassVar[str] = f"crisis-broadcaster/{_version()}"
    delivery_header: ClassVar[str] = "X-Broadcaster-Delivery"
    body_excerpt: ClassVar[int] = 200  # characters of a refusal's body kept in the reason
    # Slack has no emoji-free severity marker of its own; these read well in mrkdwn.
    severity_labels: ClassVar[dict[str, str]] = {
        "info": "[Info]",
        "minor": "[Minor]",
        "major": "[Major]",
        "critical": "[Critical]",
    }
    # Status → what it means for a receiver; anything absent falls back to the reason phrase.
    http_errors: ClassVar[dict[int, str]] = {
        400: "Bad Request - the receiver rejected the payload",
        401: "Unauthorized - the receiver wants credentials",
        403: "Forbidden - the receiver refused us",
        404: "Not Found - no receiver at this URL",
        405: "Method Not Allowed - the URL does not take POST",
        408: "Request Timeout",
        410: "Gone - the receiver was removed",
        413: "Payload Too Large",
        415: "Unsupported Media Type - the receiver does not take JSON",
        429: "Too Many Requests",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }
    # 408 is the receiver timing out on us: as retryable as our own timeout.
    transient_statuses: ClassVar[frozenset[int]] = frozenset({408, 429})

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.transport = "http"
        self.timeout = float(config.get("PROVIDER_TIMEOUT", self.default_timeout))
        # Two sessions: the guarded one connects only to public addresses it has checked
        # (channels/egress.py); the other serves targets marked allow_private.
        self.session = self._session(
            GuardedAdapter(pool_connections=self.pool_size, pool_maxsize=self.pool_size)
        )
        self.private_session = self._session(
            HTTPAdapter(pool_connections=self.pool_size, pool_maxsize=self.pool_size)
        )

    @staticmethod
    def _session(adapter: HTTPAdapter) -> requests.Session:
        session = requests.Session()
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def deliver(self, target: WebhookTarget, post: PublicPost) -> PublishResult:
        """POST ``post`` to ``target``; raises Transient/PermanentDeliveryError when it fails."""
        _check_url(target.name, target.url)  # again: a target can be built around __post_init__
        if not target.allow_private:
            self._vet(target)
        now = time.time()
        payload = (
            self._slack(post)
            if target.format == "slack"
            else self._teams(post)
            if target.format == "teams"
            else self._json(post, now)
        )
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": self.user_agent,
            SIGNATURE_HEADER: sign(target.secret, body, int(now)),
            self.delivery_header: post.idempotency_key,
            "Idempotency-Key": post.idempotency_key,
        }
        session = self.private_session if target.allow_private else self.session
        try:
            response = session.post(
                target.url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except BlockedAddressError as exc:  # DNS changed between the check above and connecting
            raise BlockedAddressError(f"webhook {target.name}: refused: {exc.reason}") from exc
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema,
        ) as exc:
            raise PermanentDeliveryError(f"webhook {target.name}: bad URL: {exc}") from exc
        except requests.RequestException as exc:
            # Timeouts, refused connections, TLS and broken transfers: try again later.
            reason = f"webhook {target.name} unreachable: {type(exc).__name__}"
            raise TransientDeliveryError(reason) from exc
        return self._result(target, post, response)

    @staticmethod
    def _vet(target: WebhookTarget) -> None:
        """Resolve and check the target's host right before sending (the plan may be old).

        Also the only check when a proxy from the environment makes the connection itself.
        """
        parts = urlsplit(target.url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:  # a port out of range
            raise PermanentDeliveryError(f"webhook {target.name}: bad URL: {exc}") from exc
        try:
            vetted(parts.hostname or "", port)
        except BlockedAddressError as exc:
            raise BlockedAddressError(f"webhook {target.name}: refused: {exc.reason}") from exc
        except DeliveryError as exc:
            raise type(exc)(f"webhook {target.name}: {exc.reason}") from exc

    def _result(
        self, target: WebhookTarget, post: PublicPost, response: requests.Response
    ) -> PublishResult:
        status = response.status_code
        if 200 <= status < 300:
            return PublishResult(provider_id=post.idempotency_key, extra={"status": status})
        if 300 <= status < 400:
            # Following would re-send a signed body to a place the plan never named.
            location = response.headers.get("Location", "?")
            raise PermanentDeliveryError(
                f"webhook {target.name}: target redirected to {location} (HTTP {status})"
            )
        meaning = self.http_errors.get(status) or response.reason or "error"
        reason = (
            f"webhook {target.name}: HTTP {status} {meaning}: {response.text[: self.body_excerpt]}"
        )
        if status in self.transient_statuses or status >= 500:
            raise TransientDeliveryError(
                reason, parse_retry_after(response.headers.get("Retry-After"))
            )
        raise PermanentDeliveryError(reason)

    def _json(self, post: PublicPost, now: float) -> dict[str, Any]:
        sent_at = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
        return {
            "type": post.event_type or self.event_type,
            "id": post.idempotency_key,
            "announcement": post.event,
            "text": post.text,
            "link": post.link,
            "locale": post.locale,
            "sent_at": sent_at.replace("+00:00", "Z"),
        }

    def _teams(self, post: PublicPost) -> dict[str, Any]:
        if post.event_type == self.brief_type:
            return teams.brief_card(post.text, post.link)
        severity = str(post.event.get("severity") or "")
        label = self.severity_labels.get(severity) or (f"[{severity.title()}]" if severity else "")
        button = "Approvals" if post.event_type == "approval.waiting" else "Status page"
        return teams.announcement_card(post.event, post.text, post.link, label, button)

    def _slack(self, post: PublicPost) -> dict[str, str]:
        if post.event_type == self.brief_type:
            # The brief is laid out already, one item per line: its first line is the heading.
            heading, _, rest = post.text.partition("\n")
            return {"text": f"*{escape(heading)}*\n{escape(rest)}".rstrip()}
        event = post.event
        severity = str(event.get("severity") or "")
        label = self.severity_labels.get(severity) or (
            f"[{escape(severity.title())}]" if severity else ""
        )
        title = str(event.get("title") or "")
        if title:
            heading = f"{label} *{escape(title)}*".lstrip()
            lines = [heading, escape(str(event.get("body") or "")), escape(post.link)]
        else:
            # No facts to lay out: the rendered text (link included) still says it all.
            lines = [escape(post.text)]
            if post.link not in post.text:
                lines.append(escape(post.link))
        if event.get("reply"):
            lines.append(f"Reply to customers: {escape(str(event['reply']))}")
        return {"text": "\n".join(line for line in lines if line)}


def escape(text: str) -> str:
    """Slack mrkdwn's three control characters; everything else is shown as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
