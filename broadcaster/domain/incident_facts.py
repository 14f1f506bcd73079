"""An incident's current facts, from the announcements that still stand.

The announcement service keeps the stored incident up to date publish by publish. When an
announcement is withdrawn, or some are left out (internal ones, on the public pages), the
facts are worked out again from the ones that stand: severity, status and the times come
from them, and an incident none of whose announcements stands is *withdrawn* — off the
current view, in the history.
"""

from __future__ import annotations

from typing import Any

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.incidents import closes


def closed_at(incident: dict[str, Any]) -> float | None:
    """When the incident left the current view: resolved, or every announcement withdrawn."""
    return incident.get("resolved_at") or incident.get("withdrawn_at") or None


def facts(incident: dict[str, Any], shown: list[Announcement]) -> dict[str, Any]:
    """``incident`` with the facts of ``shown`` (published, oldest first) that still stand.

    Title and opening time are the first shown announcement's (a withdrawn first message
    still opened the incident); with nothing standing, ``withdrawn_at`` is the time the last
    one was withdrawn and the rest stays as it was.
    """
    standing = [a for a in shown if a.withdrawn_at is None]
    found = {**incident}
    if shown:
        found.update(title=shown[0].title, opened_at=shown[0].created_at)
    if not standing:
        found["withdrawn_at"] = max((a.withdrawn_at or 0 for a in shown), default=None)
        found["resolved_at"] = None
        return found
    latest = standing[-1]
    resolved_at = None
    for announcement in standing:  # as the announcement service keeps it, publish by publish
        if closes(announcement.status):
            resolved_at = resolved_at or announcement.published_at
        else:
            resolved_at = None
    found.update(
        severity=latest.severity,
        status=latest.status,
        updated_at=latest.published_at,
        resolved_at=resolved_at,
        withdrawn_at=None,
    )
    return found
