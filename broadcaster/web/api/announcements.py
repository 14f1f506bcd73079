"""``/api/v1/announcements``: create, read, what waits for approval, deliveries, approve,
reject, withdraw."""

from __future__ import annotations

from typing import Any

from flask import request, url_for
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from broadcaster.delivery import staff
from broadcaster.domain import announcement as model
from broadcaster.domain import idempotency as idem
from broadcaster.domain.ledger import STATES, Ledger, staff_ledger_id
from broadcaster.rendering.preview import preview
from broadcaster.services import services
from broadcaster.web.api import schemas
from broadcaster.web.auth import client_ip, require, requires

blp = Blueprint("announcements", __name__, url_prefix="/api/v1", description="Announcements")


def links(announcement_id: str, incident_id: str) -> dict[str, str]:
    return {
        "self": url_for("announcements.Announcement", announcement_id=announcement_id),
        "deliveries": url_for("announcements.Deliveries", announcement_id=announcement_id),
        "incident": url_for("incidents.Incident", incident_id=incident_id),
        "preview": url_for("announcements.Preview", announcement_id=announcement_id),
    }


def accepted(announcement_id: str, incident_id: str, state: str) -> dict[str, Any]:
    return {
        "id": announcement_id,
        "incident_id": incident_id,
        "state": state,
        "links": links(announcement_id, incident_id),
    }


def with_counts(announcement: model.Announcement) -> dict[str, Any]:
    counts = Ledger(services().redis, announcement.id).counts()
    for channel in announcement.channels:
        counts.setdefault(channel, dict.fromkeys(STATES, 0))
    return {
        **announcement.to_dict(),
        "deliveries": counts,
        # The brief staff got first: its own counts, never among the customers'.
        "staff": staff.status(services(), announcement),
        "links": links(announcement.id, announcement.incident_id),
    }


@blp.route("/announcements")
class Announcements(MethodView):
    @blp.arguments(schemas.AnnouncementIn)
    @blp.response(202, schemas.AcceptedSchema)
    @blp.alt_response(
        409, description="State conflict (e.g. correcting an unpublished announcement)"
    )
    @requires("draft")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Accept an announcement; publish and fan it out unless it needs approval.

        Send an ``Idempotency-Key`` header to make retries safe: the same key returns
        the same answer and never broadcasts twice.
        """
        principal = require("draft")
        svc = services()
        key = request.headers.get("Idempotency-Key", "").strip()
        guard = None
        if key:
            if len(key) > 255:
                abort(400, message="Idempotency-Key: at most 255 characters")
            guard = (idem.key_for(principal.name, key), idem.fingerprint(request.get_json()))
            try:
                done = idem.begin(svc.redis, *guard)
            except idem.IdempotencyConflict as exc:
                abort(409, message=str(exc))
            if done:
                original = svc.announcements.get(done["announcement_id"])
                return accepted(original.id, original.incident_id, done["state"])
        try:
            announcement = svc.announcements.create(
                data, principal, idempotency=guard, ip=client_ip()
            )
        except BaseException:
            if guard:
                idem.abandon(svc.redis, guard[0])  # let the client retry with the same key
            raise
        return accepted(announcement.id, announcement.incident_id, announcement.state)


@blp.route("/announcements/pending")
class Pending(MethodView):
    @requires("read")
    @blp.arguments(schemas.PageArgs, location="query")
    @blp.response(200, schemas.PendingPage)
    def get(self, args: dict[str, int]) -> dict[str, Any]:
        """Every announcement waiting for approval, newest first, a page at a time."""
        require("read")
        page, per_page = args["page"], args["per_page"]
        total, items = services().announcements.pending_page((page - 1) * per_page, per_page)
        return {
            "items": [{**a.to_dict(), "links": links(a.id, a.incident_id)} for a in items],
            "page": page,
            "per_page": per_page,
            "total": total,
        }


@blp.route("/announcements/<announcement_id>")
class Announcement(MethodView):
    @requires("read")
    @blp.response(200, schemas.AnnouncementOut)
    def get(self, announcement_id: str) -> dict[str, Any]:
        """The announcement with per-channel delivery counts."""
        require("read")
        return with_counts(services().announcements.get(announcement_id))


@blp.route("/announcements/<announcement_id>/deliveries")
class Deliveries(MethodView):
    @requires("read")
    @blp.arguments(schemas.DeliveryPageArgs, location="query")
    @blp.response(200, schemas.DeliveryPage)
    def get(self, args: dict[str, int], announcement_id: str) -> dict[str, Any]:
        """Per-recipient delivery records, paginated (``staff=true``: the staff brief's)."""
        require("read")
        services().announcements.get(announcement_id)  # 404 for an unknown id
        ledger = Ledger(
            services().redis,
            staff_ledger_id(announcement_id) if args["staff"] else announcement_id,
        )
        page, per_page = args["page"], args["per_page"]
        return {
            "items": ledger.page((page - 1) * per_page, per_page),
            "page": page,
            "per_page": per_page,
            "total": ledger.total(),
        }


@blp.route("/announcements/<announcement_id>/approve")
class Approve(MethodView):
    @requires("approve")
    @blp.response(200, schemas.AnnouncementOut)
    def post(self, announcement_id: str) -> dict[str, Any]:
        """Approve and publish a pending announcement (not by its author)."""
        principal = require("approve")
        approved = services().announcements.approve(announcement_id, principal, client_ip())
        return with_counts(approved)


@blp.route("/announcements/<announcement_id>/reject")
class Reject(MethodView):
    @requires("approve")
    @blp.arguments(schemas.RejectIn)
    @blp.response(200, schemas.AnnouncementOut)
    def post(self, data: dict[str, str], announcement_id: str) -> dict[str, Any]:
        """Reject a pending announcement with a reason (not by its author)."""
        principal = require("approve")
        rejected = services().announcements.reject(
            announcement_id, principal, data["reason"], client_ip()
        )
        return with_counts(rejected)


@blp.route("/announcements/<announcement_id>/withdraw")
class Withdraw(MethodView):
    @requires("withdraw")
    @blp.arguments(schemas.WithdrawIn)
    @blp.response(200, schemas.AnnouncementOut)
    @blp.alt_response(409, description="Not published, or withdrawn already")
    def post(self, data: dict[str, str], announcement_id: str) -> dict[str, Any]:
        """Withdraw a published announcement, in the open (admins).

        It leaves the banner and the status page's current view and stays in the public
        history marked "withdrawn" with the reason; nothing is deleted.
        """
        principal = require("withdraw")
        withdrawn = services().announcements.withdraw(
            announcement_id, principal, data["reason"], client_ip()
        )
        return with_counts(withdrawn)


@blp.route("/announcements/<announcement_id>/preview")
class Preview(MethodView):
    @requires("preview")
    @blp.response(200, schemas.PreviewOut)
    def get(self, announcement_id: str) -> dict[str, Any]:
        """Every channel × audience × locale rendering, measures, recipients and warnings."""
        require("preview")
        svc = services()
        return preview(svc, svc.announcements.get(announcement_id))


@blp.route("/preview")
class PreviewUnsaved(MethodView):
    @requires("preview")
    @blp.arguments(schemas.AnnouncementIn)
    @blp.response(200, schemas.PreviewOut)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Preview an announcement that is not saved: nothing is stored or sent."""
        principal = require("preview")
        svc = services()
        return preview(svc, svc.announcements.draft(data, principal))
