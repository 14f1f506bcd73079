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
from broadcaster.web.api import reading_schemas, schemas
from broadcaster.web.api.paging import encode_cursor, next_link, page_links
from broadcaster.web.auth import client_ip, require, requires

blp = Blueprint("announcements", __name__, url_prefix="/api/v1", description="Announcements")


def links(announcement_id: str, incident_id: str) -> dict[str, str]:
    """Absolute URLs: a client follows them as they are, whatever its base."""
    return {
        "self": url_for(
            "announcements.Announcement", announcement_id=announcement_id, _external=True
        ),
        "deliveries": url_for(
            "announcements.Deliveries", announcement_id=announcement_id, _external=True
        ),
        "incident": url_for("incidents.Incident", incident_id=incident_id, _external=True),
        "preview": url_for(
            "announcements.Preview", announcement_id=announcement_id, _external=True
        ),
    }


def created(body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
    """202 with the new announcement's absolute URL in ``Location``."""
    return body, 202, {"Location": body["links"]["self"]}


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
    def post(self, data: dict[str, Any]) -> Any:
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
            except idem.KeyReused as exc:
                # As the IETF Idempotency-Key draft says: the same key for another payload.
                abort(422, message=str(exc))
            except idem.StillInProgress as exc:
                abort(409, message=str(exc), headers={"Retry-After": str(exc.retry_after)})
            if done:
                original = svc.announcements.get(done["announcement_id"])
                return created(accepted(original.id, original.incident_id, done["state"]))
        try:
            announcement = svc.announcements.create(
                data, principal, idempotency=guard, ip=client_ip()
            )
        except BaseException:
            if guard:
                idem.abandon(svc.redis, guard[0])  # let the client retry with the same key
            raise
        return created(accepted(announcement.id, announcement.incident_id, announcement.state))


@blp.route("/announcements/pending")
class Pending(MethodView):
    @requires("read")
    @blp.arguments(schemas.PageArgs, location="query")
    @blp.response(200, schemas.PendingPage)
    def get(self, args: dict[str, int]) -> Any:
        """Every announcement waiting for approval, newest first, a page at a time."""
        require("read")
        page, per_page = args["page"], args["per_page"]
        total, items = services().announcements.pending_page((page - 1) * per_page, per_page)
        body = {
            "items": [{**a.to_dict(), "links": links(a.id, a.incident_id)} for a in items],
            "page": page,
            "per_page": per_page,
            "total": total,
        }
        return body, 200, page_links(page, per_page, total)


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
    def get(self, args: dict[str, Any], announcement_id: str) -> Any:
        """Per-recipient delivery records, by channel and recipient, a page at a time.

        ``channel`` and ``state`` filter (``?state=failed``); follow the ``Link`` header
        (or pass ``next_cursor`` as ``cursor``) for the next page. ``staff=true``: the
        records of the brief staff got first.
        """
        require("read")
        services().announcements.get(announcement_id)  # 404 for an unknown id
        ledger = Ledger(
            services().redis,
            staff_ledger_id(announcement_id) if args["staff"] else announcement_id,
        )
        per_page, channel, state = args["per_page"], args["channel"], args["state"]
        if channel or state or args["cursor"]:
            items, after = ledger.scan(args["cursor"], per_page, channel, state)
            cursor = encode_cursor(after) if after else None
            body = {
                "items": items,
                "page": None,
                "per_page": per_page,
                "total": matching(ledger.counts(), channel, state),
                "next_cursor": cursor,
            }
            return body, 200, next_link(cursor=cursor) if cursor else {}
        page = args["page"]
        total = ledger.total()
        items = ledger.page((page - 1) * per_page, per_page)
        # Offset pages for the first look; the cursor from the end of this one on.
        last = items[-1] if items and page * per_page < total else None
        body = {
            "items": items,
            "page": page,
            "per_page": per_page,
            "total": total,
            "next_cursor": encode_cursor(f"{last['channel']}:{last['subscriber_id']}")
            if last
            else None,
        }
        return body, 200, page_links(page, per_page, total)


def matching(counts: dict[str, dict[str, int]], channel: str | None, state: str | None) -> int:
    """How many records a channel and/or state filter selects, from the ledger's counts."""
    return sum(
        n
        for name, by_state in counts.items()
        if channel in (None, name)
        for s, n in by_state.items()
        if state in (None, s)
    )


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
    @blp.response(200, reading_schemas.PreviewOut)
    def get(self, announcement_id: str) -> dict[str, Any]:
        """Every channel × audience × locale rendering, measures, recipients and warnings."""
        require("preview")
        svc = services()
        return preview(svc, svc.announcements.get(announcement_id))


@blp.route("/preview")
class PreviewUnsaved(MethodView):
    @requires("preview")
    @blp.arguments(schemas.AnnouncementIn)
    @blp.response(200, reading_schemas.PreviewOut)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Preview an announcement that is not saved: nothing is stored or sent."""
        principal = require("preview")
        svc = services()
        return preview(svc, svc.announcements.draft(data, principal))
