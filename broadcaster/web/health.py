"""``/healthz`` (the process is up) and ``/readyz`` (Redis answers, a worker was seen).

``/readyz`` also shows each provider's circuit breaker: a provider that is down does not
make the service unready (other channels keep flowing), but monitoring sees it here.
"""

from __future__ import annotations

import time

import redis
from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from rq import Worker

from broadcaster.delivery import breaker
from broadcaster.infra import redis_connect
from broadcaster.services import services

bp = Blueprint("health", __name__)

WORKER_SEEN_WITHIN = 60  # seconds


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Always 200 while the process serves requests."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """200 when Redis answers and a worker sent a heartbeat recently, else 503 with the reason."""
    svc = services()
    checks: dict[str, object] = {}
    # The app's client waits out a Redis restart (redis_connect.client); a probe must not.
    probe = redis_connect.client(
        str(svc.config["REDIS_URL"]), retries=0, socket_connect_timeout=1, socket_timeout=1
    )
    try:
        probe.ping()
        checks["redis"] = "ok"
    except redis.RedisError as exc:
        checks["redis"] = f"unreachable: {exc.__class__.__name__}"
        return jsonify({"status": "unavailable", "checks": checks}), 503
    finally:
        probe.close()
    now = time.time()
    seen = [
        w
        for w in Worker.all(connection=svc.redis)
        if w.last_heartbeat and now - w.last_heartbeat.timestamp() < WORKER_SEEN_WITHIN
    ]
    checks["workers"] = len(seen)
    checks["transports"] = {
        name: ch.transport for name, ch in {**svc.channels, **svc.networks}.items()
    }
    checks["providers"] = breaker.status(svc.redis)
    if not seen:
        checks["workers"] = f"no worker seen in the last {WORKER_SEEN_WITHIN}s"
        return jsonify({"status": "unavailable", "checks": checks}), 503
    return jsonify({"status": "ready", "checks": checks})
