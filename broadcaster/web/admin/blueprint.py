"""The admin blueprint, its HTML error pages and what every admin template can use."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, g, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from broadcaster.domain.errors import DomainError
from broadcaster.rendering import clock, isolation
from broadcaster.services import services
from broadcaster.web.errors import domain_message, status_for

bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    static_folder=str(Path(__file__).resolve().parents[2] / "static" / "admin"),
    static_url_path="/static",
)


def render_items(
    surface: str, template: str, items: Iterable[Any], name: Callable[[Any], str], **context: Any
) -> list[Markup]:
    """Each item of a list page rendered on its own partial ``template`` (as ``item``).

    An item that fails to render, or whose text a page could not send, is left out, logged
    and counted (rendering/isolation.py): the page shows the rest and answers 200.
    """

    def one(item: Any) -> Markup:
        html = render_template(template, item=item, **context)
        html.encode()  # what the page could not send fails here, costing this item only
        return Markup(html)

    return isolation.each(services().redis, surface, items, one, name)


@bp.errorhandler(HTTPException)
def _error(exc: HTTPException) -> ResponseReturnValue:
    """People get a page, not JSON: what went wrong and where to go."""
    code = exc.code or 500
    return render_template("admin/error.html", code=code, message=exc.description), code


@bp.errorhandler(DomainError)
def _refused(exc: DomainError) -> ResponseReturnValue:
    """A domain refusal (not found, not allowed, conflict) as a page, with its one status."""
    code = status_for(exc)
    return render_template("admin/error.html", code=code, message=domain_message(exc)), code


def admin_locale() -> str:
    """The locale admin pages format times in: the browser's best match among the plan's
    locales, else the plan's default (the pages' words stay English)."""
    plan = services().plan
    return request.accept_languages.best_match(plan.locales) or plan.default_locale


@bp.app_template_filter("when")
def when(value: float | str | None) -> Markup:
    """A time (Unix seconds or ISO 8601) as admin pages show it: ``<time>``, plan zone."""
    return clock.time_element(value, admin_locale(), services().plan.timezone)


def zone_note() -> str:
    """The page's one line naming the plan's time zone."""
    return clock.zone_note(admin_locale(), services().plan.timezone)


# (endpoint, label, permission) of the pages in the top navigation, in order.
NAV: list[tuple[str, str, str]] = [
    ("admin.home", "Now", "read"),
    ("admin.compose", "Compose", "draft"),
    ("admin.incidents", "Incidents", "read"),
    ("admin.approvals", "Approvals", "read"),
    ("admin.subscribers", "Subscribers", "subscribers"),
    ("admin.monitoring", "Monitoring", "read"),
    ("admin.drills", "Drills", "read"),
    ("admin.audit_log", "Audit", "audit"),
    ("admin.users", "Users", "users"),
]


def admin_nav() -> list[tuple[str, str]]:
    """The navigation entries the signed-in person may open."""
    who = g.get("principal")
    return [
        (endpoint, label)
        for endpoint, label, permission in NAV
        if who and who.may(permission) and endpoint in current_app.view_functions
    ]


@bp.context_processor
def _who() -> dict[str, Any]:
    return {
        "me": g.get("user"),
        "principal": g.get("principal"),
        "admin_nav": admin_nav,
        "zone_note": zone_note,
        # Forms check it (FlaskForm); page scripts send it as X-CSRFToken to the API.
        "csrf_token": generate_csrf,
    }
