"""Counting: counters and histograms kept in Redis so every web and worker process counts.

Web and workers are separate processes, often on separate machines, so a process-local
prometheus-client registry would only ever show one of them. Instead counters and histogram
buckets are ``HINCRBY`` fields of two Redis hashes, written wherever the event happens
(``count``, ``observe``, a channel's ``Meter``) and read back here for the scrape;
``broadcaster.web.metrics_view`` serves them at ``/metrics`` with the gauges.

Recording never raises: a metric must not break a delivery.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import redis

from broadcaster.infra import redis_connect

log = logging.getLogger(__name__)

COUNTERS_KEY = "bc:metrics:counters"
HISTOGRAMS_KEY = "bc:metrics:histograms"
_SEP = "|"

# name → (exposed name, help, label names). Exposed with a ``_total`` suffix.
COUNTERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "retries": (
        "broadcaster_retries",
        "Deliveries re-queued for another attempt after a transient error",
        ("channel",),
    ),
    "throttled": (
        "broadcaster_provider_throttled",
        "Provider answers with HTTP 429 (rate limited)",
        ("provider",),
    ),
    "provider_errors": (
        "broadcaster_provider_errors",
        "Provider calls that failed (transient: retried; permanent: not)",
        ("provider", "kind"),
    ),
    "receipts": (
        "broadcaster_receipts",
        "Provider delivery receipts, by what they did (applied, duplicate, stale, unmatched)",
        ("provider", "event", "outcome"),
    ),
    "inbound_sms": (
        "broadcaster_inbound_sms",
        "Inbound SMS: opt_out, opt_in, confirm (a sign-up), confirmed or help (an answer to "
        "an announcement that asks to confirm), reply, unmatched",
        ("kind",),
    ),
    "inbound_whatsapp": (
        "broadcaster_inbound_whatsapp",
        "Inbound WhatsApp: opt_out, opt_in, confirmed, help, reply, unmatched",
        ("kind",),
    ),
    "voice_calls": (
        "broadcaster_voice_calls",
        "Voice call events: machine (short message left), key_1 (heard), key_2 (connected), "
        "other_key, no_key",
        ("event",),
    ),
    "inbound_email": (
        "broadcaster_inbound_email",
        "Inbound email (SendGrid Inbound Parse): reply, unmatched",
        ("kind",),
    ),
    "webhook_blocked": (
        "broadcaster_webhook_blocked",
        "Webhook sends refused: the target resolved to a loopback, link-local or private address",
        ("target",),
    ),
    "hook_replays": (
        "broadcaster_hook_replays",
        "Signed callbacks refused or ignored as replays (too old, signature or content seen)",
        ("hook", "reason"),
    ),
    "render_failures": (
        "broadcaster_render_failures",
        "Stored items a surface skipped because they failed to render (a bug to look into)",
        ("surface",),
    ),
    "hooks_throttled": (
        "broadcaster_hooks_throttled",
        "Monitoring hook requests refused with 429: a token over its rate",
        ("hook",),
    ),
    "staff_briefs": (
        "broadcaster_staff_briefs",
        "Staff briefs before customer announcements: sent, nobody (to brief) or failed",
        ("outcome",),
    ),
    "drill_refused": (
        "broadcaster_drill_refused",
        "Deliveries of a drill refused because they would reach someone outside the drill team",
        ("channel",),
    ),
    "promises_overdue": (
        "broadcaster_promises_overdue",
        "Promised updates whose time passed without one: team reminded, or nobody reachable",
        ("outcome",),
    ),
    "alerts_gathered": (
        "broadcaster_alerts_gathered",
        "Alert deliveries gathered into a rule's several-alerts draft instead of an incident",
        ("status",),
    ),
    "approval_notices": (
        "broadcaster_approval_notices",
        "Notices to approvers that an announcement waits: sent, transient (tried again until "
        "the last attempt) or failed",
        ("via", "outcome"),
    ),
    "signups": (
        "broadcaster_signups",
        "Self-subscription: requested, confirmed (by link, reply or code), and the messages "
        "to confirm or to say someone is subscribed already (sent, retried, failed)",
        ("event", "outcome"),
    ),
    "helpdesk_syncs": (
        "broadcaster_helpdesk_syncs",
        "Saved replies (macros, canned responses) synced per helpdesk: ok, retry or failed",
        ("helpdesk", "outcome"),
    ),
    "confirmations": (
        "broadcaster_confirmations",
        "Answers to announcements that ask to confirm: confirmed or help, by the channel",
        ("answer", "channel"),
    ),
    "escalations": (
        "broadcaster_escalations",
        "Messages sent because someone had not confirmed in time, by channel",
        ("channel",),
    ),
    "reply_tickets": (
        "broadcaster_reply_tickets",
        "Customer replies made helpdesk tickets or comments: ok, retry or failed",
        ("helpdesk", "outcome"),
    ),
}
# Seconds; provider calls range from tens of milliseconds to the timeout.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
HISTOGRAMS: dict[str, tuple[str, str, tuple[str, ...], tuple[float, ...]]] = {
    "provider_latency": (
        "broadcaster_provider_latency_seconds",
        "Duration of one provider API call (SendGrid request, Twilio message)",
        ("provider",),
        LATENCY_BUCKETS,
    ),
}


def _field(name: str, labels: Iterable[str]) -> str:
    return _SEP.join([name, *(str(v).replace(_SEP, "_") for v in labels)])


def count(r: redis.Redis | None, name: str, *labels: str, amount: int = 1) -> None:
    """Add ``amount`` to counter ``name`` with these label values (never raises)."""
    if r is None or amount == 0:
        return
    try:
        r.hincrby(COUNTERS_KEY, _field(name, labels), amount)
    except redis.RedisError as exc:
        log.debug("metric %s not recorded: %s", name, exc)


def observe(r: redis.Redis | None, name: str, labels: Iterable[str], value: float) -> None:
    """Record one observation in histogram ``name`` (never raises)."""
    _apply(r, _observation(name, labels, value))


# One metric write: (hash, field, amount).
_Write = tuple[str, str, float]


def _observation(name: str, labels: Iterable[str], value: float) -> list[_Write]:
    """The writes of one histogram observation: its bucket, the count and the sum."""
    index = bisect.bisect_left(HISTOGRAMS[name][3], value)  # le semantics: value <= bound
    base = _field(name, labels)
    return [
        (HISTOGRAMS_KEY, f"{base}{_SEP}b{index}", 1),
        (HISTOGRAMS_KEY, f"{base}{_SEP}count", 1),
        (HISTOGRAMS_KEY, f"{base}{_SEP}sum", value),
    ]


def _apply(r: redis.Redis | None, writes: list[_Write]) -> None:
    """Make the writes in one round trip (never raises: a metric must not break a send)."""
    if r is None or not writes:
        return
    try:
        pipe = r.pipeline(transaction=False)
        for key, name, amount in writes:
            if isinstance(amount, int):
                pipe.hincrby(key, name, amount)
            else:
                pipe.hincrbyfloat(key, name, amount)
        pipe.execute()
    except redis.RedisError as exc:
        log.debug("%d metric writes not recorded: %s", len(writes), exc)


class Meter:
    """What a channel needs to record provider calls; built from the app config.

    It is the ``channels.base.Meter`` protocol's implementation: the app builds one per
    channel and hands it over, so channels never import this module.

    A *buffered* meter keeps its writes until ``flush()``: a channel sending hundreds of
    requests a second then pays one Redis round trip per batch, not one per request.
    """

    def __init__(self, r: redis.Redis | None, buffered: bool = False) -> None:
        self.r = r
        self._pending: deque[_Write] | None = deque() if buffered else None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], buffered: bool = False) -> Meter:
        """A meter on the configured Redis (a no-op meter without one)."""
        url = config.get("REDIS_URL")
        client = redis_connect.client(str(url), retries=2, socket_timeout=2) if url else None
        return cls(client, buffered)

    def call(self, provider: str, seconds: float, status: int | None = None) -> None:
        """One provider call took ``seconds``; HTTP ``status`` if it answered."""
        writes = _observation("provider_latency", [provider], seconds)
        if status == 429:
            writes.append((COUNTERS_KEY, _field("throttled", [provider]), 1))
        self._write(writes)

    def error(self, provider: str, kind: str) -> None:
        """A provider call failed: ``kind`` is ``transient`` or ``permanent``."""
        self._write([(COUNTERS_KEY, _field("provider_errors", [provider, kind]), 1)])

    def flush(self) -> None:
        """Send the buffered writes in one round trip (never raises)."""
        if self._pending is None:
            return
        writes = []
        while self._pending:  # deque.popleft is thread-safe: concurrent flushes split it
            try:
                writes.append(self._pending.popleft())
            except IndexError:
                break
        _apply(self.r, writes)

    def _write(self, writes: list[_Write]) -> None:
        if self.r is None:
            return
        if self._pending is not None:
            self._pending.extend(writes)
        else:
            _apply(self.r, writes)


class _Timer:
    """``with meter_timer(meter, provider) as t: ...; t.status = 201``."""

    def __init__(self, meter: Meter, provider: str) -> None:
        self.meter, self.provider, self.status = meter, provider, None
        self.started = 0.0

    def __enter__(self) -> _Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.meter.call(self.provider, time.perf_counter() - self.started, self.status)


def timed(meter: Meter, provider: str) -> _Timer:
    """Time one provider call (set ``.status`` inside to count 429s)."""
    return _Timer(meter, provider)


def _decode(raw: Mapping[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


def read_counters(r: redis.Redis) -> dict[str, dict[tuple[str, ...], float]]:
    """Every counter of ``COUNTERS``: its value per label values, as ``count`` wrote it."""
    values: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in COUNTERS}
    for field, value in sorted(_decode(r.hgetall(COUNTERS_KEY)).items()):
        name, *labels = field.split(_SEP)
        if name in COUNTERS and len(labels) == len(COUNTERS[name][2]):
            values[name][tuple(labels)] = float(value)
    return values


def read_histograms(r: redis.Redis) -> dict[str, dict[tuple[str, ...], dict[str, str]]]:
    """Every histogram of ``HISTOGRAMS``: per label values, its ``b<i>``/count/sum fields."""
    values: dict[str, dict[tuple[str, ...], dict[str, str]]] = {name: {} for name in HISTOGRAMS}
    for field, value in _decode(r.hgetall(HISTOGRAMS_KEY)).items():
        name, *parts = field.split(_SEP)
        if name in HISTOGRAMS and len(parts) == len(HISTOGRAMS[name][2]) + 1:
            values[name].setdefault(tuple(parts[:-1]), {})[parts[-1]] = value
    return values
