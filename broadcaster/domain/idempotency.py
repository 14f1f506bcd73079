"""``Idempotency-Key`` support: the same key returns the same answer and acts only once.

The final record is written in the same Redis transaction as the announcement itself, so
a client retrying after a crash of the web process gets the original result, never a
second broadcast.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import redis

PENDING_TTL = 30  # seconds a key stays "in progress" if its request dies before committing
RECORD_TTL = 24 * 3600


class IdempotencyConflict(Exception):
    """The key is in use by a request still in progress, or by a different request."""


class KeyReused(IdempotencyConflict):
    """The key was used for a request with another body: a client bug (422)."""


class StillInProgress(IdempotencyConflict):
    """The first request with this key has not finished: retry after ``retry_after`` (409)."""

    retry_after = 1


def key_for(scope: str, key: str) -> str:
    return f"bc:idem:{scope}:{hashlib.sha256(key.encode()).hexdigest()}"


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def begin(r: redis.Redis, redis_key: str, print_: str) -> dict[str, Any] | None:
    """Reserve the key; return the stored record if this request was already done."""
    if r.set(
        redis_key, json.dumps({"pending": True, "fingerprint": print_}), nx=True, ex=PENDING_TTL
    ):
        return None
    raw = r.get(redis_key)
    record = json.loads(raw) if raw else {"pending": True, "fingerprint": print_}
    if record.get("fingerprint") != print_:
        raise KeyReused("this Idempotency-Key was used for a different request")
    if record.get("pending"):
        raise StillInProgress(
            "a request with this Idempotency-Key is still in progress; retry shortly"
        )
    return record


def record(
    pipe: redis.client.Pipeline, redis_key: str, print_: str, result: dict[str, Any]
) -> None:
    """Store the final result (inside the caller's transaction)."""
    pipe.set(redis_key, json.dumps({"fingerprint": print_, **result}), ex=RECORD_TTL)


def abandon(r: redis.Redis, redis_key: str) -> None:
    """Free a reserved key after the request failed, so the client may try again."""
    raw = r.get(redis_key)
    if raw and json.loads(raw).get("pending"):
        r.delete(redis_key)
