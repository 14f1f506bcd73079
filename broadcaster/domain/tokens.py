"""API tokens: random secrets stored only as SHA-256 hashes, each with a name and a role."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import redis

from broadcaster.domain import audit

ROLES = ("helpdesk", "approver", "monitor", "admin")

# What each role may do; `admin` may do everything.
PERMISSIONS: dict[str, frozenset[str]] = {
    "helpdesk": frozenset({"draft", "preview", "read", "subscribers"}),
    "approver": frozenset({"draft", "preview", "read", "approve", "publish", "subscribers"}),
    "monitor": frozenset({"hooks"}),
    # Only admins manage people, read the audit log and publish without a second person.
    "admin": frozenset(
        {"draft", "preview", "read", "approve", "publish", "subscribers", "hooks"}
        | {"users", "audit", "bypass"}
    ),
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name and role."""

    name: str
    role: str

    def may(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())


def _key(token: str) -> str:
    return "bc:token:" + hashlib.sha256(token.encode()).hexdigest()


def create_token(
    r: redis.Redis, name: str, role: str, created_by: str = "cli", ip: str | None = None
) -> str:
    """Create a token and return it; only its hash is kept. The audit log records who made it."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not name.strip():
        raise ValueError("name must not be empty")
    token = "bct_" + secrets.token_urlsafe(32)
    with r.pipeline(transaction=True) as pipe:
        pipe.hset(_key(token), mapping={"name": name, "role": role, "created_at": time.time()})
        audit.record(pipe, created_by, "token.created", ip=ip, name=name, role=role)
        pipe.execute()
    return token


def lookup(r: redis.Redis, token: str) -> Principal | None:
    """The principal for a token, or None when the token is unknown."""
    if not token:
        return None
    data = r.hmget(_key(token), ["name", "role"])
    if data[0] is None or data[1] is None:
        return None
    return Principal(name=data[0].decode(), role=data[1].decode())
