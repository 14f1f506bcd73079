"""Public posts on Mastodon through Mastodon.py: one status per announcement, threaded.

Each post of an incident replies to the previous one. Retries never double-post: every
status is sent with an ``Idempotency-Key`` and Mastodon answers a repeated key with the
status it already created (it remembers a key for one hour). Without a base URL and an
access token the channel uses the outbox transport.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

import requests

if TYPE_CHECKING:
    from mastodon import Mastodon
    from mastodon.errors import MastodonError

from channels import outbox
from channels.base import (
    ChannelConfigError,
    ChannelFacts,
    DeliveryError,
    Meter,
    NullMeter,
    PermanentDeliveryError,
    PublicPost,
    PublishResult,
    TransientDeliveryError,
    parse_retry_after,
)

log = logging.getLogger(__name__)


@functools.cache
def _sdk() -> ModuleType:
    """Mastodon.py, imported on first use (a tenth of a second every command and worker
    would otherwise pay at start-up, configured or not); its errors are ``_sdk().errors``."""
    import mastodon
    import mastodon.errors

    return mastodon


class MastodonChannel(ChannelFacts):
    """Mastodon, one network of the ``social`` channel (the outbox when not configured)."""

    name: ClassVar[str] = "mastodon"
    provider: ClassVar[str] = "mastodon"
    limit: ClassVar[int] = 500  # characters (grapheme clusters); every http(s) URL counts as 23
    url_length: ClassVar[int | None] = 23
    rate_setting: ClassVar[str] = "MASTODON_RATE"
    rate: ClassVar[float] = 1.0  # posts/s
    visibility: ClassVar[str] = "public"
    default_retry_after: ClassVar[float] = 60.0  # a 429 without a usable X-RateLimit-Reset
    idempotency_window: ClassVar[int] = 3600  # seconds Mastodon remembers an Idempotency-Key
    # What Mastodon's status codes mean for a post, for reasons without a server message.
    http_errors: ClassVar[dict[int, str]] = {
        400: "bad request",
        401: "access token invalid or revoked",
        403: "not allowed (token scope lacks write:statuses, or the account is limited)",
        404: "not found",
        410: "account gone",
        422: "status rejected",
        429: "rate limited",
        500: "internal server error",
        502: "bad gateway",
        503: "service unavailable",
        504: "gateway timeout",
    }
    # Worth retrying: the server or the network, or credentials a person can fix meanwhile.
    transient_statuses: ClassVar[frozenset[int]] = frozenset({401, 403, 408, 429})

    def __init__(self, config: Mapping[str, Any], meter: Meter | None = None) -> None:
        base_url = config.get("MASTODON_BASE_URL")
        token = config.get("MASTODON_ACCESS_TOKEN")
        if base_url and not token:
            raise ChannelConfigError("mastodon: BROADCASTER_MASTODON_ACCESS_TOKEN is not set")
        if token and not base_url:
            raise ChannelConfigError("mastodon: BROADCASTER_MASTODON_BASE_URL is not set")
        self.transport = self.provider if token else "outbox"
        self.client: Mastodon | None = None
        # The SDK's exceptions drop the response headers (X-RateLimit-Reset, Retry-After);
        # a response hook keeps the last ones per thread, where the error handler finds them.
        self._last = threading.local()
        self.meter = meter if meter is not None else NullMeter()
        if token:
            session = requests.Session()
            session.hooks["response"].append(self._remember)
            self.client = _sdk().Mastodon(
                access_token=str(token),
                api_base_url=str(base_url).rstrip("/"),
                request_timeout=float(config.get("PROVIDER_TIMEOUT", 15)),
                ratelimit_method="throw",  # a worker must not sleep on a rate limit: we reschedule
                version_check_mode="none",  # no request at start-up
                session=session,
            )

    @classmethod
    def sender_id(cls, config: Mapping[str, Any]) -> str:
        """The server: its limits are per account, and we post as one account there."""
        return f"{cls.provider}:{config.get('MASTODON_BASE_URL')}"

    def publish(self, post: PublicPost) -> PublishResult:
        """Post ``post.text`` publicly, replying to ``post.reply_to`` when given."""
        if self.client is None:
            return outbox.publish(post)
        errors = _sdk().errors
        reply_id = _reply_id(post.reply_to)
        try:
            status = self._status_post(post, reply_id)
        except errors.MastodonNotFoundError as exc:
            if reply_id is None:
                raise self._classify(exc) from exc
            # The post we reply to is gone (deleted by hand): start a new thread rather than
            # lose this update. Mastodon stored nothing under the key, so this is no duplicate.
            log.warning("mastodon: status %s to reply to is gone; starting a new thread", reply_id)
            try:
                status = self._status_post(post, None)
            except errors.MastodonError as retry_exc:
                raise self._classify(retry_exc) from retry_exc
        except errors.MastodonError as exc:
            raise self._classify(exc) from exc
        status_id = str(status["id"])
        return PublishResult(
            provider_id=status_id,
            url=status.get("url") or status.get("uri"),
            thread={"id": status_id},
        )

    def _status_post(self, post: PublicPost, reply_id: str | None) -> Any:
        assert self.client is not None
        self._last.headers = None
        return self.client.status_post(
            post.text,
            in_reply_to_id=reply_id,
            visibility=self.visibility,
            idempotency_key=post.idempotency_key,
            language=_language(post.locale),
        )

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """requests response hook: keep this thread's last response headers (and time it)."""
        self._last.headers = response.headers
        self.meter.call("mastodon", response.elapsed.total_seconds(), response.status_code)

    def _classify(self, exc: MastodonError) -> DeliveryError:
        headers = getattr(self._last, "headers", None) or {}
        errors = _sdk().errors
        if isinstance(exc, errors.MastodonRatelimitError):
            return TransientDeliveryError(
                f"mastodon HTTP 429: {self.http_errors[429]}", self._retry_after(headers)
            )
        if isinstance(exc, errors.MastodonNetworkError):
            return TransientDeliveryError(f"mastodon unreachable: {exc}")
        status, message = _status_and_message(exc)
        if status is None:
            # An unreadable answer: the status may exist, and the same key finds it again.
            return TransientDeliveryError(f"mastodon: {exc}")
        reason = f"mastodon HTTP {status}: {message or self.http_errors.get(status, 'error')}"
        if status >= 500 or status in self.transient_statuses:
            return TransientDeliveryError(reason, parse_retry_after(headers.get("Retry-After")))
        return PermanentDeliveryError(reason)

    def _retry_after(self, headers: Mapping[str, str]) -> float:
        """Seconds until ``X-RateLimit-Reset``, measured on the server's clock (``Date``)."""
        reset = _parse_time(headers.get("X-RateLimit-Reset"))
        if reset is None:
            return parse_retry_after(headers.get("Retry-After")) or self.default_retry_after
        now = datetime.now(UTC)
        if headers.get("Date"):
            try:
                now = parsedate_to_datetime(headers["Date"])
            except (TypeError, ValueError):
                pass
            if now.tzinfo is None:  # a malformed Date can parse without a zone: HTTP says GMT
                now = now.replace(tzinfo=UTC)
        if reset.tzinfo is None:
            reset = reset.replace(tzinfo=UTC)
        return max(0.0, (reset - now).total_seconds())


def _reply_id(reply_to: Mapping[str, Any] | None) -> str | None:
    """The status id to reply to; a made-up outbox id is no status on a real server."""
    if not reply_to or not reply_to.get("id"):
        return None
    reply_id = str(reply_to["id"])
    return None if reply_id.startswith("outbox-") else reply_id


def _language(locale: str) -> str:
    """Mastodon wants an ISO 639 code: the primary subtag of ``nb-NO`` / ``pt_BR``."""
    return locale.replace("_", "-").split("-")[0].lower()


def _status_and_message(exc: MastodonError) -> tuple[int | None, str | None]:
    """(HTTP status, the server's ``error`` message) from a Mastodon.py API error.

    Mastodon.py raises ``ex_type('Mastodon API returned error', status, reason, error_msg)``.
    """
    args = exc.args
    api_error = isinstance(exc, _sdk().errors.MastodonAPIError)
    if api_error and len(args) >= 4 and isinstance(args[1], int):
        return args[1], str(args[3]) if args[3] else None
    return None, None


def _parse_time(value: str | None) -> datetime | None:
    """An ``X-RateLimit-Reset``: ISO 8601 (Mastodon) or epoch seconds (GoToSocial)."""
    if not value:
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
