"""``/admin/drills``: the plan's scenarios with a *Start drill* button, open drills with an
*End drill* button, and past drills with their key metrics and the trend."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import HiddenField

from broadcaster.domain.drills import DrillStore
from broadcaster.rendering import report_svg
from broadcaster.rendering.report import seconds
from broadcaster.services import services
from broadcaster.web import drill_history
from broadcaster.web.admin.blueprint import bp
from broadcaster.web.admin.forms import CSRF_FAILED
from broadcaster.web.admin.guard import principal, signed_in
from broadcaster.web.auth import client_ip
from broadcaster.web.hooks import drill_runner

SHOWN = 50


class DrillForm(FlaskForm):
    """Start a drill of a scenario, or end one (the CSRF token is what matters)."""

    scenario = HiddenField()


@bp.get("/drills")
@signed_in("read")
def drills() -> ResponseReturnValue:
    """Scenarios to run, and past drills with their metrics and trend."""
    svc = services()
    _, recent = DrillStore(svc.redis).page(0, SHOWN)
    history = drill_history.with_metrics(svc, recent)
    return render_template(
        "admin/drills.html",
        scenarios=list(svc.plan.drills.scenarios.values()) if svc.plan.drills else [],
        audiences=svc.plan.drills.audiences if svc.plan.drills else (),
        history=history,
        trend=report_svg.trend(list(reversed(history))),
        seconds=seconds,
        form=DrillForm(formdata=None),
    )


@bp.post("/drills")
@signed_in("approve")
def start_drill() -> ResponseReturnValue:
    """The *Start drill* button: the scenario's alert fires now; on to its incident."""
    form = DrillForm()
    if not form.validate():
        abort(CSRF_FAILED, "The form's security token is missing or stale: reload the page.")
    started = drill_runner.start(services(), form.scenario.data, principal(), client_ip())
    flash(f"Drill started: {started['outcome']}. Everything it sends is marked EXERCISE.")
    return redirect(url_for("admin.incident", incident_id=started["incident_id"]), 303)


@bp.post("/drills/<drill_id>/end")
@signed_in("approve")
def end_drill(drill_id: str) -> ResponseReturnValue:
    """The *End drill* button: the alert resolves, and the incident with it."""
    form = DrillForm()
    if not form.validate():
        abort(CSRF_FAILED, "The form's security token is missing or stale: reload the page.")
    ended = drill_runner.end(services(), drill_id, principal(), client_ip())
    flash("Drill ended: write the review on its report while it is fresh.")
    if ended["incident_id"]:
        return redirect(url_for("admin.report", incident_id=ended["incident_id"]), 303)
    return redirect(url_for("admin.drills"), 303)
