"""``/admin/monitoring``: recent monitoring webhook events and which plan rule they matched.

Each event keeps the description of the rule that acted on it (``rule``), recorded when it
arrived, so a later plan change does not rewrite history.
"""

from __future__ import annotations

from flask import render_template, request
from flask.typing import ResponseReturnValue

from broadcaster.services import services
from broadcaster.web.admin.blueprint import bp
from broadcaster.web.admin.guard import signed_in
from broadcaster.web.hooks.alerts import events

PER_PAGE = 50


@bp.get("/monitoring")
@signed_in("read")
def monitoring() -> ResponseReturnValue:
    """Newest first, a page at a time."""
    svc = services()
    page = max(1, request.args.get("page", 1, type=int) or 1)
    total, items = events(svc, (page - 1) * PER_PAGE, PER_PAGE)
    return render_template(
        "admin/monitoring.html",
        events=items,
        page=page,
        more=page * PER_PAGE < total,
        total=total,
    )
