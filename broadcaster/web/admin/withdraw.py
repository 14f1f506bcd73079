"""Withdraw a published announcement from its incident page (admins), with a reason.

The page posts the reason with the form's CSRF token; the service does the rest (the
banner and the status page's current view lose it, the history keeps it, marked). A
missing reason shows the incident page again with the error next to the form (422).
"""

from __future__ import annotations

from flask import abort, flash, redirect, url_for
from flask.typing import ResponseReturnValue

from broadcaster.domain.errors import Conflict
from broadcaster.services import services
from broadcaster.web.admin.blueprint import bp
from broadcaster.web.admin.forms import CSRF_FAILED, INVALID, WithdrawForm, csrf_failed
from broadcaster.web.admin.guard import principal, signed_in
from broadcaster.web.admin.incidents import incident_page
from broadcaster.web.auth import client_ip


@bp.post("/announcements/<announcement_id>/withdraw")
@signed_in("withdraw")
def withdraw(announcement_id: str) -> ResponseReturnValue:
    """Withdraw a published announcement; back to its incident page."""
    form = WithdrawForm()
    svc = services()
    announcement = svc.announcements.get(announcement_id)  # 404 for an unknown id
    if not form.validate():
        if csrf_failed(form):
            abort(CSRF_FAILED, "The form's security token is missing or stale: reload the page.")
        return incident_page(announcement.incident_id, {announcement_id: form}), INVALID
    try:
        withdrawn = svc.announcements.withdraw(
            announcement_id, principal(), form.reason.data.strip(), client_ip()
        )
    except Conflict as exc:  # withdrawn by someone else first: news, not an error
        flash(f"Not changed: {exc}.")
    else:
        flash(f"Withdrew “{withdrawn.title}”: the public sees it marked, with your reason.")
    return redirect(
        url_for("admin.incident", incident_id=announcement.incident_id, _anchor=announcement_id),
        303,
    )
