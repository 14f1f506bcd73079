"""``/admin/incidents``: open and recent incidents; one incident's timeline and deliveries."""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask.typing import ResponseReturnValue

from broadcaster.delivery import helpdesk_sync
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.drills import DrillStore
from broadcaster.domain.incident_facts import closed_at
from broadcaster.domain.ledger import STATES, Ledger
from broadcaster.rendering.brief import brief
from broadcaster.rendering.clock import parse
from broadcaster.rendering.countdown import countdown, overdue
from broadcaster.services import services
from broadcaster.web.admin.blueprint import bp, render_items
from broadcaster.web.admin.forms import WithdrawForm
from broadcaster.web.admin.guard import principal, signed_in
from broadcaster.web.confirmation_view import incident_confirmations
from broadcaster.web.hooks.alerts import incident_events
from broadcaster.web.hooks.inbound import replies

RECENT = 100
FAILED_SHOWN = 50  # per announcement: enough to see the pattern, not a data dump
SCAN_CHUNK = 500
SCAN_MAX = 20_000  # delivery records read to find failures on one page view
FAILED_STATES = ("failed", "undelivered", "bounced", "dropped")  # provider said no, for good
# Columns of the counts table: the states an announcement's deliveries usually reach.
COLUMNS = ("queued", "sending", "sent", "delivered", "failed", "skipped")


@bp.get("/incidents")
@signed_in("read")
def incidents() -> ResponseReturnValue:
    """Open incidents first, then the recently resolved ones."""
    _, recent = services().announcements.incidents(0, RECENT)
    return render_template(
        "admin/incidents.html",
        # Wholly withdrawn is closed too: nothing of it stands (domain/incident_facts.py).
        open_incidents=[i for i in recent if not closed_at(i)],
        resolved=[i for i in recent if closed_at(i)],
    )


def failures(ledger: Ledger, failed: int) -> list[dict[str, Any]]:
    """Up to FAILED_SHOWN failed deliveries with the provider's reason."""
    found: list[dict[str, Any]] = []
    offset = 0
    # The ledger has no index by state; read pages only when the counts say something failed.
    while failed and len(found) < min(failed, FAILED_SHOWN) and offset < SCAN_MAX:
        page = ledger.page(offset, SCAN_CHUNK)
        if not page:
            break
        found.extend(r for r in page if r["state"] in FAILED_STATES)
        offset += SCAN_CHUNK
    return found[:FAILED_SHOWN]


def _counts(announcement: Announcement) -> tuple[dict[str, dict[str, int]], list[dict]]:
    ledger = Ledger(services().redis, announcement.id)
    counts = ledger.counts()
    for channel in announcement.channels:
        counts.setdefault(channel, dict.fromkeys(STATES, 0))
    failed = sum(c.get(s, 0) for c in counts.values() for s in FAILED_STATES)
    return counts, failures(ledger, failed)


@bp.get("/incidents/<incident_id>")
@signed_in("read")
def incident(incident_id: str) -> ResponseReturnValue:
    """The timeline with live delivery counts, failures, the agent brief and replies."""
    return incident_page(incident_id)


def incident_page(incident_id: str, withdraw_forms: dict[str, Any] | None = None) -> str:
    """The incident page; ``withdraw_forms`` carry a refused withdrawal's errors."""
    forms = withdraw_forms or {}
    svc = services()
    store = svc.announcements
    found = store.get_incident(incident_id)
    timeline = []
    for announcement in store.timeline(incident_id):
        counts, failed = _counts(announcement)
        timeline.append({"a": announcement, "counts": counts, "failed": failed})
    # Receipt states (undelivered, bounced…) get a column only when they happened.
    columns = COLUMNS + tuple(
        s
        for s in STATES
        if s not in COLUMNS and any(c.get(s) for t in timeline for c in t["counts"].values())
    )
    titles = {t["a"].id: t["a"].title for t in timeline}
    items = render_items(
        "admin.incident",
        "admin/_timeline_item.html",
        timeline,
        lambda t: t["a"].id,
        columns=columns,
        failed_shown=FAILED_SHOWN,
        titles=titles,
        withdraw_forms={
            t["a"].id: forms.get(t["a"].id) or WithdrawForm(formdata=None) for t in timeline
        },
    )
    about = brief(svc, incident_id)
    return render_template(
        "admin/incident.html",
        incident=found,
        items=items,
        brief=about,
        # The standing promise, counting down like on the Now page.
        promised=parse(about["next_update_at"]) if about else None,
        countdown=countdown,
        overdue=overdue,
        replies=replies(svc.redis, incident_id),
        confirmations=incident_confirmations(
            svc, incident_id, show_contacts=principal().may("subscribers")
        ),
        titles=titles,
        monitoring=incident_events(svc, incident_id),
        helpdesks=helpdesk_sync.status(svc, incident_id),
        # A drill's incident: the strip offers to end the drill while it runs.
        drill=DrillStore(svc.redis).get(found["drill_id"]) if found.get("drill_id") else None,
    )
