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
Scheduled maintenances: none yet, so their lists are empty.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from broadcaster.domain import component_history as history
from broadcaster.rendering import component_status, status
from broadcaster.rendering.clock import iso

if TYPE_CHECKING:
    from broadcaster.services import Services  # the composition root; types only

EPOCH = "1970-01-01T00:00:00Z"


def documents(svc: Services, locale: str) -> dict[str, Any]:
    """Everything the v2 paths answer, from the stored documents (one pass)."""
    page_id = hashlib.sha256(svc.renderer.status_url.encode()).hexdigest()[:12]
    groups = component_status.view(svc, locale)
    components, names = _components(groups, page_id)
    first = status.first_page(svc, locale)
    incidents = [
        _incident(svc, entry, page_id, names, components)
        for entry in [*first["open"], *first["resolved"]]
    ]
    incidents.sort(key=lambda i: i["created_at"], reverse=True)
    times = [i["updated_at"] for i in incidents] + [c["updated_at"] for c in components]
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
    }


def summary(docs: dict[str, Any]) -> dict[str, Any]:
    """``/api/v2/summary.json``: page, components, unresolved incidents, maintenances, status."""
    return {
        "page": docs["page"],
        "components": docs["components"],
        "incidents": docs["unresolved"],
        "scheduled_maintenances": [],
        "status": docs["status"],
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
        if update["status"] == "resolved":  # its components return to operational
            changes = {c: "operational" for c, s in states.items() if s != "operational"}
        affected = [
            {
                "code": c,
                "name": names[c],
                "old_status": states.get(c, "operational"),
                "new_status": s,
            }
            for c, s in changes.items()
            if states.get(c, "operational") != s or update["status"] != "resolved"
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
                "status": update["status"],
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
