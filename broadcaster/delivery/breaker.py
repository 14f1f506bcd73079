"""Circuit breaker per provider: repeated transient failures mark it down for a cool-off.

While a provider is *open* its batches wait (they are rescheduled for the end of the
cool-off, without spending an attempt) instead of burning retries against a dead API.
After the cool-off one sender gets to *probe* (half-open): a success closes the breaker,
a failure opens it again. The state lives in Redis, shared by every worker, and
``status()`` is what ``/readyz`` and the admin page show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

_PREFIX = "bc:breaker:"

# KEYS: breaker hash. ARGV: threshold, cool-off (ms). Returns the new state.
_FAILURE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'half_open' or failures >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'until', now + tonumber(ARGV[2]),
             'opened_at', now, 'probe', '0')
  return 'open'
end
return state
"""

# KEYS: breaker hash. Returns {may send (1/0), ms to wait}. After the cool-off exactly one
# caller becomes the probe (half-open); the others wait for its outcome.
_ALLOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'closed' then return {1, 0} end
local untilms = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if state == 'open' and now < untilms then return {0, untilms - now} end
local probe = tonumber(redis.call('HGET', KEYS[1], 'probe') or '0')
if probe > now then return {0, probe - now} end
-- The probe's own answer is awaited for at most the cool-off; then another may probe.
redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe', now + tonumber(ARGV[1]))
return {1, 0}
"""


@dataclass
class Breaker:
    """The breaker of one provider (``twilio``, ``sendgrid``, ``mastodon``, ``bluesky``)."""

    r: redis.Redis
    provider: str
    threshold: int = 5  # consecutive transient failures that open it
    cooloff: float = 60.0  # seconds it stays open before a probe

    def __post_init__(self) -> None:
        self.key = _PREFIX + self.provider
        self._failure = self.r.register_script(_FAILURE)
        self._allow = self.r.register_script(_ALLOW)

    def allow(self) -> float:
        """0 if a request may go now, else the seconds to wait (open, or a probe is out)."""
        granted, wait_ms = self._allow([self.key], [int(self.cooloff * 1000)])
        return 0.0 if int(granted) else int(wait_ms) / 1000

    def success(self) -> None:
        """The provider answered (even a permanent error is an answer): close the breaker."""
        state, failures = self.r.hmget(self.key, ["state", "failures"])
        if state is None or state == b"closed":
            # The common case: only reset the count, without a write when it is already 0.
            if failures not in (None, b"0"):
                self.r.hset(self.key, "failures", 0)
            return
        self.r.hset(self.key, mapping={"state": "closed", "failures": 0, "probe": 0})

    def failure(self) -> str:
        """A transient failure (5xx, timeout, unreachable); returns the state after it."""
        state = self._failure([self.key], [self.threshold, int(self.cooloff * 1000)])
        return state.decode() if isinstance(state, bytes) else str(state)


def status(r: redis.Redis) -> dict[str, dict[str, Any]]:
    """Every provider's breaker: ``state`` (closed/open/half_open), ``failures``, ``until``."""
    out: dict[str, dict[str, Any]] = {}
    seconds, micros = r.time()
    now_ms = seconds * 1000 + micros // 1000
    for key in sorted(r.scan_iter(match=_PREFIX + "*", count=100)):
        raw = {k.decode(): v.decode() for k, v in r.hgetall(key).items()}
        state = raw.get("state", "closed")
        until = int(float(raw.get("until") or 0))
        if state == "open" and until <= now_ms:
            state = "half_open"  # cool-off over: the next request is the probe
        out[key.decode()[len(_PREFIX) :]] = {
            "state": state,
            "failures": int(raw.get("failures") or 0),
            "until": until / 1000 if state != "closed" else None,
        }
    return out
