"""The public pages an unsubscribe link opens (the links: domain/unsubscribe_links.py).

``GET`` only shows a confirmation page (mail scanners follow links); ``POST`` opts out —
which is also what a mail client's one-click unsubscribe (RFC 8058) sends.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue

from broadcaster.domain.unsubscribe_links import read
from broadcaster.rendering.i18n import gettext_for
from broadcaster.services import services

bp = Blueprint("unsubscribe", __name__)


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
def confirm(token: str) -> ResponseReturnValue:
    """Ask for confirmation; changes nothing."""
    data = read(current_app.config["SECRET_KEY"], token)
    if data is None:
        return _page("invalid", services().plan.default_locale, token, 400)
    return _page("confirm", _locale(data), token)


@bp.post("/unsubscribe/<token>")
def unsubscribe(token: str) -> ResponseReturnValue:
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
