"""The public status data: incidents and their timelines, for the page, JSON and the feed."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from broadcaster.domain.announcement import Announcement
from broadcaster.rendering.banners import iso
from broadcaster.rendering.messages import content_for, language_for, routes_for

if TYPE_CHECKING:
    from broadcaster.services import Services  # the composition root; types only

RECENT_DAYS = 14


def incidents(svc: Services, locale: str) -> dict[str, Any]:
    """Open incidents (full timeline, newest first), then those resolved in the last 14 days."""
    store = svc.announcements
    cutoff = time.time() - RECENT_DAYS * 86400
    open_, resolved = [], []
    # Incidents opened long ago may still be open: look through all, newest first.
    for incident_id in (i.decode() for i in svc.redis.zrevrange("bc:incs", 0, -1)):
        incident = store.get_incident(incident_id)
        published = [a for a in store.timeline(incident_id) if a.state == "published"]
        if not published:
            continue  # nothing public yet (waiting for approval)
        if incident.get("resolved_at") and incident["resolved_at"] < cutoff:
            continue
        entry = _incident(svc, incident, published, locale)
        (resolved if incident.get("resolved_at") else open_).append(entry)
    open_.sort(key=lambda i: i["updated_at"], reverse=True)
    resolved.sort(key=lambda i: i["resolved_at"], reverse=True)
    return {"open": open_, "resolved": resolved}


def _incident(
    svc: Services, incident: dict[str, Any], published: list[Announcement], locale: str
) -> dict[str, Any]:
    latest = published[-1]
    language = language_for(latest, locale, svc.plan.default_locale)
    updates = []
    for announcement in reversed(published):  # newest first
        lang = language_for(announcement, locale, svc.plan.default_locale)
        updates.append(
            {
                "id": announcement.id,
                **content_for(announcement, lang),
                "language": lang,
                "status": announcement.status,
                "severity": announcement.severity,
                "published_at": iso(announcement.published_at),
                "corrects": announcement.corrects,
            }
        )
    return {
        "id": incident["id"],
        "title": content_for(latest, language)["title"],
        "status": incident["status"],
        "severity": incident["severity"],
        "opened_at": iso(incident["opened_at"]),
        "updated_at": iso(latest.published_at),
        "resolved_at": iso(incident["resolved_at"]) if incident.get("resolved_at") else None,
        "audiences": sorted({n for a in published for n in a.audiences}),
        "next_update_at": iso(latest.next_update_at) if latest.next_update_at else None,
        "updates": updates,
    }


def audience_routes(svc: Services, locale: str) -> list[dict[str, Any]]:
    """Every audience with its "how to reach us for your need" routes, in ``locale``."""
    return [
        {
            "audience": name,
            "description": audience.description,
            "routes": routes_for(svc.plan, [name], locale),
        }
        for name, audience in svc.plan.audiences.items()
        if audience.routes
    ]
