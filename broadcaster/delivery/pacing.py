"""A provider's gate: its shared rate limit and its circuit breaker, asked before every send.

``wait_turn`` blocks until the next request may go (the rate's slot came, no pause, breaker
closed) or says how long the caller should come back later; ``observe`` feeds each answer
back: a ``Retry-After`` pauses the provider for every worker, a transient failure counts
towards the breaker, any real answer closes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from broadcaster.delivery.breaker import Breaker
from broadcaster.delivery.ratelimit import Limiter, limiter_for
from channels import PROVIDERS
from channels.base import Result


@dataclass
class Gate:
    """Rate limit + breaker of one provider transport."""

    transport: str
    limiter: Limiter | None
    breaker: Breaker

    @property
    def spacing(self) -> float:
        """Seconds between two requests at the provider's rate (0: not limited)."""
        return 1.0 / self.limiter.rate if self.limiter is not None else 0.0

    def wait_turn(self, max_wait: float, n: int = 1, stop: threading.Event | None = None) -> float:
        """Block until the first of ``n`` requests may go; returns 0, or seconds to come back.

        The ``n`` slots are reserved in one call; the others follow one every ``spacing``
        seconds after the first (the caller sends them on those slots). Waiting for the rate
        is always done here (that is the pacing); a pause or an open breaker longer than
        ``max_wait`` is handed back so the batch can be rescheduled instead of holding a
        worker. Raises ``Stopped`` when ``stop`` is set while it waits (the reserved slots
        are left unused).
        """
        while True:
            closed_in = self.breaker.allow()
            if closed_in > max_wait:
                return closed_in
            if closed_in > 0:
                _sleep(closed_in, stop)
                continue
            if self.limiter is None:
                return 0.0
            wait = self.limiter.reserve(n)
            if wait is None:  # paused by a 429
                paused = self.limiter.paused_for()
                if paused > max_wait:
                    return paused
                _sleep(max(paused, 0.01), stop)
                continue
            # The reservation's wait is for its last slot; the first is (n - 1) slots earlier.
            wait -= (n - 1) * self.spacing
            if wait > 0:
                _sleep(wait, stop)
                # A 429 may have paused the provider while we slept on our slot.
                if self.limiter.paused_for() > 0:
                    continue
            return 0.0

    def observe(self, results: Iterable[Result]) -> None:
        """Feed the provider's answers to one request back into the pause and the breaker."""
        outcomes = list(results)
        throttled = [r.retry_after for r in outcomes if r.outcome == "retry" and r.retry_after]
        if throttled and self.limiter is not None:
            # Throttled is an answer: the provider is up, just busy. Pause it for everyone.
            self.limiter.pause(max(throttled))
            self.breaker.success()
            return
        if any(r.outcome == "retry" for r in outcomes):
            self.breaker.failure()
        elif outcomes:
            self.breaker.success()


class Stopped(Exception):
    """The worker is stopping: the caller gives its unsent messages back."""


def _sleep(seconds: float, stop: threading.Event | None) -> None:
    if stop is None:
        time.sleep(seconds)
    elif stop.wait(seconds):
        raise Stopped


def gate_for(r: redis.Redis, transport: str, config: Mapping[str, Any]) -> Gate | None:
    """The gate of a transport (None for the outbox and other unlimited transports)."""
    if transport not in PROVIDERS:  # a gate per provider; the outbox needs none
        return None
    breaker = Breaker(
        r,
        transport,
        threshold=int(config.get("BREAKER_THRESHOLD", 5)),
        cooloff=float(config.get("BREAKER_COOLOFF", 60)),
    )
    return Gate(transport, limiter_for(r, transport, config), breaker)
