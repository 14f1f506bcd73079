"""The admin pages: server-rendered forms for support leads (sign-in, compose, approvals…)."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask

from broadcaster.web.admin import (  # noqa: F401  (modules register their routes)
    approvals,
    audit_log,
    compose,
    drills,
    home,
    incidents,
    monitoring,
    people,
    reports,
    signin,
    users,
    withdraw,
)
from broadcaster.web.admin.blueprint import bp
from broadcaster.web.sessions import LIFETIME_SECONDS


def init_app(app: Flask) -> None:
    """Register the admin pages and set the session cookie's safety flags."""
    app.config.update(
        # Secure wherever people reach us over https (a plain-http dev setup still works).
        SESSION_COOKIE_SECURE=str(app.config.get("PUBLIC_URL", "")).startswith("https://"),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="broadcaster_session",
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=LIFETIME_SECONDS),
        # A compose page may stay open through a long incident: the CSRF token lives as
        # long as the session instead of expiring after an hour.
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.register_blueprint(bp)
