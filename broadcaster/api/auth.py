"""Bearer-token authentication and role checks for the API."""

from __future__ import annotations

from flask import g, request
from flask_smorest import abort

from broadcaster.services import services
from broadcaster.tokens import Principal, lookup


def require(permission: str) -> Principal:
    """The calling principal; aborts 401 without a valid token, 403 without the permission."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        abort(401, message="send an API token: 'Authorization: Bearer <token>'")
    principal = lookup(services().redis, token.strip())
    if principal is None:
        abort(401, message="unknown or revoked API token")
    if not principal.may(permission):
        abort(403, message=f"role {principal.role!r} may not {permission}")
    g.principal = principal
    return principal
