"""The audit log: an append-only record of every state change and security event.

Entries live in one Redis stream. The code only ever appends (``XADD``, no ``MAXLEN``) and
no interface edits or deletes an entry; stream ids give a total order and a cursor.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import redis
from redis.client import Pipeline

AUDIT_KEY = "bc:audit"

# Every action the log records, so the API can document and filter them.
ACTIONS = (
    "signin.succeeded",
    "signin.failed",
    "signin.throttled",
    "signout",
    "token.created",
    "user.created",
    "announcement.created",
    "announcement.approved",
    "announcement.rejected",
    "announcement.published",
    "announcement.bypassed",
    "approval.refused",
    "announcement.amended",
    "announcement.withdrawn",
    "promise.overdue",
    "maintenance.created",
    "maintenance.extended",
    "maintenance.ended_early",
    "maintenance.cancelled",
    "plan.loaded",
    "subscribers.imported",
    "subscriber.erased",
    "drill.started",
    "drill.ended",
    "review.written",
)


def entry(
    actor: str,
    action: str,
    ip: str | None = None,
    incident_id: str | None = None,
    announcement_id: str | None = None,
    **details: Any,
) -> dict[str, str]:
    """The stream fields of one entry (who, what, when, from where, about which incident)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    return {
        "at": f"{time.time():.3f}",
        "actor": actor,
        "action": action,
        "ip": ip or "",
        "incident_id": incident_id or "",
        "announcement_id": announcement_id or "",
        "details": json.dumps(details, sort_keys=True),
    }


def record(r: redis.Redis | Pipeline, actor: str, action: str, **kwargs: Any) -> None:
    """Append one entry; pass a pipeline to make it part of the same transaction."""
    r.xadd(AUDIT_KEY, entry(actor, action, **kwargs))


def plan_loaded(r: redis.Redis, plan: object, source: str) -> None:
    """Record a plan load, once per distinct plan (every process start loads it again)."""
    digest = hashlib.sha256(repr(plan).encode()).hexdigest()[:16]
    previous = r.set("bc:audit:plan", digest, get=True)
    if previous is None or previous.decode() != digest:
        record(r, "system", "plan.loaded", source=source, digest=digest)


def _decode(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, Any]:
    item = {k.decode(): v.decode() for k, v in fields.items()}
    return {
        "id": entry_id.decode(),
        "at": float(item["at"]),
        "actor": item["actor"],
        "action": item["action"],
        "ip": item["ip"] or None,
        "incident_id": item["incident_id"] or None,
        "announcement_id": item["announcement_id"] or None,
        "details": json.loads(item["details"]),
    }


def _newest_first(r: redis.Redis, before: str | None, chunk: int) -> Iterator[dict[str, Any]]:
    upper = f"({before}" if before else "+"
    while True:
        rows = r.xrevrange(AUDIT_KEY, max=upper, min="-", count=chunk)
        if not rows:
            return
        for entry_id, fields in rows:
            yield _decode(entry_id, fields)
        upper = f"({rows[-1][0].decode()}"


def entries(
    r: redis.Redis,
    limit: int = 50,
    before: str | None = None,
    incident_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
) -> list[dict[str, Any]]:
    """Entries newest first, optionally only one incident's, one person's or one action's.

    ``before`` is the id of the last entry of the previous page.
    """
    found = []
    for item in _newest_first(r, before, chunk=max(limit, 200)):
        if incident_id and item["incident_id"] != incident_id:
            continue
        if actor and item["actor"] != actor:
            continue
        if action and item["action"] != action:
            continue
        found.append(item)
        if len(found) >= limit:
            break
    return found
