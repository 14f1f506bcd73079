"""A promised next update: which promise stands, when it is overdue, who hears about it.

An announcement may promise the next update by a time (``next_update_at``). The promise
that stands for an incident is the one its latest published announcement made: an update
before that time keeps the promise (and makes its own, or none), a resolution ends it.
When the time passes with the promise still standing, the people behind the announcement
(its author and its approver) are reminded once (``delivery/promises.py``).
"""

from __future__ import annotations

import time
from typing import Any

from broadcaster.domain.announcement import Announcement
from broadcaster.domain.incidents import closes

# Promises already reminded about: per announcement, the recipients done (a set), so a
# retried reminder job never reminds the same person twice.
REMINDED_TTL = 45 * 24 * 3600  # longer than any promise may lie ahead (30 days)
# A promise lies at most 30 days ahead (announcement_checks.PROMISE_AHEAD_SECONDS).
PROMISE_MAX_MINUTES = 30 * 24 * 60


def parse_next_update_minutes(value: Any) -> tuple[int | None, str | None]:
    """The plan's ``policy.next_update_minutes`` (None: not set) and what is wrong with it."""
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, int):
        value = -1
    if not 0 <= value <= PROMISE_MAX_MINUTES:
        return (
            None,
            f"must be a whole number of minutes from 0 (propose none) to {PROMISE_MAX_MINUTES}",
        )
    return value, None


def reminded_key(announcement_id: str) -> str:
    return f"bc:promise:{announcement_id}:reminded"


def latest_published(published: list[Announcement]) -> Announcement | None:
    """The announcement published last (approval order, not writing order)."""
    return max(published, key=lambda a: a.published_at or 0.0, default=None)


def standing(incident: dict[str, Any], published: list[Announcement]) -> Announcement | None:
    """The published announcement whose promise stands for ``incident``, or None.

    ``published`` are the incident's published announcements. A resolved incident has no
    promise: the resolution was the last word.
    """
    if incident.get("resolved_at"):
        return None
    latest = latest_published(published)
    if latest is None or closes(latest.status) or not latest.next_update_at:
        return None
    return latest


def why_not_remind(
    announcement: Announcement, incident: dict[str, Any], published: list[Announcement]
) -> str | None:
    """Why no reminder is due for ``announcement``'s promise; None when one is."""
    if not announcement.published or not announcement.next_update_at:
        return "no promise"
    if incident.get("resolved_at"):
        return "incident resolved"
    promise = standing(incident, published)
    if promise is None or promise.id != announcement.id:
        return "a newer update came first"
    if announcement.next_update_at > time.time():
        return "not due yet"  # an early run (clock skew between machines): wait for the next
    return None
