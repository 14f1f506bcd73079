"""The Statuspage-compatible read API's documents (``/api/v2/*.json``).

Tools that read Atlassian Statuspage (status aggregators, chat bots, browser extensions)
read ours unchanged: the same field names and value sets. Built from the documents the
status page reads — the status document (``rendering/status.py``: open incidents and
those resolved in the last 14 days) and the components' document
(``rendering/component_status.py``) — so it costs a few Redis reads, holds public
announcements only, and web processes answer repeats from their microcache.

Mapping: component ids are the plan's keys, and each group is a component of its own
(``group: true``, ``components``: its members' ids) with the worst state of its members; an
incident's ``impact`` is its severity (``info`` → ``none``); a withdrawn incident reads as
``resolved`` at its withdrawal, and a withdrawn update's body starts with the reason.
A scheduled maintenance (``domain/maintenances.py``) is an incident too: it is listed among
the scheduled maintenances, never among the incidents, with its impact ``maintenance``, its
``scheduled_for`` and ``scheduled_until`` from its record and its status from where it
stands (a cancelled one reads as ``completed``, Statuspage having no such status).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from broadcaster.domain import component_history as history
from broadcaster.domain import maintenances
from broadcaster.domain.incidents import closes, is_maintenance
from broadcaster.domain.maintenances import Maintenance
from broadcaster.rendering import component_status, status
from broadcaster.rendering.clock import iso

if TYPE_CHECKING:
    from broadcaster.services import Services  # the composition root; types only

EPOCH = "1970-01-01T00:00:00Z"
# A maintenance's state (and its updates' statuses) as Statuspage names them.
MAINTENANCE_STATUS = {
    "scheduled": "scheduled",
    "in_progress": "in_progress",
    "completed": "completed",
    "cancelled": "completed",
}


def documents(svc: Services, locale: str) -> dict[str, Any]:
    """Everything the v2 paths answer, from the stored documents (one pass)."""
    page_id = hashlib.sha256(svc.renderer.status_url.encode()).hexdigest()[:12]
    groups = component_status.view(svc, locale)
    components, names = _components(groups, page_id)
    first = status.first_page(svc, locale)
    entries = [*first["open"], *first["resolved"]]
    planned = maintenances.of_incidents(svc.redis, [e["id"] for e in entries])
    incidents, scheduled = [], []
    for entry in entries:
        found = _incident(svc, entry, page_id, names, components)
        statuses = [u["status"] for u in entry["updates"]]
        if entry["id"] in planned or is_maintenance(statuses):
            scheduled.append(_maintenance(found, planned.get(entry["id"]), components, locale))
        else:
            incidents.append(found)
    incidents.sort(key=lambda i: i["created_at"], reverse=True)
    scheduled.sort(key=lambda m: m["scheduled_for"] or m["created_at"], reverse=True)
    times = [i["updated_at"] for i in incidents + scheduled]
    times += [c["updated_at"] for c in components]
    page = {
        "id": page_id,
        "name": svc.plan.organisation,
        "url": svc.renderer.status_url,
        "time_zone": svc.plan.timezone,
        "updated_at": max(times, default=EPOCH),
    }
    return {
        "page": page,
        "status": component_status.overall(groups, first["open"]),
        "components": components,
        "incidents": incidents,
        "unresolved": [i for i in incidents if i["status"] != "resolved"],
        "maintenances": scheduled,
        "upcoming": [m for m in scheduled if m["status"] == "scheduled"],
        "active": [m for m in scheduled if m["status"] in ("in_progress", "verifying")],
    }


def summary(docs: dict[str, Any]) -> dict[str, Any]:
    """``/api/v2/summary.json``: page, components, unresolved incidents, maintenances, status."""
    return {
        "page": docs["page"],
        "components": docs["components"],
        "incidents": docs["unresolved"],
        # Statuspage's summary: the maintenances upcoming or in progress.
        "scheduled_maintenances": docs["active"] + docs["upcoming"],
        "status": docs["status"],
    }


def _maintenance(
    found: dict[str, Any],
    record: Maintenance | None,
    components: list[dict[str, Any]],
    locale: str,
) -> dict[str, Any]:
    """A maintenance's incident in Statuspage's scheduled-maintenance shape, named by the
    maintenance's own title (its incident's title is that of the latest transition)."""
    closed = found["resolved_at"]
    if record is not None:
        state = MAINTENANCE_STATUS[record.state]
        planned = set(record.components)
        begun = record.started_at or record.starts_at
        translated = record.translations.get(locale) or {}
        schedule = {
            "name": translated.get("title") or record.title,
            "scheduled_for": iso(record.starts_at),
            "scheduled_until": iso(record.ends_at),
            "started_at": iso(begun),
        }
    else:  # a record lost: what the timeline says
        latest = found["incident_updates"][0]["status"] if found["incident_updates"] else ""
        state = "completed" if closed else MAINTENANCE_STATUS.get(latest, "scheduled")
        planned = set()
        schedule = {"scheduled_for": None, "scheduled_until": None}
    if closed:
        state = "completed"
    touched = {c["id"] for c in found["components"]} | planned
    return {
        **found,
        **schedule,
        "status": state,
        "impact": "maintenance",
        "monitoring_at": None,
        "components": [c for c in components if c["id"] in touched],
    }


def _group_id(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"group-{slug or hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _components(
    groups: list[dict[str, Any]], page_id: str
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Statuspage's flat component list (groups first in their place), and id → name."""
    found: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    position = 0
    for group in groups:
        members = group["components"]
        group_id = _group_id(group["group"]) if group["group"] else None
        if group_id:
            position += 1
            found.append(
                _component(
                    page_id,
                    id=group_id,
                    name=group["group"],
                    status=history.worst([c["state"] for c in members]),
                    created_at=min(c["created_at"] for c in members),
                    updated_at=max(c["updated_at"] for c in members),
                    position=position,
                    group=True,
                    components=[c["id"] for c in members],
                )
            )
        for member in members:
            position += 1
            names[member["id"]] = member["name"]
            found.append(
                _component(
                    page_id,
                    id=member["id"],
                    name=member["name"],
                    status=member["state"],
                    created_at=member["created_at"],
                    updated_at=member["updated_at"],
                    position=position,
                    group_id=group_id,
                )
            )
    return found, names


def _component(
    page_id: str,
    *,
    id: str,
    name: str,
    status: str,
    created_at: float,
    updated_at: float,
    position: int,
    group_id: str | None = None,
    group: bool = False,
    components: list[str] | None = None,
) -> dict[str, Any]:
    created = iso(created_at)
    found = {
        "id": id,
        "name": name,
        "status": status,
        "created_at": created,
        "updated_at": iso(updated_at),
        "position": position,
        "description": None,
        "showcase": not group,
        "start_date": created[:10],
        "group_id": group_id,
        "page_id": page_id,
        "group": group,
        "only_show_if_degraded": False,
    }
    if group:
        found["components"] = components or []
    return found


def _incident(
    svc: Services,
    entry: dict[str, Any],
    page_id: str,
    names: dict[str, str],
    components: list[dict[str, Any]],
) -> dict[str, Any]:
    updates = _updates(entry, names)
    touched = {c["code"] for u in updates for c in u["affected_components"] or ()}
    monitoring = [u["created_at"] for u in updates if u["status"] == "monitoring"]
    closed = entry.get("closed_at") or entry.get("resolved_at")
    return {
        "id": entry["id"],
        "name": entry["title"],
        "status": "resolved" if closed else entry["status"],
        "impact": history.IMPACT_OF_SEVERITY.get(entry["severity"], "none"),
        "shortlink": f"{svc.renderer.status_url}#{entry['id']}",
        "created_at": entry["opened_at"],
        "updated_at": max([entry["updated_at"], *(u["updated_at"] for u in updates)]),
        "monitoring_at": min(monitoring) if monitoring else None,
        "resolved_at": closed,
        "started_at": entry["opened_at"],
        "page_id": page_id,
        "incident_updates": updates,
        "components": [c for c in components if c["id"] in touched],
    }


def _updates(entry: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    """The incident's updates, newest first, each with the component states it changed."""
    states: dict[str, str] = {}  # component → state this incident set, oldest first
    found = []
    for update in reversed(entry["updates"]):
        changes = {c: s for c, s in (update.get("components") or {}).items() if c in names}
        if closes(update["status"]):  # its components return to operational
            changes = {c: "operational" for c, s in states.items() if s != "operational"}
        affected = [
            {
                "code": c,
                "name": names[c],
                "old_status": states.get(c, "operational"),
                "new_status": s,
            }
            for c, s in changes.items()
            if states.get(c, "operational") != s or not closes(update["status"])
        ]
        if not update.get("withdrawn"):
            states.update(changes)
        withdrawn = update.get("withdrawn")
        body = update["body"]
        if withdrawn:
            body = f"Withdrawn: {withdrawn['reason']}\n\n{body}"
        found.append(
            {
                "id": update["id"],
                "status": MAINTENANCE_STATUS.get(update["status"], update["status"]),
                "body": body,
                "incident_id": entry["id"],
                "created_at": update["published_at"],
                "updated_at": withdrawn["at"] if withdrawn else update["published_at"],
                "display_at": update["published_at"],
                "affected_components": affected or None,
                "deliver_notifications": True,
                "custom_tweet": None,
                "tweet_id": None,
            }
        )
    found.reverse()
    return found
