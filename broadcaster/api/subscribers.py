"""``/api/v1/subscribers``: bulk upsert with a per-row report, and a paginated list."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from broadcaster.api import schemas
from broadcaster.api.auth import require
from broadcaster.services import services
from broadcaster.subscribers import import_rows

blp = Blueprint("subscribers", __name__, url_prefix="/api/v1", description="Subscribers")

MAX_ROWS = 10_000


@blp.route("/subscribers")
class Subscribers(MethodView):
    @blp.response(200, schemas.ImportReport)
    @blp.alt_response(422, description="Every row was rejected; the report says why")
    def post(self) -> Any:
        """Upsert a list of subscribers (by external_id, else email, else phone).

        Body: a JSON list of ``{external_id?, email?, phone?, locale?, audiences, channels?}``
        (or ``{"subscribers": [...]}``). Answers with counts and every rejected row with
        its reasons.
        """
        require("subscribers")
        body = request.get_json(silent=True)
        if isinstance(body, dict) and "subscribers" in body:
            body = body["subscribers"]
        if not isinstance(body, list):
            abort(400, message='send a JSON list of subscribers (or {"subscribers": [...]})')
        if not body:
            abort(
                422, message="the list of subscribers is empty", errors={"subscribers": ["empty"]}
            )
        if len(body) > MAX_ROWS:
            abort(
                413,
                message=f"at most {MAX_ROWS} subscribers per request; use the CSV import for more",
            )
        svc = services()
        report = import_rows(enumerate(body), svc.plan, svc.subscribers)
        if report["created"] + report["updated"] == 0:
            return report, 422
        return report

    @blp.arguments(schemas.SubscriberPageArgs, location="query")
    @blp.response(200, schemas.SubscriberPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Subscribers, oldest first; ``?audience=`` narrows to one audience."""
        require("subscribers")
        svc = services()
        audience = args.get("audience")
        if audience and audience not in svc.plan.audiences:
            abort(
                422,
                message=f"audience: unknown audience {audience!r}",
                errors={"audience": [f"known: {', '.join(svc.plan.audiences)}"]},
            )
        page, per_page = args["page"], args["per_page"]
        store = svc.subscribers
        return {
            "items": store.page((page - 1) * per_page, per_page, audience),
            "page": page,
            "per_page": per_page,
            "total": store.count(audience),
        }
