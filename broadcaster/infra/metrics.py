"""Prometheus metrics at ``/metrics``, kept in Redis so every web and worker process counts.

Web and workers are separate processes, often on separate machines, so a process-local
prometheus-client registry would only ever show one of them. Instead counters and histogram
buckets are ``HINCRBY`` fields of two Redis hashes, written wherever the event happens;
``/metrics`` reads them at scrape time through a custom collector, together with gauges
computed there (announcements by state, deliveries by channel and state, queue depth,
circuit-breaker state).

Recording never raises: a metric must not break a delivery.
"""

from __future__ import annotations

import bisect
import hmac
import importlib
import json
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

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
        "Inbound SMS: opt_out, opt_in, reply, unmatched",
        ("kind",),
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

# Announcements older than this are folded into running totals (see _fold); newer ones are
# read live at each scrape, so a scrape costs O(announcements of the last week).
SETTLE_SECONDS = 7 * 24 * 3600
_FOLD_CURSOR = "bc:metrics:fold:cursor"
_FOLD_LOCK = "bc:metrics:fold:lock"
_FOLDED_ANNOUNCEMENTS = "bc:metrics:fold:announcements"
_FOLDED_DELIVERIES = "bc:metrics:fold:deliveries"


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
        client = redis.Redis.from_url(str(url), socket_timeout=2) if url else None
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


def _fold(r: redis.Redis, now: float) -> None:
    """Move announcements older than SETTLE_SECONDS into running totals, once each."""
    from broadcaster.domain.announcements import ANNOUNCEMENTS_KEY

    if not r.set(_FOLD_LOCK, 1, nx=True, ex=60):
        return  # another scrape is folding; it will have moved the cursor
    try:
        cursor = float(r.get(_FOLD_CURSOR) or 0)
        cutoff = now - SETTLE_SECONDS
        old = r.zrangebyscore(ANNOUNCEMENTS_KEY, f"({cursor}", cutoff, withscores=True)
        if not old:
            return
        ids = [member.decode() for member, _ in old]
        states, counts = _read(r, ids)
        pipe = r.pipeline(transaction=True)
        for state in states:
            pipe.hincrby(_FOLDED_ANNOUNCEMENTS, state, 1)
        for field, value in counts.items():
            pipe.hincrby(_FOLDED_DELIVERIES, field, value)
        pipe.set(_FOLD_CURSOR, repr(old[-1][1]))
        pipe.execute()
    finally:
        r.delete(_FOLD_LOCK)


def _read(r: redis.Redis, ids: list[str]) -> tuple[list[str], dict[str, int]]:
    """States of these announcements and their summed ``channel:state`` delivery counts."""
    # The stores' own key helpers: one pipeline instead of a round trip per announcement.
    from broadcaster.domain.announcements import _ann_key
    from broadcaster.domain.ledger import _counts_key

    states: list[str] = []
    totals: dict[str, int] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        pipe = r.pipeline(transaction=False)
        pipe.mget([_ann_key(i) for i in chunk])
        for i in chunk:
            pipe.hgetall(_counts_key(i))
        raws, *counts = pipe.execute()
        states += [json.loads(raw).get("state", "unknown") for raw in raws if raw]
        for hashed in counts:
            for field, value in _decode(hashed).items():
                totals[field] = totals.get(field, 0) + int(value)
    return states, totals


class RedisCollector(Collector):
    """Reads every counter, histogram and gauge from Redis at scrape time."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r

    def collect(self) -> Iterator[Metric]:
        counters = _decode(self.r.hgetall(COUNTERS_KEY))
        for name, (exposed, doc, labels) in COUNTERS.items():
            family = CounterMetricFamily(exposed, doc, labels=list(labels))
            for field, value in sorted(counters.items()):
                parts = field.split(_SEP)
                if parts[0] == name and len(parts) == len(labels) + 1:
                    family.add_metric(parts[1:], float(value))
            yield family
        yield from self._histograms()
        yield from self._announcements()
        yield from self._queues()
        yield from self._breakers()

    def _histograms(self) -> Iterator[Metric]:
        raw = _decode(self.r.hgetall(HISTOGRAMS_KEY))
        for name, (exposed, doc, labels, buckets) in HISTOGRAMS.items():
            family = HistogramMetricFamily(exposed, doc, labels=list(labels))
            series: dict[tuple[str, ...], dict[str, str]] = {}
            for field, value in raw.items():
                parts = field.split(_SEP)
                if parts[0] == name and len(parts) == len(labels) + 2:
                    series.setdefault(tuple(parts[1:-1]), {})[parts[-1]] = value
            for label_values, fields in sorted(series.items()):
                cumulative, points = 0, []
                for index, bound in enumerate(buckets):
                    cumulative += int(fields.get(f"b{index}", 0))
                    points.append((repr(bound), cumulative))
                points.append(("+Inf", int(fields.get("count", 0))))
                family.add_metric(list(label_values), points, sum_value=float(fields.get("sum", 0)))
            yield family

    def _announcements(self) -> Iterator[Metric]:
        from broadcaster.domain.announcements import ANNOUNCEMENTS_KEY
        from broadcaster.domain.ledger import STATES

        now = time.time()
        _fold(self.r, now)
        cursor = float(self.r.get(_FOLD_CURSOR) or 0)
        recent = [m.decode() for m in self.r.zrangebyscore(ANNOUNCEMENTS_KEY, f"({cursor}", "+inf")]
        states, deliveries = _read(self.r, recent)
        by_state: dict[str, int] = {
            k: int(v) for k, v in _decode(self.r.hgetall(_FOLDED_ANNOUNCEMENTS)).items()
        }
        for state in states:
            by_state[state] = by_state.get(state, 0) + 1
        for field, value in _decode(self.r.hgetall(_FOLDED_DELIVERIES)).items():
            deliveries[field] = deliveries.get(field, 0) + int(value)
        family = GaugeMetricFamily(
            "broadcaster_announcements", "Announcements by state", labels=["state"]
        )
        for state in sorted({"pending_approval", "published", "rejected", *by_state}):
            family.add_metric([state], by_state.get(state, 0))
        yield family
        family = GaugeMetricFamily(
            "broadcaster_deliveries",
            "Delivery records by channel and current state",
            labels=["channel", "state"],
        )
        channels = sorted({field.rsplit(":", 1)[0] for field in deliveries})
        for channel in channels:
            for state in STATES:
                family.add_metric([channel, state], deliveries.get(f"{channel}:{state}", 0))
        yield family

    def _queues(self) -> Iterator[Metric]:
        from rq.registry import ScheduledJobRegistry

        from broadcaster.delivery.queues import QUEUE_NAMES, queue

        depth = GaugeMetricFamily(
            "broadcaster_queue_depth", "Jobs waiting in each RQ queue", labels=["queue"]
        )
        scheduled = GaugeMetricFamily(
            "broadcaster_queue_scheduled",
            "Jobs scheduled for later in each RQ queue (retries with backoff)",
            labels=["queue"],
        )
        for name in QUEUE_NAMES:
            q = queue(self.r, name)
            depth.add_metric([name], q.count)
            registry = ScheduledJobRegistry(queue=q, serializer=q.serializer)
            scheduled.add_metric([name], registry.count)
        yield depth
        yield scheduled

    def _breakers(self) -> Iterator[Metric]:
        try:
            breaker = importlib.import_module("broadcaster.delivery.breaker")
        except ImportError:
            return  # no circuit breakers in this version
        family = GaugeMetricFamily(
            "broadcaster_breaker_state",
            "Circuit breaker per provider: 1 for its current state",
            labels=["provider", "state"],
        )
        for provider, info in sorted(breaker.status(self.r).items()):
            current = info.get("state", "closed")
            for state in ("closed", "open", "half_open"):
                family.add_metric([provider, state], 1 if state == current else 0)
        yield family


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    """Prometheus text format; needs ``Authorization: Bearer`` METRICS_TOKEN when it is set."""
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(given.encode(), str(token).encode()):
            from broadcaster.web.errors import error_body

            body = json.dumps(error_body(401, "send the metrics token as a Bearer token"))
            return Response(body, status=401, mimetype="application/json")
    output = generate_latest(current_app.extensions["broadcaster_metrics"])
    return Response(output, mimetype="text/plain; version=0.0.4; charset=utf-8")


def init_app(app: Flask) -> None:
    """Register ``/metrics`` with a registry of its own (one per app, never the global one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(app.extensions["broadcaster"].redis))
    app.extensions["broadcaster_metrics"] = registry
    app.register_blueprint(bp)
