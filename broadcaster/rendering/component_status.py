"""The components' document: each component's state now and its 90-day history, stored.

Built from the component log (``domain/components.py``) by the pure functions of
``domain/component_history.py``, after leaving out what the public may not see: events
of announcements for internal audiences only (``domain/visibility.py``) and components
the plan no longer declares. Stored in Redis (:data:`DOCUMENT_KEY`) and read with one GET by
the status page, ``status.json`` and the ``/api/v2`` documents. A publish that touches
components drops it (``after_publish``); the next read builds it again (the log is
watched, so a build that read the log before a later publish never stores a stale
document), and so does the first read of a new day in the plan's zone, when the 90-day
bar moves on.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import redis

from broadcaster.domain import component_history as history
from broadcaster.domain import components
from broadcaster.domain.announcement import Announcement
from broadcaster.domain.incidents import is_maintenance
from broadcaster.domain.visibility import internal_only
from broadcaster.rendering.i18n import N_

if TYPE_CHECKING:
    from broadcaster.domain.plan import Plan
    from broadcaster.services import Services  # the composition root; types only

DOCUMENT_KEY = "bc:components:doc"
SEEN_KEY = "bc:components:seen"  # component id → when it was first shown (its created_at)
HISTORY_DAYS = 90

STATE_LABELS = {
    "operational": N_("Operational"),
    "under_maintenance": N_("Under maintenance"),
    "degraded_performance": N_("Degraded performance"),
    "partial_outage": N_("Partial outage"),
    "major_outage": N_("Major outage"),
}
# The page's words for Statuspage's indicator (component_history.indicator).
INDICATOR_LABELS = {
    "none": N_("All systems operational"),
    "minor": N_("Minor disruption"),
    "major": N_("Partial outage"),
    "critical": N_("Major outage"),
}


def public_events(plan: Plan, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events the public may see, their states limited to the plan's components."""
    known = {c.id for c in plan.components}
    shown = []
    for event in events:
        if event.get("withdraws"):
            shown.append(event)
        elif not internal_only(plan, event.get("audiences") or []):
            states = {c: s for c, s in (event.get("states") or {}).items() if c in known}
            shown.append({**event, "states": states})
    return shown


def build(svc: Services, events: list[dict[str, Any]], now: float | None = None) -> dict[str, Any]:
    """The document from the logged ``events`` (plain data: its names in every locale)."""
    now = time.time() if now is None else now
    plan = svc.plan
    shown = public_events(plan, events)
    snapshots = history.replay(shown)
    ids = [c.id for c in plan.components]
    pipe = svc.redis.pipeline(transaction=False)
    for cid in ids:
        pipe.hsetnx(SEEN_KEY, cid, now)
    pipe.hgetall(SEEN_KEY)
    seen = {k.decode(): float(v) for k, v in pipe.execute()[-1].items()}
    titles: dict[str, dict[str, str]] = {}
    for event in shown:
        if event.get("titles"):
            titles[event["incident"]] = event["titles"]  # the latest update's title
    found = []
    for component in plan.components:
        state, since = history.current(snapshots, component.id)
        created = min(seen.get(component.id, now), shown[0]["at"] if shown else now)
        found.append(
            {
                "id": component.id,
                "name": component.name,
                "group": component.group,
                "position": component.position,
                "state": state,
                "created_at": created,
                "updated_at": since or created,
                "days": history.daily(snapshots, component.id, now, plan.timezone, HISTORY_DAYS),
            }
        )
    return {
        "day": _today(plan, now),
        "computed_at": now,
        "components": found,
        "titles": titles,
        "updated_at": max((s.at for s in snapshots), default=None),
    }


def document(svc: Services) -> dict[str, Any]:
    """The stored document (one GET), built again if missing or from an earlier day."""
    if not svc.plan.components:
        return {"components": [], "titles": {}, "updated_at": None}
    raw = svc.redis.get(DOCUMENT_KEY)
    if raw is not None:
        doc = json.loads(raw)
        if doc.get("day") == _today(svc.plan, time.time()):
            return doc
    with svc.redis.pipeline(transaction=True) as pipe:
        try:
            pipe.watch(components.LOG_KEY)
            doc = build(svc, components.events(svc.redis))
            pipe.multi()
            pipe.set(DOCUMENT_KEY, json.dumps(doc))
            pipe.execute()
        except redis.WatchError:
            pass  # a publish came in meanwhile: answer this one, the next read stores
    return doc


def after_publish(svc: Services, announcement: Announcement) -> None:
    """Drop the document when the announcement's incident touches components."""
    if not svc.plan.components:
        return
    incident = svc.announcements.get_incident(announcement.incident_id)
    if incident.get("components") or announcement.components:
        svc.redis.delete(DOCUMENT_KEY)


def forget(svc: Services) -> None:
    """A new plan: names, components and what is public may have changed."""
    svc.redis.delete(DOCUMENT_KEY)


def view(svc: Services, locale: str) -> list[dict[str, Any]]:
    """The components in ``locale``, grouped as the plan groups them (plan order):
    ``[{"group": name or None, "components": [...]}]`` with each day's incident titles."""
    doc = document(svc)
    default = svc.plan.default_locale
    groups: dict[str | None, list[dict[str, Any]]] = {}  # by first appearance
    for item in doc["components"]:
        group = _text(item["group"], locale, default) if item["group"] else None
        days = [
            {
                **day,
                "titles": [
                    _text(doc["titles"].get(i, {}), locale, default) or i for i in day["incidents"]
                ],
            }
            for day in item["days"]
        ]
        groups.setdefault(group, []).append(
            {**item, "name": _text(item["name"], locale, default), "group": group, "days": days}
        )
    return [{"group": group, "components": items} for group, items in groups.items()]


def _text(texts: dict[str, str], locale: str, default: str) -> str:
    return texts.get(locale) or texts.get(default) or texts.get("", "")


def _today(plan: Plan, now: float) -> str:
    return datetime.fromtimestamp(now, ZoneInfo(plan.timezone)).date().isoformat()


def overall(groups: list[dict[str, Any]], open_incidents: list[dict[str, Any]]) -> dict[str, str]:
    """Statuspage's page ``status`` from the components' states and the open incidents'
    severities (``component_history.indicator``). A scheduled maintenance counts by the
    components it puts under maintenance only, as on Statuspage: not by its severity."""
    states = [c["state"] for g in groups for c in g["components"]]
    impacts = [
        history.IMPACT_OF_SEVERITY.get(i.get("severity", ""), "none")
        for i in open_incidents
        if not is_maintenance([u.get("status", "") for u in i.get("updates") or ()])
    ]
    return history.indicator(states, impacts)
