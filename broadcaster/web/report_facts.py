"""Gather an incident's facts and build its post-incident report (the API and admin pages).

The numbers come from ``domain/report_metrics.py`` (pure functions); this module only reads
Redis: the incident and its announcements, the monitoring events, the audit log, the
delivery ledgers, staff briefs, replies and the team's review.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from broadcaster.delivery import drill_guard, staff
from broadcaster.domain import audit, drills, report_metrics, reviews, visibility
from broadcaster.domain.ledger import Ledger
from broadcaster.services import Services
from broadcaster.web.hooks.alerts import incident_events
from broadcaster.web.hooks.inbound import replies, stops

DELIVERIES_READ = 20_000  # per announcement: a report must answer in seconds
AUDIT_READ = 2_000
REPLIES_SHOWN = 3


def _at(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _deliveries(svc: Services, announcement_id: str) -> list[dict[str, Any]]:
    records = Ledger(svc.redis, announcement_id).page(0, DELIVERIES_READ)
    return [
        {
            "channel": d["channel"],
            "subscriber_id": d["subscriber_id"],
            "state": d["state"],
            "at": d["updated_at"],
            "fallback": d["fallback"],
            "error": d["error"],
        }
        for d in records
    ]


def _audience_size(svc: Services, audiences: set[str]) -> int:
    people: set[str] = set()
    for chunk in svc.subscribers.ids_in(sorted(audiences)):
        people.update(chunk)
    return len(people)


def report(svc: Services, incident_id: str, now: float) -> dict[str, Any]:
    """The incident's post-incident report as plain JSON-ready data."""
    plan = svc.plan
    incident = svc.announcements.get_incident(incident_id)
    timeline = svc.announcements.timeline(incident_id)
    alerts = [{**e, "at": _at(e["at"])} for e in incident_events(svc, incident_id)]
    anns = [
        {
            **a.to_dict(),
            "customer_facing": not visibility.internal_only(plan, a.audiences),
        }
        for a in timeline
    ]
    deliveries: list[dict[str, Any]] = []
    briefed = []
    audiences: set[str] = set()
    for a in timeline:
        if not a.published:
            continue
        deliveries += _deliveries(svc, a.id)
        brief = staff.status(svc, a)
        if brief and brief.get("briefed_at"):
            briefed.append(brief["briefed_at"])
        audiences.update(drill_guard.audiences(plan, a, staff.customer_audiences(plan, a)))
    entries = audit.entries(svc.redis, limit=AUDIT_READ, incident_id=incident_id)
    if incident.get("drill_id"):  # started before its incident existed: found by the drill
        drill = drills.DrillStore(svc.redis).get(incident["drill_id"])
        entries.append(
            {
                "at": drill["started_at"],
                "action": "drill.started",
                "actor": drill["started_by"],
                "announcement_id": None,
                "details": {"scenario": drill["scenario"]},
            }
        )
    said = replies(svc.redis, incident_id)
    stop_count, _latest_stops = stops(svc.redis, incident_id)
    metrics = report_metrics.metrics(
        incident, anns, alerts, deliveries, now, min(briefed, default=None)
    )
    start = metrics["started_at"]
    versions = reviews.versions(svc.redis, incident_id)
    return {
        "incident": {
            key: incident.get(key)
            for key in ("id", "title", "severity", "status", "opened_at", "resolved_at")
        },
        "exercise": bool(incident.get("exercise")),
        "drill_id": incident.get("drill_id"),
        "generated_at": now,
        "timeline": report_metrics.timeline(entries, {a["id"]: a for a in anns}, alerts),
        "metrics": metrics,
        "promises": report_metrics.promises(anns, now),
        "announcements": [
            {
                key: a.get(key)
                for key in ("id", "title", "status", "state", "published_at", "next_update_at")
            }
            for a in anns
        ],
        "deliveries": {
            "channels": report_metrics.per_channel(deliveries),
            "reach_percent": report_metrics.reach(deliveries, _audience_size(svc, audiences)),
            "audiences": sorted(audiences),
            "per_minute": {
                channel: {str(m): n for m, n in sorted(rows.items())}
                for channel, rows in report_metrics.per_minute(deliveries, start).items()
            },
        },
        "replies": {
            "count": len(said),
            "stops": stop_count,
            "first": [
                {"at": r.get("at"), "from": r.get("from"), "body": str(r.get("body", ""))[:160]}
                for r in said[:REPLIES_SHOWN]
            ],
        },
        "review": {"versions": len(versions), "latest": versions[-1] if versions else None},
    }
