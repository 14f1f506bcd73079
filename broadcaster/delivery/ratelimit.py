"""Provider rate limits shared by every worker: a token bucket in Redis per provider sender.

Each send first *reserves* a slot in the bucket (one Lua call, Redis' own clock): the bucket
may go into debt, and the caller sleeps until its slot comes. So N workers with many threads
each send at exactly the provider's rate between them, without polling and without a burst
when they all start at once. A 429 with ``Retry-After`` pauses the bucket for everyone.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from channels import PROVIDERS

# KEYS: bucket hash, pause key. ARGV: rate (tokens/s), capacity, n, max_wait (s, <0: none).
# Returns {status, wait ms}: status 1 = reserved (send after the wait), 0 = refused (paused
# or the wait is longer than max_wait; nothing is taken from the bucket).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then
  return {0, paused - now}
end
local rate = tonumber(ARGV[1]) / 1000
local capacity = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + (now - ts) * rate) - n
local wait = 0
if tokens < 0 then wait = math.ceil(-tokens / rate) end
if max_wait >= 0 and wait > max_wait * 1000 then
  return {0, wait}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate) + 60000)
return {1, wait}
"""

# KEYS: pause key. ARGV: pause length (ms). Only ever lengthens a pause.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untilms = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if untilms > current then
  redis.call('SET', KEYS[1], untilms, 'PX', tonumber(ARGV[1]) + 1000)
  return untilms
end
return current
"""


def _bucket_key(name: str) -> str:
    return f"bc:rl:{name}"


def _pause_key(name: str) -> str:
    return f"bc:rl:pause:{name}"


@dataclass
class Limiter:
    """The shared bucket of one provider sender (``twilio:+3197…``, ``sendgrid:…``)."""

    r: redis.Redis
    name: str  # provider sender, e.g. "twilio:MG…"
    rate: float  # requests per second
    capacity: float = 1.0  # burst: 1 paces strictly, one request every 1/rate seconds

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"{self.name}: rate must be positive, got {self.rate}")
        self._reserve = self.r.register_script(_RESERVE)
        self._pause = self.r.register_script(_PAUSE)

    def reserve(self, n: int = 1, max_wait: float | None = None) -> float | None:
        """Reserve ``n`` requests; seconds to sleep before sending, or None if refused.

        Refused while the provider is paused (429) or when the wait would exceed ``max_wait``.
        """
        keys = [_bucket_key(self.name), _pause_key(self.name)]
        args = [self.rate, self.capacity, n, -1 if max_wait is None else max_wait]
        granted, wait_ms = self._reserve(keys, args)
        return int(wait_ms) / 1000 if int(granted) else None

    def try_take(self, n: int = 1) -> float:
        """Take ``n`` now if the bucket holds them (0.0); else seconds until it will.

        Nothing is taken when refused, so a caller turned away does not dig the bucket
        deeper (unlike ``reserve``, which lends against the future).
        """
        keys = [_bucket_key(self.name), _pause_key(self.name)]
        granted, wait_ms = self._reserve(keys, [self.rate, self.capacity, n, 0])
        return 0.0 if int(granted) else max(int(wait_ms), 1) / 1000

    def acquire(self, n: int = 1, max_pause: float = 0.0) -> bool:
        """Block until ``n`` requests may be sent; False if paused for longer than ``max_pause``."""
        while True:
            wait = self.reserve(n)
            if wait is not None:
                if wait > 0:
                    time.sleep(wait)
                return True
            paused = self.paused_for()
            if paused > max_pause:
                return False
            time.sleep(max(paused, 0.01))

    def pause(self, seconds: float) -> None:
        """Stop every worker sending through this sender for ``seconds`` (a 429's Retry-After)."""
        self._pause([_pause_key(self.name)], [max(1, int(seconds * 1000))])

    def paused_for(self) -> float:
        """Seconds the sender stays paused (0: not paused)."""
        raw = self.r.get(_pause_key(self.name))
        if not raw:
            return 0.0
        seconds, micros = self.r.time()
        return max(0.0, int(raw) / 1000 - (seconds + micros / 1e6))


def sender_name(transport: str, config: Mapping[str, Any]) -> str:
    """The bucket name of a transport's sender: limits are per from-number or account."""
    provider = PROVIDERS.get(transport)
    return provider.sender_id(config) if provider is not None else transport


def rate_for(transport: str, config: Mapping[str, Any]) -> float | None:
    """Requests per second allowed for a transport (None: not limited, e.g. the outbox)."""
    provider = PROVIDERS.get(transport)
    return provider.rate_for(config) if provider is not None else None


def limiter_for(r: redis.Redis, transport: str, config: Mapping[str, Any]) -> Limiter | None:
    """The shared limiter of a transport, or None when it has no limit."""
    rate = rate_for(transport, config)
    if not rate:
        return None
    return Limiter(r, sender_name(transport, config), rate)
