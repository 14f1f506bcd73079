"""Prometheus metrics at ``/metrics``, read from Redis at scrape time.

The counters and histograms are the ones ``broadcaster.infra.metrics`` counts in Redis
from every web and worker process; the gauges are computed here, through the stores'
public readers: announcements by state, deliveries by channel and state, queue depth,
circuit-breaker state.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Iterator, Mapping

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
from rq.registry import ScheduledJobRegistry

from broadcaster.delivery import breaker
from broadcaster.delivery.queues import QUEUE_NAMES, queue
from broadcaster.domain.announcements import created_between, states_of
from broadcaster.domain.ledger import STATES, summed_counts
from broadcaster.infra.metrics import COUNTERS, HISTOGRAMS, read_counters, read_histograms
from broadcaster.web.errors import error_body

# Announcements older than this are folded into running totals (see _fold); newer ones are
# read live at each scrape, so a scrape costs O(announcements of the last week).
SETTLE_SECONDS = 7 * 24 * 3600
_FOLD_CURSOR = "bc:metrics:fold:cursor"
_FOLD_LOCK = "bc:metrics:fold:lock"
_FOLDED_ANNOUNCEMENTS = "bc:metrics:fold:announcements"
_FOLDED_DELIVERIES = "bc:metrics:fold:deliveries"


def _decode(raw: Mapping[bytes, bytes]) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in raw.items()}


def _fold(r: redis.Redis, now: float) -> None:
    """Move announcements older than SETTLE_SECONDS into running totals, once each."""
    if not r.set(_FOLD_LOCK, 1, nx=True, ex=60):
        return  # another scrape is folding; it will have moved the cursor
    try:
        cursor = float(r.get(_FOLD_CURSOR) or 0)
        old = created_between(r, cursor, now - SETTLE_SECONDS)
        if not old:
            return
        ids = [announcement_id for announcement_id, _ in old]
        states, counts = states_of(r, ids), summed_counts(r, ids)
        pipe = r.pipeline(transaction=True)
        for state in states:
            pipe.hincrby(_FOLDED_ANNOUNCEMENTS, state, 1)
        for field, value in counts.items():
            pipe.hincrby(_FOLDED_DELIVERIES, field, value)
        pipe.set(_FOLD_CURSOR, repr(old[-1][1]))
        pipe.execute()
    finally:
        r.delete(_FOLD_LOCK)


class RedisCollector(Collector):
    """Reads every counter, histogram and gauge from Redis at scrape time."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r

    def collect(self) -> Iterator[Metric]:
        counters = read_counters(self.r)
        for name, (exposed, doc, labels) in COUNTERS.items():
            family = CounterMetricFamily(exposed, doc, labels=list(labels))
            for label_values, value in counters[name].items():
                family.add_metric(list(label_values), value)
            yield family
        yield from self._histograms()
        yield from self._announcements()
        yield from self._queues()
        yield from self._breakers()

    def _histograms(self) -> Iterator[Metric]:
        histograms = read_histograms(self.r)
        for name, (exposed, doc, labels, buckets) in HISTOGRAMS.items():
            family = HistogramMetricFamily(exposed, doc, labels=list(labels))
            for label_values, fields in sorted(histograms[name].items()):
                cumulative, points = 0, []
                for index, bound in enumerate(buckets):
                    cumulative += int(fields.get(f"b{index}", 0))
                    points.append((repr(bound), cumulative))
                points.append(("+Inf", int(fields.get("count", 0))))
                family.add_metric(list(label_values), points, sum_value=float(fields.get("sum", 0)))
            yield family

    def _announcements(self) -> Iterator[Metric]:
        now = time.time()
        _fold(self.r, now)
        cursor = float(self.r.get(_FOLD_CURSOR) or 0)
        recent = [announcement_id for announcement_id, _ in created_between(self.r, cursor, "+inf")]
        states, deliveries = states_of(self.r, recent), summed_counts(self.r, recent)
        by_state = _decode(self.r.hgetall(_FOLDED_ANNOUNCEMENTS))
        for state in states:
            by_state[state] = by_state.get(state, 0) + 1
        for field, value in _decode(self.r.hgetall(_FOLDED_DELIVERIES)).items():
            deliveries[field] = deliveries.get(field, 0) + value
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
