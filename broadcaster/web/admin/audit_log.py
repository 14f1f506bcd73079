"""``/admin/audit``: the append-only audit log, filterable by incident, person and action."""

from __future__ import annotations

from flask import render_template, request
from flask.typing import ResponseReturnValue

from broadcaster.domain import audit
from broadcaster.services import services
from broadcaster.web.admin.blueprint import bp
from broadcaster.web.admin.guard import signed_in

PER_PAGE = 50


@bp.get("/audit")
@signed_in("audit")
def audit_log() -> ResponseReturnValue:
    """Newest first; page on with ``before`` (the id of the last entry shown)."""
    filters = {
        name: (request.args.get(name) or "").strip() or None
        for name in ("incident_id", "actor", "action")
    }
    if filters["action"] not in (None, *audit.ACTIONS):
        filters["action"] = None
    before = request.args.get("before") or None
    if before and not all(part.isdigit() for part in before.split("-", 1)):
        before = None  # a stream id or nothing: never a Redis error page
    items = audit.entries(services().redis, limit=PER_PAGE, before=before, **filters)
    older = items[-1]["id"] if len(items) == PER_PAGE else None
    active = {k: v for k, v in filters.items() if v}
    return render_template(
        "admin/audit.html",
        items=items,
        filters=filters,
        actions=audit.ACTIONS,
        older={**active, "before": older} if older else None,
        newest=active if before else None,
    )
