"""Signed, expiring unsubscribe links, and the public pages they open.

``GET`` only shows a confirmation page (mail scanners follow links); ``POST`` opts out —
which is also what a mail client's one-click unsubscribe (RFC 8058) sends.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import time
from typing import Any

from flask import Blueprint, current_app, render_template, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from broadcaster.rendering.i18n import gettext_for
from broadcaster.services import services

bp = Blueprint("unsubscribe", __name__)

_SALT = "unsubscribe"
MAX_AGE = 180 * 24 * 3600  # links in old emails keep working for half a year


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=_SALT)


@functools.lru_cache(maxsize=8)
def _key(secret: str) -> bytes:
    # Derived once per secret: a link is made for every email, so signing must be cheap.
    return hmac.new(secret.encode(), b"unsubscribe-link-v2", hashlib.sha256).digest()


def _mac(secret: str, body: str) -> str:
    digest = hmac.new(_key(secret), body.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def link(secret: str, public_url: str, subscriber_id: str, channel: str = "email") -> str:
    """The unsubscribe URL for one person and channel: ``id.channel.issued.mac`` (HMAC)."""
    body = f"{subscriber_id}.{channel}.{int(time.time()):x}"
    return f"{public_url.rstrip('/')}/unsubscribe/{body}.{_mac(secret, body)}"


def read(secret: str, token: str, max_age: int = MAX_AGE) -> dict[str, str] | None:
    """The (subscriber, channel) a token names, or None if forged or expired."""
    parts = token.rsplit(".", 3)
    if len(parts) == 4:
        subscriber_id, channel, issued, mac = parts
        body = f"{subscriber_id}.{channel}.{issued}"
        if not hmac.compare_digest(mac, _mac(secret, body)):
            return None
        try:
            age = time.time() - int(issued, 16)
        except ValueError:
            return None
        return {"s": subscriber_id, "c": channel} if age <= max_age else None
    # Links mailed before the compact format (itsdangerous) keep working until they expire.
    try:
        data = _serializer(secret).loads(token, max_age=max_age)
    except BadSignature:
        return None
    return data if isinstance(data, dict) and "s" in data and "c" in data else None


def _page(state: str, locale: str, token: str, status: int = 200) -> tuple[str, int]:
    ctx: dict[str, Any] = {
        "_": gettext_for(locale),
        "locale": locale,
        "state": state,
        "token": token,
        "organisation": services().plan.organisation,
    }
    return render_template("public/unsubscribe.html", **ctx), status


def _locale(data: dict[str, str] | None) -> str:
    person = services().subscribers.get(data["s"]) if data else None
    return (person or {}).get("locale") or services().plan.default_locale


@bp.get("/unsubscribe/<token>")
def confirm(token: str):  # type: ignore[no-untyped-def]
    """Ask for confirmation; changes nothing."""
    data = read(current_app.config["SECRET_KEY"], token)
    if data is None:
        return _page("invalid", services().plan.default_locale, token, 400)
    return _page("confirm", _locale(data), token)


@bp.post("/unsubscribe/<token>")
def unsubscribe(token: str):  # type: ignore[no-untyped-def]
    """Opt the person out of the channel (idempotent)."""
    data = read(current_app.config["SECRET_KEY"], token)
    if data is None:
        return _page("invalid", services().plan.default_locale, token, 400)
    try:
        services().subscribers.set_opt_outs(data["s"], [data["c"]], opted_out=True)
    except KeyError:
        pass  # erased meanwhile: nothing left to send to
    if request.form.get("List-Unsubscribe") == "One-Click":
        return "", 204
    return _page("done", _locale(data), token)
