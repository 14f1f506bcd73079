"""``/api/v1/maintenances``: plan a maintenance, read it, extend it, end it early, cancel it.

The shapes are checked here; the times, the plan's audiences, channels and components and
the texts by ``domain/maintenances.py`` and the announcement service; what happens when by
``delivery/maintenances.py``.
"""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from broadcaster.delivery import maintenances as driver
from broadcaster.domain import maintenances
from broadcaster.domain.incidents import SEVERITIES
from broadcaster.domain.maintenances import Maintenance
from broadcaster.services import services
from broadcaster.web.api import schemas
from broadcaster.web.api.paging import page_links
from broadcaster.web.auth import client_ip, require, requires

blp = Blueprint("maintenances", __name__, url_prefix="/api/v1", description="Scheduled maintenance")


class MaintenanceIn(Schema):
    """A maintenance: what, when, for whom, on which channels, reminded when."""

    title = fields.String(required=True, validate=schemas.TITLE)
    body = fields.String(required=True, validate=validate.Length(min=1))
    starts_at = fields.AwareDateTime(required=True, metadata={"description": "ISO 8601"})
    ends_at = fields.AwareDateTime(required=True, metadata={"description": "ISO 8601"})
    severity = fields.String(load_default="minor", validate=validate.OneOf(SEVERITIES))
    audiences = fields.List(fields.String(), required=True, validate=validate.Length(min=1))
    channels = fields.List(fields.String(), load_default=None)
    components = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)),
        load_default=list,
        metadata={"description": "components put under_maintenance while it runs"},
    )
    reminders_minutes_before = fields.List(
        fields.Float(allow_nan=False),
        load_default=list,
        metadata={"description": "e.g. [1440, 60]: a reminder a day and an hour before"},
    )
    translations = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(schemas.TranslationSchema),
        load_default=dict,
    )


class ExtendIn(Schema):
    ends_at = fields.AwareDateTime(required=True, metadata={"description": "the new end"})


class CancelIn(Schema):
    reason = fields.String(required=True, validate=[validate.Length(min=1), schemas.not_blank])


class MaintenanceOut(Schema):
    id = fields.String()
    title = fields.String()
    body = fields.String()
    state = fields.String(metadata={"description": "scheduled, in_progress, completed, cancelled"})
    approval = fields.String(
        metadata={"description": "its first announcement: pending_approval, published, rejected"}
    )
    version = fields.Integer()
    starts_at = fields.Float()
    ends_at = fields.Float()
    severity = fields.String()
    audiences = fields.List(fields.String())
    channels = fields.List(fields.String())
    components = fields.List(fields.String())
    reminders_minutes_before = fields.List(fields.Float())
    reminded = fields.List(fields.Float())
    translations = fields.Dict()
    incident_id = fields.String(allow_none=True)
    announcement_id = fields.String(allow_none=True)
    started_at = fields.Float(allow_none=True)
    ended_at = fields.Float(allow_none=True)
    reason = fields.String(allow_none=True)
    author = fields.String()
    created_at = fields.Float()
    links = fields.Dict()


class MaintenancePage(Schema):
    items = fields.List(fields.Nested(MaintenanceOut))
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()


def shown(maintenance: Maintenance, announcement_id: str | None = None) -> dict[str, Any]:
    """The API's view of a maintenance (``announcement_id``: the one this request made)."""
    svc = services()
    first = maintenance.announcement_id
    approval = svc.announcements.get(first).state if first else "pending_approval"
    data = maintenance.to_dict()
    data["reminders_minutes_before"] = data.pop("reminders")
    links = {
        "self": url_for(
            "maintenances.MaintenanceItem", maintenance_id=maintenance.id, _external=True
        )
    }
    if maintenance.incident_id:
        links["incident"] = url_for(
            "incidents.Incident", incident_id=maintenance.incident_id, _external=True
        )
    if announcement_id:
        links["announcement"] = url_for(
            "announcements.Announcement", announcement_id=announcement_id, _external=True
        )
    return {**data, "approval": approval, "links": links}


def _epoch(data: dict[str, Any]) -> dict[str, Any]:
    return {
        **data,
        "starts_at": data["starts_at"].timestamp(),
        "ends_at": data["ends_at"].timestamp(),
    }


@blp.route("/maintenances")
class Maintenances(MethodView):
    @blp.arguments(MaintenanceIn)
    @blp.response(202, MaintenanceOut)
    @requires("draft")
    def post(self, data: dict[str, Any]) -> Any:
        """Plan a maintenance: announced once approved (as any announcement), reminded,
        in progress at ``starts_at`` and completed at ``ends_at`` by the workers."""
        principal = require("draft")
        planned, announcement = driver.create(services(), _epoch(data), principal, client_ip())
        body = shown(planned, announcement.id)
        return body, 202, {"Location": body["links"]["self"]}

    @requires("read")
    @blp.arguments(schemas.PageArgs, location="query")
    @blp.response(200, MaintenancePage)
    def get(self, args: dict[str, int]) -> Any:
        """Maintenances, the latest start first, a page at a time."""
        require("read")
        page, per_page = args["page"], args["per_page"]
        total, items = maintenances.page(services().redis, (page - 1) * per_page, per_page)
        body = {
            "items": [shown(m) for m in items],
            "page": page,
            "per_page": per_page,
            "total": total,
        }
        return body, 200, page_links(page, per_page, total)


@blp.route("/maintenances/<maintenance_id>")
class MaintenanceItem(MethodView):
    @requires("read")
    @blp.response(200, MaintenanceOut)
    def get(self, maintenance_id: str) -> Any:
        """One maintenance: its plan, where it stands, its incident."""
        require("read")
        return shown(maintenances.get(services().redis, maintenance_id))


@blp.route("/maintenances/<maintenance_id>/extend")
class Extend(MethodView):
    @blp.arguments(ExtendIn)
    @blp.response(200, MaintenanceOut)
    @blp.alt_response(409, description="The maintenance is over, or not yet approved")
    @requires("publish")
    def post(self, data: dict[str, Any], maintenance_id: str) -> Any:
        """Move the end later; an announcement says so on the maintenance's channels."""
        principal = require("publish")
        changed, announcement = driver.extend(
            services(), maintenance_id, data["ends_at"].timestamp(), principal, client_ip()
        )
        return shown(changed, announcement.id)


@blp.route("/maintenances/<maintenance_id>/complete")
class Complete(MethodView):
    @blp.response(200, MaintenanceOut)
    @blp.alt_response(409, description="The maintenance has not started, or is over")
    @requires("publish")
    def post(self, maintenance_id: str) -> Any:
        """End a maintenance in progress now, before its planned end; announced."""
        principal = require("publish")
        changed, announcement = driver.complete(services(), maintenance_id, principal, client_ip())
        return shown(changed, announcement.id)


@blp.route("/maintenances/<maintenance_id>/cancel")
class Cancel(MethodView):
    @blp.arguments(CancelIn)
    @blp.response(200, MaintenanceOut)
    @blp.alt_response(409, description="The maintenance is over, or not yet approved")
    @requires("publish")
    def post(self, data: dict[str, Any], maintenance_id: str) -> Any:
        """Call the maintenance off, with the reason, in the open."""
        principal = require("publish")
        changed, announcement = driver.cancel(
            services(), maintenance_id, data["reason"], principal, client_ip()
        )
        return shown(changed, announcement.id)
