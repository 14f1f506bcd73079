"""Helpdesk calls through their provider's gate, like every other provider's: a shared rate
(``BROADCASTER_ZENDESK_RATE``, ``…_FRESHDESK_RATE``, requests/s for all workers), a 429's
``Retry-After`` pausing every worker, and the circuit breaker (``delivery/pacing.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broadcaster.delivery import pacing
from broadcaster.services import Services
from channels.base import Result, TransientDeliveryError


class Gated:
    """A helpdesk whose every call waits for its turn and reports how it went."""

    def __init__(self, svc: Services, name: str, desk: Any) -> None:
        self.name, self.desk = name, desk
        self.gate = pacing.gate_for(svc.redis, name, svc.config)
        self.max_wait = float(svc.config.get("PROVIDER_WAIT_INLINE", 10))

    def __getattr__(self, method: str) -> Callable[..., Any]:
        call = getattr(self.desk, method)

        def gated(*args: Any, **kwargs: Any) -> Any:
            if self.gate is not None:
                later = self.gate.wait_turn(self.max_wait)
                if later:  # paused by a 429 or marked down: the job comes back later
                    raise TransientDeliveryError(f"{self.name}: waiting for its turn", later)
            try:
                result = call(*args, **kwargs)
            except TransientDeliveryError as exc:
                if self.gate is not None:
                    self.gate.observe([Result(self.name, "retry", retry_after=exc.retry_after)])
                raise
            if self.gate is not None:
                self.gate.observe([Result(self.name, "sent")])
            return result

        return gated
