"""How often one caller may call the monitoring hooks: a token bucket per token in Redis.

Each token (or, for the generic hook, the shared HMAC secret) has its own bucket of
``HOOKS_RATE_LIMIT`` requests, refilled over ``HOOKS_RATE_WINDOW`` seconds, shared by every
web process (``delivery/ratelimit.py``'s bucket, one Lua call). A caller over its rate gets
429 with ``Retry-After`` in the one JSON error shape; other tokens are unaffected. The
defaults (120 per 60 s) let a real Alertmanager through: it sends at most one notification
per alert group per ``group_interval`` (an HA pair twice), so even a burst of 120 groups
flushing at once passes, while a script sending hundreds a second is stopped at the door.
"""

from __future__ import annotations

import hashlib

from flask import current_app, request
from werkzeug.exceptions import TooManyRequests

from broadcaster.delivery.ratelimit import Limiter
from broadcaster.infra import metrics
from broadcaster.services import services


def presented_token() -> str:
    """The token a monitoring tool sent: as Bearer, or as the Basic-auth password; "" if none."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    if request.authorization and request.authorization.type == "basic":
        return request.authorization.password or ""
    return ""


def caller() -> str:
    """Who is calling, as a bucket name: a hash of the token, never the token itself."""
    token = presented_token()
    if not token:  # authorised without a token: the HMAC signature, one shared secret
        return "hooks:signed"
    return "hooks:token:" + hashlib.sha256(token.encode()).hexdigest()[:32]


def check(source: str) -> None:
    """Raise 429 (with ``Retry-After``) when this caller is over its rate; call after auth."""
    limit = float(current_app.config.get("HOOKS_RATE_LIMIT") or 0)
    window = float(current_app.config.get("HOOKS_RATE_WINDOW") or 0)
    if limit <= 0 or window <= 0:  # 0 turns the limit off
        return
    r = services().redis
    wait = Limiter(r, caller(), rate=limit / window, capacity=limit).try_take()
    if wait <= 0:
        return
    metrics.count(r, "hooks_throttled", source)
    retry_after = max(1, int(wait + 0.999))  # whole seconds, never 0: "now" would be a lie
    raise TooManyRequests(
        description=(
            f"too many requests for this token: at most {limit:g} per {window:g} s; "
            f"try again in {retry_after} s"
        ),
        retry_after=retry_after,
    )
