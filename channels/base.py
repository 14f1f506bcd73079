"""What every channel is: a name, its limits, and ``send(batch) -> results``.

A channel never decides *who* gets a message, only *how* it is sent. It reports one
``Result`` per recipient; the fan-out turns those into ledger states and retries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

# Where a message's per-person unsubscribe link goes (a SendGrid substitution).
UNSUBSCRIBE_PLACEHOLDER = "-unsubscribe_url-"
# Where a message's per-person confirm link goes (an announcement that asks to confirm;
# the sign-up messages have their own "-confirm_url-").
CONFIRM_PLACEHOLDER = "-answer_url-"


class ChannelConfigError(Exception):
    """A channel is missing a setting; raised at start-up with the setting's name."""


class DeliveryError(Exception):
    """A provider refused or failed one send."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class TransientDeliveryError(DeliveryError):
    """Worth retrying later: timeout, 5xx, 429 (``retry_after`` seconds if the provider said)."""


class PermanentDeliveryError(DeliveryError):
    """Will never work: invalid number, rejected address. Recorded as failed at once."""


@dataclass(frozen=True)
class Outgoing:
    """One rendered message for one recipient."""

    subscriber_id: str
    to: str
    content: dict[str, str]  # email: subject/text/html; sms: text (shared by many recipients)
    personal: dict[str, str] = field(default_factory=dict)  # placeholder → value for this person
    # time.monotonic() before which it must not leave: its slot in the provider's rate, when
    # several messages were paced with one reservation (0: send at once).
    not_before: float = 0.0
    # Set when the worker is stopping: a message still waiting for its slot then goes back
    # unsent (a Result "retry" with extra ``held`` and ``stopped``) instead of waiting.
    stop: threading.Event | None = None


@dataclass
class Result:
    """What happened to one ``Outgoing``: ``sent``, ``failed`` or ``retry``."""

    subscriber_id: str
    outcome: str
    provider_id: str | None = None
    error: str | None = None
    retry_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Meter(Protocol):
    """Records provider calls; the app hands one to each channel it builds.

    Only what channels call: a channel must not know where the numbers go (the app's
    ``broadcaster.infra.metrics.Meter`` keeps them in Redis).
    """

    def call(self, provider: str, seconds: float, status: int | None = None) -> None:
        """One provider call took ``seconds``; HTTP ``status`` if it answered."""
        ...

    def error(self, provider: str, kind: str) -> None:
        """A provider call failed: ``kind`` is ``transient`` or ``permanent``."""
        ...

    def flush(self) -> None:
        """Send what a buffered meter kept back (a no-op for an unbuffered one)."""
        ...


class NullMeter:
    """Records nothing: for a channel built without a meter (scripts, tests)."""

    def call(self, provider: str, seconds: float, status: int | None = None) -> None:
        """Forget the call."""

    def error(self, provider: str, kind: str) -> None:
        """Forget the error."""

    def flush(self) -> None:
        """Nothing kept, nothing to send."""


# Builds the meter of one channel; ``buffered``: keep writes until ``flush()``.
MeterFactory = Callable[[bool], Meter]


class ChannelFacts:
    """What a channel with a provider declares about itself, as class attributes.

    The rest of the app reads these through the registry in ``channels/__init__.py``
    (apprise-style) instead of repeating them: config defaults, rate limits, batch sizes.
    """

    name: ClassVar[str]  # the channel (email, sms) or social network (mastodon, bluesky)
    provider: ClassVar[str]  # its transport when configured (the outbox otherwise)
    rate_setting: ClassVar[str]  # config key (BROADCASTER_ + it) of its requests/s
    rate: ClassVar[float]  # that setting's default, shared by all workers (0: no limit)
    buffered_meter: ClassVar[bool] = False  # metrics kept until flush() (many calls a second)

    @classmethod
    def rate_for(cls, config: Mapping[str, Any]) -> float | None:
        """Requests per second the provider allows us (None: not limited)."""
        return float(config.get(cls.rate_setting, cls.rate) or 0) or None

    @classmethod
    def sender_id(cls, config: Mapping[str, Any]) -> str:
        """Who sends, as the provider counts its limits (never a secret itself)."""
        raise NotImplementedError


class Channel(Protocol):
    """A personal delivery channel with one transport (provider or outbox)."""

    name: ClassVar[str]
    provider: ClassVar[str]
    contact_field: ClassVar[str]  # the subscriber field it sends to
    max_batch: ClassVar[int]  # recipients per batch job
    batch_setting: ClassVar[str]  # config key that may lower max_batch
    per_request: ClassVar[int]  # recipients one provider request takes
    unsubscribe_link: ClassVar[bool]  # each message carries the person's own link
    buffered_meter: ClassVar[bool]
    transport: str

    def send(self, batch: list[Outgoing]) -> list[Result]:
        """Send every message in the batch; never raises for a single recipient's failure."""
        ...


def result_for(item: Outgoing, error: DeliveryError) -> Result:
    """The Result for a failed send: ``retry`` for transient errors, ``failed`` otherwise."""
    if isinstance(error, TransientDeliveryError):
        return Result(
            item.subscriber_id, "retry", error=error.reason, retry_after=error.retry_after
        )
    return Result(item.subscriber_id, "failed", error=error.reason)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass(frozen=True)
class PublicPost:
    """One announcement for one public place: a social network or a webhook target."""

    announcement_id: str
    incident_id: str
    text: str  # rendered within the place's limit, the status link included
    link: str  # the status page
    locale: str
    idempotency_key: str  # stable per (announcement, place): a retried job never posts twice
    reply_to: dict[str, Any] | None = None  # thread reference from the incident's previous post
    event: dict[str, Any] = field(default_factory=dict)  # the announcement's facts, as JSON
    # What a webhook says happened; empty: its channel's default (the announcement itself).
    # "staff.brief": the agent brief staff get before the customers (``text`` is then the
    # whole brief, one item per line); a promise reminder has its own.
    event_type: str = ""


@dataclass
class PublishResult:
    """What a public post became: its id, its URL and the reference to reply to next."""

    provider_id: str | None
    url: str | None = None
    thread: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class PublicChannel(Protocol):
    """Posts once per announcement to one public place (raises Transient/PermanentDeliveryError)."""

    name: ClassVar[str]
    transport: str

    def publish(self, post: PublicPost) -> PublishResult:
        """Post it; on the outbox transport, record it and return a made-up id."""
        ...
