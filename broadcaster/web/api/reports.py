"""``/api/v1/incidents/{id}/report``: the post-incident report (JSON, or Markdown)."""

from __future__ import annotations

import time
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from broadcaster.rendering.report import markdown
from broadcaster.services import services
from broadcaster.web import report_facts
from broadcaster.web.auth import require, requires

blp = Blueprint("reports", __name__, url_prefix="/api/v1", description="Post-incident reports")


class ReportArgs(Schema):
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "md")))


class ReportOut(Schema):
    incident = fields.Dict()
    exercise = fields.Boolean(metadata={"description": "true for a drill"})
    drill_id = fields.String(allow_none=True)
    generated_at = fields.Float()
    timeline = fields.List(fields.Dict())
    metrics = fields.Dict()
    promises = fields.List(fields.Dict())
    announcements = fields.List(fields.Dict())
    deliveries = fields.Dict()
    replies = fields.Dict()
    review = fields.Dict()


@blp.route("/incidents/<incident_id>/report")
class Report(MethodView):
    @requires("read")
    @blp.arguments(ReportArgs, location="query")
    @blp.response(200, ReportOut)
    @blp.alt_response(
        200, description="?format=md: the report as Markdown", content_type="text/markdown"
    )
    def get(self, args: dict[str, str], incident_id: str) -> Any:
        """Timeline, metrics, deliveries per channel, replies and the team's review."""
        require("read")
        report = report_facts.report(services(), incident_id, time.time())
        if args["format"] == "md":
            return Response(markdown(report), mimetype="text/markdown")
        return report
