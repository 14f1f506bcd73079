"""Email through SendGrid's v3 Mail Send API (one request, up to 1,000 personalizations).

Recipients whose rendered message is identical share a request; each gets its own
personalization so nobody sees anybody else's address. Without an API key the channel
uses the outbox transport.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.error
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import python_http_client.exceptions as http_errors

if TYPE_CHECKING:
    from sendgrid import SendGridAPIClient

from channels import outbox
from channels.base import (
    UNSUBSCRIBE_PLACEHOLDER,
    ChannelConfigError,
    ChannelFacts,
    Meter,
    NullMeter,
    Outgoing,
    PermanentDeliveryError,
    Result,
    TransientDeliveryError,
    parse_retry_after,
)

_PERSONALIZATION_FIELD = re.compile(r"^personalizations\.(\d+)")


class EmailChannel(ChannelFacts):
    """The ``email`` channel: SendGrid when configured, else the outbox."""

    name: ClassVar[str] = "email"
    provider: ClassVar[str] = "sendgrid"
    contact_field: ClassVar[str] = "email"  # the subscriber field it sends to
    max_batch: ClassVar[int] = 1000  # recipients per batch job (at most EMAIL_BATCH_SIZE)
    batch_setting: ClassVar[str] = "EMAIL_BATCH_SIZE"
    per_request: ClassVar[int] = 1000  # SendGrid's limit of personalizations per request
    # Each person gets their own unsubscribe link (and RFC 8058 one-click headers).
    unsubscribe_link: ClassVar[bool] = True
    subject_max: ClassVar[int] = 78  # RFC 5322's line length: longer ones get folded or cut
    rate_setting: ClassVar[str] = "SENDGRID_RATE"
    rate: ClassVar[float] = 10.0  # requests/s (each up to per_request recipients)

    def __init__(self, config: Mapping[str, Any], meter: Meter | None = None) -> None:
        self.sender = str(config.get("EMAIL_FROM") or "")
        if not self.sender:
            raise ChannelConfigError("email: BROADCASTER_EMAIL_FROM is empty")
        api_key = config.get("SENDGRID_API_KEY")
        self.transport = self.provider if api_key else "outbox"
        self.client: SendGridAPIClient | None = None
        self.meter = meter if meter is not None else NullMeter()
        if api_key:
            from sendgrid import SendGridAPIClient  # when configured: a CLI does not wait for it

            self.client = SendGridAPIClient(
                api_key=str(api_key), host=str(config["SENDGRID_BASE_URL"]).rstrip("/")
            )
            self.client.client.timeout = float(config.get("PROVIDER_TIMEOUT", 15))

    @classmethod
    def sender_id(cls, config: Mapping[str, Any]) -> str:
        """The API key's limit, named by a digest: never put the key itself into Redis."""
        digest = hashlib.sha256(str(config.get("SENDGRID_API_KEY")).encode()).hexdigest()
        return f"{cls.provider}:{digest[:12]}"

    def send(self, batch: list[Outgoing]) -> list[Result]:
        """Send the batch; one SendGrid request per distinct message, ≤1,000 recipients each."""
        if self.client is None:
            return outbox.record(batch)
        groups: dict[tuple[str, str, str], list[Outgoing]] = {}
        for item in batch:
            key = (item.content["subject"], item.content["text"], item.content["html"])
            groups.setdefault(key, []).append(item)
        results: list[Result] = []
        for items in groups.values():
            for start in range(0, len(items), self.per_request):
                results.extend(self._send_group(items[start : start + self.per_request]))
        return results

    def _send_group(self, items: list[Outgoing]) -> list[Result]:
        results: list[Result] = []
        pending = list(items)
        # A 400 naming one personalization rejects the whole request: fail that
        # recipient with SendGrid's reason and send the rest again.
        while pending:
            try:
                message_id = self._post(pending)
            except PermanentDeliveryError as exc:
                rejected = _rejected_indexes(exc.reason)
                if not rejected:
                    return results + [
                        Result(i.subscriber_id, "failed", error=exc.reason) for i in pending
                    ]
                for index, reason in rejected.items():
                    if index < len(pending):
                        results.append(Result(pending[index].subscriber_id, "failed", error=reason))
                pending = [item for n, item in enumerate(pending) if n not in rejected]
                continue
            except TransientDeliveryError as exc:
                return results + [
                    Result(i.subscriber_id, "retry", error=exc.reason, retry_after=exc.retry_after)
                    for i in pending
                ]
            return results + [
                Result(i.subscriber_id, "sent", provider_id=message_id) for i in pending
            ]
        return results

    def _post(self, items: list[Outgoing]) -> str | None:
        first = items[0].content
        payload = {
            "personalizations": [_personalization(item) for item in items],
            "from": {"email": self.sender},
            "subject": first["subject"],
            "content": [
                {"type": "text/plain", "value": first["text"]},
                {"type": "text/html", "value": first["html"]},
            ],
        }
        if first.get("announcement_id"):
            payload["custom_args"] = {"announcement_id": first["announcement_id"]}
        assert self.client is not None
        started = time.perf_counter()
        try:
            response = self.client.send(payload)
        except http_errors.HTTPError as exc:
            self.meter.call("sendgrid", time.perf_counter() - started, int(exc.status_code))
            error = _classify(exc)
            transient = isinstance(error, TransientDeliveryError)
            self.meter.error("sendgrid", "transient" if transient else "permanent")
            raise error from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            self.meter.call("sendgrid", time.perf_counter() - started)
            self.meter.error("sendgrid", "transient")
            raise TransientDeliveryError(f"sendgrid unreachable: {exc}") from exc
        self.meter.call("sendgrid", time.perf_counter() - started, response.status_code)
        headers = response.headers
        return headers.get("X-Message-Id") if headers is not None else None


def _personalization(item: Outgoing) -> dict[str, Any]:
    """One recipient: address, their own unsubscribe link (substitution + RFC 8058 headers)."""
    entry: dict[str, Any] = {
        "to": [{"email": item.to}],
        "custom_args": {"subscriber_id": item.subscriber_id},
    }
    if item.personal:
        entry["substitutions"] = dict(item.personal)
    unsubscribe = item.personal.get(UNSUBSCRIBE_PLACEHOLDER)
    if unsubscribe:
        entry["headers"] = {
            "List-Unsubscribe": f"<{unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
    return entry


def _classify(exc: http_errors.HTTPError) -> Exception:
    status = int(exc.status_code)
    body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else str(exc.body)
    headers = exc.headers or {}
    if status == 429 or status >= 500 or status in (401, 403):
        retry_after = parse_retry_after(headers.get("Retry-After"))
        if retry_after is None and headers.get("X-RateLimit-Reset"):
            # SendGrid's own 429 names the epoch second its limit resets, not a delay.
            try:
                retry_after = max(0.0, float(headers["X-RateLimit-Reset"]) - time.time())
            except ValueError:
                retry_after = None
        return TransientDeliveryError(f"sendgrid HTTP {status}: {body[:300]}", retry_after)
    return PermanentDeliveryError(body)


def _rejected_indexes(body: str) -> dict[int, str]:
    """Personalization index → reason, from a SendGrid 400 error body."""
    try:
        errors = json.loads(body).get("errors", [])
    except (ValueError, AttributeError):
        return {}
    rejected: dict[int, str] = {}
    for error in errors:
        match = _PERSONALIZATION_FIELD.match(str(error.get("field") or ""))
        if match:
            rejected[int(match.group(1))] = f"sendgrid: {error.get('message', 'rejected')}"
    return rejected
