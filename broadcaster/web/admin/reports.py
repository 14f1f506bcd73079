"""``/admin/incidents/<id>/report``: the printable post-incident report, its pictures, and
the team's review (append-only: saving writes a new version)."""

from __future__ import annotations

import time
from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import Length

from broadcaster.domain import reviews
from broadcaster.domain.errors import Invalid
from broadcaster.rendering import report_svg
from broadcaster.rendering.report import seconds
from broadcaster.services import services
from broadcaster.web import report_facts
from broadcaster.web.admin.blueprint import bp
from broadcaster.web.admin.forms import CSRF_FAILED, INVALID, add_error, csrf_failed
from broadcaster.web.admin.guard import principal, signed_in
from broadcaster.web.auth import client_ip


class ReviewForm(FlaskForm):
    """The team's review; actions one per line as ``action | owner``."""

    went_well = TextAreaField("What went well", validators=[Length(max=reviews.SECTION_MAX)])
    went_badly = TextAreaField("What did not", validators=[Length(max=reviews.SECTION_MAX)])
    actions = TextAreaField(
        "Actions, one per line: action | owner", validators=[Length(max=reviews.SECTION_MAX)]
    )


def _actions(text: str) -> list[dict[str, str]]:
    rows = []
    for line in (text or "").splitlines():
        if line.strip():
            action, _, owner = line.partition("|")
            rows.append({"action": action.strip(), "owner": owner.strip()})
    return rows


def _page(incident_id: str, form: ReviewForm | None = None) -> str:
    report = report_facts.report(services(), incident_id, time.time())
    latest = report["review"]["latest"]
    if form is None:
        form = ReviewForm(formdata=None)
        if latest:  # a new version starts from the latest one
            form.went_well.data = latest["went_well"]
            form.went_badly.data = latest["went_badly"]
            form.actions.data = "\n".join(
                f"{a['action']} | {a['owner']}" for a in latest["actions"]
            )
    m: dict[str, Any] = report["metrics"]
    end = report["incident"]["resolved_at"] or report["generated_at"]
    return render_template(
        "admin/report.html",
        report=report,
        seconds=seconds,
        per_minute=report_svg.deliveries_per_minute(report["deliveries"]["per_minute"]),
        promises=report_svg.announcements_and_promises(
            m["started_at"], end, report["announcements"], report["promises"]
        ),
        form=form,
        versions=reviews.versions(services().redis, incident_id),
    )


@bp.get("/incidents/<incident_id>/report")
@signed_in("read")
def report(incident_id: str) -> ResponseReturnValue:
    """The post-incident report, printable."""
    return _page(incident_id)


@bp.post("/incidents/<incident_id>/review")
@signed_in("draft")
def review(incident_id: str) -> ResponseReturnValue:
    """Save the review as a new version (earlier versions stay)."""
    services().announcements.get_incident(incident_id)  # 404 for an unknown incident
    form = ReviewForm()
    if not form.validate():
        if csrf_failed(form):
            abort(CSRF_FAILED, "The form's security token is missing or stale: reload the page.")
        return _page(incident_id, form), INVALID
    data = {
        "went_well": form.went_well.data or "",
        "went_badly": form.went_badly.data or "",
        "actions": _actions(form.actions.data or ""),
    }
    try:
        saved = reviews.write(services().redis, incident_id, data, principal().person, client_ip())
    except Invalid as exc:
        for field, problems in exc.errors.items():
            name = field if field in ("went_well", "went_badly") else "actions"
            add_error(form, name, f"{field}: {problems[0]}" if name == "actions" else problems[0])
        return _page(incident_id, form), INVALID
    flash(f"Review saved as version {saved['version']}.")
    return redirect(url_for("admin.report", incident_id=incident_id, _anchor="review"), 303)
