"""``/admin``: what needs attention now — open incidents and announcements awaiting approval."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from broadcaster.delivery import breaker
from broadcaster.domain import promises
from broadcaster.domain.incident_facts import closed_at
from broadcaster.rendering.countdown import countdown, overdue
from broadcaster.services import services
from broadcaster.web.admin.approvals import PER_PAGE
from broadcaster.web.admin.blueprint import bp
from broadcaster.web.admin.guard import signed_in


@bp.get("/")
@signed_in("read")
def home() -> ResponseReturnValue:
    """The start page after sign-in."""
    store = services().announcements
    _, incidents = store.incidents(0, 20)
    open_incidents = [i for i in incidents if not closed_at(i)]  # resolved or withdrawn
    # The update each open incident promised, counting down (and overdue once it passed).
    promised = {}
    for incident, timeline in store.with_timelines([i["id"] for i in open_incidents]):
        standing = promises.standing(incident, [a for a in timeline if a.standing])
        if standing and standing.next_update_at:
            promised[incident["id"]] = standing.next_update_at
    # Providers marked down by the circuit breaker: their messages wait, people should know.
    down = {
        provider: state
        for provider, state in breaker.status(services().redis).items()
        if state["state"] != "closed"
    }
    # The newest page of the Approvals page, so each link below lands on its item there.
    waiting, pending = store.pending_page(0, PER_PAGE)
    return render_template(
        "admin/home.html",
        open_incidents=open_incidents,
        pending=pending,
        waiting=waiting,
        providers_down=down,
        promised=promised,
        countdown=countdown,
        overdue=overdue,
    )
