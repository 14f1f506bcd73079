"""Sign-in throttling: hard limits per (account, address) and per address; per account
across addresses only a short, growing delay that nobody can turn into a lock-out.

Why not lock the account: a lock per account is a weapon. Anyone who knows an email
could keep its owner out for as long as they keep guessing. So:

- **per (account, address)**: after ``per_pair`` failures in ``window`` seconds that
  address may not try that account until the window ends. Only the guesser is stopped.
- **per address**: after ``per_address`` failures (any accounts) in the window, that address
  may not sign in at all until the window ends (one address spraying many accounts).
- **per account, from anywhere**: after ``free`` failures, each failure makes the next
  attempt on the account wait, doubling from ``delay`` up to ``max_delay`` (never more than
  30 s). An attempt that must wait is answered 429 with ``Retry-After`` and *reserves* that
  address's next attempt for the moment the wait ends: later failures from elsewhere
  cannot push it back. So a guesser who keeps renewing the delay costs the owner at most
  one wait of ``max_delay``, while a guesser with many addresses is paced to one try per
  address per delay (and still bound by the hard limits above).

Counts live in Redis, shared by every web process, and expire by themselves. Times are
wall-clock seconds; every key has a TTL, so an idle account leaves nothing behind.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

# However it is configured, the delay across addresses stays a delay, never a lock.
MAX_ACCOUNT_DELAY = 30.0


@dataclass(frozen=True)
class Limits:
    """The throttle's settings (``SIGNIN_*`` in the configuration)."""

    window: float = 300
    per_pair: int = 5
    per_address: int = 20
    free: int = 3
    delay: float = 1
    max_delay: float = MAX_ACCOUNT_DELAY

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Limits:
        """Read the limits from ``app.config``; ``max_delay`` is capped at 30 s."""
        default = cls()
        return cls(
            window=float(config.get("SIGNIN_WINDOW", default.window)),
            per_pair=int(config.get("SIGNIN_ACCOUNT_ADDRESS_LIMIT", default.per_pair)),
            per_address=int(config.get("SIGNIN_ADDRESS_LIMIT", default.per_address)),
            free=int(config.get("SIGNIN_FREE_FAILURES", default.free)),
            delay=float(config.get("SIGNIN_DELAY", default.delay)),
            max_delay=min(
                float(config.get("SIGNIN_MAX_DELAY", default.max_delay)), MAX_ACCOUNT_DELAY
            ),
        )

    def delay_after(self, failures: int) -> float:
        """How long the account waits after its ``failures``-th failure in the window."""
        if failures <= self.free:
            return 0.0
        return min(self.max_delay, self.delay * 2 ** min(failures - self.free - 1, 32))


@dataclass(frozen=True)
class Refusal:
    """Why an attempt is not tried now: ``scope`` (address, account_address or account),
    seconds until it may be, and whether this is the first refusal of its kind (audit it)."""

    scope: str
    retry_after: int
    first: bool


def _account(email: str) -> str:
    return email.strip().lower()


def _pair_key(email: str, ip: str) -> str:
    return f"bc:signin:fail:pair:{_account(email)}:{ip}"


def _address_key(ip: str) -> str:
    return f"bc:signin:fail:ip:{ip}"


def _account_key(email: str) -> str:
    return f"bc:signin:fail:acct:{_account(email)}"


def _next_key(email: str) -> str:
    return f"bc:signin:next:{_account(email)}"


def _slot_key(email: str, ip: str) -> str:
    return f"bc:signin:slot:{_account(email)}:{ip}"


def _wait(seconds: float) -> int:
    return max(1, math.ceil(seconds))


def check(
    r: redis.Redis, email: str, ip: str, limits: Limits, now: float | None = None
) -> Refusal | None:
    """None if this attempt may be tried now; else why not and for how long."""
    now = time.time() if now is None else now
    for scope, key, limit in (
        ("address", _address_key(ip), limits.per_address),
        ("account_address", _pair_key(email, ip), limits.per_pair),
    ):
        count = r.get(key)
        if count is not None and int(count) >= limit:
            ttl = int(r.ttl(key))
            # Audit a hard limit once per window, not once per hammered request.
            first = bool(r.set(f"{key}:noted", 1, nx=True, ex=max(ttl, 1)))
            return Refusal(scope, _wait(ttl), first)
    slot_key = _slot_key(email, ip)
    slot = r.get(slot_key)
    if slot is not None:
        if float(slot) <= now:
            r.delete(slot_key)  # the reserved attempt: tried now, whatever happened since
            return None
        return Refusal("account", _wait(float(slot) - now), first=False)
    ready = r.get(_next_key(email))
    if ready is not None and now < float(ready):
        at = float(ready)
        # Reserve this address's next try for when the wait ends; a later failure from
        # another address moves the account's wait, not this reservation.
        first = bool(r.set(slot_key, at, nx=True, ex=_wait(at - now + limits.window)))
        return Refusal("account", _wait(at - now), first)
    return None


def failed(r: redis.Redis, email: str, ip: str, limits: Limits, now: float | None = None) -> float:
    """Count one failed sign-in; returns the delay it puts on the account (0: none)."""
    now = time.time() if now is None else now
    window = _wait(limits.window)
    with r.pipeline(transaction=True) as pipe:
        for key in (_pair_key(email, ip), _address_key(ip)):
            # The window starts at the first failure (INCR keeps the TTL set here).
            pipe.set(key, 0, ex=window, nx=True)
            pipe.incr(key)
        # Across addresses the window slides: a steady guesser keeps the account slowed.
        pipe.incr(_account_key(email))
        pipe.expire(_account_key(email), window)
        failures = int(pipe.execute()[-2])
    delay = limits.delay_after(failures)
    if delay:
        r.set(_next_key(email), now + delay, ex=_wait(delay))
    return delay


def succeeded(r: redis.Redis, email: str, ip: str) -> None:
    """A correct password clears this address's count for the account.

    Not the account's count across addresses (a guesser elsewhere would get free tries
    again every time the owner signs in), nor the address's (a guesser stays slow).
    """
    r.delete(_pair_key(email, ip))
