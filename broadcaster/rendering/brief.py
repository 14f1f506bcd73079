"""The agent brief: the current facts, the routes, a ready-to-paste reply in every
language and what not to promise.

So every agent on the phone, in chat or on social says the same thing. The same brief is
what staff are sent before the customers hear anything (``rendering/staff_message.py``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from broadcaster.domain import promises, visibility
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.incidents import SEVERITIES, closes
from broadcaster.rendering.banners import iso
from broadcaster.rendering.clock import format_time, zone_name
from broadcaster.rendering.i18n import gettext_for
from broadcaster.rendering.messages import STATUS_LABELS, content_for, language_for, routes_for

if TYPE_CHECKING:
    from broadcaster.services import Services  # the composition root; types only


def reply(svc: Services, announcement: Announcement, locale: str) -> tuple[str, str]:
    """(language used, reply text) for customers who ask about the incident."""
    language = language_for(announcement, locale, svc.plan.default_locale)
    _ = gettext_for(language)
    content = content_for(announcement, language)
    status_label = STATUS_LABELS[announcement.status]
    lines = [
        _("Thank you for contacting us."),
        _("We know about this problem: %(title)s.", title=content["title"].rstrip(".")),
        content["body"].strip(),
        _("Current status: %(status)s.", status=_(status_label)),
    ]
    if announcement.next_update_at:
        tz = svc.plan.timezone
        when = format_time(announcement.next_update_at, language, tz)
        # The reply's only time, so it names its zone itself: it is pasted on its own.
        lines.append(
            _(
                "We will share the next update by %(time)s (%(zone)s).",
                time=when,
                zone=zone_name(language, tz),
            )
        )
    lines.append(_("Latest information: %(url)s", url=f"{svc.renderer.status_url}?lang={language}"))
    return language, "\n".join(lines)


def do_not_promise(svc: Services, locale: str) -> list[str]:
    """The plan's "what not to promise" lines (``[staff] do_not_promise``) in ``locale``."""
    staff = svc.plan.staff
    return staff.do_not_promise_in(locale, svc.plan.default_locale) if staff else []


def replies(svc: Services, announcement: Announcement) -> list[dict[str, str]]:
    """A paste-ready reply per plan locale (in the default language where none is written)."""
    out = []
    for locale in svc.plan.locales:
        language, text = reply(svc, announcement, locale)
        out.append({"locale": locale, "language": language, "text": text})
    return out


def announcement_brief(svc: Services, announcement: Announcement, locale: str) -> dict[str, Any]:
    """The brief for one announcement, for staff reading ``locale``: facts, the routes of
    the customer audiences, a reply per language, and what not to promise."""
    language = language_for(announcement, locale, svc.plan.default_locale)
    content = content_for(announcement, language)
    audiences = visibility.public_audiences(svc.plan, announcement.audiences)
    if closes(announcement.status):
        # A resolution promises nothing more (domain/promises.py): neither may its brief.
        announcement = dataclasses.replace(announcement, next_update_at=None)
    return {
        "announcement_id": announcement.id,
        "incident_id": announcement.incident_id,
        "title": content["title"],
        "facts": content["body"],
        "language": language,
        "severity": announcement.severity,
        "status": announcement.status,
        "next_update_at": (
            iso(announcement.next_update_at) if announcement.next_update_at else None
        ),
        "status_url": svc.renderer.status_url,
        "routes": [
            {"audience": name, "routes": routes_for(svc.plan, [name], locale)} for name in audiences
        ],
        "replies": replies(svc, announcement),
        "do_not_promise": do_not_promise(svc, locale),
    }


def brief(svc: Services, incident_id: str, locale: str | None = None) -> dict[str, Any] | None:
    """The brief for an incident, or None when nothing about it is published yet.

    ``locale``: the agent's language: the routes and what not to promise in it, and its
    reply first (every language's reply is there all the same).
    """
    locale = locale or svc.plan.default_locale
    store = svc.announcements
    incident = store.get_incident(incident_id)
    # What still stands: agents must not repeat a withdrawn message.
    published = [a for a in store.timeline(incident_id) if a.standing]
    if not published:
        return None
    latest = published[-1]
    # The promise that stands: the latest update's; none once resolved (domain/promises.py).
    promising = promises.standing(incident, published)
    next_update = promising.next_update_at if promising else None
    audiences = sorted({name for a in published for name in a.audiences})
    return {
        "incident_id": incident_id,
        "title": latest.title,
        "status": incident["status"],
        "severity": incident["severity"],
        "facts": latest.body,
        "updated_at": iso(latest.published_at),
        "next_update_at": iso(next_update) if next_update else None,
        "status_url": svc.renderer.status_url,
        "locale": locale,
        "replies": sorted(
            replies(svc, dataclasses.replace(latest, next_update_at=next_update)),
            key=lambda item: item["locale"] != locale,  # stable: the agent's own first
        ),
        "do_not_promise": do_not_promise(svc, locale),
        "routes": [
            {"audience": name, "routes": routes_for(svc.plan, [name], locale)} for name in audiences
        ],
        "timeline": [
            {
                "id": a.id,
                "title": a.title,
                "status": a.status,
                "published_at": iso(a.published_at),
                "corrects": a.corrects,
            }
            for a in reversed(published)
        ],
    }


def current_incidents(svc: Services) -> list[str]:
    """Open incidents with something published, the one agents need most first: a real one
    before a drill's, then the most severe, then the latest updated (what a helpdesk sidebar
    shows as "current")."""
    order = {name: rank for rank, name in enumerate(SEVERITIES)}
    found = []
    for incident_id in svc.announcements.active_incident_ids():
        incident = svc.announcements.get_incident(incident_id)
        if closes(incident.get("status")) or incident.get("withdrawn_at"):
            continue
        if incident.get("status") == "scheduled":  # a maintenance still ahead: not now
            continue
        real = not incident.get("exercise")
        severity = order.get(incident.get("severity"), 0)
        found.append((real, severity, incident["updated_at"], incident_id))
    return [incident_id for *_, incident_id in sorted(found, reverse=True)]
