"""Sign-in rate limit: too many failures per account or per IP lock sign-in for a while.

Counted in Redis, so every web process shares the count; a window starts at the first
failure and both counters expire with it.
"""

from __future__ import annotations

import redis

MAX_FAILURES = 5
WINDOW_SECONDS = 300


def _keys(email: str, ip: str) -> tuple[str, str]:
    return f"bc:signin:fail:acct:{email.strip().lower()}", f"bc:signin:fail:ip:{ip}"


def locked_for(r: redis.Redis, email: str, ip: str) -> int:
    """Seconds until sign-in may be tried again for this account or IP (0: not locked)."""
    wait = 0
    for key in _keys(email, ip):
        count = r.get(key)
        if count is not None and int(count) >= MAX_FAILURES:
            wait = max(wait, int(r.ttl(key)), 1)
    return wait


def failed(r: redis.Redis, email: str, ip: str) -> None:
    """Count one failed sign-in against the account and the IP."""
    with r.pipeline(transaction=True) as pipe:
        for key in _keys(email, ip):
            # The window starts at the first failure (INCR keeps the TTL set here).
            pipe.set(key, 0, ex=WINDOW_SECONDS, nx=True)
            pipe.incr(key)
        pipe.execute()


def succeeded(r: redis.Redis, email: str) -> None:
    """A correct password clears the account's count (not the IP's: a guesser stays slow)."""
    r.delete(_keys(email, "")[0])
