"""The reminder staff get when a promised update is overdue: email and webhook texts.

Written for the crisis team in the admin pages' language (English), with the promised time
in the plan's zone, and the link that lets them post the update at once.
"""

from __future__ import annotations

from typing import Any

from markupsafe import escape

from broadcaster.domain.announcement import Announcement
from broadcaster.rendering.clock import format_time, zone_name

LANGUAGE = "en"  # the admin pages' language


def compose_url(public_url: str, incident_id: str) -> str:
    """Compose, as a follow-up of the incident."""
    return f"{public_url.rstrip('/')}/admin/compose?incident_id={incident_id}"


def overdue_reminder(
    announcement: Announcement, incident: dict[str, Any], tz: str, public_url: str
) -> dict[str, str]:
    """``subject``, ``text`` and ``html`` of the reminder about ``announcement``'s promise."""
    promised = format_time(announcement.next_update_at or 0.0, LANGUAGE, tz)
    published = format_time(announcement.published_at or announcement.created_at, LANGUAGE, tz)
    zone = zone_name(LANGUAGE, tz)
    title = str(incident.get("title") or announcement.title)
    link = compose_url(public_url, announcement.incident_id)
    who = f"by {announcement.author_person}"
    if announcement.decided_by_person:
        who += f", approved by {announcement.decided_by_person}"
    lines = [
        f"The next update on “{title}” was promised by {promised} ({zone}), "
        "and nothing has been published since.",
        "Customers were told to expect it. Post an update now, even if only to say when "
        "the next one comes:",
        link,
        f"The promise was made in “{announcement.title}”, published {published} {who}.",
    ]
    html = "".join(
        f"<p>{escape(line)}</p>"
        if line != link
        else f'<p><a href="{escape(link)}">{escape(link)}</a></p>'
        for line in lines
    )
    return {
        "subject": f"Overdue: the update promised by {promised} on “{title}”"[:200],
        "text": "\n\n".join(lines),
        "html": html,
        "title": f"Overdue: the update promised by {promised}",
        "body": " ".join(line for line in lines if line != link),
        "link": link,
    }
