"""Who is calling the API: a Bearer token, or a person signed in to the admin pages.

A signed-in browser sends its session cookie; for anything but GET it must also send the
page's CSRF token in ``X-CSRFToken``, so another site cannot post with that cookie.

Each API route declares ``@requires(permission)``: the gate (``web/gate.py``) runs it
before the body is parsed — 401 without valid credentials, then 403 without the
permission — and the view's own ``require(permission)`` hands it the principal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import g, request
from flask_smorest import abort
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms import ValidationError

from broadcaster.domain.tokens import Principal, lookup
from broadcaster.services import services
from broadcaster.web import sessions
from broadcaster.web.gate import authenticated_by

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
View = TypeVar("View")


def _from_session() -> Principal | None:
    principal = sessions.current_principal(services().redis)
    if principal and request.method not in SAFE_METHODS:
        try:
            validate_csrf(request.headers.get("X-CSRFToken", ""))
        except (ValidationError, CSRFError) as exc:
            abort(403, message=f"CSRF check failed: {exc}; reload the page")
    return principal


def authenticate() -> Principal:
    """The calling principal (also in ``g.principal``); aborts 401 without valid credentials.

    Reads headers and the session cookie only, never the body.
    """
    if g.get("principal") is not None:
        return g.principal  # the gate authenticated this request already
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            abort(401, message="send an API token: 'Authorization: Bearer <token>'")
        principal = lookup(services().redis, token.strip())
        if principal is None:
            abort(401, message="unknown or revoked API token")
    else:
        principal = _from_session()
        if principal is None:
            abort(401, message="send an API token: 'Authorization: Bearer <token>'")
    g.principal = principal
    return principal


def require(permission: str) -> Principal:
    """The calling principal; aborts 401 without valid credentials, 403 without the permission."""
    principal = authenticate()
    if not principal.may(permission):
        abort(403, message=f"role {principal.role!r} may not {permission}")
    return principal


def requires(permission: str) -> Callable[[View], View]:
    """Declare an API route (or one method of it): token or session, then ``permission``."""

    def check() -> None:
        require(permission)

    return authenticated_by(f"token or session, {permission}", check)


def client_ip() -> str:
    """The caller's address, for the audit log."""
    return request.remote_addr or "unknown"
