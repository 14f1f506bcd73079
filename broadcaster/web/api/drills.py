"""``/api/v1/drills``: run a drill of a plan scenario, end it, list past drills."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from broadcaster.domain.drills import DrillStore
from broadcaster.services import services
from broadcaster.web import drill_history
from broadcaster.web.api import schemas
from broadcaster.web.auth import client_ip, require, requires
from broadcaster.web.hooks import drill_runner

blp = Blueprint("drills", __name__, url_prefix="/api/v1", description="Drills")


class DrillIn(Schema):
    scenario = fields.String(
        required=True,
        validate=validate.Length(min=1, max=63),
        metadata={"description": "a scenario of the plan's [drills.scenarios]"},
    )


class DrillOut(Schema):
    id = fields.String()
    scenario = fields.String()
    description = fields.String()
    incident_id = fields.String(allow_none=True)
    started_at = fields.Float()
    started_by = fields.String()
    ended_at = fields.Float(allow_none=True)
    ended_by = fields.String(allow_none=True)
    resolve_after_minutes = fields.Integer(allow_none=True)
    outcome = fields.String(metadata={"description": "what monitoring did with its alert"})
    announcement_id = fields.String(allow_none=True)
    metrics = fields.Dict(
        metadata={"description": "key metrics of its post-incident report (in the list)"}
    )


class DrillPageArgs(schemas.PageArgs):
    # Each drill's metrics come from its whole report: a page is a few dozen, not thousands.
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class DrillPage(Schema):
    items = fields.List(fields.Nested(DrillOut))
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()


@blp.route("/drills")
class Drills(MethodView):
    @blp.arguments(DrillIn)
    @blp.response(201, DrillOut)
    @requires("approve")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Start a drill: the scenario's alert goes through the monitoring rules like a real
        one, but reaches only the plan's drill audiences, marked as an exercise."""
        principal = require("approve")
        return drill_runner.start(services(), data["scenario"], principal, client_ip())

    @requires("read")
    @blp.arguments(DrillPageArgs, location="query")
    @blp.response(200, DrillPage)
    def get(self, args: dict[str, int]) -> dict[str, Any]:
        """Past drills, newest first, with the key metrics of each one's report."""
        require("read")
        page, per_page = args["page"], args["per_page"]
        svc = services()
        total, items = DrillStore(svc.redis).page((page - 1) * per_page, per_page)
        items = drill_history.with_metrics(svc, items)
        return {"items": items, "page": page, "per_page": per_page, "total": total}


@blp.route("/drills/<drill_id>/end")
class EndDrill(MethodView):
    @requires("approve")
    @blp.response(200, DrillOut)
    def post(self, drill_id: str) -> dict[str, Any]:
        """End a drill: its alert resolves, and so does its incident."""
        principal = require("approve")
        return drill_runner.end(services(), drill_id, principal, client_ip())
