"""``/api/v1/incidents``: incidents and their timelines."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint, abort

from broadcaster.delivery import helpdesk_sync
from broadcaster.rendering.brief import brief, current_incidents
from broadcaster.services import services
from broadcaster.web.api import reading_schemas, schemas
from broadcaster.web.api.paging import page_links
from broadcaster.web.auth import require, requires
from broadcaster.web.confirmation_view import incident_confirmations
from broadcaster.web.hooks.alerts import events, incident_events
from broadcaster.web.hooks.inbound import replies

blp = Blueprint("incidents", __name__, url_prefix="/api/v1", description="Incidents")


@blp.route("/incidents")
class Incidents(MethodView):
    @requires("read")
    @blp.arguments(schemas.PageArgs, location="query")
    @blp.response(200, schemas.IncidentPage)
    def get(self, args: dict[str, int]) -> Any:
        """Incidents, most recently opened first."""
        require("read")
        page, per_page = args["page"], args["per_page"]
        total, items = services().announcements.incidents((page - 1) * per_page, per_page)
        body = {"items": items, "page": page, "per_page": per_page, "total": total}
        return body, 200, page_links(page, per_page, total)


@blp.route("/incidents/<incident_id>")
class Incident(MethodView):
    @requires("read")
    @blp.response(200, schemas.IncidentOut)
    def get(self, incident_id: str) -> dict[str, Any]:
        """One incident with its whole timeline, oldest announcement first."""
        principal = require("read")
        store = services().announcements
        incident = store.get_incident(incident_id)
        return {
            **incident,
            "timeline": store.timeline(incident_id),
            "confirmations": incident_confirmations(
                services(), incident_id, show_contacts=principal.may("subscribers")
            ),
            "monitoring": incident_events(services(), incident_id),
            "replies": replies(services().redis, incident_id),
            "helpdesks": helpdesk_sync.status(services(), incident_id),
        }


@blp.route("/incidents/<incident_id>/brief")
class Brief(MethodView):
    @requires("read")
    @blp.arguments(reading_schemas.BriefArgs, location="query")
    @blp.response(200, reading_schemas.BriefOut)
    def get(self, args: dict[str, Any], incident_id: str) -> dict[str, Any]:
        """What every agent should tell customers now, in every language, and whom to send where.

        ``?locale=nl``: the routes and what not to promise in Dutch, the Dutch reply first.
        """
        require("read")
        result = brief(services(), incident_id, _locale(args))
        if result is None:
            abort(409, message="nothing about this incident is published yet")
        return result


@blp.route("/incidents/current/brief")
class CurrentBrief(MethodView):
    @requires("read")
    @blp.arguments(reading_schemas.BriefArgs, location="query")
    @blp.response(200, reading_schemas.BriefOut)
    @blp.alt_response(404, description="No incident is open")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The brief of the incident agents need most now: the most severe open incident,
        the latest updated among equals; ``other_open`` lists the rest, most needed first.

        What a helpdesk sidebar or macro calls to show "current incident" and the reply to
        paste (docs/helpdesk.md).
        """
        require("read")
        svc = services()
        current = current_incidents(svc)
        for position, incident_id in enumerate(current):
            result = brief(svc, incident_id, _locale(args))
            if result is not None:
                return {**result, "other_open": current[:position] + current[position + 1 :]}
        abort(404, message="no incident is open: nothing to tell customers")


def _locale(args: dict[str, Any]) -> str:
    """The ``locale`` asked for: one of the plan's, else a 422 naming them."""
    plan = services().plan
    locale = args.get("locale") or plan.default_locale
    if locale not in plan.locales:
        abort(
            422,
            message=f"locale: unknown locale {locale!r}",
            errors={"locale": [f"the plan has: {', '.join(plan.locales)}"]},
        )
    return locale


@blp.route("/hooks/events")
class HookEvents(MethodView):
    @requires("read")
    @blp.arguments(schemas.PageArgs, location="query")
    @blp.response(200, schemas.HookEventPage)
    def get(self, args: dict[str, int]) -> Any:
        """Monitoring webhook deliveries, newest first: raw payload and what was done with it."""
        require("read")
        page, per_page = args["page"], args["per_page"]
        total, items = events(services(), (page - 1) * per_page, per_page)
        body = {"items": items, "page": page, "per_page": per_page, "total": total}
        return body, 200, page_links(page, per_page, total)
