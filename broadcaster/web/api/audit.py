"""``/api/v1/audit``: the append-only audit log, for admins. Read-only by design."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from broadcaster.domain import audit
from broadcaster.services import services
from broadcaster.web.api import schemas
from broadcaster.web.api.paging import next_link
from broadcaster.web.auth import require, requires

blp = Blueprint("audit", __name__, url_prefix="/api/v1", description="Audit log")


@blp.route("/audit")
class Audit(MethodView):
    @requires("audit")
    @blp.arguments(schemas.AuditArgs, location="query")
    @blp.response(200, schemas.AuditPage)
    def get(self, args: dict[str, Any]) -> Any:
        """Who did what, when and from where: newest first, filterable by incident and person.

        Entries cannot be changed or deleted; page on with ``before=<next_before>``.
        """
        require("audit")
        items = audit.entries(
            services().redis,
            limit=args["limit"],
            before=args["before"],
            incident_id=args["incident_id"],
            actor=args["actor"],
            action=args["action"],
        )
        full = len(items) == args["limit"]
        before = items[-1]["id"] if full and items else None
        body = {"items": items, "next_before": before}
        return body, 200, next_link(before=before) if before else {}
