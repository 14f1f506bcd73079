"""API tokens: random secrets stored only as SHA-256 hashes, each with a name and a role.

A token may belong to a user (``user``: their email): it then acts as that person, so
four eyes see through ``alice-laptop`` to Alice. A token without a user is its own person.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time

import redis

from broadcaster.domain import audit
from broadcaster.domain.principals import PERMISSIONS, ROLES, Principal, grants_no_more
from broadcaster.domain.users import creators_from, get_user

# Principal, roles and permissions stay importable from here, where callers found them.
__all__ = ["PERMISSIONS", "ROLES", "Principal", "TokenError", "create_token", "lookup"]


class TokenError(ValueError):
    """The token cannot be created as asked (bad name or role, unknown user)."""


def _key(token: str) -> str:
    return "bc:token:" + hashlib.sha256(token.encode()).hexdigest()


def create_token(
    r: redis.Redis,
    name: str,
    role: str | None,
    created_by: str = "cli",
    ip: str | None = None,
    user: str | None = None,
) -> str:
    """Create a token and return it; only its hash is kept. The audit log records who made it.

    With ``user`` the token acts as that person: it must exist, and the role (default: the
    user's) may grant nothing the user's own role does not.
    """
    if not name.strip():
        raise TokenError("name must not be empty")
    fields: dict[str, str | float] = {
        "created_at": time.time(),
        "creators": json.dumps(creators_from(r, created_by)),
    }
    if user is not None:
        person = get_user(r, user)
        if person is None:
            raise TokenError(f"no user {user!r}; create it first with 'broadcaster user create'")
        role = role or person.role
        if role in ROLES and not grants_no_more(role, person.role):
            raise TokenError(
                f"a token may not do more than its person: {person.email} is {person.role}, "
                f"so not {role}"
            )
        fields["user"] = person.email
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    token = "bct_" + secrets.token_urlsafe(32)
    details = {"name": name, "role": role} | ({"user": fields["user"]} if user else {})
    with r.pipeline(transaction=True) as pipe:
        pipe.hset(_key(token), mapping={"name": name, "role": role, **fields})
        audit.record(pipe, created_by, "token.created", ip=ip, **details)
        pipe.execute()
    return token


def lookup(r: redis.Redis, token: str) -> Principal | None:
    """The principal for a token, or None when the token (or the user it belongs to) is unknown."""
    if not token:
        return None
    data = r.hmget(_key(token), ["name", "role", "user", "created_at", "creators"])
    if data[0] is None or data[1] is None:
        return None
    name, role = data[0].decode(), data[1].decode()
    if data[2] is not None:
        person = get_user(r, data[2].decode())
        # The token acts for its person: without them, or above their role as it is now, it
        # is as good as revoked.
        if person is None or not grants_no_more(role, person.role):
            return None
        return person.principal_as(name, role)
    return Principal(
        name=name,
        role=role,
        since=float(data[3]) if data[3] is not None else None,
        creators=tuple(json.loads(data[4])) if data[4] is not None else (),
    )
