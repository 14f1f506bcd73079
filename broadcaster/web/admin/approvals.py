"""``/admin/approvals``: announcements waiting for a second person; approve or reject.

Every pending item, newest first, a page at a time with the total: a flood of old drafts
must never hide a new submission. Each shows how long it has waited and what customers
will see of it in every language of the plan — banner line, SMS with its segments, email
subject (``rendering/customer_view.py``) — so the second person decides on the texts that
go out. The service refuses the author (Forbidden): the page shows that as 403, like the API.
"""

from __future__ import annotations

import time
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.errors import Conflict
from broadcaster.rendering import clock, isolation
from broadcaster.rendering.customer_view import customer_view
from broadcaster.services import services
from broadcaster.web.admin.blueprint import bp, render_items
from broadcaster.web.admin.forms import CSRF_FAILED, INVALID, csrf_failed
from broadcaster.web.admin.guard import principal, signed_in
from broadcaster.web.auth import client_ip

PER_PAGE = 20
MAX_PAGE = 1_000_000  # keeps the Redis offset a 64-bit integer


class ApproveForm(FlaskForm):
    pass


class RejectForm(FlaskForm):
    reason = TextAreaField(
        "Reason",
        validators=[
            DataRequired("Say why, so the author can fix it."),
            Length(max=2000),
        ],
    )


def _views(pending: list[Announcement]) -> dict[str, list[dict[str, Any]]]:
    """What customers will see of each item; one whose texts fail to render is left out
    (logged, counted): its item still shows, with its raw text and a warning."""
    svc = services()
    views = isolation.each(
        svc.redis,
        "admin.approvals.preview",
        pending,
        lambda a: (a.id, customer_view(svc, a)),
        lambda a: a.id,
    )
    return dict(views)


def _page(
    reject_forms: dict[str, RejectForm] | None = None, status: int = 200, page: int | None = None
) -> ResponseReturnValue:
    if page is None:
        page = min(max(1, request.args.get("page", 1, type=int) or 1), MAX_PAGE)
    total, pending = services().announcements.pending_page((page - 1) * PER_PAGE, PER_PAGE)
    forms = reject_forms or {}
    items = render_items(
        "admin.approvals",
        "admin/_pending_item.html",
        pending,
        lambda a: a.id,
        reject_forms={a.id: forms.get(a.id) or RejectForm(formdata=None) for a in pending},
        views=_views(pending),
        waited={a.id: clock.duration(time.time() - a.created_at) for a in pending},
    )
    return render_template(
        "admin/approvals.html",
        pending=pending,
        items=items,
        total=total,
        page=page,
        first=(page - 1) * PER_PAGE + 1,
        more=page * PER_PAGE < total,
    ), status


@bp.get("/approvals")
@signed_in("read")
def approvals() -> ResponseReturnValue:
    """Everything pending, newest first, paged; buttons for those who may decide."""
    return _page()


def _decided(exc: Conflict) -> ResponseReturnValue:
    # Someone else decided first: not an error of this person's, just news.
    flash(f"Not changed: {exc}.")
    return redirect(url_for("admin.approvals"), 303)


@bp.post("/approvals/<announcement_id>/approve")
@signed_in("approve")
def approve(announcement_id: str) -> ResponseReturnValue:
    """Publish a pending announcement (never the author's own: 403)."""
    form = ApproveForm()
    if not form.validate():
        abort(CSRF_FAILED, "The form's security token is missing or stale: reload the page.")
    try:
        approved = services().announcements.approve(announcement_id, principal(), client_ip())
    except Conflict as exc:  # someone decided first: say so, back to the list
        return _decided(exc)
    flash(f"Approved and published “{approved.title}”.")
    return redirect(url_for("admin.incident", incident_id=approved.incident_id), 303)


@bp.post("/approvals/<announcement_id>/reject")
@signed_in("approve")
def reject(announcement_id: str) -> ResponseReturnValue:
    """Reject a pending announcement; the reason is required and kept on it."""
    form = RejectForm()
    if not form.validate():
        if csrf_failed(form):
            abort(CSRF_FAILED, "The form's security token is missing or stale: reload the page.")
        # The page that holds this item, so its error shows next to it.
        position = services().announcements.pending_position(announcement_id) or 0
        return _page({announcement_id: form}, INVALID, position // PER_PAGE + 1)
    try:
        rejected = services().announcements.reject(
            announcement_id, principal(), form.reason.data.strip(), client_ip()
        )
    except Conflict as exc:
        return _decided(exc)
    flash(f"Rejected “{rejected.title}”; the reason is kept on it.")
    return redirect(url_for("admin.approvals"), 303)
