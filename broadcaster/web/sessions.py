"""Signed-in sessions kept in Redis, so signing out (or an admin) really ends them.

The cookie holds only a random session id; who it belongs to lives in Redis with a TTL.
"""

from __future__ import annotations

import secrets

import redis
from flask import session

from broadcaster.domain.principals import Principal
from broadcaster.domain.users import get_user

LIFETIME_SECONDS = 12 * 3600  # one long incident shift


def _key(session_id: str) -> str:
    return f"bc:session:{session_id}"


def start(r: redis.Redis, email: str) -> None:
    """Begin a fresh session for ``email`` (a new id: no fixation of an earlier one)."""
    session.clear()
    session_id = secrets.token_urlsafe(32)
    r.set(_key(session_id), email, ex=LIFETIME_SECONDS)
    session["sid"] = session_id
    session.permanent = True


def end(r: redis.Redis) -> None:
    """Forget the session here and in Redis."""
    session_id = session.pop("sid", None)
    if session_id:
        r.delete(_key(session_id))
    session.clear()


def current_email(r: redis.Redis) -> str | None:
    """The signed-in person's email, or None."""
    session_id = session.get("sid")
    if not session_id:
        return None
    email = r.get(_key(session_id))
    return email.decode() if email else None


def current_principal(r: redis.Redis) -> Principal | None:
    """The signed-in person as a principal with their role as stored now, or None."""
    email = current_email(r)
    user = get_user(r, email) if email else None
    return user.principal if user else None
