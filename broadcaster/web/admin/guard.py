"""Admin page access: signed in, with the permission the page needs."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, g, redirect, request, url_for

from broadcaster.domain.principals import Principal
from broadcaster.domain.users import get_user
from broadcaster.services import services
from broadcaster.web import sessions


def signed_in(permission: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Send strangers to the sign-in page and refuse (403) who lacks ``permission``."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            r = services().redis
            email = sessions.current_email(r)
            user = get_user(r, email) if email else None
            if user is None:
                return redirect(url_for("admin.signin", next=request.full_path.rstrip("?")))
            g.user = user
            g.principal = user.principal
            if not user.principal.may(permission):
                abort(403, f"Your role ({user.role}) may not {permission}.")
            return view(*args, **kwargs)

        return guarded

    return decorate


def principal() -> Principal:
    """The signed-in principal of the current admin request."""
    return g.principal
