"""What the public may see: audiences the plan marks ``internal`` stay inside.

An announcement is *internal* when every audience it names is internal (``[audiences.staff]
internal = true``): it reaches its audiences' own channels (email, SMS, internal webhook
targets) and no public surface — status page, ``status.json``, the feeds, the banner,
social posts, public webhook targets. So does every announcement of a drill (its
``exercise`` flag, ``domain/drills.py``), whatever its audiences. One that also names a
public audience is public, but shows only its public audiences (and so only their routes).

Decided from the plan as it is now, not when the announcement was sent: marking an
audience internal also takes its earlier announcements off the public pages. An audience
the plan no longer names counts as public (the default).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from broadcaster.domain import incident_facts
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.plan import Plan
from channels.webhook import WebhookTarget


def is_internal(plan: Plan, audience: str) -> bool:
    """Whether ``audience`` is one of our own (``internal = true`` in the plan)."""
    found = plan.audiences.get(audience)
    return bool(found and found.internal)


def internal_only(plan: Plan, audiences: Iterable[str]) -> bool:
    """Whether ``audiences`` name at least one audience and only internal ones."""
    names = set(audiences)
    return bool(names) and all(is_internal(plan, name) for name in names)


def public_audiences(plan: Plan, audiences: Iterable[str]) -> list[str]:
    """``audiences`` without the internal ones, in their order."""
    return [name for name in audiences if not is_internal(plan, name)]


def stays_inside(plan: Plan, announcement: Announcement) -> bool:
    """Whether ``announcement`` stays off every public surface: a drill's (an exercise),
    or one for internal audiences only."""
    return announcement.exercise or internal_only(plan, announcement.audiences)


def is_public(plan: Plan, announcement: Announcement) -> bool:
    """Whether a published announcement may show on the public surfaces."""
    return announcement.published and not stays_inside(plan, announcement)


def reaches_target(plan: Plan, target: WebhookTarget, announcement: Announcement) -> bool:
    """Whether ``announcement`` goes to a webhook target: by its audiences, and an internal
    announcement only to an internal target."""
    if not target.wants(announcement.audiences):
        return False
    return target.internal or not stays_inside(plan, announcement)


def public_incident(
    plan: Plan, incident: dict[str, Any], timeline: list[Announcement]
) -> tuple[dict[str, Any], list[Announcement]] | None:
    """(incident as the public knows it, its public announcements), or None if it has none.

    Where an internal announcement was left out, the incident's facts (title, severity,
    status, times) are those of its public announcements, so an internal follow-up changes
    nothing the public sees. Withdrawn announcements stay in the list (the public history
    shows them, marked) but not in the facts (``incident_facts``).
    """
    published = [a for a in timeline if a.published]
    shown = [a for a in published if not stays_inside(plan, a)]
    if not shown:
        return None
    if len(shown) == len(published) and all(a.withdrawn_at is None for a in shown):
        return incident, shown  # nothing withheld or withdrawn: the incident as stored
    return incident_facts.facts(incident, shown), shown
