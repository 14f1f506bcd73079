"""Compose, pre-filled: "Post an update" and "Correct this" start from what was said last.

An update usually changes a sentence or the status, not everything; a correction fixes a
detail. Starting from a blank form made people retype (and mistype) audiences, channels and
every translation in the middle of an incident. The form's GET carries ``incident_id``
(an update: from the incident's latest published announcement) or ``corrects`` (a
correction: from that announcement); the person then edits and submits as usual.
"""

from __future__ import annotations

from flask_wtf import FlaskForm

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.announcement_service import AnnouncementService
from broadcaster.domain.errors import NotFound
from broadcaster.domain.plan import Plan


def source(
    store: AnnouncementService, incident_id: str, corrects: str
) -> tuple[Announcement | None, dict | None]:
    """(the announcement to start from, its incident); Nones for unknown ids.

    For a correction, the corrected announcement; for an update, the incident's latest
    published announcement, else its latest at all (an incident whose first word waits).
    """
    try:
        if corrects:
            found = store.get(corrects)
            return found, store.get_incident(found.incident_id)
        if incident_id:
            incident = store.get_incident(incident_id)
            timeline = store.timeline(incident_id)
            published = [a for a in timeline if a.published]
            latest = (published or timeline)[-1:]
            return (latest[0] if latest else None), incident
    except NotFound:
        pass
    return None, None


def fill(form: FlaskForm, announcement: Announcement, plan: Plan) -> None:
    """Put ``announcement``'s text, severity, status, audiences, channels and translations
    into the compose ``form`` (what the plan no longer knows is left out)."""
    form.title.data = announcement.title
    form.body.data = announcement.body
    form.severity.data = announcement.severity
    form.status.data = announcement.status
    form.audiences.data = [name for name in announcement.audiences if name in plan.audiences]
    form.channels.data = list(announcement.channels)
    for locale, text in (announcement.translations or {}).items():
        title = getattr(form, f"tr_{locale}_title", None)
        body = getattr(form, f"tr_{locale}_body", None)
        if title is not None and body is not None:
            title.data = text.get("title") or ""
            body.data = text.get("body") or ""
