"""The public page a confirm link opens (the links: domain/confirm_links.py).

``GET`` only shows the question (mail scanners and link previews follow links); ``POST``
records the answer through ``confirmations.answer``, as an SMS reply would: "confirm"
(I got it) or "help" (call me). Answering again changes nothing: the page says so.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue

from broadcaster.domain.confirm_links import read
from broadcaster.domain.confirmations import answer
from broadcaster.domain.errors import NotFound
from broadcaster.rendering.i18n import gettext_for
from broadcaster.services import services
from broadcaster.web.gate import public

bp = Blueprint("confirm", __name__)

REASON = "the signed link in a person's own email; POST records only their own answer"
# What each button sends, read like a reply ("1" / "2").
_BODIES = {"confirm": "1", "help": "2"}


def _page(state: str, locale: str, token: str, title: str = "", status: int = 200) -> Any:
    ctx: dict[str, Any] = {
        "_": gettext_for(locale),
        "locale": locale,
        "state": state,
        "token": token,
        "title": title,
        "organisation": services().plan.organisation,
    }
    return render_template("public/confirm.html", **ctx), status


def _found(token: str) -> tuple[Any, str, str] | None:
    """(announcement, subscriber id, locale) the token names, or None."""
    names = read(current_app.config["SECRET_KEY"], token)
    if names is None:
        return None
    svc = services()
    try:
        announcement = svc.announcements.get(names[0])
    except NotFound:
        return None
    person = svc.subscribers.get(names[1]) or {}
    return announcement, names[1], person.get("locale") or svc.plan.default_locale


@bp.get("/confirm/<token>")
@public(REASON)
def ask(token: str) -> ResponseReturnValue:
    """Ask: confirm, or ask for help; changes nothing."""
    found = _found(token)
    if found is None:
        return _page("invalid", services().plan.default_locale, token, status=400)
    announcement, _, locale = found
    return _page("ask", locale, token, announcement.title)


@bp.post("/confirm/<token>")
@public(REASON)
def confirm(token: str) -> ResponseReturnValue:
    """Record the answer (idempotent)."""
    found = _found(token)
    if found is None:
        return _page("invalid", services().plan.default_locale, token, status=400)
    announcement, subscriber_id, locale = found
    choice = request.form.get("answer", "confirm")
    if choice not in _BODIES:
        return _page("ask", locale, token, announcement.title, status=422)
    kind = answer(services(), announcement, subscriber_id, "email", _BODIES[choice])
    if kind is None:
        return _page("nothing", locale, token, announcement.title, status=404)
    return _page(kind, locale, token, announcement.title)
